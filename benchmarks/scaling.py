"""Scaling of the per-file data passes: files/s, peak memory, and the time 40,000 files would take.

Each pass runs over every file of one synthetic set, under each scheduler of
:func:`s12ls_utils.parallel.map_files`:

* **catalog** — ``build_catalog(data, use_cache=False)``: header reads of every file;
* **norm stats** — ``norm_stats(files, data, sensor)`` for each sensor over all of its files (what
  ``write_task`` does over the train files);
* **signatures** — ``collect_signatures(catalog, data)`` over every patch (default sample caps);
* **cache** — ``build_cache`` of a task whose S2 train split lists every S2 file (the packed training
  cache: every S2 file read, composited and written; the cache folder is deleted after each run).

Schedulers: ``synchronous`` (1 worker, in this process), ``processes`` with 1 and with 2 workers (a fresh
forkserver pool per call, as the library does), and a Dask ``LocalCluster(n_workers=2,
threads_per_worker=1)`` passed as a Client (started for each run, before timing, and warmed up).

Figures per run: seconds, files/s, the speed-up over ``synchronous`` on the same set, CPU time per file
(this process and all its descendants; steadier than wall-clock time when the cores are shared), peak
memory (the PSS — shared pages counted once — of this process and all its descendants: pool workers, the
forkserver, the Dask nannies and workers, sampled every 0.2 s; and of this process alone) and the time
40,000 files would take at that rate. The page cache is warm (every file is read once before timing).
Each pass runs in a process of its own, so that no pass inherits the memory of another.

Results are merged into ``benchmarks/results/scaling.json`` (one entry per set size, pass and scheduler,
so several invocations — e.g. 500 and 2,000 patches, or one pass at a time — add up) and the Markdown
tables ``benchmarks/results/scaling.md`` are rewritten from all of them.

Usage::

    .venv/bin/s12ls synth /tmp/s12ls-scale-2000 --n-per-sensor 675      # ~2,000 files (3.2 GB), once
    .venv/bin/s12ls synth /tmp/s12ls-scale-500 --n-per-sensor 167       # ~500 files
    .venv/bin/python benchmarks/scaling.py --data /tmp/s12ls-scale-500
    .venv/bin/python benchmarks/scaling.py --data /tmp/s12ls-scale-2000 --passes catalog stats cache
    .venv/bin/python benchmarks/scaling.py --data /tmp/s12ls-scale-2000 --passes signatures \
        --schedulers synchronous processes-2                           # keep each call under ~10 min
    .venv/bin/python benchmarks/scaling.py --n-per-sensor 167           # writes /tmp/s12ls-scale-167 first
    .venv/bin/python benchmarks/scaling.py --dry-run                    # seconds (CI); the record is untouched

``--dry-run`` takes the same path, small: a tiny synthetic sample (or ``--data``), the ``synchronous`` and
``processes-2`` schedulers, every pass in one process (a real run starts one per pass, for its memory figures),
the results merged into a temporary JSON and Markdown (or ``--out``). Every run
records the commit it measured (``git rev-parse --short HEAD``, ``+changes`` when tracked files differ) and the
JSON the machine (cores, CPU model, RAM, GPU); the first line printed names both.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import provenance
import psutil

from s12ls_utils import schema, tasks
from s12ls_utils.catalog import build_catalog
from s12ls_utils.parallel import default_workers, map_files
from s12ls_utils.signatures import collect_signatures
from s12ls_utils.tasks import load_task, norm_stats

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REAL_FILES = 40_000
PASSES = ("catalog", "stats", "signatures", "cache")
PASS_LABELS = {"catalog": "catalog", "stats": "norm stats", "signatures": "signatures", "cache": "cache (S2)"}
SCHEDULERS = ("synchronous", "processes-1", "processes-2", "dask-2")
SCHEDULER_LABELS = {
    "synchronous": "synchronous (1 worker)",
    "processes-1": "processes, 1 worker",
    "processes-2": "processes, 2 workers",
    "dask-2": "Dask LocalCluster, 2 workers",
}


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------
def _pss_mb(proc: psutil.Process) -> float:
    """PSS of one process in MB (shared pages split among their users); RSS where smaps is not readable."""
    try:
        with open(f"/proc/{proc.pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        return proc.memory_info().rss / 2**20
    except psutil.Error:
        return 0.0


def _is_forkserver(proc: psutil.Process) -> bool:
    try:
        return any("multiprocessing.forkserver" in part for part in proc.cmdline())
    except psutil.Error:
        return False


def _ppid(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


class TreeMonitor:
    """Samples this process and all its descendants every ``interval`` s in a thread: the peak of their
    summed PSS (``peak``; this process alone: ``parent_peak``) and the CPU seconds they used (``cpu``).

    CPU time does not depend on what else runs on the machine, unlike wall-clock time: with the cores
    shared, ``cpu / files`` is the steadier measure of a pass's cost (a worker that exits between two
    samples loses at most its last ``interval`` of CPU time; the sampling itself costs this process a
    few ms per sample). ``pool=False`` leaves out the forkserver
    (kept alive between calls by multiprocessing) and its children: a pass that starts no pool is not
    charged for the idle server another pass started.
    """

    def __init__(self, interval: float = 0.2, pool: bool = True) -> None:
        self.me = psutil.Process()
        self.interval = interval
        self.pool = pool
        self.peak = self.parent_peak = 0.0
        self._cpu: dict[tuple[int, float], list[float]] = {}  # (pid, start time) → [first, last] CPU s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def cpu(self) -> float:
        return sum(last - first for first, last in self._cpu.values())

    def _track(self, proc: psutil.Process, baseline: bool) -> None:
        try:
            t = proc.cpu_times()
            key = (proc.pid, proc.create_time())
        except psutil.Error:
            return
        used = t.user + t.system
        self._cpu.setdefault(key, [used if baseline else 0.0, used])[1] = used

    def sample(self, baseline: bool = False) -> None:
        parent = _pss_mb(self.me)
        try:
            kids = self.me.children(recursive=True)
            if not self.pool:
                skip = {k.pid for k in kids if _is_forkserver(k)}
                kids = [k for k in kids if k.pid not in skip and _ppid(k) not in skip]
        except psutil.Error:
            kids = []
        for proc in (self.me, *kids):
            self._track(proc, baseline)
        self.parent_peak = max(self.parent_peak, parent)
        self.peak = max(self.peak, parent + sum(_pss_mb(k) for k in kids))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMonitor:
        self.sample(baseline=True)  # processes alive before the run: count only what they use from now
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# --------------------------------------------------------------------------------------------------
# The passes
# --------------------------------------------------------------------------------------------------
def list_files(data: Path) -> dict[str, list[str]]:
    """Relative paths of the well-named patch files of each sensor."""
    out = {}
    for sensor in schema.SENSORS:
        folder = data / sensor
        names = sorted(p.name for p in folder.glob("*.nc")) if folder.is_dir() else []
        out[sensor] = [f"{sensor}/{n}" for n in names if schema.FILENAME_RE.match(n)]
    return out


def _import_passes() -> None:
    """Run on the Dask workers before timing (a pool's imports are part of each call; a cluster's are not)."""
    import s12ls_utils.catalog
    import s12ls_utils.datasets
    import s12ls_utils.signatures
    import s12ls_utils.splits  # noqa: F401


@contextlib.contextmanager
def local_cluster():
    """A Client of a fresh ``LocalCluster(n_workers=2, threads_per_worker=1)`` with the passes imported."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_import_passes)  # the workers' imports are done before timing
        yield client


def write_scale_task(data: Path, s2_files: list[str], where: Path) -> Path:
    """A task whose S2 train split lists every S2 file (what the cache pass builds)."""
    task = where / "tasks" / "SCALE"
    (task / "s2").mkdir(parents=True, exist_ok=True)
    entries = [
        {"id": schema.parse_filename(Path(p).name).key, "s2": p, "pixel_annotated": 0, "inventory": ""}
        for p in s2_files
    ]
    (task / "s2" / "splits.json").write_text(json.dumps({"train": entries, "val": [], "test": []}))
    (task / "config.json").write_text(json.dumps({"name": "SCALE"}))
    return task


def make_pass(name: str, data: Path, files: dict[str, list[str]], work: Path) -> tuple[int, Callable]:
    """``(number of files, run(scheduler, workers) -> number of failed files)`` of one pass."""
    n_all = sum(len(v) for v in files.values())
    if name == "catalog":

        def run(scheduler, workers):
            df = build_catalog(data, scheduler=scheduler, workers=workers, use_cache=False, progress=False)
            return len(df.attrs["errors"])

        return n_all, run
    if name == "stats":

        def run(scheduler, workers):
            tasks._MOMENTS_MEMO.clear()  # else the moments of the previous run are reused, no file read
            stats = [
                norm_stats(f, data, s, scheduler=scheduler, workers=workers) for s, f in files.items() if f
            ]
            return sum(len(s.failures) for s in stats)

        return n_all, run
    if name == "signatures":
        cat = build_catalog(data, scheduler="processes", use_cache=False, progress=False)

        def run(scheduler, workers):
            return len(
                collect_signatures(cat, data, scheduler=scheduler, workers=workers, progress=False).errors
            )

        return len(cat), run
    if name == "cache":
        from s12ls_utils.datasets import build_cache  # torch: imported only by the pass that needs it

        task = load_task(write_scale_task(data, files["s2"], work), data_dir=data)

        def run(scheduler, workers):
            root = work / "cache"
            try:
                build_cache(
                    task, "train", "s2", cache_dir=root, scheduler=scheduler, workers=workers, progress=False
                )
            finally:
                shutil.rmtree(root, ignore_errors=True)
            return 0  # build_cache raises FilesFailed on any failure

        return len(files["s2"]), run
    raise ValueError(f"unknown pass {name!r}; choose from {PASSES}")


def warm_page_cache(data: Path, files: dict[str, list[str]]) -> float:
    """Read every file once (so every scheduler reads from memory); returns GB read."""
    n = 0
    for rels in files.values():
        for rel in rels:
            with open(data / rel, "rb") as f:
                while chunk := f.read(1 << 22):
                    n += len(chunk)
    return n / 1e9


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------
def machine_label(m: dict) -> str:
    """A record's machine in a few words: CPU model, cores, RAM, GPU."""
    gpu = ", ".join(m["gpu"] or []) or "no GPU" if "gpu" in m else "GPU not recorded"
    return (
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores ({m.get('cores_usable', '?')} usable), "
        f"{m.get('ram_gb', '?')} GB RAM, {gpu}"
    )


def load_results(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {"machine": {}, "runs": []}


def merge(results: dict, new: list[dict]) -> dict:
    key = lambda r: (r["n_files_set"], r["pass"], r["scheduler"])  # noqa: E731
    fresh = {key(r) for r in new}
    runs = [r for r in results["runs"] if key(r) not in fresh] + new
    runs.sort(key=lambda r: (r["n_files_set"], PASSES.index(r["pass"]), SCHEDULERS.index(r["scheduler"])))
    return {**results, "runs": runs}


def markdown(results: dict) -> str:
    m = results["machine"]
    runs = results["runs"]
    lines = [
        "# Scaling of the per-file data passes",
        "",
        "Written by `benchmarks/scaling.py` (see its docstring for what each pass does and how memory is "
        "measured). Synthetic sets from `s12ls synth`; warm page cache; one timed run per cell.",
        "",
        f"Latest run: {machine_label(m)}, Python {m.get('python', '?')}, {m.get('system', '?')}, at commit "
        f"{m.get('commit', '?')}. Each set's heading names the machines and commits its figures came from. "
        "The cores were shared with other jobs (load average at the start of each run in the JSON).",
        "",
        f"*files/s* over all files of the pass; *speed-up* against `synchronous` on the same set; *CPU "
        f"ms/file* = CPU time of the calling process and all its workers per file (unlike wall-clock time, "
        f"it does not depend on other jobs sharing the cores); *peak* = PSS of the calling process and all "
        f"its workers (*caller* = the calling process alone); *{REAL_FILES:,} files* = the time at that rate "
        f"for the real dataset's size.",
    ]
    for n_set in sorted({r["n_files_set"] for r in runs}):
        sub = [r for r in runs if r["n_files_set"] == n_set]
        dates = sorted({r["date"] for r in sub})
        commits = sorted({r.get("commit", "commit not recorded") for r in sub})
        machines = sorted({r.get("machine", "machine not recorded") for r in sub})
        lines += [
            "",
            f"## {n_set:,} patch files ({', '.join(dates)}; {', '.join(commits)})",
            "",
            f"Machine: {'; '.join(machines)}.",
            "",
            "| pass | scheduler | files | s | files/s | speed-up | CPU ms/file | peak MB | caller MB | "
            f"{REAL_FILES:,} files |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sub:
            base = next((b for b in sub if b["pass"] == r["pass"] and b["scheduler"] == "synchronous"), None)
            speed = f"{r['files_per_s'] / base['files_per_s']:.2f}×" if base else "–"
            lines.append(
                f"| {PASS_LABELS[r['pass']]} | {SCHEDULER_LABELS[r['scheduler']]} | {r['files']:,} | "
                f"{r['seconds']:.1f} | {r['files_per_s']:.1f} | {speed} | {r['cpu_ms_per_file']:.1f} | "
                f"{r['peak_mb']:,.0f} | "
                f"{r['caller_peak_mb']:,.0f} | {_duration(r['extrapolated_s'])} |"
            )
    sizes = sorted({r["n_files_set"] for r in runs})
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        lines += [
            "",
            f"## Memory as the file count grows ({lo:,} → {hi:,} files)",
            "",
            f"Peak MB (all processes) at {lo:,} and {hi:,} files, their ratio ({hi / lo:.1f}× the files), "
            "the calling process's peak, and how much that grows per 1,000 more files (what a pass keeps in "
            "memory: the signatures pass keeps every patch's summaries by design; the others only small "
            "per-file records).",
            "",
            f"| pass | scheduler | {lo:,} files | {hi:,} files | ratio | caller {lo:,} | caller {hi:,} | "
            "caller MB per 1,000 files |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for p in PASSES:
            for s in SCHEDULERS:
                a = next(
                    (r for r in runs if (r["n_files_set"], r["pass"], r["scheduler"]) == (lo, p, s)), None
                )
                b = next(
                    (r for r in runs if (r["n_files_set"], r["pass"], r["scheduler"]) == (hi, p, s)), None
                )
                if a and b:
                    growth = 1000 * (b["caller_peak_mb"] - a["caller_peak_mb"]) / (b["files"] - a["files"])
                    lines.append(
                        f"| {PASS_LABELS[p]} | {SCHEDULER_LABELS[s]} | {a['peak_mb']:,.0f} | "
                        f"{b['peak_mb']:,.0f} | {b['peak_mb'] / a['peak_mb']:.2f} | "
                        f"{a['caller_peak_mb']:,.0f} | {b['caller_peak_mb']:,.0f} | {growth:.0f} |"
                    )
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="a synthetic set to reuse (s1asc/ s1dsc/ s2/)")
    ap.add_argument(
        "--n-per-sensor",
        type=int,
        default=675,
        help="without --data: write a set of about 3x this many files to /tmp/s12ls-scale-<N> (default 675)",
    )
    ap.add_argument("--passes", nargs="+", choices=PASSES, default=list(PASSES))
    ap.add_argument("--schedulers", nargs="+", choices=SCHEDULERS, default=list(SCHEDULERS))
    ap.add_argument("--out", type=Path, default=None, help="JSON to merge results into (default: the record)")
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="a tiny sample (or --data), the synchronous and 2-process schedulers, results to a temporary "
        "JSON unless --out (for CI)",
    )
    args = ap.parse_args(argv)
    if not args.dry_run:
        return run(args)
    with tempfile.TemporaryDirectory(prefix="s12ls-scaling-dry-") as tmp:
        args.data = args.data or provenance.dry_sample(Path(tmp))
        args.out = args.out or Path(tmp) / "scaling.json"
        return run(args)


def run(args: argparse.Namespace) -> int:
    """The benchmark with parsed arguments (see :func:`main`)."""
    if args.dry_run:
        args.schedulers = [s for s in args.schedulers if s in ("synchronous", "processes-2")]
    if args.out is None:
        args.out = RESULTS / "scaling.json"
    print(provenance.line(), flush=True)
    data = args.data
    if data is None:
        from s12ls_utils.sample import make_sample

        data = Path(tempfile.gettempdir()) / f"s12ls-scale-{args.n_per_sensor}"
        if not (data / "s2").is_dir():
            print(f"writing a synthetic set ({args.n_per_sensor} per sensor) to {data} …", flush=True)
            make_sample(data, n_per_sensor=args.n_per_sensor, seed=0, progress=True)
    if len(args.passes) > 1 and not args.dry_run:
        # one process per pass: each starts from the same memory (Python keeps what an earlier pass freed); a
        # dry run checks that the passes run, not their memory: one process (3 fewer interpreters and pools)
        for p in args.passes:
            cmd = [sys.executable, __file__, "--data", str(data), "--passes", p, "--out", str(args.out)]
            cmd += ["--dry-run"] if args.dry_run else []
            subprocess.run([*cmd, "--schedulers", *args.schedulers], check=True)
        return 0
    files = list_files(data)
    n_set = sum(len(v) for v in files.values())
    if not n_set:
        print(f"no patch files under {data}", file=sys.stderr)
        return 1
    gb = warm_page_cache(data, files)
    print(
        f"{n_set} patch files ({', '.join(f'{len(v)} {s}' for s, v in files.items())}, {gb:.1f} GB) in {data}"
    )
    load = os.getloadavg()[0]
    print(f"{default_workers()} usable cores, load average {load:.2f}", flush=True)

    map_files(abs, range(64), scheduler="processes", workers=2, progress=False)  # start the forkserver once
    configs = {
        "synchronous": ("synchronous", None),
        "processes-1": ("processes", 1),
        "processes-2": ("processes", 2),
        "dask-2": ("dask", None),
    }
    date = dt.datetime.now().astimezone().isoformat(timespec="minutes")
    commit = provenance.commit()
    new = []
    with tempfile.TemporaryDirectory(prefix="s12ls-scaling-", dir=data.parent) as work:
        for p in args.passes:
            n_files, run = make_pass(p, data, files, Path(work))
            for s in args.schedulers:
                scheduler, workers = configs[s]
                with contextlib.ExitStack() as stack:
                    if scheduler == "dask":  # a cluster per run: other runs are not charged for its memory
                        scheduler = stack.enter_context(local_cluster())
                    with TreeMonitor(pool=scheduler == "processes") as mem:
                        t0 = time.perf_counter()
                        failed = run(scheduler, workers)
                        seconds = time.perf_counter() - t0
                rate = n_files / seconds
                new.append(
                    {
                        "n_files_set": n_set,
                        "pass": p,
                        "scheduler": s,
                        "files": n_files,
                        "seconds": round(seconds, 3),
                        "files_per_s": round(rate, 2),
                        "cpu_s": round(mem.cpu, 2),
                        "cpu_ms_per_file": round(1000 * mem.cpu / n_files, 2),
                        "peak_mb": round(mem.peak, 1),
                        "caller_peak_mb": round(mem.parent_peak, 1),
                        "extrapolated_s": round(REAL_FILES / rate, 1),
                        "failed": failed,
                        "date": date[:10],
                        "commit": commit,
                        "machine": machine_label(provenance.machine()),
                        "load_avg_start": round(load, 2),
                    }
                )
                print(
                    f"{PASS_LABELS[p]:<12}{SCHEDULER_LABELS[s]:<32}{seconds:>8.1f} s{rate:>9.1f} files/s"
                    f"{1000 * mem.cpu / n_files:>8.1f} CPU ms/file"
                    f"{mem.peak:>9.0f} MB peak{mem.parent_peak:>8.0f} MB caller"
                    f"   {REAL_FILES:,} files: {_duration(REAL_FILES / rate)}",
                    flush=True,
                )

    old = load_results(args.out)
    for r in old["runs"]:  # runs recorded before each run named its machine: the record's machine then
        r.setdefault("machine", machine_label(old["machine"]))
    results = merge(old, new)
    results["machine"] = provenance.machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    md = args.out.with_suffix(".md")
    md.write_text(markdown(results))
    print(f"results merged into {args.out} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
