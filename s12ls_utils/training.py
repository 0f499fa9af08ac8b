"""The training loop: device selection, mixed precision, checkpoints, bit-for-bit resume, history.

:func:`train` takes a :class:`TrainConfig` (or a dict / keyword overrides) and writes ``runs/<name>/``:

- ``history.csv`` — one row per epoch (learning rate, losses, positive-class F1/IoU/precision/recall on
  the validation split at 0.5 and at the best threshold, seconds, seconds spent waiting for data);
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
from torch.nn import functional as F

from . import datasets, models

__all__ = [
    "TrainConfig",
    "TrainResult",
    "load_checkpoint",
    "load_model",
    "predict",
    "select_device",
    "train",
]

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
    ``num_workers="auto"``: loader threads; 0 on CPU (reading is ~1 ms per sample, the model needs the
    cores), up to 8 on CUDA.
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
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool | str = "auto"
    compile: bool = False
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
    cache_dir: str | None = None
    eval_batch_size: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.sensors, str):
            self.sensors = [self.sensors]
        self.sensors = list(self.sensors)
        for k in ("task_dir", "runs_dir", "data_dir", "cache_dir"):
            v = getattr(self, k)
            if isinstance(v, os.PathLike):
                setattr(self, k, str(v))
        if self.model not in models.MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(models.MODELS)}")
        if self.loss not in ("bce_dice", "focal_dice", "bce", "focal"):
            raise ValueError(f"unknown loss {self.loss!r}; choose bce_dice, focal_dice, bce or focal")
        if self.monitor not in ("val_f1_best", "val_f1", "val_iou", "val_iou_best"):
            raise ValueError(
                f"monitor must be val_f1_best, val_f1, val_iou or val_iou_best, not {self.monitor!r}"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp must be auto, bf16, fp16 or off, not {self.amp!r}")

    @property
    def name(self) -> str:
        if self.run_name:
            return self.run_name
        return f"{Path(self.task_dir).name}-{self.model}-{'+'.join(self.sensors)}-s{self.seed}"

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(names)}")
        return cls(**dict(d))


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

    def history_frame(self):
        import pandas as pd

        return pd.DataFrame(self.history, columns=list(HISTORY_COLUMNS))


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


def _default_workers(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    return max(1, min(8, datasets._default_workers() - 1))


def _configure_backends(cfg: TrainConfig, device: torch.device) -> None:
    if device.type == "cpu":
        torch.set_num_threads(int(cfg.threads or datasets._default_workers()))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg.tf32)
        torch.backends.cudnn.allow_tf32 = bool(cfg.tf32)
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = bool(cfg.deterministic)
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(cfg.deterministic), warn_only=True)


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
    not make it undefined. Computed in float32 whatever the autocast dtype.
    """

    def __init__(
        self,
        kind: str = "bce_dice",
        pos_weight: float = 1.0,
        dice_weight: float = 1.0,
        gamma: float = 2.0,
        alpha: float = 0.75,
    ):
        super().__init__()
        self.kind, self.dice_weight, self.gamma, self.alpha = kind, dice_weight, gamma, alpha
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
        dice = 1 - (2 * (p * y).sum() + 1.0) / (p.sum() + y.sum() + 1.0)
        return base + self.dice_weight * dice


# --------------------------------------------------------------------------------------------------
# Positive-class scores (minimal; the full metrics module replaces this)
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
        c = self.counts.cpu().numpy().astype("float64")
        neg, pos = c[: self.bins], c[self.bins :]
        tp = pos[::-1].cumsum()[::-1]  # predicted positive at threshold k/bins: bins >= k
        fp = neg[::-1].cumsum()[::-1]
        fn = pos.sum() - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
            iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), 0.0)
            prec = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            rec = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        half = self.bins // 2
        k = int(np.argmax(f1[1:]) + 1)  # thresholds 1/bins … (bins-1)/bins
        return {
            "f1": float(f1[half]),
            "iou": float(iou[half]),
            "precision": float(prec[half]),
            "recall": float(rec[half]),
            "f1_best": float(f1[k]),
            "iou_best": float(iou[k]),
            "threshold": k / self.bins,
        }


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------
def _rng_state(device: torch.device) -> dict:
    np_state = np.random.get_state()  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }


def _set_rng_state(state: Mapping, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and state.get("cuda"):
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
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
def _evaluate(model, loader, pre, loss_fn, device, amp_dtype, bins: int = 100) -> dict[str, float]:
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
    out = {"loss": total / max(n, 1)}
    out.update(counts.scores())
    return out


@torch.no_grad()
def _predict_batches(model, dataset, idx: list[int], dev, batch_size: int):
    """``(ids, prob (B, H, W), y (B, H, W))`` per batch, without gradients; one batch in memory."""
    pre = dataset.preprocessor.to(dev)
    with torch.no_grad():
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
    **overrides,
) -> TrainResult:
    """Train a model on a task; see :class:`TrainConfig` for the settings and the module docstring.

    ``callback(row, history)`` is called after every epoch (e.g. to update a live plot); an exception
    it raises stops training after ``last.pt`` was written (so the run can be resumed).
    Raises ValueError when a split is empty or has no landslide pixels, FileExistsError when the run
    folder holds a run and neither ``resume`` nor ``overwrite`` is set.
    """
    from tqdm.auto import tqdm

    from .splits import load_task

    if config is None:
        cfg = TrainConfig(**overrides)
    else:
        base = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
        cfg = TrainConfig.from_dict({**base, **overrides})
    device = select_device(cfg.device)
    _configure_backends(cfg, device)
    amp_dtype = _amp_dtype(cfg.amp, device)
    _seed_all(cfg.seed)

    # ---- data
    task = load_task(cfg.task_dir, data_dir=cfg.data_dir)
    view = models.VIEWS[cfg.model]
    common = {"view": view, "raw": True, "cache_dir": cfg.cache_dir, "progress": cfg.progress}
    train_ds = datasets.PatchDataset(
        task, "train", cfg.sensors, max_patches=cfg.max_train_patches, seed=cfg.seed, **common
    )
    val_ds = datasets.PatchDataset(task, "val", cfg.sensors, **common)
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
    workers = _default_workers(device) if cfg.num_workers == "auto" else int(cfg.num_workers)
    pin = device.type == "cuda"
    train_loader = datasets.make_loader(
        train_ds, cfg.batch_size, shuffle=True, seed=cfg.seed, num_workers=workers, pin_memory=pin
    )
    val_loader = datasets.make_loader(
        val_ds, cfg.eval_batch_size or cfg.batch_size, shuffle=False, num_workers=workers, pin_memory=pin
    )
    pre = train_ds.preprocessor.to(device)
    val_pre = val_ds.preprocessor.to(device)

    # ---- model and optimisation
    in_channels = train_ds.in_channels()
    model = models.build_model(cfg.model, in_channels, **cfg.model_kwargs).to(device)
    use_cl = device.type == "cuda" if cfg.channels_last == "auto" else bool(cfg.channels_last)
    if use_cl:
        models.set_channels_last(model)
    n_params = models.count_parameters(model)
    opt_kw = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, **opt_kw)
    steps = len(train_loader)
    total = cfg.epochs * steps
    warmup = min(total, round(cfg.warmup_epochs * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total, warmup, cfg.min_lr_ratio))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    loss_fn = SegmentationLoss(cfg.loss, pos_weight, cfg.dice_weight, cfg.focal_gamma, cfg.focal_alpha).to(
        device
    )
    step_model = torch.compile(model) if cfg.compile else model

    # ---- run folder, resume
    run_dir = Path(cfg.runs_dir) / cfg.name
    last_path, best_path, hist_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "history.csv"
    history: list[dict] = []
    start, best, best_epoch, bad, seconds = 0, -math.inf, 0, 0, 0.0
    best_row: dict = {}
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
        _set_rng_state(ck["rng"], device)
        es = ck["early_stopping"]
        best, best_epoch, bad = es["best"], es["best_epoch"], es["bad_epochs"]
        best_row = dict(es.get("best_row", {}))
        history = [dict(r) for r in ck["history"]]
        start, seconds = int(ck["epoch"]), float(ck["train_seconds"])
        log.info("resuming %s after epoch %d", run_dir, start)
    elif run_dir.exists() and any(run_dir.iterdir()):
        if not (cfg.overwrite or cfg.resume):
            raise FileExistsError(
                f"run folder {run_dir} exists; pass resume=True, overwrite=True or another run_name"
            )
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
        disable=not cfg.progress,
        initial=start,
        total=cfg.epochs,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        train_loader.epoch_sampler.set_epoch(epoch)
        aug = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch + 17)
        step_model.train()
        tot_loss, n_seen, data_s = 0.0, 0, 0.0
        it = iter(train_loader)
        for _ in tqdm(range(steps), desc=f"epoch {epoch + 1}", leave=False, disable=not cfg.progress):
            td = time.perf_counter()
            batch = _to_device(next(it), device)
            data_s += time.perf_counter() - td
            inputs, y, days = pre(batch, augment=cfg.augment, crop=cfg.crop, generator=aug)
            with _autocast(device, amp_dtype):
                logits = step_model(inputs, days)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            tot_loss += float(loss.detach()) * y.shape[0]
            n_seen += y.shape[0]
        train_time = time.perf_counter() - t0
        val = _evaluate(step_model, val_loader, val_pre, loss_fn, device, amp_dtype)
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
        }
        history.append(row)
        score = row[cfg.monitor]
        if score > best + 1e-12:
            best, best_epoch, bad, best_row = score, epoch + 1, 0, dict(row)
            _save_atomic(
                {
                    "format": CHECKPOINT_FORMAT,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "metrics": dict(row),
                    "config": cfg.to_dict(),
                    "in_channels": dict(in_channels),
                    "n_params": n_params,
                },
                best_path,
            )
        else:
            bad += 1
        _save_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "epoch": epoch + 1,
                "model": model.state_dict(),
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
                "config": cfg.to_dict(),
                "in_channels": dict(in_channels),
                "n_params": n_params,
                "train_seconds": seconds,
            },
            last_path,
        )
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
    )
    summary = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in dataclasses.asdict(result).items()
        if k != "history"
    }
    (run_dir / "run.json").write_text(json.dumps({"config": cfg.to_dict(), "summary": summary}, indent=1))
    return result
