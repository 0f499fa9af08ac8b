"""Training-data throughput: the packed cache against a reference-style per-file xarray loader.

Compared on the **same files** (one split of a task), with the **same batch size** and the same number of
DataLoader workers, in one run, warm (every loader makes one untimed pass first, so the OS page cache holds
the files and the workers are up), best of ``--repeat``:

* **reference** — what the reference code does per sample: ``xarray.open_dataset(path)``, stack every data
  variable except MASK/SCL/spatial_ref into ``(time, C, y, x)`` float32, take MASK at time 0; the default
  collate stacks the batch. A second row also normalises in the loader (``(x − mean) / std``, NaN → 0).
* **cached** — :class:`s12ls_utils.datasets.PatchDataset` (``raw=True``, full time series) with
  :func:`~s12ls_utils.datasets.make_loader`, as training uses it: reading threads copy the rows of a batch
  from the memory-mapped int16 cache (validity bits unpacked). The training loop normalises on the device.
  ``cached(processes)`` is the same with a ``torch.utils.data.DataLoader`` of worker processes, and
  ``cached+norm(CPU)`` adds the :class:`~s12ls_utils.datasets.Preprocessor` on this CPU (clip, normalise,
  validity channel), i.e. the float32 model input a CPU run trains on.

``speedup`` = cached / reference samples per second, each at its best worker count; the last line printed
is ``speedup <N>x``. The cache build itself is timed once and reported separately.

With ``--models``, one training step (forward, backward, AdamW) per model is timed on batches of
``--model-batch`` random 128 × 128 samples (15 dates) — on CUDA with bf16 autocast and channels-last when a
GPU is present — and reported as samples per second with parameters and forward FLOPs per sample.

Usage::

    .venv/bin/python benchmarks/loader_throughput.py                       # data/sample, task S12LS-LD, train
    .venv/bin/python benchmarks/loader_throughput.py --split train --workers 0 2 --batch-size 8 --models
    .venv/bin/python benchmarks/loader_throughput.py --task data/real/tasks/S12LS-LD/harmonized --workers 8

``--dry-run`` takes the same path, small: the S12LS-LD task of the book's sample ``data/sample`` when it is the
book's default sample with that task (as ``make`` writes it), else a tiny synthetic sample and task written to a
temporary folder, with the packed cache in a temporary folder; its ``val`` split (unless ``--split``: the fewest
files, 10 in the book's sample against 37 in ``train``), batch 2, 8 samples per timed pass, no worker processes,
one round (with ``--models``: batch 1, one step). The first line printed names the commit and the
machine.

``--task`` is a task folder. A published one from ``s12ls download`` (``data/real/tasks/<TASK>/<release>``)
finds its data folder (``data/real/data_<release>``) by itself, as does one written by ``s12ls splits``
(``<data_dir>/tasks/<TASK>``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import provenance
import torch
import xarray as xr

from s12ls_utils import datasets, models, schema, tasks

NON_FEATURES = ("MASK", "SCL", "spatial_ref")


class ReferenceDataset(torch.utils.data.Dataset):
    """Per-sample ``xarray.open_dataset`` + stacking, as the reference loader does (opened in the worker)."""

    def __init__(self, paths: list[Path], mean: np.ndarray | None = None, std: np.ndarray | None = None):
        self.paths, self.mean, self.std = paths, mean, std

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with xr.open_dataset(self.paths[i]) as ds:
            names = [v for v in ds.data_vars if v not in NON_FEATURES]
            x = np.stack([ds[v].transpose("time", "y", "x").values for v in names], axis=1).astype("float32")
            y = ds["MASK"].isel(time=0).transpose("y", "x").values.astype("int64")
        if self.mean is not None:
            x = np.nan_to_num((x - self.mean[None, :, None, None]) / self.std[None, :, None, None])
        return torch.from_numpy(x), torch.from_numpy(y)


def _rate(make_iter, n_samples: int, repeat: int, after=None) -> float:
    """Best samples/s over ``repeat`` timed passes of at least ``n_samples`` (after one warm pass)."""
    for _ in make_iter():  # warm: page cache, worker start-up
        pass
    best = 0.0
    for _ in range(repeat):
        seen, t0 = 0, time.perf_counter()
        while seen < n_samples:
            for batch in make_iter():
                if after is not None:
                    after(batch)
                seen += (batch[1] if isinstance(batch, list | tuple) else batch["y"]).shape[0]
        best = max(best, seen / (time.perf_counter() - t0))
    return best


def _default_task(tmp: Path, dry_run: bool) -> Path:
    """The book's sample's S12LS-LD task, else a synthetic sample and its S12LS-LD task written under ``tmp``."""
    from s12ls_utils import sample

    data = provenance.ROOT / "data" / "sample"
    task = data / "tasks" / "S12LS-LD"
    if task.is_dir() and (not dry_run or _is_book_sample(data)):
        return task
    if dry_run:
        data = provenance.dry_sample(tmp)
    else:
        print(f"no {task}: writing a synthetic sample and its S12LS-LD task to {tmp}", file=sys.stderr)
        data = tmp / "data"
        sample.make_sample(data, n_per_sensor=54, seed=0, progress=False)
    return tasks.write_task(data, data / "tasks", "S12LS-LD", workers=1 if dry_run else None)


def _is_book_sample(data: Path) -> bool:
    """``data`` is the book's default sample (the size and seed ``make`` writes)."""
    from s12ls_utils import sample

    try:
        man = sample.load_manifest(data)
    except (OSError, ValueError, KeyError):
        return False
    return (man["n_per_sensor"], man["seed"]) == (sample.DEFAULT_N_PER_SENSOR, 0)


def bench_loaders(args) -> float:
    task = tasks.load_task(args.task)
    sensor = args.sensor
    t0 = time.perf_counter()
    dirs = datasets.build_cache(
        task, args.split, sensor, force=args.rebuild, progress=False, cache_dir=args.cache_dir
    )
    build_s = time.perf_counter() - t0
    cached = datasets.PatchDataset(
        task, args.split, sensor, view="series", raw=True, progress=False, cache_dir=args.cache_dir
    )
    paths = [task.data_dir / e[sensor] for e in datasets.split_entries(task, args.split, sensor)]
    mean, std = (a.astype("float32") for a in task.channel_stats(sensor))
    n = len(paths)
    if not n:  # a timed pass would wait forever for its samples
        raise SystemExit(
            f"{task.name}/{args.split} holds no {sensor} files: choose another --split or --task"
        )
    mb = datasets.describe_cache(dirs).set_index("array").loc["x", "MB"] / n
    print(
        f"{n} {sensor} files of {task.name}/{args.split}, batch {args.batch_size}, "
        f"{args.samples} samples per timed pass, best of {args.repeat}; torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"cache: {mb:.2f} MB int16 per sample; checked/built in {build_s:.1f} s ({dirs[sensor]})")
    g = torch.Generator().manual_seed(0)
    rows = []
    pre = cached.preprocessor

    def run_pre(batch):
        with torch.no_grad():
            pre(batch)

    for w in args.workers:
        kw = {"num_workers": w, "persistent_workers": w > 0}
        if w > 0:
            kw["multiprocessing_context"] = "forkserver"
        ref = torch.utils.data.DataLoader(
            ReferenceDataset(paths), args.batch_size, shuffle=True, generator=g, **kw
        )
        ref_n = torch.utils.data.DataLoader(
            ReferenceDataset(paths, mean, std), args.batch_size, shuffle=True, generator=g, **kw
        )
        threads = datasets.make_loader(
            cached, args.batch_size, shuffle=True, num_workers=w, backend="threads"
        )
        procs = datasets.make_loader(
            cached, args.batch_size, shuffle=True, num_workers=w, backend="processes"
        )
        r = {
            "workers": w,
            "reference": _rate(lambda ref=ref: ref, args.samples, args.repeat),
            "reference+norm": _rate(lambda ref_n=ref_n: ref_n, args.samples, args.repeat),
            "cached": _rate(lambda t=threads: t, args.samples, args.repeat),
            "cached(processes)": _rate(lambda p=procs: p, args.samples, args.repeat) if w else float("nan"),
            "cached+norm(CPU)": _rate(lambda t=threads: t, args.samples, args.repeat, after=run_pre),
        }
        rows.append(r)
        del ref, ref_n, threads, procs
    cols = ["reference", "reference+norm", "cached", "cached(processes)", "cached+norm(CPU)"]
    print(
        "\nsamples/s; workers = DataLoader worker processes (reference, cached(processes)) or reading threads "
        "(cached: the training loader)"
    )
    print(f"{'workers':>8} " + " ".join(f"{c:>17}" for c in cols))
    for r in rows:
        print(f"{r['workers']:>8} " + " ".join(f"{r[c]:>17.1f}" for c in cols))
    best = {c: max((r[c] for r in rows if r[c] == r[c]), default=float("nan")) for c in cols}
    print(
        "\nbest: "
        + ", ".join(f"{c} {best[c]:.1f}/s ({1000.0 / best[c]:.2f} ms/sample)" for c in cols)
        + f"\ncached data rate {best['cached'] * mb / 1000:.2f} GB/s of int16 samples"
        + f"\nwith CPU normalisation on both sides: {best['cached+norm(CPU)'] / best['reference+norm']:.1f}x"
    )
    return best["cached"] / best["reference"]


def _train_step(net, opt, x, d, y, amp) -> None:
    with torch.autocast(y.device.type, dtype=amp, enabled=amp is not None):
        out = net(x, d)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench_models(args) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = torch.bfloat16 if device.type == "cuda" else None
    configs = [
        ("unet_prepost", {"widths": (16, 32, 64, 128)}, "chapter (CPU) size"),
        ("unet_prepost", {}, "default widths 32-256"),
        ("utae", {}, "published size"),
        ("convgru", {}, "hidden 32"),
    ]
    b = args.model_batch
    print(f"\none training step per model on {device} (batch {b}, 128x128, 15 dates, s2)")
    print(f"{'model':>14} {'size':>24} {'params':>10} {'GFLOPs/sample':>14} {'samples/s':>10}")
    for name, kw, label in configs:
        ch = datasets.input_channels("s2", models.VIEWS[name])
        torch.manual_seed(0)
        net = models.build_model(name, ch, **kw).to(device)
        summ = models.model_summary(net, ch)
        if device.type == "cuda":
            models.set_channels_last(net)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
        x, d = models.example_inputs(net, ch, 128, 15, b)
        y = (torch.rand(b, 1, 128, 128, device=device) > 0.97).float()

        _train_step(net, opt, x, d, y, amp)
        times = []
        for _ in range(args.model_steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            _train_step(net, opt, x, d, y, amp)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        rate = b / float(np.median(times))
        print(
            f"{name:>14} {label:>24} {summ['n_params']:>10,} {summ['flops_per_sample'] / 1e9:>14.2f} {rate:>10.2f}"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--task", type=Path, default=None, help="task folder (default: data/sample/tasks/S12LS-LD)"
    )
    p.add_argument("--split", default=None, help="the task split read (default train; dry run val)")
    p.add_argument("--sensor", default="s2", choices=schema.SENSORS)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to try")
    p.add_argument("--samples", type=int, default=96, help="samples per timed pass")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rebuild", action="store_true", help="rebuild the cache (timed)")
    p.add_argument("--models", action="store_true", help="also time one training step per model")
    p.add_argument("--model-batch", type=int, default=4)
    p.add_argument("--model-steps", type=int, default=3)
    p.add_argument("--dry-run", action="store_true", help="small and fast, on the CPU (for CI)")
    args = p.parse_args(argv)
    print(provenance.line(), flush=True)
    if args.dry_run:
        args.batch_size, args.workers, args.samples, args.repeat = 2, [0], 8, 1
        args.model_batch, args.model_steps = 1, 1
    args.split = args.split or ("val" if args.dry_run else "train")
    with tempfile.TemporaryDirectory(prefix="s12ls-bench-") as tmp:
        args.cache_dir = Path(tmp) / "cache" if args.dry_run else None  # the book's sample stays as it is
        if args.task is None:
            args.task = _default_task(Path(tmp), args.dry_run)
        if args.models:
            bench_models(args)
        speedup = bench_loaders(args)
    print(f"speedup {speedup:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
