"""The data folder on the command line: one option (``--data``) on every command that reads a task, the folder
``norm`` records, the check for missing files before any work (and ``--allow-missing``), and the whole recipe
for the real data (``book/params/real-blocked.yaml``) run end to end on a synthetic sample.

One sample of about 30 patches per sensor serves every test. Its task folder is written in the released format
(no statistics, published ``inventory`` tokens) *outside* the data folder, as ``data/reference/tasks`` is. On a
sample this small the blocked split leaves no validation patch, so the folder carries the published rule's
split; the commands, not the split, are under test here (the blocked split is tested in test_splits and
test_reference).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from test_recipe import RECIPE, _named, _tokens, recipe_commands

from s12ls_utils import cli, splits, tasks
from s12ls_utils.catalog import build_catalog

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: The recipe's task folder name and its paths, as the recipe writes them.
TASK = "S12LS-LD-blocked"
RELEASED = Path("data/reference/tasks") / TASK
DATA = Path("data/real/data_harmonized")
COPY = DATA / "tasks" / TASK
#: Tiny settings added to the recipe's commands (later options win): a 1-epoch small U-Net on the CPU.
TINY_TRAIN = [
    "--model",
    "unet_prepost",
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--device",
    "cpu",
    "--set",
    'model_kwargs={"widths": [4, 8, 16]}',
    "--set",
    "threads=2",
    "--set",
    "warmup_epochs=0",
]
TINY_EVAL = ["--n-boot", "50", "--device", "cpu", "--batch-size", "4"]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def site(tmp_path_factory, sample30) -> Path:
    """A folder laid out like the repository with the real data: ``data/real/data_harmonized`` (a sample),
    ``data/reference/tasks/S12LS-LD-blocked`` (released format, outside the data folder) and the recipe file
    at ``book/params/real-blocked.yaml``. Tests run the recipe's commands verbatim from here."""
    root = tmp_path_factory.mktemp("site")
    sample30(root / DATA)  # 30 per sensor, seed 5: written once per run, shared with test_evaluate
    cat = build_catalog(root / DATA, progress=False, workers=1, use_cache=False)
    cfg = tasks.load_config("S12LS-LD")  # see the module docstring: the blocked split has no val patch here
    res = splits.make_splits(cat, cfg)
    out = tasks.write_task(
        None, root / "released", cfg, result=res, stats=False, inventory="token", compact=True
    )
    (root / RELEASED).parent.mkdir(parents=True)
    out.rename(root / RELEASED)
    (root / "book" / "params").mkdir(parents=True)
    shutil.copy(RECIPE, root / "book" / "params" / RECIPE.name)
    return root


@pytest.fixture
def at(site, monkeypatch):
    monkeypatch.chdir(site)
    return site


def _partial(site: Path, name: str, drop: dict[str, list[str]]) -> Path:
    """``data/real/<name>``: the sample's files as links, without ``drop`` (sensor → relative paths)."""
    part = site / "data" / "real" / name
    shutil.rmtree(part, ignore_errors=True)
    gone = {p for paths in drop.values() for p in paths}
    for sensor in ("s1asc", "s1dsc", "s2"):
        (part / sensor).mkdir(parents=True)
        for f in sorted((site / DATA / sensor).glob("*.nc")):
            if f"{sensor}/{f.name}" not in gone:
                (part / sensor / f.name).symlink_to(f)
    return part


def _entries(task_dir: Path, sensor: str, split: str) -> list[str]:
    return [e[sensor] for e in json.loads((task_dir / sensor / "splits.json").read_text())[split]]


# --------------------------------------------------------------------------------------------------
# The recipe, end to end
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recipe_run(site):
    """The recipe's s12ls commands (norm → cache → train → evaluate), verbatim from the recipe file but for
    tiny training settings, run in ``site``; the download is replaced by the sample."""
    named = _named(recipe_commands())
    before = _tree(site / RELEASED)
    cwd = os.getcwd()
    os.chdir(site)
    rcs = {}
    try:
        for role, extra in (
            ("norm", ["--workers", "1"]),
            ("cache", ["--workers", "1"]),
            ("train", TINY_TRAIN),
        ):
            rcs[role] = cli.main(_tokens(named[role])[1:] + extra)
        rcs["evaluate"] = cli.main(_tokens(named["evaluate"])[1:] + TINY_EVAL)
    finally:
        os.chdir(cwd)
    return named, rcs, before


def test_the_recipe_runs_end_to_end_on_a_task_outside_the_data_folder(site, recipe_run):
    named, rcs, before = recipe_run
    assert rcs == {"norm": 0, "cache": 0, "train": 0, "evaluate": 0}
    # the released folder is untouched; norm wrote a copy with statistics into the data folder's tasks/
    assert _tree(site / RELEASED) == before and not list((site / RELEASED).rglob("norm*.json"))
    task = tasks.load_task(site / COPY)
    assert "s2" in task.norm and task.data_dir == (site / DATA).resolve()
    config = json.loads((site / COPY / "config.json").read_text())
    assert config["data_dir"] == {"path": str((site / DATA).resolve()), "relative_to_task": "../.."}
    assert config["norm"]["sensors"] == ["s2"] and "missing_files" not in config
    # cache, run and evaluation
    assert list((site / DATA / ".s12ls_cache").glob("*/s2/test/s2/manifest.json"))
    run = site / _tokens(named["evaluate"])[2]
    info = json.loads((run / "run.json").read_text())
    assert Path(info["config"]["task_dir"]) == COPY and info["config"]["data_dir"] == str(DATA)
    assert (
        info["config"]["crop"] is None and info["config"]["pos_weight"] == 5 and "missing_files" not in info
    )
    out = site / _tokens(named["evaluate"])[_tokens(named["evaluate"]).index("--out") + 1]
    scores = json.loads(out.read_text())
    assert scores["n_test"] == len(task.splits["s2"]["test"]) and 0 < scores["prevalence"] < 1
    assert "missing_files" not in scores


def test_the_recorded_data_folder_survives_moves(site, recipe_run, tmp_path):
    """The copy records its data folder twice: relative to the task (task and data moved together) and
    absolute (the task folder moved alone)."""
    moved = tmp_path / "elsewhere" / TASK
    shutil.copytree(site / COPY, moved)
    assert tasks.load_task(moved).data_dir == (site / DATA).resolve()  # absolute
    both = tmp_path / "both"
    (both / "data").mkdir(parents=True)
    for sensor in ("s2",):
        (both / "data" / sensor).symlink_to(site / DATA / sensor)
    shutil.copytree(site / COPY, both / "data" / "tasks" / TASK)
    rec = json.loads((both / "data" / "tasks" / TASK / "config.json").read_text())
    rec["data_dir"]["path"] = str(tmp_path / "gone")  # the old absolute path no longer exists
    (both / "data" / "tasks" / TASK / "config.json").write_text(json.dumps(rec))
    (both / "data" / "tasks" / TASK).rename(both / "data" / "tasks" / "moved")
    assert tasks.load_task(both / "data" / "tasks" / "moved").data_dir == (both / "data").resolve()


# --------------------------------------------------------------------------------------------------
# Missing files: refused before any work, or left out on request and counted
# --------------------------------------------------------------------------------------------------
def test_norm_refuses_a_wrong_or_partial_data_folder(at, capsys):
    train = _entries(at / RELEASED, "s2", "train")
    part = _partial(at, "partial_norm", {"s2": train[:2]})
    out = at / "norm_out"
    argv = ["norm", str(RELEASED), "--data", str(part.relative_to(at)), "--sensors", "s2", "--out", str(out)]
    assert cli.main([*argv, "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert f"2 of its {len(train)} train files are missing" in err and "s2 2 of" in err
    assert "data/real/partial_norm" in err and f"pass --data {DATA}" in err and "--allow-missing" in err
    assert not out.exists()  # nothing written
    # the case: a folder that holds almost none of the task's files
    empty = at / "data" / "real" / "other"
    (empty / "s2").mkdir(parents=True, exist_ok=True)
    assert cli.main(["norm", str(RELEASED), "--data", str(empty), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "are missing under the data folder data/real/other" in err and "none of them exist" in err
    assert not out.exists()
    # opted in: statistics from the files that exist, the count in config.json
    assert cli.main([*argv, "--workers", "1", "--allow-missing"]) == 0
    assert "left out of the statistics: 2 of" in capsys.readouterr().err
    config = json.loads((out / TASK / "config.json").read_text())
    assert config["missing_files"]["missing"] == {"s2": 2}
    assert config["missing_files"]["looked_for"] == {"s2": len(train)}
    assert config["missing_files"]["data_dir"] == str(part.resolve())


def test_cache_refuses_missing_files_and_records_them_when_allowed(at, recipe_run, capsys):
    test = _entries(at / COPY, "s2", "test")
    part = _partial(at, "partial_cache", {"s2": test[:1]})
    argv = ["cache", str(COPY), "--sensors", "s2", "--workers", "1"]
    assert cli.main([*argv, "--data", str(part)]) == 2
    err = capsys.readouterr().err
    assert "task S12LS-LD: 1 of its" in err and "s2 1 of" in err and f"pass --data {DATA}" in err
    assert not (part / ".s12ls_cache").exists()  # nothing built, not even the train split
    assert cli.main([*argv, "--data-dir", str(part), "--splits", "test"]) == 2  # the old spelling still works
    capsys.readouterr()
    assert cli.main([*argv, "--data", str(part), "--allow-missing"]) == 0
    assert "left out of the cache: 1 of" in capsys.readouterr().err
    manifest = json.loads(next((part / ".s12ls_cache").glob("*/s2/test/s2/manifest.json")).read_text())
    assert manifest["n"] == len(test) - 1 and Path(test[0]).stem.replace("_s2_", "_") not in manifest["ids"]
    train = json.loads(next((part / ".s12ls_cache").glob("*/s2/train/s2/manifest.json")).read_text())
    assert train["n"] == len(_entries(at / COPY, "s2", "train"))  # the train split lost nothing


def test_train_refuses_missing_files_and_records_them_when_allowed(at, recipe_run, capsys):
    val = _entries(at / COPY, "s2", "val")
    part = _partial(at, "partial_train", {"s2": _entries(at / COPY, "s2", "train")[:1]})
    argv = ["train", str(COPY), "--config", "book/params/real-blocked.yaml", "--data", str(part), *TINY_TRAIN]
    argv += ["--run-name", "partial", "--runs-dir", "partial_runs"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "1 of its" in err and "train and val files are missing" in err and f"pass --data {DATA}" in err
    assert not (at / "partial_runs").exists()
    assert cli.main([*argv, "--allow-missing"]) == 0
    info = json.loads((at / "partial_runs" / "partial" / "run.json").read_text())
    assert info["missing_files"]["missing"] == {"s2": 1} and info["summary"]["missing_files"] == {"s2": 1}
    assert info["missing_files"]["looked_for"]["s2"] == len(_entries(at / COPY, "s2", "train")) + len(val)


def test_evaluate_refuses_missing_files_and_records_them_when_allowed(at, recipe_run, capsys):
    named = recipe_run[0]
    run = _tokens(named["evaluate"])[2]
    part = _partial(at, "partial_eval", {"s2": _entries(at / COPY, "s2", "test")[:1]})
    out = at / "partial_eval.json"
    argv = ["evaluate", run, "--data", str(part), "--out", str(out), *TINY_EVAL]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "val and test files are missing" in err and "s2 1 of" in err and f"pass --data {DATA}" in err
    assert not out.exists()
    assert cli.main([*argv, "--allow-missing"]) == 0
    scores = json.loads(out.read_text())
    assert scores["missing_files"] == {"s2": 1}
    assert scores["n_test"] == len(_entries(at / COPY, "s2", "test")) - 1


def test_a_task_without_a_data_folder_names_the_option(at, tmp_path, capsys):
    lone = tmp_path / "lone"
    shutil.copytree(at / RELEASED, lone)
    for argv in (["cache", str(lone)], ["norm", str(lone)], ["train", str(lone), "--epochs", "1"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "--data DIR" in err and "load_task(" not in err, argv
