"""HoloViz figures shared by the chapters (the images they show come from :mod:`s12ls_utils.images`).

Display conventions (the book is read by remote-sensing people):

- true colour from B04/B03/B02 with a 2–98 % percentile stretch over the usable pixels of all dates of a
  patch (one stretch per patch, so brightness compares over time; clouds are left out of the percentiles),
  SAR backscatter in dB with a fixed −25…0 dB (VV) / −32…−8 dB (VH) window;
- every plot has a title, axis labels with units and a legend or colour bar;
- no map tiles or Natural Earth features (they would be downloaded at run time).

The book's plumbing (parameters, the results record, the static matplotlib figures that the book shows
under or instead of these) is :mod:`s12ls_utils.book`; no module here imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from . import images, schema
from .evaluate import METHOD_NAMES, share


def no_data_key(size: int = 230, mask_color: str = "red", errors: bool = False):
    """A small legend panel: the no-data colour and the landslide-mask outline, as used in the images; with
    ``errors``, also the colours of the galleries' error maps (:func:`s12ls_utils.images.error_map`)."""
    import holoviews as hv

    swatches = [(images.NO_DATA_COLOR, images.NO_DATA_LABEL)]
    if errors:
        swatches += [(_ERROR_OPTS["cmap"][v], label) for v, label in _ERROR_LABELS.items()]
    n = len(swatches) + 1  # and the outline
    ys = [1 - (i + 0.5) / n for i in range(n)]
    boxes = [(0.05, y - 0.3 / n, 0.2, y + 0.3 / n) for y in ys[:-1]]
    rects = [(*box, color) for box, (color, _) in zip(boxes, swatches, strict=True)]
    layers = [
        hv.Rectangles(rects, vdims="color").opts(color="color", line_color="black", title="Legend"),
        hv.Curve([(0.05, ys[-1]), (0.2, ys[-1])]).opts(color=mask_color, line_width=2),
    ]
    labels = [label for _, label in swatches] + ["mapped landslides (mask)"]
    layers += [
        hv.Text(0.25, y, label, halign="left", fontsize=8) for y, label in zip(ys, labels, strict=True)
    ]
    return hv.Overlay(layers).opts(
        hv.opts.Overlay(
            title="Legend",
            frame_width=size,
            frame_height=size * n // 6,
            xaxis=None,
            yaxis=None,
            xlim=(0, 1.4),
            ylim=(0, 1),
            toolbar=None,
        )
    )


# --------------------------------------------------------------------------------------------------
# HoloViews figures
# --------------------------------------------------------------------------------------------------
def region_maps(catalog, title: str = "Patch locations per region", cols: int = 2, size: int = 230):
    """One map panel per region: its patch centres (WGS84), annotated locations in red, the others grey.

    The regions lie continents apart, so one world map shows a dot per region; here each panel has its own
    extent (a margin of 0.05° around its locations), the 1.28 km tiles' clusters become visible, and the title
    counts the region's locations and annotated ones. No basemap (the book draws offline). Hover names the
    key, the sensors and the landslide pixels.
    """
    import holoviews as hv

    df = catalog.copy()
    df["sensors"] = df.groupby("key")["sensor"].transform(lambda s: ", ".join(sorted(map(str, s))))
    df = df.drop_duplicates("key")[["key", "lon", "lat", "region", "annotated", "sensors", "n_positive"]]
    df = df[df["lon"].notna() & df["lat"].notna()]
    if df.empty:
        raise ValueError("no location with a position to map")
    df["region"] = df["region"].astype(str)
    df["class"] = np.where(df["annotated"], "annotated", "not annotated")
    panels = []
    for region, part in sorted(df.groupby("region"), key=lambda kv: -len(kv[1])):
        pad = 0.05
        x0, x1 = part["lon"].min() - pad, part["lon"].max() + pad
        y0, y1 = part["lat"].min() - pad, part["lat"].max() + pad
        layers = [
            hv.Points(
                part[part["class"] == k],
                kdims=["lon", "lat"],
                vdims=["key", "sensors", "n_positive", "class"],
                label=k,
            ).opts(color=ANNOTATED_COLORS[k], size=6, line_color="black", tools=["hover"])
            for k in ANNOTATED_COLORS
        ]
        n_ann = int(part["annotated"].sum())
        panels.append(
            hv.Overlay(layers).opts(
                title=f"{region}\n{len(part)} locations, {n_ann} annotated",
                xlim=(x0, x1),
                ylim=(y0, y1),
                frame_width=size,
                frame_height=size,
                xlabel="longitude (°E)",
                ylabel="latitude (°N)",
                legend_position="bottom",  # below the frame, where it hides no location
                show_legend=not panels,  # one legend, on the first panel
                fontsize={"title": "9pt"},
                xticks=4,  # a few rounded longitudes: more ran together
            )
        )
    return hv.Layout(panels).cols(cols).opts(title=title, shared_axes=False)


def mask_outline(mask: np.ndarray, bounds: tuple[float, float, float, float], color: str = "red"):
    """Outline of a binary ``(y, x)`` mask in image coordinates, as one HoloViews line.

    The contour lines (at 0.5) are joined into a single line with NaN breaks between them: one glyph, and
    cheap to range over in a slider of many frames (a path per contour line made the chapter 01 viewer spend
    most of its time computing axis ranges)."""
    import holoviews as hv

    img = hv.Image(np.asarray(mask, dtype="float32"), bounds=bounds)
    lines = [
        np.asarray(p.array([0, 1]), dtype="float64")
        for p in hv.operation.contours(img, levels=[0.5], filled=False).split()
    ]
    lines = [a for a in lines if len(a)]
    gap = np.full((1, 2), np.nan)
    joined = np.concatenate([x for a in lines for x in (a, gap)][:-1]) if lines else np.empty((0, 2))
    # a Curve, not a Path: its ranges are plain column ranges (bokeh breaks the line at the NaN rows)
    return hv.Curve(joined, kdims=["x"], vdims=["y"]).opts(color=color, line_width=1.5, show_legend=False)


def patch_viewer(data_dir: str | Path, key: str, sensors=schema.SENSORS, size: int = 230, embed: bool = True):
    """Viewer over the dates of one location: S2 true colour, S1 VV/VH (dB), DEM, each with the mask outline.

    The slider steps by **date** (:func:`viewer_steps`): the S2 dates, with each S1 panel showing its
    acquisition nearest to that date and saying how many days it lies off. S2 uses one stretch for all
    dates (:func:`true_color_limits`), S1 fixed dB windows, so brightness compares over time. Pixels without
    data are drawn in :data:`NO_DATA_COLOR` (named in the panel titles' legend line).

    ``key`` is ``<region>_<id>``; sensors missing for this location are skipped. With ``embed`` (default)
    every frame is rendered into the output with a slider below it, so the viewer works in the static HTML
    book without a kernel; ``embed=False`` returns the :class:`holoviews.HoloMap`.
    """
    import holoviews as hv
    import panel as pn

    from .io import location_files, open_patch, patch_mask

    opened = {s: open_patch(p, load=True) for s, p in location_files(data_dir, key, sensors).items()}
    if not opened:
        raise FileNotFoundError(f"no patch {key!r} under {data_dir} for sensors {tuple(sensors)}")
    any_ds = next(iter(opened.values()))
    n = schema.PATCH_SIZE
    bounds = (0, 0, n, n)
    # arrays come north-up (row 0 = northernmost, y descending), which is how HoloViews draws row 0
    mask = patch_mask(any_ds)
    outline = mask_outline(mask, bounds)
    common = dict(frame_width=size, frame_height=size, xaxis=None, yaxis=None)

    dem = any_ds["DEM"].isel(time=0).transpose("y", "x").values.astype("float32")
    dem_img = hv.Image(dem, bounds=bounds, vdims=["elevation (m)"]).opts(
        cmap="terrain",
        colorbar=True,
        title="DEM (m)",
        clipping_colors={"NaN": images.NO_DATA_COLOR},
        **common,
    )
    ref, steps, index = images.viewer_steps({s: ds.time.values for s, ds in opened.items()})
    s2_limits = images.true_color_limits(opened["s2"]) if "s2" in opened else None

    def frame(k: int):
        step = steps[k]
        panels = []
        if "s2" in opened:
            ds = opened["s2"]
            t = index["s2"][k]
            rgb = images.with_no_data(images.true_color(ds, t, limits=s2_limits), images.s2_no_data(ds, t))
            title = f"S2 true colour {str(ds.time.values[t])[:10]}"
            panels.append(hv.RGB(rgb, bounds=bounds).opts(title=title, **common) * outline)
        for s in ("s1asc", "s1dsc"):
            if s in opened:
                ds = opened[s]
                t = index[s][k]
                when = f"{str(ds.time.values[t])[:10]} ({images.days_apart(ds.time.values[t], step)})"
                for band in ("VV", "VH"):
                    img = hv.Image(images.backscatter_db(ds, band, t), bounds=bounds, vdims=[f"{band} (dB)"])
                    panels.append(
                        img.opts(
                            **_image_opts(s, band),
                            colorbar=True,
                            title=f"{s} {band} (dB) {when}",
                            **common,
                        )
                        * outline
                    )
        return hv.Layout([*panels, dem_img * outline]).cols(2)

    dim = hv.Dimension("date", label=f"date ({'S2' if ref == 's2' else ref} acquisitions)")
    frames = {str(d)[:10]: frame(k) for k, d in enumerate(steps)}
    # the data's ranges given up front: the embedding need not range over every frame's arrays at each state
    known = {
        "x": (0.0, float(n)),
        "y": (0.0, float(n)),
        "elevation (m)": (float(np.nanmin(dem)), float(np.nanmax(dem))),
    }
    known |= {f"{band} (dB)": window for band, window in images.DB_RANGES.items()}
    hmap = hv.HoloMap(frames, kdims=[dim]).collate().redim.range(**known)
    if not embed:
        return hmap
    # the legend is the same on every date: drawn once, below the slider, not in every frame
    viewer = pn.Column(pn.panel(hmap, widget_location="bottom"), pn.pane.HoloViews(no_data_key(size)))
    return viewer.embed(max_opts=len(frames), max_states=len(frames))


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
    label = hv.Text(schema.PIXEL_SIZE_M**2 / 1.15, counts.max() * 1.1, "one 10 m pixel", halign="right")
    return (
        hist.opts(
            logx=True,
            width=680,
            height=320,
            color="#8c564b",
            line_color="white",
            xlabel="landslide area (m², log scale)",
            ylabel="number of landslides",
            ylim=(0, counts.max() * 1.2),
        )
        * pixel
        * label
    ).opts(title=title)


# --- chapter 03: modality alignment ---
ALIGN_LABELS = {"s1asc": "S1 ascending", "s1dsc": "S1 descending", "s2": "S2"}
_ALIGN_COLORS = {"s1asc": "#1f77b4", "s1dsc": "#9467bd", "s2": "#2ca02c"}
ANNOTATED_COLORS = {"annotated": "#d62728", "not annotated": "#7f7f7f"}


def upset_table(avail):
    """``(combinations, table)``: the sensor combinations in order, and locations per combination (rows)
    and annotation status (columns ``annotated``, ``not annotated``)."""
    from .alignment import combination_table

    full = combination_table(avail, "annotated").rename(columns={True: "annotated", False: "not annotated"})
    return list(full.index), full.reindex(columns=list(ANNOTATED_COLORS), fill_value=0)


def availability_upset(avail, title: str = "Sensor combinations per location", width: int = 680):
    """UpSet-style figure of an :func:`s12ls_utils.alignment.availability` table.

    Top: locations per sensor combination, stacked by annotated / not annotated. Bottom: a dot matrix
    saying which sensors each combination holds (filled dot = present). The x axes are shared.
    """
    import holoviews as hv
    import pandas as pd

    combos, full = upset_table(avail)
    long = full.reset_index().melt(id_vars="combination", var_name="status", value_name="locations")
    xdim = hv.Dimension("combination", label="sensor combination", values=combos)
    totals = full.sum(axis=1)
    labels = hv.Labels(
        pd.DataFrame(
            {"combination": combos, "locations": totals.to_numpy(), "text": totals.astype(str).to_numpy()}
        ),
        kdims=[xdim, "locations"],
        vdims=["text"],
    ).opts(
        text_baseline="bottom", text_font_size="10pt", text_color="black", yoffset=0.02 * totals.max() + 0.5
    )
    bars = hv.Bars(long, kdims=[xdim, "status"], vdims=["locations"]).opts(
        stacked=True,
        cmap=ANNOTATED_COLORS,
        color="status",
        width=width,
        height=300,
        ylim=(0, float(totals.max()) * 1.15 + 1),
        xlabel="",
        ylabel="number of locations",
        xaxis=None,
        legend_position="top_right",
        tools=["hover"],
        show_legend=True,
    )
    matrix = pd.DataFrame(
        [(c, ALIGN_LABELS[s], "yes" if s in c.split("+") else "no") for c in combos for s in schema.SENSORS],
        columns=["combination", "sensor", "in combination"],
    )
    absent, present = (
        hv.Scatter(matrix[matrix["in combination"] == yes], xdim, ["sensor", "in combination"]).opts(
            color=color, size=12, marker="circle"
        )
        for yes, color in (("no", "#dddddd"), ("yes", "black"))
    )
    dots = (absent * present).opts(
        width=width,
        height=170,
        xlabel="sensor combination",
        ylabel="sensor",
        show_legend=False,
        xrotation=0,
        title="",
    )
    return ((bars * labels).opts(title=title) + dots).cols(1).opts(shared_axes=True)


def availability_heatmap(avail, title: str = "Locations per region and sensor combination", width: int = 680):
    """Heat map of locations per region (rows) and sensor combination (columns), counts written in."""
    import holoviews as hv

    from .alignment import combination_table

    grid = combination_table(avail, "region").T
    combos, regions = list(grid.columns), list(grid.index)
    long = grid.reset_index().melt(id_vars="region", var_name="combination", value_name="locations")
    xdim = hv.Dimension("combination", label="sensor combination", values=combos)
    ydim = hv.Dimension("region", values=regions[::-1])
    heat = hv.HeatMap(long, kdims=[xdim, ydim], vdims=["locations"]).opts(
        cmap="Blues",
        colorbar=True,
        clabel="number of locations",
        tools=["hover"],
        width=width,
        height=60 + 45 * len(regions),
        xlabel="sensor combination",
        ylabel="region",
    )
    labels = hv.Labels(long, kdims=[xdim, ydim], vdims=["locations"]).opts(
        text_color="black", text_font_size="10pt"
    )
    return (heat * labels).opts(title=title)


def acquisition_timeline(ta, key: str, title: str | None = None, width: int = 680):
    """Acquisition dates of one location on a *days relative to the event* axis.

    ``ta`` is a :class:`s12ls_utils.alignment.TimeAlignment`. One row per sensor: Sentinel-1 ascending
    and descending (triangles), Sentinel-2 with clear dates filled and cloudy dates hollow; grey lines
    join each S2 date to its nearest S1 acquisition per orbit. The event is at day 0 (red line) and the
    first clear post-event S2 view is marked (green dashed line). A location without an event is shown
    relative to its first acquisition.
    """
    import holoviews as hv
    import pandas as pd

    acq = ta.acquisitions[ta.acquisitions["key"] == key].copy()
    if acq.empty:
        raise KeyError(f"location {key!r} is not in the time alignment")
    near = ta.nearest[ta.nearest["key"] == key].copy()
    event = acq["event_date"].iloc[0]
    has_event = pd.notna(event)
    ref = event if has_event else acq["date"].min()
    acq["x"] = (acq["date"] - ref).dt.days.astype("float64")
    rows = [s for s in schema.SENSORS if s in set(acq["sensor"])]
    ypos = {s: i for i, s in enumerate(rows[::-1])}
    acq["y"] = acq["sensor"].map(ypos).astype("float64")
    acq["date_str"] = acq["date"].dt.strftime("%Y-%m-%d")
    acq["unusable_pct"] = (acq["bad_fraction"] * 100).round(1)
    xlabel = "days relative to the event (d)" if has_event else "days since the first acquisition (d)"
    hover_dims = ["y", "date_str", "unusable_pct", "step"]

    def pts(df, label, **style):
        return hv.Scatter(df, kdims=[hv.Dimension("x", label=xlabel)], vdims=hover_dims, label=label).opts(
            size=11, tools=["hover"], **style
        )

    layers = []
    if len(near):
        near["x0"] = (near["s2_date"] - ref).dt.days.astype("float64")
        near["x1"] = (near["s1_date"] - ref).dt.days.astype("float64")
        near["y0"] = float(ypos["s2"])
        near["y1"] = near["orbit"].map(ypos).astype("float64")
        layers.append(
            hv.Segments(near, ["x0", "y0", "x1", "y1"], label="nearest S1 to each S2 date").opts(
                color="#bbbbbb", line_width=1.5
            )
        )
    markers = {"s1asc": "triangle", "s1dsc": "inverted_triangle"}
    for s in rows:
        d = acq[acq["sensor"] == s]
        if s == "s2":
            clear = d["clear"].fillna(False).astype(bool)
            layers.append(
                pts(d[clear], "S2 clear (< 10 % unusable)", color=_ALIGN_COLORS["s2"], marker="circle")
            )
            layers.append(
                pts(
                    d[~clear],
                    "S2 cloudy or unusable",
                    color="white",
                    line_color=_ALIGN_COLORS["s2"],
                    line_width=2,
                    marker="circle",
                )
            )
        else:
            layers.append(pts(d, ALIGN_LABELS[s], color=_ALIGN_COLORS[s], marker=markers[s]))
    if has_event:
        # vertical lines drawn as curves so that they appear in the legend
        span = (-0.6, len(rows) - 0.4)
        xdim, ydim = hv.Dimension("x", label=xlabel), hv.Dimension("y", label="sensor")
        event_line = hv.Curve([(0.0, span[0]), (0.0, span[1])], xdim, ydim, label="event (day 0)")
        layers.append(event_line.opts(color="#d62728", line_width=2))
        s2 = acq[(acq["sensor"] == "s2") & acq["clear"].fillna(False).astype(bool) & (acq["x"] > 0)]
        if len(s2):
            x = float(s2["x"].min())
            label = f"first clear S2 after the event (day {x:.0f})"
            clear_line = hv.Curve([(x, span[0]), (x, span[1])], xdim, ydim, label=label)
            layers.append(clear_line.opts(color=_ALIGN_COLORS["s2"], line_dash="dashed", line_width=1.5))
    if title is None:
        when = f"event {event:%Y-%m-%d}" if has_event else "no event (not annotated)"
        title = f"Acquisitions at {key} ({when})"
    yticks = [(float(v), ALIGN_LABELS[s]) for s, v in ypos.items()]
    return hv.Overlay(layers).opts(
        width=width,
        height=380,
        title=title,
        xlabel=xlabel,
        ylabel="sensor",
        yticks=yticks,
        ylim=(-0.6, len(rows) - 0.4),
        legend_position="bottom",
        legend_cols=2,
        show_grid=True,
    )


def first_view_ecdf(summary, title: str | None = None, width: int = 680):
    """Share of annotated locations seen by each sensor within *d* days after the event (cumulative).

    One step curve per series: first S1 ascending, first S1 descending, first S2 (any) and first clear
    S2 acquisition after the event. The denominator of each curve is the number of annotated locations
    that have the sensor, so a curve that stays below 100 % shows locations whose series ends without
    such a view. ``summary`` is :attr:`s12ls_utils.alignment.TimeAlignment.summary`.
    """
    import holoviews as hv

    ann = summary[summary["event_date"].notna()]
    series = [
        ("first S1 ascending", "s1asc_first_after_days", "s1asc_n_after", _ALIGN_COLORS["s1asc"], "solid"),
        ("first S1 descending", "s1dsc_first_after_days", "s1dsc_n_after", _ALIGN_COLORS["s1dsc"], "solid"),
        ("first S2 (any)", "s2_first_after_days", "s2_n_after", _ALIGN_COLORS["s2"], "dashed"),
        ("first clear S2", "first_clear_s2_days", "s2_n_after", _ALIGN_COLORS["s2"], "solid"),
    ]
    finite = [ann[c].to_numpy(dtype="float64") for _, c, _, _, _ in series if c in ann]
    allv = np.concatenate([v[np.isfinite(v)] for v in finite] + [np.zeros(1)])
    xmax = float(allv.max()) + 5
    xdim = hv.Dimension("days", label="days after the event (d)")
    ydim = hv.Dimension("share", label="locations with a view (%)")
    layers = []
    for name, col, present_col, color, dash in series:
        if col not in ann or present_col not in ann:
            continue
        have = ann[ann[present_col].notna()]
        if have.empty:
            continue
        v = np.sort(have[col].to_numpy(dtype="float64"))
        v = v[np.isfinite(v)]
        xs = np.concatenate([[0.0], v, [xmax]])
        ys = np.concatenate([[0.0], np.arange(1, v.size + 1), [v.size]]) / len(have) * 100
        layers.append(
            hv.Curve((xs, ys), xdim, ydim, label=f"{name} (n={len(have)})").opts(
                interpolation="steps-post", color=color, line_dash=dash, line_width=2.5, tools=["hover"]
            )
        )
    return hv.Overlay(layers).opts(
        width=width,
        height=320,
        title=title or "How soon after the event does each sensor see the ground? (annotated locations)",
        xlabel=xdim.label,
        ylabel=ydim.label,
        ylim=(0, 102),
        xlim=(0, xmax),
        legend_position="bottom_right",
        show_grid=True,
    )


def before_clear_bars(summary, sensors=schema.SENSORS, title: str | None = None, width: int = 680):
    """Locations by the number of post-event acquisitions each sensor makes before the first clear S2.

    For ``s2`` these are the cloudy post-event dates before the first clear one. Locations without a
    clear post-event S2 view in the series are left out (their wait is longer than the series shows).
    """
    import holoviews as hv
    import pandas as pd

    rows = []
    for s in sensors:
        col = f"{s}_before_clear_s2"
        if col not in summary:
            continue
        v = summary[col].dropna().astype(int)
        for n, c in v.value_counts().items():
            rows.append({"acquisitions": int(n), "sensor": ALIGN_LABELS[s], "locations": int(c)})
    df = pd.DataFrame(rows, columns=["acquisitions", "sensor", "locations"])
    top = int(df["acquisitions"].max()) if len(df) else 0
    labels = [ALIGN_LABELS[s] for s in sensors if f"{s}_before_clear_s2" in summary]
    full = (
        pd.MultiIndex.from_product([range(top + 1), labels], names=["acquisitions", "sensor"])
        .to_frame(index=False)
        .merge(df, how="left", on=["acquisitions", "sensor"])
        .fillna({"locations": 0})
    )
    full["locations"] = full["locations"].astype(int)
    full["acquisitions"] = full["acquisitions"].astype(str)
    xdim = hv.Dimension(
        "acquisitions",
        label="post-event acquisitions before the first clear S2 view",
        values=[str(i) for i in range(top + 1)],
    )
    cmap = {ALIGN_LABELS[s]: _ALIGN_COLORS[s] for s in sensors}
    return hv.Bars(full, kdims=[xdim, hv.Dimension("sensor", values=labels)], vdims=["locations"]).opts(
        color="sensor",
        cmap=cmap,
        width=width,
        height=320,
        title=title or "Post-event acquisitions before the first clear S2 view (annotated locations)",
        xlabel="post-event acquisitions before the first clear S2 view (per sensor)",
        ylabel="number of locations",
        legend_position="top_right",
        show_legend=True,
        tools=["hover"],
        hooks=[_hide_inner_factor_labels],
    )


def _hide_inner_factor_labels(plot, element) -> None:
    """Bokeh hook: grouped bars show only the group labels (the legend names the bars)."""
    plot.state.xaxis.major_label_text_font_size = "0pt"


def nearest_offset_histogram(nearest, limit: int = 15, title: str | None = None, width: int = 680):
    """Offsets (S1 − S2, days) of the nearest S1 acquisition to each S2 date, one histogram per orbit.

    One-day bins from ``-limit`` to ``limit``; larger offsets (S2 dates outside the S1 series) are
    counted in the two end bins, marked ``≤ -limit`` and ``≥ limit`` in the hover.
    """
    import holoviews as hv

    edges = np.arange(-limit - 0.5, limit + 1.5, 1.0)
    xdim = hv.Dimension("offset", label=f"nearest S1 date − S2 date (d; beyond ±{limit} d in the end bins)")
    layers = []
    for orbit in ("s1asc", "s1dsc"):
        v = nearest.loc[nearest["orbit"] == orbit, "offset_days"].to_numpy(dtype="float64")
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        counts, _ = np.histogram(np.clip(v, -limit, limit), bins=edges)
        layers.append(
            hv.Histogram(
                (edges, counts),
                kdims=[xdim],
                vdims=["S2 dates"],
                label=f"{ALIGN_LABELS[orbit]} (n={v.size})",
            ).opts(
                fill_color=_ALIGN_COLORS[orbit],
                fill_alpha=0.35,
                line_color=_ALIGN_COLORS[orbit],
                line_width=2,
                tools=["hover"],
            )
        )
    return hv.Overlay(layers).opts(
        width=width,
        height=370,
        title=title or "Nearest Sentinel-1 acquisition to each Sentinel-2 date",
        xlabel=xdim.label,
        ylabel="number of S2 dates",
        legend_position="top",
        legend_cols=2,
    )


# --- chapter 02: temporal signatures ---
SIGNATURE_SENSOR_LABELS = {
    "s2": "Sentinel-2",
    "s1asc": "Sentinel-1 ascending",
    "s1dsc": "Sentinel-1 descending",
}
_SIGNATURE_SENSOR_ORDER = ("s2", "s1asc", "s1dsc")
SHORT_SENSOR = {"s2": "S2", "s1asc": "S1 asc.", "s1dsc": "S1 desc."}
SIGNATURE_GROUP_COLORS = {"landslide": "#d62728", "ring": "#ff7f0e", "rest": "#7f7f7f"}
SIGNATURE_GROUP_LABELS = {"landslide": "landslide", "ring": "ring", "rest": "rest"}


def _signal_options(pairs) -> tuple[list[str], dict[str, list[str]]]:
    """Option labels ``"<sensor>: <feature>"``, and the same grouped by sensor for a grouped select."""
    values, groups = [], {}
    for sensor, feature in pairs:
        label = f"{sensor}: {feature}"
        values.append(label)
        groups.setdefault(SIGNATURE_SENSOR_LABELS.get(sensor, sensor), []).append(label)
    return values, groups


def _embed_signal_map(hmap, signal_groups: dict[str, list[str]]):
    """Embed a HoloMap keyed by ``signal`` (last key dimension; a ``region`` may come first): every state
    is precomputed, so the widgets work in the static HTML book. The signal select groups its options by
    sensor.

    Panel records each state as the changes from the state recorded just before it, and the last key
    dimension varies fastest while recording: keyed so, consecutive states differ in signal and every
    state records its own y-axis label (with ``region`` last, a label would only be recorded for the
    first region of each signal, and jumping to another region would keep a stale label). It records them
    from a DynamicMap over the frames: a HoloMap's plot reads every frame at each state (quadratic time)."""
    import holoviews as hv
    import panel as pn

    frames = dict(hmap.data)
    kdims = [d.clone(values=list(dict.fromkeys(k[i] for k in frames))) for i, d in enumerate(hmap.kdims)]
    dmap = hv.DynamicMap(lambda *key: frames[key], kdims=kdims)
    first = next(iter(signal_groups.values()))[0]
    select = pn.widgets.Select(name="sensor: feature", groups=signal_groups, value=first, width=280)
    pane = pn.panel(dmap, widget_location="bottom", widgets={"signal": select})
    return pane.embed(max_opts=max(len(d.values) for d in kdims), max_states=len(frames) + 1)


def _sensor_feature_pairs(df) -> list[tuple[str, str]]:
    from .signatures import FEATURES

    sensors = df["sensor"].astype(str).to_numpy()
    features = df["feature"].astype(str).to_numpy() if "feature" in df else None
    out = []
    for s in _SIGNATURE_SENSOR_ORDER:
        for f in FEATURES[s]:
            if features is None:
                present = f in df and df.loc[sensors == s, f].notna().any()
            else:
                present = bool(((sensors == s) & (features == f)).any())
            if present:
                out.append((s, f))
    return out


def _group_layers(df, xdim, ydim, count_col: str, count_label: str) -> list:
    """Per pixel group: IQR band (``p25``–``p75``), median line with hover and markers; a line at day 0."""
    import holoviews as hv

    layers = [hv.VLine(0).opts(color="black", line_dash="dashed", line_width=1)]
    groups = df["group"].astype(str).to_numpy()
    for g, color in SIGNATURE_GROUP_COLORS.items():
        dg = df[groups == g].sort_values("rel_day")
        label = SIGNATURE_GROUP_LABELS[g]
        x = dg["rel_day"].to_numpy(dtype="float64")
        med = dg["median"].to_numpy(dtype="float64")
        band = hv.Area((x, dg["p25"].to_numpy(), dg["p75"].to_numpy()), xdim, ["p25", "p75"], label=label)
        curve = hv.Curve(
            (x, med, dg[count_col].to_numpy()),
            xdim,
            [ydim, hv.Dimension(count_col, label=count_label)],
            label=label,
        )
        layers += [
            band.opts(color=color, alpha=0.2, line_alpha=0, show_legend=False),
            curve.opts(color=color, line_width=2, tools=["hover"]),
            hv.Scatter((x, med), xdim, ydim, label=label).opts(color=color, size=5, show_legend=False),
        ]
    return layers


def signature_plot(agg, *, regions: bool = True, embed: bool = True, width: int = 680, height: int = 380):
    """Interactive time series of an :func:`s12ls_utils.signatures.aggregate_signatures` table.

    For the selected sensor and feature (one select, options grouped by sensor) and region (``all`` and,
    with ``regions`` and per-region rows in the table, each region): per pixel group, the median across
    patches as a line with markers and the inter-quartile range across patches as a band, against days
    relative to the event, with a dashed line at day 0. Each state is precomputed (``embed``), so the
    widgets work in the static book; ``embed=False`` returns the :class:`holoviews.HoloMap`.
    """
    import holoviews as hv

    from .signatures import FEATURE_LABELS

    agg = agg.copy()
    for c in ("sensor", "region", "feature", "group"):
        agg[c] = agg[c].astype(str)
    pairs = _sensor_feature_pairs(agg)
    if not pairs:
        raise ValueError("the table holds no signature to plot")
    signal_values, signal_groups = _signal_options(pairs)
    region_values = ["all"]
    if regions:
        region_values += sorted(r for r in agg["region"].unique() if r != "all")
    xdim = hv.Dimension("rel_day", label="days relative to event", unit="d")
    xlim = (float(agg["rel_day"].min()) - 5, float(agg["rel_day"].max()) + 5)
    frames = {}
    for (sensor, feature), signal in zip(pairs, signal_values, strict=True):
        sub = agg[(agg["sensor"] == sensor) & (agg["feature"] == feature)]
        ylabel = FEATURE_LABELS.get(feature, feature)
        ydim = hv.Dimension("median", label="median across patches")
        for region in region_values:
            d = sub[sub["region"] == region]
            layers = _group_layers(d, xdim, ydim, "n_patches", "patches")
            where = "all regions" if region == "all" else region
            title = f"{SHORT_SENSOR[sensor]} {feature}, {where}: median and IQR across patches"
            if d.empty:
                title += " (too few patches)"
            frames[(region, signal) if regions else signal] = hv.Overlay(layers).opts(
                title=title,
                ylabel=ylabel,
                xlabel="days relative to event (d)",
                width=width,
                height=height,
                legend_position="right",
                show_legend=True,
                xlim=xlim,
            )
    kdims = ([hv.Dimension("region")] if regions else []) + [hv.Dimension("signal", label="sensor: feature")]
    # every element ranges over its own frame, the day-0 line too: the embedding need not range over all frames
    framewise = [getattr(hv.opts, el)(framewise=True) for el in ("Curve", "Area", "Scatter", "VLine")]
    hmap = hv.HoloMap(frames, kdims=kdims, sort=False).opts(*framewise)
    return _embed_signal_map(hmap, signal_groups) if embed else hmap


def change_distribution_plot(
    changes, *, bins: int = 60, embed: bool = True, width: int = 680, height: int = 360
):
    """Distributions of the pre→post change (post median − pre median) per pixel group, as overlaid
    density histograms, for the selected sensor and feature (a grouped select; precomputed with
    ``embed``).

    ``changes`` is :attr:`s12ls_utils.signatures.SignatureSet.changes`; pixels count with their
    ``weight``, so the capped samples stand for every pixel. The bins span the 0.5–99.5 % range of the
    pooled changes; a dashed line marks no change.
    """
    import holoviews as hv

    from .signatures import FEATURE_LABELS, GROUPS

    pairs = _sensor_feature_pairs(changes)
    if not pairs:
        raise ValueError("no pixel changes to plot")
    signal_values, signal_groups = _signal_options(pairs)
    sensors = changes["sensor"].astype(str).to_numpy()
    groups = changes["group"].astype(str).to_numpy()
    weights = changes["weight"].to_numpy(dtype="float64")
    frames = {}
    for (sensor, feature), signal in zip(pairs, signal_values, strict=True):
        values = changes[feature].to_numpy(dtype="float64")
        ok = (sensors == sensor) & np.isfinite(values)
        lo, hi = np.percentile(values[ok], [0.5, 99.5])
        edges = np.linspace(lo, hi, bins + 1)
        unit = FEATURE_LABELS.get(feature, feature).split(" (", 1)[-1].rstrip(")")
        cdim = hv.Dimension("change", label=f"{feature} change, post − pre ({unit})")
        layers = []
        for g in GROUPS:
            sel = ok & (groups == g)
            if not sel.any():
                continue
            dens, _ = np.histogram(values[sel], bins=edges, weights=weights[sel], density=True)
            color = SIGNATURE_GROUP_COLORS[g]
            layers.append(
                hv.Histogram(
                    (edges, dens), kdims=[cdim], vdims=["density"], label=SIGNATURE_GROUP_LABELS[g]
                ).opts(fill_color=color, fill_alpha=0.35, line_color=color, line_width=1.5, framewise=True)
            )
        layers.append(hv.VLine(0).opts(color="black", line_dash="dashed", line_width=1))
        frames[signal] = hv.Overlay(layers).opts(
            title=f"{SIGNATURE_SENSOR_LABELS[sensor]} {feature}: pre→post change per pixel group",
            xlabel=cdim.label,
            ylabel="density (pixels, weighted)",
            width=width,
            height=height,
            legend_position="top_right",
            show_legend=True,
        )
    hmap = hv.HoloMap(frames, kdims=[hv.Dimension("signal", label="sensor: feature")], sort=False)
    return _embed_signal_map(hmap, signal_groups) if embed else hmap


def separability_plot(table, *, width: int = 680, height: int = 360):
    """Bars of a :func:`s12ls_utils.signatures.separability` table: ROC AUC of each feature's pre→post
    change per sensor (colour), in the table's order, with the chance level (0.5) as a dashed line."""
    import holoviews as hv

    t = table.copy()
    for c in ("sensor", "feature", "direction"):
        t[c] = t[c].astype(str)
    order = {"s2": 0, "s1asc": 1, "s1dsc": 2}
    t = t.assign(_o=t["sensor"].map(order)).sort_values(["_o", "auc"], ascending=[True, False])
    t["signal"] = t["sensor"] + ": " + t["feature"] + " (" + t["direction"] + ")"
    xdim = hv.Dimension("signal", label="sensor: feature (direction of change on landslides)")
    bars = hv.Bars(
        t,
        xdim,
        [
            hv.Dimension("auc", label="ROC AUC"),
            "sensor",
            hv.Dimension("auc_vs_ring", label="AUC vs ring only"),
        ],
    ).opts(
        color="sensor",
        cmap={"s2": "#2ca02c", "s1asc": "#1f77b4", "s1dsc": "#9467bd"},
        ylim=(0, 1.05),
        xrotation=35,
        tools=["hover"],
        show_legend=True,
        legend_position="right",
    )
    chance = hv.HLine(0.5).opts(color="black", line_dash="dashed", line_width=1)
    layers = bars * chance
    if {"auc_low", "auc_high"} <= set(t.columns) and t["auc_low"].notna().any():
        # the 95 % interval over patches (a patch's pixels resampled together)
        err = hv.ErrorBars(
            (t["signal"], t["auc"], t["auc"] - t["auc_low"], t["auc_high"] - t["auc"]),
            kdims=[xdim],
            vdims=["auc", "minus", "plus"],
        ).opts(color="black", line_width=1.2)
        layers = bars * err * chance
    return layers.opts(
        title="Separability of pre→post changes: ROC AUC, landslide vs background (bars: 95 % over patches)",
        xlabel="sensor: feature (direction of change on landslides)",
        ylabel="ROC AUC, landslide vs background",
        width=width,
        height=height,
        fontsize={"title": "10pt"},
    )


def _label_only_axis(plot, element) -> None:
    """Bokeh hook: keep the y axis label (the location key), hide its ticks and tick labels."""
    for ax in plot.state.yaxis:
        ax.update(major_tick_line_color=None, minor_tick_line_color=None, major_label_text_font_size="0pt")


def before_after_gallery(data_dir: str | Path, keys, *, size: int = 135, s1_band: str = "VH"):
    """Before/after images of a few locations: S2 true colour and S1 ``s1_band`` (dB), mask outlined.

    Per location (``<region>_<id>``, written along the left edge) one row: S2 before, S2 after, S1 before,
    S1 after (the first of ``s1asc``/``s1dsc`` whose series holds the event; one colour bar per row). S2
    dates are the clearest before and after the event, S1 dates the nearest
    (:func:`s12ls_utils.signatures.before_after_steps`). North is up.
    """
    import holoviews as hv

    from .io import location_files, open_patch, patch_mask
    from .signatures import before_after_steps, patch_alignment

    n = schema.PATCH_SIZE
    bounds = (0, 0, n, n)
    common = dict(frame_width=size, frame_height=size, xaxis=None, fontsize={"title": "8pt", "ylabel": "9pt"})
    panels = []
    for key in keys:
        paths = location_files(data_dir, key)
        row = []
        s1_done = False
        for sensor in ("s2", *schema.S1_SENSORS):
            if sensor not in paths or (sensor != "s2" and s1_done):
                continue
            ds = open_patch(paths[sensor], load=True)
            al = patch_alignment(ds)
            steps = before_after_steps(ds, al)
            if steps is None:  # the event is outside this sensor's series
                continue
            s1_done = sensor != "s2"
            limits = (
                images.true_color_limits(ds) if sensor == "s2" else None
            )  # before and after share one stretch
            outline = mask_outline(patch_mask(ds), bounds)
            for when, t in zip(("before", "after"), steps, strict=True):
                date = str(ds["time"].values[t])[:10]
                title = f"{'S2' if sensor == 's2' else sensor + ' ' + s1_band} {when}\n{date} ({int(al.rel_days[t]):+d} d)"
                first = not row
                axis = (
                    dict(yaxis="left", ylabel=str(key), hooks=[_label_only_axis])
                    if first
                    else dict(yaxis=None)
                )
                if sensor == "s2":
                    img = hv.RGB(images.sensor_image(ds, t, "s2", limits=limits), bounds=bounds).opts(
                        title=title, **axis, **common
                    )
                else:
                    img = hv.Image(
                        images.backscatter_db(ds, s1_band, t),
                        bounds=bounds,
                        vdims=[hv.Dimension(s1_band, label=f"{s1_band} (dB)")],
                    ).opts(
                        **_image_opts(sensor, s1_band),
                        colorbar=when == "after",
                        title=title,
                        **axis,
                        **common,
                    )
                row.append(img * outline)
        panels += row
    if not panels:
        raise ValueError(f"no before/after pair found for {list(keys)}")
    panels.append(no_data_key(size))
    return (
        hv.Layout(panels)
        .cols(4)
        .opts(title=f"Before and after the event: S2 true colour, S1 {s1_band} (dB); red: landslide mask")
    )


def patch_signature_plot(series, feature: str = "NDVI", *, width: int = 680, height: int = 340):
    """Time series of one patch (a :func:`s12ls_utils.signatures.patch_signature` table) for one feature:
    per pixel group the median over the group's valid pixels and its inter-quartile range, against days
    relative to the event; dates without a valid pixel leave a gap in the markers."""
    import holoviews as hv

    from .signatures import FEATURE_LABELS

    df = series[series["feature"].astype(str) == feature]
    if df.empty:
        raise ValueError(f"the table holds no {feature!r} rows")
    key, sensor = str(df["key"].iloc[0]), str(df["sensor"].iloc[0])
    xdim = hv.Dimension("rel_day", label="days relative to event", unit="d")
    ydim = hv.Dimension("median", label="median over the group's pixels")
    ylabel = FEATURE_LABELS.get(feature, feature)
    return hv.Overlay(_group_layers(df, xdim, ydim, "n_valid", "valid pixels")).opts(
        title=f"{key}, {SIGNATURE_SENSOR_LABELS.get(sensor, sensor)}: {feature} per pixel group (median and IQR)",
        xlabel="days relative to event (d)",
        ylabel=ylabel,
        width=width,
        height=height,
        legend_position="right",
        show_legend=True,
    )


def pixel_groups_plot(
    groups, *, index=None, feature: str = "NDVI", steps=None, alignment=None, size: int = 165
):
    """The pixel groups of a patch (landslide, ring, rest; white: excluded gap), and optionally one
    index before and after the event (``index``: ``(time, y, x)`` array, ``steps``: the two time steps,
    ``alignment``: their dates) on one colour scale (2–98 % of both), masked pixels in grey, the landslide
    mask outlined. North is up."""
    import holoviews as hv
    from bokeh.models import FixedTicker

    from .signatures import FEATURE_LABELS, GROUPS

    shape = next(iter(groups.values())).shape
    bounds = (0, 0, shape[1], shape[0])
    labels = np.full(shape, np.nan, dtype="float32")
    for i, g in enumerate(GROUPS):
        labels[groups[g]] = i
    common = dict(frame_width=size, frame_height=size, xaxis=None, yaxis=None, fontsize={"title": "9pt"})
    panels = [
        hv.Image(labels, bounds=bounds, vdims=[hv.Dimension("group", label="pixel group")]).opts(
            cmap=[SIGNATURE_GROUP_COLORS[g] for g in GROUPS],
            clim=(-0.5, len(GROUPS) - 0.5),
            colorbar=True,
            colorbar_opts={
                "ticker": FixedTicker(ticks=list(range(len(GROUPS)))),
                "major_label_overrides": {i: SIGNATURE_GROUP_LABELS[g] for i, g in enumerate(GROUPS)},
            },
            clipping_colors={"NaN": "white"},
            title="pixel groups",
            **common,
        )
    ]
    if index is not None and steps is not None:
        outline = mask_outline(groups["landslide"], bounds)
        label = FEATURE_LABELS.get(feature, feature)
        pair = np.stack([np.asarray(index[t], dtype="float32") for t in steps])
        finite = pair[np.isfinite(pair)]
        clim = tuple(float(v) for v in np.percentile(finite, [2, 98])) if finite.size else (0.0, 1.0)
        for when, t, img_t in zip(("before", "after"), steps, pair, strict=True):
            head = when
            if alignment is not None:
                head += f" ({int(alignment.rel_days[t]):+d} d)"
            img = hv.Image(img_t, bounds=bounds, vdims=[hv.Dimension(feature, label=label)])
            panels.append(
                img.opts(
                    cmap="RdYlGn",
                    clim=clim,
                    colorbar=when == "after",
                    clipping_colors={"NaN": "#bbbbbb"},
                    title=f"{feature} {head}",
                    **common,
                )
                * outline
            )
    return hv.Layout(panels).cols(3)


# --- chapter 04: split creation ---
SPLIT_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#d62728"}
#: Footprint maps also show the tiles a buffer took out of a split (``split == "dropped"``).
FOOTPRINT_COLORS = {**SPLIT_COLORS, "dropped": "#7f7f7f"}


def split_footprints(frame, region: str, title: str | None = None, width: int = 350, leaks=None):
    """Patch footprints (1280 m squares, projected metres shown in km) of one region coloured by split.

    ``leaks`` (a :func:`s12ls_utils.splits.leaking_pairs` table, or any table with ``key_a``/``key_b``)
    draws a black line between the centres of each pair of patches that overlap, touch or share a landslide
    across splits. Rows whose ``split`` is ``"dropped"`` (tiles a buffer took out) are drawn in grey.
    """
    import holoviews as hv

    from .splits import FOOTPRINT_M

    df = frame[frame["region"].astype(str) == region].copy()
    if df.empty:
        raise ValueError(f"no patches of region {region!r} in the frame")
    x0, y0 = float(df["center_x"].min()), float(df["center_y"].min())
    half = FOOTPRINT_M / 2
    df["x0"] = (df["center_x"] - x0 - half) / 1000
    df["x1"] = (df["center_x"] - x0 + half) / 1000
    df["y0"] = (df["center_y"] - y0 - half) / 1000
    df["y1"] = (df["center_y"] - y0 + half) / 1000
    df["key"] = df["key"].astype(str)
    xd = hv.Dimension("x0", label=f"easting − {x0 / 1000:.1f} km (km, EPSG:{int(df['epsg'].iloc[0])})")
    yd = hv.Dimension("y0", label=f"northing − {y0 / 1000:.1f} km (km)")
    layers = [
        hv.Rectangles(df[df["split"] == s], kdims=[xd, yd, "x1", "y1"], vdims=["key", "split"], label=s).opts(
            color=FOOTPRINT_COLORS[s],
            alpha=0.45,
            line_color=FOOTPRINT_COLORS[s],
            line_width=1.5,
            tools=["hover"],
        )
        for s in FOOTPRINT_COLORS
        if (df["split"] == s).any()
    ]
    if leaks is not None and len(leaks):
        # each pair's two footprint centres, for the pairs with both patches in the region
        mid = ((df[["x0", "y0"]].to_numpy() + df[["x1", "y1"]].to_numpy()) / 2).tolist()
        mid = dict(zip(df["key"], mid, strict=True))
        segs = [
            (*mid[a], *mid[b])
            for a, b in zip(leaks["key_a"], leaks["key_b"], strict=True)
            if {a, b} <= mid.keys()
        ]
        if segs:
            layers.append(
                hv.Segments(segs, kdims=[xd, yd, "x1", "y1"], label="leaking pair").opts(
                    color="black", line_width=2.5
                )
            )
    return hv.Overlay(layers).opts(
        width=width,
        height=width + 60,
        title=title or f"{region}: patch footprints by split",
        legend_position="bottom",
        legend_cols=3,
        data_aspect=1,
        show_legend=True,
    )


def norm_points(
    norm, title: str = "Normalisation statistics: mean ± one standard deviation", width: int = 720
):
    """The per-variable means as points with ±1 std error bars, one panel per unit, and the published
    means of the real data as crosses where the table has them.

    ``norm`` is a long table with columns sensor, variable, mean, std, unit and optionally ``published mean
    (real)``; variables of one unit share a panel. A mean is a location, not an amount: points, not bars
    from zero.
    """
    import holoviews as hv

    panels = []
    for unit, d in norm.groupby("unit", sort=False):
        d = d.copy()
        d["label"] = d["sensor"].astype(str) + " " + d["variable"].astype(str)
        xd = hv.Dimension("label", label="sensor and variable", values=d["label"].tolist())
        yd = hv.Dimension("mean", label=f"mean ± std ({unit})")
        err = hv.ErrorBars(d, kdims=[xd], vdims=[yd, "std"]).opts(line_width=1.5)
        pts = hv.Scatter(d, kdims=[xd], vdims=[yd, "std", "sensor"], label="this task's train files").opts(
            color="sensor", cmap="Category10", size=8, tools=["hover"]
        )
        layer = err * pts
        if "published mean (real)" in d:
            pub = d.rename(columns={"published mean (real)": "published"})
            layer = layer * hv.Scatter(
                pub, kdims=[xd], vdims=["published"], label="published mean (real data)"
            ).opts(marker="x", size=10, color="black")
        panels.append(
            layer.opts(
                width=width,
                height=300,
                title=f"{unit}",
                xrotation=45,
                xlabel="sensor and variable",
                ylabel=yd.label,
                legend_position="right",  # beside the frame: inside, it hid points
                show_legend=True,
            )
        )
    return hv.Layout(panels).cols(1).opts(title=title, shared_axes=False)


# --- chapter 05: baseline training ---
_CURVE_COLORS = {
    "train": "#1f77b4",
    "validation": "#ff7f0e",
    "f1": "#2ca02c",
    "f1_best": "#d62728",
    "iou": "#9467bd",
}
_HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_f1", "val_f1_best", "val_iou")


def _history_frame(history):
    import pandas as pd

    df = pd.DataFrame(list(history) if not isinstance(history, pd.DataFrame) else history)
    for c in _HISTORY_FIELDS:
        if c not in df:
            df[c] = pd.Series(dtype="float64")
    return df[list(_HISTORY_FIELDS)].astype("float64")


def _history_overlay(df, spec, ylabel: str, title: str, legend: str, width: int, height: int, **opts):
    """Columns of a history frame against the epoch, one curve each (``spec``: column, legend label,
    colour key), the legend at ``legend``."""
    import holoviews as hv

    ep = hv.Dimension("epoch", label="epoch")
    curves = [
        hv.Curve(df, ep, hv.Dimension(c, label=ylabel), label=lab).opts(color=_CURVE_COLORS[k], line_width=2)
        for c, lab, k in spec
    ]
    return hv.Overlay(curves).opts(
        title=title, width=width, height=height, legend_position=legend, tools=["hover"], **opts
    )


def _loss_overlay(df, width: int, height: int):
    spec = (("train_loss", "train", "train"), ("val_loss", "validation", "validation"))
    ylabel = "loss (BCE/focal + Dice)"
    return _history_overlay(df, spec, ylabel, "Loss per epoch", "right", width, height)


def _metric_overlay(df, width: int, height: int):
    spec = (
        ("val_f1", "F1 at 0.5", "f1"),
        ("val_f1_best", "F1 at the best threshold", "f1_best"),
        ("val_iou", "IoU at 0.5", "iou"),
    )
    title, ylabel = "Validation F1 / IoU per epoch", "validation score, landslide class"
    return _history_overlay(df, spec, ylabel, title, "right", width, height, ylim=(0, 1))


def training_curves(history, width: int = 760, height: int = 260):
    """Loss (train, validation) and validation F1/IoU of the landslide class per epoch.

    ``history`` is the rows of ``runs/<run>/history.csv`` (a DataFrame or a list of dicts).
    """
    import holoviews as hv

    df = _history_frame(history)
    layout = hv.Layout([_loss_overlay(df, width, height), _metric_overlay(df, width, height)])
    return layout.opts(shared_axes=False).cols(1)


def live_training_curves(width: int = 760, height: int = 260):
    """``(figure, push)``: the curves of :func:`training_curves` fed by a HoloViews ``Pipe`` stream.

    Display ``figure`` in a live kernel and call ``push(history)`` after each epoch (e.g. as the
    ``callback`` of :func:`s12ls_utils.training.train`); the plot redraws in place. A static page shows
    the figure as it was when the cell ran, so draw :func:`training_curves` after training as well.
    """
    import holoviews as hv

    pipe = hv.streams.Pipe(data=_history_frame([]))
    loss = hv.DynamicMap(lambda data: _loss_overlay(data, width, height), streams=[pipe])
    metric = hv.DynamicMap(lambda data: _metric_overlay(data, width, height), streams=[pipe])

    def push(*args):
        """``push(history)`` or, as a training callback, ``push(row, history)``."""
        pipe.send(_history_frame(args[-1]))

    return hv.Layout([loss, metric]).opts(shared_axes=False).cols(1), push


def _image_opts(sensor: str, s1: str) -> dict:
    key = images.stretch_key(sensor, s1)
    return (
        {"cmap": "gray", "clim": images.DB_RANGES[key], "clipping_colors": {"NaN": images.NO_DATA_COLOR}}
        if key in images.DB_RANGES
        else {}
    )


def _panel(img: np.ndarray, title: str, size: int, title_size: str = "9pt", **opts):
    import holoviews as hv

    h, w = img.shape[:2]
    bounds = (0, 0, w, h)
    common = {"width": size, "height": size, "xaxis": None, "yaxis": None, "title": title}
    common["fontsize"] = {"title": title_size}
    if img.ndim == 3:
        return hv.RGB(img, bounds=bounds).opts(**common)
    return hv.Image(img, bounds=bounds).opts(**common, **opts)


def composite_panels(
    comp: np.ndarray,
    valid: np.ndarray | None,
    mask: np.ndarray,
    sensor: str,
    title: str,
    size: int = 260,
    s1: str = "false_color",
):
    """Before / after composites of one patch side by side, the mapped landslides outlined in red, under
    ``title`` (the patch and the data).

    Each panel title names the sensor and the stretch (:func:`stretch_label`).
    """
    import holoviews as hv

    h, w = np.asarray(mask).shape
    outline = mask_outline(np.asarray(mask, dtype="float32"), (0, 0, w, h))
    opts = _image_opts(sensor, s1)
    label = images.stretch_label(sensor, s1)
    panels = [
        _panel(
            images.composite_image(comp, valid, sensor, k, s1=s1),
            f"{name} ({sensor}, {label})",
            size,
            **opts,
        )
        * outline
        for k, name in ((0, "before the event"), (1, "after the event"))
    ]
    return hv.Layout(panels).opts(shared_axes=False, title=title)


def _sensor_rows(item: Mapping, sensor) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(sensor, pre, post)`` per sensor of a gallery item: ``pre``/``post`` are one image or a dict."""
    pre, post = item["pre"], item["post"]
    if isinstance(pre, Mapping):
        names = list(pre) if sensor is None or isinstance(sensor, str) else list(sensor)
        return [(s, pre[s], post[s]) for s in names]
    name = sensor if isinstance(sensor, str) else (list(sensor)[0] if sensor else "s2")
    return [(name, pre, post)]


_ERROR_OPTS = {"cmap": ["#f0f0f0", "#7b3294", "#ff7f0e", "#1a9850"], "clim": (-0.5, 3.5)}
#: the error map's classes (:func:`s12ls_utils.images.error_map`) as the galleries' legend names them
_ERROR_LABELS = {3: "found landslide (TP)", 2: "false alarm (FP)", 1: "missed landslide (FN)"}


def _gallery(items, sensor, s1: str, size: int, cols: int, extra, title_size: str = "9pt"):
    """The galleries' layout, ``cols`` panels a row: per item and sensor the before and after images (titled
    with the patch, the sensor and its stretch; the mapped landslides outlined), then ``extra(item, mask,
    outline)``'s ``cols − 2`` panels on the item's first row (empty cells on the others); the legend last."""
    import holoviews as hv

    panels = []
    for it in items:
        y = np.asarray(it["y"]) > 0.5
        outline = mask_outline(y.astype("float32"), (0, 0, y.shape[1], y.shape[0]))
        for row, (name, pre, post) in enumerate(_sensor_rows(it, sensor)):
            opts, label = _image_opts(name, s1), images.stretch_label(name, s1)
            first = f"{it['id']}: " if row == 0 else ""
            panels += [
                _panel(pre, f"{first}{name} before\n{label}", size, title_size, **opts) * outline,
                _panel(post, f"{name} after\n{label}", size, title_size, **opts) * outline,
            ]
            panels += extra(it, y, outline) if row == 0 else [hv.Empty()] * (cols - 2)
    panels.append(no_data_key(size, errors=True))
    return hv.Layout(panels).cols(cols).opts(shared_axes=False)


def prediction_gallery(items, threshold: float, sensor="s2", size: int = 175, s1: str = "false_color"):
    """One row per patch and sensor: before / after composites, predicted probability and the errors.

    Four panels of ``size`` px per row fit the book's content column (about 780 px); wider rows are cut off
    on the right of the page.

    ``items``: dicts with ``id``, ``pre`` and ``post`` (from :func:`composite_image` with the same ``s1``),
    ``y`` (mask) and ``prob`` (probabilities). For a fusion run ``pre``/``post`` are dicts
    ``{sensor: image}`` and ``sensor`` the list of sensors: one row per sensor, the probability and error
    maps on the first. Each image title names the sensor and its stretch (:func:`stretch_label`). The red
    line is the mapped landslide outline; in the error map green is a true positive, orange a false positive
    and purple a missed landslide pixel (false negative), at ``threshold``.
    """

    from .metrics import positive_class_scores

    def extra(item: Mapping, y: np.ndarray, outline) -> list:
        p = np.asarray(item["prob"], dtype="float32")
        pred = p >= threshold
        f1 = positive_class_scores(y, pred)["f1"]
        prob_opts = {"cmap": "viridis", "clim": (0, 1), "colorbar": False}
        return [
            _panel(p, "landslide probability\n0 dark to 1 yellow", size, **prob_opts) * outline,
            _panel(images.error_map(y, pred), f"errors at {threshold:.2f}\nF1 {f1:.2f}", size, **_ERROR_OPTS)
            * outline,
        ]

    return _gallery(items, sensor, s1, size, 4, extra)


# --- chapter 06: positive-class evaluation ---
_METHOD_COLORS = {"model": "#1f77b4", "reference": "#ff7f0e", "reference_date_free": "#2ca02c"}


def _on(title: str, data: str | None) -> str:
    """A figure title that names the data it was computed on (``data``, e.g. "synthetic sample")."""
    return f"{title} ({data})" if data else title


def pr_curves_plot(
    curves, prevalence: float, auprc=None, width: int = 520, height: int = 560, data: str | None = None
):
    """Precision–recall curves per method with the chance line (the positive-class prevalence).

    ``curves``: long table with method, recall, precision (e.g. ``EvaluationResult.pr_curves()``);
    ``auprc``: optional ``{method: AUPRC}`` for the legend; ``data``: what the curves were computed on, for
    the title.
    """
    import holoviews as hv

    rd = hv.Dimension("recall", label="recall (landslide class)", range=(0, 1))
    pd_ = hv.Dimension("precision", label="precision (landslide class)", range=(0, 1.02))
    layers = []
    for m, d in curves.groupby("method", sort=False):
        label = METHOD_NAMES.get(m, m)
        if auprc is not None and m in auprc:
            label += f" (AUPRC {auprc[m]:.3f})"
        d = d.sort_values("recall")
        layers.append(
            hv.Curve(d, rd, [pd_, "threshold"], label=label).opts(
                color=_METHOD_COLORS.get(m, "black"),
                line_width=2.5,
                interpolation="steps-post",
                tools=["hover"],
            )
        )
    chance = hv.Curve(
        [(0, prevalence), (1, prevalence)], rd, pd_, label=f"chance (prevalence {prevalence:.3f})"
    )
    layers.append(chance.opts(color="gray", line_dash="dashed", line_width=1.5))
    return hv.Overlay(layers).opts(
        title=_on("Precision–recall on the test split", data),
        width=width,
        height=height,
        legend_position="bottom",  # below the frame, one entry a line: the chance line runs along its floor
        legend_cols=1,
    )


def macro_gap_bars(scores, width: int = 420, height: int = 380, data: str | None = None):
    """Bars of F1 and IoU of the landslide class next to their macro averages and accuracy, per method.

    ``scores``: ``{method: {f1, iou, macro_f1, macro_iou, accuracy, prevalence}}`` (the title states the
    share of landslide pixels of the scored split, from ``prevalence``, and ``data``, what it was computed on).
    """
    import holoviews as hv
    import pandas as pd

    names = {
        "f1": "F1 landslide",
        "macro_f1": "F1 macro",
        "iou": "IoU landslide",
        "macro_iou": "IoU macro",
        "accuracy": "accuracy",
    }
    rows = [
        {"score": names[k], "method": METHOD_NAMES.get(m, m), "value": float(s[k])}
        for m, s in scores.items()
        for k in names
    ]
    df = pd.DataFrame(rows)
    prevalence = next(iter(scores.values())).get("prevalence", float("nan"))
    xd = hv.Dimension("score", label="score (test split)", values=list(names.values()))
    md = hv.Dimension("method", values=[METHOD_NAMES.get(m, m) for m in scores])
    bars = hv.Bars(df, kdims=[xd, md], vdims=[hv.Dimension("value", label="score (0–1)", range=(0, 1.05))])
    return bars.opts(
        color="method",
        cmap={METHOD_NAMES[m]: c for m, c in _METHOD_COLORS.items()},
        title=_on(
            f"Macro averages and accuracy flatter a task with {share(prevalence).percent_text()} positive pixels",
            data,
        ),
        width=width + 300,  # the title and five groups of bars
        height=height,
        tools=["hover"],
        show_legend=True,
        legend_position="top",
        hooks=[_hide_inner_factor_labels],
    )


def detection_rate_plot(
    detection, cover_fraction: float, width: int = 620, height: int = 340, data: str | None = None
):
    """Share of test landslides found per size bin and method; hover shows the counts.

    ``detection``: long table with method, size_bin, landslides, found, detection_rate
    (``EvaluationResult.detection()``); empty bins are left out. ``data`` (what it was computed on) goes
    into the title.
    """
    import holoviews as hv

    d = detection[detection["landslides"] > 0].copy()
    d["method"] = d["method"].map(lambda m: METHOD_NAMES.get(m, m))
    order = list(dict.fromkeys(detection["size_bin"]))
    xd = hv.Dimension("size_bin", label="landslide size (pixels of 10 m × 10 m)", values=order)
    yd = hv.Dimension(
        "detection_rate", label=f"share found (≥ {cover_fraction:.0%} covered)", range=(0, 1.05)
    )
    bars = hv.Bars(d, kdims=[xd, "method"], vdims=[yd, "landslides", "found"])
    return bars.opts(
        color="method",
        cmap={METHOD_NAMES[m]: c for m, c in _METHOD_COLORS.items()},
        title=_on("Detection rate vs landslide size (test split)", data),
        width=width,
        height=height,
        tools=["hover"],
        legend_position="top",
        show_legend=True,
        hooks=[_hide_inner_factor_labels],
    )


def error_gallery(items, size: int = 150, sensor="s2", s1: str = "false_color", data: str | None = None):
    """One row per patch (and sensor): the images before and after, the mask, the prediction and an FP/FN overlay.

    Five panels of ``size`` px per row fit the book's content column (about 780 px).

    ``items``: dicts with ``id``, ``pre`` and ``post`` (from :func:`sensor_image` with the same ``s1``: S2
    true colour, S1 false colour or VV/VH dB), ``y`` (mask) and ``pred`` (binary prediction). For several
    sensors ``pre``/``post`` are dicts ``{sensor: image}`` and ``sensor`` the list: one row per sensor, the
    mask, prediction and overlay on the first. Each image title names the sensor and its stretch
    (:func:`stretch_label`). Overlay colours: green true positive, orange false positive, purple false
    negative (missed); the red line is the mapped landslide outline. The layout's title names the figure
    and ``data``, what the patches are.
    """
    from .metrics import confusion_counts

    binary = {"cmap": ["#f7f7f7", "#202020"], "clim": (0, 1)}

    def extra(item: Mapping, y: np.ndarray, outline) -> list:
        p = np.asarray(item["pred"]).astype(bool)
        tp, fp, fn = (confusion_counts(y, p)[k] for k in ("tp", "fp", "fn"))
        return [
            _panel(y.astype("float32"), "mapped mask\nblack: landslide", size, "8pt", **binary),
            _panel(p.astype("float32"), "prediction\nblack: landslide", size, "8pt", **binary),
            _panel(images.error_map(y, p), f"errors\nTP {tp} · FP {fp} · FN {fn}", size, "8pt", **_ERROR_OPTS)
            * outline,
        ]

    title = _on("Test patches with the most model errors", data)
    return _gallery(items, sensor, s1, size, 5, extra, "8pt").opts(title=title)


# --------------------------------------------------------------------------------------------------
# Known issues of the real files (the appendix page)
# --------------------------------------------------------------------------------------------------
def known_issue_bars(found, title: str = "Patch files per known issue, by sensor", width: int = 680):
    """Horizontal bars of the patch files that show each known issue in a data folder, stacked by sensor
    (``found``: :func:`s12ls_utils.known_issues.known_issues`); an issue without files keeps its row."""
    import holoviews as hv

    from .known_issues import files_per_issue

    table = files_per_issue(found)
    long = (
        table.rename_axis("issue").reset_index().melt(id_vars="issue", var_name="sensor", value_name="files")
    )
    long["sensor"] = long["sensor"].map(ALIGN_LABELS)
    issue = hv.Dimension("issue", label="known issue", values=list(table.index)[::-1])
    sensor = hv.Dimension("sensor", values=[ALIGN_LABELS[s] for s in schema.SENSORS])
    return hv.Bars(
        long, kdims=[issue, sensor], vdims=[hv.Dimension("files", label="patch files (count)")]
    ).opts(
        stacked=True,
        invert_axes=True,
        color="sensor",
        cmap={ALIGN_LABELS[s]: _ALIGN_COLORS[s] for s in schema.SENSORS},
        width=width,
        height=60 + 30 * len(table),
        title=title,
        legend_position="right",
        show_legend=True,
        tools=["hover"],
    )


# --------------------------------------------------------------------------------------------------
# Grouped bars
# --------------------------------------------------------------------------------------------------
def legend_for_groups(bars, position: str = "top_right"):
    """Grouped bars (two key dimensions, e.g. ``df.hvplot.bar(x=…, by=…)``) with a legend for the inner
    groups instead of their names under every bar, where long names overlap each other."""
    if len(bars.kdims) != 2:
        raise ValueError(f"grouped bars have two key dimensions, got {[d.name for d in bars.kdims]}")
    return bars.opts(
        color=bars.kdims[1].name,
        cmap="Category10",
        show_legend=True,
        legend_position=position,
        hooks=[_hide_inner_factor_labels],
    )


# --------------------------------------------------------------------------------------------------
# What the split does to the score (chapter 07)
# --------------------------------------------------------------------------------------------------
#: Colours and labels of the test sets of :class:`s12ls_utils.evaluate.SplitOptimism`.
_TEST_SET_COLORS = {"own test": "#1f77b4", "common": "#d62728"}
_TEST_SET_LABELS = {"own test": "its own test split", "common": "the common held-out set"}
_SCORE_LABELS = {"f1": "F1 of the landslide class (0–1)", "ap": "average precision, AP (0–1)"}


def _split_points(table, metric: str):
    """``(splits, [(test set, x, value, low, high)])`` of a split-optimism table: one x position per split,
    the test sets side by side around it."""
    splits = list(dict.fromkeys(table["split"]))
    sets = [s for s in _TEST_SET_COLORS if s in set(table["test_set"])]
    offsets = {s: (i - (len(sets) - 1) / 2) * 0.18 for i, s in enumerate(sets)}
    pts = [
        (
            r["test_set"],
            splits.index(r["split"]) + offsets[r["test_set"]],
            r[metric],
            r[f"{metric}_low"],
            r[f"{metric}_high"],
        )
        for _, r in table.iterrows()
    ]
    return splits, pts


def split_optimism_plot(table, data: str = "synthetic sample", width: int = 660, height: int = 300):
    """F1 and AP per split with their intervals, on each split's own test set and on the common set, one panel
    above the other (the page's width; the legend beside the axes, off the error bars) (``table``:
    :meth:`s12ls_utils.evaluate.SplitOptimism.table`); ``data`` names the patches in the titles."""
    import holoviews as hv

    panels = []
    for metric in ("f1", "ap"):
        splits, pts = _split_points(table, metric)
        layers = []
        for ts, color in _TEST_SET_COLORS.items():
            mine = [p for p in pts if p[0] == ts]
            if not mine:
                continue
            xs = [p[1] for p in mine]
            ys = [p[2] for p in mine]
            err = hv.ErrorBars(
                [(x, y, y - lo, hi - y) for _, x, y, lo, hi in mine],
                kdims=["position"],
                vdims=["score", "below", "above"],
            ).opts(color=color, line_width=2)
            dots = hv.Scatter((xs, ys), "position", "score", label=_TEST_SET_LABELS[ts]).opts(
                color=color, size=9, tools=["hover"]
            )
            layers += [err, dots]
        panels.append(
            hv.Overlay(layers).opts(
                title=f"{metric.upper()} by split ({data}, 95 % intervals)",
                xlabel="split the model was trained and tested on",
                ylabel=_SCORE_LABELS[metric],
                xticks=list(enumerate(splits)),
                xlim=(-0.5, len(splits) - 0.5),
                ylim=(0, 1.02),
                width=width,
                height=height,
                legend_position="right",
                show_grid=True,
            )
        )
    return hv.Layout(panels).cols(1)
