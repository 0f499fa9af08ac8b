"""The entry torchrun starts: ``torchrun --nproc-per-node N -m s12ls_utils.train_entry TASK_DIR [options]``.

The options are those of ``s12ls train`` (without ``--nproc``: torchrun has started the processes); the
command line (:mod:`s12ls_utils.cli`) defines its ``train`` sub-command with :func:`add_train_arguments`
and trains with :func:`run`, so both accept the same options and print the same summary. Imports run one
way — ``cli`` → ``train_entry`` → ``training`` — and this module imports torch only when it trains, so
``s12ls --help`` stays fast. Under torchrun (``WORLD_SIZE`` set) every process joins the run with
``distributed=True``: even one process (``s12ls train … --nproc 1``) takes the DDP path (NCCL on CUDA,
gloo on CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from . import schema
from .tasks import MissingFilesError

__all__ = ["add_data_options", "add_train_arguments", "main", "run", "train_settings"]


def add_data_options(p: argparse.ArgumentParser, default: str = "") -> None:
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


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``s12ls train`` (every one a :class:`~s12ls_utils.training.TrainConfig` setting)."""
    p.add_argument("task_dir", type=Path, help="task folder, e.g. data/sample/tasks/S12LS-LD")
    add_data_options(p)
    p.add_argument("--model", choices=["unet_prepost", "utae", "convgru"], default=None)
    p.add_argument("--sensors", nargs="+", choices=schema.SENSORS, default=None, help="several = fusion")
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
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any TrainConfig setting (JSON value)")
    p.add_argument("--resume", action="store_true", help="continue the run from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")


def train_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig settings of parsed options: ``--config`` file, then flags, then ``--set``."""
    settings: dict = {}
    if args.config is not None:
        text = args.config.read_text()
        if args.config.suffix in (".yaml", ".yml"):
            import yaml

            settings.update(yaml.safe_load(text) or {})
        else:
            settings.update(json.loads(text))
    flags = {
        "sensors": args.sensors,
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "device": args.device,
        "run_name": args.run_name,
        "runs_dir": None if args.runs_dir is None else str(args.runs_dir),
        "max_train_patches": args.max_train_patches,
        "crop": args.crop,
        "num_workers": args.workers,
        "seed": args.seed,
        "data_dir": None if args.data is None else str(args.data),
    }
    settings.update({k: v for k, v in flags.items() if v is not None})
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    for flag in ("resume", "overwrite", "compile", "allow_missing"):
        if getattr(args, flag):
            settings[flag] = True
    settings["task_dir"] = str(args.task_dir)
    return settings


def run(settings: dict, *, prog: str = "s12ls train", distributed: bool | None = None) -> int:
    """Train with ``settings``; rank 0 prints the summary. Returns the exit status."""
    from .training import TrainConfig, train

    try:
        res = train(TrainConfig.from_dict(settings), distributed=distributed)
    except RuntimeError as exc:  # e.g. --device cuda without CUDA
        print(f"{prog}: error: {exc}", file=sys.stderr)
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


def main(argv: list[str] | None = None) -> int:
    """``python -m s12ls_utils.train_entry TASK_DIR [s12ls train options]``, run by every torchrun process."""
    prog = "python -m s12ls_utils.train_entry"
    parser = argparse.ArgumentParser(prog=prog, description="Train one model (the entry torchrun starts).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return run(train_settings(args), prog=prog, distributed=True if "WORLD_SIZE" in os.environ else None)
    except MissingFilesError as exc:
        print(f"{prog}: error: {exc.report.message(cli=True)}", file=sys.stderr)
        return 2
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
