"""The plan of the synthetic sample: its regions, the calibration targets read from the published statistics
of the real dataset, and, per location, the canvas plan (where its tiles lie, which sensors cover them, which
events and landslide sizes it holds, its radiometric level, and the writer's special cases) that
:mod:`s12ls_utils.sample.generate` then simulates and writes. Every draw here comes from the sample's seed, so a
plan is the same whichever worker simulates it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .. import schema


@dataclass(frozen=True)
class Region:
    name: str
    epsg: int
    lon: float
    lat: float
    event_date: str
    weight: float
    base_elevation: float  # m (used only where the reference has no DEM statistics of the region)
    season_amplitude: float  # relative amplitude of the vegetation cycle
    southern: bool = False
    snow: bool = False
    s1_revisit: int = 12  # days


#: Regions of the synthetic copy (real inventories' names, places and event dates; shares differ on purpose:
#: the sample favours regions the S12LS-LD task keeps). ``lanaodelnorte`` is, as in the real data, a region
#: without a single annotated patch; ``usa_alaska`` is one the S12LS-LD task leaves out.
REGIONS: tuple[Region, ...] = (
    Region("italy", 32632, 11.85, 44.15, "2023-05-16", 0.35, 250, 0.28),
    Region("chimanimani", 32736, 32.87, -19.80, "2019-03-15", 0.25, 900, 0.18, southern=True, s1_revisit=6),
    Region("hokkaido", 32654, 141.95, 42.76, "2018-09-06", 0.14, 120, 0.30, snow=True, s1_revisit=6),
    Region("usa_puertorico", 32619, -66.60, 18.20, "2017-09-20", 0.12, 350, 0.08, s1_revisit=6),
    Region("usa_alaska", 32606, -135.45, 59.23, "2020-12-02", 0.07, 300, 0.40, snow=True, s1_revisit=6),
    Region("lanaodelnorte", 32651, 123.95, 8.05, "2017-12-22", 0.07, 400, 0.06, s1_revisit=12),
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


# --------------------------------------------------------------------------------------------------
# Calibration targets (from the published statistics of the real dataset)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """What the generator aims at, read from :mod:`s12ls_utils.reference` (never typed in here), so that a
    new reference release recalibrates the sample.

    ``s1``: the real raw s1dsc files' per-file (VH mean, VV mean, VH std, VV std), linear, sorted by the VV
    mean (upstream publishes no s1asc statistics; both orbits aim at these). ``dem``: per region, the
    sorted per-file DEM means (m) of those files. ``s2``: per region, (mean, std) over files of the per-file
    mean reflectance of the raw release (ten bands pooled; DN). ``px``: per region, the sorted landslide
    pixels of the S2 patches holding any. ``share``: per region, the share of S2 patches holding landslide
    pixels. Regions the reference lacks use the pooled values (key ``"*"``). ``tile_areas``: one value per
    located real S2 tile, the size (tiles) of the connected area it lies in.
    """

    s1: np.ndarray
    dem: dict[str, np.ndarray]
    s2: dict[str, tuple[float, float]]
    px: dict[str, np.ndarray]
    share: dict[str, float]
    tile_areas: np.ndarray

    def region(self, table: str, region: str):
        values = getattr(self, table)
        return values[region] if region in values else values["*"]


@functools.lru_cache(maxsize=1)
def calibration() -> Calibration:
    """The targets of the generator, from the vendored reference (``data/reference``; read once)."""
    from .. import reference
    from .realism import real_tile_areas

    fs = reference.file_stats()
    fs = fs[fs["sensor"] == "s1dsc"]
    wide = fs.pivot_table(index="file", columns="variable", values=["mean", "std"], aggfunc="first")
    s1 = wide[[("mean", "VH"), ("mean", "VV"), ("std", "VH"), ("std", "VV")]].dropna().to_numpy("float64")
    s1 = s1[np.argsort(s1[:, 1], kind="stable")]
    dem_rows = fs[fs["variable"] == "DEM"]
    dem = {str(r): np.sort(g["mean"].to_numpy("float64")) for r, g in dem_rows.groupby("region")}
    dem["*"] = np.sort(dem_rows["mean"].to_numpy("float64"))
    rs = reference.region_stats()
    rs = rs[(rs["sensor"] == "s2") & (rs["statistic"] == "mean")]
    s2w = rs.pivot_table(index="region", columns="over_files", values="value", aggfunc="first")
    s2 = {str(r): (float(v["mean"]), float(v["std"])) for r, v in s2w.iterrows()}
    s2["*"] = (float(s2w["mean"].mean()), float(s2w["std"].mean()))
    p = reference.patches()
    p = p[p["sensor"] == "s2"]
    pos = p[p["n_positive"] > 0]
    px = {str(r): np.sort(g["n_positive"].to_numpy("float64")) for r, g in pos.groupby("region")}
    px["*"] = np.sort(pos["n_positive"].to_numpy("float64"))
    share = {str(r): float((g["n_positive"] > 0).mean()) for r, g in p.groupby("region")}
    share["*"] = float((p["n_positive"] > 0).mean())
    _, sizes = real_tile_areas()
    return Calibration(s1, dem, s2, px, share, np.repeat(sizes, sizes).astype("int64"))


def _quantile(sorted_values: np.ndarray, u: float | np.ndarray) -> np.ndarray:
    return np.quantile(sorted_values, np.clip(u, 0.0, 1.0))


def _strata(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` quantile levels, one in each of ``n`` equal strata of (0, 1), in random order: a sample of
    ``n`` draws that covers the distribution evenly (its empirical quantiles stay close to the target)."""
    return (rng.permutation(n) + rng.uniform(0.15, 0.85, n)) / max(n, 1)


# --------------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------------
@dataclass
class PatchPlan:
    patch_id: int
    col0: int  # column offset of the patch in its canvas (a multiple of 128: tiles never overlap)
    sensors: tuple[str, ...]
    row0: int = 0  # row offset of the patch in its canvas (a multiple of 128)
    annotated: bool = False  # landslides are placed in this tile (neighbours' landslides may reach in)
    px_target: int = 0  # landslide pixels aimed at in this tile (drawn from the region's real ones)
    empty_mask: bool = False  # annotated by a sliver polygon that covers no pixel centre (a real quirk)

    def window(self) -> tuple[slice, slice]:
        """The canvas rows and columns of the tile."""
        return slice(self.row0, self.row0 + schema.PATCH_SIZE), slice(
            self.col0, self.col0 + schema.PATCH_SIZE
        )

    @property
    def cell(self) -> tuple[int, int]:
        """The tile's row and column in its canvas's lattice."""
        return self.row0 // schema.PATCH_SIZE, self.col0 // schema.PATCH_SIZE


@dataclass
class CanvasPlan:
    index: int
    region: str
    annotated: bool
    x0: float  # west edge, projected metres
    y0: float  # north edge, projected metres
    width: int  # pixels
    patches: list[PatchPlan]
    seed: int
    two_events: bool = False
    outside: dict[str, str] = field(default_factory=dict)  # sensor -> "before"/"after": event outside series
    undated: bool = False  # annotated, but the inventory gives no date: ``event_date`` is the token None
    padded: dict[str, int] = field(default_factory=dict)  # sensor -> last image repeated this many times
    scl_unknown: tuple[int, ...] = ()  # S2 time steps whose SCL is 255 in every pixel (unknown quality)
    height: int = schema.PATCH_SIZE  # pixels
    # calibration targets (from the reference): per sensor, per tile with the sensor (in ``patches`` order)
    # the S1 file's (VH mean, VV mean, VH std, VV std), linear; the S2 mean (raw DN) and DEM mean (m) over the
    # canvas's tiles
    s1_target: dict[str, list[tuple[float, float, float, float]]] = field(default_factory=dict)
    s2_target: float = float("nan")
    dem_target: float = float("nan")
    cloudiness: float = (
        1.0  # factor on the share of cloudy dates (files brighter than their region: cloudier)
    )


def _region_centre(reg: Region) -> tuple[float, float]:
    """The region's centre in its own projected CRS (metres)."""
    from pyproj import Transformer

    return Transformer.from_crs(4326, reg.epsg, always_xy=True).transform(reg.lon, reg.lat)


#: Largest canvas, in tiles (rows, columns): a cluster of neighbouring tiles is simulated as one scene.
_MAX_BLOCK = (3, 4)
#: Largest share of a region's placement square the canvases may cover (with their one-tile margin):
#: random placement jams long before the square is full, so the square grows with the region's tiles.
_MAX_COVER = 0.15
_TILE_M = schema.PATCH_SIZE * schema.PIXEL_SIZE_M  # 1280 m


#: Smaller samples are scaled as if they had this many locations: even a test-sized sample holds clusters
#: of touching tiles (scaled to ten locations, every real area would become an isolated tile).
_MIN_SCALE_LOC = 60


def _cluster_sizes(rng: np.random.Generator, n_loc: int, cal: Calibration) -> list[int]:
    """Sizes (tiles) of the sample's clusters of neighbouring tiles, summing to ``n_loc``.

    The real connected areas, scaled to the sample: the size of the area a real tile lies in, times
    ``n_loc`` (at least ``_MIN_SCALE_LOC``) / real tiles, rounded (at least 1, at most a ``_MAX_BLOCK``). Drawn with weights 1 / size, so
    that the share of the sample's tiles lying in clusters of each size follows the share of real tiles
    lying in areas of the (scaled) size; tiles of small real areas become isolated tiles.
    """
    cap = _MAX_BLOCK[0] * _MAX_BLOCK[1]
    areas = cal.tile_areas
    scale = max(n_loc, _MIN_SCALE_LOC) / max(areas.size, 1)
    scaled = np.clip(np.rint(areas * scale), 1, cap).astype(int)
    values, counts = np.unique(scaled, return_counts=True)
    weights = counts / values
    sizes: list[int] = []
    while sum(sizes) < n_loc:
        s = int(rng.choice(values, p=weights / weights.sum()))
        sizes.append(min(s, n_loc - sum(sizes)))
    return sizes


def _cluster_cells(rng: np.random.Generator, size: int) -> list[tuple[int, int]]:
    """A connected set of ``size`` cells (edge neighbours) grown at random inside a ``_MAX_BLOCK``,
    shifted to start at row 0 and column 0; (row, col) pairs in growth order."""
    rows, cols = _MAX_BLOCK
    if rng.random() < 0.5 and rows != cols and size <= rows * rows:
        rows, cols = cols, rows  # a taller block now and then
    cells = [(int(rng.integers(rows)), int(rng.integers(cols)))]
    while len(cells) < size:
        cand = sorted(
            {
                (r + dr, c + dc)
                for r, c in cells
                for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
                if 0 <= r + dr < rows and 0 <= c + dc < cols
            }
            - set(cells)
        )
        cells.append(cand[int(rng.integers(len(cand)))])
    r0, c0 = min(r for r, _ in cells), min(c for _, c in cells)
    return [(r - r0, c - c0) for r, c in cells]


def _plan(n_per_sensor: int, seed: int, *, pad_s2: bool = False) -> list[CanvasPlan]:
    rng = np.random.default_rng(seed)
    cal = calibration()
    n_loc = max(4, int(round(n_per_sensor / np.mean(list(_P_SENSOR.values())))))
    sizes = _cluster_sizes(rng, n_loc, cal)
    weights = np.array([r.weight for r in REGIONS])
    weights = weights / weights.sum()
    # regions by largest remaining deficit of tiles (a cluster lies in one region)
    regions: list[str] = []
    got = np.zeros(len(REGIONS))
    largest_first = sorted(sizes, reverse=True)
    for s in largest_first:
        i = int(np.argmax(weights * n_loc - got + rng.uniform(0, 1e-3, len(REGIONS))))
        regions.append(REGIONS[i].name)
        got[i] += s
    order = rng.permutation(len(sizes))
    sizes = [largest_first[i] for i in order]
    regions = [regions[i] for i in order]
    pats = [p for p, _ in _PRESENCE]
    probs = np.array([p for _, p in _PRESENCE])
    next_id = int(rng.integers(100, 900))
    canvases: list[CanvasPlan] = []
    occupied: dict[str, set[tuple[int, int]]] = {r.name: set() for r in REGIONS}
    tiles_in = {r.name: sum(s for s, g in zip(sizes, regions, strict=True) if g == r.name) for r in REGIONS}
    for i, (size, region) in enumerate(zip(sizes, regions, strict=True)):
        reg = REGION_BY_NAME[region]
        cells = _cluster_cells(rng, size)
        nr, nc = max(r for r, _ in cells) + 1, max(c for _, c in cells) + 1
        # clusters of one region lie on its lattice of 1.28 km cells, with at least one free cell between
        # them (one terrain per ground point; two clusters never touch)
        half = max(8, int(np.ceil(0.5 * np.sqrt(4 * tiles_in[region] / _MAX_COVER))))
        for _ in range(2000):
            gi, gj = int(rng.integers(-half, half + 1)), int(rng.integers(-half, half + 1))
            box = {(gi + r, gj + c) for r in range(-1, nr + 1) for c in range(-1, nc + 1)}
            if not box & occupied[region]:
                break
        else:
            raise RuntimeError(f"no room left for another canvas in region {region}")
        occupied[region] |= {(gi + r, gj + c) for r in range(nr) for c in range(nc)}
        cx, cy = _region_centre(reg)
        x0 = float(np.floor(cx / _TILE_M) * _TILE_M + gj * _TILE_M)
        y0 = float(np.floor(cy / _TILE_M) * _TILE_M - gi * _TILE_M)
        patches = []
        for r, c in sorted(cells):
            next_id += int(rng.integers(1, 40))
            sensors = pats[rng.choice(len(pats), p=probs / probs.sum())]
            patches.append(
                PatchPlan(next_id, c * schema.PATCH_SIZE, tuple(sensors), row0=r * schema.PATCH_SIZE)
            )
        canvases.append(
            CanvasPlan(
                i,
                region,
                False,
                x0,
                y0,
                nc * schema.PATCH_SIZE,
                patches,
                int(rng.integers(0, 2**31 - 1)),
                height=nr * schema.PATCH_SIZE,
            )
        )
    _plan_annotations(canvases, cal, np.random.default_rng([seed, 3]))
    _plan_radiometry(canvases, cal, np.random.default_rng([seed, 4]), np.random.default_rng([seed, 6]))
    for cp in canvases:  # event structure of the annotated canvases (the main stream, as before)
        if cp.annotated:
            cp.two_events = bool(rng.random() < 0.12)
            for s in schema.SENSORS:
                u = rng.random()
                if u < 0.03:
                    cp.outside[s] = "before"  # event precedes the series
                elif u < 0.05:
                    cp.outside[s] = "after"  # event follows the series
    _plan_writer_cases(canvases, seed, pad_s2)
    return canvases


#: Smallest sample (locations) that holds an annotated tile with an empty mask (the real quirk).
_MIN_LOC_EMPTY_MASK = 30


def _plan_annotations(canvases: list[CanvasPlan], cal: Calibration, rng: np.random.Generator) -> None:
    """Which tiles get landslides, and how many landslide pixels each aims at, in place.

    Per region, the real annotated share of its S2 patches (rounded to whole tiles) is annotated;
    annotated tiles gather in the same clusters (an event's landslides lie together), by a random key per
    canvas blended with one per tile. Each annotated tile aims at a number of landslide pixels drawn
    (stratified) from the region's real patches. A sample of at least ``_MIN_LOC_EMPTY_MASK`` locations
    holds one annotated tile whose polygon covers no pixel centre (``empty_mask``).
    """
    by_region: dict[str, list[tuple[float, PatchPlan, CanvasPlan]]] = {}
    for cp in canvases:
        key = rng.random()
        for p in cp.patches:
            by_region.setdefault(cp.region, []).append((0.65 * key + 0.35 * rng.random(), p, cp))
    for region, tiles in by_region.items():
        tiles.sort(key=lambda t: t[0])
        n_ann = int(round(cal.region("share", region) * len(tiles)))
        chosen = tiles[:n_ann]
        levels = _strata(rng, len(chosen))
        for (_, p, cp), u in zip(chosen, levels, strict=True):
            p.annotated = True
            p.px_target = max(1, int(round(float(_quantile(cal.region("px", region), u)))))
            cp.annotated = True
    n_loc = sum(len(cp.patches) for cp in canvases)
    if n_loc >= _MIN_LOC_EMPTY_MASK:
        cand = [(cp, p) for cp in canvases for p in cp.patches if not p.annotated and cp.annotated]
        if cand:
            cp, p = cand[int(rng.integers(len(cand)))]
            p.empty_mask = True


#: Standard deviation (dB) of each orbit's file mean around its location's: the two orbits of a location see
#: the same ground and are calibrated together; they differ a little (look direction, date, moisture). Our
#: choice (upstream publishes no ascending statistics): it puts the per-location difference of the per-file
#: mean VV near 2 dB at the 95th percentile; each orbit's files still take every stratum once.
_ORBIT_DB = 0.8


def _plan_radiometry(
    canvases: list[CanvasPlan], cal: Calibration, rng: np.random.Generator, s1_rng: np.random.Generator
) -> None:
    """Per canvas, the per-file S1 statistics, S2 mean and DEM mean it is scaled to, in place.

    S1: the locations with an S1 file are put in one order, shared by both orbits (canvases in a random order,
    so a canvas's tiles lie close together, and its tiles in a random order within it). Per orbit, its files
    take every stratum of the real per-file distribution (sorted by VV mean) once, in that order, so the two
    orbits of a location take neighbouring strata; each file aims at its stratum's real file (VV mean and the
    spreads, as coefficients of variation) and at a VH mean from a stratum of its own, near the VV one by a
    shift drawn per location (the two correlate). The strata are handed out in the order of the locations'
    places moved by a normal gain of ``_ORBIT_DB`` dB per file, so each orbit keeps every stratum once while
    its files lie a little apart from the other orbit's. S2: per region,
    the real mean over files plus its std over files times a stratified normal deviate, shifted so that the
    file-weighted mean of the region's canvases is the real one. DEM: a stratified draw from the region's
    real per-file DEM means. S1 draws from ``s1_rng``, S2 and DEM from ``rng``: how S1 is drawn does not move
    the S2 targets.
    """
    from scipy.special import ndtri  # scipy.stats.norm.ppf, without importing scipy.stats

    vh_sorted = np.sort(cal.s1[:, 0])
    order = s1_rng.permutation(len(canvases))
    places = [
        (int(i), j)
        for i in order
        for j in s1_rng.permutation(len(canvases[i].patches))
        if set(canvases[i].patches[j].sensors) & set(schema.S1_SENSORS)
    ]
    vh_shift = s1_rng.normal(0, 0.08, len(places))  # per location: its VH stratum near its VV one
    for sensor in schema.S1_SENSORS:
        mine = [k for k, (i, j) in enumerate(places) if sensor in canvases[i].patches[j].sensors]
        total = len(mine)
        if not total:
            continue
        # the orbit's files take every stratum once, in the shared order of the locations
        u = (np.arange(total) + 0.5) / total
        v = (np.argsort(np.argsort(u + vh_shift[mine])) + 0.5) / total
        real = cal.s1[np.clip(np.rint(u * (len(cal.s1) - 1)).astype(int), 0, len(cal.s1) - 1)]
        vh = _quantile(vh_sorted, v)
        files = np.column_stack([vh, real[:, 1], vh * real[:, 2] / real[:, 0], real[:, 3]])
        # each file a little apart from its stratum (a gain of _ORBIT_DB dB on VV), kept to the strata: the
        # files are handed out in the order of their moved VV, so the orbit still takes every stratum once
        moved = real[:, 1] * 10 ** (s1_rng.normal(0, _ORBIT_DB, total) / 10)
        files = files[np.argsort(np.argsort(moved, kind="stable"), kind="stable")]
        target = {places[k]: tuple(float(x) for x in row) for k, row in zip(mine, files, strict=True)}
        for i, cp in enumerate(canvases):
            rows = [target[(i, j)] for j, p in enumerate(cp.patches) if sensor in p.sensors]
            if rows:
                cp.s1_target[sensor] = rows
    for region in sorted({cp.region for cp in canvases}):
        group = [cp for cp in canvases if cp.region == region]
        n2 = np.array([sum("s2" in p.sensors for p in cp.patches) for cp in group], dtype=float)
        mean, std = cal.region("s2", region)
        z = ndtri(_strata(rng, len(group)))
        target = np.clip(mean + std * z, 0.4 * mean, 2.2 * mean)
        if n2.sum():
            target = target + mean - float((target * n2).sum() / n2.sum())
        dem_u = _strata(rng, len(group))
        for cp, t, u, zz in zip(group, target, dem_u, z, strict=True):
            cp.s2_target = float(t)
            cp.cloudiness = float(np.clip(1 + 0.7 * zz, 0.15, 2.2))
            cp.dem_target = float(_quantile(cal.region("dem", region), u))


#: Share of the eligible canvases (annotated, one event inside every series) whose annotation is undated.
_P_UNDATED = 0.05
#: From this many eligible canvases on, a sample holds undated annotations (at least one; the default
#: sample has about 20 eligible canvases); a smaller sample has none and keeps its few dated events.
_MIN_ELIGIBLE_UNDATED = 10
#: Share of the (canvas, sensor) series that are short and padded with their last image (1-4 repeats).
_P_PADDED = 0.06
#: Sensors whose series may be padded in a default sample: the writer can pad any series, but third parties
#: found unique, strictly increasing time stamps in every real S2 file (S1 unchecked), so S2 is padded only
#: on request (``make_sample(…, pad_s2=True)``).
_PAD_SENSORS: tuple[str, ...] = schema.S1_SENSORS


def _plan_writer_cases(canvases: list[CanvasPlan], seed: int, pad_s2: bool = False) -> None:
    """Mark the canvases whose annotation is undated, the series that are padded and the S2 frames of
    unknown quality, in place.

    Drawn from streams of their own (``[seed, 2]``, ``[seed, 5]``), so the rest of the plan does not
    depend on them. A sample with at least ``_MIN_ELIGIBLE_UNDATED`` eligible canvases (the default
    sample) holds an undated annotation, a smaller one none. Series of :data:`_PAD_SENSORS` (and S2 with
    ``pad_s2``) are padded at the rate ``_P_PADDED``, and every sample holds one padded series (the dataset
    writer's case a reader must handle). Every S2 series gets ``1 + Poisson(rate - 1)`` frames with SCL 255
    at random dates, ``rate`` the frames per file third parties counted in the real raw Chimanimani files
    (:data:`s12ls_utils.sample.realism.REAL_FILE_FACTS`: 3,285 in 1,133 files, about 2.9, every file with some).
    """
    from .realism import REAL_FILE_FACTS

    rng = np.random.default_rng([seed, 2])
    eligible = [c for c in canvases if c.annotated and not c.two_events and not c.outside]
    if len(eligible) >= _MIN_ELIGIBLE_UNDATED:  # small samples keep their few dated events
        for c in eligible:
            c.undated = bool(rng.random() < _P_UNDATED)
        if not any(c.undated for c in eligible):
            eligible[int(rng.integers(len(eligible)))].undated = True
    pad = (*_PAD_SENSORS, "s2") if pad_s2 else _PAD_SENSORS
    series = [(c, s) for c in canvases for s in sorted({s for p in c.patches for s in p.sensors}) if s in pad]
    for c, s in series:
        if rng.random() < _P_PADDED:
            c.padded[s] = int(rng.integers(1, 5))
    if series and not any(c.padded for c in canvases):
        c, s = series[int(rng.integers(len(series)))]
        c.padded[s] = int(rng.integers(1, 5))
    urng = np.random.default_rng([seed, 5])
    extra = REAL_FILE_FACTS["scl_unknown_frames"] / REAL_FILE_FACTS["scl_unknown_files"] - 1
    for c in canvases:
        if any("s2" in p.sensors for p in c.patches):
            k = min(schema.N_TIME, 1 + int(urng.poisson(extra)))
            c.scl_unknown = tuple(sorted(int(t) for t in urng.choice(schema.N_TIME, size=k, replace=False)))
