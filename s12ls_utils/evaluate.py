"""Evaluation of a trained run on the landslide class, next to a non-learned change-detection reference.

:func:`evaluate_run` is what ``s12ls evaluate RUN_DIR`` and chapter 06 call:

1. **validation**: the model's probabilities and the reference's change scores are histogrammed
   (:class:`~s12ls_utils.metrics.PixelMetrics`); each gets the threshold of maximal F1 of the landslide class;
2. **test**: those thresholds are applied once (never tuned on test): pixel scores, AUPRC and ROC AUC,
   per-patch counts (bootstrap intervals, per-patch and per-region tables), object-level detection
   (:class:`~s12ls_utils.metrics.ObjectMetrics`) and a small gallery of the patches with most errors.

Predictions stream batch by batch; only histograms, per-patch counts and the ``gallery`` worst patches are
kept, so memory does not grow with the number of pixels.

The **change-detection reference** thresholds the pre→post change of one index computed with
:mod:`s12ls_utils.signatures` (:func:`~s12ls_utils.signatures.s2_indices`,
:func:`~s12ls_utils.signatures.s1_indices`, :func:`~s12ls_utils.signatures.change_features`: median after
minus median before the event, clouds masked):

- ``s2``: score = NDVI drop (−ΔNDVI; vegetation replaced by bare ground), range −1…1;
- ``s1asc`` / ``s1dsc``: score = mean absolute change of VV and VH in dB, range 0…10 dB.

Pixels without a valid value on either side, and patches whose event lies outside the series, get no
score (the lowest bin: never predicted). The reference runs on the reference sensor's own split of the task.

This module sits on top of the package (like :mod:`s12ls_utils.cli`): torch, the datasets and the training
code are imported only inside :func:`iter_model_predictions`, so the reference alone needs no torch.
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import schema, signatures
from .io import open_patch
from .metrics import (
    SCORE_KEYS,
    ObjectMetrics,
    PixelMetrics,
    bootstrap_ci,
    scores_from_counts,
    size_bin_labels,
)
from .splits import Task, load_task

__all__ = [
    "REFERENCE_RANGES",
    "EvaluationResult",
    "change_score",
    "chapter05_run",
    "evaluate_run",
    "iter_model_predictions",
    "iter_reference_scores",
    "region_of",
]

#: Score range of the change-detection reference per sensor.
REFERENCE_RANGES: dict[str, tuple[float, float]] = {
    "s2": (-1.0, 1.0),
    "s1asc": (0.0, 10.0),
    "s1dsc": (0.0, 10.0),
}
METHODS = ("model", "reference")


def chapter05_run(
    task: Task, task_path: str | Path, sensor: str, runs_dir: str | Path = "runs"
) -> Path | None:
    """The run chapter 05 trains with its default model on ``task`` and ``sensor`` (run name
    ``ch05-<task label>-unet_prepost-<sensor>`` under ``runs_dir``), when it exists, has its ``best.pt`` and
    was trained on this task folder (and its data folder, where the run names one) and on ``sensor`` alone
    (its ``run.json``); else None. Relative paths are taken from the current folder.

    Chapter 06 evaluates this run by default: the book's own run, found by name and checked, not whatever
    run a parameterised rerun recorded last."""
    from .splits import chapter_run_name

    run = Path(runs_dir) / chapter_run_name("ch05", task_path, "unet_prepost", [sensor])
    try:
        cfg = json.loads((run / "run.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return None
    if not (run / "best.pt").is_file() or list(cfg.get("sensors") or []) != [sensor]:
        return None
    if cfg.get("data_dir"):  # trained with an explicit data folder: it must be this task's
        if Path(cfg["data_dir"]).resolve() != Path(task.data_dir).resolve():
            return None
    if not cfg.get("task_dir") or Path(cfg["task_dir"]).resolve() != Path(task_path).resolve():
        return None
    return run


def run_sensors_of(run_dir: str | Path) -> list[str]:
    """The sensors a run was trained on (its ``run.json``, else its checkpoint's configuration)."""
    run_dir = Path(run_dir)
    info = run_dir / "run.json"
    if info.exists():
        cfg = json.loads(info.read_text())["config"]
    else:
        from .training import load_checkpoint

        cfg = load_checkpoint(run_dir / "best.pt")["config"]
    sensors = cfg.get("sensors") or ["s2"]
    return [sensors] if isinstance(sensors, str) else list(sensors)


def gallery_images(items: list[dict], s1: str = "false_color") -> tuple[list[dict], str | list[str]]:
    """The error gallery's before/after images for :func:`evaluate_run`'s ``gallery`` items.

    Per item and sensor of the run, the dates just before and after the event
    (:func:`~s12ls_utils.signatures.before_after_steps`; first and last date when the event is outside the
    series), drawn with :func:`s12ls_utils.plots.sensor_image` (S2 true colour with one stretch per patch,
    S1 ``s1``). Returns the items with ``pre``/``post`` added and the ``sensor`` argument of
    :func:`s12ls_utils.plots.error_gallery`: one sensor name, or the list of a fusion run's sensors (then
    ``pre``/``post`` are ``{sensor: image}`` and the gallery draws one row per sensor)."""
    from .plots import sensor_image, true_color_limits

    out, sensors = [], []
    for it in items:
        paths = it.get("paths") or ({"s2": it["path"]} if it.get("path") else {})
        pre, post = {}, {}
        for sensor, path in paths.items():
            with open_patch(path, load=True) as ds:
                steps = signatures.before_after_steps(ds, signatures.patch_alignment(ds))
                pre_t, post_t = steps if steps is not None else (0, ds.sizes["time"] - 1)
                limits = true_color_limits(ds) if sensor == "s2" else None
                pre[sensor] = sensor_image(ds, pre_t, sensor, s1=s1, limits=limits)
                post[sensor] = sensor_image(ds, post_t, sensor, s1=s1, limits=limits)
            if sensor not in sensors:
                sensors.append(sensor)
        if len(paths) == 1:
            (pre,), (post,) = pre.values(), post.values()
        out.append({**it, "pre": pre, "post": post})
    return out, (sensors if len(sensors) > 1 else (sensors[0] if sensors else "s2"))


def region_of(patch_id: str) -> str:
    """Region of a location key ``<region>_<id>`` (regions may contain underscores)."""
    return str(patch_id).rsplit("_", 1)[0]


# --------------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------------
def change_score(ds, sensor: str) -> np.ndarray:
    """Change-detection score ``(y, x)`` float32 of an opened patch (NaN where undefined), see module doc."""
    align = signatures.patch_alignment(ds)
    feats = signatures.s2_indices(ds) if sensor == "s2" else signatures.s1_indices(ds)
    ch = signatures.change_features(feats, align.pre, align.post)
    shape = (ds.sizes["y"], ds.sizes["x"])
    if ch is None:
        return np.full(shape, np.nan, dtype="float32")
    if sensor == "s2":
        return (-ch["NDVI"].values).astype("float32")
    return (0.5 * (np.abs(ch["VV_dB"].values) + np.abs(ch["VH_dB"].values))).astype("float32")


def _mask(ds) -> np.ndarray:
    m = ds["MASK"]
    if "time" in m.dims:
        m = m.isel(time=0)
    return (m.transpose("y", "x").values > 0).astype("uint8")


def iter_reference_scores(
    task: Task, split: str, sensor: str = "s2"
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(id, score (H, W), mask (H, W))`` of the change-detection reference, patch by patch."""
    schema.check_sensor(sensor)
    if sensor not in task.splits:
        raise ValueError(f"task {task.name} has no {sensor} split; it has {sorted(task.splits)}")
    if task.data_dir is None:
        raise ValueError(f"task {task.path} has no known data folder")
    for e in task.splits[sensor][split]:
        ds = open_patch(task.data_dir / e[sensor], load=True)
        try:
            yield str(e["id"]), change_score(ds, sensor), _mask(ds)
        finally:
            ds.close()


def iter_model_predictions(
    run_dir: str | Path,
    task: Task | str | Path,
    split: str,
    *,
    device: str = "auto",
    batch_size: int = 8,
    which: str = "best",
) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """``(ids, prob (B, H, W) float32, mask (B, H, W) uint8)`` of a run's checkpoint, batch by batch.

    Delegates to :func:`s12ls_utils.training.iter_run_predictions` (torch stays in datasets, models and
    training); each batch arrives on the CPU as numpy, because the metrics take arrays.
    """
    from . import training

    yield from training.iter_run_predictions(
        run_dir, task, split, device=device, batch_size=batch_size, which=which
    )


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------
@dataclass
class EvaluationResult:
    """What :func:`evaluate_run` measured (see :meth:`summary` for the flat figures)."""

    run_dir: Path
    task_dir: Path
    sensor: str
    thresholds: dict[str, float]
    val_f1: dict[str, float]
    val: dict[str, PixelMetrics]
    test: dict[str, PixelMetrics]
    objects: dict[str, ObjectMetrics]
    ci: dict[str, dict[str, tuple[float, float]]]
    patches: pd.DataFrame
    gallery: list[dict] = field(default_factory=list)
    n_val: int = 0
    n_test: int = 0
    seconds: float = 0.0

    def scores(self, method: str) -> dict[str, float]:
        """Test scores of ``model`` or ``reference`` at its validation threshold, with AUPRC and ROC AUC."""
        pm = self.test[method]
        out = pm.compute(self.thresholds[method])
        out["auprc"] = pm.average_precision()
        out["roc_auc"] = pm.roc_auc()
        return out

    def table(self) -> pd.DataFrame:
        """Test scores of both methods side by side (rows: metrics)."""
        keys = (*SCORE_KEYS, "auprc", "roc_auc", "threshold")
        return pd.DataFrame({m: {k: self.scores(m)[k] for k in keys} for m in METHODS})

    def regions(self) -> pd.DataFrame:
        """Pooled test scores per region and method (counts summed over the region's patches)."""
        g = self.patches.groupby(["region", "method"], observed=True)[
            ["tp", "fp", "fn", "tn", "n_positive"]
        ].sum()
        g = g.reset_index()
        s = scores_from_counts(g["tp"], g["fp"], g["fn"], g["tn"])
        for k in ("precision", "recall", "f1", "iou"):
            g[k] = s[k]
        g["patches"] = self.patches.groupby(["region", "method"], observed=True).size().to_numpy()
        return g

    def detection(self) -> pd.DataFrame:
        """Object-level detection per size bin and method (long format)."""
        rows = []
        for m in METHODS:
            r = self.objects[m].compute()
            for b, n, f, rate in zip(
                r["size_bin"], r["n_objects"], r["n_found"], r["detection_rate_by_size"], strict=True
            ):
                rows.append({"method": m, "size_bin": b, "landslides": n, "found": f, "detection_rate": rate})
        return pd.DataFrame(rows)

    def pr_curves(self) -> pd.DataFrame:
        """Test precision–recall and ROC points of both methods (long format)."""
        frames = []
        for m in METHODS:
            c = self.test[m].pr_curve()
            frames.append(pd.DataFrame(c).assign(method=m))
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> dict:
        """Flat figures (``model_*`` and ``ref_*``) for ``results/*.json`` and the text."""
        out: dict = {
            "run_dir": str(self.run_dir),
            "task_dir": str(self.task_dir),
            "reference_sensor": self.sensor,
            "n_val": self.n_val,
            "n_test": self.n_test,
            "prevalence": self.test["model"].prevalence,
            "cover_fraction": self.objects["model"].cover_fraction,
            "threshold": self.thresholds["model"],
            "ref_threshold": self.thresholds["reference"],
            "val_f1": self.val_f1["model"],
            "ref_val_f1": self.val_f1["reference"],
        }
        labels = size_bin_labels(self.objects["model"].size_bins)
        for m, p in (("model", "model_"), ("reference", "ref_")):
            s = self.scores(m)
            for k in (*SCORE_KEYS, "auprc", "roc_auc"):
                out[p + k] = s[k]
            for k in ("f1", "iou"):
                out[f"{p}{k}_ci_low"], out[f"{p}{k}_ci_high"] = self.ci[m][k]
            o = self.objects[m].compute()
            out[p + "detection_rate"] = o["detection_rate"]
            out[p + "fp_blobs_per_km2"] = o["fp_blobs_per_km2"]
            out[p + "fp_blobs"] = o["fp_blobs"]
            out[p + "detection_rate_by_size"] = dict(zip(labels, o["detection_rate_by_size"], strict=True))
        out["n_landslides_test"] = int(sum(self.objects["model"].compute()["n_objects"]))
        out["area_km2_test"] = self.objects["model"].area_km2
        return out


def _pass(batches, pm: PixelMetrics, threshold: float | None, om: ObjectMetrics | None, keep, method: str):
    """Feed ``(ids, score, mask)`` batches into the accumulators (objects and gallery once thresholded)."""
    n = 0
    for ids, score, y in batches:
        score, y = np.asarray(score), np.asarray(y)
        if score.ndim == 2:
            ids, score, y = [ids], score[None], y[None]
        pm.update(y, score, keys=ids)
        n += len(ids)
        if threshold is None:
            continue
        pred = pm.predict(score, threshold)
        om.update(y, pred)
        if keep is not None:
            for i, pid in enumerate(ids):
                err = int(np.count_nonzero(pred[i] != (y[i] > 0)))
                keep(err, {"id": pid, "method": method, "y": y[i], "score": score[i], "pred": pred[i]})
    return n


def evaluate_run(
    run_dir: str | Path,
    task_dir: str | Path | None = None,
    *,
    sensor: str = "s2",
    bins: int = 1000,
    cover_fraction: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 8,
    gallery: int = 3,
) -> EvaluationResult:
    """Evaluate a run (``runs/<name>``) and the change-detection reference on ``sensor``.

    ``task_dir`` defaults to the run's own task. Thresholds: max F1 of the landslide class on validation,
    applied once to test. ``gallery``: keep this many test patches with the most model errors.
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    if not (run_dir / "best.pt").exists():
        raise FileNotFoundError(f"no checkpoint {run_dir / 'best.pt'}; train a model first (s12ls train)")
    if task_dir is None:  # the run's own task: run.json (written at the end of training) or the checkpoint
        info = run_dir / "run.json"
        if info.exists():
            task_dir = json.loads(info.read_text())["config"]["task_dir"]
        else:
            from .training import load_checkpoint

            task_dir = load_checkpoint(run_dir / "best.pt")["config"]["task_dir"]
    task = load_task(task_dir)
    schema.check_sensor(sensor)
    ref_range = REFERENCE_RANGES[sensor]

    def model_batches(split):
        return iter_model_predictions(run_dir, task, split, device=device, batch_size=batch_size)

    def ref_batches(split):
        return iter_reference_scores(task, split, sensor)

    sources = {"model": (model_batches, (0.0, 1.0)), "reference": (ref_batches, ref_range)}
    val, test, objects, thresholds, val_f1 = {}, {}, {}, {}, {}
    heap: list = []
    counter = [0]

    def keep(err, item):
        counter[0] += 1
        entry = (err, counter[0], item)
        if len(heap) < gallery:
            heapq.heappush(heap, entry)
        elif err > heap[0][0]:
            heapq.heapreplace(heap, entry)

    n_val = n_test = 0
    for m, (batches, rng) in sources.items():
        val[m] = PixelMetrics(bins, rng)
        n_val = _pass(batches("val"), val[m], None, None, None, m)
        thresholds[m], val_f1[m] = val[m].best_threshold("f1")
        test[m] = PixelMetrics(bins, rng, keep_patches=True)
        objects[m] = ObjectMetrics(cover_fraction)
        k = keep if (m == "model" and gallery > 0) else None
        n_test = _pass(batches("test"), test[m], thresholds[m], objects[m], k, m)

    frames, ci = [], {}
    for m in METHODS:
        pc = test[m].patch_counts(thresholds[m])
        ci[m] = bootstrap_ci(pc, ("f1", "iou"), n_boot=n_boot, seed=seed)
        df = pd.DataFrame({k: pc[k] for k in ("tp", "fp", "fn", "tn")})
        df.insert(0, "id", [str(k) for k in pc["key"]])
        df.insert(1, "region", df["id"].map(region_of))
        df.insert(2, "method", m)
        df["n_positive"] = df["tp"] + df["fn"]
        s = scores_from_counts(df["tp"], df["fp"], df["fn"], df["tn"])
        for key in ("precision", "recall", "f1", "iou"):
            df[key] = s[key]
        frames.append(df)
    items = [it for _, _, it in sorted(heap, key=lambda e: (-e[0], e[1]))]
    # the run's own test entries (the aligned split for a fusion run): one file per sensor it was trained on
    from .datasets import split_entries

    run_sensors = run_sensors_of(run_dir)
    paths = {
        str(e["id"]): {s: task.data_dir / e[s] for s in run_sensors if e.get(s)}
        for e in split_entries(task, "test", run_sensors)
    }
    for it in items:
        it["paths"] = paths.get(it["id"], {})
        it["path"] = it["paths"].get(sensor) or next(iter(it["paths"].values()), None)
        it["threshold"] = thresholds["model"]
    return EvaluationResult(
        run_dir=run_dir,
        task_dir=Path(task_dir),
        sensor=sensor,
        thresholds=thresholds,
        val_f1=val_f1,
        val=val,
        test=test,
        objects=objects,
        ci=ci,
        patches=pd.concat(frames, ignore_index=True),
        gallery=items,
        n_val=n_val,
        n_test=n_test,
        seconds=time.perf_counter() - t0,
    )
