"""Tests for :mod:`s12ls_utils.io`: canonical dimension order, feature stacking by name, Sentinel-1 units,
fast metadata and the errors raised for files that cannot be read."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from helpers import rewrite
from real_format import ACROSS_TIMES, real_data_fixture  # noqa: F401  (fixture real_data)

from s12ls_utils import io, schema
from s12ls_utils.io import (
    PatchMeta,
    PatchReadError,
    detect_s1_unit,
    open_patch,
    patch_features,
    read_patch_meta,
    to_db,
    to_linear,
)


def _pick(manifest: dict, sensor: str, annotated: bool, underscore: bool = False) -> dict:
    recs = [
        r
        for r in manifest["files"]
        if r["sensor"] == sensor and r["annotated"] == annotated and (not underscore or "_" in r["region"])
    ]
    assert recs, f"the sample lacks a {sensor} patch with annotated={annotated} underscore={underscore}"
    # a plain one where there is one: one dated event inside an unpadded series
    plain = [
        r for r in recs if not r["n_padded"] and not r["n_undated_events"] and not r["event_outside_series"]
    ]
    return (plain or recs)[0]


@pytest.fixture(scope="session")
def s2_rec(manifest) -> dict:
    """An annotated S2 patch whose region name holds an underscore (usa_alaska / usa_puertorico …)."""
    return _pick(manifest, "s2", True, underscore=True)


@pytest.fixture(scope="session")
def s1_rec(manifest) -> dict:
    return _pick(manifest, "s1asc", True)


@pytest.fixture(scope="session")
def s2_path(sample_dir, s2_rec) -> Path:
    return sample_dir / s2_rec["path"]


@pytest.fixture(scope="session")
def s1_path(sample_dir, s1_rec) -> Path:
    return sample_dir / s1_rec["path"]


def in_tmp(src: Path, tmp_path: Path, name: str | None = None) -> Path:
    """Target path ``tmp_path/<sensor folder>/<name>`` for a modified copy of ``src``."""
    return tmp_path / src.parent.name / (name or src.name)


def raw_var(path: Path, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        return np.asarray(ds[name][:]), ds[name].dimensions


def as_yx(arr: np.ndarray, dims: tuple[str, ...]) -> np.ndarray:
    """A raw (time, x, y) or (time, y, x) array in the canonical (time, y, x) order."""
    return np.transpose(arr, [dims.index(d) for d in schema.CANONICAL_DIMS])


# --------------------------------------------------------------------------------------------------
# open_patch: canonical order whatever the file's order
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["s2", "s1"])
def test_open_patch_canonical_dims_for_both_orders(which, s2_path, s1_path, tmp_path):
    ref = s2_path if which == "s2" else s1_path
    # the generator writes (time, x, y), as the released files; the writer's code says (time, y, x)
    card = rewrite(ref, in_tmp(ref, tmp_path), lambda ds: ds.transpose("time", "y", "x"))
    assert raw_var(card, "MASK")[1] == ("time", "y", "x")  # the reference writer code's order
    assert raw_var(ref, "MASK")[1] == ("time", "x", "y")  # the released files' (and the generator's)
    with open_patch(card) as a, open_patch(ref) as b:
        for ds in (a, b):
            assert set(ds.data_vars) == {*schema.VARIABLES[card.parent.name], "spatial_ref"}
            for name, da in ds.data_vars.items():
                if name != "spatial_ref":
                    assert da.dims == ("time", "y", "x"), (name, da.dims)
            assert ds["spatial_ref"].dims == ()
            assert dict(ds.sizes) == {"time": 15, "y": 128, "x": 128}
            assert ds.y.dtype == np.float64 and bool((np.diff(ds.y.values) == -10.0).all())  # north → south
            assert ds.x.dtype == np.float64 and bool((np.diff(ds.x.values) == 10.0).all())
            assert np.issubdtype(ds.time.dtype, np.datetime64)
        np.testing.assert_array_equal(a.MASK[0].values, b.MASK[0].values)
        np.testing.assert_array_equal(a.x.values, b.x.values)
        np.testing.assert_array_equal(a.y.values, b.y.values)
        band = "B04" if which == "s2" else "VH"
        np.testing.assert_array_equal(a[band].values, b[band].values)
        # and both equal the raw values transposed by name
        for path, ds in ((card, a), (ref, b)):
            raw, dims = raw_var(path, band)
            np.testing.assert_array_equal(ds[band].values, as_yx(raw, dims))
        mask_raw, mdims = raw_var(card, "MASK")
        np.testing.assert_array_equal(a.MASK[0].values, as_yx(mask_raw, mdims)[0])
        # dtypes are kept
        assert a.MASK.dtype == np.uint8 and a.DEM.dtype == np.int16 and a[band].dtype == b[band].dtype


def test_open_patch_load_reads_everything_and_closes(s2_path, tmp_path):
    moved = tmp_path / "s2" / s2_path.name
    moved.parent.mkdir()
    shutil.copyfile(s2_path, moved)
    ds = open_patch(moved, load=True)
    os.remove(moved)  # values are in memory: nothing is read from the file any more
    assert ds.B02.values.shape == (15, 128, 128) and ds.B02.dims == ("time", "y", "x")
    assert int(ds.MASK[0].sum()) > 0


def test_open_patch_rejects_unknown_unit(s1_path):
    with pytest.raises(ValueError, match="s1_unit must be"):
        open_patch(s1_path, s1_unit="decibel")


# --------------------------------------------------------------------------------------------------
# patch_features: channels by name
# --------------------------------------------------------------------------------------------------
def test_patch_features_s2(s2_path, tmp_path):
    shuffled = rewrite(s2_path, in_tmp(s2_path, tmp_path), lambda ds: ds[list(reversed(list(ds.data_vars)))])
    with netCDF4.Dataset(shuffled) as raw:
        names = [v for v in raw.variables if v in schema.FEATURES["s2"]]
    assert names == list(reversed(schema.FEATURES["s2"]))  # the file's order really is reversed
    for path in (s2_path, shuffled):
        with open_patch(path) as ds:
            feats = patch_features(ds)
            assert feats.shape == (15, 11, 128, 128) and feats.dtype == np.float32
            assert np.array_equal(patch_features(ds, "s2"), feats)
            for c, name in enumerate(schema.FEATURES["s2"]):
                np.testing.assert_array_equal(feats[:, c], ds[name].values.astype("float32"))
            np.testing.assert_array_equal(feats[:, 0], ds.B02.values)
            np.testing.assert_array_equal(feats[:, -1], ds.DEM.values)
    with open_patch(s2_path) as a, open_patch(shuffled) as b:
        np.testing.assert_array_equal(patch_features(a), patch_features(b))


def test_patch_features_s1(s1_path, tmp_path):
    shuffled = rewrite(
        s1_path, in_tmp(s1_path, tmp_path), lambda ds: ds[["MASK", "DEM", "spatial_ref", "VH", "VV"]]
    )
    for path in (s1_path, shuffled):
        with open_patch(path) as ds:
            feats = patch_features(ds)
            assert feats.shape == (15, 3, 128, 128) and feats.dtype == np.float32
            for sensor in ("s1asc", "s1dsc"):
                np.testing.assert_array_equal(patch_features(ds, sensor), feats)
            np.testing.assert_array_equal(feats[:, 0], ds.VV.values)
            np.testing.assert_array_equal(feats[:, 1], ds.VH.values)
            np.testing.assert_array_equal(feats[:, 2], ds.DEM.values)
    # features of a reference-order file equal those of the card-order file
    ref = rewrite(
        s1_path, in_tmp(s1_path, tmp_path, "italy_s1asc_1.nc"), lambda ds: ds.transpose("time", "y", "x")
    )
    with open_patch(s1_path) as a, open_patch(ref) as b:
        np.testing.assert_array_equal(patch_features(a), patch_features(b))


def test_patch_features_missing_and_wrong_sensor(s1_path):
    with open_patch(s1_path) as ds:
        with pytest.raises(KeyError, match="B02"):
            patch_features(ds, "s2")
        with pytest.raises(ValueError, match="sensor must be 's1asc', 's1dsc' or 's2'"):
            patch_features(ds, "s1")
        with pytest.raises(KeyError, match="VH"):
            patch_features(ds.drop_vars("VH"))


# --------------------------------------------------------------------------------------------------
# Sentinel-1 units
# --------------------------------------------------------------------------------------------------
def test_to_db_and_to_linear_arrays():
    lin = np.array([1.0, 10.0, 0.1, 0.0, -1.0, np.nan, 0.037], dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "no warning" for zeros / negatives
        db = to_db(lin)
    assert db.dtype == np.float32
    np.testing.assert_allclose(db[[0, 1, 2]], [0.0, 10.0, -10.0], atol=1e-5)
    assert np.isnan(db[3:6]).all()
    np.testing.assert_allclose(db[6], 10 * np.log10(0.037), rtol=1e-6)
    np.testing.assert_allclose(to_linear(db[[0, 1, 2, 6]]), lin[[0, 1, 2, 6]], rtol=1e-5)
    assert np.isnan(to_linear(np.array([np.nan]))).all()
    assert to_db([100.0]).tolist() == pytest.approx([20.0], abs=1e-5)  # lists are accepted
    np.testing.assert_allclose(to_linear(np.array([-20.0, 0.0, 3.0])), [0.01, 1.0, 10**0.3])


def test_to_db_and_to_linear_dataarrays():
    da = xr.DataArray(
        np.array([[1.0, 0.01], [0.0, -2.0]], dtype="float32"),
        dims=("y", "x"),
        coords={"y": [1.0, 0.0], "x": [0.0, 1.0]},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db = to_db(da)
    assert isinstance(db, xr.DataArray) and db.dims == ("y", "x")
    np.testing.assert_allclose(db.values[0], [0.0, -20.0], atol=1e-5)
    assert np.isnan(db.values[1]).all()
    back = to_linear(db)
    assert isinstance(back, xr.DataArray)
    np.testing.assert_allclose(back.values[0], [1.0, 0.01], rtol=1e-5)


@pytest.mark.parametrize(
    ("values", "unit"),
    [
        ([0.1, 0.02, np.nan, 0.5], "linear"),
        ([-12.0, np.nan, -20.5], "dB"),
        ([np.nan, np.nan], "linear"),
        ([], "linear"),
        ([0.0, 0.3], "linear"),
        ([np.nan, -0.1, 0.2, np.inf], "dB"),
        ([-np.inf, 0.3], "linear"),
        ([[0.1, np.nan], [np.nan, -3.0]], "dB"),
    ],
)
def test_detect_s1_unit(values, unit):
    assert detect_s1_unit(np.asarray(values, dtype="float32")) == unit


def _to_db_file(src: Path, dst: Path) -> Path:
    def conv(ds):
        for b in schema.S1_BANDS:
            ds[b] = (10 * np.log10(ds[b])).astype("float32")

    return rewrite(src, dst, conv)


def test_s1_units_native_and_detected(s1_path, tmp_path):
    dbf = _to_db_file(s1_path, in_tmp(s1_path, tmp_path))
    with open_patch(s1_path) as lin, open_patch(dbf) as db:
        assert lin.attrs["s1_unit_native"] == "linear" and lin.VV.attrs["units"] == "linear"
        assert (
            db.attrs["s1_unit_native"] == "dB"
            and db.VV.attrs["units"] == "dB"
            and db.VH.attrs["units"] == "dB"
        )
        assert lin.VV.dtype == db.VV.dtype == np.float32
    assert read_patch_meta(s1_path).s1_unit == "linear"
    assert read_patch_meta(dbf).s1_unit == "dB"


def test_s2_has_no_s1_unit(s2_path):
    with open_patch(s2_path, s1_unit="dB") as ds:
        assert "s1_unit_native" not in ds.attrs
    assert read_patch_meta(s2_path).s1_unit is None


def test_s1_linear_file_read_as_db(s1_path, tmp_path):
    def zeros(ds):  # non-positive power (zero) must come out as NaN in dB
        ds["VH"][:, :3, :3] = 0.0
        ds["VV"][0, 5, 5] = 0.0

    src = rewrite(s1_path, in_tmp(s1_path, tmp_path), zeros)
    with (
        open_patch(src) as nat,
        open_patch(src, s1_unit="dB") as db,
        open_patch(src, s1_unit="linear") as same,
    ):
        assert db.attrs["s1_unit_native"] == "linear"
        assert db.VV.attrs["units"] == db.VH.attrs["units"] == "dB"
        assert same.VV.attrs["units"] == "linear"
        for b in schema.S1_BANDS:
            lin = nat[b].values
            assert db[b].dtype == np.float32 and db[b].dims == ("time", "y", "x")
            with np.errstate(divide="ignore", invalid="ignore"):
                want = np.where(lin > 0, 10 * np.log10(lin.astype("float64")), np.nan)
            np.testing.assert_allclose(db[b].values, want, rtol=1e-5, atol=1e-4, equal_nan=True)
            np.testing.assert_array_equal(same[b].values, lin)  # already linear: untouched
        assert np.isnan(db.VH.values[:, :3, :3]).all() and np.isnan(db.VV.values[0, 5, 5])
        assert np.nanmin(db.VV.values) > -50 and np.nanmax(db.VV.values) < 20  # plausible dB range
        # other variables are untouched
        np.testing.assert_array_equal(db.DEM.values, nat.DEM.values)


def test_s1_db_file_read_as_linear_round_trips(s1_path, tmp_path):
    dbf = _to_db_file(s1_path, in_tmp(s1_path, tmp_path))
    with (
        open_patch(s1_path) as orig,
        open_patch(dbf, s1_unit="linear") as lin,
        open_patch(dbf, s1_unit="dB") as db,
    ):
        assert lin.attrs["s1_unit_native"] == "dB"
        assert lin.VV.attrs["units"] == "linear" and db.VV.attrs["units"] == "dB"
        for b in schema.S1_BANDS:
            assert lin[b].dtype == np.float32
            np.testing.assert_allclose(lin[b].values, orig[b].values, rtol=2e-6, equal_nan=True)
            np.testing.assert_array_equal(np.isnan(lin[b].values), np.isnan(orig[b].values))
            assert (lin[b].values[np.isfinite(lin[b].values)] > 0).all()


def test_s1_unit_detection_skips_an_empty_middle_step(s1_path, tmp_path):
    def to_db_with_empty_middle(ds):
        for b in schema.S1_BANDS:
            ds[b] = (10 * np.log10(ds[b])).astype("float32")
        ds["VV"][ds.sizes["time"] // 2] = np.nan  # a date without valid VV (e.g. outside the swath)

    dbf = rewrite(s1_path, in_tmp(s1_path, tmp_path), to_db_with_empty_middle)
    with open_patch(dbf) as ds:
        assert ds.attrs["s1_unit_native"] == "dB"
    with open_patch(dbf, s1_unit="dB") as ds:
        assert np.isfinite(ds.VV.values).mean() > 0.5
    assert read_patch_meta(dbf).s1_unit == "dB"


# --------------------------------------------------------------------------------------------------
# read_patch_meta
# --------------------------------------------------------------------------------------------------
def test_read_patch_meta_typed_fields(s2_path, s2_rec):
    m = read_patch_meta(s2_path)
    assert isinstance(m, PatchMeta)
    assert m.path == s2_path
    assert "_" in m.region and m.region == s2_rec["region"]  # e.g. usa_alaska
    assert m.sensor == "s2" and m.patch_id == s2_rec["patch_id"] and isinstance(m.patch_id, int)
    assert m.key == s2_rec["key"] == f"{m.region}_{m.patch_id}"
    assert m.annotated is True
    assert m.event_dates and all(type(d) is dt.date for d in m.event_dates)
    assert [d.isoformat() for d in m.event_dates] == s2_rec["event_dates"]
    assert m.pre_post == [tuple(p) for p in s2_rec["pre_post"]]
    assert all(
        isinstance(p, tuple) and len(p) == 2 and all(isinstance(i, int) for i in p) for p in m.pre_post
    )
    assert m.ann_ids == s2_rec["ann_ids"] and len(m.ann_bboxes) == len(m.ann_ids)
    assert all(len(b) == 4 and b[0] < b[2] and b[1] < b[3] for b in m.ann_bboxes)
    assert m.date_confidences and all(0 < c <= 1 for c in m.date_confidences)
    assert m.epsg == s2_rec["epsg"] and m.satellite == "s2"
    assert (m.center_x, m.center_y) == pytest.approx((s2_rec["center_x"], s2_rec["center_y"]))
    assert m.times.dtype == np.dtype("datetime64[ns]") and m.times.shape == (15,)
    assert (np.diff(m.times) >= np.timedelta64(0)).all()  # sorted; a padded series repeats its last date
    assert np.unique(m.times).size == 15 - s2_rec["n_padded"]
    assert [str(t)[:10] for t in m.times] == s2_rec["times"]
    with open_patch(s2_path) as ds:
        assert m.n_positive == int(ds.MASK[0].sum()) == s2_rec["n_positive"] > 0
        np.testing.assert_array_equal(m.times, ds.time.values)
        # x[64], y[64]: the patch centre, a pixel corner (x/y are the pixels' top/left edges), metres
        assert (m.center_x, m.center_y) == (float(ds.x[64]), float(ds.y[64]))
    assert m.dims_order == "time,x,y"  # as the released files
    assert m.s1_unit is None
    assert m.bad_fraction is not None and m.bad_fraction.shape == (15,)
    assert ((m.bad_fraction >= 0) & (m.bad_fraction <= 1)).all()
    np.testing.assert_allclose(m.bad_fraction, s2_rec["bad_fraction"])
    assert m.n_pixels == 128 * 128
    assert read_patch_meta(s2_path, read_scl=False).bad_fraction is None


def test_read_patch_meta_s1_and_not_annotated(sample_dir, manifest, s1_path, s1_rec):
    m = read_patch_meta(s1_path)
    assert (
        m.sensor == "s1asc" and m.satellite == "s1-asc" and m.s1_unit == "linear" and m.bad_fraction is None
    )
    assert m.n_positive == s1_rec["n_positive"] > 0
    rec = _pick(manifest, "s1dsc", False)
    m = read_patch_meta(sample_dir / rec["path"])
    assert m.annotated is False and m.event_dates == [] and m.pre_post == [] and m.ann_ids == []
    assert m.n_positive == 0 and m.s1_unit == "linear" and m.sensor == "s1dsc"


def test_read_patch_meta_matches_manifest_for_every_file(sample_dir, manifest):
    for rec in manifest["files"]:
        m = read_patch_meta(sample_dir / rec["path"])
        assert (m.region, m.sensor, m.patch_id, m.annotated, m.n_positive) == (
            rec["region"],
            rec["sensor"],
            rec["patch_id"],
            rec["annotated"],
            rec["n_positive"],
        )
        assert [d.isoformat() for d in m.event_dates] == rec["event_dates"]
        assert [str(t)[:10] for t in m.times] == rec["times"]


def test_read_patch_meta_either_dim_order(s2_path, s1_path, tmp_path):
    for src in (s2_path, s1_path):
        other = rewrite(src, in_tmp(src, tmp_path), lambda ds: ds.transpose("time", "y", "x"))
        a, b = read_patch_meta(other), read_patch_meta(src)
        assert (a.dims_order, b.dims_order) == ("time,y,x", "time,x,y")
        assert a.n_positive == b.n_positive > 0
        np.testing.assert_array_equal(a.times, b.times)
        assert a.s1_unit == b.s1_unit
        if a.bad_fraction is not None:
            np.testing.assert_allclose(a.bad_fraction, b.bad_fraction)


# --------------------------------------------------------------------------------------------------
# Unreadable inputs → PatchReadError naming the file and the problem
# --------------------------------------------------------------------------------------------------
def _truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _random(src: Path, dst: Path) -> Path:
    dst.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return dst


def _empty(src: Path, dst: Path) -> Path:
    dst.write_bytes(b"")
    return dst


def _text(src: Path, dst: Path) -> Path:
    dst.write_text("region,sensor,id\nitaly,s2,1\n")
    return dst


def _no_mask(src: Path, dst: Path) -> Path:
    return rewrite(src, dst, lambda ds: ds.drop_vars("MASK"))


def _no_vv(src: Path, dst: Path) -> Path:
    return rewrite(src, dst, lambda ds: ds.drop_vars("VV"))


def _no_scl(src: Path, dst: Path) -> Path:
    return rewrite(src, dst, lambda ds: ds.drop_vars("SCL"))


def _attr(name: str, value: str | None) -> Callable[[Path, Path], Path]:
    def build(src: Path, dst: Path) -> Path:
        shutil.copyfile(src, dst)
        with netCDF4.Dataset(dst, "a") as ds:
            if value is None:
                ds.delncattr(name)
            else:
                ds.setncattr(name, value)
        return dst

    return build


def _time_without_units(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    with netCDF4.Dataset(dst, "a") as ds:
        ds["time"].delncattr("units")
    return dst


def _no_time_dim(src: Path, dst: Path) -> Path:
    return rewrite(src, dst, lambda ds: ds.isel(time=0, drop=True))


def _missing(src: Path, dst: Path) -> Path:
    return dst  # never written


#: (id, source: "s2"/"s1", builder, phrase in the message, also raised by open_patch?)
UNREADABLE = [
    ("truncated", "s2", _truncated, "not a readable", True),
    ("truncated-s1", "s1", _truncated, "not a readable", True),
    ("random-bytes", "s2", _random, "not a readable", True),
    ("empty", "s1", _empty, "not a readable", True),
    ("text", "s2", _text, "not a readable", True),
    ("missing-file", "s2", _missing, "file does not exist", True),
    ("no-time-dim", "s2", _no_time_dim, "time", True),
    ("no-mask", "s2", _no_mask, "variable 'MASK' is missing", False),
    ("no-vv", "s1", _no_vv, "variable 'VV' is missing", False),
    ("no-scl", "s2", _no_scl, "variable 'SCL' is missing", False),
    (
        "unparsable-attr",
        "s2",
        _attr("pre_post_dates", "pre 7"),
        "attribute 'pre_post_dates' is unparsable",
        False,
    ),
    ("missing-attr", "s1", _attr("crs", None), "attribute 'crs' is missing", False),
    ("time-without-units", "s1", _time_without_units, "units", False),
]


@pytest.mark.parametrize(
    ("source", "build", "phrase", "open_raises"), [u[1:] for u in UNREADABLE], ids=[u[0] for u in UNREADABLE]
)
def test_unreadable_inputs_raise_patch_read_error(
    source, build, phrase, open_raises, s2_path, s1_path, tmp_path
):
    src = s2_path if source == "s2" else s1_path
    dst = in_tmp(src, tmp_path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    path = build(src, dst)
    with pytest.raises(PatchReadError) as err:
        read_patch_meta(path)
    assert err.value.path == path
    assert str(path) in str(err.value) and phrase in err.value.problem
    assert str(err.value) == f"{path}: {err.value.problem}"
    if open_raises:
        for load in (False, True):
            with pytest.raises(PatchReadError) as err:
                open_patch(path, load=load)
            assert err.value.path == path and str(path) in str(err.value)
            assert phrase in err.value.problem


def test_read_patch_meta_bad_file_name(s2_path, tmp_path):
    path = tmp_path / "s2" / "wrongname.nc"
    path.parent.mkdir()
    shutil.copyfile(s2_path, path)
    with pytest.raises(PatchReadError, match="does not match") as err:
        read_patch_meta(path)
    assert err.value.path == path
    with open_patch(path) as ds:  # open_patch does not need the name
        assert ds.B02.dims == ("time", "y", "x")


def test_patch_read_error_is_an_exception():
    e = PatchReadError("/x/italy_s2_1.nc", "boom")
    assert isinstance(e, Exception) and e.path == Path("/x/italy_s2_1.nc") and e.problem == "boom"
    assert str(e) == "/x/italy_s2_1.nc: boom"
    assert io.S1_UNITS == ("linear", "dB")


# --------------------------------------------------------------------------------------------------
# Files as the dataset's own writer writes them; releases and the Sentinel-2 offset
# --------------------------------------------------------------------------------------------------
def test_real_format_meta_sorted_events_and_units(real_data):
    f = real_data.files
    m = read_patch_meta(f["multi"])
    assert m.event_dates == [dt.date(2018, 8, 31), dt.date(2018, 9, 28)]  # "2018-09-28,2018-08-31"
    assert m.pre_post == [(4, 5), (8, 9)] and m.event_steps.pair == (4, 5)
    assert m.date_confidences == [0.6, 1.0] and m.dims_order == "time,y,x"
    assert (m.satellite, m.release, m.s1_unit) == ("s2", "raw", None)
    assert (m.center_x, m.center_y) == (700640.0, 4899360.0)  # x[64], y[64]: pixel edges
    s1 = read_patch_meta(f["multi_s1"])
    assert (s1.satellite, s1.s1_unit, s1.release) == ("s1-asc", "linear", "raw")
    assert s1.event_steps.event_date == dt.date(2018, 8, 31)
    h1 = read_patch_meta(f["s1_harmonized"])
    assert (h1.s1_unit, h1.release) == ("dB", "harmonized")
    for case in ("undated", "undated_nat"):
        u = read_patch_meta(f[case])
        assert u.annotated and u.event_dates == [] and u.n_undated_events == 1 and u.pre_post == []
        assert u.event_steps.position == "undated" and u.event_steps.pair is None
    mixed = read_patch_meta(f["mixed"])
    assert mixed.event_dates == [dt.date(2018, 9, 28)] and mixed.n_undated_events == 1
    padded = read_patch_meta(f["padded"])
    assert padded.times.size == 15 and (np.diff(padded.times) >= np.timedelta64(0)).all()
    assert int((np.diff(padded.times) == np.timedelta64(0)).sum()) == 3
    assert read_patch_meta(f["before"]).event_steps.position == "before"
    assert read_patch_meta(f["after"]).event_steps.position == "after"


def test_open_patch_real_format_reads_padded_series(real_data):
    with open_patch(real_data.files["padded"], load=True) as ds:
        assert ds.sizes == {"time": 15, "y": 128, "x": 128}
        assert tuple(ds["B04"].dims) == schema.CANONICAL_DIMS and "spatial_ref" in ds
        t = ds["time"].values
        assert (t[-4:] == t[-1]).all()


def test_open_patch_removes_the_raw_s2_offset(real_data):
    raw_path, har_path = real_data.files["across_raw"], real_data.files["across_harmonized"]
    with netCDF4.Dataset(raw_path) as nc:
        stored = np.asarray(nc["B04"][:])
    with open_patch(raw_path, load=True) as ds, open_patch(har_path, load=True) as ref:
        assert ds.attrs["release"] == "raw" and ref.attrs["release"] == "harmonized"
        steps = io.s2_offset_steps(ds["time"].values)
        assert steps.tolist() == [False] * 6 + [True] * 9  # 2022-01-25 is step 6
        assert ds.attrs["s2_offset_removed"] == 9 and ref.attrs["s2_offset_removed"] == 0
        for b in schema.S2_BANDS:
            assert ds[b].dtype == np.int16
            np.testing.assert_array_equal(ds[b].values, ref[b].values)  # = the harmonized release
        # stored raw values carry +1000 from 2022-01-25; no-data 0 stays 0; SCL, MASK, DEM untouched
        assert (stored[steps, 5, 5] == ds["B04"].values[steps, 5, 5] + 1000).all()
        assert (stored[~steps] == ds["B04"].values[~steps]).all()
        assert (ds["B04"].values[:, 0, 0] == 0).all()
        with netCDF4.Dataset(raw_path) as nc:
            for v in ("SCL", "MASK", "DEM"):
                np.testing.assert_array_equal(ds[v].values, np.asarray(nc[v][:]))
        with np.errstate(divide="ignore", invalid="ignore"):
            ndvi = (ds.B08.values[:, 5, 5] - ds.B04.values[:, 5, 5]) / (
                ds.B08.values[:, 5, 5] + ds.B04.values[:, 5, 5]
            )
        # no jump at 2022-01-25 (step 5 → 6 is before the event on 2022-02-04)
        assert abs(ndvi[6] - ndvi[5]) < 0.01
    with open_patch(raw_path, load=True, harmonize=False) as kept:
        np.testing.assert_array_equal(kept["B04"].values, stored)
        assert kept.attrs["release"] == "raw" and kept.attrs["s2_offset_removed"] == 0
    with netCDF4.Dataset(har_path) as nc:  # a harmonized file is never changed
        with open_patch(har_path, load=True) as ref:
            np.testing.assert_array_equal(ref["B04"].values, np.asarray(nc["B04"][:]))


def test_file_release_order(real_data, tmp_path, sample_dir, caplog):
    f = real_data.files
    assert io.file_release(f["multi"]) == "raw" and io.file_release(f["across_harmonized"]) == "harmonized"
    # path component first: even an S1 file in dB under data_raw is raw
    assert io.file_release(f["multi_s1"], s1_unit="dB") == "raw"
    # the synthetic sample records its release in its manifest
    assert io.file_release(next(sample_dir.glob("s2/*.nc"))) == "raw"
    # elsewhere: S1 by its unit, S2 unknown (values left as stored, logged once per folder)
    plain = tmp_path / "plain"
    for case, sensor in (("multi_s1", "s1asc"), ("s1_harmonized", "s1asc"), ("across_raw", "s2")):
        dst = plain / case / sensor / f[case].name
        dst.parent.mkdir(parents=True)
        shutil.copyfile(f[case], dst)
    assert io.file_release(plain / "multi_s1" / "s1asc" / f["multi_s1"].name) == "raw"
    assert io.file_release(plain / "s1_harmonized" / "s1asc" / f["s1_harmonized"].name) == "harmonized"
    unknown = plain / "across_raw" / "s2" / f["across_raw"].name
    assert io.file_release(unknown) == "unknown"
    with caplog.at_level("WARNING", logger="s12ls_utils.io"), open_patch(unknown, load=True) as ds:
        assert ds.attrs["release"] == "unknown" and ds.attrs["s2_offset_removed"] == 0
        with netCDF4.Dataset(unknown) as nc:
            np.testing.assert_array_equal(ds["B04"].values, np.asarray(nc["B04"][:]))
    assert "release (raw or harmonized)" in caplog.text
    # a manifest that records the release decides for its data root
    (plain / "across_raw" / io.RELEASE_MANIFEST).write_text('{"release": "harmonized"}')
    assert io.file_release(unknown) == "harmonized"


def _siblings_root(real_data, root: Path, s1_cases: tuple[str, ...]) -> Path:
    """A data root that names no release and has no manifest: the raw ``across_raw`` S2 file and copies of
    the S1 files ``s1_cases`` (each in its own orbit folder, as ``<root>/<sensor>/<file>``)."""
    f = real_data.files
    (root / "s2").mkdir(parents=True)
    shutil.copyfile(f["across_raw"], root / "s2" / f["across_raw"].name)
    for i, case in enumerate(s1_cases):
        sensor = ("s1asc", "s1dsc")[i % 2]
        (root / sensor).mkdir(exist_ok=True)
        shutil.copyfile(f[case], root / sensor / f"italy_{sensor}_{200 + i}.nc")
    return root / "s2" / f["across_raw"].name


def test_s2_release_from_s1_siblings(real_data, tmp_path, caplog):
    """A raw S2 file in a folder that names no release is raw when the Sentinel-1 files of its data root
    are linear (its offset is removed on read), harmonized when they are in dB; without siblings, or with
    siblings that disagree, it stays unknown and is read as stored, with a warning."""
    f = real_data.files
    with netCDF4.Dataset(f["across_raw"]) as nc:
        stored = np.asarray(nc["B04"][:])
    with open_patch(f["across_harmonized"], load=True) as ref:
        physical = ref["B04"].values
    steps = io.s2_offset_steps(np.array(ACROSS_TIMES, dtype="datetime64[ns]"))
    assert steps.any() and (stored[steps] != physical[steps]).any()

    linear = _siblings_root(real_data, tmp_path / "linear", ("multi_s1", "undated_nat"))
    assert io.file_release(linear) == "raw" and read_patch_meta(linear).release == "raw"
    with caplog.at_level("WARNING", logger="s12ls_utils.io"), open_patch(linear, load=True) as ds:
        assert ds.attrs["release"] == "raw" and ds.attrs["s2_offset_removed"] == int(steps.sum())
        np.testing.assert_array_equal(ds["B04"].values, physical)  # the offset is gone
    assert "release (raw or harmonized)" not in caplog.text

    decibel = _siblings_root(real_data, tmp_path / "decibel", ("s1_harmonized",))
    assert io.file_release(decibel) == "harmonized"
    with open_patch(decibel, load=True) as ds:
        np.testing.assert_array_equal(ds["B04"].values, stored)

    caplog.clear()
    for name, cases in (("alone", ()), ("mixed", ("multi_s1", "s1_harmonized"))):
        path = _siblings_root(real_data, tmp_path / name, cases)
        with caplog.at_level("WARNING", logger="s12ls_utils.io"), open_patch(path, load=True) as ds:
            assert ds.attrs["release"] == "unknown" and ds.attrs["s2_offset_removed"] == 0
            np.testing.assert_array_equal(ds["B04"].values, stored)
    assert "release (raw or harmonized)" in caplog.text and "disagree on the unit" in caplog.text
    # a sibling added later is seen (the answer is cached per state of the orbit folders)
    late = tmp_path / "alone"
    (late / "s1asc").mkdir()
    shutil.copyfile(f["multi_s1"], late / "s1asc" / "italy_s1asc_300.nc")
    assert io.file_release(late / "s2" / f["across_raw"].name) == "raw"


def test_scl_unknown_frames_are_unusable(sample_dir, s2_rec, tmp_path):
    """SCL 255 (unknown quality, whole frames in the real files) counts as unusable in the catalog's
    per-date share; a frame set to 255 by hand goes from partly usable to unusable."""
    src = sample_dir / s2_rec["path"]
    steps = s2_rec["scl_unknown_steps"]
    assert steps, "every S2 file of the sample holds SCL 255 frames"
    m = read_patch_meta(src)
    assert (m.bad_fraction[steps] == 1).all()
    clear = int(np.argmin(m.bad_fraction))
    assert m.bad_fraction[clear] < 1 and clear not in steps

    def to_unknown(ds):
        scl = ds["SCL"].values.copy()
        scl[clear] = schema.SCL_UNKNOWN
        return ds.assign(SCL=(ds["SCL"].dims, scl))

    edited = rewrite(src, in_tmp(src, tmp_path), to_unknown)
    bad = read_patch_meta(edited).bad_fraction
    assert bad[clear] == 1 and (bad[steps] == 1).all()
    np.testing.assert_allclose(np.delete(bad, clear), np.delete(m.bad_fraction, clear))


def test_fill_mask_and_read_tyx(tmp_path):
    """One fill handling (every element of _FillValue and missing_value; a NaN fill marks itself) and one
    dimension order, read through open_nc."""
    path = tmp_path / "f.nc"
    a = np.arange(2 * 3 * 4, dtype="int16").reshape(2, 3, 4)  # stored (time, x, y)
    with netCDF4.Dataset(path, "w") as ds:
        for d, n in zip(("time", "x", "y"), a.shape, strict=True):
            ds.createDimension(d, n)
        v = ds.createVariable("V", "i2", ("time", "x", "y"), fill_value=np.int16(5))
        v.missing_value = np.array([7, 20], dtype="int16")
        v[:] = a
        f = ds.createVariable("F", "f4", ("time", "y", "x"), fill_value=np.float32("nan"))
        f[:] = a.transpose(0, 2, 1).astype("float32")
    with io.open_nc(path) as ds:
        v, f = ds.variables["V"], ds.variables["F"]
        tyx = io.read_tyx(v)
        np.testing.assert_array_equal(tyx, a.transpose(0, 2, 1))
        np.testing.assert_array_equal(io.read_tyx(v, 1), a[1].T)
        np.testing.assert_array_equal(io.read_tyx(f), tyx)  # stored (time, y, x): the same array
        np.testing.assert_array_equal(
            np.flatnonzero(io.fill_mask(v, tyx)), np.flatnonzero(np.isin(tyx, [5, 7, 20]))
        )
        assert io.fill_mask(f, io.read_tyx(f)) is None  # NaN fill
        assert io.fill_mask({"_FillValue": 999}, tyx) is None  # declared, nowhere
        assert np.isnan(io.fill_to_nan(v, tyx)).sum() == 3
        with pytest.raises(PatchReadError, match="variable 'W' is missing"):
            io.require_variables(ds, "V", "W")
    with pytest.raises(PatchReadError, match="cannot read contents .ValueError: boom"), io.open_nc(path):
        raise ValueError("boom")
    path.write_bytes(b"not netcdf")
    with pytest.raises(PatchReadError, match="not a readable NetCDF/HDF5 file"), io.open_nc(path):
        pass


def test_harmonize_s2_values():
    times = np.array(["2022-01-24", "2022-01-25", "2022-06-01"], dtype="datetime64[ns]")
    v = np.array([[1500, 0], [1500, 0], [900, 11000]], dtype="int16")[:, :, None]  # (T, y, x)
    out = io.harmonize_s2(v, times, "raw")
    assert out.dtype == np.int16 and out is not v
    np.testing.assert_array_equal(out[..., 0], [[1500, 0], [500, 0], [0, 10000]])
    np.testing.assert_array_equal(v[..., 0], [[1500, 0], [1500, 0], [900, 11000]])  # input untouched
    for release in ("harmonized", "unknown"):
        assert io.harmonize_s2(v, times, release) is v
    # time on another axis; float input
    np.testing.assert_array_equal(
        io.harmonize_s2(np.moveaxis(v, 0, -1).astype("float32"), times, "raw", time_axis=-1)[:, 0],
        [[1500, 500, 0], [0, 0, 10000]],
    )
    np.testing.assert_array_equal(  # no int16 overflow below the offset
        io.harmonize_s2(np.array([-32768], dtype="int16"), times[1:2], "raw"), [0]
    )
    with pytest.raises(ValueError, match="release"):
        io.harmonize_s2(v, times, "data_raw")
    with pytest.raises(ValueError, match="time stamps"):
        io.harmonize_s2(v, times[:2], "raw")


# --------------------------------------------------------------------------------------------------
# read_patch_meta: the mask count whatever the storage, and attribute problems named
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "encoding",
    [
        {},  # contiguous, as in the real raw files
        {"zlib": True, "shuffle": False, "chunksizes": (15, 128, 128)},  # deflate alone, one chunk
        {"zlib": True, "shuffle": True, "chunksizes": (4, 128, 128)},  # several steps per chunk
        {"zlib": True, "shuffle": True, "chunksizes": (15, 64, 64)},  # chunks smaller than a step
    ],
    ids=["contiguous", "deflate", "4-steps", "tiles"],
)
def test_meta_counts_the_first_mask_step_whatever_the_storage(s1_path, tmp_path, encoding):
    """The positive count is that of time step 0, however MASK is chunked and compressed."""
    with xr.open_dataset(s1_path, engine="netcdf4") as ds:
        ds = ds.load()
    for v in ds.variables.values():
        v.encoding.clear()
    mask = ds["MASK"].values.copy()
    mask[1:] = 1 - mask[1:]  # later steps differ from step 0, so reading past it would show
    ds["MASK"] = (ds["MASK"].dims, mask)
    dst = in_tmp(s1_path, tmp_path)
    dst.parent.mkdir(parents=True)
    ds.to_netcdf(dst, engine="netcdf4", encoding={"MASK": encoding})
    assert read_patch_meta(dst).n_positive == np.count_nonzero(mask[0]) > 0


def test_meta_names_a_missing_attribute(s2_path, tmp_path):
    no_crs = rewrite(s2_path, tmp_path / "x" / s2_path.name, lambda ds: ds.attrs.pop("crs") and ds)
    with pytest.raises(PatchReadError, match="'crs' is missing"):
        read_patch_meta(no_crs)


def test_require_sensors_names_what_a_folder_lacks(tmp_path):
    (tmp_path / "s2").mkdir()
    (tmp_path / "s2" / "italy_s2_1.nc").write_bytes(b"")
    (tmp_path / "s1asc").mkdir()  # a folder without files does not count
    assert io.sensors_present(tmp_path) == ["s2"]
    assert io.require_sensors(tmp_path, ["s2"]) == ["s2"]
    assert io.require_sensors(tmp_path, "s2") == ["s2"]
    with pytest.raises(ValueError, match=r"parameter 'sensors': .* has no s1asc, s1dsc files \(it has: s2\)"):
        io.require_sensors(tmp_path, ["s2", "s1asc", "s1dsc"])
    with pytest.raises(ValueError, match=r"parameter 'sensor': .* has no s1asc files"):
        io.require_sensors(tmp_path, ["s1asc"], name="sensor")
    assert io.sensors_present(tmp_path / "missing") == []


def test_location_files_are_the_sensors_files_of_one_key(small_sample):
    """Against the folder listing: each key's files per sensor, in the order asked for, missing sensors left out."""
    by_key: dict[str, set[str]] = {}
    for p in small_sample.glob("*/*.nc"):
        by_key.setdefault(schema.parse_filename(p.name).key, set()).add(p.parent.name)
    order = ("s2", "s1dsc", "s1asc")
    for key, sensors in by_key.items():
        files = io.location_files(small_sample, key, order)
        assert list(files) == [s for s in order if s in sensors]
        assert all(p.parent.name == s and p.is_file() for s, p in files.items())
    assert any(len(s) < 3 for s in by_key.values())  # the sample has locations without every sensor
    assert io.location_files(small_sample, "nowhere_1") == {}
