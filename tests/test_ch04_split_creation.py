"""Chapter 04 (split creation): executed with papermill (or `make execute`'s copy); its figures checked."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from s12ls_utils import reference, schema, splits, tasks
from s12ls_utils.catalog import build_catalog

pytestmark = pytest.mark.chapter

ROOT = Path(__file__).resolve().parents[1]
STEM = "04-split-creation"
PUBLISHED = {"S12LS-LD": "ld", "S12LS-AD": "ad"}
TASKS = {**PUBLISHED, "S12LS-LD-blocked": "ld_blocked", "S12LS-AD-blocked": "ad_blocked"}


@pytest.fixture(scope="module")
def chapter(run_chapter):
    return run_chapter(STEM)


def _task_dir(ch, name: str) -> Path:
    p = Path(ch.results[f"task_dir_{TASKS[name]}"])
    return p if p.is_absolute() else ROOT / p


def test_chapter_runs_and_glue_exists(chapter):
    assert not chapter.errors()
    referenced = chapter.referenced_glue()
    assert referenced, "the chapter text glues no figures"
    assert referenced <= chapter.glued(), f"glue names missing: {referenced - chapter.glued()}"


def test_real_metadata_figures(chapter):
    """The chapter's real-data figures are the published ones, and the published splits reproduce."""
    res = chapter.results
    published = {"ld": (4988, 4793, 4666, 4392), "ad": (13628, 13306, 12622, 11719)}
    for short, totals in published.items():
        assert tuple(res[f"real_{short}_{s}"] for s in ("s2", "s1asc", "s1dsc", "aligned")) == totals
    assert res["repro_files"] == 8 and res["repro_differ"] == 0
    assert res["repro_patches"] == sum(sum(v) for v in published.values())
    assert res["real_ld_top_region"] == "italy" and 30 < res["real_ld_top_share"] < 40
    assert res["old_format"] == "old" and res["old_s1asc_VH_mean"] < res["old_s1asc_VV_mean"]


def test_published_leakage_is_measured_on_the_real_geometry(chapter):
    res = chapter.results
    cat = reference.catalog()
    for row in res["published_leakage"]:
        task, scope = row["task"], row["scope"]
        pub = reference.split_frame(task, scope).set_index("id")["split"]
        sensor = "s2" if scope == "aligned" else scope
        t = splits.tile_leakage(pub, cat[cat["sensor"] == sensor]).set_index(["split", "other"])
        assert row["test tiles touching train"] == t.loc[("test", "train"), "tiles_touching"]
        assert res[f"leak_pub_{PUBLISHED[task]}_{scope}"] == pytest.approx(row["share (%)"])
    assert len(res["published_leakage"]) == 8
    assert res["leak_pub_ld_s2"] > 90 and res["leak_pub_ad_s1asc"] > 85
    assert res["window_pairs_published"] > 0 and res["window_pairs_blocked"] == 0


def test_blocked_split_figures(chapter):
    """The chapter's balance table before and after the search, checked against the released folders read
    from disk (tiles per split) and the vendored metadata (landslide pixels per tile), not the record."""
    res = chapter.results
    assert res["blk_touching"] == 0 and res["blk_overlapping"] == 0
    bal = pd.DataFrame(res["blocked_balance"])
    after = bal[bal["balance"] == "after"]
    assert res["blk_all_ok"] and after["ok"].all() and len(after) == 24 == res["blk_rows"]
    assert res["blk_ok_before"] < res["blk_rows"]  # the greedy assignment alone misses the bounds
    assert res["blk_min_kept"] >= 88 and res["blk_min_kept"] > res["blk_min_kept_before"]
    cat = reference.catalog()
    for name in ("S12LS-LD-blocked", "S12LS-AD-blocked"):
        released = tasks.load_task(ROOT / "data/reference/tasks" / name)
        for sensor in schema.SENSORS:
            rows = after[(after["task"] == name) & (after["scope"] == sensor)].set_index("split")
            px = cat[cat["sensor"] == sensor].set_index("key")["n_positive"]
            keys = {s: [e["id"] for e in released.splits[sensor][s]] for s in splits.SPLITS}
            whole = px[sum(keys.values(), [])].mean()
            for s in splits.SPLITS:
                assert rows.loc[s, "tiles"] == len(keys[s]), (name, sensor, s)
                assert rows.loc[s, "pixels_ratio"] == pytest.approx(px[keys[s]].mean() / whole), (name, s)
    assert res["blk_ld_regions_in_test"] == res["blk_ld_regions"]
    assert res["blk_ld_dropped_train"] > 0 and res["blk_ad_unlocated"] == 236
    assert res["ad_s2_test_unlocated"] == 52 and res["ad_s2_test_located"] == 2726 - 52
    assert res["pub_ld_s2_test_s1asc_train"] == 473
    assert res["n_folds"] == 6 and {f["fold"] for f in res["folds"]} == set(reference.region_folds())
    europe = next(f for f in res["folds"] if f["fold"] == "europe")
    assert europe["share of LD s2 (%)"] == pytest.approx(100 * europe["LD s2 test tiles"] / 4988, abs=0.05)


def test_counts_match_the_selection_and_the_files(chapter):
    res = chapter.results
    catalog = build_catalog(chapter.data_dir, progress=False)
    for name, short in TASKS.items():
        sel = splits.select(catalog, tasks.load_config(name))
        task = tasks.load_task(_task_dir(chapter, name))
        counts = task.counts().set_index("scope")
        for sensor in schema.SENSORS:
            n = len(sel[sensor])
            parts = [res[f"{short}_{sensor}_{s}"] for s in splits.SPLITS]
            assert parts == [int(counts.loc[sensor, s]) for s in splits.SPLITS]
            assert n == res[f"{short}_selected_{sensor}"]
            if name.endswith("-blocked"):  # the buffer leaves the task, nothing else does
                assert sum(parts) <= n
            else:
                assert sum(parts) == n == res[f"{short}_{sensor}_total"]
            keys = [e["id"] for s in splits.SPLITS for e in task.splits[sensor][s]]
            assert set(keys) <= set(sel[sensor].key.astype(str)) and len(set(keys)) == len(keys)
        assert res["counts"][name]["s2"] == {s: res[f"{short}_s2_{s}"] for s in splits.SPLITS}
        if name in PUBLISHED:  # the published presets' files are the published algorithm's assignment
            entries = [{**e, "split": s} for s in splits.SPLITS for e in task.splits["s2"][s]]
            frame = pd.DataFrame(
                {"file": [e["s2"] for e in entries], "n_positive": [e["pixel_annotated"] for e in entries]}
            )
            assert splits.reference_split(frame).tolist() == [e["split"] for e in entries]


def test_written_files_and_statistics(chapter):
    res = chapter.results
    n_files = 0
    for name in TASKS:
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
        if cfg["method"] == "blocked":
            leak = res["leakage"][f"{name}/{cfg['method']}"]
            assert all(v == 0 for scope in leak.values() for v in scope.values()), name
    assert res["n_task_files"] == n_files
    task = tasks.load_task(_task_dir(chapter, "S12LS-LD"))
    assert res["norm_ld_s2_B04_mean"] == pytest.approx(task.norm["s2"]["mean"]["B04"])
    assert res["norm_ld_s2_B08_mean"] == pytest.approx(task.norm["s2"]["mean"]["B08"])
    assert res["norm_ld_s1asc_VV_mean"] == pytest.approx(task.norm["s1asc"]["mean"]["VV"])
    assert 500 < res["norm_ld_s2_B04_mean"] < 6000 and 1000 < res["norm_ld_s2_B08_mean"] < 8000
    assert -25 < res["norm_ld_s1asc_VV_mean"] < 0 and res["s1_unit"] == "dB"
    assert res["n_released_files"] == sum(
        1 for p in (ROOT / "data/reference/tasks").rglob("*") if p.is_file()
    )
