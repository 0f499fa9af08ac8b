"""``evaluate_run`` and ``s12ls evaluate``: streaming results equal one-shot scores of the same predictions;
thresholds come from validation; the change-detection reference reuses the signature formulas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from s12ls_utils import evaluate as E
from s12ls_utils import images, metrics, signatures, tasks
from s12ls_utils.cli import main
from s12ls_utils.io import open_patch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, sample30) -> tuple[Path, Path]:
    """A sample of about 30 patches per sensor with an S12LS-LD task and a tiny 2-epoch U-Net run."""
    data = sample30(tmp_path_factory.mktemp("eval") / "data")
    task_dir = tasks.write_task(data, data / "tasks", "S12LS-LD", workers=1)
    return _tiny_run(task_dir, ["s2"], "tiny", epochs=2), task_dir


def _tiny_run(task_dir: Path, sensors: list[str], name: str, epochs: int) -> Path:
    """A tiny U-Net (widths 4–16) trained on ``sensors`` of the task, next to its data folder."""
    from s12ls_utils import training

    res = training.train(
        task_dir=str(task_dir),
        sensors=sensors,
        model="unet_prepost",
        model_kwargs={"widths": [4, 8, 16]},
        epochs=epochs,
        batch_size=4,
        warmup_epochs=0.0,
        augment=False,
        progress=False,
        threads=2,
        runs_dir=str(Path(task_dir).parent.parent.parent / "runs"),
        run_name=name,
    )
    return Path(res.run_dir)


@pytest.fixture(scope="module")
def result(run):
    run_dir, task_dir = run
    return E.evaluate_run(run_dir, task_dir, n_boot=200, seed=0, device="cpu", batch_size=3, gallery=2)


def test_streaming_evaluation_equals_one_shot(run, result):
    run_dir, task_dir = run
    task = tasks.load_task(task_dir)
    batches = list(E.iter_model_predictions(run_dir, task, "test", device="cpu", batch_size=3))
    prob = np.concatenate([b[1] for b in batches]).ravel()
    y = np.concatenate([b[2] for b in batches]).ravel()
    thr = result.thresholds["model"]
    s = result.scores("model")
    ref = metrics.positive_class_scores(y, result.test["model"].predict(prob, thr))
    for k in metrics.SCORE_KEYS:
        assert s[k] == pytest.approx(ref[k], abs=1e-12), k
    assert s["f1"] == pytest.approx(skm.f1_score(y, prob >= thr, zero_division=0), abs=1e-3)
    if y.any():
        # exact on the quantised scores (ties inside a bin count one half, as sklearn's trapezoids)
        q = result.test["model"].quantise(prob)
        assert s["roc_auc"] == pytest.approx(skm.roc_auc_score(y, q), abs=1e-9)
        # a 2-epoch model's probabilities crowd into a few bins: only a loose check against raw scores
        assert s["auprc"] == pytest.approx(skm.average_precision_score(y, prob), abs=0.02)
    assert result.n_test == len(task.splits["s2"]["test"]) and result.n_val == len(task.splits["s2"]["val"])


def test_threshold_is_the_validation_max_f1(result):
    for m in E.METHODS:
        thr, f1 = result.val[m].best_threshold("f1")
        assert result.thresholds[m] == thr and result.val_f1[m] == f1
        assert result.scores(m)["threshold"] == pytest.approx(thr)


def test_the_two_steps_are_evaluate_run(run, result):
    """Chapter 06 shows the evaluation as two steps: thresholds chosen on validation alone, then one pass on
    test at them. Each threshold's validation F1 agrees with scikit-learn's on the validation predictions, and
    the two steps together give what evaluate_run gives."""
    run_dir, task_dir = run
    val = E.choose_thresholds(run_dir, task_dir, device="cpu", batch_size=3)
    table = val.table()
    assert list(table.index) == list(E.METHODS) and (table["patches"] == result.n_val).all()
    assert table["threshold"].to_dict() == result.thresholds
    batches = list(
        E.iter_model_predictions(run_dir, tasks.load_task(task_dir), "val", device="cpu", batch_size=3)
    )
    prob = np.concatenate([b[1] for b in batches]).ravel()
    y = np.concatenate([b[2] for b in batches]).ravel()
    pred = val.val["model"].predict(prob, val.thresholds["model"])
    assert table.loc["model", "validation F1"] == pytest.approx(
        skm.f1_score(y, pred, zero_division=0), abs=1e-9
    )
    assert table.loc["model", "prevalence"] == pytest.approx(y.mean())

    res = E.score_test(val, n_boot=200, seed=0, gallery=2)
    s, expected = res.summary(), result.summary()
    for key in ("n_test", "model_f1", "ref_f1", "refdf_iou", "model_auprc", "model_f1_ci_low", "diff_ref_f1"):
        assert s[key] == pytest.approx(expected[key]), key
    # the tables chapter 06 shows
    table = res.region_table()
    assert table["test split", "patches"].sum() == res.n_test == len(res.patch_table())
    assert list(table["F1"]) == list(table["IoU"]) == ["model", "reference", "date-free reference"]
    assert table["F1", "model"].dropna().between(0, 1).all()
    assert list(res.interval_table().columns) == list(E.METHOD_NAMES.values())
    assert set(res.comparisons()["against"]) == {E.METHOD_NAMES[m] for m in E.METHODS[1:]}
    assert s["n_regions_test"] == len(res.region_table())


def test_reference_is_the_ndvi_drop_of_signatures(run):
    _, task_dir = run
    task = tasks.load_task(task_dir)
    pid, score, mask = next(E.iter_reference_scores(task, "test", "s2"))
    entry = next(e for e in task.splits["s2"]["test"] if e["id"] == pid)
    ds = open_patch(task.data_dir / entry["s2"], load=True)
    al = signatures.patch_alignment(ds)
    ch = signatures.change_features(signatures.s2_indices(ds), al.pre, al.post)
    expected = np.full(mask.shape, np.nan) if ch is None else -ch["NDVI"].values
    np.testing.assert_array_equal(np.isnan(score), np.isnan(expected))
    np.testing.assert_allclose(score[~np.isnan(score)], expected[~np.isnan(expected)], atol=1e-6)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}


def test_summary_tables_and_consistency(result):
    s = result.summary()
    for p in E.PREFIX.values():
        prec, rec, f1 = s[p + "precision"], s[p + "recall"], s[p + "f1"]
        if prec + rec > 0:
            assert f1 == pytest.approx(2 * prec * rec / (prec + rec))
        assert s[p + "f1_ci_low"] <= s[p + "f1_ci_high"] and s[p + "iou_ci_low"] <= s[p + "iou_ci_high"]
        assert set(s[p + "detection_rate_by_size"]) == set(metrics.size_bin_labels())
        assert s[p + "fp_blobs_per_km2"] >= 0
    assert 0 <= s["prevalence"] < 0.5
    pt = result.patches
    assert set(pt["method"]) == set(E.METHODS)
    assert (pt.groupby("method")["tp"].sum()["model"]) == result.test["model"].compute(s["threshold"])["tp"]
    reg = result.regions()
    assert reg.groupby("method")["patches"].sum().tolist() == [result.n_test] * len(E.METHODS)
    few = reg["too_few"]
    assert (few == ((reg["patches"] < E.MIN_REGION_PATCHES) | (reg["n_positive"] == 0))).all()
    assert reg.loc[few, "f1"].isna().all() and reg.loc[~few, "f1"].notna().all()
    det = result.detection()
    assert len(det) == len(E.METHODS) * (len(metrics.DEFAULT_SIZE_BINS) - 1)
    assert set(result.pr_curves()["method"]) == set(E.METHODS)
    assert len(result.gallery) <= 2
    for it in result.gallery:
        assert it["pred"].shape == it["y"].shape == (128, 128) and it["path"].is_file()
        assert it["paths"] == {"s2": it["path"]}
    items, shown = images.gallery_images(result.gallery)
    assert (
        shown == "s2" and items[0]["pre"].shape == (128, 128, 3) and items[0]["post"].shape == (128, 128, 3)
    )


def test_model_and_references_are_scored_on_the_same_patches(result):
    keys = {m: sorted(map(str, result.test[m].patch_keys)) for m in E.METHODS}
    assert keys["model"] == keys["reference"] == keys["reference_date_free"]
    assert len(keys["model"]) == result.n_test


def test_paired_comparison_ranks_only_when_the_interval_excludes_zero(result):
    for other in ("reference", "reference_date_free"):
        cmp = result.compare(other)
        assert list(cmp["metric"]) == ["f1", "iou", "ap"]
        for r in cmp.to_dict("records"):
            assert r["low"] <= r["difference"] + 1e-9 or r["low"] <= r["high"]
            assert r["difference"] == pytest.approx(r["model"] - r[other])
            expected = (
                "model better"
                if r["low"] > 0
                else f"{other} better"
                if r["high"] < 0
                else "no difference shown"
            )
            assert r["verdict"] == expected
            assert r["patches"] == result.n_test
    f1 = result.compare("reference").set_index("metric").loc["f1"]
    assert f1["model"] == pytest.approx(result.scores("model")["f1"])
    ap = result.compare("reference").set_index("metric").loc["ap"]
    assert ap["model"] == pytest.approx(result.scores("model")["auprc"], abs=1e-9)


def test_threshold_stability_and_patch_level_detection(result):
    st = result.threshold_stability().set_index("method")
    for m in E.METHODS:
        assert st.loc[m, "threshold"] == pytest.approx(result.thresholds[m])
        assert st.loc[m, "low"] <= st.loc[m, "high"] and st.loc[m, "n_patches"] == result.n_val
    pl = result.patch_level()
    assert set(pl["method"]) == set(E.METHODS) and (pl["region"] == "all").sum() == len(E.METHODS)
    whole = pl[pl["region"] == "all"].set_index("method")
    assert (whole["patches"] == result.n_test).all()
    for m in E.METHODS:
        if not whole.loc[m, "too_few"]:
            assert 0 <= whole.loc[m, "auroc"] <= 1 and 0 <= whole.loc[m, "recall_at_far"] <= 1
    scores = result.patch_scores
    assert len(scores) == len(E.METHODS) * result.n_test
    # as chapter 06 shows it: a row per region ("all" first), the counts once, each score per method
    counts = {"patches": "patches", "with_landslides": "with landslides"}
    table = E.by_region_table(pl, counts, {"auroc": "AUROC", "ap": "AP"})
    assert list(table.index) == list(dict.fromkeys(pl["region"])) and table.index[0] == "all"
    assert list(table["test split"]) == ["patches", "with landslides", "prevalence", "too few"]
    for m, short in zip(E.METHODS, ("model", "reference", "date-free reference"), strict=True):
        mine = pl[pl["method"] == m].set_index("region")
        np.testing.assert_array_equal(table["AUROC", short], mine.loc[table.index, "auroc"])
        np.testing.assert_array_equal(table["AP", short], mine.loc[table.index, "ap"])


def test_patch_score_is_the_mean_of_the_highest_pixels():
    a = np.zeros((16, 16), dtype="float32")
    a[0, 0] = 1.0  # one noisy pixel
    assert E.patch_score(a) == pytest.approx(1 / E.PATCH_TOP_K)
    a[4:7, 4:7] = 0.8  # a 3 x 3 scar
    assert E.patch_score(a) == pytest.approx((1.0 + 8 * 0.8) / 9)
    assert np.isnan(E.patch_score(np.full((4, 4), np.nan)))


def test_date_free_reference_is_the_largest_drop_between_clear_dates():
    import xarray as xr

    t = 5
    ndvi_path = [0.8, 0.8, np.nan, 0.3, 0.35]  # a cloudy date between the drop: 0.8 -> 0.3 counts
    nir = np.array([v for v in ndvi_path], dtype="float64")
    data = {}
    shape = (t, 2, 2)
    red = np.full(shape, 1000.0)
    b08 = np.empty(shape)
    for i, v in enumerate(ndvi_path):
        b08[i] = 1000.0 * (1 + (0 if np.isnan(v) else v)) / (1 - (0 if np.isnan(v) else v))
    scl = np.full(shape, 4, dtype="uint8")
    scl[2] = 9  # cloud
    for b in ("B02", "B03", "B05", "B06", "B07", "B8A", "B11", "B12"):
        data[b] = (("time", "y", "x"), np.full(shape, 1000.0, dtype="float32"))
    data["B04"] = (("time", "y", "x"), red.astype("float32"))
    data["B08"] = (("time", "y", "x"), b08.astype("float32"))
    data["SCL"] = (("time", "y", "x"), scl)
    times = np.array(
        ["2023-01-01", "2023-01-11", "2023-01-21", "2023-01-31", "2023-02-10"], dtype="datetime64[ns]"
    )
    ds = xr.Dataset(data, coords={"time": times})
    score = E.change_score_date_free(ds, "s2")
    assert nir.size == t and score.shape == (2, 2)
    np.testing.assert_allclose(score, 0.5, atol=1e-4)


def test_gallery_of_a_fusion_run_has_one_image_per_sensor(run):
    """A fusion run's gallery items carry a file per sensor of the aligned split (chapter 06's error gallery
    drew S2 true colour from a path that a fusion run did not have)."""
    _, task_dir = run
    fusion = _tiny_run(task_dir, ["s1asc", "s2"], "tiny-fusion", epochs=1)
    assert E.run_sensors_of(fusion) == ["s1asc", "s2"]
    ev = E.evaluate_run(fusion, task_dir, n_boot=20, device="cpu", batch_size=3, gallery=1)
    (it,) = ev.gallery
    assert set(it["paths"]) == {"s1asc", "s2"} and it["path"] == it["paths"]["s2"]
    items, shown = images.gallery_images(ev.gallery)
    assert shown == ["s1asc", "s2"]
    assert set(items[0]["pre"]) == {"s1asc", "s2"} and items[0]["pre"]["s1asc"].shape == (128, 128, 3)


def test_cli_evaluate_writes_json(run, tmp_path, capsys):
    run_dir, task_dir = run
    out = tmp_path / "ev.json"
    rc = main(
        [
            "evaluate",
            str(run_dir),
            "--task-dir",
            str(task_dir),
            "--n-boot",
            "50",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "thresholds (max F1 on validation)" in text and "auprc" in text
    d = json.loads(out.read_text())
    assert {"model_f1", "ref_f1", "model_auprc", "ref_auprc", "threshold", "prevalence"} <= set(d)


def test_cli_evaluate_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_protocol_table_names_every_difference(run):
    """The published benchmark's protocol next to a run's, read from its run.json; the data row says what the
    patches are and which release (raw by default for the synthetic sample)."""
    from s12ls_utils.reference import PUBLISHED_PROTOCOL

    run_dir, task_dir = run
    assert E.data_label(task_dir) == "synthetic sample, raw release"
    table = E.protocol_table(run_dir, which="last")
    assert [a for a in table.index if a != "data revision"] == list(PUBLISHED_PROTOCOL)
    assert table.loc["data", "this run"] == "synthetic sample, raw release"
    assert table.index.get_loc("data revision") == table.index.get_loc("data") + 1
    assert table.loc["data revision", "this run"] == "synthetic sample"
    manifest = tasks.load_task(task_dir).data_dir / "download-manifest.json"  # as `s12ls download` writes it
    manifest.write_text(json.dumps({"revision": "a" * 40, "version": "raw", "layout": "versioned"}))
    try:
        row = E.protocol_table(run_dir, which="last").loc["data revision", "this run"]
    finally:
        manifest.unlink()
    assert row.startswith("a" * 40 + " (paulhoehn/Sen12Landslides, data_raw")
    assert table.loc["epochs", "this run"].startswith("2")  # the fixture trained 2 epochs
    assert table.loc["checkpoint tested", "this run"] == "the last epoch"
    assert table.loc["seeds", "published"].startswith("3")


def _mask_shares(task_dir: Path, split: str) -> dict[str, tuple[int, int]]:
    """(landslide pixels, pixels) per patch of a split, read from the MASK of the files themselves."""
    task = tasks.load_task(task_dir)
    out = {}
    for e in task.splits["s2"][split]:
        with open_patch(task.data_dir / e["s2"], load=True) as ds:
            mask = ds["MASK"]
            m = (mask.isel(time=0) if "time" in mask.dims else mask).values > 0
        out[str(e["id"])] = (int(m.sum()), int(m.size))
    return out


def test_every_score_table_gives_the_landslide_pixel_share(run, result):
    """Each table of scores carries the scored pixels' landslide share (``prevalence``), as the masks of the
    scored files give it: the whole test split, per region, per patch, per patch group (S12LS-AD view)."""
    _, task_dir = run
    test = _mask_shares(task_dir, "test")
    val = _mask_shares(task_dir, "val")
    share = sum(p for p, _ in test.values()) / sum(n for _, n in test.values())
    assert 0 < share < 1
    s = result.summary()
    assert s["prevalence"] == pytest.approx(share)
    assert s["val_prevalence"] == pytest.approx(
        sum(p for p, _ in val.values()) / sum(n for _, n in val.values())
    )
    flat = E.flat_figures(s)
    assert flat["positive_pct"] == pytest.approx(100 * share)
    assert flat["val_positive_pct"] == pytest.approx(100 * s["val_prevalence"])

    table = result.table()
    assert table.loc["prevalence"].to_numpy() == pytest.approx(share)  # one split, every method
    for other in ("reference", "reference_date_free"):
        assert result.compare(other)["prevalence"].to_numpy() == pytest.approx(share)

    per_patch = result.patches.drop_duplicates("id").set_index("id")["prevalence"]
    for pid, (pos, n) in test.items():
        assert per_patch[pid] == pytest.approx(pos / n), pid

    reg = result.regions()
    for region, g in reg[reg["method"] == "model"].groupby("region"):
        own = [v for k, v in test.items() if E.region_of(k) == region]
        assert g["prevalence"].iloc[0] == pytest.approx(sum(p for p, _ in own) / sum(n for _, n in own)), (
            region
        )

    pl = result.patch_level()
    whole = pl[(pl["region"] == "all")].set_index("method")
    assert whole["prevalence"].to_numpy() == pytest.approx(share)
    with_ls = sum(p > 0 for p, _ in test.values())
    assert whole["patch_prevalence"].to_numpy() == pytest.approx(with_ls / len(test))
    assert s["patch_prevalence"] == pytest.approx(with_ls / len(test))

    annotated = [v for v in test.values() if v[0] > 0]
    pix = result.annotated_scores()
    annotated_share = sum(p for p, _ in annotated) / sum(n for _, n in annotated)
    assert pix["prevalence"].to_numpy() == pytest.approx(annotated_share)

    ad = E.ADScores(Path("run"), "parameter", result, pl, pix, 0).figures()
    assert ad["ad_prevalence"] == pytest.approx(share)
    assert ad["ad_patch_prevalence"] == pytest.approx(with_ls / len(test))
    assert ad["ad_pixel_prevalence"] == pytest.approx(pix.loc["model", "prevalence"])


def test_benchmark_table_keeps_real_and_synthetic_apart(result):
    """Three labelled blocks, in this order: the paper's real rows (published split), the third-party hold-out
    range (unreviewed repositories, F1 range only), and this book's rows on the synthetic sample; every row
    with the landslide-pixel share of its test split (percent)."""
    from s12ls_utils.reference import THIRD_PARTY_HOLDOUT, published_benchmark, split_frame

    s = result.summary()
    bench = E.benchmark_table(s, "tiny U-Net")
    assert bench.index.names == ["data", "model"]
    assert list(bench.columns[-2:]) == ["split", "source"] and bench.columns[0] == "f1"  # the scores first
    blocks = list(dict.fromkeys(bench.index.get_level_values("data")))
    assert blocks == [*E.BENCHMARK_BLOCKS, "synthetic sample, raw release (this book)"]
    assert all(b.startswith("real") for b in blocks[:2]) and blocks[1].startswith("real (unreviewed")
    labels = bench.index.get_level_values("data")
    # no synthetic row sits among the real ones: every real row comes before the first synthetic one
    first_synthetic = list(labels).index(blocks[2])
    assert all(lab.startswith("real") for lab in labels[:first_synthetic])
    assert all("synthetic" in lab for lab in labels[first_synthetic:])

    pub = bench.loc[blocks[0]]
    ref = published_benchmark()
    assert list(pub.index) == list(ref.index)
    for k in ("ap", "f1", "iou", "precision", "recall"):
        assert pub[k].tolist() == ref[k].tolist(), k
    frame = split_frame("S12LS-LD", "s2")
    test = frame[frame["split"] == "test"]["n_positive"]
    assert pub["prevalence"].to_numpy() == pytest.approx(100 * test.sum() / (len(test) * 128 * 128))
    assert pub["split"].str.contains("published").all()

    held = bench.loc[blocks[1]]
    assert len(held) == len(THIRD_PARTY_HOLDOUT)
    for (_, row), h in zip(held.iterrows(), THIRD_PARTY_HOLDOUT, strict=True):
        assert row["f1_low"] == pytest.approx(100 * h["f1_low"]) and row["f1_high"] == pytest.approx(
            100 * h["f1_high"]
        )
        assert "unreviewed" in row["source"] and row["split"] == h["protocol"]
        assert np.isnan(row["f1"]) and np.isnan(row["ap"]) and np.isnan(row["prevalence"])  # nothing invented

    ours = bench.loc[blocks[2]]
    assert list(ours.index) == ["tiny U-Net", "change reference (event date)", "change reference (date-free)"]
    assert ours.loc["tiny U-Net", "f1"] == pytest.approx(100 * s["model_f1"])
    assert ours.loc["change reference (date-free)", "ap"] == pytest.approx(100 * s["refdf_auprc"])
    assert ours["prevalence"].to_numpy() == pytest.approx(100 * s["prevalence"])
    assert ours["split"].str.startswith("S12LS-LD: the published rule").all()
    assert ours[["f1_low", "f1_high"]].isna().all().all()
    assert E.benchmark_table(s, "m", data="real patches, harmonized release").index[-1][0] == (
        "real patches, harmonized release (this book)"
    )


def test_score_split_run_scores_the_model_as_evaluate_run(run, result, tmp_path):
    """Chapter 07's scorer (model only): evaluate_run's validation threshold and test scores of the model; a
    common set is scored at that same threshold (here the test patches themselves: the same scores)."""
    run_dir, task_dir = run
    task = tasks.load_task(task_dir)
    sr = E.score_split_run(run_dir, task_dir, label="x", common=task.splits["s2"]["test"], device="cpu")
    assert sr.threshold == result.thresholds["model"] and sr.val_f1 == result.val_f1["model"]
    own, ref = sr.scores(), result.scores("model")
    for k in ("f1", "iou", "precision", "recall"):
        assert own[k] == pytest.approx(ref[k], abs=1e-12), k
    assert own["ap"] == pytest.approx(ref["auprc"], abs=1e-12)
    assert own["test_prevalence"] == pytest.approx(result.summary()["prevalence"])
    assert sr.scores("common") == own
    assert (sr.n_train, sr.n_val, sr.n_test) == tuple(
        len(task.splits["s2"][s]) for s in ("train", "val", "test")
    )
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        E.score_split_run(tmp_path, task_dir)
    with pytest.raises(ValueError, match="which"):
        E.score_split_run(run_dir, task_dir, which="first")
