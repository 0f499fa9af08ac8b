"""The training loop: device selection, mixed precision, checkpoints, bit-for-bit resume, history.

:func:`train` takes a :class:`TrainConfig` (or a dict / keyword overrides) and writes ``runs/<name>/``:

- ``history.csv`` — one row per epoch (learning rate, losses, positive-class F1/IoU/precision/recall on
  the validation split at 0.5 and at the best threshold, seconds; ``data_seconds``: the time the
  training steps waited for their batch — the loader's ``next()`` plus issuing the copy to the device —
  of ``train_seconds``, the training steps alone; ``first_step_seconds``: the epoch's first step, batch
  included, up to its loss on the host, so with ``compile`` the first epoch's holds the compilation);
- ``last.pt`` — everything needed to continue (model, optimiser, scheduler, grad scaler, RNG states,
  early-stopping state, history, config), written atomically after every epoch;
- ``best.pt`` — the model of the best validation epoch (by ``monitor``) with its metrics;
- ``run.json`` — config and summary.

Checkpoints are plain ``torch.save`` dicts of state dicts, tensors and Python scalars: they load with
``torch.load(path, weights_only=True)`` (:func:`load_checkpoint`, :func:`load_model`).

Determinism and resume: the model is initialised from ``seed``; the batch order and the augmentations of
epoch ``e`` are drawn from generators seeded by ``(seed, e)``, and the global RNG (dropout) is saved in
``last.pt``. ``train(…, resume=True)`` therefore continues a run and ends with the same weights as an
uninterrupted run (bit for bit on CPU; on CUDA with ``deterministic=True``).

On CUDA: bf16 autocast (fp16 + GradScaler on GPUs without bf16), channels-last memory format, TF32
matmuls/convolutions, optional ``torch.compile``; reading threads copy each batch from the packed cache
straight into pinned memory (:func:`~s12ls_utils.datasets.make_loader`), and normalisation and augmentation
run on the GPU (:class:`~s12ls_utils.datasets.Preprocessor`).

Several processes (DistributedDataParallel)
-------------------------------------------
``torchrun --nproc-per-node N -m s12ls_utils.cli train TASK_DIR [s12ls train options]`` (or
``s12ls train … --nproc N``, which runs that command) trains one model with N processes: one per GPU
(``cuda:LOCAL_RANK``, NCCL) or, without CUDA, N CPU processes (gloo) that share the cores. This module
never imports :mod:`s12ls_utils.cli`, which sits on top of it. :func:`train` finds the
process group in the environment torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) or takes
``distributed=True`` (the entry passes it under torchrun, so ``--nproc 1`` runs the same DDP path, NCCL
or gloo, with one process); it runs the same optimisation as one process with the same global batch:

- ``batch_size`` is the **global** batch: each process takes ``batch_size / N`` samples per step (a
  ValueError when N does not divide it), and the processes' batches together are exactly the batch a
  single process draws for that step (:class:`~s12ls_utils.datasets.ShardedBatchSampler`, built on
  ``DistributedSampler``); gradients are averaged over the processes, so the step is the same. When the
  train split is not a multiple of N, the last step repeats up to N − 1 samples (every process must take
  the same number of steps).
- BatchNorm normalises over the global batch: ``SyncBatchNorm`` on CUDA and, since that one runs on GPUs
  only, an equivalent all-reduce batch norm on CPU (:class:`_AllReduceBatchNorm`); the soft Dice term
  of the loss sums its intersections and areas over the processes too. So on CPU the weights after an
  epoch equal the single-process ones up to float rounding (``tests/test_training_ddp.py``).
  Augmentation draws and dropout masks are the processes' own (seeded by ``(seed, epoch, rank)``): with
  them, DDP and single-process runs are statistically, not numerically, the same.
- Validation is sharded: whole validation batches are dealt to the processes in turn and the score
  histograms and losses are summed over the processes, so every figure equals the single-process one.
- Rank 0 alone writes ``history.csv``, the checkpoints and ``run.json``, logs and shows progress bars;
  the random states of every process go into ``last.pt``. Resume works as in one process: every
  process loads ``last.pt`` and continues after its epoch (bit for bit on CPU with the same N).
- The packed cache is built by rank 0 while the others wait, then read by all (one machine, or a file
  system all machines share). Each CPU process uses
  ``cores / N`` threads unless ``threads`` is set (``threads`` is per process).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from . import datasets, models, schema
from .metrics import PixelMetrics
from .parallel import default_workers

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "val_loss",
    "val_f1",
    "val_iou",
    "val_precision",
    "val_recall",
    "val_f1_best",
    "val_iou_best",
    "val_threshold",
    "epoch_seconds",
    "data_seconds",
    "train_samples_per_s",
    "train_seconds",
    "first_step_seconds",
)
#: Config fields that may differ between a run and its resumption without changing the result.
_RESUME_FREE = frozenset(
    {
        "epochs",
        "device",
        "num_workers",
        "threads",
        "progress",
        "resume",
        "overwrite",
        "patience",
        "runs_dir",
        "cache_dir",
        "allow_missing",  # what it left out is checked again on resume, and recorded
    }
)


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Settings of one training run (every field has a default except ``task_dir``).

    ``loss``: ``"bce_dice"`` (BCE with ``pos_weight`` + soft Dice), ``"focal_dice"`` (focal + soft Dice),
    ``"bce"`` or ``"focal"``. ``pos_weight="auto"`` = sqrt(negative / positive pixels of the train split).
    ``amp="auto"``: bf16 on CUDA (fp16 + GradScaler where bf16 is unsupported), off on CPU.
    ``monitor``: the validation figure for ``best.pt`` and early stopping (``val_f1_best``: F1 at the
    best threshold, or ``val_f1``: F1 at 0.5). ``crop``: train on random crops of this size.
    ``compile``: ``torch.compile`` the model (True: the inductor backend; a string: that backend, e.g.
    ``"eager"`` to trace without generating code). ``max_steps``: at most this many optimisation steps
    per epoch (None: the whole train split; the learning-rate schedule is laid out for the steps taken),
    for quick checks and benchmarks. ``num_workers="auto"``: loader threads; 0 on CPU (reading is ~1 ms per sample, the model needs the
    cores), up to 8 on CUDA. With several processes (DDP, see the module docstring) ``batch_size`` is the
    global batch (split evenly over the processes), while ``eval_batch_size`` (default ``batch_size``),
    ``num_workers`` and ``threads`` are per process. ``data_dir``: the data folder (default: the one the
    task records or sits in, :func:`~s12ls_utils.tasks.load_task`). Before any work the train and
    validation files must exist there (:func:`~s12ls_utils.tasks.check_files`); ``allow_missing`` trains
    on those that exist and records the count in ``run.json`` (``missing_files``).
    """

    task_dir: str
    sensors: list[str] = field(default_factory=lambda: ["s2"])
    model: str = "unet_prepost"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.02
    loss: str = "bce_dice"
    pos_weight: float | str = "auto"
    dice_weight: float = 1.0
    focal_gamma: float = 2.0
    focal_alpha: float = 0.75
    grad_clip: float | None = 1.0
    augment: bool = True
    crop: int | None = None
    max_train_patches: int | None = None
    max_steps: int | None = None
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool | str = "auto"
    compile: bool | str = False
    tf32: bool = True
    deterministic: bool = True
    num_workers: int | str = "auto"
    threads: int | None = None
    patience: int | None = 10
    monitor: str = "val_f1_best"
    seed: int = 0
    runs_dir: str = "runs"
    run_name: str | None = None
    resume: bool = False
    overwrite: bool = False
    data_dir: str | None = None
    allow_missing: bool = False
    cache_dir: str | None = None
    eval_batch_size: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        # the one place where training settings are coerced and checked: the command line (``--set``)
        # and the chapters pass values as they come
        for f in dataclasses.fields(self):
            setattr(self, f.name, _setting(f.name, getattr(self, f.name), f.type))
        for s in self.sensors:
            schema.check_choice("sensors", s, schema.SENSORS)
        for key, choices in _CHOICES.items():
            schema.check_choice(key, getattr(self, key), choices)
        for key in ("pos_weight", "channels_last", "num_workers"):
            if isinstance(getattr(self, key), str):
                schema.check_choice(key, getattr(self, key), ("auto",))
        for key in ("epochs", "batch_size", "max_steps"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, not {getattr(self, key)!r}")

    @property
    def name(self) -> str:
        if self.run_name:
            return self.run_name
        from .tasks import task_label

        return f"{task_label(self.task_dir)}-{self.model}-{'+'.join(self.sensors)}-s{self.seed}"

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(names)}")
        return cls(**dict(d))


#: The settings with a fixed set of values (checked with :func:`s12ls_utils.schema.check_choice`).
_CHOICES = {
    "model": models.MODELS,
    "loss": ("bce_dice", "focal_dice", "bce", "focal"),
    "monitor": ("val_f1_best", "val_f1", "val_iou", "val_iou_best"),
    "amp": ("auto", "bf16", "fp16", "off"),
}


def _setting(name: str, value, annotation: str):
    """``value`` as the type of the TrainConfig field ``name`` (its ``annotation``, e.g. ``"int | None"``).

    Paths become text; text (``--set KEY=VALUE``, a papermill ``-p``) is read as JSON (``"3"`` → 3,
    ``"null"`` → None, ``'["s2", "s1asc"]'`` → a list, ``'"cpu"'`` → cpu) and stays text where it is not
    JSON (``auto``) or where the field is text and the JSON is not (a run named ``3``); one sensor name is
    a list of one. A value of another type is a ValueError.
    """
    kinds = [k.strip() for k in annotation.split("|")]
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            decoded = value
        value = value if kinds[0] == "str" and not isinstance(decoded, str) else decoded
    if value is None and "None" in kinds:
        return None
    if kinds[0] == "list[str]":
        value = [value] if isinstance(value, str) else value
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
    elif isinstance(value, bool):
        if "bool" in kinds:
            return value
    elif isinstance(value, int | float) and "float" in kinds:
        return float(value)
    elif isinstance(value, int | float) and "int" in kinds and float(value).is_integer():
        return int(value)
    elif isinstance(value, str | dict) and type(value).__name__ in kinds:
        return value
    raise ValueError(f"training setting {name!r} must be {annotation}, not {value!r}")


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict]
    best_epoch: int
    best_val_f1: float  # F1 at the best threshold of the best epoch
    best_threshold: float
    best_val_f1_at_05: float
    best_val_iou: float
    epochs_run: int
    stopped_early: bool
    n_params: int
    device: str
    train_seconds: float
    world_size: int = 1  # processes (DistributedDataParallel) that trained it together
    backend: str | None = None  # the process group's backend (nccl, gloo) when DDP was used
    #: torch.cuda.max_memory_allocated of this process's device at the end (since the process started or
    #: the caller's last torch.cuda.reset_peak_memory_stats); None off CUDA
    peak_memory_bytes: int | None = None
    #: train/val files of the task left out because they are missing (``allow_missing``), per sensor
    missing_files: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Device and precision
# --------------------------------------------------------------------------------------------------
def select_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU. An explicit device that is not available is an error."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise RuntimeError(
                f"device {str(device)!r} was requested but CUDA is not available (torch {torch.__version__}, "
                f"{build}); use device='auto' or 'cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RuntimeError(f"device {str(device)!r} was requested but MPS is not available")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise RuntimeError(f"unsupported device {str(device)!r} (use auto, cpu, cuda or cuda:N)")
    return dev


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs CUDA; use 'bf16' or 'off' on CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _default_workers(device: torch.device, procs: int = 1) -> int:
    """Loader threads per process: none on CPU; on CUDA up to 8, the node's cores shared by ``procs``."""
    if device.type != "cuda":
        return 0
    return max(1, min(8, default_workers() // procs - 1))


def _configure_backends(cfg: TrainConfig, device: torch.device, procs: int = 1) -> None:
    """Threads, TF32, cuDNN and determinism; ``procs`` processes on this node share its cores."""
    if device.type == "cpu":
        torch.set_num_threads(int(cfg.threads or max(1, default_workers() // procs)))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg.tf32)
        torch.backends.cudnn.allow_tf32 = bool(cfg.tf32)
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = bool(cfg.deterministic)
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(cfg.deterministic), warn_only=True)


# --------------------------------------------------------------------------------------------------
# Several processes (DistributedDataParallel)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Dist:
    """Where this process stands in a run of ``world_size`` processes (1: not distributed)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1
    #: this call initialised the process group, so it destroys it at the end
    owns_group: bool = False
    #: DDP was asked for (``distributed=True``): used even with one process
    ddp: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or self.ddp

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the processes, in place (no-op in one process)."""
        if self.enabled:
            dist.all_reduce(t)
        return t


def _torchrun_env() -> _Dist | None:
    """The process layout torchrun exports, or None outside torchrun."""
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f"WORLD_SIZE is set but the torchrun environment is incomplete or invalid ({exc!r}): "
            "WORLD_SIZE, RANK and LOCAL_RANK must be integers"
        ) from None
    return _Dist(world, rank, local_rank, local_world)


def _ddp_device(requested: str, local_rank: int) -> torch.device:
    """``cuda:LOCAL_RANK`` (made current) when the requested device is CUDA, else the CPU."""
    dev = select_device(requested)
    if dev.type == "cuda":
        if dev.index is not None:
            raise ValueError(
                f"device {requested!r}: with several processes each one uses cuda:LOCAL_RANK; "
                "pass device 'cuda' or 'auto'"
            )
        dev = select_device(f"cuda:{local_rank}")  # fewer GPUs than processes on this node: an error
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise ValueError(f"several processes need CUDA (NCCL) or the CPU (gloo), not {dev.type!r}")
    return dev


def _setup_distributed(distributed: bool | None, requested_device: str) -> tuple[_Dist, torch.device]:
    """The process layout and this process's device; initialises the process group when needed.

    ``distributed=None`` follows the environment (a torchrun launch of more than one process, or a
    process group the caller initialised); ``False`` trains in this process alone; ``True`` requires a
    torchrun environment or an initialised group.
    """
    if distributed is False:
        return _Dist(), select_device(requested_device)
    if dist.is_available() and dist.is_initialized():
        env = _torchrun_env()
        d = _Dist(
            dist.get_world_size(),
            dist.get_rank(),
            env.local_rank if env else 0,
            env.local_world_size if env else 1,
            ddp=bool(distributed),
        )
        dev = _ddp_device(requested_device, d.local_rank) if d.enabled else select_device(requested_device)
        return d, dev
    env = _torchrun_env()
    if env is None or (env.world_size == 1 and not distributed):
        if distributed:
            raise ValueError(
                "distributed=True needs the environment torchrun sets (WORLD_SIZE, RANK, LOCAL_RANK, "
                "MASTER_ADDR, MASTER_PORT): run `torchrun --nproc-per-node N -m s12ls_utils.cli train "
                "TASK_DIR …` or `s12ls train TASK_DIR … --nproc N`"
            )
        return _Dist(), select_device(requested_device)
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed: train in one process")
    dev = _ddp_device(requested_device, env.local_rank)
    if dev.type == "cuda":
        dist.init_process_group("nccl", device_id=dev)
    else:
        dist.init_process_group("gloo")
    return dataclasses.replace(env, owns_group=True, ddp=bool(distributed)), dev


def per_process_batch(batch_size: int, world_size: int) -> int:
    """Samples per process and step: ``batch_size`` is the global batch of all processes together."""
    if batch_size % world_size:
        raise ValueError(
            f"batch_size {batch_size} is the global batch of all {world_size} processes together and "
            f"must be a multiple of {world_size} (each process takes batch_size / {world_size} samples); "
            f"use e.g. batch_size {world_size * max(1, round(batch_size / world_size))}"
        )
    return batch_size // world_size


class _SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over the processes, differentiable.

    Every process gets ``S = Σ_r x_r``, and the loss of the run is the sum of the processes' losses, so
    the gradient with respect to ``x_r`` is the sum of the processes' gradients with respect to ``S``:
    the backward pass is the same all-reduce.
    """

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


class _AllReduceBatchNorm(_BatchNorm):
    """Batch norm over the samples of every process, for DistributedDataParallel on CPU (gloo).

    ``torch.nn.SyncBatchNorm`` runs on GPUs only; without it each process would normalise with the
    statistics of its own ``batch_size / N`` samples, a different (noisier) model than one process with
    the global batch. Here the per-channel sums and sums of squares (accumulated in float64, so the
    one-pass variance loses nothing at these sizes) and the counts are summed over the processes by a
    differentiable all-reduce: the output, the gradients (the all-reduce's backward sums the processes'
    gradients with respect to the statistics) and the running statistics are those of one BatchNorm over
    the global batch. In eval mode it is a plain BatchNorm with the running statistics (no communication).
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions (N, C, …), got {input.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training or self.running_mean is None):  # eval: the running statistics, locally
            return super().forward(x)
        self._check_input_dim(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        local = torch.cat(
            [
                x.sum(dims, dtype=torch.float64),
                (x * x).sum(dims, dtype=torch.float64),
                x.new_full((1,), x.numel() // c, dtype=torch.float64),
            ]
        )
        total = _SumOverProcesses.apply(local)
        n = total[-1]
        mean = total[:c] / n
        var = (total[c : 2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * n / (n - 1).clamp_min(1.0)
                self.running_mean.copy_(f * mean + (1 - f) * self.running_mean)
                self.running_var.copy_(f * unbiased + (1 - f) * self.running_var)
        shape = (1, c) + (1,) * (x.dim() - 2)
        dt = torch.promote_types(x.dtype, torch.float32)  # bf16/fp16 activations: normalise in float32
        y = (x.to(dt) - mean.to(dt).view(shape)) * torch.rsqrt(var + self.eps).to(dt).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def _sync_batchnorm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Every BatchNorm of ``model`` normalising over the global batch (SyncBatchNorm on CUDA).

    The replacements keep the original parameters and buffers (same objects, same state-dict keys), so
    checkpoints load into the plain model.
    """
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, _AllReduceBatchNorm):
            new = _AllReduceBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(model, name, new)
        else:
            _sync_batchnorm(child, device)
    return model


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global state, for code that uses it
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------
class SegmentationLoss(torch.nn.Module):
    """BCE (with ``pos_weight``) or focal loss, plus ``dice_weight`` × soft Dice, on the positive class.

    The Dice term is computed over the whole batch (not per patch), so patches without landslides do
    not make it undefined. Computed in float32 whatever the autocast dtype. ``distributed``: the Dice
    sums are summed over the processes (a differentiable all-reduce), so the term is that of the global
    batch; the BCE/focal term is a mean per process, which the gradient averaging of DDP turns into the
    global mean (every process holds as many samples). Each process must then call it the same number of
    times: use it for training steps, not for a sharded evaluation.
    """

    def __init__(
        self,
        kind: str = "bce_dice",
        pos_weight: float = 1.0,
        dice_weight: float = 1.0,
        gamma: float = 2.0,
        alpha: float = 0.75,
        distributed: bool = False,
    ):
        super().__init__()
        self.kind, self.dice_weight, self.gamma, self.alpha = kind, dice_weight, gamma, alpha
        self.distributed = distributed
        self.register_buffer("pos_weight", torch.tensor(float(pos_weight)), persistent=False)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = logits.float().reshape(y.shape)
        y = y.float()
        if self.kind.startswith("bce"):
            base = F.binary_cross_entropy_with_logits(logits, y, pos_weight=self.pos_weight)
        else:
            bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
            p_t = torch.exp(-bce)
            a_t = self.alpha * y + (1 - self.alpha) * (1 - y)
            base = (a_t * (1 - p_t) ** self.gamma * bce).mean()
        if not self.kind.endswith("dice") or not self.dice_weight:
            return base
        p = torch.sigmoid(logits)
        inter, p_sum, y_sum = (p * y).sum(), p.sum(), y.sum()
        if self.distributed:
            inter, p_sum, y_sum = _SumOverProcesses.apply(torch.stack([inter, p_sum, y_sum])).unbind()
        dice = 1 - (2 * inter + 1.0) / (p_sum + y_sum + 1.0)
        return base + self.dice_weight * dice


# --------------------------------------------------------------------------------------------------
# Positive-class scores during training (binned on the device; the scores are metrics')
# --------------------------------------------------------------------------------------------------
class _BinaryCounts:
    """Histogram of predicted probabilities per true class → TP/FP/FN at thresholds k/bins."""

    def __init__(self, bins: int = 100, device: torch.device | str = "cpu"):
        self.bins = bins
        self.counts = torch.zeros(2 * bins, dtype=torch.int64, device=device)

    def update(self, prob: torch.Tensor, y: torch.Tensor) -> None:
        idx = (prob.detach().float().reshape(-1) * self.bins).long().clamp_(0, self.bins - 1)
        idx = idx + self.bins * (y.reshape(-1) > 0.5).long()
        self.counts += torch.bincount(idx, minlength=2 * self.bins)

    def scores(self) -> dict[str, float]:
        """Scores at 0.5 and at the threshold of maximal F1 (:meth:`PixelMetrics.best_threshold`)."""
        pm = PixelMetrics(bins=self.bins)
        pm.hist = self.counts.cpu().numpy().reshape(2, self.bins)
        threshold, _ = pm.best_threshold("f1")
        at_half, best = pm.compute(0.5), pm.compute(threshold)
        return {
            **{m: float(at_half[m]) for m in ("f1", "iou", "precision", "recall")},
            "f1_best": float(best["f1"]),
            "iou_best": float(best["iou"]),
            "threshold": threshold,
        }


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------
def _rng_state(device: torch.device) -> dict:
    """Every random state the run draws from; on ``cuda:N`` (a DDP process) only that GPU's."""
    np_state = np.random.get_state()  # noqa: NPY002
    if device.type != "cuda":
        cuda = []
    elif device.index is None:
        cuda = torch.cuda.get_rng_state_all()
    else:
        cuda = [torch.cuda.get_rng_state(device)]
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }


def _set_rng_state(state: Mapping, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and state.get("cuda"):
        cuda = [s.cpu() for s in state["cuda"]]
        if device.index is not None and len(cuda) == 1:
            torch.cuda.set_rng_state(cuda[0], device)
        else:
            torch.cuda.set_rng_state_all(cuda)
    py = state.get("python")
    if py:
        random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state.get("numpy")
    if npy:
        np.random.set_state((npy[0], np.asarray(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))  # noqa: NPY002


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint written by :func:`train`, loaded with ``weights_only=True`` (no arbitrary code)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def load_model(
    run: str | Path, which: str = "best", device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model of a run (``runs/<name>`` or a ``.pt`` file) and load its weights (weights only)."""
    path = Path(run)
    if path.is_dir():
        path = path / f"{which}.pt"
    ck = load_checkpoint(path)
    cfg = ck["config"]
    model = models.build_model(cfg["model"], ck["in_channels"], **cfg.get("model_kwargs", {}))
    model.load_state_dict(ck["model"])
    return model.to(select_device(device)).eval(), ck


# --------------------------------------------------------------------------------------------------
# Loops
# --------------------------------------------------------------------------------------------------
def _to_device(batch: Mapping, device: torch.device) -> dict:
    nb = device.type == "cuda"
    return {
        k: (v.to(device, non_blocking=nb) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()
    }


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


@torch.no_grad()
def _evaluate(
    model, loader, pre, loss_fn, device, amp_dtype, bins: int = 100, d: _Dist | None = None
) -> dict[str, float]:
    """Loss and positive-class scores of ``model`` over ``loader``.

    With several processes (``d``), each evaluates its own whole batches and the score histograms and
    loss sums are added up over the processes: every process returns the figures of the whole split.
    """
    model.eval()
    counts = _BinaryCounts(bins, device)
    total, n = 0.0, 0
    for batch in loader:
        batch = _to_device(batch, device)
        inputs, y, days = pre(batch)
        with _autocast(device, amp_dtype):
            logits = model(inputs, days)
        loss = loss_fn(logits, y)
        total += float(loss) * y.shape[0]
        n += y.shape[0]
        counts.update(torch.sigmoid(logits.float()).reshape(y.shape), y)
    if d is not None and d.enabled:
        sums = d.all_reduce(torch.tensor([total, n], dtype=torch.float64, device=device)).tolist()
        total, n = sums[0], int(sums[1])
        d.all_reduce(counts.counts)
    out = {"loss": total / max(n, 1)}
    out.update(counts.scores())
    return out


@torch.no_grad()
def _predict_batches(model, dataset, idx: list[int], dev, batch_size: int):
    """``(ids, prob (B, H, W), y (B, H, W))`` per batch, without gradients; one batch in memory."""
    pre = dataset.preprocessor.to(dev)
    for i in range(0, len(idx), batch_size):
        batch = _to_device(dataset.read_raw(idx[i : i + batch_size]), dev)
        inputs, y, days = pre(batch)
        prob = torch.sigmoid(model(inputs, days).float())[:, 0]
        yield list(batch["id"]), prob.cpu().numpy(), y.cpu().numpy()


def predict(
    model: torch.nn.Module,
    dataset: datasets.PatchDataset,
    indices=None,
    *,
    device: str | torch.device = "auto",
    batch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Probabilities ``(n, H, W)``, masks and ids for samples of a ``raw=True`` dataset (all in memory)."""
    if not dataset.raw:
        raise ValueError("predict needs a dataset built with raw=True")
    dev = select_device(device)
    model = model.to(dev).eval()
    idx = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    probs, ys, ids = [], [], []
    for b_ids, prob, y in _predict_batches(model, dataset, idx, dev, batch_size):
        probs.append(prob)
        ys.append(y)
        ids += b_ids
    return np.concatenate(probs), np.concatenate(ys), ids


def iter_run_predictions(
    run_dir, task, split: str, *, device: str = "auto", batch_size: int = 8, which: str = "best"
):
    """Stream ``(ids, prob (B, H, W) float32, mask (B, H, W) uint8)`` of a run's checkpoint on a split.

    Uses the run's own sensors and input view and the task's train statistics (the packed cache is
    built when missing). Only one batch is held in memory: evaluation accumulates metrics per batch.
    """
    model, ck = load_model(run_dir, which, device=device)
    dev = next(model.parameters()).device
    cfg = ck["config"]
    ds = datasets.PatchDataset(
        task, split, cfg["sensors"], view=models.VIEWS[cfg["model"]], raw=True, progress=False
    )
    for ids, prob, y in _predict_batches(model.eval(), ds, list(range(len(ds))), dev, batch_size):
        yield ids, prob, (y > 0.5).astype("uint8")


def _write_history(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(HISTORY_COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in HISTORY_COLUMNS})
    os.replace(tmp, path)


def _compile(model: torch.nn.Module, how: bool | str):
    """``torch.compile(model)`` (True: inductor; a string: that backend), or the model itself."""
    if not how:
        return model
    return torch.compile(model, backend="inductor" if how is True else str(how))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_lambda(total: int, warmup: int, floor: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return f


def train(
    config: TrainConfig | Mapping | None = None,
    *,
    callback: Callable[[dict, list[dict]], None] | None = None,
    distributed: bool | None = None,
    **overrides,
) -> TrainResult:
    """Train a model on a task; see :class:`TrainConfig` for the settings and the module docstring.

    ``callback(row, history)`` is called after every epoch (e.g. to update a live plot); an exception
    it raises stops training after ``last.pt`` was written (so the run can be resumed). With several
    processes it is called in every process, with the same row (timings aside), so a callback that stops
    the run stops all of them at the same epoch.
    ``distributed``: None (default) joins a DistributedDataParallel run when started by torchrun with
    several processes (or inside an initialised process group), False never does, True requires one
    and uses DDP even with one process; a process group initialised here is destroyed on return.
    Raises ValueError when a split is empty or has no landslide pixels or when the global batch does not
    split evenly over the processes, FileExistsError when the run folder holds a run and neither
    ``resume`` nor ``overwrite`` is set.
    """
    if config is None:
        cfg = TrainConfig(**overrides)
    else:
        base = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
        cfg = TrainConfig.from_dict({**base, **overrides})
    d, device = _setup_distributed(distributed, cfg.device)
    try:
        return _train(cfg, d, device, callback)
    finally:
        if d.owns_group:
            dist.destroy_process_group()


def _train(
    cfg: TrainConfig, d: _Dist, device: torch.device, callback: Callable[[dict, list[dict]], None] | None
) -> TrainResult:
    from tqdm.auto import tqdm

    from .tasks import check_files, load_task

    batch = per_process_batch(cfg.batch_size, d.world_size)
    _configure_backends(cfg, device, d.local_world_size)
    amp_dtype = _amp_dtype(cfg.amp, device)
    _seed_all(cfg.seed)
    show = cfg.progress and d.main
    if d.enabled and d.main:
        log.info(
            "DistributedDataParallel: %d processes (%s), %d samples per process and step",
            d.world_size,
            dist.get_backend(),
            batch,
        )

    # ---- data (rank 0 builds or refreshes the packed cache while the others wait, then they read it)
    task = load_task(cfg.task_dir, data_dir=cfg.data_dir)
    task = check_files(task, cfg.sensors, ("train", "val"), allow_missing=cfg.allow_missing)
    view = models.VIEWS[cfg.model]
    common = {"view": view, "raw": True, "cache_dir": cfg.cache_dir, "progress": show}
    if not d.main:
        d.barrier()
    train_ds = datasets.PatchDataset(
        task, "train", cfg.sensors, max_patches=cfg.max_train_patches, seed=cfg.seed, **common
    )
    val_ds = datasets.PatchDataset(task, "val", cfg.sensors, **common)
    if d.main:
        d.barrier()
    pos, tot = train_ds.positives()
    if pos == 0:
        raise ValueError(
            f"the train split of task {task.name} ({'+'.join(cfg.sensors)}) has no landslide pixels: "
            "nothing to learn (choose a task with annotated patches, e.g. S12LS-LD)"
        )
    vpos, _ = val_ds.positives()
    if vpos == 0:
        raise ValueError(
            f"the val split of task {task.name} ({'+'.join(cfg.sensors)}) has no landslide pixels: "
            "positive-class F1 is undefined"
        )
    pos_weight = math.sqrt((tot - pos) / pos) if cfg.pos_weight == "auto" else float(cfg.pos_weight)
    workers = (
        _default_workers(device, d.local_world_size) if cfg.num_workers == "auto" else int(cfg.num_workers)
    )
    pin = device.type == "cuda"
    shard = {"num_replicas": d.world_size, "rank": d.rank}
    train_loader = datasets.make_loader(
        train_ds, batch, shuffle=True, seed=cfg.seed, num_workers=workers, pin_memory=pin, **shard
    )
    val_loader = datasets.make_loader(
        val_ds,
        cfg.eval_batch_size or cfg.batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin,
        shard="batches",
        **shard,
    )
    pre = train_ds.preprocessor.to(device)
    val_pre = val_ds.preprocessor.to(device)

    # ---- model and optimisation
    in_channels = train_ds.in_channels()
    model = models.build_model(cfg.model, in_channels, **cfg.model_kwargs).to(device)
    use_cl = device.type == "cuda" if cfg.channels_last == "auto" else bool(cfg.channels_last)
    if use_cl:
        models.set_channels_last(model)
    if d.enabled:
        model = _sync_batchnorm(model, device)
    n_params = models.count_parameters(model)
    opt_kw = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, **opt_kw)
    steps = len(train_loader) if cfg.max_steps is None else min(len(train_loader), int(cfg.max_steps))
    total = cfg.epochs * steps
    warmup = min(total, round(cfg.warmup_epochs * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total, warmup, cfg.min_lr_ratio))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    loss_kw = {"kind": cfg.loss, "pos_weight": pos_weight, "dice_weight": cfg.dice_weight}
    loss_kw.update(gamma=cfg.focal_gamma, alpha=cfg.focal_alpha)
    loss_fn = SegmentationLoss(**loss_kw).to(device)
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        train_loss_fn = SegmentationLoss(**loss_kw, distributed=True).to(device)
        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        step_model = _compile(ddp, cfg.compile)
        eval_model = model  # validation batches differ per process: no DDP collectives there
        # identical initial weights (DDP broadcasts rank 0's anyway); from here each process draws its own
        # dropout masks
        _seed_all(cfg.seed + 1_000_003 * d.rank)
    else:
        train_loss_fn = loss_fn
        step_model = eval_model = _compile(model, cfg.compile)

    # ---- run folder, resume (every process reads; rank 0 alone changes the folder, after all have read)
    run_dir = Path(cfg.runs_dir) / cfg.name
    last_path, best_path, hist_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "history.csv"
    history: list[dict] = []
    start, best, best_epoch, bad, seconds = 0, -math.inf, 0, 0, 0.0
    best_row: dict = {}
    stale = False
    if cfg.resume and last_path.is_file():
        ck = load_checkpoint(last_path)
        old = ck["config"]
        diff = sorted(
            k
            for k in set(old) | set(cfg.to_dict())
            if k not in _RESUME_FREE and old.get(k) != cfg.to_dict().get(k)
        )
        if diff:
            raise ValueError(f"cannot resume {run_dir}: settings differ from the checkpoint's: {diff}")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        per_rank = ck.get("rng_ranks") or []
        if d.enabled and len(per_rank) == d.world_size:
            _set_rng_state(per_rank[d.rank], device)
        else:
            _set_rng_state(ck["rng"], device)
            if d.enabled and d.main:
                log.warning(
                    "%s was written by %d process(es), resumed by %d: dropout and augmentation draws "
                    "differ from an uninterrupted run",
                    last_path,
                    max(1, len(per_rank)),
                    d.world_size,
                )
        es = ck["early_stopping"]
        best, best_epoch, bad = es["best"], es["best_epoch"], es["bad_epochs"]
        best_row = dict(es.get("best_row", {}))
        history = [dict(r) for r in ck["history"]]
        start, seconds = int(ck["epoch"]), float(ck["train_seconds"])
        if d.main:
            log.info("resuming %s after epoch %d", run_dir, start)
    elif run_dir.exists() and any(run_dir.iterdir()):
        if not (cfg.overwrite or cfg.resume):
            raise FileExistsError(
                f"run folder {run_dir} exists; pass resume=True, overwrite=True or another run_name"
            )
        stale = True
    d.barrier()  # every process has looked at the folder (and read last.pt) before rank 0 changes it
    if d.main:
        if stale:
            for p in (last_path, best_path, hist_path, run_dir / "run.json"):
                p.unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_history(hist_path, history)

    # ---- epochs
    stopped = False
    bar = tqdm(
        range(start, cfg.epochs),
        desc=cfg.name,
        unit="epoch",
        disable=not show,
        initial=start,
        total=cfg.epochs,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        train_loader.epoch_sampler.set_epoch(epoch)
        aug = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch + 17 + 7_919 * d.rank)
        step_model.train()
        tot_loss, n_seen, data_s, first_s = 0.0, 0, 0.0, float("nan")
        it = iter(train_loader)
        for step in tqdm(range(steps), desc=f"epoch {epoch + 1}", leave=False, disable=not show):
            td = time.perf_counter()
            batch = _to_device(next(it), device)
            data_s += time.perf_counter() - td
            inputs, y, days = pre(batch, augment=cfg.augment, crop=cfg.crop, generator=aug)
            with _autocast(device, amp_dtype):
                logits = step_model(inputs, days)
            loss = train_loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            tot_loss += float(loss.detach()) * y.shape[0]  # waits for the step on the device
            n_seen += y.shape[0]
            if step == 0:
                first_s = time.perf_counter() - td
        if d.enabled:  # the mean over the processes' losses: the loss of the global batches
            sums = d.all_reduce(torch.tensor([tot_loss, n_seen], dtype=torch.float64, device=device))
            tot_loss, n_seen = sums[0].item(), int(sums[1].item())
        train_time = time.perf_counter() - t0
        val = _evaluate(eval_model, val_loader, val_pre, loss_fn, device, amp_dtype, d=d)
        secs = time.perf_counter() - t0
        seconds += secs
        row = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": tot_loss / max(n_seen, 1),
            "val_loss": val["loss"],
            "val_f1": val["f1"],
            "val_iou": val["iou"],
            "val_precision": val["precision"],
            "val_recall": val["recall"],
            "val_f1_best": val["f1_best"],
            "val_iou_best": val["iou_best"],
            "val_threshold": val["threshold"],
            "epoch_seconds": secs,
            "data_seconds": data_s,
            "train_samples_per_s": n_seen / train_time if train_time > 0 else float("nan"),
            "train_seconds": train_time,
            "first_step_seconds": first_s,
        }
        history.append(row)
        score = row[cfg.monitor]  # the same in every process: they stop at the same epoch
        # what both checkpoints hold: the model and how to rebuild it
        weights = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch + 1,
            "model": model.state_dict(),
            "config": cfg.to_dict(),
            "in_channels": dict(in_channels),
            "n_params": n_params,
        }
        if score > best + 1e-12:
            best, best_epoch, bad, best_row = score, epoch + 1, 0, dict(row)
            if d.main:
                _save_atomic({**weights, "metrics": dict(row)}, best_path)
        else:
            bad += 1
        last = {
            **weights,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": _rng_state(device),
            "early_stopping": {
                "best": best,
                "best_epoch": best_epoch,
                "bad_epochs": bad,
                "best_row": best_row,
            },
            "history": history,
            "train_seconds": seconds,
        }
        if d.enabled:  # every process's random state, so that a resumed run draws what this one would
            last["rng_ranks"] = [None] * d.world_size
            dist.all_gather_object(last["rng_ranks"], last["rng"])
        if d.main:
            _save_atomic(last, last_path)
            _write_history(hist_path, history)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", f1=f"{row['val_f1_best']:.3f}")
        if callback is not None:
            callback(row, history)
        if cfg.patience and bad >= cfg.patience and epoch + 1 < cfg.epochs:
            stopped = True
            break
    bar.close()
    result = TrainResult(
        run_dir=run_dir,
        history=history,
        best_epoch=best_epoch,
        best_val_f1=float(best_row.get("val_f1_best", float("nan"))),
        best_threshold=float(best_row.get("val_threshold", float("nan"))),
        best_val_f1_at_05=float(best_row.get("val_f1", float("nan"))),
        best_val_iou=float(best_row.get("val_iou_best", float("nan"))),
        epochs_run=len(history),
        stopped_early=stopped,
        n_params=n_params,
        device=str(device),
        train_seconds=seconds,
        world_size=d.world_size,
        backend=dist.get_backend() if d.enabled else None,
        peak_memory_bytes=int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None,
        missing_files={k: v for k, v in task.file_check.missing.items() if v},
    )
    if d.main:
        summary = {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in dataclasses.asdict(result).items()
            if k != "history"
        }
        info = {"config": cfg.to_dict(), "summary": summary}
        if task.file_check.n_missing:
            info["missing_files"] = task.file_check.record()
        (run_dir / "run.json").write_text(json.dumps(info, indent=1))
    d.barrier()  # the run folder is complete when train returns in any process
    return result
