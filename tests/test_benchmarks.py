"""Every benchmark script's ``--dry-run`` runs and prints (or writes) its figures, with the commit and machine.

The GPU check, the published recipe and the split-optimism benchmark have dry-run tests of their own
(``test_gpu_check.py``, ``test_published_recipe.py``, ``test_split_optimism_benchmark.py``); this file runs the
others, each on the session's small sample where the script reads a data folder, so that a benchmark that no
longer runs against the package fails CI instead of a reader.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SPEEDUP = re.compile(r"^speedup (\d+(\.\d+)?)x$")


def run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--dry-run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, f"{script} --dry-run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def check_provenance(text: str) -> None:
    """The first line names this checkout's commit and this machine's cores."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    first = text.splitlines()[0]
    if head.returncode == 0:
        assert first.startswith(f"commit {head.stdout.strip()}"), first
    assert f"machine: {os.cpu_count()} cores" in first and "GPU " in first, first


def speedup(text: str) -> float:
    last = text.strip().splitlines()[-1]
    m = SPEEDUP.match(last)
    assert m, f"last line is not 'speedup <N>x': {last!r}"
    return float(m.group(1))


def n_patches(data: Path) -> dict[str, int]:
    return {s: len(list((data / s).glob("*.nc"))) for s in ("s1asc", "s1dsc", "s2")}


def test_catalog_scan(small_sample):
    text = run("catalog_scan.py", "--data", str(small_sample))
    check_provenance(text)
    counts = n_patches(small_sample)
    assert (
        f"{sum(counts.values())} patches ({counts['s1asc']} s1asc, {counts['s1dsc']} s1dsc, {counts['s2']} s2)"
        in text
    )
    rows = [
        ln for ln in text.splitlines() if ln.startswith(("straightforward (1 process)", "catalog, workers="))
    ]
    assert len(rows) == 3 and all(float(r.split()[-4]) > 0 for r in rows), rows
    assert "best of 1" in text and speedup(text) > 0


def test_norm_stats_agrees_with_its_reference(small_sample):
    text = run("norm_stats.py", "--data", str(small_sample))
    check_provenance(text)
    diff = float(re.search(r"largest relative difference streaming vs reference: (\S+)", text).group(1))
    assert diff <= 1e-6
    rows = {
        ln[:42].strip(): float(ln.split()[-2]) for ln in text.splitlines() if "norm_stats, workers=" in ln
    }
    # each timed streaming call reads every file (no memo of an earlier call): far from instantaneous
    assert len(rows) == 2 and all(t > 0.01 for t in rows.values()), rows
    assert speedup(text) > 0


def test_reference_load():
    text = run("reference_load.py")
    check_provenance(text)
    times = dict(re.findall(r"^(\w+)\s+([\d.]+) ms \(best of 1\)$", text, flags=re.M))
    assert set(times) == {"import", "patches", "counts", "catalog", "reference_split"}
    assert all(float(t) > 0 for t in times.values())


def test_loader_throughput():
    text = run("loader_throughput.py")
    check_provenance(text)
    assert re.search(
        r"^\d+ s2 files of S12LS-LD/val, batch 2, 8 samples per timed pass, best of 1", text, re.M
    )
    assert "cache: " in text and str(ROOT / "data" / "sample" / ".s12ls_cache") not in text
    assert speedup(text) > 0


def test_scaling_records_commit_and_machine(small_sample, tmp_path):
    out, record = tmp_path / "scaling.json", (BENCH / "results" / "scaling.json").read_text()
    text = run("scaling.py", "--data", str(small_sample), "--out", str(out))
    check_provenance(text)
    res = json.loads(out.read_text())
    assert {"commit", "cpu", "cores", "cores_usable", "gpu"} <= set(res["machine"])
    assert res["machine"]["cores"] == os.cpu_count()
    got = {(r["pass"], r["scheduler"]) for r in res["runs"]}
    assert got == {
        (p, s) for p in ("catalog", "stats", "signatures", "cache") for s in ("synchronous", "processes-2")
    }
    n = sum(n_patches(small_sample).values())
    for r in res["runs"]:
        assert r["failed"] == 0 and r["commit"] == res["machine"]["commit"] and r["seconds"] > 0
        assert r["n_files_set"] == n
    # the 2-process norm-stats pass reads every file again (no memo of the synchronous run before it)
    stats = {r["scheduler"]: r for r in res["runs"] if r["pass"] == "stats"}
    assert stats["processes-2"]["cpu_ms_per_file"] > 0.25 * stats["synchronous"]["cpu_ms_per_file"]
    md = out.with_suffix(".md").read_text()
    assert f"## {n} patch files" in md and res["machine"]["commit"] in md
    assert (BENCH / "results" / "scaling.json").read_text() == record  # a dry run leaves the record alone


def test_synth_memory():
    text = run("synth_memory.py")
    check_provenance(text)
    rows = [ln.split() for ln in text.splitlines() if re.match(r"^\s+[34]\s+\d+\s", ln)]
    assert [r[0] for r in rows] == ["3", "4"] and int(rows[1][1]) > int(rows[0][1]) > 0, rows
    assert re.search(r"^peak growth [+-]\d+ MB \([+-][\d.]+ %\) from \d+ to \d+ files$", text, re.M)
