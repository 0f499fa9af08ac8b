"""What the split does to the score, in the package: one method's bootstrap replicates (``metrics.bootstrap_scores``),
the patches no run trains or validates on (``evaluate.common_entries``), the table of runs on their own test sets
and on the common set (``evaluate.split_optimism``) and the fold aggregation over seeds (``evaluate.fold_table``).
Checked against scores computed by hand from the pixels, and against the paired bootstrap."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from s12ls_utils import evaluate as E
from s12ls_utils import metrics as M
from s12ls_utils.tasks import Task


# --------------------------------------------------------------------------------------------------
# bootstrap_scores
# --------------------------------------------------------------------------------------------------
def _patches(n: int, seed: int, signal: float, prevalence: float = 0.1, key: str = "p"):
    """``n`` random 16 × 16 patches (mask, score) and their accumulator, keys ``<key>0…``."""
    rng = np.random.default_rng(seed)
    pm = M.PixelMetrics(100, keep_patches=True)
    data = []
    for k in range(n):
        y = (rng.random((16, 16)) < prevalence).astype(int)
        s = np.clip(signal * y + (1 - signal) * rng.random((16, 16)), 0, 1)
        pm.update(y, s, key=f"{key}{k}")
        data.append((y, s))
    return pm, data


def test_bootstrap_scores_replay_the_draws_by_hand():
    pm, data = _patches(9, 0, 0.4)
    reps = M.bootstrap_scores(pm, 0.5, ("f1", "iou", "ap"), n_boot=60, seed=4)
    rng = np.random.default_rng(4)
    for i in range(60):
        idx = rng.integers(0, len(data), size=len(data))
        y = np.concatenate([data[j][0].ravel() for j in idx])
        s = np.concatenate([data[j][1].ravel() for j in idx])
        ref = M.positive_class_scores(y, pm.predict(s, 0.5))
        assert reps["f1"][i] == pytest.approx(ref["f1"], abs=1e-12)
        assert reps["iou"][i] == pytest.approx(ref["iou"], abs=1e-12)
        # AP from the same histograms as the pooled pixels, within the binning of sklearn's exact value
        assert reps["ap"][i] == pytest.approx(M.average_precision(y, s, bins=100), abs=1e-12)
        assert reps["ap"][i] == pytest.approx(skm.average_precision_score(y, s), abs=0.03)


def test_bootstrap_scores_are_one_side_of_the_paired_bootstrap():
    """Same seed, same patches: the replicates of two methods, differenced, are the paired bootstrap."""
    a, _ = _patches(12, 1, 0.5)
    b, _ = _patches(12, 1, 0.2)
    ra = M.bootstrap_scores(a, 0.5, ("f1", "ap"), n_boot=150, seed=7)
    rb = M.bootstrap_scores(b, 0.4, ("f1", "ap"), n_boot=150, seed=7)
    pb = M.paired_bootstrap(a, b, 0.5, 0.4, ("f1", "ap"), n_boot=150, seed=7)
    for m in ("f1", "ap"):
        lo, hi = np.quantile(ra[m] - rb[m], [0.025, 0.975])
        assert (pb[m]["low"], pb[m]["high"]) == pytest.approx((lo, hi))


def test_bootstrap_scores_without_patches():
    empty = M.PixelMetrics(100, keep_patches=True)
    assert np.isnan(M.bootstrap_scores(empty, 0.5, ("f1",), n_boot=5)["f1"]).all()
    with pytest.raises(ValueError, match="keep_patches"):
        M.bootstrap_scores(M.PixelMetrics(100), 0.5)


# --------------------------------------------------------------------------------------------------
# common_entries
# --------------------------------------------------------------------------------------------------
def _entry(key: str, sensor: str = "s2") -> dict:
    return {"id": key, sensor: f"{sensor}/{key.rsplit('_', 1)[0]}_{sensor}_{key.rsplit('_', 1)[1]}.nc"}


def _task(name: str, parts: dict[str, list[str]], aligned: dict[str, list[str]] | None = None) -> Task:
    return Task(
        path=Path("/nowhere") / name,
        name=name,
        format="current",
        splits={"s2": {s: [_entry(k) for k in parts.get(s, [])] for s in ("train", "val", "test")}},
        norm={},
        aligned=None
        if aligned is None
        else {
            s: [{**_entry(k, "s1asc"), **_entry(k, "s2")} for k in aligned.get(s, [])]
            for s in ("train", "val", "test")
        },
    )


def test_common_entries_are_in_no_train_or_validation_split():
    a = _task("a", {"train": ["x_1", "x_2"], "val": ["x_3"], "test": ["x_4", "y_1"]})
    b = _task("b", {"train": ["x_4", "x_1"], "val": ["x_2"], "test": ["x_3", "y_2"]})
    c = _task("c", {"train": ["x_1"], "val": ["x_2"], "test": ["y_1", "y_2", "y_3"]})
    common = E.common_entries([a, b, c])
    assert [e["id"] for e in common] == ["y_1", "y_2", "y_3"]  # x_3, x_4 are trained or validated on
    assert common[0] is a.splits["s2"]["test"][1]  # as the first task lists it
    assert E.common_entries([a, b]) == [a.splits["s2"]["test"][1], b.splits["s2"]["test"][1]]
    assert [e["id"] for e in E.common_entries([a, _task("d", {"train": ["y_1"]})])] == ["x_4"]
    assert E.common_entries([a, _task("e", {"val": ["y_1", "x_4"]})]) == []


def test_common_entries_of_a_fusion_run_come_from_the_aligned_split():
    a = _task("a", {}, aligned={"train": ["x_1"], "test": ["x_2", "y_1"]})
    b = _task("b", {}, aligned={"train": ["x_2"], "test": ["y_1"]})
    common = E.common_entries([a, b], ["s1asc", "s2"])
    assert [e["id"] for e in common] == ["y_1"] and set(common[0]) >= {"s1asc", "s2"}
    with pytest.raises(ValueError, match="aligned"):
        E.common_entries([_task("c", {"train": ["x_1"]})], ["s1asc", "s2"])
    with pytest.raises(ValueError, match="no s1asc split"):
        E.common_entries([a], ["s1asc"])


# --------------------------------------------------------------------------------------------------
# split_optimism
# --------------------------------------------------------------------------------------------------
def _run(label: str, seed: int, signal: float, n_test: int, threshold: float, common_seed: int | None = 99):
    test, data = _patches(n_test, seed, signal, prevalence=0.05 + 0.02 * seed, key=f"{label}-t")
    common = None
    if common_seed is not None:  # the same common patches for every run, scored by this run's model
        rng = np.random.default_rng(common_seed)
        common = M.PixelMetrics(100, keep_patches=True)
        noise = np.random.default_rng(seed + 50)
        for k in range(10):
            y = (rng.random((16, 16)) < 0.08).astype(int)
            common.update(y, np.clip(signal * y + (1 - signal) * noise.random((16, 16)), 0, 1), key=f"c{k}")
    run = E.SplitRun(
        label, Path(label), Path("tasks") / label, ["s2"], threshold, 0.5, 20 + seed, 5, test, common
    )
    return run, data


def test_split_optimism_scores_each_run_on_its_own_test_and_on_the_common_set():
    (pub, pub_data), (blk, blk_data) = _run("published", 0, 0.6, 8, 0.5), _run("blocked", 1, 0.3, 11, 0.45)
    opt = E.split_optimism([pub, blk], n_boot=200, seed=2)
    t = opt.table().set_index(["split", "test_set"])
    assert list(t.index) == [(s, ts) for s in ("published", "blocked") for ts in ("own test", "common")]
    for run, data in ((pub, pub_data), (blk, blk_data)):
        y = np.concatenate([d[0].ravel() for d in data])
        s = np.concatenate([d[1].ravel() for d in data])
        row = t.loc[(run.label, "own test")]
        assert row["f1"] == pytest.approx(skm.f1_score(y, run.test.predict(s, run.threshold)), abs=1e-12)
        assert row["test_prevalence"] == pytest.approx(y.mean()) and row["n_test"] == len(data)
        assert row["n_train"] == run.n_train
        for m in ("f1", "ap"):
            assert row[m + "_low"] <= row[m + "_high"]
    # own test sets differ: the gap is the difference of the two scores, its interval from independent draws
    own = t.loc[("blocked", "own test")]
    assert own["f1_gap"] == pytest.approx(own["f1"] - t.loc[("published", "own test"), "f1"])
    assert not own["paired"] and own["f1_gap_low"] <= own["f1_gap"] <= own["f1_gap_high"]
    # the common set: a paired bootstrap of the same patches, each model at its own threshold
    pb = M.paired_bootstrap(blk.common, pub.common, blk.threshold, pub.threshold, ("f1", "ap"), 200, 0.95, 2)
    com = t.loc[("blocked", "common")]
    assert com["paired"]
    for m in ("f1", "ap"):
        assert (com[m + "_gap"], com[m + "_gap_low"], com[m + "_gap_high"]) == pytest.approx(
            (pb[m]["diff"], pb[m]["low"], pb[m]["high"])
        )
    assert com["f1_gap"] == pytest.approx(com["f1"] - t.loc[("published", "common"), "f1"])
    assert t.loc[("published", "own test"), ["f1_gap", "ap_gap"]].isna().all()  # the baseline has no gap


def test_split_optimism_record_and_figures():
    runs = [_run("published", 0, 0.6, 8, 0.5)[0], _run("blocked", 1, 0.3, 11, 0.45)[0]]
    opt = E.split_optimism(runs, n_boot=50)
    rec = opt.record()
    t = opt.table().set_index(["split", "test_set"])
    for label, run in zip(("published", "blocked"), runs, strict=True):
        r = rec[label]
        assert (r["n_train"], r["n_val"], r["n_test"]) == (run.n_train, run.n_val, run.n_test)
        assert r["f1"] == t.loc[(label, "own test"), "f1"] and len(r["f1_ci"]) == len(r["ap_ci"]) == 2
        assert r["threshold"] == run.threshold and r["common"]["n_test"] == 10
        assert r["common"]["f1_ci"] == [
            t.loc[(label, "common"), "f1_low"],
            t.loc[(label, "common"), "f1_high"],
        ]
    assert rec["published"]["f1_gap"] is None and rec["published"]["f1_gap_ci"] is None
    assert rec["blocked"]["common"]["f1_gap"] == pytest.approx(t.loc[("blocked", "common"), "f1_gap"])
    fig = opt.figures()
    assert fig["blocked_common_f1_gap"] == rec["blocked"]["common"]["f1_gap"]
    assert float(fig["published_test_prevalence"]) == rec["published"]["test_prevalence"]
    assert "published_f1_gap" not in fig and fig["blocked_n_train"] == runs[1].n_train
    shown = opt.formatted()
    assert shown.loc[("published", "own test"), "F1 gap to published"] == "—"
    share = shown.loc[("published", "own test"), "landslide pixels in test (%)"]
    assert share == f"{100 * rec['published']['test_prevalence']:.2f}"  # as read, not float noise
    assert shown.loc[("blocked", "own test"), "F1 [95 % interval]"].startswith(
        f"{rec['blocked']['f1']:.3f} ["
    )


def test_split_optimism_the_same_model_on_the_same_patches_has_no_gap():
    a, _ = _run("a", 0, 0.5, 6, 0.5)
    b = E.SplitRun("b", Path("b"), Path("b"), ["s2"], a.threshold, 0.5, 1, 1, a.test, a.common)
    t = E.split_optimism([a, b], "a", n_boot=40).table().set_index(["split", "test_set"])
    assert tuple(t.loc[("b", "common"), ["f1_gap", "f1_gap_low", "f1_gap_high"]]) == (0.0, 0.0, 0.0)


def test_split_optimism_without_a_common_set_and_bad_input():
    runs = [_run("p", 0, 0.6, 5, 0.5, common_seed=None)[0], _run("q", 1, 0.6, 5, 0.5)[0]]
    opt = E.split_optimism(runs, n_boot=20)
    assert set(opt.table()["test_set"]) == {"own test"} and opt.record()["q"]["common"] is None
    with pytest.raises(ValueError, match="at least one"):
        E.split_optimism([])
    with pytest.raises(ValueError, match="baseline"):
        E.split_optimism(runs, "published")
    with pytest.raises(ValueError, match="labelled"):
        E.split_optimism([runs[0], runs[0]])
    with pytest.raises(ValueError, match="common set"):
        runs[0].scores("common")
    with pytest.raises(ValueError, match="'test' or 'common'"):
        runs[1].scores("val")


# --------------------------------------------------------------------------------------------------
# fold_table
# --------------------------------------------------------------------------------------------------
def _fold_runs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for split, prev, n_test in (("published", 0.05, 100), ("africa", 0.02, 30), ("europe", 0.04, 90)):
        for seed in (42, 123, 777):
            f1 = float(rng.uniform(0.2, 0.7))
            rows.append(
                {
                    "split": split,
                    "seed": seed,
                    "f1": f1,
                    "ap": float(rng.uniform(0.2, 0.7)),
                    "iou": f1 / (2 - f1),
                    "test_prevalence": prev,
                    "n_test": n_test,
                }
            )
    return pd.DataFrame(rows)


def test_fold_table_is_the_mean_and_sd_over_seeds_and_pools_folds():
    runs = _fold_runs()
    t = E.fold_table(runs, pooled={"regions": ["africa", "europe"]}).set_index("split")
    assert list(t.index) == ["published", "africa", "europe", "regions"]
    for split in ("published", "africa", "europe"):
        mine = runs[runs["split"] == split]
        for m in ("f1", "ap", "iou"):
            assert t.loc[split, m + "_mean"] == pytest.approx(statistics.fmean(mine[m]))
            assert t.loc[split, m + "_sd"] == pytest.approx(statistics.stdev(mine[m]))
        assert (
            t.loc[split, "seeds"] == 3 and t.loc[split, "test_prevalence"] == mine["test_prevalence"].iloc[0]
        )
    pooled = runs[runs["split"].isin(["africa", "europe"])]
    assert t.loc["regions", "f1_mean"] == pytest.approx(statistics.fmean(pooled["f1"]))
    assert t.loc["regions", "f1_sd"] == pytest.approx(statistics.stdev(pooled["f1"]))
    # the folds' test sets together: 30 patches at 2 % and 90 at 4 % landslide pixels
    assert t.loc["regions", "test_prevalence"] == pytest.approx((30 * 0.02 + 90 * 0.04) / 120)
    assert (t.loc["regions", "folds"], t.loc["regions", "runs"], t.loc["regions", "n_test"]) == (2, 6, 120)


def test_fold_table_one_seed_and_no_patch_counts():
    runs = _fold_runs().drop(columns="n_test")
    one = runs[runs["seed"] == 42]
    t = E.fold_table(one, pooled={"all": ["published", "africa"]}).set_index("split")
    assert (t["f1_sd"] == 0).iloc[:3].all() and t.loc["all", "seeds"] == 1
    assert t.loc["all", "test_prevalence"] == pytest.approx((0.05 + 0.02) / 2)


def test_fold_table_refuses_bad_input():
    runs = _fold_runs()
    with pytest.raises(ValueError, match="missing"):
        E.fold_table(runs.drop(columns="ap"))
    with pytest.raises(ValueError, match="twice"):
        E.fold_table(pd.concat([runs, runs.iloc[:1]]))
    with pytest.raises(ValueError, match="unknown"):
        E.fold_table(runs, pooled={"x": ["oceania"]})
    with pytest.raises(ValueError, match="missing scores"):
        E.fold_table(runs.assign(f1=np.where(runs["split"] == "africa", np.nan, runs["f1"])))
    with pytest.raises(ValueError, match="at least one"):
        E.fold_table(runs.iloc[:0])


def test_holdout_regions_are_the_folds_regions_in_the_selection(sample30, tmp_path):
    """Chapter 07 sets aside the fold's regions that hold selected patches; a fold without any stops it with
    the folds that would do (the 30-per-sensor sample selects no S2 patch of chimanimani, africa's region)."""
    from s12ls_utils.catalog import build_catalog
    from s12ls_utils.reference import region_folds

    cat = build_catalog(sample30(tmp_path / "s"), sensors=["s2"], progress=False)
    # the preset's selection: annotated, at least 50 landslide pixels, usa_alaska and nepal left out
    keep = cat["annotated"] & (cat["n_positive"] >= 50) & ~cat["region"].isin(["usa_alaska", "nepal"])
    annotated = cat[keep]
    folds = region_folds()
    usable = [f for f, regions in folds.items() if annotated["region"].isin(regions).any()]
    assert usable and len(usable) < len(folds)  # the sample has folds of both kinds
    assert list(E.holdout_folds(cat)) == usable
    for fold in usable:
        got = E.holdout_regions(cat, fold)
        assert got and set(got) == set(annotated["region"].astype(str)) & set(folds[fold])
    empty = next(f for f in folds if f not in usable)
    with pytest.raises(ValueError, match=f"holdout_fold '{empty}' .*folds that have: {', '.join(usable)}$"):
        E.holdout_regions(cat, empty)
    with pytest.raises(ValueError, match="holdout_fold must be"):
        E.holdout_regions(cat, "antarctica")
