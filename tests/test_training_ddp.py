"""DistributedDataParallel on CPU (gloo): two processes train what one process trains with the same global
batch, rank 0 alone writes the run, resume continues bit for bit, ``s12ls train --nproc 2`` end to end.

The two-process runs are real torchrun launches (``--standalone``: localhost and a free port), one
thread per process, on a tiny U-Net and six patches: about 10 s per launch on two cores, three launches.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from helpers import write_tiny_task

from s12ls_utils import cli, datasets, tasks
from s12ls_utils import training as T
from s12ls_utils.sample import load_manifest

RUN = "ddp"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
#: Parameters may differ by rounding only: a real mismatch (per-process BatchNorm statistics or Dice
#: sums, wrong batches) moves them by about one learning-rate step (measured 0.04 with lr 0.01). Rounding
#: alone, which AdamW magnifies where a gradient is tiny, moved a few weights by up to 5.4e-4 (measured).
ATOL = 2e-3


@pytest.fixture(scope="module")
def ddp_task(small_sample, tmp_path_factory) -> Path:
    """An S2 task of 6 train patches (at least 2 with landslides) and 3 validation patches (at least 1).

    Six samples in global batches of 4: two steps per epoch, the second one partial (1 sample per
    process), and every process holds as many samples (no padding), so the runs can match exactly.
    """
    out = write_tiny_task(small_sample, tmp_path_factory.mktemp("ddp") / "DDP", sensors=("s2",))
    files = {r["key"]: r for r in load_manifest(small_sample)["files"] if r["sensor"] == "s2"}
    ann = sorted(k for k, r in files.items() if r["annotated"])
    non = sorted(k for k, r in files.items() if not r["annotated"])
    rest = non + ann[3:]  # patches without landslides first, then the other annotated ones
    groups = {"train": ann[:2] + rest[:4], "val": ann[2:3] + rest[4:6], "test": rest[6:7]}
    assert [len(groups[s]) for s in ("train", "val")] == [6, 3], (ann, non)

    def entry(k: str) -> dict:
        r = files[k]
        return {"id": k, "s2": r["path"], "pixel_annotated": r["n_positive"], "inventory": r["region"]}

    (out / "s2" / "splits.json").write_text(
        json.dumps({s: [entry(k) for k in ks] for s, ks in groups.items()})
    )
    return out


@pytest.fixture(scope="module")
def settings(ddp_task, small_sample, tmp_path_factory) -> dict:
    """Deterministic settings: no augmentation or dropout (those are drawn per process), a constant
    learning rate (so a 1-epoch run resumed to 2 epochs is a 2-epoch run), one thread per process."""
    return {
        "task_dir": str(ddp_task),
        "data_dir": str(small_sample),
        "cache_dir": str(tmp_path_factory.mktemp("ddp_cache")),
        "sensors": ["s2"],
        "model": "unet_prepost",
        "model_kwargs": {"widths": [4, 8, 16]},
        "batch_size": 4,
        "eval_batch_size": 1,
        "lr": 1e-2,
        "warmup_epochs": 0.0,
        "min_lr_ratio": 1.0,
        "augment": False,
        "progress": False,
        "threads": 1,
        "run_name": RUN,
    }


def _set_args(settings: dict, **more) -> list[str]:
    out = [settings["task_dir"]]
    for k, v in {**settings, **more}.items():
        if k != "task_dir":
            out += ["--set", f"{k}={json.dumps(v)}"]
    return out


def _launch(cmd: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def runs(settings, tmp_path_factory) -> dict:
    """Single process 1 epoch; ``s12ls train --nproc 2`` 1 epoch, then resumed to 2 epochs through the
    torchrun entry module; an uninterrupted two-process 2-epoch run (through the same entry)."""
    root = tmp_path_factory.mktemp("ddp_runs")
    threads = torch.get_num_threads()  # train() sets this process's threads (settings["threads"])
    try:
        single = T.train(settings, epochs=1, runs_dir=str(root / "single"), distributed=False)
    finally:
        torch.set_num_threads(threads)
    out: dict = {"single": single}
    out["cli_stdout"] = _launch(
        [sys.executable, "-m", "s12ls_utils.cli", "train", *_set_args(settings, epochs=1)]
        + ["--runs-dir", str(root / "ddp"), "--nproc", "2"]
    )
    ddp = root / "ddp" / RUN
    out["after_1"] = {
        "files": sorted(p.name for p in ddp.iterdir()),
        "history": list(csv.DictReader((ddp / "history.csv").read_text().splitlines())),
        "last": torch.load(ddp / "last.pt", weights_only=True),
    }
    out["last_epoch1"] = Path(shutil.copy(ddp / "last.pt", root / "last_epoch1.pt"))
    entry = [*TORCHRUN, "-m", "s12ls_utils.cli", "train"]  # what the full-scale appendix teaches
    _launch([*entry, *_set_args(settings, epochs=2), "--runs-dir", str(root / "ddp"), "--resume"])
    _launch([*entry, *_set_args(settings, epochs=2), "--runs-dir", str(root / "full")])
    out["resumed"], out["full"] = ddp, root / "full" / RUN
    return out


def _constant_channels(settings: dict) -> list[int]:
    """Input channels with one value over the whole train split (here the composites' validity)."""
    task = tasks.load_task(settings["task_dir"], data_dir=settings["data_dir"])
    ds = datasets.PatchDataset(
        task, "train", ["s2"], view="prepost", raw=True, cache_dir=settings["cache_dir"], progress=False
    )
    x = ds.preprocessor(ds.read_raw(list(range(len(ds)))))[0]["s2"]
    return torch.nonzero(x.amax(dim=(0, 2, 3)) == x.amin(dim=(0, 2, 3))).flatten().tolist()


# ------------------------------------------------------------------------------------------ sharding
@pytest.mark.parametrize(("n", "batch", "world"), [(8, 4, 2), (6, 4, 2), (12, 6, 3), (10, 2, 2)])
def test_process_batches_make_up_the_single_process_batches(n, batch, world):
    ref = datasets.EpochBatchSampler(n, batch, shuffle=True, seed=5)
    ranks = [
        datasets.ShardedBatchSampler(n, batch // world, num_replicas=world, rank=r, shuffle=True, seed=5)
        for r in range(world)
    ]
    for epoch in (0, 3):
        for s in (ref, *ranks):
            s.set_epoch(epoch)
        parts = [list(s) for s in ranks]
        assert [len(p) for p in parts] == [len(s) for s in ranks] == [len(ref)] * world
        assert [sorted(sum(step, [])) for step in zip(*parts, strict=True)] == list(ref)


def test_uneven_splits_pad_training_and_deal_whole_evaluation_batches():
    # 7 samples over 2 processes: every process still takes the same number of steps
    ranks = [datasets.ShardedBatchSampler(7, 2, num_replicas=2, rank=r, shuffle=True) for r in (0, 1)]
    seen = [i for s in ranks for b in s for i in b]
    assert len(ranks[0]) == len(ranks[1]) == 2 and len(seen) == 8 and set(seen) == set(range(7))
    # evaluation: each single-process batch exactly once, whole, no padding
    ref = list(datasets.EpochBatchSampler(7, 2, shuffle=False))
    ev = [
        datasets.ShardedBatchSampler(7, 2, num_replicas=3, rank=r, shuffle=False, shard="batches")
        for r in range(3)
    ]
    assert [list(s) for s in ev] == [[ref[0], ref[3]], [ref[1]], [ref[2]]]
    assert [len(s) for s in ev] == [2, 1, 1]
    with pytest.raises(ValueError, match="rank 2 is not one of 2"):
        datasets.ShardedBatchSampler(7, 2, num_replicas=2, rank=2, shuffle=False)


def test_global_batch_and_launch_errors(settings, tmp_path, capsys, monkeypatch):
    assert T.per_process_batch(8, 4) == 2
    with pytest.raises(ValueError, match="global batch of all 3 processes.*multiple of 3"):
        T.per_process_batch(4, 3)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        T.train(settings, epochs=1, runs_dir=str(tmp_path), distributed=True)
    # checked before any process starts
    args = ["train", settings["task_dir"], "--batch-size", "4", "--nproc", "3", "--runs-dir", str(tmp_path)]
    assert cli.main(args) == 2
    assert "multiple of 3" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["train", settings["task_dir"], "--nproc", "2", "--runs-dir", str(tmp_path)]) == 2
    assert "torchrun already started" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_all_reduce_batchnorm_is_batchnorm_over_the_batch():
    """In one process the all-reduce is the identity: the CPU replacement of SyncBatchNorm must then
    be BatchNorm — output, gradients, running statistics, eval mode. Compared in float64: in float32 the
    two implementations' summation orders differ, and the conv weight gradient (large values) missed a
    1e-5 tolerance in one full-suite run, so float32 equality would be a flaky test."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        g = torch.Generator().manual_seed(0)
        ref = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.BatchNorm2d(5)).double()
        with torch.no_grad():
            ref[1].weight.uniform_(0.5, 1.5, generator=g)
            ref[1].bias.uniform_(-1.0, 1.0, generator=g)
        new = T._sync_batchnorm(copy.deepcopy(ref), torch.device("cpu"))
        assert (
            isinstance(new[1], T._AllReduceBatchNorm)
            and new[1].state_dict().keys() == ref[1].state_dict().keys()
        )
        x = torch.randn(4, 3, 9, 9, generator=g, dtype=torch.float64) * 3 + 2
        w = torch.randn(4, 5, 7, 7, generator=g, dtype=torch.float64)
        for _ in range(2):
            a, b = ref(x), new(x)
        torch.testing.assert_close(b, a, rtol=0, atol=1e-10)
        (a * w).sum().backward()
        (b * w).sum().backward()
        for (name, p), q in zip(ref.named_parameters(), new.parameters(), strict=True):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-9, atol=1e-9, msg=name)
        for k in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(new[1], k), getattr(ref[1], k), rtol=1e-12, atol=1e-12)
        ref.eval()
        new.eval()
        torch.testing.assert_close(new(x), ref(x), rtol=0, atol=1e-5)
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ two processes
def test_two_processes_train_what_one_process_trains(runs, settings):
    """Same global batch, same seed: after one epoch (2 AdamW steps) the weights agree to ATOL.

    Excluded, with the reason: the first convolution's weights of input channels that are constant over
    the train split (the composites' validity, all 1 here). BatchNorm removes any constant shift, so their
    exact gradient is ~0 and both runs see rounding noise (~1e-9), which AdamW rescales to steps of ±lr;
    the first BatchNorm's running mean follows that shift.
    """
    single = T.load_checkpoint(runs["single"].run_dir / "last.pt")["model"]
    ddp = runs["after_1"]["last"]["model"]
    const = _constant_channels(settings)
    first_conv, first_bn_mean = "encoders.s2.levels.0.0.weight", "encoders.s2.levels.0.1.running_mean"
    assert single.keys() == ddp.keys() and first_conv in single and first_bn_mean in single
    for k, a in single.items():
        b = ddp[k]
        if k == first_bn_mean and const:
            continue
        if k == first_conv:
            keep = [c for c in range(a.shape[1]) if c not in const]
            a, b = a[:, keep], b[:, keep]
        torch.testing.assert_close(b, a, rtol=0, atol=ATOL, msg=k)
    # the loss of the epoch's batches (the global batches: processes' losses averaged)
    row = runs["after_1"]["history"][0]
    assert float(row["train_loss"]) == pytest.approx(runs["single"].history[0]["train_loss"], rel=1e-6)


def test_sharded_validation_scores_the_whole_split(runs, settings):
    """The two-process validation figures are those of one process evaluating the same weights."""
    model, ck = T.load_model(runs["last_epoch1"], device="cpu")
    task = tasks.load_task(settings["task_dir"], data_dir=settings["data_dir"])
    common = {"view": "prepost", "raw": True, "cache_dir": settings["cache_dir"], "progress": False}
    pos, tot = datasets.PatchDataset(task, "train", ["s2"], **common).positives()
    val = datasets.PatchDataset(task, "val", ["s2"], **common)
    loader = datasets.make_loader(val, settings["eval_batch_size"], shuffle=False)
    loss_fn = T.SegmentationLoss("bce_dice", math.sqrt((tot - pos) / pos))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers
    try:
        ref = T._evaluate(model, loader, val.preprocessor, loss_fn, torch.device("cpu"), None)
    finally:
        torch.set_num_threads(threads)
    row = ck["history"][0]
    assert row["val_loss"] == pytest.approx(ref["loss"], rel=1e-9)
    for k in ("f1", "iou", "precision", "recall", "f1_best", "iou_best", "threshold"):
        assert row[f"val_{k}"] == pytest.approx(ref[k], rel=1e-9), k


def test_rank_zero_alone_writes_the_run(runs):
    after = runs["after_1"]
    assert after["files"] == ["best.pt", "history.csv", "last.pt", "run.json"]  # no stray .tmp files
    assert [r["epoch"] for r in after["history"]] == ["1"]
    last = after["last"]
    assert last["epoch"] == 1 and len(last["rng_ranks"]) == 2
    # each process draws its own dropout masks: their random states differ
    assert not torch.equal(last["rng_ranks"][0]["torch"], last["rng_ranks"][1]["torch"])
    # the summary is printed once, by rank 0
    lines = [ln for ln in runs["cli_stdout"].splitlines() if "epoch(s) on cpu" in ln]
    assert len(lines) == 1 and "× 2 processes" in lines[0], runs["cli_stdout"]
    summary = json.loads((runs["full"] / "run.json").read_text())["summary"]
    assert summary["world_size"] == 2 and summary["epochs_run"] == 2


def test_resume_under_ddp_continues_bit_for_bit(runs):
    resumed, full = runs["resumed"], runs["full"]
    rows = list(csv.DictReader((resumed / "history.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2"]  # epoch 1 kept, epoch 2 added once
    a = torch.load(full / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(sa[n], sb[n]) for n in sa)
    keep = [c for c in T.HISTORY_COLUMNS if "seconds" not in c and "per_s" not in c]
    assert [[r[c] for c in keep] for r in a["history"]] == [[r[c] for c in keep] for r in b["history"]]
