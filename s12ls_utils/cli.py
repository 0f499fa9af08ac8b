"""The ``s12ls`` command.

Sub-commands::

    s12ls synth OUT_DIR [--n-per-sensor N] [--seed S] [--workers N] [--overwrite] [--release R]
                                                                       write the synthetic sample
    s12ls download --dest DIR [--version harmonized|raw] [--sensors s2 …] [--revision REV]
                                                                       fetch + unpack the real data into
                                                                       DIR/data_<version>/<sensor>/
    s12ls catalog DATA_DIR [--workers N] [--scheduler S] [--no-cache] [--csv FILE]
                                                                       scan a data folder, print a summary
    s12ls validate PATH [PATH …] [--details] [--report [--csv FILE]] [--workers N] [--scheduler S]
                                                                       check patch files against the format;
                                                                       --report: known issues of the real files
    s12ls realism DATA_DIR [--workers N] [--scheduler S] [--csv FILE]  how close a data folder is to the
                                                                       real dataset (published statistics)
    s12ls splits DATA_DIR --task PRESET|CONFIG [--out DIR] [--method reference|blocked] [--overwrite]
          [--workers N] [--scheduler S]                                write a task folder (splits, norm)
    s12ls norm TASK_DIR [--data DIR] [--out DIR] [--sensors s2 …] [--overwrite] [--allow-missing]
          [--workers N] [--scheduler S]
                                                                       copy a task released without
                                                                       normalisation statistics to
                                                                       DIR/<task> (default DATA/tasks), add
                                                                       them and record the data folder
    s12ls cache TASK_DIR [--data DIR] [--sensors s2 …] [--splits train val test] [--force] [--allow-missing]
          [--workers N] [--scheduler S]                                build the packed training cache
    s12ls signatures DATA_DIR --out FILE.parquet [--sensors s2 …] [--workers N] [--scheduler S]
                                                                       per-patch temporal signature table
    s12ls train TASK_DIR [--data DIR] [--model unet_prepost|utae|convgru] [--sensors s2 …] [--epochs N]
          [--device auto] [--resume] [--config FILE] [--set KEY=VALUE …] [--allow-missing] [--nproc N]
                                                                       train a baseline → runs/<name>/
    s12ls evaluate RUN_DIR [--task-dir DIR] [--data DIR] [--sensor s2|s1asc|s1dsc] [--cover-fraction F]
          [--n-boot N] [--device auto] [--allow-missing] [--out FILE.json]
                                                                       landslide-class test scores vs
                                                                       the change-detection reference

``python -m s12ls_utils.cli`` is the same command; it is also the entry torchrun starts in every process
(``torchrun --nproc-per-node N -m s12ls_utils.cli train TASK_DIR [options]``, what ``--nproc N`` runs).
The training options are passed as given: :class:`~s12ls_utils.training.TrainConfig` coerces and checks them.

The data passes (catalog, splits, norm, cache, signatures) take ``--scheduler``: ``processes`` (default, local
worker processes), ``threads``, ``synchronous`` (in one process, for debugging) or the address of a
dask.distributed scheduler (``tcp://HOST:8786``) whose workers see the data at the same paths.

Every command that reads a task's files (norm, cache, train, evaluate) takes the data folder as ``--data``
(default: the folder ``norm`` recorded in the task's config.json, else the one the task sits in) and checks
before any work that the files are there: when some are missing it says how many, where it looked and
which folder probably holds them, writes nothing and exits with 2; ``--allow-missing`` goes on with the
files that exist and records the count (norm: config.json; train: run.json; evaluate: its output).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__, schema
from .parallel import FilesFailed
from .splits import METHODS
from .tasks import PRESETS, MissingFilesError


def _add_data_options(p: argparse.ArgumentParser, default: str = "") -> None:
    """``--data`` and ``--allow-missing``: the options of every command that reads a task's files."""
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="data folder the task's paths are relative to (default: "
        + (
            default
            or "the folder recorded in the task's config.json by `s12ls norm`, else the one it sits in"
        )
        + ")",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="go on when some of the task's files are missing under the data folder (default: stop before "
        "any work, naming how many and where they probably are); the count is recorded",
    )


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """The options of ``s12ls train`` (every one a :class:`~s12ls_utils.training.TrainConfig` setting)."""
    p.add_argument("task_dir", type=Path, help="task folder, e.g. data/sample/tasks/S12LS-LD")
    _add_data_options(p)
    p.add_argument("--model", default=None, help="unet_prepost (default), utae or convgru")
    p.add_argument("--sensors", nargs="+", default=None, help="s2 (default), s1asc, s1dsc; several = fusion")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--device", default=None, help="auto (default: CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--run-name", default=None)
    p.add_argument("--runs-dir", type=Path, default=None, help="parent of the run folder (default: runs)")
    p.add_argument("--max-train-patches", type=int, default=None)
    p.add_argument("--crop", type=int, default=None, help="train on random crops of this size")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 0 on CPU)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--config", type=Path, default=None, help="JSON/YAML file of TrainConfig settings")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="any TrainConfig setting (a JSON value or text)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")


def _cmd_synth(args: argparse.Namespace) -> int:
    from .sample import DEFAULT_N_PER_SENSOR, make_sample  # lazily: the generator sits on top of the library

    info = make_sample(
        args.out_dir,
        n_per_sensor=args.n_per_sensor if args.n_per_sensor is not None else DEFAULT_N_PER_SENSOR,
        seed=args.seed,
        overwrite=args.overwrite,
        workers=args.workers,
        release=args.release,
    )
    files = ", ".join(f"{n} {s}" for s, n in info.n_files.items())
    print(
        f"wrote {files} ({info.n_locations} locations, {info.n_landslides} landslides) "
        f"to {info.out_dir} in {info.seconds:.1f} s"
    )
    return 0


def _sensor_list(value: str) -> list[str]:
    """``--sensors`` value: one sensor or a comma-separated list, checked before any work starts."""
    sensors = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in sensors if s not in schema.SENSORS]
    if not sensors or unknown:
        raise argparse.ArgumentTypeError(
            f"invalid sensor(s) {value!r}; choose from {', '.join(schema.SENSORS)}"
        )
    return sensors


def _cmd_download(args: argparse.Namespace) -> int:
    from .download import download_dataset, summarize

    if args.sensors is None:
        sensors = list(schema.SENSORS)
    else:  # "--sensors s2 s1asc" and "--sensors s2,s1asc" alike
        sensors = list(dict.fromkeys(s for group in args.sensors for s in group))
    try:
        report = download_dataset(
            Path(args.dest),
            version=args.data_version,
            sensors=sensors,
            revision=args.revision,
            token=args.token,
            keep_archives=args.keep_archives,
            include_tasks=not args.no_tasks,
            include_inventory=not args.no_inventory,
        )
    except OSError as exc:  # hub errors (network, access, unknown revision) are OSErrors too
        print(f"s12ls download: error: {exc}", file=sys.stderr)
        return 2
    print(summarize(report))
    return 0 if report.ok else 1


def _scheduler(value: str) -> str:
    """``--scheduler`` value, checked before any work starts (a usage error lists the choices)."""
    from .parallel import check_scheduler

    try:
        return check_scheduler(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_catalog(args: argparse.Namespace) -> int:
    from .catalog import build_catalog, catalog_errors, summarize

    df = build_catalog(
        args.data_dir, workers=args.workers, scheduler=args.scheduler, use_cache=not args.no_cache
    )
    print(summarize(df))
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"catalog written to {args.csv}")
    errors = catalog_errors(df)
    for row in errors.itertuples():
        print(f"  error: {row.path}: {row.reason}", file=sys.stderr)
    return 0


def _cmd_realism(args: argparse.Namespace) -> int:
    from .sample.realism import realism  # lazily: the realism check sits on top of the library

    report = realism(args.data_dir, workers=args.workers, scheduler=args.scheduler)
    print(report.to_text())
    if args.csv:
        report.table.to_csv(args.csv, index=False)
        print(f"table written to {args.csv}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .known_issues import check_files, known_issues, patch_files

    groups = [(Path(p), patch_files(p)) for p in args.paths]  # none found: FileNotFoundError, exit 2
    paths = [f for _, files in groups for f in files]
    checks = check_files(paths, workers=args.workers, scheduler=args.scheduler)
    n_bad = 0
    for c in checks:
        if c.errors:
            n_bad += 1
            print(f"{c.path}:")
            for prob in c.errors:
                print(f"  - {prob}")
        if args.details:
            print("".join(f"{c.path}: warning: {w}\n" for w in c.warnings), end="")
            print("".join(f"{c.path}: note: {n}\n" for n in c.notes), end="")
    print(f"{len(paths) - n_bad} of {len(paths)} files valid")
    scl = [(c.path.name, c.quality["scl_unknown_frames"]) for c in checks if c.quality["scl_unknown_frames"]]
    if scl:
        print(
            f"quality note: {len(scl)} file(s) hold {sum(n for _, n in scl)} frame(s) with SCL "
            f"{schema.SCL_UNKNOWN} (unknown quality: unusable for cloud masks, not a format error), e.g. "
            + ", ".join(f"{name} ({n})" for name, n in scl[:3])
        )
    n_warned = sum(bool(c.warnings) for c in checks)
    if n_warned and not args.details:
        print(
            f"{n_warned} file(s) with warnings a reader handles (e.g. repeated dates); --details lists them"
        )
    if args.report:
        reports = []
        for path, files in groups:
            if not path.is_dir() or path.name in schema.SENSORS:
                print(f"--report looks at a data folder (<data>/<sensor>/*.nc); {path} is not one")
                continue
            names = set(files)
            own = [c for c in checks if c.path in names]
            report = known_issues(path, workers=args.workers, scheduler=args.scheduler, checks=own)
            print(report.to_text())
            reports.append(report.files.assign(data_dir=str(path)))
        if args.csv is not None and reports:
            import pandas as pd

            args.csv.parent.mkdir(parents=True, exist_ok=True)
            pd.concat(reports, ignore_index=True).to_csv(args.csv, index=False)
            print(f"files of each issue written to {args.csv}")
    return 1 if n_bad else 0


def _cmd_splits(args: argparse.Namespace) -> int:
    import json

    from .catalog import build_catalog
    from .splits import make_splits
    from .tasks import load_config, write_task

    overrides = {} if args.method is None else {"method": args.method}
    config = load_config(args.task, **overrides)
    out = args.out if args.out is not None else args.data_dir / "tasks"
    if (out / config.name).exists() and not args.overwrite:
        raise FileExistsError(f"task folder {out / config.name} exists; pass --overwrite to replace it")
    catalog = build_catalog(
        args.data_dir,
        sensors=config.satellites,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=False,
    )
    result = make_splits(catalog, config)
    path = write_task(
        args.data_dir,
        out,
        config,
        overwrite=args.overwrite,
        result=result,
        workers=args.workers,
        scheduler=args.scheduler,
    )
    mode = "blocked, leak-free" if config.method == "blocked" else "published (reference)"
    print(f"task {config.name} ({mode} split, seed {config.seed}) written to {path}")
    print(result.counts().to_string(index=False))
    for scope, leak in result.leakage.items():
        n = leak["test_vs_train"]
        print(f"  leakage {scope}: {n} test patch(es) overlap or share a landslide with train")
    unreadable = json.loads((path / "config.json").read_text())["norm"].get("unreadable_files", [])
    for f in unreadable:
        print(f"  left out of the statistics: {f['path']}: {f['reason']}", file=sys.stderr)
    return 0


def _cmd_norm(args: argparse.Namespace) -> int:
    import json

    from .tasks import load_task, write_norm

    if args.sensors is not None:  # "--sensors s2 s1asc" and "--sensors s2,s1asc" alike
        args.sensors = list(dict.fromkeys(s for group in args.sensors for s in group))
    path = write_norm(
        args.task_dir,
        args.data,
        out_dir=args.out,
        sensors=args.sensors,
        overwrite=args.overwrite,
        allow_missing=args.allow_missing,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=True,
    )
    task = load_task(path)
    print(f"task {task.name} with statistics written to {path} (train files of {task.data_dir})")
    for sensor in task.sensors:
        if sensor in task.norm:
            means = ", ".join(f"{v} {m:.4g}" for v, m in task.norm[sensor]["mean"].items())
            print(f"  {sensor}: mean {means}")
    config = json.loads((path / "config.json").read_text())
    for f in (config.get("norm") or {}).get("unreadable_files", []):
        print(f"  left out of the statistics: {f['path']}: {f['reason']}", file=sys.stderr)
    _print_left_out(config.get("missing_files"), "the statistics")
    print(f"the data folder is recorded in {path / 'config.json'}: later commands on {path} need no --data")
    return 0


def _print_left_out(record: dict | None, what: str) -> None:
    """One line per sensor for the files ``--allow-missing`` left out (a ``missing_files`` record)."""
    for sensor, n in ((record or {}).get("missing") or {}).items():
        print(
            f"  left out of {what}: {n:,} of {record['looked_for'][sensor]:,} {sensor} files missing under "
            f"{record['data_dir']} (--allow-missing)",
            file=sys.stderr,
        )


def _cmd_cache(args: argparse.Namespace) -> int:
    import json

    from .datasets import build_cache, cache_status, split_entries
    from .tasks import check_files, load_task

    sensors = tuple(dict.fromkeys(args.sensors))
    task = load_task(args.task_dir, data_dir=args.data)
    # every split at once, before any work: one message for all of them
    checked = check_files(task, sensors, args.splits, allow_missing=args.allow_missing)
    _print_left_out(checked.file_check.record() if checked.file_check.n_missing else None, "the cache")
    n_failed = 0
    for split in args.splits:
        if not split_entries(checked, split, sensors):
            print(f"{split}: empty, nothing to cache")
            continue
        stale = {
            s: cache_status(checked, split, s, sensors=sensors, cache_dir=args.cache_dir) for s in sensors
        }
        try:
            folders = build_cache(
                task,
                split,
                sensors,
                cache_dir=args.cache_dir,
                force=args.force,
                allow_missing=args.allow_missing,
                workers=args.workers,
                scheduler=args.scheduler,
            )
        except FilesFailed as exc:
            print(f"s12ls cache: error: {exc}", file=sys.stderr)
            n_failed += len(exc.failures)
            continue
        for sensor, folder in folders.items():
            manifest = json.loads((folder / "manifest.json").read_text())
            gb = sum(p.stat().st_size for p in folder.glob("*.npy")) / 1e9
            how = (
                f"built in {manifest['build_seconds']:.1f} s ({'forced' if args.force else stale[sensor]})"
                if args.force or stale[sensor] is not None
                else "up to date"
            )
            print(f"{split}/{sensor}: {manifest['n']} patches, {gb:.2f} GB, {how} → {folder}")
    return 1 if n_failed else 0


def _cmd_signatures(args: argparse.Namespace) -> int:
    from .catalog import build_catalog, catalog_errors
    from .signatures import collect_signatures

    run = {"workers": args.workers, "scheduler": args.scheduler}
    catalog = build_catalog(args.data_dir, sensors=args.sensors, progress=False, **run)
    res = collect_signatures(catalog, args.data_dir, sensors=args.sensors, **run)
    for out, table in ((args.out, res.series), (args.patches, res.patches), (args.changes, res.changes)):
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            table.to_parquet(out, index=False)
    counts = res.patches["sensor"].value_counts() if len(res.patches) else {}
    per_sensor = ", ".join(f"{counts[s]} {s}" for s in args.sensors if s in counts)
    print(
        f"signatures of {len(res.patches)} patches ({per_sensor}) in {res.seconds:.1f} s: "
        f"{len(res.series)} time-series rows → {args.out}"
    )
    for label, out, table in (
        ("patch facts", args.patches, res.patches),
        ("pixel changes", args.changes, res.changes),
    ):
        if out is not None:
            print(f"{label}: {len(table)} rows → {out}")
    problems = [(r.path, r.reason) for r in catalog_errors(catalog).itertuples()]
    problems += [(e["path"], e["reason"]) for e in res.errors]
    for p, reason in problems:
        print(f"  error: {p}: {reason}", file=sys.stderr)
    return 0


def _train_settings(args: argparse.Namespace) -> dict:
    """The training settings of parsed options as given: ``--config`` file, then flags, then ``--set``
    (:class:`~s12ls_utils.training.TrainConfig` coerces and checks them all)."""
    import yaml

    settings = {} if args.config is None else dict(yaml.safe_load(args.config.read_text()) or {})
    flags = {
        "sensors": args.sensors,
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
        "run_name": args.run_name,
        "runs_dir": args.runs_dir,
        "max_train_patches": args.max_train_patches,
        "crop": args.crop,
        "num_workers": args.workers,
        "seed": args.seed,
        "data_dir": args.data,
    }
    settings.update({k: v for k, v in flags.items() if v is not None})
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        settings[key] = value
    for flag in ("resume", "overwrite", "compile", "allow_missing"):
        if getattr(args, flag):
            settings[flag] = True
    settings["task_dir"] = args.task_dir
    return settings


def _launch_torchrun(nproc: int, cfg, keys) -> int:
    """Train ``cfg`` in ``nproc`` processes on this machine (DistributedDataParallel), as ``torchrun
    --standalone``: the settings ``keys`` travel as ``--set KEY=VALUE`` to ``python -m s12ls_utils.cli
    train`` (the torchrun entry), which every process runs; rank 0 writes the run and prints its summary.
    """
    import json
    import os
    import shlex
    import subprocess

    from .parallel import default_workers
    from .training import per_process_batch

    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, not {nproc}")
    if "WORLD_SIZE" in os.environ:
        raise ValueError("--nproc inside a torchrun process: torchrun already started the processes")
    per_process_batch(cfg.batch_size, nproc)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd += ["-m", "s12ls_utils.cli", "train", cfg.task_dir]
    for key in sorted(set(keys) - {"task_dir"}):
        cmd += ["--set", f"{key}={json.dumps(getattr(cfg, key))}"]
    logging.getLogger(__name__).info("running %s", shlex.join(cmd))
    env = dict(os.environ)
    # torchrun would give every process 1 OpenMP thread: share the cores instead (CPU training sets
    # torch's own thread count the same way)
    env.setdefault("OMP_NUM_THREADS", str(max(1, default_workers() // nproc)))
    return subprocess.run(cmd, env=env, check=False).returncode


def _cmd_train(args: argparse.Namespace) -> int:
    """``s12ls train``, and the entry every torchrun process runs (``-m s12ls_utils.cli train``): under
    torchrun (``WORLD_SIZE`` set) each joins the run with ``distributed=True``, so even one process
    (``--nproc 1``) takes the DDP path (NCCL on CUDA, gloo on CPU). Rank 0 prints the summary."""
    import os

    from .training import TrainConfig, train

    settings = _train_settings(args)
    cfg = TrainConfig.from_dict(settings)  # bad settings fail here, before any process starts
    if args.nproc is not None:
        return _launch_torchrun(args.nproc, cfg, settings)
    try:
        res = train(cfg, distributed=True if "WORLD_SIZE" in os.environ else None)
    except RuntimeError as exc:  # e.g. --device cuda without CUDA
        print(f"s12ls train: error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:  # a torchrun process other than rank 0
        return 0
    procs = f" × {res.world_size} processes" if res.world_size > 1 else ""
    ddp = f", DDP ({res.backend})" if res.backend else ""
    print(
        f"{res.epochs_run} epoch(s) on {res.device}{procs}{ddp} in {res.train_seconds:.1f} s"
        f"{' (stopped early)' if res.stopped_early else ''}; best epoch {res.best_epoch}: "
        f"val F1 {res.best_val_f1:.3f} at threshold {res.best_threshold:.2f} "
        f"(F1 at 0.5: {res.best_val_f1_at_05:.3f}); run in {res.run_dir}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from .evaluate import evaluate_run, plain

    res = evaluate_run(
        args.run_dir,
        args.task_dir,
        data_dir=args.data,
        allow_missing=args.allow_missing,
        sensor=args.sensor,
        bins=args.bins,
        cover_fraction=args.cover_fraction,
        n_boot=args.n_boot,
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        gallery=0,
    )
    summary = res.summary()
    if res.missing_files:
        summary["missing_files"] = res.missing_files
        for sensor, n in res.missing_files.items():
            print(f"left out of the scores: {n:,} missing {sensor} files (--allow-missing)", file=sys.stderr)
    print(
        f"{res.n_test} test patches ({res.n_val} validation), landslide pixels {summary['prevalence']:.1%}; "
        f"thresholds (max F1 on validation): model {res.thresholds['model']:.3f}, "
        f"reference {res.thresholds['reference']:.3f}"
    )
    print(res.table().round(4).to_string())
    for p, name in (("model_", "model"), ("ref_", "reference")):
        print(
            f"{name}: F1 95% CI [{summary[p + 'f1_ci_low']:.3f}, {summary[p + 'f1_ci_high']:.3f}], "
            f"IoU 95% CI [{summary[p + 'iou_ci_low']:.3f}, {summary[p + 'iou_ci_high']:.3f}], "
            f"landslides found {summary[p + 'detection_rate']:.1%}, "
            f"false-positive blobs {summary[p + 'fp_blobs_per_km2']:.2f} per km²"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(plain(summary), indent=1, sort_keys=True))
        print(f"figures written to {args.out}")
    return 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--scheduler`` of a data pass (see :mod:`s12ls_utils.parallel`)."""
    p.add_argument(
        "--workers", type=int, default=None, help="local processes or threads (default: all cores)"
    )
    p.add_argument(
        "--scheduler",
        type=_scheduler,
        default="processes",
        help="processes (default), threads, synchronous, or a dask.distributed address tcp://HOST:PORT",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s12ls", description="Work with the Sen12Landslides dataset.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write the synthetic sample (same format as the real data)")
    p.add_argument("out_dir", type=Path)
    p.add_argument(
        "--n-per-sensor",
        type=int,
        default=None,
        help="about this many files per sensor (default: the book's sample, sample.DEFAULT_N_PER_SENSOR; "
        "thousands work: files are streamed to disk)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers", type=int, default=None, help="processes (default: all cores); same files for any number"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing sample in OUT_DIR")
    p.add_argument(
        "--release",
        choices=("raw", "harmonized"),
        default="raw",
        help="raw (default: S1 linear, S2 with the +1000 offset from 2022-01-25) or harmonized (S1 in dB, "
        "offset removed)",
    )
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("download", help="fetch the real dataset from the Hugging Face hub and unpack it")
    p.add_argument(
        "--dest",
        type=Path,
        default=Path("data/real"),
        help="download root (default data/real); the data land in DEST/data_<version>/<sensor>/",
    )
    p.add_argument(
        "--version",
        dest="data_version",
        choices=("harmonized", "raw"),
        default="harmonized",
        help="data version, the hub folder data_<version>/ (default harmonized)",
    )
    p.add_argument(
        "--sensors",
        nargs="+",
        type=_sensor_list,
        default=None,
        metavar="SENSOR",
        help=f"sensors, space- or comma-separated (default all: {','.join(schema.SENSORS)})",
    )
    p.add_argument(
        "--revision",
        default=None,
        help="hub revision to pin: a branch, tag or full 40-character commit sha (default: the main branch); "
        "the download is made at the commit the hub resolves and DATA/download-manifest.json records it; "
        "older snapshots with <sensor>/*.tar.gz at the root are detected and unpacked into DEST/<sensor>/",
    )
    p.add_argument("--token", default=None, help="hub token (default: HF_TOKEN or the cached login)")
    p.add_argument("--keep-archives", action="store_true", help="keep the .tar.gz files after extraction")
    p.add_argument("--no-tasks", action="store_true", help="skip the task definitions (tasks/*/<version>/)")
    p.add_argument(
        "--no-inventory",
        action="store_true",
        help="skip the landslide inventory (data_<version>/inventories.shp.zip, else inventories.zip at the root)",
    )
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("catalog", help="scan a data folder into a metadata table and print a summary")
    p.add_argument("data_dir", type=Path)
    _add_run_options(p)
    p.add_argument("--no-cache", action="store_true", help="ignore and do not write the parquet cache")
    p.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    p.set_defaults(func=_cmd_catalog)

    p = sub.add_parser(
        "realism", help="compare a data folder with the published statistics of the real dataset"
    )
    p.add_argument("data_dir", type=Path)
    _add_run_options(p)
    p.add_argument("--csv", type=Path, default=None, help="also write the side-by-side table as CSV")
    p.set_defaults(func=_cmd_realism)

    p = sub.add_parser(
        "validate",
        help="check patch files (or data folders) against the format; --report lists the known issues of the "
        "real files found there",
    )
    p.add_argument(
        "paths", nargs="+", help="data folders (<data>/<sensor>/*.nc), sensor folders or patch files"
    )
    p.add_argument("--details", action="store_true", help="also list every warning and quality note per file")
    p.add_argument(
        "--report",
        action="store_true",
        help="per data folder, the known issues of the real files with their files and counts "
        "(s12ls_utils.known_issues)",
    )
    p.add_argument("--csv", type=Path, default=None, help="with --report: write every issue's files as CSV")
    _add_run_options(p)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("splits", help="write a task folder: splits, normalisation statistics, locations")
    p.add_argument("data_dir", type=Path)
    p.add_argument(
        "--task",
        required=True,
        help=f"preset ({', '.join(PRESETS)}) or a YAML/JSON config file; S12LS-LD and S12LS-AD are the "
        "published tasks, the -blocked presets this package's balanced, leak-free variants",
    )
    p.add_argument("--out", type=Path, default=None, help="folder for <TASK>/ (default: DATA_DIR/tasks)")
    p.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="split algorithm (default: the preset's): reference = the published one, exactly (it ignores "
        "geography); blocked = whole blocks of touching tiles, balanced, with a one-tile buffer",
    )
    _add_run_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing task folder")
    p.set_defaults(func=_cmd_splits)

    p = sub.add_parser("norm", help="add normalisation statistics to a task folder released without them")
    p.add_argument("task_dir", type=Path, help="task folder, e.g. data/reference/tasks/S12LS-LD-blocked")
    _add_data_options(p)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the copy with statistics, OUT/<task folder name> (default: DATA/tasks; a task "
        "already there is completed in place); the released folder is left as it is",
    )
    p.add_argument(
        "--sensors",
        nargs="+",
        type=_sensor_list,
        default=None,
        metavar="SENSOR",
        help="statistics of these sensors only, e.g. s2 after `s12ls download --sensors s2` (default: all of "
        "the task's; the aligned split's only with all of its sensors)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="recompute statistics the task (or its copy) already has"
    )
    _add_run_options(p)
    p.set_defaults(func=_cmd_norm)

    p = sub.add_parser("cache", help="build the packed training cache of a task's splits")
    p.add_argument("task_dir", type=Path, help="task folder, e.g. data/sample/tasks/S12LS-LD")
    p.add_argument(
        "--sensors",
        "--sensor",
        nargs="+",
        choices=schema.SENSORS,
        default=["s2"],
        help="default s2; several = the aligned split",
    )
    p.add_argument(
        "--splits",
        nargs="+",
        choices=["train", "val", "test"],
        default=["train", "val", "test"],
        help="default: all",
    )
    _add_data_options(p)
    p.add_argument("--data-dir", dest="data", type=Path, help=argparse.SUPPRESS)  # the old spelling of --data
    p.add_argument("--cache-dir", type=Path, default=None, help="cache root (default: DATA/.s12ls_cache)")
    p.add_argument("--force", action="store_true", help="rebuild even an up-to-date cache")
    _add_run_options(p)
    p.set_defaults(func=_cmd_cache)

    p = sub.add_parser("signatures", help="per-patch temporal signatures of a data folder, as parquet")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="the time-series table (parquet)")
    p.add_argument("--sensors", "--sensor", nargs="+", choices=schema.SENSORS, default=list(schema.SENSORS))
    p.add_argument("--patches", type=Path, default=None, help="also write one row of facts per patch")
    p.add_argument("--changes", type=Path, default=None, help="also write the sampled pixel changes")
    _add_run_options(p)
    p.set_defaults(func=_cmd_signatures)

    p = sub.add_parser("train", help="train a baseline model on a task (checkpoints, history, resume)")
    _add_train_options(p)
    p.add_argument(
        "--nproc",
        type=int,
        default=None,
        help="train with N processes on this machine via torchrun (DDP: one per GPU, or gloo on CPU); "
        "--batch-size is then the global batch",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "evaluate", help="landslide-class test scores of a run next to a change-detection reference"
    )
    p.add_argument("run_dir", type=Path, help="run folder with best.pt, e.g. runs/<name>")
    p.add_argument("--task-dir", type=Path, default=None, help="task folder (default: the run's own)")
    _add_data_options(p, default="the run's data folder, else the task's")
    p.add_argument(
        "--sensor", choices=schema.SENSORS, default="s2", help="sensor of the reference (default s2)"
    )
    p.add_argument("--bins", type=int, default=1000, help="score histogram bins (default 1000)")
    p.add_argument("--cover-fraction", type=float, default=0.5, help="share of a landslide to count it found")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates over patches")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (default: CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    p.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except MissingFilesError as exc:  # the task's files are not under the data folder: say where they are
        print(f"s12ls {args.command}: error: {exc.report.message(cli=True)}", file=sys.stderr)
        return 2
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"s12ls {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FilesFailed as exc:  # a pass that cannot do without a file; the message lists every bad one
        print(f"s12ls {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
