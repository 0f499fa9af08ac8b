"""benchmarks/split_optimism.py: the dry run (published split, blocked split, two region folds, the first two published
seeds) prints mean ± sd per split and fold with its test landslide-pixel share, and the folds pooled; the released
folders are copied out of ``data/reference`` with their statistics; a real run says what it lacks before any
work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script

from s12ls_utils import catalog, schema, splits, tasks

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "split_optimism.py"


def _module():
    return load_script(SCRIPT)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, book_sample):
    tmp = tmp_path_factory.mktemp("split-optimism")
    out, js = tmp / "out", tmp / "split-optimism.json"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--dry-run",
        "--model",
        "unet_prepost",
        "--out",
        str(out),
        "--json",
        str(js),
    ]
    if book_sample is not None:  # the book's sample and its S12LS-LD task (with the caches chapter 05 packed)
        cmd += ["--data", str(book_sample), "--task", str(book_sample / "tasks" / "S12LS-LD")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(js.read_text()), out


def test_dry_run_prints_every_split_and_fold_and_the_folds_pooled(dry_run):
    text, res, _ = dry_run
    mod = _module()
    lines = text.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:5] == ["split", "or", "fold", "seeds", "F1"])
    assert "AP" in lines[head] and "IOU" in lines[head] and "test landslide px" in lines[head]
    names = ["published", "blocked", *res["folds"], mod.POOLED]
    assert len(res["folds"]) == mod.DRY_FOLDS
    for name, line in zip(names, lines[head + 1 : head + 1 + len(names)], strict=True):
        assert line.startswith(name) and line.count("±") == 3 and line.rstrip().endswith("%"), line
        assert line[28:34].strip() == str(len(res["seeds"]))  # seeds
    # the dry run trains the first two published seeds (benchmarks/published_recipe.py's DRY; a real run all three)
    assert res["dry_run"] and res["seeds"] == [42, 123] and res["checkpoint"] == "last"
    assert res["recipe"]["max_steps"] == 1 and res["recipe"]["pos_weight"] == 5.0


def test_table_is_the_mean_and_sd_over_the_seeds(dry_run):
    _, res, _ = dry_run
    runs, table = res["runs"], {r["split"]: r for r in res["table"]}
    assert len(runs) == len(res["seeds"]) * (2 + len(res["folds"]))
    for split in ("published", "blocked", *res["folds"]):
        mine = [r for r in runs if r["split"] == split]
        assert sorted(r["seed"] for r in mine) == sorted(res["seeds"])
        for m in ("f1", "ap", "iou"):
            v = np.array([r[m] for r in mine])
            assert table[split][m + "_mean"] == pytest.approx(v.mean())
            assert table[split][m + "_sd"] == pytest.approx(v.std(ddof=1))
            assert all(0 <= x <= 1 for x in v)
        assert len({r["test_prevalence"] for r in mine}) == 1  # one test set per split, whatever the seed
    pooled = table[_module().POOLED]
    fold_runs = [r for r in runs if r["split"] in res["folds"]]
    assert pooled["f1_mean"] == pytest.approx(np.mean([r["f1"] for r in fold_runs]))
    n = {f: next(r["n_test"] for r in fold_runs if r["split"] == f) for f in res["folds"]}
    share = sum(n[f] * table[f]["test_prevalence"] for f in n) / sum(n.values())
    assert pooled["test_prevalence"] == pytest.approx(share) and pooled["n_test"] == sum(n.values())


def test_released_folders_are_copied_out_with_their_statistics(dry_run, book_sample):
    """The released folders (no statistics) are copied under --out, for Sentinel-2, and get their statistics
    there; the test landslide-pixel share of each is the share of its test patches in the catalog."""
    _, res, out = dry_run
    assert set(res["tasks"]) == {"published", "blocked", *res["folds"]}
    for split in ("blocked", *res["folds"]):
        path = Path(res["tasks"][split])
        assert path.is_relative_to(out / "tasks") and not path.is_relative_to(ROOT / "data" / "reference")
        assert sorted(p.name for p in path.iterdir()) == ["config.json", "s2"]
        assert sorted(p.name for p in (path / "s2").iterdir()) == ["norm.json", "splits.json"]
        if book_sample is None:
            continue
        task = tasks.load_task(path, data_dir=book_sample)
        ids = [e["id"] for e in task.splits["s2"]["test"]]
        cat = catalog.build_catalog(book_sample, sensors=["s2"]).set_index("key")
        share = cat.loc[ids, "n_positive"].sum() / (len(ids) * schema.PATCH_SIZE**2)
        row = next(r for r in res["runs"] if r["split"] == split)
        assert row["n_test"] == len(ids) and row["test_prevalence"] == pytest.approx(share)


def test_prepared_reuses_a_current_copy_and_replaces_a_stale_one(small_sample, tmp_path):
    mod = _module()
    cfg = tasks.load_config("S12LS-LD-blocked", satellites=["s2"], reference_sat="s2")
    res = splits.make_splits(catalog.build_catalog(small_sample, sensors=["s2"]), cfg)
    released = tasks.write_task(None, tmp_path / "released", cfg, result=res, stats=False)
    assert not (released / "s2" / "norm.json").exists()
    work = mod.prepared(released, tmp_path / "work" / released.name, small_sample, ["s2"])
    # the statistics write_task computes when it has the pixels
    full = tasks.write_task(small_sample, tmp_path / "full", cfg, result=res)
    assert json.loads((work / "s2" / "norm.json").read_text()) == json.loads(
        (full / "s2" / "norm.json").read_text()
    )
    stamp = (work / "s2" / "norm.json").stat().st_mtime_ns
    assert mod.prepared(released, work, small_sample, ["s2"]) == work
    assert (work / "s2" / "norm.json").stat().st_mtime_ns == stamp  # a current copy is kept
    listed = json.loads((released / "s2" / "splits.json").read_text())
    listed["train"] = listed["train"][:-1]
    (released / "s2" / "splits.json").write_text(json.dumps(listed))
    mod.prepared(released, work, small_sample, ["s2"])
    assert json.loads((work / "s2" / "splits.json").read_text()) == listed  # a stale one is replaced
    with pytest.raises(FileNotFoundError, match="no split"):
        mod.prepared(released, tmp_path / "other", small_sample, ["s1asc"])
    with pytest.raises(FileNotFoundError, match="not a released task folder"):
        mod.prepared(tmp_path, tmp_path / "other", small_sample, ["s2"])


def test_a_real_run_says_what_it_lacks_before_any_work(tmp_path, capsys):
    mod = _module()
    with pytest.raises(SystemExit):
        mod.main(["--task", str(tmp_path)])
    assert "--data and --task are required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mod.main(["--data", str(tmp_path), "--task", str(tmp_path / "missing")])
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mod.main(["--data", str(tmp_path), "--task", str(tmp_path), "--folds", "atlantis"])
    err = capsys.readouterr().err
    assert "unknown folds ['atlantis']" in err and "europe" in err  # the released folds are listed
