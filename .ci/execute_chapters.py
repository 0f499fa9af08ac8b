"""Execute the book's chapters once with papermill and stage them for a build with execution off.

Used by ``make book`` / ``make test``::

    python .ci/execute_chapters.py --out _build/executed [-p name value …] [--only 01-data-exploration] [--jobs N]
    python .ci/execute_chapters.py --out _build/executed --stage-only

The chapters listed in ``_toc.yml`` run in order from the repository root (so their default
``data_dir="data/sample"`` resolves) into ``<out>/book/``; ``<out>`` is then a complete book source
(``_config.yml`` with execution off, ``_toc.yml``, the Markdown pages, the executed notebooks) that
``jupyter-book build <out>`` turns into HTML. Per-chapter durations are printed and written to
``<out>/durations.json``. Every chapter runs even if an earlier one fails; the exit status is 1 when
any failed. The chapters run with ``$S12LS_BOOK`` set to ``<out>``: they record their results in
``<out>/results/`` and chapter 05 its runs in ``<out>/runs/`` (``s12ls_utils.book.outputs``), the book's
record, which reruns with other parameters never write; a chapter's old record is removed before it runs. With ``--jobs 2`` (the default on two or more CPUs) chapters 04–06, which build on each other,
run in one lane, followed by 07 (which writes its own task folders and runs), and the others in a second one at
the same time, each lane pinned to its share of the CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_entries(toc_path: Path) -> list[str]:
    """Every file named in ``_toc.yml`` (root first), without suffix."""
    from s12ls_utils.book import book_pages

    return book_pages(toc_path.parent)


def chapters() -> list[Path]:
    return [ROOT / f"{e}.ipynb" for e in toc_entries(ROOT / "_toc.yml") if (ROOT / f"{e}.ipynb").exists()]


def stage(out: Path) -> None:
    """Make ``out`` a book source: config (execution off), toc, the non-notebook pages and the local
    Sphinx extensions (``book/_ext``, named in ``_config.yml``)."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg.setdefault("execute", {})["execute_notebooks"] = "off"
    out.mkdir(parents=True, exist_ok=True)
    (out / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    shutil.copy2(ROOT / "_toc.yml", out / "_toc.yml")
    for entry in toc_entries(ROOT / "_toc.yml"):
        for suffix in (".md", ".ipynb"):
            src = ROOT / f"{entry}{suffix}"
            dst = out / f"{entry}{suffix}"
            if suffix == ".md" and src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            elif suffix == ".ipynb" and src.exists() and not dst.exists():
                sys.exit(f"{dst} is missing: execute the chapters first (make execute)")
    for extra in ("references.bib", "book/images", "book/_static", "benchmarks/results", "book/_ext"):
        src = ROOT / extra
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(src, out / extra, dirs_exist_ok=True, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, out / extra)


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def drop_widget_outputs(path: Path) -> int:
    """Remove ipywidgets outputs (tqdm's notebook progress bars) and the widget state from an executed copy.

    The book must read offline, and the only way to show saved widget state is the widget manager
    JavaScript that myst-nb loads from a CDN (require.js, @jupyter-widgets/html-manager). The chapters'
    interactive figures are Bokeh/Panel (embedded without a kernel); the only ipywidgets are progress bars,
    which say nothing once the run is over. Returns how many outputs were removed.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    removed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        keep = [o for o in cell.outputs if WIDGET_MIME not in o.get("data", {})]
        removed += len(cell.outputs) - len(keep)
        cell.outputs = keep
    had_state = nb.metadata.pop("widgets", None) is not None
    if removed or had_state:
        nbformat.write(nb, path)
    return removed


def book_env(out: Path) -> str:
    """``out`` as the chapters see it (their working folder is the repository root): relative when inside."""
    try:
        return str(out.resolve().relative_to(ROOT))
    except ValueError:
        return str(out.resolve())


def execute(out: Path, params: dict[str, str], only: list[str], durations_file: Path | None = None) -> int:
    import papermill as pm

    from s12ls_utils.book import BOOK_ENV

    (out / "book").mkdir(parents=True, exist_ok=True)
    os.environ[BOOK_ENV] = book_env(out)  # the kernels papermill starts inherit it
    durations: dict[str, float] = {}
    failed: list[str] = []
    for nb in chapters():
        if only and nb.stem not in only:
            continue
        dst = out / nb.relative_to(ROOT)
        (out / "results" / f"{nb.stem}.json").unlink(missing_ok=True)  # the record is this execution's only
        t0 = time.perf_counter()
        print(f"executing {nb.relative_to(ROOT)} …", flush=True)
        try:
            pm.execute_notebook(
                str(nb),
                str(dst),
                parameters=params,
                cwd=str(ROOT),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
                # written once at the end (or at the failing cell), not at each cell's start and end: the
                # chapters carry 6-15 MB of inline figure scripts, and the saves cost 5-7 s per chapter
                request_save_on_cell_execute=False,
            )
        except Exception as exc:  # papermill raises PapermillExecutionError with the failing cell
            failed.append(nb.stem)
            print(f"FAILED {nb.stem}: {exc}", file=sys.stderr, flush=True)
        if dst.exists():
            drop_widget_outputs(dst)
        durations[nb.stem] = round(time.perf_counter() - t0, 1)
        print(f"  {nb.stem}: {durations[nb.stem]:.1f} s", flush=True)
    (durations_file or out / "durations.json").write_text(json.dumps(durations, indent=1))
    print("chapter durations (s): " + ", ".join(f"{k} {v}" for k, v in durations.items()), flush=True)
    if failed:
        print(f"{len(failed)} chapter(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


#: Chapters that read what an earlier one wrote run after it, in one lane: chapter 05 trains on the task
#: folders of chapter 04 and chapter 06 evaluates the run of chapter 05. The other chapters only read the
#: data folder (the catalog cache is written atomically), so a second lane runs them meanwhile.
CHAINED = ("04-split-creation", "05-baseline-training", "06-positive-class-evaluation")
#: Chapters that need none of 04–06 but run after them, in their lane, to even out the lanes: chapter 07
#: writes its own task folders and trains its own runs, while the other lane reads every file of the sample
#: (chapters 01–03 and the known-issues appendix; measured 2026-12-06: 249 s against 04–06's 198 s).
AFTER_CHAIN = ("07-split-optimism",)


def lanes(stems: list[str], jobs: int) -> list[list[str]]:
    """``stems`` (in book order) as at most ``jobs`` lanes: the chained chapters in one lane, in order, then
    :data:`AFTER_CHAIN`; the others dealt round robin over the remaining lanes."""
    chained = [s for s in stems if s in CHAINED] + [s for s in stems if s in AFTER_CHAIN]
    free = [s for s in stems if s not in chained]
    out = [chained] if chained else []
    n_free = max(1, jobs - len(out))
    out += [free[i::n_free] for i in range(n_free) if free[i::n_free]]
    return out if jobs > 1 and len(out) > 1 else [stems]


def cpu_shares(n: int) -> list[set[int]]:
    """The CPUs this process may use, dealt into ``n`` disjoint shares (empty list where there are fewer CPUs
    than shares, or no affinity on this system)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return []
    return [set(cpus[i::n]) for i in range(n)] if len(cpus) >= n > 1 else []


def pinned(cpus: set[int] | None):
    """A ``preexec_fn`` that restricts a child process (and what it starts: the kernel, its workers and torch's
    threads, which all size themselves by the affinity) to ``cpus``; None for no restriction."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def execute_parallel(out: Path, params: list[list[str]], only: list[str], jobs: int) -> int:
    """Run the chapters in lanes (:func:`lanes`), one child process of this script per lane, each pinned to its
    own share of the CPUs (:func:`cpu_shares`): two lanes on two cores then never run more threads than cores
    (torch's threads and the chapters' worker processes size themselves by the affinity), where unpinned they
    oversubscribed them (chapter 05 trained in 12.8 s alone and took over 60 s beside chapter 02). Their
    durations are merged into ``<out>/durations.json``; 1 when any chapter failed."""
    import subprocess

    stems = [nb.stem for nb in chapters() if not only or nb.stem in only]
    groups = lanes(stems, jobs)
    shares = cpu_shares(len(groups))
    t0 = time.perf_counter()
    procs = []
    for i, group in enumerate(groups):
        cmd = [sys.executable, __file__, "--out", str(out), "--no-stage", "--jobs", "1", "--durations-file"]
        cmd += [str(out / f"durations.lane{i}.json"), "--only", *group]
        for name, value in params:
            cmd += ["-p", name, value]
        cpus = shares[i] if shares else None
        where = f" (CPUs {', '.join(map(str, sorted(cpus)))})" if cpus else ""
        print(f"lane {i}: {', '.join(group)}{where}", flush=True)
        procs.append(subprocess.Popen(cmd, preexec_fn=pinned(cpus)))
    rc = max(p.wait() for p in procs)
    merge_durations(
        out, stems, [out / f"durations.lane{i}.json" for i in range(len(groups))], time.perf_counter() - t0
    )
    return 1 if rc else 0


def merge_durations(out: Path, stems: list[str], files: list[Path], wall: float) -> None:
    """The per-lane (or per-chapter) duration ``files`` of a parallel execution merged, in book order, into
    ``<out>/durations.json`` (the parts are removed), and printed with the ``wall`` time."""
    durations: dict[str, float] = {}
    for f in files:
        if f.exists():
            durations.update(json.loads(f.read_text()))
            f.unlink()
    durations = {s: durations[s] for s in stems if s in durations}
    (out / "durations.json").write_text(json.dumps(durations, indent=1))
    print(
        "chapter durations (s): "
        + ", ".join(f"{k} {v}" for k, v in durations.items())
        + f"; {wall:.1f} s wall"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "executed")
    ap.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="papermill parameter for every chapter (values parsed as YAML)",
    )
    ap.add_argument("--only", nargs="*", default=[], help="chapter stems to run (default: all)")
    ap.add_argument("--stage-only", action="store_true", help="only (re)stage the book source")
    ap.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="chapters run at once, in lanes that keep chapters 04-06 in order (default: 2 where there are 2 CPUs)",
    )
    ap.add_argument("--no-stage", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--durations-file", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = args.out if args.out.is_absolute() else ROOT / args.out
    rc = 0
    if not args.stage_only:
        if args.jobs > 1:
            rc = execute_parallel(out, args.param, args.only, args.jobs)
        else:
            params = {k: yaml.safe_load(v) for k, v in args.param}
            rc = execute(out, params, args.only, args.durations_file)
    if not args.no_stage:
        stage(out)
    return rc


if __name__ == "__main__":
    sys.exit(main())
