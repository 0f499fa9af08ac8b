"""Synthetic generator at scale: time and peak memory of ``s12ls synth`` as the number of files grows.

For each ``--n-per-sensor`` value the command ``s12ls synth DIR --n-per-sensor N --workers W`` runs in a
fresh process (``python -m s12ls_utils.cli``), into a new folder under ``--dir`` that is deleted afterwards.
Reported per run:

* **files** written (from the manifest) and wall-clock **seconds**;
* **main MB**: peak resident memory of the ``s12ls`` process itself (``ru_maxrss`` from ``wait4``, exact).
  With ``--workers 1`` it does all the work, so this is the whole peak;
* **worker MB**: the largest peak of any worker process (``VmHWM`` in ``/proc/<pid>/status``, read every
  0.2 s while the workers live, so a rise in a worker's last fraction of a second can be missed);
* **total MB**: the largest sum of the current resident memory of the command and all its processes,
  sampled at the same times (what the machine must hold at once).

The generator writes each canvas's files as soon as they are simulated and keeps only a small index entry
per file, so peak memory should not grow with the file count. The last line printed is
``peak growth <X> MB (<Y> %) from <F1> to <F2> files`` for the main process (``--workers 1``) or the largest
worker, first size against last.

Usage::

    .venv/bin/python benchmarks/synth_memory.py                          # ~500 and ~2,000 files, 1 process
    .venv/bin/python benchmarks/synth_memory.py --n-per-sensor 10 40 --workers 2
    .venv/bin/python benchmarks/synth_memory.py --dry-run                # seconds (CI)

``--dry-run`` takes the same path, small: sizes 3 and 4 per sensor with seed 4 (unless ``--n-per-sensor`` /
``--seed``: 6 and 12 files, the smallest plans that grow), in a temporary folder. The first line printed names
the commit and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import provenance
import psutil

from s12ls_utils.sample import MANIFEST_NAME


def _peak_kib(pid: int) -> int:
    """Peak resident memory so far (``VmHWM``) of a live process, in KiB; 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def run_once(out: Path, n_per_sensor: int, workers: int, seed: int) -> dict:
    """Run ``s12ls synth`` once and measure it (see the module docstring)."""
    cmd = [sys.executable, "-m", "s12ls_utils.cli", "synth", str(out), "--n-per-sensor", str(n_per_sensor)]
    cmd += ["--seed", str(seed), "--workers", str(workers)]
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        main = psutil.Process(proc.pid)
        worker_kib = total_bytes = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                kids = main.children(recursive=True)
                total_bytes = max(total_bytes, sum(p.memory_info().rss for p in [main, *kids]))
            except psutil.NoSuchProcess:  # a process ended between listing and reading
                kids = []
            worker_kib = max([worker_kib, *(_peak_kib(k.pid) for k in kids)])
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read().decode()[-3000:]}")
    counts = json.loads((out / MANIFEST_NAME).read_text())["counts"]
    return {
        "n_per_sensor": n_per_sensor,
        "files": sum(counts.values()),
        "seconds": seconds,
        "main_mb": usage.ru_maxrss / 1024,
        "worker_mb": worker_kib / 1024,
        "total_mb": total_bytes / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--n-per-sensor",
        type=int,
        nargs="+",
        default=None,
        help="sizes to run (default 170 680: about 500 and 2,000 files; dry run 3 4)",
    )
    ap.add_argument("--workers", type=int, default=1, help="generator processes (default 1)")
    ap.add_argument("--seed", type=int, default=None, help="generator seed (default 0; dry run 4)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="parent of the samples")
    ap.add_argument("--dry-run", action="store_true", help="two tiny sizes in a temporary folder (for CI)")
    args = ap.parse_args(argv)
    print(provenance.line(), flush=True)
    if args.n_per_sensor is None:
        args.n_per_sensor = [3, 4] if args.dry_run else [170, 680]
    if args.seed is None:
        args.seed = 4 if args.dry_run else 0
    if not args.dry_run:
        return run(args)
    with tempfile.TemporaryDirectory(prefix="s12ls-synth-dry-") as tmp:
        args.dir = Path(tmp)
        return run(args)


def run(args: argparse.Namespace) -> int:
    """The benchmark with parsed arguments (see :func:`main`)."""
    rows = []
    for n in args.n_per_sensor:
        out = args.dir / f"s12ls-synth-bench-{n}"
        if out.exists():
            print(f"{out} exists; remove it or choose another --dir", file=sys.stderr)
            return 1
        try:
            print(f"s12ls synth {out} --n-per-sensor {n} --workers {args.workers} …", flush=True)
            rows.append(run_once(out, n, args.workers, args.seed))
        finally:
            shutil.rmtree(out, ignore_errors=True)

    print(f"\nworkers={args.workers}, seed {args.seed}, CPUs: {os.cpu_count()}")
    print(
        f"{'n/sensor':>9}{'files':>7}{'seconds':>9}{'files/s':>9}{'main MB':>9}{'worker MB':>11}{'total MB':>10}"
    )
    for r in rows:
        print(
            f"{r['n_per_sensor']:>9}{r['files']:>7}{r['seconds']:>9.1f}{r['files'] / r['seconds']:>9.1f}"
            f"{r['main_mb']:>9.0f}{r['worker_mb']:>11.0f}{r['total_mb']:>10.0f}"
        )
    if len(rows) > 1:
        key = "main_mb" if args.workers == 1 else "worker_mb"
        first, last = rows[0], rows[-1]
        growth = last[key] - first[key]
        print(
            f"peak growth {growth:+.0f} MB ({100 * growth / first[key]:+.1f} %) "
            f"from {first['files']} to {last['files']} files"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
