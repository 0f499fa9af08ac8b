"""The published metadata of the real Sen12Landslides, vendored in ``data/reference/``.

The dataset's code repository (``PaulH97/Sen12Landslides``, CC BY 4.0) publishes the task folders and
statistics made from the real files. ``data/reference/`` holds a compact copy derived from upstream commit
``5b313f2`` by ``data/reference/derive.py`` (its ``README.md`` lists the files, the archive's sha256 and the
licence). This module reads it; nothing here needs the patch files, so the book can show real ids, regions,
landslide-pixel counts, locations and published splits offline.

- :func:`patches`: one row per published patch and sensor (the union of S12LS-LD and S12LS-AD) with id,
  file name, full region (``usa_alaska`` stays ``usa_alaska``), the published ``inventory`` token (the
  first ``_`` token of the file name, so ``usa``), landslide pixels at t=0 (``n_positive``), WGS84
  ``lon``/``lat``, the UTM ``epsg`` and projected centre ``x``/``y`` (a pixel corner, as stored in the files;
  NaN for the 236 S2 patches of S12LS-AD whose location upstream does not mirror), the published split of
  each task and scope (``split_S12LS-LD``, ``split_S12LS-LD_aligned``, ``split_S12LS-AD``,
  ``split_S12LS-AD_aligned``; missing where the patch is not in that task or scope) and ``low_quality``.
- :func:`split_frame`: the patches of one task and scope with their published split, ready for
  :func:`s12ls_utils.splits.reference_split`.
- :func:`counts`: patches per task and scope (the published figures).
- :func:`catalog`: a catalog-shaped table (the columns :func:`s12ls_utils.splits.select` filters on) built
  from the metadata, so task presets can be checked against the published counts without the files.
- :func:`region_folds`: the paper's six region hold-out folds (experiment 3) as region lists.
- :func:`norms`, :func:`configs`, :func:`low_quality_ids`, :func:`file_stats`, :func:`region_stats`,
  :func:`anomalies`, :func:`experiments`, :func:`source`: the other published files.
- :func:`region_table` and :func:`published_facts`: the published dataset per region, and the figures
  chapter 01 quotes about it.
- :func:`published_benchmark`, :data:`PUBLISHED_PROTOCOL`: the paper's landslide-class results on S12LS-LD and
  how they were obtained.

The folder is found next to the package in a checkout (``<repo>/data/reference``) or at
``$S12LS_REFERENCE_DIR``. Tables are read once per process and returned as copies.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pandas as pd

#: The vendored folder in a checkout.
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "data" / "reference"
#: The published tasks and the release their split files were made on.
TASKS: dict[str, str] = {"S12LS-LD": "harmonized", "S12LS-AD": "raw"}
#: The scopes of a published task: one per sensor, and the aligned locations (split on their S2 files).
SCOPES: tuple[str, ...] = ("s2", "s1asc", "s1dsc", "aligned")


def _dir() -> Path:
    d = Path(os.environ.get("S12LS_REFERENCE_DIR", REFERENCE_DIR))
    if not (d / "patches.parquet").is_file():
        raise FileNotFoundError(
            f"the published reference metadata is not in {d}: it ships with the repository (data/reference/); "
            "set S12LS_REFERENCE_DIR to its folder if the package was installed elsewhere"
        )
    return d


@functools.cache
def _parquet(name: str) -> pd.DataFrame:
    return pd.read_parquet(_dir() / name)


@functools.cache
def _json(name: str):
    return json.loads((_dir() / name).read_text("utf-8"))


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown published task {task!r}; the reference has {', '.join(TASKS)}")
    return task


def _check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
    return scope


def patches(sensor: str | None = None) -> pd.DataFrame:
    """One row per published patch and sensor (see the module docstring for the columns)."""
    df = _parquet("patches.parquet").copy()
    if sensor is not None:
        if sensor not in ("s1asc", "s1dsc", "s2"):
            raise ValueError(f"unknown sensor {sensor!r}; expected s1asc, s1dsc or s2")
        df = df[df["sensor"] == sensor].reset_index(drop=True)
    return df


def split_frame(task: str, scope: str) -> pd.DataFrame:
    """The patches of ``task`` in ``scope`` with their published split (column ``split``).

    ``scope`` is a sensor or ``"aligned"``; the aligned scope is listed by its S2 files, which is what the
    published aligned split was made on. Columns: everything of :func:`patches` plus ``split``.
    """
    _check_task(task)
    _check_scope(scope)
    sensor = "s2" if scope == "aligned" else scope
    col = f"split_{task}_aligned" if scope == "aligned" else f"split_{task}"
    df = patches(sensor)
    df = df[df[col].notna()].copy()
    df["split"] = df[col].astype(str)
    return df.reset_index(drop=True)


def counts() -> pd.DataFrame:
    """Published patches per task and scope: columns task, scope, train, val, test, total."""
    rows = []
    for task in TASKS:
        for scope in SCOPES:
            c = split_frame(task, scope)["split"].value_counts()
            row = {"task": task, "scope": scope, **{s: int(c.get(s, 0)) for s in ("train", "val", "test")}}
            row["total"] = row["train"] + row["val"] + row["test"]
            rows.append(row)
    return pd.DataFrame(rows)


def catalog() -> pd.DataFrame:
    """A catalog-shaped table of every published patch, from the metadata alone.

    It has the columns :func:`s12ls_utils.splits.select` and the split functions use (``sensor``,
    ``region``, ``patch_id``, ``key``, ``path``, ``annotated``, ``event_date``, ``date_confidence``, ``n_positive``,
    ``positive_fraction``, ``center_x``/``center_y``, ``epsg``, ``lon``/``lat``, ``ann_ids``). What the
    metadata does not hold is stated, not invented: ``annotated`` is ``n_positive > 0`` (the files' own flag
    also marks a few annotated patches with an empty mask), ``event_date`` is NaT, ``date_confidence`` NaN
    and ``ann_ids`` empty. S2 rows without a published location have NaN coordinates.
    """
    df = patches()
    out = pd.DataFrame(
        {
            "sensor": df["sensor"].astype(str).astype("string"),
            "region": df["region"].astype(str).astype("string"),
            "patch_id": df["patch_id"].astype("int64"),
            "key": df["id"].astype("string"),
            "path": (df["sensor"].astype(str) + "/" + df["file"]).astype("string"),
            "annotated": df["n_positive"] > 0,
            "event_date": pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]"),
            "date_confidence": float("nan"),
            "ann_ids": pd.Series("", index=df.index, dtype="string"),
            "n_positive": df["n_positive"].astype("int64"),
            "positive_fraction": df["n_positive"] / 128**2,
            "center_x": df["x"],
            "center_y": df["y"],
            "epsg": df["epsg"],
            "crs": ("EPSG:" + df["epsg"].astype(str)).astype("string"),
            "lon": df["lon"],
            "lat": df["lat"],
            "low_quality": df["low_quality"],
        }
    )
    return out


def norms(task: str, release: str | None = None) -> dict:
    """Published normalisation statistics of a task: ``{sensor|"aligned": …}`` as in its norm files.

    ``release`` is ``"harmonized"`` (S1 in dB) or ``"raw"`` (S1 linear); by default the release the task's
    split files were made on. Per sensor ``{"mean": {var: x}, "std": {var: x}}``; ``"aligned"`` maps each
    sensor to such a block.
    """
    _check_task(task)
    blocks = _json("norms.json")["tasks"][task]
    release = release or TASKS[task]
    if release not in blocks:
        raise ValueError(f"{task} publishes norms for {', '.join(sorted(blocks))}, not {release!r}")
    return json.loads(json.dumps(blocks[release]))


def experiments() -> pd.DataFrame:
    """The old-format experiment folders (``exp1/final``; the region hold-outs ``exp3/<fold>``): one row per
    experiment, sensor, split and file."""
    return _parquet("experiments.parquet").copy()


def region_folds() -> dict[str, list[str]]:
    """The paper's region hold-out folds (experiment 3): fold name → the regions its test set holds, read
    from the test files of ``experiments/exp3/<fold>`` (e.g. ``europe`` → ``["italy"]``)."""
    exp = experiments()
    exp = exp[exp["experiment"].astype(str).str.startswith("exp3/") & (exp["split"] == "test")]
    regions = exp["id"].str.rsplit("_", n=1).str[0]
    return {
        str(fold).removeprefix("exp3/"): sorted(set(regions[exp["experiment"] == fold]))
        for fold in sorted(exp["experiment"].astype(str).unique())
    }


def experiment_norms() -> dict:
    """The old-format ``norm_data.json`` of each experiment, mapped to channel names in the files' order
    (S1 lists are VH, VV, DEM)."""
    return json.loads(json.dumps(_json("norms.json")["experiments"]))


def configs() -> dict:
    """The published ``config.json`` of each task and release: ``{task: {release: config}}``."""
    return json.loads(json.dumps(_json("configs.json")))


def low_quality_ids() -> frozenset[str]:
    """Location ids (``<region>_<id>``) flagged low quality upstream; the published tasks keep them."""
    return frozenset(_json("low_quality_ids.json"))


def file_stats() -> pd.DataFrame:
    """Per raw s1dsc file and variable: mean, std, min, max, p1, p99 (linear backscatter, DEM in m)."""
    return _parquet("file_stats.parquet").copy()


def region_stats() -> pd.DataFrame:
    """Per sensor and region (raw release): mean and std over the files (``over_files``) of each per-file
    statistic (``statistic``: mean, std, min, max, p1, p99), all variables of the sensor pooled."""
    return _parquet("region_stats.parquet").copy()


def anomalies() -> pd.DataFrame:
    """Per-file outliers against their region as published (z-score of the file mean)."""
    return _parquet("anomalies.parquet").copy()


def source() -> dict:
    """Where the metadata comes from: repository, commit, licence, archive and its sha256, citation."""
    return dict(_json("source.json"))


#: The published landslide-class results on harmonized S12LS-LD with Sentinel-2 + DEM (Hoehn et al. 2025,
#: Scientific Data 12, 1772): means over 3 seeds (42, 123, 777), 75 epochs, BCE + Dice, in percent.
PUBLISHED_LD_BENCHMARK: tuple[dict, ...] = (
    {"model": "U-ConvLSTM", "ap": 65.13, "f1": 61.95, "iou": 44.88, "precision": 60.59, "recall": 63.92},
    {"model": "UNet3D", "ap": 62.08, "f1": 58.82, "iou": 41.66, "precision": 55.75, "recall": 62.56},
    {"model": "ConvGRU", "ap": 60.00, "f1": 59.06, "iou": 41.91, "precision": 56.72, "recall": 61.77},
    {"model": "U-TAE", "ap": 67.75, "f1": 61.80, "iou": 44.74, "precision": 53.19, "recall": 74.90},
)
#: The protocol behind :data:`PUBLISHED_LD_BENCHMARK`.
PUBLISHED_PROTOCOL: dict[str, str] = {
    "task and split": "S12LS-LD, the published split",
    "data": "real patches, harmonized release",
    "input": "Sentinel-2 + DEM, the whole series",
    "epochs": "75",
    "loss": "BCE + Dice, pos_weight 5",
    "optimiser": "AdamW, lr 1e-3, weight decay 0.01",
    "batch": "16, whole 128 × 128 patches",
    "augmentation": "flips and rot90",
    "seeds": "3 (42, 123, 777), mean",
    "checkpoint tested": "the last epoch",
}


#: Landslide-class pixel F1 reported by third parties who trained on Sen12Landslides and tested on regions or
#: events that training did not see. **Unreviewed repositories**, not peer-reviewed results: cite them as such.
#: ``f1_low``/``f1_high`` span the figures each reports (fractions, not percent).
THIRD_PARTY_HOLDOUT: tuple[dict, ...] = (
    {
        "source": "godzhiwzz-create/source-free-cross-cluster-landslide (GitHub, unreviewed repository)",
        "protocol": "leave-one-cluster-out: whole spatial clusters of tiles held out",
        "model": "3D U-Net, the upstream training recipe",
        "f1_low": 0.18,
        "f1_high": 0.20,
    },
    {
        "source": "The-Kind-Sage/COSMOEYE (GitHub, unreviewed repository)",
        "protocol": "event-disjoint: the test events are not in training",
        "model": "as reported there",
        "f1_low": 0.32,
        "f1_high": 0.37,
    },
)


def published_benchmark() -> pd.DataFrame:
    """:data:`PUBLISHED_LD_BENCHMARK` as a table (one row per model, scores in percent)."""
    return pd.DataFrame(list(PUBLISHED_LD_BENCHMARK)).set_index("model")


# --------------------------------------------------------------------------------------------------
# The published dataset in figures (chapter 01)
# --------------------------------------------------------------------------------------------------
_SENSORS = ("s2", "s1asc", "s1dsc")


def _locations(published: pd.DataFrame) -> pd.DataFrame:
    """One row per location (a place covered by up to three sensors; its mask is the same in every sensor):
    region, lon, lat and the landslide pixels of its mask."""
    return published.groupby("id").agg(
        region=("region", "first"),
        lon=("lon", "first"),
        lat=("lat", "first"),
        n_positive=("n_positive", "max"),
    )


def region_table() -> pd.DataFrame:
    """Published patches per region and sensor, locations and annotated locations (a mask with at least one
    landslide pixel) and their share in percent, largest region first; then the row ``all regions`` and the
    row ``published S12LS-AD totals`` (per sensor, from the published split files), which must agree."""
    published = patches().astype({"region": str, "sensor": str})
    table = pd.crosstab(published["region"], published["sensor"]).reindex(
        columns=list(_SENSORS), fill_value=0
    )
    loc = _locations(published)
    by_region = loc.assign(annotated=loc["n_positive"] > 0).groupby("region")["annotated"]
    table["locations"] = by_region.size()
    table["annotated locations"] = by_region.sum()
    table = table.sort_values("locations", ascending=False, kind="stable")
    table.loc["all regions"] = table.sum()
    table["annotated share (%)"] = 100 * table["annotated locations"] / table["locations"]
    ad = counts().query("task == 'S12LS-AD'").set_index("scope")["total"]
    table.loc["published S12LS-AD totals"] = ad.reindex(list(_SENSORS))
    counted = ["s2", "s1asc", "s1dsc", "locations", "annotated locations"]
    table[counted] = table[counted].astype("Int64")  # whole numbers, blank where the row has none
    table.columns.name = None
    return table.rename_axis("region")


def published_facts() -> dict:
    """The figures chapter 01 quotes about the real dataset, from the published metadata alone: the source
    (``reference_repo``, ``reference_commit``, ``reference_license``); patches per sensor (``real_n_<sensor>``,
    ``real_n_patches``), locations (``real_n_locations``, with a position ``real_n_located``), S2 patches
    without a position (``real_n_s2_unlocated``) and regions; from :func:`region_table`, the S12LS-AD totals
    (``real_ad_published_<sensor>``) and whether the per-region counts add up to them, the largest region
    and its share of locations, regions without an orbit, annotated locations and the lowest and highest
    annotated share per region; and the landslide pixels per S2 patch of S12LS-LD (``real_ld_*``: patches,
    the task's threshold and excluded regions, min, median, mean, max, the fullest patch's and the whole
    task's landslide share in percent)."""
    src = source()
    published = patches()
    loc = _locations(published)
    n = published["sensor"].astype(str).value_counts()
    table = region_table()
    regions = table.drop(index=["all regions", "published S12LS-AD totals"])
    total, ad = table.loc["all regions"], table.loc["published S12LS-AD totals"]
    share = regions["annotated share (%)"]
    missing = [f"{r} ({s})" for r in regions.index for s in ("s1asc", "s1dsc") if regions.at[r, s] == 0]
    ld = split_frame("S12LS-LD", "s2")["n_positive"]
    ld_filter = configs()["S12LS-LD"][TASKS["S12LS-LD"]]["filter_criteria"]
    pixels = 128 * 128  # schema.PATCH_SIZE²: this module reads no patch and imports nothing of the package
    return {
        "reference_repo": src["repository"],
        "reference_commit": src["commit"],
        "reference_license": src["license"],
        "real_n_patches": len(published),
        **{f"real_n_{s}": int(n[s]) for s in _SENSORS},
        "real_n_locations": len(loc),
        "real_n_located": int(loc["lon"].notna().sum()),
        "real_n_s2_unlocated": int((published["sensor"].eq("s2") & published["lon"].isna()).sum()),
        "real_n_regions": int(published["region"].nunique()),
        **{f"real_ad_published_{s}": int(ad[s]) for s in _SENSORS},
        "real_counts_match_published": bool((total[list(_SENSORS)] == ad[list(_SENSORS)]).all()),
        "real_largest_region": regions.index[0],
        "real_largest_region_pct": round(100 * regions["locations"].iloc[0] / total["locations"], 1),
        "real_regions_missing_orbit": ", ".join(missing) or "none",
        "real_n_annotated_locations": int(total["annotated locations"]),
        "real_annotated_pct": round(float(total["annotated share (%)"]), 1),
        "real_annotated_min_region": share.idxmin(),
        "real_annotated_min_pct": round(float(share.min()), 1),
        "real_annotated_max_region": share.idxmax(),
        "real_annotated_max_pct": round(float(share.max()), 1),
        "real_ld_n_s2": len(ld),
        "real_ld_threshold": int(ld_filter["min_annotated_pixel"]),
        "real_ld_excluded": " and ".join(ld_filter["exclude_patterns"]),
        "real_ld_px_min": int(ld.min()),
        "real_ld_px_median": float(ld.median()),
        "real_ld_px_mean": float(ld.mean()),
        "real_ld_px_max": int(ld.max()),
        "real_ld_max_patch_pct": round(100 * int(ld.max()) / pixels, 1),
        "real_ld_positive_pct": round(100 * int(ld.sum()) / (len(ld) * pixels), 1),
    }
