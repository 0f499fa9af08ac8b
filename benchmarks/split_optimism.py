"""What the split does to the score, on the real data: the published recipe on the published S12LS-LD split, on the
leak-free ``S12LS-LD-blocked`` split and on the paper's six region hold-out folds, three seeds each.

For every split and fold, and each of the published seeds (42, 123, 777), this script trains one model with the
published recipe (``RECIPE`` of ``benchmarks/published_recipe.py``, the settings of
``book/params/published-recipe.yaml``: 75 epochs, BCE + Dice with ``pos_weight`` 5, AdamW at 1e-3 with weight
decay 0.01, batch 16 of whole patches, flips and rot90), scores it as chapter 07 does
(``s12ls_utils.evaluate.score_split_run``: the threshold of maximal F1 on the split's validation set, one pass on
its test set; the last epoch by default, as published) and prints one table (``s12ls_utils.evaluate.fold_table``):
per split and fold, mean ± sd over the seeds of F1, AP and IoU of the landslide class, and the share of landslide
pixels in its test set, with the six folds pooled::

    .venv/bin/python benchmarks/split_optimism.py --data data/real/data_harmonized \\
        --task data/real/tasks/S12LS-LD/harmonized --device cuda --out runs/split-optimism --json split-optimism.json

The blocked split and the folds are the released folders of ``data/reference/tasks/`` (``--released``). They carry
no normalisation statistics (those need the pixels), so the script copies each (its Sentinel-2 split and
``config.json``) into ``<out>/tasks/`` (never into ``data/reference/``) and adds them there, as ``s12ls norm TASK --data DATA`` does
(``s12ls_utils.tasks.write_norm``); a copy whose split files still match the released ones keeps its statistics
on the next run. Runs go to ``<out>/runs/<split>-<model>-seed<seed>``; ``--resume`` continues interrupted runs.
Every run reads Sentinel-2 + DEM, as the published benchmark.

``--dry-run`` takes the same path on the CPU: a synthetic sample (``--data``, e.g. ``data/sample``, read as it
is; else the book's default sample, written for the run in a few minutes), its S12LS-LD task (``--task``, e.g.
``data/sample/tasks/S12LS-LD``, read as it is with the training caches it has; else written for the run), the
blocked split and two region folds of the sample's regions written in the released format (no statistics, as
``data/reference/release_tasks.py`` writes them), one optimisation step per seed with a small model, the first two
seeds. The tests run it; its figures say nothing about any model.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402  (the commit and machine of the record)
import published_recipe  # noqa: E402  (the recipe, seeds and dry-run sizes are shared with it)

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT / "data" / "reference" / "tasks"
#: What the runs read: Sentinel-2 (with the DEM), as the published benchmark.
SENSORS = ["s2"]
#: Name of the row that pools the region folds.
POOLED = "region folds, pooled"
#: Region folds of the dry run (the first ones the sample's regions fill).
DRY_FOLDS = 2


def same_splits(a: Path, b: Path, sensors: list[str]) -> bool:
    """Whether two task folders list the same patches for ``sensors`` (byte-identical ``splits.json``)."""
    files = [Path(s) / "splits.json" for s in sensors]
    return all((b / f).is_file() and filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def prepared(released: Path, work: Path, data: Path, sensors: list[str]) -> Path:
    """``released`` (a task folder without statistics) copied to ``work`` for ``sensors`` (their split files and
    the task's ``config.json``; the runs read Sentinel-2 alone, so the other sensors' statistics are not computed),
    with the statistics of the train files in ``data`` added as ``s12ls norm`` adds them
    (``tasks.write_norm``). A copy that lists the same patches and has its statistics is reused; a stale one is
    replaced."""
    from s12ls_utils import tasks

    if not (released / "config.json").is_file():
        raise FileNotFoundError(f"{released} is not a released task folder (no config.json)")
    missing = [s for s in sensors if not (released / s / "splits.json").is_file()]
    if missing:
        raise FileNotFoundError(f"{released} has no split for {missing}")
    if work.exists() and not same_splits(released, work, sensors):
        shutil.rmtree(work)
    if not work.exists():
        work.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=work.parent, prefix=f".{work.name}.tmp-"))
        shutil.copy2(released / "config.json", tmp / "config.json")
        for s in sensors:
            (tmp / s).mkdir()
            shutil.copy2(released / s / "splits.json", tmp / s / "splits.json")
        tmp.chmod(0o755)
        tmp.rename(work)
    if tasks.load_task(work, data_dir=data, warn_missing=False).missing:
        print(f"normalisation statistics for {work} (s12ls norm) …", flush=True)
        tasks.write_norm(work, data, out_dir=work.parent, sensors=sensors, overwrite=True)
    return work


def dry_sample(root: Path, data: Path | None = None, task: Path | None = None) -> tuple[Path, Path, Path]:
    """The dry run's data: ``data`` (a synthetic sample, read as it is) or the book's default sample written under
    ``root`` (smaller ones leave the blocked split without validation patches); its
    S12LS-LD task (``task``, read as it is, or written with statistics) and, in the released format (no statistics, as
    ``data/reference/release_tasks.py`` writes them), the blocked split and :data:`DRY_FOLDS` region folds of the
    sample's regions, all under ``root``. Returns the data folder, the published task and the released folder."""
    from s12ls_utils import catalog, evaluate, splits, tasks
    from s12ls_utils.sample import MANIFEST_NAME, make_sample

    if data is None:
        data = root / "data"
        make_sample(data, progress=False)
    elif not (data / MANIFEST_NAME).is_file():
        raise ValueError(f"--dry-run runs on a synthetic sample; {data} has no {MANIFEST_NAME}")
    cat = catalog.build_catalog(data, sensors=SENSORS)
    only = {"satellites": SENSORS, "reference_sat": SENSORS[0]}
    if task is None:
        task = tasks.write_task(data, root / "tasks", tasks.load_config("S12LS-LD", **only), catalog=cat)
    released = root / "released"

    def release(out: Path, cfg) -> None:
        res = splits.make_splits(cat, cfg)
        tasks.write_task(None, out, cfg, result=res, stats=False, inventory="token", compact=True)

    release(released, tasks.load_config("S12LS-LD-blocked", **only))
    for fold, regions in list(evaluate.holdout_folds(cat).items())[:DRY_FOLDS]:
        cfg = tasks.load_config("S12LS-LD-blocked", name=fold, test_regions=regions, **only)
        release(released / "S12LS-LD-regions", cfg)
    return data, task, released


def print_table(table: pd.DataFrame) -> None:
    """The fold table as text: mean ± sd (percent) per split and fold."""
    head = f"{'split or fold':28}{'seeds':>6}" + "".join(f"{c.upper():>17}" for c in ("f1", "ap", "iou"))
    print(head + f"{'test landslide px':>20}")
    for _, r in table.iterrows():
        cells = "".join(
            f"{100 * r[m + '_mean']:>9.2f} ± {100 * r[m + '_sd']:5.2f}" for m in ("f1", "ap", "iou")
        )
        print(f"{str(r['split']):28}{int(r['seeds']):>6}{cells}{100 * r['test_prevalence']:>18.2f} %")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, help="data folder (data/real/data_harmonized; with --dry-run a synthetic sample)"
    )
    ap.add_argument(
        "--task", type=Path, help="the published S12LS-LD task folder (data/real/tasks/S12LS-LD/harmonized)"
    )
    ap.add_argument(
        "--released", type=Path, default=RELEASED, help="the released task folders (data/reference/tasks)"
    )
    ap.add_argument(
        "--folds", nargs="*", default=None, help="region folds to run (default: every released fold)"
    )
    ap.add_argument("--model", default="utae", choices=["utae", "convgru", "unet_prepost"])
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default 42 123 777 (dry run: 42 123)")
    ap.add_argument(
        "--checkpoint", default="last", choices=["last", "best"], help="epoch scored (published: last)"
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="task copies and runs (default runs/split-optimism; dry run: temporary)",
    )
    ap.add_argument("--resume", action="store_true", help="continue runs that were interrupted")
    ap.add_argument("--json", type=Path, default=None, help="write the per-run figures and the table here")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny synthetic sample, one step per seed")
    args = ap.parse_args(argv)
    machine = provenance.machine()
    print(provenance.line(machine), flush=True)

    from s12ls_utils import evaluate, training

    settings = dict(published_recipe.RECIPE)
    args.seeds = args.seeds or list(published_recipe.DRY["seeds"] if args.dry_run else published_recipe.SEEDS)
    model_kwargs: dict = {}
    tmp = None
    if args.dry_run:
        tmp = tempfile.TemporaryDirectory(prefix="split-optimism-")
        if args.task is not None and args.data is None:
            ap.error("--dry-run with --task needs --data (the synthetic sample the task lists)")
        data, task, released = dry_sample(Path(tmp.name), args.data, args.task)
        dry = published_recipe.DRY
        settings |= {"epochs": dry["epochs"], "batch_size": dry["batch_size"], "max_steps": dry["max_steps"]}
        model_kwargs = published_recipe.DRY_MODEL_KWARGS[args.model]
        device, out = "cpu", args.out or Path(tmp.name) / "out"
    else:
        if args.task is None or args.data is None:
            ap.error(
                "--data and --task are required (the real data folder and the published S12LS-LD task), or --dry-run"
            )
        for name, path in (("--data", args.data), ("--task", args.task), ("--released", args.released)):
            if not path.is_dir():
                ap.error(f"{name} {path} is not a folder")
        data, task, released, device = args.data, args.task, args.released, args.device
        out = args.out or Path("runs") / "split-optimism"
    region_root = released / "S12LS-LD-regions"
    available = (
        sorted(p.name for p in region_root.iterdir() if (p / "config.json").is_file())
        if region_root.is_dir()
        else []
    )
    folds = available if args.folds is None else args.folds
    unknown = sorted(set(folds) - set(available))
    if unknown:
        ap.error(f"unknown folds {unknown}; {region_root} holds {available}")
    if not (released / "S12LS-LD-blocked" / "config.json").is_file():
        ap.error(f"{released} holds no released S12LS-LD-blocked folder")

    tasks = {"published": Path(task)}
    tasks["blocked"] = prepared(
        released / "S12LS-LD-blocked", out / "tasks" / "S12LS-LD-blocked", data, SENSORS
    )
    for fold in folds:
        tasks[fold] = prepared(region_root / fold, out / "tasks" / "S12LS-LD-regions" / fold, data, SENSORS)

    rows = []
    t0 = time.perf_counter()
    for split, path in tasks.items():
        for seed in args.seeds:
            name = f"{split}-{args.model}-seed{seed}"
            print(f"training {name} ({settings['epochs']} epochs) …", flush=True)
            run = training.train(
                task_dir=str(path),
                data_dir=str(data),
                sensors=SENSORS,
                model=args.model,
                model_kwargs=model_kwargs,
                seed=seed,
                device=device,
                runs_dir=str(out / "runs"),
                run_name=name,
                overwrite=not args.resume,
                resume=args.resume,
                progress=not args.dry_run,
                threads=1 if args.dry_run else None,  # a tiny model: more threads only wait for each other
                **settings,
            )
            scored = evaluate.score_split_run(
                run.run_dir, path, label=split, data_dir=data, device=device, which=args.checkpoint
            )
            rows.append({"split": split, "seed": seed, **scored.scores()})
    runs = pd.DataFrame(rows)
    table = evaluate.fold_table(runs, by="split", pooled={POOLED: folds} if folds else None)
    print_table(table)
    if args.dry_run:
        print("(dry run: a synthetic sample and one step per seed; the figures say nothing about the model)")
    print(f"{len(tasks)} splits × {len(args.seeds)} seeds in {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "seeds": args.seeds,
                    "recipe": settings,
                    "checkpoint": args.checkpoint,
                    "dry_run": args.dry_run,
                    "provenance": machine,
                    "folds": folds,
                    "tasks": {k: str(v) for k, v in tasks.items()},
                    "runs": runs.to_dict("records"),
                    "table": table.to_dict("records"),
                },
                indent=1,
            )
        )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
