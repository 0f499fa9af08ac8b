"""The Sen12Landslides patch format as code.

Everything a reader or writer needs to know about one patch file lives here: sensors, variables and
their dtypes, dimension names, the string encodings of the attributes, the Sentinel-2 scene classes,
the file-name pattern, the clip ranges used for statistics and the two releases of the data (``raw`` and
``harmonized``: :data:`S2_OFFSET`, :data:`S2_OFFSET_FROM`). :func:`check_patch` checks a file against all
of it and returns every error and warning instead of stopping at the first one (:func:`validate_patch`
returns the errors), with quality notes and figures that are facts of the real files, not format errors:
SCL 255 frames (:data:`SCL_UNKNOWN`), repeated dates, and Sentinel-1 gaps (NaN, or filled by
copying neighbours: :func:`repeated_neighbour_pixels`).

The attribute helpers come in pairs (``parse_*`` / ``encode_*``): the readers parse with the first, the
synthetic generator writes with the second, so both share one definition of each encoding. How the dataset's own writer fills the attributes
(``book/appendix-data.md``) decides how they are read:

- ``event_date`` is written from a *set*: several dates come in arbitrary order. :func:`parse_attrs`
  sorts them; the **primary event is the earliest dated one**. An undated annotation writes the token
  ``None`` (``nan``/``NaT`` from other shapefile readers; any case): such entries count as *undated*
  (:attr:`PatchAttrs.n_undated_events`), never as an error.
- ``date_confidence`` holds the *distinct* confidence values (1.0 = date from the inventory, lower = date
  derived upstream from an NDVI drop), not one per event: it is never paired with the events.
- ``pre_post_dates`` holds one dict per ``event_date`` entry, in the same (set) order; it is re-paired
  when the dates are sorted and is only a cross-check: :func:`event_steps` derives the pre/post steps of
  the primary event from the file's time axis, as the writer does (``searchsorted``: ``pre`` = last step
  strictly before the event, ``post`` = first step on or after it; a same-day acquisition is the post
  step). ``{'pre': 0, 'post': 0}`` (event before the series, or undated) and ``{'pre': 14, 'post': 14}``
  (event after it) are therefore never used as indices.
- The time axis is sorted and may repeat a date (the writer pads a short series with its last image).
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
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
DIMS = ("time", "x", "y")  # order of the released files (x-first data) and of our generator
# the order every reader of this package returns (and the reference preprocessing's code uses)
CANONICAL_DIMS = ("time", "y", "x")

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
#: Class 2 ("dark area") also holds topographic shadow; the class set is a parameter wherever masks are
#: made (``bad_classes`` of :func:`scl_usable`), with this set as the default.
SCL_BAD: frozenset[int] = frozenset({0, 1, 2, 3, 8, 9, 10, 11})
#: SCL value of whole frames of unknown quality in the released files (not an ESA class; no ``_FillValue``):
#: 3,285 frames in the 1,133 raw Chimanimani S2 files, also in harmonized files. Never usable.
SCL_UNKNOWN = 255


@functools.lru_cache(maxsize=16)
def _scl_usable_lut(bad_classes: frozenset[int]) -> np.ndarray:
    lut = np.zeros(256, dtype=bool)
    lut[list(SCL_CLASSES)] = True
    lut[[c for c in bad_classes if 0 <= c < lut.size]] = False
    lut.setflags(write=False)
    return lut


def scl_bad_classes(bad_classes: Iterable[int] | None = None) -> frozenset[int]:
    """``bad_classes`` (default :data:`SCL_BAD`) as a frozenset of SCL classes; a ``ValueError`` names any
    value that is not an ESA class (255, unknown quality, is unusable whatever the set)."""
    if bad_classes is None:
        return SCL_BAD
    if isinstance(bad_classes, str | bytes) or not isinstance(bad_classes, Iterable):
        raise ValueError(f"bad_classes must be a collection of SCL classes, not {bad_classes!r}")
    out = set()
    for c in bad_classes:
        if isinstance(c, bool) or not isinstance(c, int | np.integer) or int(c) not in SCL_CLASSES:
            raise ValueError(
                f"bad_classes: {c!r} is not a Sentinel-2 scene class (0-11); 255 is always unusable"
            )
        out.add(int(c))
    return frozenset(out)


def scl_usable(scl, bad_classes: Iterable[int] | None = None) -> np.ndarray:
    """``True`` where a Sentinel-2 pixel is usable, from its scene class: **the one rule** every reader of
    this package applies (the catalog's unusable share, the training cache's validity bits, the cloud mask
    of the indices, the figures' stretches, the generator's bookkeeping).

    Unusable: the classes of ``bad_classes`` (default :data:`SCL_BAD`, the reference's rule: 0 no data,
    1 defective, 2 dark area, 3 cloud shadow, 8/9 cloud, 10 thin cirrus, 11 snow), **255** (unknown quality,
    :data:`SCL_UNKNOWN`) and any other value that is not an ESA class. Usable by default: 4 vegetation,
    5 not vegetated, 6 water, 7 unclassified. Any array shape; a boolean array of the same shape.
    """
    lut = _scl_usable_lut(scl_bad_classes(bad_classes))
    a = np.asarray(scl)
    if a.dtype.kind not in "iu":
        a = np.where(np.isfinite(a), a, -1).astype("int64")
    inside = (a >= 0) & (a < lut.size)
    return inside & lut[np.where(inside, a, 0)]


def unusable_fraction(scl) -> np.ndarray:
    """Per time step of a ``(time, …)`` SCL stack, the share of pixels :func:`scl_usable` calls unusable."""
    bad = ~scl_usable(scl)
    return bad.reshape(bad.shape[0], -1).mean(axis=1)


#: Clip ranges used for statistics (S1 in dB, S2 reflectance x10000, DEM metres).
CLIP_RANGES: dict[str, tuple[float, float]] = {
    "s1": (-50.0, 10.0),
    "s2": (0.0, 10000.0),
    "DEM": (0.0, 8800.0),
}
DEM_VALID_RANGE = (0, 10000)
S2_SCALE = 10000.0

# --------------------------------------------------------------------------------------------------
# Releases
# --------------------------------------------------------------------------------------------------
#: Releases of the data. ``raw``: S1 linear power, S2 as processed by ESA (with the offset below from
#: :data:`S2_OFFSET_FROM` on); ``harmonized``: S1 in dB, S2 offset removed. ``unknown``: not decided.
RELEASES: tuple[str, ...] = ("raw", "harmonized", "unknown")
#: Folder names of the two releases on the hub (``data_raw/…``, ``data_harmonized/…``).
RELEASE_FOLDERS: dict[str, str] = {"data_raw": "raw", "data_harmonized": "harmonized"}
#: DN offset ESA adds to L2A reflectances from processing baseline 04.00 on (``BOA_ADD_OFFSET = -1000``).
S2_OFFSET = 1000
#: First acquisition date whose raw S2 reflectances carry :data:`S2_OFFSET`.
S2_OFFSET_FROM = dt.date(2022, 1, 25)
#: Variables that carry the offset (not SCL, MASK or DEM).
S2_OFFSET_BANDS: tuple[str, ...] = S2_BANDS

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


def clip_range(sensor: str, channel: str, s1_unit: str = "dB") -> tuple[float, float]:
    """The :data:`CLIP_RANGES` entry of one channel of ``sensor``, in the unit the statistics use: the DEM's
    (any case), the sensor family's otherwise; Sentinel-1 bands in dB, or in linear power with
    ``s1_unit="linear"``."""
    if channel.upper() == "DEM":
        return CLIP_RANGES["DEM"]
    lo, hi = CLIP_RANGES[sensor_family(sensor)]
    if channel in S1_BANDS and s1_unit == "linear":
        return 10.0 ** (lo / 10.0), 10.0 ** (hi / 10.0)
    return lo, hi


def check_choice(name: str, value, choices: Iterable):
    """Return ``value`` if it is one of ``choices``, else raise a ValueError that names ``name``, every choice
    and the value given: the one check behind every "is X one of the choices" of the package."""
    choices = tuple(choices)
    if value in choices:
        return value
    *others, last = map(repr, choices)
    listed = f"{', '.join(others)} or {last}" if others else last
    raise ValueError(f"{name} must be {listed}, not {value!r}")


def check_sensor(sensor: str) -> str:
    """Return ``sensor`` or raise a ValueError that lists the valid names."""
    return check_choice("sensor", sensor, SENSORS)


def check_sensors(sensors: str | Iterable[str]) -> tuple[str, ...]:
    """One sensor name or several as a tuple, each checked (:func:`check_sensor`), repeats dropped."""
    sensors = (sensors,) if isinstance(sensors, str) else sensors
    return tuple(dict.fromkeys(check_sensor(s) for s in sensors))


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


#: Tokens an undated entry is written as (``str(None)``, ``str(nan)``, ``str(NaT)``), compared in lower case.
UNDATED_TOKENS: frozenset[str] = frozenset({"none", "nan", "nat"})


def is_undated(token: object) -> bool:
    """True for the tokens of an undated entry (``None``, ``nan``, ``NaT``; any case, spaces ignored)."""
    return str(token).strip().lower() in UNDATED_TOKENS


def parse_event_entries(value: str) -> list[dt.date | None]:
    """Every entry of ``event_date`` in the written order, ``None`` for an undated one."""
    out: list[dt.date | None] = []
    for part in _split_list(value):
        if is_undated(part):
            out.append(None)
            continue
        try:
            out.append(dt.date.fromisoformat(part[:10]))
        except ValueError as exc:
            raise ValueError(f"cannot read {part!r} as a date (expected YYYY-MM-DD or None)") from exc
    return out


def parse_dates(value: str) -> list[dt.date]:
    """``"2023-05-16,2023-05-20"`` → dates in the written order; empty string → ``[]``.

    Undated entries (``None``/``nan``/``NaT``) are left out; :func:`parse_event_entries` keeps them.
    """
    return [d for d in parse_event_entries(value) if d is not None]


def encode_dates(dates: Iterable[dt.date | str]) -> str:
    return ",".join(d if isinstance(d, str) else d.isoformat() for d in dates)


def parse_floats(value: str) -> list[float]:
    try:
        return [float(p) for p in _split_list(value)]
    except ValueError as exc:
        raise ValueError(f"cannot read {value!r} as comma-joined numbers") from exc


def encode_floats(values: Iterable[float]) -> str:
    return ",".join(repr(float(v)) for v in values)


def parse_confidences(value: str) -> list[float]:
    """``date_confidence`` → its distinct values, ascending; undated tokens (``None``, ``nan``) left out.

    The writer joins ``set(confidences)``: the values are not one per event and are never paired with
    the events. 1.0 = date from the inventory; lower = date derived upstream (an NDVI drop).
    """
    vals = parse_floats(",".join(p for p in _split_list(value) if not is_undated(p)))
    return sorted({v for v in vals if not np.isnan(v)})


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
    """As the writer joins ``str(geom.bounds)``: Python tuple text, every number at full precision."""
    return ",".join(str(tuple(float(v) for v in b)) for b in bboxes)


_EPSG_RE = re.compile(r"^EPSG:(\d{4,5})$")


def parse_crs(value: str) -> int:
    """``"EPSG:32632"`` → ``32632``."""
    m = _EPSG_RE.match(str(value).strip())
    if m is None:
        raise ValueError(f"cannot read crs {value!r} (expected 'EPSG:<code>')")
    return int(m[1])


@dataclass
class PatchAttrs:
    """Typed view of a patch's global attributes.

    ``event_dates`` holds the dated events **sorted chronologically** (the primary event is the first);
    ``n_undated_events`` counts the undated entries (``None``/``nan``/``NaT``) of ``event_date``.
    ``pre_post`` holds the ``pre_post_dates`` entries of the dated events, re-paired to follow the sorted
    dates (empty when the attribute is missing or its entries cannot be paired); it is a cross-check
    only: :func:`event_steps` derives the steps from the time axis. ``date_confidences`` holds the
    distinct confidence values, ascending (not one per event). ``notes`` lists oddities that do not stop
    a reader (they are warnings of :func:`check_patch`).
    """

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
    n_undated_events: int = 0
    notes: list[str] = field(default_factory=list, compare=False, repr=False)

    @property
    def event_date(self) -> dt.date | None:
        """The primary event: the earliest dated one (None when no event is dated)."""
        return self.event_dates[0] if self.event_dates else None

    @property
    def undated(self) -> bool:
        """True when the patch is annotated (or lists an event) but no event carries a date."""
        return not self.event_dates and (self.annotated or self.n_undated_events > 0)


def parse_attrs(attrs: Mapping[str, object]) -> tuple[PatchAttrs, list[str]]:
    """Parse raw global attributes; returns the typed attributes and a list of problems found.

    Unparsable or missing values are reported and left at their defaults, so a caller can decide
    whether to raise (:mod:`s12ls_utils.io`) or to list (:func:`check_patch`). Undated entries and a
    ``pre_post_dates`` that cannot be paired with the events are no problems: they are described in
    ``notes`` of the result.
    """
    problems: list[str] = []
    out = PatchAttrs(annotated=False)

    def get(name: str, parser, target: str | None = None):
        if name not in attrs:
            problems.append(f"attribute {name!r} is missing")
            return None
        try:
            value = parser(attrs[name])
        except (ValueError, TypeError) as exc:
            problems.append(f"attribute {name!r} is unparsable: {exc}")
            return None
        if target is not None:
            setattr(out, target, value)
        return value

    get("annotated", parse_bool, "annotated")
    get("ann_id", parse_ints, "ann_ids")
    get("ann_bbox", parse_bboxes, "ann_bboxes")
    entries = get("event_date", parse_event_entries)
    get("date_confidence", parse_confidences, "date_confidences")
    pairs = get("pre_post_dates", parse_pre_post)
    get("satellite", lambda v: str(v).strip(), "satellite")
    get("center_lon", lambda v: float(v), "center_x")
    get("center_lat", lambda v: float(v), "center_y")
    get("crs", parse_crs, "epsg")
    if entries is not None:
        dated = [(d, i) for i, d in enumerate(entries) if d is not None]
        order = sorted(dated)  # chronological; the written (set) order is arbitrary
        out.event_dates = [d for d, _ in order]
        out.n_undated_events = len(entries) - len(dated)
        if pairs is not None and pairs:
            if len(pairs) == len(entries):
                out.pre_post = [pairs[i] for _, i in order]
            else:
                out.notes.append(
                    f"attribute 'pre_post_dates' has {len(pairs)} entries for {len(entries)} event date(s): "
                    "not used"
                )
        if out.annotated and not entries:
            out.notes.append("attribute 'event_date' is empty although annotated='True': read as undated")
    elif pairs:  # event_date missing or unparsable: the pairs cannot be attributed to dates
        out.notes.append("attribute 'pre_post_dates' cannot be paired with 'event_date': not used")
    return out, problems


# --------------------------------------------------------------------------------------------------
# Event position on the time axis
# --------------------------------------------------------------------------------------------------
#: Where the primary event lies relative to a patch's series (see :func:`event_steps`).
EVENT_POSITIONS: tuple[str, ...] = ("inside", "before", "after", "undated", "none")


def to_days(values, errors: str = "raise") -> np.ndarray:
    """Anything date-like (datetime64, dates, timestamps, ISO text; one value or many) → a ``datetime64[D]`` array
    (time of day dropped, missing values NaT). Text that is no date raises, or is NaT with ``errors="coerce"``."""
    arr = np.atleast_1d(np.asarray(values))
    if arr.dtype.kind != "M":
        import pandas as pd

        arr = pd.to_datetime(pd.Series(arr.ravel()), errors=errors).to_numpy("datetime64[ns]")
    return arr.astype("datetime64[ns]").astype("datetime64[D]")


def _event_index(times, event: dt.date) -> tuple[int, int]:
    """``(searchsorted index, n)``: steps strictly before ``event`` (days) and the series length."""
    days = to_days(times)
    return int(np.searchsorted(days, np.datetime64(event, "D"), side="left")), int(days.size)


@dataclass(frozen=True)
class EventSteps:
    """The primary event of a patch on its time axis (what :func:`event_steps` returns).

    ``pre`` is the last step strictly before the event (-1 when there is none), ``post`` the first step
    on or after it (``n_steps`` when there is none): ``0…pre`` are pre-event and ``post…n_steps−1``
    post-event images. ``position``: ``inside`` (both exist: a valid pre/post pair), ``before`` (the event
    is on or before the first date: every image is post-event), ``after`` (every image is pre-event),
    ``undated`` (annotated, but no event carries a date: nothing is known) or ``none`` (no event).
    """

    event_date: dt.date | None
    position: str
    pre: int
    post: int
    n_steps: int

    @property
    def has_pair(self) -> bool:
        """True when the series has images both before and after the event."""
        return self.position == "inside"

    @property
    def n_before(self) -> int:
        """Images strictly before the event (0 without a dated event)."""
        return self.pre + 1 if self.event_date is not None else 0

    @property
    def n_after(self) -> int:
        """Images on or after the event (0 without a dated event)."""
        return self.n_steps - self.post if self.event_date is not None else 0

    @property
    def pair(self) -> tuple[int, int] | None:
        """``(pre, post)`` when :attr:`has_pair`, else None."""
        return (self.pre, self.post) if self.has_pair else None


def event_steps(times, event_dates: Sequence[dt.date] = (), *, undated: bool = False) -> EventSteps:
    """Where the primary (earliest dated) event falls on the sorted time axis ``times``.

    The rule is the reference writer's: ``idx = searchsorted(days, event)``; ``pre = idx − 1``, ``post =
    idx`` (a same-day acquisition is the post step; repeated dates are fine). Without a dated event the
    position is ``undated`` when ``undated`` is true (the patch is annotated or lists undated events),
    else ``none``; both have ``pre = -1`` and ``post = n_steps``.
    """
    n = int(np.asarray(times).size)
    dated = sorted(d for d in event_dates if d is not None)
    if not dated:
        return EventSteps(None, "undated" if undated else "none", -1, n, n)
    ev = dated[0]
    idx, n = _event_index(times, ev)
    position = "before" if idx == 0 else "after" if idx == n else "inside"
    return EventSteps(ev, position, idx - 1, idx, n)


def patch_event_steps(times, attrs: PatchAttrs) -> EventSteps:
    """:func:`event_steps` of a patch from its parsed attributes."""
    return event_steps(times, attrs.event_dates, undated=attrs.undated)


def writer_pre_post(times, event: dt.date | None) -> tuple[int, int]:
    """The ``pre_post_dates`` entry the reference writer puts for ``event``: ``(idx−1, idx)`` inside the
    series, ``(0, 0)`` when the event is on/before the first date or undated, ``(n−1, n−1)`` after it."""
    if event is None:
        return 0, 0
    idx, n = _event_index(times, event)
    if idx == 0:
        return 0, 0
    if idx == n:
        return n - 1, n - 1
    return idx - 1, idx


def pre_post_notes(times, attrs: PatchAttrs) -> list[str]:
    """Disagreements between ``pre_post_dates`` and what the time axis gives (empty when they agree)."""
    notes = []
    for d, got in zip(attrs.event_dates, attrs.pre_post, strict=False):
        want = writer_pre_post(times, d)
        if tuple(got) != want:
            notes.append(
                f"attribute 'pre_post_dates' gives {tuple(got)} for event {d.isoformat()}, the time axis "
                f"{want}: the time axis is used"
            )
    return notes


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------
class FormatWarning(UserWarning):
    """Something in a patch that a reader handles, but a person may want to know (see :func:`check_patch`)."""


#: Values at which the writer clips Sentinel-1 (raw: linear ≤ 1, 0 for no return; harmonized: −50…10 dB):
#: pixels there repeat their neighbours without any gap filling, so :func:`repeated_neighbour_pixels` skips them.
S1_CLIP_VALUES: tuple[float, ...] = (-50.0, 0.0, 1.0, 10.0)
#: Pixels of one Sentinel-1 frame that repeat a 4-neighbour's value exactly, from which :func:`check_patch`
#: counts the frame as gap-filled. The writer fills gaps by copying the nearest valid pixel, which leaves runs
#: of identical values; measured float backscatter hardly ever repeats exactly (at most 28 pixels of a frame in
#: the synthetic sample written with NaN gaps). Chosen on the sample; not checked against the real files.
S1_FILL_MIN_PIXELS = 64


def repeated_neighbour_pixels(frames: np.ndarray, skip: Sequence[float] = S1_CLIP_VALUES) -> np.ndarray:
    """Per frame of ``frames`` (``(time, a, b)``, either spatial order): the pixels whose value equals one of
    their four neighbours exactly. Non-finite values and values in ``skip`` (clip limits) never count.

    A gap filled with the nearest valid pixel's value shows as such a run; natural float backscatter does not
    repeat exactly, so the count is a trace of filling (:data:`S1_FILL_MIN_PIXELS`), not a proof of it."""
    v = np.asarray(frames)
    eq = np.zeros(v.shape, dtype=bool)
    along_b = v[:, :, 1:] == v[:, :, :-1]
    along_a = v[:, 1:, :] == v[:, :-1, :]
    eq[:, :, 1:] |= along_b
    eq[:, :, :-1] |= along_b
    eq[:, 1:, :] |= along_a
    eq[:, :-1, :] |= along_a
    eq &= np.isfinite(v)
    for value in skip:
        eq &= v != value
    return eq.sum(axis=(1, 2))


#: Keys of :attr:`PatchCheck.quality` (each 0 where it does not apply).
QUALITY_KEYS: tuple[str, ...] = (
    "repeated_dates",
    "scl_unknown_frames",
    "scl_unknown_whole_frames",
    "s1_nan_pixels",
    "s1_repeat_pixels",
    "s1_filled_frames",
)


@dataclass
class PatchCheck:
    """What :func:`check_patch` finds: ``errors`` make a file invalid, ``warnings`` do not, ``notes`` are facts
    of the data's quality (SCL 255 frames) that are no fault of the file.

    ``quality`` holds the file's figures (:data:`QUALITY_KEYS`): ``repeated_dates`` (time steps equal to the
    one before), ``scl_unknown_frames`` / ``scl_unknown_whole_frames`` (S2 frames with any / only SCL 255),
    ``s1_nan_pixels`` (non-finite VV/VH values: gaps left unfilled), ``s1_repeat_pixels`` (the most pixels of
    one VV or VH frame that repeat a neighbour exactly, :func:`repeated_neighbour_pixels`) and
    ``s1_filled_frames`` (frames with at least :data:`S1_FILL_MIN_PIXELS` of them).
    """

    path: Path
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quality: dict[str, int] = field(default_factory=lambda: dict.fromkeys(QUALITY_KEYS, 0))

    @property
    def ok(self) -> bool:
        return not self.errors
