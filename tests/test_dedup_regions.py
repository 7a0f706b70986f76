"""Issue 21: region-of-field copies. Regions of real BCCD fields (``../shared/data/bccd``), drawn by the generator of
``benchmarks/region.py`` over its ranges (zoom 1.5-3x, -20..20 degrees with black corners, shift, shear, half size,
JPEG), are linked to their own field by keypoint matching, and distinct fields of the same smear are not. Recovered
angles and scales are compared within a tolerance (SIFT and RANSAC round differently across CPUs)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmarks.region import Region, pick_fields, region_copies, render, score, voc_boxes
from tests.conftest import shared_path
from wbc_data.core.workspace import Workspace
from wbc_data.dedup.keypoints import (
    KEYPOINT_FIELDS,
    ROW_SCALE,
    column,
    describe,
    detect,
    linked,
    match,
    match_mirror,
)
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.manifest.merge import merge


def _field(bccd, stem: str) -> np.ndarray:
    with Image.open(bccd / "BCCD" / "JPEGImages" / f"{stem}.jpg") as image:
        return np.asarray(image.convert("RGB"))


def _decoded(data: bytes) -> np.ndarray:
    import io

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def test_keypoint_match_links_regions_to_their_field_and_recovers_the_affine():
    bccd = shared_path("bccd")
    stems = pick_fields(bccd, 8, seed=3)
    fields = {s: detect(_field(bccd, s)) for s in stems}
    rng = np.random.default_rng(3)
    own, other, angles, scales = [], [], [], []
    for k, stem in enumerate(stems):
        rgb = _field(bccd, stem)
        boxes = voc_boxes(bccd / "BCCD" / "Annotations" / f"{stem}.xml")
        for _ in range(2):
            region = Region.draw(rng, boxes, rgb.shape[1], rgb.shape[0])
            points = detect(_decoded(render(rgb, region)), ROW_SCALE)
            result = match(points, fields[stem])[None]
            own.append(result)
            for other_stem in (stems + stems)[k + 1 : k + 4]:
                other.append(match(points, fields[other_stem])[None])
            if linked(result)[0] and region.shear == 0:
                # the affine maps region pixels to field pixels: the drawn rotation, scale 1 / (zoom x half size)
                angles.append((float(column(result, "angle")[0]), region.angle))
                scales.append((float(column(result, "scale")[0]), 1 / (region.zoom * 0.5)))
    own_a, other_a = np.concatenate(own), np.concatenate(other)
    assert linked(own_a).sum() >= 10, column(own_a, "inliers")  # of 16
    assert not linked(other_a).any(), column(other_a, "inliers")
    assert len(angles) >= 5
    for found, drawn in angles:
        assert abs(found - drawn) < 2.0
    for found, drawn in scales:
        assert found == pytest.approx(drawn, rel=0.05)


def test_mirrored_regions_are_matched_from_the_keypoints_already_detected():
    """A region mirrored left-right is not linked as it is (SIFT is not mirror invariant), but its mirror image's
    keypoints, made by permuting the detected ones (``keypoints.mirrored``), link it with the drawn rotation and
    scale, a negative scale saying it is mirrored; wrong fields stay unlinked either way."""
    bccd = shared_path("bccd")
    stems = pick_fields(bccd, 6, seed=5)
    fields = {s: detect(_field(bccd, s)) for s in stems}
    rng = np.random.default_rng(5)
    plain, mirror, wrong, transforms = [], [], [], []
    for k, stem in enumerate(stems):
        rgb = _field(bccd, stem)
        boxes = voc_boxes(bccd / "BCCD" / "Annotations" / f"{stem}.xml")
        for _ in range(2):
            region = Region.draw(rng, boxes, rgb.shape[1], rgb.shape[0], mirror_share=1.0)
            assert region.mirror
            points = detect(_decoded(render(rgb, region)), ROW_SCALE)
            plain.append(match(points, fields[stem])[None])
            mirror.append(match_mirror(points, fields[stem])[None])
            for other_stem in (stems + stems)[k + 1 : k + 4]:
                wrong += [match(points, fields[other_stem])[None], match_mirror(points, fields[other_stem])[None]]
            if linked(mirror[-1])[0] and region.shear == 0:
                transforms.append((mirror[-1][0], region))
    plain_a, mirror_a, wrong_a = np.concatenate(plain), np.concatenate(mirror), np.concatenate(wrong)
    assert not linked(plain_a).any(), column(plain_a, "inliers")
    assert linked(mirror_a).sum() >= 8, column(mirror_a, "inliers")  # of 12
    assert not linked(wrong_a).any(), column(wrong_a, "inliers")
    assert len(transforms) >= 3
    for result, region in transforms:
        found = dict(zip(KEYPOINT_FIELDS, result, strict=True))
        assert found["mirror"] == 1 and found["scale"] < 0
        assert abs(found["angle"] - region.angle) < 2.0  # the mirror image is the drawn region, unflipped
        assert -found["scale"] == pytest.approx(1 / (region.zoom * 0.5), rel=0.05)
        assert describe(result).startswith("mirrored region x")


@pytest.fixture(scope="module")
def region_workspace(tmp_path_factory):
    """6 real BCCD fields (ingested as fields), 2 regions of each and 1 mirrored region of each (an imagefolder
    re-upload); returns the workspace, the plain regions' truth and the mirrored ones'."""
    from benchmarks.region import bccd_subset

    bccd = shared_path("bccd")
    work = tmp_path_factory.mktemp("regions")
    stems = pick_fields(bccd, 6, seed=11)
    bccd_subset(bccd, work / "bccd", stems)
    truth = region_copies(bccd, work / "up", stems, 2, seed=11)
    mirrored = region_copies(bccd, work / "up", stems, 1, seed=12, mirror_share=1.0)
    ws = Workspace(work / "ws")
    ingest("bccd", work / "bccd", ws, IngestOptions(workers=1))
    ingest("imagefolder", work / "up", ws, IngestOptions(workers=1))
    merge(ws)
    return ws, truth, mirrored


def test_dedup_links_regions_to_their_field_and_not_to_others(region_workspace):
    ws, truth, mirrored = region_workspace
    without_frame = dedup(ws, DedupOptions(reports=False, workers=1, regions=False)).frame
    without, without_mirrored = score(without_frame, truth), score(without_frame, mirrored)
    result = dedup(ws, DedupOptions(reports=False, workers=2))
    found, found_mirrored = score(result.frame, truth), score(result.frame, mirrored)
    assert found["linked to another field"] == 0
    assert found["different-scene pairs clustered"] == 0
    assert found["linked to own field (or a copy of it)"] >= 8, found  # of 12
    assert found["linked to own field (or a copy of it)"] > without["linked to own field (or a copy of it)"]
    # mirrored regions too, through their mirror image's keypoints (the window registration found 1 of 6)
    assert found_mirrored["linked to another field"] == 0
    assert found_mirrored["linked to own field (or a copy of it)"] >= 4, found_mirrored  # of 6
    assert (
        found_mirrored["linked to own field (or a copy of it)"]
        > without_mirrored["linked to own field (or a copy of it)"]
    )
    # distinct fields of one smear stay apart
    frame = result.frame
    fields = frame[(frame["source"] == "bccd") & (frame["status"] == "auxiliary")]
    clusters = fields["dup_cluster"].dropna()
    assert clusters.is_unique
    # a region found by its keypoints says how it sits in its field (the others by the window registration)
    regions = result.pairs[result.pairs["transform"].astype(str).str.contains(r"^(?:mirrored )?region x")]
    assert result.findings["regions of fields"] == len(regions) > 0
    assert (regions["kind"] == "part").all()
    shown = frame.loc[frame["sample_id"].isin(regions["sample_id_a"]), "dup_transform"].astype(str)
    assert shown.str.startswith("region x").any()  # the manifest says how a lone region sits in its field
    assert shown.str.startswith("mirrored region x").any()


def test_warm_rerun_takes_region_matches_from_the_cache(region_workspace):
    ws, truth, _ = region_workspace
    first = dedup(ws, DedupOptions(reports=False, workers=1))
    again = dedup(ws, DedupOptions(reports=False, workers=1))
    assert again.findings.get("rows searched for regions", 0) == 0
    assert again.findings["region searches cached"] > 0
    assert score(again.frame, truth) == score(first.frame, truth)


def test_field_index_votes_equal_a_brute_force_search(monkeypatch):
    """The faiss index (exact, and the inverted file used above ``EXACT_LIMIT``) against numpy's full distance
    matrix on real BCCD keypoints; a pickled index (what a cluster executor receives) votes the same."""
    import pickle

    from wbc_data.dedup import fieldindex
    from wbc_data.dedup.fieldindex import VOTE_RATIO, FieldIndex

    bccd = shared_path("bccd")
    stems = pick_fields(bccd, 6, seed=21)
    fields = [detect(_field(bccd, s)) for s in stems]
    rng = np.random.default_rng(21)
    rgb = _field(bccd, stems[2])
    region = Region.draw(rng, voc_boxes(bccd / "BCCD" / "Annotations" / f"{stems[2]}.xml"), rgb.shape[1], rgb.shape[0])
    query = detect(_decoded(render(rgb, region)), ROW_SCALE)

    base = np.concatenate([f.descriptors for f in fields]).astype(np.float64)
    owner = np.repeat(np.arange(len(fields)), [len(f) for f in fields])
    d2 = ((query.descriptors.astype(np.float64)[:, None, :] - base[None]) ** 2).sum(-1)
    two = np.sort(d2, axis=1)[:, :2]
    clear = two[:, 0] < VOTE_RATIO**2 * two[:, 1]
    expected = np.bincount(owner[np.argmin(d2, axis=1)[clear]], minlength=len(fields))

    exact = FieldIndex.build(fields)
    assert np.array_equal(exact.votes(query), expected)
    assert np.array_equal(pickle.loads(pickle.dumps(exact)).votes(query), expected)
    assert expected.argmax() == 2 and expected[2] > 3 * np.sort(expected)[-2]  # the region's own field

    monkeypatch.setattr(fieldindex, "EXACT_LIMIT", 100)
    inverted = FieldIndex.build(fields)
    votes = inverted.votes(query)
    assert votes.argmax() == 2 and votes[2] >= 0.8 * expected[2]


def test_leakage_audit_finds_training_regions_of_evaluation_fields(tmp_path):
    """``--against``: training rows that are zoomed, rotated regions of an evaluation set's real BCCD fields leak
    into those fields (the keypoint stage runs in the audit too), and into no other field."""
    from benchmarks.region import bccd_subset

    bccd = shared_path("bccd")
    stems = pick_fields(bccd, 4, seed=5)
    bccd_subset(bccd, tmp_path / "bccd", stems)
    truth = region_copies(bccd, tmp_path / "up", stems, 2, seed=5)
    evaluation = Workspace(tmp_path / "eval")
    held_out = ingest("bccd", tmp_path / "bccd", evaluation, IngestOptions(workers=1)).manifest_path
    ws = Workspace(tmp_path / "ws")
    ingest("imagefolder", tmp_path / "up", ws, IngestOptions(workers=1))
    merge(ws)

    def leaks(regions: bool) -> dict[str, str]:
        frame = dedup(ws, DedupOptions(reports=False, workers=1, against=held_out, regions=regions)).frame
        found = frame.dropna(subset=["leak_match"])
        return dict(zip(found["source_path"], found["leak_match"], strict=True))

    without, found = leaks(False), leaks(True)
    field_ids = {f"{stem}.jpg": f"bccd:BCCD/JPEGImages/{stem}.jpg" for stem in stems}
    # the own field or one of its WBC crops (``<field id>#wbc0``), never another field
    wrong = {path: match for path, match in found.items() if match.split("#")[0] != field_ids[truth[path]]}
    assert not wrong, (wrong, found)
    assert len(found) >= 6 and len(found) > len(without), (found, without)  # of 8 regions
