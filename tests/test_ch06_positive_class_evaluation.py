"""Chapter 06 (positive-class evaluation), executed: the recorded figures exist and are consistent, the
threshold comes from validation, and the trained baseline is reported next to the change-detection reference."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.chapter

ROOT = Path(__file__).resolve().parents[1]
STEM = "06-positive-class-evaluation"
SCORES = ("precision", "recall", "f1", "iou", "macro_f1", "macro_iou", "accuracy", "auprc", "roc_auc")
BINS = ("1_9px", "10_49px", "50_199px", "200pluspx")


@pytest.fixture(scope="module")
def chapter(run_chapter):
    return run_chapter(STEM)


def test_every_figure_is_recorded(chapter):
    r = chapter.results
    for p in ("model_", "ref_", "refdf_"):
        for k in (*SCORES, "f1_ci_low", "f1_ci_high", "iou_ci_low", "iou_ci_high"):
            assert isinstance(r[p + k], float), p + k
        for k in ("detection_rate", "fp_blobs_per_km2", *(f"detection_rate_{b}" for b in BINS)):
            assert p + k in r, p + k
    for k in (
        "data_dir",
        "run_dir",
        "threshold",
        "ref_threshold",
        "prevalence",
        "n_test",
        "n_val",
        "cover_fraction",
    ):
        assert k in r, k
    run = Path(r["run_dir"])
    assert ((run if run.is_absolute() else ROOT / run) / "best.pt").is_file()
    assert chapter.data_dir.is_dir()


def test_scores_are_consistent(chapter):
    r = chapter.results
    assert 0 < r["prevalence"] < 0.2  # landslides are rare
    assert 0 < r["threshold"] < 1
    for p in ("model_", "ref_", "refdf_"):
        prec, rec, f1 = r[p + "precision"], r[p + "recall"], r[p + "f1"]
        assert f1 == pytest.approx(2 * prec * rec / (prec + rec), rel=1e-9)
        assert r[p + "iou"] == pytest.approx(f1 / (2 - f1), rel=1e-9)  # IoU = F1 / (2 − F1)
        # rare positives: macro averages and accuracy flatter the landslide class
        assert r[p + "macro_f1"] > r[p + "f1"] and r[p + "macro_iou"] > r[p + "iou"]
        assert r[p + "accuracy"] > r[p + "f1"]
        assert r[p + "auprc"] > r[p + "prevalence" if p + "prevalence" in r else "prevalence"]
        for m in ("f1", "iou"):
            assert r[f"{p}{m}_ci_low"] <= r[p + m] <= r[f"{p}{m}_ci_high"]
        for b in BINS:
            v = r[f"{p}detection_rate_{b}"]
            assert v is None or 0 <= v <= 1
        assert r[p + "fp_blobs_per_km2"] >= 0
        assert not math.isnan(r[p + "roc_auc"])


def test_methods_are_ranked_only_by_the_paired_difference(chapter):
    """Each comparison states the difference, its interval over the same resampled patches and a verdict
    that follows from the interval alone. Which way the verdict goes on the sample is a property of the
    generated landslides and of a test split of a few patches, so it is not asserted here."""
    r = chapter.results
    for tag, p in (("ref", "ref_"), ("refdf", "refdf_")):
        for metric, key in (("f1", "f1"), ("iou", "iou"), ("ap", "auprc")):
            d = f"diff_{tag}_{metric}"
            assert r[d] == pytest.approx(r["model_" + key] - r[p + key], abs=1e-6), d
            low, high = r[d + "_low"], r[d + "_high"]
            assert low <= high
            expected = "model better" if low > 0 else ("no difference shown" if high >= 0 else None)
            if expected is not None:
                assert r[d + "_verdict"] == expected, d
            else:
                assert r[d + "_verdict"].endswith("better") and not r[d + "_verdict"].startswith("model"), d


def test_threshold_stability_is_recorded(chapter):
    r = chapter.results
    for p in ("model_", "ref_", "refdf_"):
        assert r[p + "threshold_low"] <= r[p + "threshold_high"], p
    assert r["model_threshold_low"] <= r["threshold"] <= r["model_threshold_high"]


def test_s12ls_ad_is_scored_at_patch_and_pixel_level(chapter):
    r = chapter.results
    n, pos = r["ad_n_test"], r["ad_n_test_with_landslides"]
    assert n > pos > 0  # patches with and without landslides
    assert r["ad_n_test_undated"] >= n - pos  # landslide-free patches carry no event date
    for p in ("model_", "ref_", "refdf_"):
        for k in ("auroc", "ap", "recall_at_far"):
            v = r[f"ad_{p}{k}"]
            assert v is not None and 0 <= v <= 1, (p, k)
        assert 0 <= r[f"ad_{p}pixel_f1"] <= 1 and 0 <= r[f"ad_{p}pixel_iou"] <= 1
    # the event-date reference is told which patches are annotated (undated ones get no score)
    assert r["ad_ref_auroc"] > r["ad_refdf_auroc"]
    rows = r["ad_patch_level"]
    assert {row["method"] for row in rows} == {"model", "reference", "reference_date_free"}
    for row in rows:
        assert row["too_few"] == (row["auroc"] is None), row


def test_date_oracle_and_real_all_negative_figures(chapter):
    r = chapter.results
    assert r["run_model"] == "unet_prepost" and r["checkpoint"] == "best"
    assert 0 <= r["n_test_low_confidence"] <= r["n_test"]
    assert r["real_all_negative_accuracy"] == pytest.approx(1 - r["real_positive_pct"] / 100, abs=0.001)
    assert 0.45 < r["real_all_negative_macro_f1"] < 0.5
    assert r["published_models"] == "U-ConvLSTM, UNet3D, ConvGRU, U-TAE"
    assert r["n_regions_too_few"] <= r["n_regions_test"]


def test_prevalence_and_data_label_are_recorded(chapter):
    """Every score comes with the landslide-pixel share of what it scored; the data label says what the
    patches were (the synthetic sample in the book's execution)."""
    r = chapter.results
    assert r["data_label"].startswith("synthetic sample")
    assert r["positive_pct"] == pytest.approx(100 * r["prevalence"])
    assert 0 < r["val_positive_pct"] < 100
    assert r["ad_patch_prevalence"] == pytest.approx(r["ad_n_test_with_landslides"] / r["ad_n_test"])
    # the pixel view of S12LS-AD scores the patches with landslides: a larger share than the whole split's
    assert 0 < r["ad_prevalence"] < r["ad_pixel_prevalence"] <= 1


def test_benchmark_keeps_real_synthetic_and_unreviewed_apart(chapter):
    """The glued benchmark table shows the three blocks, labelled, with the published test split's landslide
    share and the third-party hold-out range recorded from the package's reference data."""
    from s12ls_utils.evaluate import BENCHMARK_BLOCKS
    from s12ls_utils.reference import THIRD_PARTY_HOLDOUT, published_benchmark, split_frame

    r = chapter.results
    assert r["holdout_f1_low"] == pytest.approx(min(h["f1_low"] for h in THIRD_PARTY_HOLDOUT))
    assert r["holdout_f1_high"] == pytest.approx(max(h["f1_high"] for h in THIRD_PARTY_HOLDOUT))
    assert r["published_f1_best"] == pytest.approx(published_benchmark()["f1"].max() / 100)
    test = split_frame("S12LS-LD", "s2").query("split == 'test'")["n_positive"]
    assert r["published_test_positive_pct"] == pytest.approx(100 * test.sum() / (len(test) * 128 * 128))
    html = next(
        o["data"][o["metadata"]["scrapbook"].get("mime_prefix", "") + "text/html"]
        for c in chapter.nb.cells
        for o in c.get("outputs", [])
        if o.get("metadata", {}).get("scrapbook", {}).get("name") == "benchmark_table"
    )
    for label in (*BENCHMARK_BLOCKS, f"{r['data_label']} (this book)", "unreviewed repository", "<caption"):
        assert label in html, label
    # the blocks in this order: real rows first, the book's synthetic rows last
    assert html.index(BENCHMARK_BLOCKS[0]) < html.index(BENCHMARK_BLOCKS[1]) < html.index("(this book)")


def test_figures_and_tables_name_the_synthetic_sample(chapter):
    """What the chapter shows carries the data label: the static PR figure's description and the caption of
    every table it displays."""
    texts = [
        str(o.get("data", {}).get("text/plain", "")) + str(o.get("data", {}).get("text/html", ""))
        for c in chapter.nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    ]
    assert any("static figure" in t and "(synthetic sample)" in t for t in texts)
    captions = [t for t in texts if "<caption" in t]
    assert len(captions) >= 8 and all("synthetic sample" in t for t in captions)
