"""Selection and splits: filters, the published split, a leak-free blocked split, the tile graph, leakage.

The settings of a task (:class:`s12ls_utils.tasks.TaskConfig`, read from a preset or a file with
:func:`s12ls_utils.tasks.load_config`) say which patches it keeps and how they are split; this module does
both. Writing and reading task folders and their normalisation statistics is :mod:`s12ls_utils.tasks`,
which builds on this module (never the reverse).

1. **Filter** (:func:`select`): per sensor, file-name patterns, annotated / not annotated, the lowest
   ``date_confidence`` value of a patch (non-annotated patches count as 1.0), the number of landslide pixels, an
   optional annotated ratio, as the reference pipeline does, and (ours) the published low-quality list.
2. **Split**, by ``method``:

   - ``"reference"``: the published algorithm, reproduced exactly (:func:`reference_split`): random,
     stratified by coverage class × first ``_`` token of the file name (``usa_alaska`` → ``usa``). It ignores
     geography: on the real lattice most test tiles touch a training tile.
   - ``"blocked"`` (ours, :func:`blocked_split`): whole blocks of touching tiles, balanced in every scope
     (tile shares, landslide pixels per tile, annotated share), then a one-tile buffer; with ``test_regions``
     a region hold-out.

   The coverage class is the patch's positive-pixel ratio binned at the 25th and 75th percentiles
   (:func:`coverage_classes`).
3. **Leakage**: :func:`tile_leakage` counts, from tile positions alone, the tiles of one split that touch
   (8-neighbours) or overlap a tile of another; :func:`leakage` counts the patches that overlap or share an
   annotation with a patch of another split.

Example
-------
>>> from s12ls_utils import splits, tasks
>>> result = splits.make_splits(catalog, tasks.load_config("S12LS-LD"))  # doctest: +SKIP
>>> result.counts()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import schema

log = logging.getLogger(__name__)

#: The three splits, in order.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Side of a patch footprint on the ground (128 pixels of 10 m).
FOOTPRINT_M: float = schema.PATCH_SIZE * schema.PIXEL_SIZE_M
#: Split algorithms: the published one (:func:`reference_split`) and the blocked split of the real tile
#: lattice (:func:`blocked_split`).
METHODS: tuple[str, ...] = ("reference", "blocked")


def _settings(config):
    """``config`` if it is a task's settings (:class:`~s12ls_utils.tasks.TaskConfig`), else a TypeError."""
    if not hasattr(config, "satellites"):
        raise TypeError(
            f"expected a TaskConfig, not {config!r}: read a preset or file with "
            "s12ls_utils.tasks.load_config(name) first"
        )
    return config


# --------------------------------------------------------------------------------------------------
# Filtering
# --------------------------------------------------------------------------------------------------
def _priority(seed: int, keys: Iterable[str]) -> np.ndarray:
    """A seeded pseudo-random rank per key that does not depend on the sensor (same key, same rank)."""
    return np.array(
        [int.from_bytes(hashlib.sha256(f"{seed}:{k}".encode()).digest()[:8], "big") for k in keys],
        dtype="uint64",
    )


def select(catalog: pd.DataFrame, config) -> dict[str, pd.DataFrame]:
    """The catalog rows each sensor of the task keeps, as the reference filters them.

    Per sensor of ``config.satellites``: a file is dropped when its lower-case file name contains one of
    ``exclude_patterns``, or when ``include_patterns`` are given and it contains none; with
    ``exclude_low_quality`` when its location is on the published low-quality list
    (:func:`s12ls_utils.reference.low_quality_ids`, which the published tasks do not apply); then by
    ``annotated_only`` / ``non_annotated_only``; by ``min_confidence`` / ``max_confidence`` on the patch's
    confidence (the lowest of its distinct ``date_confidence`` values, the catalog's ``date_confidence``;
    0.0 for an annotated patch without one; 1.0
    for a non-annotated patch); by ``min_annotated_pixel`` on the landslide pixels of ``MASK`` (also for
    non-annotated patches, as in the reference). With ``annotated_ratio`` the larger class is subsampled as
    the reference does (at most ``int(n·ratio)`` annotated and ``int(n·(1−ratio))`` non-annotated of the
    ``n`` filtered files), choosing by a seeded rank of the location key so that every sensor keeps the
    same locations.

    Returns ``{sensor: DataFrame}`` (catalog columns plus ``confidence``), sorted by region and patch id.
    """
    config = _settings(config)
    out: dict[str, pd.DataFrame] = {}
    for sensor in config.satellites:
        df = catalog[catalog["sensor"] == sensor].copy()
        names = df["path"].astype(str).map(os.path.basename).str.lower()
        keep = np.ones(len(df), dtype=bool)
        for pat in config.exclude_patterns:
            keep &= ~names.str.contains(pat.lower(), regex=False).to_numpy()
        if config.include_patterns:
            hit = np.zeros(len(df), dtype=bool)
            for pat in config.include_patterns:
                hit |= names.str.contains(pat.lower(), regex=False).to_numpy()
            keep &= hit
        if config.exclude_low_quality:
            from . import reference

            keep &= ~df["key"].astype(str).isin(reference.low_quality_ids()).to_numpy()
        annotated = df["annotated"].to_numpy(dtype=bool)
        if config.annotated_only:
            keep &= annotated
        if config.non_annotated_only:
            keep &= ~annotated
        conf = np.where(annotated, df["date_confidence"].astype("float64").fillna(0.0).to_numpy(), 1.0)
        df["confidence"] = conf
        if config.min_confidence is not None:
            keep &= conf >= config.min_confidence
        if config.max_confidence is not None:
            keep &= conf <= config.max_confidence
        if config.min_annotated_pixel is not None:
            keep &= df["n_positive"].to_numpy() >= config.min_annotated_pixel
        df = df[keep]
        if config.annotated_ratio is not None and len(df):
            n = len(df)
            want = {True: int(n * config.annotated_ratio), False: int(n * (1 - config.annotated_ratio))}
            parts = []
            for flag in (True, False):
                part = df[df["annotated"] == flag]
                if len(part) > want[flag]:
                    rank = _priority(config.seed, part["key"].astype(str))
                    part = part.iloc[np.sort(np.argsort(rank, kind="stable")[: want[flag]])]
                parts.append(part)
            df = pd.concat(parts)
        out[sensor] = df.sort_values(["region", "patch_id"], kind="stable").reset_index(drop=True)
    return out


# --------------------------------------------------------------------------------------------------
# Coverage classes, leakage
# --------------------------------------------------------------------------------------------------
def coverage_classes(df: pd.DataFrame) -> pd.Series:
    """Coverage class per patch: 0 / 1 / 2 for a positive-pixel ratio ≤ p25, ≤ p75, above (reference).

    The percentiles are those of the given patches' ``positive_fraction`` (or ``n_positive`` / 128²).
    """
    if "positive_fraction" in df:
        ratio = df["positive_fraction"].to_numpy(dtype="float64")
    else:
        ratio = df["n_positive"].to_numpy(dtype="float64") / schema.PATCH_SIZE**2
    if ratio.size == 0:
        return pd.Series([], index=df.index, dtype="int64", name="coverage_class")
    return pd.Series(_coverage_class(ratio).astype("int64"), index=df.index, name="coverage_class")


def _coverage_class(ratio: np.ndarray) -> np.ndarray:
    """The reference's rule: 0 / 1 / 2 for a ratio ≤ its 25th percentile, ≤ its 75th, above."""
    p25, p75 = np.percentile(ratio, [25, 75])
    return np.where(ratio <= p25, 0, np.where(ratio <= p75, 1, 2))


def _require(df: pd.DataFrame, columns: Sequence[str], hint: str) -> None:
    """A KeyError naming the columns ``df`` lacks (``hint`` says where such rows come from)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} are needed ({hint}); the frame has {list(df.columns)}")


def _ann_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """Pairs of location keys (``key_a < key_b``) whose rows list a common ``ann_ids`` entry: two tiles that
    show the same mapped landslide. Empty when ``frame`` has no ``ann_ids`` column."""
    if "ann_ids" not in frame.columns:
        return pd.DataFrame({"key_a": [], "key_b": []}, dtype=object)
    ids = (
        frame[["key", "ann_ids"]]
        .astype({"key": str})
        .assign(ann=frame["ann_ids"].fillna("").astype(str).str.split(","))
    )
    ids = ids.explode("ann").assign(ann=lambda d: d["ann"].str.strip())
    ids = ids[ids["ann"] != ""].drop_duplicates(["key", "ann"])
    pairs = ids.merge(ids, on="ann", suffixes=("_a", "_b"))
    pairs = pairs[pairs["key_a"] < pairs["key_b"]]
    return pairs[["key_a", "key_b"]].drop_duplicates().sort_values(["key_a", "key_b"]).reset_index(drop=True)


def _has_key(frame: pd.DataFrame, keys) -> np.ndarray:
    """Boolean mask of the rows of ``frame`` whose ``key`` is among ``keys`` (fast for large tables)."""
    return np.isin(frame["key"].to_numpy(dtype=str), np.asarray(list(keys), dtype=str))


def _assignment(splits) -> dict[str, str]:
    """``{key: split}`` from a Series/Mapping key→split or a ``{"train": [entries or keys], …}`` mapping."""
    if isinstance(splits, Mapping) and set(splits) <= set(SPLITS) and splits:
        out = {}
        for name, items in splits.items():
            for it in items:
                key = it.get("id") if isinstance(it, Mapping) else it
                out[str(key)] = name
        return out
    if isinstance(splits, pd.Series | Mapping):  # key → split
        return {str(k): str(v) for k, v in splits.items()}
    raise TypeError(
        "splits must be a Series key → split, or a mapping {'train': [...], 'val': ..., 'test': ...}"
    )


def leaking_pairs(splits, catalog: pd.DataFrame) -> pd.DataFrame:
    """Pairs of patches in *different* splits whose footprints overlap or that share an ``ann_id``.

    ``splits`` is a Series or mapping key → split, or a ``{"train": [entries or keys], …}`` mapping (as in
    ``splits.json``). Columns: key_a, split_a, key_b, split_b, overlap, ann_id.
    """
    assign = _assignment(splits)
    rows = catalog[_has_key(catalog, assign)]
    near = tile_pairs(rows, reach_m=FOOTPRINT_M)
    near = near.loc[near["overlap"], ["key_a", "key_b", "overlap"]]
    pairs = near.merge(_ann_pairs(rows).assign(ann_id=True), on=["key_a", "key_b"], how="outer")
    pairs = pairs.fillna({"overlap": False, "ann_id": False}).astype({"overlap": bool, "ann_id": bool})
    pairs["split_a"] = pairs["key_a"].map(assign)
    pairs["split_b"] = pairs["key_b"].map(assign)
    pairs = pairs[pairs["split_a"] != pairs["split_b"]].sort_values(["key_a", "key_b"])
    cols = ["key_a", "split_a", "key_b", "split_b", "overlap", "ann_id"]
    return pairs[cols].reset_index(drop=True)


def leakage(splits, catalog: pd.DataFrame) -> dict[str, int]:
    """How many patches of one split overlap or share an annotation id with a patch of another.

    Returns ``{"test_vs_train": n, "val_vs_train": n, "test_vs_val": n}``: e.g. the number of *test*
    patches that overlap (footprint intersection) or share an ``ann_id`` with at least one *train* patch.
    A blocked split (:func:`blocked_split`) has 0 everywhere.
    """
    pairs = leaking_pairs(splits, catalog)
    out = {}
    for a, b in SPLIT_PAIRS:
        ab = (pairs["split_a"] == a) & (pairs["split_b"] == b)
        ba = (pairs["split_a"] == b) & (pairs["split_b"] == a)
        out[f"{a}_vs_{b}"] = len(set(pairs["key_a"][ab]) | set(pairs["key_b"][ba]))
    return out


# --------------------------------------------------------------------------------------------------
# Real geometry: tile adjacency, leakage between splits, blocked split, region hold-out
# --------------------------------------------------------------------------------------------------
#: Two tiles *touch* when their centres are at most this many tile widths apart in x and in y (the eight
#: neighbours of a tile on the 1.28 km lattice of the published patches, and anything closer).
TOUCH_TILES: float = 1.5
#: Split pairs reported by :func:`tile_leakage`: (split whose tiles are counted, the other split).
SPLIT_PAIRS: tuple[tuple[str, str], ...] = (("test", "train"), ("val", "train"), ("test", "val"))


def _tile_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per located key (centre and zone known) with its UTM zone and projected centre (the
    catalog's columns)."""
    need = ["key", "epsg", "center_x", "center_y"]
    _require(frame, need, "catalog rows, or reference.catalog()")
    t = frame[need].copy()
    t["key"] = t["key"].astype(str)
    t = t.drop_duplicates("key").set_index("key").sort_index()
    return t.dropna(subset=["center_x", "center_y", "epsg"])


def tile_graph(keys: Sequence[str], pairs: pd.DataFrame):
    """The tile graph: a sparse ``len(keys)`` × ``len(keys)`` matrix (scipy COO) with one entry per row of
    ``pairs`` (``key_a``, ``key_b``, e.g. :func:`tile_pairs`) at the positions of the two keys in ``keys``,
    in the order of ``pairs`` (``graph.row``, ``graph.col``). Every key of ``pairs`` must be one of
    ``keys``."""
    from scipy.sparse import coo_matrix

    index = pd.Index(np.asarray(keys, dtype=str))
    a = index.get_indexer(pairs["key_a"].astype(str))
    b = index.get_indexer(pairs["key_b"].astype(str))
    if (a < 0).any() or (b < 0).any():
        raise ValueError("tile_graph: the pairs name keys that are not among the keys given")
    return coo_matrix((np.ones(a.size), (a, b)), shape=(index.size, index.size))


def tile_areas(graph) -> np.ndarray:
    """The connected area of every tile of a :func:`tile_graph`: a label ``0 … k−1`` per key, the same for
    two keys that a chain of pairs links; a key in no pair is an area of its own."""
    from scipy.sparse.csgraph import connected_components

    return connected_components(graph, directed=False)[1]


def tile_pairs(frame: pd.DataFrame, reach_m: float = TOUCH_TILES * FOOTPRINT_M) -> pd.DataFrame:
    """Pairs of tiles whose centres are at most ``reach_m`` apart in x and in y (Chebyshev distance), in
    the same UTM zone. ``frame`` holds ``key``, ``epsg``, ``center_x``, ``center_y`` (one or more rows per
    key; rows without a centre are left out). Columns ``key_a < key_b``, ``dist_m`` (the Chebyshev
    distance), ``overlap`` (footprints share ground: ``dist_m`` below one tile width)."""
    from scipy.spatial import cKDTree

    t = _tile_table(frame)
    keys = t.index.to_numpy()
    rows = []
    for _, idx in t.groupby("epsg", sort=True).indices.items():
        if len(idx) < 2:
            continue
        xy = t[["center_x", "center_y"]].to_numpy(dtype="float64")[idx]
        pr = cKDTree(xy).query_pairs(reach_m + 1e-6, p=np.inf, output_type="ndarray")
        if len(pr):
            d = np.abs(xy[pr[:, 0]] - xy[pr[:, 1]]).max(axis=1)
            rows.append(pd.DataFrame({"a": keys[idx[pr[:, 0]]], "b": keys[idx[pr[:, 1]]], "dist_m": d}))
    if not rows:
        return pd.DataFrame({"key_a": [], "key_b": [], "dist_m": [], "overlap": []}).astype(
            {"key_a": object, "key_b": object, "dist_m": "float64", "overlap": bool}
        )
    p = pd.concat(rows, ignore_index=True)
    a, b = p["a"].to_numpy(dtype=object), p["b"].to_numpy(dtype=object)
    swap = a > b
    out = pd.DataFrame(
        {"key_a": np.where(swap, b, a), "key_b": np.where(swap, a, b), "dist_m": p["dist_m"].to_numpy()}
    )
    out["overlap"] = out["dist_m"] < FOOTPRINT_M - 1e-6
    return out.sort_values(["key_a", "key_b"], kind="stable").reset_index(drop=True)


def tile_leakage(splits, frame: pd.DataFrame, buffer_m: float | None = None) -> pd.DataFrame:
    """How much the splits touch on the ground, per split pair, from tile positions alone.

    ``splits``: a Series key → split, or a ``splits.json``-like mapping; ``frame``: rows with ``key``,
    ``epsg``, ``center_x``, ``center_y`` (e.g. :func:`s12ls_utils.reference.catalog`). For each pair
    (``test``/``train``, ``val``/``train``, ``test``/``val``) one row: ``tiles`` (of the first split),
    ``overlap_pairs`` (footprints share ground), ``touch_pairs`` (8-neighbours: centres at most 1.5 tile
    widths apart in x and y), ``tiles_touching`` (tiles of the first split with such a neighbour in the
    second) and its ``share`` (%); with ``buffer_m`` also ``pairs_within_buffer`` and ``tiles_within_buffer``
    (centres at most one tile width plus ``buffer_m`` apart). Keys without a position are not counted.
    """
    assign = _assignment(splits)
    reach = TOUCH_TILES * FOOTPRINT_M
    if buffer_m is not None:
        if buffer_m < 0:
            raise ValueError(f"buffer_m must be >= 0, not {buffer_m}")
        reach = max(reach, FOOTPRINT_M + buffer_m)
    sub = frame[_has_key(frame, assign)]
    located = _tile_table(sub)
    pairs = tile_pairs(sub, reach)
    sa = pairs["key_a"].map(assign).to_numpy()
    sb = pairs["key_b"].map(assign).to_numpy()
    touch = pairs["dist_m"].to_numpy() <= TOUCH_TILES * FOOTPRINT_M + 1e-6
    within = pairs["dist_m"].to_numpy() <= (FOOTPRINT_M + (buffer_m or 0.0)) + 1e-6
    split_of = located.index.to_series().map(assign)
    rows = []
    for a, b in SPLIT_PAIRS:
        ab = (sa == a) & (sb == b)
        ba = (sa == b) & (sb == a)
        cross = ab | ba
        row = {
            "split": a,
            "other": b,
            "tiles": int((split_of == a).sum()),
            "overlap_pairs": int((cross & pairs["overlap"].to_numpy()).sum()),
            "touch_pairs": int((cross & touch).sum()),
        }
        hit = set(pairs["key_a"][ab & touch]) | set(pairs["key_b"][ba & touch])
        row["tiles_touching"] = len(hit)
        row["share"] = 100.0 * len(hit) / row["tiles"] if row["tiles"] else 0.0
        if buffer_m is not None:
            near = set(pairs["key_a"][ab & within]) | set(pairs["key_b"][ba & within])
            row["pairs_within_buffer"] = int((cross & within).sum())
            row["tiles_within_buffer"] = len(near)
        rows.append(row)
    return pd.DataFrame(rows)


#: Weights of the blocked assignment's targets, relative to the tile count per region: tiles per region ×
#: coverage class, and landslide pixels per region (in units of the mean pixels per tile).
_W_CLASS = 1.0
_W_PIXELS = 2.0


def touching_pairs(splits, frame: pd.DataFrame) -> pd.DataFrame:
    """The pairs of tiles in different splits that touch or overlap (what :func:`tile_leakage` counts):
    columns ``key_a``, ``key_b``, ``split_a``, ``split_b``, ``dist_m``, ``overlap``."""
    assign = _assignment(splits)
    sub = frame[_has_key(frame, assign)]
    p = tile_pairs(sub)
    p["split_a"] = p["key_a"].map(assign)
    p["split_b"] = p["key_b"].map(assign)
    return p[p["split_a"] != p["split_b"]].reset_index(drop=True)


def densest_window(frame: pd.DataFrame, keys: Iterable[str], size_m: float = 10 * FOOTPRINT_M) -> list[str]:
    """The keys of ``frame`` inside the square window (``size_m`` wide, one UTM zone) that holds the most of
    ``keys``, centred on one of their tiles; for drawing a dense area at the scale of single tiles."""
    t = _tile_table(frame)
    focus = t[t.index.isin(set(map(str, keys)))]
    if focus.empty:
        raise ValueError("none of the keys has a position in the frame")
    from scipy.spatial import cKDTree

    half = size_m / 2
    best, best_n = None, -1
    for _, grp in focus.groupby("epsg", sort=True):
        xy = grp[["center_x", "center_y"]].to_numpy(dtype="float64")
        n = cKDTree(xy).query_ball_point(xy, half + 1e-6, p=np.inf, return_length=True)
        i = int(np.argmax(n))
        if n[i] > best_n:
            best, best_n = grp.index[i], int(n[i])
    c = t.loc[best]
    inside = (
        (t["epsg"] == c["epsg"])
        & (t["center_x"] - c["center_x"]).abs().le(half)
        & (t["center_y"] - c["center_y"]).abs().le(half)
    )
    return sorted(t.index[inside])


def _greedy_fill(
    vecs: np.ndarray, target: np.ndarray, weight: np.ndarray, rng, allowed: np.ndarray
) -> np.ndarray:
    """Units to take so that the sum of their vectors comes close to ``target`` (weighted squared error).

    A randomised greedy search: at each step the unit that lowers the error most is taken among a random
    third of the allowed units (among all of them when none of that third helps); it stops when no unit
    lowers the error. The seed of ``rng`` therefore chooses among near-equivalent splits."""
    n = len(vecs)
    ok = allowed.copy()
    have = np.zeros(vecs.shape[1])
    taken = np.zeros(n, dtype=bool)
    while ok.any():
        delta = ((2.0 * (have - target) + vecs) * vecs * weight).sum(axis=1)
        delta[~ok] = np.inf
        draw = rng.random(n) < 1.0 / 3.0
        pick = np.where(draw, delta, np.inf)
        i = int(np.argmin(pick))
        if not pick[i] < 0:
            i = int(np.argmin(delta))
            if not delta[i] < 0:
                break
        taken[i] = True
        ok[i] = False
        have += vecs[i]
    return taken


#: Bounds the balanced blocked split aims inside, per scope (sensor or aligned) and split, after the buffer:
#: the split's share of the kept tiles within ``share`` of its target, its landslide pixels per tile within
#: ``pixels`` (as a ratio) of the whole scope's, its annotated share within ``annotated`` of the whole's, and at
#: least ``kept`` of the selected tiles kept. :func:`split_balance` reports them.
BALANCE_BOUNDS: dict[str, float] = {"share": 0.03, "pixels": 0.10, "annotated": 0.02, "kept": 0.88}
#: Regions with at least this many tiles must reach the test set of a blocked split.
MIN_TEST_REGION_TILES: int = 20
_CODES = np.array(["train", "val", "test"], dtype=object)


@dataclass
class _Scopes:
    """Per tile and scope (sensor, or the aligned locations): membership, landslide pixels, annotated."""

    names: list[str]
    weights: np.ndarray  # (n tiles, 3 · scopes): [member, pixels, annotated] per scope
    selected: np.ndarray  # (scopes,) tiles selected per scope


def _scope_table(frame: pd.DataFrame, keys: np.ndarray, reference_sensor: str | None) -> _Scopes:
    """What each located tile adds to each scope: one scope per ``sensor`` of ``frame`` and the aligned
    locations (keys every sensor has, counted with ``reference_sensor``'s file), or one scope ``all``."""
    f = frame.assign(key=frame["key"].astype(str))
    f = f.assign(_ann=_annotated(f).to_numpy(dtype="float64"))
    if "sensor" in f.columns and f["sensor"].nunique() > 0:
        sensors = sorted(f["sensor"].astype(str).unique())
        parts = {s: f[f["sensor"].astype(str) == s] for s in sensors}
        if len(sensors) > 1:
            ref = reference_sensor if reference_sensor in parts else ("s2" if "s2" in parts else sensors[0])
            common = set.intersection(*(set(p["key"]) for p in parts.values()))
            parts["aligned"] = parts[ref][_has_key(parts[ref], common)]
    else:
        parts = {"all": f}
    pos = pd.Index(keys)
    w = np.zeros((len(keys), 3 * len(parts)))
    selected = np.zeros(len(parts))
    for j, p in enumerate(parts.values()):
        p = p.drop_duplicates("key")
        selected[j] = len(p)
        i = pos.get_indexer(p["key"])
        ok = i >= 0
        w[i[ok], 3 * j] = 1.0
        w[i[ok], 3 * j + 1] = p["n_positive"].to_numpy(dtype="float64")[ok]
        w[i[ok], 3 * j + 2] = p["_ann"].to_numpy()[ok]
    return _Scopes(list(parts), w, selected)


def _buffer_drop(neighbours, tile_code: np.ndarray) -> np.ndarray:
    """The one-tile buffer: a tile is dropped when one of its ``neighbours`` (a CSR matrix in which every tile
    is its own neighbour) lies in a later split (codes train 0 < val 1 < test 2)."""
    return np.maximum.reduceat(tile_code[neighbours.indices], neighbours.indptr[:-1]) > tile_code


class _Balancer:
    """Local search over the split of each block, scored after the buffer (:func:`blocked_split`, step 4).

    The state is one split code per block (0 train, 1 val, 2 test); a tile is dropped when a neighbour (a
    touching tile, or one that shows the same landslide) has a higher code. Moving a block changes the buffer
    only around it, so a move updates the per-split sums of the block's tiles and their neighbours, and it is
    kept when the imbalance (:meth:`cost`) falls."""

    def __init__(self, block, code, g, scopes: _Scopes, region, pixels, targets, fixed, rng):
        n = len(block)
        self.block, self.w, self.selected = block, scopes.weights, scopes.selected
        self.n_scopes, self.region, self.pixels = len(scopes.names), region, pixels
        self.region_size = np.bincount(region)
        self.region_px = np.bincount(region, weights=pixels) / np.maximum(self.region_size, 1)
        self.targets, self.fixed, self.rng = np.asarray(targets, dtype="float64"), fixed, rng
        self.code = code.astype("int64")
        self.tile_code = self.code[block]
        order = np.argsort(block, kind="stable")
        self.members = np.split(order, np.cumsum(np.bincount(block, minlength=len(code)))[:-1])
        # per block: the tiles whose buffer a move can change (its tiles and their neighbours), and the
        # neighbours of each of those, flattened for one maximum.reduceat
        self.touched, self.flat, self.seg = [], [], []
        for m in self.members:
            t = np.unique(g[m].indices) if len(m) else m
            sub = g[t]
            self.touched.append(t)
            self.flat.append(sub.indices)
            self.seg.append(sub.indptr[:-1])
        all_t = np.arange(n)
        self.drop = _buffer_drop(g, self.tile_code)
        self.sums = np.zeros((3, self.w.shape[1]))
        self.regions = np.zeros((2, 3, len(self.region_size)))  # tiles, landslide pixels
        self._add(all_t, self.drop, 1.0)

    def _add(self, tiles, dropped, sign: float) -> None:
        keep = tiles[~dropped]
        c = self.tile_code[keep]
        np.add.at(self.sums, c, sign * self.w[keep])
        np.add.at(self.regions[0], (c, self.region[keep]), sign)
        np.add.at(self.regions[1], (c, self.region[keep]), sign * self.pixels[keep])

    def cost(self) -> float:
        """Squared distances from the targets in units of :data:`BALANCE_BOUNDS` per scope and split, with
        steep penalties near a bound, for a region of :data:`MIN_TEST_REGION_TILES` tiles or more missing from
        test, and for the tiles the buffer drops."""
        live = self.targets > 0  # in a region hold-out, test is given: train and val are balanced
        s = self.sums.reshape(3, self.n_scopes, 3)[live]
        n = s[:, :, 0]
        pool = n.sum(axis=0)
        if (pool == 0).any():
            return np.inf
        px = s[:, :, 1].sum(axis=0) / pool
        ann = s[:, :, 2].sum(axis=0) / pool
        safe = np.where(n > 0, n, 1.0)
        ratio = np.where((n > 0) & (px > 0), s[:, :, 1] / safe / np.where(px > 0, px, 1.0) - 1.0, 0.0)
        ann_d = np.where(n > 0, s[:, :, 2] / safe - ann, 0.0)
        share = n / pool - (self.targets[live] / self.targets[live].sum())[:, None]
        z = np.concatenate(
            [
                (share / BALANCE_BOUNDS["share"]).ravel(),
                (ratio / BALANCE_BOUNDS["pixels"]).ravel(),
                (ann_d / BALANCE_BOUNDS["annotated"]).ravel(),
            ]
        )
        total = float((z**2).sum() + 1e3 * (np.maximum(np.abs(z) - 0.8, 0.0) ** 2).sum())
        kept = self.sums.reshape(3, self.n_scopes, 3)[:, :, 0].sum(axis=0)
        lost = (1.0 - kept / self.selected) / (1.0 - BALANCE_BOUNDS["kept"])
        total += float(lost.sum() + 1e3 * (np.maximum(lost - 0.9, 0.0) ** 2).sum())
        if self.targets[2] > 0:  # every large enough region reaches test, near its share and its pixels
            big = self.region_size >= MIN_TEST_REGION_TILES
            tiles, px = self.regions
            rk = tiles.sum(axis=0)
            rs = np.where(rk > 0, tiles[2] / np.where(rk > 0, rk, 1.0), 0.0)
            total += 1e3 * float((big & (tiles[2] == 0)).sum())
            weight = self.region_size[big] / len(self.block)
            total += float((((rs - self.targets[2]) / 0.05) ** 2)[big] @ weight)
            per_tile = px[1:] / np.where(tiles[1:] > 0, tiles[1:], 1.0)  # val and test
            drift = np.where(
                tiles[1:] > 0, per_tile / np.where(self.region_px > 0, self.region_px, 1.0) - 1.0, 0.0
            )
            total += float(((drift[:, big] / 0.2) ** 2).sum(axis=0) @ weight)
        return total

    def _move(self, b: int, new: int) -> None:
        t = self.touched[b]
        self._add(t, self.drop[t], -1.0)
        self.code[b] = new
        self.tile_code[self.members[b]] = new
        self.drop[t] = np.maximum.reduceat(self.tile_code[self.flat[b]], self.seg[b]) > self.tile_code[t]
        self._add(t, self.drop[t], 1.0)

    def run(self, rounds: int) -> None:
        """First-improvement passes over the movable blocks in a seeded order, until a pass changes nothing
        or ``rounds`` passes are done."""
        movable = np.flatnonzero(~self.fixed)
        allowed = np.flatnonzero(self.targets > 0)
        best = self.cost()
        for _ in range(rounds):
            improved = False
            for b in self.rng.permutation(movable):
                old = int(self.code[b])
                for new in self.rng.permutation(allowed):
                    if new == old:
                        continue
                    self._move(b, int(new))
                    c = self.cost()
                    if c < best - 1e-12:
                        best, old, improved = c, int(new), True
                    else:
                        self._move(b, old)
            if not improved:
                break


@dataclass
class BlockedAssignment:
    """The blocked split of a set of locations (:func:`blocked_split`).

    ``split`` (Series key → ``train``/``val``/``test``, only the kept locations), ``block`` (Series key →
    block number, every located key), ``dropped`` (Series key → the split the location lost, for the
    buffer), ``unlocated`` (keys without a position: left out, they cannot be checked) and ``n_blocks``.
    """

    split: pd.Series
    block: pd.Series
    dropped: pd.Series
    unlocated: list[str]
    n_blocks: int
    params: dict

    def cost(self) -> dict[str, int]:
        """What the split costs: its ``blocks``, the locations the buffer dropped from train and from
        validation (``dropped_train``, ``dropped_val``) and the ``unlocated`` ones left out."""
        lost = self.dropped.value_counts()
        return {
            "blocks": int(self.n_blocks),
            "dropped_train": int(lost.get("train", 0)),
            "dropped_val": int(lost.get("val", 0)),
            "unlocated": len(self.unlocated),
        }


def blocked_split(
    frame: pd.DataFrame,
    seed: int = 42,
    test_size: float = 0.2,
    val_size: float = 0.2,
    block_share: float = 0.1,
    test_keys: Iterable[str] | None = None,
    reference_sensor: str | None = None,
    balance: bool = True,
    balance_rounds: int = 2,
) -> BlockedAssignment:
    """A leak-free split of tiles on the real lattice: whole spatial blocks, then a one-tile buffer.

    ``frame``: rows with ``key``, ``region``, ``epsg``, ``center_x``, ``center_y``, ``n_positive`` (several
    rows per key, e.g. one per sensor, count once; the largest ``n_positive`` is used); with ``ann_ids``
    (catalog rows of the files), tiles that share a landslide are linked as if they touched.

    1. **Areas**: tiles that touch (8-neighbours, :data:`TOUCH_TILES`) are joined into connected areas.
    2. **Blocks**: an area that holds more than ``block_share`` of its region's tiles (and more than 9 tiles)
       is cut by a square grid whose cell holds about ``block_share`` of the region (side
       ``floor(sqrt(block_share · region tiles))`` tiles, at least 3); other areas stay whole.
    3. **Assignment**: whole blocks go to test, then to validation (``test_size``, then ``val_size`` of the
       rest), chosen greedily to match, per region, the tile count, the tile count per coverage class
       (:func:`coverage_classes`) and the landslide pixels (weights 1, 1 and 2); a seeded order breaks
       ties. Every region with at least a few blocks therefore reaches test.
    4. **Buffer**: where a tile touches a tile of another split, one of the two is dropped: the train tile
       (next to val or test), or the val tile (next to test). Test blocks stay whole.
    5. **Balance** (``balance``, default on): a local search moves single blocks between the splits while
       that brings the splits *after the buffer* closer to their targets in every scope: one scope per
       ``sensor`` of ``frame`` (when it has that column) and the aligned locations (the keys every sensor
       has, counted with ``reference_sensor``'s rows), else one scope. Per scope and split it matches the
       share of the kept tiles (64 / 16 / 20 by default), the landslide pixels per tile (ratio to the whole
       scope's) and the annotated share (the ``annotated`` column, else ``n_positive > 0``), keeps the
       dropped tiles few, and keeps every region of :data:`MIN_TEST_REGION_TILES` tiles or more in test near
       its share. The distances are measured in units of :data:`BALANCE_BOUNDS`; at most ``balance_rounds``
       passes over the blocks. :func:`split_balance` reports the result.

    With ``test_keys`` the test set is given (a region hold-out fold): those locations are test, the
    other tiles of their blocks stay train, and the rest is split into train and validation as above
    (balanced between the two), with the same buffer. Locations without a position cannot be checked for
    contact and are left out (``unlocated``). Deterministic for ``seed``.
    """
    from scipy.sparse import identity

    if not 0.0 < block_share <= 1.0:
        raise ValueError(f"block_share must be in (0, 1], not {block_share}")
    if not 0.0 <= test_size < 1.0 or not 0.0 <= val_size < 1.0:
        raise ValueError(f"test_size and val_size must be in [0, 1), not {test_size}, {val_size}")
    need = ["key", "region", "epsg", "center_x", "center_y", "n_positive"]
    _require(frame, need, "blocked_split")
    f = frame[need].copy()
    f["key"] = f["key"].astype(str)
    f["region"] = f["region"].astype(str)
    loc = (
        f.groupby("key", sort=True)
        .agg(
            region=("region", "first"),
            epsg=("epsg", "first"),
            center_x=("center_x", "first"),
            center_y=("center_y", "first"),
            n_positive=("n_positive", "max"),
        )
        .sort_index()
    )
    unlocated = loc.index[loc[["center_x", "center_y", "epsg"]].isna().any(axis=1)].tolist()
    loc = loc.drop(index=unlocated)
    keys = loc.index.to_numpy()
    n = len(keys)
    params = {
        "seed": seed,
        "test_size": test_size,
        "val_size": val_size,
        "block_share": block_share,
        "touch_tiles": TOUCH_TILES,
        "buffer": "one tile: train tiles touching val/test and val tiles touching test are dropped",
        "balance": dict(BALANCE_BOUNDS, rounds=balance_rounds) if balance else None,
    }
    if n == 0:
        empty = pd.Series([], dtype="object", name="split")
        return BlockedAssignment(empty, pd.Series([], dtype="int64"), empty, unlocated, 0, params)
    shared = _ann_pairs(frame)  # tiles that show the same landslide are linked like touching tiles
    shared = shared[shared["key_a"].isin(keys) & shared["key_b"].isin(keys)]
    graph = tile_graph(keys, pd.concat([tile_pairs(loc.reset_index()), shared])[["key_a", "key_b"]])
    area = tile_areas(graph)
    area_size = np.bincount(area)
    region = loc["region"].to_numpy(dtype=str)
    region_size = pd.Series(region).map(pd.Series(region).value_counts()).to_numpy()
    label = np.array([f"a{a}" for a in area], dtype=object)
    cut = area_size[area] > np.maximum(block_share * region_size, 9)
    x = loc["center_x"].to_numpy(dtype="float64")
    y = loc["center_y"].to_numpy(dtype="float64")
    for r in np.unique(region[cut]):
        m = cut & (region == r)
        side = max(3, math.floor(math.sqrt(block_share * region_size[m][0]))) * FOOTPRINT_M
        label[m] = [
            f"{r}:{a}:{i}:{j}"
            for a, i, j in zip(area[m], np.floor(x[m] / side), np.floor(y[m] / side), strict=True)
        ]
    orig = label.astype(str)
    # as str arrays: np.isin compares object arrays pair by pair (seconds on the real lattice)
    given = (
        np.isin(keys.astype(str), np.asarray([str(k) for k in test_keys], dtype=str))
        if test_keys is not None
        else np.zeros(n, dtype=bool)
    )
    label = np.where(given, np.char.add(orig, "|test"), orig)  # given test tiles form blocks of their own
    _, block = np.unique(label, return_inverse=True)
    n_blocks = int(block.max()) + 1
    # per block: tiles per region, tiles per region × coverage class, landslide pixels per region
    cov = coverage_classes(loc).to_numpy()
    _, ri = np.unique(region, return_inverse=True)
    _, si = np.unique(np.array([f"{r}|{c}" for r, c in zip(region, cov, strict=True)]), return_inverse=True)
    n_r, n_s = int(ri.max()) + 1, int(si.max()) + 1
    px = loc["n_positive"].to_numpy(dtype="float64")
    px = px / px.mean() if px.mean() > 0 else px
    vecs = np.zeros((n_blocks, 2 * n_r + n_s))
    np.add.at(vecs, (block, ri), 1.0)
    np.add.at(vecs, (block, n_r + si), 1.0)
    np.add.at(vecs, (block, n_r + n_s + ri), px)
    weight = np.concatenate([np.ones(n_r), np.full(n_s, _W_CLASS), np.full(n_r, _W_PIXELS)])
    rng = np.random.default_rng(seed)
    code = np.zeros(n_blocks, dtype="int64")  # 0 train, 1 val, 2 test
    fixed = np.zeros(n_blocks, dtype=bool)
    if test_keys is not None:
        # the given test tiles are test; the other tiles of their blocks stay train (the buffer drops those
        # that touch a test tile)
        code[np.unique(block[given])] = 2
        fixed[np.unique(block[np.isin(orig, orig[given])])] = True
    elif test_size > 0:
        code[_greedy_fill(vecs, test_size * vecs.sum(axis=0), weight, rng, np.ones(n_blocks, dtype=bool))] = 2
    if val_size > 0:
        rest = vecs * (code != 2)[:, None]
        code[_greedy_fill(rest, val_size * rest.sum(axis=0), weight, rng, (code != 2) & ~fixed)] = 1
    targets = [
        (1 - test_size) * (1 - val_size),
        (1 - test_size) * val_size,
        test_size if test_keys is None else 0.0,
    ]
    neighbours = (graph + graph.T + identity(n, format="csr")).tocsr()  # each tile its own neighbour
    if balance and n_blocks > 1:
        scopes = _scope_table(frame, keys, reference_sensor)
        px = loc["n_positive"].to_numpy(dtype="float64")
        bal = _Balancer(block, code, neighbours, scopes, ri, px, targets, fixed, rng)
        bal.run(rounds=balance_rounds)
        code, lose = bal.code, bal.drop
    else:
        lose = _buffer_drop(neighbours, code[block])
    out = _CODES[code[block]]
    split_s = pd.Series(out[~lose], index=pd.Index(keys[~lose], name="key"), name="split", dtype="object")
    dropped = pd.Series(out[lose], index=pd.Index(keys[lose], name="key"), name="split", dtype="object")
    block_s = pd.Series(block, index=pd.Index(keys, name="key"), name="block", dtype="int64")
    return BlockedAssignment(split_s, block_s, dropped, unlocated, n_blocks, params)


def split(df: pd.DataFrame, config, method: str | None = None) -> pd.Series:
    """Assign each patch (row of ``df``, one per key) to ``train``, ``val`` or ``test`` with the published
    algorithm, :func:`reference_split`, on the patches' file names and landslide pixels (strata = coverage
    class × first ``_`` token of the file name). Geography is ignored: neighbouring patches land on both
    sides. The blocked split assigns locations across sensors: :func:`make_splits` or :func:`blocked_split`.

    Deterministic for ``config.seed``. Returns a Series indexed by key, named ``split``.
    """
    config = _settings(config)
    method = schema.check_choice("split method", config.method if method is None else method, METHODS)
    keys = df["key"].astype(str).to_numpy()
    if len(set(keys)) != len(keys):
        raise ValueError("split() takes one row per location key (one sensor, or the aligned table)")
    if method == "blocked":
        raise ValueError(
            "the blocked split assigns locations across sensors and drops a buffer: use make_splits() or "
            "blocked_split(), not split()"
        )
    frame = pd.DataFrame(
        {"file": df["path"].astype(str).to_numpy(), "n_positive": df["n_positive"].to_numpy()}
    )
    got = reference_split(frame, seed=config.seed, test_size=config.test_size, val_size=config.val_size)
    order = np.argsort(keys, kind="stable")
    return pd.Series(
        got.to_numpy(dtype=object)[order],
        index=pd.Index(keys[order], name="key"),
        name="split",
        dtype="object",
    )


def reference_split(
    frame: pd.DataFrame, seed: int = 42, test_size: float = 0.2, val_size: float = 0.2
) -> pd.Series:
    """The published Sen12Landslides split, reproduced exactly (``create_splits.py`` upstream).

    ``frame`` has the columns ``file`` (a patch file name such as ``italy_s2_2329.nc``; a path works too,
    its last component is used) and ``n_positive`` (``MASK == 1`` pixels at t=0), in any row order, one row
    per patch. The rules:

    1. the patches are ordered by file name;
    2. coverage = ``n_positive`` / 16384, class 0 / 1 / 2 at the 25th and 75th percentiles of the coverage of
       all patches (``<=`` on both cuts);
    3. stratum = ``"<class>_<inventory>"``, the inventory being the first ``_`` token of the file name
       (``usa_alaska`` and ``usa_puertorico`` are both ``usa``);
    4. patches in a stratum of one go to train;
    5. scikit-learn's ``train_test_split(…, test_size, stratify=strata, random_state=seed)`` takes the test
       part out; the same call with ``val_size`` takes the validation part out of the train part, in the
       order the first call returned it, stratified by the same labels (the class cut points are not
       recomputed; only the stratum-of-one rule is applied again there).

    On data too small for a stratified draw (fewer patches to hold out than strata), scikit-learn refuses;
    the same call is then made without ``stratify``, with a warning (never the case on the real data).

    Returns ``train`` / ``val`` / ``test`` as a Series on ``frame``'s index, named ``split``. On the
    vendored reference it reproduces every published ``splits.json`` and ``splits_aligned.json`` of
    S12LS-LD and S12LS-AD assignment for assignment (``tests/test_reference.py``). It ignores geography.
    """
    from sklearn.model_selection import train_test_split

    missing = [c for c in ("file", "n_positive") if c not in frame.columns]
    if missing:
        raise KeyError(f"reference_split needs the columns 'file' and 'n_positive'; missing {missing}")
    if not 0.0 < test_size < 1.0 or not 0.0 <= val_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1) and val_size in [0, 1), not {test_size}, {val_size}")
    names = frame["file"].astype(str).map(lambda p: Path(p).name)
    if names.duplicated().any():
        dup = names[names.duplicated()].iloc[0]
        raise ValueError(f"reference_split takes one row per patch; {dup!r} appears twice")
    npos = pd.to_numeric(frame["n_positive"], errors="raise")
    if npos.isna().any() or (npos < 0).any():
        raise ValueError("n_positive must be a count >= 0 for every patch")
    out = pd.Series("train", index=frame.index, name="split", dtype="object")
    if len(frame) == 0:
        return out
    order = np.argsort(names.to_numpy(dtype=str), kind="stable")
    idx = frame.index[order]
    cov = npos.to_numpy(dtype="float64")[order] / schema.PATCH_SIZE**2
    cls = _coverage_class(cov)
    inventory = [n.split("_", 1)[0] for n in names.to_numpy(dtype=str)[order]]
    strata = pd.Series([f"{c}_{i}" for c, i in zip(cls, inventory, strict=True)], index=idx)

    def take(pool: pd.Index, size: float) -> tuple[pd.Index, pd.Index]:
        """(kept, held out) of ``pool``; the kept part in the order scikit-learn returns it."""
        labels = strata[pool]
        pool = pool[(labels.map(labels.value_counts()) > 1).to_numpy()]
        if size == 0 or len(pool) == 0:
            return pool, pd.Index([])
        try:
            kept, held = train_test_split(
                pool, test_size=size, stratify=strata[pool].to_numpy(), random_state=seed
            )
        except ValueError as exc:  # fewer patches to hold out than strata: only on small data
            log.warning("reference split: no stratified draw possible (%s); drawing without strata", exc)
            kept, held = train_test_split(pool, test_size=size, random_state=seed)
        return pd.Index(kept), pd.Index(held)

    # the validation part is drawn from the train part in the (shuffled) order the first call returned it:
    # the published splits depend on that order
    rest, test = take(idx, test_size)
    out[test] = "test"
    out[take(rest, val_size)[1]] = "val"
    return out


@dataclass
class SplitResult:
    """The splits of one task in memory (what :func:`~s12ls_utils.tasks.write_task` writes), with leakage figures.

    ``frames[sensor]`` and ``aligned`` hold the selected rows with ``confidence``, ``coverage_class`` and
    ``split``; ``aligned`` has one path column per sensor. ``leakage[scope]`` is :func:`leakage` per sensor
    and for ``"aligned"``. ``method`` is the split algorithm used; ``blocked`` holds the blocked assignment
    (blocks, the tiles the buffer dropped, unlocated tiles) when that method was used.
    """

    config: object  # the task's settings, a s12ls_utils.tasks.TaskConfig
    method: str
    frames: dict[str, pd.DataFrame]
    aligned: pd.DataFrame | None
    leakage: dict[str, dict[str, int]] = field(default_factory=dict)
    blocked: BlockedAssignment | None = None

    def scopes(self) -> dict[str, pd.DataFrame]:
        """``{sensor: frame, …, "aligned": frame}``."""
        out = dict(self.frames)
        if self.aligned is not None:
            out["aligned"] = self.aligned
        return out

    def counts(self) -> pd.DataFrame:
        """Patches per scope (sensor or ``aligned``) and split: columns scope, train, val, test, total."""
        rows = []
        for scope, df in self.scopes().items():
            c = df["split"].value_counts()
            row = {"scope": scope, **{s: int(c.get(s, 0)) for s in SPLITS}}
            row["total"] = len(df)
            rows.append(row)
        return pd.DataFrame(rows, columns=["scope", *SPLITS, "total"])

    def table(self, scope: str | None = None) -> pd.DataFrame:
        """Patches per region, coverage class and split (long table: region, coverage_class, split,
        patches); ``scope`` defaults to the reference sensor."""
        df = self.scopes()[scope or self.config.reference_sat]
        t = df.groupby(["region", "coverage_class", "split"]).size().rename("patches").reset_index()
        t["region"] = t["region"].astype(str)
        return t


def _annotated(df: pd.DataFrame) -> pd.Series:
    """Whether each row is annotated: the ``annotated`` column (bool or "True"/"False"), else MASK pixels > 0."""
    if "annotated" in df.columns:
        return df["annotated"].astype(str).str.lower().isin(["true", "1"])
    return df["n_positive"] > 0


def split_balance(result: SplitResult, totals: Mapping[str, int] | None = None) -> pd.DataFrame:
    """How balanced the splits of ``result`` are, per scope (sensor or ``aligned``) and split.

    Columns: ``scope``, ``split``, ``tiles``, ``share`` (% of the scope's tiles), ``target`` (%),
    ``pixels_ratio`` (landslide pixels per tile in the split ÷ in the whole scope), ``annotated`` (% of the
    split's tiles), ``annotated_diff`` (points from the whole scope's), ``kept`` (% of ``totals[scope]``, the
    tiles before splitting, e.g. the published counts; NaN without it) and ``ok`` (inside
    :data:`BALANCE_BOUNDS`: share within 3 points, pixels ratio within 0.90–1.10, annotated share within 2
    points, kept at least 88 %).
    """
    cfg = result.config
    target = {
        "train": (1 - cfg.test_size) * (1 - cfg.val_size),
        "val": (1 - cfg.test_size) * cfg.val_size,
        "test": cfg.test_size,
    }
    b = BALANCE_BOUNDS
    rows = []
    for scope, frame in result.scopes().items():
        n = len(frame)
        px = frame["n_positive"].mean() if n else np.nan
        ann = _annotated(frame)
        kept = 100.0 * n / totals[scope] if totals is not None and scope in totals else np.nan
        for name in SPLITS:
            part = frame["split"] == name
            row = {
                "scope": scope,
                "split": name,
                "tiles": int(part.sum()),
                "share": 100.0 * part.mean() if n else np.nan,
                "target": 100.0 * target[name],
                "pixels_ratio": frame.loc[part, "n_positive"].mean() / px
                if part.any() and px > 0
                else np.nan,
                "annotated": 100.0 * ann[part].mean() if part.any() else np.nan,
                "annotated_diff": 100.0 * (ann[part].mean() - ann.mean()) if part.any() else np.nan,
                "kept": kept,
            }
            row["ok"] = bool(
                abs(row["share"] - row["target"]) <= 100 * b["share"]
                and abs(row["pixels_ratio"] - 1.0) <= b["pixels"] + 1e-12
                and abs(row["annotated_diff"]) <= 100 * b["annotated"]
                and not kept < 100 * b["kept"]
            )
            rows.append(row)
    return pd.DataFrame(rows)


def _annotate(df: pd.DataFrame, config, method: str) -> pd.DataFrame:
    df = df.copy()
    df["key"] = df["key"].astype(str)
    df["coverage_class"] = coverage_classes(df).to_numpy()
    if len(df):
        df["split"] = split(df, config, method=method).reindex(df["key"]).to_numpy()
    else:
        df["split"] = pd.Series([], dtype="object")
    return df


def _blocked_for(sel: Mapping[str, pd.DataFrame], config) -> BlockedAssignment:
    """The blocked split of every location the task selected in any sensor (one split per location)."""
    both = pd.concat(list(sel.values()), ignore_index=True)
    test_keys = None
    if config.test_regions:
        regions = both["region"].astype(str)
        unknown = sorted(set(config.test_regions) - set(regions))
        if unknown:
            raise ValueError(
                f"test_regions {unknown} are not among the selected regions {sorted(set(regions))}"
            )
        test_keys = both.loc[regions.isin(config.test_regions), "key"].astype(str).unique()
    return blocked_split(
        both,
        seed=config.seed,
        test_size=config.test_size,
        val_size=config.val_size,
        block_share=config.block_share,
        test_keys=test_keys,
        reference_sensor=config.reference_sat,
        balance=config.balance,
    )


def _annotate_blocked(df: pd.DataFrame, blocked: BlockedAssignment) -> pd.DataFrame:
    df = df[_has_key(df, blocked.split.index)].copy()
    df["key"] = df["key"].astype(str)
    df["coverage_class"] = coverage_classes(df).to_numpy()
    df["split"] = blocked.split.reindex(df["key"]).to_numpy()
    return df


def make_splits(catalog: pd.DataFrame, config, method: str | None = None) -> SplitResult:
    """Filter, split per sensor and split the strictly aligned locations (on the reference sensor).

    Per sensor, the selected patches are split on their own (as the reference does). The aligned split
    takes the locations that every sensor of the task selected (:func:`s12ls_utils.alignment.aligned_groups`),
    splits them on the reference sensor's patches and maps the split to the other sensors by key.
    """
    from .alignment import aligned_groups

    config = _settings(config)
    method = schema.check_choice("split method", config.method if method is None else method, METHODS)
    config = config.replace(method=method)
    sel = select(catalog, config)
    frames, leak = {}, {}
    blocked = _blocked_for(sel, config) if method == "blocked" else None
    for sensor, df in sel.items():
        frames[sensor] = (
            _annotate_blocked(df, blocked) if blocked is not None else _annotate(df, config, method)
        )
        leak[sensor] = leakage(frames[sensor].set_index("key")["split"], frames[sensor])
    aligned = None
    if len(config.satellites) > 1:
        pools = frames if method == "blocked" else sel
        both = pd.concat([pools[s] for s in config.satellites], ignore_index=True)
        cols = ["key", *config.satellites]
        if len(both):
            paths = aligned_groups(both, sensors=config.satellites)[cols].astype({"key": str})
        else:
            paths = pd.DataFrame({c: pd.Series([], dtype="object") for c in cols})
        ref = pools[config.reference_sat]
        ref = ref[_has_key(ref, paths["key"])]
        ref_ann = ref.copy() if method == "blocked" else _annotate(ref, config, method)
        ref_ann = ref_ann.drop(columns=[c for c in config.satellites if c in ref_ann.columns])
        aligned = ref_ann.merge(paths, on="key", how="left")
        leak["aligned"] = leakage(aligned.set_index("key")["split"], both)
    scopes = {**frames, **({"aligned": aligned} if aligned is not None else {})}
    empty = [
        f"{s} ({scope})"
        for scope, df in scopes.items()
        if len(df)
        for s in SPLITS
        if not (df["split"] == s).any()
    ]
    if empty:  # a small data folder: training on such a task stops at its empty split
        log.warning(
            "task %s: split %s holds no patch (too few patches for the %s split)",
            config.name,
            ", ".join(empty),
            method,
        )
    return SplitResult(config, method, frames, aligned, leak, blocked)


# --------------------------------------------------------------------------------------------------
# Tables that compare splits (chapter 04 shows them)
# --------------------------------------------------------------------------------------------------
def _labelled(label, names: Sequence[str]) -> dict:
    """``{name: part}`` of a label that is a tuple (one part per name) or a single value (one name)."""
    return dict(zip(names, label if isinstance(label, tuple) else (label,), strict=True))


def reproduce_reference(
    frames: Mapping, seed: int = 42, names: Sequence[str] = ("task", "scope")
) -> pd.DataFrame:
    """:func:`reference_split` run again on published split files: ``frames`` maps a label (named by
    ``names``) to a file's patches (``file``, ``n_positive`` and the published ``split``, e.g.
    :func:`s12ls_utils.reference.split_frame`). One row per file: the label, ``patches`` and ``differ``
    (assignments that differ from the published one)."""
    rows = []
    for label, pub in frames.items():
        got = reference_split(pub[["file", "n_positive"]], seed=seed)
        rows.append(
            {**_labelled(label, names), "patches": len(pub), "differ": int((got != pub["split"]).sum())}
        )
    return pd.DataFrame(rows)


def leakage_summary(
    cases: Mapping, catalog: pd.DataFrame, names: Sequence[str] = ("task", "scope")
) -> pd.DataFrame:
    """:func:`tile_leakage` of several split assignments, one row each.

    ``cases`` maps a label (named by ``names``) to ``(splits, scope)``: the assignment (a Series key →
    split, or what :func:`tile_leakage` takes) and the scope whose catalog rows give the tile positions (a
    sensor; ``"aligned"`` uses the S2 rows, as the aligned split does). Columns: the label's, ``tiles``
    (keys assigned), ``test tiles`` (with a position), ``overlapping pairs`` and ``touching pairs`` (tiles
    of any two different splits), ``test tiles touching train`` and its share ``test touching train (%)``,
    and ``val touching train (%)``.
    """
    rows = []
    for label, (assign, scope) in cases.items():
        sensor = "s2" if scope == "aligned" else scope
        t = tile_leakage(assign, catalog[catalog["sensor"] == sensor]).set_index(["split", "other"])
        test, val = t.loc[("test", "train")], t.loc[("val", "train")]
        rows.append(
            {
                **_labelled(label, names),
                "tiles": len(_assignment(assign)),
                "test tiles": int(test["tiles"]),
                "overlapping pairs": int(t["overlap_pairs"].sum()),
                "touching pairs": int(t["touch_pairs"].sum()),
                "test tiles touching train": int(test["tiles_touching"]),
                "test touching train (%)": float(test["share"]),
                "val touching train (%)": float(val["share"]),
            }
        )
    return pd.DataFrame(rows)


#: The column of :func:`split_table` that measures leakage.
TOUCHING = "test tiles touching a training tile (%)"


def split_table(split_tasks: Mapping, catalog: pd.DataFrame, sensor: str = "s2") -> pd.DataFrame:
    """Tasks side by side (``split_tasks``: label → :class:`~s12ls_utils.tasks.Task`): per task (rows, by
    label) its ``sensor`` patches per split and the share of its test tiles that touch one of its training
    tiles (column :data:`TOUCHING`, in percent: :func:`leakage_summary` on the tile positions of
    ``catalog``)."""
    counts = pd.DataFrame(
        {label: task.counts().set_index("scope").loc[sensor] for label, task in split_tasks.items()}
    )
    leak = leakage_summary(
        {label: (task.splits[sensor], sensor) for label, task in split_tasks.items()}, catalog, names=["task"]
    )
    touching = leak.set_index("task")["test touching train (%)"].rename(TOUCHING)
    return counts.T[list(SPLITS)].astype(int).join(touching)


@dataclass
class SplitWindow:
    """The tiles of one square window with their split (``"dropped"``: taken out by a buffer), the pairs of
    tiles in different splits that touch inside it, its region and its keys (:func:`split_window`)."""

    tiles: pd.DataFrame
    pairs: pd.DataFrame
    region: str
    keys: list[str]


def split_window(splits, frame: pd.DataFrame, keys: Sequence[str] | None = None, dropped=()) -> SplitWindow:
    """A window ten tiles wide for drawing a split at the scale of single tiles.

    ``splits``: key → split (as :func:`tile_leakage` takes it); ``frame``: catalog rows of one sensor
    (positions, ``region``). The window is ``keys``, or else the densest window of tiles that touch a tile
    of another split (:func:`densest_window`), so that a second split can be drawn on the first one's
    window. ``dropped``: keys a buffer took out, drawn as split ``"dropped"``.
    """
    assign = pd.Series(_assignment(splits), name="split")
    rows = frame.assign(key=frame["key"].astype(str))
    tiles = rows.merge(assign, left_on="key", right_index=True)
    pairs = touching_pairs(assign, tiles)
    if keys is None:
        keys = densest_window(tiles, set(pairs["key_a"]) | set(pairs["key_b"]))
    buffer = rows[rows["key"].isin(set(map(str, dropped)))].assign(split="dropped")
    inside = set(keys)
    tiles = pd.concat([tiles, buffer], ignore_index=True)
    tiles = tiles[tiles["key"].isin(inside)]
    pairs = pairs[pairs["key_a"].isin(inside) & pairs["key_b"].isin(inside)].reset_index(drop=True)
    return SplitWindow(tiles, pairs, str(tiles["region"].iloc[0]), list(keys))


def balance_before_after(
    catalog: pd.DataFrame, configs: Mapping[str, object], totals: Mapping[str, Mapping[str, int]]
) -> tuple[pd.DataFrame, dict[str, SplitResult]]:
    """What the balancing step of the blocked split does: each named config (``method: blocked``) split
    without it and with it. Returns :func:`split_balance` of both (one long table with ``task`` and
    ``balance`` = ``"before"`` / ``"after"``; ``totals[name]`` are the tiles per scope before splitting) and
    the balanced :class:`SplitResult` per name."""
    tables, results = [], {}
    for name, cfg in configs.items():
        for step, on in (("before", False), ("after", True)):
            res = make_splits(catalog, _settings(cfg).replace(balance=on), method="blocked")
            tables.append(split_balance(res, totals[name]).assign(task=name, balance=step))
        results[name] = res
    return pd.concat(tables, ignore_index=True), results


def balance_summary(balance: pd.DataFrame) -> pd.DataFrame:
    """The worst rows of a :func:`balance_before_after` table, per step (before, after): the largest
    distance of a split's share from its target (points), of ``pixels_ratio`` from 1 and of the annotated
    share from the whole (points), the fewest tiles kept (% of the totals), and how many rows meet
    :data:`BALANCE_BOUNDS` out of how many."""
    g = balance.groupby("balance", sort=False)
    return pd.DataFrame(
        {
            "share_dev": g.apply(lambda f: (f["share"] - f["target"]).abs().max()),
            "px_dev": g["pixels_ratio"].apply(lambda s: (s - 1).abs().max()),
            "ann_dev": g["annotated_diff"].apply(lambda s: s.abs().max()),
            "min_kept": g["kept"].min(),
            "rows_ok": g["ok"].sum().astype(int),
            "rows": g.size(),
        }
    )


def blocked_facts(
    balance: pd.DataFrame,
    blocked: Mapping[str, SplitResult],
    catalog: pd.DataFrame,
    names: Mapping[str, str],
) -> dict:
    """The figures a text quotes about blocked splits, as one dict (``names``: task → the short name in the
    keys, e.g. ``{"S12LS-LD-blocked": "ld"}``).

    From :func:`balance_before_after` (``balance``, ``blocked``): the worst rows per step
    (``blk_<quantity>_<step>``, the columns of :func:`balance_summary`), what each split costs
    (``blk_<name>_<cost>``, :meth:`BlockedAssignment.cost`), the balanced share of each split
    (``blk_<name>_<scope>_<split>``, %) and the tiles kept in each scope (``blk_<name>_<scope>_kept``, %);
    and from :func:`leakage_summary` on ``catalog``, the touching and overlapping pairs of tiles in
    different splits over all scopes (``blk_touching``, ``blk_overlapping``).
    """
    summary = balance_summary(balance)
    facts = {f"blk_{q}_{step}": v for step, row in summary.iterrows() for q, v in row.items()}
    for name, res in blocked.items():
        facts |= {f"blk_{names[name]}_{k}": v for k, v in res.blocked.cost().items()}
    after = balance[balance["balance"] == "after"]
    for row in after.itertuples():
        facts[f"blk_{names[row.task]}_{row.scope}_{row.split}"] = row.share
        if row.split == "test":
            facts[f"blk_{names[row.task]}_{row.scope}_kept"] = row.kept
    leak = leakage_summary(
        {
            (name, scope): (frame.set_index("key")["split"], scope)
            for name, res in blocked.items()
            for scope, frame in res.scopes().items()
        },
        catalog,
    )
    facts["blk_touching"] = int(leak["touching pairs"].sum())
    facts["blk_overlapping"] = int(leak["overlapping pairs"].sum())
    return facts


def region_drift(per: pd.DataFrame, small: int = 3) -> dict:
    """How far the test split of each region strays from its region's coverage, from a
    :func:`region_balance` table: ``regions``, ``regions_in_test`` (regions with test tiles), ``drift``
    (the largest ``|pixels per tile in test ÷ all − 1|``), ``drift_region`` (its region) and
    ``drift_small_max`` (the largest drift of the ``small`` smallest regions)."""
    drift = (per["pixels/tile test ÷ all"] - 1).abs()
    return {
        "regions": len(per),
        "regions_in_test": int((per["test"] > 0).sum()),
        "drift": float(drift.max()),
        "drift_region": drift.idxmax(),
        "drift_small_max": float(drift[per.index[-small:]].max()),
    }


def region_balance(frame: pd.DataFrame) -> pd.DataFrame:
    """The splits of one scope per region (``frame``: ``region``, ``split``, ``n_positive``, e.g.
    ``SplitResult.frames["s2"]``): tiles per split, ``tiles``, ``test (%)``, and per split the landslide
    pixels per tile against the region's mean (``pixels/tile <split> ÷ all``; near 1: the split sees the
    coverage of its region). Indexed by region, the largest first."""
    region = frame["region"].astype(str).rename("region")
    per = pd.crosstab(region, frame["split"]).reindex(columns=list(SPLITS), fill_value=0)
    per.columns.name = None
    per["tiles"] = per[list(SPLITS)].sum(axis=1)
    per["test (%)"] = 100 * per["test"] / per["tiles"]
    mean_px = frame.groupby(region)["n_positive"].mean()
    by_split = frame.groupby([region, frame["split"]])["n_positive"].mean().unstack()
    for s in SPLITS:
        per[f"pixels/tile {s} ÷ all"] = by_split.reindex(columns=list(SPLITS))[s] / mean_px
    return per.sort_values("tiles", ascending=False, kind="stable")


def region_fold_table(
    folds: Mapping[str, Sequence[str]], selection: pd.DataFrame, blocked: pd.DataFrame
) -> pd.DataFrame:
    """Region hold-out folds against a selection and a blocked split of it, from metadata alone.

    ``folds``: fold → its test regions (e.g. :func:`s12ls_utils.reference.region_folds`); ``selection``:
    the selected tiles of one sensor (``region``); ``blocked``: their blocked split (``region``,
    ``split``). One row per fold: ``test regions`` (the fold's regions in the selection: a region hold-out
    tests all their tiles), ``test tiles``, ``share (%)`` of the selection and ``blocked test tiles`` that
    lie in these regions."""
    regions = selection["region"].astype(str)
    blocked_test = blocked.loc[blocked["split"] == "test", "region"].astype(str)
    rows = []
    for fold, fold_regions in folds.items():
        held = sorted(set(fold_regions) & set(regions))
        n = int(regions.isin(held).sum())
        rows.append(
            {
                "fold": fold,
                "test regions": ", ".join(held),
                "left out": ", ".join(sorted(set(fold_regions) - set(held))),
                "test tiles": n,
                "share (%)": 100 * n / len(regions),
                "blocked test tiles": int(blocked_test.isin(held).sum()),
            }
        )
    return pd.DataFrame(rows).set_index("fold")
