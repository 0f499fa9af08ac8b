"""Write this book's leak-free task folders for the real dataset, from the vendored metadata alone.

Usage (from the repository root)::

    .venv/bin/python data/reference/release_tasks.py [--out data/reference/tasks]

Writes, in the published task-folder format (``<sensor>/splits.json``, ``<sensor>/patch_locations.geojson``,
``splits_aligned.json``, ``patch_locations_aligned.geojson``, ``config.json``; compact JSON; the entries'
``inventory`` follows the published convention, the first ``_`` token of the file name):

- ``S12LS-LD-blocked/`` and ``S12LS-AD-blocked/``: the published selections, split by
  :func:`s12ls_utils.splits.blocked_split` (presets of the same names);
- ``S12LS-LD-regions/<fold>/``: the published LD selection with the regions of one of the paper's six
  hold-out folds (``experiments/exp3/<fold>``) as the test set, the rest blocked into train and validation.

No ``norm.json`` is written: statistics need the pixels. Where the data are, ``s12ls norm TASK_DIR --data
data/real/data_harmonized`` adds them. The folders are deterministic (``tests/test_reference.py`` re-writes
them and compares byte for byte).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from s12ls_utils import reference, splits, tasks

HERE = Path(__file__).resolve().parent


def release(out: Path) -> list[Path]:
    cat = reference.catalog()
    src = reference.source()
    record = {
        "released_from": {
            "metadata": f"{src['repository']}@{src['commit']} ({src['license']}), vendored in data/reference/",
            "statistics": "none: run `s12ls norm TASK_DIR --data DATA_DIR` where the data are",
        }
    }
    written = []

    def write(folder: Path, cfg) -> None:
        res = splits.make_splits(cat, cfg)
        written.append(
            tasks.write_task(
                None,
                folder,
                cfg,
                result=res,
                stats=False,
                inventory="token",
                record=record,
                compact=True,
                overwrite=True,
            )
        )

    for name in ("S12LS-LD-blocked", "S12LS-AD-blocked"):
        write(out, tasks.load_config(name))
    ld_regions = set(splits.select(cat, tasks.load_config("S12LS-LD-blocked"))["s2"]["region"].astype(str))
    for fold, regions in reference.region_folds().items():
        cfg = tasks.load_config(
            "S12LS-LD-blocked",
            name=fold,
            description=f"S12LS-LD (published selection), region hold-out '{fold}' of the paper's experiment 3: "
            "these regions are the test set, the rest is blocked into train and validation (ours).",
            test_regions=sorted(set(regions) & ld_regions),
        )
        write(out / "S12LS-LD-regions", cfg)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / "tasks")
    a = p.parse_args(argv)
    for path in release(a.out):
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(f"{size / 1e6:6.2f} MB  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
