"""Task files: configuration, filters, published / blocked splits, leakage, statistics, writing, reading."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest

from s12ls_utils import cli, io, reference, schema, splits, tasks
from s12ls_utils.catalog import build_catalog
from s12ls_utils.sample import generate

SEEDS = (0, 1, 7, 42, 123)


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def catalog(small_sample) -> pd.DataFrame:
    """Catalog of the shared sample, without writing a cache into it (the sample is read-only)."""
    return build_catalog(small_sample, use_cache=False, progress=False, workers=1)


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: relative path → (bytes, mtime_ns)."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _keys(entries) -> list[str]:
    return [e["id"] for e in entries]


def _grid_catalog(n_pairs: int = 40, spacing: float = 10_000.0) -> pd.DataFrame:
    """A constructed catalog: ``n_pairs`` locations, each with an overlapping neighbour 400 m east, plus a
    pair far apart that shares an annotation id; one region, one CRS, mixed coverage."""
    rows = []
    pid = 1
    rng = np.random.default_rng(5)
    for i in range(n_pairs):
        x, y = 500_000.0 + (i % 8) * spacing, 4_500_000.0 + (i // 8) * spacing
        for dx in (0.0, 400.0):
            n_pos = int(rng.integers(0, 900))
            rows.append(
                {
                    "sensor": "s2",
                    "region": "italy",
                    "patch_id": pid,
                    "key": f"italy_{pid}",
                    "path": f"s2/italy_s2_{pid}.nc",
                    "annotated": n_pos > 0,
                    "date_confidence": 1.0 if n_pos > 0 else float("nan"),
                    "ann_ids": "",
                    "n_positive": n_pos,
                    "positive_fraction": n_pos / schema.PATCH_SIZE**2,
                    "center_x": x + dx,
                    "center_y": y,
                    "epsg": 32632,
                    "lon": 11.0,
                    "lat": 44.0,
                }
            )
            pid += 1
    for k, x in enumerate((900_000.0, 990_000.0)):  # far apart, same landslide
        rows.append(
            {**rows[0], "patch_id": 900 + k, "key": f"italy_{900 + k}", "path": f"s2/italy_s2_{900 + k}.nc"}
        )
        rows[-1].update(center_x=x, ann_ids="77", annotated=True, n_positive=50)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------
def test_presets_load_and_differ():
    ld = tasks.load_config("S12LS-LD")
    ad = tasks.load_config("s12ls-ad")  # case-insensitive preset names
    assert ld.name == "S12LS-LD" and ad.name == "S12LS-AD"
    # the published definitions: the upstream config.json files, vendored (data/reference/configs.json)
    for cfg in (ld, ad):
        for release, published in reference.configs()[cfg.name].items():
            crit = published["filter_criteria"]
            for key, value in crit.items():  # the selection
                value = tuple(value) if isinstance(value, list) else value
                assert getattr(cfg, key) == value, (cfg.name, release, key)
            for key in ("test_size", "val_size", "seed"):  # the split
                assert getattr(cfg, key) == published[key], (cfg.name, release, key)
    for cfg in (ld, ad):
        assert cfg.method == "reference" and not cfg.exclude_low_quality
    blocked = [tasks.load_config(n) for n in ("S12LS-LD-blocked", "S12LS-AD-blocked")]
    for b, pub in zip(blocked, (ld, ad), strict=True):  # the published selection, our split
        assert b.method == "blocked" and b.balance and b.annotated_only == pub.annotated_only
        assert b.exclude_patterns == pub.exclude_patterns and b.min_annotated_pixel == pub.min_annotated_pixel
    assert tasks.PRESETS == ("S12LS-LD", "S12LS-AD", "S12LS-LD-blocked", "S12LS-AD-blocked")
    for cfg in (ld, ad, *blocked):
        assert cfg.satellites == schema.SENSORS and cfg.reference_sat == "s2"
        assert (cfg.test_size, cfg.val_size, cfg.seed) == (0.2, 0.2, 42)
        assert cfg.s1_unit == "dB"


def test_removed_spatial_method_and_legacy_keys(tmp_path):
    """Configs of earlier versions: ``spatial: false`` reads as the published split, ``distance_m`` is
    ignored, and the removed grouping split (``spatial: true``, ``method: spatial``, the -strict presets)
    is refused with a message that names the blocked split."""
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"name": "t", "spatial": False, "distance_m": 1280}))
    assert tasks.load_config(path).method == "reference"
    path.write_text(json.dumps({"name": "t", "spatial": True}))
    with pytest.raises(ValueError, match="removed.*method: blocked"):
        tasks.load_config(path)
    with pytest.raises(ValueError, match="removed.*method: blocked"):
        tasks.load_config({"method": "spatial"})
    with pytest.raises(ValueError, match="method"):
        tasks.load_config({"method": "random"})
    with pytest.raises((ValueError, FileNotFoundError), match="S12LS-LD-strict"):
        tasks.load_config("S12LS-LD-strict")


def test_config_files_and_overrides(tmp_path):
    yml = tmp_path / "my_task.yaml"
    yml.write_text("satellites: [s2]\nannotated_only: true\nseed: 3\n")
    cfg = tasks.load_config(yml)
    assert cfg.name == "my_task" and cfg.satellites == ("s2",) and cfg.seed == 3
    assert tasks.load_config(yml, seed=9).seed == 9
    # the reference pipeline's nested layout, with its bookkeeping keys
    ref = {
        "output_dir": "Sen12Landslides/S12LS-AD",
        "filter_criteria": {
            "exclude_patterns": ["newzealand"],
            "include_patterns": [],
            "satellites": ["s1asc", "s1dsc", "s2"],
            "reference_sat": "s2",
            "unify_test": True,
            "min_confidence": None,
            "max_confidence": None,
            "annotated_only": False,
            "non_annotated_only": False,
            "annotated_ratio": 0.5,
        },
        "n_workers": 20,
        "test_size": 0.2,
        "val_size": 0.2,
        "seed": 42,
    }
    js = tmp_path / "config.json"
    js.write_text(json.dumps(ref))
    cfg = tasks.load_config(js)
    assert cfg.annotated_ratio == 0.5 and cfg.exclude_patterns == ("newzealand",)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"satelites": ["s2"]}, "satelites"),
        ({"foo": 1, "bar": 2}, "'bar', 'foo'"),
        ({"annotated_only": True, "non_annotated_only": True}, "cannot both be true"),
        ({"satellites": ["s3"]}, "each sensor of 'satellites' must be .*, not 's3'"),
        ({"satellites": "s2"}, "list of strings"),
        ({"satellites": ["s1asc"], "reference_sat": "s2"}, "reference_sat"),
        ({"test_size": 1.5}, "test_size"),
        ({"min_confidence": 0.9, "max_confidence": 0.5}, "above"),
        ({"annotated_only": "yes"}, "true or false"),
        ({"seed": 1.5}, "integer"),
        ({"s1_unit": "db"}, "s1_unit"),
    ],
)
def test_config_validation_errors(raw, match):
    with pytest.raises(ValueError, match=match):
        tasks.load_config(raw)


def test_config_missing_file():
    with pytest.raises(FileNotFoundError, match="neither a preset"):
        tasks.load_config("no-such-task")


# --------------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------------
def test_select_filters(catalog):
    base = tasks.load_config({"name": "t"})
    sel = splits.select(catalog, base)
    assert {s: len(d) for s, d in sel.items()} == catalog.groupby("sensor").size().to_dict()
    ann = splits.select(catalog, base.replace(annotated_only=True))
    non = splits.select(catalog, base.replace(non_annotated_only=True))
    for s in schema.SENSORS:
        assert ann[s].annotated.all() and not non[s].annotated.any()
        assert len(ann[s]) + len(non[s]) == len(sel[s])
    # confidence: mean of date_confidence for annotated patches, 1.0 for the others
    hi = splits.select(catalog, base.replace(min_confidence=0.75))["s2"]
    assert ((hi.date_confidence >= 0.75) | ~hi.annotated).all()
    assert (~sel["s2"].annotated).sum() == (~hi.annotated).sum()
    lo = splits.select(catalog, base.replace(max_confidence=0.6))["s2"]
    assert lo.annotated.all() and (lo.date_confidence <= 0.6).all()
    px = splits.select(catalog, base.replace(min_annotated_pixel=100))["s2"]
    assert (px.n_positive >= 100).all() and len(px) == int((sel["s2"].n_positive >= 100).sum())
    # file-name patterns (lower-case substring of the file name)
    region = str(catalog.region.iloc[0])
    inc = splits.select(catalog, base.replace(include_patterns=(region.upper(),)))
    exc = splits.select(catalog, base.replace(exclude_patterns=(region,)))
    for s in schema.SENSORS:
        assert (inc[s].region == region).all() and not (exc[s].region == region).any()
        assert len(inc[s]) + len(exc[s]) == len(sel[s])


def test_select_annotated_ratio_keeps_same_locations(catalog):
    cfg = tasks.load_config({"name": "t", "annotated_ratio": 0.25})
    sel = splits.select(catalog, cfg)
    for s, df in sel.items():
        pool = catalog[catalog.sensor == s]
        n = len(pool)
        for flag, share in ((True, 0.25), (False, 0.75)):
            cand = pool[pool.annotated == flag].key.astype(str).tolist()
            want = int(n * share)
            kept = sorted(df.key[df.annotated == flag].astype(str))
            if len(cand) <= want:
                assert kept == sorted(cand)
            else:  # the `want` locations of lowest seeded rank: the same rank in every sensor
                rank = splits._priority(cfg.seed, cand)
                assert kept == sorted(np.array(cand)[np.argsort(rank, kind="stable")[:want]].tolist())
    assert sum(df.annotated.sum() for df in sel.values()) < catalog.annotated.sum()


def test_coverage_classes():
    df = pd.DataFrame({"positive_fraction": [0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.9]})
    p25, p75 = np.percentile(df.positive_fraction, [25, 75])
    expected = [0 if r <= p25 else 1 if r <= p75 else 2 for r in df.positive_fraction]
    assert splits.coverage_classes(df).tolist() == expected
    assert set(expected) == {0, 1, 2}


# --------------------------------------------------------------------------------------------------
# Splits: properties
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", splits.METHODS)
@pytest.mark.parametrize("task", tasks.PRESETS)
def test_splits_disjoint_and_complete(catalog, task, method, seed):
    cfg = tasks.load_config(task, seed=seed)
    res = splits.make_splits(catalog, cfg, method=method)
    assert res.method == method and res.config.method == method
    sel = splits.select(catalog, cfg)
    if method == "blocked":  # the buffer and unlocated tiles leave the task; nothing else does
        gone = set(res.blocked.dropped.index) | set(res.blocked.unlocated)
        sel = {s: d[~d.key.astype(str).isin(gone)] for s, d in sel.items()}
    for sensor, frame in res.frames.items():
        assert sorted(frame.key) == sorted(sel[sensor].key.astype(str))  # every selected patch once
        assert frame.key.is_unique and set(frame.split) <= set(splits.SPLITS)
    # aligned: locations every sensor selected, each with a path in every sensor's selection
    a = res.aligned
    common = set.intersection(*(set(d.key.astype(str)) for d in sel.values()))
    assert set(a.key) == common and a.key.is_unique
    for sensor in cfg.satellites:
        paths = dict(zip(sel[sensor].key.astype(str), sel[sensor].path.astype(str), strict=True))
        assert all(paths[k] == p for k, p in zip(a.key, a[sensor], strict=True))
    if method == "blocked":
        assert all(
            leak == {"test_vs_train": 0, "val_vs_train": 0, "test_vs_val": 0} for leak in res.leakage.values()
        )


def test_split_sizes_follow_the_fractions():
    cat = _grid_catalog(n_pairs=60)
    cfg = tasks.load_config({"name": "t", "satellites": ["s2"]})
    s = splits.split(cat, cfg, method="reference")  # split() of one frame; blocked needs make_splits
    n = len(cat)
    assert abs((s == "test").sum() - 0.2 * n) <= 3
    assert abs((s == "val").sum() - 0.16 * n) <= 4


def test_split_is_deterministic_and_seed_dependent(catalog):
    cfg = tasks.load_config("S12LS-AD")
    frame = splits.select(catalog, cfg)["s2"]
    a = splits.split(frame, cfg)
    b = splits.split(frame.sample(frac=1.0, random_state=3), cfg)  # row order does not matter
    assert a.equals(b.sort_index())
    others = [splits.split(frame, cfg.replace(seed=s)) for s in range(5)]
    assert any(not a.equals(o) for o in others)


def test_singleton_strata_go_to_train():
    cat = _grid_catalog(n_pairs=20)
    lone = {**cat.iloc[0].to_dict(), "patch_id": 999, "key": "usa_alaska_999", "region": "usa_alaska"}
    lone.update(center_x=2_000_000.0, path="s2/usa_alaska_s2_999.nc")
    cat = pd.concat([cat, pd.DataFrame([lone])], ignore_index=True)
    cfg = tasks.load_config({"name": "t", "satellites": ["s2"]})
    for seed in SEEDS:
        assert splits.split(cat, cfg.replace(seed=seed), method="reference")["usa_alaska_999"] == "train"


def test_leakage_on_constructed_catalog():
    """40 overlapping pairs and two far-apart tiles that show one landslide: the published split always
    separates some; the blocked split separates none (overlap and shared landslides are both links)."""
    cat = _grid_catalog(n_pairs=40)
    cfg = tasks.load_config({"name": "t", "satellites": ["s2"], "method": "reference"})
    leaked = []
    for seed in SEEDS:
        rnd = splits.split(cat, cfg.replace(seed=seed))
        leaked.append(splits.leakage(rnd, cat)["test_vs_train"])
        pairs = splits.leaking_pairs(rnd, cat)
        assert pairs["overlap"].sum() + pairs["ann_id"].sum() >= len(pairs) > 0
        blk = splits.blocked_split(cat, seed=seed)
        assert splits.leakage(blk.split, cat) == {"test_vs_train": 0, "val_vs_train": 0, "test_vs_val": 0}
        assert splits.leaking_pairs(blk.split, cat).empty
        assert blk.block["italy_900"] == blk.block["italy_901"]  # one landslide, 90 km apart: one block
    assert min(leaked) > 0  # 40 overlapping pairs: a random split always separates some
    linked = splits.leaking_pairs(pd.Series({"italy_900": "test", "italy_901": "train"}), cat)
    assert linked[["key_a", "key_b", "overlap", "ann_id"]].values.tolist() == [
        ["italy_900", "italy_901", False, True]
    ]


def test_random_split_leaks_on_the_sample_blocked_does_not(small_sample, catalog):
    man = generate.load_manifest(small_sample)
    canvases = pd.Series([f["canvas"] for f in man["files"] if f["sensor"] == "s2"])
    assert (canvases.value_counts() > 1).any(), "the sample should hold clusters of touching tiles"
    cfg = tasks.load_config({"name": "t", "satellites": ["s2"]})
    frame = splits.select(catalog, cfg)["s2"]
    keys = frame["key"].astype(str).to_numpy()
    random_touch = []
    for seed in range(30):
        # a split that ignores geography (half the patches drawn into test; on a sample this small, the
        # published recipe's fifth is one patch), against the blocked split
        rng = np.random.default_rng(seed)
        rnd = pd.Series(np.where(rng.random(len(keys)) < 0.5, "test", "train"), index=keys)
        touch = splits.tile_leakage(rnd, frame)
        row = touch[(touch["split"] == "test") & (touch["other"] == "train")].iloc[0]
        random_touch.append(int(row["tiles_touching"]))
        blocked = splits.blocked_split(frame, seed=seed).split
        assert splits.tile_leakage(blocked, frame)["touch_pairs"].sum() == 0
    assert max(random_touch) > 0  # a random split puts neighbouring tiles into test and train


def test_leakage_accepts_splits_json_layout(catalog):
    frame = catalog[catalog.sensor == "s2"]
    keys = sorted(frame.key.astype(str))
    layout = {"train": [{"id": k} for k in keys[::2]], "val": [], "test": [{"id": k} for k in keys[1::2]]}
    assert splits.leakage(layout, frame) == splits.leakage(
        pd.Series({e["id"]: s for s, lst in layout.items() for e in lst}), frame
    )


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------
def _two_pass_reference(files: list[Path], sensor: str) -> dict[str, dict[str, float]]:
    """All values of all files in memory, numpy mean then variance (clipped, S1 in dB, NaN left out)."""
    values: dict[str, list[np.ndarray]] = {}
    for f in files:
        ds = io.open_patch(f, s1_unit="dB" if sensor != "s2" else "native", load=True)
        for v in schema.FEATURES[sensor]:
            lo, hi = schema.CLIP_RANGES["DEM" if v == "DEM" else schema.sensor_family(sensor)]
            values.setdefault(v, []).append(np.clip(ds[v].values.astype("float64"), lo, hi).ravel())
    out = {"mean": {}, "std": {}}
    for v, parts in values.items():
        a = np.concatenate(parts)
        a = a[np.isfinite(a)]
        mean = a.sum() / a.size
        out["mean"][v] = mean
        out["std"][v] = float(np.sqrt(((a - mean) ** 2).sum() / a.size))
    return out


@pytest.mark.parametrize("sensor", schema.SENSORS)
def test_norm_stats_equal_two_pass_reference(small_sample, catalog, sensor):
    rels = sorted(catalog.path[catalog.sensor == sensor].astype(str))
    got = tasks.norm_stats(rels, small_sample, sensor, workers=1)
    ref = _two_pass_reference([small_sample / r for r in rels], sensor)
    assert list(got["mean"]) == list(schema.FEATURES[sensor])
    for v in schema.FEATURES[sensor]:
        assert got["mean"][v] == pytest.approx(ref["mean"][v], rel=1e-6)
        assert got["std"][v] == pytest.approx(ref["std"][v], rel=1e-6)
    if sensor != "s2":
        assert -30 < got["mean"]["VV"] < 0  # dB
        lin = tasks.norm_stats(rels, small_sample, sensor, workers=1, s1_unit="linear")
        assert 0 < lin["mean"]["VV"] < 1


def test_norm_stats_do_not_depend_on_workers_or_chunks(small_sample, catalog):
    rels = sorted(catalog.path[catalog.sensor == "s2"].astype(str)) * 2  # enough files for the pool
    assert len(rels) >= 16
    assert tasks.norm_stats(rels, small_sample, "s2", workers=1) == tasks.norm_stats(
        rels, small_sample, "s2", workers=2
    )


def test_merge_moments_is_exact_for_any_partition():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(1e4, 3.0, 5000), rng.normal(-2.0, 1e-3, 7)])
    cuts = np.sort(rng.choice(np.arange(1, a.size), 20, replace=False))
    parts = [{"x": tasks._float_moments(p)} for p in np.split(a, cuts)]
    n, mean, m2 = tasks.merge_moments(parts)["x"]
    assert n == a.size
    assert mean == pytest.approx(a.mean(), rel=1e-12)
    assert m2 / n == pytest.approx(a.var(), rel=1e-9)


def test_file_moments_fill_values_and_nan(tmp_path):
    path = tmp_path / "italy_s2_1.nc"
    with netCDF4.Dataset(path, "w") as ds:
        for d, n in (("time", 2), ("y", 3), ("x", 4)):
            ds.createDimension(d, n)
        b = ds.createVariable("B02", "i2", ("time", "y", "x"), fill_value=-9999)
        vals = np.arange(24, dtype="int16").reshape(2, 3, 4) * 1000  # up to 23000: clipped to 10000
        vals[0, 0, 0] = -9999
        b[:] = vals
        ds.createVariable("MASK", "u1", ("time", "y", "x"))[:] = 0
        dem = ds.createVariable("DEM", "f4", ("time", "y", "x"))
        dv = np.full((2, 3, 4), 100.0, dtype="float32")
        dv[1] = np.nan
        dem[:] = dv
    mom = tasks.file_moments(path, "s2")
    assert set(mom) == {"B02", "DEM"}  # MASK is not a feature
    kept = np.clip(vals.ravel()[1:].astype("float64"), 0, 10000)
    n, mean, m2 = mom["B02"]
    assert (
        n == 23
        and mean == pytest.approx(kept.mean())
        and m2 == pytest.approx(((kept - kept.mean()) ** 2).sum())
    )
    assert mom["DEM"] == (12, 100.0, 0.0)


# --------------------------------------------------------------------------------------------------
# Writing and reading
# --------------------------------------------------------------------------------------------------
EXPECTED_FILES = sorted(
    [
        "config.json",
        "norm_aligned.json",
        "patch_locations_aligned.geojson",
        "splits_aligned.json",
        *(
            f"{s}/{f}"
            for s in schema.SENSORS
            for f in ("norm.json", "patch_locations.geojson", "splits.json")
        ),
    ]
)


@pytest.fixture(scope="module")
def written(small_sample, catalog, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tasks")
    tasks.write_task(small_sample, out, "S12LS-AD", catalog=catalog, workers=1)
    return out / "S12LS-AD"


def test_written_task_layout(written, small_sample, catalog):
    assert sorted(_tree(written)) == EXPECTED_FILES
    cfg = json.loads((written / "config.json").read_text())
    assert cfg["name"] == "S12LS-AD" and cfg["package_version"] and cfg["norm"]["s1_unit"] == "dB"
    assert tasks.load_config(written) == tasks.load_config("S12LS-AD")  # the config round-trips
    res = splits.make_splits(catalog, tasks.load_config("S12LS-AD"))
    for sensor in schema.SENSORS:
        sp = json.loads((written / sensor / "splits.json").read_text())
        assert set(sp) == set(splits.SPLITS)
        keys = [k for s in splits.SPLITS for k in _keys(sp[s])]
        assert sorted(keys) == sorted(res.frames[sensor].key) and len(set(keys)) == len(keys)
        for e in sp["train"]:
            assert set(e) == {"id", sensor, "pixel_annotated", "inventory"}
            assert (small_sample / e[sensor]).is_file() and e[sensor].startswith(f"{sensor}/")
        norm = json.loads((written / sensor / "norm.json").read_text())
        assert list(norm) == [sensor] and set(norm[sensor]) == {"mean", "std"}
        assert set(norm[sensor]["mean"]) == set(schema.FEATURES[sensor])
        train = [e[sensor] for e in sp["train"]]
        direct = tasks.norm_stats(sorted(train), small_sample, sensor, workers=1)
        for v in schema.FEATURES[sensor]:
            assert norm[sensor]["mean"][v] == pytest.approx(direct["mean"][v], rel=1e-12)
        gj = json.loads((written / sensor / "patch_locations.geojson").read_text())
        assert len(gj["features"]) == len(keys)
        props = gj["features"][0]["properties"]
        assert set(props) == {
            "patch_id",
            "split",
            "inventory",
            "annotated_pixels",
            "lon",
            "lat",
            "crs_original",
        }
        assert props["crs_original"].startswith("EPSG:32")
    al = json.loads((written / "splits_aligned.json").read_text())
    for s in splits.SPLITS:
        for e in al[s]:
            for sensor in schema.SENSORS:  # aligned entries exist in every sensor
                assert (small_sample / e[sensor]).is_file()
                assert e["id"] in {
                    x["id"]
                    for lst in json.loads((written / sensor / "splits.json").read_text()).values()
                    for x in lst
                }
    assert set(json.loads((written / "norm_aligned.json").read_text())) == set(schema.SENSORS)


def test_same_seed_gives_byte_identical_files(written, small_sample, catalog, tmp_path):
    again = tasks.write_task(small_sample, tmp_path, "S12LS-AD", catalog=catalog, workers=2)
    a, b = _tree(written), _tree(again)
    assert sorted(a) == sorted(b)
    for rel in a:
        assert a[rel][0] == b[rel][0], f"{rel} differs between two runs"
    other = tasks.write_task(
        small_sample, tmp_path / "o", tasks.load_config("S12LS-AD", seed=7), catalog=catalog, workers=1
    )
    assert (other / "s2" / "splits.json").read_bytes() != (again / "s2" / "splits.json").read_bytes()


def test_overwrite_refusal_leaves_folder_untouched(small_sample, catalog, tmp_path):
    path = tasks.write_task(small_sample, tmp_path, "S12LS-LD", catalog=catalog, workers=1)
    before = _tree(path)
    with pytest.raises(FileExistsError, match="overwrite"):
        tasks.write_task(small_sample, tmp_path, "S12LS-LD", catalog=catalog, workers=1)
    assert _tree(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S12LS-LD"]  # no temporary folder left
    # with overwrite the folder is replaced (same content, new files), nothing else is left behind
    tasks.write_task(small_sample, tmp_path, "S12LS-LD", overwrite=True, catalog=catalog, workers=1)
    after = _tree(path)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S12LS-LD"]


@pytest.mark.parametrize("config_json", [None, '{"name": "S12LS-LD", "seed": 42}', "not json"])
def test_overwrite_never_replaces_a_task_folder_we_did_not_write(
    small_sample, catalog, tmp_path, config_json
):
    """A published task folder (no ``package_version`` in its config, or no config) survives overwrite."""
    published = tmp_path / "S12LS-LD"
    (published / "s2").mkdir(parents=True)
    (published / "s2" / "data_paths.json").write_text('{"train": ["s2/a.nc"], "val": [], "test": []}')
    if config_json is not None:
        (published / "config.json").write_text(config_json)
    before = _tree(published)
    with pytest.raises(FileExistsError, match="not written by s12ls_utils"):
        tasks.write_task(small_sample, tmp_path, "S12LS-LD", overwrite=True, catalog=catalog, workers=1)
    assert _tree(published) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S12LS-LD"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_interrupted_write_leaves_no_partial_folder(small_sample, catalog, tmp_path, monkeypatch, exc):
    real = tasks._write_json
    calls = []

    def failing(path, obj, compact=False):
        calls.append(path)
        if len(calls) == 4:
            raise exc("interrupted")
        real(path, obj, compact)

    monkeypatch.setattr(tasks, "_write_json", failing)
    with pytest.raises(exc):
        tasks.write_task(small_sample, tmp_path, "S12LS-LD", catalog=catalog, workers=1)
    assert len(calls) == 4
    assert list(tmp_path.iterdir()) == []  # neither the task folder nor a temporary folder
    # interrupted while replacing an existing task: the old task stays as it was
    monkeypatch.setattr(tasks, "_write_json", real)
    path = tasks.write_task(small_sample, tmp_path, "S12LS-LD", catalog=catalog, workers=1)
    before = _tree(path)
    calls.clear()
    monkeypatch.setattr(tasks, "_write_json", failing)
    with pytest.raises(exc):
        tasks.write_task(
            small_sample,
            tmp_path,
            tasks.load_config("S12LS-LD", seed=5),
            overwrite=True,
            catalog=catalog,
            workers=1,
        )
    assert _tree(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S12LS-LD"]


def test_stale_temporary_folders_are_removed(small_sample, catalog, tmp_path):
    stale = tmp_path / ".S12LS-LD.tmp-999999999-abc"
    (stale / "s2").mkdir(parents=True)
    tasks.write_task(small_sample, tmp_path, "S12LS-LD", catalog=catalog, workers=1)
    assert not stale.exists()


def test_load_task_current_format(written, small_sample):
    task = tasks.load_task(written, data_dir=small_sample)
    assert task.format == "current" and task.name == "S12LS-AD" and task.sensors == list(schema.SENSORS)
    assert task.units == {"s1asc": "dB", "s1dsc": "dB", "s2": "reflectance x10000"}
    sp = json.loads((written / "s2" / "splits.json").read_text())
    assert _keys(task.splits["s2"]["train"]) == _keys(sp["train"])
    e = task.splits["s2"]["train"][0]
    assert e["path"] == e["s2"] and not Path(e["path"]).is_absolute()
    assert all(p.is_file() for p in task.files("s2", "test"))
    mean, std = task.channel_stats("s2")
    assert mean.shape == (11,) and mean[2] == task.norm["s2"]["mean"]["B04"] and np.all(std > 0)
    assert task.channel_stats("s1asc", aligned=True)[0][0] == task.norm_aligned["s1asc"]["mean"]["VV"]
    assert task.aligned is not None and task.counts().set_index("scope").loc["aligned", "total"] == sum(
        len(v) for v in task.aligned.values()
    )
    absolute = tasks.load_task(written, data_dir=small_sample, absolute=True)
    assert all(Path(e["path"]).is_file() for s in splits.SPLITS for e in absolute.splits["s1dsc"][s])
    assert Path(absolute.aligned["train"][0]["s1asc"]).is_absolute()
    with pytest.raises(ValueError, match="data_dir"):
        tasks.load_task(written, absolute=True)


def test_load_task_old_format(tmp_path):
    root = tmp_path / "S12LS-LD"
    s2_means = [1861.0, 2029.0, 1953.0, 2394.0, 3354.0, 3668.0, 3762.0, 3852.0, 2613.0, 1889.0, 685.0]
    (root / "s2").mkdir(parents=True)
    (root / "s1asc").mkdir()
    (root / "s2" / "data_paths.json").write_text(
        json.dumps(
            {
                "train": ["data/final/s2/italy_s2_4635.nc", "data/final/s2/usa_alaska_s2_1987.nc"],
                "val": ["data/final/s2/italy_s2_6318.nc"],
                "test": ["s2/chimanimani_s2_520.nc"],
            }
        )
    )
    (root / "s2" / "norm_data.json").write_text(json.dumps({"mean": s2_means, "std": [100.0] * 11}))
    (root / "s1asc" / "data_paths.json").write_text(
        json.dumps({"train": ["x/italy_s1asc_4635.nc"], "val": [], "test": []})
    )
    (root / "s1asc" / "norm_data.json").write_text(
        json.dumps({"mean": [0.037, 0.157, 692.0], "std": [0.041, 0.147, 640.0]})
    )
    task = tasks.load_task(root)
    assert task.format == "old" and task.aligned is None and task.config is None
    assert task.sensors == ["s1asc", "s2"]
    tr = task.splits["s2"]["train"]
    assert [e["id"] for e in tr] == ["italy_4635", "usa_alaska_1987"]
    assert [e["path"] for e in tr] == ["s2/italy_s2_4635.nc", "s2/usa_alaska_s2_1987.nc"]
    assert tr[1]["inventory"] == "usa_alaska" and tr[1]["pixel_annotated"] is None
    assert task.splits["s2"]["test"][0]["path"] == "s2/chimanimani_s2_520.nc"
    assert task.norm["s2"]["mean"]["B04"] == 1953.0 and task.norm["s2"]["mean"]["DEM"] == 685.0
    np.testing.assert_array_equal(task.channel_stats("s2")[0], s2_means)
    assert task.units["s1asc"] == "linear"  # the published S1 statistics are linear
    # the old published S1 lists are in the files' order VH, VV, DEM (VH is the darker channel)
    assert task.norm["s1asc"]["mean"] == {"VH": 0.037, "VV": 0.157, "DEM": 692.0}
    assert task.norm["s1asc"]["std"]["VH"] == 0.041
    np.testing.assert_array_equal(task.channel_stats("s1asc")[0], [0.157, 0.037, 692.0])  # ours: VV first
    (root / "s2" / "norm_data.json").write_text(json.dumps({"mean": [1.0] * 12, "std": [1.0] * 12}))
    with pytest.raises(ValueError, match="channels"):
        tasks.load_task(root)


def test_load_task_finds_the_data_of_a_downloaded_published_task(tmp_path, written):
    """``<dest>/tasks/S12LS-LD/harmonized`` (the hub layout) reads its paths against ``<dest>/data_harmonized``."""
    dest = tmp_path / "real"
    (dest / "data_harmonized" / "s2").mkdir(parents=True)
    target = dest / "tasks" / "S12LS-AD" / "harmonized"
    shutil.copytree(written, target)
    task = tasks.load_task(target)
    assert task.data_dir == (dest / "data_harmonized").resolve()
    first = task.splits["s2"]["train"][0]
    assert task.files("s2")[0] == task.data_dir / first["s2"]
    # no sensor folder there: no guess, and a clear error when paths are needed
    raw = dest / "tasks" / "S12LS-AD" / "raw"
    shutil.copytree(written, raw)
    assert tasks.load_task(raw).data_dir is None
    with pytest.raises(ValueError, match="data_dir"):
        tasks.load_task(raw).files("s2")


def test_task_label_names_published_release_folders_apart():
    assert tasks.task_label("data/sample/tasks/S12LS-LD") == "S12LS-LD"
    assert tasks.task_label("data/real/tasks/S12LS-LD/harmonized") == "S12LS-LD-harmonized"
    assert tasks.task_label("data/real/tasks/S12LS-AD/raw") == "S12LS-AD-raw"


def test_reference_split_on_too_small_data_draws_without_strata(caplog):
    frame = pd.DataFrame(
        {
            "file": [f"r{i % 4}_s2_{i}.nc" for i in range(8)],
            "n_positive": [0, 10, 100, 1000, 5, 50, 500, 5000],
        }
    )
    with caplog.at_level("WARNING", logger="s12ls_utils.splits"):
        got = splits.reference_split(frame)
    assert "without strata" in caplog.text
    assert sorted(got.value_counts().to_dict().items()) == [("test", 2), ("train", 5), ("val", 1)]


def test_load_task_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        tasks.load_task(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="holds no task"):
        tasks.load_task(tmp_path)


def _linked_data(src: Path, dest: Path, drop: set[str] = frozenset()) -> Path:
    """``dest`` holding ``src``'s patch files as links, except the relative paths in ``drop``."""
    for sensor in schema.SENSORS:
        (dest / sensor).mkdir(parents=True)
        for f in sorted((src / sensor).glob("*.nc")):
            if f"{sensor}/{f.name}" not in drop:
                (dest / sensor / f.name).symlink_to(f)
    return dest


def test_check_files_counts_names_the_folder_and_filters_on_request(written, small_sample, tmp_path):
    task = tasks.load_task(written, data_dir=small_sample)
    assert tasks.check_files(task).file_check.n_missing == 0  # the complete sample
    train = [e["s2"] for e in task.splits["s2"]["train"]]
    test = [e["s2"] for e in task.splits["s2"]["test"]]
    partial = _linked_data(small_sample, tmp_path / "real" / "partial", {train[0], test[0]})
    (tmp_path / "real" / "data_raw").symlink_to(small_sample)  # a sibling that holds them
    task = tasks.load_task(written, data_dir=partial)
    with pytest.raises(tasks.MissingFilesError) as err:
        tasks.check_files(task, "s2")
    report = err.value.report
    assert report.missing == {"s2": 2} and report.total == {
        "s2": sum(len(v) for v in task.splits["s2"].values())
    }
    assert report.hint == (tmp_path / "real" / "data_raw").resolve() and report.hint_found == 2
    text = str(err.value)
    assert (
        "2 of its" in text and str(partial) in text and "data_dir=" in text and "allow_missing=True" in text
    )
    cli_text = report.message(cli=True)
    assert "--data" in cli_text and "--allow-missing" in cli_text and "data_dir=" not in cli_text
    # only the splits asked for: the train split alone misses one file
    with pytest.raises(tasks.MissingFilesError, match="1 of its"):
        tasks.check_files(task, "s2", ("train",))
    assert tasks.check_files(task, "s2", ("val",)).file_check.n_missing == 0
    # going on: the entries whose files exist, the others counted
    kept = tasks.check_files(task, "s2", allow_missing=True)
    assert [e["s2"] for e in kept.splits["s2"]["train"]] == train[1:]
    assert [e["s2"] for e in kept.splits["s2"]["test"]] == test[1:]
    assert kept.splits["s1asc"] == task.splits["s1asc"] and kept.aligned == task.aligned  # not checked here
    assert kept.file_check.record()["missing"] == {"s2": 2}
    assert tasks.check_files(kept, "s2").file_check is kept.file_check  # a second check keeps the record
    fused = tasks.check_files(
        task, list(schema.SENSORS), allow_missing=True
    )  # several sensors: aligned split
    assert all(e["s2"] not in (train[0], test[0]) for sp in splits.SPLITS for e in fused.aligned[sp])
    assert fused.splits["s2"] == task.splits["s2"]
    # a one-sensor download: the message says which sensors are absent altogether
    s1 = {f"{s}/{f.name}" for s in ("s1asc", "s1dsc") for f in (small_sample / s).glob("*.nc")}
    only_s2 = _linked_data(small_sample, tmp_path / "s2only" / "d", s1)
    with pytest.raises(tasks.MissingFilesError, match="No s1asc or s1dsc file is there at all") as err:
        tasks.check_files(tasks.load_task(written, data_dir=only_s2))
    assert "sensors=" in str(err.value) and "--sensors" in err.value.report.message(cli=True)
    # nothing found near it: the message says to check the download
    lone = _linked_data(small_sample, tmp_path / "a" / "b" / "lone" / "x", {train[0]})
    with pytest.raises(tasks.MissingFilesError, match="check that the download is complete"):
        tasks.check_files(tasks.load_task(written, data_dir=lone), "s2")


def test_task_without_data_folder_names_the_option(written, tmp_path):
    lone = tmp_path / "S12LS-AD"
    shutil.copytree(written, lone)
    task = tasks.load_task(lone)
    assert task.data_dir is None
    for call in (lambda: task.files("s2"), lambda: tasks.check_files(task)):
        with pytest.raises(ValueError, match="--data DIR") as err:
            call()
        assert "load_task(path" not in str(err.value)


def test_write_norm_copies_the_task_and_records_the_data_folder(written, small_sample, catalog, tmp_path):
    released = tasks.write_task(
        None,
        tmp_path / "released",
        "S12LS-AD",
        result=splits.make_splits(catalog, tasks.load_config("S12LS-AD")),
        stats=False,
        inventory="token",
        compact=True,
    )
    before = _tree(released)
    out = tasks.write_norm(released, small_sample, out_dir=tmp_path / "mine", workers=1)
    assert (
        out == tmp_path / "mine" / "S12LS-AD" and _tree(released) == before
    )  # the released folder as it was
    task = tasks.load_task(out)
    assert task.data_dir == Path(small_sample).resolve() and not task.missing
    ref = tasks.load_task(written, data_dir=small_sample)
    for sensor in task.sensors:
        assert task.norm[sensor]["mean"] == pytest.approx(ref.norm[sensor]["mean"]), sensor
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data_dir"]["path"] == str(Path(small_sample).resolve())
    assert (out / cfg["data_dir"]["relative_to_task"]).resolve() == Path(small_sample).resolve()
    assert tasks.load_config(out) == tasks.load_config(released)  # the records do not change the settings
    with pytest.raises(FileExistsError, match="already has statistics"):
        tasks.write_norm(released, small_sample, out_dir=tmp_path / "mine", workers=1)
    # one sensor: its statistics only, no aligned ones (they need every sensor of the aligned split)
    only = tasks.write_norm(released, small_sample, out_dir=tmp_path / "s2", sensors=["s2"], workers=1)
    t2 = tasks.load_task(only)
    assert set(t2.norm) == {"s2"} and t2.norm_aligned is None and "s1asc/norm.json" in t2.missing
    # default: DATA/tasks, where `s12ls splits` writes (here a copy of the sample, to keep it read-only)
    data = _linked_data(small_sample, tmp_path / "data")
    assert tasks.write_norm(released, data, workers=1) == data / "tasks" / "S12LS-AD"


def _annotated_only_ad(catalog: pd.DataFrame, out: Path, name: str = "S12LS-AD") -> Path:
    """An S12LS-AD-named task of the annotated patches only, like tasks/S12LS-AD/harmonized at 5b313f2."""
    cfg = tasks.load_config("S12LS-AD", name=name, annotated_only=True)
    return tasks.write_task(None, out, cfg, result=splits.make_splits(catalog, cfg), stats=False)


def test_load_task_warns_about_the_annotated_only_ad_folder(written, catalog, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="s12ls_utils.splits"):
        tasks.load_task(written)  # the sample's S12LS-AD: many non-annotated patches
    assert "S12LS-AD trap" not in caplog.text
    assert tasks.ad_trap(tasks.load_task(written)) is None
    trap = _annotated_only_ad(catalog, tmp_path / "x")
    published = tmp_path / "real" / "tasks" / "S12LS-AD" / "harmonized"
    published.parent.mkdir(parents=True)
    trap.rename(published)
    caplog.clear()
    with caplog.at_level("WARNING", logger="s12ls_utils.splits"):
        tasks.load_task(published)
    assert "S12LS-AD trap" in caplog.text and "0.0%" in caplog.text and "issue 1" in caplog.text
    assert str(published.parent / "raw") in caplog.text  # the raw AD folder next to it
    # an LD task is annotated-only by design: no warning
    ld = tasks.write_task(
        None,
        tmp_path / "ld",
        "S12LS-LD",
        result=splits.make_splits(catalog, tasks.load_config("S12LS-LD")),
        stats=False,
    )
    assert tasks.ad_trap(tasks.load_task(ld)) is None


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def test_cli_splits_end_to_end(small_sample, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(small_sample, data)  # the command writes a catalog cache into the data folder
    out = tmp_path / "tasks"
    argv = [
        "splits",
        str(data),
        "--task",
        "S12LS-LD",
        "--out",
        str(out),
        "--workers",
        "1",
        "--method",
        "blocked",
    ]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "S12LS-LD" in text and "blocked, leak-free" in text and "leakage s2: 0" in text
    assert sorted(_tree(out / "S12LS-LD")) == EXPECTED_FILES
    before = _tree(out / "S12LS-LD")
    assert cli.main(["splits", str(data), "--task", "S12LS-LD", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _tree(out / "S12LS-LD") == before
    argv = [
        "splits",
        str(data),
        "--task",
        "S12LS-LD",
        "--out",
        str(out),
        "--overwrite",
        "--workers",
        "1",
    ]
    assert cli.main(argv) == 0
    written = json.loads((out / "S12LS-LD" / "config.json").read_text())
    assert written["method"] == "reference" and "published (reference)" in capsys.readouterr().out
    # a custom config file; the default output folder is DATA_DIR/tasks
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("satellites: [s2]\nnon_annotated_only: true\n")
    assert cli.main(["splits", str(data), "--task", str(cfg), "--workers", "1"]) == 0
    task = tasks.load_task(data / "tasks" / "mine")
    assert task.sensors == ["s2"] and task.aligned is None
    cat = build_catalog(data, progress=False)
    non = set(cat.key[(cat.sensor == "s2") & ~cat.annotated].astype(str))
    assert {e["id"] for s in splits.SPLITS for e in task.splits["s2"][s]} == non
    cfg.write_text("satellites: [s2]\nbogus: 1\n")
    assert cli.main(["splits", str(data), "--task", str(cfg), "--overwrite"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert os.listdir(data / "tasks") == ["mine"]


def test_tile_graph_and_areas_follow_chains_of_pairs():
    """One tile graph for the splits, the leakage measure and the realism check: keys linked by a chain of
    pairs share an area, a key in no pair is an area of its own, edges keep the order of the pairs."""
    keys = ["a", "b", "c", "d", "e", "f"]
    pairs = pd.DataFrame({"key_a": ["e", "a", "b"], "key_b": ["f", "b", "c"]})
    graph = splits.tile_graph(keys, pairs)
    assert graph.shape == (6, 6)
    assert list(zip(graph.row, graph.col, strict=True)) == [(4, 5), (0, 1), (1, 2)]
    area = splits.tile_areas(graph)
    assert area[0] == area[1] == area[2] and area[4] == area[5]
    assert len({area[0], area[3], area[4]}) == 3
    assert sorted(np.bincount(area)) == [1, 2, 3]
    with pytest.raises(ValueError, match="not among the keys"):
        splits.tile_graph(["a", "b"], pairs)


# --------------------------------------------------------------------------------------------------
# Tables that compare splits (chapter 04)
# --------------------------------------------------------------------------------------------------
def _row_of_tiles(n: int, region: str = "italy", sensor: str = "s2") -> pd.DataFrame:
    """``n`` tiles side by side in one row (each touches the next), in one UTM zone."""
    return pd.DataFrame(
        {
            "sensor": sensor,
            "key": [f"{region}_{i}" for i in range(n)],
            "region": region,
            "epsg": 32632,
            "center_x": 500_000.0 + 1280.0 * np.arange(n),
            "center_y": 4_500_000.0,
        }
    )


def test_leakage_summary_counts_touching_tiles_per_case():
    tiles = _row_of_tiles(6)
    # train train | test | val | train, train: the test tile touches a train tile, the val tile a train tile
    assign = pd.Series(["train", "train", "test", "val", "train", "train"], index=tiles["key"])
    far = assign.copy()
    far[:] = ["test", "val", "val", "val", "val", "train"]  # test and train at the two ends: no contact
    t = splits.leakage_summary({("a", "s2"): (assign, "s2"), ("b", "aligned"): (far, "aligned")}, tiles)
    a, b = t.iloc[0], t.iloc[1]
    assert list(t[["task", "scope"]].itertuples(index=False, name=None)) == [("a", "s2"), ("b", "aligned")]
    assert a["tiles"] == 6 and a["test tiles"] == 1 and a["test tiles touching train"] == 1
    assert a["test touching train (%)"] == 100 and a["val touching train (%)"] == 100
    assert a["touching pairs"] == 3 and a["overlapping pairs"] == 0  # train–test, test–val, val–train
    assert b["test touching train (%)"] == 0 and b["touching pairs"] == 2  # test–val, val–train
    by = splits.leakage_summary({"italy": (assign, "s2")}, tiles, names=["region"])
    assert by.loc[0, "region"] == "italy"


def test_split_window_draws_the_buffer_and_keeps_the_window():
    tiles = _row_of_tiles(20)
    assign = pd.Series(["train"] * 8 + ["test"] * 4 + ["train"] * 8, index=tiles["key"])
    win = splits.split_window(assign, tiles)
    assert win.region == "italy" and len(win.pairs) == 2  # the two borders of the test run
    assert set(win.tiles["key"]) == set(win.keys) and len(win.keys) == 11  # ten tile widths: 11 centres
    buffered = assign.drop(["italy_7", "italy_12"])
    again = splits.split_window(buffered, tiles, keys=win.keys, dropped=["italy_7", "italy_12"])
    assert again.keys == win.keys and again.pairs.empty
    assert set(again.tiles.loc[again.tiles["split"] == "dropped", "key"]) == {"italy_7", "italy_12"}


def test_region_balance_and_fold_table():
    frame = pd.DataFrame(
        {
            "region": ["a"] * 4 + ["b"] * 2,
            "split": ["train", "train", "val", "test", "train", "test"],
            "n_positive": [100, 300, 200, 400, 50, 150],
        }
    )
    per = splits.region_balance(frame)
    assert list(per.index) == ["a", "b"] and per.loc["a", ["train", "val", "test", "tiles"]].tolist() == [
        2,
        1,
        1,
        4,
    ]
    assert per.loc["a", "test (%)"] == 25 and per.loc["b", "test (%)"] == 50
    assert per.loc["a", "pixels/tile test ÷ all"] == pytest.approx(400 / 250)
    assert per.loc["b", "pixels/tile train ÷ all"] == pytest.approx(50 / 100)
    assert np.isnan(per.loc["b", "pixels/tile val ÷ all"])
    folds = splits.region_fold_table({"f1": ["a", "gone"], "f2": ["b"]}, frame, frame)
    assert folds.loc["f1", "test regions"] == "a" and folds.loc["f1", "left out"] == "gone"
    assert folds.loc["f1", "test tiles"] == 4 and folds.loc["f1", "share (%)"] == pytest.approx(400 / 6)
    assert folds.loc["f2", "blocked test tiles"] == 1


def test_reproduce_reference_counts_differences():
    frame = pd.DataFrame(
        {"file": [f"italy_s2_{i}.nc" for i in range(40)], "n_positive": np.arange(40) * 7 % 300 + 50}
    )
    frame["split"] = splits.reference_split(frame).to_numpy()
    changed = frame.assign(split=frame["split"].where(frame.index != 0, "other"))
    t = splits.reproduce_reference({("T", "s2"): frame, ("T", "s1asc"): changed})
    assert t["differ"].tolist() == [0, 1] and t["patches"].tolist() == [40, 40]


def test_balance_summary_and_the_cost_of_a_blocked_split():
    balance = pd.DataFrame(
        {
            "balance": ["before", "before", "after", "after"],
            "share": [60.0, 24.0, 64.5, 20.0],
            "target": [64.0, 20.0, 64.0, 20.0],
            "pixels_ratio": [1.2, 0.95, 1.02, 0.99],
            "annotated_diff": [-3.0, 1.0, 0.5, -0.2],
            "kept": [89.0, 89.0, 93.0, 93.0],
            "ok": [False, False, True, True],
        }
    )
    s = splits.balance_summary(balance)
    assert list(s.index) == ["before", "after"]
    assert s.loc["before", ["share_dev", "ann_dev", "min_kept"]].tolist() == [4.0, 3.0, 89.0]
    assert s.loc["before", "px_dev"] == pytest.approx(0.2) and s.loc["after", "px_dev"] == pytest.approx(0.02)
    assert s.loc["before", "rows_ok"] == 0 and s.loc["after", "rows_ok"] == s.loc["after", "rows"] == 2
    blocked = splits.BlockedAssignment(
        split=pd.Series(dtype=object),
        block=pd.Series(dtype=int),
        dropped=pd.Series({"a": "train", "b": "train", "c": "val"}),
        unlocated=["d"],
        n_blocks=5,
        params={},
    )
    assert blocked.cost() == {"blocks": 5, "dropped_train": 2, "dropped_val": 1, "unlocated": 1}


def test_blocked_facts_name_what_the_blocked_split_costs_and_leaks(catalog):
    """The facts against the split itself: its cost, the shares and kept tiles counted from its frames, and
    no pair of touching tiles in different splits (the blocked split separates every touching pair)."""
    cfg = tasks.load_config("S12LS-LD-blocked")
    totals = {s: len(f) for s, f in splits.select(catalog, cfg).items()}
    totals["aligned"] = len(splits.make_splits(catalog, cfg.replace(method="reference")).aligned)
    balance, blocked = splits.balance_before_after(catalog, {cfg.name: cfg}, {cfg.name: totals})
    facts = splits.blocked_facts(balance, blocked, catalog, {cfg.name: "ld"})
    res = blocked[cfg.name]
    assert {k: facts[f"blk_ld_{k}"] for k in ("blocks", "dropped_train", "dropped_val", "unlocated")} == (
        res.blocked.cost()
    )
    s2 = res.frames["s2"]
    assert facts["blk_ld_s2_test"] == pytest.approx(100 * (s2["split"] == "test").mean())
    assert facts["blk_ld_s2_kept"] == pytest.approx(100 * len(s2) / totals["s2"])
    assert facts["blk_touching"] == facts["blk_overlapping"] == 0
    assert facts["blk_rows_before"] == facts["blk_rows_after"] == len(balance) // 2


def test_region_drift_names_the_region_whose_test_strays_most():
    per = pd.DataFrame(
        {"test": [1, 0, 2], "pixels/tile test ÷ all": [1.6, np.nan, 0.8]}, index=["a", "b", "c"]
    )
    assert splits.region_drift(per, small=2) == {
        "regions": 3,
        "regions_in_test": 2,
        "drift": pytest.approx(0.6),
        "drift_region": "a",
        "drift_small_max": pytest.approx(0.2),
    }


def test_split_table_counts_patches_and_the_test_tiles_touching_train(written, catalog):
    """Counted from the task's own split lists; the touching share against the tile-level measure."""
    task = tasks.load_task(written)
    table = splits.split_table({"ad": task}, catalog, "s2")
    assert table.loc["ad", list(splits.SPLITS)].tolist() == [len(task.splits["s2"][s]) for s in splits.SPLITS]
    leak = splits.tile_leakage(task.splits["s2"], catalog[catalog["sensor"] == "s2"]).set_index(
        ["split", "other"]
    )
    assert table.loc["ad", splits.TOUCHING] == pytest.approx(leak.loc[("test", "train"), "share"])


def test_norm_table_and_task_folders(written, tmp_path):
    task = tasks.load_task(written)
    table = tasks.norm_table(task)
    s2 = table[table["sensor"] == "s2"].set_index("variable")
    assert list(s2.index) == list(schema.FEATURES["s2"])
    assert s2.loc["B04", "mean"] == task.norm["s2"]["mean"]["B04"] and s2.loc["DEM", "unit"] == "metres"
    published = {s: {"mean": dict.fromkeys(schema.FEATURES[s], 1.0)} for s in task.norm}
    assert (tasks.norm_table(task, published)["published mean (real)"] == 1.0).all()
    shutil.copytree(written, tmp_path / "group" / "A")
    shutil.copytree(written, tmp_path / "B")
    (tmp_path / "B" / "s2" / "norm.json").unlink()
    folders = tasks.task_folders(tmp_path)
    assert list(folders.index) == ["B", "group/A"]
    assert folders.loc["group/A", "files"] == sum(1 for p in written.rglob("*") if p.is_file())
    assert folders.loc["B", "lacks"] == "s2/norm.json" and folders.loc["group/A", "lacks"] == ""
    assert folders.loc["B", "s2 patches"] == sum(len(v) for v in task.splits["s2"].values())


def test_load_task_reads_the_papers_experiment_folder(tmp_path):
    """The paper's experiment-1 folder (vendored), written back in the old published layout and read: the
    S1 lists are in the files' order VH, VV, DEM, so VH (cross-polarised, weaker) comes out below VV."""
    from s12ls_utils import reference

    exp = reference.experiments()
    exp = exp[exp["experiment"] == "exp1/final"]
    norms = reference.experiment_norms()["exp1/final"]
    for sensor, block in norms.items():
        (tmp_path / sensor).mkdir()
        rows = exp[exp["sensor"] == sensor]
        paths = {
            s: [f"data/{sensor}/{f}" for f in rows.loc[rows["split"] == s, "file"]] for s in splits.SPLITS
        }
        (tmp_path / sensor / "data_paths.json").write_text(json.dumps(paths))
        order = tasks.OLD_FORMAT_CHANNELS[sensor]
        lists = {k: [block[k][c] for c in order] for k in ("mean", "std")}
        (tmp_path / sensor / "norm_data.json").write_text(json.dumps(lists))
    task = tasks.load_task(tmp_path)
    assert task.format == "old"
    assert task.counts().set_index("scope").loc["s2", "total"] == int((exp["sensor"] == "s2").sum())
    assert task.norm["s1asc"]["mean"] == {c: norms["s1asc"]["mean"][c] for c in ("VH", "VV", "DEM")}
    assert task.norm["s1asc"]["mean"]["VH"] < task.norm["s1asc"]["mean"]["VV"]


def test_an_empty_split_is_named_in_a_warning(caplog):
    """A task drawn on too few patches says which split came out empty (a trainer stops there later); one
    drawn on enough patches says nothing."""
    few = _grid_catalog(n_pairs=2)
    cfg = tasks.load_config({"name": "tiny", "satellites": ["s2"], "method": "blocked"})
    with caplog.at_level("WARNING", logger="s12ls_utils.splits"):
        res = splits.make_splits(few, cfg)
    counts = res.frames["s2"]["split"].value_counts()
    empty = [s for s in splits.SPLITS if counts.get(s, 0) == 0]
    assert empty and f"task tiny: split {empty[0]} (s2)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="s12ls_utils.splits"):
        res = splits.make_splits(_grid_catalog(n_pairs=40), cfg)
    assert set(res.frames["s2"]["split"]) == set(splits.SPLITS) and "holds no patch" not in caplog.text
