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

import dataclasses
import heapq
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import schema, signatures
from .io import open_patch, patch_mask
from .metrics import (
    SCORE_KEYS,
    ObjectMetrics,
    PixelMetrics,
    bootstrap_ci,
    bootstrap_scores,
    paired_bootstrap,
    percentile_interval,
    scores_from_counts,
    size_bin_labels,
    threshold_bootstrap,
)
from .tasks import Task, check_files, load_task

#: Score range of the change-detection reference per sensor.
REFERENCE_RANGES: dict[str, tuple[float, float]] = {
    "s2": (-1.0, 1.0),
    "s1asc": (0.0, 10.0),
    "s1dsc": (0.0, 10.0),
}
#: The methods scored side by side: the trained model, the change-detection reference that splits the series
#: at the inventory's event date, and its date-free variant (largest drop between consecutive clear dates).
METHODS = ("model", "reference", "reference_date_free")
#: Each method as a table names it for the reader.
METHOD_NAMES = {
    "model": "trained model",
    "reference": "change reference (event date)",
    "reference_date_free": "change reference (date-free)",
}
#: Prefix of each method's figures in :meth:`EvaluationResult.summary`.
PREFIX = {"model": "model_", "reference": "ref_", "reference_date_free": "refdf_"}
#: Which methods read the inventory's event date at test time (the date oracle): ``unet_prepost`` composites
#: the dates before and after it; U-TAE and ConvGRU read the whole series without it.
USES_EVENT_DATE = {
    "unet_prepost": True,
    "utae": False,
    "convgru": False,
    "reference": True,
    "reference_date_free": False,
}
#: Patch score of the patch-level (S12LS-AD) detection: the mean of a patch's highest pixel scores (9 pixels,
#: a 3 × 3 block's worth: one noisy pixel does not flag a patch, a 30 m scar does).
PATCH_TOP_K = 9
#: Fixed false-alarm rate (share of landslide-free patches flagged) at which the patch-level recall is given.
FALSE_ALARM_RATE = 0.1
#: A region is scored on its own only with at least this many test patches (and, patch level, at least one
#: patch with and one without landslides); fewer are shown as too few.
MIN_REGION_PATCHES = 3


# --------------------------------------------------------------------------------------------------
# Shares and JSON-able values (the figures of a chapter's record)
# --------------------------------------------------------------------------------------------------
def plain(value):
    """JSON-able plain Python value (numpy scalars → Python, NaN → None), as a chapter's record and
    ``s12ls evaluate --out`` write them. A table (DataFrame) becomes its rows, index included."""
    if isinstance(value, pd.DataFrame):
        return plain(value.reset_index().to_dict(orient="records"))
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Share):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


class Share(float):
    """A fraction (0…1) that reads as a share: recorded as the fraction, glued as a percentage ("2.9 %").

    ``record(chapter, positive_fraction=Share(0.0287))`` writes 0.0287 to the JSON record (the tests
    compare fractions) and glues "2.9 %" for the text: one decimal below 10 %, whole percents above."""

    def percent_text(self) -> str:
        pct = 100 * float(self)
        if not math.isfinite(pct):
            return "n/a"
        return f"{pct:.1f} %" if abs(pct) < 10 else f"{pct:.0f} %"


share = Share  # a fraction as a Share: share(0.031).percent_text() == "3.1 %"


def run_for(
    task_path: str | Path,
    sensor: str,
    book_run: str | Path | None,
    runs_dir: str | Path,
    run_name: str,
    epochs: int = 30,
    progress: bool = False,
) -> tuple[Path, str]:
    """The run chapter 06 evaluates on a task when it is given none: ``book_run``, the book's own run of
    chapter 05 for this task and sensor (:func:`s12ls_utils.book.chapter05_run`; None when there is none),
    else the chapter 05 U-Net trained here on ``sensor`` (base widths 16–128, 64-pixel crops, ``epochs``) as
    ``runs_dir/run_name``. Returns the run folder and where it came from (``"chapter 05"`` or ``"trained in
    this chapter"``)."""
    if book_run is not None:
        return Path(book_run), "chapter 05"
    from . import training

    trained = training.train(
        task_dir=str(task_path),
        sensors=[sensor],
        model="unet_prepost",
        model_kwargs={"widths": [16, 32, 64, 128]},
        epochs=epochs,
        crop=64,
        run_name=run_name,
        runs_dir=str(runs_dir),
        overwrite=True,
        progress=progress,
    )
    return Path(trained.run_dir), "trained in this chapter"


def run_sensors_of(run_dir: str | Path) -> list[str]:
    """The sensors a run was trained on (its ``run.json``, else its checkpoint's configuration)."""
    cfg = run_config(run_dir)
    sensors = cfg.get("sensors") or ["s2"]
    return [sensors] if isinstance(sensors, str) else list(sensors)


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


def change_score_date_free(ds, sensor: str) -> np.ndarray:
    """Date-free change score ``(y, x)`` float32: the largest change between consecutive clear dates.

    It needs no event date, so it can be compared with models that read the whole series (U-TAE, ConvGRU).
    ``s2``: the largest NDVI drop from one clear (scene-classification usable) date to the next clear one;
    ``s1asc``/``s1dsc``: the largest mean absolute change of VV and VH (dB) between consecutive valid dates.
    NaN where a pixel has fewer than two valid dates."""
    if sensor == "s2":
        series = [signatures.s2_indices(ds)["NDVI"].transpose("time", "y", "x").values]
    else:
        feats = signatures.s1_indices(ds)
        series = [feats[b].transpose("time", "y", "x").values for b in ("VV_dB", "VH_dB")]
    series = [np.asarray(v, dtype="float32") for v in series]
    best = np.full(series[0].shape[1:], -np.inf, dtype="float32")
    last = [np.full(best.shape, np.nan, dtype="float32") for _ in series]
    for t in range(series[0].shape[0]):
        now = [v[t] for v in series]
        ok = np.logical_and.reduce([np.isfinite(v) for v in now])
        if sensor == "s2":
            step = last[0] - now[0]  # a drop is positive
        else:
            step = 0.5 * (np.abs(now[0] - last[0]) + np.abs(now[1] - last[1]))
        valid = ok & np.isfinite(step)
        best = np.where(valid & (step > best), step, best)
        for i in range(len(series)):
            last[i] = np.where(ok, now[i], last[i])
    return np.where(np.isfinite(best), best, np.nan).astype("float32")


def iter_reference_scores(
    task: Task, split: str, sensor: str = "s2", date_free: bool = False, entries: list[dict] | None = None
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(id, score (H, W), mask (H, W))`` of the change-detection reference, patch by patch
    (``date_free``: :func:`change_score_date_free`). ``entries``: the split entries to score (default: the
    ``sensor`` split of the task; :func:`evaluate_run` passes the run's own entries, so that model and
    reference are scored on the same patches)."""
    schema.check_sensor(sensor)
    if sensor not in task.splits:
        raise ValueError(f"task {task.name} has no {sensor} split; it has {sorted(task.splits)}")
    data_dir = task.require_data_dir("score the change reference")
    score = change_score_date_free if date_free else change_score
    for e in task.splits[sensor][split] if entries is None else entries:
        ds = open_patch(data_dir / e[sensor], load=True)
        try:
            yield str(e["id"]), score(ds, sensor), (patch_mask(ds) > 0).astype("uint8")
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
    patch_scores: pd.DataFrame | None = None  #: per test patch and method: patch score, holds landslides
    n_boot: int = 1000
    seed: int = 0
    #: validation/test files of the task left out because they are missing (``allow_missing``), per sensor
    missing_files: dict[str, int] = field(default_factory=dict)
    #: bootstrap tables already computed (deterministic for the seed: :meth:`summary` and a chapter ask alike)
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def compare(self, other: str = "reference", metrics=("f1", "iou", "ap")) -> pd.DataFrame:
        """The model against ``other`` on the same test patches: a paired bootstrap of the difference
        model − ``other`` (:func:`~s12ls_utils.metrics.paired_bootstrap`, ``n_boot`` replicates, each method
        at its validation threshold; AP threshold-free). ``verdict`` ranks the two only when the interval
        of the difference excludes 0."""
        key = ("compare", other, tuple(metrics))
        if key not in self._memo:
            self._memo[key] = self._compare(other, tuple(metrics))
        return self._memo[key].copy()

    def _compare(self, other: str, metrics: tuple[str, ...]) -> pd.DataFrame:
        res = paired_bootstrap(
            self.test["model"],
            self.test[other],
            self.thresholds["model"],
            self.thresholds[other],
            metrics,
            n_boot=self.n_boot,
            seed=self.seed,
        )
        rows = []
        for m, r in res.items():
            if not np.isfinite(r["low"]):
                verdict = "no common patches"
            elif r["low"] > 0:
                verdict = "model better"
            elif r["high"] < 0:
                verdict = f"{other} better"
            else:
                verdict = "no difference shown"
            rows.append(
                {
                    "metric": m,
                    "model": r["a"],
                    other: r["b"],
                    "difference": r["diff"],
                    "low": r["low"],
                    "high": r["high"],
                    "patches": r["n_patches"],
                    "prevalence": self.test["model"].prevalence,
                    "verdict": verdict,
                }
            )
        return pd.DataFrame(rows)

    def annotated_scores(self) -> pd.DataFrame:
        """Pixel-level test scores per method over the patches that hold landslide pixels only (the pixel
        view of S12LS-AD, whose other patches have none), pooled counts at the validation thresholds, with
        the landslide-pixel share of those patches (``prevalence``)."""
        pt = self.patches[self.patches["n_positive"] > 0]
        g = pt.groupby("method", observed=True)[["tp", "fp", "fn", "tn", "n_positive"]].sum()
        s = scores_from_counts(g["tp"], g["fp"], g["fn"], g["tn"])
        out = pd.DataFrame({k: s[k] for k in ("precision", "recall", "f1", "iou")}, index=g.index)
        out["patches"] = pt.groupby("method", observed=True).size()
        out["prevalence"] = _pixel_share(g)
        return out.reindex(list(METHODS))

    def threshold_stability(self) -> pd.DataFrame:
        """Per method, the validation threshold and how far it moves when the validation patches are
        resampled (:func:`~s12ls_utils.metrics.threshold_bootstrap`): a threshold chosen on few patches is
        itself uncertain."""
        if "thresholds" not in self._memo:
            rows = []
            for m in METHODS:
                r = threshold_bootstrap(self.val[m], "f1", n_boot=self.n_boot, seed=self.seed)
                rows.append({"method": m, **r})
            self._memo["thresholds"] = pd.DataFrame(rows)
        return self._memo["thresholds"].copy()

    def patch_level(self, false_alarm_rate: float = FALSE_ALARM_RATE) -> pd.DataFrame:
        """Patch-level detection (S12LS-AD: which patches hold a landslide), per method, over all test
        patches and per region: ``patches``, ``with_landslides``, ``auroc``, ``ap`` and ``recall_at_far``, the
        share of patches with landslides found when at most ``false_alarm_rate`` of the landslide-free
        patches are flagged. Next to the scores, each group's ``prevalence`` (landslide-pixel share of its
        patches) and ``patch_prevalence`` (share of its patches with landslides: the AP of a guess). A group
        without both kinds of patch, or with fewer than :data:`MIN_REGION_PATCHES`, is ``too_few`` and gets no
        scores."""
        from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

        rows = []
        df = (
            self.patch_scores
            if self.patch_scores is not None
            else pd.DataFrame(columns=["id", "region", "method", "score", "positive"])
        )
        counts = self.patches.drop_duplicates("id").set_index("id")[["tp", "fp", "fn", "tn", "n_positive"]]
        for m in METHODS:
            own = df[df["method"] == m]
            groups = [("all", own)] + [(r, g) for r, g in own.groupby("region", sort=True)]
            for region, g in groups:
                y = g["positive"].to_numpy(dtype=bool)
                sc = g["score"].to_numpy(dtype="float64")
                ok = np.isfinite(sc)
                # a patch without any score ranks below every scored one
                sc = np.where(ok, sc, sc[ok].min() - 1 if ok.any() else 0.0)
                row = {
                    "method": m,
                    "region": region,
                    "patches": len(g),
                    "with_landslides": int(y.sum()),
                    "prevalence": _pixel_share(counts.reindex(g["id"]).sum()),
                    "patch_prevalence": float(y.mean()) if len(y) else np.nan,
                }
                few = len(g) < MIN_REGION_PATCHES or y.all() or not y.any()
                row["too_few"] = bool(few)
                if few:
                    row |= {"auroc": np.nan, "ap": np.nan, "recall_at_far": np.nan}
                else:
                    fpr, tpr, _ = roc_curve(y, sc)
                    row["auroc"] = float(roc_auc_score(y, sc))
                    row["ap"] = float(average_precision_score(y, sc))
                    row["recall_at_far"] = float(tpr[fpr <= false_alarm_rate + 1e-12].max())
                rows.append(row)
        return pd.DataFrame(rows)

    def scores(self, method: str) -> dict[str, float]:
        """Test scores of ``model`` or ``reference`` at its validation threshold, with AUPRC and ROC AUC."""
        pm = self.test[method]
        out = pm.compute(self.thresholds[method])
        out["auprc"] = pm.average_precision()
        out["roc_auc"] = pm.roc_auc()
        return out

    def table(self) -> pd.DataFrame:
        """Test scores of every method side by side (rows: metrics), with the test split's landslide-pixel
        share (``prevalence``: the precision of a guess, the level that F1 and AUPRC rise with)."""
        keys = (*SCORE_KEYS, "auprc", "roc_auc", "threshold", "prevalence")
        return pd.DataFrame({m: {k: self.scores(m)[k] for k in keys} for m in METHODS})

    def regions(self) -> pd.DataFrame:
        """Pooled test scores per region and method (counts summed over the region's patches), with each
        region's landslide-pixel share (``prevalence``)."""
        g = self.patches.groupby(["region", "method"], observed=True)[
            ["tp", "fp", "fn", "tn", "n_positive"]
        ].sum()
        g = g.reset_index()
        s = scores_from_counts(g["tp"], g["fp"], g["fn"], g["tn"])
        for k in ("precision", "recall", "f1", "iou"):
            g[k] = s[k]
        g["prevalence"] = _pixel_share(g)
        g["patches"] = self.patches.groupby(["region", "method"], observed=True).size().to_numpy()
        # a region with fewer patches than MIN_REGION_PATCHES, or without landslide pixels, is shown as too
        # few: its pooled F1 would be an anecdote, or 0 by convention
        g["too_few"] = (g["patches"] < MIN_REGION_PATCHES) | (g["n_positive"] == 0)
        for k in ("precision", "recall", "f1", "iou"):
            g[k] = g[k].where(~g["too_few"])
        return g

    def region_table(self) -> pd.DataFrame:
        """:meth:`regions` as chapter 06 shows it (:func:`by_region_table`): per region its test patches,
        landslide-pixel share and ``too few`` flag, then F1 and IoU per method."""
        return by_region_table(self.regions(), {"patches": "patches"}, {"f1": "F1", "iou": "IoU"})

    def patch_table(self) -> pd.DataFrame:
        """Every test patch (rows: region, id, its landslide-pixel share), with F1, IoU, false positives and
        false negatives per method, the model's worst F1 first."""
        table = self.patches.pivot(
            index=["region", "id", "prevalence"], columns="method", values=["f1", "iou", "fp", "fn"]
        )
        return table.sort_values(("f1", "model"))

    def interval_table(self) -> pd.DataFrame:
        """Per method (columns, by their reader's name), F1 and IoU with their 95 % resampling interval and
        AUPRC as text, and the test split's landslide-pixel share."""
        cell = "{:.3f} [{:.3f}, {:.3f}]".format
        shown = share(self.test["model"].prevalence).percent_text()
        return pd.DataFrame(
            {
                METHOD_NAMES[m]: {
                    "F1 [95 % resampling interval]": cell(self.scores(m)["f1"], *self.ci[m]["f1"]),
                    "IoU [95 % resampling interval]": cell(self.scores(m)["iou"], *self.ci[m]["iou"]),
                    "AUPRC": f"{self.scores(m)['auprc']:.3f}",
                    "test landslide-pixel share": shown,
                }
                for m in METHODS
            }
        )

    def comparisons(self) -> pd.DataFrame:
        """:meth:`compare` of the model with each reference, stacked, the reference named in ``against``."""
        cols = ["against", "metric", "model", "difference", "low", "high", "prevalence", "verdict"]
        return pd.concat(
            [self.compare(m).assign(against=METHOD_NAMES[m])[cols] for m in METHODS[1:]], ignore_index=True
        )

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
            "val_prevalence": self.val["model"].prevalence,
            "cover_fraction": self.objects["model"].cover_fraction,
            "threshold": self.thresholds["model"],
            "ref_threshold": self.thresholds["reference"],
            "refdf_threshold": self.thresholds["reference_date_free"],
            "val_f1": self.val_f1["model"],
            "ref_val_f1": self.val_f1["reference"],
            "refdf_val_f1": self.val_f1["reference_date_free"],
        }
        labels = size_bin_labels(self.objects["model"].size_bins)
        for m, p in PREFIX.items():
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
        for other, tag in (("reference", "ref"), ("reference_date_free", "refdf")):
            for r in self.compare(other).to_dict("records"):
                key = f"diff_{tag}_{r['metric']}"
                out[key], out[key + "_low"], out[key + "_high"] = r["difference"], r["low"], r["high"]
                out[key + "_verdict"] = r["verdict"]
        for r in self.threshold_stability().to_dict("records"):
            p = PREFIX[r["method"]]
            out[p + "threshold_low"], out[p + "threshold_high"] = r["low"], r["high"]
        pl = self.patch_level()
        for r in pl[pl["region"] == "all"].to_dict("records"):
            p = PREFIX[r["method"]]
            for k in ("auroc", "ap", "recall_at_far"):
                out[f"{p}patch_{k}"] = r[k]
        whole = pl[(pl["region"] == "all") & (pl["method"] == "model")]
        out["patch_with_landslides"] = int(whole["with_landslides"].sum())
        out["patch_prevalence"] = float(whole["patch_prevalence"].iloc[0])  # the "all" row is always there
        out["patch_false_alarm_rate"] = FALSE_ALARM_RATE
        regions = self.regions().drop_duplicates("region")
        out["min_region_patches"] = MIN_REGION_PATCHES
        out["n_regions_test"] = len(regions)
        out["n_regions_too_few"] = int(regions["too_few"].sum())
        return out


def patch_score(score: np.ndarray, k: int = PATCH_TOP_K) -> float:
    """A patch's score for patch-level detection: the mean of its ``k`` highest finite pixel scores (NaN
    when it has none)."""
    v = np.asarray(score, dtype="float64").ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    k = min(k, v.size)
    return float(np.partition(v, v.size - k)[v.size - k :].mean())


def _pixel_share(counts) -> float | pd.Series:
    """Landslide-pixel share (prevalence) of pooled confusion counts: ``n_positive`` over all pixels
    (``tp + fp + fn + tn``); a row or Series of them, NaN where there is no pixel."""
    total = counts["tp"] + counts["fp"] + counts["fn"] + counts["tn"]
    if np.ndim(total) == 0:
        return float(counts["n_positive"] / total) if total else float("nan")
    return (counts["n_positive"] / total.where(total > 0)).astype("float64")


def _pass(
    batches,
    pm: PixelMetrics,
    threshold: float | None,
    om: ObjectMetrics | None,
    keep,
    method: str,
    patch_rows: list | None = None,
):
    """Feed ``(ids, score, mask)`` batches into the accumulators (objects and gallery once thresholded;
    ``patch_rows`` collects each patch's :func:`patch_score` and whether it holds landslide pixels)."""
    n = 0
    for ids, score, y in batches:
        score, y = np.asarray(score), np.asarray(y)
        if score.ndim == 2:
            ids, score, y = [ids], score[None], y[None]
        pm.update(y, score, keys=ids)
        n += len(ids)
        if patch_rows is not None:
            for i, pid in enumerate(ids):
                patch_rows.append(
                    {
                        "id": str(pid),
                        "method": method,
                        "score": patch_score(score[i]),
                        "positive": bool((y[i] > 0).any()),
                    }
                )
        if threshold is None:
            continue
        pred = pm.predict(score, threshold)
        om.update(y, pred)
        if keep is not None:
            for i, pid in enumerate(ids):
                err = int(np.count_nonzero(pred[i] != (y[i] > 0)))
                keep(err, {"id": pid, "method": method, "y": y[i], "score": score[i], "pred": pred[i]})
    return n


@dataclass
class Validation:
    """Step 1 of the evaluation (:func:`choose_thresholds`): each method's validation histograms, and the
    threshold of best landslide-class F1 that :func:`score_test` applies once to test."""

    run_dir: Path
    task_dir: Path
    task: Task
    sensor: str
    run_sensors: list[str]
    val: dict[str, PixelMetrics]
    thresholds: dict[str, float]
    val_f1: dict[str, float]
    n_val: int
    bins: int
    device: str
    batch_size: int
    which: str
    seconds: float = 0.0

    def table(self) -> pd.DataFrame:
        """One row per method: the validation threshold, the validation F1 it reaches, the number of
        validation patches and their landslide-pixel share (``prevalence``)."""
        return pd.DataFrame(
            {
                "threshold": self.thresholds,
                "validation F1": self.val_f1,
                "patches": dict.fromkeys(METHODS, self.n_val),
                "prevalence": {m: self.val[m].prevalence for m in METHODS},
            }
        ).rename_axis("method")

    def batches(self, method: str, split: str):
        """``(ids, score, mask)`` batches of ``method`` on ``split``: the run's predictions, or the change
        reference on the run's own entries when they carry the reference sensor (the same patches)."""
        if method == "model":
            return iter_model_predictions(
                self.run_dir,
                self.task,
                split,
                device=self.device,
                batch_size=self.batch_size,
                which=self.which,
            )
        from .datasets import split_entries

        own = split_entries(self.task, split, self.run_sensors)
        entries = own if own and all(e.get(self.sensor) for e in own) else None
        date_free = method == "reference_date_free"
        return iter_reference_scores(self.task, split, self.sensor, date_free=date_free, entries=entries)

    def score_range(self, method: str) -> tuple[float, float]:
        return (0.0, 1.0) if method == "model" else REFERENCE_RANGES[self.sensor]


def choose_thresholds(
    run_dir: str | Path,
    task_dir: str | Path | None = None,
    *,
    sensor: str = "s2",
    bins: int = 1000,
    device: str = "auto",
    batch_size: int = 8,
    which: str = "best",
    data_dir: str | Path | None = None,
    allow_missing: bool = False,
) -> Validation:
    """Step 1 of :func:`evaluate_run`: stream the **validation** patches through the run (``runs/<name>``)
    and the change-detection references on ``sensor``, histogram each method's scores per true class
    (``bins`` fixed bins, :class:`~s12ls_utils.metrics.PixelMetrics`) and choose each method's threshold of
    best landslide-class F1. Test is not read.

    ``task_dir`` defaults to the run's own task, ``data_dir`` to the data folder the run was trained with
    (else the task's own, :func:`~s12ls_utils.tasks.load_task`). Before any work the validation and test
    files must exist there (:func:`~s12ls_utils.tasks.check_files`); ``allow_missing`` scores those that
    exist and records the count in the result (``missing_files``). ``which``: the checkpoint, ``"best"``
    (best validation epoch) or ``"last"`` (the last epoch, as the published benchmark tests)."""
    schema.check_choice("which", which, ("best", "last"))
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    if not (run_dir / "best.pt").exists():
        raise FileNotFoundError(f"no checkpoint {run_dir / 'best.pt'}; train a model first (s12ls train)")
    cfg = run_config(run_dir)  # run.json (written at the end of training) or the checkpoint
    if task_dir is None:  # the run's own task, and its data folder
        task_dir, data_dir = cfg["task_dir"], data_dir or cfg.get("data_dir")
    schema.check_sensor(sensor)
    run_sensors = run_sensors_of(run_dir)
    task = load_task(task_dir, data_dir=data_dir)
    task = check_files(task, run_sensors, ("val", "test"), allow_missing=allow_missing)
    if sensor not in run_sensors:  # the reference reads the sensor's own split
        task = check_files(task, [sensor], ("val", "test"), allow_missing=allow_missing)
    step = Validation(
        run_dir, Path(task_dir), task, sensor, run_sensors, {}, {}, {}, 0, bins, device, batch_size, which
    )
    for m in METHODS:
        step.val[m] = PixelMetrics(bins, step.score_range(m), keep_patches=True)
        step.n_val = _pass(step.batches(m, "val"), step.val[m], None, None, None, m)
        step.thresholds[m], step.val_f1[m] = step.val[m].best_threshold("f1")
    step.seconds = time.perf_counter() - t0
    return step


def score_test(
    validation: Validation,
    *,
    cover_fraction: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    gallery: int = 3,
) -> EvaluationResult:
    """Step 2 of :func:`evaluate_run`: one pass over the **test** patches at the thresholds that
    :func:`choose_thresholds` chose on validation (never tuned here): pixel scores, AUPRC and ROC AUC,
    per-patch counts with ``n_boot`` bootstrap intervals (``seed``), object-level detection (a landslide is
    found when predictions cover ``cover_fraction`` of it) and the ``gallery`` test patches with the most
    model errors."""
    t0 = time.perf_counter()
    v = validation
    test, objects = {}, {}
    patch_rows: list[dict] = []
    heap: list = []
    counter = [0]

    def keep(err, item):
        counter[0] += 1
        entry = (err, counter[0], item)
        if len(heap) < gallery:
            heapq.heappush(heap, entry)
        elif err > heap[0][0]:
            heapq.heapreplace(heap, entry)

    n_test = 0
    for m in METHODS:
        test[m] = PixelMetrics(v.bins, v.score_range(m), keep_patches=True)
        objects[m] = ObjectMetrics(cover_fraction)
        k = keep if (m == "model" and gallery > 0) else None
        n_test = _pass(v.batches(m, "test"), test[m], v.thresholds[m], objects[m], k, m, patch_rows)

    frames, ci = [], {}
    for m in METHODS:
        pc = test[m].patch_counts(v.thresholds[m])
        ci[m] = bootstrap_ci(pc, ("f1", "iou"), n_boot=n_boot, seed=seed)
        df = pd.DataFrame({k: pc[k] for k in ("tp", "fp", "fn", "tn")})
        df.insert(0, "id", [str(k) for k in pc["key"]])
        df.insert(1, "region", df["id"].map(region_of))
        df.insert(2, "method", m)
        df["n_positive"] = df["tp"] + df["fn"]
        df["prevalence"] = _pixel_share(df)
        s = scores_from_counts(df["tp"], df["fp"], df["fn"], df["tn"])
        for key in ("precision", "recall", "f1", "iou"):
            df[key] = s[key]
        frames.append(df)
    items = [it for _, _, it in sorted(heap, key=lambda e: (-e[0], e[1]))]
    from .datasets import split_entries

    # the run's own test entries (the aligned split for a fusion run): one file per sensor it was trained on
    paths = {
        str(e["id"]): {s: v.task.data_dir / e[s] for s in v.run_sensors if e.get(s)}
        for e in split_entries(v.task, "test", v.run_sensors)
    }
    for it in items:
        it["paths"] = paths.get(it["id"], {})
        it["path"] = it["paths"].get(v.sensor) or next(iter(it["paths"].values()), None)
        it["threshold"] = v.thresholds["model"]
    return EvaluationResult(
        run_dir=v.run_dir,
        task_dir=v.task_dir,
        sensor=v.sensor,
        thresholds=v.thresholds,
        val_f1=v.val_f1,
        val=v.val,
        test=test,
        objects=objects,
        ci=ci,
        patches=pd.concat(frames, ignore_index=True),
        gallery=items,
        n_val=v.n_val,
        n_test=n_test,
        seconds=v.seconds + time.perf_counter() - t0,
        patch_scores=_patch_frame(patch_rows),
        n_boot=n_boot,
        seed=seed,
        missing_files={k: n for k, n in v.task.file_check.missing.items() if n},
    )


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
    which: str = "best",
    data_dir: str | Path | None = None,
    allow_missing: bool = False,
) -> EvaluationResult:
    """Evaluate a run (``runs/<name>``) and the change-detection references on ``sensor``, in the two steps
    that chapter 06 shows one by one: :func:`choose_thresholds` (max F1 of the landslide class on
    validation) and :func:`score_test` (those thresholds applied once to test). The arguments are theirs."""
    step = choose_thresholds(
        run_dir,
        task_dir,
        sensor=sensor,
        bins=bins,
        device=device,
        batch_size=batch_size,
        which=which,
        data_dir=data_dir,
        allow_missing=allow_missing,
    )
    return score_test(step, cover_fraction=cover_fraction, n_boot=n_boot, seed=seed, gallery=gallery)


#: How :func:`benchmark_table` names a task's split method (its ``config.json``).
SPLIT_METHODS = {
    "reference": "the published rule (random)",
    "blocked": "blocked (leak-free)",
    "spatial": "whole spatial groups",
}
#: The blocks of :func:`benchmark_table` (level ``data`` of its index), in their order.
BENCHMARK_BLOCKS = (
    "real (published): S12LS-LD, the published split",
    "real (unreviewed repositories): regions or events held out",
)


def benchmark_table(summary: Mapping, model: str, data: str | None = None) -> pd.DataFrame:
    """The published S12LS-LD landslide-class results next to this evaluation's, in blocks that say what
    each row was computed on: the index is (``data``, ``model``), the block label first.

    - :data:`BENCHMARK_BLOCKS` [0]: the paper's models (:func:`s12ls_utils.reference.published_benchmark`),
      real harmonized S12LS-LD, its published split, 3 seeds;
    - :data:`BENCHMARK_BLOCKS` [1]: third parties that held out whole regions or events
      (:data:`s12ls_utils.reference.THIRD_PARTY_HOLDOUT`), **unreviewed repositories**: F1 only, as the range
      they report (``f1_low`` to ``f1_high``), their protocol in ``split``;
    - ``"<data> (this book)"``: this evaluation's model and references, 1 seed; ``data`` defaults to
      :func:`data_label` of the task in ``summary`` (``"synthetic sample, raw release"`` on the sample).

    Columns: ``f1``, ``f1_low``, ``f1_high``, ``ap``, ``iou``, ``precision``, ``recall``, ``prevalence`` (the
    scored test split's landslide-pixel share; for the paper's rows the published test split's, from the
    vendored pixel counts), ``split`` and ``source``. Scores and shares in percent; NaN where a row
    does not report a figure."""
    from .reference import THIRD_PARTY_HOLDOUT, published_benchmark

    if data is None:
        data = data_label(summary["task_dir"])
    pub = published_benchmark().assign(
        split="published (random; its test tiles touch training tiles)",
        prevalence=published_facts()["published_test_positive_pct"],
        source="Hoehn et al. 2025 (peer-reviewed), means over 3 seeds",
    )
    held = pd.DataFrame(list(THIRD_PARTY_HOLDOUT)).rename(columns={"protocol": "split"}).set_index("model")
    held[["f1_low", "f1_high"]] *= 100
    names = {**METHOD_NAMES, "model": model}
    task = load_task(summary["task_dir"])
    cfg = task.config or {}
    method = "regions held out" if cfg.get("test_regions") else SPLIT_METHODS.get(cfg.get("method"))
    ours = pd.DataFrame(
        [
            {
                "model": names[m],
                "split": f"{task.name}: {method}" if method else task.name,
                **{k: 100 * summary[p + k] for k in ("f1", "iou", "precision", "recall")},
                "ap": 100 * summary[p + "auprc"],
                "prevalence": 100 * summary["prevalence"],
                "source": "this book, 1 seed",
            }
            for m, p in PREFIX.items()
        ]
    ).set_index("model")
    blocks = dict(zip((*BENCHMARK_BLOCKS, f"{data} (this book)"), (pub, held, ours), strict=True))
    # the scores first, the prose last: a page shows the numbers before a wide table scrolls
    columns = ["f1", "f1_low", "f1_high", "ap", "iou", "precision", "recall", "prevalence", "split", "source"]
    return pd.concat(blocks, names=["data", "model"]).reindex(columns=columns)


def data_label(task_dir: str | Path, data_dir: str | Path | None = None) -> str:
    """What a task's patches are, for a protocol table: ``"synthetic sample, raw release"`` (a data folder
    with the generator's manifest) or ``"real patches, harmonized release"``; the release from the first
    patch file (:func:`s12ls_utils.io.file_release`). ``data_dir``: the task's data folder (default: the one
    it records or sits in, :func:`~s12ls_utils.tasks.load_task`)."""
    from .io import file_release

    task = load_task(task_dir, data_dir=data_dir)
    root = task.require_data_dir()
    kind = "synthetic sample" if (root / "synthetic_manifest.json").exists() else "real patches"
    first = next(
        (
            e[s]
            for entries in task.splits.values()
            for es in entries.values()
            for e in es
            for s in schema.SENSORS
            if e.get(s)
        ),
        None,
    )
    try:
        release = file_release(root / first) if first else "unknown"
    except Exception:  # an unreadable file: say so rather than fail the table
        release = "unknown"
    return f"{kind}, {release} release"


def protocol_table(run_dir: str | Path, which: str = "best", data: str | None = None) -> pd.DataFrame:
    """Every protocol difference between the published benchmark (:data:`~s12ls_utils.reference.PUBLISHED_PROTOCOL`)
    and a run of this book, read from the run's ``run.json``: one row per aspect, ``published`` and ``this run``
    (``data``: what the patches are, default :func:`data_label` of the run's task). The row ``data revision``
    (after ``data``) names the hub commit of the task's data folder from its download manifest
    (:func:`s12ls_utils.download.data_revision`: ``"synthetic sample"`` for the generator's folder, ``"unknown"``
    without a manifest)."""
    from .download import data_revision
    from .reference import PUBLISHED_PROTOCOL

    cfg = json.loads((Path(run_dir) / "run.json").read_text())["config"]
    if data is None:
        data = data_label(cfg["task_dir"])
    revision = data_revision(load_task(cfg["task_dir"]).data_dir)
    pw = cfg.get("pos_weight", "auto")
    pw = "√(negatives / positives) of the train split" if pw == "auto" else str(pw)
    crop = cfg.get("crop")
    ours = {
        "task and split": f"{Path(cfg['task_dir']).name}, its split applied to this data folder",
        "data": data,
        "input": f"{' + '.join(cfg.get('sensors') or ['s2'])} (with DEM), model {cfg.get('model')}",
        "epochs": f"{cfg.get('epochs')} at most (early stopping after {cfg.get('patience')} epochs without gain)"
        if cfg.get("patience")
        else str(cfg.get("epochs")),
        "loss": f"{cfg.get('loss')}, pos_weight {pw}",
        "optimiser": f"AdamW, lr {cfg.get('lr')}, weight decay {cfg.get('weight_decay')}, warm-up and cosine decay",
        "batch": f"{cfg.get('batch_size')}, "
        + (f"random {crop} × {crop} crops" if crop else "whole 128 × 128 patches"),
        "augmentation": "flips and rot90" if cfg.get("augment", True) else "none",
        "seeds": f"1 ({cfg.get('seed')})",
        "checkpoint tested": "the best validation epoch" if which == "best" else "the last epoch",
    }
    rows = [{"aspect": k, "published": v, "this run": ours[k]} for k, v in PUBLISHED_PROTOCOL.items()]
    rows.insert(
        list(PUBLISHED_PROTOCOL).index("data") + 1,
        {
            "aspect": "data revision",
            "published": "not stated (the hub has moved since)",
            "this run": revision,
        },
    )
    return pd.DataFrame(rows).set_index("aspect")


@dataclass
class ADScores:
    """S12LS-AD scored by :func:`score_ad`: the run, the evaluation, and its patch- and pixel-level tables."""

    run_dir: Path
    run_source: str
    result: EvaluationResult
    patch_level: pd.DataFrame
    pixels: pd.DataFrame
    n_undated: int

    def patch_level_table(self) -> pd.DataFrame:
        """:attr:`patch_level` as chapter 06 shows it (:func:`by_region_table`): per region its test patches,
        those with landslides, landslide-pixel share and ``too few`` flag, then AUROC, AP and the recall at
        the false-alarm rate :data:`FALSE_ALARM_RATE` per method."""
        counts = {"patches": "patches", "with_landslides": "with landslides"}
        far = f"recall at {share(FALSE_ALARM_RATE).percent_text()} false alarms"
        return by_region_table(self.patch_level, counts, {"auroc": "AUROC", "ap": "AP", "recall_at_far": far})

    def figures(self) -> dict:
        """Flat figures for a chapter's record (``ad_*``), with the test split's landslide-pixel share
        (``ad_prevalence``), its share of patches with landslides (``ad_patch_prevalence``) and the pixel
        share of its patches with landslides (``ad_pixel_prevalence``, what the pixel scores are taken on)."""
        whole = self.patch_level[self.patch_level["region"] == "all"].set_index("method")
        out = {
            "ad_run_dir": str(self.run_dir),
            "ad_run_source": self.run_source,
            "ad_n_test": self.result.n_test,
            "ad_n_test_undated": self.n_undated,
            "ad_n_test_with_landslides": int(whole.loc["model", "with_landslides"]),
            "ad_prevalence": share(whole.loc["model", "prevalence"]),
            "ad_patch_prevalence": share(whole.loc["model", "patch_prevalence"]),
            "ad_pixel_prevalence": share(self.pixels.loc["model", "prevalence"]),
            "patch_top_k": PATCH_TOP_K,
            "false_alarm_rate": share(FALSE_ALARM_RATE),
            "ad_patch_level": self.patch_level.to_dict("records"),
        }
        for m, p in PREFIX.items():
            for k in ("auroc", "ap", "recall_at_far"):
                out[f"ad_{p}{k}"] = float(whole.loc[m, k])
            out[f"ad_{p}pixel_f1"] = float(self.pixels.loc[m, "f1"])
            out[f"ad_{p}pixel_iou"] = float(self.pixels.loc[m, "iou"])
        return out


#: Each method in a column header under its score's name (:func:`by_region_table`).
_SHORT_NAMES = {"model": "model", "reference": "reference", "reference_date_free": "date-free reference"}


def by_region_table(
    frame: pd.DataFrame, counts: Mapping[str, str], scores: Mapping[str, str]
) -> pd.DataFrame:
    """A per-method, per-region table (:meth:`EvaluationResult.regions`, :meth:`~EvaluationResult.patch_level`)
    as chapter 06 shows it: one row per region and two header rows, so that it fits the page. Under ``test
    split`` the ``counts`` columns (the same for every method), the landslide-pixel share (``prevalence``) and
    the ``too few`` flag; then per ``scores`` column one column per method. ``counts`` and ``scores`` map
    ``frame``'s column names to their headers."""
    split = frame[frame["method"] == METHODS[0]].set_index("region")[[*counts, "prevalence", "too_few"]]
    split.columns = pd.MultiIndex.from_product([["test split"], [*counts.values(), "prevalence", "too few"]])
    by_method = frame.pivot(index="region", columns="method", values=list(scores))
    by_method.columns = pd.MultiIndex.from_tuples(
        [(scores[k], _SHORT_NAMES[m]) for k, m in by_method.columns]
    )
    return split.join(by_method)


def score_ad(
    ad_path: str | Path,
    sensor: str,
    run_dir: str | Path | None,
    book_run: str | Path | None,
    runs_dir: str | Path,
    run_name: str,
    *,
    epochs: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
    device: str = "auto",
) -> ADScores:
    """Chapter 06's S12LS-AD section: the task folder (written when missing), the run (``run_dir``, else the
    book's chapter 05 run on it, ``book_run``, else a U-Net trained for ``epochs``: :func:`run_for`), its evaluation with the
    references, the patch-level table (:meth:`EvaluationResult.patch_level`), the pixel scores on annotated
    patches and the number of test patches without an event date (landslide-free patches carry none)."""
    from .catalog import build_catalog
    from .tasks import write_task

    ad_path = Path(ad_path)
    if not ad_path.is_dir():
        write_task(ad_path.parent.parent, ad_path.parent, ad_path.name)
    task = load_task(ad_path)
    source = "parameter"
    if run_dir is None:
        run_dir, source = run_for(ad_path, sensor, book_run, runs_dir, run_name, epochs=epochs)
    res = evaluate_run(run_dir, ad_path, sensor=sensor, n_boot=n_boot, seed=seed, device=device, gallery=0)
    cat = build_catalog(task.data_dir, sensors=[sensor]).set_index("key")
    ids = [str(e["id"]) for e in task.splits.get(sensor, {}).get("test", [])]
    undated = int(cat.reindex(ids)["event_dates"].astype(str).eq("").sum())
    return ADScores(Path(run_dir), source, res, res.patch_level(), res.annotated_scores(), undated)


def run_facts(run_dir: str | Path, task_dir: str | Path, source: str, checkpoint: str = "best") -> dict:
    """What chapter 06 evaluates, as its record names it: ``run_dir``, ``run_source`` (where the run came
    from, :func:`run_for`), ``run_model``, ``checkpoint``, ``task_dir``, ``data_dir`` and ``data_label``
    (what the patches are, :func:`data_label`)."""
    return {
        "run_dir": str(run_dir),
        "run_source": source,
        "run_model": run_config(run_dir)["model"],
        "checkpoint": checkpoint,
        "task_dir": str(task_dir),
        "data_dir": str(load_task(task_dir).data_dir),
        "data_label": data_label(task_dir),
    }


def date_oracle(task: Task, sensor: str, models: Sequence[str] = ("unet_prepost", "utae", "convgru")):
    """Which methods read the inventory's event date at test time (a table, one row per method, from
    :data:`USES_EVENT_DATE`), and how many of the task's ``sensor`` test patches carry a date of
    ``date_confidence`` below 1 (derived by the dataset's authors from an NDVI drop, not from the inventory)."""
    from .catalog import build_catalog

    rows = {f"model: {m}": USES_EVENT_DATE[m] for m in models}
    rows |= {METHOD_NAMES[m]: USES_EVENT_DATE[m] for m in METHODS[1:]}
    table = pd.DataFrame({"reads the event date at test time": rows})
    conf = build_catalog(task.data_dir, sensors=[sensor]).set_index("key")["date_confidence"]
    ids = [str(e["id"]) for e in task.splits.get(sensor, {}).get("test", [])]
    return table, int((conf.reindex(ids) < 1).sum())


def run_config(run_dir: str | Path) -> dict:
    """A run's training settings (its ``run.json``, else its checkpoint's)."""
    run_dir = Path(run_dir)
    info = run_dir / "run.json"
    if info.exists():
        return json.loads(info.read_text())["config"]
    from .training import load_checkpoint

    return load_checkpoint(run_dir / "best.pt")["config"]


def flat_figures(summary: Mapping) -> dict:
    """:meth:`EvaluationResult.summary` flattened for a chapter's record: nested values dropped, the
    detection rates per size bin as separate figures, shares marked as such (glued as percentages), the
    prevalences also in percent. Run, task and data folders are left out (the chapter records them once)."""
    flat = {
        k: v
        for k, v in summary.items()
        if not isinstance(v, dict) and k not in ("run_dir", "task_dir", "data_dir")
    }
    for p in PREFIX.values():
        for label, rate in summary[p + "detection_rate_by_size"].items():
            tag = label.replace("–", "_").replace("+", "plus").replace(" ", "")
            flat[f"{p}detection_rate_{tag}"] = share(rate)
        flat[p + "detection_rate"] = share(flat[p + "detection_rate"])
    flat["cover_fraction"] = share(summary["cover_fraction"])
    flat["positive_pct"] = 100 * summary["prevalence"]
    flat["val_positive_pct"] = 100 * summary["val_prevalence"]
    return flat


def all_negative_scores(n_positive, pixels_per_patch: int = schema.PATCH_SIZE**2) -> dict:
    """What a model that predicts no landslide scores on patches with these landslide-pixel counts:
    ``prevalence``, ``accuracy`` (1 − prevalence), ``f1`` of the landslide class (0) and ``macro_f1`` (the
    background class's F1, 2(1 − p)/(2 − p), averaged with 0)."""
    pos = float(np.sum(np.asarray(n_positive, dtype="float64")))
    total = float(len(n_positive) * pixels_per_patch)
    s = scores_from_counts(0, 0, pos, total - pos)
    return {
        "prevalence": pos / total,
        "accuracy": float(s["accuracy"]),
        "f1": float(s["f1"]),
        "macro_f1": float(s["macro_f1"]),
    }


def all_negative_facts(n_positive, label: str = "real") -> dict:
    """The figures chapter 06 quotes about a model that predicts no landslide (:func:`all_negative_scores`)
    on patches with these landslide-pixel counts: ``<label>_positive_pct`` (one decimal),
    ``<label>_all_negative_accuracy`` (a :class:`Share`) and ``<label>_all_negative_macro_f1``."""
    s = all_negative_scores(n_positive)
    return {
        f"{label}_positive_pct": round(100 * s["prevalence"], 1),
        f"{label}_all_negative_accuracy": share(s["accuracy"]),
        f"{label}_all_negative_macro_f1": s["macro_f1"],
    }


def published_facts() -> dict:
    """The figures of the real dataset that chapters 06 and 07 quote next to the book's own: the paper's
    models (``published_models``), its best model and F1 (a fraction), the published S12LS-LD test split's
    landslide-pixel share in percent (its vendored pixel counts), and the range of F1 that third parties
    report with regions or events held out (fractions; unreviewed repositories)."""
    from .reference import THIRD_PARTY_HOLDOUT, published_benchmark, split_frame

    pub = published_benchmark()
    test = split_frame("S12LS-LD", "s2").query("split == 'test'")["n_positive"]
    return {
        "published_models": ", ".join(pub.index),
        "published_best_f1_model": pub["f1"].idxmax(),
        "published_f1_best": pub["f1"].max() / 100,
        "published_test_positive_pct": 100 * all_negative_scores(test)["prevalence"],
        "holdout_f1_low": min(h["f1_low"] for h in THIRD_PARTY_HOLDOUT),
        "holdout_f1_high": max(h["f1_high"] for h in THIRD_PARTY_HOLDOUT),
    }


def _patch_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["id", "method", "score", "positive"])
    df.insert(1, "region", df["id"].map(region_of))
    return df


# --------------------------------------------------------------------------------------------------
# What the split does to the score (chapter 07, benchmarks/split_optimism.py)
# --------------------------------------------------------------------------------------------------
#: The scores of :class:`SplitOptimism` and :func:`fold_table`.
FOLD_METRICS = ("f1", "ap", "iou")


def _entries_of(task: Task, split: str, sensors: list[str]) -> list[dict]:
    """A split's entries as the task file lists them: the sensor's split, or the aligned one for several."""
    if len(sensors) > 1:
        if task.aligned is None:
            raise ValueError(f"task {task.name} has no aligned split; a run on {sensors} needs one")
        return list(task.aligned.get(split, []))
    if sensors[0] not in task.splits:
        raise ValueError(f"task {task.name} has no {sensors[0]} split; it has {sorted(task.splits)}")
    return list(task.splits[sensors[0]].get(split, []))


def holdout_folds(
    catalog: pd.DataFrame, sensor: str = "s2", preset: str = "S12LS-LD-blocked"
) -> dict[str, list[str]]:
    """Per region hold-out fold of the paper (:func:`s12ls_utils.reference.region_folds`), its regions that hold
    patches of ``preset``'s selection on ``sensor`` in ``catalog``; folds without any are left out."""
    from .reference import region_folds
    from .splits import select
    from .tasks import load_config

    config = load_config(preset, satellites=[sensor], reference_sat=sensor)
    selected = set(select(catalog, config)[sensor]["region"].astype(str))
    found = {name: [r for r in regions if r in selected] for name, regions in region_folds().items()}
    return {name: regions for name, regions in found.items() if regions}


def holdout_regions(
    catalog: pd.DataFrame, fold: str, sensor: str = "s2", preset: str = "S12LS-LD-blocked"
) -> list[str]:
    """The regions of fold ``fold`` that :func:`holdout_folds` finds: what chapter 07 sets aside as the common
    set. A ValueError names the folds that hold some when ``fold`` holds none."""
    from .reference import region_folds

    folds = region_folds()
    schema.check_choice("holdout_fold", fold, folds)
    usable = holdout_folds(catalog, sensor, preset)
    if fold not in usable:
        raise ValueError(
            f"holdout_fold {fold!r} ({', '.join(folds[fold])}) has no patch in the {preset} selection of this "
            f"data folder on {sensor}; folds that have: {', '.join(usable) or 'none'}"
        )
    return usable[fold]


def common_entries(tasks: Sequence[Task], sensors: Sequence[str] = ("s2",)) -> list[dict]:
    """The patches that none of ``tasks`` trains or validates on: every entry a task lists (any split) whose id
    is in no task's train or validation split, once per id (as the first task lists it), sorted by id.

    Scored by every run of those tasks, they are a test set common to all of them; an empty list when there
    is none (e.g. random splits of one selection, whose test sets hardly overlap)."""
    sensors = list(sensors)
    seen = {str(e["id"]) for t in tasks for s in ("train", "val") for e in _entries_of(t, s, sensors)}
    out: dict[str, dict] = {}
    for t in tasks:
        for s in ("train", "val", "test"):
            for e in _entries_of(t, s, sensors):
                if str(e["id"]) not in seen:
                    out.setdefault(str(e["id"]), e)
    return [out[k] for k in sorted(out)]


@dataclass
class SplitRun:
    """One trained run scored as :func:`evaluate_run` scores the model: the threshold of maximal F1 on the
    run's own validation split, applied once to its own test split and, when given, to a common set of
    patches (:func:`common_entries`). Built by :func:`score_split_run`."""

    label: str
    run_dir: Path
    task_dir: Path
    sensors: list[str]
    threshold: float
    val_f1: float
    n_train: int
    n_val: int
    test: PixelMetrics
    common: PixelMetrics | None = None

    @property
    def n_test(self) -> int:
        return len(self.test.patch_keys)

    def scores(self, which: str = "test") -> dict[str, float]:
        """F1, IoU, precision, recall at the validation threshold, AP (threshold-free) and the share of landslide
        pixels (``test_prevalence``) on the own test split (``"test"``) or the common set (``"common"``)."""
        schema.check_choice("which", which, ("test", "common"))
        pm = self.test if which == "test" else self.common
        if pm is None:
            raise ValueError(f"run {self.label} was not scored on a common set")
        s = pm.compute(self.threshold)
        out = {k: float(s[k]) for k in ("f1", "iou", "precision", "recall")}
        return out | {
            "ap": pm.average_precision(),
            "test_prevalence": pm.prevalence,
            "n_test": len(pm.patch_keys),
            "threshold": self.threshold,
        }


def score_split_run(
    run_dir: str | Path,
    task: Task | str | Path,
    *,
    label: str | None = None,
    common: Sequence[dict] | None = None,
    data_dir: str | Path | None = None,
    bins: int = 1000,
    device: str = "auto",
    batch_size: int = 8,
    which: str = "best",
) -> SplitRun:
    """Score a run's model on its task, with the threshold fixed on validation (one pass on test), and, with
    ``common`` (entries as :func:`common_entries` returns them), on those patches at the same threshold. Only
    the model is scored (no references, no objects), with per-patch histograms kept for the intervals of
    :func:`split_optimism`. ``task``: a :class:`~s12ls_utils.tasks.Task` or a task folder (read with
    ``data_dir``); ``which``: the checkpoint (``"best"`` or ``"last"``)."""
    schema.check_choice("which", which, ("best", "last"))
    run_dir = Path(run_dir)
    if not (run_dir / f"{which}.pt").is_file():
        raise FileNotFoundError(f"no checkpoint {run_dir / f'{which}.pt'}; train the run first")
    if not isinstance(task, Task):
        task = load_task(task, data_dir=data_dir)
    sensors = run_sensors_of(run_dir)

    def metrics(t: Task, split: str) -> PixelMetrics:
        pm = PixelMetrics(bins, (0.0, 1.0), keep_patches=True)
        batches = iter_model_predictions(run_dir, t, split, device=device, batch_size=batch_size, which=which)
        _pass(batches, pm, None, None, None, "model")
        return pm

    val = metrics(task, "val")
    threshold, val_f1 = val.best_threshold("f1")
    common_pm = None
    if common:
        # the task (its statistics) with the common patches as its test split; the packed cache holds no
        # statistics, so the runs of tasks in one folder share one cache of the common set
        splits_ = {s: dict(v) for s, v in task.splits.items()}
        aligned = dict(task.aligned) if task.aligned is not None else None
        if len(sensors) > 1:
            aligned["test"] = list(common)
        else:
            splits_[sensors[0]]["test"] = list(common)
        view = dataclasses.replace(
            task, name="common-set", path=Path(task.path).parent, splits=splits_, aligned=aligned
        )
        common_pm = metrics(view, "test")
    return SplitRun(
        label=label or run_dir.name,
        run_dir=run_dir,
        task_dir=Path(task.path),
        sensors=sensors,
        threshold=threshold,
        val_f1=val_f1,
        n_train=len(_entries_of(task, "train", sensors)),
        n_val=len(_entries_of(task, "val", sensors)),
        test=metrics(task, "test"),
        common=common_pm,
    )


@dataclass
class SplitOptimism:
    """Runs of one model configuration trained on different splits, scored by :func:`split_optimism`.

    ``rows`` (:meth:`table`): one row per run and test set (``"own test"``: the run's own test split;
    ``"common"``: the patches none of the runs trained or validated on), with F1 and AP and their percentile
    intervals over patches, and the gap to the ``baseline`` run: on the own test sets (different patches) an
    interval from independent replicates, on the common set a paired one (:func:`~s12ls_utils.metrics.paired_bootstrap`)."""

    runs: dict[str, SplitRun]
    baseline: str
    rows: pd.DataFrame
    n_boot: int
    level: float
    seed: int

    def table(self) -> pd.DataFrame:
        """The numeric table (one row per split and test set)."""
        return self.rows.copy()

    def formatted(self, digits: int = 3) -> pd.DataFrame:
        """:meth:`table` for reading: scores with their intervals in brackets, shares in percent."""

        def ci(r, k):
            v, lo, hi = r[k], r[k + "_low"], r[k + "_high"]
            if not np.isfinite(v):
                return "—"
            return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

        pct = int(round(100 * self.level))
        gap = f"gap to {self.baseline}"
        out = pd.DataFrame(
            {
                "split": self.rows["split"],
                "test set": self.rows["test_set"],
                "train patches": self.rows["n_train"],
                "test patches": self.rows["n_test"],
                "landslide pixels in test (%)": [f"{100 * v:.2f}" for v in self.rows["test_prevalence"]],
                f"F1 [{pct} % interval]": [ci(r, "f1") for _, r in self.rows.iterrows()],
                f"AP [{pct} % interval]": [ci(r, "ap") for _, r in self.rows.iterrows()],
                f"F1 {gap}": [ci(r, "f1_gap") for _, r in self.rows.iterrows()],
                f"AP {gap}": [ci(r, "ap_gap") for _, r in self.rows.iterrows()],
            }
        )
        return out.set_index(["split", "test set"])

    def record(self) -> dict:
        """Per run: ``n_train``, ``n_val``, ``n_test``, ``test_prevalence``, ``threshold``, ``f1``, ``f1_ci``, ``ap``,
        ``ap_ci`` and the gaps to the baseline (``f1_gap``, ``f1_gap_ci``, ``ap_gap``, ``ap_gap_ci``; None for the
        baseline) on the own test split, and the same under ``common`` for the common set (None without one)."""

        def block(r) -> dict:
            out = {"n_test": int(r["n_test"]), "test_prevalence": float(r["test_prevalence"])}
            for k in ("f1", "ap", "f1_gap", "ap_gap"):
                finite = bool(np.isfinite(r[k]))
                out[k] = float(r[k]) if finite else None
                out[k + "_ci"] = [float(r[k + "_low"]), float(r[k + "_high"])] if finite else None
            return out

        out = {}
        for label, run in self.runs.items():
            rows = self.rows[self.rows["split"] == label].set_index("test_set")
            own = block(rows.loc["own test"])
            common = block(rows.loc["common"]) if "common" in rows.index else None
            out[label] = {
                "n_train": run.n_train,
                "n_val": run.n_val,
                **own,
                "threshold": run.threshold,
                "val_f1": run.val_f1,
                "run_dir": str(run.run_dir),
                "task_dir": str(run.task_dir),
                "common": common,
            }
        return out

    def figures(self) -> dict:
        """Flat figures for a chapter's text: ``<split>_<key>`` and ``<split>_common_<key>`` for F1, AP, their
        interval ends and gaps, the test patches and the landslide-pixel share (a share, glued in percent), and
        the whole comparison as ``split_optimism`` (:meth:`record`)."""
        out: dict = {"split_optimism": self.record()}
        for _, r in self.rows.iterrows():
            p = f"{r['split']}_" + ("common_" if r["test_set"] == "common" else "")
            out[p + "n_test"] = int(r["n_test"])
            out[p + "test_prevalence"] = share(r["test_prevalence"])
            for k in ("f1", "ap", "f1_gap", "ap_gap"):
                if np.isfinite(r[k]):
                    for end in ("", "_low", "_high"):
                        out[p + k + end] = float(r[k + end])
            if r["test_set"] == "own test":
                out[p + "n_train"] = int(r["n_train"])
        return out


def split_optimism(
    runs: Sequence[SplitRun],
    baseline: str | None = None,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> SplitOptimism:
    """The table of what the split does to the score: each run (:func:`score_split_run`) on its own test split
    and on the common set, F1 and AP with ``level`` percentile intervals over patches (``n_boot`` replicates,
    :func:`~s12ls_utils.metrics.bootstrap_scores`), the landslide-pixel share of each test set, and the gap
    to the ``baseline`` run (default: the first), minus the baseline's score.

    - **Own test sets** differ from run to run, so the gap cannot be paired: its interval comes from the
      runs' independent replicates (different seeds), the difference of two resampled test sets.
    - **Common set**: every run scored on the same patches, each at its own validation threshold; the gap's
      interval is paired (:func:`~s12ls_utils.metrics.paired_bootstrap`, the same draws for both runs), as
      chapter 06 compares methods.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("split_optimism needs at least one scored run")
    by = {}
    for r in runs:
        if r.label in by:
            raise ValueError(f"two runs are labelled {r.label!r}")
        by[r.label] = r
    baseline = runs[0].label if baseline is None else baseline
    if baseline not in by:
        raise ValueError(f"baseline {baseline!r} is not among the runs {list(by)}")
    metrics = ("f1", "ap")
    with_common = all(r.common is not None and r.common.patch_keys for r in runs)
    reps = {
        (r.label, ts): bootstrap_scores(pm, r.threshold, metrics, n_boot=n_boot, seed=[seed, i, j])
        for i, r in enumerate(runs)
        for j, (ts, pm) in enumerate((("own test", r.test), ("common", r.common)))
        if pm is not None and (ts == "own test" or with_common)
    }
    base = by[baseline]
    rows = []
    for r in runs:
        for ts in ("own test", "common") if with_common else ("own test",):
            s = r.scores("test" if ts == "own test" else "common")
            row = {
                "split": r.label,
                "test_set": ts,
                "n_train": r.n_train,
                "n_test": s["n_test"],
                "test_prevalence": s["test_prevalence"],
                "threshold": r.threshold,
            }
            for m in metrics:
                row[m] = s[m]
                row[m + "_low"], row[m + "_high"] = percentile_interval(reps[(r.label, ts)][m], level)
            if r.label == baseline:
                for m in metrics:
                    row[f"{m}_gap"] = row[f"{m}_gap_low"] = row[f"{m}_gap_high"] = float("nan")
                row["paired"] = ts == "common"
            elif ts == "common":
                pb = paired_bootstrap(
                    r.common, base.common, r.threshold, base.threshold, metrics, n_boot, level, seed
                )
                for m in metrics:
                    row[f"{m}_gap"], row[f"{m}_gap_low"], row[f"{m}_gap_high"] = (
                        pb[m]["diff"],
                        pb[m]["low"],
                        pb[m]["high"],
                    )
                row["paired"] = True
            else:
                b = base.scores("test")
                for m in metrics:
                    row[f"{m}_gap"] = s[m] - b[m]
                    diff = reps[(r.label, ts)][m] - reps[(baseline, ts)][m]
                    row[f"{m}_gap_low"], row[f"{m}_gap_high"] = percentile_interval(diff, level)
                row["paired"] = False
            rows.append(row)
    return SplitOptimism(by, baseline, pd.DataFrame(rows), n_boot, level, seed)


def fold_table(
    runs: pd.DataFrame,
    by: str = "split",
    pooled: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Per split or fold (column ``by``): the number of seeds, mean and standard deviation over the seeds (sample
    sd, ddof 1; 0 for one seed) of F1, AP and IoU, and the share of landslide pixels in the test set
    (``test_prevalence``; the test set is the same for every seed of a split, so its mean is that share).

    ``runs`` has one row per split and seed: columns ``by``, ``seed``, ``f1``, ``ap``, ``iou``,
    ``test_prevalence`` (and optionally ``n_test``, the test patches). ``pooled`` adds rows that take several
    folds together, ``{name: [fold, …]}``: mean and sd over every run of those folds (fold × seed), and the
    landslide-pixel share of the folds' test sets together (weighted by ``n_test`` when given, as every patch
    has the same number of pixels; else the mean over the folds). Rows keep the order of first appearance,
    pooled rows last."""
    need = [by, "seed", *FOLD_METRICS, "test_prevalence"]
    missing = [c for c in need if c not in runs.columns]
    if missing:
        raise ValueError(f"fold_table needs the columns {need}; missing {missing}")
    if runs.empty:
        raise ValueError("fold_table needs at least one run")
    dup = runs.duplicated([by, "seed"])
    if dup.any():
        r = runs[dup].iloc[0]
        raise ValueError(f"{by} {r[by]!r} has seed {r['seed']} twice")
    bad = runs[list(FOLD_METRICS) + ["test_prevalence"]].isna().any(axis=1)
    if bad.any():
        raise ValueError(f"runs of {sorted(set(runs.loc[bad, by].astype(str)))} have missing scores")

    def summary(name: str, df: pd.DataFrame, folds: list) -> dict:
        row: dict = {by: name, "folds": len(folds), "seeds": int(df.groupby(by)["seed"].nunique().min())}
        row["runs"] = len(df)
        for m in FOLD_METRICS:
            v = df[m].to_numpy(dtype="float64")
            row[m + "_mean"] = float(v.mean())
            row[m + "_sd"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        per = df.groupby(by, sort=False).first()
        if "n_test" in df.columns:
            row["n_test"] = int(per["n_test"].sum())
            row["test_prevalence"] = float(
                (per["test_prevalence"] * per["n_test"]).sum() / per["n_test"].sum()
            )
        else:
            row["test_prevalence"] = float(per["test_prevalence"].mean())
        return row

    order = list(dict.fromkeys(runs[by]))
    rows = [summary(k, runs[runs[by] == k], [k]) for k in order]
    for name, folds in (pooled or {}).items():
        folds = list(folds)
        unknown = sorted(set(folds) - set(order), key=str)
        if unknown or not folds:
            raise ValueError(f"pooled row {name!r}: unknown {by} {unknown or 'list (empty)'}; known: {order}")
        rows.append(summary(name, runs[runs[by].isin(folds)], folds))
    return pd.DataFrame(rows)
