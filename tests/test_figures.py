"""The tables behind the shared figures (the figures themselves are drawn in the chapter and module tests):
sensor combinations by annotation and by region, patch files per known issue, and the training-curve panels."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from s12ls_utils import figures, schema
from s12ls_utils.alignment import availability, combination_table
from s12ls_utils.catalog import build_catalog
from s12ls_utils.known_issues import ISSUES, files_per_issue


@pytest.fixture(scope="module", autouse=True)
def bokeh():
    import holoviews as hv

    hv.extension("bokeh")


@pytest.fixture(scope="module")
def avail(small_sample) -> pd.DataFrame:
    return availability(build_catalog(small_sample, progress=False, use_cache=False, workers=1))


def test_upset_table_counts_every_location_once(avail):
    """Against a count of the availability rows themselves, per combination and region."""
    grid = combination_table(avail, "region")
    assert grid.to_numpy().sum() == len(avail) and list(grid.columns) == sorted(avail["region"].unique())
    for (combo, region), n in avail.groupby(["combination", "region"]).size().items():
        assert grid.loc[combo, region] == n
    assert set(grid.index) == set(avail["combination"])


def test_upset_and_heatmap_tables_agree(avail):
    combos, by_status = figures.upset_table(avail)
    assert list(by_status.columns) == ["annotated", "not annotated"] and combos == list(by_status.index)
    annotated = avail[avail["annotated"]].groupby("combination").size()
    assert by_status["annotated"].to_dict() == annotated.reindex(combos, fill_value=0).to_dict()
    heat = figures.availability_heatmap(avail).get(0).dframe()  # the heat map layer: region × combination
    assert heat["locations"].sum() == len(avail)


def test_files_per_issue_counts_distinct_files_and_leaves_task_folders_out():
    files = pd.DataFrame(
        [
            {"issue": "usa_token", "sensor": "s2", "path": "a.nc"},
            {"issue": "usa_token", "sensor": "s2", "path": "a.nc"},  # one file, listed twice
            {"issue": "usa_token", "sensor": "s1asc", "path": "b.nc"},
            {"issue": "ad_annotated_only", "sensor": "s2", "path": "tasks/S12LS-AD/s2/splits.json"},
        ]
    )
    table = files_per_issue(SimpleNamespace(files=files))
    assert list(table.columns) == list(schema.SENSORS)
    assert ISSUES["ad_annotated_only"].title not in table.index and len(table) == len(ISSUES) - 1
    assert table.loc[ISSUES["usa_token"].title].to_dict() == {"s1asc": 1, "s1dsc": 0, "s2": 1}
    assert table.drop(index=ISSUES["usa_token"].title).to_numpy().sum() == 0


def test_training_curves_draw_each_history_column():
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 2 / e, "val_f1": e / 10} for e in (1, 2, 3)]
    loss, metric = figures.training_curves(history)
    assert [c.label for c in loss] == ["train", "validation"]
    assert [c.label for c in metric] == ["F1 at 0.5", "F1 at the best threshold", "IoU at 0.5"]
    assert loss.get(1).dimension_values("val_loss").tolist() == [2.0, 1.0, 2 / 3]
    assert metric.opts.get().kwargs["ylim"] == (0, 1)


def test_patch_viewer_declares_the_ranges_its_frames_hold(small_sample):
    # the viewer gives its ranges up front (the embedding then skips a pass over every frame per state): they
    # must be the data's own, the bounds on x and y, the DEM's extremes, the S1 windows that clim draws
    import holoviews as hv
    import numpy as np

    cat = build_catalog(small_sample, progress=False, use_cache=False, workers=1)
    key = cat.groupby("key")["sensor"].nunique().idxmax()  # a location with every sensor it can have
    viewer = figures.patch_viewer(small_sample, key, embed=False)
    images = [el for el in viewer.traverse(lambda x: x, [hv.Image]) if not isinstance(el, hv.RGB)]
    assert images
    n = schema.PATCH_SIZE
    for el in viewer.traverse(lambda x: x, [hv.Element]):
        for d in ("x", "y"):
            assert el.get_dimension(d).range == (0.0, float(n))
            lo, hi = el.range(d, dimension_range=False)
            assert not (lo < 0 or hi > n)  # NaN: an empty outline (no landslide)
    for el in images:
        value = el.vdims[0]
        lo, hi = el.range(value, dimension_range=False)
        assert el.bounds.lbrt() == (0, 0, n, n)  # the axes span the bounds, as declared
        if value.name == "elevation (m)":
            assert value.range == (lo, hi)
        else:
            assert value.range == figures.images.DB_RANGES[value.name.split()[0]]
            assert el.opts.get().kwargs["clim"] == value.range
    assert np.isfinite([v for el in images for v in el.vdims[0].range]).all()


def test_split_footprints_join_the_centres_of_each_leaking_pair_in_the_region():
    """Three touching tiles in one region and one elsewhere: a pair with a patch outside the region is not drawn,
    the other joins the two footprint centres (km from the region's first centre)."""
    frame = pd.DataFrame(
        {
            "key": ["a", "b", "c", "far"],
            "region": ["italy", "italy", "italy", "peru"],
            "center_x": [500_000.0, 501_280.0, 502_560.0, 0.0],
            "center_y": [4_000_000.0, 4_000_000.0, 4_001_280.0, 0.0],
            "split": ["train", "test", "dropped", "train"],
            "epsg": 32632,
        }
    )
    leaks = pd.DataFrame({"key_a": ["a", "b"], "key_b": ["b", "far"]})
    overlay = figures.split_footprints(frame, "italy", leaks=leaks)
    segs = overlay.get(len(overlay) - 1)
    assert segs.label == "leaking pair" and [row.tolist() for row in segs.array()] == [[0.0, 0.0, 1.28, 0.0]]
    assert [layer.label for layer in overlay][:-1] == ["train", "test", "dropped"]
