"""Positive-class metrics for a rare-class segmentation problem: pixel scores, PR curves, thresholds,
object-level detection and bootstrap confidence intervals.

Only about 3 % of the Sen12Landslides pixels are landslides. Accuracy and metrics averaged over both
classes ("macro") are then dominated by the easy background class and flatter a model; this module
reports the **landslide class** first and the macro/accuracy figures only for contrast.

- :func:`positive_class_scores` — precision, recall, F1, IoU of the positive class, the same macro-averaged
  over both classes, and accuracy, from binary arrays (one shot).
- :class:`PixelMetrics` — the streaming version: ``update(y_true, y_score)`` per batch histograms the scores
  of each true class into ``bins`` fixed bins; ``compute(threshold)`` gives every score of
  :func:`positive_class_scores` at a threshold; :meth:`PixelMetrics.pr_curve`,
  :meth:`PixelMetrics.average_precision` (AUPRC), :meth:`PixelMetrics.roc_auc` and
  :meth:`PixelMetrics.best_threshold` (max F1) are threshold-free. Memory is ``O(bins)`` whatever the number
  of pixels, plus ``O(patches × bins)`` when per-patch histograms are kept (for bootstrap intervals and
  per-patch/per-region tables).
- :func:`average_precision` — AUPRC of arrays through the same histograms.
- :func:`label_components`, :func:`size_bin_labels`, :class:`ObjectMetrics` — object level: each
  landslide is a connected component of the mask; detection rate per size bin and false-positive blobs
  per km².
- :func:`bootstrap_ci` — percentile intervals over patches for pooled F1 and IoU.
- :func:`paired_bootstrap` — the interval of the difference between two methods scored on the same resampled
  patches (F1, IoU, AP); :func:`threshold_bootstrap` — how far a threshold chosen on few patches moves;
  :func:`bootstrap_scores` — one method's replicates (F1, IoU, AP) on its own patches, for intervals of AP
  and for differences between methods scored on different patches. Every one of them (and the AUC intervals
  of :func:`s12ls_utils.signatures.separability`) draws from :func:`patch_resamples`, the one patch resampler.

Conventions, stated once:

- **Zero division** follows scikit-learn's ``zero_division=0``: precision is 0 when nothing is predicted,
  recall 0 when there are no positives, F1 and IoU 0 when there are neither positives nor predictions
  (also for the negative class inside the macro averages). Nothing warns (``np.errstate``).
- **Macro** = the unweighted mean of the positive-class and negative-class value, both classes always
  included (scikit-learn ``average="macro", labels=[0, 1]``).
- **Average precision** estimates scikit-learn's step-wise ``Σ (Rₙ − Rₙ₋₁) Pₙ`` from the histograms,
  interpolating the precision inside each bin (see :meth:`PixelMetrics.average_precision`); with no
  positives it is 0 and with only positives 1 (as scikit-learn). **ROC AUC** is the trapezoid
  area over the same points (ties inside a bin count one half); NaN when one class is absent.
- **Thresholds**: scores are quantised to ``floor((s − lo) / (hi − lo) · bins)`` (clipped to the range); a
  pixel is predicted positive at threshold ``t`` when its score is ``≥ t``. This is exact when ``t`` is a bin
  edge ``lo + k (hi − lo) / bins``; other thresholds are rounded to the nearest edge (the returned
  ``threshold`` says which). NaN scores count as the lowest bin (never predicted at thresholds above ``lo``).
- **Objects** are 8-connected components (``scipy.ndimage.label`` with a 3×3 structure), so diagonal pixels
  belong to one landslide. A true landslide is *found* when predicted pixels cover at least
  ``cover_fraction`` of its pixels. A *false-positive blob* is a predicted component that touches no true
  landslide pixel.

Arrays only: this module takes numpy arrays (anything ``np.asarray`` accepts). It does not import torch; a
torch caller passes ``prob.detach().cpu().numpy()`` per batch — objects with a ``detach`` method are also
converted that way by duck typing.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence

import numpy as np
from scipy import ndimage

#: Landslide size bins in pixels: [1, 10), [10, 50), [50, 200), [200, ∞).
DEFAULT_SIZE_BINS: tuple[float, ...] = (1, 10, 50, 200, np.inf)
#: Area of one 10 m pixel.
PIXEL_AREA_M2 = 100.0
_STRUCTURE_8 = np.ones((3, 3), dtype=bool)
SCORE_KEYS = ("precision", "recall", "f1", "iou", "macro_f1", "macro_iou", "accuracy")


def _array(x) -> np.ndarray:
    """numpy view of an array-like (torch tensors by duck typing: ``.detach().cpu().numpy()``)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _div(num, den) -> np.ndarray:
    """num / den, 0 where den == 0, without warnings (arrays or scalars)."""
    num = np.asarray(num, dtype="float64")
    den = np.asarray(den, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


# --------------------------------------------------------------------------------------------------
# One shot
# --------------------------------------------------------------------------------------------------
def confusion_counts(y_true, y_pred) -> dict[str, int]:
    """``tp, fp, fn, tn`` of binary arrays (non-zero = positive)."""
    t = _array(y_true).astype(bool).ravel()
    p = _array(y_pred).astype(bool).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in size: {t.size} vs {p.size}")
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(t.size - tp - fp - fn)}


def scores_from_counts(tp, fp, fn, tn) -> dict[str, np.ndarray | float]:
    """Every score of :func:`positive_class_scores` from confusion counts (scalars or arrays, vectorised)."""
    tp, fp, fn, tn = (np.asarray(v, dtype="float64") for v in (tp, fp, fn, tn))
    precision, recall = _div(tp, tp + fp), _div(tp, tp + fn)
    f1, iou = _div(2 * tp, 2 * tp + fp + fn), _div(tp, tp + fp + fn)
    # the negative class: its "true positives" are tn, its false positives fn, its false negatives fp
    f1_neg, iou_neg = _div(2 * tn, 2 * tn + fn + fp), _div(tn, tn + fn + fp)
    out = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "iou": iou,
        "macro_f1": (f1 + f1_neg) / 2,
        "macro_iou": (iou + iou_neg) / 2,
        "accuracy": _div(tp + tn, tp + fp + fn + tn),
    }
    if out["f1"].ndim == 0:
        return {k: float(v) for k, v in out.items()}
    return out


def positive_class_scores(y_true, y_pred) -> dict[str, float]:
    """Scores of binary predictions: ``precision, recall, f1, iou`` of the positive class, ``macro_f1``,
    ``macro_iou`` (mean over both classes) and ``accuracy``, plus the counts ``tp, fp, fn, tn``.

    Zero divisions give 0 (scikit-learn ``zero_division=0``), without warnings.
    """
    c = confusion_counts(y_true, y_pred)
    return {**scores_from_counts(**c), **c}


# --------------------------------------------------------------------------------------------------
# Streaming pixel metrics
# --------------------------------------------------------------------------------------------------
class PixelMetrics:
    """Streaming pixel metrics from fixed-bin score histograms, one per true class.

    Parameters
    ----------
    bins
        Number of score bins (1000 gives an average precision within about 1e-3 of the exact value).
    score_range
        ``(lo, hi)`` of the scores; values outside are clipped into the first/last bin. Probabilities use
        ``(0, 1)``; a change-detection score uses its own range.
    keep_patches
        Also keep one histogram per ``update`` call (or per ``key``), int32, for :meth:`patch_counts`
        (bootstrap intervals, per-patch and per-region tables). Memory ``8 · bins`` bytes per patch.

    ``update(y_true, y_score, key=None)`` takes arrays of any shape (a batch ``(B, H, W)`` or a patch
    ``(H, W)``); with ``keep_patches`` pass ``keys`` (one per first-axis item) to keep patches of a batch apart.
    Only ``np.bincount`` of quantised scores happens per batch; nothing else is stored.
    """

    def __init__(
        self, bins: int = 1000, score_range: tuple[float, float] = (0.0, 1.0), keep_patches: bool = False
    ):
        if bins < 1:
            raise ValueError(f"bins must be at least 1, not {bins}")
        lo, hi = float(score_range[0]), float(score_range[1])
        if not hi > lo:
            raise ValueError(f"score_range must be increasing, not {score_range}")
        self.bins = int(bins)
        self.lo, self.hi = lo, hi
        self.hist = np.zeros((2, self.bins), dtype=np.int64)  # [negative, positive] × bins
        self.keep_patches = keep_patches
        self._patches: dict[Hashable, np.ndarray] = {}

    # -- accumulation ------------------------------------------------------------------------------
    def quantise(self, y_score) -> np.ndarray:
        """Bin index (int64) of each score; NaN → bin 0."""
        s = _array(y_score).astype("float64")
        with np.errstate(invalid="ignore"):
            # + 1e-9 bin: a score printed as an edge (0.29) lands in the bin above it despite rounding
            q = np.floor((s - self.lo) / (self.hi - self.lo) * self.bins + 1e-9)
        q = np.nan_to_num(q, nan=0.0, posinf=self.bins - 1, neginf=0.0)
        return np.clip(q, 0, self.bins - 1).astype("int64")

    def _hist(self, t: np.ndarray, q: np.ndarray) -> np.ndarray:
        idx = q.ravel() + self.bins * t.ravel().astype("int64")
        return np.bincount(idx, minlength=2 * self.bins).reshape(2, self.bins)

    def update(self, y_true, y_score, key: Hashable | None = None, keys: Sequence[Hashable] | None = None):
        """Add a batch: ``y_true`` binary (non-zero = positive), ``y_score`` of the same shape."""
        t = _array(y_true)
        t = t > 0.5 if t.dtype.kind == "f" else t.astype(bool)
        q = self.quantise(y_score)
        if t.shape != q.shape:
            raise ValueError(f"y_true {t.shape} and y_score {q.shape} differ in shape")
        if keys is not None:
            if len(keys) != t.shape[0]:
                raise ValueError(f"{len(keys)} keys for a batch of {t.shape[0]}")
            for k, ti, qi in zip(keys, t, q, strict=True):
                self._add(self._hist(ti, qi), k)
            return self
        self._add(self._hist(t, q), key)
        return self

    def _add(self, h: np.ndarray, key) -> None:
        self.hist += h
        if self.keep_patches:
            k = len(self._patches) if key is None else key
            if k in self._patches:
                self._patches[k] += h.astype("int32")
            else:
                self._patches[k] = h.astype("int32")

    # -- thresholds --------------------------------------------------------------------------------
    @property
    def edges(self) -> np.ndarray:
        """The ``bins + 1`` bin edges (score units)."""
        return self.lo + (self.hi - self.lo) * np.arange(self.bins + 1) / self.bins

    def _k(self, threshold: float) -> int:
        k = int(np.round((float(threshold) - self.lo) / (self.hi - self.lo) * self.bins))
        return int(np.clip(k, 0, self.bins))

    @staticmethod
    def _cum(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """tp[k], fp[k] for k = 0…bins: pixels with bin ≥ k (k = bins: none predicted)."""
        pad = np.zeros(hist.shape[:-1] + (1,), dtype=np.int64)
        c = np.concatenate([np.cumsum(hist[..., ::-1], axis=-1)[..., ::-1], pad], axis=-1)
        return c[..., 1, :], c[..., 0, :]

    def predict(self, y_score, threshold: float) -> np.ndarray:
        """Binary predictions at ``threshold`` exactly as :meth:`compute` counts them (score bin ≥ edge)."""
        return self.quantise(y_score) >= self._k(threshold)

    @property
    def n_pos(self) -> int:
        return int(self.hist[1].sum())

    @property
    def n_neg(self) -> int:
        return int(self.hist[0].sum())

    @property
    def prevalence(self) -> float:
        """Share of positive pixels: the AUPRC of a random (chance) classifier."""
        return float(_div(self.n_pos, self.n_pos + self.n_neg))

    def counts(self, threshold: float) -> dict[str, int]:
        k = self._k(threshold)
        tp, fp = self._cum(self.hist)
        tp, fp = int(tp[k]), int(fp[k])
        return {"tp": tp, "fp": fp, "fn": self.n_pos - tp, "tn": self.n_neg - fp}

    def compute(self, threshold: float = 0.5) -> dict[str, float]:
        """Scores of :func:`positive_class_scores` at ``threshold`` (rounded to a bin edge), with the counts,
        ``threshold`` (the edge used) and ``prevalence``."""
        c = self.counts(threshold)
        return {
            **scores_from_counts(**c),
            **c,
            "threshold": float(self.edges[self._k(threshold)]),
            "prevalence": self.prevalence,
        }

    def curve(self) -> dict[str, np.ndarray]:
        """Scores at every bin edge (arrays of length ``bins + 1``, thresholds increasing)."""
        tp, fp = self._cum(self.hist)
        fn, tn = self.n_pos - tp, self.n_neg - fp
        return {
            "threshold": self.edges,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            **scores_from_counts(tp, fp, fn, tn),
        }

    def pr_curve(self) -> dict[str, np.ndarray]:
        """Precision–recall and ROC points at the bin edges where something is predicted.

        Keys: ``threshold`` (decreasing), ``precision``, ``recall``, ``fpr``, ``tpr`` (= recall).
        """
        c = self.curve()
        keep = (c["tp"] + c["fp"]) > 0
        keep[0] = True  # threshold lo: everything predicted
        order = np.nonzero(keep)[0][::-1]
        return {
            "threshold": c["threshold"][order],
            "precision": c["precision"][order],
            "recall": c["recall"][order],
            "fpr": _div(c["fp"], self.n_neg)[order],
            "tpr": c["recall"][order],
        }

    def average_precision(self) -> float:
        """AUPRC (average precision) from the histograms; 0 without positives.

        scikit-learn's step-wise ``Σ (Rₙ − Rₙ₋₁) Pₙ`` over single pixels, with the order of the pixels inside
        a bin unknown: inside each bin positives and negatives are taken as evenly mixed, so the precision
        along the bin is ``(tp₀ + x·Δtp) / (tp₀ + fp₀ + x·(Δtp + Δfp))`` for ``x`` in 0…1 and its mean is
        integrated in closed form (the interpolation of Davis & Goadrich, 2006). Within about 1e-3 of the
        exact value at 1000 bins for continuous scores.
        """
        return _ap_from_hist(self.hist)

    def roc_auc(self) -> float:
        """Area under the ROC curve (trapezoids over the bin edges); NaN when a class is absent."""
        if self.n_pos == 0 or self.n_neg == 0:
            return float("nan")
        tp, fp = self._cum(self.hist)
        tpr, fpr = tp / self.n_pos, fp / self.n_neg
        return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2))

    def best_threshold(self, metric: str = "f1") -> tuple[float, float]:
        """``(threshold, value)`` maximising ``metric`` over the inner bin edges (the lowest such edge on ties).

        Choose it on the validation split and apply it, once, to the test split.
        """
        c = self.curve()
        vals = np.asarray(c[metric])[1 : self.bins]  # edges strictly inside the range
        if vals.size == 0:
            return float(self.edges[0]), float(c[metric][0])
        k = int(np.argmax(vals)) + 1
        return float(self.edges[k]), float(vals[k - 1])

    # -- per patch ---------------------------------------------------------------------------------
    @property
    def patch_keys(self) -> list:
        return list(self._patches)

    def patch_counts(self, threshold: float) -> dict[str, np.ndarray]:
        """Per-patch counts at ``threshold``: ``key`` (list) and int64 arrays ``tp, fp, fn, tn``."""
        if not self.keep_patches:
            raise ValueError("per-patch counts need PixelMetrics(keep_patches=True)")
        keys = self.patch_keys
        if not keys:
            z = np.zeros(0, dtype=np.int64)
            return {"key": [], "tp": z, "fp": z, "fn": z, "tn": z}
        k = self._k(threshold)
        h = np.stack([self._patches[key] for key in keys]).astype(np.int64)  # (P, 2, bins)
        pos, neg = h[:, 1].sum(1), h[:, 0].sum(1)
        tp = h[:, 1, k:].sum(1)
        fp = h[:, 0, k:].sum(1)
        return {"key": keys, "tp": tp, "fp": fp, "fn": pos - tp, "tn": neg - fp}


def _ap_from_hist(hist: np.ndarray) -> float:
    """AUPRC of one ``(2, bins)`` histogram pair (see :meth:`PixelMetrics.average_precision`)."""
    n_pos = int(hist[1].sum())
    if n_pos == 0:
        return 0.0
    tp, fp = PixelMetrics._cum(hist)
    a, c = tp[1:].astype("float64"), (tp[1:] + fp[1:]).astype("float64")  # before adding bin k
    b = (tp[:-1] - tp[1:]).astype("float64")  # positives of bin k
    d = b + (fp[:-1] - fp[1:])  # all pixels of bin k
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d > 0, b / np.where(d > 0, d, 1.0), 0.0)
        # mean precision along the bin: b/d + (a·d − b·c)/d² · ln(1 + d/c); c = 0 → b/d
        safe_c = np.where(c > 0, c, 1.0)
        corr = np.where(
            (c > 0) & (d > 0), (a * d - b * c) / np.where(d > 0, d, 1.0) ** 2 * np.log1p(d / safe_c), 0.0
        )
    mean_prec = ratio + corr
    return float(np.sum(b / n_pos * mean_prec))


def average_precision(
    y_true, y_score, bins: int = 1000, score_range: tuple[float, float] = (0.0, 1.0)
) -> float:
    """Average precision (AUPRC) of scores in ``score_range`` from ``bins`` fixed-bin histograms.

    Within about 1e-3 of ``sklearn.metrics.average_precision_score`` at 1000 bins for continuous scores;
    0 without positives.
    """
    return PixelMetrics(bins, score_range).update(y_true, y_score).average_precision()


# --------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------
def patch_resamples(n_patches: int, n_boot: int, seed=0) -> Iterator[np.ndarray]:
    """The one patch resampler behind every bootstrap interval of the package.

    Yields ``n_boot`` replicates; each draws ``n_patches`` patches with replacement and is given as the number
    of times each patch was drawn (``(n_patches,)`` int64, summing to ``n_patches``), so a replicate's pooled
    value is ``w @ per_patch`` (or ``np.tensordot(w, per_patch, axes=1)``) and a weighted statistic takes
    ``weights * w[patch_of_item]``. ``seed``: anything :func:`numpy.random.default_rng` takes; a ``Generator``
    goes on with its own stream (several intervals from one seed).
    """
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield np.bincount(rng.integers(0, n_patches, size=n_patches), minlength=n_patches)


def percentile_interval(replicates, level: float = 0.95) -> tuple[float, float]:
    """The ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the finite bootstrap replicates (NaN, NaN
    when none is finite)."""
    v = np.asarray(replicates, dtype="float64")
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"), float("nan"))
    q = (1 - level) / 2
    lo, hi = np.quantile(v, [q, 1 - q])
    return float(lo), float(hi)


def bootstrap_ci(
    counts: Mapping[str, np.ndarray],
    metrics: Sequence[str] = ("f1", "iou"),
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval over patches of pooled scores.

    ``counts`` holds per-patch ``tp, fp, fn, tn`` (e.g. :meth:`PixelMetrics.patch_counts`). Each replicate
    draws as many patches as there are, with replacement, sums their counts and computes the score; the
    interval is the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the replicates. With no patch the
    interval is ``(nan, nan)``.
    """
    arr = np.stack([np.asarray(counts[k], dtype=np.int64) for k in ("tp", "fp", "fn", "tn")], axis=1)
    n = arr.shape[0]
    if n == 0:
        return {m: (float("nan"), float("nan")) for m in metrics}
    sums = np.array([w @ arr for w in patch_resamples(n, n_boot, seed)]).reshape(n_boot, 4)
    scores = scores_from_counts(*sums.T)
    return {m: percentile_interval(scores[m], level) for m in metrics}


def _patch_hists(pm: PixelMetrics, keys: Sequence[Hashable]) -> np.ndarray:
    if not pm.keep_patches:
        raise ValueError("a bootstrap over patches needs PixelMetrics(keep_patches=True)")
    return np.stack([pm._patches[k] for k in keys]).astype(np.int64)  # (P, 2, bins)


def _hist_scores(hist: np.ndarray, k: int, metrics: Sequence[str]) -> dict[str, float]:
    """Scores of one ``(2, bins)`` histogram at bin edge ``k`` (F1, IoU, … from counts; ``ap`` from the whole
    histogram)."""
    tp, fp = PixelMetrics._cum(hist)
    n_pos, n_neg = int(hist[1].sum()), int(hist[0].sum())
    c = scores_from_counts(int(tp[k]), int(fp[k]), n_pos - int(tp[k]), n_neg - int(fp[k]))
    return {m: (_ap_from_hist(hist) if m == "ap" else float(c[m])) for m in metrics}


def _replicate_scores(hists: np.ndarray, k: int, metrics: Sequence[str], draws) -> dict[str, np.ndarray]:
    """Per metric, the scores of each draw of patches (weights from :func:`patch_resamples`) on the pooled
    ``(P, 2, bins)`` histograms, at bin edge ``k``."""
    rows = [_hist_scores(np.tensordot(w, hists, axes=1), k, metrics) for w in draws]
    return {m: np.array([r[m] for r in rows], dtype="float64") for m in metrics}


def paired_bootstrap(
    a: PixelMetrics,
    b: PixelMetrics,
    threshold_a: float,
    threshold_b: float,
    metrics: Sequence[str] = ("f1", "iou", "ap"),
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Paired percentile bootstrap over patches of the difference ``a − b`` of two methods' pooled scores.

    Both accumulators hold per-patch histograms (``keep_patches=True``) of the **same** patches (the keys
    both have are used, in ``a``'s order). Each replicate draws patches with replacement, once, and scores
    both methods on that same draw (``a`` at ``threshold_a``, ``b`` at ``threshold_b``; ``ap`` is threshold
    free), so the interval of the difference accounts for the two methods succeeding on the same patches.
    Returns per metric: ``a``, ``b``, ``diff`` (on all patches), ``low``/``high`` (the ``level`` interval of
    the difference), ``share_above_0`` (share of replicates with ``a`` better) and ``n_patches``. With no
    common patch every figure is NaN.
    """
    if not (a.keep_patches and b.keep_patches):
        raise ValueError("a paired bootstrap over patches needs PixelMetrics(keep_patches=True) for both")
    keys = [k for k in a.patch_keys if k in set(b.patch_keys)]
    nan = float("nan")
    if not keys:
        empty = {**dict.fromkeys(("a", "b", "diff", "low", "high", "share_above_0"), nan), "n_patches": 0}
        return {m: dict(empty) for m in metrics}
    ha, hb = _patch_hists(a, keys), _patch_hists(b, keys)
    ka, kb = a._k(threshold_a), b._k(threshold_b)
    full_a, full_b = _hist_scores(ha.sum(0), ka, metrics), _hist_scores(hb.sum(0), kb, metrics)
    n = len(keys)
    draws = list(patch_resamples(n, n_boot, seed))  # one draw of patches scores both methods
    ra, rb = _replicate_scores(ha, ka, metrics, draws), _replicate_scores(hb, kb, metrics, draws)
    diffs = {m: ra[m] - rb[m] for m in metrics}
    out = {}
    for m in metrics:
        low, high = percentile_interval(diffs[m], level)
        out[m] = {
            "a": full_a[m],
            "b": full_b[m],
            "diff": full_a[m] - full_b[m],
            "low": low,
            "high": high,
            "share_above_0": float(np.mean(diffs[m] > 0)),
            "n_patches": n,
        }
    return out


def bootstrap_scores(
    pm: PixelMetrics,
    threshold: float,
    metrics: Sequence[str] = ("f1", "iou", "ap"),
    n_boot: int = 1000,
    seed: int | Sequence[int] = 0,
) -> dict[str, np.ndarray]:
    """The scores of ``n_boot`` bootstrap replicates of ``pm``'s patches: each replicate draws as many patches
    as there are, with replacement, pools their histograms and scores them at ``threshold`` (F1, IoU, … from
    the counts; ``ap`` threshold-free), as :func:`paired_bootstrap` does for one side of a pair (the same
    seed and patches give the same draws). Percentiles of the replicates are an interval of the score; the
    replicates of two methods scored on *different* patches (e.g. two splits' own test sets), drawn with
    different seeds, give an interval of their difference. Needs per-patch histograms; with no patch every
    replicate is NaN."""
    keys = pm.patch_keys
    if not keys:
        if not pm.keep_patches:
            raise ValueError("a bootstrap over patches needs PixelMetrics(keep_patches=True)")
        return {m: np.full(n_boot, np.nan) for m in metrics}
    return _replicate_scores(
        _patch_hists(pm, keys), pm._k(threshold), metrics, patch_resamples(len(keys), n_boot, seed)
    )


def threshold_bootstrap(
    pm: PixelMetrics, metric: str = "f1", n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """How much the threshold chosen on a split (max ``metric``, :meth:`PixelMetrics.best_threshold`) moves
    when its patches are resampled: the threshold on all patches and the ``level`` percentile interval of
    the thresholds chosen on bootstrap replicates (patches drawn with replacement). Needs per-patch
    histograms; with no patch every figure is NaN."""
    keys = pm.patch_keys
    nan = float("nan")
    if not keys:
        return {"threshold": nan, "low": nan, "high": nan, "n_patches": 0}
    h = _patch_hists(pm, keys)
    picks = np.empty(n_boot)
    tmp = PixelMetrics(pm.bins, (pm.lo, pm.hi))
    for i, w in enumerate(patch_resamples(len(keys), n_boot, seed)):
        tmp.hist = np.tensordot(w, h, axes=1)
        picks[i] = tmp.best_threshold(metric)[0]
    low, high = percentile_interval(picks, level)
    return {"threshold": pm.best_threshold(metric)[0], "low": low, "high": high, "n_patches": len(keys)}


# --------------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------------
def label_components(mask) -> tuple[np.ndarray, int]:
    """``(labels, n)``: 8-connected components of a 2-D binary mask (labels 1…n, 0 = background)."""
    m = _array(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"label_components needs a 2-D mask, got shape {m.shape}")
    labels, n = ndimage.label(m, structure=_STRUCTURE_8)
    return labels, int(n)


def size_bin_labels(size_bins: Sequence[float] = DEFAULT_SIZE_BINS) -> list[str]:
    """Readable labels of size bins in pixels, e.g. ``"1–9 px"``, ``"200+ px"``."""
    out = []
    for lo, hi in zip(size_bins[:-1], size_bins[1:], strict=True):
        out.append(f"{int(lo)}+ px" if not np.isfinite(hi) else f"{int(lo)}–{int(hi) - 1} px")
    return out


class ObjectMetrics:
    """Streaming object-level detection: found landslides per size bin and false-positive blobs per km².

    ``update(y_true, y_pred)`` takes one 2-D patch (or a batch ``(B, H, W)``, each item a separate patch).
    A true component (8-connected) is found when predicted pixels cover at least ``cover_fraction`` of it;
    a predicted component touching no true pixel is a false-positive blob.
    """

    def __init__(
        self,
        cover_fraction: float = 0.5,
        size_bins: Sequence[float] = DEFAULT_SIZE_BINS,
        pixel_area_m2: float = PIXEL_AREA_M2,
    ):
        if not 0 < cover_fraction <= 1:
            raise ValueError(f"cover_fraction must be in (0, 1], not {cover_fraction}")
        self.cover_fraction = float(cover_fraction)
        self.size_bins = tuple(float(b) for b in size_bins)
        self.pixel_area_m2 = float(pixel_area_m2)
        nb = len(self.size_bins) - 1
        self.n_objects = np.zeros(nb, dtype=np.int64)
        self.n_found = np.zeros(nb, dtype=np.int64)
        self.fp_blobs = 0
        self.n_pixels = 0
        self.n_patches = 0

    @staticmethod
    def components(y_true, y_pred, cover_fraction: float = 0.5) -> dict[str, np.ndarray | int]:
        """One patch: ``sizes`` and ``covered`` (fraction predicted) of each true component, ``found``
        flags, and ``fp_blobs`` (predicted components touching no true pixel)."""
        t = _array(y_true).astype(bool)
        p = _array(y_pred).astype(bool)
        lab, n = label_components(t)
        if n:
            sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
            hit = np.bincount(lab[p], minlength=n + 1)[1:]
            covered = hit / sizes
        else:
            sizes = hit = np.zeros(0, dtype=np.int64)
            covered = np.zeros(0, dtype="float64")
        plab, pn = label_components(p)
        if pn:
            touches = np.bincount(plab[t], minlength=pn + 1)[1:] > 0
            fp_blobs = int(pn - np.count_nonzero(touches))
        else:
            fp_blobs = 0
        return {
            "sizes": sizes,
            "covered": covered,
            "found": covered >= cover_fraction - 1e-12,
            "fp_blobs": fp_blobs,
        }

    def update(self, y_true, y_pred) -> ObjectMetrics:
        t, p = _array(y_true), _array(y_pred)
        if t.ndim == 3:
            for ti, pi in zip(t, p, strict=True):
                self.update(ti, pi)
            return self
        c = self.components(t, p, self.cover_fraction)
        which = np.digitize(c["sizes"], self.size_bins[1:-1])  # bin index 0…nb-1 (sizes ≥ 1)
        nb = len(self.n_objects)
        self.n_objects += np.bincount(which, minlength=nb)[:nb]
        self.n_found += np.bincount(which[c["found"]], minlength=nb)[:nb]
        self.fp_blobs += c["fp_blobs"]
        self.n_pixels += int(t.size)
        self.n_patches += 1
        return self

    @property
    def area_km2(self) -> float:
        return self.n_pixels * self.pixel_area_m2 / 1e6

    def compute(self) -> dict:
        """``size_bin`` labels, ``n_objects``, ``n_found``, ``detection_rate`` per bin (NaN for an empty bin),
        the overall ``detection_rate``, ``fp_blobs``, ``area_km2`` and ``fp_blobs_per_km2``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(self.n_objects > 0, self.n_found / np.maximum(self.n_objects, 1), np.nan)
        total = int(self.n_objects.sum())
        return {
            "size_bin": size_bin_labels(self.size_bins),
            "n_objects": self.n_objects.tolist(),
            "n_found": self.n_found.tolist(),
            "detection_rate_by_size": rate.tolist(),
            "detection_rate": float(self.n_found.sum() / total) if total else float("nan"),
            "fp_blobs": int(self.fp_blobs),
            "area_km2": self.area_km2,
            "fp_blobs_per_km2": float(self.fp_blobs / self.area_km2) if self.n_pixels else float("nan"),
        }
