"""Spectral indices, backscatter and per-patch time series aligned on the event date.

What a landslide looks like in time, per sensor, relative to its event date:

- :func:`s2_indices` turns Sentinel-2 reflectances into NDVI, NDMI, NBR, a bare-soil index (BSI) and a
  brightness, with the pixels the scene classification calls unusable (:func:`cloud_mask`) set to NaN;
  :func:`s1_indices` gives VV and VH in dB and their ratio (a dB difference); :func:`slope_deg` the
  terrain slope from the DEM.
- :func:`align_event` places a patch's 15 dates on an axis of days relative to its event
  (:func:`relative_days`) and says which steps are before and after it (derived from the event date
  and the time axis; the ``pre_post_dates`` attribute is only a cross-check).
- :func:`pixel_groups` splits a patch into the landslide pixels, a ring around them (same terrain, no
  landslide) and the rest; :func:`patch_signature` summarises every feature per group and date (median,
  quartiles, valid pixels) in long format; :func:`change_features` gives each pixel's pre→post change
  (post median − pre median).
- :func:`collect_signatures` does this for a whole catalog, patch by patch in parallel workers
  (:mod:`s12ls_utils.parallel`: local processes, threads or a Dask cluster), keeping a
  bounded random sample of pixel changes per patch; :func:`aggregate_signatures` summarises the time
  series across patches and :func:`separability` ranks the change features by ROC AUC (landslide vs
  background pixels).

Choices, stated once:

- **Masked values are NaN, never zeros.** Sentinel-2 pixels of the SCL classes in
  :data:`schema.SCL_BAD` (no data, defective, dark, cloud shadow, clouds, cirrus, snow; the set is the
  ``bad_classes`` parameter) and of 255 (unknown quality, whole frames in the real files) are NaN in every
  index; Sentinel-1 pixels that are NaN (layover, shadow, no data) or non-positive stay NaN in dB.
- **Brightness** is the mean reflectance (0–1) of the visible and near-infrared 10 m bands
  B02, B03, B04 and B08.
- **Raw Sentinel-2 files are harmonised** when read (:func:`s12ls_utils.io.open_patch` removes the
  +1000 DN offset of dates from 2022-01-25), so indices do not jump at that date.
- **Multi-event patches** are aligned on their earliest dated event (``event_date`` is written from a set,
  in arbitrary order: the order in the file means nothing).
- **Before / after**: pre steps are those ``<= pre`` index, post steps those ``>= post`` index, with the
  indices derived from the event date and the time stamps by the reference writer's rule (last step
  strictly before the event, first step on or after it: a same-day acquisition is post-event; repeated
  dates are fine). ``pre_post_dates`` is only compared with them (``index_source="attribute"`` when it
  agrees, ``"event_date"`` when it is missing or disagrees). When the event lies outside the series (no
  step before or none after; ``index_source="outside"``), there is no pre→post change: the patch
  contributes to the time series only, each date phased ``pre`` or ``post`` by its relative day.
- **Undated annotated patches** (``event_date`` ``None``/``nan``/``NaT``) keep their rows, but have no
  event date: relative days are NaN, every phase is ``none`` and there is no pre→post change
  (``event_source="none"``, ``event_position="undated"`` in the patch facts).
- **Non-annotated patches** have no landslide (and so no ring) group: their pixels are background
  ("rest"). They carry no event date; :func:`collect_signatures` places them on the time axis with the
  median event date of the annotated patches of their region (a region is the inventory of one
  triggering event), marked ``event_source="region"``.

Only numpy, scipy, xarray, pandas and scikit-learn are used here (no plotting, no torch).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import schema
from .io import detect_s1_unit, open_patch, patch_mask, to_db
from .metrics import patch_resamples, percentile_interval
from .parallel import NETCDF_LOCK, check_scheduler, map_files

log = logging.getLogger(__name__)

S2_FEATURES: tuple[str, ...] = ("NDVI", "NDMI", "NBR", "BSI", "brightness")
S1_FEATURES: tuple[str, ...] = ("VV_dB", "VH_dB", "VH_VV_dB")
#: Features computed per sensor, in this order.
FEATURES: dict[str, tuple[str, ...]] = {"s2": S2_FEATURES, "s1asc": S1_FEATURES, "s1dsc": S1_FEATURES}
ALL_FEATURES: tuple[str, ...] = (*S2_FEATURES, *S1_FEATURES)
#: Axis labels with units.
FEATURE_LABELS: dict[str, str] = {
    "NDVI": "NDVI (unitless)",
    "NDMI": "NDMI (unitless)",
    "NBR": "NBR (unitless)",
    "BSI": "BSI (unitless)",
    "brightness": "brightness (reflectance, 0–1)",
    "VV_dB": "VV backscatter (dB)",
    "VH_dB": "VH backscatter (dB)",
    "VH_VV_dB": "VH/VV ratio (dB)",
}
#: Pixel groups of a patch.
GROUPS: tuple[str, ...] = ("landslide", "ring", "rest")
#: Position of a date relative to the event (see :func:`align_event`). ``"event"`` stays a category for
#: compatibility but is no longer produced: an acquisition on the event day is ``"post"`` (writer's rule).
PHASES: tuple[str, ...] = ("pre", "event", "post", "none")


# --------------------------------------------------------------------------------------------------
# Small numerical helpers
# --------------------------------------------------------------------------------------------------
def _nanquantiles(x: np.ndarray, qs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles over the last axis ignoring NaN (linear interpolation, as ``np.nanquantile``).

    Returns ``(q_values (len(qs), *x.shape[:-1]) float32, n_valid x.shape[:-1] int64)``; all-NaN rows
    give NaN without a warning. Sorting once serves every quantile, which is much faster than
    ``np.nanpercentile`` on many short rows.
    """
    x = np.sort(np.asarray(x, dtype="float32"), axis=-1)  # NaN sort last
    n = np.count_nonzero(~np.isnan(x), axis=-1)
    out = np.full((len(qs), *x.shape[:-1]), np.nan, dtype="float32")
    if x.shape[-1] == 0:
        return out, n
    for i, q in enumerate(qs):
        pos = q * (n - 1)
        lo = np.clip(np.floor(pos).astype("int64"), 0, None)
        hi = np.clip(np.minimum(lo + 1, n - 1), 0, None)
        frac = (pos - lo).astype("float32")
        vlo = np.take_along_axis(x, lo[..., None], axis=-1)[..., 0]
        vhi = np.take_along_axis(x, hi[..., None], axis=-1)[..., 0]
        out[i] = np.where(n > 0, vlo + (vhi - vlo) * frac, np.nan)
    return out, n


def _weighted_median(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Median of the finite values, each counted ``weight`` times (NaN when there are none)."""
    v = np.asarray(values, dtype="float64")
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype="float64")
    ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return float("nan")
    v, w = v[ok], w[ok]
    order = np.argsort(v, kind="stable")
    v, cw = v[order], np.cumsum(w[order])
    return float(v[np.searchsorted(cw, 0.5 * cw[-1])])


def _normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a − b) / (a + b)``; NaN where the sum is zero or an input is NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s = a + b
        return np.where(s != 0, (a - b) / s, np.nan).astype("float32")


def _cat(values, categories: Sequence[str]) -> pd.Categorical:
    """Categorical with a fixed set of categories (frames of many patches then concatenate cheaply)."""
    return pd.Categorical(values, categories=list(categories))


def _yx(da: xr.DataArray) -> xr.DataArray:
    """A DataArray with ``time, y, x`` (or ``y, x``) in canonical order, whatever the file's order."""
    order = [d for d in schema.CANONICAL_DIMS if d in da.dims]
    return da.transpose(*order, ...)


# --------------------------------------------------------------------------------------------------
# Indices
# --------------------------------------------------------------------------------------------------
def cloud_mask(
    scl: np.ndarray | xr.DataArray, bad_classes: Iterable[int] | None = None
) -> np.ndarray | xr.DataArray:
    """``True`` where a Sentinel-2 pixel is usable (:func:`schema.scl_usable`, the package's one rule).

    Unusable: the SCL classes of ``bad_classes`` (default :data:`schema.SCL_BAD`, the reference's rule: 0 no
    data, 1 defective, 2 dark area, 3 cloud shadow, 8/9 cloud, 10 thin cirrus, 11 snow), 255 (unknown
    quality) and any value that is not an SCL class. Usable by default: 4 vegetation, 5 not vegetated,
    6 water, 7 unclassified. Class 2 ("dark area") also holds topographic shadow, where landslides often
    lie: leave it out of ``bad_classes`` to keep those pixels. A DataArray comes back as a DataArray.
    """
    if isinstance(scl, xr.DataArray):
        return xr.apply_ufunc(cloud_mask, scl, kwargs={"bad_classes": bad_classes})
    return schema.scl_usable(scl, bad_classes)


def s2_indices(ds: xr.Dataset, *, mask: bool = True, bad_classes: Iterable[int] | None = None) -> xr.Dataset:
    """Sentinel-2 indices of every pixel and date, ``(time, y, x)`` float32.

    With reflectances ρ = DN / 10000:

    - NDVI = (B08 − B04) / (B08 + B04)
    - NDMI = (B08 − B11) / (B08 + B11)
    - NBR = (B08 − B12) / (B08 + B12)
    - BSI = ((B11 + B04) − (B08 + B02)) / ((B11 + B04) + (B08 + B02))
    - brightness = (B02 + B03 + B04 + B08) / 4, mean visible + NIR reflectance (0–1)

    With ``mask`` (default) the pixels :func:`cloud_mask` calls unusable (``bad_classes``: its class set)
    are NaN; a patch without ``SCL`` is not masked. A zero denominator gives NaN.
    """
    out = _s2_arrays(ds, mask=mask, bad_classes=bad_classes)
    return _feature_dataset(out, _yx(ds["B02"]), attrs={"masked": bool(mask and "SCL" in ds)})


def _s2_arrays(ds: xr.Dataset, *, mask: bool = True, bad_classes: Iterable[int] | None = None) -> dict:
    """The arrays of :func:`s2_indices` (its numbers without the Dataset around them)."""
    need = ("B02", "B03", "B04", "B08", "B11", "B12")
    missing = [b for b in need if b not in ds]
    if missing:
        raise KeyError(f"bands {missing} are missing: s2_indices needs a Sentinel-2 patch")
    r = {b: _yx(ds[b]).values.astype("float32") / schema.S2_SCALE for b in need}
    out = {
        "NDVI": _normalized_difference(r["B08"], r["B04"]),
        "NDMI": _normalized_difference(r["B08"], r["B11"]),
        "NBR": _normalized_difference(r["B08"], r["B12"]),
        "BSI": _normalized_difference(r["B11"] + r["B04"], r["B08"] + r["B02"]),
        "brightness": ((r["B02"] + r["B03"] + r["B04"] + r["B08"]) / 4).astype("float32"),
    }
    if mask and "SCL" in ds:
        usable = cloud_mask(_yx(ds["SCL"]).values, bad_classes)
        out = {k: np.where(usable, v, np.float32(np.nan)) for k, v in out.items()}
    return out


def _feature_dataset(arrays: Mapping[str, np.ndarray], template: xr.DataArray, attrs=None) -> xr.Dataset:
    """``(time, y, x)`` feature arrays as a Dataset on the coordinates of ``template`` (a band of the patch)."""
    coords = {k: v for k, v in template.coords.items() if set(v.dims) <= set(template.dims)}
    return xr.Dataset(
        {
            k: xr.DataArray(v, dims=template.dims, coords=coords, attrs={"long_name": FEATURE_LABELS[k]})
            for k, v in arrays.items()
        },
        attrs=attrs,
    )


def _db(da: xr.DataArray, ds: xr.Dataset) -> np.ndarray:
    vals = _yx(da).values.astype("float32")
    unit = da.attrs.get("units") or ds.attrs.get("s1_unit_native") or detect_s1_unit(vals)
    if unit == "dB":
        return vals
    return to_db(vals)


def indices(ds: xr.Dataset, sensor: str, *, bad_classes: Iterable[int] | None = None) -> xr.Dataset:
    """The features of chapter 02 for a patch of ``sensor``: :func:`s2_indices` (masked with the SCL
    classes ``bad_classes``) or :func:`s1_indices`."""
    schema.check_sensor(sensor)
    return s2_indices(ds, bad_classes=bad_classes) if sensor == "s2" else s1_indices(ds)


def usable_fraction(ds: xr.Dataset, sensor: str, *, bad_classes: Iterable[int] | None = None) -> np.ndarray:
    """Per date, the share of pixels with a usable value: S2 by the scene classification
    (:func:`cloud_mask` with ``bad_classes``), S1 where VV and VH are finite and positive (linear) or
    finite (dB)."""
    schema.check_sensor(sensor)
    if sensor == "s2":
        usable = cloud_mask(ds["SCL"], bad_classes)
        return np.asarray(usable.mean(dim=("y", "x")).values, dtype="float64")
    feats = s1_indices(ds)
    ok = np.isfinite(feats["VV_dB"].values) & np.isfinite(feats["VH_dB"].values)
    return ok.reshape(ok.shape[0], -1).mean(axis=1)


#: the feature chapter 02 shows for one patch of each sensor
KEY_FEATURE = {"s2": "NDVI", "s1asc": "VH_dB", "s1dsc": "VH_dB"}


def s1_indices(ds: xr.Dataset) -> xr.Dataset:
    """Sentinel-1 VV and VH in dB and the VH/VV ratio in dB (VH_dB − VV_dB), ``(time, y, x)`` float32.

    The stored unit is read from the ``units`` attribute that :func:`s12ls_utils.io.open_patch` sets
    (detected from the values otherwise): linear values are converted, dB values kept. NaN stays NaN;
    non-positive linear values become NaN.
    """
    return _feature_dataset(_s1_arrays(ds), _yx(ds["VV"]))


def _s1_arrays(ds: xr.Dataset) -> dict:
    """The arrays of :func:`s1_indices` (its numbers without the Dataset around them)."""
    missing = [b for b in schema.S1_BANDS if b not in ds]
    if missing:
        raise KeyError(f"bands {missing} are missing: s1_indices needs a Sentinel-1 patch")
    vv, vh = _db(ds["VV"], ds), _db(ds["VH"], ds)
    return {"VV_dB": vv, "VH_dB": vh, "VH_VV_dB": (vh - vv).astype("float32")}


def slope_deg(dem: np.ndarray | xr.DataArray, pixel_size: float = schema.PIXEL_SIZE_M) -> np.ndarray:
    """Terrain slope in degrees, ``(y, x)`` float32, from a DEM in metres.

    Central differences inside, one-sided at the edges (``np.gradient``); a ``(time, y, x)`` DEM uses
    its first step (the DEM is the same at every step).
    """
    a = _yx(dem).values if isinstance(dem, xr.DataArray) else np.asarray(dem)
    if a.ndim == 3:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"slope_deg needs a (y, x) or (time, y, x) DEM, got shape {a.shape}")
    gy, gx = np.gradient(a.astype("float64"), pixel_size)
    return np.degrees(np.arctan(np.hypot(gx, gy))).astype("float32")


# --------------------------------------------------------------------------------------------------
# Time alignment
# --------------------------------------------------------------------------------------------------
def _to_day(value) -> np.datetime64 | None:
    """One date-like value as its day, None where it is missing or no date (a bad attribute is no event date)."""
    day = schema.to_days(value, errors="coerce")[0]
    return None if np.isnat(day) else day


def relative_days(times: Iterable, event_date) -> np.ndarray:
    """Calendar days from ``event_date`` to each time stamp (negative before the event), float64.

    Both are truncated to their day first. An unknown event date (``None``, ``NaT``, empty) gives NaN for
    every step.
    """
    days = schema.to_days(list(times) if not isinstance(times, np.ndarray) else times)
    ev = _to_day(event_date)
    if ev is None:
        return np.full(days.shape, np.nan)
    return (days - ev).astype("int64").astype("float64")


@dataclass
class EventAlignment:
    """Where a patch's dates fall relative to its event (see :func:`align_event`)."""

    event_date: dt.date | None
    event_source: str  # "attribute", "region" (pseudo date of a non-annotated patch) or "none"
    rel_days: np.ndarray  # float64 per step, NaN without an event date
    pre: int | None  # last step before the event (None when there is no pre→post split)
    post: int | None  # first step on or after the event
    index_source: str  # "attribute" (agrees), "event_date" (derived), "outside" or "none"
    phase: np.ndarray  # per step: "pre", "post" or "none" ("event" is kept as a category only)
    position: str = "none"  # schema.EVENT_POSITIONS: inside, before, after, undated, none
    attribute_agrees: bool | None = None  # pre_post_dates vs the time axis (None: no attribute entry)

    @property
    def in_series(self) -> bool:
        """True when there are steps both before and after the event."""
        return self.pre is not None and self.post is not None


def align_event(
    times: Sequence,
    event_dates: Sequence | None = None,
    pre_post: Sequence[tuple[int, int]] | None = None,
    *,
    fallback_date=None,
    undated: bool = False,
) -> EventAlignment:
    """Align a patch's time stamps on its primary event, the **earliest dated** one.

    ``event_dates`` and ``pre_post`` are the parsed attributes (``pre_post`` paired with ``event_dates``
    entry by entry, in the same order; undated entries may be ``None``). The indices are derived from the
    event date and the time stamps (:func:`s12ls_utils.schema.event_steps`: last step strictly before,
    first step on or after the event); the ``pre_post`` entry of the primary event is only compared with
    them (``attribute_agrees``). An event on or before the first date or after the last one gives no
    indices (``index_source="outside"``). ``fallback_date`` is used when there is no event date
    (non-annotated patches); such a patch gets relative days, phases and indices, but
    ``event_source="region"`` says the date is not its own. ``undated`` marks an annotated patch without
    a dated event (``position="undated"``).
    """
    n = len(times)
    entries = list(event_dates or [])
    days = [_to_day(d) for d in entries]
    dated = sorted((d, i) for i, d in enumerate(days) if d is not None)
    ev = None
    source = "none"
    attr_pair = None
    if dated:
        ev, first = dated[0]
        source = "attribute"
        if pre_post and len(pre_post) == len(entries):
            attr_pair = tuple(int(v) for v in pre_post[first])
    undated = undated or (bool(entries) and not dated)
    if ev is None and fallback_date is not None:
        ev = _to_day(fallback_date)
        source = "region" if ev is not None else "none"
    rel = relative_days(times, ev)
    t_days = schema.to_days(times)
    steps = schema.event_steps(
        t_days, [ev.astype(dt.date)] if ev is not None else [], undated=undated and source != "region"
    )
    # attr_pair is set only with a dated event of the patch's own
    agrees = None if attr_pair is None else attr_pair == schema.writer_pre_post(t_days, steps.event_date)
    pre, post = steps.pair if ev is not None and steps.has_pair else (None, None)
    if ev is None:
        index_source = "none"
    elif steps.has_pair:
        index_source = "attribute" if agrees else "event_date"
    else:
        index_source = "outside"
    if pre is not None:
        idx = np.arange(n)
        phase = np.where(idx <= pre, "pre", "post")
    elif ev is not None:
        phase = np.where(rel < 0, "pre", "post")  # a same-day acquisition is post-event
    else:
        phase = np.full(n, "none")
    if agrees is False:
        log.debug("pre_post_dates %s disagrees with the time axis (%s, %s): ignored", attr_pair, pre, post)
    return EventAlignment(
        event_date=None if ev is None else ev.astype(dt.date),
        event_source=source,
        rel_days=rel,
        pre=pre,
        post=post,
        index_source=index_source,
        phase=phase.astype(object),
        position=steps.position,
        attribute_agrees=agrees,
    )


def patch_alignment(ds: xr.Dataset, *, fallback_date=None) -> EventAlignment:
    """:func:`align_event` of an opened patch, from its own attributes (read leniently: a missing or
    unparsable ``pre_post_dates`` is not needed, a missing ``event_date`` means none)."""
    attrs, _ = schema.parse_attrs(ds.attrs)
    return _align_attrs(ds["time"].values, attrs, fallback_date)


def _align_attrs(times, attrs: schema.PatchAttrs, fallback_date=None) -> EventAlignment:
    """:func:`align_event` from parsed attributes (their ``pre_post`` already follows the sorted dates)."""
    return align_event(
        times,
        attrs.event_dates,
        attrs.pre_post,
        fallback_date=fallback_date,
        undated=attrs.undated,
    )


def before_after_steps(
    ds: xr.Dataset, alignment: EventAlignment, *, bad_classes: Iterable[int] | None = None
) -> tuple[int, int] | None:
    """One step before and one after the event to show side by side, or None outside the series.

    Sentinel-2: among the pre (post) steps, the one with the most usable pixels (:func:`cloud_mask` with
    ``bad_classes``), the nearest to the event on ties. Sentinel-1: the pre and post steps nearest to the
    event.
    """
    if not alignment.in_series:
        return None
    pre_steps = np.arange(alignment.pre + 1)
    post_steps = np.arange(alignment.post, len(alignment.rel_days))
    if "SCL" not in ds:
        return int(pre_steps[-1]), int(post_steps[0])
    usable = cloud_mask(_yx(ds["SCL"]).values, bad_classes).reshape(ds.sizes["time"], -1).mean(axis=1)
    # highest usable share; ties go to the step nearest the event (rounded to 1 % to ignore noise)
    score = np.round(usable, 2)
    best_pre = pre_steps[::-1][np.argmax(score[pre_steps][::-1])]
    best_post = post_steps[np.argmax(score[post_steps])]
    return int(best_pre), int(best_post)


# --------------------------------------------------------------------------------------------------
# Pixel groups and per-patch summaries
# --------------------------------------------------------------------------------------------------
def pixel_groups(mask: np.ndarray, ring_px: int = 5, gap_px: int = 0) -> dict[str, np.ndarray]:
    """Split a patch into ``landslide``, ``ring`` and ``rest`` pixels (boolean ``(y, x)`` arrays).

    ``ring``: pixels within ``ring_px`` pixels (Euclidean, i.e. a binary dilation of the mask with a
    disk, via ``scipy.ndimage.distance_transform_edt``) of a landslide pixel, minus the mask itself and
    minus a ``gap_px`` wide band next to it (mixed or mis-registered edge pixels; 0 = no gap). ``rest``:
    everything else outside that band. Without landslide pixels, ``landslide`` and ``ring`` are empty and
    every pixel is ``rest``. A ``(time, y, x)`` mask uses its first step.
    """
    from scipy import ndimage

    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[0]
    m = m.astype(bool)
    if ring_px < 0 or gap_px < 0:
        raise ValueError("ring_px and gap_px must be >= 0")
    if not m.any():
        empty = np.zeros(m.shape, dtype=bool)
        return {"landslide": empty, "ring": empty.copy(), "rest": np.ones(m.shape, dtype=bool)}
    dist = ndimage.distance_transform_edt(~m)
    ring = (dist > gap_px) & (dist <= gap_px + ring_px)
    rest = dist > gap_px + ring_px
    return {"landslide": m, "ring": ring, "rest": rest}


def change_features(
    features: xr.Dataset | Mapping[str, np.ndarray], pre: int | None, post: int | None
) -> xr.Dataset | dict[str, np.ndarray] | None:
    """Per-pixel pre→post change of every feature: median over steps ``>= post`` minus median over
    steps ``<= pre`` (NaN values ignored; NaN where a pixel has no valid value on one side).

    ``features`` holds ``(time, y, x)`` arrays (an :func:`s2_indices` / :func:`s1_indices` Dataset or a
    mapping of arrays). Returns the same kind with ``(y, x)`` arrays, or ``None`` when there is no split:
    an index is missing or the event lies outside the series (``pre >= post``, as ``pre_post_dates``
    encodes it with both 0 or both 14).
    """
    if pre is None or post is None or pre < 0 or pre >= post:
        return None
    is_ds = isinstance(features, xr.Dataset)
    out = {}
    for name in features:
        arr = (_yx(features[name]).values if is_ds else np.asarray(features[name])).astype("float32")
        if post >= arr.shape[0]:
            return None
        before, _ = _nanquantiles(np.moveaxis(arr[: pre + 1], 0, -1), [0.5])
        after, _ = _nanquantiles(np.moveaxis(arr[post:], 0, -1), [0.5])
        out[name] = (after[0] - before[0]).astype("float32")
    if not is_ds:
        return out
    template = _yx(features[next(iter(features))])
    dims = [d for d in template.dims if d != "time"]
    coords = {k: v for k, v in template.coords.items() if "time" not in v.dims and k != "time"}
    return xr.Dataset({k: xr.DataArray(v, dims=dims, coords=coords) for k, v in out.items()})


def _patch_attrs(ds: xr.Dataset, path: Path) -> schema.PatchAttrs:
    """Typed attributes, lenient: whatever is missing or unparsable keeps its default (logged)."""
    attrs, problems = schema.parse_attrs(ds.attrs)
    if problems:
        log.debug("%s: %s", path, "; ".join(problems))
    return attrs


@dataclass
class PatchSummary:
    """What :func:`summarize_patch` returns for one patch."""

    series: pd.DataFrame
    samples: pd.DataFrame
    info: dict
    scl: pd.DataFrame | None = None  # S2: pixel-dates per group and scene class (:func:`scl_counts`)


#: Columns of :func:`scl_counts` (before the identity columns a collection adds).
SCL_COUNT_COLUMNS: tuple[str, ...] = ("group", "scl", "n")


def scl_counts(scl: np.ndarray, groups: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Pixel-dates per pixel group and SCL value of one Sentinel-2 patch: ``scl`` ``(time, y, x)``, ``groups``
    boolean ``(y, x)`` masks (:func:`pixel_groups`). Long table ``group, scl, n``, one row per value
    present (int64 counts; empty groups have no rows)."""
    a = np.asarray(scl).astype("int64", copy=False)
    rows = []
    for g, m in groups.items():
        if not m.any():
            continue
        v = a[:, m].ravel()
        if v.size and 0 <= v.min() and v.max() < 256:  # SCL codes: a histogram, faster than sorting
            n = np.bincount(v, minlength=256)
            values = np.flatnonzero(n)
            n = n[values]
        else:
            values, n = np.unique(v, return_counts=True)
        rows.append(pd.DataFrame({"group": _cat([g] * values.size, GROUPS), "scl": values, "n": n}))
    if not rows:
        return pd.DataFrame(
            {"group": _cat([], GROUPS), "scl": np.zeros(0, "int64"), "n": np.zeros(0, "int64")}
        )
    return pd.concat(rows, ignore_index=True).astype({"scl": "int64", "n": "int64"})


def scl_shares(scl: pd.DataFrame, bad_classes: Iterable[int] | None = None) -> pd.DataFrame:
    """What each scene class holds of each pixel group, from the ``scl`` table of :func:`collect_signatures`
    (or :func:`scl_counts`): one row per SCL value present, with its ``name``, whether it is ``unusable``
    under ``bad_classes`` (:func:`schema.scl_usable`; default the reference's rule) and, per group, the share
    (%) of the group's pixel-dates it holds, pooled over every patch; the last row, ``all unusable``, sums
    the unusable values. A group without pixels is NaN."""
    names = {**schema.SCL_CLASSES, schema.SCL_UNKNOWN: "unknown quality"}
    if scl.empty:  # no Sentinel-2 patch
        return pd.DataFrame(columns=["name", "unusable", *GROUPS], index=pd.Index([], name="scl"))
    wide = scl.pivot_table(index="scl", columns="group", values="n", aggfunc="sum", observed=False)
    wide = wide.reindex(columns=list(GROUPS)).fillna(0.0)
    totals = wide.sum(axis=0).replace(0, np.nan)
    pct = 100 * wide / totals
    unusable = ~schema.scl_usable(pct.index.to_numpy(), bad_classes)
    out = pd.DataFrame(
        {"name": [names.get(int(c), "not an SCL class") for c in pct.index], "unusable": unusable},
        index=pct.index,
    )
    out = pd.concat([out, pct], axis=1)
    sums = {g: [float(pct.loc[unusable, g].sum()) if pd.notna(totals[g]) else np.nan] for g in GROUPS}
    total = pd.DataFrame({"name": ["all unusable"], "unusable": [True], **sums}, index=["all"])
    out.index = out.index.map(str)
    return pd.concat([out, total]).rename_axis("scl")


def summarize_patch(
    path: str | Path,
    *,
    ring_px: int = 5,
    gap_px: int = 0,
    fallback_date=None,
    max_background_px: int = 250,
    max_landslide_px: int = 1000,
    seed: int = 0,
    identity: bool = True,
    bad_classes: Iterable[int] | None = None,
) -> PatchSummary:
    """Open one patch and compute its signature, its pixel-change sample and a row of facts about it.

    - ``series``: the long table of :func:`patch_signature`;
    - ``samples``: per group, up to ``max_landslide_px`` landslide pixels and up to ``max_background_px``
      ring and rest pixels each (drawn at random among the pixels with a valid change, reproducibly from
      ``seed`` and the file name), with their change per feature, their slope and a ``weight`` = valid
      pixels of the group / pixels drawn (so weighted statistics stand for every pixel); empty when the
      patch has no pre→post split;
      both start with the columns ``key, sensor, region, annotated`` unless ``identity`` is False;
    - ``info``: key, sensor, region, annotated, events (``n_events``, ``n_undated_events``), the primary
      event date and its source, its position (``event_position``), indices and their source, group
      sizes, number of dates without any usable pixel;
    - ``scl`` (Sentinel-2): pixel-dates per group and scene class (:func:`scl_counts`).

    Sentinel-2 pixels of the SCL classes ``bad_classes`` (default the reference's rule) and 255 are masked
    (:func:`cloud_mask`). Raw Sentinel-2 files are harmonised on read (:func:`s12ls_utils.io.open_patch`).
    """
    path = Path(path)
    name = schema.parse_filename(path)
    with NETCDF_LOCK:  # netCDF-C/HDF5 are not thread-safe; load=True reads everything and closes the file
        ds = open_patch(path, load=True)
    try:
        attrs = _patch_attrs(ds, path)
        times = ds["time"].values
        al = _align_attrs(times, attrs, fallback_date)
        arrs = _s2_arrays(ds, bad_classes=bad_classes) if name.sensor == "s2" else _s1_arrays(ds)
        scl = _yx(ds["SCL"]).values if "SCL" in ds else None
        mask = patch_mask(ds).astype(bool) if "MASK" in ds else None
        slope = slope_deg(ds["DEM"]) if "DEM" in ds else None
    finally:
        ds.close()
    if mask is None:
        mask = np.zeros((schema.PATCH_SIZE, schema.PATCH_SIZE), dtype=bool)
    groups = pixel_groups(mask, ring_px=ring_px, gap_px=gap_px)
    fnames = list(arrs)
    n_t = len(times)

    # --- time series: per group, per feature, per step ---------------------------------------------
    present = [g for g in GROUPS if groups[g].any()]
    rows = []
    for g in present:
        gm = groups[g]
        stack = np.stack([arrs[f][:, gm] for f in fnames])  # (F, T, n_px)
        (q25, q50, q75), n_valid = _nanquantiles(stack, [0.25, 0.5, 0.75])
        rows.append(
            pd.DataFrame(
                {
                    "group": _cat([g] * (len(fnames) * n_t), GROUPS),
                    "feature": _cat(np.repeat(fnames, n_t), ALL_FEATURES),
                    "t": np.tile(np.arange(n_t, dtype="int8"), len(fnames)),
                    "median": q50.ravel(),
                    "p25": q25.ravel(),
                    "p75": q75.ravel(),
                    "n_valid": n_valid.ravel().astype("int32"),
                    "n_px": np.int32(gm.sum()),
                }
            )
        )
    series = pd.concat(rows, ignore_index=True)
    t = series["t"].to_numpy()
    series.insert(1, "date", pd.DatetimeIndex(times)[t].as_unit("ns"))
    series.insert(2, "rel_day", al.rel_days[t].astype("float32"))
    series.insert(3, "phase", _cat(al.phase[t], PHASES))

    # --- pixel changes ---------------------------------------------------------------------------
    change = change_features(arrs, al.pre, al.post)
    parts = []
    if change is not None:
        rng = np.random.default_rng([seed, zlib.crc32(path.name.encode())])
        cstack = np.stack([change[f] for f in fnames])  # (F, y, x)
        has_value = np.isfinite(cstack).any(axis=0)
        for g in present:
            idx = np.flatnonzero(groups[g] & has_value)
            cap = max_landslide_px if g == "landslide" else max_background_px
            if idx.size == 0 or cap <= 0:
                continue
            pick = np.sort(rng.choice(idx, size=cap, replace=False)) if idx.size > cap else idx
            parts.append(
                pd.DataFrame(
                    {
                        "group": _cat([g] * pick.size, GROUPS),
                        "weight": np.full(pick.size, idx.size / pick.size, dtype="float32"),
                        "slope_deg": slope.ravel()[pick]
                        if slope is not None
                        else np.full(pick.size, np.nan, "float32"),
                    }
                    | {f: cstack[i].ravel()[pick] for i, f in enumerate(fnames)}
                )
            )
    if parts:
        samples = pd.concat(parts, ignore_index=True)
    else:
        samples = pd.DataFrame(
            {
                "group": _cat([], GROUPS),
                "weight": np.zeros(0, "float32"),
                "slope_deg": np.zeros(0, "float32"),
            }
            | {f: np.zeros(0, "float32") for f in fnames}
        )
    scl_table = scl_counts(scl, {g: groups[g] for g in present}) if scl is not None else None
    if identity:
        ident = {"key": name.key, "sensor": name.sensor, "region": name.region}
        for df in (series, samples) if scl_table is None else (series, samples, scl_table):
            for i, (col, val) in enumerate(ident.items()):
                df.insert(i, col, pd.Categorical([val] * len(df)))
            df.insert(3, "annotated", bool(attrs.annotated))

    usable_any = np.isfinite(arrs[fnames[0]]).reshape(n_t, -1).any(axis=1)
    info = {
        "key": name.key,
        "sensor": name.sensor,
        "region": name.region,
        "path": str(path),
        "annotated": bool(attrs.annotated),
        "n_events": len(attrs.event_dates) + attrs.n_undated_events,
        "n_undated_events": attrs.n_undated_events,
        "event_date": pd.Timestamp(al.event_date) if al.event_date else pd.NaT,
        "event_source": al.event_source,
        "event_position": al.position,
        "pre_index": -1 if al.pre is None else al.pre,
        "post_index": -1 if al.post is None else al.post,
        "index_source": al.index_source,
        "has_change": change is not None,
        "n_landslide_px": int(groups["landslide"].sum()),
        "n_ring_px": int(groups["ring"].sum()),
        "n_rest_px": int(groups["rest"].sum()),
        "n_empty_dates": int((~usable_any).sum()),
        **{
            f"slope_{g}": float(np.median(slope[groups[g]]))
            if slope is not None and groups[g].any()
            else np.nan
            for g in GROUPS
        },
    }
    return PatchSummary(series, samples, info, scl_table)


def patch_signature(
    path: str | Path,
    *,
    ring_px: int = 5,
    gap_px: int = 0,
    fallback_date=None,
    bad_classes: Iterable[int] | None = None,
) -> pd.DataFrame:
    """The time series of one patch per pixel group and feature, in long format.

    Columns: ``key, sensor, region, annotated, group, date, rel_day`` (days relative to the event, NaN
    without one), ``phase`` (``pre``/``post``/``event``/``none``), ``feature, t`` (time index 0–14),
    ``median, p25, p75`` (over the group's valid pixels; NaN when none is valid, e.g. a fully cloudy
    date), ``n_valid`` (valid pixels) and ``n_px`` (pixels in the group). Empty groups (no landslide in
    a non-annotated patch) have no rows. See :func:`summarize_patch` for the parameters.
    """
    return summarize_patch(
        path,
        ring_px=ring_px,
        gap_px=gap_px,
        fallback_date=fallback_date,
        max_background_px=0,
        bad_classes=bad_classes,
    ).series


# --------------------------------------------------------------------------------------------------
# Many patches
# --------------------------------------------------------------------------------------------------
@dataclass
class SignatureSet:
    """What :func:`collect_signatures` returns."""

    series: pd.DataFrame  # long time series of every patch (see patch_signature)
    changes: pd.DataFrame  # sampled pixel changes (see summarize_patch), one column per feature
    patches: pd.DataFrame  # one row of facts per patch
    errors: list[dict] = field(default_factory=list)  # {"path", "reason"} of files that failed
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)
    # S2 pixel-dates per patch, group and scene class (see scl_counts; summarise with scl_shares)
    scl: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SCL_COUNT_COLUMNS)))


def _summarize_item(item: tuple[str, object], *, kwargs: dict) -> PatchSummary:
    """Task of one ``(path, fallback event date)`` item (the file is opened in the worker)."""
    path, fallback = item
    return summarize_patch(path, fallback_date=fallback, **kwargs)


def region_event_dates(catalog: pd.DataFrame) -> dict[str, pd.Timestamp]:
    """Median event date of the annotated patches of each region (pseudo date for non-annotated ones)."""
    ann = catalog[catalog["annotated"] & catalog["event_date"].notna()]
    if ann.empty:
        return {}
    return {
        str(r): pd.Timestamp(d).normalize() for r, d in ann.groupby("region")["event_date"].median().items()
    }


def collect_signatures(
    catalog: pd.DataFrame,
    data_dir: str | Path,
    *,
    sensors: Iterable[str] | str = schema.SENSORS,
    workers: int | None = None,
    scheduler="processes",
    progress: bool = True,
    ring_px: int = 5,
    gap_px: int = 0,
    max_background_px: int = 250,
    max_landslide_px: int = 1000,
    seed: int = 0,
    chunk_size: int = 8,
    bad_classes: Iterable[int] | None = None,
) -> SignatureSet:
    """Signatures and pixel-change samples of every catalogued patch of ``sensors``.

    Patches are read one at a time where ``scheduler`` runs them (:func:`~s12ls_utils.parallel.map_files`:
    ``workers`` local processes by default, ``"threads"``, ``"synchronous"`` = in this process, or a Dask
    cluster; the result is the same), ``chunk_size`` patches per task, and only their summaries are
    kept: memory grows with the number of patches times the sample caps (at most ``max_landslide_px`` +
    2 × ``max_background_px`` pixel rows of about 50 bytes per patch, plus about 200 time-series rows),
    never with the images. With the defaults the tables hold about 40 KB per patch (about 1.5 GB for the
    ~40,000 patches of the real dataset) and the calling process's peak grows by about 0.1 MB per patch
    (``benchmarks/results/scaling.md``); lower the caps for less. Files that fail are skipped with a
    warning and listed in ``errors`` (``path``, ``reason``). Non-annotated patches are placed on the
    time axis with their region's median event date (:func:`region_event_dates`). ``bad_classes`` are the
    SCL classes masked in Sentinel-2 (default the reference's rule; 255 always).

    Returns a :class:`SignatureSet`: ``series`` (the :func:`patch_signature` rows of every patch),
    ``changes`` (the sampled pixel changes, one column per feature of :data:`ALL_FEATURES`, NaN where the
    sensor does not measure it), ``patches`` (one row of facts per patch), ``scl`` (Sentinel-2
    pixel-dates per patch, group and scene class: :func:`scl_shares` summarises it), ``errors``,
    ``seconds``.
    """
    t0 = time.perf_counter()
    check_scheduler(scheduler)
    sensors = schema.check_sensors(sensors)
    bad_classes = schema.scl_bad_classes(bad_classes)
    root = Path(data_dir)
    sel = catalog[catalog["sensor"].isin(sensors)].sort_values(["sensor", "region", "patch_id"])
    fallback = region_event_dates(catalog)
    items = [
        (str(root / p), None if ann else fallback.get(str(r)))
        for p, ann, r in zip(sel["path"], sel["annotated"], sel["region"], strict=True)
    ]
    kwargs = dict(
        ring_px=ring_px,
        gap_px=gap_px,
        max_background_px=max_background_px,
        max_landslide_px=max_landslide_px,
        seed=seed,
        identity=False,
        bad_classes=bad_classes,
    )
    res = map_files(
        functools.partial(_summarize_item, kwargs=kwargs),
        items,
        scheduler=scheduler,
        workers=workers,
        desc="signatures",
        unit="patch",
        progress=progress,
        chunk_size=chunk_size,
    )
    errors = [{"path": f.item[0], "reason": f.reason} for f in res.failures]
    if errors:
        log.warning(
            "signatures: %d of %d patch(es) could not be read and are left out:\n%s",
            len(errors),
            len(items),
            "\n".join(f"  {e['path']}: {e['reason']}" for e in errors),
        )
    parts = [r for r in res.results if r is not None]
    infos = pd.DataFrame([s.info for s in parts])
    series = _stack([s.series for s in parts], infos)
    changes = _stack([s.samples for s in parts], infos)
    for f in ALL_FEATURES:  # one column per feature, NaN where the sensor does not measure it
        if f not in changes:
            changes[f] = np.full(len(changes), np.nan, dtype="float32")
    changes = changes[[c for c in changes.columns if c not in ALL_FEATURES] + list(ALL_FEATURES)]
    with_scl = [i for i, s in enumerate(parts) if s.scl is not None]
    scl = _stack([parts[i].scl for i in with_scl], infos.iloc[with_scl].reset_index(drop=True))
    settings = {k: v for k, v in kwargs.items() if k not in ("identity", "bad_classes")}
    return SignatureSet(
        series=series,
        changes=changes,
        patches=infos,
        errors=errors,
        seconds=time.perf_counter() - t0,
        settings={"sensors": list(sensors), **settings, "bad_classes": sorted(bad_classes)},
        scl=scl,
    )


def _stack(frames: list[pd.DataFrame], infos: pd.DataFrame) -> pd.DataFrame:
    """Concatenate per-patch frames and add ``key, sensor, region, annotated`` from the patch rows
    (categorical codes: a few bytes per row however many patches there are)."""
    cols = ["key", "sensor", "region", "annotated"]
    if not frames:
        return pd.DataFrame(
            {c: pd.Series([], dtype="category" if c != "annotated" else "bool") for c in cols}
        )
    lengths = np.array([len(f) for f in frames])
    out = pd.concat(frames, ignore_index=True)
    patch = np.repeat(np.arange(len(frames)), lengths)
    for i, c in enumerate(cols):
        vals = infos[c].to_numpy()
        if c == "annotated":
            out.insert(i, c, vals.astype(bool)[patch])
        else:
            cats, codes = np.unique(vals.astype(str), return_inverse=True)
            out.insert(i, c, pd.Categorical.from_codes(codes[patch], categories=cats))
    return out


# --------------------------------------------------------------------------------------------------
# Summaries across patches
# --------------------------------------------------------------------------------------------------
def _day_bins(rel: np.ndarray, bin_days: float) -> np.ndarray:
    """Bin centres that never straddle the event: (0, w] → w/2, [−w, 0) → −w/2, day 0 → 0."""
    b = np.where(rel > 0, np.ceil(rel / bin_days), np.where(rel < 0, np.floor(rel / bin_days), 0))
    return np.where(b > 0, (b - 0.5) * bin_days, np.where(b < 0, (b + 0.5) * bin_days, 0.0))


def aggregate_signatures(
    series: pd.DataFrame,
    *,
    per_region: bool = False,
    bin_days: float = 10.0,
    min_patches: int = 5,
    min_valid_frac: float = 0.2,
) -> pd.DataFrame:
    """Median and inter-quartile range across patches of the per-patch group medians.

    Dates are binned on the relative-day axis (``bin_days`` wide, never straddling day 0; the ``rel_day``
    column is the bin centre). A patch's value on a date counts when at least ``min_valid_frac`` of the
    group's pixels (and at least one) are valid; bins with fewer than ``min_patches`` patches are dropped.
    Columns: ``sensor, region, feature, group, rel_day, median, p25, p75, n_patches``; ``region`` is
    ``"all"`` for the pooled rows, and the per-region rows are added with ``per_region``.
    """
    s = series[np.isfinite(series["rel_day"]) & series["median"].notna()]
    s = s[s["n_valid"] >= np.maximum(1, np.ceil(min_valid_frac * s["n_px"]))]
    s = s.assign(rel_day=_day_bins(s["rel_day"].to_numpy(dtype="float64"), bin_days))
    cols = ["sensor", "feature", "group", "rel_day"]
    # one value per patch and bin (a patch may have two dates in a bin)
    per_patch = s.groupby([*cols, "region", "key"], observed=True)["median"].mean().reset_index()

    def agg(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        g = df.groupby(keys, observed=True)["median"]
        out = pd.DataFrame(
            {
                "median": g.median(),
                "p25": g.quantile(0.25),
                "p75": g.quantile(0.75),
                "n_patches": g.size(),
            }
        ).reset_index()
        return out[out["n_patches"] >= min_patches]

    frames = [agg(per_patch, cols).assign(region="all")]
    if per_region:
        frames.append(agg(per_patch, [*cols, "region"]))
    out = pd.concat(frames, ignore_index=True)
    for c in ("sensor", "feature", "group", "region"):
        out[c] = out[c].astype(str)
    order = ["sensor", "region", "feature", "group", "rel_day", "median", "p25", "p75", "n_patches"]
    return out[order].sort_values(["sensor", "region", "feature", "group", "rel_day"]).reset_index(drop=True)


def change_summary(changes: pd.DataFrame, features: Sequence[str] | None = None) -> pd.DataFrame:
    """Weighted median pre→post change per sensor, feature and group (the sampled pixels stand for all).

    Columns: ``sensor, feature, group, median_change, n_pixels`` (pixels drawn), ``n_patches``.
    """
    features = list(features or ALL_FEATURES)
    rows = []
    for (sensor, group), df in changes.groupby(["sensor", "group"], observed=True):
        for f in features:
            if f not in df or df[f].isna().all():
                continue
            ok = df[f].notna()
            rows.append(
                {
                    "sensor": str(sensor),
                    "feature": f,
                    "group": str(group),
                    "median_change": _weighted_median(
                        df.loc[ok, f].to_numpy(), df.loc[ok, "weight"].to_numpy()
                    ),
                    "n_pixels": int(ok.sum()),
                    "n_patches": int(df.loc[ok, "key"].nunique()),
                }
            )
    return pd.DataFrame(
        rows, columns=["sensor", "feature", "group", "median_change", "n_pixels", "n_patches"]
    )


def _auc(y: np.ndarray, score: np.ndarray, weight: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, score, sample_weight=weight))


#: The direction in which each change feature is expected to separate landslides, fixed from physics before
#: looking at any data: vegetation indices and the VH/VV ratio fall (vegetation and its volume scattering
#: replaced by bare ground), the bare-soil index and brightness rise, backscatter changes in either direction
#: (roughness, moisture and geometry), so its magnitude is used; landslides sit on steeper slopes.
PHYSICS_DIRECTION: dict[str, str] = {
    "NDVI": "drop",
    "NDMI": "drop",
    "NBR": "drop",
    "BSI": "rise",
    "brightness": "rise",
    "VV_dB": "magnitude",
    "VH_dB": "magnitude",
    "VH_VV_dB": "drop",
    "slope_deg": "rise",
}


def _directed(v: np.ndarray, direction: str) -> np.ndarray:
    if direction == "rise":
        return v
    if direction == "drop":
        return -v
    if direction == "magnitude":
        return np.abs(v)
    raise ValueError(f"direction must be rise, drop or magnitude, not {direction!r}")


def _patch_auc(score: np.ndarray, y: np.ndarray, w: np.ndarray, patch: np.ndarray, n_patch: int):
    """A weighted-AUC function of per-patch multipliers, for fixed scores, labels, weights and patches.

    The weighted AUC is ``Σ_pos Σ_neg w_i w_j [s_j < s_i]`` (ties between a positive and a negative count one
    half, as scikit-learn) over ``(Σ_pos w)(Σ_neg w)``. With each weight multiplied by its patch's count ``m``
    (a bootstrap replicate of :func:`~s12ls_utils.metrics.patch_resamples`), the numerator is ``m @ K @ m``
    for the patch × patch matrix ``K`` of the positives of one patch against the negatives of another, and
    the denominator ``(m @ w_pos)(m @ w_neg)``: ``K`` is built once (one sort, running sums over the sorted
    positives), and each call then costs ``O(n_patch²)`` instead of a pass over every pixel. ``auc(m)`` is NaN
    when either class weighs nothing; ``auc(np.ones(n_patch))`` is the AUC of the pixels as given.
    """
    from scipy import sparse

    y = y.astype(bool)
    order = np.argsort(score[y], kind="stable")  # the positives by score
    s_pos, w_pos, p_pos = score[y][order], w[y][order], patch[y][order]
    s_neg, w_neg, p_neg = score[~y], w[~y], patch[~y]
    # a negative counts wholly for the positives above it and half for those tied with it: half its weight
    # enters the running sum over the sorted positives where the tied ones start, half where they end
    lo = np.searchsorted(s_pos, s_neg, side="left")
    hi = np.searchsorted(s_pos, s_neg, side="right")
    pos_of_patch = sparse.csr_matrix((w_pos, (p_pos, np.arange(s_pos.size))), shape=(n_patch, s_pos.size))
    pair = np.zeros((n_patch, n_patch))
    step = max(1, 2_000_000 // (s_pos.size + 1))  # negative patches per block (a block holds ≤ 16 MB)
    for first in range(0, n_patch, step):
        cols = min(step, n_patch - first)
        in_block = (p_neg >= first) & (p_neg < first + cols)
        flat = np.r_[lo[in_block], hi[in_block]] * cols + np.tile(p_neg[in_block] - first, 2)
        half = np.tile(0.5 * w_neg[in_block], 2)
        below = np.bincount(flat, half, minlength=(s_pos.size + 1) * cols).reshape(-1, cols)
        pair[:, first : first + cols] = pos_of_patch @ np.cumsum(below, axis=0)[:-1]
    tot_pos = np.bincount(p_pos, w_pos, minlength=n_patch)
    tot_neg = np.bincount(p_neg, w_neg, minlength=n_patch)

    def auc(m: np.ndarray) -> float:
        m = np.asarray(m, dtype="float64")
        den = (m @ tot_pos) * (m @ tot_neg)
        return float(m @ pair @ m / den) if den > 0 else float("nan")

    return auc


def separability(
    changes: pd.DataFrame,
    features: Sequence[str] | None = None,
    *,
    background: Sequence[str] = ("ring", "rest"),
    by: str | Sequence[str] = "sensor",
    directions: Mapping[str, str] | None = None,
    n_boot: int = 0,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """How well each pre→post change feature separates landslide from background pixels: ROC AUC.

    For each ``by`` group (default: sensor; ``("sensor", "region")`` for a per-region breakdown) and feature,
    the sampled pixels of the ``landslide`` group are the positives and those of the ``background`` groups
    the negatives, weighted by their ``weight`` (capped samples stand for all pixels). The feature is taken
    in its ``direction``, fixed in advance (default :data:`PHYSICS_DIRECTION`: ``drop`` scores minus the
    change, ``rise`` the change, ``magnitude`` its absolute value), never chosen after looking, so an AUC
    below 0.5 says the physics expectation failed. ``auc_raw`` is the AUC of the change itself.
    ``auc_vs_ring`` is the same against the ring only (same terrain, no landslide).

    With ``n_boot`` > 0, ``auc_low``/``auc_high`` are a percentile interval over **patches**: each replicate
    draws the group's patches with replacement (a patch's pixels move together, as they are not independent)
    and recomputes the weighted AUC. Sorted by ``auc``, highest first; ``rank`` counts within each group.
    """
    by = [by] if isinstance(by, str) else list(by)
    features = list(features or ALL_FEATURES)
    directions = dict(PHYSICS_DIRECTION if directions is None else directions)
    rng = np.random.default_rng(seed)  # one stream for every group and feature
    rows = []
    for key, df in changes.groupby(by, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        grp = df["group"].astype(str).to_numpy()
        is_ls = grp == "landslide"
        is_bg = np.isin(grp, list(background))
        is_ring = grp == "ring"
        w = df["weight"].to_numpy(dtype="float64")
        patch = pd.factorize(df["key"].astype(str))[0]
        n_patch = int(patch.max()) + 1 if len(patch) else 0
        for f in features:
            if f not in df or df[f].isna().all():
                continue
            direction = directions.get(f, "rise")
            v = df[f].to_numpy(dtype="float64")
            ok = np.isfinite(v)
            sel = ok & (is_ls | is_bg)
            raw = _auc(is_ls[sel], v[sel], w[sel])
            if not np.isfinite(raw):
                continue
            dv = _directed(v, direction)
            auc_fn = _patch_auc(dv[sel], is_ls[sel], w[sel], patch[sel], n_patch)
            auc = auc_fn(np.ones(n_patch))
            sel_r = ok & (is_ls | is_ring)
            vs_ring = _auc(is_ls[sel_r], dv[sel_r], w[sel_r])
            low = high = float("nan")
            if n_boot > 0 and n_patch > 1:
                reps = [auc_fn(m) for m in patch_resamples(n_patch, n_boot, rng)]
                low, high = percentile_interval(reps, level)
            rows.append(
                {
                    **dict(zip(by, (str(k) for k in key), strict=True)),
                    "feature": f,
                    "auc": auc,
                    "auc_low": low,
                    "auc_high": high,
                    "direction": direction,
                    "auc_raw": raw,
                    "auc_vs_ring": vs_ring,
                    "median_change_landslide": _weighted_median(v[ok & is_ls], w[ok & is_ls]),
                    "median_change_background": _weighted_median(v[ok & is_bg], w[ok & is_bg]),
                    "n_landslide": int((ok & is_ls).sum()),
                    "n_background": int((ok & is_bg).sum()),
                    "n_patches": int(df.loc[ok & is_ls, "key"].nunique()),
                }
            )
    cols = [
        *by,
        "feature",
        "auc",
        "auc_low",
        "auc_high",
        "direction",
        "auc_raw",
        "auc_vs_ring",
        "median_change_landslide",
        "median_change_background",
        "n_landslide",
        "n_background",
        "n_patches",
    ]
    out = pd.DataFrame(rows, columns=cols)
    if out.empty:
        return out.assign(rank=pd.Series([], dtype="int64"))
    out = out.sort_values("auc", ascending=False, kind="stable").reset_index(drop=True)
    out["rank"] = out.groupby(by).cumcount() + 1
    return out


def pick_gallery(catalog: pd.DataFrame, n: int = 3, sensor: str = "s2") -> list[str]:
    """Location keys for a before/after gallery: annotated ``sensor`` patches with the event inside the
    series and a patch of another sensor at the same location with the event inside its series too (when
    there are such), largest landslide area first, one per region while regions last. Empty when the
    catalog has no annotated ``sensor`` patch with its event inside the series."""
    schema.check_sensor(sensor)
    ok = catalog["annotated"] & catalog["event_in_series"]
    own = catalog[(catalog["sensor"] == sensor) & ok]
    others = catalog.loc[(catalog["sensor"] != sensor) & ok, "key"].astype(str)
    cand = own[own["key"].astype(str).isin(set(others))]
    if cand.empty:
        cand = own
    cand = cand.sort_values(["n_positive", "key"], ascending=[False, True])
    picked: list[str] = []
    seen: set[str] = set()
    for _, row in cand.iterrows():  # first pass: one per region
        if row["region"] not in seen:
            picked.append(str(row["key"]))
            seen.add(row["region"])
        if len(picked) == n:
            return picked
    for k in cand["key"].astype(str):
        if k not in picked:
            picked.append(k)
        if len(picked) == n:
            break
    return picked


# --------------------------------------------------------------------------------------------------
# The figures chapter 02 quotes
# --------------------------------------------------------------------------------------------------
def dates_table(ds: xr.Dataset, alignment: EventAlignment, usable: np.ndarray) -> pd.DataFrame:
    """One patch's dates: the date, days from the event, phase (pre/post) and the usable pixels in percent
    (``usable``: :func:`usable_fraction`), one row per time step."""
    return pd.DataFrame(
        {
            "date": pd.DatetimeIndex(ds["time"].values).date,
            "days from event": alignment.rel_days.astype(int),
            "phase": alignment.phase,
            "usable pixels (%)": (100 * np.asarray(usable)).round(1),
        }
    ).rename_axis("time step")


def example_facts(alignment: EventAlignment, groups: Mapping[str, np.ndarray]) -> dict:
    """What the text says of one patch: its event date, the last step before and the first after it, and
    the pixels of its landslide and ring groups (:func:`pixel_groups`)."""
    return {
        "example_event_date": str(alignment.event_date),
        "example_pre_index": alignment.pre,
        "example_post_index": alignment.post,
        "example_landslide_px": int(groups["landslide"].sum()),
        "example_ring_px": int(groups["ring"].sum()),
    }


#: The rows of :func:`case_table`: a column of the ``patches`` table of :func:`collect_signatures` and what
#: the row counts.
_CASES = {
    "patches": "patches",
    "annotated": "annotated",
    "has_change": "with dates before and after the event",
    "outside": "event outside the series (annotated or placed by region)",
    "event_date": "before/after steps derived from the event date",
    "region": "not annotated, placed with their region's event date",
    "n_empty_dates": "dates without a usable pixel",
}


def case_table(patches: pd.DataFrame) -> pd.DataFrame:
    """How many patches of each sensor fall in each awkward case, from the ``patches`` table of
    :func:`collect_signatures`: one row per case (readable labels), one column per sensor present."""
    cases = pd.DataFrame(
        {
            "sensor": patches["sensor"].astype(str),
            "patches": 1,
            "annotated": patches["annotated"].astype(int),
            "has_change": patches["has_change"].astype(int),
            "outside": (patches["index_source"] == "outside").astype(int),
            "event_date": (patches["index_source"] == "event_date").astype(int),
            "region": (patches["event_source"] == "region").astype(int),
            "n_empty_dates": patches["n_empty_dates"].astype(int),
        }
    )
    present = [s for s in ("s2", "s1asc", "s1dsc") if s in set(cases["sensor"])]
    table = cases.groupby("sensor").sum().reindex(present).T.rename(index=_CASES)
    table.columns.name = None
    return table.rename_axis("case")


def collection_facts(sigs: SignatureSet, bad_classes: Iterable[int] | None = None) -> dict:
    """The figures of a :func:`collect_signatures` pass that chapter 02 quotes: patches per sensor
    (``n_patches_<sensor>``, ``n_patches_total``), with a before/after split, annotated with the event outside
    the series, not annotated (and of those, outside the series with their region's date), S2 dates without
    a usable pixel, failed files and sampled pixel changes; what scene class 2 (dark area) holds of each
    pixel group's S2 pixel-dates and what all unusable classes (``bad_classes``) hold of the landslide
    pixel-dates, in percent (:func:`scl_shares`; NaN without S2); and the median slope of each group."""
    p = sigs.patches
    outside = p["index_source"] == "outside"
    shares = scl_shares(sigs.scl, bad_classes)

    def pct(row: str, group: str) -> float:
        return float(shares.at[row, group]) if row in shares.index else float("nan")

    return {
        "n_patches_total": len(p),
        **{f"n_patches_{s}": int((p["sensor"] == s).sum()) for s in schema.SENSORS},
        "n_patches_with_change": int(p["has_change"].sum()),
        "n_event_outside_annotated": int((p["annotated"] & outside).sum()),
        "n_region_date_outside": int((~p["annotated"] & outside).sum()),
        "n_non_annotated": int((~p["annotated"]).sum()),
        "n_empty_s2_dates": int(p.loc[p["sensor"] == "s2", "n_empty_dates"].sum()),
        "n_errors": len(sigs.errors),
        "n_pixel_samples": len(sigs.changes),
        **{f"dark_area_{g}_pct": pct("2", g) for g in GROUPS},
        "unusable_landslide_pct": pct("all", "landslide"),
        **{f"slope_{g}_deg": float(p[f"slope_{g}"].median()) for g in GROUPS},
    }


def change_table(changes: pd.DataFrame) -> pd.DataFrame:
    """The median pre→post change (:func:`change_summary`) per sensor and feature (rows) and pixel group
    (columns ``landslide``, ``ring``, ``rest``)."""
    summary = change_summary(changes)
    table = summary.pivot_table(
        index=["sensor", "feature"], columns="group", values="median_change", sort=False
    )
    table = table.reindex(columns=list(GROUPS))
    table.columns.name = None
    return table


def change_facts(table: pd.DataFrame) -> dict:
    """The changes chapter 02 quotes from a :func:`change_table`: NDVI in every group (Sentinel-2) and VH in
    the landslides and the ring (Sentinel-1 ascending); NaN where the data has no such sensor."""

    def get(sensor: str, feature: str, group: str) -> float:
        ok = (sensor, feature) in table.index
        return float(table.loc[(sensor, feature), group]) if ok else float("nan")

    return {
        **{f"ndvi_change_{g}": get("s2", "NDVI", g) for g in GROUPS},
        **{f"vh_change_{g}_s1asc": get("s1asc", "VH_dB", g) for g in ("landslide", "ring")},
    }


def separability_facts(sep: pd.DataFrame, slope: pd.DataFrame) -> dict:
    """The separability figures chapter 02 quotes: per sensor, the leading feature of ``sep``
    (:func:`separability`, sorted by AUC) with its AUC and interval (``top_feature_<s>``, ``top_auc_<s>``,
    ``top_auc_<s>_low``/``_high``; ``none`` and NaN for a sensor without data), the best S2 vegetation-loss
    AUC, and the AUC of slope alone (``slope``: :func:`separability` of ``slope_deg``)."""
    out: dict = {}
    for s in schema.SENSORS:
        rows = sep[sep["sensor"] == s]
        top = rows.iloc[0] if len(rows) else None
        out[f"top_feature_{s}"] = top["feature"] if top is not None else "none"
        for name, col in (("", "auc"), ("_low", "auc_low"), ("_high", "auc_high")):
            out[f"top_auc_{s}{name}"] = float(top[col]) if top is not None else float("nan")
    veg = sep[(sep["sensor"] == "s2") & sep["feature"].isin(["NDVI", "NBR", "NDMI"])]
    out["best_vegetation_auc"] = float(veg["auc"].max()) if len(veg) else float("nan")
    out["slope_auc"] = float(slope["auc"].max()) if len(slope) else float("nan")
    return out


def leading_by_region(
    changes: pd.DataFrame, sep: pd.DataFrame, *, n_boot: int = 0, seed: int = 0
) -> pd.DataFrame:
    """The AUC per sensor and region (:func:`separability` by ``("sensor", "region")``) of each sensor's
    leading feature in ``sep``, with its interval over patches; sorted by sensor and region."""
    leading = sep.drop_duplicates("sensor").set_index("sensor")["feature"]  # sep is sorted by AUC
    by_region = separability(changes, by=("sensor", "region"), n_boot=n_boot, seed=seed)
    keep = by_region["feature"].to_numpy() == by_region["sensor"].map(leading).to_numpy()
    cols = ["sensor", "region", "feature", "auc", "auc_low", "auc_high", "n_patches"]
    return by_region.loc[keep, cols].sort_values(["sensor", "region"]).reset_index(drop=True)
