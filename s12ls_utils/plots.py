"""HoloViz helpers shared by the chapters, and the recording of each chapter's key results.

Display conventions (the book is read by remote-sensing people):

- true colour from B04/B03/B02 with a per-image 2–98 % percentile stretch (clouds would wash out a
  fixed stretch), SAR backscatter in dB with a fixed −25…0 dB (VV) / −32…−8 dB (VH) window;
- every plot has a title, axis labels with units and a legend or colour bar;
- no map tiles or Natural Earth features (they would be downloaded at run time).

``record(chapter, **figures)`` glues each figure for the text (myst-nb ``glue``) and writes them to
``results/<chapter>.json``, which the tests read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import schema

RESULTS_DIR = Path("results")
DB_RANGES = {"VV": (-25.0, 0.0), "VH": (-32.0, -8.0)}
REGION_PALETTE = "Category10"


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------
def _plain(value):
    """JSON-able plain Python value (numpy scalars → Python, NaN → None)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def record(chapter: str, results_dir: str | Path = RESULTS_DIR, glue: bool = True, **figures) -> dict:
    """Record a chapter's key figures: glue each one (when run in a kernel) and merge into the JSON file.

    Returns the full content of ``<results_dir>/<chapter>.json`` after the update.
    """
    path = Path(results_dir) / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update({k: _plain(v) for k, v in figures.items()})
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)
    if glue:
        try:
            from IPython import get_ipython
            from myst_nb import glue as _glue
        except ImportError:  # pragma: no cover - the book stack is not installed
            return data
        if get_ipython() is not None:
            for k, v in figures.items():
                _glue(k, _display_value(v), display=False)
    return data


def _display_value(v):
    if isinstance(v, float | np.floating):
        v = float(v)
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    return v


# --------------------------------------------------------------------------------------------------
# Stretches
# --------------------------------------------------------------------------------------------------
def percentile_stretch(
    arr: np.ndarray, lo: float = 2, hi: float = 98, valid: np.ndarray | None = None
) -> np.ndarray:
    """Scale to 0…1 between the ``lo`` and ``hi`` percentiles of the (valid) values."""
    a = np.asarray(arr, dtype="float32")
    sel = a[np.isfinite(a) & (valid if valid is not None else True)]
    if sel.size == 0:
        return np.zeros_like(a)
    p0, p1 = np.percentile(sel, [lo, hi])
    return np.clip((a - p0) / max(p1 - p0, 1e-6), 0, 1)


def true_color(ds, t: int, lo: float = 2, hi: float = 98) -> np.ndarray:
    """``(y, x, 3)`` float RGB (B04, B03, B02) of time step ``t`` with a joint percentile stretch.

    The percentiles come from the pixels the scene classification calls usable, so clouds stay
    bright instead of compressing the land surface into the dark end.
    """
    rgb = np.stack([ds[b].isel(time=t).transpose("y", "x").values for b in ("B04", "B03", "B02")], axis=-1)
    rgb = rgb.astype("float32")
    valid = None
    if "SCL" in ds:
        scl = ds["SCL"].isel(time=t).transpose("y", "x").values
        valid = ~np.isin(scl, list(schema.SCL_BAD))
        if valid.mean() < 0.05:
            valid = scl != 0
    flat_valid = None if valid is None else np.repeat(valid[..., None], 3, axis=-1)
    return percentile_stretch(rgb, lo, hi, flat_valid)


def backscatter_db(ds, band: str, t: int) -> np.ndarray:
    """VV or VH of time step ``t`` in dB as ``(y, x)`` (converting linear values)."""
    from .io import to_db

    a = ds[band].isel(time=t).transpose("y", "x").values
    unit = ds[band].attrs.get("units") or ds.attrs.get("s1_unit_native", "linear")
    return a if unit == "dB" else to_db(a)


# --------------------------------------------------------------------------------------------------
# HoloViews figures
# --------------------------------------------------------------------------------------------------
def location_map(catalog, color_by: str = "region", title: str = "Patch locations"):
    """GeoViews points of the patch centres (WGS84), coloured by ``color_by``, one point per location.

    No basemap: the book must draw offline. Longitude/latitude axes are labelled in degrees.
    """
    import geoviews as gv

    df = catalog.copy()
    df["sensors"] = df.groupby("key")["sensor"].transform(lambda s: ", ".join(sorted(s)))
    df = df.drop_duplicates("key")[["key", "lon", "lat", "region", "annotated", "sensors", "n_positive"]]
    pts = gv.Points(df, kdims=["lon", "lat"], vdims=["region", "key", "annotated", "sensors", "n_positive"])
    return pts.opts(
        color=color_by,
        cmap=REGION_PALETTE,
        size=8,
        tools=["hover"],
        width=720,
        height=380,
        title=title,
        xlabel="longitude (°E)",
        ylabel="latitude (°N)",
        show_legend=True,
        legend_position="right",
        line_color="black",
    )


def mask_outline(mask: np.ndarray, bounds: tuple[float, float, float, float], color: str = "red"):
    """Outline of a binary ``(y, x)`` mask as HoloViews contours in image coordinates."""
    import holoviews as hv

    img = hv.Image(mask.astype("float32"), bounds=bounds)
    return hv.operation.contours(img, levels=[0.5], filled=False).opts(
        color=color, line_width=1.5, show_legend=False, cmap=[color]
    )


def patch_viewer(data_dir: str | Path, key: str, sensors=schema.SENSORS, size: int = 230, embed: bool = True):
    """Viewer over the 15 time steps: S2 true colour, S1 VV/VH (dB), DEM, each with the mask outline.

    ``key`` is ``<region>_<id>``; sensors missing for this location are skipped. With ``embed`` (default)
    every frame is rendered into the output with a time slider below it, so the viewer works in the
    static HTML book without a kernel; ``embed=False`` returns the :class:`holoviews.HoloMap`.
    """
    import holoviews as hv
    import panel as pn

    from .io import open_patch

    data_dir = Path(data_dir)
    region, pid = key.rsplit("_", 1)
    opened = {}
    for s in sensors:
        p = data_dir / s / schema.patch_filename(region, s, int(pid))
        if p.exists():
            opened[s] = open_patch(p, load=True)
    if not opened:
        raise FileNotFoundError(f"no patch {key!r} under {data_dir} for sensors {tuple(sensors)}")
    any_ds = next(iter(opened.values()))
    n = schema.PATCH_SIZE
    bounds = (0, 0, n, n)
    mask = any_ds["MASK"].isel(time=0).transpose("y", "x").values[::-1]
    outline = mask_outline(mask, bounds)
    common = dict(frame_width=size, frame_height=size, xaxis=None, yaxis=None)

    dem = any_ds["DEM"].isel(time=0).transpose("y", "x").values[::-1].astype("float32")
    dem_img = hv.Image(dem, bounds=bounds, vdims=["elevation (m)"]).opts(
        cmap="terrain", colorbar=True, title="DEM (m)", **common
    )

    def frame(t: int):
        panels = []
        if "s2" in opened:
            ds = opened["s2"]
            date = str(ds.time.values[t])[:10]
            rgb = true_color(ds, t)[::-1]
            panels.append(hv.RGB(rgb, bounds=bounds).opts(title=f"S2 true colour {date}", **common) * outline)
        for s in ("s1asc", "s1dsc"):
            if s in opened:
                ds = opened[s]
                date = str(ds.time.values[t])[:10]
                for band in ("VV", "VH"):
                    lo, hi = DB_RANGES[band]
                    img = hv.Image(backscatter_db(ds, band, t)[::-1], bounds=bounds, vdims=[f"{band} (dB)"])
                    panels.append(
                        img.opts(
                            cmap="gray",
                            clim=(lo, hi),
                            colorbar=True,
                            title=f"{s} {band} (dB) {date}",
                            **common,
                        )
                        * outline
                    )
        return hv.Layout([*panels, dem_img * outline]).cols(2)

    frames = {t: frame(t) for t in range(len(any_ds.time))}
    hmap = hv.HoloMap(frames, kdims=[hv.Dimension("time_step", label="time step")]).collate()
    if not embed:
        return hmap
    return pn.panel(hmap, widget_location="bottom").embed(max_opts=len(frames), max_states=len(frames))


def size_histogram(areas_m2, title: str = "Landslide area", bins_per_decade: int = 8):
    """Histogram of areas on logarithmic bins (m²), with the 10 m pixel as a reference line."""
    import holoviews as hv

    a = np.asarray(areas_m2, dtype="float64")
    a = a[np.isfinite(a) & (a > 0)]
    if a.size == 0:
        raise ValueError("no positive areas to plot")
    lo, hi = np.floor(np.log10(a.min())), np.ceil(np.log10(a.max()))
    edges = np.logspace(lo, hi, int((hi - lo) * bins_per_decade) + 1)
    counts, edges = np.histogram(a, bins=edges)
    hist = hv.Histogram((edges, counts), kdims=["area (m²)"], vdims=["landslides"])
    pixel = hv.VLine(schema.PIXEL_SIZE_M**2).opts(color="gray", line_dash="dashed")
    label = hv.Text(schema.PIXEL_SIZE_M**2 * 1.15, counts.max() * 0.95, "one 10 m pixel", halign="left")
    return (
        hist.opts(
            logx=True,
            width=720,
            height=320,
            color="#8c564b",
            line_color="white",
            xlabel="landslide area (m², log scale)",
            ylabel="number of landslides",
        )
        * pixel
        * label
    ).opts(title=title)
