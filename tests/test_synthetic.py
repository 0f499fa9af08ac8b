"""Tests for :mod:`s12ls_utils.sample.generate`: determinism, structure, cross-sensor consistency, inventory ↔ mask,
the simulated physics and the pre/post indices.

Most checks run on the suite's small sample (the conftest's ``small_sample``, else
``make_sample(n_per_sensor=8, seed=5)``); they rely only on properties every sample has. Properties of the
default-size copy are checked on its plan (``_plan(54, 0)``, no files) and on a few of its canvases written with
the generator's own per-canvas job.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import geopandas as gpd
import netCDF4
import numpy as np
import pytest
import shapely
from pyproj import Transformer

from s12ls_utils import cli, io, schema
from s12ls_utils.io import open_patch, read_patch_meta
from s12ls_utils.sample import generate
from s12ls_utils.sample import plan as planner
from s12ls_utils.sample.generate import make_sample, pre_post_indices


@pytest.fixture(scope="session")
def inventory(sample_dir) -> gpd.GeoDataFrame:
    return gpd.read_file(f"zip://{sample_dir / generate.INVENTORY_NAME}", engine="pyogrio")


@pytest.fixture(scope="session")
def loaded(sample_dir, manifest) -> dict[str, object]:
    """Every patch of the sample, loaded in canonical (time, y, x) order, by manifest path."""
    out = {}
    for rec in manifest["files"]:
        out[rec["path"]] = open_patch(sample_dir / rec["path"], load=True)
    return out


def _recs(manifest: dict, sensor: str | None = None, annotated: bool | None = None) -> list[dict]:
    return [
        r
        for r in manifest["files"]
        if (sensor is None or r["sensor"] == sensor) and (annotated is None or r["annotated"] == annotated)
    ]


def _dates(rec: dict) -> list[dt.date]:
    return [dt.date.fromisoformat(t) for t in rec["times"]]


DEFAULT_PLAN_SEED = 0


@pytest.fixture(scope="module")
def default_plan() -> list[generate.CanvasPlan]:
    return generate._plan(generate.DEFAULT_N_PER_SENSOR, DEFAULT_PLAN_SEED)


@pytest.fixture(scope="module")
def default_special_records(default_plan, tmp_path_factory) -> list[dict]:
    """Canvases of the default plan with two events, an event before / after a series, an undated annotation or
    a padded series, the smallest of each case, written with the generator's own per-canvas job (file records as
    in the manifest). An event outside the series and a padded series are cases per sensor: for those only the
    files of that sensor are written (each sensor's series and pixels have a random stream of their own, so they
    are the files the whole canvas would write)."""
    import copy

    out = tmp_path_factory.mktemp("default_special")
    for s in schema.SENSORS:
        (out / s).mkdir()
    # per case: which canvases have it, and the sensor it is about (None: every sensor of the canvas)
    cases = [
        (lambda p: p.two_events, None),
        (lambda p: p.undated, None),
        *(
            (lambda p, s=s, side=side: p.outside.get(s) == side, s)
            for side in ("before", "after")
            for s in schema.SENSORS
        ),
        *((lambda p, s=s: s in p.padded, s) for s in schema.S1_SENSORS),
    ]
    chosen: dict[int, set[str]] = defaultdict(set)
    for has, sensor in cases:
        found = [p for p in default_plan if has(p)]
        if found:
            p = min(found, key=lambda p: len(p.patches))
            chosen[p.index] |= set(schema.SENSORS) if sensor is None else {sensor}
    records: list[dict] = []
    for plan in default_plan:
        if plan.index in chosen:
            plan = copy.deepcopy(plan)
            for pp in plan.patches:
                pp.sensors = tuple(s for s in pp.sensors if s in chosen[plan.index])
            recs, slides = generate._canvas_job((plan, str(out), 40000 + 1000 * plan.index))
            records += [dict(r, path=str(out / r["path"]), inventory=slides) for r in recs]
    return records


# --------------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------------
def _inventory_frame(data: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(f"zip://{data / generate.INVENTORY_NAME}", engine="pyogrio")


def test_same_sample_whatever_the_worker_count(tmp_path, monkeypatch):
    """Serial, 2 and 3 worker processes write byte-identical patch files, manifest and README, and the same
    inventory (the third run also appends the inventory in batches of 3 landslides instead of one write)."""
    runs = {w: tmp_path / f"w{w}" for w in (1, 2, 3)}
    infos = {}
    for w, out in runs.items():
        if w == 3:
            monkeypatch.setattr(generate, "_INVENTORY_BATCH", 3)
        infos[w] = make_sample(out, n_per_sensor=2, seed=11, workers=w, progress=False)  # 4 canvases, 9 files
    ref = runs[1]
    files = sorted(p.relative_to(ref) for p in ref.glob("*/*.nc"))
    assert len(files) == sum(infos[1].n_files.values()) > 0
    inv_ref = _inventory_frame(ref)
    assert len(inv_ref) > 3  # the batched run appended several times
    for w, out in runs.items():
        assert infos[w].n_files == infos[1].n_files and infos[w].n_landslides == infos[1].n_landslides
        assert infos[w].n_locations == infos[1].n_locations
        assert sorted(p.relative_to(out) for p in out.glob("*/*.nc")) == files
        for rel in files:
            assert (out / rel).read_bytes() == (ref / rel).read_bytes(), (w, rel)
        for name in (generate.MANIFEST_NAME, "README.md"):
            assert (out / name).read_text() == (ref / name).read_text(), (w, name)
        inv = _inventory_frame(out)
        assert inv.drop(columns="geometry").equals(inv_ref.drop(columns="geometry")), w
        assert inv.geometry.geom_equals_exact(inv_ref.geometry, tolerance=0).all(), w
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())  # no spill left


def test_a_sample_of_some_sensors_holds_the_full_samples_files_of_those(sample_dir, manifest, tmp_path):
    """``sensors=["s2"]`` writes the S2 files of the full sample (same seed and size), byte for byte, and no
    other sensor's; an unknown sensor is refused before any work."""
    info = make_sample(
        tmp_path / "s2",
        n_per_sensor=manifest["n_per_sensor"],
        seed=manifest["seed"],
        sensors=["s2"],
        workers=1,
        progress=False,
    )
    s2 = sorted(p.relative_to(sample_dir) for p in sample_dir.glob("s2/*.nc"))
    assert sorted(p.relative_to(info.out_dir) for p in info.out_dir.glob("*/*.nc")) == s2
    assert info.n_files == {**dict.fromkeys(schema.SENSORS, 0), "s2": len(s2)}
    for rel in s2:
        assert (info.out_dir / rel).read_bytes() == (sample_dir / rel).read_bytes(), rel
    records = generate.load_manifest(info.out_dir)["files"]
    assert records == [r for r in manifest["files"] if r["sensor"] == "s2"]
    with pytest.raises(ValueError, match="sensors must be"):
        make_sample(tmp_path / "bad", n_per_sensor=1, sensors=["s3"], progress=False)


def test_manifest_writer_matches_json_dumps(tmp_path):
    """The streamed manifest is exactly what ``json.dumps(manifest, indent=1)`` writes, empty lists too."""
    head = {"generator": "x", "counts": {"s2": 2}, "regions": [{"name": "a_b", "epsg": 32632}]}
    files = [{"path": "s2/a_b_s2_1.nc", "times": ["2020-01-01", "2020-01-06"], "pre_post": [[0, 1]]}] * 2
    slides = [{"ann_id": 7, "date_conf": 0.5, "event_date": "2020-01-03", "note": "line\nbreak é"}]
    for f, ls in ((files, slides), (files, []), ([], [])):
        path = tmp_path / "m.json"
        generate._write_manifest(
            path, head, (json.dumps(x, indent=1) for x in f), (json.dumps(x, indent=1) for x in ls)
        )
        assert path.read_text() == json.dumps({**head, "files": f, "landslides": ls}, indent=1)


def test_plan_is_deterministic_and_seeded():
    assert generate._plan(54, 0) == generate._plan(54, 0)
    assert generate._plan(54, 0) != generate._plan(54, 1)
    assert generate._plan(4, 11) != generate._plan(4, 12)


# --------------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------------
def test_folders_names_manifest_and_readme(sample_dir, manifest):
    assert {p.name for p in sample_dir.iterdir() if p.is_dir()} >= set(schema.SENSORS)
    on_disk = sorted(str(p.relative_to(sample_dir)) for p in sample_dir.glob("*/*.nc"))
    assert on_disk == sorted(r["path"] for r in manifest["files"])
    for rel in on_disk:
        folder, name = rel.split("/")
        pn = schema.parse_filename(name)
        assert pn.sensor == folder and schema.FILENAME_RE.match(name)
    assert manifest["counts"] == {s: len(_recs(manifest, s)) for s in schema.SENSORS}
    n = manifest["n_per_sensor"]
    assert all(abs(c - n) <= max(2, n // 2) for c in manifest["counts"].values()), manifest["counts"]
    readme = (sample_dir / "README.md").read_text()
    assert "synthetic" in readme.lower() and "**These data are synthetic.**" in readme
    assert f"seed {manifest['seed']}" in readme and "must not be used" in readme
    assert not list(sample_dir.rglob("*.part"))  # no half-written files left behind


def test_region_names_with_underscores(manifest):
    regions = {r["region"] for r in manifest["files"]}
    assert any("_" in r for r in regions)
    for r in manifest["files"]:
        assert r["key"] == f"{r['region']}_{r['patch_id']}"
        assert schema.parse_filename(r["path"]).region == r["region"]


def test_inventory_one_polygon_per_landslide(inventory, manifest):
    assert inventory.crs is not None and inventory.crs.to_epsg() == 4326
    assert len(inventory) == manifest["n_landslides"] == len(manifest["landslides"]) > 0
    assert inventory["ann_id"].is_unique
    assert set(inventory.columns) >= {"ann_id", "region", "event_date", "date_conf", "epsg", "geometry"}
    assert (inventory.geom_type == "Polygon").all() and inventory.is_valid.all()
    assert sorted(inventory["ann_id"]) == sorted(ls["ann_id"] for ls in manifest["landslides"])
    # every ann_id of an annotated patch is in the inventory; every landslide is in some patch
    in_patches = {i for r in manifest["files"] for i in r["ann_ids"]}
    assert in_patches <= set(inventory["ann_id"])
    assert in_patches == set(inventory["ann_id"])
    bounds = inventory.total_bounds
    assert -180 <= bounds[0] <= bounds[2] <= 180 and -90 <= bounds[1] <= bounds[3] <= 90


def test_pyogrio_reads_inventory(sample_dir, inventory):
    import pyogrio

    info = pyogrio.read_info(f"zip://{sample_dir / generate.INVENTORY_NAME}")
    assert info["features"] == len(inventory) and info["geometry_type"] == "Polygon"


def test_default_plan_structure(default_plan):
    plans = default_plan
    regions = {p.region for p in plans}
    assert len(regions) >= 4 and regions <= set(generate.REGION_BY_NAME)
    assert any("_" in r for r in regions)
    keys = [(p.region, pp.patch_id) for p in plans for pp in p.patches]
    assert len(keys) == len(set(keys))  # location keys are unique
    n = schema.PATCH_SIZE
    for p in plans:
        # a canvas is a cluster of 1.28 km tiles on a lattice: distinct cells, edge-connected, the block
        # they span at most _MAX_BLOCK, starting at row 0 and column 0
        cells = {(pp.row0 // n, pp.col0 // n) for pp in p.patches}
        assert len(cells) == len(p.patches) and all(pp.row0 % n == 0 == pp.col0 % n for pp in p.patches)
        assert min(r for r, _ in cells) == 0 == min(c for _, c in cells)
        assert (p.height, p.width) == (n * (1 + max(r for r, _ in cells)), n * (1 + max(c for _, c in cells)))
        assert len(cells) <= planner._MAX_BLOCK[0] * planner._MAX_BLOCK[1]
        seen, todo = set(), [next(iter(cells))]
        while todo:
            r, c = todo.pop()
            if (r, c) in seen:
                continue
            seen.add((r, c))
            todo += [q for q in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if q in cells]
        assert seen == cells
        assert p.annotated == any(pp.annotated for pp in p.patches)
        for pp in p.patches:
            assert pp.annotated == (pp.px_target > 0)
            assert 1 <= len(pp.sensors) <= 3 and len(set(pp.sensors)) == len(pp.sensors)
            assert set(pp.sensors) <= set(schema.SENSORS)
        assert set(p.outside) <= set(schema.SENSORS) and set(p.outside.values()) <= {"before", "after"}
        if not p.annotated:
            assert not p.two_events and not p.outside
    per_sensor = {s: sum(s in pp.sensors for p in plans for pp in p.patches) for s in schema.SENSORS}
    for n in per_sensor.values():
        assert 0.75 * generate.DEFAULT_N_PER_SENSOR <= n <= 1.25 * generate.DEFAULT_N_PER_SENSOR, per_sensor
    n_sensors = {len(pp.sensors) for p in plans for pp in p.patches}
    assert n_sensors >= {1, 3}  # single-sensor and all-sensor locations both occur
    assert any(p.annotated for p in plans) and any(not p.annotated for p in plans)
    assert any(p.two_events for p in plans)  # multi-event patches exist
    sizes = [len(p.patches) for p in plans]
    assert min(sizes) == 1 and max(sizes) >= 6  # isolated tiles and clusters of neighbours both exist
    assert sum(p.empty_mask for c in plans for p in c.patches) == 1  # the real quirk, once
    assert not any(c.annotated for c in plans if c.region == "lanaodelnorte")  # a negatives-only region
    outside = {v for p in plans for v in p.outside.values()}
    assert outside == {"before", "after"}


def test_default_plan_canvases_do_not_overlap_or_touch(default_plan):
    """Canvases of a region lie on its 1.28 km lattice and keep at least one free tile between them (one
    terrain per ground point; two clusters never merge into one connected area)."""
    tile = schema.PATCH_SIZE * schema.PIXEL_SIZE_M
    for p in default_plan:
        assert p.x0 % tile == 0 and p.y0 % tile == 0
    gap = tile / 2 - 1  # boxes grown by half a tile: one free tile apart they do not meet, adjacent they do
    boxes = [
        (
            p.region,
            p.x0 - gap,
            p.y0 - p.height * schema.PIXEL_SIZE_M - gap,
            p.x0 + p.width * 10 + gap,
            p.y0 + gap,
        )
        for p in default_plan
    ]
    close = [
        (i, j)
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes[:i])
        if a[0] == b[0] and a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
    ]
    assert close == []


def test_locations_in_one_to_three_sensors(manifest):
    by_key = defaultdict(list)
    for r in manifest["files"]:
        by_key[r["key"]].append(r["sensor"])
    assert all(1 <= len(v) <= 3 and len(set(v)) == len(v) for v in by_key.values())
    assert any(len(v) == 3 for v in by_key.values())
    assert len(by_key) == len({(r["region"], r["patch_id"]) for r in manifest["files"]})


def test_not_annotated_patches(sample_dir, manifest, loaded):
    recs = _recs(manifest, annotated=False)
    assert recs, "the sample has no non-annotated patch"
    for r in recs:
        ds = loaded[r["path"]]
        assert int(ds.MASK.sum()) == 0
        assert ds.attrs["event_date"] == "" and ds.attrs["annotated"] == "False"
        assert ds.attrs["ann_id"] == "" and ds.attrs["pre_post_dates"] == "" and ds.attrs["ann_bbox"] == ""
        assert r["event_dates"] == [] and r["ann_ids"] == []
    for r in _recs(manifest, annotated=True):
        ds = loaded[r["path"]]
        assert int(ds.MASK[0].sum()) == r["n_positive"] > 0 and ds.attrs["annotated"] == "True"
        assert ds.attrs["event_date"] != ""


def test_multi_event_patch_in_sample(manifest, loaded):
    multi = [r for r in manifest["files"] if len(r["event_dates"]) > 1]
    if not multi:
        pytest.skip("no multi-event patch in this sample (the default plan's are checked separately)")
    for r in multi:
        m = schema.parse_attrs(loaded[r["path"]].attrs)[0]
        assert len(m.event_dates) == len(m.pre_post) == len(r["event_dates"]) >= 2
        assert m.event_dates == sorted(m.event_dates)


# --------------------------------------------------------------------------------------------------
# Consistency across sensors
# --------------------------------------------------------------------------------------------------
def test_same_location_consistent_across_sensors(manifest, loaded):
    by_key = defaultdict(list)
    for r in manifest["files"]:
        by_key[r["key"]].append(r)
    multi = {k: v for k, v in by_key.items() if len(v) > 1}
    assert multi, "no location with several sensors"
    for recs in multi.values():
        first = loaded[recs[0]["path"]]
        for r in recs[1:]:
            ds = loaded[r["path"]]
            np.testing.assert_array_equal(ds.DEM.values, first.DEM.values)
            np.testing.assert_array_equal(ds.MASK.values, first.MASK.values)
            np.testing.assert_array_equal(ds.x.values, first.x.values)
            np.testing.assert_array_equal(ds.y.values, first.y.values)
            for a in ("crs", "center_lat", "center_lon", "ann_id", "ann_bbox", "event_date", "annotated"):
                assert ds.attrs[a] == first.attrs[a], a
            assert ds.spatial_ref.attrs["crs_wkt"] == first.spatial_ref.attrs["crs_wkt"]
            if "s2" in (r["sensor"], recs[0]["sensor"]):  # S2 and S1 never share an acquisition series
                assert not np.array_equal(ds.time.values, first.time.values)
    # the two orbits have their own series (they may coincide now and then, as real passes can)
    orbits = [{r["sensor"]: r["path"] for r in v} for v in multi.values()]
    orbits = [o for o in orbits if {"s1asc", "s1dsc"} <= set(o)]
    assert orbits
    differ = [
        not np.array_equal(loaded[o["s1asc"]].time.values, loaded[o["s1dsc"]].time.values) for o in orbits
    ]
    assert np.mean(differ) >= 0.5, differ


def test_crs_and_geotransform(manifest, loaded):
    from pyproj import CRS

    for r in manifest["files"]:
        ds = loaded[r["path"]]
        epsg = schema.parse_crs(ds.attrs["crs"])
        assert epsg == r["epsg"] == generate.REGION_BY_NAME[r["region"]].epsg
        assert CRS.from_wkt(ds.spatial_ref.attrs["crs_wkt"]).to_epsg() == epsg
        gt = [float(v) for v in ds.spatial_ref.attrs["GeoTransform"].split()]
        # GeoTransform gives the outer corner; the coordinates are pixel top/left edges, as the writer's
        assert gt == [float(ds.x[0]), 10.0, 0.0, float(ds.y[0]), 0.0, -10.0]
        # the patch lies near its region's centre (within ~15 km)
        reg = generate.REGION_BY_NAME[r["region"]]
        cx, cy = Transformer.from_crs(4326, epsg, always_xy=True).transform(reg.lon, reg.lat)
        assert abs(float(ds.x.mean()) - cx) < 16000 and abs(float(ds.y.mean()) - cy) < 16000


# --------------------------------------------------------------------------------------------------
# Inventory ↔ masks
# --------------------------------------------------------------------------------------------------
def _rasterise(inventory: gpd.GeoDataFrame, ds, epsg: int) -> tuple[np.ndarray, set[int]]:
    """Pixel centres of a patch inside any inventory polygon (transformed to the patch CRS with pyproj),
    and the ann_ids of the polygons that contain at least one centre."""
    tr = Transformer.from_crs(4326, epsg, always_xy=True)
    half = schema.PIXEL_SIZE_M / 2  # x/y are the pixels' top/left edges
    xx, yy = np.meshgrid(ds.x.values + half, ds.y.values - half)  # (y, x) grid of centres
    out = np.zeros(xx.shape, dtype=bool)
    ids: set[int] = set()
    x0, x1, y0, y1 = xx.min(), xx.max(), yy.min(), yy.max()
    for ann_id, geom, poly_epsg in zip(
        inventory["ann_id"], inventory.geometry, inventory["epsg"], strict=True
    ):
        if int(poly_epsg) != epsg:
            continue
        g = shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        gx0, gy0, gx1, gy1 = g.bounds
        if gx1 < x0 or gx0 > x1 or gy1 < y0 or gy0 > y1:
            continue
        inside = shapely.contains_xy(g, xx, yy)
        if inside.any():
            ids.add(int(ann_id))
            out |= inside
    return out, ids


def test_inventory_reproduces_masks(manifest, loaded, inventory):
    agreements = []
    recs = _recs(manifest, "s2", annotated=True)
    assert recs
    for r in recs:
        ds = loaded[r["path"]]
        raster, ids = _rasterise(inventory, ds, r["epsg"])
        mask = ds.MASK[0].values.astype(bool)
        agreements.append(float((raster == mask).mean()))
        np.testing.assert_array_equal(raster, mask, err_msg=r["path"])
        assert ids == set(r["ann_ids"]) == set(schema.parse_ints(ds.attrs["ann_id"]))
        # each polygon's event date is one of the patch's event dates (none at all when undated)
        dates = set(inventory.loc[inventory["ann_id"].isin(ids), "event_date"].dropna())
        assert dates <= set(r["event_dates"])
        if r["n_undated_events"]:
            assert inventory.loc[inventory["ann_id"].isin(ids), "event_date"].isna().all()
    assert min(agreements) == 1.0


def test_inventory_bboxes_match_polygons(manifest, loaded, inventory):
    for r in _recs(manifest, "s2", annotated=True):
        ds = loaded[r["path"]]
        boxes = schema.parse_bboxes(ds.attrs["ann_bbox"])
        tr = Transformer.from_crs(4326, r["epsg"], always_xy=True)
        by_id = dict(zip(inventory["ann_id"], inventory.geometry, strict=True))
        for ann_id, box in zip(r["ann_ids"], boxes, strict=True):
            g = shapely.transform(
                by_id[ann_id], lambda xy, tr=tr: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))
            )
            assert g.bounds == pytest.approx(box, abs=0.02)


def test_non_annotated_patches_hold_no_polygon(manifest, loaded, inventory):
    for r in _recs(manifest, "s2", annotated=False):
        raster, ids = _rasterise(inventory, loaded[r["path"]], r["epsg"])
        assert not raster.any() and not ids, r["path"]


# --------------------------------------------------------------------------------------------------
# Physics
# --------------------------------------------------------------------------------------------------
def _ndvi(ds) -> np.ndarray:
    red, nir = ds.B04.values.astype("float64"), ds.B08.values.astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return (nir - red) / (nir + red)


def _windows(pre: int, post: int, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Time masks (15, 1, 1) of the ``k`` steps up to ``pre`` and the ``k`` steps from ``post``."""
    t = np.arange(schema.N_TIME)[:, None, None]
    return (t <= pre) & (t > pre - k), (t >= post) & (t < post + k)


def _events(manifest: dict, loaded: dict, inventory: gpd.GeoDataFrame, sensors: tuple[str, ...]):
    """(record, dataset, event date, pre, post, pixels of that event's landslides) for every event inside
    the series of an annotated patch (pixels from the inventory polygons carrying that event date, so
    that the two events of a multi-event patch are compared each at their own time)."""
    for r in manifest["files"]:
        if r["sensor"] not in sensors or not r["annotated"]:
            continue
        ds = loaded[r["path"]]
        mask = ds.MASK.values[0].astype(bool)
        times = _dates(r)
        for ev, (pre, post) in zip(r["event_dates"], r["pre_post"], strict=True):
            day = dt.date.fromisoformat(ev)
            if not times[0] < day < times[-1] or times[post] == day:
                continue  # outside the series, or on an acquisition date (known bug, see below)
            raster, _ = _rasterise(inventory[inventory["event_date"] == ev], ds, r["epsg"])
            pixels = raster & mask
            if pixels.sum() >= 5:
                yield r, ds, ev, pre, post, pixels


@pytest.fixture(scope="module")
def ndvi_changes(manifest, loaded, inventory) -> list[tuple[str, str, float, float]]:
    """Per event of the S2 patches: (path, event, NDVI drop on its landslides, NDVI change outside every
    landslide), medians over clear pixels (SCL not bad) of the 3 dates up to ``pre`` and the 3 from ``post``
    (narrow windows keep the seasonal drift out)."""
    out = []
    for r, ds, ev, pre, post, pixels in _events(manifest, loaded, inventory, ("s2",)):
        ndvi = _ndvi(ds)
        clear = ~np.isin(ds.SCL.values, list(schema.SCL_BAD))
        outside = ~ds.MASK.values[0].astype(bool)[None]
        before, after = _windows(pre, post)
        inside = pixels[None]
        if not ((clear & before & inside).any() and (clear & after & inside).any()):
            continue  # clouded out near the event (the first dates after an event are cloudier)
        drop = np.median(ndvi[clear & before & inside]) - np.median(ndvi[clear & after & inside])
        change = np.median(ndvi[clear & after & outside]) - np.median(ndvi[clear & before & outside])
        out.append((r["path"], ev, float(drop), float(change)))
    return out


@pytest.fixture(scope="module")
def vh_drops(manifest, loaded, inventory) -> list[tuple[str, str, float, float]]:
    """Per event of the S1 patches: (path, event, median VH drop in dB on its landslides between all dates
    up to ``pre`` and all dates from ``post``, the same near the event (3 dates each side) minus the
    change outside every landslide)."""
    out = []
    for r, ds, ev, pre, post, pixels in _events(manifest, loaded, inventory, schema.S1_SENSORS):
        with np.errstate(divide="ignore", invalid="ignore"):
            vh = 10 * np.log10(ds.VH.values)
        fin = np.isfinite(vh)
        inside, outside = pixels[None] & fin, ~ds.MASK.values[0].astype(bool)[None] & fin
        before, after = _windows(pre, post, k=schema.N_TIME)
        drop = np.median(vh[before & inside]) - np.median(vh[after & inside])
        before, after = _windows(pre, post)
        near = np.median(vh[before & inside]) - np.median(vh[after & inside])
        near_out = np.median(vh[before & outside]) - np.median(vh[after & outside])
        out.append((r["path"], ev, float(drop), float(near - near_out)))
    return out


def test_s2_dtypes_and_ranges(manifest, loaded):
    for r in _recs(manifest, "s2"):
        ds = loaded[r["path"]]
        for b in schema.S2_BANDS:
            assert ds[b].dtype == np.int16
            assert 0 <= int(ds[b].min()) and int(ds[b].max()) <= 10000
        scl = ds.SCL.values
        assert ds.SCL.dtype == np.int16 and set(np.unique(scl)) <= set(schema.SCL_CLASSES) | {
            schema.SCL_UNKNOWN
        }
        # SCL 255 (unknown quality) comes in whole frames, at least one per file; SCL 0 never (filled)
        whole = (scl == schema.SCL_UNKNOWN).reshape(len(scl), -1)
        assert (whole.all(axis=1) == whole.any(axis=1)).all(), r["path"]
        assert np.flatnonzero(whole.all(axis=1)).tolist() == r["scl_unknown_steps"] != [], r["path"]
        assert not (scl == 0).any()
        # the generator's bookkeeping counts 255 as unusable (schema.scl_usable)
        bad = np.asarray(r["bad_fraction"])
        assert (bad[r["scl_unknown_steps"]] == 1).all()
        np.testing.assert_allclose(bad, (~schema.scl_usable(scl)).reshape(len(scl), -1).mean(axis=1))


def test_scl_unknown_frames_in_the_default_plan(default_plan):
    """Every S2 series has whole frames of SCL 255, about 3,285 / 1,133 per file (the real raw Chimanimani
    rate), at least one; S1-only canvases have none."""
    from s12ls_utils.sample.realism import REAL_FILE_FACTS

    per_file = []
    for p in default_plan:
        has_s2 = any("s2" in pp.sensors for pp in p.patches)
        assert bool(p.scl_unknown) == has_s2
        assert list(p.scl_unknown) == sorted(set(p.scl_unknown)) and all(0 <= t < 15 for t in p.scl_unknown)
        per_file += [len(p.scl_unknown)] * sum("s2" in pp.sensors for pp in p.patches)
    rate = REAL_FILE_FACTS["scl_unknown_frames"] / REAL_FILE_FACTS["scl_unknown_files"]
    assert min(per_file) >= 1 and abs(np.mean(per_file) / rate - 1) < 0.25, np.mean(per_file)


def test_dark_area_marks_shaded_slopes(manifest, loaded):
    """SCL class 2 (dark area) holds the slopes in the sun's shadow: darker than the rest of the land."""
    n_dark = 0
    for r in _recs(manifest, "s2"):
        ds = loaded[r["path"]]
        scl, b08 = ds.SCL.values, ds.B08.values
        for t in range(len(scl)):
            dark, land = scl[t] == 2, np.isin(scl[t], (4, 5))
            if dark.sum() >= 20 and land.sum() >= 20:
                n_dark += 1
                assert np.median(b08[t][dark]) < np.median(b08[t][land]), (r["path"], t)
    assert n_dark > 0, "no date with dark-area pixels"


def test_s2_vegetation_spectra(manifest, loaded):
    """Vegetation has the shape of a vegetation spectrum in every file; its level, which calibration scales
    per canvas (a file's mean follows its region's real statistics), is typical over the files."""
    means = []
    for r in _recs(manifest, "s2"):
        ds = loaded[r["path"]]
        veg = ds.SCL.values == 4
        # enough vegetation to measure its spectrum (snowy, low-sun winter series hold little)
        assert veg.sum() > 10_000, r["path"]
        mean = {b: float(ds[b].values[veg].mean()) for b in schema.S2_BANDS}
        means.append(mean)
        assert mean["B08"] > 2 * mean["B04"]  # NIR plateau well above red
        assert mean["B03"] > mean["B02"]  # green above blue (green peak; red may equal green in winter)
        assert mean["B04"] < mean["B05"] < mean["B06"] < mean["B07"] < mean["B08"]  # red edge
        assert np.median(_ndvi(ds)[veg]) > 0.3  # haze and noise weigh more on a darkened (calibrated) file
    median = {b: float(np.median([m[b] for m in means])) for b in schema.S2_BANDS}
    ranges = {
        "B02": (150, 1200),
        "B03": (250, 1500),
        "B04": (150, 1500),
        "B05": (600, 2200),
        "B06": (1500, 4000),
        "B07": (1800, 4500),
        "B08": (2000, 5000),
        "B8A": (2000, 5000),
        "B11": (1000, 3000),
        "B12": (400, 2200),
    }
    for b, (lo, hi) in ranges.items():
        assert lo <= median[b] <= hi, (b, median[b])


def test_s2_band_means_close_to_published(manifest, loaded):
    """The sample's overall band means (all pixels, clouds included) are within 50 % of the published
    S12LS-LD means (DESIGN.md §3.2); with 8 S2 patches the cloud cover alone moves them by ~30 %."""
    published = {
        "B02": 1861,
        "B03": 2029,
        "B04": 1953,
        "B05": 2394,
        "B06": 3354,
        "B07": 3668,
        "B08": 3762,
        "B8A": 3852,
        "B11": 2613,
        "B12": 1889,
    }
    recs = _recs(manifest, "s2")
    for b, want in published.items():
        got = float(np.mean([loaded[r["path"]][b].values.mean() for r in recs]))
        assert abs(got / want - 1) < 0.5, (b, got, want)


def test_clouds_are_bright(manifest, loaded):
    n_cloud = 0
    for r in _recs(manifest, "s2"):
        ds = loaded[r["path"]]
        cloud = np.isin(ds.SCL.values, (8, 9))
        n_cloud += int(cloud.sum())
        if cloud.any():
            for b in ("B02", "B03", "B04"):
                assert int(ds[b].values[cloud].min()) > 3000, (r["path"], b)
            assert float(ds.B02.values[cloud].mean()) > 5000
    assert n_cloud > 0


def test_landslides_lower_ndvi_after_the_event(ndvi_changes):
    assert ndvi_changes, "no S2 event inside a series"
    drops = [d for _, _, d, _ in ndvi_changes]
    changes = [c for _, _, _, c in ndvi_changes]
    # typical event: NDVI falls by at least 0.25 on the landslides and moves by less than 0.1 elsewhere
    assert np.median(drops) >= 0.25 and abs(np.median(changes)) < 0.1, ndvi_changes
    # every event, though mixed edge pixels, regrowth and winter events in snowy regions weaken some
    assert min(drops) >= 0.1 and max(abs(c) for c in changes) < 0.2, ndvi_changes
    assert min(d - abs(c) for d, c in zip(drops, changes, strict=True)) >= 0.05, ndvi_changes


def test_s1_backscatter(manifest, loaded):
    for r in _recs(manifest):
        if r["sensor"] == "s2":
            continue
        ds = loaded[r["path"]]
        for b in ("VV", "VH"):
            v = ds[b].values
            assert v.dtype == np.float32
            # linear, clipped to 1; no NaN: layover, shadow and swath borders are filled as the writer does
            assert np.isfinite(v).all() and (v > 0).all() and (v <= 1).all(), (r["path"], b)
        assert ds.attrs["s1_unit_native"] == "linear"
        assert ds.VH.values.mean() < ds.VV.values.mean()
        # within the real per-file means (raw s1dsc: VV 0.010-0.49, VH 0.00085-0.1 from q0.1 % to q99.9 %)
        assert 0.01 < ds.VV.values.mean() < 0.5 and 0.0008 < ds.VH.values.mean() < 0.1


def test_writer_fills_s1_gaps_with_the_nearest_pixel():
    vv = np.full((2, 4, 5), 0.2, dtype="float32")
    vv[0, :, :2] = np.nan  # a swath border at step 0
    vv[0, :, 2] = 0.5  # the nearest valid column
    vv[1, 1, 1] = np.nan  # one layover pixel at step 1
    out = generate._writer_s1({"VV": vv, "VH": vv.copy()})
    for v in out.values():
        assert np.isfinite(v).all()
        np.testing.assert_array_equal(v[0, :, :3], 0.5)
        assert v[1, 1, 1] == pytest.approx(0.2)
    assert np.isnan(vv).any()  # the input is left as it was


def test_orbits_of_a_location_calibrated_together(default_plan):
    """Both orbits of a location aim at per-file mean VV at most 5 dB apart at the 95th percentile and 8 dB
    at worst (they see the same ground)."""
    from s12ls_utils.sample.realism import ORBIT_DIFF_BOUNDS

    diffs = []
    for p in default_plan:
        target = {s: iter(p.s1_target.get(s, [])) for s in schema.S1_SENSORS}
        for pp in p.patches:
            got = {s: next(target[s]) for s in schema.S1_SENSORS if s in pp.sensors}
            if len(got) == 2:
                diffs.append(abs(10 * np.log10(got["s1asc"][1] / got["s1dsc"][1])))
    assert len(diffs) > 100
    assert np.quantile(diffs, 0.95) <= ORBIT_DIFF_BOUNDS[0] and max(diffs) <= ORBIT_DIFF_BOUNDS[1], (
        np.quantile(diffs, 0.95),
        max(diffs),
    )


def test_s1_vh_drops_on_landslides(vh_drops):
    assert vh_drops, "no S1 event inside a series"
    drops = [d for _, _, d, _ in vh_drops]
    relative = [n for _, _, _, n in vh_drops]
    assert np.median(drops) > 1.5 and np.median(relative) > 1.5, vh_drops
    # every event, winter ones included, drops; relative to the background it may not (wet soil after the
    # event brightens everything, and mixed edges and regrowth weaken small scars), but it does for most
    assert min(drops) > 0.5 and np.mean(np.array(relative) > 0) >= 0.75, vh_drops


def test_dem_and_mask(manifest, loaded):
    pos = tot = 0
    for r in manifest["files"]:
        ds = loaded[r["path"]]
        assert ds.DEM.dtype == np.int16 and ds.MASK.dtype == np.uint8
        assert 0 <= int(ds.DEM.min()) and int(ds.DEM.max()) <= 10000
        assert (ds.DEM.values == ds.DEM.values[0]).all()  # static
        assert set(np.unique(ds.MASK.values)) <= {0, 1}
        assert (ds.MASK.values == ds.MASK.values[0]).all()
        pos += int(ds.MASK.values[0].sum())
        tot += ds.MASK.values[0].size
    assert 0.01 <= pos / tot <= 0.08, pos / tot


def test_slope_aspect_of_planes():
    c = np.arange(20, dtype="float32")[None, :].repeat(20, 0)
    slope, aspect = generate.slope_aspect(c * 1.0)  # rises 1 m per 10 m pixel to the east
    np.testing.assert_allclose(slope, np.degrees(np.arctan(0.1)), rtol=1e-5)
    np.testing.assert_allclose(aspect, 270.0, atol=1e-3)  # downslope points west
    r = np.arange(20, dtype="float32")[:, None].repeat(20, 1)
    slope, aspect = generate.slope_aspect(100 - 2.0 * r)  # rows run south: higher in the north
    np.testing.assert_allclose(slope, np.degrees(np.arctan(0.2)), rtol=1e-5)
    np.testing.assert_allclose(aspect, 180.0, atol=1e-3)  # downslope points south


# --------------------------------------------------------------------------------------------------
# pre/post indices
# --------------------------------------------------------------------------------------------------
def test_pre_post_indices_hand_made():
    times = [dt.date(2020, 1, 1) + dt.timedelta(days=10 * k) for k in range(15)]
    assert pre_post_indices(times, dt.date(2020, 3, 5)) == (6, 7)  # between 2020-03-01 and 2020-03-11
    assert pre_post_indices(times, dt.date(2020, 1, 2)) == (0, 1)
    assert times[13] == dt.date(2020, 5, 10)
    assert pre_post_indices(times, dt.date(2020, 5, 11)) == (13, 14)
    assert pre_post_indices(times, dt.date(2019, 12, 1)) == (0, 0)  # event precedes the series
    assert pre_post_indices(times, dt.date(2020, 6, 1)) == (14, 14)  # event follows the series
    assert pre_post_indices(times[:4], dt.date(2021, 1, 1)) == (3, 3)


def _check_pre_post(rec: dict, ds_attrs: dict | None = None, allow_ties: bool = False) -> list[str]:
    """Check the pre/post indices of one file record; returns the events that fall on an acquisition date
    (``times[post] == event``), which only ``allow_ties`` lets through."""
    times = _dates(rec)
    assert times == sorted(times) and len(times) == schema.N_TIME
    assert len(set(times)) == schema.N_TIME - rec["n_padded"]  # a padded series repeats its last date
    ties = []
    for ev, (pre, post) in zip(rec["event_dates"], rec["pre_post"], strict=True):
        day = dt.date.fromisoformat(ev)
        if day < times[0]:
            assert (pre, post) == (0, 0)
        elif day > times[-1]:
            assert (pre, post) == (14, 14)
        else:
            assert post == pre + 1
            if allow_ties and times[post] == day:
                ties.append(f"{rec['path']}: {ev}")
                continue
            assert times[pre] < day < times[post], (rec["path"], ev, times[pre], times[post])
    if ds_attrs is not None:
        # the file lists them in event_date's (set) order; the reader re-pairs them with the sorted dates
        assert schema.parse_attrs(ds_attrs)[0].pre_post == [tuple(p) for p in rec["pre_post"]]
    return ties


def test_pre_post_in_sample_files(manifest, loaded):
    recs = _recs(manifest, annotated=True)
    assert recs
    ties = []
    for r in recs:
        ties += _check_pre_post(r, loaded[r["path"]].attrs, allow_ties=True)
        if r["event_outside_series"] is None:
            ev = dt.date.fromisoformat(r["event_dates"][0])
            n_before = sum(t < ev for t in _dates(r))
            assert 5 <= n_before <= 7  # event-centred: 5–7 dates before, the rest after
    assert not ties, f"events on an acquisition date (post image taken on the event day): {ties}"


def test_pre_post_for_events_outside_the_series(default_special_records):
    outside = [r for r in default_special_records if r["event_outside_series"] in ("before", "after")]
    assert {r["event_outside_series"] for r in outside} == {"before", "after"}
    for r in outside:
        times = _dates(r)
        ev = [dt.date.fromisoformat(e) for e in r["event_dates"]]
        with netCDF4.Dataset(r["path"]) as ds:
            pp = schema.parse_attrs({k: ds.getncattr(k) for k in ds.ncattrs()})[0].pre_post  # chronological
        assert pp == [tuple(p) for p in r["pre_post"]]
        if r["event_outside_series"] == "before":
            assert ev[0] < times[0] and pp[0] == (0, 0)
        else:
            assert ev[-1] > times[-1] and pp[-1] == (14, 14)
        assert read_patch_meta(r["path"]).pre_post == pp


def test_two_event_patches_in_default_plan(default_special_records):
    multi = [r for r in default_special_records if len(r["event_dates"]) == 2]
    assert multi
    for r in multi:
        a, b = (dt.date.fromisoformat(e) for e in r["event_dates"])
        assert 12 <= (b - a).days <= 45
        assert len(r["pre_post"]) == 2


def test_no_event_on_an_acquisition_date(default_special_records):
    for r in default_special_records:
        _check_pre_post(r)


# --------------------------------------------------------------------------------------------------
# make_sample guards
# --------------------------------------------------------------------------------------------------
def test_make_sample_refuses_non_empty_folder(tmp_path):
    out = tmp_path / "data"
    (out / "s2").mkdir(parents=True)
    (out / "s2" / "stale_s2_1.nc").write_text("old")
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        make_sample(out, n_per_sensor=1, seed=4, progress=False)
    assert (out / "s2" / "stale_s2_1.nc").read_text() == "old"  # nothing touched
    # seed 4: the smallest plan (6 files)
    info = make_sample(out, n_per_sensor=1, seed=4, progress=False, overwrite=True)
    assert not (out / "s2" / "stale_s2_1.nc").exists()  # the sensor folders were replaced
    assert (out / "notes.txt").read_text() == "keep me"  # unrelated files are left alone
    man = generate.load_manifest(out)
    assert info.out_dir == out and info.n_files == man["counts"] and sum(info.n_files.values()) >= 1
    assert info.n_landslides == man["n_landslides"]
    assert info.n_locations == len({r["key"] for r in man["files"]})
    assert sorted(str(p.relative_to(out)) for p in out.glob("*/*.nc")) == sorted(
        r["path"] for r in man["files"]
    )
    assert json.loads((out / generate.MANIFEST_NAME).read_text())["seed"] == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_per_sensor": 0}, "n_per_sensor must be a whole number of at least 1"),
        ({"n_per_sensor": -5}, "at least 1"),
        ({"n_per_sensor": 2.5}, "whole number"),
        ({"n_per_sensor": 2, "workers": 0}, "workers must be a whole number of at least 1"),
    ],
)
def test_make_sample_rejects_bad_size(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_sample(tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_make_sample_refuses_a_file_as_out_dir(tmp_path):
    target = tmp_path / "sample.nc"
    target.write_text("not a folder")
    with pytest.raises(FileExistsError, match="not a folder"):
        make_sample(target, n_per_sensor=1, progress=False, overwrite=True)
    assert target.read_text() == "not a folder"


# A fresh interpreter writes one sample serially and reports its own peak resident memory (ru_maxrss, KiB).
_PEAK_RSS = """
import json, resource, sys
from s12ls_utils.sample import generate
from s12ls_utils.sample import plan as planner
planner._MAX_BLOCK = (1, 2)  # canvases of at most two tiles: both runs hold the largest canvas
info = generate.make_sample(sys.argv[1], n_per_sensor=int(sys.argv[2]), seed=1, workers=1, progress=False)
print(json.dumps({"files": sum(info.n_files.values()),
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def test_memory_does_not_grow_with_file_count(tmp_path):
    """About 11 and 45 files (seed 1, 4 and 14 per sensor, canvases of at most two tiles: both plans hold a
    two-tile canvas, so the per-canvas peak is the same) have the same peak memory within 25 MB. Holding the arrays
    of even ten of the 34 extra files (5.4 MB per S2 patch, 2 MB per S1 patch in memory) would add more than
    that."""
    import unittest.mock

    with unittest.mock.patch.object(planner, "_MAX_BLOCK", (1, 2)):
        assert {max(len(c.patches) for c in planner._plan(n, 1)) for n in (4, 14)} == {2}
    peaks = {}
    for n in (4, 14):
        res = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS, str(tmp_path / str(n)), str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[n] = json.loads(res.stdout.splitlines()[-1])
    assert peaks[14]["files"] > 3.5 * peaks[4]["files"], peaks
    growth_mb = (peaks[14]["peak_kib"] - peaks[4]["peak_kib"]) / 1024
    assert growth_mb < 25, peaks


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def _synth(*args: str) -> int:
    return cli.main(["synth", *args])


def test_cli_synth_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "data"
    assert _synth(str(out), "--n-per-sensor", "2", "--seed", "4", "--workers", "2") == 0
    man = generate.load_manifest(out)
    assert (man["n_per_sensor"], man["seed"]) == (2, 4)
    printed = capsys.readouterr().out
    assert f"to {out}" in printed and f"{man['counts']['s2']} s2" in printed
    assert len(list(out.glob("*/*.nc"))) == sum(man["counts"].values())


@pytest.mark.parametrize("n", ["0", "-3"])
def test_cli_synth_rejects_non_positive_size(tmp_path, capsys, n):
    assert _synth(str(tmp_path / "data"), "--n-per-sensor", n) == 2
    assert "s12ls synth: error: n_per_sensor must be a whole number of at least 1" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_cli_synth_rejects_bad_numbers(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # argparse: not a whole number
        _synth(str(tmp_path / "data"), "--n-per-sensor", "many")
    assert exc.value.code == 2 and "invalid int value: 'many'" in capsys.readouterr().err
    assert _synth(str(tmp_path / "data"), "--n-per-sensor", "2", "--workers", "0") == 2
    assert "workers must be a whole number of at least 1" in capsys.readouterr().err


def test_cli_synth_refuses_a_file(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert _synth(str(target), "--n-per-sensor", "1", "--overwrite") == 2
    assert "is not a folder" in capsys.readouterr().err and target.read_text() == "keep me"


def test_cli_synth_non_empty_folder_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "data"
    (out / "s2").mkdir(parents=True)
    (out / "s2" / "old_s2_1.nc").write_text("old")
    assert _synth(str(out), "--n-per-sensor", "1", "--workers", "1") == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--overwrite" in err
    assert (out / "s2" / "old_s2_1.nc").read_text() == "old"
    assert _synth(str(out), "--n-per-sensor", "1", "--seed", "4", "--workers", "1", "--overwrite") == 0
    assert not (out / "s2" / "old_s2_1.nc").exists() and (out / generate.MANIFEST_NAME).exists()


# --------------------------------------------------------------------------------------------------
# Release: the sample is the raw release (S1 linear, S2 with ESA's offset from 2022-01-25)
# --------------------------------------------------------------------------------------------------
def test_sample_is_the_raw_release(sample_dir, manifest, loaded):
    from s12ls_utils import io

    assert manifest["release"] == "raw"
    assert all(io.file_release(sample_dir / r["path"]) == "raw" for r in manifest["files"])
    late = [r for r in _recs(manifest, "s2") if max(_dates(r)) >= schema.S2_OFFSET_FROM]
    early = [r for r in _recs(manifest, "s2") if max(_dates(r)) < schema.S2_OFFSET_FROM]
    assert late and early, "the sample should hold S2 series on both sides of 2022-01-25"
    for r in late + early:
        ds = loaded[r["path"]]  # read through the package: harmonised
        steps = np.array([t >= schema.S2_OFFSET_FROM for t in _dates(r)])
        assert ds.attrs["release"] == "raw" and ds.attrs["s2_offset_removed"] == int(steps.sum())
        with netCDF4.Dataset(sample_dir / r["path"]) as nc:
            for b in schema.S2_BANDS:
                assert nc[b].dimensions == schema.DIMS
                stored = np.swapaxes(np.asarray(nc[b][:]), 1, 2)  # stored (time, x, y), as the released files
                phys = ds[b].values
                np.testing.assert_array_equal(stored[~steps], phys[~steps])
                # +1000 on valid pixels (clipped to 10000), no-data 0 stays 0
                want = np.where(phys[steps] > 0, phys[steps].astype("int32") + 1000, 0)
                np.testing.assert_array_equal(stored[steps], want)
                assert stored.max() <= 10000
        with open_patch(sample_dir / r["path"], load=True, harmonize=False) as kept:
            stored = kept["B08"].values[steps]
            assert ((stored - ds["B08"].values[steps])[stored > 0] == 1000).all()


# --------------------------------------------------------------------------------------------------
# The dataset writer's conventions (../shared/reference/REAL-FORMAT.md)
# --------------------------------------------------------------------------------------------------
def test_every_file_validates(sample_dir, manifest):
    for r in manifest["files"]:
        res = io.check_patch(sample_dir / r["path"])
        assert res.errors == [], (r["path"], res.errors)


def test_writer_layout(sample_dir, manifest):
    """Dim order, variable order, dtypes, fill values, edge coordinates, time encoding and spatial_ref."""
    order = {
        "s2": [*schema.S2_BANDS, "SCL", "MASK", "DEM"],
        "s1asc": ["VH", "VV", "MASK", "DEM"],
        "s1dsc": ["VH", "VV", "MASK", "DEM"],
    }
    for r in manifest["files"]:
        with netCDF4.Dataset(sample_dir / r["path"]) as nc:
            data_vars = [v for v in nc.variables if v not in ("time", "x", "y", "spatial_ref")]
            assert data_vars == order[r["sensor"]], r["path"]
            for name in data_vars:
                v = nc[name]
                assert v.dimensions == ("time", "x", "y"), (r["path"], name)  # as the released files
                assert v.dtype == schema.VARIABLES[r["sensor"]][name]
                if name in ("VV", "VH"):
                    assert np.isnan(v.getncattr("_FillValue"))
                else:
                    assert "_FillValue" not in v.ncattrs(), (r["path"], name)  # int16 / uint8: none
            x, y = np.asarray(nc["x"][:]), np.asarray(nc["y"][:])
            assert x.dtype == y.dtype == np.float64
            gt = [float(g) for g in nc["spatial_ref"].getncattr("GeoTransform").split()]
            # pixel top/left edges: x = arange(nx)*a + c, y = f + arange(ny)*e (descending)
            np.testing.assert_array_equal(x, np.arange(schema.PATCH_SIZE) * 10.0 + gt[0])
            np.testing.assert_array_equal(y, gt[3] + np.arange(schema.PATCH_SIZE) * -10.0)
            assert nc["spatial_ref"].dtype == np.int64 and nc["spatial_ref"].ndim == 0
            # time: xarray's default encoding, int64 days since the first date
            t = nc["time"]
            assert t.dtype == np.int64 and t.units == f"days since {r['times'][0]} 00:00:00"
            days = np.array(r["times"], dtype="datetime64[D]")
            np.testing.assert_array_equal(t[:], (days - days[0]).astype("int64"))
            # satellite and the float centre y[64], x[64] (a pixel corner: the exact patch centre)
            assert (
                nc.getncattr("satellite") == {"s2": "s2", "s1asc": "s1-asc", "s1dsc": "s1-dsc"}[r["sensor"]]
            )
            lat, lon = nc.getncattr("center_lat"), nc.getncattr("center_lon")
            assert isinstance(lat, np.floating) and isinstance(lon, np.floating)
            assert (float(lat), float(lon)) == (y[64], x[64]) == (r["center_y"], r["center_x"])
            for name in ("ann_id", "ann_bbox", "event_date", "date_confidence", "pre_post_dates", "crs"):
                assert isinstance(nc.getncattr(name), str)


def test_readers_take_the_writer_layout(sample_dir, manifest, loaded):
    """The package's readers return (time, y, x) and record the file's order; the stored data are really
    x-first: a frame read positionally is the transpose of the north-up image the readers give."""
    assert manifest["dims"] == list(schema.DIMS)
    for r in manifest["files"][:6]:
        ds = loaded[r["path"]]
        assert ds["MASK"].dims == schema.CANONICAL_DIMS
        assert read_patch_meta(sample_dir / r["path"]).dims_order == "time,x,y"
        name = "B08" if r["sensor"] == "s2" else "VV"
        with netCDF4.Dataset(sample_dir / r["path"]) as nc:
            stored = np.asarray(nc[name][3])  # positional: (x, y)
            dem = np.asarray(nc["DEM"][0])
        np.testing.assert_array_equal(stored.T, ds[name].values[3])
        # north-up: the first row of the (y, x) image is the northern edge (y descending)
        assert ds["y"].values[0] > ds["y"].values[-1]
        np.testing.assert_array_equal(dem.T, ds["DEM"].values[0])


def _written_pre_post(times: list[str], written: str) -> list[tuple[int, int]]:
    """The writer's rule, per entry of ``event_date`` in its written order."""
    t = np.array(times, dtype="datetime64[D]")
    out = []
    for tok in written.split(","):
        if tok == "None":
            out.append((0, 0))
            continue
        idx = int(np.searchsorted(t, np.datetime64(tok, "D")))
        out.append((0, 0) if idx == 0 else (len(t) - 1,) * 2 if idx == len(t) else (idx - 1, idx))
    return out


def test_event_date_in_set_order(sample_dir, manifest, default_special_records):
    """event_date holds the distinct dates in set order (not always chronological), pre_post_dates one dict
    per entry in the same order, date_confidence the distinct values; the readers sort the dates."""
    recs = [dict(r, path=str(sample_dir / r["path"])) for r in manifest["files"]] + default_special_records
    unordered = 0
    for r in recs:
        if not r["annotated"]:
            continue
        with netCDF4.Dataset(r["path"]) as nc:
            raw = {k: nc.getncattr(k) for k in nc.ncattrs()}
        written = raw["event_date"].split(",")
        assert written == r["event_date_attr"].split(",") and len(set(written)) == len(written)
        assert sorted(d for d in written if d != "None") == r["event_dates"]
        assert schema.parse_pre_post(raw["pre_post_dates"]) == _written_pre_post(
            r["times"], raw["event_date"]
        )
        confs = raw["date_confidence"].split(",")
        assert len(set(confs)) == len(confs)
        if r["event_dates"]:
            assert {float(c) for c in confs} == set(r["date_confidences"])
        attrs, problems = schema.parse_attrs(raw)
        assert not problems and [d.isoformat() for d in attrs.event_dates] == r["event_dates"]
        assert attrs.pre_post == [tuple(p) for p in r["pre_post"]]
        unordered += written != sorted(written)
    assert unordered, "no multi-event patch lists its dates out of chronological order"


def test_undated_annotation(default_special_records):
    """The default sample holds an undated annotation: event_date "None", {0, 0}, read as undated."""
    undated = [r for r in default_special_records if r["n_undated_events"]]
    assert undated, "the default sample holds no undated annotation"
    for r in undated:
        with netCDF4.Dataset(r["path"]) as nc:
            assert nc.getncattr("event_date") == "None" and nc.getncattr("date_confidence") == "nan"
            assert nc.getncattr("pre_post_dates") == "{'pre': 0, 'post': 0}"
            assert nc.getncattr("annotated") == "True"
        assert r["event_dates"] == [] and r["event_outside_series"] == "undated" and r["n_positive"] > 0
        m = read_patch_meta(r["path"])
        assert m.n_undated_events == 1 and m.event_dates == [] and m.event_steps.position == "undated"
        assert io.check_patch(r["path"]).errors == []
        # the inventory has no date either
        slides = r["inventory"]
        assert slides and all(ls["event_date"] is None and np.isnan(ls["date_conf"]) for ls in slides)


def test_undated_and_padded_in_default_plan(default_plan):
    assert any(p.undated for p in default_plan)
    assert all(p.annotated and not p.two_events and not p.outside for p in default_plan if p.undated)
    padded = [(p, s, k) for p in default_plan for s, k in p.padded.items()]
    assert padded and all(1 <= k <= 4 for _, _, k in padded)
    assert all(s in {x for pp in p.patches for x in pp.sensors} for p, s, _ in padded)
    # no real S2 file repeats a date: the default sample pads Sentinel-1 series only, S2 on request
    assert {s for _, s, _ in padded} <= set(schema.S1_SENSORS)
    with_s2 = generate._plan(generate.DEFAULT_N_PER_SENSOR, DEFAULT_PLAN_SEED, pad_s2=True)
    assert any("s2" in p.padded for p in with_s2)


def test_s2_time_stamps_strictly_increasing(sample_dir, manifest):
    """As in every real S2 file: unique, strictly increasing time stamps in every S2 file of a sample."""
    recs = _recs(manifest, "s2")
    assert recs
    for r in recs:
        assert r["n_padded"] == 0
        t = read_patch_meta(sample_dir / r["path"]).times
        assert (np.diff(t) > np.timedelta64(0)).all(), r["path"]


@pytest.fixture(scope="module")
def padded_s2_records(default_plan, tmp_path_factory) -> list[dict]:
    """The smallest S2 canvas of the default plan written with its S2 series padded (3 repeats): the writer's
    case the default sample no longer shows for S2."""
    import copy

    out = tmp_path_factory.mktemp("padded_s2")
    for s in schema.SENSORS:
        (out / s).mkdir()
    plan = copy.deepcopy(min((p for p in default_plan if p.scl_unknown), key=lambda p: len(p.patches)))
    plan.padded = {"s2": 3}
    recs, _ = generate._canvas_job((plan, str(out), 40000 + 1000 * plan.index))
    return [dict(r, path=str(out / r["path"])) for r in recs if r["sensor"] == "s2"]


def test_padded_series(sample_dir, manifest, default_special_records, padded_s2_records):
    """A short series repeats its last date and image (1-4 times); it validates, with a warning."""
    recs = [dict(r, path=str(sample_dir / r["path"])) for r in manifest["files"]] + default_special_records
    padded = [r for r in recs + padded_s2_records if r["n_padded"]]
    assert any(r["path"].startswith(str(sample_dir)) for r in padded), "the sample holds no padded series"
    assert {r["sensor"] for r in padded} == set(schema.SENSORS)
    for r in padded:
        k = r["n_padded"]
        assert r["times"][-k - 1 :] == [r["times"][-1]] * (k + 1)
        assert len(set(r["times"][:-k])) == schema.N_TIME - k
        ds = open_patch(r["path"], load=True)
        for name in ds.data_vars:
            if "time" in ds[name].dims:
                v = ds[name].values
                np.testing.assert_array_equal(v[-k - 1 :], np.broadcast_to(v[-1], v[-k - 1 :].shape))
        res = io.check_patch(r["path"])
        assert not res.errors and any("repeated date" in w for w in res.warnings)


def test_s2_gaps_are_filled(manifest, loaded):
    """The writer fills no-data pixels with the nearest valid one: no 0 in the bands, no SCL class 0."""
    for r in _recs(manifest, "s2"):
        ds = loaded[r["path"]]
        assert int(ds.SCL.min()) > 0
        for b in schema.S2_BANDS:
            assert int(ds[b].min()) >= 0 and int(ds[b].max()) <= 10000


def test_real_region_names(manifest):
    real = {
        "chimanimani", "china", "dominicamaria", "hiroshima", "hokkaido", "indonesia", "italy", "itogon",
        "kyrgyzstan1", "kyrgyzstan2", "lanaodelnorte", "nepal", "newzealand", "thrissur", "usa_alaska",
        "usa_puertorico",
    }  # fmt: skip
    assert set(generate.REGION_BY_NAME) <= real and len(generate.REGIONS) == 6
    assert {r["region"] for r in manifest["files"]} <= real


# --------------------------------------------------------------------------------------------------
# Harmonized release
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def release_pair(tmp_path_factory) -> tuple[Path, Path]:
    """``(raw, harmonized)``: one small sample written as both releases, same seed and size, the harmonized one
    with ``s12ls synth --release harmonized``. Seed 4, one per sensor: the smallest plan (one Italian canvas, 6
    files) with every sensor, a non-annotated S2 tile and S2 dates after 2022-01-25 (ESA's offset)."""
    out = tmp_path_factory.mktemp("releases")
    make_sample(out / "raw", n_per_sensor=1, seed=4, workers=1, progress=False)
    args = ("--n-per-sensor", "1", "--seed", "4", "--workers", "1", "--release", "harmonized")
    assert _synth(str(out / "harmonized"), *args) == 0
    return out / "raw", out / "harmonized"


def test_compression_follows_the_release(release_pair):
    """The raw release is written uncompressed, as the dataset's writer writes it (a non-annotated real S2 file
    is 6,176,008 bytes), the harmonized release zlib-compressed, as its files are."""
    raw_dir, harmonized_dir = release_pair
    sized = 0
    for rec in generate.load_manifest(raw_dir)["files"]:
        for root, zlib in ((raw_dir, False), (harmonized_dir, True)):
            with netCDF4.Dataset(root / rec["path"]) as nc:
                for name, var in nc.variables.items():
                    if var.dimensions == schema.DIMS:
                        assert var.filters()["zlib"] is zlib, (root, rec["path"], name)
        if rec["sensor"] == "s2" and not rec["annotated"]:
            assert abs((raw_dir / rec["path"]).stat().st_size - 6_176_008) < 8_000, rec["path"]
            sized += 1
    assert sized, "no non-annotated S2 file to compare with the real file size"


def test_harmonized_release(release_pair):
    from s12ls_utils import io

    sample_dir, harmonized_dir = release_pair
    manifest = generate.load_manifest(sample_dir)
    har = generate.load_manifest(harmonized_dir)
    assert har["release"] == "harmonized" and manifest["release"] == "raw"
    assert [r["path"] for r in har["files"]] == [r["path"] for r in manifest["files"]]
    keep = ("release", "files")
    assert {k: v for k, v in har.items() if k not in keep} == {
        k: v for k, v in manifest.items() if k not in keep
    }
    assert "harmonized release" in (harmonized_dir / "README.md").read_text()
    late = 0
    for r, h in zip(manifest["files"], har["files"], strict=True):
        assert r == h  # same scenes, same records
        path_h = harmonized_dir / r["path"]
        assert io.file_release(path_h) == "harmonized" and io.check_patch(path_h).errors == []
        with open_patch(sample_dir / r["path"], load=True) as raw, open_patch(path_h, load=True) as hds:
            assert hds.attrs["release"] == "harmonized"
            np.testing.assert_array_equal(hds.MASK.values, raw.MASK.values)
            np.testing.assert_array_equal(hds.DEM.values, np.clip(raw.DEM.values, 0, 8800))
            ours = ("release", "s1_unit_native", "s2_offset_removed")  # set by the reader, not the file
            assert {k: v for k, v in hds.attrs.items() if k not in ours} == {
                k: v for k, v in raw.attrs.items() if k not in ours
            }
            if r["sensor"] == "s2":
                for b in (*schema.S2_BANDS, "SCL"):  # the same physical values, through the same readers
                    np.testing.assert_array_equal(hds[b].values, raw[b].values)
                assert hds.attrs["s2_offset_removed"] == 0
                late += raw.attrs["s2_offset_removed"] > 0
                with netCDF4.Dataset(path_h) as nc:
                    assert max(int(np.asarray(nc[b][:]).max()) for b in schema.S2_BANDS) <= 10000
            else:
                assert hds.attrs["s1_unit_native"] == "dB" and raw.attrs["s1_unit_native"] == "linear"
                for b in schema.S1_BANDS:
                    h, lin = hds[b].values, raw[b].values
                    np.testing.assert_array_equal(np.isnan(h), np.isnan(lin))
                    fin = np.isfinite(h)
                    assert (h[fin] >= -50).all() and (h[fin] <= 10).all()
                    np.testing.assert_allclose(h[fin], np.clip(10 * np.log10(lin[fin]), -50, 10), atol=1e-4)
    assert late, "no harmonized S2 series reaches 2022-01-25"


def test_make_sample_rejects_unknown_release(tmp_path):
    with pytest.raises(ValueError, match="release must be 'raw' or 'harmonized', not 'final'"):
        make_sample(tmp_path / "out", n_per_sensor=1, progress=False, release="final")
    assert not (tmp_path / "out").exists()


def test_cli_synth_harmonized(release_pair, tmp_path, capsys):
    """``s12ls synth --release harmonized`` wrote ``release_pair``'s harmonized sample; an unknown release is
    refused."""
    assert generate.load_manifest(release_pair[1])["release"] == "harmonized"
    with pytest.raises(SystemExit):
        _synth(str(tmp_path / "other"), "--release", "final")
    assert "invalid choice: 'final'" in capsys.readouterr().err


_FORKSERVER_PRELOAD = """
import json, sys
from multiprocessing import forkserver
from s12ls_utils.sample import make_sample
make_sample(sys.argv[1], n_per_sensor=2, seed=1, workers=2, progress=False)  # two canvases: a pool
print(json.dumps(list(forkserver._forkserver._preload_modules)))
"""


def test_generator_workers_share_the_library_worker_context(tmp_path):
    """The generator's pool starts the process's one forkserver with the reading stack preloaded (the
    library's worker context), so a catalog pass after ``make_sample`` in the same process does not import
    that stack again in every worker (about 0.5 s per pass, benchmarks/results/catalog_scan.md)."""
    from s12ls_utils import parallel

    if "forkserver" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("no forkserver on this platform")
    res = subprocess.run(
        [sys.executable, "-c", _FORKSERVER_PRELOAD, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    assert json.loads(res.stdout.strip().splitlines()[-1]) == list(parallel._PRELOAD)
