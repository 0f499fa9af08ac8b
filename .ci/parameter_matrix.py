"""Run the chapters the ways a reader reruns them: papermill with parameters, on other sensors, models and a
Sentinel-2-only data folder. Used by ``make matrix``, after ``make execute``, and by ``make test``, which runs the
book's chapters with it (``--execute-book``)::

    python .ci/parameter_matrix.py [--out _build/matrix] [--data data/sample] [--jobs 2] [--only CASE …]

Every case is one papermill run of one chapter, with small settings (one epoch on a few patches, few bootstrap
replicates) so that the whole matrix costs a few minutes. The runs are reruns, not the book's execution: they
never set ``$S12LS_BOOK``, so they must not touch the book's record (``_build/executed/results`` and ``runs``).
Most cases write their record and runs under ``<out>/<case>/``; the case ``05-rerun-defaults`` keeps every
default, as a reader's ``papermill book/05-baseline-training.ipynb out.ipynb -p epochs 1`` would.

``<data>`` must hold the book's task folders (``make execute`` writes them); ``<out>/data-s2only`` is a
Sentinel-2-only copy of ``<data>`` (links to a quarter of its ``s2/`` files and to its inventory), as ``s12ls download
--sensors s2`` leaves it, and ``<out>/data-subset`` the same with every sensor. A case that needs another case's
output (chapter 06 evaluates a run of chapter 05) runs after it; lanes run at once (``--jobs``). A case with
``expect_error`` must fail, with that text in its error.
With ``--execute-book`` (``make test``) the book's chapters run first, into ``--book``, in the same lanes
(:func:`run_pool`), and ``--after-book`` (the HTML build) after them: a case on ``<data>`` starts once chapters
04–06 have written its task folders, and the book record is checked from the end of its last chapter on.

Writes ``<out>/<case>/<chapter>.ipynb`` and ``<out>/summary.json`` (per case: chapter, parameters, seconds,
status, the error's last line) and prints the durations; exits 1 when a case ends otherwise than expected.
``tests/test_parameter_matrix.py`` checks what the cases recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
sys.path.insert(0, str(Path(__file__).resolve().parent))
import execute_chapters as ex  # noqa: E402
from execute_chapters import cpu_shares, pinned  # noqa: E402  (the book's lanes pin the same way)

#: small settings shared by the chapter 05 cases: one epoch on 8 patches of 32 × 32 pixels
TINY_TRAIN = {"epochs": "1", "max_train_patches": "8", "crop": "32", "batch_size": "4"}
#: small model sizes (papermill ``-p`` text, as a reader would type it)
TINY_MODEL = {
    "unet_prepost": '{"widths": [8, 16, 32, 64]}',
    "utae": '{"encoder_widths": [16, 16, 16, 32], "decoder_widths": [16, 16, 16, 32], "n_head": 4, "d_model": 32}',
    "convgru": '{"hidden": 8, "stem": 8}',
}
#: chapter 06: few bootstrap replicates, one gallery patch; its S12LS-AD section only where a case asks
TINY_EVAL = {"n_boot": "50", "gallery": "1", "score_ad": "false"}


@dataclass
class Case:
    name: str
    chapter: str
    params: dict[str, str] = field(default_factory=dict)
    data: str = "sample"  # "sample" (``--data``), "s2only" (its Sentinel-2-only copy) or "subset" (all sensors, the same quarter)
    after: str | None = None  # a case whose output this one reads (same lane, run first)
    expect_error: str | None = None  # the case must fail with this text in its error
    own_outputs: bool = True  # False: keep results_dir/runs_dir/run_name at their defaults


def cases() -> list[Case]:
    ev = TINY_EVAL

    def train(model: str, sensors: str) -> dict[str, str]:
        return {**TINY_TRAIN, "model": model, "model_kwargs": TINY_MODEL[model], "sensors": sensors}

    def run_of(case: str) -> str:
        return f"{{out}}/{case}/runs/{case}"

    return [
        # chapter 02 with one sensor of several (on the subset folder: the book's execution ran the full pass)
        Case("02-s1asc", "02-temporal-signatures", {"sensors": "s1asc", "n_boot": "50"}, data="subset"),
        # chapter 05 and 06 on other models and sensors; '["s1asc"]' is the failing command
        Case("05-utae-s1asc", "05-baseline-training", train("utae", '["s1asc"]')),
        Case(
            "06-utae-s1asc",
            "06-positive-class-evaluation",
            {**ev, "run_dir": run_of("05-utae-s1asc"), "sensor": "s1asc"},
            after="05-utae-s1asc",
        ),
        Case("05-fusion", "05-baseline-training", train("unet_prepost", "s1asc,s2")),
        # chapter 05 on the S12LS-AD task (a date-free model; the book's chapter 06 has built the S2 cache),
        # scored by chapter 06's S12LS-AD section
        Case(
            "05-ad",
            "05-baseline-training",
            {**train("utae", "s2"), "task_dir": "{data}/tasks/S12LS-AD"},
            after="05-fusion",
        ),
        Case(
            "06-fusion",
            "06-positive-class-evaluation",
            {
                **ev,
                "run_dir": run_of("05-fusion"),
                "sensor": "s2",
                "score_ad": "true",
                "ad_run_dir": run_of("05-ad"),
            },
            after="05-ad",
        ),
        # a reader's rerun with every default but the size: it must not replace the book's run or record
        Case(
            "05-rerun-defaults",
            "05-baseline-training",
            {"epochs": "1", "max_train_patches": "8", "crop": "32"},
            own_outputs=False,
        ),
        # chapter 07 on the radar, with another region held out, tiny (on the subset folder: chapter 07 writes
        # its own task folders, and a quarter of the files still fills every split)
        Case(
            "07-s1asc-europe",
            "07-split-optimism",
            {"sensor": "s1asc", "holdout_fold": "europe", "epochs": "1", "crop": "32", "n_boot": "50"},
            data="subset",
        ),
        # a Sentinel-2-only data folder (s12ls download --sensors s2), through every chapter
        Case("01-s2only", "01-data-exploration", data="s2only"),
        Case("02-s2only", "02-temporal-signatures", {"n_boot": "50"}, data="s2only"),
        Case("03-s2only", "03-modality-alignment", data="s2only"),
        # chapter 04 with presets other than the default six
        Case("04-s2only", "04-split-creation", {"presets": "S12LS-LD,S12LS-AD-blocked"}, data="s2only"),
        Case(
            "05-convgru-s2only",
            "05-baseline-training",
            train("convgru", "s2"),
            data="s2only",
            after="04-s2only",
        ),
        Case(
            "06-convgru-s2only",
            "06-positive-class-evaluation",
            {**ev, "run_dir": run_of("05-convgru-s2only"), "sensor": "s2"},
            data="s2only",
            after="05-convgru-s2only",
        ),
        # where a chapter cannot run on that folder, it says why before any work
        Case(
            "05-s2only-fusion",
            "05-baseline-training",
            train("unet_prepost", "s1asc,s2"),
            data="s2only",
            expect_error="has no s1asc files",
        ),
    ]


#: The S2-only and the subset folders hold every ``SUBSET_EVERY``-th file of each region (by name): the cases on them
#: check that a chapter runs on such a folder, not the book's figures, so a quarter of the files checks the same at a
#: fraction of the cost (01's realism pass, 02's signature pass, 04's splits, 05/06 on their task; 05/06 still get
#: val and test patches, which the cases assert).
SUBSET_EVERY = 4


def subset_copy(data: Path, dst: Path, sensors: tuple[str, ...], every: int = SUBSET_EVERY) -> Path:
    """``dst`` as a data folder with ``sensors`` only, as ``s12ls download --sensors …`` leaves one: links to every
    ``every``-th file of each region of ``data/<sensor>`` (sorted by name) and to the inventory, nothing else."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for sensor in sensors:
        (dst / sensor).mkdir()
        by_region: dict[str, list[Path]] = {}
        for f in sorted((data / sensor).glob("*.nc")):
            by_region.setdefault(f.name.split(f"_{sensor}_")[0], []).append(f)
        for files in by_region.values():
            for f in files[::every]:
                (dst / sensor / f.name).symlink_to(f.resolve())
    for f in data.glob("inventories*"):
        (dst / f.name).symlink_to(f.resolve())
    return dst


def s2_only_copy(data: Path, dst: Path) -> Path:
    """``dst`` as a Sentinel-2-only data folder (:func:`subset_copy`)."""
    return subset_copy(data, dst, ("s2",))


def book_record_digest(book: Path) -> dict[str, str]:
    """sha256 of every file of the book's record (results and the runs' run.json/best.pt), to show that the
    matrix left it as it was."""
    out = {}
    for f in sorted(
        [*book.glob("results/*.json"), *book.glob("runs/*/run.json"), *book.glob("runs/*/best.pt")]
    ):
        out[str(f.relative_to(book))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def rerun_record(notebook: Path) -> str | None:
    """Where a rerun with the default ``results_dir`` recorded (the line ``book.outputs`` prints)."""
    import re

    if not notebook.exists():
        return None
    found = re.search(r"this rerun records its results in (\S+)/", notebook.read_text())
    return found.group(1) if found else None


def chains(all_cases: list[Case]) -> list[list[Case]]:
    """Cases grouped with the cases that read them (``after``), in the order listed: the pool (:func:`case_jobs`)
    starts the longest groups first."""
    out: list[list[Case]] = []
    where: dict[str, list[Case]] = {}
    for c in all_cases:
        chain = where[c.after] if c.after in where else None
        if chain is None:
            chain = []
            out.append(chain)
        chain.append(c)
        where[c.name] = chain
    return out


def run_case(
    c: Case, out: Path, data_dirs: dict[str, Path], papermill: str, cpus: set[int] | None = None
) -> dict:
    folder = out / c.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    params = {
        k: v.replace("{out}", str(out)).replace("{data}", str(data_dirs[c.data])) for k, v in c.params.items()
    }
    params.setdefault("data_dir", str(data_dirs[c.data]))
    if c.own_outputs:
        params.setdefault("results_dir", str(folder / "results"))
        if c.chapter.startswith(("05", "06")):
            params.setdefault("runs_dir", str(folder / "runs"))
        if c.chapter.startswith("05"):
            params.setdefault("run_name", c.name)
    else:
        params.setdefault("runs_dir", str(folder / "runs"))  # the default run name, with its time, goes here
    cmd = [papermill, str(BOOK / f"{c.chapter}.ipynb"), str(folder / f"{c.chapter}.ipynb")]
    # the notebook is written once at the end (as .ci/execute_chapters.py), not at every cell
    cmd += [
        "--cwd",
        str(ROOT),
        "--kernel",
        "python3",
        "--no-progress-bar",
        "--no-request-save-on-cell-execute",
    ]
    for k, v in params.items():
        cmd += ["-p", k, v]
    env = {k: v for k, v in os.environ.items() if k != "S12LS_BOOK"}  # a rerun, not the book's execution
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=pinned(cpus))
    seconds = round(time.perf_counter() - t0, 1)
    (folder / "papermill.log").write_text(proc.stdout + proc.stderr)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    error = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "")
    if c.expect_error is None:
        ok = proc.returncode == 0
    else:
        ok = proc.returncode != 0 and c.expect_error in (proc.stdout + proc.stderr)
    return {
        **asdict(c),
        "params": params,
        "results_dir": params.get("results_dir") or rerun_record(folder / f"{c.chapter}.ipynb"),
        "seconds": seconds,
        "returncode": proc.returncode,
        "ok": ok,
        "error": error if proc.returncode else "",
    }


@dataclass
class Job:
    """One unit of the pool (:func:`run_pool`): a book chapter, a case, or the snapshot of the book's record."""

    name: str
    run: Callable[[set[int] | None], dict | None]
    after: tuple[str, ...] = ()  # jobs that must have ended first


#: The job that takes the book record's digest (``book_record_unchanged`` compares it with the one at the end):
#: after the book's last chapter, before any case that leaves its outputs at their defaults.
RECORD = "book record"


def book_jobs(book: Path, execute: bool, after_book: str | None = None) -> list[Job]:
    """The book's chapters, when the matrix executes them (``--execute-book``), as jobs in the order the pool should
    start them: chapters 04 → 05 → 06 (which build on each other) first, then the longest of the others; after all
    of them the shell command ``after_book`` (``make test``: the HTML build), and the :data:`RECORD` job."""
    stems = [nb.stem for nb in ex.chapters()] if execute else []
    first = [s for s in ex.CHAINED if s in stems]
    order = (
        first
        + [s for s in LONGEST_FIRST if s in stems]
        + [s for s in stems if s not in first + LONGEST_FIRST]
    )

    def chapter(stem: str) -> Job:
        cmd = [sys.executable, ex.__file__, "--out", str(book), "--no-stage", "--jobs", "1"]
        cmd += ["--only", stem, "--durations-file", str(book / f"durations.{stem}.json")]
        prev = first[: first.index(stem)][-1:] if stem in first else []
        return Job(stem, lambda cpus: book_step(stem, "(the book)", cmd, cpus), tuple(prev))

    def command(cpus: set[int] | None) -> dict:
        return book_step(after_book, "(after the book)", after_book, cpus)

    last = [Job(after_book, command, tuple(stems))] if after_book else []
    return [*(chapter(s) for s in order), *last, Job(RECORD, lambda cpus: None, tuple(stems))]


def book_step(name: str, label: str, cmd: list[str] | str, cpus: set[int] | None) -> dict:
    """Run one step of the book's own execution (a chapter, or the shell command run after them) pinned to
    ``cpus``; its result, as :func:`run_case` reports a case."""
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, shell=isinstance(cmd, str), cwd=ROOT, preexec_fn=pinned(cpus)).returncode
    error = f"{name} failed (exit status {rc})" if rc else ""
    seconds = round(time.perf_counter() - t0, 1)
    return {"name": name, "chapter": label, "book": True, "ok": rc == 0, "seconds": seconds, "error": error}


#: the book's chapters other than 04–06 by their duration (measured 2026-12-07: 114, 70, 68, 25, 24 s), so that
#: the short ones come last, when they even out the lanes
LONGEST_FIRST = ["02-temporal-signatures", "01-data-exploration", "07-split-optimism"]


def case_jobs(selected: list[Case], out: Path, data_dirs: dict[str, Path], papermill: str) -> list[Job]:
    """The cases as jobs, the longest chains of cases first. A case runs after the case it reads; a case on the
    book's data folder after chapters 04–06 (their task folders and caches); a case that keeps its outputs at
    their defaults after the :data:`RECORD` snapshot, so that the snapshot sees what it must leave alone."""

    def job(c: Case) -> Job:
        after = [c.after] if c.after else []
        after += list(ex.CHAINED) if c.data == "sample" else []
        after += [] if c.own_outputs else [RECORD]
        return Job(c.name, lambda cpus: run_case(c, out, data_dirs, papermill, cpus), tuple(after))

    return [job(c) for chain in sorted(chains(selected), key=len, reverse=True) for c in chain]


def run_pool(jobs: list[Job], lanes: list[set[int] | None], done: Callable[[Job, dict | None], None]) -> None:
    """Run ``jobs`` in ``len(lanes)`` lanes at once (threads, each starting its jobs' processes pinned to its share of
    the CPUs): a free lane takes the first job, in list order, whose ``after`` jobs have all ended (jobs named in
    ``after`` that are not in ``jobs`` count as ended), so a lane never idles while another has work it could do.
    ``done(job, result)`` is called under a lock as each job ends (a failing job is reported by its result, a bug of
    this script as a failed result)."""
    names = {j.name for j in jobs}
    pending, ended = list(jobs), set()
    cond = threading.Condition()

    def lane(cpus: set[int] | None) -> None:
        while True:
            with cond:
                while True:
                    job = next(
                        (j for j in pending if all(a in ended or a not in names for a in j.after)), None
                    )
                    if job is not None or not pending:
                        break
                    cond.wait()
                if job is None:
                    return
                pending.remove(job)
            try:
                res = job.run(cpus)
            except Exception as exc:  # a bug of this script: the job counts as failed
                res = {"name": job.name, "chapter": job.name, "seconds": 0.0, "returncode": -1, "ok": False}
                res["error"] = repr(exc)
            with cond:
                try:
                    done(job, res)
                finally:  # the other lanes may be waiting for this job
                    ended.add(job.name)
                    cond.notify_all()

    threads = [threading.Thread(target=lane, args=(cpus,)) for cpus in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "matrix")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "sample")
    ap.add_argument(
        "--book", type=Path, default=ROOT / "_build" / "executed", help="the book's executed folder"
    )
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--only", nargs="*", default=[], help="case names (with the cases they read)")
    ap.add_argument(
        "--execute-book",
        action="store_true",
        help="execute the book's chapters into --book first, in the same lanes (make test): a lane done with "
        "its chapters starts cases instead of waiting for the other",
    )
    ap.add_argument(
        "--after-book",
        metavar="COMMAND",
        help="with --execute-book: a shell command to run in a lane once the chapters have ended (make test: the "
        "HTML build)",
    )
    args = ap.parse_args()
    out = (args.out if args.out.is_absolute() else ROOT / args.out).resolve()
    data = (args.data if args.data.is_absolute() else ROOT / args.data).resolve()
    book = args.book if args.book.is_absolute() else ROOT / args.book
    if not args.execute_book and not (data / "tasks" / "S12LS-LD").is_dir():
        sys.exit(f"{data}/tasks/S12LS-LD is missing: execute the book first (make execute)")
    out.mkdir(parents=True, exist_ok=True)
    data_dirs = {
        "sample": data,
        "s2only": s2_only_copy(data, out / "data-s2only"),
        "subset": subset_copy(data, out / "data-subset", ("s1asc", "s1dsc", "s2")),
    }
    papermill = str(Path(sys.executable).with_name("papermill"))
    selected = cases()
    if args.only:
        names = set(args.only)
        by_name = {c.name: c for c in selected}
        grown = True
        while grown:  # the cases the named ones read, and the cases those read
            before = len(names)
            names |= {c.after for c in selected if c.name in names and c.after}
            grown = len(names) > before
        selected = [c for c in selected if c.name in names and c.name in by_name]
    after_book = args.after_book if args.execute_book else None
    jobs = [*book_jobs(book, args.execute_book, after_book), *case_jobs(selected, out, data_dirs, papermill)]
    results: dict[str, dict] = {}
    digests: dict[str, dict[str, str]] = {}

    def done(job: Job, res: dict | None) -> None:
        if job.name == RECORD:
            digests["before"] = book_record_digest(book)
        elif res is not None:
            results[job.name] = res
            state = "ok" if res["ok"] else "UNEXPECTED"
            how = (
                f"failed as expected: {res['error']}"
                if res.get("expect_error") and res["ok"]
                else res["error"]
            )
            print(
                f"  {job.name:<20} {res['chapter']:<30} {res['seconds']:6.1f} s  {state} {how}".rstrip(),
                flush=True,
            )

    t0 = time.perf_counter()
    run_pool(jobs, cpu_shares(max(1, args.jobs)) or [None] * max(1, args.jobs), done)
    wall = round(time.perf_counter() - t0, 1)
    before, after = digests["before"], book_record_digest(book)
    if args.execute_book:
        stems = [nb.stem for nb in ex.chapters()]
        ex.merge_durations(book, stems, [book / f"durations.{s}.json" for s in stems], wall)
    summary = {
        "cases": [results[c.name] for c in selected],
        "wall_seconds": wall,
        "jobs": args.jobs,
        "data_dir": str(data),
        "book_record_files": len(before),
        "book_record_unchanged": before == after,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    bad = [r["name"] for r in summary["cases"] if not r["ok"]] + [
        n for n, r in results.items() if r.get("book") and not r["ok"]
    ]
    total = sum(r["seconds"] for r in summary["cases"])
    print(
        f"parameter matrix: {len(selected)} cases, {total:.1f} s of chapter time, {wall:.1f} s wall in "
        f"{args.jobs} lanes; book record ({len(before)} files) {'unchanged' if before == after else 'CHANGED'}"
    )
    if bad or before != after:
        print(
            f"unexpected outcome: {', '.join(bad) or 'the book record changed'} (logs: {out}/<case>/papermill.log)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
