"""Execute the chapters (or reuse `make execute`'s copies) and check the figures they recorded.

The ``run_chapter`` fixture (conftest.py) gives the executed notebook, its recorded results and the
data folder it ran on. Chapters 02+ have their own test modules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import PUBLISHED_TOTALS, UNLOCATED_S2

from s12ls_utils import reference, schema
from s12ls_utils.sample import generate

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.chapter


def test_ch01_data_exploration(run_chapter):
    ch = run_chapter("01-data-exploration")
    res = ch.results
    man = generate.load_manifest(ch.data_dir)
    files = man["files"]
    # counts equal the generator's own record
    for s in schema.SENSORS:
        assert res[f"n_files_{s}"] == sum(f["sensor"] == s for f in files)
    assert res["n_files_total"] == len(files)
    keys = {f["key"] for f in files}
    assert res["n_locations"] == len(keys)
    assert res["n_regions"] == len({f["region"] for f in files}) >= 4
    assert res["n_annotated"] == sum(f["annotated"] for f in files)
    assert res["n_errors"] == 0
    assert res["n_landslides"] == man["n_landslides"]
    # class balance: positives once per location
    per_key = {f["key"]: f["n_positive"] for f in files}
    expected = sum(per_key.values()) / (len(per_key) * schema.PATCH_SIZE**2)
    assert res["positive_fraction"] == pytest.approx(expected, rel=1e-9)
    assert 0.005 < res["positive_fraction"] < 0.1
    assert res["positive_fraction_annotated"] > res["positive_fraction"]
    # sizes from the inventory: median area within the generator's range (3 px .. 1500 px)
    assert 300 <= res["median_area_m2"] <= 150_000
    s2_clear = [sum(b < 0.1 for b in f["bad_fraction"]) for f in files if f["sensor"] == "s2"]
    assert res["s2_median_clear_dates"] == pytest.approx(float(np.median(s2_clear)))
    assert res["viewer_key"] in keys
    # the showcase is a location the published S12LS-LD task keeps: annotated, >= 50 landslide pixels, not
    # usa_alaska or nepal
    shown = [f for f in files if f["key"] == res["viewer_key"]]
    assert all(f["annotated"] and f["n_positive"] >= 50 for f in shown)
    assert shown[0]["region"] not in ("usa_alaska", "nepal")
    # one class balance, per location
    annotated_keys = {f["key"] for f in files if f["annotated"]}
    assert res["n_annotated_locations"] == len(annotated_keys)
    assert res["annotated_share"] == pytest.approx(len(annotated_keys) / len(keys))
    # annotated patches (files, every sensor) whose event lies outside their series, as the generator wrote them
    outside = sum(f["annotated"] and f["event_outside_series"] in ("before", "after") for f in files)
    assert res["n_event_outside_annotated"] == outside > 0


def test_ch01_published_dataset_matches_the_reference(run_chapter):
    """The section on the real dataset: its figures come from the vendored metadata, whatever the sample."""
    res = run_chapter("01-data-exploration").results
    published = reference.patches()
    ad = reference.counts().query("task == 'S12LS-AD'").set_index("scope")["total"]
    # counts per sensor equal the published S12LS-AD totals (the split files' counts)
    for sensor in ("s2", "s1asc", "s1dsc"):
        assert res[f"real_n_{sensor}"] == res[f"real_ad_published_{sensor}"] == int(ad[sensor])
    assert res["real_counts_match_published"] is True
    assert res["real_n_patches"] == len(published)
    assert res["real_n_regions"] == published["region"].nunique()
    # locations: the S2 patches without a published position are the only unlocated ones
    assert res["real_n_locations"] == published["id"].nunique()
    unlocated_s2 = int((published["sensor"].eq("s2") & published["lon"].isna()).sum())
    assert res["real_n_s2_unlocated"] == unlocated_s2 == UNLOCATED_S2
    assert res["real_n_locations"] - res["real_n_located"] == unlocated_s2
    # annotated := n_positive > 0, once per location
    annotated = published.groupby("id")["n_positive"].max().gt(0)
    assert res["real_n_annotated_locations"] == int(annotated.sum())
    assert 0 < res["real_annotated_pct"] < 100
    assert res["real_annotated_pct"] == pytest.approx(100 * annotated.mean(), abs=0.05)
    assert res["real_annotated_min_pct"] <= res["real_annotated_pct"] <= res["real_annotated_max_pct"]
    assert {res["real_annotated_min_region"], res["real_annotated_max_region"]} <= set(published["region"])
    assert res["real_largest_region"] == published.groupby("id")["region"].first().value_counts().index[0]
    # S12LS-LD landslide pixels (S2 files)
    ld = reference.split_frame("S12LS-LD", "s2")["n_positive"]
    assert res["real_ld_n_s2"] == len(ld) == PUBLISHED_TOTALS["S12LS-LD"]["s2"]
    assert res["real_ld_px_min"] == int(ld.min()) == 50 == res["real_ld_threshold"]
    assert res["real_ld_px_max"] == int(ld.max()) == 8_911
    assert res["real_ld_px_median"] == pytest.approx(float(ld.median()))
    assert res["real_ld_px_mean"] == pytest.approx(float(ld.mean()))
    assert res["real_ld_px_min"] < res["real_ld_px_median"] < res["real_ld_px_mean"] < res["real_ld_px_max"]
    assert res["real_ld_excluded"] == "usa_alaska and nepal"
    assert res["reference_commit"] == reference.source()["commit"]


def test_ch01_shares_read_as_percentages(run_chapter):
    """Fractions that read as shares are glued as percentages ("2.9 %"), recorded as fractions."""
    ch = run_chapter("01-data-exploration")
    for name in ("positive_fraction", "positive_fraction_annotated", "annotated_share", "share_below_10px"):
        text = ch.glued_text(name)
        assert text.endswith(" %"), (name, text)
        shown = float(text[:-2])
        assert shown == pytest.approx(100 * ch.results[name], abs=0.51), (name, text)


def test_ch01_static_figures_are_drawn(run_chapter):
    """Every cell captioned as a static figure put out a PNG (the map and histogram of the real dataset,
    and the sample's filmstrip)."""
    ch = run_chapter("01-data-exploration")
    static = [c for c in ch.nb.cells if c.cell_type == "code" and "figure" in c.metadata.get("mystnb", {})]
    names = [c.metadata["mystnb"]["figure"]["name"] for c in static]
    assert len(names) == len(set(names)) >= 3
    for c in static:
        assert any("image/png" in o.get("data", {}) for o in c.outputs), c.metadata["mystnb"]["figure"][
            "name"
        ]
