"""How long the vendored published metadata takes to load, and what the published split costs to re-run.

Each figure is measured in a fresh Python process (cold: nothing of ``s12ls_utils.reference`` cached yet,
the files in the OS page cache after the first round), best of ``--repeat``:

* ``import``: ``from s12ls_utils import reference`` (pandas and pyarrow included);
* ``patches``: the first :func:`reference.patches` call (reads ``data/reference/patches.parquet``);
* ``counts``: :func:`reference.counts` after that (eight scopes);
* ``catalog``: :func:`reference.catalog` (the catalog-shaped table of all 39,556 rows);
* ``reference_split``: :func:`splits.reference_split` on the 13,628 published S12LS-AD S2 patches.

``--dry-run`` takes the same path once (one round). The first line printed names the commit and the machine.

Usage::

    .venv/bin/python benchmarks/reference_load.py [--repeat 5]
    .venv/bin/python benchmarks/reference_load.py --dry-run      # seconds (CI)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import provenance

PROBE = r"""
import json, time
t0 = time.perf_counter()
from s12ls_utils import reference, splits
t1 = time.perf_counter()
reference.patches()
t2 = time.perf_counter()
reference.counts()
t3 = time.perf_counter()
reference.catalog()
t4 = time.perf_counter()
frame = reference.split_frame("S12LS-AD", "s2")
t5 = time.perf_counter()
splits.reference_split(frame[["file", "n_positive"]])
t6 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "patches": t2 - t1, "counts": t3 - t2, "catalog": t4 - t3,
                  "reference_split": t6 - t5}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dry-run", action="store_true", help="one round (for CI)")
    a = p.parse_args(argv)
    if a.dry_run:
        a.repeat = 1
    print(provenance.line(), flush=True)
    runs = [
        json.loads(
            subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
        )
        for _ in range(a.repeat)
    ]
    for key in runs[0]:
        best = min(r[key] for r in runs)
        print(f"{key:16s} {best * 1000:8.1f} ms (best of {a.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
