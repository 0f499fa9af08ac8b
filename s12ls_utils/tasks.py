"""Task folders: presets, reading and writing them, normalisation statistics.

Sen12Landslides publishes two tasks, ``S12LS-LD`` (landslide detection) and ``S12LS-AD`` (anomaly
detection). Each is a folder of JSON files (layout in ``book/04-split-creation.ipynb`` and ``data/reference/README.md``) that says which patches are used for
training, validation and testing and how the inputs are normalised. This module reads them, recreates them
exactly and makes new ones; the selection and the split methods themselves are :mod:`s12ls_utils.splits`.

1. **Presets** (:class:`TaskConfig`, :func:`load_config`): the settings of a task. The presets named after
   the published tasks select exactly what the published ``config.json`` files say; this package's
   variants carry their own names (``S12LS-LD-blocked`` and ``S12LS-AD-blocked``, the published
   selections with a balanced, leak-free split of the real tile lattice; :data:`PRESETS`).
2. **Normalisation statistics** (:func:`norm_stats`): per feature variable, over the *train* files only,
   clipped (S1 −50…10 dB, S2 0…10000, DEM 0…8800), NaN-aware, in one pass: each file's moments are
   computed in a worker (the file is opened there; local processes, threads or a Dask cluster, see
   :mod:`s12ls_utils.parallel`) and the moments are merged with Chan's parallel formula, in file order,
   so the result depends neither on the number of workers nor on the scheduler.
3. **Write and read** (:func:`write_task`, :func:`load_task`): the task folder is written into a
   temporary folder next to it and renamed into place, so a task folder is either complete or absent;
   the JSON is deterministic (sorted keys, no timestamps), so the same seed gives byte-identical files.
   :func:`load_task` reads this layout and the older published one (``data_paths.json`` and
   ``norm_data.json``); :func:`check_files` says before any work whether a task's files are there.

Sentinel-1 statistics are computed **in dB** by default (the linear backscatter of the files is converted
first, non-positive values become NaN, then clipped to −50…10 dB, the range the reference clips to).
The reference applies that clip to the stored, linear values (where it does almost nothing), so its
published S1 statistics are in linear units (means ≈ 0.037 / 0.157). ``s1_unit: linear`` reproduces that
unit; the unit used is written to ``config.json`` and exposed as :attr:`Task.units`.

Example
-------
>>> from s12ls_utils import tasks
>>> path = tasks.write_task("data/sample", "data/sample/tasks", "S12LS-LD")  # doctest: +SKIP
>>> task = tasks.load_task(path)  # doctest: +SKIP
>>> task.splits["s2"]["train"][0]["path"], task.norm["s2"]["mean"]["B04"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.resources
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__, schema
from .parallel import NETCDF_LOCK, Failure, FilesFailed, check_scheduler, check_workers, map_files
from .splits import METHODS, SPLITS, SplitResult, make_splits

log = logging.getLogger(__name__)

#: Shipped task presets (``s12ls_utils/tasks/<name>.yaml``): the two published tasks, then ours.
PRESETS: tuple[str, ...] = ("S12LS-LD", "S12LS-AD", "S12LS-LD-blocked", "S12LS-AD-blocked")
#: Channel order of the old published ``norm_data.json`` lists: the reference reads every data variable
#: except MASK, SCL and spatial_ref in file order, and S1 files store VH before VV (``book/appendix-data.md``).
OLD_FORMAT_CHANNELS: dict[str, tuple[str, ...]] = {
    "s2": (*schema.S2_BANDS, "DEM"),
    "s1asc": ("VH", "VV", "DEM"),
    "s1dsc": ("VH", "VV", "DEM"),
}
#: Version of the task folder layout written by :func:`write_task` (recorded in ``config.json``).
TASK_FORMAT = "s12ls-task/1"
#: Key of ``config.json`` under which :func:`write_norm` records the data folder: ``{"path": absolute,
#: "relative_to_task": from the task folder}`` (:func:`load_task` tries the relative path first).
DATA_DIR_KEY = "data_dir"

#: Keys of the reference pipeline's configuration that describe where and how it ran, not what it
#: selects; accepted in a config file and ignored (``clip_data`` is honoured).
_REFERENCE_ONLY_KEYS = frozenset(
    {"output_dir", "input_dir", "base_dir", "n_workers", "unify_test", "export_geodataframe"}
)
#: Keys :func:`write_task` adds to ``config.json`` besides the settings (ignored when read back).
_RECORD_KEYS = frozenset(
    {"package_version", "format", "norm", DATA_DIR_KEY, "missing_files", "blocked", "released_from"}
)
#: Keys of earlier versions that no longer mean anything (``distance_m``: the removed spatial method's).
_IGNORED_KEYS = _REFERENCE_ONLY_KEYS | _RECORD_KEYS | {"distance_m"}


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskConfig:
    """The settings of one task: filters, split sizes, seed, leakage control, statistics unit.

    The filter and split keys are those of the reference pipeline (``satellites`` … ``seed``,
    ``annotated_ratio``, ``clip_data``); ``method``, ``exclude_low_quality``, ``block_share``,
    ``test_regions``, ``balance`` and ``s1_unit`` are this package's. ``method`` is the split algorithm:
    ``"reference"`` (the published one, :func:`~s12ls_utils.splits.reference_split`, geography ignored)
    or ``"blocked"`` (:func:`~s12ls_utils.splits.blocked_split`: spatial blocks of the real tile lattice
    with a one-tile buffer; ``block_share`` sets the block size, ``balance`` the local search that
    balances the splits after the buffer, and
    ``test_regions`` makes it a region hold-out: those regions are the test set). The grouping split of
    earlier versions (``method: spatial``, the ``S12LS-*-strict`` presets) is gone: on the real lattice its
    groups percolate and diagonal neighbours leak; its ``distance_m`` key is accepted and ignored.
    Build one with :func:`load_config` (preset name, YAML or JSON file) or directly.
    """

    name: str = "custom"
    description: str = ""
    satellites: tuple[str, ...] = schema.SENSORS
    reference_sat: str = "s2"
    include_patterns: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    annotated_only: bool = False
    non_annotated_only: bool = False
    annotated_ratio: float | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    min_annotated_pixel: int | None = None
    test_size: float = 0.2
    val_size: float = 0.2
    seed: int = 42
    method: str = "blocked"
    exclude_low_quality: bool = False
    block_share: float = 0.1
    test_regions: tuple[str, ...] = ()
    balance: bool = True
    s1_unit: str = "dB"
    clip_data: bool = True

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict:
        """Plain JSON-able settings (lists instead of tuples)."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    def replace(self, **changes) -> TaskConfig:
        """A copy with some settings changed (validated)."""
        unknown = sorted(set(changes) - _FIELDS)
        if unknown:
            raise ValueError(_unknown_message(unknown, "replace()"))
        return dataclasses.replace(self, **_coerce(changes, "replace()"))


_FIELDS = frozenset(f.name for f in dataclasses.fields(TaskConfig))


def _unknown_message(unknown: Sequence[str], source: str) -> str:
    return (
        f"unknown key(s) in task config {source}: {', '.join(repr(k) for k in unknown)}; "
        f"known keys: {', '.join(sorted(_FIELDS))}"
    )


def _coerce(values: Mapping, source: str) -> dict:
    """Check the types of raw config values and convert lists to tuples."""
    out = {}
    for key, v in values.items():
        where = f"{key!r} in task config {source}"
        if key in ("satellites", "include_patterns", "exclude_patterns", "test_regions"):
            if v is None:
                v = []
            if not isinstance(v, list | tuple) or not all(isinstance(s, str) for s in v):
                raise ValueError(f"{where} must be a list of strings, not {v!r}")
            v = tuple(v)
        elif key in ("annotated_only", "non_annotated_only", "exclude_low_quality", "clip_data", "balance"):
            if not isinstance(v, bool):
                raise ValueError(f"{where} must be true or false, not {v!r}")
        elif key in ("annotated_ratio", "min_confidence", "max_confidence"):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise ValueError(f"{where} must be a number or null, not {v!r}")
            v = None if v is None else float(v)
        elif key in ("test_size", "val_size", "block_share"):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"{where} must be a number, not {v!r}")
            v = float(v)
        elif key in ("seed", "min_annotated_pixel"):
            if key == "min_annotated_pixel" and v is None:
                pass
            elif isinstance(v, bool) or not isinstance(v, int | float) or float(v) != int(v):
                raise ValueError(f"{where} must be an integer, not {v!r}")
            else:
                v = int(v)
        elif key in ("name", "description", "reference_sat", "s1_unit", "method"):
            if not isinstance(v, str):
                raise ValueError(f"{where} must be a string, not {v!r}")
        out[key] = v
    return out


def _validate(c: TaskConfig) -> None:
    if not c.satellites:
        raise ValueError("task config: 'satellites' must name at least one sensor")
    for s in c.satellites:
        schema.check_choice("task config: each sensor of 'satellites'", s, schema.SENSORS)
    if len(set(c.satellites)) != len(c.satellites):
        raise ValueError(f"task config: 'satellites' lists a sensor twice: {list(c.satellites)}")
    if c.reference_sat not in c.satellites:
        raise ValueError(
            f"task config: 'reference_sat' {c.reference_sat!r} is not one of 'satellites' {list(c.satellites)}"
        )
    if c.annotated_only and c.non_annotated_only:
        raise ValueError("task config: 'annotated_only' and 'non_annotated_only' cannot both be true")
    if c.annotated_ratio is not None and not 0.0 <= c.annotated_ratio <= 1.0:
        raise ValueError(f"task config: 'annotated_ratio' must be in [0, 1], not {c.annotated_ratio}")
    for key in ("min_confidence", "max_confidence"):
        v = getattr(c, key)
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError(f"task config: {key!r} must be in [0, 1], not {v}")
    if c.min_confidence is not None and c.max_confidence is not None and c.min_confidence > c.max_confidence:
        raise ValueError(
            f"task config: 'min_confidence' ({c.min_confidence}) is above 'max_confidence' ({c.max_confidence})"
        )
    if c.min_annotated_pixel is not None and c.min_annotated_pixel < 0:
        raise ValueError(f"task config: 'min_annotated_pixel' must be >= 0, not {c.min_annotated_pixel}")
    if not 0.0 < c.test_size < 1.0:
        raise ValueError(f"task config: 'test_size' must be between 0 and 1, not {c.test_size}")
    if not 0.0 <= c.val_size < 1.0:
        raise ValueError(f"task config: 'val_size' must be in [0, 1), not {c.val_size}")
    if not 0.0 < c.block_share <= 1.0:
        raise ValueError(f"task config: 'block_share' must be in (0, 1], not {c.block_share}")
    if c.test_regions and c.method != "blocked":
        raise ValueError("task config: 'test_regions' (a region hold-out) needs method: blocked")
    if c.method == "spatial":
        raise ValueError(
            "task config: 'method: spatial' was removed (its groups percolate on the real tile lattice and "
            "diagonal neighbours leak); use 'method: blocked'"
        )
    schema.check_choice("task config: 'method'", c.method, METHODS)
    schema.check_choice("task config: 's1_unit'", c.s1_unit, ("dB", "linear"))
    if not c.name or "/" in c.name or c.name.startswith("."):
        raise ValueError(f"task config: 'name' {c.name!r} cannot be used as a folder name")


def _flatten(raw: Mapping, source: str) -> dict:
    """Our flat layout, or the reference's nested one (``split_settings`` → ``filter_criteria``)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"task config {source} must be a mapping of settings, not {type(raw).__name__}")
    raw = dict(raw)
    if "split_settings" in raw and isinstance(raw["split_settings"], Mapping):
        rest = {k: v for k, v in raw.items() if k != "split_settings"}
        raw = {**{k: v for k, v in rest.items() if k == "name"}, **dict(raw["split_settings"])}
    if "filter_criteria" in raw:
        crit = raw.pop("filter_criteria")
        if not isinstance(crit, Mapping):
            raise ValueError(f"'filter_criteria' in task config {source} must be a mapping")
        clash = sorted(set(crit) & set(raw))
        if clash:
            raise ValueError(f"task config {source}: {clash} given both in and outside 'filter_criteria'")
        raw.update(crit)
    if "spatial" in raw:  # written by earlier versions of this package
        legacy = raw.pop("spatial")
        if not isinstance(legacy, bool):
            raise ValueError(f"'spatial' in task config {source} must be true or false, not {legacy!r}")
        raw.setdefault("method", "spatial" if legacy else "reference")
    return {k: v for k, v in raw.items() if k not in _IGNORED_KEYS}


def _preset_text(name: str) -> str:
    return importlib.resources.files("s12ls_utils").joinpath("tasks", f"{name}.yaml").read_text("utf-8")


def load_config(name_or_path: str | os.PathLike | TaskConfig | Mapping, **overrides) -> TaskConfig:
    """A :class:`TaskConfig` from a preset name, a YAML/JSON file, a task folder or a mapping.

    ``"S12LS-LD"`` / ``"S12LS-AD"`` read the presets shipped in ``s12ls_utils/tasks/``. A path may be a
    ``.yaml``/``.yml``/``.json`` file in this package's flat layout or the reference pipeline's nested one
    (``split_settings`` / ``filter_criteria``; its bookkeeping keys ``output_dir``, ``n_workers`` … are
    ignored), or a task folder written by :func:`write_task` (its ``config.json``). ``overrides`` change
    single settings. Unknown keys raise a ValueError naming them; a config from a file without ``name``
    is named after the file.
    """
    if isinstance(name_or_path, TaskConfig):
        return name_or_path.replace(**overrides) if overrides else name_or_path
    if isinstance(name_or_path, Mapping):
        raw, source, default_name = dict(name_or_path), "(mapping)", "custom"
    else:
        text_name = str(name_or_path)
        preset = {p.lower(): p for p in PRESETS}.get(text_name.lower())
        path = Path(name_or_path)
        if preset is not None and not path.exists():
            import yaml

            raw, source, default_name = yaml.safe_load(_preset_text(preset)), f"preset {preset}", preset
        else:
            if path.is_dir():
                path = path / "config.json"
            if not path.is_file():
                raise FileNotFoundError(
                    f"task config {text_name!r} is neither a preset ({', '.join(PRESETS)}) nor a file"
                )
            source, default_name = str(path), (path.parent.name if path.name == "config.json" else path.stem)
            text = path.read_text("utf-8")
            if path.suffix.lower() == ".json":
                try:
                    raw = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"task config {path} is not valid JSON ({exc})") from exc
            else:
                import yaml

                try:
                    raw = yaml.safe_load(text)
                except yaml.YAMLError as exc:
                    raise ValueError(f"task config {path} is not valid YAML ({exc})") from exc
    flat = _flatten(raw or {}, source)
    flat.update(overrides)
    unknown = sorted(set(flat) - _FIELDS)
    if unknown:
        raise ValueError(_unknown_message(unknown, source))
    flat.setdefault("name", default_name)
    return TaskConfig(**_coerce(flat, source))


# --------------------------------------------------------------------------------------------------
# Normalisation statistics
# --------------------------------------------------------------------------------------------------
#: Per-file moments of one variable: (count of finite values, mean, sum of squared deviations).
Moments = tuple[int, float, float]


def _feature_names(present: Iterable[str], sensor: str) -> list[str]:
    """Feature variables of a file: all but MASK/SCL/spatial_ref, in the documented order first."""
    present = [v for v in present if v not in schema.NON_FEATURES]
    known = [v for v in schema.FEATURES[sensor] if v in present]
    return known + sorted(v for v in present if v not in known)


#: Variable attributes that decide how raw values are read (fill values, packing).
_VAR_ATTRS = ("_FillValue", "missing_value", "scale_factor", "add_offset")


def _int_moments(a: np.ndarray) -> Moments:
    """Exact moments of integer values: integer sums, one correctly rounded division each.

    Non-negative 16-bit values (S2 reflectance and DEM after clipping) are counted with a histogram
    (``np.bincount``), which is several times faster than summing them.
    """
    n = int(a.size)
    if n == 0:
        return (0, 0.0, 0.0)
    flat = a.ravel()
    if a.dtype.itemsize <= 2 and int(flat.min()) >= 0:
        counts = np.bincount(flat).astype(np.int64)
        v = np.arange(counts.size, dtype=np.int64)
        s = int(np.dot(counts, v))
        ss = int(np.dot(counts, v * v))
    else:
        a64 = flat.astype(np.int64)
        s = int(a64.sum())
        ss = int(np.dot(a64, a64))
    return (n, s / n, (n * ss - s * s) / n)


def _float_moments(a: np.ndarray) -> Moments:
    """Moments of the finite values of a float array (mean, then squared deviations in float64).

    Both sums are numpy's pairwise ``add.reduce``, never a BLAS dot product: BLAS splits a long dot
    product over as many threads as the process allows (the caller, a pool worker and a Dask worker
    differ), which changes its last bits; the statistics must not depend on where a file was read.
    """
    finite = np.isfinite(a)
    v = a.ravel() if finite.all() else a[finite]
    n = int(v.size)
    if n == 0:
        return (0, 0.0, 0.0)
    mean = float(np.add.reduce(v, dtype=np.float64)) / n
    dev = v.astype(np.float64)
    dev -= mean
    np.square(dev, out=dev)
    return (n, mean, float(np.add.reduce(dev)))


def file_moments(path: str | Path, sensor: str, s1_unit: str = "dB", clip: bool = True) -> dict[str, Moments]:
    """Per feature variable of one file: (finite count, mean, sum of squared deviations about the mean).

    S1 backscatter is converted to ``s1_unit`` first (the file's unit is detected; non-positive linear
    values become NaN in dB); raw-release S2 bands lose the +1000 DN offset of dates from 2022-01-25
    (:func:`s12ls_utils.io.harmonize_s2`, release from :func:`s12ls_utils.io.file_release`), so the
    statistics of both releases describe the same reflectances; then every variable is clipped to its range (DEM 0…8800, S2 0…10000, S1
    −50…10 dB or the same range in linear units). NaN and fill values are left out. Integer variables
    (S2 bands, DEM) are summed exactly in integers. Opens the file with netCDF4, reads the feature
    variables (holding :data:`~s12ls_utils.parallel.NETCDF_LOCK`), closes it, then computes.
    """
    from .io import decode_times, detect_s1_unit, file_release, fill_mask, harmonize_s2, open_nc

    s1 = schema.sensor_family(sensor) == "s1"
    release = "unknown" if s1 else file_release(path)
    raw: dict[str, tuple[np.ndarray, dict]] = {}
    with NETCDF_LOCK, open_nc(path) as ds:  # read under the lock, compute outside it
        ds.set_auto_maskandscale(False)
        data_vars = [n for n, v in ds.variables.items() if n not in ds.dimensions and len(v.dimensions) >= 2]
        times = decode_times(ds.variables["time"]) if release == "raw" else None
        for name in _feature_names(data_vars, sensor):
            var = ds.variables[name]
            attrs = {k: var.getncattr(k) for k in _VAR_ATTRS if k in var.ncattrs()}
            a = np.asarray(var[:])
            if times is not None and name in schema.S2_OFFSET_BANDS:
                a = harmonize_s2(a, times, release, time_axis=var.dimensions.index("time"))
            raw[name] = (a, attrs)
    out: dict[str, Moments] = {}
    for name, (a, attrs) in raw.items():
        bad = fill_mask(attrs, a)
        scaled = "scale_factor" in attrs or "add_offset" in attrs
        lo, hi = schema.clip_range(sensor, name, s1_unit)
        if np.issubdtype(a.dtype, np.integer) and a.dtype.itemsize <= 2 and not scaled:
            if bad is not None:
                a = a[~bad]
            if clip:
                lo_i, hi_i = math.ceil(lo), math.floor(hi)
                info = np.iinfo(a.dtype)
                a = np.clip(a if info.min <= lo_i and hi_i <= info.max else a.astype(np.int32), lo_i, hi_i)
            out[name] = _int_moments(a)
            continue
        a = a.astype(np.float64 if scaled or a.dtype.itemsize > 4 else np.float32)
        if scaled:
            a = a * float(attrs["scale_factor"]) if "scale_factor" in attrs else a
            a = a + float(attrs["add_offset"]) if "add_offset" in attrs else a
        if bad is not None:
            a[bad] = np.nan
        if s1 and name in schema.S1_BANDS:
            native = detect_s1_unit(a)
            if native != s1_unit:
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    if s1_unit == "dB":  # non-positive linear values have no dB value: NaN
                        db = np.full(a.shape, np.nan, dtype=a.dtype)
                        np.log10(a, out=db, where=a > 0)
                        db *= 10.0
                        a = db
                    else:
                        a = 10.0 ** (a / 10.0)
        if clip:
            np.clip(a, lo, hi, out=a)
        out[name] = _float_moments(a)
    return out


def merge_moments(parts: Iterable[Mapping[str, Moments]]) -> dict[str, Moments]:
    """Chan et al.'s pairwise merge of per-file moments, in the given order (exact, numerically stable)."""
    acc: dict[str, list[float]] = {}
    for part in parts:
        for name, (nb, mb, m2b) in part.items():
            if name not in acc:
                acc[name] = [0, 0.0, 0.0]
            na, ma, m2a = acc[name]
            if nb == 0:
                continue
            n = na + nb
            delta = mb - ma
            acc[name] = [n, ma + delta * nb / n, m2a + m2b + delta * delta * na * nb / n]
    return {k: (int(v[0]), float(v[1]), float(v[2])) for k, v in acc.items()}


class NormStats(dict):
    """``{"mean": {var: x}, "std": {var: x}}`` (a plain dict for JSON and comparisons), with the files that
    could not be read, and so are not in the figures, attached as ``failures``
    (:class:`~s12ls_utils.parallel.Failure`)."""

    failures: list[Failure]

    def __init__(self, stats: Mapping, failures: Sequence[Failure] = ()) -> None:
        super().__init__(stats)
        self.failures = list(failures)


def _file_moments(job: tuple[str, str], *, root: str, s1_unit: str, clip: bool) -> dict[str, Moments]:
    """Task of one ``(rel path, sensor)`` job: :func:`file_moments` of the file (opened in the worker)."""
    rel, sensor = job
    return file_moments(Path(root) / rel, sensor, s1_unit, clip)


#: Per-file moments already computed in this process, keyed by (file, size, mtime, sensor, unit, clip):
#: writing several tasks of one folder (chapter 04 writes six) reads each file once. A file that changes
#: gets a new key.
_MOMENTS_MEMO: dict[tuple, dict[str, Moments]] = {}
_MOMENTS_MEMO_MAX = 200_000


def _moments_key(path: Path, sensor: str, s1_unit: str, clip: bool) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None  # map_files reports it
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, sensor, s1_unit, clip)


def _all_moments(
    jobs: Sequence[tuple[str, str]],
    data_dir: str | Path,
    *,
    s1_unit: str,
    clip: bool,
    workers: int | None,
    scheduler="processes",
    progress: bool = False,
) -> tuple[dict[str, dict[str, Moments]], list[Failure]]:
    """``{rel path: moments}`` of every readable file and the failures (each with a warning).

    A file that cannot be read is left out of the statistics, not fatal: the figures of thousands of
    train files barely move without it, and the task's split lists still name it, so the training cache
    (which cannot do without it) fails on it with the reason.
    """
    jobs = list(dict.fromkeys(jobs))
    root = Path(data_dir)
    keys = {job: _moments_key(root / job[0], job[1], s1_unit, clip) for job in jobs}
    todo = [job for job in jobs if keys[job] is None or keys[job] not in _MOMENTS_MEMO]
    fn = functools.partial(_file_moments, root=str(root), s1_unit=s1_unit, clip=clip)
    res = map_files(
        fn, todo, scheduler=scheduler, workers=workers, desc="statistics", progress=progress, chunk_size=32
    )
    for job, mom in zip(todo, res.results, strict=True):
        if mom is not None and keys[job] is not None:
            if len(_MOMENTS_MEMO) >= _MOMENTS_MEMO_MAX:
                _MOMENTS_MEMO.clear()
            _MOMENTS_MEMO[keys[job]] = mom
    read = dict(zip(todo, res.results, strict=True))
    failures = [dataclasses.replace(f, item=f.item[0]) for f in res.failures]  # name the file only
    if failures:
        log.warning(
            "statistics: %d of %d file(s) could not be read and are left out:\n%s",
            len(failures),
            len(jobs),
            "\n".join(f"  {f}" for f in failures),
        )
    moments = {}
    for job in jobs:
        mom = read[job] if job in read else _MOMENTS_MEMO[keys[job]]
        if mom is not None:
            moments[job[0]] = mom
    return moments, failures


def _train_stats(
    moments: Mapping, failures: Sequence[Failure], paths: list[str], sensor: str, what: str
) -> dict:
    """The statistics of the readable files among ``paths``; :class:`FilesFailed` naming ``what`` and the
    failures among ``paths`` when none is readable."""
    readable = [p for p in paths if p in moments]
    if not readable:
        raise FilesFailed(what, [f for f in failures if f.item in set(paths)], len(paths))
    return _finish(merge_moments(moments[p] for p in readable), sensor)


def _finish(mom: Mapping[str, Moments], sensor: str) -> dict[str, dict[str, float]]:
    names = _feature_names(mom.keys(), sensor)
    mean = {v: float(mom[v][1]) if mom[v][0] else float("nan") for v in names}
    std = {v: math.sqrt(mom[v][2] / mom[v][0]) if mom[v][0] else float("nan") for v in names}
    return {"mean": mean, "std": std}


def norm_stats(
    paths: Sequence[str | Path],
    data_dir: str | Path,
    sensor: str,
    *,
    workers: int | None = None,
    scheduler="processes",
    s1_unit: str = "dB",
    clip: bool = True,
    progress: bool = False,
) -> NormStats:
    """Mean and (population) standard deviation per feature variable over ``paths`` (relative to
    ``data_dir``), in one pass over the files.

    Each file's exact moments are computed where ``scheduler`` runs it
    (:func:`~s12ls_utils.parallel.map_files`: local worker processes by default, threads, in this process,
    or a Dask cluster; see :func:`file_moments` for the unit conversion and clipping) and merged with :func:`merge_moments` in
    the order of ``paths``, so the figures depend neither on ``workers`` nor on ``scheduler``.

    Returns ``{"mean": {var: x}, "std": {var: x}}`` as a :class:`NormStats` dict; files that could not be
    read are left out with a warning and listed in its ``failures``.
    """
    schema.check_sensor(sensor)
    rels = [str(p) for p in paths]
    if not rels:
        raise ValueError(f"no files to compute {sensor} statistics from")
    mom, failures = _all_moments(
        [(r, sensor) for r in rels],
        data_dir,
        s1_unit=s1_unit,
        clip=clip,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
    )
    return NormStats(_finish(merge_moments(mom[r] for r in rels if r in mom), sensor), failures)


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _json_bytes(obj, compact: bool = False) -> bytes:
    """Deterministic JSON: sorted keys, two-space indent (or none: ``compact``), shortest float repr, no NaN."""
    if compact:
        text = json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False, ensure_ascii=False)
    else:
        text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)
    return (text + "\n").encode()


def _write_json(path: Path, obj, compact: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_json_bytes(obj, compact))


def _entries(df: pd.DataFrame, sensors: Sequence[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for row in df.sort_values("key", kind="stable").itertuples(index=False):
        entry = {"id": str(row.key), "pixel_annotated": int(row.n_positive), "inventory": str(row.region)}
        for s in sensors:
            entry[s] = str(getattr(row, s))
        out[str(row.split)].append(entry)
    return out


def _geojson(df: pd.DataFrame) -> dict:
    feats = []
    for row in df.sort_values("key", kind="stable").itertuples(index=False):
        lon, lat = round(float(row.lon), 7), round(float(row.lat), 7)
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "patch_id": str(row.key),
                    "split": str(row.split),
                    "inventory": str(row.region),
                    "annotated_pixels": int(row.n_positive),
                    "lon": lon,
                    "lat": lat,
                    "crs_original": f"EPSG:{int(row.epsg)}",
                },
            }
        )
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}  # as published: lon/lat
    return {"type": "FeatureCollection", "crs": crs, "features": feats}


def _train_paths(df: pd.DataFrame, col: str) -> list[str]:
    return df.loc[df["split"] == "train"].sort_values("key", kind="stable")[col].astype(str).tolist()


def _train_jobs(result: SplitResult) -> list[tuple[str, str]]:
    """(path, sensor) of every train file the statistics of a task read (per sensor and aligned)."""
    jobs = []
    for sensor, df in result.frames.items():
        jobs += [(p, sensor) for p in _train_paths(df, "path")]
    if result.aligned is not None:
        for sensor in result.config.satellites:
            jobs += [(p, sensor) for p in _train_paths(result.aligned, sensor)]
    return jobs


def _task_files(
    result: SplitResult,
    moments: Mapping[str, Mapping[str, Moments]] | None,
    failures: Sequence[Failure] = (),
    inventory: str = "region",
) -> dict[str, object]:
    """Every file of the task folder: relative name → JSON object (in writing order).

    Statistics are merged over the readable train files; unreadable ones are listed in ``config.json``
    (``norm.unreadable_files``). A sensor without a single readable train file has no statistics: that
    raises :class:`~s12ls_utils.parallel.FilesFailed`. With ``moments=None`` (a task released from
    metadata alone) no ``norm*.json`` is written and ``config.json`` says so. ``inventory`` is the column
    the entries' ``inventory`` comes from: ``"region"`` (full name) or ``"token"`` (the published
    convention, the first ``_`` token of the file name).
    """
    cfg = result.config
    files: dict[str, object] = {}

    def stats(train: list[str], sensor: str, scope: str) -> dict[str, dict[str, float]]:
        return _train_stats(moments, failures, train, sensor, f"{scope} train statistics of task {cfg.name}")

    def named(df: pd.DataFrame) -> pd.DataFrame:
        d = df.copy()
        if inventory == "token":
            d["region"] = d["key"].astype(str).str.split("_").str[0]
        return d

    for sensor, df in result.frames.items():
        d = named(df)
        d[sensor] = d["path"].astype(str)
        files[f"{sensor}/splits.json"] = _entries(d, [sensor])
        train = _train_paths(d, sensor)
        if train and moments is not None:
            files[f"{sensor}/norm.json"] = {sensor: stats(train, sensor, sensor)}
        files[f"{sensor}/patch_locations.geojson"] = _geojson(d)
    if result.aligned is not None:
        a = named(result.aligned)
        files["splits_aligned.json"] = _entries(a, cfg.satellites)
        if moments is not None:
            norm = {}
            for sensor in cfg.satellites:
                train = _train_paths(a, sensor)
                if train:
                    norm[sensor] = stats(train, sensor, f"aligned {sensor}")
            files["norm_aligned.json"] = norm
        files["patch_locations_aligned.geojson"] = _geojson(a)
    files["config.json"] = {
        **cfg.to_dict(),
        "format": TASK_FORMAT,
        "package_version": __version__,
        "norm": _norm_record(cfg.s1_unit, cfg.clip_data, failures) if moments is not None else None,
    }
    if result.blocked is not None:
        b = result.blocked
        files["config.json"]["blocked"] = {
            **b.params,
            "blocks": b.n_blocks,
            "locations_kept": len(b.split),
            "locations_dropped_by_buffer": {
                s: int(n) for s, n in b.dropped.value_counts().sort_index().items()
            },
            "locations_without_position": len(b.unlocated),
        }
    return files


def _norm_record(s1_unit: str, clip_data: bool, failures: Sequence[Failure] = ()) -> dict:
    """How the statistics of a task were computed (the ``norm`` block of ``config.json``)."""
    clip = {
        "s1": [*schema.clip_range("s1asc", "VV", s1_unit)],
        "s2": [*schema.CLIP_RANGES["s2"]],
        "DEM": [*schema.CLIP_RANGES["DEM"]],
    }
    out = {
        "split": "train",
        "s1_unit": s1_unit,
        "clip_ranges": clip if clip_data else None,
        "nan_aware": True,
        "std": "population (ddof=0)",
    }
    if failures:
        out["unreadable_files"] = [{"path": f.item, "reason": f.reason} for f in failures]
    return out


def write_norm(
    task_dir: str | Path,
    data_dir: str | Path | None = None,
    *,
    out_dir: str | Path | None = None,
    sensors: Sequence[str] | None = None,
    overwrite: bool = False,
    allow_missing: bool = False,
    workers: int | None = None,
    scheduler="processes",
    progress: bool = False,
) -> Path:
    """Add the normalisation statistics to a task folder released without them (``norm.json`` needs pixels).

    Reads the train files of ``sensors`` (default: all of the task's; the aligned split's statistics only
    when all its sensors are among them) from ``data_dir`` (default: the folder the task records, else
    guessed as :func:`load_task` does), computes the statistics as :func:`write_task` does (S1 unit and
    clipping from the task's ``config.json``; dB and clipping when it has none) and writes
    ``<sensor>/norm.json``, ``norm_aligned.json`` and ``config.json`` with its ``norm`` block and the data
    folder (:data:`DATA_DIR_KEY`), so that later commands need no ``--data``.

    The result is a copy of the task folder, ``<out_dir>/<folder name>`` (default ``<data_dir>/tasks``, where
    ``s12ls splits`` writes tasks too), written atomically; the released folder (e.g. the git-tracked
    ``data/reference/tasks/S12LS-LD-blocked``) stays as released. A task that already sits there is
    completed in place. A task that has statistics, or a copy that exists, is left alone unless
    ``overwrite``; a folder this package did not write is never replaced.

    Before any work, every train file must exist under the data folder (:func:`check_files`): else
    :class:`MissingFilesError` says how many are missing and where they probably are, and nothing is
    written. ``allow_missing=True`` computes the statistics from the files that exist and records the
    count in ``config.json`` (``missing_files``); a sensor without a single train file then has none.
    Returns the task folder written.
    """
    task = load_task(task_dir, data_dir=data_dir, warn_missing=False)
    data_root = task.require_data_dir("compute its statistics")
    source = Path(task.path).resolve()
    target = (Path(out_dir) if out_dir is not None else data_root / "tasks") / source.name
    in_place = target.resolve() == source
    sensors = list(task.sensors if sensors is None else dict.fromkeys(sensors))
    unknown = [s for s in sensors if s not in task.sensors]
    if unknown:
        raise ValueError(f"task {task.name} has no split for {unknown}; it has {task.sensors}")
    in_aligned = [s for s in schema.SENSORS if any(s in e for e in (task.aligned or {}).get("train", []))]
    with_aligned = bool(in_aligned) and set(in_aligned) <= set(sensors)
    checked = check_files(
        task, sensors, ("train",), scope="all" if with_aligned else "own", allow_missing=allow_missing
    )
    done = task if in_place else (load_task(target, warn_missing=False) if target.is_dir() else None)
    if done is not None and (done.norm or done.norm_aligned) and not overwrite:
        raise FileExistsError(
            f"task {target} already has statistics; pass --overwrite (overwrite=True) to recompute them"
        )
    if not in_place and target.exists() and not _written_here(target):
        raise FileExistsError(f"{target} exists and was not written by s12ls_utils; it is not replaced")
    cfg = task.config if isinstance(task.config, dict) else {}
    s1_unit = str(cfg.get("s1_unit", "dB"))
    clip = bool(cfg.get("clip_data", True))
    train = {s: [_rel_data_path(e[s], s) for e in checked.splits[s]["train"]] for s in sensors}
    aligned = (
        {s: [_rel_data_path(e[s], s) for e in checked.aligned["train"]] for s in in_aligned}
        if with_aligned
        else {}
    )
    jobs = [(p, s) for block in (train, aligned) for s, paths in block.items() for p in paths]
    moments, failures = _all_moments(
        jobs, data_root, s1_unit=s1_unit, clip=clip, workers=workers, scheduler=scheduler, progress=progress
    )

    def stats(paths: list[str], sensor: str, scope: str) -> dict[str, dict[str, float]]:
        return _train_stats(moments, failures, paths, sensor, f"{scope} train statistics of task {task.name}")

    files: dict[str, object] = {f"{s}/norm.json": {s: stats(p, s, s)} for s, p in train.items() if p}
    if aligned:
        files["norm_aligned.json"] = {s: stats(p, s, f"aligned {s}") for s, p in aligned.items() if p}
    config = dict(cfg) if cfg else {"name": task.name, "s1_unit": s1_unit, "clip_data": clip}
    config["norm"] = {**_norm_record(s1_unit, clip, failures), "sensors": sensors, "aligned": bool(aligned)}
    config[DATA_DIR_KEY] = {
        "path": str(data_root),
        "relative_to_task": os.path.relpath(data_root, target.resolve()),
    }
    config.pop("missing_files", None)
    if checked.file_check is not None and checked.file_check.n_missing:
        config["missing_files"] = checked.file_check.record()
    files["config.json"] = config
    if in_place:
        for rel, obj in files.items():
            _write_json(source / rel, obj)
        return source
    _clean_stale_temps(target.parent, target.name)
    with staged_folder(target, overwrite) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        for rel, obj in files.items():
            _write_json(tmp / rel, obj)
    log.info("task %s with statistics written to %s", task.name, target)
    return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_temps(out: Path, name: str) -> None:
    """Remove temporary folders of this task left by writers that died (their process is gone)."""
    for p in [*out.glob(f".{name}.tmp-*"), *out.glob(f".{name}.old-*")]:
        try:
            pid = int(p.name.split("-")[-2])
        except (ValueError, IndexError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _written_here(target: Path) -> bool:
    """Whether ``target`` is a task folder this package wrote (its ``config.json`` records our version).

    ``overwrite`` replaces only such folders: the published ``tasks/S12LS-LD`` / ``S12LS-AD`` that come
    with the download are the reference to compare with and must never be lost to a re-run.
    """
    try:
        return "package_version" in json.loads((target / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


@contextlib.contextmanager
def staged_folder(target: Path, overwrite: bool) -> Iterator[Path]:
    """A new folder ``.<name>.tmp-<pid>-…`` beside ``target`` for the block to fill; then it becomes ``target``
    in one rename, replacing an existing ``target`` only with ``overwrite`` (the previous folder comes back
    if the rename fails). On any failure the new folder goes and ``target`` is as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-{os.getpid()}-"))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        old: Path | None = None
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} appeared while writing; not replaced")
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-{os.getpid()}-"))
            os.rmdir(old)
            os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            if old is not None:  # put the previous folder back
                os.rename(old, target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_task(
    data_dir: str | Path | None,
    out_dir: str | Path,
    config: TaskConfig | str,
    method: str | None = None,
    overwrite: bool = False,
    *,
    catalog: pd.DataFrame | None = None,
    result: SplitResult | None = None,
    workers: int | None = None,
    scheduler="processes",
    progress: bool = False,
    stats: bool = True,
    inventory: str = "region",
    record: Mapping | None = None,
    compact: bool = False,
) -> Path:
    """Write the task folder ``<out_dir>/<config.name>/`` and return its path.

    Contents: per sensor ``splits.json``, ``norm.json`` (train files only) and
    ``patch_locations.geojson``; ``splits_aligned.json``, ``norm_aligned.json`` and
    ``patch_locations_aligned.geojson`` for the aligned locations; ``config.json`` (the resolved settings,
    how the statistics were computed and the package version). Paths are relative to ``data_dir``.

    Everything is written into a temporary folder inside ``out_dir`` that is renamed into place at the end,
    so the task folder is complete or absent (also when writing fails midway: the temporary folder is
    removed). An existing task folder is left untouched (FileExistsError) unless ``overwrite``. The files
    are deterministic: the same data, settings and seed give byte-identical files.

    ``catalog`` (default: :func:`build_catalog` of ``data_dir``) and ``result`` (default:
    :func:`~s12ls_utils.splits.make_splits`) may be passed to reuse them. ``scheduler`` and ``workers`` say where the files
    are read (:func:`~s12ls_utils.parallel.map_files`); the files written do not depend on them. Train
    files that cannot be read are left out of the statistics with a warning and listed in ``config.json``
    (``norm.unreadable_files``); only a sensor with no readable train file at all fails
    (:class:`~s12ls_utils.parallel.FilesFailed`).

    With ``stats=False`` no file is read and no ``norm*.json`` written (a task released from metadata,
    e.g. from :func:`s12ls_utils.reference.catalog`; ``data_dir`` may then be None): :func:`write_norm`
    adds the statistics later, where the data are. ``inventory="token"`` writes the published convention
    for the entries' ``inventory`` (the first ``_`` token of the file name); ``record`` adds keys to
    ``config.json`` (e.g. where the metadata came from); ``compact`` writes the JSON without indentation.
    """
    from .catalog import build_catalog

    check_scheduler(scheduler)
    check_workers(workers)
    config = load_config(config) if method is None else load_config(config, method=method)
    out = Path(out_dir)
    target = out / config.name
    if target.exists() and not overwrite:
        raise FileExistsError(f"task folder {target} exists; pass overwrite=True (--overwrite) to replace it")
    if target.exists() and not _written_here(target):
        raise FileExistsError(
            f"task folder {target} was not written by s12ls_utils (no package_version in its config.json): it "
            "may be the published task; write the new one elsewhere (out_dir / --out), it is not replaced"
        )
    if result is None:
        if catalog is None:
            catalog = build_catalog(
                data_dir, sensors=config.satellites, workers=workers, scheduler=scheduler, progress=progress
            )
        result = make_splits(catalog, config)
    elif result.config != config or result.method != config.method:
        raise ValueError("result was made with other settings than config/method")
    schema.check_choice("inventory", inventory, ("region", "token"))
    moments, failures = None, []
    if stats:
        if data_dir is None:
            raise ValueError("normalisation statistics need the data folder; pass data_dir or stats=False")
        moments, failures = _all_moments(
            _train_jobs(result),
            data_dir,
            s1_unit=config.s1_unit,
            clip=config.clip_data,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
        )
    files = _task_files(result, moments, failures, inventory=inventory)
    if record:
        files["config.json"].update(record)

    _clean_stale_temps(out, config.name)
    with staged_folder(target, overwrite) as tmp:
        for rel, obj in files.items():
            _write_json(tmp / rel, obj, compact and rel != "config.json")
    log.info("wrote task %s (%d files)", target, len(files))
    return target


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def _rel_data_path(p: str, sensor: str | None = None) -> str:
    """``data/final/s2/x.nc`` or ``s2/x.nc`` → ``s2/x.nc`` (path relative to the data root)."""
    parts = Path(str(p)).parts
    if len(parts) >= 2 and parts[-2] in schema.SENSORS:
        return f"{parts[-2]}/{parts[-1]}"
    name = Path(str(p)).name
    try:
        return f"{schema.parse_filename(name).sensor}/{name}"
    except ValueError:
        return f"{sensor}/{name}" if sensor else name


@dataclass
class Task:
    """A task folder read by :func:`load_task`.

    - ``splits[sensor][split]``: list of entries ``{"id", "path", "<sensor>", "pixel_annotated",
      "inventory"}``; ``path`` is relative to the data root (absolute with ``load_task(…, absolute=True)``).
      In the old format ``pixel_annotated`` is None and ``inventory`` comes from the file name.
    - ``norm[sensor]``: ``{"mean": {var: x}, "std": {var: x}}``; :meth:`channel_stats` gives them as arrays
      in the order of :data:`schema.FEATURES`.
    - ``aligned[split]`` / ``norm_aligned[sensor]``: the multi-modal split and statistics (None when absent).
    - ``units[sensor]``: unit of the VV/VH statistics (``"dB"`` or ``"linear"``; S2 reflectance ×10000).
    """

    path: Path
    name: str
    format: str
    splits: dict[str, dict[str, list[dict]]]
    norm: dict[str, dict[str, dict[str, float]]]
    aligned: dict[str, list[dict]] | None = None
    norm_aligned: dict[str, dict[str, dict[str, float]]] | None = None
    config: dict | None = None
    units: dict[str, str] = field(default_factory=dict)
    data_dir: Path | None = None
    #: what :func:`check_files` found when it made this task (its files that exist), else None
    file_check: FileCheck | None = None

    @property
    def sensors(self) -> list[str]:
        return [s for s in schema.SENSORS if s in self.splits]

    @property
    def missing(self) -> list[str]:
        """Statistics files a complete task would have and this one lacks (e.g. a released folder)."""
        gone = [f"{s}/norm.json" for s in self.sensors if s not in self.norm]
        if self.aligned is not None and self.norm_aligned is None:
            gone.append("norm_aligned.json")
        return gone

    def require_data_dir(self, purpose: str = "read its files") -> Path:
        """The data folder, or a ValueError that says how to give it (``--data`` / ``data_dir=``)."""
        if self.data_dir is None:
            raise ValueError(
                f"task {self.path} has no known data folder, so it cannot {purpose}: pass the folder that "
                "holds its <sensor>/ files with --data DIR (data_dir= in Python); `s12ls norm TASK_DIR --data "
                "DIR` records it in the task's config.json for later commands"
            )
        return Path(self.data_dir)

    def files(self, sensor: str, split: str = "train") -> list[Path]:
        """Absolute paths of a sensor's split (needs ``data_dir``)."""
        root = self.require_data_dir()
        return [root / e[sensor] for e in self.splits[sensor][split]]

    def channel_stats(self, sensor: str, aligned: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` float64 arrays over the channels of :data:`schema.FEATURES[sensor]`, in order
        (channels the task has no statistics for are NaN)."""
        src = self.norm_aligned if aligned else self.norm
        if not src or sensor not in src:
            raise KeyError(
                f"task {self.name} has no {'aligned ' if aligned else ''}statistics for {sensor} "
                f"(missing: {', '.join(self.missing) or 'an entry for ' + sensor}): a task released from "
                f"metadata has none, since they need the pixels; add them with `s12ls norm {self.path} --data "
                "DATA_DIR` (splits.write_norm)"
            )
        names = schema.FEATURES[sensor]
        block = src[sensor]
        mean = np.array([block["mean"].get(n, np.nan) for n in names], dtype="float64")
        std = np.array([block["std"].get(n, np.nan) for n in names], dtype="float64")
        return mean, std

    def counts(self) -> pd.DataFrame:
        """Entries per scope (sensor or ``aligned``) and split."""
        rows = []
        scopes = dict(self.splits)
        if self.aligned is not None:
            scopes["aligned"] = self.aligned
        for scope, d in scopes.items():
            row = {"scope": scope, **{s: len(d.get(s, [])) for s in SPLITS}}
            row["total"] = sum(row[s] for s in SPLITS)
            rows.append(row)
        return pd.DataFrame(rows, columns=["scope", *SPLITS, "total"])


def _infer_unit(block: Mapping | None) -> str:
    if not block or "VV" not in block.get("mean", {}):
        return "linear"
    return "dB" if float(block["mean"]["VV"]) < 0 else "linear"


def _holds_sensors(folder: Path) -> bool:
    return any((folder / s).is_dir() for s in schema.SENSORS)


def _guess_data_dir(task_root: Path) -> Path | None:
    r = task_root.resolve()
    if r.parent.name == "tasks":
        guess = r.parent.parent
    elif r.name in ("harmonized", "raw") and r.parent.parent.name == "tasks":
        guess = r.parent.parent.parent / f"data_{r.name}"
    else:
        return None
    return guess if _holds_sensors(guess) else None


def _recorded_data_dir(task_root: Path, config: Mapping | None) -> Path | None:
    """The data folder :func:`write_norm` recorded in ``config.json``: first the path relative to the task
    folder (right when task and data moved together), then the absolute one (right when the task folder
    alone moved); each only when it holds a sensor folder."""
    rec = config.get(DATA_DIR_KEY) if isinstance(config, Mapping) else None
    if not isinstance(rec, Mapping):
        return None
    rel, absolute = rec.get("relative_to_task"), rec.get("path")
    for cand in (task_root / rel if rel else None, Path(absolute) if absolute else None):
        if cand is not None and _holds_sensors(cand):
            return cand.resolve()
    return None


def load_task(
    path: str | Path, data_dir: str | Path | None = None, absolute: bool = False, *, warn_missing: bool = True
) -> Task:
    """Read a task folder in the current layout (``splits.json``, ``norm.json`` …) or the older published
    one (``<sensor>/data_paths.json`` = ``{"train": [paths], …}`` and ``<sensor>/norm_data.json`` =
    ``{"mean": [...], "std": [...]}`` in the files' channel order, :data:`OLD_FORMAT_CHANNELS`: S1 is
    VH, VV, DEM).

    ``data_dir`` is the data root the paths are relative to. By default it is the folder that
    :func:`write_norm` recorded in the task's ``config.json`` (:data:`DATA_DIR_KEY`; relative to the task
    folder first, then absolute), else guessed from where the task sits: ``<data>/tasks/<TASK>`` (written
    by this package) → ``<data>``; the downloaded published folders ``<dest>/tasks/<TASK>/<release>`` →
    ``<dest>/data_<release>`` (the hub layout); a folder is kept only when it holds a sensor folder. With
    ``absolute`` the entries' ``path`` is absolute. Whether the files are there is not checked here
    (:func:`check_files` does, before the commands and functions that read them).

    A task without any normalisation statistics (a released folder) is read, with a warning that names
    the missing files (``warn_missing=False`` silences it); :attr:`Task.missing` lists them (also those of
    sensors ``s12ls norm --sensors`` left out). A task named like
    S12LS-AD whose patches are nearly all annotated gets a warning about the annotated-only
    ``tasks/S12LS-AD/harmonized`` of the upstream commit (:func:`ad_trap`).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"task folder {root} does not exist")
    config = json.loads((root / "config.json").read_text()) if (root / "config.json").is_file() else None
    if data_dir is None:
        data_dir = _recorded_data_dir(root, config) or _guess_data_dir(root)
    data_root = Path(data_dir).resolve() if data_dir is not None else None
    if absolute and data_root is None:
        raise ValueError(f"absolute paths need the data folder of task {root}; pass data_dir")

    def full(rel: str) -> str:
        return str(data_root / rel) if absolute and data_root is not None else rel

    splits_out: dict[str, dict[str, list[dict]]] = {}
    norm: dict[str, dict[str, dict[str, float]]] = {}
    kinds = set()
    for sensor in schema.SENSORS:
        folder = root / sensor
        if (folder / "splits.json").is_file():
            kinds.add("current")
            raw = json.loads((folder / "splits.json").read_text())
            splits_out[sensor] = {
                s: [{**e, "path": full(_rel_data_path(e[sensor], sensor))} for e in raw.get(s, [])]
                for s in SPLITS
            }
            if (folder / "norm.json").is_file():
                block = json.loads((folder / "norm.json").read_text())
                norm[sensor] = block.get(sensor, block)
        elif (folder / "data_paths.json").is_file():
            kinds.add("old")
            raw = json.loads((folder / "data_paths.json").read_text())
            entries = {}
            for s in SPLITS:
                lst = []
                for p in raw.get(s, []):
                    rel = _rel_data_path(p, sensor)
                    name = schema.parse_filename(Path(rel).name)
                    lst.append(
                        {
                            "id": name.key,
                            sensor: rel,
                            "path": full(rel),
                            "pixel_annotated": None,
                            "inventory": name.region,
                        }
                    )
                entries[s] = lst
            splits_out[sensor] = entries
            if (folder / "norm_data.json").is_file():
                nd = json.loads((folder / "norm_data.json").read_text())
                names = OLD_FORMAT_CHANNELS[sensor]
                mean, std = list(nd["mean"]), list(nd["std"])
                if len(mean) != len(std) or len(mean) > len(names):
                    raise ValueError(
                        f"{folder / 'norm_data.json'}: {len(mean)} means and {len(std)} stds for the "
                        f"{len(names)} channels {names}"
                    )
                norm[sensor] = {
                    "mean": {n: float(m) for n, m in zip(names, mean, strict=False)},
                    "std": {n: float(v) for n, v in zip(names, std, strict=False)},
                }
    if not splits_out:
        raise FileNotFoundError(
            f"{root} holds no task: expected <sensor>/splits.json or <sensor>/data_paths.json "
            f"for a sensor of {schema.SENSORS}"
        )
    aligned = norm_aligned = None
    if (root / "splits_aligned.json").is_file():
        raw = json.loads((root / "splits_aligned.json").read_text())
        aligned = {
            s: [
                {**e, **{k: full(_rel_data_path(e[k], k)) for k in schema.SENSORS if k in e}}
                for e in raw.get(s, [])
            ]
            if absolute
            else list(raw.get(s, []))
            for s in SPLITS
        }
    if (root / "norm_aligned.json").is_file():
        norm_aligned = json.loads((root / "norm_aligned.json").read_text())
    units = {}
    for sensor in splits_out:
        if schema.sensor_family(sensor) == "s2":
            units[sensor] = "reflectance x10000"
        elif config is not None and "s1_unit" in config:
            units[sensor] = str(config["s1_unit"])
        else:
            units[sensor] = _infer_unit(norm.get(sensor))
    name = str(config.get("name", root.name)) if isinstance(config, dict) else root.name
    task = Task(
        path=root,
        name=name,
        format="old" if kinds == {"old"} else "current",
        splits=splits_out,
        norm=norm,
        aligned=aligned,
        norm_aligned=norm_aligned,
        config=config,
        units=units,
        data_dir=data_root,
    )
    if not (task.norm or task.norm_aligned) and warn_missing:
        log.warning(
            "task %s has no normalisation statistics (missing: %s); training needs them: "
            "`s12ls norm %s --data DATA_DIR` computes them from the train files",
            task.name,
            ", ".join(task.missing),
            root,
        )
    trap = ad_trap(task)
    if trap:
        log.warning("%s", trap)
    return task


def norm_table(task: Task, published: Mapping | None = None) -> pd.DataFrame:
    """A task's statistics as a long table: ``sensor``, ``variable``, ``mean``, ``std``, ``unit`` and, with
    ``published`` (e.g. :func:`s12ls_utils.reference.norms`), ``published mean (real)``."""
    rows = []
    for sensor, block in task.norm.items():
        for var in schema.FEATURES[sensor]:
            unit = "metres" if var == "DEM" else task.units.get(sensor, "")
            row = {"sensor": sensor, "variable": var, "mean": block["mean"][var], "std": block["std"][var]}
            if published is not None:
                row["published mean (real)"] = published[sensor]["mean"][var]
            rows.append({**row, "unit": unit})
    return pd.DataFrame(rows)


def task_folders(root: str | Path) -> pd.DataFrame:
    """Every task folder below ``root`` (a folder with ``config.json``), read without the warning about
    missing statistics: ``task`` (its path below ``root``), ``files``, ``MB``, its S2
    patches and the files it still ``lacks`` (:attr:`Task.missing`)."""
    root, rows = Path(root), []
    for config in sorted(root.rglob("config.json")):
        task = load_task(config.parent, warn_missing=False)
        files = [f for f in config.parent.rglob("*") if f.is_file()]
        s2 = task.counts().set_index("scope")["total"].get("s2", 0)
        rows.append(
            {
                "task": str(config.parent.relative_to(root)),
                "files": len(files),
                "MB": sum(f.stat().st_size for f in files) / 1e6,
                "s2 patches": int(s2),
                "lacks": ", ".join(task.missing),
            }
        )
    return pd.DataFrame(rows).set_index("task")


# --------------------------------------------------------------------------------------------------
# Are the task's files there?
# --------------------------------------------------------------------------------------------------
class MissingFilesError(FileNotFoundError):
    """Files of a task are missing under its data folder (:func:`check_files`); ``report`` says which.

    ``str(exc)`` names the Python options (``data_dir=``, ``allow_missing=True``);
    ``exc.report.message(cli=True)`` the command-line ones (``--data``, ``--allow-missing``)."""

    def __init__(self, report: FileCheck) -> None:
        super().__init__(report.message())
        self.report = report


@dataclass
class FileCheck:
    """What :func:`check_files` found: per sensor, how many of the task's files it looked for are missing
    under ``data_dir``, a few of them, and the folder near it that probably holds them (``hint``: it holds
    ``hint_found`` of ``hint_tried`` missing files looked up there)."""

    task: str
    data_dir: Path
    splits: tuple[str, ...]
    total: dict[str, int]
    missing: dict[str, int]
    examples: list[str] = field(default_factory=list)
    hint: Path | None = None
    hint_found: int = 0
    hint_tried: int = 0

    @property
    def n_missing(self) -> int:
        return sum(self.missing.values())

    @property
    def n_total(self) -> int:
        return sum(self.total.values())

    def record(self) -> dict:
        """The JSON a task's ``config.json``, a run's ``run.json`` or an evaluation keeps (``missing_files``)."""
        return {
            "data_dir": str(self.data_dir),
            "splits": list(self.splits),
            "missing": {s: n for s, n in self.missing.items() if n},
            "looked_for": dict(self.total),
        }

    def summary(self) -> str:
        """How many of the files are missing under which folder, per sensor, with examples."""
        which = " and ".join(self.splits) + " " if tuple(self.splits) != SPLITS else ""
        per = "; ".join(f"{s} {n:,} of {self.total[s]:,}" for s, n in self.missing.items() if n)
        return (
            f"task {self.task}: {self.n_missing:,} of its {self.n_total:,} {which}files are missing under the "
            f"data folder {_shown(self.data_dir)} ({per}), e.g. {', '.join(self.examples[:3])}"
        )

    def message(self, cli: bool = False) -> str:
        """:meth:`summary`, where the files probably are, and how to go on (command-line options with ``cli``,
        else the Python keywords)."""
        data_opt, allow_opt = ("--data ", "--allow-missing") if cli else ("data_dir=", "allow_missing=True")
        if self.hint is not None:
            where = (
                f"They are probably in {_shown(self.hint)} ({self.hint_found} of {self.hint_tried} missing files "
                f"looked up are there): pass {data_opt}{_shown(self.hint)}."
            )
        else:
            where = (
                "No folder next to it holds them: check that the download is complete (all sensors and "
                f"releases the task needs) and pass the folder that holds <sensor>/<file>.nc with {data_opt}DIR."
            )
        whole = [s for s, n in self.missing.items() if n and n == self.total[s]]
        if whole and len(whole) < len(self.total):  # some sensors entirely absent, others there
            where += (
                f" No {' or '.join(whole)} file is there at all: if only some sensors were downloaded, leave "
                f"the others out ({'--sensors' if cli else 'sensors='})."
            )
        kept = self.n_total - self.n_missing
        go_on = (
            f"to go on with the {kept:,} files that exist, pass {allow_opt}" if kept else "none of them exist"
        )
        return f"{self.summary()}. {where} Stopped before any work; {go_on}."


def _shown(path: Path) -> str:
    """A path as a reader types it: relative to the current folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


#: At most this many missing files are looked up in each folder near the data folder (:func:`check_files`).
_HINT_LOOKUPS = 24
#: At most this many folders near the data folder are tried.
_HINT_FOLDERS = 200


def _folders_near(data_dir: Path, task_root: Path) -> list[Path]:
    """Data folders (holding a sensor folder) near ``data_dir`` and the task: the task's recorded and guessed
    folders, then ``data_dir``, its parent and grandparent, each with its sub-folders two levels deep
    (siblings such as ``data_raw``/``data_harmonized`` and cousins such as ``data/real/data_harmonized``)."""
    found: list[Path] = []

    def add(p: Path | None) -> None:
        if p is not None and len(found) < _HINT_FOLDERS:
            r = p.resolve()
            if r != data_dir and r not in found and _holds_sensors(r):
                found.append(r)

    def children(p: Path) -> list[Path]:
        try:
            kids = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
        except OSError:
            return []
        return [c for c in kids if c.name not in schema.SENSORS][:_HINT_FOLDERS]

    config = None
    if (task_root / "config.json").is_file():
        try:
            config = json.loads((task_root / "config.json").read_text())
        except ValueError:
            pass
    add(_recorded_data_dir(task_root, config))
    add(_guess_data_dir(task_root))
    for base in (data_dir, data_dir.parent, data_dir.parent.parent):
        add(base)
        for child in children(base):
            add(child)
            for grandchild in children(child):
                add(grandchild)
    return found


def check_files(
    task: Task,
    sensors: str | Sequence[str] | None = None,
    splits: Sequence[str] = SPLITS,
    *,
    scope: str = "auto",
    allow_missing: bool = False,
) -> Task:
    """Check, before any work, that the files of ``task`` exist under its data folder.

    Looks for every file of ``sensors`` (default: all of the task's) in ``splits`` at ``<data_dir>/<entry
    path>`` (one ``stat`` each), in the entries that ``scope`` names: ``"own"`` (each sensor's own split),
    ``"aligned"`` (the aligned split), ``"all"`` (both) or ``"auto"`` (what training reads: the own split of
    one sensor, the aligned split of several, both when ``sensors`` is None). When files are missing, raises
    :class:`MissingFilesError`: how many (per sensor), where it looked, and which folder near it probably
    holds them (the task's recorded and guessed data folders, siblings such as ``data_raw`` /
    ``data_harmonized``, parents and children that hold a sensor folder). With ``allow_missing`` it goes on:
    the returned task lists only the entries whose files exist (an aligned entry only when all its checked
    files do), and its :attr:`Task.file_check` says how many were left out, for the caller to record.
    Without missing files the task comes back with nothing removed and ``file_check`` set (an earlier
    check's, when the task comes from one: checking a checked task keeps its record).
    """
    if schema.check_choice("scope", scope, ("auto", "own", "aligned", "all")) == "auto":
        scope = (
            "all"
            if sensors is None
            else "aligned"
            if not isinstance(sensors, str) and len(sensors) > 1
            else "own"
        )
    own, in_aligned = scope in ("own", "all"), scope in ("aligned", "all")
    root = task.require_data_dir()
    sensors = list(task.sensors if sensors is None else schema.check_sensors(sensors))
    splits = tuple(splits)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"unknown split(s) {bad}; choose from {', '.join(SPLITS)}")
    wanted: dict[str, list[str]] = {s: [] for s in sensors}
    for s in sensors:
        for sp in splits:
            if own:
                wanted[s] += [str(e[s]) for e in task.splits.get(s, {}).get(sp, [])]
            if in_aligned:
                wanted[s] += [str(e[s]) for e in (task.aligned or {}).get(sp, []) if e.get(s)]
    wanted = {s: list(dict.fromkeys(paths)) for s, paths in wanted.items() if paths}
    gone = {s: [p for p in paths if not (root / p).is_file()] for s, paths in wanted.items()}
    report = FileCheck(
        task=task.name,
        data_dir=root,
        splits=splits,
        total={s: len(p) for s, p in wanted.items()},
        missing={s: len(p) for s, p in gone.items()},
    )
    lost = [p for paths in gone.values() for p in paths]
    if lost:
        report.examples = [paths[0] for paths in gone.values() if paths][:3]  # one per sensor
        step = max(1, len(lost) // _HINT_LOOKUPS)
        probe = lost[::step][:_HINT_LOOKUPS]
        best = max(
            ((sum((f / p).is_file() for p in probe), f) for f in _folders_near(root, Path(task.path))),
            key=lambda t: t[0],
            default=(0, None),
        )
        if best[0]:
            report.hint, report.hint_found, report.hint_tried = best[1], best[0], len(probe)
        if not allow_missing:
            raise MissingFilesError(report)
        log.warning("%s; going on without them (allow_missing)", report.summary())
    missing = {(s, p) for s, paths in gone.items() for p in paths}

    def kept(e: Mapping, keys: Iterable[str]) -> bool:
        return not any((s, str(e[s])) in missing for s in keys if s in e)

    def only_present(block: Mapping[str, list[dict]], keys: Iterable[str]) -> dict[str, list[dict]]:
        keys = list(keys)
        return {sp: [e for e in es if sp not in splits or kept(e, keys)] for sp, es in block.items()}

    return dataclasses.replace(
        task,
        splits={s: only_present(b, [s] if own and s in wanted else []) for s, b in task.splits.items()},
        aligned=None
        if task.aligned is None
        else only_present(task.aligned, list(wanted) if in_aligned else []),
        file_check=task.file_check if task.file_check is not None and not lost else report,
    )


# --------------------------------------------------------------------------------------------------
# The S12LS-AD trap
# --------------------------------------------------------------------------------------------------
#: A task named like S12LS-AD with less than this share of non-annotated patch entries is the annotated-only
#: ``tasks/S12LS-AD/harmonized`` of the upstream commit 5b313f2 (S12LS-AD keeps every patch, about half of
#: them without landslides).
AD_TRAP_SHARE = 0.01


def ad_trap(task: Task) -> str | None:
    """The warning for the S12LS-AD trap, or None.

    At the upstream commit the book vendors (5b313f2), ``tasks/S12LS-AD/harmonized/`` lists only annotated
    patches (upstream issue 1, fixed later); the raw AD folder is right. A task whose name or folder says
    S12LS-AD and whose entries (``pixel_annotated``, every sensor and split) are less than
    :data:`AD_TRAP_SHARE` non-annotated is that folder, or a copy of it. Entries without a pixel count (the
    old published format) are not judged.
    """
    label = f"{task.name} {task_label(task.path)}"
    if "S12LS-AD" not in label:
        return None
    counts = [
        e.get("pixel_annotated")
        for block in task.splits.values()
        for entries in block.values()
        for e in entries
        if e.get("pixel_annotated") is not None
    ]
    if not counts:
        return None
    share = sum(int(c) == 0 for c in counts) / len(counts)
    if share >= AD_TRAP_SHARE:
        return None
    path = Path(task.path)
    raw = path.parent / "raw" if path.name == "harmonized" else Path("data/real/tasks/S12LS-AD/raw")
    return (
        f"task {task_label(path)} looks like S12LS-AD, but only {share:.1%} of its {len(counts):,} patch entries "
        "are not annotated, while S12LS-AD keeps every patch, about half of them without landslides. This is "
        "the S12LS-AD trap: at the upstream commit 5b313f2, tasks/S12LS-AD/harmonized/ lists only annotated "
        f"patches (upstream issue 1, fixed later). Use the raw AD folder, {raw}: the same file names, so it "
        "reads the harmonized files too when given their folder (--data data/real/data_harmonized)."
    )


def task_label(path: str | Path) -> str:
    """A short name for a task folder, for run names: ``<data>/tasks/S12LS-LD`` → ``S12LS-LD``; a downloaded
    published folder ``tasks/S12LS-LD/harmonized`` → ``S12LS-LD-harmonized`` (its last component alone would
    name LD and AD runs of one release alike)."""
    p = Path(path)
    if p.name in ("harmonized", "raw") and p.parent.name:
        return f"{p.parent.name}-{p.name}"
    return p.name
