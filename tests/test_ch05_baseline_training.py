"""Chapter 05 (baseline training), executed: the U-Net learns the synthetic landslides; the run is on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.chapter

ROOT = Path(__file__).resolve().parents[1]
STEM = "05-baseline-training"


@pytest.fixture(scope="module")
def chapter(run_chapter):
    return run_chapter(STEM)


def test_unet_prepost_learns_the_synthetic_landslides(chapter):
    r = chapter.results
    assert r["model"] == "unet_prepost" and r["device"] == "cpu"
    assert r["best_val_f1"] >= 0.5, r["best_val_f1"]
    assert r["best_val_f1_at_05"] >= 0.5, r["best_val_f1_at_05"]
    assert 0 < r["best_threshold"] < 1
    assert 1 <= r["epochs_run"] and 1 <= r["best_epoch"] <= r["epochs_run"]


def test_run_folder_holds_checkpoints_and_history(chapter):
    run = Path(chapter.results["run_dir"])
    run = run if run.is_absolute() else ROOT / run
    for name in ("best.pt", "last.pt", "history.csv"):
        assert (run / name).is_file(), name
    best = torch.load(run / "best.pt", weights_only=True)
    assert best["metrics"]["val_f1_best"] == pytest.approx(chapter.results["best_val_f1"])
    lines = (run / "history.csv").read_text().strip().splitlines()
    assert len(lines) == chapter.results["epochs_run"] + 1


def test_model_summary_and_pipeline_figures(chapter):
    r = chapter.results
    assert r["n_params"] > 1e5 and r["gflops_per_sample"] > 0.1
    assert r["cache_ms_per_sample"] < r["netcdf_ms_per_sample"]
    assert r["train_seconds"] > 0
