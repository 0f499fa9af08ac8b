"""Datasets and the packed cache: sample shapes, alignment under augmentation, cache round trip, staleness."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import copy_sample, write_tiny_task
from real_format import real_data_fixture  # noqa: F401  (fixture real_data)

from s12ls_utils import datasets as D
from s12ls_utils import io, schema, tasks
from s12ls_utils.sample import load_manifest


@pytest.fixture(scope="module")
def task_dir(small_sample, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tasks") / "TINY"
    return write_tiny_task(small_sample, out, sensors=("s1asc", "s2"))


@pytest.fixture(scope="module")
def task(task_dir, small_sample):
    return tasks.load_task(task_dir, data_dir=small_sample)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


# ------------------------------------------------------------------------------------------ samples
@pytest.mark.parametrize("sensor", ["s2", "s1asc"])
@pytest.mark.parametrize("view", ["series", "prepost"])
def test_sample_shapes_and_dtypes(task, cache_dir, sensor, view):
    ds = D.PatchDataset(task, "train", sensor, view=view, cache_dir=cache_dir, progress=False)
    assert len(ds) == len(task.splits[sensor]["train"]) == 3
    s = ds[0]
    c = len(schema.FEATURES[sensor])
    img = c - 1
    want = (15, c + 1, 128, 128) if view == "series" else (3 * img + 4, 128, 128)
    assert tuple(s[sensor].shape) == want
    assert s[sensor].dtype == torch.float32 and torch.isfinite(s[sensor]).all()
    assert tuple(s["y"].shape) == (128, 128) and s["y"].dtype == torch.float32
    assert set(torch.unique(s["y"]).tolist()) <= {0.0, 1.0}
    assert s["id"] == task.splits[sensor]["train"][0]["id"]
    assert ds.in_channels() == {sensor: want[1] if view == "series" else want[0]}
    assert len(ds.channels[sensor]) == (want[1] if view == "series" else want[0])
    # validity channel / composite validity are 0/1
    v = s[sensor][:, -1] if view == "series" else s[sensor][-2:]
    assert set(torch.unique(v).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("view", ["series", "prepost"])
def test_fusion_returns_one_tensor_per_sensor(task, cache_dir, view):
    ds = D.PatchDataset(task, "val", ["s1asc", "s2"], view=view, cache_dir=cache_dir, progress=False)
    assert ds.aligned and len(ds) == len(task.aligned["val"])
    s = ds[1]
    assert {"s1asc", "s2", "y", "id"} <= set(s)
    if view == "series":
        assert s["s1asc"].shape == (15, 4, 128, 128) and s["s2"].shape == (15, 12, 128, 128)
    else:
        assert s["s1asc"].shape == (10, 128, 128) and s["s2"].shape == (34, 128, 128)
    # both sensors carry the same mask: the aligned caches agree
    maps = ds._maps()
    assert np.array_equal(maps["s1asc"]["y"], maps["s2"]["y"])
    # the packed validity bits of the cache files unpack to the loader's
    raw = ds.read_raw(1)
    packed = maps["s2"]["valid" if view == "series" else "comp_valid"][ds.indices[1]]
    assert np.array_equal(D.unpack_validity(packed), raw["s2_valid"].numpy().astype(bool))


def test_normalisation_uses_task_statistics(task, cache_dir):
    ds = D.PatchDataset(task, "train", "s2", cache_dir=cache_dir, progress=False)
    x = torch.stack([ds[i]["s2"] for i in range(len(ds))])[:, :, :-1]  # features without validity
    # train statistics applied to the train split: mean ~0, std ~1 per channel (clipping aside)
    m = x.mean(dim=(0, 1, 3, 4))
    s = x.std(dim=(0, 1, 3, 4))
    assert torch.allclose(m, torch.zeros_like(m), atol=0.05), m
    assert torch.allclose(s, torch.ones_like(s), atol=0.1), s


def test_old_format_task_and_linear_s1(small_sample, tmp_path, cache_dir):
    out = write_tiny_task(small_sample, tmp_path / "OLD", sensors=("s1asc",), fmt="old")
    task = tasks.load_task(out, data_dir=small_sample)
    assert task.format == "old" and task.units["s1asc"] == "linear"
    ds = D.PatchDataset(task, "train", "s1asc", cache_dir=cache_dir, progress=False)
    s = ds[0]["s1asc"]
    entry = task.splits["s1asc"]["train"][0]
    with io.open_patch(small_sample / entry["path"], s1_unit="linear", load=True) as pds:
        f = io.patch_features(pds, "s1asc")
    lo, hi = 10**-5.0, 10.0
    ref = np.clip(f[:, 0], lo, hi)
    ok = np.isfinite(f[:, 0])
    mean, std = task.norm["s1asc"]["mean"]["VV"], task.norm["s1asc"]["std"]["VV"]
    assert (mean, std) == (0.157, 0.147)  # norm_data.json lists follow the file order VH, VV, DEM
    got = s[:, 0].numpy() * std + mean  # back to linear VV
    # 0.005 dB quantisation error = 0.115 % of the linear value (+ float32 rounding)
    assert np.allclose(got[ok], ref[ok], rtol=1.3e-3, atol=1e-6)
    assert (s[:, 0].numpy()[~ok] == 0).all() and (s[:, -1].numpy()[~ok] == 0).all()


def test_empty_split_is_a_clear_error(small_sample, tmp_path):
    out = write_tiny_task(small_sample, tmp_path / "T", sensors=("s2",))
    data = json.loads((out / "s2" / "splits.json").read_text())
    data["test"] = []
    (out / "s2" / "splits.json").write_text(json.dumps(data))
    task = tasks.load_task(out, data_dir=small_sample)
    sizes = {s: len(data[s]) for s in ("train", "val")}
    with pytest.raises(
        ValueError,
        match=rf"'test'.*empty \(patches per split: {{'train': {sizes['train']}, 'val': {sizes['val']}, 'test': 0}}\)",
    ):
        D.PatchDataset(task, "test", "s2", cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="empty"):
        D.build_cache(task, "test", "s2", cache_dir=tmp_path / "c", progress=False)


def test_unknown_sensor_and_view(task):
    with pytest.raises(ValueError, match="sensor must be 's1asc', 's1dsc' or 's2'"):
        D.PatchDataset(task, "train", "s3", progress=False)
    with pytest.raises(ValueError, match="view"):
        D.PatchDataset(task, "train", "s2", view="median", progress=False)


# ------------------------------------------------------------------------------------------ cache
def test_cache_round_trip_equals_direct_reading(task, cache_dir):
    for sensor in ("s2", "s1asc"):
        for view in ("series", "prepost"):
            cached = D.PatchDataset(
                task, "val", sensor, view=view, cache_dir=cache_dir, raw=True, progress=False
            )
            direct = D.PatchDataset(task, "val", sensor, view=view, cache=False, raw=True, progress=False)
            a, b = cached.read_raw([0, 1]), direct.read_raw([0, 1])
            for k in (sensor, f"{sensor}_valid", f"{sensor}_days", "y"):
                assert torch.equal(a[k], b[k]), (sensor, view, k)
            assert a["id"] == b["id"]
            cached.raw = direct.raw = False
            assert torch.equal(cached[1][sensor], direct[1][sensor])


def test_cache_facts_and_read_speed(task, cache_dir, small_sample):
    """The cache's size against the files on disk, the landslide share against the masks read with xarray,
    and the timings of the two readers."""
    caches = {s: D.build_cache(task, s, "s2", cache_dir=cache_dir, progress=False) for s in ("train", "val")}
    facts = D.cache_facts(task, caches, "s2")
    files = [f for c in caches.values() for folder in c.values() for f in Path(folder).glob("*.npy")]
    assert facts["cache_mb"] == pytest.approx(sum(f.stat().st_size for f in files) / 1e6)
    assert Path(facts["cache_dir"]) == Path(caches["train"]["s2"]).parent
    for split in caches:
        masks = []
        for entry in task.splits["s2"][split]:
            with io.open_patch(small_sample / entry["s2"], load=True) as pds:
                masks.append(pds["MASK"].values[0])
        assert facts[f"{split}_positive_pct"] == pytest.approx(100 * np.mean(masks), abs=0.005)
    direct = D.PatchDataset(task, "train", "s2", cache=False, raw=True, progress=False)
    cached = D.PatchDataset(task, "train", "s2", cache_dir=cache_dir, raw=True, progress=False)
    speed = D.read_speed(direct, cached, n=2)
    assert speed["netcdf_ms_per_sample"] > 0 and speed["cache_ms_per_sample"] > 0
    assert speed["read_speedup"] == pytest.approx(
        speed["netcdf_ms_per_sample"] / speed["cache_ms_per_sample"]
    )


def test_cache_matches_the_reference_reader(task, cache_dir, small_sample):
    """Against xarray (io.open_patch + patch_features): S2/DEM exact, S1 within 0.005 dB."""
    for sensor in ("s2", "s1asc"):
        ds = D.PatchDataset(task, "train", sensor, cache_dir=cache_dir, raw=True, progress=False)
        for i in range(len(ds)):
            r = ds.read_raw(i)
            with io.open_patch(small_sample / ds.entries[i][sensor], s1_unit="dB", load=True) as pds:
                f = io.patch_features(pds, sensor)
                mask = pds["MASK"].values[0]
                scl = pds["SCL"].values if sensor == "s2" else None
            x = r[sensor].numpy()
            assert np.array_equal(r["y"].numpy(), mask)
            valid = r[f"{sensor}_valid"].numpy().astype(bool)
            if sensor == "s2":
                assert np.array_equal(x.astype("float32"), f)
                # usable: not a class the reference rejects, and not 255 (unknown quality)
                assert np.array_equal(valid, ~np.isin(scl, [*schema.SCL_BAD, 255]))
            else:
                dec = np.where(x == D.SENTINEL, np.nan, x / D.channel_scales(sensor)[None, :, None, None])
                assert np.array_equal(np.isnan(dec), np.isnan(f))
                assert np.nanmax(np.abs(dec - f)) <= 0.005 + 1e-4  # + float32 rounding of the dB values
                assert np.array_equal(valid, np.isfinite(f[:, 0]) & np.isfinite(f[:, 1]))


def test_composite_is_the_lower_median_of_valid_dates():
    t, c, h, w = 5, 2, 1, 8
    x = np.arange(t * c * h * w, dtype="int16").reshape(t, c, h, w)
    x[:, 0, 0, 0] = [50, 10, 40, 30, 20]
    valid = np.ones((t, h, w), dtype=bool)
    valid[1, 0, 1] = False  # pixel 1: date 1 invalid
    valid[3:, 0, 2] = False  # pixel 2: no valid post date
    # use a 3-channel (VV, VH, DEM) stack so the DEM handling is covered
    x3 = np.concatenate([x, np.full((t, 1, h, w), 700, dtype="int16")], axis=1)
    x3[:, 2, 0, 0] = [700, 701, 702, 703, 704]  # a "DEM" that varies: composites copy date 0
    comp, ok = D.prepost_composite(x3, valid, (2, 3), "s1asc")
    assert comp.shape == (2, 3, h, w) and comp.dtype == np.int16
    assert comp[0, 0, 0, 0] == 40  # pre dates 0..2: 50, 10, 40 -> lower median 40
    assert comp[1, 0, 0, 0] == 20  # post dates 3..4: 30, 20 -> lower median 20
    assert comp[0, 0, 0, 1] == min(x3[0, 0, 0, 1], x3[2, 0, 0, 1])  # two valid pre dates -> the lower
    assert comp[1, 0, 0, 2] == D.SENTINEL and not ok[1, 0, 2] and ok[0, 0, 2]
    assert (comp[:, 2, 0, 0] == 700).all()


def test_stale_cache_is_detected_and_rebuilt(small_sample, tmp_path):
    data = copy_sample(small_sample, tmp_path)
    out = write_tiny_task(data, data / "tasks" / "TINY", sensors=("s2",))
    task = tasks.load_task(out)
    assert task.data_dir == data.resolve()
    assert D.cache_status(task, "train", "s2") == "no cache"
    folder = D.build_cache(task, "train", "s2", progress=False)["s2"]
    assert folder.is_relative_to(data / ".s12ls_cache")
    assert D.cache_status(task, "train", "s2") is None
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    D.build_cache(task, "train", "s2", progress=False)  # fresh: not rebuilt
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp

    # a source file changes (new modification time) -> stale -> rebuilt with the new content
    src = data / task.splits["s2"]["train"][1]["path"]
    import netCDF4

    with netCDF4.Dataset(src, "r+") as nc:
        var = nc.variables["B04"]
        arr = var[:]
        arr[0, 0, 0] = 1234
        var[:] = arr
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    assert "changed" in D.cache_status(task, "train", "s2")
    ds = D.PatchDataset(task, "train", "s2", raw=True, progress=False)
    assert D.cache_status(task, "train", "s2") is None
    raw = ds.read_raw(1)["s2"]
    b04 = schema.FEATURES["s2"].index("B04")
    assert int(raw[0, b04, 0, 0]) == 1234  # file (time, x, y) (0, 0, 0) -> canonical (time, y, x) (0, 0, 0)

    # the split lists other patches -> stale
    sp = json.loads((out / "s2" / "splits.json").read_text())
    sp["train"] = sp["train"][:-1]
    (out / "s2" / "splits.json").write_text(json.dumps(sp))
    task2 = tasks.load_task(out)
    assert "other patches" in D.cache_status(task2, "train", "s2")
    # a missing source -> stale
    src.unlink()
    assert "missing" in D.cache_status(task, "train", "s2")
    # no temporary folders are left behind
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_describe_cache(task, cache_dir):
    dirs = D.build_cache(task, "train", "s2", cache_dir=cache_dir, progress=False)
    df = D.describe_cache(dirs)
    row = df.set_index("array").loc["x"]
    assert row["dtype"] == "int16" and row["shape"] == "3×15×11×128×128"
    man = json.loads((dirs["s2"] / "manifest.json").read_text())
    assert man["channels"] == list(schema.FEATURES["s2"]) and len(man["sources"]) == 3
    assert {"size", "mtime_ns", "path", "id"} <= set(man["sources"][0])


# ------------------------------------------------------------------------------------------ augmentation
def _marked_batch(sensors=("s2", "s1asc"), b: int = 6, seed: int = 0) -> dict:
    """Raw batch whose every feature value encodes the mask (1000 inside, 0 outside) + an L-shaped mark."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(b, 32, 32, generator=g) > 0.8).to(torch.uint8)
    y[:, :3, :10] = 1  # asymmetric: any rotation/flip moves it
    batch = {"y": y}
    for s in sensors:
        c = len(schema.FEATURES[s])
        x = (y[:, None, None].expand(b, 15, c, 32, 32).to(torch.int16) * 1000).contiguous()
        batch[s] = x
        batch[f"{s}_valid"] = y[:, None].expand(b, 15, 32, 32).contiguous()
    return batch


def test_augmentation_keeps_images_and_mask_aligned():
    stats = {s: ([0.0] * len(schema.FEATURES[s]), [1.0] * len(schema.FEATURES[s])) for s in ("s2", "s1asc")}
    pre = D.Preprocessor(stats, {"s1asc": "dB"}, "series")
    batch = _marked_batch()
    gen = torch.Generator().manual_seed(3)
    inputs, y, _ = pre(batch, augment=True, generator=gen)
    assert not torch.equal(y, batch["y"].float())  # something moved
    for s in ("s2", "s1asc"):
        x = inputs[s]
        assert x.shape[:2] == (6, 15)
        # B02 (S2) is clipped to 0..10000 -> 1000 inside; S1 "VV" 1000/100 = 10 dB inside
        feat = x[:, :, 0] > 0
        assert torch.equal(feat, y.bool()[:, None].expand_as(feat))
        assert torch.equal(x[:, :, -1].bool(), y.bool()[:, None].expand_as(feat))  # validity moved too
    # crops: the same window for image and mask
    inputs, y, _ = pre(batch, augment=True, crop=16, generator=torch.Generator().manual_seed(4))
    assert y.shape == (6, 16, 16) and inputs["s2"].shape[-2:] == (16, 16)
    assert torch.equal(inputs["s2"][:, 0, 0] > 0, y.bool())


def test_augmentation_prepost_view_aligned():
    stats = {"s2": ([0.0] * 11, [1.0] * 11)}
    pre = D.Preprocessor(stats, {}, "prepost")
    batch = _marked_batch(("s2",))
    batch["s2"] = batch["s2"][:, :2]
    batch["s2_valid"] = batch["s2_valid"][:, :2]
    inputs, y, _ = pre(batch, augment=True, generator=torch.Generator().manual_seed(5))
    x = inputs["s2"]
    assert x.shape == (6, 34, 32, 32)
    assert torch.equal(x[:, 0] > 0, y.bool()) and torch.equal(x[:, 10] > 0, y.bool())
    assert torch.equal(x[:, -1].bool(), y.bool())


def test_spatial_transforms_numpy_and_torch_agree():
    """The CPU (numpy) path and the torch path (used on GPUs) crop, flip and rotate identically."""
    t = torch.arange(3 * 2 * 5 * 16 * 16, dtype=torch.int16).reshape(3, 2, 5, 16, 16)
    params = [(1, False), (2, True), (3, True)]
    off = [[0, 3], [5, 1], [8, 8]]
    for o, c in ((None, None), (off, 8)):
        a = D._spatial(t, o, c, params)
        b = D._spatial(t, o, c, params, backend="torch")
        assert torch.equal(a, b)
    ref = torch.stack([D._rot_flip(t[i], k, f) for i, (k, f) in enumerate(params)])
    assert torch.equal(D._spatial(t, None, None, params), ref)


def test_dataset_augmentation_is_consistent(task, cache_dir):
    """Augmented samples are rotations/flips of the plain sample, the same one for image and mask."""
    plain = D.PatchDataset(
        task, "train", ["s1asc", "s2"], view="prepost", cache_dir=cache_dir, progress=False
    )
    aug = D.PatchDataset(
        task, "train", ["s1asc", "s2"], view="prepost", cache_dir=cache_dir, augment=True, progress=False
    )
    torch.manual_seed(0)
    p = plain[0]
    for _ in range(4):
        a = aug[0]
        found = False
        for k in range(4):
            for flip in (False, True):
                if torch.equal(D._rot_flip(p["y"], k, flip), a["y"]):
                    s2 = torch.equal(D._rot_flip(p["s2"], k, flip), a["s2"])
                    s1 = torch.equal(D._rot_flip(p["s1asc"], k, flip), a["s1asc"])
                    found = found or (s1 and s2)
        assert found


# ------------------------------------------------------------------------------------------ loading
def test_loader_batches_and_epoch_determinism(task, cache_dir):
    ds = D.PatchDataset(task, "train", "s2", view="prepost", cache_dir=cache_dir, raw=True, progress=False)
    loader = D.make_loader(ds, 2, shuffle=True, seed=1)
    assert len(loader) == 2

    def epoch(e):
        loader.epoch_sampler.set_epoch(e)
        return [b["index"].tolist() for b in loader]

    e0 = epoch(0)
    epoch(1)
    assert epoch(0) == e0 and sorted(sum(e0, [])) == list(range(len(ds)))
    b = next(iter(loader))
    assert b["s2"].dtype == torch.int16 and b["s2"].shape[1:] == (2, 11, 128, 128)
    assert b["y"].dtype == torch.uint8 and isinstance(b["id"], list)
    with pytest.raises(ValueError, match="raw=True"):
        D.make_loader(
            D.PatchDataset(task, "train", "s2", cache_dir=cache_dir, progress=False), 2, shuffle=False
        )


def test_loader_backends_deliver_the_same_batches(task, cache_dir):
    ds = D.PatchDataset(task, "val", "s2", cache_dir=cache_dir, raw=True, progress=False)
    ref = [b["s2"] for b in D.make_loader(ds, 1, shuffle=False, num_workers=0)]
    threads = D.make_loader(ds, 1, shuffle=False, num_workers=2)
    assert isinstance(threads, D.ThreadedBatchLoader) and len(threads) == len(ds)
    procs = D.make_loader(ds, 1, shuffle=False, num_workers=1, backend="processes")
    assert isinstance(procs, torch.utils.data.DataLoader)
    for loader in (threads, procs):
        got = [b["s2"] for b in loader]
        assert all(torch.equal(a, b) for a, b in zip(ref, got, strict=True))
    with pytest.raises(ValueError, match="backend"):
        D.make_loader(ds, 1, shuffle=False, backend="gpu")


def test_max_patches_subset(task, cache_dir):
    ds = D.PatchDataset(
        task, "train", "s2", cache_dir=cache_dir, max_patches=2, seed=0, progress=False, raw=True
    )
    assert len(ds) == 2 and set(ds.ids) <= {e["id"] for e in task.splits["s2"]["train"]}
    assert ds.read_raw([0, 1])["id"] == ds.ids


def test_landslide_pixels_are_those_of_the_masks(task, cache_dir):
    """What a chapter ranks the samples by before reading any: the task's count, equal to the mask's."""
    for split in ("train", "val"):
        ds = D.PatchDataset(task, split, "s2", cache_dir=cache_dir, raw=True, progress=False)
        masks = ds.read_raw(list(range(len(ds))))["y"]
        assert ds.landslide_pixels == [int(y.sum()) for y in masks]
        assert max(ds.landslide_pixels) > 0, split


# ------------------------------------------------------------------------------------------ real format
def test_composite_empty_windows():
    t, h, w = 4, 1, 8
    x = np.arange(t * 3 * h * w, dtype="int16").reshape(t, 3, h, w)
    valid = np.ones((t, h, w), dtype=bool)
    for windows, empty in (((-1, 0), [True, False]), ((t - 1, t), [False, True]), ((-1, t), [True, True])):
        comp, ok = D.prepost_composite(x, valid, windows, "s1asc")
        for k in range(2):
            assert (~ok[k]).all() == empty[k] and (comp[k, :2] == D.SENTINEL).all() == empty[k]
            assert (comp[k, 2] == x[0, 2]).all()  # DEM from the first date, even for an empty window
    with pytest.raises(ValueError, match="do not fit"):
        D.prepost_composite(x, valid, (-2, 0), "s1asc")


@pytest.mark.parametrize(
    ("position", "prepost", "want"),
    [
        ("inside", (4, 5), (4, 5)),
        ("before", D.NO_PREPOST, (-1, 0)),
        ("after", D.NO_PREPOST, (14, 15)),
        ("undated", D.NO_PREPOST, (-1, 15)),
        ("none", D.DEFAULT_PREPOST, D.DEFAULT_PREPOST),
    ],
)
def test_composite_windows(position, prepost, want):
    assert D.composite_windows(position, prepost, 15) == want


B04 = schema.FEATURES["s2"].index("B04")


def test_validity_bits_mark_scl_unknown_frames(small_sample, tmp_path):
    """Whole frames with SCL 255 (unknown quality) are invalid in the cache's validity bits and stay out of
    the composites, also a frame set to 255 by hand that was clear before."""
    import netCDF4

    rec = next(
        r for r in load_manifest(small_sample)["files"] if r["sensor"] == "s2" and r["scl_unknown_steps"]
    )
    steps = rec["scl_unknown_steps"]
    src = D.read_source(small_sample / rec["path"], "s2")
    assert not src.valid[steps].any()
    clear = int(np.argmax(src.valid.reshape(len(src.valid), -1).mean(axis=1)))
    assert src.valid[clear].mean() > 0.5 and clear not in steps
    dst = tmp_path / "s2" / Path(rec["path"]).name
    dst.parent.mkdir()
    shutil.copyfile(small_sample / rec["path"], dst)
    with netCDF4.Dataset(dst, "r+") as nc:
        nc["SCL"][clear] = 255
    edited = D.read_source(dst, "s2")
    assert not edited.valid[clear].any() and not edited.valid[steps].any()
    others = [t for t in range(len(src.valid)) if t != clear]
    assert np.array_equal(edited.valid[others], src.valid[others])
    # a composite window made of unknown-quality dates only has no valid pixel
    only = sorted({*steps, clear})
    x, valid = edited.x[only], edited.valid[only]
    _, ok = D.prepost_composite(x, valid, (len(only) - 1, len(only)), "s2")
    assert not ok[0].any()


def test_read_source_real_format(real_data):
    f = real_data.files
    multi = D.read_source(f["multi"], "s2")  # event_date "2018-09-28,2018-08-31", first 4 dates cloudy
    assert (multi.prepost, multi.position, multi.windows, multi.release) == ((4, 5), "inside", (4, 5), "raw")
    comp, ok = multi.composite("s2")
    # physical B04 = 400 + 10 t before the primary event (2018-08-31, step 5), 2500 + 10 t on/after it;
    # only step 4 is clear before it: the pre composite is that date, never a post-event one
    assert (comp[0, B04][ok[0]] == 440).all() and ok[0].mean() > 0.99
    assert (comp[1, B04][ok[1]] >= 2550).all()
    # reverted (first listed event 2018-09-28 → pre window 0…8): the median would be a post-event date
    bad, _ = D.prepost_composite(multi.x, multi.valid, (8, 9), "s2")
    assert (bad[0, B04][ok[0]] > 2500).all()
    for case, windows in (("before", (-1, 0)), ("after", (14, 15)), ("undated", (-1, 15))):
        p = D.read_source(f[case], "s2")
        assert (p.prepost, p.position, p.windows) == (D.NO_PREPOST, case, windows)
        comp, ok = p.composite("s2")
        assert not ok[0].any() or case == "after"  # no pre composite unless the event follows the series
        if case == "after":
            assert not ok[1].any() and (comp[0, B04][ok[0]] < 1000).all()  # every date is pre-event
        if case == "before":
            assert ok[1].any()
    neg = D.read_source(f["negative"], "s2")
    assert (neg.prepost, neg.position, neg.windows) == (D.DEFAULT_PREPOST, "none", D.DEFAULT_PREPOST)
    padded = D.read_source(f["padded"], "s2")
    assert padded.prepost == (5, 6) and padded.days.tolist()[-4:] == [67] * 4
    s1 = D.read_source(f["undated_nat"], "s1dsc")
    assert (s1.prepost, s1.position, s1.release) == (D.NO_PREPOST, "undated", "raw")
    assert abs(int(s1.x[0, 0, 0, 0]) - round(1000 * np.log10(0.1))) <= 1  # linear VV → dB×100


def test_read_source_removes_the_raw_s2_offset(real_data):
    raw = D.read_source(real_data.files["across_raw"], "s2")
    har = D.read_source(real_data.files["across_harmonized"], "s2")
    assert (raw.release, har.release) == ("raw", "harmonized")
    np.testing.assert_array_equal(raw.x, har.x)
    assert raw.x[6:, B04, 5, 5].tolist() == [460 + 10 * i for i in range(2)] + [
        2580 + 10 * i for i in range(7)
    ]
    assert (raw.x[:, B04, 0, 0] == 0).all()  # no-data stays 0


def _real_task(data_dir: Path, out: Path) -> Path:
    """A task folder over the real-format S2 files, every one in the train split."""
    names = sorted(p.name for p in (data_dir / "s2").glob("*.nc"))
    entries = [
        {
            "id": n.removesuffix(".nc").replace("_s2", ""),
            "s2": f"s2/{n}",
            "pixel_annotated": 0,
            "inventory": "italy",
        }
        for n in names
    ]
    (out / "s2").mkdir(parents=True)
    (out / "s2" / "splits.json").write_text(json.dumps({"train": entries, "val": [], "test": []}))
    names_ = schema.FEATURES["s2"]
    stats = {"mean": dict.fromkeys(names_, 1000.0), "std": dict.fromkeys(names_, 500.0)}
    (out / "s2" / "norm.json").write_text(json.dumps({"s2": stats}))
    (out / "config.json").write_text(json.dumps({"name": out.name}))
    return out


def test_cache_pre_composite_never_holds_post_event_dates(real_data, tmp_path):
    task = tasks.load_task(_real_task(real_data.raw, tmp_path / "REAL"), data_dir=real_data.raw)
    folders = D.build_cache(task, "train", "s2", cache_dir=tmp_path / "cache", workers=1, progress=False)
    man = json.loads((folders["s2"] / "manifest.json").read_text())
    assert man["format"] == D.CACHE_FORMAT
    arrs = {n: np.load(folders["s2"] / f"{n}.npy") for n in ("comp", "comp_valid", "prepost", "x")}
    by_id = {i: k for k, i in enumerate(man["ids"])}
    pos = dict(zip(man["ids"], man["event_position"], strict=True))
    assert pos == {
        "italy_101": "inside",
        "italy_102": "undated",
        "italy_103": "inside",
        "italy_104": "inside",
        "italy_105": "before",
        "italy_106": "after",
        "italy_107": "none",
        "italy_108": "inside",
    }
    assert {s["path"]: s["release"] for s in man["sources"]} == dict.fromkeys(
        (f"s2/{p.name}" for p in (real_data.raw / "s2").glob("*.nc")), "raw"
    )
    pp = {i: tuple(arrs["prepost"][k]) for i, k in by_id.items()}
    assert pp["italy_101"] == (4, 5) and pp["italy_104"] == (5, 6) and pp["italy_107"] == D.DEFAULT_PREPOST
    for i in ("italy_102", "italy_105", "italy_106"):
        assert pp[i] == D.NO_PREPOST
    comp_ok = np.unpackbits(arrs["comp_valid"], axis=-1).astype(bool)
    for i, k in by_id.items():
        if pos[i] == "none":
            continue
        pre = arrs["comp"][k, 0, B04][comp_ok[k, 0]]
        # physical B04 is below 1000 before the primary event and at least 2500 on or after it
        assert (pre < 1000).all(), i
        post = arrs["comp"][k, 1, B04][comp_ok[k, 1]]
        assert (post >= 2500).all(), i
    assert not comp_ok[by_id["italy_102"]].any()  # undated: no composite at all
    assert not comp_ok[by_id["italy_105"], 0].any() and comp_ok[by_id["italy_105"], 1].any()
    assert comp_ok[by_id["italy_106"], 0].any() and not comp_ok[by_id["italy_106"], 1].any()
    # the raw S2 series across 2022-01-25 is harmonised in the cache
    k = by_id["italy_108"]
    assert arrs["x"][k, 6:, B04, 5, 5].max() < 3000 and arrs["x"][k, 6, B04, 5, 5] == 460


def test_composite_images_are_the_galleries_before_and_after(task, cache_dir):
    """images.composite_images draws, per patch and sensor, the cached pre and post composites: S2 true colour
    in [0, 1], S1 false colour, one stretch per patch (the same image whichever patches are asked for with it)."""
    from s12ls_utils import images

    ds = D.PatchDataset(
        task, "train", ["s1asc", "s2"], view="prepost", cache_dir=cache_dir, raw=True, progress=False
    )
    got = images.composite_images(ds, [1, 0], ["s1asc", "s2"])
    assert [sorted(g) for g in got] == [["post", "pre"]] * 2
    for item, i in zip(got, [1, 0], strict=True):
        raw = ds.read_raw(i)
        for which, when in enumerate(("pre", "post")):
            assert set(item[when]) == {"s1asc", "s2"}
            img = item[when]["s2"]
            assert img.shape == (*raw["y"].shape[-2:], 3) and np.nanmin(img) >= 0 and np.nanmax(img) <= 1
            assert not np.array_equal(item["pre"]["s2"], item["post"]["s2"])  # the event changed the patch
            alone = images.composite_images(ds, [i], ["s2"])[0][when]["s2"]
            np.testing.assert_array_equal(alone, img)
            s1 = images.composite_image(
                raw["s1asc"].numpy(), raw["s1asc_valid"].numpy().astype(bool), "s1asc", which
            )
            np.testing.assert_array_equal(item[when]["s1asc"], s1)
