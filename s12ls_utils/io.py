"""Reading Sen12Landslides patches.

- :func:`open_patch` opens one file with xarray (netCDF4 engine), puts every variable in the canonical
  ``(time, y, x)`` order whatever order the file uses, records the Sentinel-1 backscatter unit and, by
  default, **harmonises** raw Sentinel-2 values (below).
- :func:`read_patch_meta` reads what a catalog needs (attributes, time stamps, the mask at one time
  step, the S2 scene classes, the release) through netCDF4, without building an xarray Dataset: the
  fast path used to scan thousands of files.
- :func:`open_nc` opens a file with netCDF4 for the package's other readers (the training cache, the
  validator, the alignment check, the statistics), with :func:`read_tyx`, :func:`decode_times` and
  :func:`fill_mask`: no other module opens a patch for reading.
- :func:`patch_features` stacks the feature channels **by name** in the documented order.

Releases and the Sentinel-2 offset
----------------------------------
ESA adds 1000 DN to L2A reflectances from processing baseline 04.00 (acquisitions from 2022-01-25,
:data:`schema.S2_OFFSET_FROM`). The ``data_raw`` release keeps that offset; ``data_harmonized`` has it
removed. Every pixel reader of this package removes it from raw files (:func:`harmonize_s2`: bands
B02…B12 of dates on or after 2022-01-25, ``max(v − 1000, 0)``, int16 kept; SCL, MASK and DEM untouched),
so values mean the same on both sides of that date and in both releases. Values at or below 1000 become
0, the no-data value, as in the harmonized release (bounded to [0, 10000]).

:func:`file_release` decides the release of a file, in this order: a path component ``data_raw`` or
``data_harmonized`` (the hub's layout; the nearest one wins); else the ``release`` recorded in the data
root's ``synthetic_manifest.json`` (``<root>/<sensor>/<file>.nc``); else, for Sentinel-1, the unit of the
values (linear → raw, dB → harmonized), and for Sentinel-2 the unit of the Sentinel-1 files of the same
data root (a release ships both); else ``"unknown"``, and nothing is corrected (logged once per folder
when such a Sentinel-2 series reaches 2022-01-25).

Any failure to read a file (corrupt, truncated, foreign) raises :class:`PatchReadError`, which names
the file and the problem.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from . import schema
from .parallel import NETCDF_LOCK
from .schema import (
    DEM_VALID_RANGE,
    N_TIME,
    PATCH_SIZE,
    PIXEL_SIZE_M,
    S1_BANDS,
    S1_FILL_MIN_PIXELS,
    S1_SENSORS,
    SATELLITE_VALUES,
    SCL_CLASSES,
    SCL_UNKNOWN,
    SENSORS,
    VARIABLES,
    FormatWarning,
    PatchCheck,
    parse_attrs,
    parse_filename,
    pre_post_notes,
    repeated_neighbour_pixels,
)

log = logging.getLogger(__name__)

S1_UNITS = ("linear", "dB")
#: File in a data root that may record its release (written by the synthetic generator).
RELEASE_MANIFEST = "synthetic_manifest.json"


class PatchReadError(Exception):
    """A patch file could not be read; ``path`` and ``problem`` say which and why."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    @classmethod
    def wrap(cls, path: str | Path, exc: Exception, *, opening: bool = False) -> PatchReadError:
        """The error for ``exc``, met opening ``path`` (``not a readable NetCDF/HDF5 file``) or reading it
        (``cannot read contents``); a :class:`PatchReadError` stays as it is. The package's one wrapping."""
        if isinstance(exc, PatchReadError):
            return exc
        what = "not a readable NetCDF/HDF5 file" if opening else "cannot read contents"
        return cls(path, f"{what} ({type(exc).__name__}: {exc})")


# --------------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------------
def sensors_present(data_dir: str | Path) -> list[str]:
    """The sensors (``schema.SENSORS`` order) with at least one ``.nc`` file in ``<data_dir>/<sensor>/``."""
    root = Path(data_dir)
    return [
        s for s in schema.SENSORS if (root / s).is_dir() and next((root / s).glob("*.nc"), None) is not None
    ]


def location_files(
    data_dir: str | Path, key: str, sensors: Sequence[str] = schema.SENSORS
) -> dict[str, Path]:
    """The patch files of location ``key`` (``<region>_<id>``) under ``data_dir``: ``{sensor: path}`` for the
    ``sensors`` that have one, in the order of ``sensors``."""
    region, pid = str(key).rsplit("_", 1)
    paths = {s: Path(data_dir) / s / schema.patch_filename(region, s, int(pid)) for s in sensors}
    return {s: p for s, p in paths.items() if p.exists()}


def require_sensors(data_dir: str | Path, sensors, name: str = "sensors") -> list[str]:
    """``sensors`` when ``data_dir`` holds files of each of them, else a ``ValueError`` naming the parameter,
    the missing sensors and those the folder has (a download of one sensor only, ``--sensors s2``, leaves
    the others out). Chapters call it before any work."""
    sensors = [sensors] if isinstance(sensors, str) else list(sensors)
    present = sensors_present(data_dir)
    missing = [s for s in sensors if s not in present]
    if missing:
        raise ValueError(
            f"parameter {name!r}: the data folder {data_dir} has no {', '.join(missing)} files "
            f"(it has: {', '.join(present) or 'no sensor folders with .nc files'}); choose from those"
        )
    return sensors


def to_db(linear: np.ndarray | xr.DataArray) -> np.ndarray | xr.DataArray:
    """Linear backscatter → dB. Non-positive values become NaN (no warning)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if isinstance(linear, xr.DataArray):
            return 10.0 * np.log10(linear.where(linear > 0))
        arr = np.asarray(linear, dtype="float32")
        return (10.0 * np.log10(np.where(arr > 0, arr, np.nan))).astype("float32")


def to_linear(db: np.ndarray | xr.DataArray) -> np.ndarray | xr.DataArray:
    """dB → linear backscatter."""
    return 10.0 ** (db / 10.0)


def detect_s1_unit(values: np.ndarray) -> str:
    """``"dB"`` when any finite value is negative (linear power is never negative), else ``"linear"``."""
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size and float(finite.min()) < 0:
        return "dB"
    return "linear"


def _detect_s1_unit_steps(read_step, n_steps: int) -> str:
    """Unit from the middle time step, or from the nearest step that holds finite values."""
    mid = n_steps // 2
    for t in sorted(range(n_steps), key=lambda t: abs(t - mid)):
        values = np.asarray(read_step(t))
        if np.isfinite(values).any():
            return detect_s1_unit(values)
    return "linear"


# --------------------------------------------------------------------------------------------------
# Releases and the Sentinel-2 offset
# --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _manifest_release(manifest: str, mtime_ns: int, size: int) -> str | None:
    """The ``release`` recorded in a data root's manifest (cached per file version), or None."""
    try:
        with open(manifest) as f:
            value = json.load(f).get("release")
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("cannot read the release from %s (%s)", manifest, exc)
        return None
    if value is None:
        return None
    if value not in ("raw", "harmonized"):
        log.warning("%s records release %r (expected 'raw' or 'harmonized'): ignored", manifest, value)
        return None
    return str(value)


def _root_release(path: Path) -> str | None:
    """The release recorded in the data root of ``path`` (``<root>/<sensor>/<file>.nc``), or None."""
    folder = path.parent.parent if path.parent.name in schema.SENSORS else path.parent
    manifest = folder / RELEASE_MANIFEST
    try:
        st = manifest.stat()
    except OSError:
        return None
    return _manifest_release(str(manifest.absolute()), st.st_mtime_ns, st.st_size)


def _path_release(path: Path) -> str | None:
    """``raw``/``harmonized`` from a ``data_raw``/``data_harmonized`` component of the path (nearest wins)."""
    seen = [path.absolute()]
    try:
        resolved = path.resolve()
        if resolved != seen[0]:
            seen.append(resolved)
    except OSError:
        pass
    for p in seen:
        for part in reversed(p.parts[:-1]):
            if part in schema.RELEASE_FOLDERS:
                return schema.RELEASE_FOLDERS[part]
    return None


def _sensor_of(path: Path) -> str | None:
    try:
        return schema.parse_filename(path).sensor
    except ValueError:
        return path.parent.name if path.parent.name in schema.SENSORS else None


def _s1_file_unit(path: Path) -> str:
    """The unit of a Sentinel-1 file's VV (:func:`_detect_s1_unit_steps`), read with netCDF4."""
    with open_nc(path) as ds:
        require_variables(ds, "VV")
        vv = ds.variables["VV"]
        return _detect_s1_unit_steps(lambda t: fill_to_nan(vv, vv[t]), vv.shape[0])


#: Sentinel-1 files read per orbit folder to tell a data root's release from its siblings.
_SIBLINGS_READ = 2


@functools.lru_cache(maxsize=64)
def _siblings_release(root: str, stamps: tuple) -> str | None:
    """``raw``/``harmonized`` from the unit of the Sentinel-1 files of a data root (the first
    :data:`_SIBLINGS_READ` files of each orbit folder, by name), None when it has none that can be read or
    their units disagree (logged). ``stamps`` (folder modification times) only key the cache."""
    units: dict[str, list[str]] = {}
    for sensor in schema.S1_SENSORS:
        for f in sorted((Path(root) / sensor).glob("*.nc"))[:_SIBLINGS_READ]:
            try:
                units.setdefault(_s1_file_unit(f), []).append(f.name)
            except PatchReadError as exc:
                log.debug("release from siblings: %s", exc)
    if len(units) > 1:
        log.warning(
            "%s: its Sentinel-1 files disagree on the unit (%s), so they do not tell the release of its "
            "Sentinel-2 files",
            root,
            "; ".join(f"{u}: {', '.join(n)}" for u, n in sorted(units.items())),
        )
        return None
    if not units:
        return None
    return "raw" if next(iter(units)) == "linear" else "harmonized"


def _sibling_release(path: Path) -> str | None:
    """The release the Sentinel-1 files of ``path``'s data root (``<root>/<sensor>/<file>.nc``) say:
    linear backscatter → raw, dB → harmonized (:func:`_siblings_release`); None without any."""
    if path.parent.name not in schema.SENSORS:
        return None
    root = path.parent.parent.absolute()
    stamps = []
    for sensor in schema.S1_SENSORS:
        try:
            stamps.append((sensor, (root / sensor).stat().st_mtime_ns))
        except OSError:
            continue
    return _siblings_release(str(root), tuple(stamps)) if stamps else None


def file_release(path: str | Path, *, s1_unit: str | None = None) -> str:
    """The release of a patch file: ``"raw"``, ``"harmonized"`` or ``"unknown"``.

    Decided, in this order, by a ``data_raw``/``data_harmonized`` component of the path; the ``release``
    recorded in the data root's ``synthetic_manifest.json``; for Sentinel-1, the unit of VV (linear →
    raw, dB → harmonized; pass ``s1_unit`` when it is known, else the file is opened to detect it); for
    Sentinel-2, the unit of the Sentinel-1 files in the same data root (``<root>/s1asc``, ``<root>/s1dsc``:
    the hub ships both sensors of a release in one folder, so linear siblings mean raw); otherwise
    ``"unknown"`` (a Sentinel-2 file without Sentinel-1 siblings).
    """
    path = Path(path)
    release = _path_release(path) or _root_release(path)
    if release is not None:
        return release
    if _sensor_of(path) in schema.S1_SENSORS:
        if s1_unit is None:
            s1_unit = _s1_file_unit(path)
        return "raw" if s1_unit == "linear" else "harmonized"
    return _sibling_release(path) or "unknown"


def s2_offset_steps(times) -> np.ndarray:
    """Boolean per time step: acquired on or after :data:`schema.S2_OFFSET_FROM` (raw values carry the offset)."""
    days = np.asarray(times).astype("datetime64[D]")
    return days >= np.datetime64(schema.S2_OFFSET_FROM, "D")


_warned_unknown: set[str] = set()


def _note_unknown(path: Path, times) -> None:
    """Log once per folder that an S2 series reaching 2022-01-25 is read as stored (release unknown)."""
    folder = str(path.parent.absolute())
    if folder not in _warned_unknown and s2_offset_steps(times).any():
        _warned_unknown.add(folder)
        log.warning(
            "%s: the release (raw or harmonized) of the Sentinel-2 files in this folder is unknown (no "
            "release in the path, no manifest, no Sentinel-1 files beside it); values of dates from %s are "
            'read as stored (put them under data_raw/ or data_harmonized/, or record "release" in %s)',
            folder,
            schema.S2_OFFSET_FROM,
            RELEASE_MANIFEST,
        )


def harmonize_s2(values, times, release: str, *, time_axis: int = 0) -> np.ndarray:
    """Remove the baseline-04.00 offset from raw Sentinel-2 reflectances of one band.

    ``values``: one of :data:`schema.S2_OFFSET_BANDS` with time on ``time_axis`` (any dimension order
    otherwise); ``times``: the file's time stamps. For ``release == "raw"``, the steps of
    :func:`s2_offset_steps` become ``max(v − 1000, 0)``: 0 (no data) stays 0 and no value goes
    negative; the dtype is kept (int16 stays int16). For ``"harmonized"`` or ``"unknown"`` the values
    come back unchanged (the same array). Do not call it on SCL, MASK or DEM.
    """
    schema.check_choice("release", release, schema.RELEASES)
    a = np.asarray(values)
    if release != "raw":
        return a
    steps = s2_offset_steps(times)
    if steps.shape != (a.shape[time_axis],):
        raise ValueError(f"{steps.size} time stamps for {a.shape[time_axis]} time steps")
    if not steps.any():
        return a
    out = a.copy()
    view = np.moveaxis(out, time_axis, 0)
    sub = view[steps]
    # max(v, offset) - offset == max(v - offset, 0) without an int16 overflow for very negative values
    view[steps] = np.maximum(sub, np.asarray(schema.S2_OFFSET, dtype=sub.dtype)) - np.asarray(
        schema.S2_OFFSET, dtype=sub.dtype
    )
    return out


# --------------------------------------------------------------------------------------------------
# xarray access
# --------------------------------------------------------------------------------------------------
def open_patch(
    path: str | Path, *, s1_unit: str = "native", load: bool = False, harmonize: bool = True
) -> xr.Dataset:
    """Open one patch as an :class:`xarray.Dataset` with every variable in ``(time, y, x)`` order.

    Parameters
    ----------
    path
        A ``<region>_<sensor>_<id>.nc`` file.
    s1_unit
        ``"native"`` keeps VV/VH as stored; ``"linear"`` or ``"dB"`` converts them if needed. The unit
        found in the file is recorded in ``ds.attrs["s1_unit_native"]`` and the unit of the returned
        values in ``ds["VV"].attrs["units"]``.
    load
        Read all values into memory and close the file.
    harmonize
        Remove the Sentinel-2 offset of raw files (:func:`harmonize_s2`; default). ``False`` keeps the
        stored values. The release (:func:`file_release`) is recorded in ``ds.attrs["release"]`` and the
        number of corrected dates in ``ds.attrs["s2_offset_removed"]`` (S2 only).
    """
    path = Path(path)
    schema.check_choice("s1_unit", s1_unit, ("native", *S1_UNITS))
    if not path.is_file():
        raise PatchReadError(path, "file does not exist")
    try:
        ds = xr.open_dataset(path, engine="netcdf4")
    except Exception as exc:  # netCDF4/HDF5 raise OSError, ValueError, KeyError… for foreign files
        raise PatchReadError.wrap(path, exc, opening=True) from exc
    try:
        if load:  # before the transpose: a transposed lazy array is read through fancy indexing, 2-3× slower
            ds.load()
        missing = [d for d in ("time", "x", "y") if d not in ds.dims]
        if missing:
            raise PatchReadError(path, f"dimension(s) {missing} missing (found {tuple(ds.dims)})")
        ds = ds.transpose(*schema.CANONICAL_DIMS, ...)
        if "VV" in ds:
            native = _detect_s1_unit_steps(lambda t: ds["VV"].isel(time=t).values, ds.sizes["time"])
            ds.attrs["s1_unit_native"] = native
            target = native if s1_unit == "native" else s1_unit
            for band in schema.S1_BANDS:
                if band not in ds:
                    continue
                da = ds[band]
                if target != native:
                    da = to_db(da) if target == "dB" else to_linear(da)
                    da = da.astype("float32")
                ds[band] = da.assign_attrs(units=target)
            ds.attrs["release"] = file_release(path, s1_unit=native)
        elif "B04" in ds or "SCL" in ds:
            release = file_release(path)
            ds.attrs["release"] = release
            times = ds["time"].values
            steps = s2_offset_steps(times)
            corrected = 0
            if harmonize and release == "raw" and steps.any():
                for band in schema.S2_OFFSET_BANDS:
                    if band in ds:
                        da = ds[band]
                        ds[band] = da.copy(data=harmonize_s2(da.values, times, release))
                corrected = int(steps.sum())
            elif release == "unknown":
                _note_unknown(path, times)
            ds.attrs["s2_offset_removed"] = corrected
        if load:
            ds.close()
    except Exception as exc:
        ds.close()
        raise PatchReadError.wrap(path, exc) from exc
    return ds


def patch_features(ds: xr.Dataset, sensor: str | None = None) -> np.ndarray:
    """Stack the feature channels by name in the documented order → ``(time, C, y, x)`` float32.

    S2: B02…B12, DEM (11 channels); S1: VV, VH, DEM (3 channels). The sensor is taken from the
    variables when not given.
    """
    if sensor is None:
        sensor = "s2" if "B02" in ds else "s1asc"
    names = schema.FEATURES[schema.check_sensor(sensor)]
    missing = [n for n in names if n not in ds]
    if missing:
        raise KeyError(f"feature variables {missing} are missing from the patch")
    arrs = [ds[n].transpose(*schema.CANONICAL_DIMS).values.astype("float32", copy=False) for n in names]
    return np.stack(arrs, axis=1)


def patch_mask(ds: xr.Dataset) -> np.ndarray:
    """The landslide mask of an opened patch as stored, ``(y, x)`` (it is the same at every time step)."""
    m = ds["MASK"]
    return (m.isel(time=0) if "time" in m.dims else m).transpose("y", "x").values


# --------------------------------------------------------------------------------------------------
# Fast metadata
# --------------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class PatchMeta(schema.PatchAttrs):
    """Typed metadata of one patch (what :func:`read_patch_meta` returns): its parsed attributes
    (:class:`schema.PatchAttrs`) and what the file says besides."""

    path: Path
    region: str
    sensor: str
    patch_id: int
    times: np.ndarray  # datetime64[ns], sorted
    n_positive: int  # positive pixels of MASK at time 0
    dims_order: str  # "time,x,y" (card) or "time,y,x" (reference preprocessing)
    s1_unit: str | None = None  # "linear" / "dB" for S1, None for S2
    # S2: the share of unusable pixels per date (schema.scl_usable: the reference's classes and 255)
    bad_fraction: np.ndarray | None = field(default=None, repr=False)
    release: str = "unknown"  # "raw", "harmonized" or "unknown" (see file_release)

    @property
    def key(self) -> str:
        return f"{self.region}_{self.patch_id}"

    @property
    def event_steps(self) -> schema.EventSteps:
        """The primary (earliest dated) event on the time axis (:func:`schema.patch_event_steps`)."""
        return schema.patch_event_steps(self.times, self)

    @property
    def n_pixels(self) -> int:
        return schema.PATCH_SIZE * schema.PATCH_SIZE


# --------------------------------------------------------------------------------------------------
# netCDF4 access: the package's one low-level reader
# --------------------------------------------------------------------------------------------------
#: Variable attributes that mark fill values (:func:`fill_mask`).
FILL_ATTRS = ("_FillValue", "missing_value")


@contextlib.contextmanager
def open_nc(path: str | Path) -> Iterator[netCDF4.Dataset]:
    """One patch file opened with netCDF4 for raw values (no automatic masking or scaling), closed on leaving.

    Every failure raises :class:`PatchReadError` naming the file: ``not a readable NetCDF/HDF5 file`` when
    it cannot be opened, ``cannot read contents`` for any other error while the block reads it (the data of
    a truncated file fail only then); a :class:`PatchReadError` raised in the block passes unchanged. The
    package's modules read patches through this or :func:`open_patch` only.
    """
    path = Path(path)
    try:
        ds = netCDF4.Dataset(path, "r")
    except Exception as exc:  # netCDF4/HDF5 raise OSError, ValueError, KeyError… for foreign files
        raise PatchReadError.wrap(path, exc, opening=True) from exc
    try:
        ds.set_auto_maskandscale(False)
        yield ds
    except Exception as exc:
        raise PatchReadError.wrap(path, exc) from exc
    finally:
        ds.close()


def require_variables(ds: netCDF4.Dataset, *names: str) -> None:
    """:class:`PatchReadError` naming the file and each of ``names`` that ``ds`` lacks."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise PatchReadError(ds.filepath(), ", ".join(f"variable {n!r}" for n in missing) + " is missing")


def fill_mask(var, values) -> np.ndarray | None:
    """Where ``values`` hold a fill value of ``var``: any element of its ``_FillValue`` or ``missing_value``
    (CF allows a vector of missing values). ``var``: a netCDF4 variable or a mapping of its attributes. None
    where no value is a fill value (a NaN fill marks itself). The package's one fill handling."""
    attrs = var if isinstance(var, Mapping) else {k: var.getncattr(k) for k in var.ncattrs()}
    bad = None
    for name in FILL_ATTRS:
        for fill in np.asarray(attrs.get(name, [])).ravel():
            if not (isinstance(fill, float | np.floating) and np.isnan(fill)):
                bad = (values == fill) if bad is None else (bad | (values == fill))
    return bad if bad is not None and bad.any() else None


def fill_to_nan(var, values) -> np.ndarray:
    """``values`` of ``var`` as float32 with its fill values (:func:`fill_mask`) set to NaN."""
    a = np.asarray(values, dtype="float32")
    bad = fill_mask(var, np.asarray(values))
    return a if bad is None else np.where(bad, np.nan, a)


def read_tyx(var, step: int | None = None) -> np.ndarray:
    """A netCDF4 variable with dims time, x and y in any order as ``(time, y, x)``; with ``step``, only that
    time step is read, as ``(y, x)``. ValueError for other dims."""
    dims = tuple(var.dimensions)
    if sorted(dims) != ["time", "x", "y"]:
        raise ValueError(f"variable {var.name!r} has dims {dims}, expected (time, x, y) or (time, y, x)")
    if step is not None:
        dims = tuple(d for d in dims if d != "time")
    arr = np.asarray(
        var[tuple(step if d == "time" and step is not None else slice(None) for d in var.dimensions)]
    )
    return arr.transpose([dims.index(d) for d in schema.CANONICAL_DIMS if d in dims])


def decode_times(var) -> np.ndarray:
    """A netCDF4 ``time`` variable → ``datetime64[ns]`` array (sorted in Sen12Landslides files; may repeat)."""
    units = getattr(var, "units", None)
    if units is None:
        raise ValueError("time variable has no 'units'")
    calendar = getattr(var, "calendar", "standard")
    dates = netCDF4.num2date(
        var[:], units, calendar=calendar, only_use_cftime_datetimes=False, only_use_python_datetimes=True
    )
    return np.array([np.datetime64(d, "ns") for d in np.atleast_1d(dates)], dtype="datetime64[ns]")


def read_patch_meta(path: str | Path, *, read_scl: bool = True) -> PatchMeta:
    """Read a patch's metadata without loading its images (netCDF4, no xarray Dataset).

    Reads the global attributes, the time stamps, ``MASK`` at time step 0 (positive-pixel count),
    one VV step for S1 (unit detection) and, with ``read_scl``, the S2 scene classes (share of unusable
    pixels per date, :func:`schema.scl_usable`), and decides the release (:func:`file_release`). Event
    dates come sorted, undated entries counted apart (:func:`schema.parse_attrs`). Raises
    :class:`PatchReadError` naming the file and the problem.
    """
    path = Path(path)
    try:
        name = schema.parse_filename(path)
    except ValueError as exc:
        raise PatchReadError(path, str(exc)) from exc
    if not path.is_file():
        raise PatchReadError(path, "file does not exist")
    with open_nc(path) as ds:
        attrs, problems = schema.parse_attrs({k: ds.getncattr(k) for k in ds.ncattrs()})
        if problems:
            raise PatchReadError(path, "; ".join(problems))
        s1 = name.sensor != "s2"
        require_variables(ds, "MASK", "time", *(("VV",) if s1 else ("SCL",) if read_scl else ()))
        mask = ds.variables["MASK"]
        dims_order = ",".join(mask.dimensions)
        n_positive = int(np.count_nonzero(read_tyx(mask, 0)))
        times = decode_times(ds.variables["time"])
        s1_unit = bad_fraction = None
        if s1:
            vv = ds.variables["VV"]
            s1_unit = _detect_s1_unit_steps(lambda t: fill_to_nan(vv, vv[t]), len(times))
        elif read_scl:
            bad_fraction = schema.unusable_fraction(np.asarray(ds.variables["SCL"][:]))
    return PatchMeta(
        **vars(attrs),
        path=path,
        region=name.region,
        sensor=name.sensor,
        patch_id=name.patch_id,
        times=times,
        n_positive=n_positive,
        dims_order=dims_order,
        s1_unit=s1_unit,
        bad_fraction=bad_fraction,
        release=file_release(path, s1_unit=s1_unit),
    )


# --------------------------------------------------------------------------------------------------
# Inventory
# --------------------------------------------------------------------------------------------------
def read_inventory(path: str | Path):
    """The landslide inventory (``inventories.shp.zip``) as a GeoDataFrame in WGS84.

    Adds ``area_m2`` (area in an equal-area projection, EPSG:6933) and ``area_px`` (area in 10 m
    pixels). Raises FileNotFoundError / ValueError with the path when the file is missing or unreadable.
    """
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"inventory {path} does not exist")
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the inventory ({exc})") from exc
    if gdf.crs is None:
        raise ValueError(f"{path}: the inventory has no CRS")
    gdf = gdf.to_crs(4326)
    gdf["area_m2"] = gdf.geometry.to_crs(6933).area
    gdf["area_px"] = gdf["area_m2"] / schema.PIXEL_SIZE_M**2
    return gdf


# --------------------------------------------------------------------------------------------------
# The format check of one file (the rules are schema's; reading the file is this module's)
# --------------------------------------------------------------------------------------------------
def validate_patch(path: str | Path) -> list[str]:
    """Check one patch file against the format; return every error found (empty list = valid).

    Warnings (e.g. a padded series that repeats its last date) do not make a file invalid: they are
    issued as :class:`FormatWarning` (Python ``warnings``). :func:`check_patch` returns both lists.
    """
    res = check_patch(path)
    for w in res.warnings:
        warnings.warn(f"{res.path}: {w}", FormatWarning, stacklevel=2)
    return res.errors


def check_patch(path: str | Path) -> PatchCheck:
    """Check one patch file against the format; return every error, warning and quality note found.

    Errors: file name, readability, dimensions and their sizes, coordinates (x/y spacing, y
    descending, time decodable and sorted), ``spatial_ref``, every variable's presence, dtype and dims,
    DEM range, MASK values and that MASK is the same at every time step, SCL classes (ESA's 0…11, and
    :data:`SCL_UNKNOWN`), attributes (present and parsable, consistent with the folder's sensor and
    with the mask).

    Warnings: repeated dates (the writer pads a short series with its last image), ``pre_post_dates``
    that disagrees with the time axis or cannot be paired with ``event_date``, an annotated patch with
    undated events, ``annotated='True'`` with an empty ``event_date``.

    Notes: SCL 255 frames (unknown quality: the real files have them; unusable for cloud masks, not an
    error). ``quality`` counts them, the repeated dates and the Sentinel-1 gaps (:class:`PatchCheck`).

    Holds :data:`s12ls_utils.parallel.NETCDF_LOCK` (netCDF-C is not thread-safe), so threads may check files.
    """
    with NETCDF_LOCK:
        return _check_patch(Path(path))


def _check_patch(path: Path) -> PatchCheck:
    path = Path(path)
    res = PatchCheck(path)
    problems = res.errors
    sensor: str | None = None
    try:
        name = parse_filename(path)
        sensor = name.sensor
        if path.parent.name in SENSORS and path.parent.name != sensor:
            problems.append(f"file is in folder {path.parent.name!r} but its name says sensor {sensor!r}")
    except ValueError as exc:
        problems.append(str(exc))
        if path.parent.name in SENSORS:
            sensor = path.parent.name
    if not path.is_file():
        problems.append(f"file {path} does not exist")
        return res
    try:
        with open_nc(path) as ds:
            _check_contents(ds, res, sensor)
    except PatchReadError as exc:  # cannot be opened, or an error the checks below do not name
        problems.append(exc.problem)
    return res


def _check_contents(ds, res: PatchCheck, sensor: str | None) -> None:
    """The checks of :func:`check_patch` on an open file (:func:`s12ls_utils.io.open_nc`)."""
    problems = res.errors
    times = None
    # dimensions
    for dim, size in (("time", N_TIME), ("x", PATCH_SIZE), ("y", PATCH_SIZE)):
        if dim not in ds.dimensions:
            problems.append(f"dimension {dim!r} is missing")
        elif len(ds.dimensions[dim]) != size:
            problems.append(f"dimension {dim!r} has size {len(ds.dimensions[dim])}, expected {size}")
    # coordinates
    for coord in ("x", "y"):
        if coord not in ds.variables:
            problems.append(f"coordinate {coord!r} is missing")
            continue
        v = ds.variables[coord]
        if v.dtype != np.float64:
            problems.append(f"coordinate {coord!r} has dtype {v.dtype}, expected float64")
        vals = np.asarray(v[:], dtype="float64")
        if vals.size > 1:
            step = np.diff(vals)
            want = -PIXEL_SIZE_M if coord == "y" else PIXEL_SIZE_M
            if not np.allclose(step, want, atol=1e-3):
                problems.append(
                    f"coordinate {coord!r} spacing is not {want:+g} m (found {step.min():g}…{step.max():g})"
                )
    if "time" not in ds.variables:
        problems.append("coordinate 'time' is missing")
    else:
        try:
            times = decode_times(ds.variables["time"]).astype("datetime64[D]")
            step = np.diff(times.astype("int64"))
            if np.any(step < 0):
                problems.append("time stamps are not sorted")
                times = None
            elif np.any(step == 0):
                res.quality["repeated_dates"] = int(np.count_nonzero(step == 0))
                dup = sorted({str(t) for t, d in zip(times[1:], step, strict=True) if d == 0})
                res.warnings.append(
                    f"{int(np.count_nonzero(step == 0))} repeated date(s) ({', '.join(dup)}): a short "
                    "series padded with its last image, as the reference writer does"
                )
        except (AttributeError, ValueError, TypeError) as exc:
            problems.append(f"coordinate 'time' is not decodable ({exc})")
    if "spatial_ref" not in ds.variables:
        problems.append("variable 'spatial_ref' is missing")
    else:
        sr = ds.variables["spatial_ref"]
        if sr.ndim != 0 or sr.dtype != np.int64:
            problems.append(
                f"variable 'spatial_ref' should be an int64 scalar, found {sr.dtype} "
                f"with dims {sr.dimensions}"
            )
        if not any(a in sr.ncattrs() for a in ("crs_wkt", "spatial_ref")):
            problems.append("variable 'spatial_ref' carries no CRS attribute (crs_wkt)")
    # variables
    mask0 = None
    s1_frames: list[np.ndarray] = []
    if sensor is not None:
        expected = VARIABLES[sensor]
        for var, dtype in expected.items():
            if var not in ds.variables:
                problems.append(f"variable {var!r} is missing")
                continue
            v = ds.variables[var]
            if v.dtype != dtype:
                problems.append(f"variable {var!r} has dtype {v.dtype}, expected {dtype}")
            if set(v.dimensions) != {"time", "x", "y"} or v.ndim != 3 or v.dimensions[0] != "time":
                problems.append(
                    f"variable {var!r} has dims {v.dimensions}, expected (time, x, y) or (time, y, x)"
                )
            try:
                values = v[:]  # decompress every chunk: data that cannot be read make the file invalid
            except (OSError, RuntimeError) as exc:
                problems.append(f"variable {var!r} is unreadable ({exc})")
                continue
            if var in S1_BANDS and sensor in S1_SENSORS and values.ndim == 3:
                s1_frames.append(np.asarray(values))
        extra = set(ds.variables) - set(expected) - {"x", "y", "time", "spatial_ref"}
        if extra:
            problems.append(f"unexpected variables for sensor {sensor}: {sorted(extra)}")
        if "MASK" in ds.variables and ds.variables["MASK"].ndim == 3:
            try:
                mask = np.asarray(ds.variables["MASK"][:])
                mask0 = mask[0]
                if not np.isin(np.unique(mask), (0, 1)).all():
                    problems.append(f"MASK holds values other than 0/1: {np.unique(mask)[:10].tolist()}")
                if not (mask == mask0).all():
                    problems.append("MASK is not the same at every time step")
            except (OSError, RuntimeError) as exc:
                problems.append(f"MASK is unreadable ({exc})")
        if "DEM" in ds.variables and ds.variables["DEM"].ndim == 3:
            try:
                dem = np.asarray(ds.variables["DEM"][0])
                lo, hi = DEM_VALID_RANGE
                if dem.min() < lo or dem.max() > hi:
                    problems.append(f"DEM outside {lo}…{hi} m ({dem.min()}…{dem.max()})")
            except (OSError, RuntimeError) as exc:
                problems.append(f"DEM is unreadable ({exc})")
        if sensor == "s2" and "SCL" in ds.variables and ds.variables["SCL"].ndim == 3:
            try:
                scl = np.asarray(ds.variables["SCL"][:])
                known = set(SCL_CLASSES) | {SCL_UNKNOWN}
                bad = [int(c) for c in np.unique(scl) if int(c) not in known]
                if bad:
                    problems.append(f"SCL holds unknown classes {bad}")
                unknown = (scl == SCL_UNKNOWN).reshape(scl.shape[0], -1)
                n_frames, n_whole = int(unknown.any(axis=1).sum()), int(unknown.all(axis=1).sum())
                res.quality.update(scl_unknown_frames=n_frames, scl_unknown_whole_frames=n_whole)
                if n_frames:
                    res.notes.append(
                        f"SCL {SCL_UNKNOWN} (unknown quality, no scene class) in {n_frames} of "
                        f"{scl.shape[0]} frame(s), {n_whole} of them whole: unusable for cloud masks, "
                        "not a format error"
                    )
            except (OSError, RuntimeError) as exc:
                problems.append(f"SCL is unreadable ({exc})")
        if s1_frames:
            counts = [repeated_neighbour_pixels(a) for a in s1_frames]  # per frame, VV and VH
            same = len({c.shape for c in counts}) == 1
            repeats = np.max(counts, axis=0) if same else np.concatenate(counts)
            res.quality.update(
                s1_nan_pixels=int(sum(np.count_nonzero(~np.isfinite(a)) for a in s1_frames)),
                s1_repeat_pixels=int(repeats.max()),
                s1_filled_frames=int(np.count_nonzero(repeats >= S1_FILL_MIN_PIXELS)),
            )
    # attributes
    raw = {k: ds.getncattr(k) for k in ds.ncattrs()}
    attrs, attr_problems = parse_attrs(raw)
    problems.extend(attr_problems)
    res.warnings.extend(attrs.notes)
    if attrs.n_undated_events:
        res.warnings.append(
            f"{attrs.n_undated_events} undated event(s) in 'event_date' ({raw.get('event_date')!r})"
            + ("" if attrs.event_dates else ": the patch has no pre/post pair")
        )
    if times is not None and attrs.pre_post:
        res.warnings.extend(pre_post_notes(times, attrs))
    if sensor is not None and "satellite" in raw and attrs.satellite not in SATELLITE_VALUES[sensor]:
        problems.append(
            f"attribute 'satellite' is {attrs.satellite!r}, expected one of "
            f"{sorted(SATELLITE_VALUES[sensor])} for sensor {sensor}"
        )
    if "annotated" in raw and mask0 is not None:
        n_pos = int(mask0.sum())
        if not attrs.annotated and n_pos > 0:
            problems.append(f"annotated='False' but MASK has {n_pos} positive pixels")
    if attrs.annotated and len(attrs.ann_ids) != len(attrs.ann_bboxes) and not attr_problems:
        problems.append(f"{len(attrs.ann_ids)} ann_id values but {len(attrs.ann_bboxes)} ann_bbox values")
