"""PyTorch datasets for Sen12Landslides tasks, and the packed training cache.

Reading NetCDF patches one by one costs ~10–20 ms per sample (decompression, xarray bookkeeping),
which starves a GPU. :func:`build_cache` therefore converts one split of a task **once** into a few
memory-mapped ``.npy`` arrays; the :class:`PatchDataset` then reads a sample (or a whole batch) as one
slice of those arrays.

Cache format (one folder per task scope, split and sensor, see :func:`cache_dir_for`)
---------------------------------------------------------------------------------------
``x.npy``         int16 ``(N, T, C, H, W)``: the feature channels of :data:`schema.FEATURES`, in that order.
                  S2 reflectance ×10000 and the DEM are int16 in the files: stored as they are (**lossless**),
                  except that raw-release S2 bands of dates from 2022-01-25 lose ESA's +1000 DN offset
                  (:func:`s12ls_utils.io.harmonize_s2`; the release comes from :func:`~s12ls_utils.io.file_release`
                  and is recorded per source in the manifest).
                  S1 VV/VH are stored in **dB ×100** (``round(100·10·log10(linear))``): a quantisation step of
                  0.01 dB (error ≤ 0.005 dB, i.e. ≤ 0.12 % of the linear value), some 100× below the speckle
                  of a multi-looked pixel (≈ 1–2 dB), and the ``int16`` range covers ±327 dB, so nothing is
                  clipped. Invalid S1 values (NaN, non-positive linear power) hold the sentinel −32768.
                  float16 was rejected: it is lossy for reflectances above 2048 (step 2–8) and for the DEM.
``valid.npy``     uint8 ``(N, T, H, W/8)``: a validity bit per pixel and date (``np.packbits`` along x;
                  the loader unpacks them to one uint8 per pixel):
                  S2 = a usable scene class (:func:`schema.scl_usable`: not in :data:`schema.SCL_BAD`, i.e.
                  cloud, shadow, snow, no data…, and not 255, unknown quality), S1 = VV and VH valid. The
                  NaN part of the bits finds nothing on the released files: their writer nearest-fills every
                  gap, so only the scene classes mark S2 pixels invalid there.
``comp.npy``      int16 ``(N, 2, C, H, W)``: pre-event and post-event **median composites** over the valid
                  dates of the pre and post windows. The *lower* median (an observed value) is used, so the
                  composite commutes with clipping, dB↔linear and normalisation. A pixel with no valid date
                  (and every pixel of an empty window) holds the sentinel; the DEM is copied from the first
                  date. The windows come from the primary (earliest dated) event and the time axis
                  (:func:`s12ls_utils.schema.event_steps`; ``pre_post_dates`` is not used), and **the pre
                  window never holds an image on or after a dated event**:

                  - event inside the series: ``0…pre`` and ``post…T−1`` (pre = last step strictly before
                    the event, post = first step on or after it);
                  - event on or before the first date: empty pre window (every image is post-event), post
                    window ``0…T−1``;
                  - event after the last date: pre window ``0…T−1``, empty post window;
                  - annotated but undated (``event_date`` ``None``/``nan``/``NaT`` only): both windows
                    empty (when the event happened is unknown, so no image can be called pre or post);
                  - not annotated (no event): the series centre, ``0…6`` and ``7…T−1``
                    (:data:`DEFAULT_PREPOST`).
``comp_valid.npy`` uint8 ``(N, 2, H, W/8)``: pixels of the composites with at least one valid date.
``y.npy``         uint8 ``(N, H, W)``: ``MASK`` at time step 0.
``prepost.npy``   int16 ``(N, 2)``: ``(pre, post)`` of a valid pair, :data:`DEFAULT_PREPOST` for a patch
                  without an event, :data:`NO_PREPOST` ``(-1, -1)`` for an annotated patch without a pair
                  (event outside the series, or undated; the manifest's ``event_position`` says which).
``days.npy``      int16 ``(N, T)``: days since the first acquisition.
``manifest.json`` written last: format version, channels and their encoding, shapes, patch ids, each
                  patch's ``event_position`` (:data:`s12ls_utils.schema.EVENT_POSITIONS`) and the release,
                  size and modification time of every source file (a changed, added or removed file makes
                  the cache *stale* and :func:`build_cache` rebuilds it).

Values are stored unclipped and unnormalised; clipping (S1 −50…10 dB, S2 0…10000, DEM 0…8800),
normalisation with the task's train statistics and the dB → linear conversion (when the task's S1
statistics are linear) happen on the fly in :class:`Preprocessor`, on the training device, so new
statistics never need a rebuild. A build writes into a temporary folder that is renamed into place, so a
cache folder is complete or absent.

The cache lives in ``<data>/.s12ls_cache/<task>-<hash of the task path>/<sensor or "aligned">/<split>/<sensor>``
(or under ``cache_dir``). Training reads it with :func:`make_loader`: by default a few threads copy the rows
of each batch from the memory maps straight into (pinned) memory — numpy releases the GIL while copying, and
threads avoid the extra shared-memory and pinning copies of DataLoader worker processes, which remain
available (``backend="processes"``).

NetCDF/HDF5 handles never cross a fork: source files are opened inside the build workers (a
``forkserver`` pool, threads or Dask workers: :mod:`s12ls_utils.parallel`) or inside ``__getitem__``
(so inside DataLoader workers); memory maps are opened lazily per process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import __version__, schema
from .parallel import NETCDF_LOCK, Failure, FilesFailed, check_scheduler, map_files

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Bumped whenever the cache layout or encoding changes (an older cache is rebuilt). 3: SCL 255 (unknown
#: quality) is invalid in the validity bits and composites (format 2 counted it as usable).
CACHE_FORMAT = 3
#: int16 code of an invalid value (S1 NaN; composite pixels without a valid date).
SENTINEL = -32768
#: S1 backscatter is cached in dB times this factor.
S1_DB_SCALE = 100.0
#: Sample views: the full time series, or the pre/post-event composites.
VIEWS = ("series", "prepost")
#: ``(pre, post)`` used for a patch without an event (the centre of the 15-date series).
DEFAULT_PREPOST = (6, 7)
#: ``prepost`` of an annotated patch without a valid pre/post pair (event outside the series, undated).
NO_PREPOST = (-1, -1)
#: Channels that do not change over time (taken from the first date in composites).
STATIC_CHANNELS = frozenset({"DEM"})
_ARRAYS = ("x", "valid", "comp", "comp_valid", "y", "prepost", "days")


# --------------------------------------------------------------------------------------------------
# Channels and their encoding
# --------------------------------------------------------------------------------------------------
def channel_scales(sensor: str) -> np.ndarray:
    """Factor each cached channel was multiplied by (S1 VV/VH: dB ×100; everything else 1)."""
    return np.array(
        [S1_DB_SCALE if c in schema.S1_BANDS else 1.0 for c in schema.FEATURES[sensor]], dtype="float32"
    )


# --------------------------------------------------------------------------------------------------
# Reading one source file
# --------------------------------------------------------------------------------------------------
@dataclass
class RawPatch:
    """One patch in cache encoding (see the module docstring)."""

    x: np.ndarray  # int16 (T, C, H, W)
    valid: np.ndarray  # bool (T, H, W)
    y: np.ndarray  # uint8 (H, W)
    prepost: tuple[int, int]  # a valid pair, DEFAULT_PREPOST (no event) or NO_PREPOST (no pair)
    days: np.ndarray  # int16 (T,)
    position: str = "none"  # schema.EVENT_POSITIONS of the primary event
    release: str = "unknown"  # release of the source file (io.file_release)

    @property
    def windows(self) -> tuple[int, int]:
        """``(last pre step, first post step)`` of the composite windows ``0…pre`` and ``post…T−1``;
        ``-1`` / ``T`` make a window empty (see the module docstring)."""
        return composite_windows(self.position, self.prepost, self.x.shape[0])

    def composite(self, sensor: str) -> tuple[np.ndarray, np.ndarray]:
        """Pre/post lower-median composites ``(2, C, H, W)`` int16 and their validity ``(2, H, W)``."""
        return prepost_composite(self.x, self.valid, self.windows, sensor)


def composite_windows(position: str, prepost: tuple[int, int], n_steps: int) -> tuple[int, int]:
    """Composite windows ``(pre, post)`` (pre window ``0…pre``, post window ``post…T−1``) of a patch whose
    primary event is at ``position`` (:data:`s12ls_utils.schema.EVENT_POSITIONS`): the pair itself
    inside the series, ``(-1, 0)`` before it, ``(T−1, T)`` after it, ``(-1, T)`` undated (both windows
    empty) and ``prepost`` (the series centre) without an event."""
    t = int(n_steps)
    if position == "before":
        return -1, 0
    if position == "after":
        return t - 1, t
    if position == "undated":
        return -1, t
    pre, post = (int(v) for v in prepost)
    return min(pre, t - 1), min(post, t - 1)


def _to_int16(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.int16:
        return np.ascontiguousarray(a)
    return np.clip(np.rint(a.astype("float64")), -32767, 32767).astype("int16")


def read_source(path: str | Path, sensor: str) -> RawPatch:
    """Read one patch file (:func:`s12ls_utils.io.open_nc`) into the cache encoding.

    Channels are picked by name in the order of :data:`schema.FEATURES[sensor]`; either dimension order
    is accepted. Raw-release S2 bands are harmonised (:func:`s12ls_utils.io.harmonize_s2`). The
    composite windows follow the primary event on the time axis (module docstring); the attributes are
    read leniently (an unparsable ``event_date`` of an annotated patch counts as undated). Opens and
    closes the file here (call it inside a worker, never before a fork).
    """
    from . import io

    schema.check_sensor(sensor)
    path = Path(path)
    with io.open_nc(path) as ds:
        names = schema.FEATURES[sensor]
        io.require_variables(ds, *names, "MASK", "time", *(["SCL"] if sensor == "s2" else []))
        times = io.decode_times(ds.variables["time"])
        release = io.file_release(path) if sensor == "s2" else "unknown"
        s1_native: str | None = None
        chans = []
        valid = None
        for n in names:
            var = ds.variables[n]
            a = io.read_tyx(var)
            if n in schema.S1_BANDS:
                a = io.fill_to_nan(var, a)
                unit = io.detect_s1_unit(a)
                s1_native = s1_native or unit
                if unit == "linear":
                    a = io.to_db(a)
                ok = np.isfinite(a)
                enc = np.where(ok, np.clip(np.rint(a * S1_DB_SCALE), -32767, 32767), SENTINEL).astype("int16")
                valid = ok if valid is None else (valid & ok)
                chans.append(enc)
            else:
                bad = io.fill_mask(var, a)
                if n in schema.S2_OFFSET_BANDS:
                    a = io.harmonize_s2(a, times, release)
                chans.append(_to_int16(a))
                if bad is not None and n != "DEM":
                    valid = ~bad if valid is None else (valid & ~bad)
        x = np.stack(chans, axis=1)
        t = x.shape[0]
        if s1_native is not None:
            release = io.file_release(path, s1_unit=s1_native)
        if sensor == "s2":
            good = schema.scl_usable(io.read_tyx(ds.variables["SCL"]))
            valid = good if valid is None else (valid & good)
        if valid is None:
            valid = np.ones((t, *x.shape[2:]), dtype=bool)
        y = np.ascontiguousarray(io.read_tyx(ds.variables["MASK"], 0)).astype("uint8")
        attrs, _ = schema.parse_attrs({k: ds.getncattr(k) for k in ds.ncattrs()})
        steps = schema.patch_event_steps(times, attrs)
        if steps.has_pair:
            prepost = steps.pair
        elif steps.position == "none":
            prepost = (min(DEFAULT_PREPOST[0], t - 1), min(DEFAULT_PREPOST[1], t - 1))
        else:
            prepost = NO_PREPOST
        days = ((times - times[0]) // np.timedelta64(1, "D")).astype("int16")
    return RawPatch(x, valid, y, prepost, days, steps.position, release)


def prepost_composite(
    x: np.ndarray, valid: np.ndarray, prepost: tuple[int, int], sensor: str
) -> tuple[np.ndarray, np.ndarray]:
    """Lower-median composites of the valid dates ``0…pre`` and ``post…T−1`` (see module docstring).

    ``pre = -1`` empties the pre window and ``post = T`` the post window: every pixel of an empty window
    holds the sentinel and is invalid (the DEM is still copied from the first date).
    """
    t, c, h, w = x.shape
    pre, post = int(prepost[0]), int(prepost[1])
    if not (-1 <= pre < t and 0 <= post <= t):
        raise ValueError(f"composite windows {prepost} do not fit a series of {t} dates")
    names = schema.FEATURES[sensor]
    static = [i for i, n in enumerate(names) if n in STATIC_CHANNELS]
    out = np.empty((2, c, h, w), dtype="int16")
    ok = np.empty((2, h, w), dtype=bool)
    big = np.int32(2**30)
    for k, sl in enumerate((slice(0, pre + 1), slice(post, t))):
        if sl.stop <= sl.start:  # empty window
            out[k] = SENTINEL
            out[k, static] = x[0, static]
            ok[k] = False
            continue
        xs = x[sl].astype("int32")
        vs = valid[sl]
        xs = np.where(vs[:, None], xs, big)
        xs.sort(axis=0)
        n = vs.sum(axis=0)  # (H, W)
        idx = np.maximum(n - 1, 0) // 2
        med = np.take_along_axis(xs, np.broadcast_to(idx[None, None], (1, c, h, w)), axis=0)[0]
        med = np.where(n[None] > 0, med, SENTINEL)
        out[k] = med.astype("int16")
        out[k, static] = x[0, static]
        ok[k] = n > 0
    return out, ok


# --------------------------------------------------------------------------------------------------
# Task entries
# --------------------------------------------------------------------------------------------------
def _as_task(task):
    if isinstance(task, str | os.PathLike):
        from .tasks import load_task

        return load_task(task)
    return task


def _sensors(sensors: str | Sequence[str]) -> tuple[str, ...]:
    out = (sensors,) if isinstance(sensors, str) else tuple(sensors)
    if not out:
        raise ValueError("sensors is empty; pick one or more of " + ", ".join(schema.SENSORS))
    for s in out:
        schema.check_sensor(s)
    if len(set(out)) != len(out):
        raise ValueError(f"sensors {out} repeat a sensor")
    return out


def _use_aligned(sensors: tuple[str, ...], aligned: bool | None) -> bool:
    return len(sensors) > 1 if aligned is None else bool(aligned)


def split_entries(
    task, split: str, sensors: str | Sequence[str] = "s2", aligned: bool | None = None
) -> list[dict]:
    """The entries of a split as ``[{"id", <sensor>: rel path, …, "pixel_annotated"}]``.

    One sensor reads ``task.splits[sensor][split]``; several sensors (or ``aligned=True``) read the
    aligned split ``task.aligned[split]``, whose entries carry a path per sensor.
    """
    task = _as_task(task)
    sensors = _sensors(sensors)
    schema.check_choice("split", split, ("train", "val", "test"))
    if _use_aligned(sensors, aligned):
        if task.aligned is None:
            raise ValueError(
                f"task {task.name} has no aligned split (splits_aligned.json); fusion of {sensors} needs it"
            )
        raw = task.aligned.get(split, [])
        scope = "aligned"
    else:
        (sensor,) = sensors
        if sensor not in task.splits:
            raise ValueError(f"task {task.name} has no {sensor} split; it has {sorted(task.splits)}")
        raw = task.splits[sensor].get(split, [])
        scope = sensor
    out = []
    for e in raw:
        missing = [s for s in sensors if s not in e]
        if missing:
            raise ValueError(
                f"task {task.name} {scope}/{split} entry {e.get('id')!r} has no path for {missing}"
            )
        out.append(
            {
                "id": str(e["id"]),
                "pixel_annotated": e.get("pixel_annotated"),
                **{s: str(e[s]) for s in sensors},
            }
        )
    return out


def _data_root(task) -> Path:
    return task.require_data_dir("build or read its training cache")


def _source_path(root: Path, rel: str) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else root / p


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return int(st.st_size), int(st.st_mtime_ns)


# --------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------
def cache_root(task, cache_dir: str | Path | None = None) -> Path:
    """Root folder of a task's caches: ``<cache_dir or <data>/.s12ls_cache>/<task>-<hash of task path>``."""
    task = _as_task(task)
    digest = hashlib.sha1(str(Path(task.path).resolve()).encode()).hexdigest()[:8]
    base = Path(cache_dir) if cache_dir is not None else _data_root(task) / ".s12ls_cache"
    return base / f"{task.name}-{digest}"


def cache_dir_for(
    task,
    split: str,
    sensor: str,
    *,
    sensors: Sequence[str] | None = None,
    aligned: bool | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Folder of the cache of one sensor of a split: ``<root>/<scope>/<split>/<sensor>``."""
    sensors = _sensors(sensors or sensor)
    scope = "aligned" if _use_aligned(sensors, aligned) else sensor
    return cache_root(task, cache_dir) / scope / split / sensor


def _manifest_sources(root: Path, entries: list[dict], sensor: str) -> list[dict]:
    out = []
    for e in entries:
        size, mtime = _stat(_source_path(root, e[sensor]))
        out.append({"id": e["id"], "path": e[sensor], "size": size, "mtime_ns": mtime})
    return out


def cache_status(
    task,
    split: str,
    sensor: str,
    *,
    sensors: Sequence[str] | None = None,
    aligned: bool | None = None,
    cache_dir: str | Path | None = None,
) -> str | None:
    """``None`` when the cache of ``sensor`` for this split is fresh, else why it must be (re)built."""
    task = _as_task(task)
    folder = cache_dir_for(task, split, sensor, sensors=sensors, aligned=aligned, cache_dir=cache_dir)
    man_path = folder / "manifest.json"
    if not man_path.is_file():
        return "no cache"
    try:
        man = json.loads(man_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"unreadable manifest ({exc})"
    if man.get("format") != CACHE_FORMAT:
        return f"cache format {man.get('format')} != {CACHE_FORMAT}"
    if tuple(man.get("channels", ())) != schema.FEATURES[sensor]:
        return "channels differ"
    entries = split_entries(task, split, sensors or sensor, aligned)
    cached = man.get("sources", [])
    if [(s["id"], s["path"]) for s in cached] != [(e["id"], e[sensor]) for e in entries]:
        return "the split lists other patches than the cache"
    root = _data_root(task)
    for s in cached:
        p = _source_path(root, s["path"])
        try:
            size, mtime = _stat(p)
        except FileNotFoundError:
            return f"source {s['path']} is missing"
        if (size, mtime) != (s["size"], s["mtime_ns"]):
            return f"source {s['path']} changed (size or modification time)"
    for name in _ARRAYS:
        if not (folder / f"{name}.npy").is_file():
            return f"{name}.npy is missing"
    return None


def _open_arrays(folder: Path, mode: str = "r") -> dict[str, np.ndarray]:
    return {n: np.load(folder / f"{n}.npy", mmap_mode=mode) for n in _ARRAYS}


def _fill_slot(job: tuple[int, str], *, root: str, folder: str, sensor: str) -> tuple[int, str, str]:
    """Task of one ``(slot, rel path)`` job: read the source file (in the worker) and write it into the
    (temporary) cache arrays at its slot.

    Workers only write their own slots of the memory-mapped arrays, so any number of them (processes,
    threads or Dask workers that see ``folder``) can fill one cache at once. Returns ``(positive pixels,
    event position, release)``.
    """
    i, rel = job
    with NETCDF_LOCK:  # netCDF-C/HDF5 are not thread-safe; the composites are computed outside the lock
        p = read_source(_source_path(Path(root), rel), sensor)
    comp, comp_ok = p.composite(sensor)
    arrs = _open_arrays(Path(folder), "r+")
    if p.x.shape != arrs["x"].shape[1:]:
        raise ValueError(f"shape {p.x.shape} differs from the first patch's {arrs['x'].shape[1:]}")
    arrs["x"][i] = p.x
    arrs["valid"][i] = np.packbits(p.valid, axis=-1)
    arrs["comp"][i] = comp
    arrs["comp_valid"][i] = np.packbits(comp_ok, axis=-1)
    arrs["y"][i] = p.y
    arrs["prepost"][i] = p.prepost
    arrs["days"][i] = p.days
    for a in arrs.values():
        if isinstance(a, np.memmap):
            a.flush()
    return int(p.y.sum()), p.position, p.release


def _first_readable(root: Path, entries: list[dict], sensor: str, what: str) -> RawPatch:
    """The first readable patch of a split (it fixes the array shapes); FilesFailed when there is none.

    Unreadable ones before it are read again, and reported, by the build pass."""
    from .io import PatchReadError

    failures = []
    for e in entries:
        try:
            with NETCDF_LOCK:
                return read_source(_source_path(root, e[sensor]), sensor)
        except PatchReadError as exc:
            failures.append(Failure(e[sensor], type(exc).__name__, str(exc)))
    raise FilesFailed(what, failures, len(entries))


def _build_one(
    task,
    split: str,
    sensor: str,
    entries: list[dict],
    folder: Path,
    workers: int | None,
    progress: bool,
    scheduler="processes",
) -> dict:
    t0 = time.perf_counter()
    root = _data_root(task)
    sources = _manifest_sources(root, entries, sensor)  # stat before reading: a change while building → stale
    first = _first_readable(root, entries, sensor, f"training cache {task.name} {split}/{sensor}")
    t, c, h, w = first.x.shape
    if w % 8:
        raise ValueError(f"patch width {w} is not a multiple of 8 (validity bits are packed by 8)")
    n = len(entries)
    from .tasks import staged_folder

    with staged_folder(folder, overwrite=True) as tmp:
        shapes = {
            "x": ((n, t, c, h, w), "int16"),
            "valid": ((n, t, h, w // 8), "uint8"),
            "comp": ((n, 2, c, h, w), "int16"),
            "comp_valid": ((n, 2, h, w // 8), "uint8"),
            "y": ((n, h, w), "uint8"),
            "prepost": ((n, 2), "int16"),
            "days": ((n, t), "int16"),
        }
        for name, (shape, dtype) in shapes.items():
            np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=shape).flush()
        res = map_files(
            functools.partial(_fill_slot, root=str(root), folder=str(tmp), sensor=sensor),
            [(i, e[sensor]) for i, e in enumerate(entries)],
            scheduler=scheduler,
            workers=workers,
            desc=f"cache {split}/{sensor}",
            unit="patch",
            progress=progress,
            chunk_size=16,
        )
        if res.failures:  # a cache with holes would train on blank patches: fail, naming every bad file
            failures = [replace(f, item=f.item[1]) for f in res.failures]
            raise FilesFailed(f"training cache {task.name} {split}/{sensor}", failures, n)
        positives = [r[0] for r in res.results]
        positions = [r[1] for r in res.results]
        for src, r in zip(sources, res.results, strict=True):
            src["release"] = r[2]
        manifest = {
            "format": CACHE_FORMAT,
            "package_version": __version__,
            "task": str(Path(task.path).resolve()),
            "task_name": task.name,
            "split": split,
            "sensor": sensor,
            "data_dir": str(root.resolve()),
            "n": n,
            "shape": {k: list(v[0]) for k, v in shapes.items()},
            "dtype": {k: v[1] for k, v in shapes.items()},
            "channels": list(schema.FEATURES[sensor]),
            "encoding": {
                "scale": channel_scales(sensor).tolist(),
                "sentinel": SENTINEL,
                "s1": "dB x100 (round), invalid = sentinel",
                "valid": "np.packbits(axis=-1), bit order big",
                "composite": "lower median over valid dates 0..pre and post..T-1 of the primary (earliest "
                "dated) event; event before the series: empty pre window; after it: empty post window; "
                "undated: both empty; no event: centre 0..6 / 7..T-1; DEM from date 0",
                "prepost": "(pre, post) of a valid pair; (6, 7) without an event; (-1, -1) without a pair",
                "s2_offset": "raw-release S2 bands of dates >= 2022-01-25: max(v - 1000, 0)",
            },
            "ids": [e["id"] for e in entries],
            "n_positive": positives,
            "event_position": positions,
            "sources": sources,
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def build_cache(
    task,
    split: str,
    sensors: str | Sequence[str] = "s2",
    *,
    aligned: bool | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    allow_missing: bool = False,
    workers: int | None = None,
    scheduler="processes",
    progress: bool = True,
) -> dict[str, Path]:
    """Convert one split of a task into the packed cache (once); return ``{sensor: cache folder}``.

    First the split's files must exist under the task's data folder
    (:func:`~s12ls_utils.tasks.check_files`): else :class:`~s12ls_utils.tasks.MissingFilesError` says
    how many are missing and where they probably are, and nothing is built. ``allow_missing=True`` caches
    the patches whose files exist (the manifest's ``ids`` list them).

    A fresh cache (same format, same patches, every source file with the size and modification time
    recorded in its manifest) is reused; a stale or missing one is rebuilt with a progress bar, reading
    the files where ``scheduler`` runs them (:func:`~s12ls_utils.parallel.map_files`): ``workers`` local
    processes by default (all CPUs; small splits are read here), ``"threads"``, ``"synchronous"``, or a
    Dask cluster whose workers see the data and the cache folder at the same paths. The arrays are
    byte-identical whichever scheduler builds them.

    Raises ValueError when the split is empty, and :class:`~s12ls_utils.parallel.FilesFailed` when files
    cannot be read: every patch of the split must have its row (a hole would silently train on a blank
    patch), so the build reads every file, then fails naming all bad ones, and writes no cache.
    """
    from .tasks import check_files

    check_scheduler(scheduler)
    sensors = _sensors(sensors)
    scope = "aligned" if _use_aligned(sensors, aligned) else "own"
    task = check_files(_as_task(task), sensors, (split,), scope=scope, allow_missing=allow_missing)
    entries = split_entries(task, split, sensors, aligned)
    if not entries:
        scope = "aligned" if _use_aligned(sensors, aligned) else sensors[0]
        raise ValueError(f"split {split!r} of task {task.name} ({scope}) is empty: nothing to cache")
    out = {}
    for sensor in sensors:
        folder = cache_dir_for(task, split, sensor, sensors=sensors, aligned=aligned, cache_dir=cache_dir)
        reason = (
            "forced"
            if force
            else cache_status(task, split, sensor, sensors=sensors, aligned=aligned, cache_dir=cache_dir)
        )
        if reason is not None:
            log.info("building cache %s (%s)", folder, reason)
            _build_one(task, split, sensor, entries, folder, workers, progress, scheduler)
        out[sensor] = folder
    return out


def describe_cache(folders: Mapping[str, Path] | Path) -> pd.DataFrame:
    """One row per cached array: sensor, array, dtype, shape, size on disk (MB)."""
    import pandas as pd

    if isinstance(folders, str | os.PathLike):
        folders = {Path(folders).name: Path(folders)}
    rows = []
    for sensor, folder in folders.items():
        for name in _ARRAYS:
            a = np.load(Path(folder) / f"{name}.npy", mmap_mode="r")
            rows.append(
                {
                    "sensor": sensor,
                    "array": name,
                    "dtype": str(a.dtype),
                    "shape": "×".join(map(str, a.shape)),
                    "MB": (Path(folder) / f"{name}.npy").stat().st_size / 1e6,
                }
            )
    return pd.DataFrame(rows)


def cache_facts(task, caches: Mapping[str, Mapping[str, Path]], sensors: str | Sequence[str]) -> dict:
    """The figures a text quotes about the packed caches of ``task`` (``caches``: split → the folders
    :func:`build_cache` returned): ``cache_mb`` (every cached array, size on disk), ``cache_dir`` (the folder
    that holds them) and ``<split>_positive_pct`` (the landslide-pixel share of the split's masks, %, two
    decimals)."""
    facts = {
        "cache_mb": float(sum(describe_cache(folders)["MB"].sum() for folders in caches.values())),
        "cache_dir": str(next(iter(next(iter(caches.values())).values())).parent),
    }
    for split in caches:
        positive, pixels = PatchDataset(task, split, sensors, raw=True, progress=False).positives()
        facts[f"{split}_positive_pct"] = round(100 * positive / pixels, 2)
    return facts


def ms_per_sample(ds, n: int = 8, repeat: int = 3) -> float:
    """Milliseconds to read one raw sample of ``ds`` (:meth:`PatchDataset.read_raw` of its first ``n``
    samples), the best of ``repeat`` timings."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(n):
            ds.read_raw(i % len(ds))
        best = min(best, (time.perf_counter() - t0) / n * 1000)
    return best


def read_speed(direct, cached, n: int = 8) -> dict:
    """What the packed cache saves, as the figures a text quotes: ``netcdf_ms_per_sample`` (``direct``, a
    :class:`PatchDataset` with ``cache=False``: one timing, its file reads are the slow part),
    ``cache_ms_per_sample`` (``cached``: the best of three) and ``read_speedup`` (their ratio)."""
    netcdf, cache = ms_per_sample(direct, n, repeat=1), ms_per_sample(cached, n)
    return {"netcdf_ms_per_sample": netcdf, "cache_ms_per_sample": cache, "read_speedup": netcdf / cache}


# --------------------------------------------------------------------------------------------------
# Preprocessing (on the training device)
# --------------------------------------------------------------------------------------------------
def input_channels(sensors: str | Sequence[str], view: str) -> dict[str, int]:
    """Model input channels per sensor: C features + validity per date (``series``), or 3·I + 4 (``prepost``:
    I image channels before, after and their difference, DEM, slope, pre and post validity)."""
    schema.check_choice("view", view, VIEWS)
    return {s: len(channel_names(s, view)) for s in _sensors(sensors)}


def channel_names(sensor: str, view: str) -> tuple[str, ...]:
    """The model input channels of one sensor, by name, in order (:func:`input_channels` counts them)."""
    names = schema.FEATURES[sensor]
    if view == "series":
        return (*names, "VALID")
    img = [n for n in names if n not in STATIC_CHANNELS]
    steps = (f"{when}_{n}" for when in ("pre", "post", "diff") for n in img)
    return (*steps, "DEM", "slope", "pre_valid", "post_valid")


def _empty_f32(shape, device: torch.device) -> torch.Tensor:
    """An uninitialised float32 tensor; on the CPU from numpy, which puts large arrays on huge pages."""
    if device.type == "cpu":
        return torch.from_numpy(np.empty(tuple(shape), dtype="float32"))
    return torch.empty(tuple(shape), dtype=torch.float32, device=device)


def _augment_params(n: int, generator: torch.Generator | None) -> list[tuple[int, bool]]:
    k = torch.randint(0, 4, (n,), generator=generator)
    flip = torch.randint(0, 2, (n,), generator=generator)
    return [(int(a), bool(b)) for a, b in zip(k, flip, strict=True)]


def _rot_flip(t: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Flip along x (when ``flip``), then rotate by ``k`` × 90° in the (y, x) plane."""
    if flip:
        t = torch.flip(t, dims=(-1,))
    return torch.rot90(t, k, dims=(-2, -1)) if k else t


def _spatial(
    t: torch.Tensor,
    off: list | None,
    crop: int | None,
    params: list[tuple[int, bool]] | None,
    backend: str | None = None,
) -> torch.Tensor:
    """Per-sample crop (``off``: top-left corners), flip and rotation of a batch ``(B, …, H, W)``.

    On the CPU through numpy, whose strided copies are 5–20× faster than ``torch.flip``/``rot90`` there;
    on other devices with torch. Both apply the same transform as :func:`_rot_flip`.
    """
    moves = params is not None and any(k or f for k, f in params)
    if off is None and not moves:
        return t
    if (backend or ("numpy" if t.device.type == "cpu" else "torch")) == "numpy":
        a = t.numpy()
        size = crop if off is not None else a.shape[-1]
        out = np.empty((*a.shape[:-2], size, size) if off is not None else a.shape, dtype=a.dtype)
        for i in range(a.shape[0]):
            v = a[i]
            if off is not None:
                r, c = off[i]
                v = v[..., r : r + crop, c : c + crop]
            if moves:
                k, flip = params[i]
                if flip:
                    v = v[..., ::-1]
                if k:
                    v = np.rot90(v, k, axes=(-2, -1))
            out[i] = v
        return torch.from_numpy(out)
    if off is not None:
        t = torch.stack([t[i, ..., r : r + crop, c : c + crop] for i, (r, c) in enumerate(off)])
    if moves:
        t = torch.stack([_rot_flip(t[i], k, f) for i, (k, f) in enumerate(params)])
    return t


class Preprocessor(torch.nn.Module):
    """Raw cached values → model inputs, on whatever device the batch is on.

    Per sensor: decode (S1 dB ×100 → dB, or linear when the task's S1 statistics are linear), clip to
    the documented ranges, normalise with the task's train mean/std, set invalid values (NaN) to 0.

    - view ``"series"``: ``(B, T, C+1, H, W)``: the C features and a validity channel (1 = valid).
    - view ``"prepost"``: ``(B, 3·I + 4, H, W)`` from the composites: the I image channels before, after,
      and their difference (0 where either is invalid), the DEM, the slope (degrees / 45, from the DEM)
      and the pre and post validity.

    Augmentation (random 90° rotations and flips, the same for every sensor and the mask) and random
    crops are drawn from ``generator`` (a CPU generator: the same draws on every device).
    """

    def __init__(
        self,
        stats: Mapping[str, tuple[Sequence[float], Sequence[float]]],
        units: Mapping[str, str],
        view: str,
    ):
        super().__init__()
        schema.check_choice("view", view, VIEWS)
        self.view = view
        self.sensors = tuple(stats)
        self.units = {s: units.get(s, "dB") for s in self.sensors}
        self._clip_groups: dict[str, list[tuple[int, int, float, float]]] = {}
        self._linear: dict[str, tuple[int, int, float] | None] = {}
        for s in self.sensors:
            names = schema.FEATURES[s]
            mean, std = (np.asarray(v, dtype="float64") for v in stats[s])
            if mean.shape != (len(names),) or std.shape != (len(names),):
                raise ValueError(f"{s}: statistics for {len(names)} channels {names} expected")
            if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std <= 0).any():
                bad = [
                    n
                    for n, m, v in zip(names, mean, std, strict=True)
                    if not (np.isfinite(m) and np.isfinite(v) and v > 0)
                ]
                raise ValueError(f"{s}: the task's statistics are missing or degenerate for {bad}")
            scale = channel_scales(s).astype("float64")
            lin = [i for i, n in enumerate(names) if n in schema.S1_BANDS and self.units[s] == "linear"]
            # clip in cached units (a clip in dB is the same clip in linear units: the map is monotone)
            groups: list[tuple[int, int, float, float]] = []
            for i, n in enumerate(names):
                lo, hi = schema.clip_range(s, n, "dB")
                lo, hi = lo * scale[i], hi * scale[i]
                if groups and groups[-1][1] == i and groups[-1][2:] == (lo, hi):
                    groups[-1] = (groups[-1][0], i + 1, lo, hi)
                else:
                    groups.append((i, i + 1, lo, hi))
            self._clip_groups[s] = groups
            self._linear[s] = (lin[0], lin[-1] + 1, math.log(10.0) / (10.0 * scale[lin[0]])) if lin else None
            # then one affine map: (value / scale - mean) / std, the scale folded in (linear channels: exp first)
            a = 1.0 / (std * np.where([i in lin for i in range(len(names))], 1.0, scale))
            shape = (1, 1, len(names), 1, 1)
            self.register_buffer(
                f"{s}_a", torch.tensor(a, dtype=torch.float32).reshape(shape), persistent=False
            )
            self.register_buffer(
                f"{s}_b", torch.tensor(-mean / std, dtype=torch.float32).reshape(shape), persistent=False
            )

    def in_channels(self) -> dict[str, int]:
        """Channels per sensor of what :meth:`forward` returns (per date for ``series``)."""
        return input_channels(self.sensors, self.view)

    def _decode_into(self, s: str, raw: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """int16 ``raw`` (B, F, C, H, W) → normalised float32 written into ``out``; invalid codes → 0.

        In-place operations on one preallocated buffer (on a CPU, allocating a fresh tensor per operation
        costs more than the arithmetic): convert, clip (per run of channels with the same range), dB →
        linear where the statistics are linear, one fused affine map, zero the sentinel codes.
        """
        out.copy_(raw)
        bad = None
        if raw.is_cuda or int(raw.min()) == SENTINEL:  # S2 series never hold the sentinel: skip on CPU
            bad = raw == SENTINEL
        for i, j, lo, hi in self._clip_groups[s]:
            out[:, :, i:j].clamp_(lo, hi)
        if self._linear[s] is not None:
            i, j, k = self._linear[s]
            out[:, :, i:j].mul_(k).exp_()
        out.mul_(getattr(self, f"{s}_a")).add_(getattr(self, f"{s}_b"))
        return out if bad is None else out.masked_fill_(bad, 0.0)

    def forward(
        self,
        batch: Mapping[str, torch.Tensor],
        *,
        augment: bool = False,
        crop: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        """``(inputs per sensor, y float (B, H, W), days per sensor (B, T) float)``.

        Crops, rotations and flips act on the raw int16 values and the unpacked validity (half the bytes of
        float32), then each sensor is decoded into one preallocated float32 tensor.
        """
        y = batch["y"]
        if y.dim() != 3:
            raise ValueError("Preprocessor expects batched tensors: y (B, H, W), x (B, F, C, H, W)")
        b, h, w = y.shape
        if crop is not None and crop < min(h, w):
            off = (
                torch.randint(0, h - crop + 1, (b, 2), generator=generator).tolist()
                if augment
                else [[(h - crop) // 2, (w - crop) // 2]] * b
            )
        else:
            off = None
        params = _augment_params(b, generator) if augment else None

        if params is not None and h != w:
            raise ValueError(f"rotations need square patches, not {h}×{w}")

        def spatial(t: torch.Tensor) -> torch.Tensor:
            return _spatial(t, off, crop, params)

        inputs: dict[str, torch.Tensor] = {}
        days: dict[str, torch.Tensor] = {}
        for s in self.sensors:
            raw = spatial(batch[s])
            valid = spatial(batch[f"{s}_valid"])
            nb, nf, nc, hh, ww = raw.shape
            if self.view == "series":
                out = _empty_f32((nb, nf, nc + 1, hh, ww), raw.device)
                self._decode_into(s, raw, out[:, :, :nc])
                out[:, :, nc].copy_(valid)
                inputs[s] = out
            else:
                names = schema.FEATURES[s]
                img = [i for i, n in enumerate(names) if n not in STATIC_CHANNELS]
                dem_i = names.index("DEM")
                xf = self._decode_into(s, raw, _empty_f32(raw.shape, raw.device))
                vf = valid.float()
                pre, post = xf[:, 0, img], xf[:, 1, img]
                both = (vf[:, 0] * vf[:, 1]).unsqueeze(1)
                dem_m = raw[:, 0, dem_i].float().clamp(*schema.CLIP_RANGES["DEM"])
                gy, gx = torch.gradient(dem_m, spacing=schema.PIXEL_SIZE_M, dim=(-2, -1))
                slope = torch.rad2deg(torch.atan(torch.hypot(gx, gy))) / 45.0
                inputs[s] = torch.cat(
                    [pre, post, (post - pre) * both, xf[:, 0, dem_i : dem_i + 1], slope.unsqueeze(1), vf],
                    dim=1,
                )
            if f"{s}_days" in batch:
                days[s] = batch[f"{s}_days"].float()
        return inputs, spatial(y).float(), days


# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------
class PatchDataset(torch.utils.data.Dataset):
    """Samples of one split of a task, for one or several sensors.

    Parameters
    ----------
    task
        A :class:`~s12ls_utils.tasks.Task` or a task folder (read with ``tasks.load_task``), new or old format.
    split
        ``"train"``, ``"val"`` or ``"test"``.
    sensors
        One sensor (its own split) or several (the aligned split; one tensor per sensor).
    view
        ``"series"`` (``(T, C+1, H, W)`` per sensor) or ``"prepost"`` (composites, ``(3·I+4, H, W)``).
    cache
        Read from the packed cache (built or refreshed here when stale) — the fast path; ``False`` reads
        the NetCDF files in ``__getitem__`` (inside DataLoader workers).
    raw
        Return cache-encoded tensors (int16 values, uint8 validity) for :class:`Preprocessor` on the training
        device instead of normalised float32; ``dataset[list_of_indices]`` then reads a whole batch at once.
    augment, crop
        Random 90° rotations/flips (identical for every sensor and the mask) and random crops of this
        size (centre crops when ``augment`` is off); processed samples only (``raw=False``).
    max_patches
        Keep a seeded random subset of this many patches.
    workers, scheduler
        Where a stale cache is built (see :func:`build_cache`).

    A processed sample is a dict: ``<sensor>`` float32 inputs, ``y`` float32 ``(H, W)`` (MASK at time 0),
    ``<sensor>_days`` (T,) float32, ``id`` (``<region>_<id>``) and ``index``.
    """

    def __init__(
        self,
        task,
        split: str,
        sensors: str | Sequence[str] = ("s2",),
        *,
        view: str = "series",
        aligned: bool | None = None,
        cache: bool = True,
        cache_dir: str | Path | None = None,
        raw: bool = False,
        augment: bool = False,
        crop: int | None = None,
        max_patches: int | None = None,
        seed: int = 0,
        workers: int | None = None,
        scheduler="processes",
        progress: bool = True,
    ):
        schema.check_choice("view", view, VIEWS)
        self.task = _as_task(task)
        self.split = split
        self.sensors = _sensors(sensors)
        self.aligned = _use_aligned(self.sensors, aligned)
        self.view = view
        self.raw = raw
        self.augment = augment
        self.crop = crop
        entries = split_entries(self.task, split, self.sensors, aligned)
        if not entries:
            scope = "aligned" if self.aligned else self.sensors[0]
            sizes = {
                s: len(split_entries(self.task, s, self.sensors, aligned)) for s in ("train", "val", "test")
            }
            raise ValueError(
                f"split {split!r} of task {self.task.name} ({scope}) is empty (patches per split: {sizes}); a "
                "selection this small cannot fill three splits: use a data folder with more patches"
            )
        self.entries = entries
        self.root = _data_root(self.task)
        self.cache_dirs: dict[str, Path] | None = None
        if cache:
            self.cache_dirs = build_cache(
                self.task,
                split,
                self.sensors,
                aligned=aligned,
                cache_dir=cache_dir,
                workers=workers,
                scheduler=scheduler,
                progress=progress,
            )
        n = len(entries)
        if max_patches is not None and max_patches < n:
            if max_patches < 1:
                raise ValueError(f"max_patches must be at least 1, not {max_patches}")
            rng = np.random.default_rng(seed)
            self.indices = np.sort(rng.choice(n, size=max_patches, replace=False))
        else:
            self.indices = np.arange(n)
        try:
            stats = {s: self.task.channel_stats(s, aligned=self.aligned) for s in self.sensors}
        except KeyError as exc:  # a task without statistics: a bad argument here, not a missing key
            raise ValueError(exc.args[0]) from None
        self.preprocessor = Preprocessor(stats, getattr(self.task, "units", {}) or {}, view)
        self._arrays: dict[str, dict[str, np.ndarray]] | None = None
        self._pid: int | None = None

    # pickling for DataLoader workers (spawn/forkserver): never ship memory maps
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_arrays"] = None
        state["_pid"] = None
        return state

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def ids(self) -> list[str]:
        return [self.entries[i]["id"] for i in self.indices]

    @property
    def landslide_pixels(self) -> list[int]:
        """Landslide pixels of each sample's patch, as the task lists them (``pixel_annotated``): which
        samples to show can be chosen without reading any."""
        return [int(self.entries[i]["pixel_annotated"]) for i in self.indices]

    @property
    def channels(self) -> dict[str, tuple[str, ...]]:
        """Input channel names per sensor (processed samples)."""
        return {s: channel_names(s, self.view) for s in self.sensors}

    def in_channels(self) -> dict[str, int]:
        return self.preprocessor.in_channels()

    def _maps(self) -> dict[str, dict[str, np.ndarray]]:
        if self._arrays is None or self._pid != os.getpid():
            assert self.cache_dirs is not None
            self._arrays = {s: _open_arrays(self.cache_dirs[s]) for s in self.sensors}
            self._pid = os.getpid()
        return self._arrays

    def positives(self) -> tuple[int, int]:
        """``(positive pixels, all pixels)`` over the masks of this dataset."""
        if self.cache_dirs is not None:
            y = self._maps()[self.sensors[0]]["y"]
            pos = int(sum(int(np.count_nonzero(y[i])) for i in self.indices))
            return pos, len(self.indices) * int(np.prod(y.shape[1:]))
        pos = 0
        for i in self.indices:
            pos += int(self._read_raw_direct([int(i)])["y"].sum())
        return pos, len(self.indices) * schema.PATCH_SIZE**2

    # ---------------------------------------------------------------- raw reading
    def _read_raw_cache(self, idx: list[int], pin_memory: bool = False) -> dict:
        rows = self.indices[idx]
        maps = self._maps()
        in_worker = torch.utils.data.get_worker_info() is not None

        def gather(arr: np.ndarray, dtype: torch.dtype, unpack: bool = False) -> torch.Tensor:
            """Copy ``arr[rows]`` row by row into one new tensor: one copy per byte (fancy indexing makes
            two); in pinned memory for a GPU, in shared memory inside a DataLoader worker (no extra copy
            when the batch is sent to the main process)."""
            tail = (*arr.shape[1:-1], arr.shape[-1] * 8) if unpack else arr.shape[1:]
            shape = (len(rows), *tail)
            if in_worker:
                numel = int(np.prod(shape))
                storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel, device="cpu")
                out = torch.empty(0, dtype=dtype).new(storage).resize_(shape)
            elif pin_memory:
                out = torch.empty(shape, dtype=dtype, pin_memory=True)
            else:  # numpy allocates large arrays on huge pages: half the page faults of torch.empty
                out = torch.from_numpy(np.empty(shape, dtype=str(dtype).removeprefix("torch.")))
            o = out.numpy()
            for j, r in enumerate(rows):
                o[j] = np.unpackbits(arr[r], axis=-1) if unpack else arr[r]
            return out

        out: dict = {}
        xname, vname = ("x", "valid") if self.view == "series" else ("comp", "comp_valid")
        for s in self.sensors:
            m = maps[s]
            out[s] = gather(m[xname], torch.int16)
            out[f"{s}_valid"] = gather(m[vname], torch.uint8, unpack=True)
            out[f"{s}_days"] = torch.from_numpy(np.asarray(m["days"][rows]))
        first = maps[self.sensors[0]]
        out["y"] = gather(first["y"], torch.uint8)
        out["prepost"] = torch.from_numpy(np.asarray(first["prepost"][rows]))
        out["index"] = torch.from_numpy(rows.astype("int64"))
        out["id"] = [self.entries[int(r)]["id"] for r in rows]
        return out

    def _read_raw_direct(self, idx: list[int]) -> dict:
        rows = self.indices[idx]
        out: dict = {}
        for s in self.sensors:
            patches = [read_source(_source_path(self.root, self.entries[int(r)][s]), s) for r in rows]
            xv = [(p.x, p.valid) if self.view == "series" else p.composite(s) for p in patches]
            out[s] = torch.from_numpy(np.stack([x for x, _ in xv]))
            out[f"{s}_valid"] = torch.from_numpy(np.stack([v.astype("uint8") for _, v in xv]))
            out[f"{s}_days"] = torch.from_numpy(np.stack([p.days for p in patches]))
            if s == self.sensors[0]:
                first = patches
        out["y"] = torch.from_numpy(np.stack([p.y for p in first]))
        out["prepost"] = torch.tensor([p.prepost for p in first], dtype=torch.int16)
        out["index"] = torch.from_numpy(rows.astype("int64"))
        out["id"] = [self.entries[int(r)]["id"] for r in rows]
        return out

    def read_raw(self, idx: int | Sequence[int], pin_memory: bool = False) -> dict:
        """Cache-encoded tensors of one sample (no batch axis) or a batch (``idx`` a sequence).

        ``pin_memory``: allocate the large arrays in page-locked memory (CUDA only), ready for an
        asynchronous copy to the GPU.
        """
        single = isinstance(idx, int | np.integer)
        lst = [int(idx)] if single else [int(i) for i in idx]
        for i in lst:
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} out of range for {len(self)} samples")
        lst = [i % len(self) for i in lst]
        if self.cache_dirs is not None:
            out = self._read_raw_cache(lst, pin_memory=pin_memory and torch.cuda.is_available())
        else:
            out = self._read_raw_direct(lst)
        if single:
            out = {k: (v[0] if isinstance(v, torch.Tensor | list) else v) for k, v in out.items()}
        return out

    def __getitem__(self, idx):
        if self.raw:
            return self.read_raw(idx)
        if not isinstance(idx, int | np.integer):
            items = [self[int(i)] for i in idx]
            return {
                k: ([it[k] for it in items] if k == "id" else torch.stack([it[k] for it in items]))
                for k in items[0]
            }
        batch = self.read_raw([int(idx)])
        with torch.no_grad():
            inputs, y, days = self.preprocessor(batch, augment=self.augment, crop=self.crop)
        out = {s: inputs[s][0] for s in self.sensors}
        out.update({f"{s}_days": d[0] for s, d in days.items()})
        out["y"] = y[0]
        out["id"] = batch["id"][0]
        out["index"] = batch["index"][0]
        return out


# --------------------------------------------------------------------------------------------------
# Loading batches
# --------------------------------------------------------------------------------------------------
class EpochBatchSampler(torch.utils.data.Sampler):
    """Batches of indices, shuffled with a seed that depends only on ``(seed, epoch)``.

    Resuming at epoch ``e`` therefore sees exactly the batches an uninterrupted run sees; indices are
    sorted within a batch (memory-map locality; the order inside a batch does not matter).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = (
            n,
            batch_size,
            shuffle,
            seed,
            drop_last,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        yield from map(sorted, torch.utils.data.BatchSampler(order, self.batch_size, self.drop_last))

    def __len__(self) -> int:
        return len(torch.utils.data.BatchSampler(range(self.n), self.batch_size, self.drop_last))


class ShardedBatchSampler(torch.utils.data.Sampler):
    """One process's share of the batches of :class:`EpochBatchSampler`, for DistributedDataParallel.

    ``shard="samples"`` (training): ``batch_size`` is the *per-process* batch and every global batch of
    ``batch_size × num_replicas`` samples is split across the processes. The order comes from
    :class:`torch.utils.data.DistributedSampler` seeded so that its permutation of epoch ``e`` is the
    one :class:`EpochBatchSampler` draws for ``(seed, e)``; it deals the permutation out in turn, so
    the union of the processes' ``k``-th batches is exactly the ``k``-th batch of a single-process run
    with the global batch. To give every process the same number of steps (a collective per step),
    the permutation is padded with its first ``num_replicas − 1`` samples at most when ``n`` is not
    a multiple of ``num_replicas``.

    ``shard="batches"`` (evaluation): the batches of an unshuffled :class:`EpochBatchSampler` of
    ``batch_size`` are dealt out whole, in turn, without padding: each sample is seen once, in the very
    batch a single process would form (so per-batch figures are the same), and processes may get one
    batch more or less than others (no collective may run per batch).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        num_replicas: int,
        rank: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        shard: str = "samples",
    ):
        schema.check_choice("shard", shard, ("samples", "batches"))
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not one of {num_replicas} process(es)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.n, self.batch_size, self.drop_last, self.shard = n, batch_size, drop_last, shard
        self.num_replicas, self.rank = num_replicas, rank
        if shard == "samples":
            # DistributedSampler seeds its permutation with seed + epoch: fold in EpochBatchSampler's factor
            self.order = torch.utils.data.DistributedSampler(
                range(n), num_replicas, rank, shuffle=shuffle, seed=int(seed) * 1_000_003
            )
        else:
            self.order = EpochBatchSampler(n, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(int(epoch))

    def __iter__(self) -> Iterator[list[int]]:
        if self.shard == "batches":
            for k, b in enumerate(self.order):
                if k % self.num_replicas == self.rank:
                    yield b
            return
        yield from map(
            sorted, torch.utils.data.BatchSampler(list(self.order), self.batch_size, self.drop_last)
        )

    def __len__(self) -> int:
        if self.shard == "batches":
            return len(range(self.rank, len(self.order), self.num_replicas))
        # len(self.order): ceil(n / num_replicas) after padding
        return len(torch.utils.data.BatchSampler(range(len(self.order)), self.batch_size, self.drop_last))


class ThreadedBatchLoader:
    """Batches of a cached ``raw=True`` dataset, read ahead by a pool of threads.

    The cache is a set of memory maps: reading a batch is a memory copy, and numpy releases the GIL while
    it copies, so threads read in parallel without the costs of worker *processes* (every batch a worker
    returns is copied into shared memory and, for a GPU, copied again into pinned memory by the
    DataLoader's pinning thread). Here each batch is copied once, straight from the page cache into its
    destination — pinned memory when ``pin_memory`` (PyTorch's caching host allocator recycles a pinned
    block only once the asynchronous host→GPU copies that read it have completed). Batches come in
    sampler order, up to ``prefetch`` ahead; ``threads=0`` reads in the calling thread.
    """

    def __init__(
        self,
        dataset: PatchDataset,
        sampler: EpochBatchSampler | ShardedBatchSampler,
        threads: int = 1,
        pin_memory: bool = False,
        prefetch: int = 4,
    ):
        self.dataset, self.epoch_sampler, self.batch_sampler = dataset, sampler, sampler
        self.threads, self.pin_memory, self.prefetch = int(threads), bool(pin_memory), max(1, int(prefetch))
        self._pool = None

    def __len__(self) -> int:
        return len(self.epoch_sampler)

    def _read(self, idx: list[int]) -> dict:
        return self.dataset.read_raw(idx, pin_memory=self.pin_memory)

    def __iter__(self):
        if self.threads <= 0:
            for idx in self.epoch_sampler:
                yield self._read(idx)
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="s12ls-loader")
        from collections import deque

        it = iter(self.epoch_sampler)
        pending: deque = deque()
        for idx in it:
            pending.append(self._pool.submit(self._read, idx))
            if len(pending) >= self.prefetch:
                break
        while pending:
            fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(self._pool.submit(self._read, nxt))
            yield fut.result()

    def __del__(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def make_loader(
    dataset: PatchDataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    drop_last: bool = False,
    prefetch_factor: int = 2,
    backend: str = "auto",
    num_replicas: int = 1,
    rank: int = 0,
    shard: str = "samples",
):
    """A loader of whole batches of a ``raw=True`` dataset (normalisation then runs on the device).

    ``backend="threads"`` (default for a cached dataset): :class:`ThreadedBatchLoader` with ``num_workers``
    reading threads. ``"processes"`` (default without a cache, since NetCDF/HDF5 is not thread-safe): a
    :class:`torch.utils.data.DataLoader` with ``num_workers`` worker processes started by ``forkserver``
    (no inherited file handles), each fetching one batch per call. ``pin_memory`` (CUDA) makes host→GPU
    copies asynchronous. Either way ``loader.epoch_sampler.set_epoch(e)`` fixes the shuffle of epoch ``e``.

    ``num_replicas > 1`` (DistributedDataParallel): this process (``rank``) reads its share only, through
    a :class:`ShardedBatchSampler` (``shard="samples"``: ``batch_size`` per process, every global batch
    split across the processes; ``"batches"``: whole batches dealt out in turn, for evaluation).
    """
    if not dataset.raw:
        raise ValueError("make_loader needs a dataset built with raw=True (normalisation runs on the device)")
    if backend == "auto":
        backend = "threads" if dataset.cache_dirs is not None else "processes"
    schema.check_choice("backend", backend, ("auto", "threads", "processes"))
    if backend == "threads" and dataset.cache_dirs is None:
        raise ValueError("the threads backend reads the cache; use backend='processes' with cache=False")
    pin_memory = bool(pin_memory) and torch.cuda.is_available()
    sampler: EpochBatchSampler | ShardedBatchSampler
    if num_replicas > 1:
        sampler = ShardedBatchSampler(
            len(dataset),
            batch_size,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            shard=shard,
        )
    else:
        sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    if backend == "threads":
        # enough batches in flight to keep every thread busy, few enough to bound the (pinned) memory
        return ThreadedBatchLoader(dataset, sampler, num_workers, pin_memory, num_workers + prefetch_factor)
    kw = {}
    if num_workers > 0:
        kw = {"prefetch_factor": prefetch_factor, "persistent_workers": True}
        import multiprocessing as mp

        # forkserver: workers start clean (no inherited NetCDF/HDF5 state); memory maps open lazily there
        if "forkserver" in mp.get_all_start_methods():
            kw["multiprocessing_context"] = "forkserver"
    loader = torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, **kw
    )
    loader.epoch_sampler = sampler  # type: ignore[attr-defined]
    return loader


def unpack_validity(packed: np.ndarray) -> np.ndarray:
    """Validity bits as stored in ``valid.npy`` / ``comp_valid.npy`` → bool ``(…, W)``."""
    return np.unpackbits(np.asarray(packed), axis=-1).astype(bool)
