"""Tests for :mod:`s12ls_utils.alignment` (on the session's small synthetic sample and hand-made dates)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import defaultdict
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import copy_sample
from real_format import real_data_fixture  # noqa: F401  (fixture real_data)

from s12ls_utils import alignment, parallel, schema
from s12ls_utils.alignment import (
    CHECKS,
    MISMATCH_COLUMNS,
    aligned_groups,
    availability,
    check_consistency,
    combination_counts,
    combination_label,
    combinations,
    count_between,
    first_clear_after,
    nearest_acquisitions,
    time_alignment,
)
from s12ls_utils.catalog import build_catalog
from s12ls_utils.sample import load_manifest

ALL3 = "s1asc+s1dsc+s2"


# --------------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_catalog(small_sample: Path) -> pd.DataFrame:
    return build_catalog(small_sample, progress=False, use_cache=False, workers=1)


@pytest.fixture(scope="module")
def by_key(small_sample: Path) -> dict[str, dict[str, dict]]:
    """``{key: {sensor: manifest record}}`` from the generator's own record."""
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for f in load_manifest(small_sample)["files"]:
        out[f["key"]][f["sensor"]] = f
    return dict(out)


def _pick(by_key: dict, annotated: bool | None = None) -> str:
    """A key present in all three sensors (annotated or not, if asked)."""
    for key, recs in sorted(by_key.items()):
        if set(recs) == set(schema.SENSORS) and (annotated is None or recs["s2"]["annotated"] == annotated):
            return key
    pytest.skip("the sample has no such location")


def _path(data: Path, key: str, sensor: str) -> Path:
    region, pid = key.rsplit("_", 1)
    return data / sensor / schema.patch_filename(region, sensor, int(pid))


def _catalog(data: Path) -> pd.DataFrame:
    return build_catalog(data, progress=False, use_cache=False, workers=1)


# --------------------------------------------------------------------------------------------------
# availability
# --------------------------------------------------------------------------------------------------
def test_combinations_and_labels():
    assert combinations() == [ALL3, "s1asc+s1dsc", "s1asc+s2", "s1dsc+s2", "s1asc", "s1dsc", "s2"]
    assert combinations(("s2", "s1asc")) == ["s1asc+s2", "s1asc", "s2"]
    assert combination_label({"s2", "s1asc"}) == "s1asc+s2"
    assert combination_label(["s1dsc"]) == "s1dsc"
    with pytest.raises(ValueError, match="sensor must be 's1asc', 's1dsc' or 's2'"):
        combinations(("s3",))


def test_availability_equals_the_manifest(sample_catalog, by_key):
    av = availability(sample_catalog)
    assert av["key"].is_unique
    assert set(av["key"]) == set(by_key)
    for row in av.itertuples(index=False):
        recs = by_key[row.key]
        for s in schema.SENSORS:
            assert getattr(row, s) == (s in recs), (row.key, s)
        assert row.combination == combination_label(recs)
        assert row.n_sensors == len(recs)
        assert row.annotated == any(r["annotated"] for r in recs.values())
        assert row.region == next(iter(recs.values()))["region"]


def test_combination_counts_sum_and_match(sample_catalog, by_key):
    n = len(by_key)
    overall = combination_counts(sample_catalog, by=())
    assert list(overall.columns) == ["combination", "locations"]
    assert overall["locations"].sum() == n
    expected = pd.Series([combination_label(r) for r in by_key.values()]).value_counts().to_dict()
    assert dict(zip(overall["combination"], overall["locations"], strict=True)) == expected
    # canonical order: most sensors first
    order = [c for c in combinations() if c in expected]
    assert overall["combination"].tolist() == order

    per = combination_counts(sample_catalog)  # by region and annotated
    assert list(per.columns) == ["region", "annotated", "combination", "locations"]
    assert per["locations"].sum() == n
    assert not per.duplicated(["region", "annotated", "combination"]).any()
    # the same from an availability table
    per2 = combination_counts(availability(sample_catalog), by="region")
    assert per2["locations"].sum() == n
    with pytest.raises(KeyError, match="cannot group"):
        combination_counts(sample_catalog, by="nope")


# --------------------------------------------------------------------------------------------------
# aligned groups
# --------------------------------------------------------------------------------------------------
def test_aligned_groups_one_row_per_location_with_all_sensors(sample_catalog, small_sample, by_key):
    g = aligned_groups(sample_catalog)
    assert list(g.columns) == [
        "key",
        "region",
        "patch_id",
        "annotated",
        "event_date",
        "n_positive",
        "s1asc",
        "s1dsc",
        "s2",
    ]
    assert g["key"].is_unique
    expected = {k for k, r in by_key.items() if set(r) == set(schema.SENSORS)}
    assert set(g["key"]) == expected and expected
    for row in g.itertuples(index=False):
        recs = by_key[row.key]
        for s in schema.SENSORS:
            rel = getattr(row, s)
            assert rel == recs[s]["path"]
            assert (small_sample / rel).is_file()
        assert row.n_positive == recs["s2"]["n_positive"]
        assert row.annotated == recs["s2"]["annotated"]
        dates = recs["s2"]["event_dates"]
        if dates:
            assert row.event_date == pd.Timestamp(min(dates))
        else:
            assert pd.isna(row.event_date)
    assert g.attrs["strict"] is False and g.attrs["excluded"] == []


def test_aligned_groups_subsets_of_sensors(sample_catalog, by_key):
    g = aligned_groups(sample_catalog, sensors=("s2", "s1asc"))
    assert list(g.columns)[-2:] == ["s2", "s1asc"]
    assert set(g["key"]) == {k for k, r in by_key.items() if {"s1asc", "s2"} <= set(r)}
    one = aligned_groups(sample_catalog, sensors="s1dsc")
    assert set(one["key"]) == {k for k, r in by_key.items() if "s1dsc" in r}
    with pytest.raises(ValueError, match="sensor must be 's1asc', 's1dsc' or 's2'"):
        aligned_groups(sample_catalog, sensors=("s1",))


# --------------------------------------------------------------------------------------------------
# consistency
# --------------------------------------------------------------------------------------------------
def test_clean_sample_has_no_mismatches(sample_catalog, small_sample, by_key):
    m = check_consistency(sample_catalog, small_sample, checks=CHECKS, progress=False, workers=1)
    assert list(m.columns) == list(MISMATCH_COLUMNS)
    assert m.empty, m.to_string()
    assert m.attrs["n_groups"] == sum(len(r) >= 2 for r in by_key.values())
    # data_dir defaults to the catalog's own folder
    assert check_consistency(sample_catalog, progress=False, workers=1).empty
    strict = aligned_groups(sample_catalog, mismatches=m)
    assert strict["key"].tolist() == aligned_groups(sample_catalog)["key"].tolist()
    assert strict.attrs["strict"] is True


def test_unknown_check_is_refused(sample_catalog, small_sample):
    with pytest.raises(ValueError, match="unknown checks"):
        check_consistency(sample_catalog, small_sample, checks=("crs", "colour"), progress=False)


def _shift(name: str, by: float):
    def f(ds: netCDF4.Dataset) -> None:
        ds.variables[name][:] = ds.variables[name][:] + by

    return f


def _flip_mask_pixel(ds: netCDF4.Dataset) -> None:
    m = ds.variables["MASK"]
    v = np.asarray(m[:])
    v[:, 3, 5] = 1 - v[:, 3, 5]  # the same pixel at every time step (MASK stays constant in time)
    m[:] = v


def _set_attr(name: str, value: str):
    def f(ds: netCDF4.Dataset) -> None:
        ds.setncattr(name, value)

    return f


def _later_event(ds: netCDF4.Dataset) -> None:
    """Every event date three days later (as many dates as before, so the file stays valid)."""
    dates = schema.parse_dates(ds.getncattr("event_date"))
    ds.setncattr("event_date", schema.encode_dates(d + dt.timedelta(days=3) for d in dates))


def _raise_dem(ds: netCDF4.Dataset) -> None:
    d = ds.variables["DEM"]
    v = np.asarray(d[:])
    v[:, 10, 10] += 50
    d[:] = v


@pytest.mark.parametrize(
    ("check", "modify", "checks"),
    [
        ("grid_x", _shift("x", 5.0), alignment.DEFAULT_CHECKS),
        ("grid_y", _shift("y", -10.0), alignment.DEFAULT_CHECKS),
        ("mask", _flip_mask_pixel, alignment.DEFAULT_CHECKS),
        ("crs", _set_attr("crs", "EPSG:32699"), alignment.DEFAULT_CHECKS),
        ("event_date", _later_event, alignment.DEFAULT_CHECKS),
        ("dem", _raise_dem, CHECKS),
    ],
)
def test_an_inconsistent_file_shows_up(check, modify, checks, small_sample, tmp_path, by_key):
    data = copy_sample(small_sample, tmp_path)
    key = _pick(by_key, annotated=True)
    with netCDF4.Dataset(_path(data, key, "s1asc"), "a") as ds:
        modify(ds)
    cat = _catalog(data)
    m = check_consistency(cat, data, checks=checks, progress=False, workers=1)
    assert set(m["key"]) == {key}, m.to_string()
    assert set(m["check"]) == {check}
    # the odd file shows up against both others; the agreeing pair is silent
    pairs = set(zip(m["sensor_a"], m["sensor_b"], strict=True))
    assert pairs == {("s1asc", "s1dsc"), ("s1asc", "s2")}
    assert m["detail"].str.len().gt(0).all()
    # strictly aligned: the key is left out, but only where s1asc is requested
    strict = aligned_groups(cat, mismatches=m)
    assert key not in set(strict["key"])
    assert strict.attrs["excluded"] == [key]
    assert len(strict) == len(aligned_groups(cat)) - 1
    assert key in set(aligned_groups(cat, sensors=("s1dsc", "s2"), mismatches=m)["key"])


def test_mismatch_details_say_what_differs(small_sample, tmp_path, by_key):
    data = copy_sample(small_sample, tmp_path)
    key = _pick(by_key, annotated=True)
    with netCDF4.Dataset(_path(data, key, "s1dsc"), "a") as ds:
        _shift("x", 5.0)(ds)
        _flip_mask_pixel(ds)
        ds.setncattr("crs", "EPSG:32699")
    m = check_consistency(_catalog(data), data, progress=False, workers=1)
    detail = dict(zip(m["check"] + ":" + m["sensor_a"] + "/" + m["sensor_b"], m["detail"], strict=True))
    assert "5 m" in detail["grid_x:s1dsc/s2"]
    assert "1 pixel(s) differ" in detail["mask:s1asc/s1dsc"]
    assert "EPSG:32699" in detail["crs:s1dsc/s2"]
    assert m["check"].tolist()[:2] == ["crs", "crs"]  # sorted by key, then check


def test_grid_differences_within_tolerance_pass(small_sample, tmp_path, by_key):
    data = copy_sample(small_sample, tmp_path)
    key = _pick(by_key)
    with netCDF4.Dataset(_path(data, key, "s1asc"), "a") as ds:
        _shift("x", 1e-4)(ds)
    assert check_consistency(_catalog(data), data, progress=False, workers=1).empty


def _to_card_order(path: Path, modify=None) -> None:
    """Rewrite a patch with every variable in (time, y, x), the reference preprocessing code's order (the
    generator writes (time, x, y), as the released files and the dataset card)."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        ds = ds.load()
    ds = ds.transpose("time", "y", "x")
    if modify is not None:
        modify(ds)
    tmp = path.with_suffix(".tmp.nc")
    ds.to_netcdf(tmp, engine="netcdf4")
    tmp.replace(path)


def test_card_dims_order_is_still_consistent(small_sample, tmp_path, by_key):
    data = copy_sample(small_sample, tmp_path)
    key = _pick(by_key, annotated=True)
    for sensor in ("s1asc", "s2"):
        _to_card_order(_path(data, key, sensor))
    cat = _catalog(data)
    assert set(cat.loc[cat["key"] == key, "dims_order"]) == {"time,y,x", "time,x,y"}
    m = check_consistency(cat, data, checks=CHECKS, progress=False, workers=1)
    assert m.empty, m.to_string()


def test_mask_pixel_found_in_card_dims_order(small_sample, tmp_path, by_key):
    data = copy_sample(small_sample, tmp_path)
    key = _pick(by_key, annotated=True)

    def flip(ds: xr.Dataset) -> None:  # pixel at y 3, x 5 of a (time, y, x) array
        v = ds["MASK"].values.copy()
        v[:, 3, 5] = 1 - v[:, 3, 5]
        ds["MASK"] = (ds["MASK"].dims, v, ds["MASK"].attrs)

    _to_card_order(_path(data, key, "s2"), flip)
    m = check_consistency(_catalog(data), data, progress=False, workers=1)
    assert set(m["check"]) == {"mask"}
    assert set(m["sensor_b"]) == {"s2"}
    assert m["detail"].str.contains("1 pixel").all()


def test_unreadable_file_is_reported_not_raised(small_sample, tmp_path, by_key):
    data = copy_sample(small_sample, tmp_path)
    key = _pick(by_key)
    cat = _catalog(data)  # catalogued while still readable
    path = _path(data, key, "s2")
    path.write_bytes(path.read_bytes()[:2000])
    m = check_consistency(cat, data, progress=False, workers=1)
    row = m[m["check"] == "read"]
    assert row["key"].tolist() == [key]
    assert row["sensor_a"].tolist() == ["s2"] and row["sensor_b"].isna().all()
    assert key not in set(aligned_groups(cat, mismatches=m)["key"])
    assert key in set(aligned_groups(cat, sensors=("s1asc", "s1dsc"), mismatches=m)["key"])


def test_worker_processes_give_the_same_table(small_sample, tmp_path, by_key, monkeypatch):
    data = copy_sample(small_sample, tmp_path)
    key = _pick(by_key)
    with netCDF4.Dataset(_path(data, key, "s2"), "a") as ds:
        _shift("y", 20.0)(ds)
    cat = _catalog(data)
    serial = check_consistency(cat, data, progress=False, workers=1)
    monkeypatch.setattr(alignment, "_MIN_GROUPS_FOR_POOL", 1)
    monkeypatch.setattr(parallel, "MIN_ITEMS_FOR_POOL", 1)  # the small sample has fewer groups than that
    pooled = check_consistency(cat, data, progress=False, workers=2)
    pd.testing.assert_frame_equal(serial, pooled)
    assert set(serial["key"]) == {key}


# --------------------------------------------------------------------------------------------------
# time alignment: hand-made dates
# --------------------------------------------------------------------------------------------------
def D(*days: str) -> np.ndarray:
    return np.array(days, dtype="datetime64[D]")


def test_nearest_acquisitions():
    s2 = D("2020-01-01", "2020-01-06", "2020-01-10", "2020-01-30")
    s1 = D("2020-01-13", "2020-01-07", "2020-01-01")  # unsorted on purpose
    near, off = nearest_acquisitions(s2, s1)
    assert near.tolist() == D("2020-01-01", "2020-01-07", "2020-01-07", "2020-01-13").tolist()
    # 01-10 is 3 days from both 01-07 and 01-13: the earlier one wins
    assert off.tolist() == [0.0, 1.0, -3.0, -17.0]
    near, off = nearest_acquisitions(D("2020-01-01"), np.array([], dtype="datetime64[D]"))
    assert np.isnat(near).all() and np.isnan(off).all()


def test_first_clear_after_and_count_between():
    s2 = D("2020-01-01", "2020-01-06", "2020-01-11", "2020-01-16", "2020-01-21")
    bad = [0.0, 0.05, 0.8, 0.3, 0.02]
    event = "2020-01-06"  # the clear date on the event day does not count: strictly after
    clear = first_clear_after(s2, bad, event)
    assert clear == np.datetime64("2020-01-21")
    assert first_clear_after(s2, bad, event, clear_below=0.5) == np.datetime64("2020-01-16")
    assert np.isnat(first_clear_after(s2, [0.9] * 5, event))
    assert np.isnat(first_clear_after(s2, bad, None))
    with pytest.raises(ValueError, match="bad-pixel shares"):
        first_clear_after(s2, bad[:3], event)
    s1 = D("2020-01-02", "2020-01-08", "2020-01-14", "2020-01-20", "2020-01-21", "2020-01-26")
    assert count_between(s1, event, clear) == 3  # 08, 14, 20 (21 is the clear date itself: not before)
    assert count_between(s2, event, clear) == 2  # the cloudy S2 dates 11 and 16
    assert count_between(s1, event) == 5
    assert count_between(s1, event, pd.NaT) == 5


# --------------------------------------------------------------------------------------------------
# time alignment over the sample, against a brute-force computation from the manifest
# --------------------------------------------------------------------------------------------------
def _expected(recs: dict[str, dict]) -> dict:
    events = [np.datetime64(d, "D") for r in recs.values() for d in r["event_dates"]]
    ev = min(events) if events else None
    out: dict = {"event": ev}
    if ev is None or "s2" not in recs:
        return out
    s2 = recs["s2"]
    clear = [
        np.datetime64(t, "D")
        for t, b in zip(s2["times"], s2["bad_fraction"], strict=True)
        if np.datetime64(t, "D") > ev and b < alignment.CLEAR_BELOW
    ]
    first = min(clear) if clear else None
    out["first_clear_days"] = None if first is None else int((first - ev).astype(int))
    for s, r in recs.items():
        ts = [np.datetime64(t, "D") for t in r["times"]]
        out[f"{s}_before"] = None if first is None else sum(ev < t < first for t in ts)
    return out


def test_time_alignment_matches_the_manifest(sample_catalog, small_sample, by_key):
    ta = time_alignment(sample_catalog, small_sample, progress=False, workers=1)
    assert ta.errors == []
    matched = {k for k, r in by_key.items() if len(r) >= 2}
    assert set(ta.summary["key"]) == matched
    # acquisitions: every date of every matched file
    assert len(ta.acquisitions) == sum(len(r["times"]) for k in matched for r in by_key[k].values())
    for row in ta.summary.itertuples(index=False):
        recs = by_key[row.key]
        exp = _expected(recs)
        if exp["event"] is None:
            assert not row.annotated and pd.isna(row.event_date)
            assert np.isnan(row.first_clear_s2_days) and pd.isna(row.clear_s2_found)
            continue
        assert row.event_date == pd.Timestamp(exp["event"])
        if "s2" not in recs:
            continue
        if exp["first_clear_days"] is None:
            assert row.clear_s2_found is not pd.NA and not row.clear_s2_found
            assert np.isnan(row.first_clear_s2_days)
        else:
            assert row.first_clear_s2_days == exp["first_clear_days"]
            for s in recs:
                assert getattr(row, f"{s}_before_clear_s2") == exp[f"{s}_before"], (row.key, s)
    # nearest S1 to each S2 date, brute force
    for row in ta.nearest.sample(n=min(60, len(ta.nearest)), random_state=0).itertuples(index=False):
        s1 = np.array(by_key[row.key][row.orbit]["times"], dtype="datetime64[D]")
        s2_day = np.datetime64(row.s2_date, "D")
        diffs = (s1 - s2_day).astype(int)
        assert abs(row.offset_days) == np.abs(diffs).min()
        assert (np.datetime64(row.s1_date, "D") - s2_day).astype(int) == row.offset_days
    # not annotated locations: dates and offsets, but nothing relative to an event
    not_ann = ta.acquisitions[~ta.acquisitions["annotated"]]
    assert len(not_ann) and not_ann["days_from_event"].isna().all() and not_ann["after_event"].isna().all()
    s2_rows = ta.acquisitions[ta.acquisitions["sensor"] == "s2"]
    assert s2_rows["clear"].notna().all()
    assert ta.acquisitions.loc[ta.acquisitions["sensor"] != "s2", "clear"].isna().all()


def test_time_alignment_keys_and_unreadable_files(sample_catalog, small_sample, tmp_path, by_key):
    key = _pick(by_key, annotated=True)
    ta = time_alignment(sample_catalog, small_sample, keys=[key], progress=False, workers=1)
    assert ta.summary["key"].tolist() == [key]
    assert set(ta.acquisitions["sensor"]) == set(schema.SENSORS)
    assert set(ta.nearest["orbit"]) == {"s1asc", "s1dsc"}
    assert len(ta.nearest) == 2 * len(by_key[key]["s2"]["times"])
    data = copy_sample(small_sample, tmp_path)
    cat = _catalog(data)
    path = _path(data, key, "s1dsc")
    path.write_bytes(path.read_bytes()[:1000])
    ta = time_alignment(cat, data, keys=[key], progress=False, workers=1)
    assert [(e["key"], e["sensor"]) for e in ta.errors] == [(key, "s1dsc")]
    assert set(ta.acquisitions["sensor"]) == {"s1asc", "s2"}


# --------------------------------------------------------------------------------------------------
# the chapter's figures (figures.py, chapter 03 section) and the timeline pick
# --------------------------------------------------------------------------------------------------
def test_typical_location(sample_catalog, small_sample):
    ta = time_alignment(sample_catalog, small_sample, progress=False, workers=1)
    s = ta.summary
    key = alignment.typical_location(s)
    row = s.set_index("key").loc[key]
    assert row.annotated and bool(row.clear_s2_found)
    waits = s.loc[s["clear_s2_found"].fillna(False).astype(bool), "first_clear_s2_days"]
    assert abs(row.first_clear_s2_days - waits.median()) == (waits - waits.median()).abs().min()
    only = aligned_groups(sample_catalog)["key"]
    assert alignment.typical_location(s, keys=only) in set(only)


def test_alignment_figures_render(sample_catalog, small_sample):
    hv = pytest.importorskip("holoviews")
    from s12ls_utils import figures as F

    hv.extension("bokeh")
    av = availability(sample_catalog)
    ta = time_alignment(sample_catalog, small_sample, progress=False, workers=1)
    key = alignment.typical_location(ta.summary)
    not_annotated = ta.summary.loc[~ta.summary["annotated"], "key"]
    figures = [
        F.availability_upset(av),
        F.availability_heatmap(av),
        F.acquisition_timeline(ta, key),
        F.nearest_offset_histogram(ta.nearest),
        F.first_view_ecdf(ta.summary),
        F.before_clear_bars(ta.summary),
    ]
    if len(not_annotated):
        figures.append(F.acquisition_timeline(ta, not_annotated.iloc[0]))
    renderer = hv.renderer("bokeh")
    for fig in figures:
        state = renderer.get_plot(fig).state
        assert state is not None
    with pytest.raises(KeyError, match="not in the time alignment"):
        F.acquisition_timeline(ta, "nowhere_1")


# --------------------------------------------------------------------------------------------------
# files as the dataset's own writer writes them (tests/real_format.py)
# --------------------------------------------------------------------------------------------------
def test_event_sets_compare_whatever_their_order(real_data, tmp_path):
    """S2 lists "2018-09-28,2018-08-31", S1 "2018-08-31,2018-09-28": the same set, no mismatch;
    an undated entry counts as "undated"."""
    data = tmp_path / "data"
    for case in ("multi", "multi_s1", "undated", "undated_nat"):
        src = real_data.files[case]
        dst = data / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    # italy_101: s2 + s1asc (both dated); italy_102: s2 ("None") + s1dsc (" NaT ")
    cat = build_catalog(data, scheduler="synchronous", progress=False, use_cache=False)
    m = alignment.check_consistency(cat, data, workers=1, progress=False)
    assert m[m.check == "event_date"].empty, m
    with netCDF4.Dataset(data / "s2" / "italy_s2_102.nc", "a") as ds:
        ds.setncattr("event_date", "2018-08-31")
    cat = build_catalog(data, scheduler="synchronous", progress=False, use_cache=False)
    m = alignment.check_consistency(cat, data, workers=1, progress=False)
    ev = m[m.check == "event_date"]
    assert ev["key"].tolist() == ["italy_102"] and "undated" in ev["detail"].iloc[0]


def test_availability_and_mismatch_facts_count_locations():
    avail = pd.DataFrame(
        {
            "key": ["a_1", "a_2", "b_1", "b_2"],
            "s1asc": [True, True, False, False],
            "s1dsc": [True, False, False, True],
            "s2": [True, True, True, False],
        }
    )
    avail["n_sensors"] = avail[["s1asc", "s1dsc", "s2"]].sum(axis=1)
    avail["combination"] = [
        alignment.combination_label(s for s in ("s1asc", "s1dsc", "s2") if r[s]) for _, r in avail.iterrows()
    ]
    facts = alignment.availability_facts(avail)
    assert facts["combination_counts"] == {"s1asc+s1dsc+s2": 1, "s1asc+s2": 1, "s2": 1, "s1dsc": 1}
    assert (facts["n_all_three"], facts["n_s1_and_s2"], facts["n_single_sensor"]) == (1, 2, 2)
    mismatches = pd.DataFrame({"key": ["a_1", "a_1", "b_2"], "check": ["grid_x", "grid_x", "mask"]})
    mismatches.attrs["n_groups"] = 3
    facts = alignment.mismatch_facts(mismatches)
    assert facts["mismatch_keys"] == ["a_1", "b_2"] and facts["n_mismatches"] == 3
    assert facts["mismatch_checks"] == {"grid_x": 2, "mask": 1}
