"""benchmarks/published_recipe.py: the three-seed run of the published recipe, dry-run on the CPU, and the
recipe it shares with chapter 05's parameter file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "published_recipe.py"


def _module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("published_recipe", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, book_sample):
    out = tmp_path_factory.mktemp("recipe") / "recipe.json"
    cmd = [sys.executable, str(SCRIPT), "--dry-run", "--model", "utae", "--json", str(out)]
    if book_sample is not None:  # the book's sample and task, read as they are
        cmd += ["--data", str(book_sample), "--task", str(book_sample / "tasks" / "S12LS-LD")]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_dry_run_prints_mean_and_std_under_the_published_row(dry_run):
    text, res = dry_run
    lines = text.splitlines()
    head = next(
        i for i, ln in enumerate(lines) if ln.split()[:5] == ["AP", "F1", "IOU", "PRECISION", "RECALL"]
    )
    assert lines[head + 1].startswith("published U-TAE (3 seeds, mean)")
    assert "67.75" in lines[head + 1]  # the published AP of U-TAE
    seeds = list(_module().DRY["seeds"])  # the dry run trains the first two published seeds
    assert len(seeds) == 2
    assert lines[head + 2].startswith(f"this run, last epoch ({len(seeds)} seeds)")
    assert lines[head + 3].startswith(f"this run, best epoch ({len(seeds)} seeds)")
    assert lines[head + 2].count("±") == 5
    assert res["dry_run"] and res["seeds"] == seeds


def test_summary_is_the_mean_and_std_over_the_seeds(dry_run):
    _, res = dry_run
    for which in ("last", "best"):
        runs = res["per_seed"][which]
        assert sorted(runs) == sorted(str(seed) for seed in res["seeds"]) and len(runs) >= 2
        for col in ("ap", "f1", "iou", "precision", "recall"):
            v = np.array([r[col] for r in runs.values()])
            mean, std = res["summary"][which][col]
            assert mean == pytest.approx(v.mean()) and std == pytest.approx(v.std(ddof=1))
            assert all(0 <= x <= 100 for x in v)


def test_the_recipe_is_the_published_one_and_chapter05s_parameter_file_agrees():
    mod = _module()
    assert mod.SEEDS == (42, 123, 777)  # the published seeds: a real run's default
    assert list(mod.DRY["seeds"]) == [42, 123]  # the dry run's: the first two
    recipe = mod.RECIPE
    assert recipe == {
        "epochs": 75,
        "batch_size": 16,
        "crop": None,
        "lr": 1e-3,
        "weight_decay": 0.01,
        "loss": "bce_dice",
        "pos_weight": 5.0,
        "augment": True,
        "patience": None,
    }
    params = yaml.safe_load((ROOT / "book" / "params" / "published-recipe.yaml").read_text())
    for key in ("epochs", "batch_size", "crop", "lr", "weight_decay", "loss", "pos_weight", "patience"):
        assert params[key] == recipe[key], key
    assert params["model"] == "utae" and params["sensors"] == ["s2"]
    # every key of the parameter file is a parameter of chapter 05
    nb = json.loads((ROOT / "book" / "05-baseline-training.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    names = {ln.split("=")[0].strip() for ln in "".join(cell["source"]).splitlines() if "=" in ln}
    assert set(params) <= names, set(params) - names
