"""Patch files written the way the dataset's own writer writes them, for the tests.

``../shared/reference/REAL-FORMAT.md`` describes what ``build_and_save_xarray_dataset`` of the upstream
preprocessing writes (checked by running it). :func:`write_real_patch` writes the same layout without
any package code, so that the readers are tested against the real format and not against our own
synthetic generator:

- dims ``(time, y, x)``, 15 × 128 × 128; ``x``/``y`` float64 pixel **edges** (``x0 + 10 i``, ``y0 − 10 j``,
  y descending) with xarray's default ``_FillValue=NaN``;
- ``time`` ``datetime64[ns]`` sorted (``sortby("time")``), encoded by xarray's defaults (int64 days since
  the first date); a short series is padded by repeating its last date;
- ``spatial_ref`` an int64 scalar *data variable* with the CF grid-mapping attributes, ``crs_wkt``,
  ``spatial_ref`` and ``GeoTransform``; data variables carry ``grid_mapping="spatial_ref"``;
- variables in file order ``VH, VV, MASK, DEM`` (S1, float32 with ``_FillValue=NaN``; raw values are
  linear power clipped to ≤ 1, harmonized ones dB in [−50, 10]) or ``B02 … B12, SCL, MASK, DEM`` (S2, all
  int16 without ``_FillValue``; MASK uint8); no compression, no chunking;
- attributes as strings except ``center_lat``/``center_lon`` (float64, ``y[64]``/``x[64]``);
  ``satellite`` ``"s1-asc"``, ``"s1-dsc"`` or ``"s2"``; ``event_date`` and ``date_confidence`` joined from
  sets (arbitrary order, undated entries as ``None``/``nan``/``NaT``); ``pre_post_dates`` one dict per
  ``event_date`` entry in the same order, by the writer's ``searchsorted`` rule.

:func:`build_real_data` writes a small tree of such files (``data_raw/…`` and ``data_harmonized/…``) with
one file per case the readers must handle; the ``real_data`` fixture builds it once per test module that
imports it.
The ``s2`` bands encode the time step and the event (see :func:`s2_values`), so a test can tell from a
composite which dates went into it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

N = 128
EPSG = 32632
X0, Y0 = 700000.0, 4900000.0  # top-left corner of every patch (multiples of 10 m)
S2_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
OFFSET_FROM = np.datetime64("2022-01-25", "D")

#: Acquisition dates of the multi-event example: 2018-08-31 has 5 dates before it (pre/post 4/5; the
#: acquisition on 08-31 itself is post-event), 2018-09-28 has 9 (pre/post 8/9).
MULTI_TIMES = (
    "2018-08-06 2018-08-11 2018-08-16 2018-08-21 2018-08-26 2018-08-31 2018-09-07 2018-09-14 "
    "2018-09-21 2018-09-28 2018-10-05 2018-10-12 2018-10-19 2018-10-26 2018-11-02"
).split()
#: Written from a set: not chronological.
MULTI_EVENTS = "2018-09-28,2018-08-31"


def days(dates) -> np.ndarray:
    return np.array([np.datetime64(d, "D") for d in dates], dtype="datetime64[D]")


def writer_pre_post(times, event_date: str) -> str:
    """``pre_post_dates`` as the writer builds it (l.160-175, 279), from ``event_date`` in written order:
    ``searchsorted(times, event)``; 0 or undated → ``{0, 0}``; len → ``{14, 14}``; else ``{idx-1, idx}``."""
    t = np.asarray(times, dtype="datetime64[ns]")
    out = []
    for part in (p for p in event_date.split(",") if p):
        if part.strip().lower() in ("none", "nan", "nat"):
            pre = post = 0
        else:
            idx = int(np.searchsorted(t, np.datetime64(part.strip(), "ns")))
            if idx == 0:
                pre = post = 0
            elif idx == len(t):
                pre = post = len(t) - 1
            else:
                pre, post = idx - 1, idx
        out.append(str({"pre": pre, "post": post}))
    return ",".join(out)


def _grid_mapping() -> dict:
    from pyproj import CRS

    crs = CRS.from_epsg(EPSG)
    attrs = crs.to_cf()
    attrs["spatial_ref"] = crs.to_wkt()
    attrs["GeoTransform"] = f"{X0!r} 10.0 0.0 {Y0!r} 0.0 -10.0"
    return attrs


def s2_values(times, event: str | None, *, release: str = "raw", base: int = 400) -> dict[str, np.ndarray]:
    """S2 bands ``(T, y, x)`` int16: physical DN ``base + 10 t`` before the primary event and
    ``2500 + 10 t`` on or after it (so the step and its side of the event can be read back), B08 = 3000
    (vegetation-like NIR); ``release="raw"`` adds the +1000 offset from 2022-01-25 (clipped to 10000).
    Pixel (0, 0) holds a physical 0 (no data; SCL 0) at every date."""
    d = days(times)
    t = np.arange(d.size)
    after = d >= np.datetime64(event, "D") if event else np.zeros(d.size, bool)
    phys = np.where(after, 2500 + 10 * t, base + 10 * t).astype("int32")
    out = {}
    for b in S2_BANDS:
        v = np.full((d.size, N, N), 3000 if b == "B08" else 0, dtype="int32")
        if b != "B08":
            v += phys[:, None, None]
        v[:, 0, 0] = 0
        if release == "raw":
            off = d >= OFFSET_FROM
            v[off] = np.where(v[off] > 0, np.minimum(v[off] + 1000, 10000), 0)
        out[b] = v.astype("int16")
    return out


def write_real_patch(
    path: Path,
    times,
    *,
    event_date: str = "",
    date_confidence: str = "",
    annotated: bool | None = None,
    mask: np.ndarray | None = None,
    bands: dict[str, np.ndarray] | None = None,
    scl: np.ndarray | None = None,
    s1_unit: str = "linear",
    ann_id: str | None = None,
    pre_post_dates: str | None = None,
) -> Path:
    """Write one patch as the reference writer does (module docstring); returns ``path``.

    The sensor comes from the folder name (``s1asc``, ``s1dsc``, ``s2``). ``times`` are ISO dates (sorted
    here, like ``sortby("time")``; repeat one to pad). Defaults: annotated when ``event_date`` is set, a
    12 × 12 landslide in the middle, ``pre_post_dates`` by the writer's rule, S2 bands from
    :func:`s2_values` (raw release), SCL 4 (vegetation), S1 backscatter constant in ``s1_unit``.
    """
    sensor = path.parent.name
    time = np.sort(np.array(list(times), dtype="datetime64[ns]"))
    nt = time.size
    annotated = bool(event_date) if annotated is None else annotated
    if mask is None:
        mask = np.zeros((N, N), np.uint8)
        if annotated:
            mask[58:70, 58:70] = 1
    data: dict[str, xr.DataArray] = {}
    gm = {"grid_mapping": "spatial_ref"}
    dims = ("time", "y", "x")
    if sensor == "s2":
        dated = sorted(p.strip() for p in event_date.split(",") if p.strip()[:1].isdigit())
        bands = bands if bands is not None else s2_values(time, dated[0] if dated else None)
        for b in S2_BANDS:
            data[b] = xr.DataArray(bands[b].astype("int16"), dims=dims, attrs=gm)
        scl = np.full((nt, N, N), 4, np.int16) if scl is None else scl.copy()
        scl[:, 0, 0] = 0  # the no-data pixel of s2_values
        data["SCL"] = xr.DataArray(scl.astype("int16"), dims=dims, attrs=gm)
    else:
        vh, vv = (0.02, 0.1) if s1_unit == "linear" else (-17.0, -10.0)
        for name, v in (("VH", vh), ("VV", vv)):
            data[name] = xr.DataArray(np.full((nt, N, N), v, np.float32), dims=dims, attrs=gm)
    data["MASK"] = xr.DataArray(np.broadcast_to(mask, (nt, N, N)).astype("uint8"), dims=dims, attrs=gm)
    data["DEM"] = xr.DataArray(np.full((nt, N, N), 812, np.int16), dims=dims, attrs=gm)
    x = np.arange(N) * 10.0 + X0
    y = Y0 + np.arange(N) * -10.0
    n_events = len([p for p in event_date.split(",") if p])
    attrs = {
        "ann_id": ann_id if ann_id is not None else ",".join(str(41000 + i) for i in range(n_events)),
        "ann_bbox": ",".join(str((X0 + 580.0, Y0 - 700.0, X0 + 700.0, Y0 - 580.0)) for _ in range(n_events)),
        "event_date": event_date,
        "date_confidence": date_confidence,
        "pre_post_dates": writer_pre_post(time, event_date) if pre_post_dates is None else pre_post_dates,
        "annotated": str(annotated),
        "satellite": {"s2": "s2", "s1asc": "s1-asc", "s1dsc": "s1-dsc"}[sensor],
        "center_lat": float(y[N // 2]),
        "center_lon": float(x[N // 2]),
        "crs": f"EPSG:{EPSG}",
    }
    ds = xr.Dataset(data, coords={"time": time, "y": y, "x": x}, attrs=attrs)
    ds["spatial_ref"] = xr.DataArray(np.int64(0), attrs=_grid_mapping())
    ds = ds.sortby("time")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)  # no encoding: xarray's defaults, as the writer (l.300)
    return path


def _series(start: str, step_days: int, n: int = 15) -> list[str]:
    d0 = dt.date.fromisoformat(start)
    return [(d0 + dt.timedelta(days=step_days * i)).isoformat() for i in range(n)]


@dataclass
class RealData:
    """A small tree of real-format files (see :func:`build_real_data`)."""

    root: Path  # holds data_raw/ and data_harmonized/
    files: dict[str, Path] = field(default_factory=dict)  # case name -> file

    @property
    def raw(self) -> Path:
        return self.root / "data_raw"

    @property
    def harmonized(self) -> Path:
        return self.root / "data_harmonized"


#: Acquisition dates of the raw S2 series across the baseline-04.00 change (2022-01-25 is step 6).
ACROSS_TIMES = _series("2021-12-26", 5)


def build_real_data(root: Path) -> RealData:
    """Write one file per case into ``root/data_raw`` and ``root/data_harmonized``; returns the paths.

    Cases (name → file):

    - ``multi``: S2, ``event_date="2018-09-28,2018-08-31"`` (set order), confidences ``"1.0,0.6"``; the
      first four dates are cloudy (SCL 9), so a composite over ``0…8`` would take its median from
      post-event dates;
    - ``multi_s1``: S1 ascending at the same location, the same events listed the other way round;
    - ``undated``: S2 annotated, ``event_date="None"``, ``date_confidence="nan"``, ``{0, 0}``;
    - ``undated_nat``: S1 descending, ``" NaT "``; ``mixed``: S2 ``"2018-09-28,none"``;
    - ``padded``: S2 with 12 distinct dates, the last one repeated (15 steps), event inside;
    - ``before`` / ``after``: S2 with the event before the first / after the last date;
    - ``negative``: S2 not annotated (empty attributes, empty mask);
    - ``across_raw``: raw S2 from 2021-12-26, every 5 days, across 2022-01-25, event 2022-02-04; its
      harmonized twin ``across_harmonized`` (same physical values, no offset) under data_harmonized;
    - ``s1_harmonized``: S1 ascending in dB under data_harmonized.
    """
    raw, har = root / "data_raw", root / "data_harmonized"
    out = RealData(root)
    w = out.files
    multi_times = MULTI_TIMES
    scl = np.full((15, N, N), 4, np.int16)
    scl[:4] = 9  # cloud high probability on the first four dates
    w["multi"] = write_real_patch(
        raw / "s2" / "italy_s2_101.nc",
        multi_times,
        event_date=MULTI_EVENTS,
        date_confidence="1.0,0.6",
        scl=scl,
    )
    s1_times = _series("2018-08-03", 6)
    w["multi_s1"] = write_real_patch(
        raw / "s1asc" / "italy_s1asc_101.nc",
        s1_times,
        event_date="2018-08-31,2018-09-28",
        date_confidence="0.6,1.0",
    )
    w["undated"] = write_real_patch(
        raw / "s2" / "italy_s2_102.nc", multi_times, event_date="None", date_confidence="nan"
    )
    w["undated_nat"] = write_real_patch(
        raw / "s1dsc" / "italy_s1dsc_102.nc", s1_times, event_date=" NaT ", date_confidence="None"
    )
    w["mixed"] = write_real_patch(
        raw / "s2" / "italy_s2_103.nc", multi_times, event_date="2018-09-28,none", date_confidence="1.0,nan"
    )
    padded = multi_times[:12] + [multi_times[11]] * 3  # the writer repeats the last index
    w["padded"] = write_real_patch(
        raw / "s2" / "italy_s2_104.nc", padded, event_date="2018-09-01", date_confidence="1.0"
    )
    w["before"] = write_real_patch(
        raw / "s2" / "italy_s2_105.nc", multi_times, event_date="2018-07-01", date_confidence="1.0"
    )
    w["after"] = write_real_patch(
        raw / "s2" / "italy_s2_106.nc", multi_times, event_date="2018-12-01", date_confidence="0.5"
    )
    w["negative"] = write_real_patch(raw / "s2" / "italy_s2_107.nc", multi_times)
    w["across_raw"] = write_real_patch(
        raw / "s2" / "italy_s2_108.nc", ACROSS_TIMES, event_date="2022-02-04", date_confidence="1.0"
    )
    w["across_harmonized"] = write_real_patch(
        har / "s2" / "italy_s2_108.nc",
        ACROSS_TIMES,
        event_date="2022-02-04",
        date_confidence="1.0",
        bands=s2_values(ACROSS_TIMES, "2022-02-04", release="harmonized"),
    )
    w["s1_harmonized"] = write_real_patch(
        har / "s1asc" / "italy_s1asc_101.nc", s1_times, event_date="2018-08-31", s1_unit="dB"
    )
    return out


@pytest.fixture(scope="session", name="real_data")
def real_data_fixture(tmp_path_factory: pytest.TempPathFactory) -> RealData:
    """Fixture ``real_data``: the tree of :func:`build_real_data` (treat it as read-only). A test module
    uses it with ``from real_format import real_data_fixture  # noqa: F401``."""
    return build_real_data(tmp_path_factory.mktemp("real"))


def copy_tree(data: RealData, dst: Path) -> RealData:
    """A writable copy (same case names)."""
    shutil.copytree(data.root, dst)
    return RealData(dst, {k: dst / p.relative_to(data.root) for k, p in data.files.items()})


def expected_days(times) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(sorted(pd.Timestamp(t) for t in times))
