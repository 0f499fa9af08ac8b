"""How close a data folder is to the real Sen12Landslides, quantity by quantity.

:func:`realism` reads a data folder (by default the synthetic sample) once, file by file
(:func:`s12ls_utils.parallel.map_files`), and sets what it finds next to the published statistics of the
real dataset vendored in ``data/reference/`` (:mod:`s12ls_utils.reference`). For each quantity it gives
the real and the folder's quantiles side by side and a distance: the two-sample Kolmogorov–Smirnov
statistic where both sides are samples (:func:`scipy.stats.ks_2samp`; 0 = the same distribution, 1 =
no overlap at all), and the ratio folder / real of the median (of the value itself where the reference
publishes one number per region).

Quantities (``quantity`` · ``group``):

``s1_mean``, ``s1_std``, ``s1_p99`` · ``<orbit>/<VH|VV>``
    Per-file mean, standard deviation and 99th percentile of the backscatter, **linear** (raw release),
    over every finite value of the file (all dates and pixels), against the published per-file statistics
    of the real raw **s1dsc** files (:func:`reference.file_stats`). Upstream publishes no per-file
    statistics of ascending files, so ``s1asc`` is compared with the same descending reference. A folder in
    dB (the harmonized release) is converted to linear first. The per-file means are also given in dB
    (``q05_dB`` …: quantiles of ``10·log10`` of the per-file linear means).
``s2_mean`` · ``<region>``
    The mean over files of the per-file mean reflectance, per region, against :func:`reference.region_stats`
    (sensor ``s2``, statistic ``mean``; its ``over_files`` mean and std). **Assumption**, from the published
    numbers: upstream pooled the ten bands B02…B12 only. Its Sentinel-1 region means equal the mean of
    the per-file VH and VV means exactly (DEM, MASK left out; checked against the per-file table), its S2
    per-file minima are never below 1 and their p1 is hundreds of DN (so neither SCL nor MASK, which hold
    0s and small class codes, nor no-data 0s are in the pool). We therefore pool the ten bands and leave
    out no-data zeros. The reference is the **raw** release: dates from 2022-01-25 carry ESA's +1000 DN
    offset there, so the folder is compared in the same terms (raw files as stored; a harmonized folder
    gets the offset back on non-zero values of those dates). The harmonized mean (offset removed, as the
    package's readers do) is given as ``mean_harmonized`` for information.
``dem_mean`` · ``s1dsc``
    Per-file mean DEM (m) of the folder's s1dsc files against the DEM rows of the real per-file statistics
    (also s1dsc files).
``landslide_px`` · ``annotated`` / ``LD-like``
    Landslide pixels (``MASK`` at t=0) per annotated S2 patch against every real S2 patch with at least one
    (S12LS-AD, annotated := ``n_positive > 0``); and per patch of the folder that the S12LS-LD filter keeps
    (annotated, ≥ 50 pixels, ``usa_alaska``/``nepal`` excluded; :func:`splits.select`) against the published
    S12LS-LD S2 patches.
``annotated_share`` · ``<region>``
    Share (%) of S2 patches with at least one landslide pixel, per region. The real side has no
    ``annotated`` flag in the metadata: annotated := ``n_positive > 0`` on both sides.
``tiles_touching`` · ``s2``; ``tile_area`` · ``areas`` / ``tiles``
    The tile lattice of the S2 patches: the share (%) of tiles with another tile among their 8 neighbours
    (:func:`splits.tile_pairs`), and the size (tiles) of the connected areas those contacts form, against
    the real S2 tiles (:func:`reference.catalog`; the 236 without a published position left out). Group
    ``areas`` has one value per connected area (an isolated tile is an area of 1); group ``tiles`` one per
    tile, the size of the area it lies in (what a split that ignores geography has to cut through).

``s1_ratio`` · ``<orbit>``
    Per-file ratio of the mean VV to the mean VH, in dB (``10·log10(VV mean / VH mean)``, linear means),
    against the same ratio of the real raw s1dsc files.
``s1_orbit_diff`` · ``VV``
    Per location with both orbits: ``|10·log10(VV mean asc) − 10·log10(VV mean dsc)|`` (dB) of the per-file
    means. Both orbits see the same 1.28 km of ground; upstream publishes no ascending statistics, so there is
    no real side (the generator's bound: :data:`ORBIT_DIFF_BOUNDS`).
``nonfinite`` · ``<sensor>``; ``repeated_dates`` · ``<sensor>``; ``scl_unknown`` · ``s2``
    Facts of the released files that the vendored metadata cannot give, from third-party reads of the real
    files in bulk (:data:`REAL_FILE_FACTS`): NaN/Inf values in the bands and the DEM (``values``, and
    ``files`` with any), time steps not later than the one before them (``steps``, ``files``), and whole S2
    frames whose SCL is 255, unknown quality (``share`` of frames and ``files_share`` of files with one, %).
    The real side is given where a fact is known (no NaN or Inf, no repeated S2 date, 3,285 frames of 255
    in 1,133 raw Chimanimani files, every one of them with some); Sentinel-1 dates were not checked.

Region names are matched to the real ones by name, else by a suffix after an ``_`` (``japan_hokkaido`` →
``hokkaido``); regions the reference lacks are left out of the per-region rows. Quantiles are
:func:`numpy.quantile` (linear interpolation) at 5, 50 and 95 %.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import catalog as catalog_mod
from .. import io, reference, schema
from ..parallel import map_files

log = logging.getLogger(__name__)

#: What third parties found reading the released files in bulk (the format notes of this project, summarised in ``book/appendix-data.md``,
#: "What the released files show"): all 13,628 harmonized S2 files and all 1,133 raw Chimanimani S2 files
#: (hash-checked against the hub). ``scl_unknown_frames`` whole S2 frames with SCL 255 in the
#: ``scl_unknown_files`` raw Chimanimani files, every one of them holding some; no NaN or Inf in any band of
#: those files (the writer nearest-fills gaps in S1, S2 and the DEM); S2 time stamps unique and strictly
#: increasing in every one of those files. The synthetic generator aims at them.
REAL_FILE_FACTS: dict[str, int] = {
    "scl_unknown_frames": 3285,
    "scl_unknown_files": 1133,
    "nonfinite_values": 0,
    "repeated_s2_steps": 0,
}
#: What the synthetic sample must keep (dB) for the per-location |asc − dsc| difference of the per-file
#: mean VV: at most the first at the 95th percentile, the second at worst (the two orbits see the same
#: ground; a realism test holds the default sample to them).
ORBIT_DIFF_BOUNDS: tuple[float, float] = (5.0, 8.0)
#: Quantiles reported for every sample-vs-sample quantity.
QUANTILES: tuple[float, ...] = (0.05, 0.5, 0.95)
#: Every quantity of a report, in the order of its tables.
QUANTITIES: tuple[str, ...] = (
    "s1_mean",
    "s1_std",
    "s1_p99",
    "s2_mean",
    "dem_mean",
    "landslide_px",
    "annotated_share",
    "tiles_touching",
    "tile_area",
    "s1_ratio",
    "s1_orbit_diff",
    "nonfinite",
    "repeated_dates",
    "scl_unknown",
)
_S1_STATS = ("mean", "std", "p99")
_UNITS = {
    "s1_mean": "linear",
    "s1_std": "linear",
    "s1_p99": "linear",
    "s2_mean": "DN (raw)",
    "dem_mean": "m",
    "landslide_px": "pixels",
    "annotated_share": "%",
    "tiles_touching": "%",
    "tile_area": "tiles",
    "s1_ratio": "dB",
    "s1_orbit_diff": "dB",
    "nonfinite": "values / files",
    "repeated_dates": "steps / files",
    "scl_unknown": "%",
}
TABLE_COLUMNS = ["quantity", "group", "statistic", "real", "data", "ratio"]
DISTANCE_COLUMNS = ["quantity", "group", "ks", "median_ratio", "n_real", "n_data"]


def _qname(q: float) -> str:
    return f"q{round(100 * q):02d}"


# --------------------------------------------------------------------------------------------------
# Per-file pass
# --------------------------------------------------------------------------------------------------
def _finite(a) -> np.ndarray:
    a = np.asarray(a, dtype="float64").ravel()
    return a[np.isfinite(a)]


def file_summary(path: str | Path) -> dict:
    """The per-file figures of one patch (what :func:`realism` reads of each file).

    Sentinel-1: ``VH_mean``, ``VH_std``, ``VH_p99`` (likewise VV; linear, over every finite value of the
    file, population std) and ``DEM_mean`` (m). Sentinel-2: ``band_mean`` (the ten bands pooled, no-data
    zeros left out, in the raw release's terms: see the module docstring), ``band_mean_harmonized`` (the
    same with the offset removed), ``DEM_mean`` and ``scl_unknown_frames`` (time steps whose SCL is 255 in
    every pixel). Every file: ``nonfinite`` (NaN or Inf values in the bands and the DEM, as stored) and
    ``repeated_steps`` (time steps not later than the one before). NaN where a file has no valid value.
    """
    path = Path(path)
    with io.open_patch(path, s1_unit="linear", harmonize=False, load=True) as ds:
        out: dict[str, float] = {}
        stored = [v for v in (*schema.S1_BANDS, *schema.S2_BANDS, "DEM") if v in ds]
        out["nonfinite"] = int(sum(np.count_nonzero(~np.isfinite(ds[v].values)) for v in stored))
        times = ds["time"].values
        out["repeated_steps"] = int(np.count_nonzero(np.diff(times) <= np.timedelta64(0)))
        if "SCL" in ds:
            scl = ds["SCL"].values
            out["scl_unknown_frames"] = int(
                (scl == schema.SCL_UNKNOWN).reshape(scl.shape[0], -1).all(1).sum()
            )
        if "VV" in ds:
            for band in schema.S1_BANDS:
                v = _finite(ds[band].values) if band in ds else np.empty(0)
                out[f"{band}_mean"] = float(v.mean()) if v.size else np.nan
                out[f"{band}_std"] = float(v.std()) if v.size else np.nan
                out[f"{band}_p99"] = float(np.percentile(v, 99)) if v.size else np.nan
        else:
            release = ds.attrs.get("release", "unknown")
            steps = io.s2_offset_steps(ds["time"].values)
            raw_sum = harm_sum = 0.0
            raw_n = harm_n = 0
            for band in schema.S2_BANDS:
                a = ds[band].values.astype("float64")  # (time, y, x); _FillValue already NaN
                valid = np.isfinite(a) & (a != 0)
                if release == "harmonized":  # give back the offset the raw release carries
                    raw = np.where(valid & steps[:, None, None], a + schema.S2_OFFSET, a)
                    harm = a
                else:  # raw (or unknown: read as stored, like io does)
                    raw = a
                    harm = io.harmonize_s2(a, ds["time"].values, release)
                raw_sum += float(raw[valid].sum())
                raw_n += int(valid.sum())
                hv = np.isfinite(harm) & (harm != 0)
                harm_sum += float(harm[hv].sum())
                harm_n += int(hv.sum())
            out["band_mean"] = raw_sum / raw_n if raw_n else np.nan
            out["band_mean_harmonized"] = harm_sum / harm_n if harm_n else np.nan
        dem = _finite(ds["DEM"].values) if "DEM" in ds else np.empty(0)
        out["DEM_mean"] = float(dem.mean()) if dem.size else np.nan
    return out


def _summary_of(rel: str, *, root: str) -> dict:
    return file_summary(Path(root) / rel)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def match_region(name: str, real_names) -> str | None:
    """The real region a folder's region stands for: the same name, else the longest ``_``-suffix that is
    a real region (``japan_hokkaido`` → ``hokkaido``); None when there is none."""
    real = set(map(str, real_names))
    if name in real:
        return name
    parts = str(name).split("_")
    for i in range(1, len(parts)):
        cand = "_".join(parts[i:])
        if cand in real:
            return cand
    return None


def connected_areas(frame: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    """``(touching, sizes)`` of a tile lattice: per located tile (key) whether another tile is among its
    8 neighbours (:func:`splits.tile_pairs`), and the size (tiles) of every connected area those contacts
    form, isolated tiles included (areas of 1), largest first. ``frame`` holds ``key``, ``epsg``,
    ``center_x``, ``center_y``; rows without a position are left out."""
    from .. import splits

    t = frame[["key", "epsg", "center_x", "center_y"]].dropna().copy()
    t["key"] = t["key"].astype(str)
    keys = np.sort(t["key"].unique())
    if keys.size == 0:
        return pd.Series([], dtype=bool), np.empty(0, dtype="int64")
    graph = splits.tile_graph(keys, splits.tile_pairs(t))
    # a tile touches another when it is an end of a pair (the graph's rows and columns are the pairs' ends)
    touching = np.bincount(np.concatenate([graph.row, graph.col]), minlength=keys.size) > 0
    sizes = np.sort(np.bincount(splits.tile_areas(graph)))[::-1]
    return pd.Series(touching, index=keys, name="touching"), sizes.astype("int64")


def _quantiles(x: np.ndarray) -> list[float]:
    return [float(v) for v in np.quantile(x, QUANTILES)] if x.size else [np.nan] * len(QUANTILES)


def _ratio(data: float, real: float) -> float:
    if not (np.isfinite(data) and np.isfinite(real)) or real == 0:
        return np.nan
    return float(data / real)


def _ks(real: np.ndarray, data: np.ndarray) -> float:
    if real.size == 0 or data.size == 0:
        return np.nan
    from scipy.stats import ks_2samp

    return float(ks_2samp(real, data).statistic)


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    if float(v).is_integer() and abs(v) < 1e9:
        return f"{int(v):d}"
    return f"{v:.4g}"


def _db(x: np.ndarray) -> np.ndarray:
    return np.asarray(io.to_db(np.asarray(x, dtype="float64")), dtype="float64")


@functools.cache
def real_tile_areas() -> tuple[pd.Series, np.ndarray]:
    """:func:`connected_areas` of the real S2 tile lattice (the vendored catalog), computed once per process: the
    realism report compares with it, the generator's plan draws its area sizes from it."""
    c = reference.catalog()
    return connected_areas(c[c["sensor"] == "s2"])


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------
@dataclass
class RealismReport:
    """What :func:`realism` found.

    ``table``: tidy, one row per ``quantity, group, statistic`` with the ``real`` and the folder's
    (``data``) value and their ``ratio`` (data / real; NaN for counts ``n`` and for dB values, whose
    difference, not ratio, means something). ``distances``: one row per ``quantity, group`` with ``ks``
    (two-sample KS statistic; NaN where the real side is one published number) and ``median_ratio`` (data
    / real of the median; of the value itself for per-region and share quantities), ``n_real``,
    ``n_data``. ``samples``: ``{(quantity, group): {"real": array, "data": array}}`` for the sample
    quantities (what the figure draws). ``notes``: the assumptions and what was left out.
    """

    data_dir: Path
    table: pd.DataFrame
    distances: pd.DataFrame
    samples: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    n_files: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    #: the bounds the sample is held to for the asc − dsc difference (what the figure marks)
    orbit_diff_bounds: tuple[float, float] = ORBIT_DIFF_BOUNDS

    def value(self, quantity: str, group: str, statistic: str, side: str = "data") -> float:
        """One number of :attr:`table` (``side`` ``"real"``, ``"data"`` or ``"ratio"``)."""
        t = self.table
        hit = t[(t["quantity"] == quantity) & (t["group"] == group) & (t["statistic"] == statistic)]
        if hit.empty:
            raise KeyError(f"no row {quantity}/{group}/{statistic} in the report")
        return float(hit[side].iloc[0])

    def distance(self, quantity: str, group: str) -> pd.Series:
        """The :attr:`distances` row of one quantity and group."""
        d = self.distances
        hit = d[(d["quantity"] == quantity) & (d["group"] == group)]
        if hit.empty:
            raise KeyError(f"no distance for {quantity}/{group} in the report")
        return hit.iloc[0]

    def summary(self) -> pd.DataFrame:
        """The calibrated quantities side by side, one row each (what the data appendix shows): per-file
        Sentinel-1 means (5/50/95 % quantiles, linear), Sentinel-2 means per region, per-file DEM means,
        landslide pixels per S12LS-LD(-like) patch, annotated share per region, the share of touching tiles,
        the size of the connected area a tile lies in, the per-file VV/VH ratio, the per-location asc − dsc
        difference of the mean VV (median, q95, worst), NaN/Inf values, repeated time steps and the share
        of S2 frames with SCL 255. Columns ``quantity``, ``group``, ``statistic``,
        ``unit``, ``real``, ``data``, ``ratio`` (data / real)."""
        t = self.table
        keep = (
            (
                t["quantity"].isin(["s1_mean", "dem_mean", "landslide_px", "tile_area", "s1_ratio"])
                & t["statistic"].isin([_qname(q) for q in QUANTILES])
            )
            | ((t["quantity"] == "s2_mean") & (t["statistic"] == "mean"))
            | t["quantity"].isin(["annotated_share", "tiles_touching", "scl_unknown"])
            & (t["statistic"] == "share")
            | (t["quantity"] == "s1_orbit_diff") & t["statistic"].isin(["q50", "q95", "max"])
            | (t["quantity"] == "nonfinite") & (t["statistic"] == "values")
            | (t["quantity"] == "repeated_dates") & (t["statistic"] == "steps")
        )
        keep &= ~((t["quantity"] == "landslide_px") & (t["group"] != "LD-like"))
        keep &= ~((t["quantity"] == "tile_area") & (t["group"] != "tiles"))
        out = t[keep].copy()
        out["unit"] = out["quantity"].map(_UNITS)
        order = {q: i for i, q in enumerate(QUANTITIES)}
        out = out.sort_values("quantity", key=lambda c: c.map(order), kind="stable")
        return out[["quantity", "group", "statistic", "unit", "real", "data", "ratio"]].reset_index(drop=True)

    def headline(self) -> dict:
        """The figures chapter 01 and the data appendix quote, by name; NaN (or ``"none"``) where the data
        folder lacks what one needs (a Sentinel-2-only download has no Sentinel-1 or its DEM means)."""
        nan = float("nan")

        def dist(quantity: str, group: str, col: str) -> float:
            try:
                return float(self.distance(quantity, group)[col])
            except KeyError:
                return nan

        def value(quantity: str, group: str, statistic: str, side: str) -> float:
            try:
                return self.value(quantity, group, statistic, side)
            except KeyError:
                return nan

        summary = self.summary()
        s1q = summary[(summary["quantity"] == "s1_mean") & summary["ratio"].notna()]
        worst = s1q.iloc[int((s1q["ratio"] - 1).abs().to_numpy().argmax())] if len(s1q) else None
        s2r = summary.loc[summary["quantity"] == "s2_mean", "ratio"].dropna()
        share_r = summary.loc[summary["quantity"] == "annotated_share", "ratio"].dropna()
        dem_group = next((g for g in ("s1dsc", "s1asc", "s2") if g in set(self.distances["group"])), "s1dsc")
        return {
            "realism_s1_vv_median_ratio": dist("s1_mean", "s1dsc/VV", "median_ratio"),
            "realism_s1_vv_ks": dist("s1_mean", "s1dsc/VV", "ks"),
            "realism_dem_median_ratio": dist("dem_mean", dem_group, "median_ratio"),
            "realism_touching_real_pct": round(value("tiles_touching", "s2", "share", "real"), 1),
            "realism_touching_sample_pct": round(value("tiles_touching", "s2", "share", "data"), 1),
            "realism_ld_px_median_real": value("landslide_px", "LD-like", "q50", "real"),
            "realism_ld_px_median_sample": value("landslide_px", "LD-like", "q50", "data"),
            "realism_ld_px_ks": dist("landslide_px", "LD-like", "ks"),
            "realism_s1_worst_ratio": float(worst["ratio"]) if worst is not None else nan,
            "realism_s1_worst": f"{worst['group']} {worst['statistic']}" if worst is not None else "none",
            "realism_s2_ratio_min": float(s2r.min()) if len(s2r) else nan,
            "realism_s2_ratio_max": float(s2r.max()) if len(s2r) else nan,
            "realism_share_ratio_max": float(share_r.max()) if len(share_r) else nan,
            "realism_area_median_real": value("tile_area", "tiles", "q50", "real"),
            "realism_area_median_sample": value("tile_area", "tiles", "q50", "data"),
            "realism_orbit_diff_q95": value("s1_orbit_diff", "VV", "q95", "data"),
            "realism_orbit_diff_max": value("s1_orbit_diff", "VV", "max", "data"),
            "realism_orbit_bound_q95": self.orbit_diff_bounds[0],
            "realism_orbit_bound_max": self.orbit_diff_bounds[1],
            "realism_ratio_q50_real": value("s1_ratio", "s1dsc", "q50", "real"),
            "realism_ratio_q50_sample": value("s1_ratio", "s1dsc", "q50", "data"),
            "realism_nonfinite": sum(
                value("nonfinite", s, "values", "data") for s in self.n_files if self.n_files[s]
            ),
            "realism_repeated_s2_steps": value("repeated_dates", "s2", "steps", "data"),
            "realism_scl_unknown_pct_real": value("scl_unknown", "s2", "share", "real"),
            "realism_scl_unknown_pct_sample": value("scl_unknown", "s2", "share", "data"),
        }

    def to_text(self) -> str:
        """The report as plain text: the distances, then every statistic side by side, then the notes."""
        files = ", ".join(f"{n} {s}" for s, n in self.n_files.items())
        lines = [f"Realism of {self.data_dir} ({files}) against the published real dataset", ""]
        d = self.distances.copy()
        d["unit"] = d["quantity"].map(_UNITS)
        with pd.option_context("display.width", 200, "display.max_rows", 500, "display.max_columns", 20):
            lines.append("Distances (ks: two-sample Kolmogorov-Smirnov, 0 = same; median_ratio: data / real)")
            lines.append(d.to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep="-"))
            lines += ["", "Statistics side by side (ratio: data / real)"]
            t = self.table.copy()
            for col in ("real", "data", "ratio"):
                t[col] = t[col].map(_fmt)
            lines.append(t.to_string(index=False))
        if self.failures:
            lines += ["", f"{len(self.failures)} file(s) could not be read and were left out:"]
            lines += [f"  {f}" for f in self.failures]
        lines += ["", "Notes"] + [f"- {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"RealismReport({self.data_dir}, {len(self.distances)} distances)"


class _Builder:
    def __init__(self):
        self.rows: list[dict] = []
        self.dists: list[dict] = []
        self.samples: dict = {}

    def row(self, quantity, group, statistic, real, data, ratio=True):
        real = float(real) if real is not None else np.nan
        data = float(data) if data is not None else np.nan
        self.rows.append(
            {
                "quantity": quantity,
                "group": group,
                "statistic": statistic,
                "real": real,
                "data": data,
                "ratio": _ratio(data, real) if ratio else np.nan,
            }
        )

    def dist(self, quantity, group, ks, median_ratio, n_real, n_data):
        self.dists.append(
            {
                "quantity": quantity,
                "group": group,
                "ks": ks,
                "median_ratio": median_ratio,
                "n_real": pd.NA if n_real is None else int(n_real),
                "n_data": int(n_data),
            }
        )

    def samples_pair(self, quantity, group, real, data, db: bool = False, ratio: bool = True):
        """Quantiles, counts and the distance of two samples (``ratio=False``: values in dB, whose ratio
        means nothing)."""
        real = _finite(real)
        data = _finite(data)
        self.samples[(quantity, group)] = {"real": real, "data": data}
        self.row(quantity, group, "n", real.size, data.size, ratio=False)
        for q, r, d in zip(QUANTILES, _quantiles(real), _quantiles(data), strict=True):
            self.row(quantity, group, _qname(q), r, d, ratio=ratio)
        if db:
            rdb, ddb = _finite(_db(real)), _finite(_db(data))
            for q, r, d in zip(QUANTILES, _quantiles(rdb), _quantiles(ddb), strict=True):
                self.row(quantity, group, f"{_qname(q)}_dB", r, d, ratio=False)
        med_r = float(np.median(real)) if real.size else np.nan
        med_d = float(np.median(data)) if data.size else np.nan
        med_ratio = _ratio(med_d, med_r) if ratio else np.nan
        self.dist(quantity, group, _ks(real, data), med_ratio, real.size, data.size)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        t = pd.DataFrame(self.rows, columns=TABLE_COLUMNS)
        d = pd.DataFrame(self.dists, columns=DISTANCE_COLUMNS).astype({"n_real": "Int64", "n_data": "int64"})
        return t, d


def orbit_differences(per_file: pd.DataFrame) -> pd.Series:
    """Per location (``key``) with both orbits, ``|10·log10(VV_mean asc) − 10·log10(VV_mean dsc)|`` (dB)
    of the per-file linear means; ``per_file`` holds ``key``, ``sensor`` and ``VV_mean`` per file."""
    s1 = per_file[per_file["sensor"].astype(str).isin(schema.S1_SENSORS)]
    wide = s1.pivot_table(index="key", columns="sensor", values="VV_mean", aggfunc="first", observed=True)
    if not set(schema.S1_SENSORS) <= set(wide.columns):
        return pd.Series([], dtype="float64", name="vv_diff_db")
    both = wide[list(schema.S1_SENSORS)].dropna()
    diff = np.abs(_db(both["s1asc"].to_numpy()) - _db(both["s1dsc"].to_numpy()))
    return pd.Series(diff, index=both.index.astype(str), name="vv_diff_db")


def _joint_quantities(
    b: _Builder, per_file: pd.DataFrame, sensor: pd.Series, fs: pd.DataFrame, notes
) -> None:
    """The quantities of two orbits or of facts third parties read from the real files (module docstring)."""
    real_w = fs.pivot_table(index="file", columns="variable", values="mean", aggfunc="first", observed=True)
    real_ratio = _db(real_w["VV"].to_numpy()) - _db(real_w["VH"].to_numpy())
    for orbit in schema.S1_SENSORS:
        f = per_file[sensor == orbit]
        if {"VV_mean", "VH_mean"} <= set(f.columns):
            ratio = _db(f["VV_mean"].to_numpy()) - _db(f["VH_mean"].to_numpy())
        else:
            ratio = np.empty(0)
        b.samples_pair("s1_ratio", orbit, real_ratio, ratio, ratio=False)
    diff = orbit_differences(per_file) if "VV_mean" in per_file else pd.Series([], dtype="float64")
    b.samples_pair("s1_orbit_diff", "VV", np.empty(0), diff.to_numpy(), ratio=False)
    b.row("s1_orbit_diff", "VV", "max", np.nan, float(diff.max()) if len(diff) else np.nan, ratio=False)
    notes.append(
        "Sentinel-1 joint quantities: the per-file VV/VH ratio of the linear means (dB) against the real "
        "s1dsc files; per location, |asc - dsc| of the per-file mean VV (dB), which has no real side "
        f"(the sample is held to at most {ORBIT_DIFF_BOUNDS[0]:g} dB at q95, {ORBIT_DIFF_BOUNDS[1]:g} dB at worst)."
    )
    facts = REAL_FILE_FACTS
    for s in schema.SENSORS:
        f = per_file[sensor == s]
        if f.empty:
            continue
        nonfinite = f["nonfinite"].to_numpy(dtype="float64")
        real_nf = facts["nonfinite_values"]  # S2 read; S1 and the DEM filled by the same writer
        b.row("nonfinite", s, "values", real_nf, float(nonfinite.sum()), ratio=False)
        b.row("nonfinite", s, "files", real_nf, float((nonfinite > 0).sum()), ratio=False)
        b.dist("nonfinite", s, np.nan, np.nan, None, len(f))
        steps = f["repeated_steps"].to_numpy(dtype="float64")
        real_rep = facts["repeated_s2_steps"] if s == "s2" else np.nan  # S1 time stamps were not checked
        b.row("repeated_dates", s, "steps", real_rep, float(steps.sum()), ratio=False)
        b.row("repeated_dates", s, "files", real_rep, float((steps > 0).sum()), ratio=False)
        b.dist("repeated_dates", s, np.nan, np.nan, None, len(f))
    f = per_file[sensor == "s2"]
    if not f.empty and "scl_unknown_frames" in f:
        frames = f["scl_unknown_frames"].to_numpy(dtype="float64")
        real_share = 100 * facts["scl_unknown_frames"] / (facts["scl_unknown_files"] * schema.N_TIME)
        share = 100 * float(frames.sum()) / (len(f) * schema.N_TIME)
        b.row("scl_unknown", "s2", "share", real_share, share)
        b.row("scl_unknown", "s2", "files_share", 100.0, 100 * float((frames > 0).mean()))
        b.dist("scl_unknown", "s2", np.nan, _ratio(share, real_share), facts["scl_unknown_files"], len(f))
    notes.append(
        "Facts of the real files (third-party reads of every harmonized S2 file and the 1,133 raw "
        "Chimanimani S2 files): no NaN or Inf in any band, no repeated S2 date, 3,285 whole S2 frames with "
        "SCL 255 (unknown quality) in 1,133 files, every one with some; S1 dates were not checked. "
        "nonfinite counts values as stored, repeated_dates steps not later than the one before."
    )


def realism(
    data_dir: str | Path = "data/sample",
    *,
    workers: int | None = None,
    scheduler="processes",
    progress: bool = False,
) -> RealismReport:
    """Compare a data folder with the published real dataset, quantity by quantity (module docstring).

    ``workers``/``scheduler``/``progress`` are those of :func:`s12ls_utils.parallel.map_files` (one pass
    over the folder's files, plus the catalog scan, which reuses the folder's catalog cache). Files that
    cannot be read are left out and listed in ``failures``.

    Raises
    ------
    FileNotFoundError
        ``data_dir`` is not a folder.
    ValueError
        ``data_dir`` holds no readable patch file (``<data_dir>/{s1asc,s1dsc,s2}/*.nc``).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder {data_dir} does not exist (or is not a folder)")
    cat = catalog_mod.build_catalog(data_dir, workers=workers, scheduler=scheduler, progress=progress)
    errors = [f"{e['path']}: {e['reason']}" for e in cat.attrs.get("errors", [])]
    if cat.empty:
        raise ValueError(
            f"{data_dir} holds no readable patch file (expected <data_dir>/{{s1asc,s1dsc,s2}}/"
            f"<region>_<sensor>_<id>.nc){'; ' + errors[0] if errors else ''}"
        )
    root = Path(cat.attrs.get("data_dir", data_dir))
    cat = cat.reset_index(drop=True)
    rels = cat["path"].astype(str).tolist()
    mapped = map_files(
        functools.partial(_summary_of, root=str(root)),
        rels,
        scheduler=scheduler,
        workers=workers,
        desc="realism",
        progress=progress,
    )
    failures = errors + [f"{f.item}: {f.error_type}: {f.message}" for f in mapped.failures]
    summ = pd.DataFrame([r if r is not None else {} for r in mapped.results], index=cat.index)
    per_file = pd.concat([cat, summ], axis=1)
    per_file = per_file[[r is not None for r in mapped.results]]
    sensor = per_file["sensor"].astype(str)
    b = _Builder()
    notes: list[str] = []

    # ---- Sentinel-1 per-file statistics (linear) vs the real raw s1dsc files
    fs = reference.file_stats()
    for stat in _S1_STATS:
        for orbit in ("s1asc", "s1dsc"):
            for band in ("VH", "VV"):
                real = fs.loc[fs["variable"] == band, stat].to_numpy(dtype="float64")
                col = f"{band}_{stat}"
                data = per_file.loc[sensor == orbit, col] if col in per_file else pd.Series([], dtype=float)
                b.samples_pair(
                    f"s1_{stat}", f"{orbit}/{band}", real, data.to_numpy(dtype="float64"), stat == "mean"
                )
    notes.append(
        "Sentinel-1: linear backscatter of the raw release; both orbits are compared with the real s1dsc "
        "per-file statistics (upstream publishes none for s1asc)."
    )

    # ---- Sentinel-2 mean reflectance per region vs the published region statistics
    rs = reference.region_stats()
    rs = rs[(rs["sensor"] == "s2") & (rs["statistic"] == "mean")]
    rs = rs.assign(region=rs["region"].astype(str), over_files=rs["over_files"].astype(str))
    real_mean = rs[rs["over_files"] == "mean"].set_index("region")["value"]
    real_std = rs[rs["over_files"] == "std"].set_index("region")["value"]
    s2 = per_file[sensor == "s2"].copy()
    s2["real_region"] = [match_region(r, real_mean.index) for r in s2["region"].astype(str)]
    unmatched = sorted(set(s2.loc[s2["real_region"].isna(), "region"].astype(str)))
    for region, g in s2.dropna(subset=["real_region"]).groupby("real_region", sort=True):
        v = _finite(g["band_mean"])
        vh = _finite(g["band_mean_harmonized"])
        m = float(v.mean()) if v.size else np.nan
        b.row("s2_mean", region, "n", np.nan, v.size, ratio=False)
        b.row("s2_mean", region, "mean", real_mean[region], m)
        b.row("s2_mean", region, "std", real_std[region], float(v.std(ddof=1)) if v.size > 1 else np.nan)
        b.row(
            "s2_mean", region, "mean_harmonized", np.nan, float(vh.mean()) if vh.size else np.nan, ratio=False
        )
        b.dist("s2_mean", region, np.nan, _ratio(m, float(real_mean[region])), None, v.size)
    notes.append(
        "Sentinel-2 mean: the ten bands pooled, no-data zeros left out, in the raw release's terms (+1000 DN "
        "on dates from 2022-01-25), like the published region statistics; real n is not published."
    )
    if unmatched:
        notes.append(f"Sentinel-2 regions without published statistics, left out: {', '.join(unmatched)}.")

    # ---- DEM
    real_dem = fs.loc[fs["variable"] == "DEM", "mean"].to_numpy(dtype="float64")
    b.samples_pair(
        "dem_mean", "s1dsc", real_dem, per_file.loc[sensor == "s1dsc", "DEM_mean"].to_numpy(dtype="float64")
    )

    # ---- landslide pixels
    from .. import splits, tasks

    real_s2 = reference.patches("s2")
    cat_s2 = cat[cat["sensor"].astype(str) == "s2"]
    b.samples_pair(
        "landslide_px",
        "annotated",
        real_s2.loc[real_s2["n_positive"] > 0, "n_positive"].to_numpy(dtype="float64"),
        cat_s2.loc[cat_s2["n_positive"] > 0, "n_positive"].to_numpy(dtype="float64"),
    )
    ld_cfg = tasks.load_config("S12LS-LD", satellites=("s2",))
    ld_data = splits.select(cat, ld_cfg)["s2"]["n_positive"].to_numpy(dtype="float64")
    ld_real = reference.split_frame("S12LS-LD", "s2")["n_positive"].to_numpy(dtype="float64")
    b.samples_pair("landslide_px", "LD-like", ld_real, ld_data)
    notes.append(
        "Landslide pixels: 'annotated' = S2 patches with n_positive > 0 (real: every S12LS-AD S2 patch with "
        "one); 'LD-like' = the S12LS-LD filter (annotated, >= 50 pixels, usa_alaska/nepal excluded) against "
        "the published S12LS-LD S2 patches."
    )

    # ---- annotated share per region (annotated := n_positive > 0 on both sides)
    real_regions = real_s2["region"].astype(str)
    real_share = 100 * (real_s2["n_positive"] > 0).groupby(real_regions).mean()
    real_n = real_regions.value_counts()
    d_regions = cat_s2["region"].astype(str).map(lambda r: match_region(r, real_share.index))
    for region, g in cat_s2.groupby(d_regions, sort=True):
        share = 100 * float((g["n_positive"] > 0).mean())
        b.row("annotated_share", region, "n", real_n[region], len(g), ratio=False)
        b.row("annotated_share", region, "share", real_share[region], share)
        b.dist(
            "annotated_share",
            region,
            np.nan,
            _ratio(share, float(real_share[region])),
            real_n[region],
            len(g),
        )
    notes.append("Annotated share: annotated := n_positive > 0 on both sides (the metadata has no flag).")

    # ---- tiling
    real_touch, real_sizes = real_tile_areas()
    data_touch, data_sizes = connected_areas(cat_s2)
    rt = 100 * float(real_touch.mean()) if real_touch.size else np.nan
    dt = 100 * float(data_touch.mean()) if data_touch.size else np.nan
    b.row("tiles_touching", "s2", "n", real_touch.size, data_touch.size, ratio=False)
    b.row("tiles_touching", "s2", "share", rt, dt)
    b.dist("tiles_touching", "s2", np.nan, _ratio(dt, rt), real_touch.size, data_touch.size)
    b.samples_pair("tile_area", "areas", real_sizes, data_sizes)
    b.samples_pair("tile_area", "tiles", np.repeat(real_sizes, real_sizes), np.repeat(data_sizes, data_sizes))
    notes.append(
        "Tiling: S2 tiles with another tile among their 8 neighbours (centres <= 1.5 tile widths apart); "
        "connected areas of such contacts, isolated tiles counted as areas of 1 tile."
    )

    _joint_quantities(b, per_file, sensor, fs, notes)

    table, distances = b.frames()
    n_files = {s: int((sensor == s).sum()) for s in schema.SENSORS}
    return RealismReport(
        data_dir=data_dir,
        table=table,
        distances=distances,
        samples=b.samples,
        notes=notes,
        n_files=n_files,
        failures=failures,
    )
