"""A faithful synthetic mini copy of Sen12Landslides.

The real dataset cannot be downloaded everywhere (and not at all on the machines that build this book),
so every chapter runs by default on a small synthetic copy written by :func:`make_sample`. The copy
has the same folders, file names, variables, dimension order, dtypes, coordinates, attributes (with
their string encodings) and inventory file as the real data; only the pixel values are simulated.

Each patch is written the way the dataset's own writer writes it (``../shared/reference/REAL-FORMAT.md``):

- every variable ``(time, y, x)``, in the writer's order (``VH, VV, MASK, DEM``; ``B02 … B12, SCL, MASK,
  DEM``); ``x``/``y`` float64 pixel top/left **edges** (``x = x0 + 10 i``, ``y = y0 − 10 j``); ``time`` sorted,
  stored as days since the first date (xarray's default encoding); ``spatial_ref`` an int64 scalar;
- S1 float32 (``_FillValue`` NaN), raw values clipped to at most 1 (linear); S2 bands and SCL int16 without
  ``_FillValue``, after the writer's treatment of each image (0 → NaN, clip to [0, 10000], NaN → nearest
  valid pixel), so no-data edges of the swath come out filled; MASK uint8, DEM int16;
- attributes as strings, except ``center_lat``/``center_lon`` (float64 ``y[64]``, ``x[64]``: the patch centre,
  a pixel corner); ``satellite`` ``s1-asc``/``s1-dsc``/``s2``; ``event_date`` and ``date_confidence`` the
  distinct values in set order (drawn, so two events are not always chronological); an undated annotation
  writes ``None`` (the default sample holds one, small samples may not);
  ``pre_post_dates`` one dict per ``event_date`` entry in the same order (the writer's ``searchsorted`` rule);
- a short series is padded by repeating its last image and date (every sample holds one);
- region names as in the real data (``hokkaido``, ``usa_alaska``, …).

The one deliberate difference: variables are zlib-compressed (lossless), which keeps a sample small; the
real files are uncompressed.

What is simulated (per location, on a small "canvas" that one or two overlapping patches are cut from):

- **Terrain**: fractal relief (spectral synthesis) on a regional base height; slope and aspect from it.
- **Land cover**: vegetation fraction with a seasonal cycle (hemisphere- and climate-dependent),
  bare/built areas, water in valley bottoms, agricultural parcels on gentle ground and forest
  clear-cuts on any slope, mostly harvested or cut within a month of the event (vegetation loss that
  is *not* a landslide: rectangular, turning to ordinary soil rather than bright fresh scar).
- **Landslides** (annotated canvases): elongated polygons oriented downslope, placed preferentially
  on steep vegetated slopes, sizes from a few pixels to hundreds (log-normal). After their event date
  they replace vegetation by fresh soil/rock: NIR drops, red and SWIR rise (NDVI drop), VH backscatter
  drops and VV roughens. Some canvases hold two events; the mask is the rasterised inventory.
- **Sentinel-2**: linear mixing of vegetation / soil / scar / water spectra (reflectance x10000),
  topographic illumination, haze, sensor noise, clouds (bright in all bands) with their shadows, thin
  cirrus, snow on high winter ground, no-data edges; SCL classes derived consistently. The first
  dates after an event are cloudier (storms trigger landslides).
- **Sentinel-1**: linear sigma0 per land cover with local-incidence-angle modulation for the
  ascending (east-looking) and descending (west-looking) geometry, layover/shadow as NaN, soil
  moisture changes per date and multiplicative gamma speckle.

By default the copy is the **raw release** (``data_raw``): Sentinel-1 in linear power and Sentinel-2 as
ESA delivers it, i.e. bands B02…B12 of dates from 2022-01-25 (processing baseline 04.00) carry the +1000
DN offset (clipped to 10000). ``synthetic_manifest.json`` records ``"release": "raw"``, so every reader of
:mod:`s12ls_utils` (which harmonises raw Sentinel-2 by default, :func:`s12ls_utils.io.harmonize_s2`)
recovers the simulated reflectances. ``make_sample(…, release="harmonized")`` (``s12ls synth --release
harmonized``) writes the **harmonized release** of the same scenes instead: Sentinel-1 in dB bounded to
[−50, 10], the Sentinel-2 offset removed and values bounded to [0, 10000], DEM bounded to [0, 8800]; the
manifest then records ``"release": "harmonized"``.

The manifest's file records give ``event_dates`` (the dated events, chronological), ``pre_post`` (paired
with them), ``times`` (padded series repeat their last date), ``event_outside_series`` (``before``,
``after``, ``undated`` or None), and what the file says: ``event_date_attr``, ``n_undated_events`` and
``n_padded`` (repeated last images).

The generator writes ``synthetic_manifest.json`` (its own record of every file, used by tests) and a
``README.md`` saying the data are synthetic. It also writes large sets for scaling measurements
(``n_per_sensor=2000``, about 6,000 files): each canvas's files are written as soon as it is simulated,
so peak memory does not grow with the sample, and worker processes write byte-identical files to a
serial run (every canvas has its own seed).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__, schema
from .parallel import default_workers

MANIFEST_NAME = "synthetic_manifest.json"
INVENTORY_NAME = "inventories.shp.zip"
DEFAULT_N_PER_SENSOR = 54  # about 60 locations
#: Releases :func:`make_sample` writes (the hub's ``data_raw`` and ``data_harmonized``).
SAMPLE_RELEASES: tuple[str, ...] = ("raw", "harmonized")


@dataclass(frozen=True)
class Region:
    name: str
    epsg: int
    lon: float
    lat: float
    event_date: str
    weight: float
    base_elevation: float  # m
    season_amplitude: float  # relative amplitude of the vegetation cycle
    southern: bool = False
    snow: bool = False
    s1_revisit: int = 12  # days


#: Regions of the synthetic copy (real inventories' places and event dates; sizes differ on purpose).
REGIONS: tuple[Region, ...] = (
    Region("italy", 32632, 11.85, 44.15, "2023-05-16", 0.30, 250, 0.28),
    Region("chimanimani", 32736, 32.87, -19.80, "2019-03-15", 0.20, 900, 0.18, southern=True, s1_revisit=6),
    Region("hokkaido", 32654, 141.95, 42.76, "2018-09-06", 0.20, 120, 0.30, snow=True, s1_revisit=6),
    Region("usa_puertorico", 32619, -66.60, 18.20, "2017-09-20", 0.15, 350, 0.08, s1_revisit=6),
    Region("usa_alaska", 32606, -135.45, 59.23, "2020-12-02", 0.15, 300, 0.40, snow=True, s1_revisit=6),
)
REGION_BY_NAME = {r.name: r for r in REGIONS}

#: Presence patterns of a location across sensors and their probabilities (at least one sensor each).
_PRESENCE = (
    (("s1asc", "s1dsc", "s2"), 0.75),
    (("s2",), 0.07),
    (("s1asc", "s1dsc"), 0.06),
    (("s1asc", "s2"), 0.07),
    (("s1dsc", "s2"), 0.03),
    (("s1asc",), 0.02),
)
_P_SENSOR = {s: sum(p for pat, p in _PRESENCE if s in pat) for s in schema.SENSORS}

# Endmember spectra, reflectance x10000, order B02 B03 B04 B05 B06 B07 B08 B8A B11 B12.
_VEG = np.array([320, 620, 380, 1050, 2700, 3300, 3550, 3700, 1800, 880], dtype="float32")
_SOIL = np.array([1150, 1450, 1750, 2050, 2300, 2500, 2600, 2700, 3200, 2700], dtype="float32")
_SCAR = np.array([1500, 1800, 2150, 2400, 2550, 2700, 2800, 2900, 3700, 3200], dtype="float32")
_WATER = np.array([650, 560, 330, 260, 210, 190, 160, 150, 80, 60], dtype="float32")
_CLOUD = np.array([7200, 7000, 6900, 6900, 6800, 6800, 6700, 6700, 5200, 4100], dtype="float32")
_SNOW = np.array([8200, 8000, 7800, 7600, 7300, 7000, 6700, 6500, 900, 700], dtype="float32")
_BURNED_HAZE = np.array([260, 190, 130, 100, 70, 55, 45, 40, 10, 5], dtype="float32")

# Backscatter (dB) per surface: VV, VH.
_S1_DB = {
    "veg": (-7.5, -13.5),
    "soil": (-12.0, -20.0),
    "scar": (-7.0, -18.5),
    "water": (-21.0, -28.0),
    "field_bare": (-13.0, -21.5),
}
_S1_LOOK_AZIMUTH = {"s1asc": 80.0, "s1dsc": 280.0}  # degrees from north (ground → direction looked)
_S1_INCIDENCE = 39.0


# --------------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------------
@dataclass
class PatchPlan:
    patch_id: int
    col0: int  # column offset of the patch in its canvas
    sensors: tuple[str, ...]


@dataclass
class CanvasPlan:
    index: int
    region: str
    annotated: bool
    x0: float  # west edge, projected metres
    y0: float  # north edge, projected metres
    width: int  # pixels (rows are always 128)
    patches: list[PatchPlan]
    seed: int
    two_events: bool = False
    outside: dict[str, str] = field(default_factory=dict)  # sensor -> "before"/"after": event outside series
    undated: bool = False  # annotated, but the inventory gives no date: ``event_date`` is the token None
    padded: dict[str, int] = field(default_factory=dict)  # sensor -> last image repeated this many times


def _region_centre(reg: Region) -> tuple[float, float]:
    """The region's centre in its own projected CRS (metres)."""
    from pyproj import Transformer

    return Transformer.from_crs(4326, reg.epsg, always_xy=True).transform(reg.lon, reg.lat)


#: Half-width (m) of the square around a region's centre that small samples scatter their canvases over.
_MIN_SPREAD_M = 12000.0
#: Largest share of that square the canvases may cover, counting each at the widest (two-patch) size.
#: Canvases are placed at random without overlap, and random placement jams long before the square is
#: full (near half of it for equal squares), so the square grows with the region's canvas count instead.
_MAX_COVER = 0.2


def _spread_m(n_canvases: int) -> float:
    """Half-width of the placement square of a region holding ``n_canvases`` canvases.

    24 km across up to about 40 canvases per region (every sample of up to ~140 files per sensor, the
    default one included, is placed exactly as before the square could grow); wider beyond, so that
    ``n_per_sensor=2000`` (about 550 canvases in the largest region) still finds room at once.
    """
    widest = (schema.PATCH_SIZE + 96) * schema.PATCH_SIZE * schema.PIXEL_SIZE_M**2
    return max(_MIN_SPREAD_M, 0.5 * float(np.sqrt(n_canvases * widest / _MAX_COVER)))


def _plan(n_per_sensor: int, seed: int) -> list[CanvasPlan]:
    rng = np.random.default_rng(seed)
    n_loc = max(4, int(round(n_per_sensor / np.mean(list(_P_SENSOR.values())))))
    # clusters of one or two overlapping patches
    sizes: list[int] = []
    while sum(sizes) < n_loc:
        sizes.append(2 if (rng.random() < 0.22 and n_loc - sum(sizes) >= 2) else 1)
    n_can = len(sizes)
    weights = np.array([r.weight for r in REGIONS])
    counts = np.maximum(1, np.floor(weights / weights.sum() * n_can)).astype(int)
    while counts.sum() < n_can:
        counts[np.argmax(weights / weights.sum() * n_can - counts)] += 1
    while counts.sum() > n_can:
        counts[np.argmax(counts)] -= 1
    regions = [r.name for r, c in zip(REGIONS, counts, strict=True) for _ in range(c)]
    rng.shuffle(regions)
    pats = [p for p, _ in _PRESENCE]
    probs = np.array([p for _, p in _PRESENCE])
    next_id = int(rng.integers(100, 900))
    canvases = []
    placed: dict[str, list[tuple[float, float, float, float]]] = {}  # canvas boxes per region
    centres = {r.name: _region_centre(r) for r in REGIONS}
    spread = {r.name: _spread_m(int(c)) for r, c in zip(REGIONS, counts, strict=True)}
    for i, (size, region) in enumerate(zip(sizes, regions, strict=True)):
        cx, cy = centres[region]
        half = spread[region]
        dx = int(rng.choice([40, 64, 96])) if size == 2 else 0
        w_m, h_m = (schema.PATCH_SIZE + dx) * schema.PIXEL_SIZE_M, schema.PATCH_SIZE * schema.PIXEL_SIZE_M
        for _ in range(1000):  # canvases of one region never overlap: one terrain per ground point
            x0 = float(np.round((cx + rng.uniform(-half, half)) / 10) * 10)
            y0 = float(np.round((cy + rng.uniform(-half, half)) / 10) * 10)
            box = (x0, y0 - h_m, x0 + w_m, y0)
            if not any(
                box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                for b in placed.setdefault(region, [])
            ):
                break
        else:
            raise RuntimeError(f"no room left for another canvas in region {region}")
        placed[region].append(box)
        patches = []
        for k in range(size):
            next_id += int(rng.integers(1, 40))
            sensors = pats[rng.choice(len(pats), p=probs / probs.sum())]
            patches.append(PatchPlan(next_id, k * dx, tuple(sensors)))
        annotated = bool(rng.random() < 0.55)
        cp = CanvasPlan(
            i, region, annotated, x0, y0, schema.PATCH_SIZE + dx, patches, int(rng.integers(0, 2**31 - 1))
        )
        if annotated:
            cp.two_events = bool(rng.random() < 0.12)
            for s in schema.SENSORS:
                u = rng.random()
                if u < 0.03:
                    cp.outside[s] = "before"  # event precedes the series
                elif u < 0.05:
                    cp.outside[s] = "after"  # event follows the series
        canvases.append(cp)
    _plan_writer_cases(canvases, seed)
    return canvases


#: Share of the eligible canvases (annotated, one event inside every series) whose annotation is undated.
_P_UNDATED = 0.05
#: From this many eligible canvases on, a sample holds undated annotations (at least one; the default
#: sample has about 20 eligible canvases); a smaller sample has none and keeps its few dated events.
_MIN_ELIGIBLE_UNDATED = 10
#: Share of the (canvas, sensor) series that are short and padded with their last image (1-4 repeats).
_P_PADDED = 0.06


def _plan_writer_cases(canvases: list[CanvasPlan], seed: int) -> None:
    """Mark the canvases whose annotation is undated and the series that are padded, in place.

    Drawn from a stream of their own (``[seed, 2]``), so the rest of the plan is what it was before these
    cases existed. A sample with at least ``_MIN_ELIGIBLE_UNDATED`` eligible canvases (the default sample)
    holds an undated annotation, a smaller one none; every sample holds a padded series (the dataset
    writer's cases a reader must handle).
    """
    rng = np.random.default_rng([seed, 2])
    eligible = [c for c in canvases if c.annotated and not c.two_events and not c.outside]
    if len(eligible) >= _MIN_ELIGIBLE_UNDATED:  # small samples keep their few dated events
        for c in eligible:
            c.undated = bool(rng.random() < _P_UNDATED)
        if not any(c.undated for c in eligible):
            eligible[int(rng.integers(len(eligible)))].undated = True
    series = [(c, s) for c in canvases for s in sorted({s for p in c.patches for s in p.sensors})]
    for c, s in series:
        if rng.random() < _P_PADDED:
            c.padded[s] = int(rng.integers(1, 5))
    if series and not any(c.padded for c in canvases):
        c, s = series[int(rng.integers(len(series)))]
        c.padded[s] = int(rng.integers(1, 5))


# --------------------------------------------------------------------------------------------------
# Fields
# --------------------------------------------------------------------------------------------------
def _fractal(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Zero-mean, unit-std noise with power spectrum ~ k^-beta (spectral synthesis)."""
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    amp = k ** (-beta / 2.0)
    amp[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, amp.shape)
    field_ = np.fft.irfft2(amp * np.exp(1j * phase), s=shape)
    field_ -= field_.mean()
    return (field_ / (field_.std() + 1e-12)).astype("float32")


def _gradients(dem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dz/d east, dz/d north) per pixel; rows run southwards."""
    d_row, d_col = np.gradient(dem.astype("float64"), schema.PIXEL_SIZE_M)
    return d_col.astype("float32"), (-d_row).astype("float32")


def slope_aspect(dem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope (degrees) and downslope aspect (degrees from north, clockwise) of a (y, x) DEM."""
    gx, gy = _gradients(dem)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    aspect = (np.degrees(np.arctan2(-gx, -gy)) + 360.0) % 360.0
    return slope.astype("float32"), aspect.astype("float32")


def _cos_incidence(dem: np.ndarray, azimuth: float, elevation: float) -> np.ndarray:
    """Cosine between the surface normal and a direction (azimuth from north, elevation above horizon)."""
    gx, gy = _gradients(dem)
    norm = np.sqrt(1 + gx**2 + gy**2)
    a, e = np.radians(azimuth), np.radians(elevation)
    s = (np.sin(a) * np.cos(e), np.cos(a) * np.cos(e), np.sin(e))
    return ((-gx * s[0] - gy * s[1] + s[2]) / norm).astype("float32")


@dataclass
class Landslide:
    ann_id: int
    event: int  # 0 or 1 (index into the canvas' events)
    polygon_px: np.ndarray  # (n, 2) vertices in canvas pixel coordinates (col, row), continuous
    mask: np.ndarray  # bool (rows, cols) on the canvas


def _polygon_mask(poly: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels of a canvas whose centres lie inside a polygon given in pixel coordinates."""
    import shapely

    h, w = shape
    geom = shapely.Polygon(poly)
    c0, r0, c1, r1 = geom.bounds
    cs = np.arange(max(0, int(np.floor(c0))), min(w, int(np.ceil(c1)) + 1))
    rs = np.arange(max(0, int(np.floor(r0))), min(h, int(np.ceil(r1)) + 1))
    out = np.zeros(shape, dtype=bool)
    if cs.size == 0 or rs.size == 0:
        return out
    cc, rr = np.meshgrid(cs + 0.5, rs + 0.5)
    inside = shapely.contains_xy(geom, cc.ravel(), rr.ravel()).reshape(cc.shape)
    out[np.ix_(rs, cs)] = inside
    return out


def _landslides(
    rng: np.random.Generator,
    slope: np.ndarray,
    aspect: np.ndarray,
    veg: np.ndarray,
    plan: CanvasPlan,
    first_ann_id: int,
) -> list[Landslide]:
    h, w = slope.shape
    # preference: steep, vegetated, away from the canvas edge
    pref = (np.clip(slope - 8.0, 0, None) ** 2) * np.clip(veg, 0.05, None) * (veg > 0)
    pref /= pref.sum()
    slides: list[Landslide] = []
    n_target = 1 + int(rng.poisson(9 if plan.width == schema.PATCH_SIZE else 13))
    ann_id = first_ann_id
    tries = 0
    while len(slides) < n_target and tries < 20 * n_target:
        tries += 1
        idx = rng.choice(h * w, p=pref.ravel())
        r, c = divmod(int(idx), w)
        area = float(np.clip(rng.lognormal(np.log(45), 1.15), 3, 1500))  # pixels
        elong = rng.uniform(1.4, 4.0)
        a = np.sqrt(area * elong / np.pi)  # half-length along the slope
        b = np.sqrt(area / (elong * np.pi))
        theta = np.radians(aspect[r, c])  # downslope direction, from north clockwise
        phi = np.linspace(0, 2 * np.pi, 28, endpoint=False)
        wobble = 1 + sum(rng.normal(0, 0.09) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
        along, across = a * np.cos(phi) * wobble, b * np.sin(phi) * wobble
        # along-slope axis in (col, row): east = +col, north = -row
        dc = along * np.sin(theta) + across * np.cos(theta)
        dr = -along * np.cos(theta) + across * np.sin(theta)
        poly = np.column_stack([c + 0.5 + dc, r + 0.5 + dr])
        mask = _polygon_mask(poly, (h, w))
        if mask.sum() < 1:
            continue
        event = int(plan.two_events and rng.random() < 0.4)
        slides.append(Landslide(ann_id, event, poly, mask))
        ann_id += 1
    # every patch of an annotated canvas holds at least one landslide
    for p in plan.patches:
        cols = slice(p.col0, p.col0 + schema.PATCH_SIZE)
        if not any(s.mask[:, cols].any() for s in slides) and slides:
            s = slides[0]
            shift = p.col0 + schema.PATCH_SIZE // 2 - int(s.polygon_px[:, 0].mean())
            poly = s.polygon_px + np.array([shift, 0.0])
            slides.append(Landslide(ann_id, s.event, poly, _polygon_mask(poly, (h, w))))
            ann_id += 1
    return slides


# --------------------------------------------------------------------------------------------------
# Time axes
# --------------------------------------------------------------------------------------------------
def _dates(
    rng: np.random.Generator,
    anchor: dt.date,
    revisit: int,
    drop: float,
    outside: str | None,
    exclude: Sequence[dt.date] = (),
) -> list[dt.date]:
    """15 acquisition dates around ``anchor``: 5–7 before and the rest after (or all on one side)."""
    phase = int(rng.integers(0, revisit))
    cand = [anchor + dt.timedelta(days=phase + revisit * k) for k in range(-60, 61)]
    # no acquisition on an event day: "post" must be an image taken after the event
    cand = [d for d in cand if d != anchor and d not in exclude and rng.random() >= drop]
    before = [d for d in cand if d < anchor]
    after = [d for d in cand if d > anchor]
    n = schema.N_TIME
    if outside == "before":  # event precedes the series: start 3–6 weeks after it
        skip = int(rng.integers(3, 7))
        return after[skip : skip + n]
    if outside == "after":  # event follows the series
        skip = int(rng.integers(2, 5))
        return before[len(before) - skip - n : len(before) - skip]
    n_before = int(rng.integers(5, 8))
    return before[-n_before:] + after[: n - n_before]


def pre_post_indices(times: Sequence[dt.date], event: dt.date) -> tuple[int, int]:
    """The ``pre_post_dates`` entry the reference writer puts for ``event`` (:func:`schema.writer_pre_post`):
    last step strictly before and first step on or after it; both 0 / both 14 outside the series."""
    return schema.writer_pre_post(np.array(times, dtype="datetime64[D]"), event)


# --------------------------------------------------------------------------------------------------
# Simulation of one canvas
# --------------------------------------------------------------------------------------------------
def _seasonal(doy: np.ndarray, reg: Region) -> np.ndarray:
    peak = 200 if not reg.southern else 20
    return 1.0 + reg.season_amplitude * np.cos(2 * np.pi * (doy - peak) / 365.25) - reg.season_amplitude * 0.3


def _smooth_blobs(rng, shape, frac: float, beta: float = 3.2) -> np.ndarray:
    """Boolean field covering about ``frac`` of the area with smooth blobs."""
    if frac <= 0:
        return np.zeros(shape, dtype=bool)
    if frac >= 1:
        return np.ones(shape, dtype=bool)
    f = _fractal(rng, shape, beta)
    return f > np.quantile(f, 1 - frac)


@dataclass
class _Static:
    dem: np.ndarray
    slope: np.ndarray
    aspect: np.ndarray
    veg0: np.ndarray  # base vegetation fraction
    water: np.ndarray  # bool
    fields: list[tuple[np.ndarray, dt.date, bool]]  # (mask, date, harvest: True veg->bare, False greening)
    soil_gain: float


def _static(rng: np.random.Generator, reg: Region, shape: tuple[int, int]) -> _Static:
    h, w = shape
    # relief: smooth fractal + a ridge/valley trend, scaled so that the median slope is typical of
    # landslide terrain (about 12-30 degrees) rather than set by the noise's pixel-scale roughness
    shape_f = _fractal(rng, shape, 4.4)
    ridge = np.sin(np.linspace(0, rng.uniform(1.0, 2.5) * np.pi, w) + rng.uniform(0, 6))[None, :]
    ridge = ridge * rng.uniform(0.5, 1.5) + np.linspace(0, rng.uniform(-1, 1), h)[:, None]
    f = shape_f + ridge
    gx, gy = _gradients(f)
    scale = np.tan(np.radians(rng.uniform(12, 30))) / float(np.median(np.hypot(gx, gy)))
    dem = reg.base_elevation * rng.uniform(0.6, 1.5) + scale * (f - f.mean())
    dem = np.clip(dem - min(0.0, float(dem.min())) + 5, 0, 10000).astype("float32")
    slope, aspect = slope_aspect(dem)
    low = dem < np.quantile(dem, 0.06)
    water = low & (rng.random() < 0.35) & (slope < 12)
    veg0 = np.clip(0.72 + 0.18 * _fractal(rng, shape, 2.6) - 0.004 * np.clip(slope - 40, 0, None), 0.05, 0.95)
    bare = _smooth_blobs(rng, shape, rng.uniform(0.0, 0.08), 2.8)
    veg0 = np.where(bare, veg0 * 0.2, veg0)
    veg0 = np.where(water, 0.0, veg0).astype("float32")
    fields: list[tuple[np.ndarray, dt.date, bool]] = []
    gentle = slope < 18
    # agricultural parcels on gentle ground (harvested, or greening up)
    for _ in range(int(rng.integers(1, 6))):
        fh, fw = int(rng.integers(10, 36)), int(rng.integers(10, 44))
        r0, c0 = int(rng.integers(0, h - fh)), int(rng.integers(0, w - fw))
        m = np.zeros(shape, dtype=bool)
        m[r0 : r0 + fh, c0 : c0 + fw] = True
        m &= gentle & ~water
        if m.sum() > 20:
            fields.append((m, dt.date(2000, 1, 1), bool(rng.random() < 0.8)))
    # forest clear-cuts on any slope: rectangular vegetation loss that is not a landslide
    for _ in range(int(rng.integers(0, 3))):
        fh, fw = int(rng.integers(8, 26)), int(rng.integers(8, 26))
        r0, c0 = int(rng.integers(0, h - fh)), int(rng.integers(0, w - fw))
        m = np.zeros(shape, dtype=bool)
        m[r0 : r0 + fh, c0 : c0 + fw] = True
        m &= ~water
        if m.sum() > 20:
            fields.append((m, dt.date(2000, 1, 1), True))
    return _Static(dem, slope, aspect, veg0, water, fields, float(rng.uniform(0.85, 1.15)))


def _veg_at(
    st: _Static, reg: Region, day: dt.date, slides: list[Landslide], events: list[dt.date]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vegetation fraction, scar fraction and bare-field mask at one date."""
    doy = day.timetuple().tm_yday
    veg = np.clip(st.veg0 * _seasonal(np.array(doy), reg), 0, 0.97)
    field_bare = np.zeros(st.dem.shape, dtype=bool)
    for m, when, harvest in st.fields:
        after = day >= when
        if harvest == after:
            field_bare |= m
    veg = np.where(
        field_bare,
        0.06,
        np.where(
            np.any([m for m, _, _ in st.fields], axis=0) if st.fields else False, np.maximum(veg, 0.75), veg
        ),
    )
    scar = np.zeros(st.dem.shape, dtype="float32")
    for s in slides:
        if day > events[s.event]:
            scar = np.where(s.mask, 1.0, scar)
    veg = np.where(scar > 0, veg * 0.08, veg)
    return veg.astype("float32"), scar, field_bare


def _simulate_s2(
    rng, st: _Static, reg: Region, times: list[dt.date], slides, events
) -> dict[str, np.ndarray]:
    h, w = st.dem.shape
    n = len(times)
    bands = np.empty((n, 10, h, w), dtype="float32")
    scl = np.empty((n, h, w), dtype="int16")
    sun_az = 150.0 if not reg.southern else 30.0
    first_post = min(events) if events else None
    for t, day in enumerate(times):
        doy = day.timetuple().tm_yday
        sun_el = 35 + 25 * np.cos(2 * np.pi * (doy - (172 if not reg.southern else 355)) / 365.25)
        illum = np.clip(_cos_incidence(st.dem, sun_az, sun_el) / np.sin(np.radians(sun_el)), 0.35, 1.6)
        veg, scar, field_bare = _veg_at(st, reg, day, slides, events)
        soil = _SOIL * st.soil_gain
        refl = (
            veg[None] * _VEG[:, None, None]
            + (1 - veg - scar * 0.92)[None] * soil[:, None, None]
            + (scar * 0.92)[None] * _SCAR[:, None, None]
        )
        refl = np.where(st.water[None], _WATER[:, None, None], refl)
        refl = refl * illum[None] + _BURNED_HAZE[:, None, None] * rng.uniform(0, 1.2)
        refl *= 1 + rng.normal(0, 0.02, size=(10, h, w)).astype("float32")
        refl += rng.normal(0, 25, size=(10, h, w)).astype("float32")
        cls = np.where(st.water, 6, np.where(veg > 0.4, 4, 5)).astype("int16")
        cls[rng.random((h, w)) < 0.01] = 7
        # snow on high ground in winter
        if reg.snow:
            winter = np.cos(2 * np.pi * (doy - (15 if not reg.southern else 196)) / 365.25)
            if winter > 0.3:
                line = np.quantile(st.dem, 1 - min(1.0, (winter - 0.3) * 1.2))
                snow = st.dem > line
                refl = np.where(snow[None], _SNOW[:, None, None] * rng.uniform(0.85, 1.0), refl)
                cls[snow] = 11
        # clouds: cloudier just after an event
        storm = first_post is not None and first_post < day <= first_post + dt.timedelta(days=12)
        u = rng.random()
        cover = (
            rng.uniform(0.4, 1.0)
            if (storm and u < 0.6)
            else 0.0
            if u < 0.55
            else rng.uniform(0.03, 0.4)
            if u < 0.87
            else rng.uniform(0.55, 1.0)
        )
        if cover > 0:
            dens = _fractal(rng, (h, w), 3.0)
            thick = dens > np.quantile(dens, 1 - cover)
            thin = (dens > np.quantile(dens, max(0.0, 1 - cover * 1.4))) & ~thick
            opac = np.clip((dens - dens.min()) / (np.ptp(dens) + 1e-6) * 1.5, 0.5, 1.0)
            refl = np.where(thick[None], _CLOUD[:, None, None] * opac[None] + refl * (1 - opac[None]), refl)
            refl = np.where(thin[None], refl + 0.18 * _CLOUD[:, None, None], refl)
            sh = np.roll(thick, (int(rng.integers(6, 14)), int(rng.integers(-10, 10))), axis=(0, 1)) & ~thick
            refl = np.where(sh[None], refl * 0.35, refl)
            cls[sh] = 3
            cls[thin] = 10
            cls[thick & (opac < 0.8)] = 8
            cls[thick & (opac >= 0.8)] = 9
        # a no-data edge now and then (outside the orbit swath)
        if rng.random() < 0.05:
            rr, cc = np.mgrid[0:h, 0:w]
            edge = (rr + cc * rng.uniform(0.3, 1.5)) < rng.uniform(10, 60)
            refl = np.where(edge[None], 0, refl)
            cls[edge] = 0
        bands[t] = refl
        scl[t] = cls
    # as ESA delivers them: DN >= 1 on valid pixels, 0 where there are no data (SCL 0)
    nodata = (scl == 0)[:, None]
    dn = np.where(nodata, 0, np.clip(np.rint(bands), 1, 32767)).astype("int32")
    out = {b: dn[:, i] for i, b in enumerate(schema.S2_BANDS)}
    _add_s2_offset(out, times)
    out["SCL"] = scl.astype("int32")
    return out


def _add_s2_offset(bands: dict[str, np.ndarray], times: Sequence[dt.date]) -> None:
    """Raw release: add ESA's +1000 DN offset (baseline 04.00) to the bands of dates from 2022-01-25, in
    place; no-data 0 stays 0 and values are clipped to 10000, as in the real raw files."""
    steps = np.array([t >= schema.S2_OFFSET_FROM for t in times], dtype=bool)
    if not steps.any():
        return
    for b in schema.S2_OFFSET_BANDS:
        v = bands[b][steps]
        bands[b][steps] = np.where(v > 0, np.minimum(v.astype("int32") + schema.S2_OFFSET, 10000), 0)


def _fill_nearest(values: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """``values`` ``(time, y, x)`` with every ``invalid`` pixel replaced by the nearest valid one of the same
    time step (Euclidean distance transform, as the dataset writer's ``fill_nans``); a step without any valid
    pixel is left as it is."""
    from scipy.ndimage import distance_transform_edt

    out = values.copy()
    for t in range(values.shape[0]):
        bad = invalid[t]
        if bad.any() and not bad.all():
            idx = distance_transform_edt(bad, return_distances=False, return_indices=True)
            out[t] = values[t][tuple(idx)]
    return out


def _writer_s2(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the dataset writer does to each Sentinel-2 image before writing (REAL-FORMAT.md): 0 (no data)
    becomes NaN, values are clipped to [0, 10000], NaNs take the value of the nearest valid pixel (per band
    and date, SCL included), and everything is cast to int16. Returns new arrays (bands and SCL)."""
    out = {}
    for name in (*schema.S2_BANDS, "SCL"):
        v = data[name]
        out[name] = _fill_nearest(np.clip(v, 0, 10000), v == 0).astype("int16")
    return out


def _harmonize_s2(bands: dict[str, np.ndarray], times: Sequence[dt.date]) -> None:
    """Harmonized release: remove the +1000 DN offset from the bands of dates from 2022-01-25 and bound
    them to [0, 10000], in place (int16 kept)."""
    steps = np.array([t >= schema.S2_OFFSET_FROM for t in times], dtype=bool)
    for b in schema.S2_OFFSET_BANDS:
        v = bands[b].astype("int32")
        v[steps] -= schema.S2_OFFSET
        bands[b] = np.clip(v, 0, 10000).astype("int16")


def _simulate_s1(
    rng, st: _Static, reg: Region, sensor: str, times: list[dt.date], slides, events
) -> dict[str, np.ndarray]:
    h, w = st.dem.shape
    look = _S1_LOOK_AZIMUTH[sensor]
    theta0 = _S1_INCIDENCE
    # direction from ground to satellite: opposite of the look direction, 90-theta above horizon
    cos_loc = _cos_incidence(st.dem, (look + 180) % 360, 90 - theta0)
    gx, gy = _gradients(st.dem)
    # terrain rising along the look direction faces the sensor (foreslope)
    toward = gx * np.sin(np.radians(look)) + gy * np.cos(np.radians(look))
    fore = np.degrees(np.arctan(toward))
    invalid = (fore > theta0 - 2) | (fore < -(90 - theta0) + 4)  # layover / radar shadow
    terrain_db = 10 * np.log10(np.clip(cos_loc, 0.05, None) / np.cos(np.radians(theta0)))
    out = {"VV": np.empty((len(times), h, w), "float32"), "VH": np.empty((len(times), h, w), "float32")}
    looks = 4.4
    for t, day in enumerate(times):
        veg, scar, field_bare = _veg_at(st, reg, day, slides, events)
        moist = rng.normal(0, 0.6) + (
            1.2 if events and min(events) < day <= min(events) + dt.timedelta(days=10) else 0.0
        )
        for pol_i, pol in enumerate(("VV", "VH")):
            v = _S1_DB["veg"][pol_i]
            s = _S1_DB["soil"][pol_i]
            db = veg * v + (1 - veg) * s
            db = np.where(field_bare, _S1_DB["field_bare"][pol_i], db)
            db = np.where(scar > 0, _S1_DB["scar"][pol_i], db)
            db = np.where(st.water, _S1_DB["water"][pol_i], db + terrain_db + moist)
            lin = 10 ** (db / 10) * rng.gamma(looks, 1 / looks, size=(h, w))
            lin = np.where(invalid, np.nan, np.minimum(lin, 1.0)).astype("float32")  # writer: clip to <= 1
            if rng.random() < 0.04:  # border no-data on some dates
                lin[:, : int(rng.integers(5, 30))] = np.nan
            out[pol][t] = lin
    for pol in out:  # keep 12 mantissa bits: far below speckle, compresses like real products
        bits = out[pol].view("uint32") & np.uint32(0xFFFFF800)
        out[pol] = bits.view("float32")
    return out


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _spatial_ref(epsg: int, x0: float, y0: float) -> xr.DataArray:
    from pyproj import CRS

    crs = CRS.from_epsg(epsg)
    attrs = crs.to_cf()
    attrs["spatial_ref"] = crs.to_wkt()
    attrs["GeoTransform"] = f"{x0} {schema.PIXEL_SIZE_M} 0.0 {y0} 0.0 {-schema.PIXEL_SIZE_M}"
    return xr.DataArray(np.int64(0), attrs=attrs)


#: Variables of a patch in the order the dataset writer puts them in the file.
_FILE_ORDER: dict[str, tuple[str, ...]] = {
    "s2": (*schema.S2_BANDS, "SCL", "MASK", "DEM"),
    "s1asc": ("VH", "VV", "MASK", "DEM"),
    "s1dsc": ("VH", "VV", "MASK", "DEM"),
}
#: ``satellite`` attribute per sensor folder, as the writer puts it.
_SATELLITE = {"s2": "s2", "s1asc": "s1-asc", "s1dsc": "s1-dsc"}
#: The token an undated annotation writes in ``event_date`` (``str(None)``).
_UNDATED = "None"


def _write_patch(
    path: Path,
    data: dict[str, np.ndarray],
    times: list[dt.date],
    x0: float,
    y0: float,
    epsg: int,
    attrs: dict[str, object],
    sensor: str,
) -> None:
    """Write one patch as the dataset writer does (REAL-FORMAT.md): every variable ``(time, y, x)`` in the
    writer's order, ``x``/``y`` float64 pixel top/left edges, ``time`` with xarray's default encoding (days
    since the first date), ``spatial_ref`` an int64 scalar; unlike the writer, variables are zlib-compressed
    (lossless; it keeps a sample small)."""
    n = schema.PATCH_SIZE
    xs = np.arange(n) * schema.PIXEL_SIZE_M + x0
    ys = y0 + np.arange(n) * -schema.PIXEL_SIZE_M
    gm = {"grid_mapping": "spatial_ref"}
    names = _FILE_ORDER[sensor]
    dvars = {  # arrays come as (time, y, x)
        name: xr.DataArray(np.ascontiguousarray(data[name]), dims=schema.DIMS_REFERENCE, attrs=gm)
        for name in names
    }
    time = np.array([np.datetime64(t, "D") for t in times]).astype("datetime64[ns]")
    ds = xr.Dataset(dvars, coords={"time": time, "y": ys, "x": xs}, attrs=attrs)
    ds["spatial_ref"] = _spatial_ref(epsg, x0, y0)
    enc = {name: {"zlib": True, "complevel": 4, "shuffle": True} for name in names}
    tmp = path.with_suffix(".nc.part")
    ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=enc)
    os.replace(tmp, path)


def _pad(times: list[dt.date], data: dict[str, np.ndarray], k: int) -> list[dt.date]:
    """A short series padded as the writer does: the last ``k`` steps become copies of the image before
    them (``data`` changed in place); returns the padded dates."""
    n = len(times)
    last = n - k - 1
    for v in data.values():
        v[last + 1 :] = v[last]
    return times[: last + 1] + [times[last]] * k


@dataclass
class _PatchAnnotations:
    """What a patch's attributes say about its landslides (the same for every sensor of the location)."""

    inside: list[Landslide]  # in the writer's order: by event-date string, then id
    written: list[str]  # event_date entries in set order (ISO dates, ``None`` for undated)
    confidences: list[float]  # date_confidence entries in set order


def _patch_annotations(
    slides: list[Landslide],
    cols: slice,
    tokens: list[str],
    confidences: list[float],
    rng: np.random.Generator,
) -> _PatchAnnotations:
    inside = [s for s in slides if s.mask[:, cols].any()]
    inside.sort(key=lambda s: (tokens[s.event], s.ann_id))  # the writer sorts annotations by date string
    uniq = list(dict.fromkeys(tokens[s.event] for s in inside))
    confs = list(dict.fromkeys(confidences[s.event] for s in inside))
    # written from Python sets: arbitrary order (drawn here, the same for every sensor of the location)
    return _PatchAnnotations(
        inside,
        [uniq[i] for i in rng.permutation(len(uniq))],
        [confs[i] for i in rng.permutation(len(confs))],
    )


def _writer_attrs(
    ann: _PatchAnnotations,
    plan: CanvasPlan,
    times: list[dt.date],
    sensor: str,
    xs: np.ndarray,
    ys: np.ndarray,
    epsg: int,
) -> dict[str, object]:
    """Global attributes as the dataset writer builds them (REAL-FORMAT.md): strings, except the float64
    centre (``y[64]``, ``x[64]``); ``pre_post_dates`` one dict per ``event_date`` entry, in its order."""
    pre_post = [
        schema.writer_pre_post(times, None if tok == _UNDATED else dt.date.fromisoformat(tok))
        for tok in ann.written
    ]
    return {
        "ann_id": ",".join(str(int(s.ann_id)) for s in ann.inside),
        "ann_bbox": ",".join(str(_bbox_m(s.polygon_px, plan)) for s in ann.inside),
        "event_date": ",".join(ann.written),
        "date_confidence": ",".join(str(float(c)) for c in ann.confidences),
        "pre_post_dates": schema.encode_pre_post(pre_post),
        "annotated": schema.encode_bool(bool(ann.inside)),
        "satellite": _SATELLITE[sensor],
        "center_lat": float(ys[schema.PATCH_SIZE // 2]),
        "center_lon": float(xs[schema.PATCH_SIZE // 2]),
        "crs": f"EPSG:{epsg}",
    }


def _canvas_job(args: tuple) -> tuple[list[dict], list[dict]]:
    """Simulate one canvas and write its patches; return (file records, inventory records).

    ``args``: ``(plan, out_dir, first_ann_id[, release])``, release ``"raw"`` (default) or ``"harmonized"``.
    """
    plan, out_dir, first_ann_id, *rest = args
    release = rest[0] if rest else "raw"
    out = Path(out_dir)
    reg = REGION_BY_NAME[plan.region]
    rng = np.random.default_rng(plan.seed)
    shape = (schema.PATCH_SIZE, plan.width)
    st = _static(rng, reg, shape)
    anchor = dt.date.fromisoformat(reg.event_date) + dt.timedelta(days=int(rng.integers(-6, 7)))
    events: list[dt.date] = []
    confidences: list[float] = []
    slides: list[Landslide] = []
    if plan.annotated:
        events = [anchor]
        confidences = [float(rng.choice([1.0, 1.0, 1.0, 0.75, 0.5]))]
        if plan.two_events:
            events.append(anchor + dt.timedelta(days=int(rng.integers(12, 45))))
            confidences.append(float(rng.choice([1.0, 0.75, 0.5])))
        slides = _landslides(rng, st.slope, st.aspect, st.veg0, plan, first_ann_id)
    # harvest / cutting dates: most within a month of the event (the season storms and harvests share),
    # the rest anywhere in the series window; a threshold on the vegetation drop cannot tell them apart
    st.fields = [
        (
            m,
            anchor
            + dt.timedelta(days=int(rng.integers(-20, 32) if rng.random() < 0.7 else rng.integers(-50, 70))),
            hv,
        )
        for m, _, hv in st.fields
    ]
    # what the inventory says: an undated annotation has no date (the landslides still happen at `events`)
    tokens = [_UNDATED if plan.undated else e.isoformat() for e in events]
    inv_conf = [float("nan") if plan.undated else c for c in confidences]
    order_rng = np.random.default_rng([plan.seed, 7])  # the writer's set order, apart from the physics
    anns = {
        p.patch_id: _patch_annotations(
            slides, slice(p.col0, p.col0 + schema.PATCH_SIZE), tokens, inv_conf, order_rng
        )
        for p in plan.patches
    }
    sensors = sorted({s for p in plan.patches for s in p.sensors})
    records: list[dict] = []
    for sensor in sensors:
        srng = np.random.default_rng([plan.seed, schema.SENSORS.index(sensor)])
        revisit = 5 if sensor == "s2" else reg.s1_revisit
        times = _dates(
            srng, anchor, revisit, 0.3 if sensor == "s2" else 0.05, plan.outside.get(sensor), exclude=events
        )
        if sensor == "s2":
            data = _simulate_s2(srng, st, reg, times, slides, events)
        else:
            data = _simulate_s1(srng, st, reg, sensor, times, slides, events)
            if release == "harmonized":  # dB, bounded to [-50, 10]
                with np.errstate(divide="ignore", invalid="ignore"):
                    data = {k: np.clip(10 * np.log10(v), -50, 10).astype("float32") for k, v in data.items()}
        if plan.padded.get(sensor):
            times = _pad(times, data, plan.padded[sensor])
        dem = np.rint(st.dem).astype("int16")
        if release == "harmonized":
            dem = np.clip(dem, 0, 8800).astype("int16")
        dem = np.broadcast_to(dem, (len(times), *shape))
        for p in plan.patches:
            if sensor not in p.sensors:
                continue
            cols = slice(p.col0, p.col0 + schema.PATCH_SIZE)
            ann = anns[p.patch_id]
            mask2d = np.zeros((schema.PATCH_SIZE, schema.PATCH_SIZE), dtype="uint8")
            for s in ann.inside:
                mask2d |= s.mask[:, cols].astype("uint8")
            x0 = plan.x0 + p.col0 * schema.PIXEL_SIZE_M
            xs = np.arange(schema.PATCH_SIZE) * schema.PIXEL_SIZE_M + x0
            ys = plan.y0 + np.arange(schema.PATCH_SIZE) * -schema.PIXEL_SIZE_M
            attrs = _writer_attrs(ann, plan, times, sensor, xs, ys, reg.epsg)
            fdata = {k: v[:, :, cols] for k, v in data.items()}
            if sensor == "s2":
                fdata = _writer_s2(fdata)
                if release == "harmonized":
                    _harmonize_s2(fdata, times)
            fdata["DEM"] = dem[:, :, cols]
            fdata["MASK"] = np.broadcast_to(mask2d, (len(times), *mask2d.shape))
            fname = schema.patch_filename(plan.region, sensor, p.patch_id)
            _write_patch(out / sensor / fname, fdata, times, x0, plan.y0, reg.epsg, attrs, sensor)
            scl_bad = None
            if sensor == "s2":
                scl_bad = np.isin(fdata["SCL"], list(schema.SCL_BAD)).reshape(len(times), -1).mean(1).tolist()
            ev_idx = sorted({s.event for s in ann.inside}) if not plan.undated else []
            p_events = [events[i] for i in ev_idx]
            annotated = bool(ann.inside)
            records.append(
                {
                    "sensor": sensor,
                    "region": plan.region,
                    "patch_id": p.patch_id,
                    "key": f"{plan.region}_{p.patch_id}",
                    "path": f"{sensor}/{fname}",
                    "annotated": annotated,
                    "n_positive": int(mask2d.sum()),
                    # dated events, chronological (the file lists them in set order: event_date_attr)
                    "event_dates": [d.isoformat() for d in p_events],
                    "date_confidences": [confidences[i] for i in ev_idx],
                    "pre_post": [list(pre_post_indices(times, e)) for e in p_events],
                    "ann_ids": [s.ann_id for s in ann.inside],
                    "times": [t.isoformat() for t in times],
                    "epsg": reg.epsg,
                    "center_x": attrs["center_lon"],
                    "center_y": attrs["center_lat"],
                    "canvas": plan.index,
                    "col0": p.col0,
                    # "before"/"after" (event outside the series), "undated" (no date given) or None
                    "event_outside_series": (
                        ("undated" if plan.undated else plan.outside.get(sensor)) if annotated else None
                    ),
                    "bad_fraction": scl_bad,
                    "event_date_attr": attrs["event_date"],
                    "n_undated_events": ann.written.count(_UNDATED),
                    "n_padded": int(plan.padded.get(sensor, 0)),
                }
            )
    inventory = [
        {
            "ann_id": s.ann_id,
            "region": plan.region,
            "event_date": None if plan.undated else events[s.event].isoformat(),
            "date_conf": inv_conf[s.event],
            "epsg": reg.epsg,
            "coords": _poly_m(s.polygon_px, plan).tolist(),
            "n_pixels": int(s.mask.sum()),
        }
        for s in slides
    ]
    return records, inventory


def _poly_m(poly_px: np.ndarray, plan: CanvasPlan) -> np.ndarray:
    return np.column_stack(
        [plan.x0 + poly_px[:, 0] * schema.PIXEL_SIZE_M, plan.y0 - poly_px[:, 1] * schema.PIXEL_SIZE_M]
    )


def _bbox_m(poly_px: np.ndarray, plan: CanvasPlan) -> tuple[float, float, float, float]:
    xy = _poly_m(poly_px, plan)
    return (float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max()))


#: Landslides held before they are appended to the inventory shapefile (bounds what is kept in memory).
_INVENTORY_BATCH = 500
_INVENTORY_COLUMNS = ["ann_id", "region", "event_date", "date_conf", "epsg"]


class _InventoryWriter:
    """Zipped shapefile of the landslide polygons in WGS84 (one polygon per landslide), written in batches.

    A large sample holds about two landslides per file; each polygon is converted to WGS84 as it arrives
    and the polygons are appended to the shapefile every ``_INVENTORY_BATCH`` landslides rather than kept
    until the end. Appending gives the same shapefile as one write of all rows (same rows, order and field
    definitions).
    """

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="s12ls_inventory_")
        self._shp = Path(self._tmp.name) / "inventories.shp"
        self._rows: list[dict] = []
        self._geoms: list = []
        self._to_wgs84: dict = {}  # EPSG code -> pyproj Transformer
        self._written = False

    def add(self, inventory: list[dict]) -> None:
        import shapely
        from pyproj import Transformer

        for rec in inventory:
            if rec["epsg"] not in self._to_wgs84:
                self._to_wgs84[rec["epsg"]] = Transformer.from_crs(rec["epsg"], 4326, always_xy=True)
            xy = np.asarray(rec["coords"])
            lon, lat = self._to_wgs84[rec["epsg"]].transform(xy[:, 0], xy[:, 1])
            self._geoms.append(shapely.Polygon(np.column_stack([lon, lat])))
            self._rows.append({k: rec[k] for k in _INVENTORY_COLUMNS})
        if len(self._rows) >= _INVENTORY_BATCH:
            self._flush()

    def _flush(self) -> None:
        import geopandas as gpd

        gdf = gpd.GeoDataFrame(
            pd.DataFrame(self._rows, columns=_INVENTORY_COLUMNS), geometry=self._geoms, crs="EPSG:4326"
        )
        gdf.to_file(self._shp, engine="pyogrio", mode="a" if self._written else "w")
        self._written = True
        self._rows, self._geoms = [], []

    def close(self, path: Path) -> None:
        """Write the last batch (an empty layer when there was no landslide at all) and zip the shapefile."""
        try:
            if self._rows or not self._written:
                self._flush()
            part = path.with_suffix(".zip.part")
            with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in sorted(self._shp.parent.iterdir()):
                    zf.write(f, f.name)
            os.replace(part, path)
        finally:
            self._tmp.cleanup()


def _write_manifest(path: Path, head: dict, files: Iterable[str], landslides: Iterable[str]) -> None:
    """Write ``{**head, "files": [...], "landslides": [...]}`` byte for byte as ``json.dumps(…, indent=1)``
    would, from items encoded one at a time (``json.dumps(item, indent=1)``).

    The two lists grow with the sample; written this way they are never in memory together (the items
    come from a spill file). ``head`` must not be empty.
    """
    part = path.with_suffix(".json.part")
    with open(part, "w") as f:
        f.write(json.dumps(head, indent=1)[: -len("\n}")])
        for name, items in (("files", files), ("landslides", landslides)):
            f.write(f",\n {json.dumps(name)}: [")
            n = 0
            for item in items:  # one level deeper than on its own: two more spaces on every line
                f.write(("," if n else "") + "\n  " + item.replace("\n", "\n  "))
                n += 1
            f.write("\n ]" if n else "]")
        f.write("\n}")
    os.replace(part, path)


_README = """# Synthetic Sen12Landslides sample

**These data are synthetic.** They were written by `s12ls_utils.synthetic.make_sample` (s12ls-utils {version},
seed {seed}, {n_per_sensor} patches per sensor requested) to mirror the *format* of the Sen12Landslides dataset
(`paulhoehn/Sen12Landslides` on the Hugging Face hub): folders, file names, variables, dimensions, dtypes,
coordinates, attributes and the inventory file. The pixel values are simulated (terrain, seasonal vegetation,
clouds, speckle, landslides after their event date); they are not observations and must not be used to draw
conclusions about real landslides.

{release_text}

Files: {counts}. `synthetic_manifest.json` records what was written.
"""


_README_RELEASE = {
    "raw": """They follow the **raw release** (`data_raw`): Sentinel-1 in linear power, Sentinel-2 bands of dates from
2022-01-25 with ESA's +1000 DN offset (processing baseline 04.00); `synthetic_manifest.json` records
`"release": "raw"`, and the readers of `s12ls_utils` remove the offset.""",
    "harmonized": """They follow the **harmonized release** (`data_harmonized`): Sentinel-1 in dB bounded to [-50, 10],
Sentinel-2 with ESA's +1000 DN offset of dates from 2022-01-25 removed and bounded to [0, 10000], DEM bounded
to [0, 8800]; `synthetic_manifest.json` records `"release": "harmonized"`.""",
}


@dataclass
class SampleInfo:
    out_dir: Path
    n_files: dict[str, int]
    n_locations: int
    n_landslides: int
    seconds: float


def _mp_context() -> mp.context.BaseContext:
    """Workers start from a clean server process (``forkserver``), never as forks of the caller: the caller
    may hold open NetCDF/HDF5 handles (a notebook), which must not be copied into processes that write."""
    if "forkserver" in mp.get_all_start_methods():
        return mp.get_context("forkserver")
    return mp.get_context("spawn")


def _run_jobs(
    jobs: list[tuple[CanvasPlan, str, int]], workers: int
) -> Iterator[tuple[list[dict], list[dict]]]:
    """Results of :func:`_canvas_job` in job order (which makes the output independent of ``workers``).

    With several workers, at most ``2 * workers`` canvases are submitted ahead of the one awaited, so
    finished results never pile up behind a slow canvas.
    """
    if workers == 1:
        yield from map(_canvas_job, jobs)
        return
    with ProcessPoolExecutor(workers, mp_context=_mp_context()) as ex:
        todo = iter(jobs)
        pending = deque(ex.submit(_canvas_job, job) for job in itertools.islice(todo, 2 * workers))
        while pending:
            result = pending.popleft().result()
            pending.extend(ex.submit(_canvas_job, job) for job in itertools.islice(todo, 1))
            yield result


def make_sample(
    out_dir: str | Path,
    n_per_sensor: int = DEFAULT_N_PER_SENSOR,
    seed: int = 0,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    release: str = "raw",
) -> SampleInfo:
    """Write a synthetic Sen12Landslides copy into ``out_dir``.

    Deterministic for a given ``seed`` and ``n_per_sensor`` (about that many files per sensor; each
    location exists in one to three sensors), whatever ``workers`` (processes; default: one per usable
    CPU). Refuses a non-empty ``out_dir`` unless ``overwrite``.

    ``release``: ``"raw"`` (default; ``data_raw``: Sentinel-1 linear power, Sentinel-2 with the +1000 DN
    offset from 2022-01-25) or ``"harmonized"`` (``data_harmonized``: Sentinel-1 in dB bounded to [-50, 10],
    the offset removed and Sentinel-2 bounded to [0, 10000], DEM bounded to [0, 8800]). The same seed gives
    the same scenes in both; the manifest records the release, which :func:`s12ls_utils.io.file_release`
    reads.

    Memory does not grow with the sample: each canvas's files are written as soon as it is simulated
    (by the worker that simulated it), its arrays are dropped, and the per-file records go to a spill
    file and the inventory shapefile in batches; only a small index entry per file stays in memory.
    """
    import time

    from tqdm.auto import tqdm

    if isinstance(n_per_sensor, bool) or not isinstance(n_per_sensor, int | np.integer) or n_per_sensor < 1:
        raise ValueError(f"n_per_sensor must be a whole number of at least 1, not {n_per_sensor!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1
    ):
        raise ValueError(f"workers must be a whole number of at least 1, not {workers!r}")
    if release not in SAMPLE_RELEASES:
        raise ValueError(f"release must be one of {', '.join(SAMPLE_RELEASES)}, not {release!r}")
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; give a new or empty folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace it")
        for sub in (*schema.SENSORS, MANIFEST_NAME, INVENTORY_NAME, "README.md", "tasks"):
            p = out / sub
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    for s in schema.SENSORS:
        (out / s).mkdir(parents=True, exist_ok=True)
    n_per_sensor = int(n_per_sensor)
    plans = _plan(n_per_sensor, seed)
    jobs = [(p, str(out), 40000 + 1000 * p.index, release) for p in plans]
    workers = min(len(jobs), int(workers or default_workers()))
    n_planned = sum(len(pp.sensors) for p in plans for pp in p.patches)
    # Per file, only (sensor, region, patch_id, offset, length) stays in memory; its manifest entry
    # (already encoded) waits in a spill file until the manifest is written in sorted order.
    index: list[tuple[str, str, int, int, int]] = []
    n_landslides = 0
    inventory = _InventoryWriter()
    with tempfile.TemporaryFile(dir=out) as files_spill, tempfile.TemporaryFile(dir=out) as slides_spill:
        with tqdm(total=n_planned, desc="synthetic patches", unit="file", disable=not progress) as bar:
            for records, slides in _run_jobs(jobs, workers):
                for rec in records:
                    blob = json.dumps(rec, indent=1).encode()
                    index.append(
                        (rec["sensor"], rec["region"], rec["patch_id"], files_spill.tell(), len(blob))
                    )
                    files_spill.write(blob)
                for ls in slides:
                    slides_spill.write(
                        json.dumps({k: v for k, v in ls.items() if k != "coords"}, indent=1).encode() + b"\0"
                    )
                n_landslides += len(slides)
                inventory.add(slides)
                bar.update(len(records))
        inventory.close(out / INVENTORY_NAME)
        index.sort()
        counts = {s: sum(e[0] == s for e in index) for s in schema.SENSORS}

        def spilled_files() -> Iterator[str]:
            for *_, offset, length in index:
                files_spill.seek(offset)
                yield files_spill.read(length).decode()

        def spilled_slides() -> Iterator[str]:
            slides_spill.seek(0)
            buf = b""
            while chunk := slides_spill.read(1 << 20):
                *items, buf = (buf + chunk).split(b"\0")
                yield from (item.decode() for item in items)

        head = {
            "generator": "s12ls_utils.synthetic",
            "release": release,  # read by io.file_release (see SAMPLE_RELEASES)
            "version": __version__,
            "seed": seed,
            "n_per_sensor": n_per_sensor,
            "regions": [asdict(r) for r in REGIONS if any(p.region == r.name for p in plans)],
            "counts": counts,
            "n_landslides": n_landslides,
        }
        _write_manifest(out / MANIFEST_NAME, head, spilled_files(), spilled_slides())
    (out / "README.md").write_text(
        _README.format(
            release_text=_README_RELEASE[release],
            version=__version__,
            seed=seed,
            n_per_sensor=n_per_sensor,
            counts=", ".join(f"{v} {k}" for k, v in counts.items()),
        )
    )
    n_locations = len({(e[1], e[2]) for e in index})
    return SampleInfo(out, counts, n_locations, n_landslides, time.perf_counter() - t0)


def load_manifest(data_dir: str | Path) -> dict:
    """The generator's own record of a synthetic sample."""
    return json.loads((Path(data_dir) / MANIFEST_NAME).read_text())
