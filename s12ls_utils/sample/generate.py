"""A faithful synthetic mini copy of Sen12Landslides.

The real dataset cannot be downloaded everywhere (and not at all on the machines that build this book),
so every chapter runs by default on a small synthetic copy written by :func:`make_sample`. The copy
has the same folders, file names, variables, dimension order, dtypes, coordinates, attributes (with
their string encodings) and inventory file as the real data; only the pixel values are simulated.

Each patch is written the way the released files are (``book/appendix-data.md``: the dataset
writer's code, corrected by third-party reads of the released files):

- every variable ``(time, x, y)`` with the data really x-first (a reader that selects by name and transposes
  to ``(y, x)`` gets the north-up image), in the writer's order (``VH, VV, MASK, DEM``; ``B02 … B12, SCL,
  MASK, DEM``); ``x``/``y`` float64 pixel top/left **edges** (``x = x0 + 10 i``, ``y = y0 − 10 j``); ``time``
  sorted, stored as days since the first date (xarray's default encoding); ``spatial_ref`` an int64 scalar;
- S1 float32 (``_FillValue`` NaN), raw values clipped to at most 1 (linear), every gap (layover, radar
  shadow, swath edge) filled with the nearest valid pixel of its date as the writer does, so no NaN; S2
  bands and SCL int16 without ``_FillValue``, after the writer's treatment of each image (0 → NaN, clip to
  [0, 10000], NaN → nearest valid pixel), so no-data edges of the swath come out filled and SCL 0 never
  occurs; MASK uint8, DEM int16;
- whole S2 frames with SCL 255 (unknown quality), about 2.9 per file and at least one, the rate third
  parties counted in the raw Chimanimani files (:data:`s12ls_utils.sample.realism.REAL_FILE_FACTS`);
- attributes as strings, except ``center_lat``/``center_lon`` (float64 ``y[64]``, ``x[64]``: the patch centre,
  a pixel corner); ``satellite`` ``s1-asc``/``s1-dsc``/``s2``; ``event_date`` and ``date_confidence`` the
  distinct values in set order (drawn, so two events are not always chronological); an undated annotation
  writes ``None`` (the default sample holds one, small samples may not);
  ``pre_post_dates`` one dict per ``event_date`` entry in the same order (the writer's ``searchsorted`` rule);
- S2 time stamps unique and strictly increasing, as in every real S2 file; a short Sentinel-1 series is
  padded by repeating its last image and date (the writer's case; every sample holds one;
  ``make_sample(…, pad_s2=True)`` pads S2 series too);
- region names as in the real data (``hokkaido``, ``usa_alaska``, …).

Compression follows the release: the raw release is written uncompressed, as the dataset's writer writes it
(6,176,008 bytes per non-annotated real S2 file; the sample's are 3-7 kB smaller: attributes), the harmonized
release zlib-compressed (lossless), as its files are (2.35–3.25 MB per real S2 file).

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
  cirrus, snow on high winter ground, no-data edges; SCL classes derived consistently, with slopes in
  the sun's shadow as class 2 (dark area). Clouds are drawn independently of the event.
- **Sentinel-1**: linear backscatter per land cover (the product is terrain-flattened γ⁰) with
  local-incidence-angle modulation for the ascending (east-looking) and descending (west-looking) geometry,
  layover/shadow gaps (filled by the writer), soil moisture changes per date and multiplicative gamma
  speckle; both orbits of a location are calibrated together (:func:`_plan_radiometry`).

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
``after``, ``undated`` or None), ``bad_fraction`` (the unusable share per date, :func:`schema.scl_usable`),
``scl_unknown_steps`` (S2 steps whose SCL is all 255), and what the file says: ``event_date_attr``,
``n_undated_events`` and ``n_padded`` (repeated last images).

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
import os
import shutil
import tempfile
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import __version__, io, schema
from ..parallel import check_workers, mp_context
from .plan import (  # noqa: F401  (tests reach the plan through this module)
    REGION_BY_NAME,
    REGIONS,
    CanvasPlan,
    Region,
    _plan,
    _plan_radiometry,
    calibration,
)

MANIFEST_NAME = "synthetic_manifest.json"
INVENTORY_NAME = "inventories.shp.zip"
DEFAULT_N_PER_SENSOR = 170  # about 190 locations: an S12LS-LD test split of at least 12 patches
#: Releases :func:`make_sample` writes (the hub's ``data_raw`` and ``data_harmonized``).
SAMPLE_RELEASES: tuple[str, ...] = ("raw", "harmonized")

# Endmember spectra, reflectance x10000, order B02 B03 B04 B05 B06 B07 B08 B8A B11 B12.
_VEG = np.array([320, 620, 380, 1050, 2700, 3300, 3550, 3700, 1800, 880], dtype="float32")
_SOIL = np.array([1150, 1450, 1750, 2050, 2300, 2500, 2600, 2700, 3200, 2700], dtype="float32")
_SCAR = np.array([1500, 1800, 2150, 2400, 2550, 2700, 2800, 2900, 3700, 3200], dtype="float32")
_WATER = np.array([650, 560, 330, 260, 210, 190, 160, 150, 80, 60], dtype="float32")
_CLOUD = np.array([7200, 7000, 6900, 6900, 6800, 6800, 6700, 6700, 5200, 4100], dtype="float32")
_SNOW = np.array([8200, 8000, 7800, 7600, 7300, 7000, 6700, 6500, 900, 700], dtype="float32")
_BURNED_HAZE = np.array([260, 190, 130, 100, 70, 55, 45, 40, 10, 5], dtype="float32")

# Backscatter (dB) per surface: VV, VH. A fresh scar's VV is drawn per landslide around this value (rougher
# or smoother than the slope it replaced: on real landslides VV rises or falls), its VH is lower.
_S1_DB = {
    "veg": (-7.5, -13.5),
    "soil": (-12.0, -20.0),
    "scar": (-7.5, -18.5),
    "water": (-21.0, -28.0),
    "field_bare": (-13.0, -21.5),
}
_S1_LOOK_AZIMUTH = {"s1asc": 80.0, "s1dsc": 280.0}  # degrees from north (ground → direction looked)
_S1_INCIDENCE = 39.0


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
    event: int  # index into the canvas' events; -1: an old scar, there before the series
    polygon_px: np.ndarray  # (n, 2) vertices in canvas pixel coordinates (col, row), continuous
    r0: int  # the window of the canvas the polygon lies in: rows r0.., columns c0..
    c0: int
    mask: np.ndarray  # bool, the window's pixels whose centre lies inside (the rasterised inventory)
    cover: np.ndarray  # float32, the share of each window pixel the polygon covers (mixed edge pixels)
    mapped: bool = True  # in the inventory (unmapped bare ground or rockfalls are not)
    regrowth: float = 0.0  # share of the scar revegetated 90 days after the event
    vv_db: float = 0.0  # the scar's VV relative to _S1_DB["scar"] (rougher or smoother ground)

    def window(self) -> tuple[slice, slice]:
        h, w = self.mask.shape
        return slice(self.r0, self.r0 + h), slice(self.c0, self.c0 + w)

    def mask_in(self, rows: slice, cols: slice) -> np.ndarray:
        """The mask on the canvas rows/cols given (both of length ``PATCH_SIZE``), zeros elsewhere."""
        out = np.zeros((rows.stop - rows.start, cols.stop - cols.start), dtype=bool)
        h, w = self.mask.shape
        r_a, r_b = max(rows.start, self.r0), min(rows.stop, self.r0 + h)
        c_a, c_b = max(cols.start, self.c0), min(cols.stop, self.c0 + w)
        if r_a < r_b and c_a < c_b:
            out[r_a - rows.start : r_b - rows.start, c_a - cols.start : c_b - cols.start] = self.mask[
                r_a - self.r0 : r_b - self.r0, c_a - self.c0 : c_b - self.c0
            ]
        return out

    def touches(self, rows: slice, cols: slice) -> bool:
        """The polygon shares area with the tile (what the dataset writer annotates a patch by), whether or
        not it covers a pixel centre there."""
        import shapely

        tile = shapely.box(cols.start, rows.start, cols.stop, rows.stop)
        return bool(shapely.Polygon(self.polygon_px).intersection(tile).area > 0)


#: Sub-pixels per pixel side when the share of a pixel a polygon covers is measured.
_SUBPIXELS = 4


def _polygon_window(
    poly: np.ndarray, shape: tuple[int, int]
) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """``(r0, c0, mask, cover)`` of a polygon (pixel coordinates) on a canvas: the window of pixels its
    bounds touch, which of them have their centre inside, and the share of each covered (sub-pixel grid)."""
    import shapely

    h, w = shape
    geom = shapely.Polygon(poly)
    c_lo, r_lo, c_hi, r_hi = geom.bounds
    c0, c1 = max(0, int(np.floor(c_lo))), min(w, int(np.ceil(c_hi)))
    r0, r1 = max(0, int(np.floor(r_lo))), min(h, int(np.ceil(r_hi)))
    if c1 <= c0 or r1 <= r0:
        return None
    k = _SUBPIXELS
    sub = (np.arange(k) + 0.5) / k
    cc = (np.arange(c0, c1)[:, None] + sub[None, :]).ravel()
    rr = (np.arange(r0, r1)[:, None] + sub[None, :]).ravel()
    gc, gr = np.meshgrid(cc, rr)
    inside = shapely.contains_xy(geom, gc.ravel(), gr.ravel()).reshape(r1 - r0, k, c1 - c0, k)
    cover = inside.mean(axis=(1, 3)).astype("float32")
    gc, gr = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    mask = shapely.contains_xy(geom, gc.ravel(), gr.ravel()).reshape(gc.shape)
    return r0, c0, mask, cover


def _slide_polygon(rng: np.random.Generator, r: int, c: int, area: float, aspect_deg: float) -> np.ndarray:
    """An elongated, wobbly polygon of about ``area`` pixels centred on pixel (r, c), long axis downslope."""
    elong = rng.uniform(1.4, 4.0)
    a = np.sqrt(area * elong / np.pi)  # half-length along the slope
    b = np.sqrt(area / (elong * np.pi))
    theta = np.radians(aspect_deg)  # downslope direction, from north clockwise
    phi = np.linspace(0, 2 * np.pi, 28, endpoint=False)
    wobble = 1 + sum(rng.normal(0, 0.09) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    along, across = a * np.cos(phi) * wobble, b * np.sin(phi) * wobble
    # along-slope axis in (col, row): east = +col, north = -row
    dc = along * np.sin(theta) + across * np.cos(theta)
    dr = -along * np.cos(theta) + across * np.sin(theta)
    return np.column_stack([c + 0.5 + dc, r + 0.5 + dr])


def _make_slide(rng, poly, shape, ann_id, event, mapped=True) -> Landslide | None:
    win = _polygon_window(poly, shape)
    if win is None or not win[3].any():
        return None
    r0, c0, mask, cover = win
    return Landslide(
        ann_id,
        event,
        poly,
        r0,
        c0,
        mask,
        cover,
        mapped=mapped,
        regrowth=float(rng.uniform(0.0, 0.45)),
        vv_db=float(rng.normal(0.0, 2.5)),
    )


def _landslides(
    rng: np.random.Generator,
    slope: np.ndarray,
    aspect: np.ndarray,
    veg: np.ndarray,
    plan: CanvasPlan,
    first_ann_id: int,
) -> list[Landslide]:
    """The canvas's landslides: the mapped ones of each annotated tile until the tile holds about its
    ``px_target`` landslide pixels (centres inside the tile, polygons may reach into a neighbour), a
    sliver for an ``empty_mask`` tile, and unmapped bare ground: old scars and, after the event, a few
    rockfalls on the steepest slopes that no inventory lists."""
    h, w = slope.shape
    # preference: steep, vegetated
    pref = (np.clip(slope - 8.0, 0, None) ** 2) * np.clip(veg, 0.05, None) * (veg > 0) + 1e-9
    slides: list[Landslide] = []
    ann_id = first_ann_id
    for p in plan.patches:
        rows, cols = p.window()
        if p.empty_mask:  # a sliver between pixel centres: it touches the tile and covers no centre
            r, c = p.row0 + int(rng.integers(20, 108)), p.col0 + int(rng.integers(20, 108))
            poly = np.array([[c + 0.55, r + 0.55], [c + 0.95, r + 0.6], [c + 0.7, r + 0.95]])
            win = _polygon_window(poly, (h, w))
            if win is not None:
                slides.append(Landslide(ann_id, 0, poly, *win))
                ann_id += 1
        if not p.annotated:
            continue
        local = pref[rows, cols].ravel()
        local = local / local.sum()
        target = p.px_target
        got = np.zeros((schema.PATCH_SIZE, schema.PATCH_SIZE), dtype=bool)
        typical = max(8.0, target / 8.0)
        tries = n_tile = 0
        while got.sum() < 0.95 * target and tries < 200 and n_tile < 60:  # ids stay below the next canvas's
            tries += 1
            left = target - int(got.sum())
            area = float(np.clip(rng.lognormal(np.log(typical), 0.9), 2.5, max(2.5, 1.15 * left)))
            idx = int(rng.choice(local.size, p=local))
            r, c = p.row0 + idx // schema.PATCH_SIZE, p.col0 + idx % schema.PATCH_SIZE
            poly = _slide_polygon(rng, r, c, area, float(aspect[r, c]))
            s = _make_slide(rng, poly, (h, w), ann_id, int(plan.two_events and rng.random() < 0.4))
            if s is None or not s.mask_in(rows, cols).any():
                continue
            slides.append(s)
            got |= s.mask_in(rows, cols)
            ann_id += 1
            n_tile += 1
    # unmapped bare ground on the steepest slopes: old scars (there all along) and, on annotated canvases,
    # a few new failures after the event that the inventory missed
    steep = pref * (slope > np.quantile(slope, 0.8))
    steep = (steep / steep.sum()).ravel()
    n_tiles = len(plan.patches)
    n_old = int(rng.poisson(2.0 * n_tiles))
    n_new = int(rng.poisson(1.0 * n_tiles)) if plan.annotated else 0
    for k in range(n_old + n_new):
        idx = int(rng.choice(steep.size, p=steep))
        r, c = divmod(idx, w)
        poly = _slide_polygon(rng, r, c, float(np.clip(rng.lognormal(np.log(20), 0.8), 3, 300)), aspect[r, c])
        s = _make_slide(rng, poly, (h, w), -1, -1 if k < n_old else 0, mapped=False)
        if s is not None:
            slides.append(s)
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


def _static(
    rng: np.random.Generator, reg: Region, shape: tuple[int, int], dem_mean: float = np.nan
) -> _Static:
    h, w = shape
    area = h * w / schema.PATCH_SIZE**2  # in tiles
    # relief: smooth fractal + a ridge/valley trend, scaled so that the median slope is typical of
    # landslide terrain (about 12-30 degrees) rather than set by the noise's pixel-scale roughness
    shape_f = _fractal(rng, shape, 4.4)
    ridge = np.sin(
        np.linspace(0, rng.uniform(1.0, 2.5) * np.pi * w / schema.PATCH_SIZE, w) + rng.uniform(0, 6)
    )
    ridge = ridge[None, :] * rng.uniform(0.5, 1.5) + np.linspace(0, rng.uniform(-1, 1) * h / 128, h)[:, None]
    f = shape_f + ridge
    gx, gy = _gradients(f)
    scale = np.tan(np.radians(rng.uniform(12, 30))) / float(np.median(np.hypot(gx, gy)))
    base = dem_mean if np.isfinite(dem_mean) else reg.base_elevation * rng.uniform(0.6, 1.5)
    dem = base + scale * (f - f.mean())
    # the mean of the calibrated DEM is the target; what falls below sea level is sea (DEM 0, water)
    sea = dem <= 0
    dem = np.clip(dem, 0, 10000).astype("float32")
    slope, aspect = slope_aspect(dem)
    low = dem < np.quantile(dem, 0.06)
    water = sea | (low & (rng.random() < 0.35) & (slope < 12))
    veg0 = np.clip(0.72 + 0.18 * _fractal(rng, shape, 2.6) - 0.004 * np.clip(slope - 40, 0, None), 0.05, 0.95)
    bare = _smooth_blobs(rng, shape, rng.uniform(0.0, 0.08), 2.8)
    veg0 = np.where(bare, veg0 * 0.2, veg0)
    veg0 = np.where(water, 0.0, veg0).astype("float32")
    fields: list[tuple[np.ndarray, dt.date, bool]] = []
    gentle = slope < 18
    # agricultural parcels on gentle ground (harvested, or greening up)
    for _ in range(int(rng.integers(1, 6) * area)):
        fh, fw = int(rng.integers(10, 36)), int(rng.integers(10, 44))
        r0, c0 = int(rng.integers(0, h - fh)), int(rng.integers(0, w - fw))
        m = np.zeros(shape, dtype=bool)
        m[r0 : r0 + fh, c0 : c0 + fw] = True
        m &= gentle & ~water
        if m.sum() > 20:
            fields.append((m, dt.date(2000, 1, 1), bool(rng.random() < 0.8)))
    # forest clear-cuts on any slope: rectangular vegetation loss that is not a landslide
    for _ in range(int(rng.integers(0, 3) * area)):
        fh, fw = int(rng.integers(8, 26)), int(rng.integers(8, 26))
        r0, c0 = int(rng.integers(0, h - fh)), int(rng.integers(0, w - fw))
        m = np.zeros(shape, dtype=bool)
        m[r0 : r0 + fh, c0 : c0 + fw] = True
        m &= ~water
        if m.sum() > 20:
            fields.append((m, dt.date(2000, 1, 1), True))
    return _Static(dem, slope, aspect, veg0, water, fields, float(rng.uniform(0.85, 1.15)))


def _scar_at(shape: tuple[int, int], day: dt.date, slides: list[Landslide], events: list[dt.date]):
    """Scar fraction (0–1, mixed at edges, shrinking as vegetation grows back) and the scar's VV offset (dB)
    at one date."""
    scar = np.zeros(shape, dtype="float32")
    vv = np.zeros(shape, dtype="float32")
    for s in slides:
        if s.event >= 0 and not day > events[s.event]:
            continue
        days = 365.0 if s.event < 0 else float((day - events[s.event]).days)
        frac = s.cover * max(0.2, 1.0 - s.regrowth * days / 90.0)
        rows, cols = s.window()
        win = scar[rows, cols]
        np.maximum(win, frac, out=win)
        vv[rows, cols] = np.where(frac > 0, s.vv_db, vv[rows, cols])
    return scar, vv


def _veg_at(
    st: _Static, reg: Region, day: dt.date, slides: list[Landslide], events: list[dt.date]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vegetation fraction, scar fraction, bare-field mask and scar VV offset (dB) at one date."""
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
    scar, scar_vv = _scar_at(st.dem.shape, day, slides, events)
    scar = np.where(st.water, 0.0, scar).astype("float32")
    veg = veg * (1 - 0.92 * scar)
    return veg.astype("float32"), scar, field_bare, scar_vv


def _sun_elevation(lat: float, doy: int) -> float:
    """Sun elevation (degrees) at Sentinel-2's morning overpass (about 10:30 local solar time): the noon
    elevation ``90 − |latitude − declination|`` less 10°, at least 5° (low winter sun at high latitude)."""
    decl = 23.44 * np.sin(2 * np.pi * (284 + doy) / 365.0)
    return float(np.clip(90.0 - abs(lat - decl) - 10.0, 5.0, 80.0))


#: Relative illumination (cosine of the sun's incidence on the slope / sine of its elevation) below which a
#: slope gets diffuse light only: its reflectance is scaled by this floor and its scene class is 2 (dark area).
_SHADE_ILLUM = 0.35
#: Co-registration error between dates (pixels, standard deviation per axis).
_JITTER_PX = {"s2": 0.4, "s1": 0.3}


def _jitter(rng: np.random.Generator, a: np.ndarray, sigma: float) -> np.ndarray:
    """``a`` (``(..., y, x)``) shifted by a random sub-pixel offset (bilinear; edges wrap, as a date's
    image sits a fraction of a pixel off the grid of the others)."""
    dy, dx = rng.normal(0, sigma, 2)
    iy, ix = int(np.floor(dy)), int(np.floor(dx))
    fy, fx = dy - iy, dx - ix
    a0 = np.roll(a, (iy, ix), axis=(-2, -1))
    a1 = np.roll(a0, 1, axis=-1)
    b0 = np.roll(a0, 1, axis=-2)
    b1 = np.roll(a1, 1, axis=-2)
    return ((1 - fy) * ((1 - fx) * a0 + fx * a1) + fy * ((1 - fx) * b0 + fx * b1)).astype(a.dtype)


def _tile_means(values: np.ndarray, valid: np.ndarray, plan: CanvasPlan, sensor: str) -> np.ndarray:
    """Mean of ``values`` over ``valid`` pixels of each tile of the canvas that has ``sensor`` (the last two
    axes are rows, columns), one value per tile; the mean of those is what calibration aims at."""
    out = []
    for p in plan.patches:
        if sensor not in p.sensors:
            continue
        sl = (..., *p.window())
        v, ok = values[sl], valid[sl]
        out.append(float(v[ok].mean()) if ok.any() else np.nan)
    return np.array(out, dtype="float64")


#: Large work arrays, kept per process and reused by every canvas it simulates (a fresh array of a few
#: hundred MB costs more in page faults than the arithmetic that fills it).
_BUFFERS: dict[str, np.ndarray] = {}


def _buffer(name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A work array of ``shape`` (uninitialised): a view of the process's buffer ``name``, grown as needed."""
    buf = _BUFFERS.get(name)
    if buf is None or buf.ndim != len(shape) or any(b < n for b, n in zip(buf.shape, shape, strict=True)):
        old = buf.shape if buf is not None and buf.ndim == len(shape) else shape
        buf = _BUFFERS[name] = np.empty(tuple(map(max, shape, old)), dtype=dtype)
    return buf[tuple(slice(0, n) for n in shape)]


def _simulate_s2(
    rng, st: _Static, reg: Region, times: list[dt.date], slides, events, plan: CanvasPlan | None = None
) -> dict[str, np.ndarray]:
    h, w = st.dem.shape
    n = len(times)
    bands = _buffer("s2_bands", (n, 10, h, w), "float32")
    surface = _buffer("s2_surface", (n, 10, h, w), "float32")  # the part of each value the surface makes
    scl = np.empty((n, h, w), dtype="int16")
    sun_az = 150.0 if not reg.southern else 30.0
    for t, day in enumerate(times):
        doy = day.timetuple().tm_yday
        sun_el = _sun_elevation(reg.lat, doy)
        lit = _cos_incidence(st.dem, sun_az, sun_el) / np.sin(np.radians(sun_el))
        illum = np.clip(lit, _SHADE_ILLUM, 1.6)
        veg, scar, field_bare, _ = _veg_at(st, reg, day, slides, events)
        # this date's image sits a fraction of a pixel off the others (co-registration error)
        jrng = np.random.default_rng(rng.integers(2**32))
        shade = (lit < _SHADE_ILLUM).astype("float32")  # topographic shadow: diffuse light only
        layers = np.stack([veg, scar * 0.92, st.water.astype("float32"), illum.astype("float32"), shade])
        veg, sc, water, illum, shade = _jitter(jrng, layers, _JITTER_PX["s2"])
        soil = _SOIL * st.soil_gain
        land = (
            veg[None] * _VEG[:, None, None]
            + np.clip(1 - veg - sc, 0, None)[None] * soil[:, None, None]
            + sc[None] * _SCAR[:, None, None]
        )
        refl = ((1 - water)[None] * land + water[None] * _WATER[:, None, None]) * illum[None]
        # sensor noise: 2 % multiplicative and 25 DN additive, from one draw
        noise = rng.standard_normal(size=(10, h, w), dtype="float32")
        surf = refl * (1 + 0.02 * noise)
        refl = surf + (_BURNED_HAZE * rng.uniform(0, 1.2))[:, None, None] + 25 * noise
        cls = np.where(st.water, 6, np.where(veg > 0.4, 4, 5)).astype("int16")
        cls[rng.random((h, w)) < 0.01] = 7
        cls[(shade > 0.5) & ~st.water] = 2  # Sen2Cor's "dark area" holds topographic shadow
        # snow on high ground in winter
        if reg.snow:
            winter = np.cos(2 * np.pi * (doy - (15 if not reg.southern else 196)) / 365.25)
            if winter > 0.3:
                line = np.quantile(st.dem, 1 - min(1.0, (winter - 0.3) * 1.2))
                snow = st.dem > line
                refl = np.where(snow[None], _SNOW[:, None, None] * rng.uniform(0.85, 1.0), refl)
                surf = np.where(snow[None], 0, surf)
                cls[snow] = 11
        # clouds, independent of the event (the real series keep the least cloudy image of each interval):
        # about a third of the dates are cloudy, more on a canvas brighter than its region
        u = rng.random() / (plan.cloudiness if plan is not None else 1.0)
        cover = 0.0 if u >= 0.32 else rng.uniform(0.03, 0.4) if u < 0.22 else rng.uniform(0.55, 1.0)
        if cover > 0:
            dens = _fractal(rng, (h, w), 3.0)
            thick = dens > np.quantile(dens, 1 - cover)
            thin = (dens > np.quantile(dens, max(0.0, 1 - cover * 1.4))) & ~thick
            opac = np.clip((dens - dens.min()) / (np.ptp(dens) + 1e-6) * 1.5, 0.5, 1.0)
            refl = np.where(thick[None], _CLOUD[:, None, None] * opac[None] + refl * (1 - opac[None]), refl)
            surf = np.where(thick[None], surf * (1 - opac[None]), surf)
            refl = np.where(thin[None], refl + 0.18 * _CLOUD[:, None, None], refl)
            sh = np.roll(thick, (int(rng.integers(6, 14)), int(rng.integers(-10, 10))), axis=(0, 1)) & ~thick
            refl = np.where(sh[None], refl * 0.35, refl)
            surf = np.where(sh[None], surf * 0.35, surf)
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
        surface[t] = surf
        scl[t] = cls
    nodata = scl == 0
    g = 1.0
    if plan is not None and np.isfinite(plan.s2_target):
        # calibration: scale the land surface (clouds, haze and snow stay) so that the mean over the
        # canvas's S2 files of their mean value, in the raw release's terms, is the target
        valid = np.broadcast_to(~nodata[:, None], bands.shape)
        m = np.nanmean(_tile_means(bands, valid, plan, "s2"))
        # (nearly: no-data pixels are rare and spread over the dates)
        m += float((schema.S2_OFFSET * io.s2_offset_steps(times)).mean())
        s = np.nanmean(_tile_means(surface, valid, plan, "s2"))
        if np.isfinite(m) and s > 0:
            g = float(np.clip(1 + (plan.s2_target - m) / s, 0.2, 3.0))
    # as ESA delivers them: DN >= 1 on valid pixels, 0 where there are no data (SCL 0); date by date, in
    # place (no second copy of the series)
    dn = np.empty((n, 10, h, w), dtype="int16")
    for t in range(n):
        b = bands[t]
        if g != 1.0:
            b += np.float32(g - 1) * surface[t]
        np.clip(np.rint(b, out=b), 1, 10000, out=b)
        b[:, nodata[t]] = 0
        dn[t] = b
    out = {b: dn[:, i] for i, b in enumerate(schema.S2_BANDS)}
    _add_s2_offset(out, times)
    out["SCL"] = scl.astype("int32")
    return out


def _add_s2_offset(bands: dict[str, np.ndarray], times: Sequence[dt.date]) -> None:
    """Raw release: add ESA's +1000 DN offset (baseline 04.00) to the bands of dates from 2022-01-25, in
    place; no-data 0 stays 0 and values are clipped to 10000, as in the real raw files."""
    steps = io.s2_offset_steps(times)
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


def _writer_s1(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the dataset writer does to Sentinel-1 gaps (layover, radar shadow, swath edges): every NaN takes
    the value of the nearest valid pixel of its date and polarisation (the released files hold no NaN).
    Returns new arrays (VV, VH)."""
    return {name: _fill_nearest(data[name], ~np.isfinite(data[name])) for name in schema.S1_BANDS}


def _writer_s2(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the dataset writer does to each Sentinel-2 image before writing (``book/appendix-data.md``): 0 (no data)
    becomes NaN, values are clipped to [0, 10000], NaNs take the value of the nearest valid pixel (per band
    and date, SCL included), and everything is cast to int16. Returns new arrays (bands and SCL)."""
    out = {}
    for name in (*schema.S2_BANDS, "SCL"):
        v = data[name]
        out[name] = _fill_nearest(np.clip(v, 0, 10000), v == 0).astype("int16")
    return out


def _cv_power(x: np.ndarray, cv: float, lo: float = 0.3, hi: float = 3.0) -> float:
    """The exponent ``b`` in ``[lo, hi]`` for which ``x**b`` has the coefficient of variation ``cv`` (a larger
    ``b`` widens the distribution in dB by the same factor); the nearer bound where no ``b`` in the range
    reaches ``cv``. Brent's method: about ten evaluations where a bisection to the same tolerance takes 30."""
    from scipy.optimize import brentq

    lx = np.log(x)
    lx -= lx.max()

    def excess(b: float) -> float:
        y = np.exp(b * lx)
        return float(y.std() / y.mean()) - cv

    if excess(lo) >= 0:
        return lo
    if excess(hi) <= 0:
        return hi
    return brentq(excess, lo, hi, xtol=1e-9)


def _tile_field(values: dict[tuple[int, int], float], shape: tuple[int, int]) -> np.ndarray:
    """A smooth field over a canvas through per-tile values (keyed by tile row, column): bilinear between
    tile centres, constant beyond the outer ones; tiles without a value take the mean of the others."""
    nr, nc = shape[0] // schema.PATCH_SIZE, shape[1] // schema.PATCH_SIZE
    grid = np.full((nr, nc), float(np.mean(list(values.values()))))
    for (r, c), v in values.items():
        grid[r, c] = v
    half = schema.PATCH_SIZE / 2
    centres_r = np.arange(nr) * schema.PATCH_SIZE + half
    centres_c = np.arange(nc) * schema.PATCH_SIZE + half
    rows, cols = np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5
    by_col = np.stack([np.interp(cols, centres_c, grid[r]) for r in range(nr)])
    return np.stack([np.interp(rows, centres_r, by_col[:, j]) for j in range(shape[1])], axis=1)


#: Rounds of the per-tile gain refinement in :func:`_calibrate_s1` (the smooth field moves a tile's mean by
#: its neighbours'; the rounds take it back to the tile's target).
_S1_CALIBRATION_ROUNDS = 12


def _calibrate_s1(out: dict[str, np.ndarray], plan: CanvasPlan, sensor: str) -> None:
    """Scale a canvas's linear backscatter, in place, so that each file's mean and spread are those of the
    reference file its plan aims at: per polarisation a power over the canvas (the spread, as coefficient of
    variation, the files' mean) and a gain that varies smoothly across the canvas, through one value per
    tile (the tile's mean), refined in :data:`_S1_CALIBRATION_ROUNDS` rounds (the smoothing moves a tile's mean
    by its neighbours'), then made exact by a constant factor per tile (tiles far apart in the real
    distribution cannot share a smooth field)."""
    targets = plan.s1_target.get(sensor)
    if not targets:
        return
    tiles = [p for p in plan.patches if sensor in p.sensors]
    shape = out["VV"].shape[-2:]
    for pol_i, pol in enumerate(("VH", "VV")):
        v = out[pol]
        ok = np.isfinite(v) & (v > 0)
        if ok.sum() < 100:
            continue
        x = v[ok]
        sub = x[:: max(1, x.size // 200_000)].astype("float64")
        cv = float(np.mean([t[2 + pol_i] / t[pol_i] for t in targets]))
        v[ok] = np.power(x, np.float32(_cv_power(sub, cv)))
        gains = {p.cell: 1.0 for p in tiles}
        # a tile's mean under a gain field is the field-weighted sum of the values over the dates: the
        # refinement works on those sums (one 2-D field per round), until tiles that lie far apart in the
        # real distribution are told apart too
        total = np.nansum(v, axis=0, dtype="float64")
        count = np.isfinite(v).sum(axis=0)
        for _ in range(_S1_CALIBRATION_ROUNDS):
            for p, _win, f in _tile_factors(tiles, targets, pol_i, _tile_field(gains, shape), total, count):
                gains[p.cell] *= f
        field = _tile_field(gains, shape)
        # what the smooth field cannot reach (neighbours far apart in the real distribution, as its tails
        # are) a constant factor over the tile does: every file's mean is its target
        for _p, win, f in _tile_factors(tiles, targets, pol_i, field, total, count):
            field[win] *= f
        v *= field.astype("float32")[None]


def _tile_factors(tiles, targets, pol_i: int, field: np.ndarray, total: np.ndarray, count: np.ndarray):
    """Per tile with a mean: the tile, its window and the factor that brings its mean under the gain ``field``
    (``total``/``count``: per pixel, the sum and the number of valid values over the dates) to its target."""
    for p, t in zip(tiles, targets, strict=True):
        win = p.window()
        n = int(count[win].sum())
        m = float((field[win] * total[win]).sum() / n) if n else np.nan
        if np.isfinite(m) and m > 0:
            yield p, win, t[pol_i] / m


def _simulate_s1(
    rng, st: _Static, reg: Region, sensor: str, times: list[dt.date], slides, events, plan=None
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
        veg, scar, field_bare, scar_vv = _veg_at(st, reg, day, slides, events)
        # soil moisture: moves VV more than VH; wetter in the days after a (rain-triggered) event
        wet = 1.0 if events and min(events) < day <= min(events) + dt.timedelta(days=10) else 0.0
        moist_vv = rng.normal(0, 0.8) + 1.0 * wet
        moist = {"VV": moist_vv, "VH": 0.45 * moist_vv + rng.normal(0, 0.2)}
        jrng = np.random.default_rng(rng.integers(2**32))
        shift = jrng.integers(2**32)
        for pol_i, pol in enumerate(("VV", "VH")):
            v = _S1_DB["veg"][pol_i]
            s = _S1_DB["soil"][pol_i]
            db = veg * v + (1 - veg) * s
            db = np.where(field_bare, _S1_DB["field_bare"][pol_i], db)
            scar_db = _S1_DB["scar"][pol_i] + (scar_vv if pol == "VV" else 0.3 * scar_vv)
            lin = (1 - scar) * 10 ** (db / 10) + scar * 10 ** (scar_db / 10)
            db = 10 * np.log10(lin)
            db = np.where(st.water, _S1_DB["water"][pol_i], db + terrain_db + moist[pol])
            # the same sub-pixel offset for both polarisations of a date
            db = _jitter(np.random.default_rng(shift), db, _JITTER_PX["s1"])
            lin = 10 ** (db / 10) * rng.gamma(looks, 1 / looks, size=(h, w))
            lin = np.where(invalid, np.nan, lin).astype("float32")
            if rng.random() < 0.04:  # border no-data on some dates
                lin[:, : int(rng.integers(5, 30))] = np.nan
            out[pol][t] = lin
    if plan is not None:
        _calibrate_s1(out, plan, sensor)
    # writer: clip to <= 1; keep 12 mantissa bits: far below speckle, compresses like real data
    for pol in out:
        v = np.minimum(out[pol], 1.0)
        bits = v.view("uint32") & np.uint32(0xFFFFF800)
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
    compress: bool = False,
) -> None:
    """Write one patch as the released files are (``book/appendix-data.md``): every variable ``(time, x, y)`` with the
    data x-first (``data`` comes ``(time, y, x)``, north up, and is transposed), in the writer's order,
    ``x``/``y`` float64 pixel top/left edges, ``time`` with xarray's default encoding (days since the first
    date), ``spatial_ref`` an int64 scalar; uncompressed as the writer writes (the raw release), or with
    ``compress`` zlib-compressed (lossless), as the harmonized release is."""
    n = schema.PATCH_SIZE
    xs = np.arange(n) * schema.PIXEL_SIZE_M + x0
    ys = y0 + np.arange(n) * -schema.PIXEL_SIZE_M
    gm = {"grid_mapping": "spatial_ref"}
    names = _FILE_ORDER[sensor]
    dvars = {  # arrays come as (time, y, x); stored x-first
        name: xr.DataArray(np.ascontiguousarray(np.swapaxes(data[name], 1, 2)), dims=schema.DIMS, attrs=gm)
        for name in names
    }
    time = np.array([np.datetime64(t, "D") for t in times]).astype("datetime64[ns]")
    ds = xr.Dataset(dvars, coords={"time": time, "y": ys, "x": xs}, attrs=attrs)
    ds["spatial_ref"] = _spatial_ref(epsg, x0, y0)
    enc = {name: {"zlib": True, "complevel": 1, "shuffle": True} for name in names} if compress else None
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
    rows: slice,
    cols: slice,
    tokens: list[str],
    confidences: list[float],
    rng: np.random.Generator,
) -> _PatchAnnotations:
    # the inventory's polygons that share area with the tile (unmapped bare ground is in no inventory)
    inside = [s for s in slides if s.mapped and s.touches(rows, cols)]
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
    """Global attributes as the dataset writer builds them (``book/appendix-data.md``): strings, except the float64
    centre (``y[64]``, ``x[64]``); ``pre_post_dates`` one dict per ``event_date`` entry, in its order."""
    pre_post = [
        schema.writer_pre_post(times, None if tok == _UNDATED else dt.date.fromisoformat(tok))
        for tok in ann.written
    ]
    return {
        "ann_id": schema.encode_ints(s.ann_id for s in ann.inside),
        "ann_bbox": schema.encode_bboxes(_bbox_m(s.polygon_px, plan) for s in ann.inside),
        "event_date": schema.encode_dates(ann.written),
        "date_confidence": schema.encode_floats(ann.confidences),
        "pre_post_dates": schema.encode_pre_post(pre_post),
        "annotated": schema.encode_bool(bool(ann.inside)),
        "satellite": _SATELLITE[sensor],
        "center_lat": float(ys[schema.PATCH_SIZE // 2]),
        "center_lon": float(xs[schema.PATCH_SIZE // 2]),
        "crs": f"EPSG:{epsg}",
    }


def _canvas_job(args: tuple) -> tuple[list[dict], list[dict]]:
    """Simulate one canvas and write its patches; return (file records, inventory records).

    ``args``: ``(plan, out_dir, first_ann_id[, release[, sensors]])``, release ``"raw"`` (default) or
    ``"harmonized"``, sensors the ones whose files are written (default: every sensor).
    """
    plan, out_dir, first_ann_id, *rest = args
    release = rest[0] if rest else "raw"
    wanted = set(rest[1]) if len(rest) > 1 else set(schema.SENSORS)
    out = Path(out_dir)
    reg = REGION_BY_NAME[plan.region]
    rng = np.random.default_rng(plan.seed)
    shape = (plan.height, plan.width)
    st = _static(rng, reg, shape, plan.dem_target)
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
        p.patch_id: _patch_annotations(slides, *p.window(), tokens, inv_conf, order_rng) for p in plan.patches
    }
    # each sensor draws from its own stream: leaving one out changes nothing in the others' files
    sensors = sorted({s for p in plan.patches for s in p.sensors} & wanted)
    records: list[dict] = []
    for sensor in sensors:
        srng = np.random.default_rng([plan.seed, schema.SENSORS.index(sensor)])
        revisit = 5 if sensor == "s2" else reg.s1_revisit
        times = _dates(
            srng, anchor, revisit, 0.3 if sensor == "s2" else 0.05, plan.outside.get(sensor), exclude=events
        )
        if sensor == "s2":
            data = _simulate_s2(srng, st, reg, times, slides, events, plan)
            if plan.scl_unknown:  # whole frames of unknown quality (the bands keep their values)
                data["SCL"][list(plan.scl_unknown)] = schema.SCL_UNKNOWN
        else:
            data = _simulate_s1(srng, st, reg, sensor, times, slides, events, plan)
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
            rows, cols = p.window()
            ann = anns[p.patch_id]
            mask2d = np.zeros((schema.PATCH_SIZE, schema.PATCH_SIZE), dtype="uint8")
            for s in ann.inside:
                mask2d |= s.mask_in(rows, cols).astype("uint8")
            x0 = plan.x0 + p.col0 * schema.PIXEL_SIZE_M
            y0 = plan.y0 - p.row0 * schema.PIXEL_SIZE_M
            xs = np.arange(schema.PATCH_SIZE) * schema.PIXEL_SIZE_M + x0
            ys = y0 + np.arange(schema.PATCH_SIZE) * -schema.PIXEL_SIZE_M
            attrs = _writer_attrs(ann, plan, times, sensor, xs, ys, reg.epsg)
            fdata = {k: v[:, rows, cols] for k, v in data.items()}
            if sensor == "s2":
                fdata = _writer_s2(fdata)
                if release == "harmonized":  # the offset removed as the readers remove it
                    for b in schema.S2_OFFSET_BANDS:
                        fdata[b] = io.harmonize_s2(fdata[b], times, "raw")
            else:
                fdata = _writer_s1(fdata)
            fdata["DEM"] = dem[:, rows, cols]
            fdata["MASK"] = np.broadcast_to(mask2d, (len(times), *mask2d.shape))
            fname = schema.patch_filename(plan.region, sensor, p.patch_id)
            _write_patch(
                out / sensor / fname, fdata, times, x0, y0, reg.epsg, attrs, sensor, release == "harmonized"
            )
            scl_bad = None
            if sensor == "s2":
                scl_bad = schema.unusable_fraction(fdata["SCL"]).tolist()
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
                    "row0": p.row0,
                    # "before"/"after" (event outside the series), "undated" (no date given) or None
                    "event_outside_series": (
                        ("undated" if plan.undated else plan.outside.get(sensor)) if annotated else None
                    ),
                    "bad_fraction": scl_bad,
                    "event_date_attr": attrs["event_date"],
                    "n_undated_events": ann.written.count(_UNDATED),
                    "n_padded": int(plan.padded.get(sensor, 0)),
                    # S2 time steps whose SCL is 255 in every pixel (unknown quality)
                    "scl_unknown_steps": np.flatnonzero(
                        (fdata["SCL"] == schema.SCL_UNKNOWN).all(axis=(1, 2))
                    ).tolist()
                    if sensor == "s2"
                    else [],
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
        if s.mapped
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

**These data are synthetic.** They were written by `s12ls_utils.sample.make_sample` (s12ls-utils {version},
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
    with ProcessPoolExecutor(workers, mp_context=mp_context()) as ex:
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
    pad_s2: bool = False,
    sensors: Sequence[str] | None = None,
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

    ``pad_s2``: also pad some Sentinel-2 series with repeated dates (the writer can; no real S2 file shows
    it, so the default sample pads Sentinel-1 series only; tests use it for the writer's case).

    ``sensors``: write only these sensors' files (default: all three); they are the very files of the full
    sample (each sensor draws from a stream of its own), e.g. for a dry run that trains on Sentinel-2 alone.

    Memory does not grow with the sample: each canvas's files are written as soon as it is simulated
    (by the worker that simulated it), its arrays are dropped, and the per-file records go to a spill
    file and the inventory shapefile in batches; only a small index entry per file stays in memory.
    """
    import time

    from tqdm.auto import tqdm

    if isinstance(n_per_sensor, bool) or not isinstance(n_per_sensor, int | np.integer) or n_per_sensor < 1:
        raise ValueError(f"n_per_sensor must be a whole number of at least 1, not {n_per_sensor!r}")
    workers = check_workers(workers)
    schema.check_choice("release", release, SAMPLE_RELEASES)
    sensors = list(schema.SENSORS if sensors is None else sensors)
    for s in sensors:
        schema.check_choice("sensors", s, schema.SENSORS)
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
    plans = _plan(n_per_sensor, seed, pad_s2=bool(pad_s2))
    jobs = [(p, str(out), 40000 + 1000 * p.index, release, sensors) for p in plans]
    workers = min(len(jobs), workers)
    n_planned = sum(len(set(pp.sensors) & set(sensors)) for p in plans for pp in p.patches)
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
            "generator": "s12ls_utils.sample",
            "release": release,  # read by io.file_release (see SAMPLE_RELEASES)
            "dims": list(schema.DIMS),  # storage order of every variable (x-first, as the released files)
            "version": __version__,
            "seed": seed,
            "n_per_sensor": n_per_sensor,
            "pad_s2": bool(pad_s2),
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
