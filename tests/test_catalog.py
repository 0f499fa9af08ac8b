"""Tests for :mod:`s12ls_utils.catalog` (on the session's small synthetic sample)."""

from __future__ import annotations

import json
import math
import os
import shutil
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import copy_sample
from pyproj import Transformer
from real_format import real_data_fixture  # noqa: F401  (fixture real_data)

from s12ls_utils import catalog, parallel, schema
from s12ls_utils.catalog import (
    CACHE_NAME,
    COLUMNS,
    DTYPES,
    build_catalog,
    catalog_errors,
    locations,
    summarize,
)
from s12ls_utils.sample import REGION_BY_NAME, load_manifest

# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_catalog(small_sample: Path) -> pd.DataFrame:
    return build_catalog(small_sample, progress=False, use_cache=False)


@pytest.fixture(scope="module")
def manifest(small_sample: Path) -> dict[str, dict]:
    return {f["path"]: f for f in load_manifest(small_sample)["files"]}


@pytest.fixture
def sample_copy(small_sample: Path, tmp_path: Path) -> Path:
    return copy_sample(small_sample, tmp_path)


class ReadCounter:
    """Replaces ``catalog.read_patch_meta`` (in-process reads only) and records every file read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        real = catalog.read_patch_meta

        def spy(path, **kwargs):
            self.paths.append(Path(path).name)
            return real(path, **kwargs)

        monkeypatch.setattr(catalog, "read_patch_meta", spy)

    def reset(self) -> None:
        self.paths.clear()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> ReadCounter:
    return ReadCounter(monkeypatch)


def no_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if a worker pool is started."""

    def refuse(*args, **kwargs):
        raise AssertionError("a worker pool was started")

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", refuse)


def touch(path: Path, seconds: int = 5) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def build(data: Path, **kwargs) -> pd.DataFrame:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("scheduler", "synchronous")  # in this process, where ReadCounter sees the reads
    return build_catalog(data, **kwargs)


def without_file_stats(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["size_bytes", "mtime_ns"])


def haversine_km(lon1, lat1, lon2, lat2) -> float:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return float(2 * 6371.0 * np.arcsin(np.sqrt(a)))


# --------------------------------------------------------------------------------------------------
# contents
# --------------------------------------------------------------------------------------------------


def test_catalog_matches_manifest(sample_catalog: pd.DataFrame, manifest: dict[str, dict]) -> None:
    df = sample_catalog
    assert set(df["path"]) == set(manifest)
    assert len(df) == len(manifest)
    assert df.attrs["errors"] == []
    for row in df.itertuples(index=False):
        m = manifest[row.path]
        assert (row.sensor, row.region, row.patch_id, row.key) == (
            m["sensor"],
            m["region"],
            m["patch_id"],
            m["key"],
        )
        assert row.annotated == m["annotated"]
        assert row.n_positive == m["n_positive"]
        assert row.positive_fraction == pytest.approx(m["n_positive"] / schema.PATCH_SIZE**2)
        assert row.event_dates == ",".join(sorted(m["event_dates"]))
        assert row.n_events == len(m["event_dates"]) and row.n_undated_events == m["n_undated_events"]
        assert row.release == "raw"  # recorded in the synthetic manifest
        if m["event_dates"]:
            assert row.event_date == pd.Timestamp(min(m["event_dates"]))
            # the file stores the distinct confidence values: lowest and highest
            assert row.date_confidence == min(m["date_confidences"])
            assert row.date_confidence_max == max(m["date_confidences"])
            first = m["event_dates"].index(min(m["event_dates"]))
            pair = tuple(m["pre_post"][first])
            if m["event_outside_series"] is None:
                assert (row.pre_index, row.post_index) == pair and row.event_position == "inside"
            else:  # the writer's {0, 0} / {14, 14} are never used as indices
                assert (row.pre_index, row.post_index) == (-1, -1)
                assert row.event_position == m["event_outside_series"]
        else:  # not annotated, or annotated without a date (event_date "None")
            assert pd.isna(row.event_date)
            assert row.event_position == ("undated" if m["n_undated_events"] else "none")
            assert math.isnan(row.date_confidence) and math.isnan(row.date_confidence_max)
            assert (row.pre_index, row.post_index) == (-1, -1)
        assert row.ann_ids == ",".join(str(a) for a in m["ann_ids"])
        assert row.n_annotations == len(m["ann_ids"])
        times = pd.DatetimeIndex(m["times"])
        assert row.n_times == len(times) == schema.N_TIME
        assert row.time_start == times[0] and row.time_end == times[-1]
        assert row.epsg == m["epsg"] and row.crs == f"EPSG:{m['epsg']}"
        assert (row.center_x, row.center_y) == (m["center_x"], m["center_y"])
        if m["event_dates"]:
            ev = pd.Timestamp(min(m["event_dates"]))
            assert row.n_before == int((times < ev).sum())
            assert row.n_after == int((times >= ev).sum())
            assert row.event_in_series == (m["event_outside_series"] is None)
        else:
            assert (row.n_before, row.n_after, row.event_in_series) == (0, 0, False)
        assert row.dims_order == "time,x,y"  # the released files' order
        if m["sensor"] == "s2":
            bad = np.asarray(m["bad_fraction"])
            assert row.n_cloudy == int((bad > 0.5).sum())
            assert row.n_clear == int((bad < 0.1).sum())
            assert pd.isna(row.s1_unit)
            assert row.satellite == "s2"
        else:
            assert pd.isna(row.n_cloudy) and pd.isna(row.n_clear)
            assert row.s1_unit == "linear"
            assert row.satellite == {"s1asc": "s1-asc", "s1dsc": "s1-dsc"}[m["sensor"]]


def test_columns_dtypes_and_order(sample_catalog: pd.DataFrame, small_sample: Path) -> None:
    df = sample_catalog
    assert tuple(df.columns) == COLUMNS
    assert {c: str(t) for c, t in df.dtypes.items()} == DTYPES
    assert isinstance(df.index, pd.RangeIndex) and df.index[0] == 0
    order = df[["sensor", "region", "patch_id"]].apply(tuple, axis=1).tolist()
    assert order == sorted(order)
    for row in df.itertuples(index=False):
        f = small_sample / row.path
        assert row.size_bytes == f.stat().st_size and row.mtime_ns == f.stat().st_mtime_ns
    assert df["s1_unit"].isna().sum() == (df["sensor"] == "s2").sum()
    assert df["annotated"].any() and not df["annotated"].all()
    assert (df["event_in_series"] <= df["annotated"]).all()
    json.dumps(df.attrs)  # JSON-able


def test_lonlat(sample_catalog: pd.DataFrame) -> None:
    for row in sample_catalog.itertuples(index=False):
        tr = Transformer.from_crs(row.epsg, 4326, always_xy=True)
        lon, lat = tr.transform(row.center_x, row.center_y)
        assert (row.lon, row.lat) == pytest.approx((lon, lat), abs=1e-9)
        reg = REGION_BY_NAME[row.region]
        # canvases lie within ±12 km (x and y) of the region's centre
        assert haversine_km(row.lon, row.lat, reg.lon, reg.lat) < 20.0


def test_parallel_equals_serial(
    small_sample: Path, sample_catalog: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "MIN_ITEMS_FOR_POOL", 1)
    par = build_catalog(small_sample, workers=2, progress=False, use_cache=False)
    ser = build_catalog(small_sample, scheduler="synchronous", progress=False, use_cache=False)
    pd.testing.assert_frame_equal(par, ser)
    pd.testing.assert_frame_equal(par, sample_catalog)
    assert par.attrs["errors"] == ser.attrs["errors"] == []


def test_locations(sample_catalog: pd.DataFrame, manifest: dict[str, dict]) -> None:
    loc = locations(sample_catalog)
    keys = {m["key"] for m in manifest.values()}
    assert sorted(loc["key"]) == sorted(keys) and loc["key"].is_unique
    for row in loc.itertuples(index=False):
        have = {m["sensor"] for m in manifest.values() if m["key"] == row.key}
        assert {s for s in schema.SENSORS if getattr(row, s)} == have
        assert row.n_sensors == len(have)


def test_summarize(sample_catalog: pd.DataFrame) -> None:
    text = summarize(sample_catalog)
    counts = sample_catalog["sensor"].value_counts()
    for sensor in schema.SENSORS:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(sensor))
        assert line.split()[1] == str(counts.get(sensor, 0))
    assert f"{len(sample_catalog)} patches" in text
    assert "errors: 0" in text


def test_empty_and_invalid_arguments(tmp_path: Path) -> None:
    df = build(tmp_path, use_cache=False)
    assert df.empty and tuple(df.columns) == COLUMNS
    assert {c: str(t) for c, t in df.dtypes.items()} == DTYPES
    assert "0 patches" in summarize(df)
    assert locations(df).empty
    with pytest.raises(ValueError, match="sensor must be 's1asc', 's1dsc' or 's2'"):
        build(tmp_path, sensors=["s3"])
    with pytest.raises(FileNotFoundError):
        build(tmp_path / "missing")


def test_dimension_order_time_y_x(sample_catalog: pd.DataFrame, small_sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    picks = [
        sample_catalog[(sample_catalog.sensor == s) & sample_catalog.annotated].iloc[0]
        for s in ("s2", "s1asc")
    ]
    for row in picks:
        src = small_sample / row.path
        dst = data / row.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        with xr.open_dataset(src, engine="netcdf4") as ds:
            ds = ds.load()
        enc = {}
        for name, var in ds.data_vars.items():
            e = var.encoding
            if var.ndim == 3:
                enc[name] = {
                    "zlib": e.get("zlib", True),
                    "complevel": e.get("complevel", 4),
                    "shuffle": e.get("shuffle", True),
                    "dtype": e.get("dtype", var.dtype),
                }
        enc["time"] = {k: ds.time.encoding[k] for k in ("units", "calendar", "dtype")}
        ds.transpose("time", "y", "x").to_netcdf(dst, engine="netcdf4", format="NETCDF4", encoding=enc)
    out = build(data, use_cache=False)
    assert (out["dims_order"] == "time,y,x").all() and len(out) == 2
    # copied without the manifest: S1 tells its release by its unit (linear), S2 by its S1 sibling
    assert dict(zip(out["sensor"], out["release"], strict=True)) == {"s1asc": "raw", "s2": "raw"}
    expected = sample_catalog.set_index("path").loc[out["path"]].reset_index()
    cols = [c for c in COLUMNS if c not in ("size_bytes", "mtime_ns", "dims_order", "release")]
    pd.testing.assert_frame_equal(out[cols], expected[cols])
    assert (out["n_positive"] > 0).all()


def test_scl_unknown_frames_are_catalogued_as_unusable(
    sample_catalog: pd.DataFrame, manifest: dict[str, dict], small_sample: Path, tmp_path: Path
) -> None:
    """An S2 file with whole SCL 255 frames (unknown quality) is catalogued; those frames count as cloudy,
    never as clear, and a clear frame set to 255 by hand moves from clear to cloudy."""
    s2 = sample_catalog[sample_catalog.sensor == "s2"]
    assert len(s2) and all(manifest[p]["scl_unknown_steps"] for p in s2["path"])
    for row in s2.itertuples(index=False):
        k = len(manifest[row.path]["scl_unknown_steps"])
        assert row.n_cloudy >= k and row.n_clear <= schema.N_TIME - k
    row = s2.sort_values("n_clear", ascending=False).iloc[0]
    bad = np.asarray(manifest[row.path]["bad_fraction"])
    clear = int(np.argmin(bad))
    assert bad[clear] < 0.1
    data = tmp_path / "data"
    (data / "s2").mkdir(parents=True)
    shutil.copyfile(small_sample / row.path, data / row.path)
    with xr.open_dataset(data / row.path, engine="netcdf4") as ds:
        ds = ds.load()
    scl = ds["SCL"].values.copy()
    scl[clear] = 255
    enc = {"time": {k: ds.time.encoding[k] for k in ("units", "calendar", "dtype")}}
    ds.assign(SCL=(ds["SCL"].dims, scl)).to_netcdf(data / "edited.nc", engine="netcdf4", encoding=enc)
    os.replace(data / "edited.nc", data / row.path)
    out = build(data, use_cache=False)
    assert out.attrs["errors"] == [] and len(out) == 1
    assert (out["n_clear"].iloc[0], out["n_cloudy"].iloc[0]) == (row.n_clear - 1, row.n_cloudy + 1)


# --------------------------------------------------------------------------------------------------
# bad files
# --------------------------------------------------------------------------------------------------


def add_bad_files(data: Path, good: str) -> dict[str, str]:
    """Bad files next to the good ones; returns {relative path: expected words in the reason}."""
    s2 = data / "s2"
    raw = (data / good).read_bytes()
    (s2 / "italy_s2_99990.nc").write_bytes(raw[: len(raw) // 2])  # truncated copy
    (s2 / "italy_s2_99999.nc").write_text("this is not a netcdf file\n")
    (s2 / "bad_name.nc").write_bytes(raw)
    (s2 / "italy_s1asc_99998.nc").write_bytes(raw)  # in the wrong folder
    return {
        "s2/italy_s2_99990.nc": "read",  # "not a readable NetCDF/HDF5 file" or "cannot read contents"
        "s2/italy_s2_99999.nc": "not a readable NetCDF",
        "s2/bad_name.nc": "does not match",
        "s2/italy_s1asc_99998.nc": "name says sensor 's1asc'",
    }


def test_bad_files_are_reported_not_fatal(
    sample_copy: Path, sample_catalog: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = sample_catalog[sample_catalog.sensor == "s2"].iloc[0].path
    expected = add_bad_files(sample_copy, good)
    monkeypatch.setattr(parallel, "MIN_ITEMS_FOR_POOL", 1)
    df = build_catalog(sample_copy, workers=2, progress=False)
    pd.testing.assert_frame_equal(without_file_stats(df), without_file_stats(sample_catalog))
    errs = catalog_errors(df)
    assert list(errs.columns) == ["path", "sensor", "reason"]
    assert set(errs["path"]) == set(expected)
    for e in errs.itertuples(index=False):
        assert e.sensor == "s2"
        assert expected[e.path] in e.reason, (e.path, e.reason)
    json.dumps(df.attrs["errors"])
    assert "errors: 4" in summarize(df)


def test_bad_files_are_cached_until_changed(
    sample_copy: Path, sample_catalog: pd.DataFrame, reads: ReadCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = sample_catalog[sample_catalog.sensor == "s2"].iloc[0].path
    add_bad_files(sample_copy, good)
    first = build(sample_copy)
    assert len(reads.paths) == len(sample_catalog) + 2  # the two badly named files are never opened
    reads.reset()
    no_pool(monkeypatch)
    second = build(sample_copy, scheduler="processes", workers=None)
    assert reads.paths == []
    assert second.attrs["errors"] == first.attrs["errors"]
    # repair the truncated file: it is read again and becomes a row
    shutil.copy2(sample_copy / good, sample_copy / "s2/italy_s2_99990.nc")
    touch(sample_copy / "s2/italy_s2_99990.nc")
    third = build(sample_copy)
    assert reads.paths == ["italy_s2_99990.nc"]
    assert "s2/italy_s2_99990.nc" in set(third["path"])
    assert "s2/italy_s2_99990.nc" not in set(catalog_errors(third)["path"])
    assert len(third.attrs["errors"]) == 3


# --------------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------------


def test_cache_second_call_opens_nothing(
    sample_copy: Path, sample_catalog: pd.DataFrame, reads: ReadCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_catalog(sample_copy, progress=False)  # default workers
    assert (sample_copy / CACHE_NAME).is_file()
    pd.testing.assert_frame_equal(without_file_stats(first), without_file_stats(sample_catalog))
    no_pool(monkeypatch)
    cache_mtime = (sample_copy / CACHE_NAME).stat().st_mtime_ns
    second = build_catalog(sample_copy, progress=False)
    assert reads.paths == []
    pd.testing.assert_frame_equal(second, first)
    assert second.attrs["scan"]["n_read"] == 0 and second.attrs["scan"]["n_reused"] == len(first)
    assert (sample_copy / CACHE_NAME).stat().st_mtime_ns == cache_mtime  # nothing changed: not rewritten
    assert not list(sample_copy.glob(CACHE_NAME + ".*"))  # no temporary files left


def test_cache_touch_delete_add(sample_copy: Path, reads: ReadCounter) -> None:
    first = build(sample_copy)
    reads.reset()
    # touch one file → only that one is read again
    victim = first.iloc[3]
    touch(sample_copy / victim.path)
    second = build(sample_copy)
    assert reads.paths == [Path(victim.path).name]
    assert (
        second.loc[second.path == victim.path, "mtime_ns"].item()
        == (sample_copy / victim.path).stat().st_mtime_ns
    )
    pd.testing.assert_frame_equal(without_file_stats(second), without_file_stats(first))
    reads.reset()
    # delete a file → its row is dropped, nothing is read
    gone = first.iloc[-1]
    (sample_copy / gone.path).unlink()
    third = build(sample_copy)
    assert reads.paths == []
    assert gone.path not in set(third["path"]) and len(third) == len(first) - 1
    assert third.attrs["scan"]["n_dropped"] == 1
    reads.reset()
    # add a file → it is read and appears
    src = first[first.sensor == "s2"].iloc[0]
    new_rel = f"s2/{src.region}_s2_99991.nc"
    shutil.copy2(sample_copy / src.path, sample_copy / new_rel)
    fourth = build(sample_copy)
    assert reads.paths == [Path(new_rel).name]
    assert len(fourth) == len(third) + 1
    row = fourth[fourth.path == new_rel].iloc[0]
    assert row.patch_id == 99991 and row.key == f"{src.region}_99991" and row.n_positive == src.n_positive
    # the cache holds exactly what the last call returned
    reads.reset()
    fifth = build(sample_copy)
    assert reads.paths == []
    pd.testing.assert_frame_equal(fifth, fourth)


def test_cache_invalidated_by_settings_and_version(
    sample_copy: Path, reads: ReadCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build(sample_copy)
    n = len(first)
    reads.reset()
    no_scl = build(sample_copy, read_scl=False)
    assert len(reads.paths) == n
    assert no_scl["n_cloudy"].isna().all() and no_scl["n_clear"].isna().all()
    reads.reset()
    build(sample_copy, read_scl=False)
    assert reads.paths == []
    monkeypatch.setattr(catalog, "CACHE_VERSION", catalog.CACHE_VERSION + 1)
    again = build(sample_copy)
    assert len(reads.paths) == n
    pd.testing.assert_frame_equal(again, first)


def test_use_cache_false_neither_reads_nor_writes(sample_copy: Path, reads: ReadCounter) -> None:
    build(sample_copy, use_cache=False)
    assert not (sample_copy / CACHE_NAME).exists()
    build(sample_copy)
    reads.reset()
    build(sample_copy, use_cache=False)
    assert len(reads.paths) > 0


def test_corrupt_cache_is_replaced(sample_copy: Path, reads: ReadCounter, caplog) -> None:
    (sample_copy / CACHE_NAME).write_bytes(b"not parquet")
    df = build(sample_copy)
    assert len(reads.paths) == len(df)
    assert "ignoring unreadable catalog cache" in caplog.text
    reads.reset()
    build(sample_copy)
    assert reads.paths == []


def test_read_only_folder_skips_cache_quietly(sample_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    df = build(sample_copy)
    assert len(df) > 0
    assert not (sample_copy / CACHE_NAME).exists()
    assert not list(sample_copy.glob(CACHE_NAME + ".*"))


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root ignores permissions")
def test_read_only_folder_real_permissions(sample_copy: Path) -> None:  # pragma: no cover - not as root
    sample_copy.chmod(0o555)
    try:
        df = build(sample_copy)
        assert len(df) > 0 and not (sample_copy / CACHE_NAME).exists()
    finally:
        sample_copy.chmod(0o755)


def test_sensor_subset_keeps_other_sensors_cached(
    sample_copy: Path, sample_catalog: pd.DataFrame, reads: ReadCounter
) -> None:
    s2 = build(sample_copy, sensors="s2")
    assert set(s2["sensor"]) == {"s2"} and len(s2) == (sample_catalog.sensor == "s2").sum()
    reads.reset()
    full = build(sample_copy)
    assert len(reads.paths) == len(sample_catalog) - len(s2)  # S2 rows come from the cache
    pd.testing.assert_frame_equal(without_file_stats(full), without_file_stats(sample_catalog))
    reads.reset()
    build(sample_copy, sensors=["s1asc"])
    build(sample_copy)
    assert reads.paths == []


# --------------------------------------------------------------------------------------------------
# worker failures
# --------------------------------------------------------------------------------------------------


class FakePool:
    """Stands in for parallel's ProcessPoolExecutor: runs tasks in-process, the first ``ok`` succeed, the
    rest die."""

    ok = 0

    def __init__(self, max_workers=None, mp_context=None) -> None:
        self.n = 0

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        return None

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        if self.n < self.ok:
            fut.set_result(fn(*args))
        else:
            fut.set_exception(BrokenProcessPool("a child process terminated abruptly"))
        self.n += 1
        return fut


def test_workers_that_cannot_start_fall_back_to_this_process(
    sample_copy: Path, sample_catalog: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setattr(FakePool, "ok", 0)
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", FakePool)
    monkeypatch.setattr(parallel, "MIN_ITEMS_FOR_POOL", 1)
    df = build(sample_copy, scheduler="processes", workers=2)
    pd.testing.assert_frame_equal(without_file_stats(df), without_file_stats(sample_catalog))
    assert "reading" in caplog.text and "in this process" in caplog.text


def test_dead_worker_files_are_reported_and_retried(
    sample_copy: Path, sample_catalog: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakePool, "ok", 1)
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", FakePool)
    monkeypatch.setattr(parallel, "MIN_ITEMS_FOR_POOL", 1)
    df = build(sample_copy, scheduler="processes", workers=2)
    errs = catalog_errors(df)
    assert len(df) > 0 and len(errs) > 0 and len(df) + len(errs) == len(sample_catalog)
    assert errs["reason"].str.contains("worker process failed").all()
    monkeypatch.setattr(FakePool, "ok", 10**6)
    again = build(sample_copy, scheduler="processes", workers=2)  # the failures were not cached: read again
    assert again.attrs["errors"] == []
    pd.testing.assert_frame_equal(without_file_stats(again), without_file_stats(sample_catalog))


# --------------------------------------------------------------------------------------------------
# files as the dataset's own writer writes them (tests/real_format.py)
# --------------------------------------------------------------------------------------------------
def test_real_format_catalog_keeps_every_file(real_data) -> None:
    df = build_catalog(real_data.raw, scheduler="synchronous", progress=False, use_cache=False)
    files = sorted(p.relative_to(real_data.raw).as_posix() for p in real_data.raw.glob("*/*.nc"))
    assert df.attrs["errors"] == [] and sorted(df["path"]) == files  # none dropped
    assert (df["release"] == "raw").all()
    row = df.set_index("path").loc

    multi = row["s2/italy_s2_101.nc"]  # event_date "2018-09-28,2018-08-31"
    assert multi.event_date == pd.Timestamp("2018-08-31") and multi.event_dates == "2018-08-31,2018-09-28"
    assert (multi.pre_index, multi.post_index, multi.event_position) == (4, 5, "inside")
    assert (multi.n_before, multi.n_after, multi.event_in_series) == (5, 10, True)
    assert (multi.date_confidence, multi.date_confidence_max, multi.n_events) == (0.6, 1.0, 2)
    s1 = row["s1asc/italy_s1asc_101.nc"]
    assert s1.event_date == pd.Timestamp("2018-08-31") and s1.s1_unit == "linear"

    for path in ("s2/italy_s2_102.nc", "s1dsc/italy_s1dsc_102.nc"):  # "None" / " NaT "
        u = row[path]
        assert u.annotated and pd.isna(u.event_date) and u.event_dates == ""
        assert (u.n_events, u.n_undated_events, u.event_position) == (1, 1, "undated")
        assert (u.pre_index, u.post_index, u.event_in_series) == (-1, -1, False)
        assert math.isnan(u.date_confidence) and u.n_positive > 0
    mixed = row["s2/italy_s2_103.nc"]
    assert (mixed.n_events, mixed.n_undated_events, mixed.event_position) == (2, 1, "inside")
    assert mixed.event_date == pd.Timestamp("2018-09-28") and mixed.date_confidence == 1.0

    padded = row["s2/italy_s2_104.nc"]
    assert padded.n_times == 15 and padded.time_end == pd.Timestamp("2018-10-12")
    assert (padded.pre_index, padded.post_index) == (5, 6)

    # the writer's {0, 0} / {14, 14}: no pair, never used as indices
    before, after = row["s2/italy_s2_105.nc"], row["s2/italy_s2_106.nc"]
    assert (before.event_position, before.pre_index, before.post_index) == ("before", -1, -1)
    assert (before.n_before, before.n_after) == (0, 15)
    assert (after.event_position, after.pre_index, after.post_index) == ("after", -1, -1)
    assert (after.n_before, after.n_after) == (15, 0)
    neg = row["s2/italy_s2_107.nc"]
    assert not neg.annotated and neg.event_position == "none" and neg.n_events == 0

    ann = df[df.annotated]
    assert (ann.event_position == "undated").sum() == 2 and ann.event_date.isna().sum() == 2
    text = summarize(df)
    assert (
        "annotated patches without a pre/post pair: 4 (event before the series 1, after it 1, undated 2)"
        in text
    )
    assert "release: raw 10" in text
    cov = catalog.time_coverage(df)
    assert cov.loc["s2", "undated event"] == 1 and cov.loc["s2", "event outside series"] == 2
    assert cov.loc["s2", "event inside series"] == 4

    har = build_catalog(real_data.harmonized, scheduler="synchronous", progress=False, use_cache=False)
    assert (har["release"] == "harmonized").all() and set(har["s1_unit"].dropna()) == {"dB"}


# --------------------------------------------------------------------------------------------------
# the catalog against xarray
# --------------------------------------------------------------------------------------------------
def test_catalog_file_values_equal_xarray(small_sample: Path, sample_catalog: pd.DataFrame) -> None:
    """The columns read from the file contents, recomputed with xarray (the straightforward way)."""
    bad_classes = [*schema.SCL_BAD, 255]  # the reference's classes and 255, unknown quality
    for row in sample_catalog.itertuples(index=False):
        with xr.open_dataset(small_sample / row.path) as ds:
            attrs, problems = schema.parse_attrs(dict(ds.attrs))
            assert problems == []
            assert (row.annotated, row.center_x, row.center_y, row.epsg, row.satellite) == (
                attrs.annotated,
                attrs.center_x,
                attrs.center_y,
                attrs.epsg,
                attrs.satellite,
            )
            assert row.ann_ids == ",".join(str(a) for a in attrs.ann_ids)
            assert row.dims_order == ",".join(ds["MASK"].dims)
            assert row.n_positive == np.count_nonzero(ds["MASK"].values[0])
            times = ds["time"].values
            assert (row.time_start, row.time_end, row.n_times) == (times[0], times[-1], len(times))
            if row.sensor == "s2":
                scl = ds["SCL"].values
                bad = np.isin(scl, bad_classes).reshape(len(scl), -1).mean(axis=1)
                assert row.n_cloudy == np.count_nonzero(bad > catalog._CLOUDY_ABOVE)
                assert row.n_clear == np.count_nonzero(bad < catalog._CLEAR_BELOW)
                assert pd.isna(row.s1_unit)
            else:
                vv = ds["VV"].isel(time=len(times) // 2).values
                assert row.s1_unit == ("dB" if np.nanmin(vv) < 0 else "linear")
                assert pd.isna(row.n_cloudy) and pd.isna(row.n_clear)


def test_folder_facts_agree_with_the_generator(
    sample_catalog: pd.DataFrame, manifest: dict[str, dict]
) -> None:
    """The figures chapter 01 quotes, against the generator's own record of what it wrote."""
    from s12ls_utils.catalog import SHARE_FACTS, folder_facts

    files = list(manifest.values())
    facts = folder_facts(sample_catalog)
    assert facts["n_files_total"] == len(files)
    for s in schema.SENSORS:
        assert facts[f"n_files_{s}"] == sum(f["sensor"] == s for f in files)
    per_key = {f["key"]: f["n_positive"] for f in files}
    annotated_keys = {f["key"] for f in files if f["annotated"]}
    assert facts["n_locations"] == len(per_key)
    assert facts["n_regions"] == len({f["region"] for f in files})
    assert facts["n_annotated"] == sum(f["annotated"] for f in files)
    assert facts["n_annotated_locations"] == len(annotated_keys)
    assert facts["annotated_share"] == pytest.approx(len(annotated_keys) / len(per_key))
    pixels = schema.PATCH_SIZE**2
    assert facts["positive_fraction"] == pytest.approx(sum(per_key.values()) / (len(per_key) * pixels))
    assert facts["all_negative_accuracy_pct"] == pytest.approx(
        100 * (1 - facts["positive_fraction"]), abs=0.05
    )
    outside = sum(f["annotated"] and f["event_outside_series"] in ("before", "after") for f in files)
    assert facts["n_event_outside_annotated"] == outside
    s2_clear = [sum(b < 0.1 for b in f["bad_fraction"]) for f in files if f["sensor"] == "s2"]
    assert facts["s2_median_clear_dates"] == pytest.approx(float(np.median(s2_clear)))
    assert facts["n_errors"] == 0
    assert {k for k in SHARE_FACTS if k in facts} == {k for k in SHARE_FACTS if k != "share_below_10px"}


def test_class_balance_long_is_percent_per_region_and_scope() -> None:
    balance = pd.DataFrame(
        {"positive_fraction": [0.01, 0.02], "positive_fraction_annotated": [0.04, float("nan")]},
        index=pd.Index(["a", "b"], name="region"),
    )
    long = catalog.class_balance_long(balance).set_index(["region", "over"])["share"]
    assert long[("a", "all locations")] == pytest.approx(1.0)
    assert long[("a", "annotated locations")] == pytest.approx(4.0)
    assert np.isnan(long[("b", "annotated locations")])
