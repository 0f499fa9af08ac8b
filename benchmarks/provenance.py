"""Where a benchmark's figures came from: the commit and the machine, for every record in ``benchmarks/results/``.

Every script prints :func:`line` before it measures, and the scripts that write a record (JSON) store
:func:`machine` in it, so a figure copied into a record names the code and the hardware it was measured on.
Also the shared pieces of the dry runs (``--dry-run``: the same code path, small, in seconds).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Patches per sensor of the tiny synthetic sample a dry run writes when it is given no ``--data``.
DRY_N_PER_SENSOR = 10


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def commit() -> str:
    """``git rev-parse --short HEAD`` of this checkout, with ``+changes`` when tracked files other than the
    records in ``benchmarks/results/`` (which a run writes) differ from it (``unknown`` outside a git checkout)."""
    head = _run(["git", "rev-parse", "--short", "HEAD"])
    if not head:
        return "unknown"
    changed = _run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"]
    )
    return head + ("+changes" if changed else "")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def gpus() -> list[str]:
    """Names of the NVIDIA GPUs ``nvidia-smi`` lists (empty without one; torch is not imported for this)."""
    if shutil.which("nvidia-smi") is None:
        return []
    return [g for g in _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]).splitlines() if g]


def machine() -> dict:
    """The commit and the machine: cores (all and usable), CPU model, RAM, GPUs, Python, OS, date."""
    import psutil

    return {
        "commit": commit(),
        "date": dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "gpu": gpus() or None,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def line(info: dict | None = None) -> str:
    """One printable line: ``commit …; machine: N cores (U usable), CPU, RAM, GPU …``."""
    m = info or machine()
    return (
        f"commit {m['commit']}; machine: {m['cores']} cores ({m['cores_usable']} usable), {m['cpu']}, "
        f"{m['ram_gb']} GB RAM, GPU {', '.join(m['gpu']) if m['gpu'] else 'none'}; "
        f"Python {m['python']}, {m['system']}; {m['date']}"
    )


def dry_sample(root: Path, n_per_sensor: int = DRY_N_PER_SENSOR) -> Path:
    """A tiny synthetic sample (seed 1) written to ``root/data`` for a dry run; returns its folder."""
    from s12ls_utils.sample import make_sample

    data = root / "data"
    print(f"dry run: writing a tiny synthetic sample ({n_per_sensor} per sensor) to {data} …", flush=True)
    make_sample(data, n_per_sensor=n_per_sensor, seed=1, progress=False)
    return data
