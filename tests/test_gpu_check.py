"""The prepared GPU check runs end to end on a CPU at its smoke setting: a pack built from a real (small) workspace
through the training cache, the wheels rebuilt from the installed weight package, and every figure in one JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.train_helpers import real_workspace

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_smoke(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))
    from make_pack import build_pack, copy_wheels

    from wbc_data.train.recipe import load_recipe

    ws = real_workspace(tmp_path, per_class=12, val=0.25, test=0.25)
    pack = build_pack(ws.root, "lite0-cpu", tmp_path / "pack.npz", train_per_class=8, val_per_class=3)
    data = np.load(pack)
    assert int(data["size"]) == 128 and set(data["split"]) == {"train", "val", "test"}
    assert float(data["centre"]) == load_recipe("lite0-cpu").image.centre  # framed as the recipe frames cells
    assert len(data["offsets"]) == len(data["labels"]) + 1 and pack.stat().st_size < 2**20
    wheels = copy_wheels(tmp_path / "whl")
    assert wheels and any(n.endswith(".pth") for n in zipfile.ZipFile(wheels[0]).namelist())
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WBC_DATA_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    done = subprocess.run(
        ["bash", "benchmarks/gpu/check.sh", "--smoke", "--pack", str(pack)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["smoke"] is True and report["throughput"][0]["plain_img_s"] > 0
    lite = report["lite0_cpu_recipe"]
    assert lite["members"][0]["pretrained"] is True and 0.0 <= lite["test_macro_f1"] <= 1.0
    assert report["seed_ensemble_random_init"]["members"][0]["pretrained"] is False
    dedup = report["dedup_registration"]  # issue 21: numpy against torch registration of real cells and copies
    assert dedup.get("same_decisions", 0) >= 0.95 and dedup["copies_found_numpy"] > 0, dedup
    assert dedup["numpy_cpu_pairs_per_s"] > 0 and dedup["torch_pairs_per_s"] > 0
    generator = report["generator"]  # the latent generator through ingest, split and synth train, then sampled
    assert generator["steps"] == 4 and generator["sampling"][0]["images_per_s"] > 0, generator
    assert generator["fidelity"], generator
    for figures in generator["fidelity"].values():
        assert figures["samples"]["n_other"] == 8 and figures["samples"]["kid"] is not None
