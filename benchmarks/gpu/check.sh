#!/usr/bin/env bash
# The prepared GPU check, one command from a copy of the repository (no ../shared, no package index):
#   bash benchmarks/gpu/check.sh            # writes $OUT/gpu_check.json (default benchmarks/out/)
#   bash benchmarks/gpu/check.sh --smoke    # the same script at toy scale, on a CPU
# Needs: torch, timm, accelerate, numpy, pandas, pyarrow, opencv, typer, rich, scikit-learn, huggingface-hub on the
# machine; the weight wheels in .whl/ and the pack in benchmarks/gpu/pack/ (both git-ignored, made by
# `uv run python benchmarks/gpu/make_pack.py -w <workspace>`).
set -euo pipefail
cd "$(dirname "$0")/../.."
SITE=${WBC_CHECK_SITE:-/tmp/site}
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --target "$SITE" .whl/*.whl
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 WBC_DATA_CACHE=${WBC_DATA_CACHE:-/tmp/wbc-data-cache}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU visible"
exec python3 benchmarks/gpu/check.py "$@"
