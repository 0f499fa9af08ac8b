"""Catalog scan speed: ``build_catalog`` against the straightforward per-file xarray loop.

Compared, on the same files, in one run, both warm (every file is read once by each approach before
timing, so the OS page cache holds them) and best of ``--repeat``; the repeats are interleaved (one
round runs every approach once), so a burst of other load on the machine slows both sides alike. The
1-minute load average before and after the timing is printed: on a 2-core machine another busy process
takes a worker's core, and the ratio with it.

* **straightforward** — what one writes without the catalog, one file after the other:
  ``xarray.open_dataset(path)``, read ``ds.attrs``, load the whole ``MASK`` (``ds["MASK"].values``) and count
  the positive pixels of time step 0; for S2 also load the whole ``SCL`` and compute the share of bad
  pixels per date; for S1 also load the middle ``VV`` time step (backscatter unit). That is the same
  information the catalog reads.
* **catalog** — ``build_catalog(data, use_cache=False, progress=False)`` with its default worker count:
  ``read_patch_meta`` in worker processes reads attributes, time stamps, ``MASK`` at t0, the whole ``SCL``
  for S2 and the middle ``VV`` step for S1 through netCDF4; then the typed table is assembled with lon/lat.
  The cache is off, so every file is opened and read in every repeat. A row with ``workers=1`` shows the
  single-process figure.

The last line printed is ``speedup <N>x`` with N = straightforward time / catalog time.

``--dry-run`` takes the same path, small: a tiny synthetic sample (or ``--data``) and one timed round. The first
line printed names the commit and the machine.

Usage::

    .venv/bin/python benchmarks/catalog_scan.py                     # synthetic sample, 100 per sensor
    .venv/bin/python benchmarks/catalog_scan.py --data data/sample --repeat 5
    .venv/bin/python benchmarks/catalog_scan.py --dry-run           # seconds (CI)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import provenance
import xarray as xr

from s12ls_utils import schema
from s12ls_utils.catalog import build_catalog
from s12ls_utils.parallel import default_workers


def list_patches(data: Path) -> list[tuple[Path, str]]:
    """Every ``<data>/<sensor>/*.nc`` file with a well-formed name, with its sensor."""
    out = []
    for sensor in schema.SENSORS:
        folder = data / sensor
        if folder.is_dir():
            out += [(p, sensor) for p in sorted(folder.glob("*.nc")) if schema.FILENAME_RE.match(p.name)]
    return out


def straightforward(files: list[tuple[Path, str]]) -> list[tuple]:
    """The per-file xarray loop (see the module docstring)."""
    bad_classes = list(schema.SCL_BAD)
    rows = []
    for path, sensor in files:
        with xr.open_dataset(path) as ds:
            attrs = dict(ds.attrs)
            mask = ds["MASK"].values
            n_pos = int(np.count_nonzero(mask[0]))
            extra = None
            if sensor == "s2":
                scl = ds["SCL"].values
                extra = np.isin(scl, bad_classes).reshape(scl.shape[0], -1).mean(axis=1)
            else:
                vv = ds["VV"].isel(time=ds.sizes["time"] // 2).values
                extra = bool(np.nanmin(vv) < 0)
            rows.append((path.name, attrs, n_pos, extra))
    return rows


def write_sample(data: Path, n_per_sensor: int) -> None:
    """Write the synthetic sample in a separate Python process, as ``s12ls synth`` does for a user.

    Not in this process: the generator's worker pool would start this process's ``forkserver`` without
    the reading stack preloaded (:func:`s12ls_utils.parallel.mp_context` can set the preload only before
    the server starts), and every catalog worker would then import it again (about 0.5 s per call on a
    2-core machine), which measures the generator's side effect, not the catalog.
    """
    code = (
        "import sys; from s12ls_utils.sample import make_sample; "
        "make_sample(sys.argv[1], n_per_sensor=int(sys.argv[2]), seed=0, progress=False)"
    )
    subprocess.run([sys.executable, "-c", code, str(data), str(n_per_sensor)], check=True)


def best_of(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best wall time of each function over ``repeat`` rounds; each round runs every function once."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data folder with s1asc/ s1dsc/ s2/ (default: write a synthetic sample to a temp dir)",
    )
    ap.add_argument(
        "--n-per-sensor", type=int, default=100, help="size of the synthetic sample (default 100)"
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="timed repeats per approach; the best counts (default 3)"
    )
    ap.add_argument(
        "--workers", type=int, default=None, help="catalog workers (default: build_catalog's default)"
    )
    ap.add_argument(
        "--dry-run", action="store_true", help="a tiny sample (or --data), one timed round (for CI)"
    )
    args = ap.parse_args(argv)
    print(provenance.line(), flush=True)

    with tempfile.TemporaryDirectory(prefix="s12ls_bench_") as tmp:
        data = args.data
        if args.dry_run:
            args.repeat = 1
            if data is None:
                data = provenance.dry_sample(Path(tmp))
        elif data is None:
            data = Path(tmp) / "sample"
            print(f"writing a synthetic sample ({args.n_per_sensor} per sensor) to {data} …", flush=True)
            write_sample(data, args.n_per_sensor)
        files = list_patches(data)
        if not files:
            print(f"no patches under {data}", file=sys.stderr)
            return 1
        n = len(files)
        counts = {s: sum(1 for _, t in files if t == s) for s in schema.SENSORS}
        workers = args.workers or default_workers()

        def catalog(w: int | None) -> Callable[[], object]:
            return lambda: build_catalog(data, workers=w, use_cache=False, progress=False)

        # warm-up: every approach reads every file once (page cache; the catalog's worker server starts)
        t0 = time.perf_counter()
        df = catalog(args.workers)()
        first_call = time.perf_counter() - t0
        straightforward(files)
        catalog(1)()
        if len(df) != n:
            print(f"warning: catalog has {len(df)} rows for {n} files ({len(df.attrs['errors'])} errors)")

        load_before = os.getloadavg()[0]
        best = best_of(
            {"plain": lambda: straightforward(files), "cat": catalog(args.workers), "cat1": catalog(1)},
            args.repeat,
        )
        load_after = os.getloadavg()[0]
        t_plain, t_cat, t_cat1 = best["plain"], best["cat"], best["cat1"]

        print(f"\n{n} patches ({', '.join(f'{v} {k}' for k, v in counts.items())}) in {data}")
        print(
            f"CPUs usable: {default_workers()} (os.cpu_count() = {os.cpu_count()}); warm page cache; "
            f"best of {args.repeat}, interleaved; load average (1 min) {load_before:.2f} before, "
            f"{load_after:.2f} after"
        )
        print(
            "reads  straightforward: xarray.open_dataset + attrs + whole MASK (+ whole SCL for S2, "
            "middle VV step for S1)"
        )
        print(
            "       catalog:         netCDF4: attrs + time + MASK[t0] (+ whole SCL for S2, "
            "middle VV step for S1) → typed table with lon/lat, no cache\n"
        )
        rows = [
            ("straightforward (1 process)", t_plain),
            (f"catalog, workers={workers}", t_cat),
            ("catalog, workers=1", t_cat1),
        ]
        print(f"{'approach':<30}{'seconds':>9}{'patches/s':>11}{'ms/patch':>10}{'vs straightf.':>15}")
        for name, t in rows:
            print(f"{name:<30}{t:>9.3f}{n / t:>11.1f}{1000 * t / n:>10.2f}{t_plain / t:>14.1f}x")
        print(f"(first catalog call, incl. starting the worker server: {first_call:.3f} s)")
        print(f"speedup {t_plain / t_cat:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
