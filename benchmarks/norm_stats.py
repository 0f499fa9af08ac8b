"""Normalisation statistics speed: ``tasks.norm_stats`` against a two-pass per-file xarray reference.

Both compute, per sensor and feature variable, the mean and standard deviation over the same *train* files
(the S12LS-AD split of the data folder, the task that keeps the most patches), with the same clipping
(S2 0…10000, DEM 0…8800, S1 converted to dB and clipped to −50…10 dB) and NaN left out:

* **two-pass reference**: what the reference pipeline does, one file after the other: pass 1 opens each
  file with ``xarray.open_dataset``, loads every feature variable, removes ESA's +1000 DN offset from the
  S2 bands of raw-release dates from 2022-01-25 (``max(v − 1000, 0)``, written out here, not the package's
  ``harmonize_s2``), converts and clips it and accumulates
  the sum and count of the finite values (→ mean); pass 2 opens every file again and accumulates the squared
  deviations from that mean (→ variance).
* **streaming**: :func:`s12ls_utils.tasks.norm_stats` with its default worker count: each file is opened
  once, in a worker process, through netCDF4; its exact moments are merged with Chan's formula. A row with
  ``workers=1`` shows the single-process figure. The package keeps each file's moments in memory for the
  next call; every timed call starts without them, so each one reads every file.

Both run once untimed (warm page cache, imports), then best of ``--repeat`` (the streaming time includes
starting its worker processes) rounds in which the methods take turns. The results are compared (they must agree
to 1e-6 relative). The last line printed is ``speedup <N>x`` = reference time / streaming time.

``--dry-run`` takes the same path, small: a tiny synthetic sample (or ``--data``) and one timed round, without
the untimed one (its times include imports and a cold page cache: they show that it runs, not how fast). The
first line printed names the commit and the machine.

Usage::

    .venv/bin/python benchmarks/norm_stats.py                    # synthetic sample, 60 per sensor, in a temp dir
    .venv/bin/python benchmarks/norm_stats.py --data data/sample --repeat 5
    .venv/bin/python benchmarks/norm_stats.py --dry-run          # seconds (CI)
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import provenance
import xarray as xr

from s12ls_utils import schema, splits, tasks
from s12ls_utils.catalog import build_catalog
from s12ls_utils.io import file_release
from s12ls_utils.parallel import default_workers


def _convert_clip(a: np.ndarray, sensor: str, var: str, offset_steps: np.ndarray | None) -> np.ndarray:
    """``a`` (time first, fill already NaN) as the statistics see it. ``offset_steps``: the time steps whose
    raw S2 reflectances carry ESA's offset (None: none do); those lose it, floored at 0, as in the package."""
    if offset_steps is not None and var in schema.S2_OFFSET_BANDS:
        a = a.copy()
        a[offset_steps] = np.maximum(a[offset_steps] - schema.S2_OFFSET, 0.0)
    if var in schema.S1_BANDS and sensor != "s2":
        with np.errstate(divide="ignore", invalid="ignore"):
            a = 10.0 * np.log10(np.where(a > 0, a, np.nan))
    lo, hi = schema.CLIP_RANGES["DEM" if var == "DEM" else schema.sensor_family(sensor)]
    return np.clip(a, lo, hi)


def _feature(ds: xr.Dataset, var: str, sensor: str, steps: np.ndarray | None) -> np.ndarray:
    """One variable of an open file (time first, float64) as the statistics see it."""
    a = ds[var].transpose("time", ..., missing_dims="ignore").values.astype("float64")
    return _convert_clip(a, sensor, var, steps)


def _offset_steps(path: Path, ds: xr.Dataset, sensor: str) -> np.ndarray | None:
    """Time steps of a raw-release S2 file acquired on or after the offset date, or None."""
    if sensor != "s2" or file_release(path) != "raw":
        return None
    return ds["time"].values >= np.datetime64(schema.S2_OFFSET_FROM, "ns")


def two_pass_reference(files: list[Path], sensor: str) -> dict[str, dict[str, float]]:
    """Mean and std per variable with two passes of per-file xarray reads (see the module docstring)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for path in files:  # pass 1: mean
        with xr.open_dataset(path) as ds:
            steps = _offset_steps(path, ds, sensor)
            for var in ds.data_vars:
                if var in schema.NON_FEATURES:
                    continue
                a = _feature(ds, var, sensor, steps)
                sums[var] = sums.get(var, 0.0) + float(np.nansum(a))
                counts[var] = counts.get(var, 0) + int(np.count_nonzero(np.isfinite(a)))
    mean = {v: sums[v] / counts[v] for v in sums}
    sq: dict[str, float] = dict.fromkeys(mean, 0.0)
    for path in files:  # pass 2: variance
        with xr.open_dataset(path) as ds:
            steps = _offset_steps(path, ds, sensor)
            for var in mean:
                a = _feature(ds, var, sensor, steps)
                sq[var] += float(np.nansum((a - mean[var]) ** 2))
    return {"mean": mean, "std": {v: math.sqrt(sq[v] / counts[v]) for v in mean}}


def best_of_interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> tuple[dict, dict]:
    """Best time of each function over ``repeat`` rounds; the functions take turns within a round, so
    load from other processes on the machine affects them alike."""
    best = dict.fromkeys(fns, float("inf"))
    out: dict[str, object] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=None, help="data folder (default: synthesize one in a temp dir)"
    )
    ap.add_argument(
        "--n-per-sensor", type=int, default=60, help="files per sensor to synthesize (default 60)"
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="streaming workers (default: all cores)")
    ap.add_argument(
        "--dry-run", action="store_true", help="a tiny sample (or --data), one timed round (for CI)"
    )
    args = ap.parse_args(argv)
    print(provenance.line(), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if args.dry_run:
            args.repeat = 1
            if data is None:
                data = provenance.dry_sample(Path(tmp))
        elif data is None:
            from s12ls_utils.sample import make_sample

            data = Path(tmp) / "data"
            print(f"synthesizing {args.n_per_sensor} patches per sensor into {data} …", flush=True)
            make_sample(data, n_per_sensor=args.n_per_sensor, seed=1, progress=False)
        catalog = build_catalog(data, progress=False, use_cache=False)
        result = splits.make_splits(catalog, tasks.load_config("S12LS-AD"))
        train = {
            s: sorted(df.loc[df["split"] == "train", "path"].astype(str)) for s, df in result.frames.items()
        }
        n_files = sum(len(v) for v in train.values())
        workers = args.workers or default_workers()
        print(
            f"train files of S12LS-AD: {', '.join(f'{len(v)} {s}' for s, v in train.items())} "
            f"({n_files} in all); {workers} worker(s) on {default_workers()} CPU(s)"
        )

        def reference():
            return {s: two_pass_reference([data / p for p in files], s) for s, files in train.items()}

        def streaming(w: int | None):
            tasks._MOMENTS_MEMO.clear()  # the moments of an earlier call would make this one read nothing
            return {s: tasks.norm_stats(files, data, s, workers=w) for s, files in train.items()}

        if not args.dry_run:
            reference(), streaming(args.workers), streaming(1)  # warm-up (page cache, imports)
        t, res = best_of_interleaved(
            {"ref": reference, "one": lambda: streaming(1), "par": lambda: streaming(args.workers)},
            args.repeat,
        )
        t_ref, t_one, t_str = t["ref"], t["one"], t["par"]
        ref, one, got = res["ref"], res["one"], res["par"]

        worst = 0.0
        for s in train:
            for stat in ("mean", "std"):
                for v, x in ref[s][stat].items():
                    for cand in (got, one):
                        worst = max(worst, abs(cand[s][stat][v] - x) / max(abs(x), 1e-12))
        print(f"largest relative difference streaming vs reference: {worst:.2e}")
        if worst > 1e-6:
            print("error: the results differ by more than 1e-6", file=sys.stderr)
            return 1

        rows = [
            ("two-pass xarray reference (1 process)", t_ref),
            ("streaming norm_stats, workers=1", t_one),
            (f"streaming norm_stats, workers={workers}", t_str),
        ]
        print(f"\n{'method':<42}{'files':>7}{'seconds':>10}{'files/s':>10}")
        for name, t in rows:
            print(f"{name:<42}{n_files:>7}{t:>10.2f}{n_files / t:>10.1f}")
        print(f"\nsingle-process gain {t_ref / t_one:.1f}x")
        print(f"speedup {t_ref / t_str:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
