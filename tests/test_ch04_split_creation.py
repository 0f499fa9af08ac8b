"""Chapter 04 (split creation): executed with papermill (or `make execute`'s copy); its figures checked against
what they describe, derived here another way: the vendored metadata read row by row, the released and the
written task folders read from disk, touching tiles found by brute force, statistics read from the files."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest

from s12ls_utils import io, reference, schema, splits, tasks
from s12ls_utils.catalog import build_catalog

pytestmark = pytest.mark.chapter

ROOT = Path(__file__).resolve().parents[1]
STEM = "04-split-creation"
SHORT = {
    "S12LS-LD": "ld",
    "S12LS-AD": "ad",
    "S12LS-LD-blocked": "ld_blocked",
    "S12LS-AD-blocked": "ad_blocked",
}
RELEASED = ROOT / "data/reference/tasks"
TOUCH_M = 1.5 * 1280  # 8-neighbours: centres at most 1.5 tile widths apart in x and in y


@pytest.fixture(scope="module")
def chapter(run_chapter):
    return run_chapter(STEM)


@pytest.fixture(scope="module")
def patches() -> pd.DataFrame:
    return reference.patches()


def _task_dir(ch, name: str) -> Path:
    p = Path(ch.results[f"task_dir_{SHORT[name]}"])
    return p if p.is_absolute() else ROOT / p


def _touching(xy_a: pd.DataFrame, xy_b: pd.DataFrame) -> np.ndarray:
    """Which rows of ``xy_a`` (epsg, x, y) have a row of ``xy_b`` among their 8-neighbours: every pair
    compared, no tile graph."""
    hit = np.zeros(len(xy_a), bool)
    for epsg, a in xy_a.groupby("epsg"):
        b = xy_b[xy_b["epsg"] == epsg]
        if b.empty:
            continue
        dx = np.abs(a["x"].to_numpy()[:, None] - b["x"].to_numpy()[None])
        dy = np.abs(a["y"].to_numpy()[:, None] - b["y"].to_numpy()[None])
        hit[xy_a.index.get_indexer(a.index)] = ((dx <= TOUCH_M) & (dy <= TOUCH_M)).any(axis=1)
    return hit


def _published(patches: pd.DataFrame, task: str, scope: str) -> pd.DataFrame:
    """The rows of one published split file, read from the metadata's own split columns."""
    sensor, col = ("s2", f"split_{task}_aligned") if scope == "aligned" else (scope, f"split_{task}")
    rows = patches[(patches["sensor"] == sensor) & patches[col].notna()]
    return rows.assign(split=rows[col]).reset_index(drop=True)


def test_chapter_runs_and_glue_exists(chapter):
    assert not chapter.errors()
    referenced = chapter.referenced_glue()
    assert referenced, "the chapter text glues no figures"
    assert referenced <= chapter.glued(), f"glue names missing: {referenced - chapter.glued()}"


def test_published_counts_and_the_reproduced_split(chapter, patches):
    res = chapter.results
    for task, short in (("S12LS-LD", "ld"), ("S12LS-AD", "ad")):
        for scope in reference.SCOPES:
            assert res[f"real_{short}_{scope}"] == len(_published(patches, task, scope)), (task, scope)
    assert res["repro_files"] == 8 and res["repro_differ"] == 0
    assert res["repro_patches"] == sum(
        len(_published(patches, t, s)) for t in reference.TASKS for s in reference.SCOPES
    )
    ld = _published(patches, "S12LS-LD", "s2")["region"].astype(str).value_counts()
    assert res["real_ld_top_region"] == ld.index[0]
    assert res["real_ld_top_share"] == pytest.approx(100 * ld.iloc[0] / ld.sum())


def test_published_leakage_against_brute_force(chapter, patches):
    """The share of test tiles with a training tile among their 8-neighbours, by comparing every test tile
    with every training tile (no tile graph)."""
    res = chapter.results
    for task, short in (("S12LS-LD", "ld"), ("S12LS-AD", "ad")):
        for scope in reference.SCOPES:
            rows = _published(patches, task, scope).dropna(subset=["x"])
            test, train = rows[rows["split"] == "test"], rows[rows["split"] == "train"]
            share = 100 * _touching(test.reset_index(drop=True), train).mean()
            assert res[f"leak_pub_{short}_{scope}"] == pytest.approx(share), (task, scope)
    assert res["leak_pub_ld_s2"] > 90 and res["leak_pub_overlap"] == 0
    s2_ad = _published(patches, "S12LS-AD", "s2")
    assert res["n_unlocated"] == int(s2_ad["x"].isna().sum()) == res["blk_ad_unlocated"]
    assert res["ad_s2_test_unlocated"] == int((s2_ad["x"].isna() & (s2_ad["split"] == "test")).sum())
    assert res["window_pairs_published"] > 0 and res["window_pairs_blocked"] == 0


def test_published_sensors_disagree(chapter, patches):
    s2 = _published(patches, "S12LS-LD", "s2").set_index("id")["split"]
    s1 = _published(patches, "S12LS-LD", "s1asc").set_index("id")["split"]
    both = s2.index.intersection(s1.index)
    disagree = int(((s2[both] == "test") & (s1[both] == "train")).sum())
    assert chapter.results["pub_ld_s2_test_s1asc_train"] == disagree > 0


def test_blocked_split_against_the_released_folders(chapter, patches):
    """The chapter's blocked splits are the released ones (tiles per split read from disk, landslide pixels
    per tile from the metadata), and no released test tile touches a train or validation tile."""
    res = chapter.results
    bal = pd.DataFrame(res["blocked_balance"])
    after = bal[bal["balance"] == "after"]
    assert after["ok"].all() and len(after) == 24 == res["blk_rows_ok_after"]
    assert res["blk_rows_ok_before"] < res["blk_rows_before"]  # the greedy assignment alone misses the bounds
    assert res["blk_min_kept_after"] >= 88 and res["blk_min_kept_after"] > res["blk_min_kept_before"]
    assert res["blk_touching"] == 0 and res["blk_overlapping"] == 0
    for name in ("S12LS-LD-blocked", "S12LS-AD-blocked"):
        released = tasks.load_task(RELEASED / name, warn_missing=False)
        for sensor in schema.SENSORS:
            rows = after[(after["task"] == name) & (after["scope"] == sensor)].set_index("split")
            meta = patches[patches["sensor"] == sensor].set_index("id")
            keys = {s: [e["id"] for e in released.splits[sensor][s]] for s in splits.SPLITS}
            whole = meta.loc[sum(keys.values(), []), "n_positive"].mean()
            for s in splits.SPLITS:
                assert rows.loc[s, "tiles"] == len(keys[s]), (name, sensor, s)
                assert rows.loc[s, "pixels_ratio"] == pytest.approx(
                    meta.loc[keys[s], "n_positive"].mean() / whole
                )
            test = meta.loc[keys["test"]].reset_index(drop=True)
            assert not _touching(test, meta.loc[keys["train"] + keys["val"]]).any(), (name, sensor)
        short = SHORT[name.removesuffix("-blocked")]
        s2_total = sum(len(released.splits["s2"][s]) for s in splits.SPLITS)
        assert res[f"blk_{short}_s2_kept"] == pytest.approx(100 * s2_total / res[f"real_{short}_s2"])
    n_regions = _published(patches, "S12LS-LD", "s2")["region"].nunique()
    assert res["blk_ld_regions_in_test"] == res["blk_ld_regions"] == n_regions
    assert res["blk_ld_dropped_train"] > 0


def test_region_folds_against_the_released_folders(chapter, patches):
    """Each released fold tests exactly the LD Sentinel-2 tiles of the regions the chapter lists for it."""
    res = chapter.results
    ld = _published(patches, "S12LS-LD", "s2")
    assert res["n_folds"] == len(reference.region_folds()) == len(res["folds"])
    for row in res["folds"]:
        task = tasks.load_task(RELEASED / "S12LS-LD-regions" / row["fold"], warn_missing=False)
        test = {e["id"] for e in task.splits["s2"]["test"]}
        regions = row["test regions"].split(", ")
        assert test == set(ld.loc[ld["region"].astype(str).isin(regions), "id"]), row["fold"]
        assert row["test tiles"] == len(test)
        assert row["share (%)"] == pytest.approx(100 * len(test) / len(ld))
    files = [p for p in RELEASED.rglob("*") if p.is_file()]
    assert res["n_released_files"] == len(files)
    assert "s2/norm.json" in res["released_missing"]


def test_counts_match_the_selection_and_the_files(chapter):
    res = chapter.results
    catalog = build_catalog(chapter.data_dir, progress=False)
    for name, short in SHORT.items():
        sel = splits.select(catalog, tasks.load_config(name))
        task = tasks.load_task(_task_dir(chapter, name))
        counts = task.counts().set_index("scope")
        for sensor in schema.SENSORS:
            n = len(sel[sensor])
            parts = [res[f"{short}_{sensor}_{s}"] for s in splits.SPLITS]
            assert parts == [int(counts.loc[sensor, s]) for s in splits.SPLITS]
            if name.endswith("-blocked"):  # the buffer leaves the task, nothing else does
                assert sum(parts) <= n
            else:
                assert sum(parts) == n == res[f"{short}_{sensor}_total"]
            keys = [e["id"] for s in splits.SPLITS for e in task.splits[sensor][s]]
            assert set(keys) <= set(sel[sensor].key.astype(str)) and len(set(keys)) == len(keys)
            if name.endswith("-blocked"):  # no test tile touches a train or validation tile
                xy = catalog[catalog["sensor"] == sensor].rename(columns={"center_x": "x", "center_y": "y"})
                xy = xy.set_index("key")
                ids = {s: [e["id"] for e in task.splits[sensor][s]] for s in splits.SPLITS}
                test = xy.loc[ids["test"]].reset_index(drop=True)
                assert not _touching(test, xy.loc[ids["train"] + ids["val"]]).any(), (name, sensor)
        if name in ("S12LS-LD", "S12LS-AD"):  # the published presets' files: the published algorithm's split
            entries = [{**e, "split": s} for s in splits.SPLITS for e in task.splits["s2"][s]]
            frame = pd.DataFrame(
                {"file": [e["s2"] for e in entries], "n_positive": [e["pixel_annotated"] for e in entries]}
            )
            assert splits.reference_split(frame).tolist() == [e["split"] for e in entries]
    assert res["files_s2"] == int((catalog["sensor"] == "s2").sum())


def test_written_files_and_statistics(chapter):
    """The task folders hold every file, and the S12LS-LD mean of B04 is the mean of the clipped training
    pixels, read here from the files with netCDF4."""
    res = chapter.results
    n_files = 0
    for name in SHORT:
        root = _task_dir(chapter, name)
        assert root.name == name and root.is_dir()
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        n_files += len(files)
        assert "config.json" in files and "splits_aligned.json" in files and "norm_aligned.json" in files
        for s in schema.SENSORS:
            assert {f"{s}/splits.json", f"{s}/norm.json", f"{s}/patch_locations.geojson"} <= set(files)
        cfg = json.loads((root / "config.json").read_text())
        assert cfg["name"] == name and cfg["norm"]["s1_unit"] == "dB"
        assert cfg["method"] == tasks.load_config(name).method
        assert not list(root.parent.glob(f".{name}.*")), "temporary folders left behind"
    assert res["n_task_files"] == n_files
    task = tasks.load_task(_task_dir(chapter, "S12LS-LD"))
    total = count = 0.0
    for path in task.files("s2", "train"):
        with netCDF4.Dataset(path) as ds:
            ds.set_auto_mask(False)
            var, time = ds["B04"], ds["time"]
            b04 = np.moveaxis(var[:].astype("float64"), var.dimensions.index("time"), 0)
            dates = netCDF4.num2date(time[:], time.units, only_use_cftime_datetimes=False)
            fill = getattr(var, "_FillValue", None)
        if io.file_release(path) == "raw":  # the +1000 of dates from 2022-01-25 comes off first
            late = np.array([d >= datetime(2022, 1, 25) for d in dates])
            b04[late] = np.maximum(b04[late] - 1000, 0)
        b04 = np.clip(b04[b04 != fill] if fill is not None else b04, 0, 10000)
        total, count = total + b04.sum(), count + b04.size
    assert res["norm_ld_s2_B04_mean"] == pytest.approx(total / count, rel=1e-6)
    assert 1000 < res["norm_ld_s2_B08_mean"] < 8000
    assert -25 < res["norm_ld_s1asc_VV_mean"] < 0 and res["s1_unit"] == "dB"
