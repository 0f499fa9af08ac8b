"""The execution layer of the data passes (:mod:`s12ls_utils.parallel`): every pass gives the same result on
every scheduler (a local process pool, threads, in-process, a Dask ``LocalCluster`` passed as a Client and
as an address), failing files are reported rather than fatal, and bad arguments fail early and clearly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s12ls_utils import cli, parallel, tasks
from s12ls_utils.catalog import build_catalog, catalog_errors
from s12ls_utils.datasets import build_cache
from s12ls_utils.parallel import Failure, FilesFailed, check_scheduler, map_files
from s12ls_utils.signatures import collect_signatures

#: Schedulers compared with "synchronous" (the reference); "client"/"address" use the module's LocalCluster.
OTHERS = ["processes", "threads", "client", "address"]
#: Small pixel samples keep the signature pass quick; the comparison does not need more.
SIG_CAPS = {"max_background_px": 20, "max_landslide_px": 40}


@pytest.fixture(scope="module")
def cluster():
    """One ``LocalCluster`` (2 worker processes, 1 thread each, loopback only) and a Client for the module."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
        ) as lc,
        distributed.Client(lc, set_as_default=False) as client,  # nothing may rely on a default client
    ):
        yield lc, client


@pytest.fixture(autouse=True)
def always_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start a pool even for the few files of the small sample (else "processes" would read in-process)."""
    monkeypatch.setattr(parallel, "MIN_ITEMS_FOR_POOL", 1)


def resolve(name: str, cluster):
    """A scheduler argument from its test name."""
    if name == "client":
        return cluster[1]
    if name == "address":
        return cluster[0].scheduler_address
    return name


@pytest.fixture(scope="module")
def cat(small_sample: Path) -> pd.DataFrame:
    return build_catalog(small_sample, scheduler="synchronous", progress=False, use_cache=False)


@pytest.fixture(scope="module")
def task(small_sample: Path, cat: pd.DataFrame, tmp_path_factory) -> tasks.Task:
    out = tmp_path_factory.mktemp("tasks")
    path = tasks.write_task(small_sample, out, "S12LS-LD", catalog=cat, scheduler="synchronous")
    return tasks.load_task(path, data_dir=small_sample)


def train_paths(task: tasks.Task, sensor: str = "s2") -> list[str]:
    return [e["path"] for e in task.splits[sensor]["train"]]


def sample_copy(small_sample: Path, dst: Path) -> Path:
    shutil.copytree(small_sample, dst)
    return dst


def corrupt(path: Path) -> None:
    """Truncate a file to half its size (a broken download or a full disk)."""
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


# --------------------------------------------------------------------------------------------------
# map_files itself
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["synchronous", *OTHERS])
def test_map_files_keeps_order_and_reports_failures(name: str, cluster) -> None:
    items = [str(i) for i in range(37)]
    items[5] = "five"
    items[30] = "thirty"
    res = map_files(int, items, scheduler=resolve(name, cluster), workers=2, progress=False, chunk_size=4)
    assert res.results == [None if i in (5, 30) else i for i in range(37)]
    assert [(f.item, f.error, f.crashed) for f in res.failures] == [
        ("five", "ValueError", False),
        ("thirty", "ValueError", False),
    ]
    assert "invalid literal" in res.failures[0].message
    assert str(res.failures[0]).startswith("five: ValueError: invalid literal")


def test_one_worker_runs_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool of one process would only add its start-up: one worker reads here, with the same results."""

    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for one worker")

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_pool)
    items = [str(i) for i in range(37)] + ["x"]
    res = map_files(int, items, workers=1, progress=False)
    assert res.results == [*range(37), None] and [f.item for f in res.failures] == ["x"]
    with pytest.raises(AssertionError, match="a pool was started"):  # two workers still start one
        map_files(int, items, workers=2, progress=False)


def test_map_files_on_a_client_leaves_it_open(cluster) -> None:
    client = cluster[1]
    map_files(abs, [-1, -2], scheduler=client, progress=False)
    assert client.status == "running"
    assert map_files(abs, [-3], scheduler=client, progress=False).results == [3]


def test_crashed_failures_say_so() -> None:
    f = Failure("s2/a.nc", "BrokenProcessPool", "a child process terminated abruptly", crashed=True)
    assert f.reason.startswith("worker process failed (BrokenProcessPool")
    exc = FilesFailed("cache", [f] * 12, 40)
    assert "12 of 40 file(s) failed" in str(exc) and "… and 2 more" in str(exc) and len(exc.failures) == 12


@pytest.mark.parametrize("bad", ["proceses", "thread", "", "dask", 3, None])
def test_bad_scheduler_is_a_clear_error(bad, small_sample: Path, cat, task, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scheduler must be 'processes'.*'threads'.*'synchronous'.*tcp://"):
        check_scheduler(bad)
    # every pass checks it before doing any work
    with pytest.raises(ValueError, match="scheduler must be"):
        build_catalog(small_sample, scheduler=bad, use_cache=False, progress=False)
    with pytest.raises(ValueError, match="scheduler must be"):
        tasks.norm_stats(train_paths(task), small_sample, "s2", scheduler=bad)
    with pytest.raises(ValueError, match="scheduler must be"):
        tasks.write_task(small_sample, tmp_path, "S12LS-LD", scheduler=bad)
    with pytest.raises(ValueError, match="scheduler must be"):
        collect_signatures(cat, small_sample, scheduler=bad)
    with pytest.raises(ValueError, match="scheduler must be"):
        build_cache(task, "train", "s2", cache_dir=tmp_path, scheduler=bad)
    assert not any(tmp_path.iterdir())


def test_good_scheduler_values_pass(cluster) -> None:
    for ok in ("processes", "threads", "synchronous", "tcp://10.0.0.5:8786", "scheduler:8786", cluster[1]):
        assert check_scheduler(ok) is ok


def test_cli_rejects_a_bad_scheduler(small_sample: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["catalog", str(small_sample), "--scheduler", "thread"])
    assert exc.value.code == 2
    assert "scheduler must be 'processes'" in capsys.readouterr().err


def test_importing_the_passes_does_not_import_distributed() -> None:
    code = (
        "import sys, s12ls_utils.catalog, s12ls_utils.splits, s12ls_utils.signatures, s12ls_utils.cli; "
        "sys.exit('distributed' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --------------------------------------------------------------------------------------------------
# Each pass: identical results whatever the scheduler
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OTHERS)
def test_catalog_same_on_every_scheduler(name: str, cluster, small_sample: Path, cat: pd.DataFrame) -> None:
    df = build_catalog(
        small_sample, scheduler=resolve(name, cluster), workers=2, progress=False, use_cache=False
    )
    pd.testing.assert_frame_equal(df, cat)
    assert df.attrs["errors"] == cat.attrs["errors"] == []


@pytest.mark.parametrize("name", OTHERS)
def test_norm_stats_same_on_every_scheduler(name: str, cluster, small_sample: Path, task) -> None:
    for sensor in ("s2", "s1asc"):
        rels = train_paths(task, sensor)
        ref = tasks.norm_stats(rels, small_sample, sensor, scheduler="synchronous")
        got = tasks.norm_stats(rels, small_sample, sensor, scheduler=resolve(name, cluster), workers=2)
        assert got == ref and got.failures == []  # exact: moments are merged in file order


@pytest.mark.parametrize("name", ["processes", "client"])
def test_task_files_same_on_every_scheduler(
    name: str, cluster, small_sample: Path, cat: pd.DataFrame, task, tmp_path: Path
) -> None:
    path = tasks.write_task(
        small_sample, tmp_path, "S12LS-LD", catalog=cat, scheduler=resolve(name, cluster), workers=2
    )
    ref = Path(task.path)
    names = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file())
    for rel in names:
        assert (path / rel).read_bytes() == (ref / rel).read_bytes(), rel


@pytest.fixture(scope="module")
def sig_ref(cat: pd.DataFrame, small_sample: Path):
    return collect_signatures(
        cat, small_sample, sensors="s2", scheduler="synchronous", progress=False, **SIG_CAPS
    )


@pytest.mark.parametrize("name", OTHERS)
def test_signatures_same_on_every_scheduler(name: str, cluster, cat, small_sample: Path, sig_ref) -> None:
    got = collect_signatures(
        cat,
        small_sample,
        sensors="s2",
        scheduler=resolve(name, cluster),
        workers=2,
        progress=False,
        **SIG_CAPS,
    )
    assert len(got.patches) == (cat["sensor"] == "s2").sum() and got.errors == []
    pd.testing.assert_frame_equal(got.series, sig_ref.series)
    pd.testing.assert_frame_equal(got.changes, sig_ref.changes)
    pd.testing.assert_frame_equal(got.patches, sig_ref.patches)


@pytest.fixture(scope="module")
def cache_ref(task, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cache-sync")
    return build_cache(task, "train", "s2", cache_dir=root, scheduler="synchronous", progress=False)["s2"]


@pytest.mark.parametrize("name", OTHERS)
def test_cache_same_on_every_scheduler(name: str, cluster, task, cache_ref: Path, tmp_path: Path) -> None:
    folder = build_cache(task, "train", "s2", cache_dir=tmp_path, scheduler=resolve(name, cluster), workers=2)
    folder = folder["s2"]
    npys = sorted(p.name for p in cache_ref.glob("*.npy"))
    assert npys and npys == sorted(p.name for p in folder.glob("*.npy"))
    for name_ in npys:
        assert (folder / name_).read_bytes() == (cache_ref / name_).read_bytes(), name_
    got, ref = (json.loads((f / "manifest.json").read_text()) for f in (folder, cache_ref))
    assert {k: v for k, v in got.items() if k != "build_seconds"} == {
        k: v for k, v in ref.items() if k != "build_seconds"
    }


# --------------------------------------------------------------------------------------------------
# A corrupt file among good ones: the pass completes, the file is reported with its reason
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["processes", "client"])
def test_catalog_reports_a_corrupt_file(name: str, cluster, small_sample: Path, cat, tmp_path: Path) -> None:
    data = sample_copy(small_sample, tmp_path / "data")
    bad = cat.loc[cat["sensor"] == "s2", "path"].iloc[2]
    corrupt(data / bad)
    df = build_catalog(data, scheduler=resolve(name, cluster), workers=2, progress=False, use_cache=False)
    assert set(df["path"]) == set(cat["path"]) - {bad}
    errs = catalog_errors(df)
    assert errs["path"].tolist() == [bad] and "read" in errs["reason"].iloc[0]


@pytest.mark.parametrize("name", ["processes", "client"])
def test_norm_stats_leave_out_a_corrupt_file(
    name: str, cluster, small_sample: Path, task, tmp_path: Path, caplog
) -> None:
    data = sample_copy(small_sample, tmp_path / "data")
    rels = train_paths(task)
    bad = rels[1]
    corrupt(data / bad)
    got = tasks.norm_stats(rels, data, "s2", scheduler=resolve(name, cluster), workers=2)
    # the one reader's error, naming what netCDF-C raised
    assert [f.item for f in got.failures] == [bad] and got.failures[0].error == "PatchReadError"
    assert "not a readable NetCDF/HDF5 file" in got.failures[0].message
    assert got == tasks.norm_stats([r for r in rels if r != bad], small_sample, "s2", scheduler="synchronous")
    assert "1 of" in caplog.text and bad in caplog.text


def test_write_task_records_a_corrupt_train_file(small_sample: Path, cat, task, tmp_path: Path) -> None:
    data = sample_copy(small_sample, tmp_path / "data")
    bad = train_paths(task)[0]
    corrupt(data / bad)
    path = tasks.write_task(data, tmp_path / "tasks", "S12LS-LD", catalog=cat, workers=2)
    left_out = json.loads((path / "config.json").read_text())["norm"]["unreadable_files"]
    assert [f["path"] for f in left_out] == [bad] and left_out[0]["reason"]
    norm = json.loads((path / "s2" / "norm.json").read_text())["s2"]
    good = [r for r in train_paths(task) if r != bad]
    assert norm == tasks.norm_stats(good, small_sample, "s2", scheduler="synchronous")


@pytest.mark.parametrize("name", ["processes", "client"])
def test_signatures_report_a_corrupt_file(
    name: str, cluster, small_sample: Path, cat, sig_ref, tmp_path: Path
):
    data = sample_copy(small_sample, tmp_path / "data")
    bad = cat.loc[cat["sensor"] == "s2", "path"].iloc[0]
    corrupt(data / bad)  # after cataloguing: the catalog still lists it
    got = collect_signatures(
        cat, data, sensors="s2", scheduler=resolve(name, cluster), workers=2, progress=False, **SIG_CAPS
    )
    assert [Path(e["path"]).name for e in got.errors] == [Path(bad).name]
    assert got.errors[0]["reason"].startswith("PatchReadError: ") and "read" in got.errors[0]["reason"]
    assert len(got.patches) == len(sig_ref.patches) - 1
    assert Path(bad).stem.replace("_s2_", "_") not in set(got.patches["key"])


@pytest.mark.parametrize("name", ["processes", "client"])
def test_cache_reports_all_corrupt_files(
    name: str, cluster, small_sample: Path, task, tmp_path: Path
) -> None:
    data = sample_copy(small_sample, tmp_path / "data")
    rels = train_paths(task)
    bad = [rels[0], rels[-1]]  # the first file too (it fixes the array shapes)
    for rel in bad:
        corrupt(data / rel)
    moved = tasks.load_task(task.path, data_dir=data)
    with pytest.raises(FilesFailed, match=f"2 of {len(rels)} file") as exc:
        build_cache(moved, "train", "s2", cache_dir=tmp_path / "cache", scheduler=resolve(name, cluster))
    assert [f.item for f in exc.value.failures] == bad  # every bad file, each with its reason
    assert all(f.error == "PatchReadError" and "read" in f.message for f in exc.value.failures)
    assert bad[0] in str(exc.value) and bad[1] in str(exc.value)
    # no cache written, no temporary folder left behind
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------
def test_cli_catalog_on_a_dask_scheduler(cluster, small_sample: Path, cat, capsys) -> None:
    address = cluster[0].scheduler_address
    assert cli.main(["catalog", str(small_sample), "--no-cache", "--scheduler", address]) == 0
    out = capsys.readouterr()
    assert f"{len(cat)} patches" in out.out and "errors: 0" in out.out
    assert f"Dask scheduler {address}" in out.err  # where the work ran, next to the progress bar


def test_cli_cache_and_signatures(small_sample: Path, task, cache_ref: Path, sig_ref, tmp_path: Path, capsys):
    args = ["cache", str(task.path), "--data-dir", str(small_sample), "--cache-dir", str(tmp_path / "c")]
    assert cli.main([*args, "--splits", "train", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    n = len(train_paths(task))
    assert f"train/s2: {n} patches" in out and "built in" in out
    built = next((tmp_path / "c").rglob("x.npy"))
    assert np.array_equal(np.load(built), np.load(cache_ref / "x.npy"))
    assert cli.main([*args, "--splits", "train", "--scheduler", "threads"]) == 0
    assert "up to date" in capsys.readouterr().out

    data = sample_copy(small_sample, tmp_path / "data")  # the catalog cache is written into the data folder
    out_file = tmp_path / "sig" / "series.parquet"
    argv = [
        "signatures",
        str(data),
        "--out",
        str(out_file),
        "--sensors",
        "s2",
        "--patches",
        str(tmp_path / "p.pq"),
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"signatures of {len(sig_ref.patches)} patches" in out
    series = pd.read_parquet(out_file)
    assert len(series) > 0 and len(pd.read_parquet(tmp_path / "p.pq")) == len(sig_ref.patches)
    assert set(series["key"].astype(str)) == set(sig_ref.patches["key"])
