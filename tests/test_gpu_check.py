"""benchmarks/gpu_check.py: the dry run (its stages on the CPU, tiny) passes and reports its figures; the
GPU run refuses to start without CUDA; the timeout is enforced."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
RUNS = ("unet_prepost-eager", "unet_prepost-compiled", "utae-eager", "utae-compiled", "ddp-nproc1 (torchrun)")


def _run(args: list[str], timeout: float, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict, float]:
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    t0 = time.monotonic()
    proc = _run(["--dry-run", "--timeout", "400", "--out", str(out)], timeout=460)
    return proc, json.loads(out.read_text()) if out.exists() else {}, time.monotonic() - t0


def test_dry_run_passes_every_stage(dry_run):
    proc, res, seconds = dry_run
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert res["ok"] and res["mode"] == "dry-run" and not res["timed_out"]
    assert set(res["stages"]) == {"synth", "task", "ddp --nproc 1", "evaluate"} | {
        f"train {r}" for r in RUNS[:4]
    }
    assert all(s["ok"] for s in res["stages"].values())
    # the dry run synthesises the sensor it trains on (S2), about --n-per-sensor files of it
    synth = res["synth"]
    assert synth["per_sensor"] == {"s1asc": 0, "s1dsc": 0, "s2": synth["files"]}
    assert synth["files"] >= 0.9 * res["settings"]["n_per_sensor"] and min(res["s2_split_sizes"].values()) > 0
    assert "FAILED" not in proc.stdout and "samples/s" in proc.stdout and "AUPRC" in proc.stdout
    print(f"dry run: {seconds:.0f} s")


def test_dry_run_figures(dry_run):
    _, res, _ = dry_run
    runs = res["runs"]
    assert set(runs) == set(RUNS)
    for name, r in runs.items():
        assert r["samples"] >= 2 * res["train"]["batch_size"] // 2, name
        for k in ("samples_per_s", "samples_per_s_all_steps", "first_step_s", "train_steps_s", "wall_s"):
            assert r[k] > 0 and math.isfinite(r[k]), (name, k)
        assert 0 <= r["data_wait_share"] < 1, name
    for model in ("unet_prepost", "utae"):
        assert runs[f"{model}-eager"]["peak_mem_mb"] > 0
        assert math.isfinite(runs[f"{model}-compiled"]["compile_s"])  # the eager backend: ~0 on the CPU
        assert runs[f"{model}-compiled"]["compile"] == "eager"
    ddp = runs["ddp-nproc1 (torchrun)"]
    assert ddp["backend"] == "gloo" and ddp["world_size"] == 1
    ev = res["evaluation"]
    assert ev["n_test"] > 0 and ev["run"] == "ddp-nproc1"
    for k in ("f1", "iou", "auprc"):
        assert 0 <= ev[k] <= 1, k
    assert ev["auprc"] > 0


def test_without_cuda_it_stops_at_once():
    proc = _run([], timeout=120, CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 2
    assert "no CUDA device: run with --dry-run on CPU" in proc.stderr


def test_the_timeout_is_enforced(tmp_path):
    out = tmp_path / "t.json"
    t0 = time.monotonic()
    proc = _run(
        ["--dry-run", "--timeout", "4", "--work", str(tmp_path / "w"), "--out", str(out)], timeout=120
    )
    assert proc.returncode == 124, f"{proc.stdout}\n{proc.stderr}"
    assert "TIMEOUT after 4" in proc.stdout and time.monotonic() - t0 < 60
    res = json.loads(out.read_text())
    assert res["timed_out"] and not res["ok"]


def test_a_stage_killed_by_the_watchdog_counts_as_the_timeout(tmp_path):
    """The race CI met under load: the watchdog kills the pool of a running stage, the stage fails at once and
    the main thread reports before the watchdog does. That report must say timeout (124), not failure (1)."""
    import argparse

    mod = load_script(SCRIPT)
    args = argparse.Namespace(timeout=60.0, dry_run=True, out=str(tmp_path / "t.json"), verbose=False)
    chk = mod.Check(args)
    chk.stage("synth", lambda: None)
    assert chk.finish() == 0  # before the deadline: the run's own result
    chk = mod.Check(args)
    chk.expired.set()  # the watchdog passed the deadline and killed the stage's processes
    chk.stage("synth", lambda: (_ for _ in ()).throw(RuntimeError("BrokenProcessPool")))
    assert chk.finish() == 124
    res = json.loads((tmp_path / "t.json").read_text())
    assert res["timed_out"] and not res["ok"] and not res["stages"]["synth"]["ok"]
