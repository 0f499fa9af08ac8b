"""Execute chapter 02 (or reuse `make execute`'s copy) and check the figures it recorded."""

from __future__ import annotations

import pytest

from s12ls_utils import schema
from s12ls_utils.sample import generate

pytestmark = pytest.mark.chapter

CHAPTER = "02-temporal-signatures"
VEGETATION_LOSS = {"NDVI", "NBR", "NDMI"}
S1_FEATURES = {"VV_dB", "VH_dB", "VH_VV_dB"}


@pytest.fixture(scope="module")
def ch(run_chapter):
    return run_chapter(CHAPTER)


def test_counts_match_the_sample(ch):
    res = ch.results
    files = generate.load_manifest(ch.data_dir)["files"]
    for s in schema.SENSORS:
        assert res[f"n_patches_{s}"] == sum(f["sensor"] == s for f in files)
    assert res["n_patches_total"] == len(files)
    assert res["n_errors"] == 0
    assert res["n_non_annotated"] == sum(not f["annotated"] for f in files)
    assert 0 < res["n_patches_with_change"] <= res["n_patches_total"]
    assert res["signature_seconds"] > 0  # how long is a benchmark's question (benchmarks/), not a test's


def test_event_outside_the_series_agrees_with_chapter_01(ch, run_chapter):
    """Annotated patches with their event outside the series: one figure, the same in chapters 01 and 02,
    and the generator's record; non-annotated patches placed with their region's date are counted apart."""
    files = generate.load_manifest(ch.data_dir)["files"]
    outside = sum(f["annotated"] and f["event_outside_series"] in ("before", "after") for f in files)
    assert ch.results["n_event_outside_annotated"] == outside > 0
    assert run_chapter("01-data-exploration").results["n_event_outside_annotated"] == outside
    assert ch.results["n_region_date_outside"] >= 0


def test_dark_area_share_of_landslide_pixels(ch):
    """What class 2 (dark area) holds of the landslide pixel-dates, counted here from the files."""
    import numpy as np

    from s12ls_utils.io import open_patch

    assert ch.results["scl_bad_classes"] == sorted(schema.SCL_BAD)
    n_dark = n_all = 0
    for f in generate.load_manifest(ch.data_dir)["files"]:
        if f["sensor"] != "s2" or not f["n_positive"]:
            continue
        with open_patch(ch.data_dir / f["path"]) as ds:
            mask = ds["MASK"].values[0].astype(bool)
            scl = ds["SCL"].values[:, mask]
        n_dark += int((scl == 2).sum())
        n_all += scl.size
    assert ch.results["dark_area_landslide_pct"] == pytest.approx(100 * n_dark / n_all)
    assert 0 < ch.results["dark_area_landslide_pct"] < ch.results["unusable_landslide_pct"] < 100
    assert np.isfinite(ch.results["dark_area_ring_pct"]) and np.isfinite(ch.results["dark_area_rest_pct"])


def test_ndvi_drops_inside_landslides_not_in_the_ring(ch):
    res = ch.results
    assert res["ndvi_change_landslide"] < -0.2
    assert abs(res["ndvi_change_ring"]) < 0.1
    assert abs(res["ndvi_change_rest"]) < 0.1


def test_separability_table(ch):
    table = ch.results["separability"]
    assert table and all({"sensor", "feature", "auc"} <= set(row) for row in table)
    aucs = [row["auc"] for row in table]
    assert aucs == sorted(aucs, reverse=True)
    assert all(0 <= a <= 1 for a in aucs)
    # directions fixed from physics before looking, never chosen from the data
    from s12ls_utils.signatures import PHYSICS_DIRECTION

    assert all(row["direction"] == PHYSICS_DIRECTION[row["feature"]] for row in table)
    # intervals over patches around every AUC
    assert all(row["auc_low"] <= row["auc"] <= row["auc_high"] for row in table)
    assert ch.results["n_boot"] >= 100
    s2_veg = [row["auc"] for row in table if row["sensor"] == "s2" and row["feature"] in VEGETATION_LOSS]
    assert s2_veg and max(s2_veg) > 0.7
    for sensor in schema.S1_SENSORS:
        s1 = {row["feature"]: row["auc"] for row in table if row["sensor"] == sensor}
        assert set(s1) == S1_FEATURES, f"{sensor}: {sorted(s1)}"
        assert all(isinstance(a, float) for a in s1.values())
    # the recorded top feature per sensor is the table's first row for that sensor
    for sensor in schema.SENSORS:
        first = next(row for row in table if row["sensor"] == sensor)
        assert ch.results[f"top_feature_{sensor}"] == first["feature"]
        assert ch.results[f"top_auc_{sensor}"] == pytest.approx(first["auc"])
        assert ch.results[f"top_auc_{sensor}_low"] == pytest.approx(first["auc_low"])


def test_separability_per_region(ch):
    rows = ch.results["separability_regions"]
    top = {s: ch.results[f"top_feature_{s}"] for s in schema.SENSORS}
    assert rows and all(row["feature"] == top[row["sensor"]] for row in rows)
    assert len({row["region"] for row in rows}) >= 2
    for row in rows:
        assert row["n_patches"] >= 1
        if row["n_patches"] == 1:  # one patch: no interval over patches
            assert row["auc_low"] is None
        elif row["auc_low"] is not None:
            assert row["auc_low"] <= row["auc_high"]


def test_interactive_figures_are_embedded(ch):
    """The HoloViews outputs carry their data (a static page needs no kernel)."""
    html = [
        o["data"]["text/html"]
        for c in ch.nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "application/vnd.holoviews_exec.v0+json" in o.get("data", {})
    ]
    assert len(html) >= 6  # groups, one patch, signatures, changes, separability, gallery
    # the signature plot holds one state per sensor and feature (and region)
    sig_html = next(h for h in html if "median and IQR across patches" in h)
    for signal in ("S2 NDVI", "S2 NBR", "S2 BSI", "S1 asc. VH_VV_dB", "S1 desc. VV_dB"):
        assert f"{signal}, all regions: median and IQR across patches" in sig_html, signal
    assert ch.results["gallery_keys"] and len(ch.results["gallery_keys"]) <= 3
