"""Chapter 07 (what the split does to the score), executed: its record holds the three splits under
``split_optimism``, and their figures agree with what the task folders and the catalog say on their own (patch
counts, landslide-pixel shares, the held-out region as the common set, no blocked test tile next to a training
tile); the text's numbers are glued; the sample is named before the first number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s12ls_utils import catalog, reference, schema, splits
from s12ls_utils.tasks import load_config, load_task

pytestmark = pytest.mark.chapter

ROOT = Path(__file__).resolve().parents[1]
STEM = "07-split-optimism"
LABELS = ("published", "blocked", "region")
KEYS = ("n_train", "n_test", "test_prevalence", "f1", "f1_ci", "ap", "ap_ci")


@pytest.fixture(scope="module")
def chapter(run_chapter):
    return run_chapter(STEM)


@pytest.fixture(scope="module")
def tasks(chapter):
    so = chapter.results["split_optimism"]
    out = {}
    for label in LABELS:
        path = Path(so[label]["task_dir"])
        out[label] = load_task(path if path.is_absolute() else ROOT / path, data_dir=chapter.data_dir)
    return out


@pytest.fixture(scope="module")
def cat(chapter):
    return catalog.build_catalog(chapter.data_dir, sensors=[chapter.results["sensor"]]).set_index("key")


def _ids(task, sensor: str, split: str) -> list[str]:
    return [str(e["id"]) for e in task.splits[sensor][split]]


def test_the_record_holds_the_three_splits(chapter):
    so = chapter.results["split_optimism"]
    assert set(so) == set(LABELS)
    for label in LABELS:
        r = so[label]
        assert set(KEYS) <= set(r), label
        for k in ("f1", "ap"):
            lo, hi = r[k + "_ci"]
            assert 0 <= lo <= hi <= 1 and 0 <= r[k] <= 1, (label, k)
        assert r["common"] is not None and 0 <= r["common"]["f1"] <= 1
        run = Path(r["run_dir"])
        assert ((run if run.is_absolute() else ROOT / run) / "best.pt").is_file()
    assert so["published"]["f1_gap"] is None  # the baseline
    for label in ("blocked", "region"):
        assert so[label]["f1_gap"] == pytest.approx(so[label]["f1"] - so["published"]["f1"])
        # the common set: the same patches for every model, so the gap is the difference of their scores there
        gap = so[label]["common"]["f1_gap"]
        assert gap == pytest.approx(so[label]["common"]["f1"] - so["published"]["common"]["f1"])
        lo, hi = so[label]["common"]["f1_gap_ci"]
        assert lo <= hi


def test_patch_counts_are_the_task_folders_splits(chapter, tasks):
    so, sensor = chapter.results["split_optimism"], chapter.results["sensor"]
    for label, task in tasks.items():
        assert so[label]["n_train"] == len(task.splits[sensor]["train"]), label
        assert so[label]["n_val"] == len(task.splits[sensor]["val"]), label
        assert so[label]["n_test"] == len(task.splits[sensor]["test"]), label


def test_landslide_pixel_shares_are_those_of_the_catalog(chapter, tasks, cat):
    """The share of landslide pixels of each test set, from the catalog's per-file counts (MASK at t=0)."""
    so, sensor = chapter.results["split_optimism"], chapter.results["sensor"]
    for label, task in tasks.items():
        ids = _ids(task, sensor, "test")
        share = cat.loc[ids, "n_positive"].sum() / (len(ids) * schema.PATCH_SIZE**2)
        assert so[label]["test_prevalence"] == pytest.approx(share, rel=1e-9), label


def test_the_held_out_region_is_the_common_set(chapter, tasks, cat):
    """The regions of the fold are the region task's test split and in no other task; the common set is them."""
    r, sensor = chapter.results, chapter.results["sensor"]
    held = r["holdout_regions"].split(", ")
    assert held == [
        g for g in reference.region_folds()[r["holdout_fold"]] if g in set(cat["region"].astype(str))
    ]
    region_of = cat["region"].astype(str)
    test = _ids(tasks["region"], sensor, "test")
    assert set(region_of[test]) == set(held)
    selected = splits.select(cat.reset_index(), load_config("S12LS-LD"))[sensor]
    assert set(test) == set(selected.loc[selected["region"].astype(str).isin(held), "key"].astype(str))
    for label in ("published", "blocked"):
        every = [k for s in splits.SPLITS for k in _ids(tasks[label], sensor, s)]
        assert not set(region_of[every]) & set(held), label
    assert r["n_common"] == len(test) == r["split_optimism"]["published"]["common"]["n_test"]
    assert r["split_optimism"]["region"]["common"]["f1"] == pytest.approx(r["split_optimism"]["region"]["f1"])


def test_the_blocked_test_tiles_touch_no_training_tile(chapter, tasks, cat):
    sensor = chapter.results["sensor"]
    frame = cat.reset_index()
    pairs = splits.tile_pairs(
        frame[
            frame["key"].isin(
                _ids(tasks["blocked"], sensor, "test") + _ids(tasks["blocked"], sensor, "train")
            )
        ]
    )
    test = set(_ids(tasks["blocked"], sensor, "test"))
    crossing = pairs[pairs["key_a"].isin(test) != pairs["key_b"].isin(test)]
    assert crossing.empty and chapter.results["blocked_touching_pct"] == 0
    # the published rule puts test tiles next to training tiles on the sample (the generator's clusters)
    assert chapter.results["published_touching_pct"] > 0


def test_the_sample_is_named_before_the_first_number(chapter):
    text = "\n".join("".join(c.source) for c in chapter.nb.cells if c.cell_type == "markdown")
    first_number = text.find("{glue")
    assert 0 <= text.find("synthetic sample") < first_number
    assert "unreviewed" in text and "Meyer" in text and "Ploton" in text and "Kattenborn" in text
    captions = [
        o["data"]["text/html"]
        for c in chapter.nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "<caption" in "".join(o.get("data", {}).get("text/html", ""))
    ]
    assert len(captions) >= 2 and all("synthetic sample" in "".join(h) for h in captions)


def test_the_third_party_figures_are_the_reference_ones(chapter):
    r = chapter.results
    holdout = reference.THIRD_PARTY_HOLDOUT
    assert r["holdout_f1_low"] == min(h["f1_low"] for h in holdout)
    assert r["holdout_f1_high"] == max(h["f1_high"] for h in holdout)
    assert r["published_f1_best"] == pytest.approx(
        np.max([b["f1"] for b in reference.PUBLISHED_LD_BENCHMARK]) / 100
    )


def test_the_chapter_runs_after_the_chained_lane():
    """Chapter 07 reads nothing chapters 04–06 write; it runs after them, in their lane, which evens out the
    lanes (the other one reads every file of the sample), and never before 06 ends."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("execute_chapters", ROOT / ".ci" / "execute_chapters.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    stems = [nb.stem for nb in ex.chapters()]
    assert STEM in stems and STEM not in ex.CHAINED
    chained, free = ex.lanes(stems, 2)
    assert chained == [*ex.CHAINED, STEM] and STEM not in free
    assert ex.lanes(stems, 1) == [stems]
