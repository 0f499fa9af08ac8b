"""Shared pytest fixtures: synthetic samples written once per test run, and executed chapters."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from helpers import glue_refs

from s12ls_utils.sample import load_manifest, make_sample

ROOT = Path(__file__).resolve().parents[1]


#: The test files that take longest, slowest first: worker-seconds under ``pytest -n 2 --dist loadfile`` on 2026-12-07
#: (sum of each file's test durations: test_benchmarks 89, test_synthetic 78, test_reference 75, test_rendered_book 70,
#: test_gpu_check 58, test_training_ddp 40, test_split_optimism_benchmark 40, test_splits 35, test_parallel 34,
#: test_jupyterlab 33, test_evaluate 33, test_realism 31, test_published_recipe 25, test_signatures 21). ``make test``
#: runs pytest in two workers, one file at a time each (``--dist loadfile``), in collection order
#: (``--no-loadscope-reorder``: pytest-xdist would otherwise hand out the files with the most tests first): handing
#: these out first keeps one worker from being left alone with one of them at the end. A stale list costs time,
#: never a check.
SLOW_FILES = (
    "test_benchmarks.py",
    "test_synthetic.py",
    "test_reference.py",
    "test_rendered_book.py",
    "test_gpu_check.py",
    "test_training_ddp.py",
    "test_split_optimism_benchmark.py",
    "test_splits.py",
    "test_parallel.py",
    "test_jupyterlab.py",
    "test_evaluate.py",
    "test_realism.py",
    "test_published_recipe.py",
    "test_signatures.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def _shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str, build) -> Path:
    """``build(folder)`` run once per test run, even across pytest-xdist workers (each worker has a session of
    its own; their temporary folders share a parent, where the folder, a lock and a completion mark live), then
    ``folder``."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = root / name, root / f"{name}.complete"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits here while the first one builds
        try:
            if not done.exists():
                shutil.rmtree(folder, ignore_errors=True)  # an earlier build that did not finish
                build(folder)
                done.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic sample (about 10 patches per sensor, seed 3), written once per test run (both pytest-xdist
    workers read it). Treat it as read-only: tests that change files copy it first (``helpers.copy_sample``)."""
    return _shared_dir(
        tmp_path_factory, "small_sample", lambda d: make_sample(d, n_per_sensor=10, seed=3, progress=False)
    )


@pytest.fixture(scope="session")
def sample30(tmp_path_factory: pytest.TempPathFactory):
    """``sample30(dst) -> dst``: a fresh copy of one synthetic sample of about 30 patches per sensor (seed 5) at
    ``dst``. The sample is written once per test run (test_cli_data and test_evaluate both use it); each caller
    gets its own copy to write tasks, caches and records into."""
    master = _shared_dir(
        tmp_path_factory, "sample30", lambda d: make_sample(d, n_per_sensor=30, seed=5, progress=False)
    )

    def copy(dst: Path) -> Path:
        shutil.copytree(master, dst)
        return dst

    return copy


@pytest.fixture(scope="session")
def book_sample() -> Path | None:
    """``data/sample`` when it is the book's default sample with its S12LS-LD task (``make`` wrote both), else
    None: the benchmarks' dry runs then write a sample of their own (minutes). Read-only, like the book's."""
    from s12ls_utils.sample import generate

    data = ROOT / "data" / "sample"
    try:
        man = load_manifest(data)
    except (OSError, ValueError, KeyError):
        return None
    default = (man["n_per_sensor"], man["seed"]) == (generate.DEFAULT_N_PER_SENSOR, 0)
    return data if default and (data / "tasks" / "S12LS-LD" / "config.json").is_file() else None


@pytest.fixture(scope="session")
def sample_dir(small_sample: Path) -> Path:
    """Alias of ``small_sample`` used by the schema/io/synthetic tests."""
    return small_sample


@pytest.fixture(scope="session")
def manifest(small_sample: Path) -> dict:
    """The generator's own record of ``small_sample`` (a module may define its own ``manifest``)."""
    return load_manifest(small_sample)


@dataclass
class ExecutedChapter:
    """An executed chapter: the notebook, the figures it recorded and the data folder it ran on."""

    nb: nbformat.NotebookNode
    results: dict
    data_dir: Path

    def errors(self) -> list[str]:
        return [
            f"{o.get('ename')}: {o.get('evalue')}"
            for c in self.nb.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        ]

    def glued(self) -> set[str]:
        return {
            o["metadata"]["scrapbook"]["name"]
            for c in self.nb.cells
            for o in c.get("outputs", [])
            if "name" in o.get("metadata", {}).get("scrapbook", {})
        }

    def glued_text(self, name: str) -> str:
        """The text a glued figure shows in the book (its ``text/plain`` form, quotes removed)."""
        for c in self.nb.cells:
            for o in c.get("outputs", []):
                book = o.get("metadata", {}).get("scrapbook", {})
                if book.get("name") == name:
                    return str(o["data"][book.get("mime_prefix", "") + "text/plain"]).strip("'\"")
        raise KeyError(f"no glued figure {name!r}")

    def markdown(self) -> str:
        return "\n".join("".join(c.source) for c in self.nb.cells if c.cell_type == "markdown")

    def referenced_glue(self) -> set[str]:
        """The keys of the chapter's own figures that its text pastes (glue roles and directives)."""
        return {key for doc, key in glue_refs(self.markdown()) if doc is None}


@pytest.fixture(scope="session")
def chapter_sample(tmp_path_factory) -> Path:
    """Sample the chapters run on when they are executed here (chapters share it, in order).

    Default size: smaller samples leave the S12LS-LD task without validation patches for chapter 05."""
    out = tmp_path_factory.mktemp("chapters") / "data"
    make_sample(out, seed=11, progress=False)
    return out


@pytest.fixture(scope="session")
def run_chapter(request):
    """``run_chapter(stem) -> ExecutedChapter``.

    With ``S12LS_EXECUTED`` set (``make test`` sets it after ``make execute``), the executed copy under
    that folder and the book's record, ``<that folder>/results/<stem>.json``, are used as they are: one
    execution per CI run, and never a rerun's record (``results/reruns/``). Otherwise the chapter is
    executed here with papermill on ``chapter_sample``, as a book of its own in that sample's folder
    (``$S12LS_BOOK``: its record and runs go there).
    """
    cache: dict[str, ExecutedChapter] = {}
    executed_dir = os.environ.get("S12LS_EXECUTED")

    def run(stem: str) -> ExecutedChapter:
        if stem in cache:
            return cache[stem]
        executed = ROOT / executed_dir / "book" / f"{stem}.ipynb" if executed_dir else None
        if executed is not None and executed.exists():
            nb_path = executed
            results = json.loads((ROOT / executed_dir / "results" / f"{stem}.json").read_text())
        else:
            import papermill as pm

            chapter_sample = request.getfixturevalue("chapter_sample")  # written only when needed
            work = chapter_sample.parent
            nb_path = work / f"{stem}.ipynb"
            from s12ls_utils.book import BOOK_ENV

            saved = os.environ.get(BOOK_ENV)
            os.environ[BOOK_ENV] = str(work)  # the kernel inherits it: record and runs under work/
            try:
                pm.execute_notebook(
                    str(ROOT / "book" / f"{stem}.ipynb"),
                    str(nb_path),
                    cwd=str(ROOT),
                    kernel_name="python3",
                    progress_bar=False,
                    parameters={"data_dir": str(chapter_sample)},
                    request_save_on_cell_execute=False,  # as .ci/execute_chapters.py
                )
            finally:
                if saved is None:
                    os.environ.pop(BOOK_ENV, None)
                else:
                    os.environ[BOOK_ENV] = saved
            results = json.loads((work / "results" / f"{stem}.json").read_text())
        data_dir = Path(results["data_dir"])
        cache[stem] = ExecutedChapter(
            nbformat.read(nb_path, as_version=4),
            results,
            data_dir if data_dir.is_absolute() else ROOT / data_dir,
        )
        return cache[stem]

    return run
