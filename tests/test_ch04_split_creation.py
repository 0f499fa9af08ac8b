"""Chapter 04 (split creation): executed with papermill (or `make execute`'s copy); its figures checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s12ls_utils import schema, splits
from s12ls_utils.catalog import build_catalog

pytestmark = pytest.mark.chapter

ROOT = Path(__file__).resolve().parents[1]
STEM = "04-split-creation"
PUBLISHED = {"S12LS-LD": "ld", "S12LS-AD": "ad"}
TASKS = {**PUBLISHED, "S12LS-LD-strict": "ld_strict", "S12LS-AD-strict": "ad_strict"}


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


def test_counts_match_the_selection_and_the_files(chapter):
    res = chapter.results
    catalog = build_catalog(chapter.data_dir, progress=False)
    for name, short in TASKS.items():
        sel = splits.select(catalog, splits.load_config(name))
        task = splits.load_task(_task_dir(chapter, name))
        counts = task.counts().set_index("scope")
        for sensor in schema.SENSORS:
            n = len(sel[sensor])
            parts = [res[f"{short}_{sensor}_{s}"] for s in splits.SPLITS]
            assert sum(parts) == n == res[f"{short}_selected_{sensor}"] == res[f"{short}_{sensor}_total"]
            assert parts == [int(counts.loc[sensor, s]) for s in splits.SPLITS]
            assert res[f"n_groups_{short}_{sensor}"] <= n
            keys = [e["id"] for s in splits.SPLITS for e in task.splits[sensor][s]]
            assert sorted(keys) == sorted(sel[sensor].key.astype(str)) and len(set(keys)) == len(keys)
        common = set.intersection(*(set(d.key.astype(str)) for d in sel.values()))
        aligned = [res[f"{short}_aligned_{s}"] for s in splits.SPLITS]
        assert sum(aligned) == len(common) == int(counts.loc["aligned", "total"])
        assert res["counts"][name]["s2"] == {s: res[f"{short}_s2_{s}"] for s in splits.SPLITS}
        if name in PUBLISHED:  # the published presets' files are the published algorithm's assignment
            import pandas as pd

            entries = [{**e, "split": s} for s in splits.SPLITS for e in task.splits["s2"][s]]
            frame = pd.DataFrame(
                {"file": [e["s2"] for e in entries], "n_positive": [e["pixel_annotated"] for e in entries]}
            )
            assert splits.reference_split(frame).tolist() == [e["split"] for e in entries]


def test_real_metadata_figures(chapter):
    """The chapter's real-data figures are the published ones, and the published splits reproduce."""
    res = chapter.results
    published = {"ld": (4988, 4793, 4666, 4392), "ad": (13628, 13306, 12622, 11719)}
    for short, (s2, asc, dsc, aligned) in published.items():
        got = tuple(res[f"real_{short}_{s}"] for s in ("s2", "s1asc", "s1dsc", "aligned"))
        assert got == (s2, asc, dsc, aligned)
    assert res["repro_files"] == 8 and res["repro_differ"] == 0
    assert res["repro_patches"] == sum(sum(v) for v in published.values())
    # the strict presets drop the low-quality locations (LD-strict: before its date-confidence filter)
    assert res["real_ad_strict_s2"] < res["real_ad_s2"] and res["real_ld_strict_s2"] < res["real_ld_s2"]
    assert res["n_low_quality"] == 2536
    assert res["real_ld_top_region"] == "italy" and 30 < res["real_ld_top_share"] < 40
    # the old format's S1 lists are VH, VV, DEM: VH is the weaker channel
    assert res["old_format"] == "old" and res["old_s1asc_VH_mean"] < res["old_s1asc_VV_mean"]


def test_spatial_split_does_not_leak(chapter):
    res = chapter.results
    for short in PUBLISHED.values():
        assert res[f"leak_spatial_{short}"] == 0
        assert res[f"leak_spatial_{short}_aligned"] == 0
        assert res[f"leak_spatial_{short}_mean"] == 0 and res[f"leak_spatial_{short}_share"] == 0
        assert res[f"leak_reference_{short}_mean"] >= 0
    for key, leak in res["leakage"].items():
        if key.endswith("/spatial"):
            assert all(v == 0 for scope in leak.values() for v in scope.values()), key
    # the AD Sentinel-2 selection holds overlapping patches, so the published method leaks for some seeds
    catalog = build_catalog(chapter.data_dir, progress=False)
    frame = splits.select(catalog, "S12LS-AD")["s2"]
    if splits.spatial_groups(frame).value_counts().max() > 1:
        assert res["leak_reference_ad_mean"] > 0 and res["leak_reference_ad_share"] > 0


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
        assert cfg["method"] == ("reference" if name in PUBLISHED else "spatial")
        assert not list(root.parent.glob(f".{name}.*")), "temporary folders left behind"
    assert res["n_task_files"] == n_files
    task = splits.load_task(_task_dir(chapter, "S12LS-LD"))
    assert res["norm_ld_s2_B04_mean"] == pytest.approx(task.norm["s2"]["mean"]["B04"])
    assert res["norm_ld_s2_B08_mean"] == pytest.approx(task.norm["s2"]["mean"]["B08"])
    assert res["norm_ld_s1asc_VV_mean"] == pytest.approx(task.norm["s1asc"]["mean"]["VV"])
    assert 500 < res["norm_ld_s2_B04_mean"] < 6000 and 1000 < res["norm_ld_s2_B08_mean"] < 8000
    assert -25 < res["norm_ld_s1asc_VV_mean"] < 0 and res["s1_unit"] == "dB"
    assert res["n_regions"] >= res["n_regions_first_token"]
