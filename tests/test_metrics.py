"""Metrics of the landslide class against scikit-learn and hand counts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from s12ls_utils import metrics
from s12ls_utils import metrics as M
from s12ls_utils.metrics import ObjectMetrics, PixelMetrics, average_precision, positive_class_scores


def _sk_scores(t, p) -> dict[str, float]:
    kw = {"zero_division": 0}
    return {
        "precision": skm.precision_score(t, p, **kw),
        "recall": skm.recall_score(t, p, **kw),
        "f1": skm.f1_score(t, p, **kw),
        "iou": skm.jaccard_score(t, p, **kw),
        "macro_f1": skm.f1_score(t, p, average="macro", labels=[0, 1], **kw),
        "macro_iou": skm.jaccard_score(t, p, average="macro", labels=[0, 1], **kw),
        "accuracy": skm.accuracy_score(t, p),
    }


def _cases():
    rng = np.random.default_rng(0)
    n = 5000
    t_rare = rng.random(n) < 0.03
    return {
        "random_rare": (t_rare, (rng.random(n) < 0.05) | (t_rare & (rng.random(n) < 0.6))),
        "random_balanced": (rng.random(n) < 0.5, rng.random(n) < 0.5),
        "no_positives": (np.zeros(n, bool), rng.random(n) < 0.1),
        "no_positives_no_predictions": (np.zeros(n, bool), np.zeros(n, bool)),
        "all_positives": (np.ones(n, bool), rng.random(n) < 0.7),
        "all_positives_all_predicted": (np.ones(n, bool), np.ones(n, bool)),
        "empty_predictions": (t_rare, np.zeros(n, bool)),
        "all_predicted": (t_rare, np.ones(n, bool)),
        "perfect": (t_rare, t_rare.copy()),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_positive_class_scores_equal_sklearn(case):
    t, p = _cases()[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = positive_class_scores(t.reshape(50, 100), p.reshape(50, 100))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _sk_scores(t.astype(int), p.astype(int))
    for k, v in ref.items():
        assert ours[k] == pytest.approx(v, abs=1e-12), k
    assert ours["tp"] + ours["fp"] + ours["fn"] + ours["tn"] == t.size


def test_hand_counts_and_f1_identity():
    t = np.array([[1, 1, 0, 0], [0, 0, 0, 0]])
    p = np.array([[1, 0, 1, 0], [0, 0, 0, 0]])
    s = positive_class_scores(t, p)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (1, 1, 1, 5)
    assert s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5
    assert s["iou"] == pytest.approx(1 / 3)
    assert s["accuracy"] == 0.75
    assert s["f1"] == pytest.approx(2 * s["precision"] * s["recall"] / (s["precision"] + s["recall"]))


@pytest.mark.parametrize("case", list(_cases()))
def test_streaming_equals_one_shot(case):
    t, p = _cases()[case]
    rng = np.random.default_rng(1)
    score = np.where(p, 0.5 + 0.5 * rng.random(t.size), 0.5 * rng.random(t.size))
    pm = PixelMetrics(bins=1000)
    for chunk in np.array_split(np.arange(t.size), 7):
        pm.update(t[chunk], score[chunk])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = pm.compute(0.5)
    ref = positive_class_scores(t, score >= 0.5)
    for k in (*metrics.SCORE_KEYS, "tp", "fp", "fn", "tn"):
        assert got[k] == pytest.approx(ref[k], abs=1e-12), k


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("prevalence", [0.03, 0.3])
def test_average_precision_matches_sklearn(seed, prevalence):
    rng = np.random.default_rng(seed)
    n = 40_000
    t = rng.random(n) < prevalence
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * t)))
    ours = average_precision(t, score, bins=1000)
    assert ours == pytest.approx(skm.average_precision_score(t, score), abs=1e-3)
    pm = PixelMetrics(1000)
    for c in np.array_split(np.arange(n), 5):
        pm.update(t[c], score[c])
    assert pm.average_precision() == pytest.approx(ours, abs=1e-12)
    assert pm.roc_auc() == pytest.approx(skm.roc_auc_score(t, score), abs=1e-3)
    assert pm.prevalence == pytest.approx(t.mean())


def test_threshold_free_edge_cases_no_warnings():
    z = np.zeros(100)
    s = np.linspace(0, 1, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert average_precision(z, s) == 0.0  # as sklearn: no positives
        assert average_precision(np.ones(100), s) == pytest.approx(1.0)
        assert np.isnan(PixelMetrics().update(z, s).roc_auc())
        empty = PixelMetrics()
        assert empty.average_precision() == 0.0
        assert empty.compute(0.5)["f1"] == 0.0
        assert empty.prevalence == 0.0
        pr = PixelMetrics().update(np.ones(10), np.full(10, 0.7)).pr_curve()
        assert np.all(pr["precision"] == 1.0)


def test_pr_curve_matches_sklearn_points():
    rng = np.random.default_rng(3)
    t = rng.random(2000) < 0.1
    score = np.round(rng.random(2000) * 0.98, 2)  # scores on inner bin edges of 100 bins
    pr = PixelMetrics(100).update(t, score).pr_curve()
    p, r, th = skm.precision_recall_curve(t, score)
    ours = dict(
        zip(np.round(pr["threshold"], 6), zip(pr["precision"], pr["recall"], strict=True), strict=True)
    )
    for pi, ri, ti in zip(p[:-1], r[:-1], th, strict=True):
        op, orr = ours[np.round(ti, 6)]
        assert op == pytest.approx(pi) and orr == pytest.approx(ri)


def test_best_threshold_and_score_range():
    t = np.array([0, 0, 1, 1, 1])
    s = np.array([-0.5, 0.1, 0.3, 0.6, 0.9])
    pm = PixelMetrics(bins=20, score_range=(-1, 1)).update(t, s)
    thr, f1 = pm.best_threshold()
    assert f1 == 1.0
    assert 0.1 < thr <= 0.3
    assert pm.compute(thr)["f1"] == 1.0
    # out-of-range and NaN scores are clipped / lowest
    pm2 = PixelMetrics(10).update([1, 0, 0], [5.0, -3.0, np.nan])
    assert pm2.compute(0.5)["tp"] == 1 and pm2.compute(0.5)["fp"] == 0


def test_patch_counts_and_keys():
    rng = np.random.default_rng(2)
    t = rng.random((4, 16, 16)) < 0.1
    s = rng.random((4, 16, 16))
    pm = PixelMetrics(100, keep_patches=True)
    pm.update(t[:2], s[:2], keys=["a", "b"])
    pm.update(t[2], s[2], key="c")
    pm.update(t[3], s[3], key="d")
    pc = pm.patch_counts(0.5)
    assert pc["key"] == ["a", "b", "c", "d"]
    for i in range(4):
        ref = positive_class_scores(t[i], s[i] >= 0.5)
        assert (pc["tp"][i], pc["fp"][i], pc["fn"][i], pc["tn"][i]) == (
            ref["tp"],
            ref["fp"],
            ref["fn"],
            ref["tn"],
        )
    tot = pm.counts(0.5)
    assert int(pc["tp"].sum()) == tot["tp"] and int(pc["fp"].sum()) == tot["fp"]
    with pytest.raises(ValueError):
        PixelMetrics().patch_counts(0.5)


def test_torch_like_inputs_duck_typed():
    class FakeTensor:
        def __init__(self, a):
            self.a = a

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.a

    t = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.2, 0.4, 0.6])
    a = PixelMetrics(10).update(FakeTensor(t), FakeTensor(s)).compute(0.5)
    b = PixelMetrics(10).update(t, s).compute(0.5)
    assert a == b


def test_bootstrap_ci_brackets_pooled_value():
    rng = np.random.default_rng(0)
    t = rng.random((30, 32, 32)) < 0.05
    s = np.clip(t * 0.6 + rng.random(t.shape) * 0.5, 0, 1)
    pm = PixelMetrics(100, keep_patches=True).update(t, s, keys=list(range(30)))
    ci = metrics.bootstrap_ci(pm.patch_counts(0.5), n_boot=300, seed=1)
    pooled = pm.compute(0.5)
    for m in ("f1", "iou"):
        lo, hi = ci[m]
        assert lo <= pooled[m] <= hi and hi - lo < 0.5
    assert ci == metrics.bootstrap_ci(pm.patch_counts(0.5), n_boot=300, seed=1)
    none = metrics.bootstrap_ci({k: np.zeros(0) for k in ("tp", "fp", "fn", "tn")})
    assert all(np.isnan(v).all() for v in none.values())


def test_patch_resamples_draws_patches_with_replacement():
    """The one resampler: per replicate, how often each patch was drawn by ``rng.integers(0, n, n)``; a
    Generator goes on with its stream; bootstrap_ci is the percentile interval of the pooled draws."""
    w = np.array(list(metrics.patch_resamples(7, 5, seed=3)))
    rng = np.random.default_rng(3)
    drawn = [rng.integers(0, 7, size=7) for _ in range(5)]
    np.testing.assert_array_equal(w, [np.bincount(d, minlength=7) for d in drawn])
    assert (w.sum(axis=1) == 7).all()
    g = np.random.default_rng(3)
    np.testing.assert_array_equal([*metrics.patch_resamples(7, 2, g), *metrics.patch_resamples(7, 3, g)], w)
    counts = {k: np.arange(7) + i for i, k in enumerate(("tp", "fp", "fn", "tn"))}
    tp, fp, fn = (np.array([counts[k][d].sum() for d in drawn]) for k in ("tp", "fp", "fn"))
    f1 = 2 * tp / (2 * tp + fp + fn)
    assert metrics.bootstrap_ci(counts, ("f1",), n_boot=5, level=0.5, seed=3)["f1"] == tuple(
        np.quantile(f1, [0.25, 0.75])
    )


def test_components_eight_connected_and_size_bins():
    m = np.zeros((20, 20), bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # diagonal chain: one object of 3 px (8-connectivity)
    m[10:14, 10:14] = True  # 16 px
    m[19, 0] = True  # 1 px
    lab, n = metrics.label_components(m)
    assert n == 3
    assert sorted(np.bincount(lab.ravel())[1:].tolist()) == [1, 3, 16]
    assert metrics.size_bin_labels() == ["1–9 px", "10–49 px", "50–199 px", "200+ px"]


def test_object_metrics_by_hand():
    t = np.zeros((100, 100), bool)
    t[0:2, 0:2] = True  # 4 px, predicted 1 of 4 → 25 % → missed at 0.5
    t[10:15, 10:15] = True  # 25 px, predicted 15 of 25 → 60 % → found
    t[30:45, 30:45] = True  # 225 px, predicted fully → found
    p = np.zeros_like(t)
    p[0, 0] = True
    p[10:13, 10:15] = True
    p[30:45, 30:45] = True
    p[80:82, 80:82] = True  # a false-positive blob
    p[90, 90] = p[91, 91] = True  # a second, diagonal FP blob (one component)
    c = ObjectMetrics.components(t, p, 0.5)
    assert c["sizes"].tolist() == [4, 25, 225]
    assert c["found"].tolist() == [False, True, True]
    assert c["fp_blobs"] == 2
    om = ObjectMetrics(cover_fraction=0.5).update(t, p).update(np.zeros((100, 100)), np.zeros((100, 100)))
    r = om.compute()
    assert r["n_objects"] == [1, 1, 0, 1]
    assert r["n_found"] == [0, 1, 0, 1]
    assert r["detection_rate_by_size"][0] == 0 and r["detection_rate_by_size"][1] == 1
    assert np.isnan(r["detection_rate_by_size"][2])
    assert r["detection_rate"] == pytest.approx(2 / 3)
    assert r["area_km2"] == pytest.approx(2 * 100 * 100 * 100 / 1e6)
    assert r["fp_blobs_per_km2"] == pytest.approx(2 / r["area_km2"])
    # a lower cover fraction finds the small one too
    assert ObjectMetrics(cover_fraction=0.25).update(t, p).compute()["n_found"] == [1, 1, 0, 1]
    # batches are split into patches
    both = ObjectMetrics().update(np.stack([t, t]), np.stack([p, p])).compute()
    assert both["n_objects"] == [2, 2, 0, 2] and both["fp_blobs"] == 4


def _two_methods(n=10, seed=0):
    rng = np.random.default_rng(seed)
    a, b = M.PixelMetrics(100, keep_patches=True), M.PixelMetrics(100, keep_patches=True)
    data = []
    for k in range(n):
        y = (rng.random((16, 16)) < 0.1).astype(int)
        sa = np.clip(0.5 * y + 0.6 * rng.random((16, 16)), 0, 1)
        sb = np.clip(0.2 * y + 0.8 * rng.random((16, 16)), 0, 1)
        a.update(y, sa, key=f"p{k}")
        b.update(y, sb, key=f"p{k}")
        data.append((y, sa, sb))
    return a, b, data


def test_paired_bootstrap_scores_both_methods_on_the_same_draw():
    a, b, data = _two_methods()
    res = M.paired_bootstrap(a, b, 0.5, 0.5, ("f1", "iou", "ap"), n_boot=200, seed=3)
    # the point figures are the pooled scores on all patches
    assert res["f1"]["a"] == pytest.approx(a.compute(0.5)["f1"]) and res["ap"]["b"] == pytest.approx(
        b.average_precision()
    )
    # replay the draws by hand: one index set per replicate, both methods scored on it
    rng = np.random.default_rng(3)
    diffs = []
    for _ in range(200):
        idx = rng.integers(0, len(data), size=len(data))
        y = np.concatenate([data[i][0].ravel() for i in idx])
        fa = M.positive_class_scores(y, a.predict(np.concatenate([data[i][1].ravel() for i in idx]), 0.5))[
            "f1"
        ]
        fb = M.positive_class_scores(y, b.predict(np.concatenate([data[i][2].ravel() for i in idx]), 0.5))[
            "f1"
        ]
        diffs.append(fa - fb)
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    assert res["f1"]["low"] == pytest.approx(lo) and res["f1"]["high"] == pytest.approx(hi)
    assert res["f1"]["n_patches"] == len(data) and 0 <= res["f1"]["share_above_0"] <= 1


def test_paired_bootstrap_needs_common_patches_and_kept_histograms():
    a, _, _ = _two_methods()
    other = M.PixelMetrics(100, keep_patches=True).update(np.zeros((4, 4)), np.zeros((4, 4)), key="elsewhere")
    res = M.paired_bootstrap(a, other, 0.5, 0.5, n_boot=10)
    assert res["f1"]["n_patches"] == 0 and np.isnan(res["f1"]["low"])
    with pytest.raises(ValueError, match="keep_patches"):
        M.paired_bootstrap(a, M.PixelMetrics(100).update(np.zeros((4, 4)), np.zeros((4, 4))), 0.5, 0.5)


def test_threshold_bootstrap_moves_with_the_patches():
    a, _, _ = _two_methods(n=12)
    r = M.threshold_bootstrap(a, n_boot=100, seed=1)
    assert r["threshold"] == a.best_threshold("f1")[0] and r["low"] <= r["high"] and r["n_patches"] == 12
    same = M.PixelMetrics(100, keep_patches=True)
    y = np.zeros((8, 8), dtype=int)
    y[:4] = 1
    for k in range(5):  # identical patches: every replicate picks the same threshold
        same.update(y, np.where(y, 0.8, 0.2), key=k)
    r = M.threshold_bootstrap(same, n_boot=50)
    assert r["low"] == r["high"] == r["threshold"]


def test_percentile_interval_takes_the_finite_replicates_only():
    """NaN and inf replicates (a resample without landslides) are left out; none finite gives NaN, NaN."""
    reps = np.array([np.nan, 3.0, 1.0, np.inf, 2.0, -np.inf, 0.0, 4.0])
    assert metrics.percentile_interval(reps, 0.5) == (1.0, 3.0)  # the quartiles of 0…4
    assert metrics.percentile_interval([0.0, 4.0], 1.0) == (0.0, 4.0)
    low, high = metrics.percentile_interval([np.nan, np.inf])
    assert np.isnan(low) and np.isnan(high)
