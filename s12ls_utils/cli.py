"""The ``s12ls`` command.

Sub-commands::

    s12ls synth OUT_DIR [--n-per-sensor N] [--seed S] [--overwrite]   write the synthetic sample
    s12ls download --dest DIR [--sensors s2 …] [--revision REV]       fetch + unpack the real data
    s12ls catalog DATA_DIR [--workers N] [--no-cache] [--csv FILE]     scan a data folder, print a summary
    s12ls validate PATH [PATH …]                                       check patch files against the format
    s12ls splits DATA_DIR --task S12LS-LD|S12LS-AD|CONFIG [--out DIR] [--random] [--overwrite]
                                                                       write a task folder (splits, norm)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__, schema


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic import make_sample

    info = make_sample(
        args.out_dir,
        n_per_sensor=args.n_per_sensor,
        seed=args.seed,
        overwrite=args.overwrite,
        workers=args.workers,
    )
    files = ", ".join(f"{n} {s}" for s, n in info.n_files.items())
    print(
        f"wrote {files} ({info.n_locations} locations, {info.n_landslides} landslides) "
        f"to {info.out_dir} in {info.seconds:.1f} s"
    )
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from .download import download_dataset, summarize

    report = download_dataset(
        Path(args.dest),
        sensors=args.sensors,
        revision=args.revision,
        token=args.token,
        keep_archives=args.keep_archives,
        include_tasks=not args.no_tasks,
        include_inventory=not args.no_inventory,
    )
    print(summarize(report))
    return 0 if report.ok else 1


def _cmd_catalog(args: argparse.Namespace) -> int:
    from .catalog import build_catalog, catalog_errors, summarize

    df = build_catalog(args.data_dir, workers=args.workers, use_cache=not args.no_cache)
    print(summarize(df))
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"catalog written to {args.csv}")
    errors = catalog_errors(df)
    for row in errors.itertuples():
        print(f"  error: {row.path}: {row.reason}", file=sys.stderr)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    paths: list[Path] = []
    for p in map(Path, args.paths):
        paths += sorted(p.glob("*/*.nc")) if p.is_dir() else [p]
    n_bad = 0
    for p in paths:
        problems = schema.validate_patch(p)
        if problems:
            n_bad += 1
            print(f"{p}:")
            for prob in problems:
                print(f"  - {prob}")
    print(f"{len(paths) - n_bad} of {len(paths)} files valid")
    return 1 if n_bad else 0


def _cmd_splits(args: argparse.Namespace) -> int:
    from .catalog import build_catalog
    from .splits import load_config, make_splits, write_task

    overrides = {} if args.distance_m is None else {"distance_m": args.distance_m}
    config = load_config(args.task, **overrides)
    spatial = False if args.random else config.spatial
    out = args.out if args.out is not None else args.data_dir / "tasks"
    if (out / config.name).exists() and not args.overwrite:
        raise FileExistsError(f"task folder {out / config.name} exists; pass --overwrite to replace it")
    catalog = build_catalog(args.data_dir, sensors=config.satellites, workers=args.workers, progress=False)
    result = make_splits(catalog, config, spatial)
    path = write_task(
        args.data_dir, out, config, spatial, overwrite=args.overwrite, result=result, workers=args.workers
    )
    mode = "spatial groups" if spatial else "random (reference)"
    print(f"task {config.name} ({mode} split, seed {config.seed}) written to {path}")
    print(result.counts().to_string(index=False))
    for scope, leak in result.leakage.items():
        n = leak["test_vs_train"]
        print(f"  leakage {scope}: {n} test patch(es) overlap or share a landslide with train")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s12ls", description="Work with the Sen12Landslides dataset.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write the synthetic sample (same format as the real data)")
    p.add_argument("out_dir", type=Path)
    p.add_argument(
        "--n-per-sensor", type=int, default=54, help="about this many files per sensor (default 54)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing sample in OUT_DIR")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("download", help="fetch the real dataset from the Hugging Face hub and unpack it")
    p.add_argument("--dest", type=Path, default=Path("data/real"))
    p.add_argument("--sensors", nargs="+", default=list(schema.SENSORS), choices=schema.SENSORS)
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) to pin")
    p.add_argument("--token", default=None, help="hub token (default: HF_TOKEN or the cached login)")
    p.add_argument("--keep-archives", action="store_true", help="keep the .tar.gz files after extraction")
    p.add_argument("--no-tasks", action="store_true", help="skip the tasks/ folder")
    p.add_argument("--no-inventory", action="store_true", help="skip inventories.shp.zip")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("catalog", help="scan a data folder into a metadata table and print a summary")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--no-cache", action="store_true", help="ignore and do not write the parquet cache")
    p.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    p.set_defaults(func=_cmd_catalog)

    p = sub.add_parser("validate", help="check patch files (or data folders) against the format")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("splits", help="write a task folder: splits, normalisation statistics, locations")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--task", required=True, help="preset (S12LS-LD, S12LS-AD) or a YAML/JSON config file")
    p.add_argument("--out", type=Path, default=None, help="folder for <TASK>/ (default: DATA_DIR/tasks)")
    p.add_argument("--random", action="store_true", help="reference random split (no spatial groups)")
    p.add_argument("--distance-m", type=float, default=None, help="spatial grouping distance (m)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing task folder")
    p.set_defaults(func=_cmd_splits)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"s12ls {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
