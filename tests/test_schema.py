"""Tests for :mod:`s12ls_utils.schema`: attribute encodings, file names and :func:`validate_patch`.

Broken files are built in the test from a valid synthetic patch (copied to ``tmp_path`` first): attribute
and value edits go through netCDF4 in append mode, structural edits through an xarray rewrite.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from helpers import rewrite
from quality_files import fill_gap, write_s1
from real_format import real_data_fixture  # noqa: F401  (fixture real_data)

from s12ls_utils import io, schema
from s12ls_utils.io import PatchReadError, open_patch, validate_patch
from s12ls_utils.schema import (
    PatchAttrs,
    encode_bboxes,
    encode_bool,
    encode_dates,
    encode_floats,
    encode_ints,
    encode_pre_post,
    parse_attrs,
    parse_bboxes,
    parse_bool,
    parse_crs,
    parse_dates,
    parse_filename,
    parse_floats,
    parse_ints,
    parse_pre_post,
)


def encode_attrs(a: PatchAttrs) -> dict[str, str]:
    """The string attributes of ``a`` as a writer puts them on a patch: the inverse of ``parse_attrs``, for
    these tests (the generator writes the attributes in the writer's own order, ``sample.generate``).

    Undated events are written as ``None`` after the dated ones, each with ``{'pre': 0, 'post': 0}``
    (as the reference writer does) when ``pre_post`` is given.
    """
    undated = ["None"] * int(a.n_undated_events)
    pairs = list(a.pre_post)
    if pairs and undated:
        pairs += [(0, 0)] * len(undated)
    return {
        "ann_id": encode_ints(a.ann_ids),
        "ann_bbox": encode_bboxes(a.ann_bboxes),
        "event_date": ",".join(filter(None, (encode_dates(a.event_dates), *undated))),
        "date_confidence": encode_floats(sorted(set(a.date_confidences))),
        "pre_post_dates": encode_pre_post(pairs),
        "annotated": encode_bool(a.annotated),
        "satellite": a.satellite,
        "center_lat": repr(float(a.center_y)),
        "center_lon": repr(float(a.center_x)),
        "crs": f"EPSG:{a.epsg}",
    }


def _record(manifest: dict, sensor: str, annotated: bool) -> dict:
    recs = [r for r in manifest["files"] if r["sensor"] == sensor and r["annotated"] == annotated]
    assert recs, f"the sample has no {'annotated' if annotated else 'non-annotated'} {sensor} patch"
    # a plain one where there is one: one dated event inside an unpadded series (the sample also holds
    # padded series and undated annotations, which the tests below build on purpose)
    plain = [
        r for r in recs if not r["n_padded"] and not r["n_undated_events"] and not r["event_outside_series"]
    ]
    return (plain or recs)[0]


@pytest.fixture(scope="session")
def s2_ann(sample_dir, manifest) -> Path:
    """A valid annotated S2 patch (MASK has positives)."""
    return sample_dir / _record(manifest, "s2", True)["path"]


@pytest.fixture(scope="session")
def s1_ann(sample_dir, manifest) -> Path:
    """A valid annotated S1 ascending patch."""
    return sample_dir / _record(manifest, "s1asc", True)["path"]


# --------------------------------------------------------------------------------------------------
# Helpers that build broken copies
# --------------------------------------------------------------------------------------------------
def copy_to(src: Path, tmp_path: Path, name: str | None = None, folder: str | None = None) -> Path:
    """Copy ``src`` into ``tmp_path/<folder>/<name>`` (folder defaults to the sensor folder)."""
    dst = tmp_path / (folder or src.parent.name) / (name or src.name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def edit(src: Path, tmp_path: Path, fn: Callable[[netCDF4.Dataset], None], **kw) -> Path:
    """Copy ``src`` and change it in place with netCDF4 (attributes, values)."""
    dst = copy_to(src, tmp_path, **kw)
    with netCDF4.Dataset(dst, "a") as ds:
        ds.set_auto_mask(False)
        fn(ds)
    return dst


def restructure(src: Path, tmp_path: Path, fn: Callable[[xr.Dataset], xr.Dataset | None]) -> Path:
    return rewrite(src, tmp_path / src.parent.name / src.name, fn)


def assert_problems(problems: list[str], *phrases: str, exact: bool = True) -> None:
    """Every phrase is found in some problem; with ``exact``, every problem is explained by a phrase.

    A phrase starting with ``?`` is optional: allowed, not required (a follow-up message).
    """
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    for phrase in phrases:
        if not phrase.startswith("?"):
            assert any(phrase in p for p in problems), f"{phrase!r} not reported in {problems}"
    if exact:
        allowed = [ph.removeprefix("?") for ph in phrases]
        unexplained = [p for p in problems if not any(ph in p for ph in allowed)]
        assert not unexplained, f"unexpected problems {unexplained}"


# --------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------
def test_format_constants_match_design():
    assert schema.SENSORS == ("s1asc", "s1dsc", "s2")
    assert (schema.N_TIME, schema.PATCH_SIZE, schema.PIXEL_SIZE_M) == (15, 128, 10.0)
    assert schema.DIMS == ("time", "x", "y") and schema.CANONICAL_DIMS == ("time", "y", "x")
    assert schema.FEATURES["s2"] == (*schema.S2_BANDS, "DEM") and len(schema.FEATURES["s2"]) == 11
    assert schema.FEATURES["s1asc"] == schema.FEATURES["s1dsc"] == ("VV", "VH", "DEM")
    assert set(schema.VARIABLES["s2"]) == {*schema.S2_BANDS, "SCL", "DEM", "MASK"}
    assert schema.VARIABLES["s2"]["MASK"] == np.uint8 and schema.VARIABLES["s2"]["B02"] == np.int16
    assert schema.VARIABLES["s1dsc"]["VV"] == np.float32 and schema.VARIABLES["s1asc"]["DEM"] == np.int16
    assert set(schema.SCL_CLASSES) == set(range(12))
    assert schema.SCL_BAD == {0, 1, 2, 3, 8, 9, 10, 11}
    assert schema.CLIP_RANGES == {"s1": (-50.0, 10.0), "s2": (0.0, 10000.0), "DEM": (0.0, 8800.0)}
    assert len(schema.REQUIRED_ATTRS) == 10


def test_check_choice_returns_the_value_or_names_every_choice():
    assert schema.check_choice("view", "s2", ("s2", "fusion")) == "s2"
    with pytest.raises(ValueError, match=r"^view must be 's2' or 'fusion', not 'S2'$"):
        schema.check_choice("view", "S2", ("s2", "fusion"))
    with pytest.raises(ValueError, match=r"^split must be 'train', 'val' or 'test', not None$"):
        schema.check_choice("split", None, ["train", "val", "test"])
    with pytest.raises(ValueError, match=r"^mode must be 'only', not 'other'$"):
        schema.check_choice("mode", "other", iter(["only"]))


def test_clip_range_is_the_same_clip_in_either_s1_unit():
    """One clip range for the statistics and the training cache: S1 bands in dB or in linear power (the same
    clip), the DEM's range whatever the sensor or the name's case, S2 bands whatever ``s1_unit`` says."""
    for sensor in schema.S1_SENSORS:
        for band in schema.S1_BANDS:
            db = schema.clip_range(sensor, band)
            assert db == schema.CLIP_RANGES["s1"]
            linear = schema.clip_range(sensor, band, "linear")
            assert np.allclose(10 * np.log10(linear), db) and linear[0] < linear[1]
    for sensor in schema.SENSORS:
        assert (
            schema.clip_range(sensor, "DEM", "linear")
            == schema.clip_range(sensor, "dem")
            == schema.CLIP_RANGES["DEM"]
        )
    assert schema.clip_range("s2", "B04", "linear") == schema.CLIP_RANGES["s2"]
    with pytest.raises(ValueError, match="s1asc"):
        schema.clip_range("s3", "VV")


def test_sensor_helpers():
    assert schema.sensor_family("s1asc") == schema.sensor_family("s1dsc") == "s1"
    assert schema.sensor_family("s2") == "s2"
    assert schema.check_sensor("s2") == "s2"
    with pytest.raises(ValueError, match="sensor must be 's1asc', 's1dsc' or 's2', not 's3'"):
        schema.check_sensor("s3")
    with pytest.raises(ValueError):
        schema.sensor_family("S2")
    assert schema.check_sensors("s2") == ("s2",)  # one name is not a sequence of letters
    assert schema.check_sensors(["s2", "s1asc", "s2"]) == ("s2", "s1asc")  # order kept, repeats dropped
    with pytest.raises(ValueError, match="sensor must be .*, not 's3'"):
        schema.check_sensors(("s2", "s3"))


# --------------------------------------------------------------------------------------------------
# Attribute encodings
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("True", True),
        ("False", False),
        ("true", True),
        (" FALSE ", False),
        ("1", True),
        ("0", False),
        (True, True),
        (False, False),
        (np.bool_(True), True),
        (np.bool_(False), False),
    ],
)
def test_parse_bool(raw, want):
    assert parse_bool(raw) is want


@pytest.mark.parametrize("raw", ["", "maybe", "2", "Tru"])
def test_parse_bool_rejects(raw):
    with pytest.raises(ValueError, match="boolean"):
        parse_bool(raw)


def test_bool_round_trip():
    for v in (True, False):
        assert encode_bool(v) == str(v)
        assert parse_bool(encode_bool(v)) is v


def test_dates_round_trip():
    one = [dt.date(2023, 5, 16)]
    two = [dt.date(2023, 5, 16), dt.date(2023, 6, 1)]
    assert encode_dates(one) == "2023-05-16"
    assert encode_dates(two) == "2023-05-16,2023-06-01"
    assert encode_dates(["2020-12-02"]) == "2020-12-02"
    for dates in ([], one, two, [dt.date(2017, 9, 20)] * 3):
        assert parse_dates(encode_dates(dates)) == dates
    assert parse_dates("") == []
    assert parse_dates(" 2023-05-16 , 2023-06-01 ") == two
    assert parse_dates("2023-05-16T00:00:00") == one  # timestamps are cut to their date


@pytest.mark.parametrize("raw", ["2023-13-01", "16.05.2023", "2023-05-16,yesterday", "pre 7"])
def test_parse_dates_rejects(raw):
    with pytest.raises(ValueError, match="as a date"):
        parse_dates(raw)


def test_floats_round_trip():
    for vals in ([], [1.0], [0.5, 0.75, 1.0], [4885495.0, 736705.0], [0.1 + 0.2, 1e-9]):
        assert parse_floats(encode_floats(vals)) == vals  # repr round-trips exactly
    assert parse_floats("1.0, 0.75") == [1.0, 0.75]
    assert parse_floats("") == []
    with pytest.raises(ValueError, match="comma-joined numbers"):
        parse_floats("1.0,high")


def test_ints_round_trip():
    for vals in ([], [41125], [41125, 41124], [0, 7, 2**40]):
        assert parse_ints(encode_ints(vals)) == vals
    assert parse_ints("41125,41124") == [41125, 41124]
    assert parse_ints(" 3 , 4 ") == [3, 4]
    assert parse_ints("3.0") == [3]
    with pytest.raises(ValueError, match="comma-joined integers"):
        parse_ints("41125,x")


def test_pre_post_round_trip():
    assert parse_pre_post("{'pre': 7, 'post': 8}") == [(7, 8)]
    assert parse_pre_post('{"pre": 7, "post": 8}') == [(7, 8)]
    assert parse_pre_post("{'pre': 7, 'post': 8},{'pre': 3, 'post': 4}") == [(7, 8), (3, 4)]
    assert parse_pre_post("{'pre': 0, 'post': 0}, {'pre': 14, 'post': 14}") == [(0, 0), (14, 14)]
    assert parse_pre_post("") == [] and parse_pre_post("  ") == []
    assert encode_pre_post([(7, 8)]) == "{'pre': 7, 'post': 8}"
    for pairs in ([], [(7, 8)], [(5, 6), (9, 10)], [(0, 0)], [(14, 14)], [(0, 0), (4, 5), (14, 14)]):
        assert parse_pre_post(encode_pre_post(pairs)) == pairs


@pytest.mark.parametrize(
    "raw",
    ["{'pre': 7, 'post': 15}", "{'pre': -1, 'post': 0}", "{'pre': 8, 'post': 7}", "{'pre': 20, 'post': 21}"],
)
def test_pre_post_out_of_range(raw):
    with pytest.raises(ValueError, match="out of range"):
        parse_pre_post(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "pre 7",
        "7,8",
        "{'pre': 7}",
        "{'pre': 'a', 'post': 8}",
        "{pre: 7, post: 8}",
        "{1, 2}",
        "{'pre': 7, 'post': 8} trailing",
        "[{'pre': 7, 'post': 8}]",
        "{'pre': [7], 'post': 8}",
    ],
)
def test_pre_post_garbage(raw):
    with pytest.raises(ValueError, match="cannot read pre_post_dates"):
        parse_pre_post(raw)


def test_bboxes_round_trip():
    a, b = (736752.88, 4884858.95, 736797.07, 4884890.45), (1.0, 2.0, 3.0, 4.0)
    assert parse_bboxes("(736752.88, 4884858.95, 736797.07, 4884890.45)") == [a]
    assert parse_bboxes("(736752.88, 4884858.95, 736797.07, 4884890.45),(1, 2, 3, 4)") == [a, b]
    assert parse_bboxes("[1, 2, 3, 4],[736752.88,4884858.95,736797.07,4884890.45]") == [b, a]
    assert parse_bboxes("1,2,3,4") == [b]
    assert parse_bboxes("1,2,3,4,736752.88,4884858.95,736797.07,4884890.45") == [b, a]
    assert parse_bboxes("") == []
    assert encode_bboxes([a, b]) == "(736752.88, 4884858.95, 736797.07, 4884890.45),(1.0, 2.0, 3.0, 4.0)"
    for boxes in ([], [a], [a, b], [(0.123, -5.0, 1e6, 2e6)] * 3):
        got = parse_bboxes(encode_bboxes(boxes))
        assert len(got) == len(boxes)
        for g, w in zip(got, boxes, strict=True):
            assert g == pytest.approx(w, abs=0.005)  # two decimals (centimetres) are kept


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("(1, 2, 3)", "needs 4 numbers"),
        ("(1, 2, 3, 4),(5, 6, 7)", "needs 4 numbers"),
        ("[1, 2, 3, 4, 5]", "needs 4 numbers"),
        ("1,2,3", "not a multiple of 4"),
        ("1,2,3,4,5,6", "not a multiple of 4"),
        ("(a, b, c, d)", "comma-joined numbers"),
        ("x,y,z,w", "numbers"),
    ],
)
def test_bboxes_rejected(raw, match):
    with pytest.raises(ValueError, match=match):
        parse_bboxes(raw)


def test_crs():
    assert parse_crs("EPSG:32632") == 32632
    assert parse_crs(" EPSG:4326 ") == 4326
    assert parse_crs("EPSG:32736") == 32736
    for bad in ("32632", "EPSG:", "EPSG:32632x", "WGS84", "EPSG:12", ""):
        with pytest.raises(ValueError, match="cannot read crs"):
            parse_crs(bad)


def _attrs(**kw) -> PatchAttrs:
    base = dict(
        annotated=True,
        ann_ids=[41125, 41124],
        ann_bboxes=[(755867.58, 4880640.0, 755900.0, 4880700.0), (1.0, 2.0, 3.0, 4.0)],
        event_dates=[dt.date(2023, 5, 16)],
        date_confidences=[1.0],
        pre_post=[(7, 8)],
        satellite="s2",
        center_x=755840.0,
        center_y=4881280.0,
        epsg=32632,
    )
    base.update(kw)
    return PatchAttrs(**base)


def test_attrs_round_trip():
    for a in (
        _attrs(),
        _attrs(
            event_dates=[dt.date(2023, 5, 16), dt.date(2023, 6, 20)],
            date_confidences=[0.5, 1.0],
            pre_post=[(7, 8), (12, 13)],
        ),
        PatchAttrs(annotated=False, satellite="s1", center_x=1.5, center_y=-2.5, epsg=32736),
    ):
        raw = encode_attrs(a)
        assert set(raw) == set(schema.REQUIRED_ATTRS)
        assert all(isinstance(v, str) for v in raw.values())
        back, problems = parse_attrs(raw)
        assert problems == []
        assert back == a
    raw = encode_attrs(_attrs())
    assert raw["annotated"] == "True" and raw["crs"] == "EPSG:32632"
    assert raw["pre_post_dates"] == "{'pre': 7, 'post': 8}" and raw["event_date"] == "2023-05-16"
    assert raw["center_lat"] == "4881280.0" and raw["center_lon"] == "755840.0"  # projected y / x
    # distinct confidence values, comma-joined (as the reference writes them)
    assert encode_attrs(_attrs(date_confidences=[1.0, 1.0]))["date_confidence"] == "1.0"


def test_parse_attrs_reports_missing_without_raising():
    attrs, problems = parse_attrs({})
    assert sorted(problems) == sorted(f"attribute {n!r} is missing" for n in schema.REQUIRED_ATTRS)
    # defaults are kept
    assert attrs.annotated is False and attrs.ann_ids == [] and attrs.event_dates == [] and attrs.epsg == 0
    assert np.isnan(attrs.center_x) and np.isnan(attrs.center_y) and attrs.satellite == ""
    raw = encode_attrs(_attrs())
    del raw["event_date"], raw["crs"]
    attrs, problems = parse_attrs(raw)
    assert sorted(problems) == ["attribute 'crs' is missing", "attribute 'event_date' is missing"]
    # pre_post_dates cannot be paired with dates that could not be read: a note, not a problem
    assert attrs.ann_ids == [41125, 41124] and attrs.epsg == 0 and attrs.pre_post == []
    assert attrs.notes == ["attribute 'pre_post_dates' cannot be paired with 'event_date': not used"]


def test_parse_attrs_reports_unparsable_without_raising():
    raw = encode_attrs(_attrs())
    raw.update(
        annotated="maybe",
        pre_post_dates="pre 7",
        crs="WGS84",
        center_lat="north",
        ann_bbox="1,2,3",
        event_date="yesterday",
        date_confidence="high",
        ann_id="a,b",
    )
    attrs, problems = parse_attrs(raw)
    for name in (
        "annotated",
        "pre_post_dates",
        "crs",
        "center_lat",
        "ann_bbox",
        "event_date",
        "date_confidence",
        "ann_id",
    ):
        assert any(p.startswith(f"attribute {name!r} is unparsable") for p in problems), (name, problems)
    assert len(problems) == 8
    assert attrs.satellite == "s2" and attrs.center_x == 755840.0  # the parsable ones are kept


def test_parse_attrs_consistency_notes():
    """Inconsistencies a reader can live with are notes (check_patch warnings), not problems."""
    raw = encode_attrs(_attrs())
    raw["event_date"] = ""
    raw["pre_post_dates"] = ""
    attrs, problems = parse_attrs(raw)
    assert problems == [] and attrs.undated
    assert attrs.notes == ["attribute 'event_date' is empty although annotated='True': read as undated"]
    raw = encode_attrs(_attrs(event_dates=[dt.date(2023, 5, 16), dt.date(2023, 6, 20)]))
    attrs, problems = parse_attrs(raw)
    assert problems == [] and attrs.pre_post == []  # 1 pair for 2 dates: cannot be paired, not used
    assert attrs.notes == ["attribute 'pre_post_dates' has 1 entries for 2 event date(s): not used"]


def test_parse_attrs_array_attribute_is_reported():
    raw = encode_attrs(_attrs())
    raw["center_lat"] = np.array([4881280.0, 4881290.0])  # netCDF attributes can be arrays
    _, problems = parse_attrs(raw)
    assert any(p.startswith("attribute 'center_lat' is unparsable") for p in problems)


# --------------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "region", "sensor", "pid"),
    [
        ("italy_s2_6982.nc", "italy", "s2", 6982),
        ("usa_alaska_s1asc_12.nc", "usa_alaska", "s1asc", 12),
        ("japan_hokkaido_s1dsc_7.nc", "japan_hokkaido", "s1dsc", 7),
        ("a_s2_b_s2_3.nc", "a_s2_b", "s2", 3),
        ("/data/s2/chimanimani_s2_1024.nc", "chimanimani", "s2", 1024),
    ],
)
def test_parse_filename(name, region, sensor, pid):
    p = parse_filename(Path(name))
    assert (p.region, p.sensor, p.patch_id) == (region, sensor, pid)
    assert p.key == f"{region}_{pid}"
    assert p.filename == Path(name).name
    assert parse_filename(name) == p
    assert schema.patch_filename(region, sensor, pid) == Path(name).name


@pytest.mark.parametrize(
    "name",
    [
        "foo.nc",
        "italy_s3_1.nc",
        "italy_s2_x.nc",
        "italy_s2_1.nc4",
        "_s2_1.nc",
        "italy_s2_.nc",
        "italy_S2_1.nc",
        "italy_s1_1.nc",
        "italy-s2-1.nc",
        "italy_s2_1",
    ],
)
def test_parse_filename_rejects(name):
    with pytest.raises(ValueError, match="does not match '<region>_<sensor>_<id>.nc'"):
        parse_filename(name)


def test_patch_filename_checks_sensor():
    assert schema.patch_filename("usa_alaska", "s1dsc", np.int64(5)) == "usa_alaska_s1dsc_5.nc"
    with pytest.raises(ValueError, match="sensor must be 's1asc', 's1dsc' or 's2'"):
        schema.patch_filename("italy", "s1", 1)


# --------------------------------------------------------------------------------------------------
# validate_patch
# --------------------------------------------------------------------------------------------------
def test_every_synthetic_file_is_valid(sample_dir, manifest):
    paths = sorted(sample_dir.glob("*/*.nc"))
    assert len(paths) == len(manifest["files"]) > 0
    for p in paths:
        assert validate_patch(p) == [], p


def test_rewritten_copy_is_still_valid(s2_ann, s1_ann, tmp_path):
    # guards the rewrite helper used below: an unmodified rewrite (and one in (time, y, x) order) is valid
    assert validate_patch(restructure(s2_ann, tmp_path, lambda ds: None)) == []
    assert validate_patch(restructure(s1_ann, tmp_path, lambda ds: ds.transpose("time", "y", "x"))) == []


def _set_attr(name, value):
    return lambda ds: ds.setncattr(name, value)


def _del_attr(name):
    return lambda ds: ds.delncattr(name)


def _mask_changed_at(t):
    def fn(ds):
        m = ds["MASK"][t]
        m[:5, :5] = 1 - m[:5, :5]
        ds["MASK"][t] = m

    return fn


def _swap_times(ds):
    t = ds["time"][:]
    t[[3, 4]] = t[[4, 3]]
    ds["time"][:] = t


def _scl_unknown(ds):
    s = ds["SCL"][2]
    s[10:12, 10:12] = 42
    ds["SCL"][2] = s


def _mask_value_2(ds):
    m = ds["MASK"][:]
    m[:, 0, 0] = 2
    ds["MASK"][:] = m


def _dem_out_of_range(ds):
    d = ds["DEM"][:]
    d[:, 0, 0] = -5
    ds["DEM"][:] = d


def _unset_crs_attrs(ds):
    for a in ("crs_wkt", "spatial_ref"):
        if a in ds["spatial_ref"].ncattrs():
            ds["spatial_ref"].delncattr(a)


#: (id, source fixture, builder(src, tmp_path) -> path, phrases that must be reported)
BROKEN: list[tuple[str, str, Callable[[Path, Path], Path], tuple[str, ...]]] = [
    (
        "missing-variable",
        "s2_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.drop_vars("B03")),
        ("variable 'B03' is missing",),
    ),
    (
        "mask-int16",
        "s2_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.assign(MASK=ds.MASK.astype("int16"))),
        ("variable 'MASK' has dtype int16, expected uint8",),
    ),
    (
        "vv-float64",
        "s1_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.assign(VV=ds.VV.astype("float64"))),
        ("variable 'VV' has dtype float64, expected float32",),
    ),
    (
        "crop-x",
        "s2_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.isel(x=slice(0, 100))),
        ("dimension 'x' has size 100, expected 128",),
    ),
    (
        "variable-dims",
        "s2_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.assign(B05=ds.B05.transpose("x", "time", "y"))),
        ("variable 'B05' has dims ('x', 'time', 'y')",),
    ),
    (
        "missing-attr",
        "s2_ann",
        lambda s, t: edit(s, t, _del_attr("event_date")),
        ("attribute 'event_date' is missing", "?entries for 0 event date(s)"),
    ),
    (
        "unparsable-attr",
        "s2_ann",
        lambda s, t: edit(s, t, _set_attr("pre_post_dates", "pre 7")),
        ("attribute 'pre_post_dates' is unparsable",),
    ),
    (
        "unparsable-crs",
        "s1_ann",
        lambda s, t: edit(s, t, _set_attr("crs", "WGS 84 / UTM 32N")),
        ("attribute 'crs' is unparsable",),
    ),
    (
        "mask-not-static",
        "s2_ann",
        lambda s, t: edit(s, t, _mask_changed_at(5)),
        ("MASK is not the same at every time step",),
    ),
    ("mask-values", "s1_ann", lambda s, t: edit(s, t, _mask_value_2), ("MASK holds values other than 0/1",)),
    (
        "wrong-name",
        "s2_ann",
        lambda s, t: copy_to(s, t, name="wrongname.nc"),
        ("does not match '<region>_<sensor>_<id>.nc'",),
    ),
    (
        "folder-name-mismatch",
        "s2_ann",
        lambda s, t: copy_to(s, t, folder="s1asc"),
        ("file is in folder 's1asc' but its name says sensor 's2'",),
    ),
    (
        "not-annotated-but-positive",
        "s2_ann",
        lambda s, t: edit(s, t, _set_attr("annotated", "False")),
        ("annotated='False' but MASK has",),
    ),
    (
        "ann-id-bbox-count",
        "s2_ann",
        lambda s, t: edit(s, t, _set_attr("ann_bbox", "(1, 2, 3, 4)")),
        ("ann_id values but 1 ann_bbox values",),
    ),
    (
        "time-not-increasing",
        "s2_ann",
        lambda s, t: edit(s, t, _swap_times),
        ("time stamps are not sorted",),
    ),
    (
        "time-without-units",
        "s1_ann",
        lambda s, t: edit(s, t, lambda ds: ds["time"].delncattr("units")),
        ("coordinate 'time' is not decodable",),
    ),
    (
        "y-ascending",
        "s2_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.isel(y=slice(None, None, -1))),
        ("coordinate 'y' spacing is not -10 m",),
    ),
    (
        "x-spacing-20m",
        "s1_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.assign_coords(x=ds.x * 2.0)),
        ("coordinate 'x' spacing is not +10 m",),
    ),
    (
        "x-float32",
        "s2_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.assign_coords(x=ds.x.astype("float32"))),
        ("coordinate 'x' has dtype float32, expected float64",),
    ),
    (
        "scl-unknown-class",
        "s2_ann",
        lambda s, t: edit(s, t, _scl_unknown),
        ("SCL holds unknown classes [42]",),
    ),
    ("dem-out-of-range", "s2_ann", lambda s, t: edit(s, t, _dem_out_of_range), ("DEM outside 0…10000 m",)),
    (
        "satellite-wrong",
        "s1_ann",
        lambda s, t: edit(s, t, _set_attr("satellite", "s2")),
        ("attribute 'satellite' is 's2', expected one of",),
    ),
    (
        "satellite-other-orbit",
        "s1_ann",
        lambda s, t: edit(s, t, _set_attr("satellite", "s1-dsc")),
        ("attribute 'satellite' is 's1-dsc'",),
    ),
    (
        "spatial-ref-missing",
        "s2_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.drop_vars("spatial_ref")),
        ("variable 'spatial_ref' is missing",),
    ),
    (
        "spatial-ref-int32",
        "s1_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.assign(spatial_ref=ds.spatial_ref.astype("int32"))),
        ("variable 'spatial_ref' should be an int64 scalar",),
    ),
    (
        "spatial-ref-no-crs",
        "s2_ann",
        lambda s, t: edit(s, t, _unset_crs_attrs),
        ("carries no CRS attribute",),
    ),
    (
        "extra-variable",
        "s1_ann",
        lambda s, t: restructure(s, t, lambda ds: ds.assign(B02=ds.DEM)),
        ("unexpected variables for sensor s1asc: ['B02']",),
    ),
]


@pytest.mark.filterwarnings("ignore::s12ls_utils.schema.FormatWarning")
@pytest.mark.parametrize(("source", "build", "phrases"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_validate_reports_problem(source, build, phrases, request, tmp_path):
    path = build(request.getfixturevalue(source), tmp_path)
    assert_problems(validate_patch(path), *phrases)


def _pad_last_date(ds):
    t = ds["time"][:]
    t[-1] = t[-2]  # the writer pads a short series by repeating its last image
    ds["time"][:] = t


#: Oddities a reader handles: warnings of check_patch, never errors (validate_patch returns []).
WARNED: list[tuple[str, str, Callable[[Path, Path], Path], tuple[str, ...]]] = [
    (
        "annotated-without-event",
        "s2_ann",
        lambda s, t: edit(
            s, t, lambda ds: (ds.setncattr("event_date", ""), ds.setncattr("pre_post_dates", ""))
        ),
        ("attribute 'event_date' is empty although annotated='True'",),
    ),
    (
        "pre-post-count",
        "s1_ann",
        lambda s, t: edit(
            s,
            t,
            _set_attr("pre_post_dates", "{'pre': 1, 'post': 2},{'pre': 3, 'post': 4},{'pre': 5, 'post': 6}"),
        ),
        ("has 3 entries for 1 event date(s)",),
    ),
    (
        "pre-post-disagrees",
        "s1_ann",
        lambda s, t: edit(s, t, _set_attr("pre_post_dates", "{'pre': 1, 'post': 2}")),
        ("gives (1, 2) for event", "the time axis is used"),
    ),
    (
        "undated-none",
        "s2_ann",
        lambda s, t: edit(
            s,
            t,
            lambda ds: (
                ds.setncattr("event_date", "None"),
                ds.setncattr("date_confidence", "nan"),
                ds.setncattr("pre_post_dates", "{'pre': 0, 'post': 0}"),
            ),
        ),
        ("1 undated event(s)",),
    ),
    ("padded-series", "s2_ann", lambda s, t: edit(s, t, _pad_last_date), ("1 repeated date(s)",)),
]


@pytest.mark.parametrize(("source", "build", "phrases"), [b[1:] for b in WARNED], ids=[b[0] for b in WARNED])
def test_check_patch_warns_without_error(source, build, phrases, request, tmp_path):
    path = build(request.getfixturevalue(source), tmp_path)
    res = io.check_patch(path)
    assert res.errors == [] and res.ok, res.errors
    assert_problems(res.warnings, *phrases)
    with pytest.warns(schema.FormatWarning, match=re.escape(phrases[0])):
        assert validate_patch(path) == []


@pytest.mark.parametrize("satellite", ["s1", "s1-asc", "s1asc"])
def test_validate_accepts_satellite_spellings(s1_ann, tmp_path, satellite):
    assert validate_patch(edit(s1_ann, tmp_path, _set_attr("satellite", satellite))) == []


def test_validate_wrong_name_outside_sensor_folder(s2_ann, tmp_path):
    # without a sensor folder the variables cannot be checked; only the name is reported, no exception
    path = tmp_path / "wrongname.nc"
    shutil.copyfile(s2_ann, path)
    assert_problems(validate_patch(path), "does not match")


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"this is a text file, not NetCDF\n" * 20, "text"),
        (b"", "empty"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "hdf"),
    ],
)
def test_validate_not_netcdf_is_one_problem(tmp_path, content, name):
    path = tmp_path / "s2" / "italy_s2_1.nc"
    path.parent.mkdir()
    path.write_bytes(content)
    problems = validate_patch(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith("not a readable NetCDF/HDF5 file")


def test_validate_truncated_file(s2_ann, tmp_path):
    path = tmp_path / "s2" / s2_ann.name
    path.parent.mkdir()
    data = s2_ann.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_problems(validate_patch(path), "not a readable NetCDF/HDF5 file")


def test_validate_missing_file(tmp_path):
    assert_problems(validate_patch(tmp_path / "s2" / "italy_s2_1.nc"), "does not exist")


def test_validate_reports_all_problems_together(s2_ann, tmp_path):
    def break_structure(ds):
        ds = ds.drop_vars(["B03", "spatial_ref"]).assign(MASK=ds.MASK.astype("int16"))
        ds.attrs.pop("event_date")
        ds.attrs["pre_post_dates"] = "pre 7"
        ds.attrs["satellite"] = "s1"
        return ds

    path = restructure(s2_ann, tmp_path, break_structure)
    with netCDF4.Dataset(path, "a") as ds:
        _scl_unknown(ds)
        _mask_changed_at(5)(ds)
    phrases = (
        "variable 'B03' is missing",
        "variable 'spatial_ref' is missing",
        "variable 'MASK' has dtype int16",
        "attribute 'event_date' is missing",
        "attribute 'pre_post_dates' is unparsable",
        "attribute 'satellite' is 's1'",
        "SCL holds unknown classes [42]",
        "MASK is not the same at every time step",
    )
    assert_problems(validate_patch(path), *phrases)
    # the same file under a wrong name: the name problem is added, the others are still found
    renamed = path.with_name("renamed.nc")
    os.replace(path, renamed)
    assert_problems(validate_patch(renamed), *phrases, "does not match")


def test_validate_array_attribute_is_reported(s2_ann, tmp_path):
    path = edit(s2_ann, tmp_path, _set_attr("center_lat", np.array([4881280.0, 4881290.0])))
    assert_problems(validate_patch(path), "attribute 'center_lat' is unparsable")


def _corrupt_band_chunks(src: Path, tmp_path: Path) -> Path:
    """A zlib-compressed copy (as the harmonized release is; the sample's raw files are not, and garbled raw
    bytes read as other numbers) whose spectral-band chunks are garbled but whose header, coordinates, MASK,
    DEM and SCL still read (found by garbling a block at a few positions)."""
    with xr.open_dataset(src, decode_cf=False, decode_times=False) as ds:
        ds = ds.load()
    packed = tmp_path / "compressed.nc"
    enc = {
        name: {"zlib": True, "complevel": 1, "shuffle": True} for name in ds.data_vars if ds[name].ndim == 3
    }
    ds.to_netcdf(packed, engine="netcdf4", format="NETCDF4", encoding=enc)
    data = packed.read_bytes()
    n = len(data)
    for i, frac in enumerate((0.5, 0.3, 0.7, 0.2, 0.6, 0.4, 0.8)):
        start, size = int(frac * n), max(4096, n // 50)
        garbled = data[:start] + bytes((b ^ 0x5A) for b in data[start : start + size]) + data[start + size :]
        path = tmp_path / "s2" / f"italy_s2_{900 + i}.nc"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(garbled)
        try:
            with netCDF4.Dataset(path) as ds:
                for name in ("time", "x", "y", "MASK", "DEM", "SCL"):
                    ds[name][:]
                bad = False
                for name in schema.S2_BANDS:
                    try:
                        ds[name][:]
                    except (OSError, RuntimeError):
                        bad = True
            if bad:
                return path
        except (OSError, RuntimeError):
            continue
    raise RuntimeError("could not build a file with garbled band chunks only")


def test_validate_reports_unreadable_band_data(s2_ann, tmp_path):
    path = _corrupt_band_chunks(s2_ann, tmp_path)  # RuntimeError (a real failure) if it cannot be built
    with pytest.raises(PatchReadError):
        open_patch(path, load=True)
    assert validate_patch(path) != [], "a file whose band data cannot be read is reported valid"


# --------------------------------------------------------------------------------------------------
# Files as the dataset's own writer writes them (tests/real_format.py, REAL-FORMAT.md)
# --------------------------------------------------------------------------------------------------
def test_real_format_files_validate(real_data):
    """Every real-format file is valid; padding, undated events are warnings only."""
    files = sorted(real_data.root.rglob("*.nc"))
    assert len(files) == len(real_data.files)
    for p in files:
        res = io.check_patch(p)
        assert res.errors == [], (p, res.errors)
    padded = io.check_patch(real_data.files["padded"])
    assert_problems(padded.warnings, "3 repeated date(s) (2018-10-12)")
    for case, token in (("undated", "'None'"), ("undated_nat", "' NaT '"), ("mixed", "none")):
        assert_problems(io.check_patch(real_data.files[case]).warnings, "1 undated event(s) in 'event_date'")
        assert token in io.check_patch(real_data.files[case]).warnings[0]
    # the writer's own pre_post_dates agree with the time axis once re-paired with the sorted dates
    for case in ("multi", "multi_s1", "before", "after", "across_raw"):
        assert io.check_patch(real_data.files[case]).warnings == [], case


def test_real_format_set_ordered_events_are_sorted_and_re_paired(real_data):
    with netCDF4.Dataset(real_data.files["multi"]) as ds:
        raw = {k: ds.getncattr(k) for k in ds.ncattrs()}
        times = netCDF4.num2date(ds["time"][:], ds["time"].units, only_use_cftime_datetimes=False)
    assert raw["event_date"] == "2018-09-28,2018-08-31"
    assert raw["pre_post_dates"] == "{'pre': 8, 'post': 9},{'pre': 4, 'post': 5}"
    assert isinstance(raw["center_lat"], float | np.floating)
    attrs, problems = parse_attrs(raw)
    assert problems == [] and attrs.notes == []
    assert attrs.event_dates == [dt.date(2018, 8, 31), dt.date(2018, 9, 28)]
    assert attrs.event_date == dt.date(2018, 8, 31)
    assert attrs.pre_post == [(4, 5), (8, 9)]  # kept paired with their dates
    assert attrs.date_confidences == [0.6, 1.0]  # distinct values, not one per event
    steps = schema.patch_event_steps(np.array(times, dtype="datetime64[D]"), attrs)
    assert (steps.position, steps.pair, steps.n_before, steps.n_after) == ("inside", (4, 5), 5, 10)


@pytest.mark.parametrize("token", ["None", "none", " NONE ", "nan", "NaN", "NaT", " nat"])
def test_undated_tokens(token):
    raw = encode_attrs(_attrs())
    raw.update(event_date=token, date_confidence=token, pre_post_dates="{'pre': 0, 'post': 0}")
    attrs, problems = parse_attrs(raw)
    assert problems == [] and attrs.notes == []
    assert attrs.event_dates == [] and attrs.n_undated_events == 1 and attrs.undated
    assert attrs.date_confidences == [] and attrs.pre_post == [] and attrs.event_date is None
    assert parse_dates(f"2018-09-28,{token}") == [dt.date(2018, 9, 28)]
    assert schema.parse_event_entries(f"2018-09-28,{token}") == [dt.date(2018, 9, 28), None]
    assert schema.parse_confidences(f"1.0,{token},0.5,1.0") == [0.5, 1.0]


def test_encode_attrs_writes_undated_entries_last():
    a = _attrs(n_undated_events=1)
    raw = encode_attrs(a)
    assert raw["event_date"] == "2023-05-16,None"
    assert raw["pre_post_dates"] == "{'pre': 7, 'post': 8},{'pre': 0, 'post': 0}"
    back, problems = parse_attrs(raw)
    assert problems == [] and back == a


T5 = np.array(["2023-05-01", "2023-05-06", "2023-05-11", "2023-05-21", "2023-05-26"], dtype="datetime64[D]")


@pytest.mark.parametrize(
    ("events", "undated", "want"),
    [
        ([dt.date(2023, 5, 16)], False, ("inside", 2, 3, 3, 2)),
        ([dt.date(2023, 5, 11)], False, ("inside", 1, 2, 2, 3)),  # same day: the post step
        ([dt.date(2023, 5, 23), dt.date(2023, 5, 3)], False, ("inside", 0, 1, 1, 4)),  # earliest one
        ([dt.date(2023, 5, 1)], False, ("before", -1, 0, 0, 5)),  # on the first date: all post-event
        ([dt.date(2023, 4, 1)], False, ("before", -1, 0, 0, 5)),
        ([dt.date(2023, 6, 1)], False, ("after", 4, 5, 5, 0)),
        ([], True, ("undated", -1, 5, 0, 0)),
        ([], False, ("none", -1, 5, 0, 0)),
    ],
)
def test_event_steps(events, undated, want):
    s = schema.event_steps(T5, events, undated=undated)
    assert (s.position, s.pre, s.post, s.n_before, s.n_after) == want
    assert s.has_pair == (want[0] == "inside")
    assert s.pair == ((want[1], want[2]) if s.has_pair else None)


def test_event_steps_with_repeated_dates():
    padded = np.array([*T5[:4], T5[3], T5[3]], dtype="datetime64[D]")
    assert schema.event_steps(padded, [dt.date(2023, 5, 16)]).pair == (2, 3)
    assert schema.event_steps(padded, [dt.date(2023, 5, 21)]).pair == (2, 3)
    assert schema.event_steps(padded, [dt.date(2023, 5, 22)]).position == "after"


def test_writer_pre_post():
    assert schema.writer_pre_post(T5, dt.date(2023, 5, 16)) == (2, 3)
    assert schema.writer_pre_post(T5, dt.date(2023, 5, 11)) == (1, 2)
    assert schema.writer_pre_post(T5, dt.date(2023, 4, 1)) == (0, 0)
    assert schema.writer_pre_post(T5, dt.date(2023, 5, 1)) == (0, 0)
    assert schema.writer_pre_post(T5, dt.date(2023, 7, 1)) == (4, 4)
    assert schema.writer_pre_post(T5, None) == (0, 0)


def test_release_constants():
    assert schema.S2_OFFSET == 1000 and schema.S2_OFFSET_FROM == dt.date(2022, 1, 25)
    assert schema.S2_OFFSET_BANDS == schema.S2_BANDS and "SCL" not in schema.S2_OFFSET_BANDS
    assert schema.RELEASES == ("raw", "harmonized", "unknown")


# --------------------------------------------------------------------------------------------------
# Quality notes and figures: SCL 255 frames, repeated dates, Sentinel-1 gaps (NaN or filled)
# --------------------------------------------------------------------------------------------------
def test_repeated_neighbour_pixels_counts_runs_of_equal_values():
    rng = np.random.default_rng(0)
    frames = rng.random((3, 6, 7)).astype("float32")
    frames[1, 2:4, 1:4] = 0.25  # a 2 x 3 run: 6 pixels equal a neighbour
    frames[2, 0, 0:3] = frames[2, 1, 0:3] = 0.5  # 6 more, but in frame 2
    frames[2, 5, 5:7] = 1.0  # a clip limit: never counted
    frames[2, 4, 0:2] = np.nan  # NaN never counts
    assert schema.repeated_neighbour_pixels(frames).tolist() == [0, 6, 6]
    assert schema.repeated_neighbour_pixels(frames, skip=()).tolist() == [0, 6, 8]
    # the spatial order does not matter: (time, x, y) gives the same counts
    assert (
        schema.repeated_neighbour_pixels(frames.transpose(0, 2, 1)).tolist()
        == schema.repeated_neighbour_pixels(frames).tolist()
    )


def _real_s2(tmp_path: Path, times=None) -> Path:
    from real_format import MULTI_TIMES, write_real_patch

    return write_real_patch(
        tmp_path / "s2" / "chimanimani_s2_1.nc",
        times or MULTI_TIMES,
        event_date="2018-09-01",
        date_confidence="1.0",
    )


def test_scl_255_is_a_quality_note_not_an_error(tmp_path):
    path = _real_s2(tmp_path)
    with netCDF4.Dataset(path, "a") as ds:
        scl = ds["SCL"][:]
        scl[6] = 255  # a whole frame of unknown quality, as the real files have them
        scl[9, :20, :30] = 255  # and part of another
        ds["SCL"][:] = scl
    res = io.check_patch(path)
    assert res.errors == [] and res.ok
    assert res.notes == [
        "SCL 255 (unknown quality, no scene class) in 2 of 15 frame(s), 1 of them whole: unusable for cloud "
        "masks, not a format error"
    ]
    assert (res.quality["scl_unknown_frames"], res.quality["scl_unknown_whole_frames"]) == (2, 1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a quality note is no FormatWarning either
        assert validate_patch(path) == []
    # any other class outside ESA's list is still a format error, next to the note
    with netCDF4.Dataset(path, "a") as ds:
        s = ds["SCL"][3]
        s[0, 0] = 42
        ds["SCL"][3] = s
    res = io.check_patch(path)
    assert res.errors == ["SCL holds unknown classes [42]"] and res.quality["scl_unknown_frames"] == 2


def test_quality_figures_of_a_clean_file_are_zero(tmp_path):
    res = io.check_patch(_real_s2(tmp_path))
    assert res.notes == [] and res.quality == dict.fromkeys(schema.QUALITY_KEYS, 0)


def test_repeated_dates_are_counted(tmp_path):
    from real_format import MULTI_TIMES

    padded = MULTI_TIMES[:12] + [MULTI_TIMES[11]] * 3
    res = io.check_patch(_real_s2(tmp_path, times=padded))
    assert res.quality["repeated_dates"] == 3 and res.errors == []


def test_s1_gaps_filled_by_copying_are_seen_without_nan(tmp_path):
    clean = io.check_patch(write_s1(tmp_path / "s1asc" / "italy_s1asc_1.nc"))
    assert (
        clean.errors == [] and clean.quality["s1_filled_frames"] == 0 and clean.quality["s1_nan_pixels"] == 0
    )
    assert clean.quality["s1_repeat_pixels"] < schema.S1_FILL_MIN_PIXELS
    filled = io.check_patch(write_s1(tmp_path / "s1asc" / "italy_s1asc_2.nc", edit=fill_gap))
    assert filled.errors == [] and filled.quality["s1_nan_pixels"] == 0
    assert filled.quality["s1_filled_frames"] == 2
    assert filled.quality["s1_repeat_pixels"] == 16 * 16 + 16  # the gap and the row it was copied from

    def clipped(values):  # bright targets at the writer's clip limit repeat without any filling
        values[:, :40, :40] = 1.0

    assert (
        io.check_patch(write_s1(tmp_path / "s1asc" / "italy_s1asc_3.nc", edit=clipped)).quality[
            "s1_filled_frames"
        ]
        == 0
    )


def test_s1_gaps_left_as_nan_are_counted(tmp_path):
    def gap(values):
        values[4, :10, :10] = np.nan

    res = io.check_patch(write_s1(tmp_path / "s1dsc" / "italy_s1dsc_1.nc", edit=gap))
    assert res.errors == [] and res.quality["s1_nan_pixels"] == 2 * 100  # VV and VH
