"""Match Sen12Landslides patches across Sentinel-1 ascending, Sentinel-1 descending and Sentinel-2.

A *location* is a region and a patch id (``key = <region>_<id>``); each sensor folder may or may not
hold a patch there. This module answers four questions, all starting from the table that
:func:`s12ls_utils.catalog.build_catalog` returns:

- **Which sensors exist where?** :func:`availability` (one row per location, a flag per sensor and a
  combination label such as ``"s1asc+s1dsc+s2"``) and :func:`combination_counts`.
- **Do the patches of a location really line up?** :func:`check_consistency` compares the CRS, the
  x/y grid, the landslide MASK, the event date and (on request) the DEM of every pair of sensors at
  each location and returns every mismatch as a row of a table instead of failing.
- **Which locations can a multi-modal study use?** :func:`aligned_groups` returns one row per location
  that has every requested sensor, with one path column per sensor; given the mismatch table it keeps
  only the *strictly aligned* locations. Split creation and fusion training take this table.
- **How do the acquisition dates relate?** :func:`time_alignment` gives, per location and sensor, the
  dates relative to the event, the nearest Sentinel-1 acquisition to each Sentinel-2 date and how many
  post-event acquisitions each sensor has before the first clear Sentinel-2 view.

Only headers, coordinates, attributes and ``MASK``/``DEM`` at the first time step are read (and the
Sentinel-2 scene classes for the time alignment), group by group, so memory stays bounded on the full
dataset. Many groups are read in worker processes started by a ``forkserver`` (no NetCDF/HDF5 handle
crosses a fork).

Example
-------
>>> from s12ls_utils import alignment, catalog
>>> cat = catalog.build_catalog("data/sample")  # doctest: +SKIP
>>> mism = alignment.check_consistency(cat, "data/sample")  # doctest: +SKIP
>>> groups = alignment.aligned_groups(cat, mismatches=mism)  # doctest: +SKIP
>>> groups[["key", "s1asc", "s1dsc", "s2"]].head()  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import catalog as catalog_mod
from . import io, schema
from .parallel import FilesFailed, map_files
from .signatures import relative_days

log = logging.getLogger(__name__)

#: Every consistency check :func:`check_consistency` knows (``"read"`` rows report unreadable files).
CHECKS: tuple[str, ...] = ("crs", "grid_x", "grid_y", "mask", "event_date", "dem")
#: Checks run by default. The DEM check is opt-in: a fusion model uses one DEM, and the real
#: products may carry DEMs resampled differently per sensor.
DEFAULT_CHECKS: tuple[str, ...] = ("crs", "grid_x", "grid_y", "mask", "event_date")
#: Largest difference (metres) between two x or y coordinate vectors that still counts as the same grid.
GRID_TOLERANCE_M = 1e-3
#: Columns of the mismatch table.
MISMATCH_COLUMNS: tuple[str, ...] = ("key", "region", "patch_id", "check", "sensor_a", "sensor_b", "detail")
#: A Sentinel-2 date is *clear* when its share of SCL-bad pixels is below this (as the catalog's ``n_clear``).
CLEAR_BELOW: float = catalog_mod._CLEAR_BELOW

#: Fewer groups than this are read in the calling process (a worker pool costs more to start).
_MIN_GROUPS_FOR_POOL = 64


# --------------------------------------------------------------------------------------------------
# Availability
# --------------------------------------------------------------------------------------------------
def _sensors_arg(sensors: Iterable[str] | str) -> tuple[str, ...]:
    out = schema.check_sensors(sensors)
    if not out:
        raise ValueError("at least one sensor is needed")
    return out


def combination_label(present: Iterable[str]) -> str:
    """``{"s2", "s1asc"}`` → ``"s1asc+s2"`` (sensors in :data:`schema.SENSORS` order, ``+``-joined)."""
    have = set(present)
    return "+".join(s for s in schema.SENSORS if s in have)


def combinations(sensors: Iterable[str] = schema.SENSORS) -> list[str]:
    """Every non-empty combination label of ``sensors``: most sensors first, then in sensor order."""
    sensors = [s for s in schema.SENSORS if s in set(_sensors_arg(sensors))]
    return ["+".join(c) for r in range(len(sensors), 0, -1) for c in itertools.combinations(sensors, r)]


def availability(catalog: pd.DataFrame) -> pd.DataFrame:
    """One row per location: which sensors have a patch there.

    Columns: ``key, region, patch_id``, a boolean per sensor (``s1asc``, ``s1dsc``, ``s2``),
    ``n_sensors``, ``combination`` (e.g. ``"s1asc+s1dsc+s2"``, see :func:`combination_label`) and
    ``annotated`` (annotated in at least one sensor). Sorted by key.
    """
    loc = catalog_mod.locations(catalog)
    present = loc[list(schema.SENSORS)].to_numpy(dtype=bool)
    labels = [combination_label(s for s, p in zip(schema.SENSORS, row, strict=True) if p) for row in present]
    loc.insert(loc.columns.get_loc("n_sensors") + 1, "combination", pd.Series(labels, dtype="string"))
    return loc


def combination_counts(
    catalog: pd.DataFrame, by: Iterable[str] | str | None = ("region", "annotated")
) -> pd.DataFrame:
    """Number of locations per sensor combination, optionally per ``by`` columns of :func:`availability`.

    ``catalog`` is a catalog or an :func:`availability` table. Returns a long table: the ``by`` columns,
    ``combination`` and ``locations``; only combinations that occur, in the order of
    :func:`combinations` within each ``by`` group. The ``locations`` column sums to the number of
    locations.
    """
    avail = catalog if "combination" in catalog.columns else availability(catalog)
    by = [by] if isinstance(by, str) else list(by or ())
    missing = [c for c in by if c not in avail.columns]
    if missing:
        raise KeyError(f"cannot group by {missing}: not a column of the availability table")
    out = avail.groupby([*by, "combination"], sort=False).size().rename("locations").reset_index()
    order = {c: i for i, c in enumerate(combinations())}
    out["_order"] = out["combination"].map(order)
    out = out.sort_values([*by, "_order"], kind="stable").drop(columns="_order").reset_index(drop=True)
    out["combination"] = out["combination"].astype("string")
    out["locations"] = out["locations"].astype("int64")
    return out


def combination_table(catalog: pd.DataFrame, by: str) -> pd.DataFrame:
    """:func:`combination_counts` by one column ``by`` as a grid: locations per sensor combination (rows, in
    the order of :func:`combinations`, those that occur) and value of ``by`` (columns, sorted), 0 where none."""
    combos = list(dict.fromkeys(combination_counts(catalog, by=())["combination"]))
    return (
        combination_counts(catalog, by=by)
        .pivot_table(index="combination", columns=by, values="locations", aggfunc="sum")
        .reindex(index=combos)
        .fillna(0)
        .astype(int)
    )


def _groups(
    catalog: pd.DataFrame, sensors: Sequence[str], min_sensors: int
) -> list[tuple[str, str, int, list[tuple[str, str]]]]:
    """``[(key, region, patch_id, [(sensor, rel path), …]), …]`` of locations with ≥ ``min_sensors``."""
    sub = catalog[catalog["sensor"].isin(sensors)]
    rank = {s: i for i, s in enumerate(sensors)}
    out = []
    for key, g in sub.groupby("key", sort=True):
        if g["sensor"].nunique() < min_sensors:
            continue
        if g["sensor"].duplicated().any():
            raise ValueError(f"location {key!r} has more than one patch of one sensor in the catalog")
        files = sorted(zip(g["sensor"].tolist(), g["path"].tolist(), strict=True), key=lambda f: rank[f[0]])
        out.append((str(key), str(g["region"].iloc[0]), int(g["patch_id"].iloc[0]), files))
    return out


def aligned_groups(
    catalog: pd.DataFrame,
    sensors: Iterable[str] | str = schema.SENSORS,
    mismatches: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The locations a multi-modal study can use: one row per location having **all** ``sensors``.

    Parameters
    ----------
    catalog
        The table of :func:`s12ls_utils.catalog.build_catalog`.
    sensors
        The sensors every returned location must have.
    mismatches
        The table of :func:`check_consistency`. When given, locations with a mismatch *between two of
        the requested sensors* (or an unreadable file of one of them) are left out: the result is the
        *strictly aligned* set. Without it, presence alone decides. The keys left out are listed in
        ``out.attrs["excluded"]``.

    Returns
    -------
    pandas.DataFrame
        Columns ``key, region, patch_id, annotated`` (in any of the requested sensors), ``event_date``
        (the earliest event date listed by the requested sensors; NaT when not annotated),
        ``n_positive`` (landslide pixels of MASK, the largest over the sensors) and one column per
        sensor, named exactly like the sensor (``s1asc``, ``s1dsc``, ``s2``), holding the patch's path
        relative to the data folder (as in the catalog). One row per key, sorted by key.
    """
    sensors = _sensors_arg(sensors)
    sub = catalog[catalog["sensor"].isin(sensors)]
    if sub.duplicated(["key", "sensor"]).any():
        dup = sub.loc[sub.duplicated(["key", "sensor"]), "key"].iloc[0]
        raise ValueError(f"location {dup!r} has more than one patch of one sensor in the catalog")
    paths = sub.pivot(index="key", columns="sensor", values="path").reindex(columns=list(sensors))
    paths = paths.dropna(how="any")
    agg = sub.groupby("key", sort=True).agg(
        region=("region", "first"),
        patch_id=("patch_id", "first"),
        annotated=("annotated", "any"),
        event_date=("event_date", "min"),
        n_positive=("n_positive", "max"),
    )
    out = agg.loc[agg.index.isin(paths.index)].join(paths)
    excluded: list[str] = []
    if mismatches is not None:
        bad = _mismatched_keys(mismatches, sensors)
        excluded = sorted(set(out.index) & bad)
        out = out.loc[~out.index.isin(bad)]
    out = out.rename_axis("key").reset_index()
    out.columns.name = None
    dtypes = {
        "key": "string",
        "region": "string",
        "patch_id": "int64",
        "annotated": "bool",
        "event_date": "datetime64[ns]",
        "n_positive": "int64",
        **dict.fromkeys(sensors, "string"),
    }
    out = out[list(dtypes)].astype(dtypes)
    out.attrs = {"sensors": list(sensors), "strict": mismatches is not None, "excluded": excluded}
    return out


def _mismatched_keys(mismatches: pd.DataFrame, sensors: Sequence[str]) -> set[str]:
    """Keys with a mismatch among ``sensors`` (both sides requested, or an unreadable requested file)."""
    if mismatches is None or len(mismatches) == 0:
        return set()
    a = mismatches["sensor_a"].astype("object")
    b = mismatches["sensor_b"].astype("object")
    involved = a.isin(sensors) & (b.isna() | b.isin(sensors))
    return set(mismatches.loc[involved.to_numpy(), "key"].astype(str))


# --------------------------------------------------------------------------------------------------
# Parallel map over groups
# --------------------------------------------------------------------------------------------------
def _map_groups(fn: Callable, tasks: Sequence, *, workers: int | None, progress: bool, desc: str) -> list:
    """``fn`` of each group, in input order; in worker processes (:func:`s12ls_utils.parallel.map_files`)
    from :data:`_MIN_GROUPS_FOR_POOL` groups on. An unreadable file is a result of ``fn``, not a failure:
    a failure here is a crash, and it ends the pass."""
    scheduler = "processes" if len(tasks) >= _MIN_GROUPS_FOR_POOL else "synchronous"
    res = map_files(
        fn, tasks, scheduler=scheduler, workers=workers, desc=desc, unit="location", progress=progress
    )
    if res.failures:
        raise FilesFailed(desc, res.failures, len(tasks))
    return res.results


# --------------------------------------------------------------------------------------------------
# Consistency
# --------------------------------------------------------------------------------------------------
@dataclass
class _Header:
    crs: str
    event_dates: tuple[str, ...]
    x: np.ndarray | None
    y: np.ndarray | None
    mask: np.ndarray | None
    dem: np.ndarray | None


def _read_header(path: Path, checks: frozenset[str]) -> _Header:
    """What the checks need from one file: attributes, coordinates, MASK/DEM at time step 0 as (y, x)."""
    with io.open_nc(path) as ds:
        names = set(ds.ncattrs())
        crs = str(ds.getncattr("crs")).strip().upper() if "crs" in names else ""
        raw = str(ds.getncattr("event_date")) if "event_date" in names else ""
        try:  # a set in the file: compared sorted, undated entries (None/nan/NaT) as "undated"
            entries = schema.parse_event_entries(raw)
            events = tuple(sorted(d.isoformat() for d in entries if d is not None)) + ("undated",) * sum(
                d is None for d in entries
            )
        except ValueError:
            events = (raw.strip(),)

        wanted = {"x": "grid_x", "y": "grid_y", "MASK": "mask", "DEM": "dem"}
        io.require_variables(ds, *(name for name, check in wanted.items() if check in checks))
        return _Header(
            crs=crs,
            event_dates=events,
            x=np.asarray(ds.variables["x"][:], dtype="float64") if "grid_x" in checks else None,
            y=np.asarray(ds.variables["y"][:], dtype="float64") if "grid_y" in checks else None,
            mask=io.read_tyx(ds.variables["MASK"], 0) if "mask" in checks else None,
            dem=io.read_tyx(ds.variables["DEM"], 0) if "dem" in checks else None,
        )


def _fmt_m(v: float) -> str:
    return f"{v:.3g} m" if abs(v) < 1000 else f"{v:,.0f} m"


def _compare(a: _Header, b: _Header, checks: frozenset[str], tol: float, dem_tol: float) -> list[tuple]:
    """``[(check, detail), …]`` for every check that fails between two headers."""
    out = []
    if "crs" in checks and a.crs != b.crs:
        out.append(("crs", f"{a.crs or 'missing'} vs {b.crs or 'missing'}"))
    for check, axis, va, vb in (("grid_x", "x", a.x, b.x), ("grid_y", "y", a.y, b.y)):
        if check not in checks:
            continue
        if va.shape != vb.shape:
            out.append((check, f"{va.size} vs {vb.size} {axis} coordinates"))
            continue
        d = np.abs(va - vb)
        if not np.isfinite(d).all() or (d.size and float(d.max()) > tol):
            dmax = float(np.nanmax(d)) if np.isfinite(d).any() else float("nan")
            shift = float(np.nanmedian(vb - va)) if np.isfinite(d).any() else float("nan")
            out.append((check, f"{axis} differs by up to {_fmt_m(dmax)} (median shift {_fmt_m(shift)})"))
    if "mask" in checks:
        if a.mask.shape != b.mask.shape:
            out.append(("mask", f"shapes {a.mask.shape} vs {b.mask.shape}"))
        else:
            n = int(np.count_nonzero(a.mask != b.mask))
            if n:
                out.append(
                    (
                        "mask",
                        f"{n} pixel(s) differ ({int(np.count_nonzero(a.mask))} vs "
                        f"{int(np.count_nonzero(b.mask))} landslide pixels)",
                    )
                )
    if "event_date" in checks and a.event_dates != b.event_dates:
        out.append(
            ("event_date", f"{','.join(a.event_dates) or 'none'} vs {','.join(b.event_dates) or 'none'}")
        )
    if "dem" in checks:
        if a.dem.shape != b.dem.shape:
            out.append(("dem", f"shapes {a.dem.shape} vs {b.dem.shape}"))
        else:
            d = np.abs(a.dem.astype("float64") - b.dem.astype("float64"))
            n = int(np.count_nonzero(d > dem_tol))
            if n:
                out.append(("dem", f"{n} pixel(s) differ by more than {dem_tol:g} m (up to {d.max():.0f} m)"))
    return out


def _check_group(task: tuple, root: str, checks: frozenset[str], tol: float, dem_tol: float) -> list[tuple]:
    """Worker task: compare every pair of sensors of one group; return its mismatch rows."""
    key, region, pid, files = task
    rows: list[tuple] = []
    headers: dict[str, _Header] = {}
    for sensor, rel in files:
        try:
            headers[sensor] = _read_header(Path(root) / rel, checks)
        except io.PatchReadError as exc:  # unreadable or foreign file: report it, keep going
            rows.append((key, region, pid, "read", sensor, None, f"{rel}: {exc.problem}"))
    for sa, sb in itertools.combinations(list(headers), 2):
        for check, detail in _compare(headers[sa], headers[sb], checks, tol, dem_tol):
            rows.append((key, region, pid, check, sa, sb, detail))
    return rows


def _mismatch_frame(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rows, columns=list(MISMATCH_COLUMNS))
    df = df.astype(
        {
            "key": "string",
            "region": "string",
            "patch_id": "int64",
            "check": "string",
            "sensor_a": "string",
            "sensor_b": "string",
            "detail": "string",
        }
    )
    order = {c: i for i, c in enumerate(("read", *CHECKS))}
    df["_o"] = df["check"].map(order)
    df = df.sort_values(["key", "_o", "sensor_a", "sensor_b"], kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)


def check_consistency(
    catalog: pd.DataFrame,
    data_dir: str | Path | None = None,
    sensors: Iterable[str] | str = schema.SENSORS,
    *,
    checks: Iterable[str] = DEFAULT_CHECKS,
    grid_tolerance: float = GRID_TOLERANCE_M,
    dem_tolerance: float = 0.0,
    workers: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Compare the patches of every location present in two or more of ``sensors``; list the mismatches.

    Every pair of sensors at a location is compared (so the odd one out shows up in two rows while the
    agreeing pair is silent):

    - ``crs``: the ``crs`` attribute (``"EPSG:326NN"``);
    - ``grid_x`` / ``grid_y``: the x and y coordinate vectors, equal within ``grid_tolerance`` metres;
    - ``mask``: ``MASK`` at time step 0, exactly, compared as ``(y, x)`` whatever each file's dimension
      order (``(time, x, y)`` or ``(time, y, x)``);
    - ``event_date``: the set of event dates in the ``event_date`` attribute (compared sorted: the file's
      order is arbitrary; undated entries ``None``/``nan``/``NaT`` count as ``undated``; empty for not
      annotated);
    - ``dem`` (not in :data:`DEFAULT_CHECKS`): ``DEM`` at time step 0, within ``dem_tolerance`` metres.

    A file that cannot be read gives a row with check ``"read"`` (and ``sensor_b`` empty). Nothing is
    raised for bad data: the table is the report.

    Parameters
    ----------
    catalog
        The table of :func:`s12ls_utils.catalog.build_catalog` (its ``path`` column is relative to
        ``data_dir``).
    data_dir
        The data folder; default: ``catalog.attrs["data_dir"]``.
    workers, progress
        Worker processes (default: the CPUs this process may use; fewer than 64 groups are read in the
        calling process) and a progress bar.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`MISMATCH_COLUMNS`: ``key, region, patch_id, check, sensor_a, sensor_b, detail``,
        one row per failed check and pair, sorted by key. Empty when everything lines up.
    """
    sensors = _sensors_arg(sensors)
    checks = frozenset(checks)
    unknown = checks - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; expected some of {CHECKS}")
    root = _data_dir(catalog, data_dir)
    tasks = _groups(catalog, sensors, min_sensors=2)
    fn = functools.partial(
        _check_group, root=str(root), checks=checks, tol=float(grid_tolerance), dem_tol=float(dem_tolerance)
    )
    groups = _map_groups(fn, tasks, workers=workers, progress=progress, desc="consistency")
    rows = [row for group in groups for row in group]
    out = _mismatch_frame(rows)
    out.attrs = {"n_groups": len(tasks), "checks": sorted(checks), "sensors": list(sensors)}
    return out


def _data_dir(catalog: pd.DataFrame, data_dir: str | Path | None) -> Path:
    if data_dir is None:
        data_dir = catalog.attrs.get("data_dir")
        if data_dir is None:
            raise ValueError("data_dir is needed (the catalog does not say where its files are)")
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    return root


# --------------------------------------------------------------------------------------------------
# Time alignment: small functions on dates (tested on hand-made dates)
# --------------------------------------------------------------------------------------------------
def nearest_acquisitions(targets, candidates) -> tuple[np.ndarray, np.ndarray]:
    """For each target date the nearest candidate date and the offset ``candidate − target`` in days.

    Ties (one candidate as far before as another after) go to the earlier candidate, the one already
    acquired at the target date. With no candidates, dates are NaT and offsets NaN.
    """
    t = schema.to_days(targets)
    c = np.sort(schema.to_days(candidates))
    if c.size == 0:
        return np.full(t.shape, np.datetime64("NaT", "D")), np.full(t.shape, np.nan)
    ti = t.astype("int64")
    ci = c.astype("int64")
    right = np.clip(np.searchsorted(ci, ti, side="left"), 0, ci.size - 1)
    left = np.clip(right - 1, 0, ci.size - 1)
    d_left = np.abs(ci[left] - ti)
    d_right = np.abs(ci[right] - ti)
    pick = np.where(d_left <= d_right, left, right)
    nearest = c[pick]
    return nearest, (ci[pick] - ti).astype("float64")


def first_clear_after(dates, bad_fraction, event, clear_below: float = CLEAR_BELOW) -> np.datetime64:
    """The first date strictly after ``event`` whose share of bad pixels is below ``clear_below``.

    NaT when there is none in the series (or when ``event`` is missing).
    """
    d = schema.to_days(dates)
    bad = np.asarray(bad_fraction, dtype="float64")
    if bad.shape != d.shape:
        raise ValueError(f"{d.size} dates but {bad.size} bad-pixel shares")
    ev = schema.to_days(event)[0]
    if np.isnat(ev):
        return np.datetime64("NaT", "D")
    ok = (d > ev) & (bad < clear_below)
    return d[ok].min() if ok.any() else np.datetime64("NaT", "D")


def count_between(dates, start, end=None) -> int:
    """Number of dates strictly after ``start`` and strictly before ``end`` (no upper bound when missing)."""
    d = schema.to_days(dates)
    lo, hi = schema.to_days(start)[0], schema.to_days(end)[0]
    if np.isnat(lo):
        raise ValueError("start date is missing")
    sel = d > lo
    if not np.isnat(hi):
        sel &= d < hi
    return int(np.count_nonzero(sel))


# --------------------------------------------------------------------------------------------------
# Time alignment over a catalog
# --------------------------------------------------------------------------------------------------
@dataclass
class TimeAlignment:
    """The three tables of :func:`time_alignment` and the files that could not be read.

    ``acquisitions``
        One row per location, sensor and time step: ``key, region, patch_id, annotated, event_date,
        sensor, step, date, days_from_event`` (NaN without an event), ``after_event`` (NA without one),
        ``bad_fraction`` and ``clear`` (S2 only; NaN/NA for S1).
    ``nearest``
        One row per Sentinel-2 date and Sentinel-1 orbit present at the location: ``key, region,
        patch_id, annotated, s2_step, s2_date, s2_days_from_event, s2_clear, orbit, s1_date,
        offset_days`` (S1 date − S2 date, signed; ties go to the earlier S1 date).
    ``summary``
        One row per location: ``key, region, patch_id, annotated, event_date, combination``; per sensor
        ``<sensor>_first_after_days`` (days from the event to its first post-event acquisition),
        ``<sensor>_n_after`` (post-event acquisitions in the series) and ``<sensor>_before_clear_s2``
        (post-event acquisitions strictly before the first clear S2 view; for ``s2`` itself the cloudy
        post-event dates before it); ``first_clear_s2_days`` (days from the event to the first clear
        post-event S2 view) and ``clear_s2_found``. Event-relative values are NaN/NA for locations
        without an event (not annotated) and the ``before_clear`` counts are NA where the series has no
        clear post-event S2 view (the wait is longer than the series shows).
    """

    acquisitions: pd.DataFrame
    nearest: pd.DataFrame
    summary: pd.DataFrame
    errors: list[dict] = field(default_factory=list)


def _align_one(task: tuple, root: str, sensors: tuple[str, ...], clear_below: float) -> tuple:
    """Worker task: read the dates (and S2 scene classes) of one group; return its results."""
    key, region, pid, annotated, event, files = task
    series: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    errors = []
    for sensor, rel in files:
        try:
            meta = io.read_patch_meta(Path(root) / rel, read_scl=sensor == "s2")
        except io.PatchReadError as exc:
            errors.append({"key": key, "sensor": sensor, "path": rel, "reason": exc.problem})
            continue
        series[sensor] = (schema.to_days(meta.times), meta.bad_fraction)
    return _align_group(key, region, pid, annotated, event, series, sensors, clear_below) + (errors,)


def _align_group(
    key: str,
    region: str,
    pid: int,
    annotated: bool,
    event: np.datetime64,
    series: dict[str, tuple[np.ndarray, np.ndarray | None]],
    sensors: tuple[str, ...],
    clear_below: float,
) -> tuple[list[dict], list[dict], dict]:
    has_event = not np.isnat(event)
    ident = {"key": key, "region": region, "patch_id": pid, "annotated": annotated}
    ev_ns = event.astype("datetime64[ns]") if has_event else np.datetime64("NaT", "ns")
    acq: list[dict] = []
    for sensor, (dates, bad) in series.items():
        rel = relative_days(dates, event)
        for i, d in enumerate(dates):
            b = float(bad[i]) if bad is not None else np.nan
            acq.append(
                {
                    **ident,
                    "event_date": ev_ns,
                    "sensor": sensor,
                    "step": i,
                    "date": d.astype("datetime64[ns]"),
                    "days_from_event": rel[i],
                    "after_event": bool(d > event) if has_event else pd.NA,
                    "bad_fraction": b,
                    "clear": bool(b < clear_below) if bad is not None else pd.NA,
                }
            )
    nearest: list[dict] = []
    if "s2" in series:
        s2_dates, s2_bad = series["s2"]
        s2_rel = relative_days(s2_dates, event)
        for orbit in (s for s in sensors if s != "s2" and s in series):
            near, off = nearest_acquisitions(s2_dates, series[orbit][0])
            for i, d in enumerate(s2_dates):
                nearest.append(
                    {
                        **ident,
                        "s2_step": i,
                        "s2_date": d.astype("datetime64[ns]"),
                        "s2_days_from_event": s2_rel[i],
                        "s2_clear": bool(s2_bad[i] < clear_below) if s2_bad is not None else pd.NA,
                        "orbit": orbit,
                        "s1_date": near[i].astype("datetime64[ns]"),
                        "offset_days": off[i],
                    }
                )
    summary: dict = {
        **ident,
        "event_date": ev_ns,
        "combination": combination_label(series),
    }
    clear = np.datetime64("NaT", "D")
    if has_event and "s2" in series and series["s2"][1] is not None:
        clear = first_clear_after(series["s2"][0], series["s2"][1], event, clear_below)
    summary["first_clear_s2_days"] = float((clear - event).astype("int64")) if not np.isnat(clear) else np.nan
    summary["clear_s2_found"] = bool(not np.isnat(clear)) if has_event and "s2" in series else pd.NA
    for sensor in sensors:
        first_after = n_after = before_clear = None
        if has_event and sensor in series:
            dates = series[sensor][0]
            after = dates[dates > event]
            n_after = int(after.size)
            first_after = float((after.min() - event).astype("int64")) if after.size else None
            if not np.isnat(clear):
                before_clear = count_between(dates, event, clear)
        summary[f"{sensor}_first_after_days"] = np.nan if first_after is None else first_after
        summary[f"{sensor}_n_after"] = pd.NA if n_after is None else n_after
        summary[f"{sensor}_before_clear_s2"] = pd.NA if before_clear is None else before_clear
    return acq, nearest, summary


_ACQ_DTYPES = {
    "key": "string",
    "region": "string",
    "patch_id": "int64",
    "annotated": "bool",
    "event_date": "datetime64[ns]",
    "sensor": "string",
    "step": "int64",
    "date": "datetime64[ns]",
    "days_from_event": "float64",
    "after_event": "boolean",
    "bad_fraction": "float64",
    "clear": "boolean",
}
_NEAREST_DTYPES = {
    "key": "string",
    "region": "string",
    "patch_id": "int64",
    "annotated": "bool",
    "s2_step": "int64",
    "s2_date": "datetime64[ns]",
    "s2_days_from_event": "float64",
    "s2_clear": "boolean",
    "orbit": "string",
    "s1_date": "datetime64[ns]",
    "offset_days": "float64",
}


def _summary_dtypes(sensors: Sequence[str]) -> dict[str, str]:
    out = {
        "key": "string",
        "region": "string",
        "patch_id": "int64",
        "annotated": "bool",
        "event_date": "datetime64[ns]",
        "combination": "string",
        "first_clear_s2_days": "float64",
        "clear_s2_found": "boolean",
    }
    for s in sensors:
        out[f"{s}_first_after_days"] = "float64"
        out[f"{s}_n_after"] = "Int64"
        out[f"{s}_before_clear_s2"] = "Int64"
    return out


def _typed(records: list[dict], dtypes: dict[str, str]) -> pd.DataFrame:
    return catalog_mod.apply_dtypes(pd.DataFrame.from_records(records, columns=list(dtypes)), dtypes)


def time_alignment(
    catalog: pd.DataFrame,
    data_dir: str | Path | None = None,
    sensors: Iterable[str] | str = schema.SENSORS,
    *,
    keys: Iterable[str] | None = None,
    min_sensors: int = 2,
    clear_below: float = CLEAR_BELOW,
    workers: int | None = None,
    progress: bool = True,
) -> TimeAlignment:
    """How the acquisition dates of the sensors line up, per matched location.

    A *matched* location has at least ``min_sensors`` of ``sensors`` (``keys`` restricts the locations
    further). The reference date of a location is its **earliest** event date listed by any sensor;
    locations without one (not annotated) keep their dates and nearest-S1 offsets but get NaN/NA for
    every event-relative value, and are left out of event-relative statistics. A Sentinel-2 date is
    *clear* when its share of SCL-bad pixels (no data, defective, dark, shadow, clouds, cirrus, snow)
    is below ``clear_below`` (0.1, as the catalog's ``n_clear``); "after the event" means a later
    calendar day.

    Reads each file's time stamps (and, for S2, its scene classes) with
    :func:`s12ls_utils.io.read_patch_meta`. Files that cannot be read are skipped and listed in
    ``result.errors``. See :class:`TimeAlignment` for the three tables.
    """
    sensors = _sensors_arg(sensors)
    root = _data_dir(catalog, data_dir)
    groups = _groups(catalog, sensors, min_sensors=min_sensors)
    if keys is not None:
        wanted = set(keys)
        groups = [g for g in groups if g[0] in wanted]
    # the earliest dated event of any sensor of each location (NaT when none)
    first = catalog.groupby("key")["event_date"].min()
    events = dict(zip(first.index, first.to_numpy().astype("datetime64[D]"), strict=True))
    annotated = catalog.groupby("key")["annotated"].any().to_dict()
    tasks = [(k, r, p, bool(annotated[k]), events[k], files) for k, r, p, files in groups]
    fn = functools.partial(_align_one, root=str(root), sensors=sensors, clear_below=float(clear_below))
    acq: list[dict] = []
    near: list[dict] = []
    summ: list[dict] = []
    errors: list[dict] = []
    for a, n, s, e in _map_groups(fn, tasks, workers=workers, progress=progress, desc="time alignment"):
        acq.extend(a)
        near.extend(n)
        summ.append(s)
        errors.extend(e)
    acquisitions = _typed(acq, _ACQ_DTYPES).sort_values(["key", "sensor", "step"], kind="stable")
    nearest = _typed(near, _NEAREST_DTYPES).sort_values(["key", "orbit", "s2_step"], kind="stable")
    summary = _typed(summ, _summary_dtypes(sensors)).sort_values("key", kind="stable")
    return TimeAlignment(
        acquisitions.reset_index(drop=True),
        nearest.reset_index(drop=True),
        summary.reset_index(drop=True),
        sorted(errors, key=lambda e: (e["key"], e["sensor"])),
    )


def median_or_nan(values) -> float:
    """The median of the non-missing values as a float; NaN when there are none (a one-sensor data folder has
    no Sentinel-1 waits, for example)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    return float(v.median()) if len(v) else float("nan")


def typical_location(summary: pd.DataFrame, keys: Iterable[str] | None = None) -> str:
    """A representative annotated location for a timeline figure.

    Among the annotated locations of a :attr:`TimeAlignment.summary` (restricted to ``keys`` when
    given) that have a clear post-event Sentinel-2 view, the one whose wait for that view is closest to
    the median wait; ties go to the location with more sensors, then to the first key.
    """
    cand = summary[summary["clear_s2_found"].fillna(False).astype(bool)]
    if keys is not None:
        cand = cand[cand["key"].isin(list(keys))]
    if cand.empty:
        cand = summary[summary["annotated"]] if summary["annotated"].any() else summary
        if cand.empty:
            raise ValueError("the time alignment holds no location")
        return str(cand.sort_values("key")["key"].iloc[0])
    wait = cand["first_clear_s2_days"].astype("float64")
    order = pd.DataFrame(
        {
            "dist": (wait - wait.median()).abs().to_numpy(),
            "n": -cand["combination"].str.count(r"\+").to_numpy(),
            "key": cand["key"].astype(str).to_numpy(),
        }
    ).sort_values(["dist", "n", "key"])
    return str(order["key"].iloc[0])


# --------------------------------------------------------------------------------------------------
# The figures chapter 03 quotes
# --------------------------------------------------------------------------------------------------
def availability_facts(avail: pd.DataFrame) -> dict:
    """Locations of an :func:`availability` table: ``n_locations``, per combination of sensors
    (``combination_counts``), with all three sensors, with S2 and at least one S1 orbit, and with a single
    sensor."""
    combos = avail["combination"].astype(str).value_counts()
    s1 = avail[[s for s in schema.S1_SENSORS if s in avail]].any(axis=1)
    return {
        "n_locations": len(avail),
        "combination_counts": {c: int(n) for c, n in combos.items()},
        "n_all_three": int(combos.get(combination_label(schema.SENSORS), 0)),
        "n_s1_and_s2": int((avail["s2"] & s1).sum()) if "s2" in avail else 0,
        "n_single_sensor": int((avail["n_sensors"] == 1).sum()),
    }


def mismatch_facts(mismatches: pd.DataFrame) -> dict:
    """A :func:`check_consistency` table in figures: locations compared (``n_groups_checked``), failed
    checks, locations with one (and their keys), and failed checks per kind."""
    return {
        "n_groups_checked": int(mismatches.attrs["n_groups"]),
        "n_mismatches": len(mismatches),
        "n_mismatch_keys": int(mismatches["key"].nunique()),
        "mismatch_keys": sorted(mismatches["key"].astype(str).unique().tolist()),
        "mismatch_checks": {str(c): int(n) for c, n in mismatches["check"].value_counts().items()},
    }


def aligned_facts(present: pd.DataFrame, aligned: pd.DataFrame) -> dict:
    """Locations with every sensor (``present``: :func:`aligned_groups` without mismatches) and in the
    strictly aligned set (``aligned``: with them), its annotated ones and the locations it left out."""
    return {
        "n_aligned_present": len(present),
        "n_aligned": len(aligned),
        "n_aligned_annotated": int(aligned["annotated"].sum()),
        "n_excluded": len(aligned.attrs.get("excluded", [])),
    }


def timing_facts(ta: TimeAlignment, near_days: int = 3) -> dict:
    """The figures of a :func:`time_alignment` that chapter 03 quotes: locations compared, annotated ones
    with S2 and of those without a clear post-event S2 view, unreadable files; per S1 orbit, the median
    distance in days from an S2 date to the nearest acquisition and the percentage of S2 dates with one
    within ``near_days`` (``near_days`` is recorded too); over annotated locations, the median days from
    the event to each sensor's first post-event image and to the first clear S2 view, and the median
    number of post-event acquisitions of each sensor before that view (NaN where no location has one)."""
    summary = ta.summary
    events = summary[summary["event_date"].notna()]
    with_s2 = events[events["clear_s2_found"].notna()]
    clear = events[events["clear_s2_found"].fillna(False).astype(bool)]
    out: dict = {
        "n_time_groups": len(summary),
        "n_event_groups_with_s2": len(with_s2),
        "n_without_clear_s2": int((~with_s2["clear_s2_found"].astype(bool)).sum()),
        "n_time_errors": len(ta.errors),
        "near_days": near_days,
    }
    for orbit in schema.S1_SENSORS:
        off = ta.nearest.loc[ta.nearest["orbit"] == orbit, "offset_days"].abs()
        out[f"median_abs_offset_{orbit}"] = median_or_nan(off)
        out[f"pct_within_near_{orbit}"] = float((off <= near_days).mean() * 100) if len(off) else float("nan")
    for s in schema.SENSORS:
        out[f"median_days_first_{s}"] = median_or_nan(events.get(f"{s}_first_after_days", []))
    out["median_days_to_first_clear_s2"] = median_or_nan(clear["first_clear_s2_days"])
    for s in schema.S1_SENSORS:
        out[f"median_{s}_before_clear_s2"] = median_or_nan(clear.get(f"{s}_before_clear_s2", []))
    out["median_s2_cloudy_before_clear_s2"] = median_or_nan(clear.get("s2_before_clear_s2", []))
    return out
