"""The Sen12Landslides patch format as code.

Everything a reader or writer needs to know about one patch file lives here: sensors, variables and
their dtypes, dimension names, the string encodings of the attributes, the Sentinel-2 scene classes,
the file-name pattern and the clip ranges used for statistics. :func:`validate_patch` checks a file
against all of it and returns a list of precise problems instead of stopping at the first one.

The attribute helpers come in pairs (``parse_*`` / ``encode_*``) so that the synthetic generator and
the readers share one definition of each encoding.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------------------------------
# Sensors, dimensions, variables
# --------------------------------------------------------------------------------------------------
SENSORS: tuple[str, ...] = ("s1asc", "s1dsc", "s2")
S1_SENSORS: tuple[str, ...] = ("s1asc", "s1dsc")

N_TIME = 15
PATCH_SIZE = 128
PIXEL_SIZE_M = 10.0
DIMS = ("time", "x", "y")  # order on the dataset card and written by our generator
DIMS_REFERENCE = ("time", "y", "x")  # order written by the reference preprocessing
CANONICAL_DIMS = ("time", "y", "x")  # order every reader of this package returns

S2_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
S1_BANDS: tuple[str, ...] = ("VV", "VH")

#: Feature channels per sensor, in the one documented order every loader uses (picked by name).
FEATURES: dict[str, tuple[str, ...]] = {
    "s2": (*S2_BANDS, "DEM"),
    "s1asc": (*S1_BANDS, "DEM"),
    "s1dsc": (*S1_BANDS, "DEM"),
}
#: Variables that are never features (reference reading drops them).
NON_FEATURES: frozenset[str] = frozenset({"MASK", "SCL", "spatial_ref"})

#: Every data variable of a patch with its dtype.
VARIABLES: dict[str, dict[str, np.dtype]] = {
    "s2": {
        **{b: np.dtype("int16") for b in S2_BANDS},
        "SCL": np.dtype("int16"),
        "DEM": np.dtype("int16"),
        "MASK": np.dtype("uint8"),
    },
    "s1asc": {
        "VV": np.dtype("float32"),
        "VH": np.dtype("float32"),
        "DEM": np.dtype("int16"),
        "MASK": np.dtype("uint8"),
    },
    "s1dsc": {
        "VV": np.dtype("float32"),
        "VH": np.dtype("float32"),
        "DEM": np.dtype("int16"),
        "MASK": np.dtype("uint8"),
    },
}

#: Sentinel-2 scene classification (SCL) classes.
SCL_CLASSES: dict[int, str] = {
    0: "no data",
    1: "saturated or defective",
    2: "dark area pixels",
    3: "cloud shadows",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
    11: "snow",
}
#: SCL classes the reference treats as unusable (no data, defective, dark, shadow, clouds, cirrus, snow).
SCL_BAD: frozenset[int] = frozenset({0, 1, 2, 3, 8, 9, 10, 11})
SCL_CLOUD: frozenset[int] = frozenset({8, 9, 10})

#: Clip ranges used for statistics (S1 in dB, S2 reflectance x10000, DEM metres).
CLIP_RANGES: dict[str, tuple[float, float]] = {
    "s1": (-50.0, 10.0),
    "s2": (0.0, 10000.0),
    "DEM": (0.0, 8800.0),
}
DEM_VALID_RANGE = (0, 10000)
S2_SCALE = 10000.0

#: Attributes every patch carries (values are strings as the reference preprocessing writes them).
REQUIRED_ATTRS: tuple[str, ...] = (
    "ann_id",
    "ann_bbox",
    "event_date",
    "date_confidence",
    "pre_post_dates",
    "annotated",
    "satellite",
    "center_lat",
    "center_lon",
    "crs",
)
#: Accepted values of the ``satellite`` attribute per sensor folder (card and reference code differ).
SATELLITE_VALUES: dict[str, frozenset[str]] = {
    "s2": frozenset({"s2"}),
    "s1asc": frozenset({"s1", "s1-asc", "s1asc"}),
    "s1dsc": frozenset({"s1", "s1-dsc", "s1dsc"}),
}

FILENAME_RE = re.compile(r"^(?P<region>.+)_(?P<sensor>s1asc|s1dsc|s2)_(?P<id>\d+)\.nc$")


def sensor_family(sensor: str) -> str:
    """``"s1"`` for both Sentinel-1 orbits, ``"s2"`` for Sentinel-2."""
    check_sensor(sensor)
    return "s2" if sensor == "s2" else "s1"


def check_sensor(sensor: str) -> str:
    """Return ``sensor`` or raise a ValueError that lists the valid names."""
    if sensor not in SENSORS:
        raise ValueError(f"unknown sensor {sensor!r}; expected one of {', '.join(SENSORS)}")
    return sensor


# --------------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PatchName:
    """The parts of ``<region>_<sensor>_<id>.nc``. ``key`` (``<region>_<id>``) is shared across sensors."""

    region: str
    sensor: str
    patch_id: int

    @property
    def key(self) -> str:
        return f"{self.region}_{self.patch_id}"

    @property
    def filename(self) -> str:
        return f"{self.region}_{self.sensor}_{self.patch_id}.nc"


def parse_filename(name: str | Path) -> PatchName:
    """Split a patch file name; the region is everything before ``_<sensor>_<id>`` (it may hold ``_``)."""
    base = Path(name).name
    m = FILENAME_RE.match(base)
    if m is None:
        raise ValueError(
            f"file name {base!r} does not match '<region>_<sensor>_<id>.nc' with sensor in {SENSORS}"
        )
    return PatchName(m["region"], m["sensor"], int(m["id"]))


def patch_filename(region: str, sensor: str, patch_id: int) -> str:
    check_sensor(sensor)
    return f"{region}_{sensor}_{int(patch_id)}.nc"


# --------------------------------------------------------------------------------------------------
# Attribute encodings
# --------------------------------------------------------------------------------------------------
def _split_list(value: str) -> list[str]:
    return [p.strip() for p in str(value).split(",") if p.strip()]


def parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    s = str(value).strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    raise ValueError(f"cannot read {value!r} as a boolean (expected 'True' or 'False')")


def encode_bool(value: bool) -> str:
    return "True" if value else "False"


def parse_dates(value: str) -> list[dt.date]:
    """``"2023-05-16,2023-05-20"`` → dates; empty string → ``[]``."""
    out = []
    for part in _split_list(value):
        try:
            out.append(dt.date.fromisoformat(part[:10]))
        except ValueError as exc:
            raise ValueError(f"cannot read {part!r} as a date (expected YYYY-MM-DD)") from exc
    return out


def encode_dates(dates: Iterable[dt.date | str]) -> str:
    return ",".join(d if isinstance(d, str) else d.isoformat() for d in dates)


def parse_floats(value: str) -> list[float]:
    try:
        return [float(p) for p in _split_list(value)]
    except ValueError as exc:
        raise ValueError(f"cannot read {value!r} as comma-joined numbers") from exc


def encode_floats(values: Iterable[float]) -> str:
    return ",".join(repr(float(v)) for v in values)


def parse_ints(value: str) -> list[int]:
    try:
        return [int(float(p)) for p in _split_list(value)]
    except ValueError as exc:
        raise ValueError(f"cannot read {value!r} as comma-joined integers") from exc


def encode_ints(values: Iterable[int]) -> str:
    return ",".join(str(int(v)) for v in values)


_DICT_RE = re.compile(r"\{[^{}]*\}")


def parse_pre_post(value: str) -> list[tuple[int, int]]:
    """``"{'pre': 7, 'post': 8},{'pre': 3, 'post': 4}"`` → ``[(7, 8), (3, 4)]`` (time-step indices)."""
    value = str(value).strip()
    if not value:
        return []
    chunks = _DICT_RE.findall(value)
    rest = _DICT_RE.sub("", value).replace(",", "").strip()
    if not chunks or rest:
        raise ValueError(
            f"cannot read pre_post_dates {value!r} (expected \"{{'pre': i, 'post': j}}\", comma-joined)"
        )
    out = []
    for chunk in chunks:
        try:
            d = ast.literal_eval(chunk)
            pre, post = int(d["pre"]), int(d["post"])
        except (ValueError, SyntaxError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read pre_post_dates entry {chunk!r}") from exc
        if not (0 <= pre <= post < N_TIME):
            raise ValueError(f"pre_post_dates entry {chunk!r} is out of range (0 <= pre <= post < {N_TIME})")
        out.append((pre, post))
    return out


def encode_pre_post(pairs: Iterable[tuple[int, int]]) -> str:
    return ",".join(f"{{'pre': {int(a)}, 'post': {int(b)}}}" for a, b in pairs)


_BBOX_RE = re.compile(r"[\(\[]([^\(\)\[\]]*)[\)\]]")


def parse_bboxes(value: str) -> list[tuple[float, float, float, float]]:
    """Comma-joined bbox strings → ``[(minx, miny, maxx, maxy), …]``.

    Accepts ``"(a, b, c, d),(…)"`` / ``"[a, b, c, d],[…]"`` and, without brackets, a flat list whose
    length is a multiple of four.
    """
    value = str(value).strip()
    if not value:
        return []
    groups = _BBOX_RE.findall(value)
    if groups:
        if _BBOX_RE.sub("", value).replace(",", "").strip():
            raise ValueError(f"cannot read ann_bbox {value!r}: text outside the bracketed boxes")
        nums = [parse_floats(g) for g in groups]
    else:
        flat = parse_floats(value)
        if len(flat) % 4:
            raise ValueError(f"cannot read ann_bbox {value!r}: {len(flat)} numbers is not a multiple of 4")
        nums = [flat[i : i + 4] for i in range(0, len(flat), 4)]
    if any(len(n) != 4 for n in nums):
        raise ValueError(f"cannot read ann_bbox {value!r}: every bbox needs 4 numbers")
    return [tuple(n) for n in nums]  # type: ignore[misc]


def encode_bboxes(bboxes: Iterable[Sequence[float]]) -> str:
    return ",".join("(" + ", ".join(f"{float(v):.2f}" for v in b) + ")" for b in bboxes)


_EPSG_RE = re.compile(r"^EPSG:(\d{4,5})$")


def parse_crs(value: str) -> int:
    """``"EPSG:32632"`` → ``32632``."""
    m = _EPSG_RE.match(str(value).strip())
    if m is None:
        raise ValueError(f"cannot read crs {value!r} (expected 'EPSG:<code>')")
    return int(m[1])


@dataclass
class PatchAttrs:
    """Typed view of a patch's global attributes."""

    annotated: bool
    ann_ids: list[int] = field(default_factory=list)
    ann_bboxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    event_dates: list[dt.date] = field(default_factory=list)
    date_confidences: list[float] = field(default_factory=list)
    pre_post: list[tuple[int, int]] = field(default_factory=list)
    satellite: str = ""
    center_x: float = float("nan")
    center_y: float = float("nan")
    epsg: int = 0


def parse_attrs(attrs: Mapping[str, object]) -> tuple[PatchAttrs, list[str]]:
    """Parse raw global attributes; returns the typed attributes and a list of problems found.

    Unparsable or missing values are reported and left at their defaults, so a caller can decide
    whether to raise (:mod:`s12ls_utils.io`) or to list (:func:`validate_patch`).
    """
    problems: list[str] = []
    out = PatchAttrs(annotated=False)

    def get(name: str, parser, target: str) -> None:
        if name not in attrs:
            problems.append(f"attribute {name!r} is missing")
            return
        try:
            setattr(out, target, parser(attrs[name]))
        except (ValueError, TypeError) as exc:
            problems.append(f"attribute {name!r} is unparsable: {exc}")

    get("annotated", parse_bool, "annotated")
    get("ann_id", parse_ints, "ann_ids")
    get("ann_bbox", parse_bboxes, "ann_bboxes")
    get("event_date", parse_dates, "event_dates")
    get("date_confidence", parse_floats, "date_confidences")
    get("pre_post_dates", parse_pre_post, "pre_post")
    get("satellite", lambda v: str(v).strip(), "satellite")
    get("center_lon", lambda v: float(v), "center_x")
    get("center_lat", lambda v: float(v), "center_y")
    get("crs", parse_crs, "epsg")
    if out.annotated and not out.event_dates and "event_date" in attrs:
        problems.append("attribute 'event_date' is empty although annotated='True'")
    if (
        len(out.pre_post) not in (0, len(out.event_dates))
        and "pre_post_dates" in attrs
        and "event_date" in attrs
    ):
        problems.append(
            f"attribute 'pre_post_dates' has {len(out.pre_post)} entries for "
            f"{len(out.event_dates)} event date(s)"
        )
    return out, problems


def encode_attrs(a: PatchAttrs) -> dict[str, str]:
    """The string attributes a writer puts on a patch (inverse of :func:`parse_attrs`)."""
    return {
        "ann_id": encode_ints(a.ann_ids),
        "ann_bbox": encode_bboxes(a.ann_bboxes),
        "event_date": encode_dates(a.event_dates),
        "date_confidence": encode_floats(sorted(set(a.date_confidences))),
        "pre_post_dates": encode_pre_post(a.pre_post),
        "annotated": encode_bool(a.annotated),
        "satellite": a.satellite,
        "center_lat": repr(float(a.center_y)),
        "center_lon": repr(float(a.center_x)),
        "crs": f"EPSG:{a.epsg}",
    }


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------
def validate_patch(path: str | Path) -> list[str]:
    """Check one patch file against the format; return every problem found (empty list = valid).

    Checked: file name, readability, dimensions and their sizes, coordinates (x/y spacing, y
    descending, time sorted), ``spatial_ref``, every variable's presence, dtype and dims, DEM range,
    MASK values and that MASK is the same at every time step, SCL classes, attributes (present and
    parsable, consistent with the folder's sensor and with the mask).
    """
    import netCDF4  # local: keep `schema` importable without the I/O stack

    path = Path(path)
    problems: list[str] = []
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
        return [*problems, f"file {path} does not exist"]
    try:
        ds = netCDF4.Dataset(path, "r")
    except OSError as exc:
        return [*problems, f"not a readable NetCDF/HDF5 file ({exc})"]
    with ds:
        ds.set_auto_mask(False)
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
                        f"coordinate {coord!r} spacing is not {want:+g} m "
                        f"(found {step.min():g}…{step.max():g})"
                    )
        if "time" not in ds.variables:
            problems.append("coordinate 'time' is missing")
        else:
            try:
                times = netCDF4.num2date(
                    ds.variables["time"][:], ds.variables["time"].units, only_use_cftime_datetimes=False
                )
                tnum = np.asarray(ds.variables["time"][:], dtype="float64")
                if np.any(np.diff(tnum) <= 0):
                    problems.append("time stamps are not strictly increasing")
                del times
            except (AttributeError, ValueError) as exc:
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
                    v[:]  # decompress every chunk: data that cannot be read make the file invalid
                except (OSError, RuntimeError) as exc:
                    problems.append(f"variable {var!r} is unreadable ({exc})")
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
                    scl = np.unique(np.asarray(ds.variables["SCL"][:]))
                    bad = [int(c) for c in scl if int(c) not in SCL_CLASSES]
                    if bad:
                        problems.append(f"SCL holds unknown classes {bad}")
                except (OSError, RuntimeError) as exc:
                    problems.append(f"SCL is unreadable ({exc})")
        # attributes
        raw = {k: ds.getncattr(k) for k in ds.ncattrs()}
        attrs, attr_problems = parse_attrs(raw)
        problems.extend(attr_problems)
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
    return problems
