"""Derive the compact reference tables in this folder from the published metadata archive.

Usage (from the repository root)::

    .venv/bin/python data/reference/derive.py ../shared/reference/sen12landslides-5b313f2.tar.xz

The archive holds files of the dataset's code repository (``PaulH97/Sen12Landslides`` at commit ``5b313f2``,
CC BY 4.0): the published task folders, the low-quality id list, per-file and per-region statistics and the
old-format experiment folders. This script reads them straight from the archive (nothing is unpacked) and
writes the files listed in ``README.md`` beside it. It is deterministic: the same archive gives the same
tables (``tests/test_reference.py`` re-derives them and compares).

Nothing in the archive is copied as it is except numbers, ids and file names: the split and location files
become one table with a row per published patch and sensor (``patches.parquet``), the statistics CSVs
become tidy parquet tables, and the JSON norms and configs are gathered into two JSON files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
#: Upstream repository and commit of the archive (its top folder is ``sen12landslides-<commit>``).
SOURCE_REPO = "PaulH97/Sen12Landslides"
SENSORS = ("s1asc", "s1dsc", "s2")
#: The published tasks and the release each is mirrored for: (task, release holding the split files).
TASKS = {"S12LS-LD": "harmonized", "S12LS-AD": "raw"}
#: Every norm file of the archive: (task, release).
NORM_SETS = (("S12LS-LD", "harmonized"), ("S12LS-LD", "raw"), ("S12LS-AD", "raw"))
#: Channel order of the old-format ``norm_data.json`` lists: the reference reads every data variable except
#: MASK, SCL and spatial_ref, in file order (S1 files store VH before VV).
OLD_FORMAT_CHANNELS = {
    "s2": ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "DEM"),
    "s1asc": ("VH", "VV", "DEM"),
    "s1dsc": ("VH", "VV", "DEM"),
}
FILE_RE = re.compile(r"^(?P<region>.+)_(?P<sensor>s1asc|s1dsc|s2)_(?P<id>\d+)\.nc$")
STAT_COLUMNS = ("mean", "std", "min", "max", "p1", "p99")


class _Archive:
    """The members of the tar.xz, read by their path below the top folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self._files: dict[str, bytes] = {}
        with tarfile.open(self.path, "r:xz") as tar:
            for m in tar.getmembers():
                if m.isfile():
                    top, _, rest = m.name.partition("/")
                    self.top = top
                    self._files[rest] = tar.extractfile(m).read()
        if not self._files:
            raise ValueError(f"{self.path} holds no files")
        self.commit = self.top.rsplit("-", 1)[-1]

    def names(self) -> list[str]:
        return sorted(self._files)

    def json(self, name: str):
        return json.loads(self._files[name])

    def text(self, name: str) -> str:
        return self._files[name].decode("utf-8")

    def csv(self, name: str, **kw) -> pd.DataFrame:
        return pd.read_csv(io.BytesIO(self._files[name]), **kw)

    def has(self, name: str) -> bool:
        return name in self._files


def _parse(file_name: str) -> tuple[str, str, int]:
    m = FILE_RE.match(file_name)
    if m is None:
        raise ValueError(f"not a patch file name: {file_name!r}")
    return m["region"], m["sensor"], int(m["id"])


def _split_rows(entries: dict, sensor: str, task: str) -> pd.DataFrame:
    rows = []
    for split, items in entries.items():
        for e in items:
            name = Path(e[sensor]).name
            region, s, pid = _parse(name)
            if s != sensor or f"{region}_{pid}" != e["id"]:
                raise ValueError(f"{task}/{sensor}: entry {e} does not match its file name")
            rows.append(
                {
                    "sensor": sensor,
                    "id": e["id"],
                    "file": name,
                    f"n_positive_{task}": int(e["pixel_annotated"]),
                    f"inventory_{task}": str(e["inventory"]),
                    f"split_{task}": split,
                }
            )
    return pd.DataFrame(rows)


def _locations(arc: _Archive, name: str) -> pd.DataFrame:
    feats = arc.json(name)["features"]
    df = pd.DataFrame([f["properties"] for f in feats])
    lon = np.array([f["geometry"]["coordinates"][0] for f in feats])
    lat = np.array([f["geometry"]["coordinates"][1] for f in feats])
    if not (np.allclose(lon, df["lon"]) and np.allclose(lat, df["lat"])):
        raise ValueError(f"{name}: geometry and lon/lat properties disagree")
    return df.rename(columns={"patch_id": "id", "crs_original": "crs"})[["id", "lon", "lat", "crs"]]


def _projected(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The stored patch centre (projected metres in the tile's UTM zone, a multiple of 10 m) from lon/lat."""
    from pyproj import Transformer

    x = np.full(len(df), np.nan)
    y = np.full(len(df), np.nan)
    for epsg, idx in df.groupby("epsg").indices.items():
        t = Transformer.from_crs(4326, int(epsg), always_xy=True)
        xx, yy = t.transform(df["lon"].to_numpy()[idx], df["lat"].to_numpy()[idx])
        x[idx], y[idx] = xx, yy
    rx, ry = np.round(x / 10.0) * 10.0, np.round(y / 10.0) * 10.0
    ok = np.isfinite(x)
    worst = float(max(np.abs(rx - x)[ok].max(initial=0), np.abs(ry - y)[ok].max(initial=0)))
    if worst > 0.01:
        raise ValueError(f"projected centres are not on the 10 m grid (worst residual {worst:.4f} m)")
    return rx, ry


def patches_table(arc: _Archive) -> pd.DataFrame:
    """One row per published patch and sensor (the union of both tasks)."""
    keys = ["sensor", "id", "file"]
    table = None
    for task, release in TASKS.items():
        base = f"tasks/{task}/{release}"
        per_task = pd.concat(
            [_split_rows(arc.json(f"{base}/{s}/splits.json"), s, task) for s in SENSORS], ignore_index=True
        )
        aligned = {}
        for split, items in arc.json(f"{base}/splits_aligned.json").items():
            for e in items:
                if not all(s in e for s in SENSORS):
                    raise ValueError(f"{task} aligned entry {e['id']} lacks a sensor path")
                aligned[e["id"]] = split
        per_task[f"split_{task}_aligned"] = per_task["id"].map(aligned)
        table = (
            per_task if table is None else table.merge(per_task, on=keys, how="outer", validate="one_to_one")
        )
    # a file in both tasks must carry the same pixel count and inventory in both
    for c in ("n_positive", "inventory"):
        a, b = (table[f"{c}_{t}"] for t in TASKS)
        both = a.notna() & b.notna()
        if (a[both] != b[both]).any():
            raise ValueError(f"{c} differs between the tasks for the same file")
        table[c] = a.fillna(b)
        table = table.drop(columns=[f"{c}_{t}" for t in TASKS])
    # locations: every sensor's geojson of both tasks; S2 of S12LS-AD is not mirrored (same point per id)
    locs = []
    for task, release in TASKS.items():
        base = f"tasks/{task}/{release}"
        for name in (
            *[f"{base}/{s}/patch_locations.geojson" for s in SENSORS],
            f"{base}/patch_locations_aligned.geojson",
        ):
            if arc.has(name):
                locs.append(_locations(arc, name))
    loc = pd.concat(locs, ignore_index=True)
    dup = loc.groupby("id").agg(lon=("lon", "nunique"), lat=("lat", "nunique"), crs=("crs", "nunique"))
    if (dup > 1).any().any():
        raise ValueError("a location id has two different positions across the published files")
    loc = loc.drop_duplicates("id").set_index("id")
    table["lon"] = table["id"].map(loc["lon"])
    table["lat"] = table["id"].map(loc["lat"])
    table["epsg"] = table["id"].map(loc["crs"].str.removeprefix("EPSG:").astype("int64")).astype("Int32")
    parsed = [_parse(f) for f in table["file"]]
    table["region"] = [p[0] for p in parsed]
    table["patch_id"] = np.array([p[2] for p in parsed], dtype="int32")
    # the published inventory token is the first "_" token of the file name
    if (table["inventory"] != table["file"].str.split("_").str[0]).any():
        raise ValueError("the published inventory is not the first '_' token of the file name")
    x, y = _projected(table)
    table["x"], table["y"] = x, y
    lq = set(low_quality_ids(arc))
    table["low_quality"] = table["id"].isin(lq)
    order = [
        "sensor",
        "id",
        "file",
        "region",
        "inventory",
        "patch_id",
        "n_positive",
        "lon",
        "lat",
        "epsg",
        "x",
        "y",
    ]
    split_cols = [f"split_{t}{s}" for t in TASKS for s in ("", "_aligned")]
    table = table[order + split_cols + ["low_quality"]]
    table = table.sort_values(["sensor", "file"], kind="stable").reset_index(drop=True)
    cat = pd.CategoricalDtype(["train", "val", "test"])
    table = table.astype(
        {
            "sensor": pd.CategoricalDtype(list(SENSORS)),
            "region": "category",
            "inventory": "category",
            "n_positive": "int32",
            **{c: cat for c in split_cols},
        }
    )
    return table


def low_quality_ids(arc: _Archive) -> list[str]:
    ids = [line.strip() for line in arc.text("tests/low_quality_patches.txt").splitlines() if line.strip()]
    if len(set(ids)) != len(ids):
        raise ValueError("tests/low_quality_patches.txt lists an id twice")
    return sorted(ids)


def experiments_table(arc: _Archive) -> pd.DataFrame:
    """The old-format experiment folders: one row per (experiment, sensor, split, file)."""
    rows = []
    for name in arc.names():
        m = re.match(r"^experiments/(?P<exp>.+)/(?P<sensor>s1asc|s1dsc|s2)/data_paths\.json$", name)
        if not m:
            continue
        for split, paths in arc.json(name).items():
            for p in paths:
                f = Path(p).name
                region, sensor, pid = _parse(f)
                if sensor != m["sensor"]:
                    raise ValueError(f"{name}: {p} is not a {m['sensor']} file")
                rows.append(
                    {
                        "experiment": m["exp"],
                        "sensor": sensor,
                        "split": split,
                        "file": f,
                        "id": f"{region}_{pid}",
                    }
                )
    df = (
        pd.DataFrame(rows).sort_values(["experiment", "sensor", "file"], kind="stable").reset_index(drop=True)
    )
    return df.astype(
        {
            "experiment": "category",
            "sensor": "category",
            "split": pd.CategoricalDtype(["train", "val", "test"]),
        }
    )


def norms(arc: _Archive) -> dict:
    """Every published normalisation block, by name (old-format lists mapped to their channel names)."""
    out: dict = {"tasks": {}, "experiments": {}}
    for task, release in NORM_SETS:
        base = f"tasks/{task}/{release}"
        block = {}
        for sensor in SENSORS:
            block[sensor] = arc.json(f"{base}/{sensor}/norm.json")[sensor]
        block["aligned"] = arc.json(f"{base}/norm_aligned.json")
        out["tasks"].setdefault(task, {})[release] = block
    for name in arc.names():
        m = re.match(r"^experiments/(?P<exp>.+)/(?P<sensor>s1asc|s1dsc|s2)/norm_data\.json$", name)
        if not m:
            continue
        nd = arc.json(name)
        ch = OLD_FORMAT_CHANNELS[m["sensor"]]
        if len(nd["mean"]) != len(ch) or len(nd["std"]) != len(ch):
            raise ValueError(f"{name}: {len(nd['mean'])} values for channels {ch}")
        out["experiments"].setdefault(m["exp"], {})[m["sensor"]] = {
            "mean": dict(zip(ch, map(float, nd["mean"]), strict=True)),
            "std": dict(zip(ch, map(float, nd["std"]), strict=True)),
        }
    return out


def configs(arc: _Archive) -> dict:
    out: dict = {}
    for task, release in NORM_SETS:
        out.setdefault(task, {})[release] = arc.json(f"tasks/{task}/{release}/config.json")
    return out


def file_stats(arc: _Archive) -> pd.DataFrame:
    """Per raw s1dsc file and variable: mean, std, min, max, p1, p99 (linear S1, DEM in metres)."""
    df = arc.csv("tests/stats/s1dsc_raw_stats.csv")
    parsed = [_parse(f + ".nc") for f in df["file"]]
    df.insert(0, "sensor", "s1dsc")
    df["file"] = df["file"] + ".nc"
    df.insert(2, "region", [p[0] for p in parsed])
    df = df.astype({"sensor": "category", "region": "category", "variable": "category"})
    return df.astype({c: "float32" for c in STAT_COLUMNS}).reset_index(drop=True)


def region_stats(arc: _Archive) -> pd.DataFrame:
    """Per sensor and region: mean and std over files of each per-file statistic (tidy)."""
    frames = []
    for sensor in SENSORS:
        df = arc.csv(f"tests/stats/{sensor}_raw_inventory_stats.csv", header=[0, 1], index_col=0)
        df.index.name = "region"
        long = df.stack(level=[0, 1], future_stack=True).rename("value").reset_index()
        long.columns = ["region", "statistic", "over_files", "value"]
        long.insert(0, "sensor", sensor)
        frames.append(long)
    out = pd.concat(frames, ignore_index=True)
    return out.astype(
        {"sensor": "category", "region": "category", "statistic": "category", "over_files": "category"}
    )


def anomalies(arc: _Archive) -> pd.DataFrame:
    """Per-file outliers against their region, as published (z-score of the file mean)."""
    frames = []
    for sensor in SENSORS:
        df = arc.csv(f"tests/stats/{sensor}_raw_anomalies.csv")
        df.insert(0, "sensor", sensor)
        df["file"] = df["file"] + ".nc"
        frames.append(df.rename(columns={"inventory": "region"}))
    out = pd.concat(frames, ignore_index=True)
    return out.astype({"sensor": "category", "region": "category", "variable": "category"})


def derive(archive: Path, out: Path) -> dict[str, Path]:
    """Write every reference file into ``out``; returns them by name."""
    arc = _Archive(archive)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}

    def parquet(name: str, df: pd.DataFrame) -> None:
        path = out / name
        df.to_parquet(path, index=False, compression="zstd")
        written[name] = path

    def js(name: str, obj) -> None:
        path = out / name
        path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        written[name] = path

    parquet("patches.parquet", patches_table(arc))
    parquet("experiments.parquet", experiments_table(arc))
    parquet("file_stats.parquet", file_stats(arc))
    parquet("region_stats.parquet", region_stats(arc))
    parquet("anomalies.parquet", anomalies(arc))
    js("norms.json", norms(arc))
    js("configs.json", configs(arc))
    js("low_quality_ids.json", low_quality_ids(arc))
    js(
        "source.json",
        {
            "repository": SOURCE_REPO,
            "commit": arc.commit,
            "license": "CC BY 4.0",
            "archive": arc.path.name,
            "archive_sha256": arc.sha256,
            "citation": "Hoehn, Heidler, Behling & Zhu 2025, Scientific Data 12, 1772, doi:10.1038/s41597-025-06167-2",
        },
    )
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archive", type=Path, help="sen12landslides-<commit>.tar.xz")
    p.add_argument("--out", type=Path, default=HERE, help="output folder (default: this folder)")
    a = p.parse_args(argv)
    if not a.archive.is_file():
        p.error(f"archive {a.archive} does not exist")
    for name, path in derive(a.archive, a.out).items():
        print(f"{path.stat().st_size / 1e6:7.3f} MB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
