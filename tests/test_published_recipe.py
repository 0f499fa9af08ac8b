"""benchmarks/published_recipe.py: the three-seed run of the published recipe, dry-run on the CPU, and the
recipe it shares with chapter 05's parameter file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import load_script, parameter_defaults

from s12ls_utils import reference
from s12ls_utils.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "published_recipe.py"


def _module():
    return load_script(SCRIPT)


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
    assert f"{reference.published_benchmark().loc['U-TAE', 'ap']:.2f}" in lines[head + 1]  # its published AP
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


def test_the_recipe_is_the_published_protocol_and_chapter05s_parameter_file_agrees():
    """``RECIPE`` and ``SEEDS`` read against the paper's protocol as the book states it beside the published scores
    (``reference.PUBLISHED_PROTOCOL``), not against a copy of themselves; they are training settings; the
    parameter file of chapter 05 holds the same."""
    mod = _module()
    proto, recipe = reference.PUBLISHED_PROTOCOL, mod.RECIPE
    assert (
        f"({', '.join(map(str, mod.SEEDS))})" in proto["seeds"]
    )  # the published seeds: a real run's default
    assert list(mod.DRY["seeds"]) == list(mod.SEEDS[:2])  # the dry run's: the first two
    assert str(recipe["epochs"]) == proto["epochs"]
    assert proto["batch"].startswith(f"{recipe['batch_size']}, whole") and recipe["crop"] is None  # no crops
    lr, decay = (float(x) for x in re.findall(r"\d[\d.e-]*", proto["optimiser"]))
    assert (recipe["lr"], recipe["weight_decay"]) == (lr, decay)
    assert (
        recipe["loss"] == "bce_dice" and proto["loss"] == f"BCE + Dice, pos_weight {recipe['pos_weight']:g}"
    )
    assert recipe["augment"] is True and "flips" in proto["augmentation"]
    assert recipe["patience"] is None and proto["checkpoint tested"] == "the last epoch"  # no early stop
    TrainConfig.from_dict({"task_dir": "task", **recipe})  # every key a training setting
    params = yaml.safe_load((ROOT / "book" / "params" / "published-recipe.yaml").read_text())
    for key in ("epochs", "batch_size", "crop", "lr", "weight_decay", "loss", "pos_weight", "patience"):
        assert params[key] == recipe[key], key
    assert params["model"] == "utae" and params["sensors"] == ["s2"]
    # every key of the parameter file is a parameter of chapter 05
    names = set(parameter_defaults(ROOT / "book" / "05-baseline-training.ipynb"))
    assert set(params) <= names, set(params) - names
