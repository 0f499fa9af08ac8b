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


def test_runs_without_errors(chapter):
    assert chapter.errors() == []


def test_every_figure_is_recorded(chapter):
    r = chapter.results
    for p in ("model_", "ref_"):
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
    for p in ("model_", "ref_"):
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


def test_baseline_is_reported_next_to_the_reference(chapter):
    r = chapter.results
    assert r["model_auprc"] > r["ref_auprc"], (r["model_auprc"], r["ref_auprc"])
    assert r["model_f1"] > r["ref_f1"], (r["model_f1"], r["ref_f1"])


def test_referenced_glue_is_recorded(chapter):
    missing = chapter.referenced_glue() - chapter.glued()
    assert not missing, f"glued in the text but never recorded: {sorted(missing)}"
    assert chapter.referenced_glue() <= set(chapter.results)
