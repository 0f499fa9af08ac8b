"""Scan a Sen12Landslides data folder into one metadata table.

:func:`build_catalog` lists every ``<data_dir>/<sensor>/*.nc`` file and reads, for each, what
:func:`s12ls_utils.io.read_patch_meta` reads (global attributes, time stamps, ``MASK`` at time step 0,
one VV step for Sentinel-1, the SCL scene classes for Sentinel-2) — never the images. The files are read
in parallel (:func:`s12ls_utils.parallel.map_files`: local worker processes by default, or threads, or a
Dask cluster with ``scheduler=``); every NetCDF/HDF5 handle is opened and closed inside a worker (local
workers come from a ``forkserver``, so no handle the calling process may hold crosses a fork).

The result is cached in ``<data_dir>/.s12ls_catalog.parquet``. Each cached row keeps the file's size and
modification time; the next call reuses the rows of unchanged files, scans new or changed files and drops
deleted ones, so a second call on an unchanged folder opens no file at all.

Files that cannot be read (truncated, foreign, badly named) do not stop the scan: they are listed in
``df.attrs["errors"]`` (see :func:`catalog_errors`). Oddities a reader handles are not errors: an
undated annotation (``event_date`` ``None``/``nan``/``NaT``) keeps its row, with ``event_date`` NaT,
``annotated`` True, ``n_undated_events`` > 0 and ``event_position == "undated"``.

Events, columns of one row (``book/appendix-data.md``):

- ``event_date`` is the **primary event, the earliest dated one** (``event_date`` is written from a set,
  in arbitrary order); ``event_dates`` lists the dated events sorted; ``n_events`` counts the entries of
  the attribute (dated and undated), ``n_undated_events`` the undated ones.
- ``pre_index``/``post_index`` come from the file's time axis (the writer's rule: last step strictly
  before the primary event, first step on or after it; :func:`s12ls_utils.schema.event_steps`), not from
  ``pre_post_dates``; both are -1 when there is no valid pair. ``event_position`` says why: ``inside``
  (a pair exists; ``event_in_series``), ``before`` (every image is post-event), ``after`` (every image is
  pre-event), ``undated`` (annotated, no dated event) or ``none`` (not annotated). ``n_before`` counts
  the images strictly before the primary event, ``n_after`` those on or after it.
- ``date_confidence`` is the **lowest** of the distinct confidence values of ``date_confidence`` (they
  are not one per event, so no value belongs to the primary event), ``date_confidence_max`` the
  highest; NaN without any. 1.0 = date from the inventory, lower = date derived upstream from an NDVI
  drop.
- ``release``: ``raw``, ``harmonized`` or ``unknown`` (:func:`s12ls_utils.io.file_release`).

Example
-------
>>> from s12ls_utils.catalog import build_catalog, summarize
>>> df = build_catalog("data/sample")  # doctest: +SKIP
>>> print(summarize(df))  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__, schema
from .io import PatchMeta, PatchReadError, read_patch_meta
from .parallel import NETCDF_LOCK, check_scheduler, check_workers, map_files

log = logging.getLogger(__name__)

#: File name of the parquet cache inside the data folder.
CACHE_NAME = ".s12ls_catalog.parquet"
#: Bumped whenever the columns or their meaning change; a cache of another version is ignored. 3: SCL 255
#: (unknown quality) counts as unusable in ``n_cloudy``/``n_clear``.
CACHE_VERSION = 3
_META_KEY = b"s12ls_catalog"

#: Columns of the catalog and their dtypes, in order.
DTYPES: dict[str, str] = {
    "sensor": "string",
    "region": "string",
    "patch_id": "int64",
    "key": "string",
    "path": "string",
    "annotated": "bool",
    "n_events": "int64",
    "n_undated_events": "int64",
    "event_date": "datetime64[ns]",
    "event_dates": "string",
    "date_confidence": "float64",
    "date_confidence_max": "float64",
    "ann_ids": "string",
    "n_annotations": "int64",
    "n_positive": "int64",
    "positive_fraction": "float64",
    "center_x": "float64",
    "center_y": "float64",
    "epsg": "int64",
    "crs": "string",
    "lon": "float64",
    "lat": "float64",
    "time_start": "datetime64[ns]",
    "time_end": "datetime64[ns]",
    "n_times": "int64",
    "pre_index": "int64",
    "post_index": "int64",
    "n_before": "int64",
    "n_after": "int64",
    "event_in_series": "bool",
    "event_position": "string",
    "s1_unit": "string",
    "release": "string",
    "n_cloudy": "Int64",
    "n_clear": "Int64",
    "dims_order": "string",
    "satellite": "string",
    "size_bytes": "int64",
    "mtime_ns": "int64",
}
COLUMNS: tuple[str, ...] = tuple(DTYPES)
#: Columns of :func:`catalog_errors`.
ERROR_COLUMNS: tuple[str, ...] = ("path", "sensor", "reason")

#: Columns a worker fills from one file (the rest come from the listing and the CRS transform).
_RECORD_COLUMNS: tuple[str, ...] = tuple(
    c for c in COLUMNS if c not in ("lon", "lat", "size_bytes", "mtime_ns")
)

#: S2 dates whose share of SCL-bad pixels is above this count as cloudy, below ``_CLEAR_BELOW`` as clear.
_CLOUDY_ABOVE = 0.5
_CLEAR_BELOW = 0.1
#: Largest number of files a worker reads per task (header reads are quick: bigger tasks than the default).
_MAX_CHUNK = 128

_NaT = np.datetime64("NaT", "ns")


# --------------------------------------------------------------------------------------------------
# One file → one record (runs in the workers)
# --------------------------------------------------------------------------------------------------
def _record(meta: PatchMeta, rel: str, read_scl: bool) -> tuple:
    """The catalog values of one patch, in the order of ``_RECORD_COLUMNS``."""
    times = np.asarray(meta.times, dtype="datetime64[ns]")
    n_times = int(times.size)
    events = meta.event_dates  # sorted: the primary event is the first
    steps = meta.event_steps
    event_date = np.datetime64(steps.event_date, "ns") if steps.event_date is not None else _NaT
    pre, post = steps.pair or (-1, -1)
    confs = meta.date_confidences
    if meta.sensor == "s2" and read_scl and meta.bad_fraction is not None:
        bad = np.asarray(meta.bad_fraction, dtype="float64")
        n_cloudy: int | None = int(np.count_nonzero(bad > _CLOUDY_ABOVE))
        n_clear: int | None = int(np.count_nonzero(bad < _CLEAR_BELOW))
    else:
        n_cloudy = n_clear = None
    values = {
        "sensor": meta.sensor,
        "region": meta.region,
        "patch_id": int(meta.patch_id),
        "key": meta.key,
        "path": rel,
        "annotated": bool(meta.annotated),
        "n_events": len(events) + int(meta.n_undated_events),
        "n_undated_events": int(meta.n_undated_events),
        "event_date": event_date,
        "event_dates": ",".join(d.isoformat() for d in events),
        "date_confidence": float(min(confs)) if confs else math.nan,
        "date_confidence_max": float(max(confs)) if confs else math.nan,
        "ann_ids": ",".join(str(int(a)) for a in meta.ann_ids),
        "n_annotations": len(meta.ann_ids),
        "n_positive": int(meta.n_positive),
        "positive_fraction": meta.n_positive / meta.n_pixels,
        "center_x": float(meta.center_x),
        "center_y": float(meta.center_y),
        "epsg": int(meta.epsg),
        "crs": f"EPSG:{int(meta.epsg)}",
        "time_start": times[0] if n_times else _NaT,
        "time_end": times[-1] if n_times else _NaT,
        "n_times": n_times,
        "pre_index": int(pre),
        "post_index": int(post),
        "n_before": steps.n_before,
        "n_after": steps.n_after,
        "event_in_series": steps.has_pair,
        "event_position": steps.position,
        "s1_unit": meta.s1_unit,
        "release": meta.release,
        "n_cloudy": n_cloudy,
        "n_clear": n_clear,
        "dims_order": meta.dims_order,
        "satellite": meta.satellite,
    }
    return tuple(values[c] for c in _RECORD_COLUMNS)


def _read_file(rel: str, *, root: str, read_scl: bool) -> tuple[tuple | None, str | None]:
    """Read one file (path relative to ``root``) → ``(record, None)`` or ``(None, reason)``; never raises."""
    try:
        with NETCDF_LOCK:
            meta = read_patch_meta(Path(root) / rel, read_scl=read_scl)
        return _record(meta, rel, read_scl), None
    except PatchReadError as exc:
        return None, exc.problem
    except Exception as exc:  # anything else a foreign file provokes: report it, keep scanning
        return None, f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------------
# Listing, scanning, assembling
# --------------------------------------------------------------------------------------------------
def _list_files(root: Path, sensors: Sequence[str]) -> tuple[dict[str, tuple[str, int, int]], list[dict]]:
    """``{rel path: (sensor, size, mtime_ns)}`` of well-named ``.nc`` files, and errors for the others."""
    listing: dict[str, tuple[str, int, int]] = {}
    errors: list[dict] = []
    for sensor in sensors:
        folder = root / sensor
        if not folder.is_dir():
            log.debug("no folder %s", folder)
            continue
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if e.name.endswith(".nc")), key=lambda e: e.name)
        for entry in entries:
            rel = f"{sensor}/{entry.name}"
            try:
                if not entry.is_file():
                    errors.append({"path": rel, "sensor": sensor, "reason": "not a regular file"})
                    continue
                st = entry.stat()
            except OSError as exc:
                errors.append({"path": rel, "sensor": sensor, "reason": f"cannot stat ({exc})"})
                continue
            try:
                name = schema.parse_filename(entry.name)
            except ValueError as exc:
                errors.append({"path": rel, "sensor": sensor, "reason": str(exc)})
                continue
            if name.sensor != sensor:
                errors.append(
                    {
                        "path": rel,
                        "sensor": sensor,
                        "reason": f"file is in folder {sensor!r} but its name says sensor {name.sensor!r}",
                    }
                )
                continue
            listing[rel] = (sensor, int(st.st_size), int(st.st_mtime_ns))
    return listing, errors


def _scan(
    root: Path, rels: Sequence[str], *, read_scl: bool, scheduler, workers: int | None, progress: bool
) -> list[tuple[str, tuple | None, str | None, bool]]:
    """``(rel, record or None, error reason or None, transient)`` per file of ``rels``.

    ``transient`` marks files whose worker died while reading them (a crash inside the HDF5 library?):
    they are reported, but the verdict is not cached, so the next call reads them again.
    """
    fn = functools.partial(_read_file, root=str(root), read_scl=read_scl)
    res = map_files(
        fn,
        rels,
        scheduler=scheduler,
        workers=workers,
        desc="catalog",
        progress=progress,
        chunk_size=_MAX_CHUNK,
    )
    out = [(rel, *r, False) for rel, r in zip(rels, res.results, strict=True) if r is not None]
    out += [(f.item, None, f.reason if f.crashed else f.message, f.crashed) for f in res.failures]
    return out


@functools.lru_cache(maxsize=64)
def _to_wgs84(epsg: int):
    from pyproj import Transformer

    return Transformer.from_crs(int(epsg), 4326, always_xy=True)


def _add_lonlat(df: pd.DataFrame) -> None:
    """Fill ``lon``/``lat`` from the projected centre, one vectorised transform per EPSG code."""
    lon = np.full(len(df), np.nan)
    lat = np.full(len(df), np.nan)
    x = df["center_x"].to_numpy(dtype="float64")
    y = df["center_y"].to_numpy(dtype="float64")
    for epsg, idx in df.groupby("epsg", sort=False).indices.items():
        try:
            lon[idx], lat[idx] = _to_wgs84(int(epsg)).transform(x[idx], y[idx])
        except Exception as exc:  # unknown code: keep the rows, without a location
            log.warning(
                "cannot transform EPSG:%s to WGS84 (%s); lon/lat left empty for %d patches",
                epsg,
                exc,
                len(idx),
            )
    df["lon"] = lon
    df["lat"] = lat


def apply_dtypes(df: pd.DataFrame, dtypes: dict[str, str] = DTYPES) -> pd.DataFrame:
    """The catalog's columns (or those of ``dtypes``), in order, with their dtypes."""
    out = {}
    for col, dtype in dtypes.items():
        s = df[col]
        if dtype == "datetime64[ns]":
            s = pd.to_datetime(s).astype("datetime64[ns]")
        elif str(s.dtype) != dtype:
            s = s.astype(dtype)
        out[col] = s
    return pd.DataFrame(out, index=df.index)


def _empty() -> pd.DataFrame:
    return apply_dtypes(pd.DataFrame({c: pd.Series([], dtype="object") for c in COLUMNS}))


def _frame(records: list[tuple], listing: dict[str, tuple[str, int, int]]) -> pd.DataFrame:
    """Rows of freshly read files, with size, mtime and location."""
    df = pd.DataFrame.from_records(records, columns=list(_RECORD_COLUMNS))
    df["size_bytes"] = [listing[p][1] for p in df["path"]]
    df["mtime_ns"] = [listing[p][2] for p in df["path"]]
    _add_lonlat(df)
    return apply_dtypes(df[list(COLUMNS)])


def _concat(frames: Iterable[pd.DataFrame | None]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return _empty()
    if len(frames) == 1:
        return frames[0].copy()
    return apply_dtypes(pd.concat(frames, ignore_index=True))


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["sensor", "region", "patch_id"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------
def _read_cache(path: Path, read_scl: bool) -> tuple[pd.DataFrame, list[dict]] | None:
    """Rows and error entries of a valid cache, or None (missing, unreadable, other version/settings)."""
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {})[_META_KEY])
        if meta.get("format_version") != CACHE_VERSION:
            log.info(
                "catalog cache %s has format %s (expected %s): full rescan",
                path,
                meta.get("format_version"),
                CACHE_VERSION,
            )
            return None
        if meta.get("read_scl") != read_scl:
            log.info("catalog cache %s was built with read_scl=%s: full rescan", path, meta.get("read_scl"))
            return None
        df = table.to_pandas()
        if tuple(df.columns) != COLUMNS:
            log.info("catalog cache %s has other columns: full rescan", path)
            return None
        errors = [dict(e) for e in meta.get("errors", [])]
        return apply_dtypes(df), errors
    except Exception as exc:  # corrupt or foreign file: ignore it, it will be rewritten
        log.warning("ignoring unreadable catalog cache %s (%s: %s)", path, type(exc).__name__, exc)
        return None


def _write_cache(path: Path, df: pd.DataFrame, errors: list[dict], read_scl: bool) -> bool:
    """Write the cache atomically (temporary file + rename); skip quietly where the folder is read-only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = pd.DataFrame(df, copy=False).reset_index(drop=True)
    plain.attrs = {}
    table = pa.Table.from_pandas(plain, preserve_index=False)
    meta = {
        "format_version": CACHE_VERSION,
        "read_scl": read_scl,
        "writer": f"s12ls_utils {__version__}",
        "errors": errors,
    }
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()}
    )
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        os.close(fd)
        pq.write_table(table, tmp)
        with suppress(OSError):
            os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
        tmp = None
        return True
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            log.debug("data folder is read-only, catalog cache not written (%s)", exc)
        else:
            log.warning("catalog cache %s not written (%s)", path, exc)
        return False
    finally:
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------
def build_catalog(
    data_dir: str | Path,
    *,
    sensors: Iterable[str] | str = schema.SENSORS,
    workers: int | None = None,
    scheduler="processes",
    progress: bool = True,
    use_cache: bool = True,
    read_scl: bool = True,
) -> pd.DataFrame:
    """Scan ``<data_dir>/<sensor>/*.nc`` into one table of patch metadata (one row per readable file).

    Parameters
    ----------
    data_dir
        Folder holding ``s1asc/``, ``s1dsc/`` and ``s2/`` (a missing sensor folder yields no rows).
    sensors
        Sensor folders to scan.
    workers
        Worker processes (or threads) of a local ``scheduler``; default: the CPUs this process may use.
    scheduler
        Where the files are read (:func:`s12ls_utils.parallel.map_files`): ``"processes"`` (default; fewer
        than 16 files to read are read in the calling process), ``"threads"``, ``"synchronous"`` (in the
        calling process), a dask.distributed scheduler address or a ``distributed.Client``. The table
        is the same whichever reads it.
    progress
        Show a progress bar (``tqdm.auto``) while files are read.
    use_cache
        Reuse and update ``<data_dir>/.s12ls_catalog.parquet``: rows of files whose size and
        modification time are unchanged are reused (also for files known to be unreadable), new or
        changed files are read, deleted files are dropped. ``False`` neither reads nor writes it.
    read_scl
        Read the S2 scene classes (``n_cloudy``/``n_clear``); without them those columns are NA.

    Returns
    -------
    pandas.DataFrame
        One row per readable patch, sorted by sensor, region and patch id, with the columns of
        :data:`DTYPES`. ``df.attrs["errors"]`` lists the files that could not be catalogued (JSON-able
        dicts ``path, sensor, reason``; see :func:`catalog_errors`); ``df.attrs["scan"]`` says how many
        files were listed, read and reused and how long it took; ``df.attrs["data_dir"]`` is the
        absolute data folder (``path`` is relative to it).

    Raises
    ------
    FileNotFoundError
        ``data_dir`` is not a folder.
    ValueError
        An unknown sensor name.
    """
    t0 = time.perf_counter()
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    sensors = schema.check_sensors(sensors)
    check_workers(workers)
    check_scheduler(scheduler)

    listing, name_errors = _list_files(root, sensors)
    cache_path = root / CACHE_NAME
    cache = _read_cache(cache_path, read_scl) if use_cache else None

    # split the listing into reusable cache entries and files to read
    reuse_rows: list[int] = []
    reuse_errors: list[dict] = []
    keep_rows = np.zeros(0, dtype=bool)
    other_errors: list[dict] = []
    dropped = 0
    if cache is not None:
        cached, cached_errors = cache
        in_scope = cached["sensor"].isin(sensors).to_numpy()
        keep_rows = ~in_scope  # other sensors' rows are carried over untouched
        known = {
            p: (i, s, m)
            for i, (p, s, m) in enumerate(
                zip(
                    cached["path"].tolist(),
                    cached["size_bytes"].tolist(),
                    cached["mtime_ns"].tolist(),
                    strict=True,
                )
            )
            if in_scope[i]
        }
        known_err = {e["path"]: e for e in cached_errors if e.get("sensor") in sensors}
        other_errors = [e for e in cached_errors if e.get("sensor") not in sensors]
        todo: list[str] = []
        for rel, (_, size, mtime) in listing.items():
            hit = known.get(rel)
            if hit is not None and hit[1] == size and hit[2] == mtime:
                reuse_rows.append(hit[0])
                continue
            err = known_err.get(rel)
            if err is not None and err.get("size_bytes") == size and err.get("mtime_ns") == mtime:
                reuse_errors.append(err)
                continue
            todo.append(rel)
        dropped = sum(1 for rel in (*known, *known_err) if rel not in listing)
    else:
        todo = list(listing)

    results = _scan(root, todo, read_scl=read_scl, scheduler=scheduler, workers=workers, progress=progress)
    records = [rec for _, rec, _, _ in results if rec is not None]
    scan_errors = [
        {
            "path": rel,
            "sensor": listing[rel][0],
            "reason": reason,
            "size_bytes": listing[rel][1],
            "mtime_ns": listing[rel][2],
            "transient": transient,
        }
        for rel, rec, reason, transient in results
        if rec is None
    ]
    new = _frame(records, listing) if records else None
    reused = cache[0].iloc[reuse_rows] if cache is not None and reuse_rows else None
    df = _sorted(_concat([reused, new]))

    errors = sorted(
        [*name_errors, *({k: e[k] for k in ERROR_COLUMNS} for e in (*reuse_errors, *scan_errors))],
        key=lambda e: (e["sensor"], e["path"]),
    )
    if use_cache and (cache is None or todo or dropped):
        carried = cache[0][keep_rows] if cache is not None else None
        persisted = [
            *other_errors,
            *reuse_errors,
            *({k: v for k, v in e.items() if k != "transient"} for e in scan_errors if not e["transient"]),
        ]
        _write_cache(cache_path, _concat([df, carried]), persisted, read_scl)

    seconds = time.perf_counter() - t0
    df.attrs["data_dir"] = str(root.resolve())
    df.attrs["errors"] = errors
    df.attrs["scan"] = {
        "n_files": len(listing) + len(name_errors),
        "n_read": len(todo),
        "n_reused": len(reuse_rows) + len(reuse_errors),
        "n_dropped": int(dropped),
        "n_errors": len(errors),
        "seconds": round(seconds, 3),
    }
    log.info(
        "catalog of %s: %d patches, %d errors (%d files read, %d reused) in %.2f s",
        root,
        len(df),
        len(errors),
        len(todo),
        len(reuse_rows) + len(reuse_errors),
        seconds,
    )
    return df


def catalog_errors(df: pd.DataFrame) -> pd.DataFrame:
    """The files :func:`build_catalog` could not catalogue: columns ``path, sensor, reason``."""
    return pd.DataFrame(list(df.attrs.get("errors", [])), columns=list(ERROR_COLUMNS)).astype("string")


def locations(df: pd.DataFrame) -> pd.DataFrame:
    """One row per location key with a boolean column per sensor saying whether a patch exists there.

    Columns: ``key, region, patch_id``, one per sensor of :data:`schema.SENSORS`, ``n_sensors`` and
    ``annotated`` (annotated in at least one sensor). Sorted by key.
    """
    present = pd.crosstab(df["key"], df["sensor"]).reindex(columns=list(schema.SENSORS), fill_value=0) > 0
    present.columns = list(schema.SENSORS)
    first = df.groupby("key", sort=True).agg(
        region=("region", "first"), patch_id=("patch_id", "first"), annotated=("annotated", "any")
    )
    out = first[["region", "patch_id"]].join(present)
    out["n_sensors"] = present.sum(axis=1).astype("int64")
    out["annotated"] = first["annotated"].astype("bool")
    out = out.rename_axis("key").reset_index()
    out["key"] = out["key"].astype("string")
    return out


def positive_share(frame: pd.DataFrame) -> float:
    """The share of landslide pixels in the patches of ``frame`` (its ``n_positive`` over all their pixels);
    NaN for no patch."""
    return frame["n_positive"].sum() / (len(frame) * schema.PATCH_SIZE**2) if len(frame) else float("nan")


def summarize(df: pd.DataFrame) -> str:
    """A short text summary of a catalog (used by ``s12ls catalog``).

    Counts per sensor (annotated / not annotated, positive-pixel share), locations and regions, the
    positive-pixel share overall, the range of event dates, the annotated patches without a pre/post
    pair (event before or after the series, undated), the releases and the number of files that could
    not be read.
    """
    lines = []
    n_loc = df["key"].nunique() if len(df) else 0
    regions = sorted(df["region"].unique().tolist()) if len(df) else []
    where = df.attrs.get("data_dir")
    lines.append(
        f"{len(df)} patches at {n_loc} locations in {len(regions)} regions" + (f" ({where})" if where else "")
    )
    header = f"  {'sensor':<7}{'patches':>9}{'annotated':>11}{'not ann.':>10}{'positive px':>13}"
    lines.append(header)
    for sensor in schema.SENSORS:
        sub = df[df["sensor"] == sensor] if len(df) else df
        n = len(sub)
        n_ann = int(sub["annotated"].sum()) if n else 0
        frac = positive_share(sub)
        lines.append(f"  {sensor:<7}{n:>9}{n_ann:>11}{n - n_ann:>10}{frac:>13.2%}")
    if regions:
        counts = df.groupby("region")["key"].nunique()
        lines.append("locations per region: " + ", ".join(f"{r} {int(counts[r])}" for r in regions))
    if len(df):
        ann = df[df["annotated"]]
        total, in_ann = positive_share(df), positive_share(ann)
        lines.append(f"positive pixels: {total:.2%} of all pixels, {in_ann:.2%} in annotated patches")
        if df["event_date"].notna().any():
            lines.append(
                f"event dates: {df['event_date'].min():%Y-%m-%d} … {df['event_date'].max():%Y-%m-%d}"
            )
        pos = ann["event_position"].value_counts()
        n_nopair = int(sum(pos.get(k, 0) for k in ("before", "after", "undated")))
        lines.append(
            f"annotated patches without a pre/post pair: {n_nopair} (event before the series "
            f"{int(pos.get('before', 0))}, after it {int(pos.get('after', 0))}, undated "
            f"{int(pos.get('undated', 0))})"
        )
        rel = df["release"].value_counts()
        lines.append("release: " + ", ".join(f"{r} {int(rel[r])}" for r in sorted(rel.index)))
    n_err = len(df.attrs.get("errors", []))
    lines.append(
        f"errors: {n_err} file(s) could not be read" + (" (see catalog_errors(df))" if n_err else "")
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Summaries used by the chapters
# --------------------------------------------------------------------------------------------------
def counts_table(df: pd.DataFrame) -> pd.DataFrame:
    """Files per sensor, annotated or not, with totals and the number of locations per sensor."""
    t = pd.crosstab(df["sensor"], df["annotated"].map({True: "annotated", False: "not annotated"}))
    t = t.reindex(index=list(schema.SENSORS), columns=["annotated", "not annotated"], fill_value=0)
    t["total"] = t.sum(axis=1)
    t["annotated share"] = (t["annotated"] / t["total"].where(t["total"] > 0)).round(3)
    t.loc["all sensors"] = [
        t["annotated"].sum(),
        t["not annotated"].sum(),
        t["total"].sum(),
        round(t["annotated"].sum() / max(t["total"].sum(), 1), 3),
    ]
    t.columns.name = None
    return t


def class_balance(df: pd.DataFrame, by: str | None = "region") -> pd.DataFrame:
    """Share of positive (landslide) pixels, counted once per location.

    The mask is the same in every sensor of a location, so each location counts once (its largest
    positive count across sensors). Columns: ``locations``, ``annotated_share``, ``positive_fraction``
    (over all locations), ``positive_fraction_annotated`` (over annotated locations only). ``by=None``
    gives one overall row.
    """
    loc = df.groupby("key").agg(
        region=("region", "first"), annotated=("annotated", "any"), n_positive=("n_positive", "max")
    )
    groups = loc.groupby("region") if by else loc.groupby(lambda _: "all")

    def stats(g: pd.DataFrame) -> pd.Series:
        return pd.Series(
            {
                "locations": len(g),
                "annotated_share": g["annotated"].mean(),
                "positive_fraction": positive_share(g),
                "positive_fraction_annotated": positive_share(g[g["annotated"]]),
            }
        )

    out = groups[["annotated", "n_positive"]].apply(stats)
    out["locations"] = out["locations"].astype("int64")
    out.index.name = by or "scope"
    return out


def time_coverage(df: pd.DataFrame) -> pd.DataFrame:
    """Per sensor: annotated files, events inside / outside the series and undated, median steps
    before/after (patches with the event inside), S2 cloudiness."""
    ann = df[df["annotated"]]
    rows = {}
    for s in schema.SENSORS:
        a = ann[ann["sensor"] == s]
        sub = df[df["sensor"] == s]
        rows[s] = {
            "annotated files": len(a),
            "event inside series": int(a["event_in_series"].sum()),
            "event outside series": int(a["event_position"].isin(["before", "after"]).sum()),
            "undated event": int((a["event_position"] == "undated").sum()),
            "median steps before": float(a.loc[a["event_in_series"], "n_before"].median())
            if len(a)
            else np.nan,
            "median steps after": float(a.loc[a["event_in_series"], "n_after"].median())
            if len(a)
            else np.nan,
            "median clear dates": float(sub["n_clear"].median()) if s == "s2" and len(sub) else np.nan,
        }
    return pd.DataFrame(rows).T


def pick_showcase(df: pd.DataFrame) -> str:
    """The annotated location with the most sensors, then the most landslide pixels (event in series)."""
    cand = df[df["annotated"] & df["event_in_series"]]
    if cand.empty:
        cand = df
    if cand.empty:
        raise ValueError("the catalog is empty")
    g = cand.groupby("key").agg(n_sensors=("sensor", "nunique"), n_positive=("n_positive", "max"))
    return str(g.sort_values(["n_sensors", "n_positive"], ascending=False).index[0])


#: The facts of :func:`folder_facts` and :func:`inventory_facts` that are fractions (0…1) of a whole, which a
#: text reads as percentages.
SHARE_FACTS = ("annotated_share", "positive_fraction", "positive_fraction_annotated", "share_below_10px")


def folder_facts(df: pd.DataFrame) -> dict:
    """The figures chapter 01 quotes about a data folder, from its catalog alone.

    Files (``n_files_total``, ``n_files_<sensor>``, annotated ``n_annotated``, unreadable ``n_errors``),
    ``n_locations`` and ``n_regions``; the class balance per location (:func:`class_balance`):
    ``annotated_share``, ``n_annotated_locations``, ``positive_fraction`` (over all locations),
    ``positive_fraction_annotated`` and ``all_negative_accuracy_pct``, the pixel accuracy in percent of a
    model that predicts "no landslide" everywhere; the time coverage (:func:`time_coverage`):
    ``n_event_outside_annotated`` (annotated files of every sensor whose event lies outside the series),
    the median S2 steps before and after the event, and the median clear and cloudy S2 dates of a patch."""
    overall = class_balance(df, by=None).iloc[0]
    n_locations = int(df["key"].nunique())
    timing = time_coverage(df)
    s2 = df[df["sensor"] == "s2"]
    return {
        "n_files_total": len(df),
        **{f"n_files_{s}": int((df["sensor"] == s).sum()) for s in schema.SENSORS},
        "n_locations": n_locations,
        "n_regions": int(df["region"].nunique()),
        "n_annotated": int(df["annotated"].sum()),
        "n_errors": len(df.attrs.get("errors", [])),
        "annotated_share": float(overall["annotated_share"]),
        "n_annotated_locations": int(round(overall["annotated_share"] * n_locations)),
        "positive_fraction": float(overall["positive_fraction"]),
        "positive_fraction_annotated": float(overall["positive_fraction_annotated"]),
        "all_negative_accuracy_pct": round(100 * (1 - float(overall["positive_fraction"])), 1),
        "n_event_outside_annotated": int(timing["event outside series"].sum()),
        "s2_median_steps_before": float(timing.loc["s2", "median steps before"]),
        "s2_median_steps_after": float(timing.loc["s2", "median steps after"]),
        "s2_median_clear_dates": float(s2["n_clear"].median()),
        "s2_median_cloudy_dates": float(s2["n_cloudy"].median()),
    }


def inventory_facts(inventory) -> dict:
    """The landslide inventory (:func:`s12ls_utils.io.read_inventory`) in three figures: ``n_landslides``,
    ``median_area_m2`` and ``share_below_10px``, the fraction of landslides smaller than ten 10 m pixels."""
    return {
        "n_landslides": len(inventory),
        "median_area_m2": float(inventory["area_m2"].median()),
        "share_below_10px": float((inventory["area_px"] < 10).mean()),
    }


def files_per_region(df: pd.DataFrame) -> pd.DataFrame:
    """Files per region and sensor, long form: columns ``region``, ``sensor``, ``files``."""
    return df.groupby(["region", "sensor"]).size().rename("files").reset_index()


def class_balance_long(balance: pd.DataFrame) -> pd.DataFrame:
    """A :func:`class_balance` table by region in long form for a grouped bar chart: columns ``region``,
    ``over`` (``all locations`` or ``annotated locations``) and ``share``, the landslide pixels in percent."""
    over = {"positive_fraction": "all locations", "positive_fraction_annotated": "annotated locations"}
    long = balance.reset_index().melt(
        id_vars="region", value_vars=list(over), var_name="over", value_name="share"
    )
    return long.assign(over=long["over"].map(over), share=100 * long["share"])
