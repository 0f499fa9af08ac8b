"""Unit tests of s12ls_utils.signatures: index formulas, masking, time alignment, pixel groups, changes,
separability, and the per-patch / whole-sample pipeline on a small synthetic sample."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import copy_sample
from real_format import real_data_fixture  # noqa: F401  (fixture real_data)
from sklearn.metrics import roc_auc_score

from s12ls_utils import catalog as cat_mod
from s12ls_utils import schema
from s12ls_utils import signatures as sig
from s12ls_utils.sample import generate


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def _s2_ds(values: dict[str, float | list], scl, dims=("time", "y", "x")) -> xr.Dataset:
    """A tiny S2 dataset: each band a (1, 1, n) array from a list of n pixel values."""
    n = len(np.atleast_1d(scl))
    data = {}
    for b in ("B02", "B03", "B04", "B08", "B11", "B12"):
        arr = np.asarray(values[b], dtype="int16").reshape(1, 1, n)
        data[b] = (("time", "y", "x"), arr)
    data["SCL"] = (("time", "y", "x"), np.asarray(scl, dtype="int16").reshape(1, 1, n))
    ds = xr.Dataset(data, coords={"time": [np.datetime64("2023-05-01", "ns")]})
    return ds.transpose(*dims)


def _files(sample: Path, sensor: str, **flags) -> list[dict]:
    man = generate.load_manifest(sample)
    out = []
    for f in man["files"]:
        if f["sensor"] != sensor:
            continue
        if "annotated" in flags and f["annotated"] != flags["annotated"]:
            continue
        if flags.get("in_series") and (not f["annotated"] or f["event_outside_series"] is not None):
            continue
        if flags.get("one_event") and len(f["event_dates"]) != 1:
            continue
        out.append(f)
    return out


# --------------------------------------------------------------------------------------------------
# Indices and masks
# --------------------------------------------------------------------------------------------------
BANDS = {"B02": [500, 500], "B03": [700, 700], "B04": [400, 400], "B08": [3000, 3000], "B11": [1500, 1500],
         "B12": [800, 800]}  # fmt: skip


@pytest.mark.parametrize("dims", [("time", "y", "x"), ("time", "x", "y")])
def test_s2_indices_match_hand_computed_values(dims):
    out = sig.s2_indices(_s2_ds(BANDS, [4, 5], dims=dims))
    assert out["NDVI"].dims == ("time", "y", "x")
    expected = {
        "NDVI": (3000 - 400) / (3000 + 400),  # 0.764706
        "NDMI": (3000 - 1500) / (3000 + 1500),  # 0.333333
        "NBR": (3000 - 800) / (3000 + 800),  # 0.578947
        "BSI": ((1500 + 400) - (3000 + 500)) / ((1500 + 400) + (3000 + 500)),  # -0.296296
        "brightness": (500 + 700 + 400 + 3000) / 4 / 10000,  # 0.115
    }
    for name, value in expected.items():
        np.testing.assert_allclose(out[name].values.ravel(), [value, value], rtol=1e-6, err_msg=name)
        assert out[name].dtype == np.float32
    assert out["NDVI"].values.ravel()[0] == pytest.approx(0.764706, abs=1e-6)
    assert out["BSI"].values.ravel()[0] == pytest.approx(-0.296296, abs=1e-6)


def test_masked_pixels_are_nan_never_zero():
    classes = [*range(12), 255]
    n = len(classes)
    ds = _s2_ds({b: [v[0]] * n for b, v in BANDS.items()}, classes)
    out = sig.s2_indices(ds)
    usable = np.isin(classes, [4, 5, 6, 7])
    for name in sig.S2_FEATURES:
        v = out[name].values.ravel()
        assert np.isnan(v[~usable]).all(), name
        assert np.isfinite(v[usable]).all() and (v[usable] != 0).all(), name
    # unmasked on request
    assert np.isfinite(sig.s2_indices(ds, mask=False)["NDVI"].values).all()
    # another class set: dark areas (2) kept, 255 still masked
    kept = sig.s2_indices(ds, bad_classes=schema.SCL_BAD - {2})["NDVI"].values.ravel()
    np.testing.assert_array_equal(np.isfinite(kept), np.isin(classes, [2, 4, 5, 6, 7]))
    usable_share = sig.usable_fraction(ds, "s2", bad_classes=schema.SCL_BAD - {2})
    assert usable_share == pytest.approx([5 / n])


def test_zero_reflectance_gives_nan_not_zero():
    zeros = {b: [0, 0] for b in BANDS}
    out = sig.s2_indices(_s2_ds(zeros, [4, 4]))
    for name in ("NDVI", "NDMI", "NBR", "BSI"):
        assert np.isnan(out[name].values).all(), name


def test_cloud_mask_classes():
    scl = np.r_[np.arange(-1, 14), 254, 255, 256]
    expected = np.isin(scl, [4, 5, 6, 7])  # usable: vegetation, bare, water, unclassified
    np.testing.assert_array_equal(sig.cloud_mask(scl), expected)
    for bad in (*schema.SCL_BAD, 255):  # 255: unknown quality (whole frames in the real files)
        assert not sig.cloud_mask(np.array([bad]))[0]
        assert not sig.cloud_mask(np.array([bad], dtype="int16"))[0]
    da = xr.DataArray(scl[:15].reshape(1, 3, 5), dims=("time", "y", "x"))
    out = sig.cloud_mask(da)
    assert isinstance(out, xr.DataArray) and out.dtype == bool
    np.testing.assert_array_equal(out.values.ravel(), expected[:15])


def test_cloud_mask_class_set_is_a_parameter():
    """Dropping class 2 (dark area, topographic shadow) from the set keeps its pixels; 255 stays unusable."""
    scl = np.array([2, 3, 4, 255], dtype="int16")
    np.testing.assert_array_equal(sig.cloud_mask(scl), [False, False, True, False])
    without_dark = schema.SCL_BAD - {2}
    np.testing.assert_array_equal(sig.cloud_mask(scl, without_dark), [True, False, True, False])
    np.testing.assert_array_equal(sig.cloud_mask(scl, [3, 9]), [True, False, True, False])
    da = xr.DataArray(scl.reshape(1, 1, 4), dims=("time", "y", "x"))
    np.testing.assert_array_equal(sig.cloud_mask(da, without_dark).values.ravel(), [True, False, True, False])
    for bad in ([255], [12], ["2"], "2,3"):
        with pytest.raises(ValueError, match="bad_classes"):
            sig.cloud_mask(scl, bad)


def test_scl_counts_and_shares():
    """Pixel-dates per group and class, and each class's share of a group; 'all unusable' sums the
    unusable values under the class set given."""
    scl = np.array([[[2, 2, 4], [4, 9, 255]], [[4, 4, 4], [2, 5, 255]]], dtype="int16")  # (2, 2, 3)
    groups = {
        "landslide": np.array([[True, True, False], [False, False, False]]),
        "ring": np.array([[False, False, True], [True, False, False]]),
        "rest": np.array([[False, False, False], [False, True, True]]),
    }
    counts = sig.scl_counts(scl, groups)
    got = {(g, c): n for g, c, n in counts[["group", "scl", "n"]].itertuples(index=False)}
    assert got == {
        ("landslide", 2): 2,
        ("landslide", 4): 2,
        ("ring", 4): 3,
        ("ring", 2): 1,
        ("rest", 9): 1,
        ("rest", 5): 1,
        ("rest", 255): 2,
    }
    shares = sig.scl_shares(counts)
    assert shares.loc["2", "landslide"] == pytest.approx(50) and shares.loc["2", "ring"] == pytest.approx(25)
    assert shares.loc["255", "name"] == "unknown quality" and bool(shares.loc["255", "unusable"])
    assert shares.loc["all", "rest"] == pytest.approx(75) and shares.loc["all", "landslide"] == pytest.approx(
        50
    )
    for g in sig.GROUPS:  # every group's classes add up to 100 %
        assert shares.drop(index="all")[g].sum() == pytest.approx(100)
    kept = sig.scl_shares(counts, schema.SCL_BAD - {2})
    assert not bool(kept.loc["2", "unusable"]) and kept.loc["all", "landslide"] == pytest.approx(0)
    empty = sig.scl_shares(sig.scl_counts(scl, {"landslide": groups["landslide"]}))
    assert np.isnan(empty.loc["all", "ring"])


def test_s1_indices_db_and_ratio():
    vv = np.array([0.1, 1.0, np.nan, 0.0], dtype="float32").reshape(1, 1, 4)
    vh = np.array([0.01, 0.1, 0.05, 0.02], dtype="float32").reshape(1, 1, 4)
    ds = xr.Dataset({"VV": (("time", "y", "x"), vv), "VH": (("time", "y", "x"), vh)})
    out = sig.s1_indices(ds)
    np.testing.assert_allclose(out["VV_dB"].values.ravel()[:2], [-10.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(
        out["VH_dB"].values.ravel(), [-20.0, -10.0, 10 * np.log10(0.05), -16.9897], atol=1e-4
    )
    np.testing.assert_allclose(out["VH_VV_dB"].values.ravel()[:2], [-10.0, -10.0], atol=1e-5)
    # NaN stays NaN, a zero (non-positive) linear value becomes NaN, and so does the ratio
    assert np.isnan(out["VV_dB"].values.ravel()[2:]).all()
    assert np.isnan(out["VH_VV_dB"].values.ravel()[2:]).all()


def test_s1_indices_keep_values_already_in_db():
    vv = np.array([-10.0, -12.0], dtype="float32").reshape(1, 1, 2)
    vh = np.array([-20.0, -19.0], dtype="float32").reshape(1, 1, 2)
    ds = xr.Dataset({"VV": (("time", "y", "x"), vv), "VH": (("time", "y", "x"), vh)})
    ds["VV"].attrs["units"] = ds["VH"].attrs["units"] = "dB"
    out = sig.s1_indices(ds)
    np.testing.assert_allclose(out["VV_dB"].values.ravel(), [-10.0, -12.0])
    np.testing.assert_allclose(out["VH_VV_dB"].values.ravel(), [-10.0, -7.0])
    del ds["VV"].attrs["units"], ds["VH"].attrs["units"]  # detected from the (negative) values
    np.testing.assert_allclose(sig.s1_indices(ds)["VV_dB"].values.ravel(), [-10.0, -12.0])


def test_s1_indices_of_a_sample_file_match_io_conversion(small_sample):
    from s12ls_utils.io import open_patch, to_db

    f = _files(small_sample, "s1asc")[0]
    ds = open_patch(small_sample / f["path"], load=True)
    out = sig.s1_indices(ds)
    np.testing.assert_allclose(out["VV_dB"].values, to_db(ds["VV"].values), equal_nan=True)
    ds_db = open_patch(small_sample / f["path"], s1_unit="dB", load=True)
    np.testing.assert_allclose(
        sig.s1_indices(ds_db)["VH_dB"].values, out["VH_dB"].values, equal_nan=True, atol=1e-5
    )


def test_slope_deg_of_a_plane():
    x = np.arange(20) * 10.0
    dem = np.tile(x * np.tan(np.radians(30)), (12, 1))  # rises 30° eastwards
    np.testing.assert_allclose(sig.slope_deg(dem), 30.0, atol=1e-4)
    stack = np.broadcast_to(dem, (3, *dem.shape))
    np.testing.assert_allclose(sig.slope_deg(stack), 30.0, atol=1e-4)
    da = xr.DataArray(stack.transpose(0, 2, 1), dims=("time", "x", "y"))  # any dimension order
    out = sig.slope_deg(da)
    assert out.shape == (12, 20)
    np.testing.assert_allclose(out, 30.0, atol=1e-4)
    assert np.allclose(sig.slope_deg(np.zeros((5, 5))), 0.0)


# --------------------------------------------------------------------------------------------------
# Time alignment
# --------------------------------------------------------------------------------------------------
TIMES = pd.to_datetime(
    ["2023-05-01", "2023-05-06", "2023-05-11 10:30", "2023-05-21", "2023-05-26"], format="ISO8601"
).values


def test_relative_days():
    np.testing.assert_array_equal(sig.relative_days(TIMES, "2023-05-16"), [-15, -10, -5, 5, 10])
    np.testing.assert_array_equal(sig.relative_days(TIMES, dt.date(2023, 5, 11)), [-10, -5, 0, 10, 15])
    np.testing.assert_array_equal(sig.relative_days(TIMES, pd.Timestamp("2023-04-01")), [30, 35, 40, 50, 55])
    for missing in (None, pd.NaT, np.datetime64("NaT"), float("nan"), ""):
        assert np.isnan(sig.relative_days(TIMES, missing)).all()
    # the time of day is dropped
    times = np.array(["2020-01-02T10:30", "2020-01-03T23:59"], dtype="datetime64[ns]")
    assert sig.relative_days(times, np.datetime64("2020-01-01")).tolist() == [1.0, 2.0]


def test_align_event_from_attribute():
    al = sig.align_event(TIMES, [dt.date(2023, 5, 16)], [(2, 3)])
    assert (al.pre, al.post, al.index_source, al.event_source) == (2, 3, "attribute", "attribute")
    assert al.in_series
    assert list(al.phase) == ["pre", "pre", "pre", "post", "post"]


def test_align_event_derives_missing_pre_post():
    al = sig.align_event(TIMES, [dt.date(2023, 5, 16)], [])
    assert (al.pre, al.post, al.index_source) == (2, 3, "event_date")
    # an acquisition on the event day is the post step (the reference writer's searchsorted rule)
    al = sig.align_event(TIMES, [dt.date(2023, 5, 11)], None)
    assert (al.pre, al.post) == (1, 2)
    assert list(al.phase) == ["pre", "pre", "post", "post", "post"]


def test_align_event_outside_series_and_without_event():
    after = sig.align_event(TIMES, [dt.date(2023, 4, 1)], [(0, 0)])  # event precedes the series
    assert after.pre is None and after.post is None and not after.in_series
    assert after.index_source == "outside" and list(after.phase) == ["post"] * 5
    before = sig.align_event(TIMES, [dt.date(2023, 7, 1)], [(4, 4)])  # event follows it
    assert not before.in_series and list(before.phase) == ["pre"] * 5
    derived = sig.align_event(TIMES, [dt.date(2023, 7, 1)], [])  # no attribute: same verdict
    assert derived.index_source == "outside" and not derived.in_series
    none = sig.align_event(TIMES, [], [])
    assert none.event_source == "none" and np.isnan(none.rel_days).all() and list(none.phase) == ["none"] * 5
    region = sig.align_event(TIMES, [], [], fallback_date="2023-05-16")
    assert region.event_source == "region" and (region.pre, region.post) == (2, 3)


def test_align_event_uses_the_first_event():
    al = sig.align_event(TIMES, [dt.date(2023, 5, 16), dt.date(2023, 5, 23)], [(2, 3), (3, 4)])
    assert al.event_date == dt.date(2023, 5, 16) and (al.pre, al.post) == (2, 3)


# --------------------------------------------------------------------------------------------------
# Pixel groups and changes
# --------------------------------------------------------------------------------------------------
def test_pixel_groups_ring_excludes_mask():
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[18:22, 18:22] = 1
    g = sig.pixel_groups(mask, ring_px=3)
    assert set(g) == set(sig.GROUPS)
    assert not (g["ring"] & g["landslide"]).any()
    assert not (g["rest"] & (g["ring"] | g["landslide"])).any()
    assert (g["landslide"] | g["ring"] | g["rest"]).all()  # no gap by default
    assert g["ring"][18, 15] and g["ring"][18, 17] and not g["ring"][18, 14]  # 3 px to the west
    assert not g["ring"][15, 15]  # diagonal: sqrt(3² + 3²) > 3, the ring is a disk, not a square
    # a gap between mask and ring
    gg = sig.pixel_groups(mask, ring_px=3, gap_px=1)
    assert not gg["ring"][18, 17] and gg["ring"][18, 14]
    excluded = ~(gg["landslide"] | gg["ring"] | gg["rest"])
    assert excluded[18, 17] and excluded.sum() == g["ring"].sum() - (gg["ring"] & g["ring"]).sum()


def test_pixel_groups_without_landslide_is_all_rest():
    g = sig.pixel_groups(np.zeros((3, 16, 16)), ring_px=5)
    assert not g["landslide"].any() and not g["ring"].any() and g["rest"].all()


def test_change_features_medians_and_none():
    # 5 steps, 2 pixels: pre = steps 0..1, post = steps 3..4 (step 2 between them is ignored)
    a = np.array([[1.0, 5.0], [3.0, np.nan], [100.0, 100.0], [0.0, np.nan], [2.0, np.nan]])
    arr = a.reshape(5, 1, 2).astype("float32")
    out = sig.change_features({"NDVI": arr}, pre=1, post=3)
    np.testing.assert_allclose(out["NDVI"][0, 0], np.median([0.0, 2.0]) - np.median([1.0, 3.0]))
    assert np.isnan(out["NDVI"][0, 1])  # no valid post value
    assert sig.change_features({"NDVI": arr}, None, 3) is None
    assert sig.change_features({"NDVI": arr}, 0, 0) is None  # event before the series
    assert sig.change_features({"NDVI": arr}, 4, 4) is None  # event after the series
    ds = xr.Dataset({"NDVI": (("time", "y", "x"), arr)})
    dsout = sig.change_features(ds, 1, 3)
    assert isinstance(dsout, xr.Dataset) and dsout["NDVI"].dims == ("y", "x")


def test_nanquantiles_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 7, 33)).astype("float32")
    x[rng.random(x.shape) < 0.3] = np.nan
    x[1, 2] = np.nan  # an all-NaN row
    q, n = sig._nanquantiles(x, [0.25, 0.5, 0.75])
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        ref = np.nanquantile(x.astype("float64"), [0.25, 0.5, 0.75], axis=-1)
    np.testing.assert_allclose(q, ref, rtol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(n, np.isfinite(x).sum(-1))


# --------------------------------------------------------------------------------------------------
# Separability and summaries
# --------------------------------------------------------------------------------------------------
def _changes(ls: list[float], bg: list[float], ring: list[float] | None = None, weights=None) -> pd.DataFrame:
    ring = ring or []
    groups = ["landslide"] * len(ls) + ["rest"] * len(bg) + ["ring"] * len(ring)
    return pd.DataFrame(
        {
            "key": "r_1",
            "sensor": "s2",
            "group": groups,
            "weight": weights if weights is not None else 1.0,
            "NDVI": ls + bg + ring,
        }
    )


def test_separability_known_auc_and_direction():
    ls, bg = [-3.0, -2.0, -1.0, 0.0], [-0.5, 0.5, 1.0, 2.0]
    # P(landslide change < background change): pairs (ls, bg) with ls < bg: 4 + 4 + 4 + 3 = 15 of 16
    t = sig.separability(_changes(ls, bg), features=["NDVI"])
    row = t.iloc[0]
    assert row["auc"] == pytest.approx(15 / 16)
    assert row["auc_raw"] == pytest.approx(1 / 16)
    assert row["direction"] == "drop" and row["rank"] == 1
    assert row["n_landslide"] == 4 and row["n_background"] == 4
    # the direction is fixed from physics, never flipped after looking: an NDVI that rises on landslides
    # scores below 0.5
    t = sig.separability(_changes([-x for x in ls], [-x for x in bg]), features=["NDVI"])
    assert t.iloc[0]["direction"] == "drop" and t.iloc[0]["auc"] == pytest.approx(1 / 16)
    t = sig.separability(
        _changes([-x for x in ls], [-x for x in bg]), features=["NDVI"], directions={"NDVI": "rise"}
    )
    assert t.iloc[0]["direction"] == "rise" and t.iloc[0]["auc"] == pytest.approx(15 / 16)
    mag = sig.separability(
        _changes([-3.0, 3.0], [0.1, -0.2]), features=["NDVI"], directions={"NDVI": "magnitude"}
    )
    assert mag.iloc[0]["auc"] == pytest.approx(1.0)  # a change in either direction


def test_separability_interval_is_over_patches():
    rng = np.random.default_rng(0)
    frames = []
    for k in range(8):  # 8 patches; landslides drop NDVI by a patch-dependent amount
        shift = -0.5 + 0.15 * k
        ls = list(rng.normal(shift, 0.1, 30))
        bg = list(rng.normal(0.0, 0.1, 60))
        frames.append(_changes(ls, bg).assign(key=f"r_{k}"))
    ch = pd.concat(frames, ignore_index=True)
    t = sig.separability(ch, features=["NDVI"], n_boot=300, seed=1).iloc[0]
    assert t["auc_low"] < t["auc"] < t["auc_high"]
    same = sig.separability(ch, features=["NDVI"], n_boot=300, seed=1).iloc[0]
    assert (same["auc_low"], same["auc_high"]) == (t["auc_low"], t["auc_high"])
    one_patch = sig.separability(frames[0], features=["NDVI"], n_boot=50).iloc[0]
    assert np.isnan(one_patch["auc_low"])  # one patch: no interval over patches
    y = np.r_[np.ones(30), np.zeros(60)]
    assert one_patch["auc"] == pytest.approx(roc_auc_score(y, -frames[0]["NDVI"].to_numpy()))


def test_patch_auc_matches_weighted_roc_auc_of_each_replicate():
    # a replicate's AUC (each weight times its patch's count) from the patch × patch matrix equals
    # scikit-learn's weighted AUC of the pixels, ties (rounded scores) and empty patches included
    rng = np.random.default_rng(3)
    n, n_patch = 400, 7
    score = np.round(rng.normal(size=n), 1)
    y = rng.random(n) < 0.3
    w = rng.uniform(0.5, 3.0, n)
    patch = rng.integers(0, n_patch - 1, n)  # the last patch holds no pixel
    auc = sig._patch_auc(score, y, w, patch, n_patch)
    for m in [np.ones(n_patch), *(rng.integers(0, 3, n_patch) for _ in range(5))]:
        weight = w * m[patch]
        if weight[y].sum() == 0 or weight[~y].sum() == 0:
            assert np.isnan(auc(m))
            continue
        assert auc(m) == pytest.approx(roc_auc_score(y, score, sample_weight=weight), rel=1e-12)
    assert np.isnan(auc(np.zeros(n_patch)))


def test_separability_weights_equal_duplicates_and_ring_only_auc():
    ls, bg = [-3.0, -1.0, 0.5], [-2.0, 0.0, 1.0]
    w = [1.0, 1.0, 1.0, 3.0, 1.0, 1.0]
    weighted = sig.separability(_changes(ls, bg, weights=w), features=["NDVI"]).iloc[0]
    dup = sig.separability(_changes(ls, [-2.0, -2.0, -2.0, 0.0, 1.0]), features=["NDVI"]).iloc[0]
    assert weighted["auc"] == pytest.approx(dup["auc"])
    y = np.r_[np.ones(3), np.zeros(3)]
    assert weighted["auc_raw"] == pytest.approx(roc_auc_score(y, ls + bg, sample_weight=w))
    t = sig.separability(_changes([-1.0, -2.0], [5.0], ring=[-1.5, 0.0]), features=["NDVI"]).iloc[0]
    assert t["auc"] == pytest.approx(1 - roc_auc_score([1, 1, 0, 0, 0], [-1, -2, 5, -1.5, 0]))
    assert t["auc_vs_ring"] == pytest.approx(0.75)  # -change: (1, 2) vs (1.5, 0) → 3 of 4 pairs


def test_separability_skips_features_without_both_classes():
    only_bg = _changes([], [0.1, 0.2])
    assert sig.separability(only_bg, features=["NDVI"]).empty


def test_change_summary_weighted_median():
    df = _changes([-1.0, -2.0, -3.0], [0.0, 1.0], weights=[1.0, 1.0, 5.0, 1.0, 1.0])
    s = sig.change_summary(df, features=["NDVI"]).set_index("group")
    assert s.loc["landslide", "median_change"] == -3.0  # the weight-5 pixel dominates
    assert s.loc["rest", "n_pixels"] == 2


def test_aggregate_signatures_bins_and_filters():
    rows = []
    for k in range(6):
        for rel, med in ((-12, 0.6), (-3, 0.6), (4, 0.2), (9, 0.2)):
            rows.append({"key": f"r_{k}", "sensor": "s2", "region": "r", "feature": "NDVI", "group": "landslide",
                         "rel_day": float(rel), "median": med + 0.01 * k, "n_valid": 10, "n_px": 10})  # fmt: skip
    rows.append({**rows[0], "key": "r_9", "n_valid": 1})  # too few valid pixels: ignored
    agg = sig.aggregate_signatures(pd.DataFrame(rows), bin_days=10, min_patches=5)
    assert list(agg["rel_day"]) == [-15.0, -5.0, 5.0]  # (0, 10] -> 5; [-10, 0) -> -5; never straddles 0
    first = agg.iloc[0]
    assert first["n_patches"] == 6 and first["median"] == pytest.approx(0.625)
    post = agg[agg.rel_day == 5.0].iloc[0]  # two dates of a patch in one bin count once
    assert post["n_patches"] == 6 and post["p25"] <= post["median"] <= post["p75"]
    assert sig.aggregate_signatures(pd.DataFrame(rows), min_patches=7).empty


# --------------------------------------------------------------------------------------------------
# Patches and the whole sample
# --------------------------------------------------------------------------------------------------
def test_patch_signature_of_an_annotated_patch(small_sample):
    f = next(f for f in _files(small_sample, "s2", in_series=True, one_event=True) if f["n_positive"] >= 20)
    s = sig.patch_signature(small_sample / f["path"], ring_px=5)
    assert {"key", "sensor", "region", "t", "date", "rel_day", "phase", "group", "feature", "median", "p25",
            "p75", "n_valid"} <= set(s.columns)  # fmt: skip
    assert set(s["group"].astype(str)) == set(sig.GROUPS)
    assert set(s["feature"].astype(str)) == set(sig.S2_FEATURES)
    assert len(s) == 3 * len(sig.S2_FEATURES) * len(f["times"])
    ndvi = s[(s.feature == "NDVI") & (s.group == "landslide") & (s.n_valid > 0)]
    pre = ndvi[ndvi.phase == "pre"]["median"].median()
    post = ndvi[ndvi.phase == "post"]["median"].median()
    assert post < pre - 0.2
    pre_idx, post_idx = f["pre_post"][0]
    assert (s.loc[s.t <= pre_idx, "phase"] == "pre").all() and (
        s.loc[s.t >= post_idx, "phase"] == "post"
    ).all()
    assert ((s["rel_day"] < 0) == (s["phase"] == "pre")).all()


def test_non_annotated_patch_feeds_background_only(small_sample):
    f = _files(small_sample, "s2", annotated=False)[0]
    summary = sig.summarize_patch(small_sample / f["path"], fallback_date=f["times"][7])
    assert set(summary.series["group"].astype(str)) == {"rest"}
    assert set(summary.samples["group"].astype(str)) <= {"rest"}
    assert summary.info["event_source"] == "region" and summary.info["n_landslide_px"] == 0
    without = sig.summarize_patch(small_sample / f["path"])  # no date at all: no change, no relative days
    assert without.samples.empty and without.series["rel_day"].isna().all()


def test_fully_cloudy_date_and_missing_pre_post(small_sample, tmp_path):
    f = _files(small_sample, "s2", in_series=True, one_event=True)[0]
    src = small_sample / f["path"]
    dst = tmp_path / "s2" / Path(f["path"]).name
    dst.parent.mkdir()
    with xr.open_dataset(src) as ds:
        ds = ds.load()
    t_cloud = 1
    ds["SCL"][{"time": t_cloud}] = 9  # cloud high probability everywhere
    del ds.attrs["pre_post_dates"]
    ds.to_netcdf(dst, engine="netcdf4")
    summary = sig.summarize_patch(dst)
    s = summary.series
    cloudy = s[s.t == t_cloud]
    assert (cloudy["n_valid"] == 0).all() and cloudy["median"].isna().all()
    assert s[s.t != t_cloud]["median"].notna().any()
    assert summary.info["n_empty_dates"] >= 1
    assert summary.info["index_source"] == "event_date"
    assert (summary.info["pre_index"], summary.info["post_index"]) == tuple(f["pre_post"][0])
    assert summary.info["has_change"] and len(summary.samples) > 0


@pytest.mark.parametrize("where", ["before", "after"])
def test_event_outside_series_has_no_change(small_sample, tmp_path, where):
    f = _files(small_sample, "s1asc", in_series=True, one_event=True)[0]
    dst = tmp_path / "s1asc" / Path(f["path"]).name
    dst.parent.mkdir()
    with xr.open_dataset(small_sample / f["path"]) as ds:
        ds = ds.load()
    times = pd.DatetimeIndex(ds.time.values)
    event = times[0] - pd.Timedelta(days=30) if where == "before" else times[-1] + pd.Timedelta(days=30)
    idx = 0 if where == "before" else len(times) - 1
    ds.attrs.update(
        event_date=event.strftime("%Y-%m-%d"), pre_post_dates=schema.encode_pre_post([(idx, idx)])
    )
    ds.to_netcdf(dst, engine="netcdf4")
    summary = sig.summarize_patch(dst)
    assert not summary.info["has_change"] and summary.samples.empty
    assert summary.info["index_source"] == "outside"
    rel = summary.series["rel_day"]
    assert rel.notna().all() and ((rel > 0).all() if where == "before" else (rel < 0).all())
    assert set(summary.series["group"].astype(str)) == set(sig.GROUPS)  # still in the time series


def test_collect_signatures_streams_the_sample(small_sample, tmp_path):
    data = copy_sample(small_sample, tmp_path)
    cat = cat_mod.build_catalog(data, progress=False, workers=1)
    res = sig.collect_signatures(
        cat, data, workers=2, progress=False, max_background_px=50, max_landslide_px=80
    )
    assert not res.errors
    assert len(res.patches) == len(cat)
    assert set(res.changes.columns) >= set(sig.ALL_FEATURES) | {"key", "sensor", "region", "group", "weight"}
    per_patch = res.changes.groupby(["key", "sensor", "group"], observed=True).size()
    caps = {"landslide": 80, "ring": 50, "rest": 50}
    assert all(n <= caps[g] for (_, _, g), n in per_patch.items())
    assert (res.changes["weight"] >= 1).all()
    # non-annotated patches contribute background only
    non_ann = set(cat.loc[~cat.annotated, "key"].astype(str))
    groups_of_non_ann = set(
        res.changes.loc[res.changes["key"].astype(str).isin(non_ann), "group"].astype(str)
    )
    assert groups_of_non_ann <= {"rest"}
    # S2 features only on S2 rows, S1 features only on S1 rows
    s2 = res.changes["sensor"].astype(str) == "s2"
    assert res.changes.loc[s2, list(sig.S1_FEATURES)].isna().all().all()
    assert res.changes.loc[~s2, list(sig.S2_FEATURES)].isna().all().all()
    # the same in one process
    one = sig.collect_signatures(
        cat, data, workers=1, progress=False, max_background_px=50, max_landslide_px=80
    )
    pd.testing.assert_frame_equal(one.changes, res.changes)
    pd.testing.assert_frame_equal(one.series, res.series)
    # and the key result on it: a vegetation-loss feature separates landslides
    table = sig.separability(res.changes)
    best = table[(table.sensor == "s2") & table.feature.isin(["NDVI", "NBR", "NDMI"])]["auc"].max()
    assert best > 0.7
    assert table["auc"].is_monotonic_decreasing
    # the figures chapter 02 quotes, against the generator's record of what it wrote
    files = generate.load_manifest(data)["files"]
    facts = sig.collection_facts(res)
    assert facts["n_patches_total"] == len(files)
    assert facts["n_non_annotated"] == sum(not f["annotated"] for f in files)
    outside = sum(f["annotated"] and f["event_outside_series"] in ("before", "after") for f in files)
    assert facts["n_event_outside_annotated"] == outside
    cases = sig.case_table(res.patches)
    assert list(cases.columns) == [
        s for s in ("s2", "s1asc", "s1dsc") if any(f["sensor"] == s for f in files)
    ]
    assert cases.loc["patches"].sum() == len(files)
    assert cases.loc["annotated"].sum() == sum(f["annotated"] for f in files)
    top = sig.separability_facts(table, sig.separability(res.changes, features=["slope_deg"]))
    assert top["best_vegetation_auc"] == best
    assert top["top_auc_s2"] == table.loc[table.sensor == "s2", "auc"].max()
    by_region = sig.leading_by_region(res.changes, table)
    assert set(zip(by_region.sensor, by_region.feature, strict=True)) <= {
        (s, top[f"top_feature_{s}"]) for s in ("s2", "s1asc", "s1dsc")
    }


def test_change_table_and_facts():
    s2 = _changes([-0.5, -0.4, -0.6], [0.0, 0.1], ring=[0.05])
    s1 = _changes([1.0], [2.0]).rename(columns={"NDVI": "VH_dB"}).assign(sensor="s1asc")
    table = sig.change_table(pd.concat([s2, s1], ignore_index=True))
    assert list(table.columns) == ["landslide", "ring", "rest"]
    facts = sig.change_facts(table)
    assert facts["ndvi_change_landslide"] == pytest.approx(-0.5)
    assert facts["ndvi_change_ring"] == pytest.approx(0.05)
    assert facts["vh_change_landslide_s1asc"] == pytest.approx(1.0)
    assert np.isnan(facts["vh_change_ring_s1asc"])  # no ring pixels in that sensor


def test_signatures_mask_the_class_set_given(small_sample, tmp_path):
    """Class 2 masks pixels by default; without it in the class set they count as valid. The scl table
    counts every pixel-date of each group of each S2 patch once."""
    data = copy_sample(small_sample, tmp_path)
    cat = cat_mod.build_catalog(data, sensors="s2", progress=False, workers=1)
    default = sig.collect_signatures(cat, data, sensors="s2", workers=1, progress=False, max_background_px=10)
    keep_dark = sig.collect_signatures(
        cat,
        data,
        sensors="s2",
        workers=1,
        progress=False,
        max_background_px=10,
        bad_classes=schema.SCL_BAD - {2},
    )
    assert default.settings["bad_classes"] == sorted(schema.SCL_BAD)
    assert keep_dark.settings["bad_classes"] == sorted(schema.SCL_BAD - {2})
    pd.testing.assert_frame_equal(default.scl, keep_dark.scl)  # the classes themselves do not change
    shares = sig.scl_shares(default.scl)
    dark = float(shares.loc["2", "landslide"]) if "2" in shares.index else 0.0
    assert dark > 0, "the sample's landslides hold no dark-area pixel-date"
    key = ["key", "t", "group", "feature"]
    a = default.series.set_index(key)["n_valid"]
    b = keep_dark.series.set_index(key)["n_valid"].reindex(a.index)
    assert (b >= a).all() and (b > a).any()
    # the landslide pixel-dates regained are exactly those of class 2
    ndvi = default.series[default.series["feature"].astype(str) == "NDVI"]
    gain = (b - a).xs("NDVI", level="feature").xs("landslide", level="group").sum()
    dark_n = default.scl[(default.scl["group"] == "landslide") & (default.scl["scl"] == 2)]["n"].sum()
    assert gain == dark_n
    # every pixel-date once: per patch and group, pixels x dates
    n = default.scl.groupby(["key", "group"], observed=True)["n"].sum()
    px = ndvi.groupby(["key", "group"], observed=True)["n_px"].first().astype("int64") * 15
    pd.testing.assert_series_equal(n.sort_index(), px.reindex(n.index).sort_index(), check_names=False)


def test_collect_signatures_reports_broken_files(small_sample, tmp_path):
    data = copy_sample(small_sample, tmp_path)
    cat = cat_mod.build_catalog(data, sensors="s2", progress=False, workers=1)
    (data / cat["path"].iloc[0]).write_bytes(b"not a netcdf file")
    res = sig.collect_signatures(cat, data, sensors="s2", workers=1, progress=False)
    assert len(res.errors) == 1 and res.errors[0]["path"].endswith(Path(cat["path"].iloc[0]).name)
    assert len(res.patches) == len(cat) - 1


def test_pick_gallery(small_sample):
    cat = cat_mod.build_catalog(small_sample, progress=False, workers=1, use_cache=False)
    keys = sig.pick_gallery(cat, n=2)
    assert 1 <= len(keys) <= 2 and len(set(keys)) == len(keys)
    s2 = cat[(cat.sensor == "s2") & cat.annotated & cat.event_in_series]
    assert set(keys) <= set(s2["key"].astype(str))
    s1 = cat[(cat.sensor == "s1asc") & cat.annotated & cat.event_in_series]
    keys_s1 = sig.pick_gallery(cat, n=2, sensor="s1asc")  # chapter 02 run without Sentinel-2
    assert 1 <= len(keys_s1) and set(keys_s1) <= set(s1["key"].astype(str))
    assert sig.pick_gallery(cat[cat.sensor == "s2"], n=2, sensor="s1asc") == []
    with pytest.raises(ValueError):
        sig.pick_gallery(cat, sensor="s3")


def test_indices_and_usable_fraction_for_either_sensor(small_sample):
    from s12ls_utils import io

    cat = cat_mod.build_catalog(small_sample, progress=False, workers=1, use_cache=False)
    for sensor in ("s2", "s1asc"):
        row = cat[cat.sensor == sensor].iloc[0]
        ds = io.open_patch(small_sample / row.path, load=True)
        feats = sig.indices(ds, sensor)
        assert sig.KEY_FEATURE[sensor] in feats
        usable = sig.usable_fraction(ds, sensor)
        assert usable.shape == (ds.sizes["time"],) and ((usable >= 0) & (usable <= 1)).all()
        if sensor == "s2":
            expected = sig.cloud_mask(ds["SCL"]).mean(dim=("y", "x")).values
            np.testing.assert_allclose(usable, expected)
        else:
            assert usable.max() > 0.5  # radar sees through clouds


# --------------------------------------------------------------------------------------------------
# Files as the dataset's own writer writes them (tests/real_format.py)
# --------------------------------------------------------------------------------------------------
def test_align_event_uses_the_earliest_event_whatever_the_order():
    al = sig.align_event(TIMES, [dt.date(2023, 5, 23), dt.date(2023, 5, 16)], [(3, 4), (2, 3)])
    assert al.event_date == dt.date(2023, 5, 16) and (al.pre, al.post) == (2, 3)
    assert al.index_source == "attribute" and al.attribute_agrees  # its own pair, not the first listed
    wrong = sig.align_event(TIMES, [dt.date(2023, 5, 16)], [(0, 1)])  # attribute disagrees: time axis wins
    assert (wrong.pre, wrong.post, wrong.index_source, wrong.attribute_agrees) == (2, 3, "event_date", False)
    undated = sig.align_event(TIMES, [None], [(0, 0)], undated=True)
    assert undated.event_date is None and undated.position == "undated" and not undated.in_series
    assert list(undated.phase) == ["none"] * 5 and np.isnan(undated.rel_days).all()
    mixed = sig.align_event(TIMES, [None, dt.date(2023, 5, 16)], [(0, 0), (2, 3)])
    assert (mixed.event_date, mixed.pre, mixed.post, mixed.index_source) == (
        dt.date(2023, 5, 16),
        2,
        3,
        "attribute",
    )


def test_summarize_real_format_patches(real_data):
    f = real_data.files
    multi = sig.summarize_patch(f["multi"])  # event_date "2018-09-28,2018-08-31"
    info = multi.info
    assert info["event_date"] == pd.Timestamp("2018-08-31") and info["n_events"] == 2
    assert (info["pre_index"], info["post_index"], info["index_source"]) == (4, 5, "attribute")
    assert info["event_position"] == "inside" and info["has_change"]
    s = multi.series
    assert set(s.loc[s.t <= 4, "phase"]) == {"pre"} and set(s.loc[s.t >= 5, "phase"]) == {"post"}
    assert s.loc[s.t == 5, "rel_day"].eq(0).all()  # the acquisition on the event day is post-event

    for case in ("undated", "undated_nat"):
        u = sig.summarize_patch(f[case]).info
        assert u["annotated"] and pd.isna(u["event_date"]) and u["event_position"] == "undated"
        assert (u["n_undated_events"], u["pre_index"], u["post_index"]) == (1, -1, -1)
        assert not u["has_change"] and u["event_source"] == "none"
    for case in ("before", "after"):
        o = sig.summarize_patch(f[case]).info
        assert o["event_position"] == case and o["index_source"] == "outside" and not o["has_change"]
    padded = sig.summarize_patch(f["padded"])
    assert (padded.info["pre_index"], padded.info["post_index"]) == (5, 6)
    assert padded.series["date"].nunique() == 12 and padded.series["t"].nunique() == 15


def test_signatures_harmonise_raw_s2(real_data):
    """NDVI of the raw series does not jump at 2022-01-25 (ESA's +1000 offset is removed on read)."""
    raw = sig.summarize_patch(real_data.files["across_raw"]).series
    ref = sig.summarize_patch(real_data.files["across_harmonized"]).series
    cols = ["group", "feature", "t", "median", "n_valid"]
    pd.testing.assert_frame_equal(raw[cols], ref[cols])
    ndvi = raw[(raw.feature == "NDVI") & (raw.group == "rest")].set_index("t")["median"]
    assert abs(ndvi[6] - ndvi[5]) < 0.01  # 2022-01-20 → 2022-01-30, both before the event
