"""GPU check: the whole path from synthetic files to an evaluated DDP run on one GPU, timed, in minutes.

Stages (each one checks the time left first; ``--timeout`` bounds the whole run, see below):

1. **synth** — ``make_sample`` writes about 1,000 patches (``--n-per-sensor 333``; 3 sensors) with all cores;
2. **task** — ``tasks.write_task`` writes the S12LS-LD task, ``datasets.build_cache`` packs its S2 splits;
3. **train** — ``unet_prepost`` and ``utae`` on ``cuda`` (bf16 autocast and channels-last: the package's
   CUDA defaults), each once eager and once with ``torch.compile``, for a fixed number of optimisation
   steps (``--steps``: whole epochs of at most ``max_steps`` steps, so at least ``--steps`` steps);
4. **ddp** — ``s12ls train … --nproc 1``: torchrun starts one process that trains through the DDP path
   (NCCL), then **evaluate** — ``evaluate.evaluate_run`` scores that run on test.

Figures per training run (from the run's ``history.csv``, written by the training loop itself):

* ``samples_per_s`` — samples / seconds of the training steps, leaving out the run's first step (which
  holds compilation, cuDNN set-up and the loader's start); validation is not counted;
* ``peak_mem_mb`` — ``torch.cuda.max_memory_allocated`` (reset before each in-process run; the DDP run
  is a fresh process), or with ``--dry-run`` the process's peak RSS (``peak_mem_source`` says which);
* ``data_wait_share`` — the time the steps spent in the loader's ``next()`` plus issuing the copy to the
  device, over the steps' time (all steps). The loop reads the loss on the host every step, so the
  device has finished its queue when the next batch is asked for: the wait is time the GPU sits idle;
* ``compile_s`` — first-step time with ``torch.compile`` minus without, same model (the compilation of
  the training graph; the evaluation graph compiles again in the first validation, not counted);

and of the evaluation: test F1, IoU (at the validation threshold) and AUPRC of the model.

Timeout: a watchdog thread ends the run when ``--timeout`` seconds have passed, whatever the main thread
is doing (a kernel, a compiler, a hung collective): it kills the torchrun process group and every other
process the check started (pool workers, the forkserver), prints and writes what finished, and exits with 124.
A stage that fails because the watchdog killed its processes counts as the timeout: exit 124 whichever thread
reports first. Exit status: 0 when every stage passed, 1 when one failed (one line per failed stage), 2 without
CUDA (unless ``--dry-run``), 124 on timeout.

``--dry-run`` takes the same code path on the CPU, tiny: 40 Sentinel-2 patches and no Sentinel-1 (the runs train
on Sentinel-2; 40 is the fewest for which the S12LS-LD validation and test splits hold landslides), the
S12LS-LD task of Sentinel-2 alone, small models (``DRY_MODEL_KWARGS``), 2 steps of
batch 2, ``torch.compile`` with the ``eager`` backend (graph capture without code generation, cheap),
gloo instead of NCCL. The tests run it (about 1 min on 2 cores).

Usage::

    .venv/bin/python benchmarks/gpu_check.py --timeout 420 --out gpu_check.json
    .venv/bin/python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

MODELS = ("unet_prepost", "utae")
#: --dry-run: small models (the same code, a fraction of the arithmetic); the GPU check trains the defaults
DRY_MODEL_KWARGS = {
    "unet_prepost": {"widths": [4, 8, 16]},
    "utae": {"encoder_widths": [4, 4, 8], "decoder_widths": [4, 4, 8], "n_head": 2, "d_model": 8},
}
NO_CUDA = "no CUDA device: run with --dry-run on CPU"
#: --dry-run: the sensors synthesised and in the task (the runs train on Sentinel-2 alone)
DRY_SENSORS = ["s2"]


class Check:
    """Stages, figures and the time budget of one run; the watchdog reports from here too."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.timeout
        self.lock = threading.Lock()
        self.stages: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.evaluation: dict = {}
        self.info: dict = {"mode": "dry-run" if args.dry_run else "cuda", "timeout_s": args.timeout}
        self.child: subprocess.Popen | None = None
        self.done = False
        self.expired = threading.Event()  # set by the watchdog at the deadline, before it kills anything
        self.reporting = threading.Lock()  # one report per run: the main thread's or the watchdog's

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def stage(self, name: str, fn, *a, **kw):
        """Run one stage; a failure (or no time left) is recorded with a one-line reason, not raised."""
        if self.left() <= 0:
            self._record(name, False, 0.0, "no time left (--timeout)")
            return None
        print(f"[{time.monotonic() - self.t0:6.1f} s] {name} …", flush=True)
        t = time.monotonic()
        try:
            out = fn(*a, **kw)
        except Exception as exc:  # noqa: BLE001 - every failure is a result of the check
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            if self.args.verbose:
                traceback.print_exc()
            self._record(name, False, time.monotonic() - t, reason)
            return None
        self._record(name, True, time.monotonic() - t, None)
        return out

    def _record(self, name: str, ok: bool, seconds: float, reason: str | None) -> None:
        with self.lock:
            self.stages[name] = {"ok": ok, "seconds": round(seconds, 2), "reason": reason}
        print(
            f"    {name}: {'ok' if ok else 'FAILED'} ({seconds:.1f} s){'' if ok else ': ' + reason}",
            flush=True,
        )

    def report(self, timed_out: bool = False) -> int:
        # a stage that failed because the watchdog killed its processes is the timeout's doing
        timed_out = timed_out or self.expired.is_set()
        with self.lock:
            failed = {k: v["reason"] for k, v in self.stages.items() if not v["ok"]}
            result = {
                **self.info,
                "elapsed_s": round(time.monotonic() - self.t0, 1),
                "timed_out": timed_out,
                "ok": not failed and not timed_out,
                "stages": self.stages,
                "runs": self.runs,
                "evaluation": self.evaluation,
            }
        _print_tables(result)
        for name, reason in failed.items():
            print(f"FAILED {name}: {reason}")
        if timed_out:
            print(f"TIMEOUT after {self.args.timeout} s; finished: {', '.join(self.stages) or 'nothing'}")
        if self.args.out:
            Path(self.args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(self.args.out).write_text(json.dumps(result, indent=1))
            print(f"figures written to {self.args.out}")
        return 124 if timed_out else (0 if result["ok"] else 1)

    def watchdog(self) -> None:
        """At the deadline: stop the torchrun child, report and leave (os._exit: the main thread may be
        inside a kernel or a compiler and never return to Python)."""
        while time.monotonic() < self.deadline:
            time.sleep(min(0.5, max(0.01, self.left())))
            if self.done:
                return
        self.expired.set()
        child = self.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signal.SIGKILL)
        _kill_descendants()  # pool workers, the forkserver, loader processes: nothing outlives the check
        if not self.reporting.acquire(blocking=False):
            return  # the main thread is reporting already (and sees the deadline passed)
        code = self.report(timed_out=True)
        sys.stdout.flush()
        os._exit(code)

    def finish(self) -> int:
        """The main thread's report (exit status 124 when the deadline passed while the last stage ran); it
        waits while the watchdog reports, which then ends the process."""
        with self.reporting:
            return self.report()


def _kill_descendants() -> None:
    import psutil

    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            proc.kill()


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
def _history(run_dir: Path) -> list[dict]:
    rows = list(csv.DictReader((run_dir / "history.csv").read_text().splitlines()))
    return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in rows]


def run_figures(run_dir: Path, batch: int, peak_mem_mb: float | None, peak_source: str) -> dict:
    """Throughput, data wait and first step of a run, from its history (see the module docstring)."""
    h = _history(run_dir)
    steps_s = sum(r["train_seconds"] for r in h)
    samples = sum(r["train_samples_per_s"] * r["train_seconds"] for r in h)
    first = h[0]["first_step_seconds"]
    rest_s, rest_n = steps_s - first, samples - min(batch, samples)
    return {
        "epochs": len(h),
        "samples": round(samples),
        "samples_per_s": rest_n / rest_s if rest_s > 0 and rest_n > 0 else samples / steps_s,
        "samples_per_s_all_steps": samples / steps_s,
        "first_step_s": first,
        "train_steps_s": steps_s,
        "data_wait_share": sum(r["data_seconds"] for r in h) / steps_s,
        "wall_s": sum(r["epoch_seconds"] for r in h),
        "peak_mem_mb": peak_mem_mb,
        "peak_mem_source": peak_source,
        "val_f1_best": max(r["val_f1_best"] for r in h),
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _print_tables(result: dict) -> None:
    runs = result["runs"]
    if runs:
        print(
            f"\n{'run':<22} {'samples/s':>10} {'peak MB':>9} {'data wait':>10} {'first step s':>13} {'compile s':>10}"
        )
        for name, r in runs.items():
            comp = r.get("compile_s")
            print(
                f"{name:<22} {r['samples_per_s']:>10.1f} {r['peak_mem_mb'] or float('nan'):>9.0f} "
                f"{r['data_wait_share']:>10.1%} {r['first_step_s']:>13.2f} "
                f"{'' if comp is None else f'{comp:.1f}':>10}"
            )
        srcs = {r["peak_mem_source"] for r in runs.values()}
        print(f"peak memory: {', '.join(sorted(srcs))}")
    ev = result["evaluation"]
    if ev:
        print(
            f"evaluation ({ev['run']}, {ev['n_test']} test patches): F1 {ev['f1']:.3f}, IoU {ev['iou']:.3f}, "
            f"AUPRC {ev['auprc']:.3f} (reference F1 {ev['ref_f1']:.3f})"
        )


# --------------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------------
def stage_synth(data: Path, n_per_sensor: int, workers: int, sensors: list[str] | None) -> dict:
    from s12ls_utils.sample import make_sample

    info = make_sample(
        data,
        n_per_sensor=n_per_sensor,
        seed=0,
        workers=workers,
        overwrite=True,
        progress=False,
        sensors=sensors,
    )
    return {"files": sum(info.n_files.values()), "per_sensor": info.n_files, "seconds": info.seconds}


def stage_task(data: Path, workers: int, sensors: list[str] | None) -> tuple[Path, dict]:
    from s12ls_utils import datasets, tasks

    only = {"satellites": sensors, "reference_sat": sensors[0]} if sensors else {}
    cfg = tasks.load_config("S12LS-LD", **only)
    task_dir = tasks.write_task(data, data / "tasks", cfg, overwrite=True, workers=workers)
    task = tasks.load_task(task_dir, data_dir=data)
    counts = {s: len(datasets.split_entries(task, s, ("s2",))) for s in ("train", "val", "test")}
    for split in ("train", "val", "test"):
        if not counts[split]:
            raise ValueError(f"the S12LS-LD {split} split is empty: write more patches (--n-per-sensor)")
        datasets.build_cache(task, split, "s2", workers=workers, progress=False)
    return task_dir, counts


def schedule(n_train: int, batch: int, steps: int) -> tuple[int, int]:
    """``(epochs, max_steps)``: whole epochs of at most ``max_steps`` steps, at least ``steps`` in all."""
    per_epoch = math.ceil(n_train / batch)
    epochs = math.ceil(steps / per_epoch)
    return epochs, math.ceil(steps / epochs)


def stage_train(chk: Check, settings: dict, model: str, compiled: bool, device: str) -> dict:
    import torch

    from s12ls_utils import training

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    name = f"{model}-{'compiled' if compiled else 'eager'}"
    res = training.train(
        settings,
        model=model,
        model_kwargs=DRY_MODEL_KWARGS[model] if chk.args.dry_run else {},
        compile=chk.args.compile_backend if compiled else False,
        run_name=name,
        distributed=False,
    )
    if device == "cuda":
        peak, src = torch.cuda.max_memory_allocated() / 2**20, "torch.cuda.max_memory_allocated"
    else:
        peak, src = _peak_rss_mb(), "process peak RSS (cpu, cumulative)"
    fig = run_figures(res.run_dir, settings["batch_size"], peak, src)
    fig.update(model=model, compile=chk.args.compile_backend if compiled else False, n_params=res.n_params)
    return fig


def stage_ddp(chk: Check, settings: dict, device: str) -> Path:
    """``s12ls train … --nproc 1`` in a process group of its own (the watchdog may kill it)."""
    runs_dir = Path(settings["runs_dir"])
    cmd = [sys.executable, "-m", "s12ls_utils.cli", "train", settings["task_dir"], "--nproc", "1"]
    cmd += ["--run-name", "ddp-nproc1", "--model", "unet_prepost"]
    if chk.args.dry_run:
        settings = {**settings, "model_kwargs": DRY_MODEL_KWARGS["unet_prepost"]}
    for k, v in settings.items():
        if k != "task_dir":
            cmd += ["--set", f"{k}={json.dumps(v)}"]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    chk.child = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = chk.child.communicate(timeout=max(1.0, chk.left()))
    except subprocess.TimeoutExpired:
        os.killpg(chk.child.pid, signal.SIGKILL)
        raise TimeoutError("torchrun did not finish within the time left") from None
    finally:
        rc = chk.child.wait()
        chk.child = None
    if rc != 0:
        tail = [ln for ln in out.splitlines() if ln.strip()][-3:]
        raise RuntimeError(f"s12ls train --nproc 1 exited {rc}: {' | '.join(tail)}")
    run_dir = runs_dir / "ddp-nproc1"
    summary = json.loads((run_dir / "run.json").read_text())["summary"]
    want = "nccl" if device == "cuda" else "gloo"
    if summary.get("backend") != want or summary.get("world_size") != 1:
        raise RuntimeError(f"expected one DDP process on {want}, run.json says {summary.get('backend')!r}")
    peak = summary.get("peak_memory_bytes")
    fig = run_figures(
        run_dir,
        settings["batch_size"],
        peak / 2**20 if peak else None,
        "torch.cuda.max_memory_allocated (torchrun process)" if peak else "not measured (cpu, other process)",
    )
    fig.update(model="unet_prepost", compile=False, backend=summary["backend"], world_size=1)
    chk.runs["ddp-nproc1 (torchrun)"] = fig
    return run_dir


def stage_evaluate(chk: Check, run_dir: Path, task_dir: Path, device: str) -> None:
    from s12ls_utils.evaluate import evaluate_run

    res = evaluate_run(run_dir, task_dir, device=device, n_boot=chk.args.n_boot, gallery=0)
    s = res.summary()
    chk.evaluation = {
        "run": run_dir.name,
        "n_test": res.n_test,
        "f1": s["model_f1"],
        "iou": s["model_iou"],
        "auprc": s["model_auprc"],
        "threshold": s["threshold"],
        "ref_f1": s["ref_f1"],
        "seconds": res.seconds,
    }


# --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="the same stages on the CPU, tiny (for CI)")
    p.add_argument("--timeout", type=float, default=420.0, help="seconds for the whole run (default 420)")
    p.add_argument("--out", default=None, help="also write the figures as JSON")
    p.add_argument(
        "--work", type=Path, default=None, help="working folder (default: a temporary one, removed)"
    )
    p.add_argument(
        "--n-per-sensor", type=int, default=None, help="patches per sensor (333; dry run 40, S2 alone)"
    )
    p.add_argument(
        "--steps", type=int, default=None, help="optimisation steps per training run (40; dry run 2)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="global batch (16; dry run 2)")
    p.add_argument("--workers", type=int, default=None, help="processes for the data stages (all cores)")
    p.add_argument("--compile-backend", default=None, help="torch.compile backend (inductor; dry run eager)")
    p.add_argument(
        "--n-boot", type=int, default=None, help="bootstrap replicates of the evaluation (200; dry 20)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failed stages")
    args = p.parse_args(argv)
    dry = args.dry_run
    import provenance  # benchmarks/ is on the path when this file runs as a script

    machine = provenance.machine()
    print(provenance.line(machine), flush=True)

    import torch

    if not dry and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    device = "cpu" if dry else "cuda"
    args.n_per_sensor = args.n_per_sensor or (40 if dry else 333)
    args.steps = args.steps or (2 if dry else 40)
    args.batch_size = args.batch_size or (2 if dry else 16)
    args.compile_backend = args.compile_backend or ("eager" if dry else "inductor")
    args.n_boot = args.n_boot or (20 if dry else 200)
    from s12ls_utils.parallel import default_workers

    workers = args.workers or default_workers()
    sensors = DRY_SENSORS if dry else None  # the GPU check writes every sensor, as the book's sample

    chk = Check(args)
    chk.info.update(
        torch=torch.__version__,
        device=torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        settings={k: v for k, v in vars(args).items() if k not in ("out", "work", "verbose")},
        provenance=machine,
    )
    threading.Thread(target=chk.watchdog, daemon=True).start()
    work = args.work or Path(tempfile.mkdtemp(prefix="s12ls-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    try:
        synth = chk.stage("synth", stage_synth, data, args.n_per_sensor, workers, sensors)
        if synth:
            chk.info["synth"] = synth
        task = chk.stage("task", stage_task, data, workers, sensors) if synth else None
        if task:
            task_dir, counts = task
            chk.info["s2_split_sizes"] = counts
            epochs, max_steps = schedule(counts["train"], args.batch_size, args.steps)
            base = {
                "task_dir": str(task_dir),
                "data_dir": str(data),
                "sensors": ["s2"],
                "batch_size": args.batch_size,
                "epochs": epochs,
                "max_steps": max_steps,
                "device": device,
                "runs_dir": str(work / "runs"),
                "progress": False,
                "patience": None,
                "overwrite": True,
            }
            chk.info["train"] = {
                "epochs": epochs,
                "max_steps_per_epoch": max_steps,
                "batch_size": args.batch_size,
            }
            for model in MODELS:
                for compiled in (False, True):
                    name = f"{model}-{'compiled' if compiled else 'eager'}"
                    fig = chk.stage(f"train {name}", stage_train, chk, base, model, compiled, device)
                    if fig:
                        chk.runs[name] = fig
                eager, comp = chk.runs.get(f"{model}-eager"), chk.runs.get(f"{model}-compiled")
                if eager and comp:
                    comp["compile_s"] = comp["first_step_s"] - eager["first_step_s"]
            run_dir = chk.stage("ddp --nproc 1", stage_ddp, chk, base, device)
            if run_dir:
                chk.stage("evaluate", stage_evaluate, chk, run_dir, task_dir, device)
    finally:
        chk.done = True
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
