"""Patches as images for the eye: the stretches and composites that every figure of the book draws.

- Sentinel-2 true colour from B04/B03/B02 with a 2–98 % percentile stretch over the usable pixels of all dates
  of a patch (one stretch per patch, so brightness compares over time; clouds are left out of the
  percentiles);
- Sentinel-1 backscatter in dB with a fixed −25…0 dB (VV) / −32…−8 dB (VH) window, or a VV·VH·VH/VV false
  colour;
- pixels without data in one colour (:data:`NO_DATA_COLOR`), with its own legend entry in the figures.

Plain numpy arrays: :mod:`s12ls_utils.figures` draws them with HoloViews, the book's static figures with
matplotlib, and :mod:`s12ls_utils.evaluate`'s galleries take them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import schema

DB_RANGES = {"VV": (-25.0, 0.0), "VH": (-32.0, -8.0)}


#: colour of pixels without data (NaN, fill values, no S2 observation) in every image, with its own legend
#: entry; magenta is not a colour of land, water, cloud or a grey SAR image
NO_DATA_COLOR = "#e600e6"


NO_DATA_LABEL = "no data (NaN / fill)"


def percentile_limits(arr: np.ndarray, lo: float = 2, hi: float = 98, valid: np.ndarray | None = None):
    """The ``lo`` and ``hi`` percentiles of the finite (and ``valid``) values; None when there are none."""
    a = np.asarray(arr, dtype="float32")
    sel = a[np.isfinite(a) & (valid if valid is not None else True)]
    if sel.size == 0:
        return None
    p0, p1 = np.percentile(sel, [lo, hi])
    return float(p0), float(p1)


def percentile_stretch(
    arr: np.ndarray, lo: float = 2, hi: float = 98, valid: np.ndarray | None = None, limits=None
) -> np.ndarray:
    """Scale to 0…1 between the ``lo`` and ``hi`` percentiles of the (valid) values, or between the given
    ``limits`` (``(low, high)``, e.g. one stretch for every date of a patch)."""
    a = np.asarray(arr, dtype="float32")
    if limits is None:
        limits = percentile_limits(a, lo, hi, valid)
        if limits is None:
            return np.zeros_like(a)
    p0, p1 = limits
    return np.clip((a - p0) / max(p1 - p0, 1e-6), 0, 1)


def _rgb_and_usable(ds, t: int) -> tuple[np.ndarray, np.ndarray | None]:
    rgb = np.stack([ds[b].isel(time=t).transpose("y", "x").values for b in ("B04", "B03", "B02")], axis=-1)
    valid = None
    if "SCL" in ds:
        scl = ds["SCL"].isel(time=t).transpose("y", "x").values
        valid = schema.scl_usable(scl)
        if valid.mean() < 0.05:
            valid = scl != 0
    return rgb.astype("float32"), valid


def true_color_limits(ds, lo: float = 2, hi: float = 98) -> tuple[float, float] | None:
    """One true-colour stretch for every date of a patch: the ``lo``/``hi`` percentiles of B04/B03/B02 over
    the usable pixels (scene classification) of all dates together, so that brightness compares over time."""
    values = []
    for t in range(ds.sizes["time"]):
        rgb, valid = _rgb_and_usable(ds, t)
        values.append(rgb[valid] if valid is not None else rgb.reshape(-1, 3))
    return percentile_limits(np.concatenate(values), lo, hi) if values else None


def true_color(ds, t: int, lo: float = 2, hi: float = 98, limits=None) -> np.ndarray:
    """``(y, x, 3)`` float RGB (B04, B03, B02) of time step ``t`` with a joint percentile stretch.

    The percentiles come from the pixels the scene classification calls usable, so clouds stay
    bright instead of compressing the land surface into the dark end. ``limits`` (from
    :func:`true_color_limits`) applies one stretch to every date of the patch instead.
    """
    rgb, valid = _rgb_and_usable(ds, t)
    flat_valid = None if valid is None else np.repeat(valid[..., None], 3, axis=-1)
    return percentile_stretch(rgb, lo, hi, flat_valid, limits=limits)


def s2_no_data(ds, t: int) -> np.ndarray:
    """``(y, x)`` True where S2 time step ``t`` has no observation (scene class 0 or a non-finite band)."""
    bad = np.zeros((ds.sizes["y"], ds.sizes["x"]), dtype=bool)
    if "SCL" in ds:
        bad |= ds["SCL"].isel(time=t).transpose("y", "x").values == 0
    for b in ("B04", "B03", "B02"):
        bad |= ~np.isfinite(ds[b].isel(time=t).transpose("y", "x").values.astype("float32"))
    return bad


def with_no_data(rgb: np.ndarray, no_data: np.ndarray | None = None) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` with pixels that have no data (``no_data``, or a non-finite channel) drawn in
    :data:`NO_DATA_COLOR`."""
    rgb = np.asarray(rgb, dtype="float32")
    bad = ~np.isfinite(rgb).all(axis=-1)
    if no_data is not None:
        bad |= np.asarray(no_data, dtype=bool)
    if not bad.any():
        return rgb
    color = np.array([int(NO_DATA_COLOR[i : i + 2], 16) / 255 for i in (1, 3, 5)], dtype="float32")
    return np.where(bad[..., None], color, rgb).astype("float32")


def backscatter_db(ds, band: str, t: int) -> np.ndarray:
    """VV or VH of time step ``t`` in dB as ``(y, x)`` (converting linear values)."""
    from .io import to_db

    a = ds[band].isel(time=t).transpose("y", "x").values
    unit = ds[band].attrs.get("units") or ds.attrs.get("s1_unit_native", "linear")
    return a if unit == "dB" else to_db(a)


#: Fixed dB windows of the Sentinel-1 false-colour composite: red VV, green VH, blue VH/VV (VH − VV in dB).
S1_FALSE_COLOR_RANGES = {"VV": DB_RANGES["VV"], "VH": DB_RANGES["VH"], "VH/VV": (-18.0, -3.0)}


#: How each gallery image is drawn (its stretch), named in every panel's title.
S1_MODES = ("false_color", "VV", "VH")


STRETCH_LABELS = {
    "s2": "true colour 2–98 %",  # per patch
    "VV": "VV dB −25…0",
    "VH": "VH dB −32…−8",
    "false_color": "VV·VH·VH/VV dB",
}


def stretch_key(sensor: str, s1: str = "false_color") -> str:
    """The display of an image of ``sensor``: ``"s2"`` (true colour), or the Sentinel-1 mode ``s1`` (checked)."""
    schema.check_sensor(sensor)
    if sensor == "s2":
        return "s2"
    return schema.check_choice("the S1 display", s1, S1_MODES)


def stretch_label(sensor: str, s1: str = "false_color") -> str:
    """Short text naming how an image of ``sensor`` is drawn (used in the gallery panel titles).

    S2: true colour B04/B03/B02 with one 2–98 % percentile stretch per patch. S1 ``"VV"``/``"VH"``: grey
    backscatter in dB with a fixed window (−25…0 dB VV, −32…−8 dB VH). S1 ``"false_color"``: red VV
    −25…0 dB, green VH −32…−8 dB, blue VH/VV (VH − VV) −18…−3 dB, each a fixed linear window.
    """
    return STRETCH_LABELS[stretch_key(sensor, s1)]


def s1_false_color(vv_db: np.ndarray, vh_db: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` false colour from VV and VH in dB: VV, VH, VH/VV, each in its fixed window.

    NaN (no data) is drawn in :data:`NO_DATA_COLOR`.
    """
    vv, vh = np.asarray(vv_db, dtype="float32"), np.asarray(vh_db, dtype="float32")
    chans = []
    for key, a in (("VV", vv), ("VH", vh), ("VH/VV", vh - vv)):
        lo, hi = S1_FALSE_COLOR_RANGES[key]
        chans.append(np.clip((a - lo) / (hi - lo), 0, 1))
    return with_no_data(np.stack(chans, axis=-1))


def _s1_image(vv: np.ndarray, vh: np.ndarray, ok: np.ndarray | None, s1: str) -> np.ndarray:
    if s1 == "false_color":
        rgb = s1_false_color(vv, vh)
        return rgb if ok is None else with_no_data(rgb, ~ok)
    a = vv if s1 == "VV" else vh
    return np.where(ok if ok is not None else np.isfinite(a), a, np.nan)


def composite_image(
    comp: np.ndarray, valid: np.ndarray | None, sensor: str, which: int = 1, s1: str = "false_color"
) -> np.ndarray:
    """A displayable image of a cached pre (``which=0``) or post (1) composite ``(2, C, H, W)`` int16.

    S2: ``(H, W, 3)`` true colour (B04/B03/B02) stretched 2–98 % over the valid pixels of both composites
    together (one stretch per patch, so before and after compare). S1 (cached as dB ×100): ``s1="VV"`` or
    ``"VH"`` gives ``(H, W)`` dB, NaN where invalid; ``s1="false_color"`` an ``(H, W, 3)`` VV/VH/(VH/VV)
    composite (:func:`s1_false_color`), black where invalid.
    """
    key = stretch_key(sensor, s1)
    names = schema.FEATURES[sensor]
    c = np.asarray(comp[which]).astype("float32")
    ok = None if valid is None else np.asarray(valid[which], dtype=bool)
    if key == "s2":
        bands = [names.index(b) for b in ("B04", "B03", "B02")]
        both = np.asarray(comp)[:, bands].astype("float32")  # (2, 3, H, W)
        sel = None if valid is None else np.repeat(np.asarray(valid, dtype=bool)[:, None], 3, axis=1)
        if sel is not None and sel.mean() < 0.05:
            sel = None
        rgb = np.moveaxis(c[bands], 0, -1)
        img = percentile_stretch(rgb, limits=percentile_limits(both, 2, 98, sel) or (0.0, 1.0))
        return img if ok is None else with_no_data(img, ~ok)
    return _s1_image(c[names.index("VV")] / 100.0, c[names.index("VH")] / 100.0, ok, key)


def composite_images(dataset, indices, sensors: Sequence[str], s1: str = "false_color") -> list[dict]:
    """The before and after images of patches ``indices`` of a raw ``"prepost"``
    :class:`~s12ls_utils.datasets.PatchDataset`: per patch ``{"pre": {sensor: image}, "post": {sensor: image}}``
    from its composites (:func:`composite_image`), as :func:`~s12ls_utils.figures.prediction_gallery` takes them."""
    out = []
    for i in indices:
        raw = dataset.read_raw(int(i))
        comps = {s: (raw[s].numpy(), raw[f"{s}_valid"].numpy().astype(bool)) for s in sensors}
        out.append(
            {
                when: {s: composite_image(comp, valid, s, which, s1=s1) for s, (comp, valid) in comps.items()}
                for which, when in enumerate(("pre", "post"))
            }
        )
    return out


def sensor_image(ds, t: int, sensor: str, s1: str = "false_color", limits=None) -> np.ndarray:
    """A displayable image of time step ``t`` of a patch of ``sensor`` (an opened ``.nc`` file).

    S2: :func:`true_color` (``limits``: one stretch for all dates, :func:`true_color_limits`). S1:
    ``"false_color"`` (:func:`s1_false_color`) or ``"VV"``/``"VH"`` in dB (:func:`backscatter_db`), in fixed
    windows that are the same on every date.
    """
    key = stretch_key(sensor, s1)
    if key == "s2":
        return with_no_data(true_color(ds, t, limits=limits), s2_no_data(ds, t))
    return _s1_image(backscatter_db(ds, "VV", t), backscatter_db(ds, "VH", t), None, key)


def error_map(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per pixel 0 true negative, 1 missed landslide (FN), 2 false alarm (FP), 3 found landslide (TP)."""
    return np.where(pred & y, 3, np.where(pred & ~y, 2, np.where(y, 1, 0))).astype("float32")


def gallery_images(items: list[dict], s1: str = "false_color") -> tuple[list[dict], str | list[str]]:
    """The error gallery's before/after images for :func:`s12ls_utils.evaluate.evaluate_run`'s ``gallery`` items.

    Per item and sensor of the run, the dates just before and after the event
    (:func:`~s12ls_utils.signatures.before_after_steps`; first and last date when the event is outside the
    series), drawn with :func:`sensor_image` (S2 true colour with one stretch per patch,
    S1 ``s1``). Returns the items with ``pre``/``post`` added and the ``sensor`` argument of
    :func:`error_gallery`: one sensor name, or the list of a fusion run's sensors (then
    ``pre``/``post`` are ``{sensor: image}`` and the gallery draws one row per sensor)."""
    from . import signatures
    from .io import open_patch

    out, sensors = [], []
    for it in items:
        paths = it.get("paths") or ({"s2": it["path"]} if it.get("path") else {})
        pre, post = {}, {}
        for sensor, path in paths.items():
            with open_patch(path, load=True) as ds:
                steps = signatures.before_after_steps(ds, signatures.patch_alignment(ds))
                pre_t, post_t = steps if steps is not None else (0, ds.sizes["time"] - 1)
                limits = true_color_limits(ds) if sensor == "s2" else None
                pre[sensor] = sensor_image(ds, pre_t, sensor, s1=s1, limits=limits)
                post[sensor] = sensor_image(ds, post_t, sensor, s1=s1, limits=limits)
            if sensor not in sensors:
                sensors.append(sensor)
        if len(paths) == 1:
            (pre,), (post,) = pre.values(), post.values()
        out.append({**it, "pre": pre, "post": post})
    return out, (sensors if len(sensors) > 1 else (sensors[0] if sensors else "s2"))


def viewer_steps(times: Mapping[str, np.ndarray]) -> tuple[str, list[np.datetime64], dict[str, list[int]]]:
    """The dates a multi-sensor viewer steps through, and per sensor the time index shown at each step.

    ``times``: per sensor its acquisition times. The steps are the dates of the reference sensor (S2 when
    present, else the first given); every sensor shows, at each step, its acquisition nearest in time (the
    earlier one on a tie). So one step pairs acquisitions by date, not by their index in each series (which
    would pair an S2 date with an S1 date a month apart). Returns ``(reference sensor, step dates, indices)``.
    """
    if not times:
        raise ValueError("no sensor times given")
    ref = "s2" if "s2" in times else next(iter(times))
    steps = list(np.asarray(times[ref], dtype="datetime64[s]"))
    indices = {}
    for sensor, t in times.items():
        t = np.asarray(t, dtype="datetime64[s]").astype("int64")
        if t.size == 0:
            raise ValueError(f"{sensor}: no acquisition times")
        idx = []
        for d in steps:
            gap = np.abs(t - np.int64(d.astype("int64")))
            idx.append(int(np.flatnonzero(gap == gap.min())[0]))
        indices[sensor] = idx
    return ref, steps, indices


def days_apart(a, b) -> str:
    """``a`` − ``b`` in whole days as text (``"+3 d"``, ``"−2 d"``, ``"same day"``)."""
    d = int(round((np.datetime64(a, "s") - np.datetime64(b, "s")).astype("int64") / 86400))
    return "same day" if d == 0 else f"{d:+d} d".replace("-", "−")
