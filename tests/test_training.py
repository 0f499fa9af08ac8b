"""Training: device selection, a short run that learns, bit-for-bit resume, weights-only checkpoints, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import write_tiny_task

from s12ls_utils import training as T


@pytest.fixture(scope="module")
def task_dir(small_sample, tmp_path_factory) -> Path:
    return write_tiny_task(small_sample, tmp_path_factory.mktemp("tasks") / "TINY", sensors=("s1asc", "s2"))


@pytest.fixture(scope="module")
def base(task_dir, small_sample, tmp_path_factory) -> dict:
    """Tiny, fast settings (a U-Net of 4/8/16 channels, no augmentation)."""
    return {
        "task_dir": str(task_dir),
        "data_dir": str(small_sample),
        "cache_dir": str(tmp_path_factory.mktemp("cache")),
        "sensors": ["s2"],
        "model": "unet_prepost",
        "model_kwargs": {"widths": [4, 8, 16]},
        "batch_size": 2,
        "lr": 1e-2,
        "warmup_epochs": 0.0,
        "augment": False,
        "progress": False,
        "threads": 2,
    }


# ------------------------------------------------------------------------------------------ device
def test_device_auto_selection(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert T.select_device("auto") == torch.device("cuda")
    assert T.select_device(None).type == "cuda"
    assert T.select_device("cpu") == torch.device("cpu")  # explicit override wins
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert T.select_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        T.select_device("cuda")
    with pytest.raises(RuntimeError, match="unsupported device"):
        T.select_device("xla")


def test_cuda_precision_and_workers_choices(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert T._amp_dtype("auto", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert T._amp_dtype("auto", cuda) is torch.float16  # pre-Ampere: fp16 + GradScaler
    assert T._amp_dtype("auto", cpu) is None and T._amp_dtype("off", cuda) is None
    assert T._amp_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="needs CUDA"):
        T._amp_dtype("fp16", cpu)
    assert T._default_workers(cpu) == 0 and T._default_workers(cuda) >= 1


def test_config_validation(task_dir):
    with pytest.raises(ValueError, match="model must be 'unet_prepost'.*not 'vit'"):
        T.TrainConfig(task_dir=str(task_dir), model="vit")
    with pytest.raises(ValueError, match="sensors must be .*, not 's3'"):
        T.TrainConfig(task_dir=str(task_dir), sensors=["s2", "s3"])
    with pytest.raises(ValueError, match="loss must be"):
        T.TrainConfig(task_dir=str(task_dir), loss="dice")
    with pytest.raises(ValueError, match="pos_weight must be 'auto', not 'yes'"):
        T.TrainConfig(task_dir=str(task_dir), pos_weight="yes")
    with pytest.raises(ValueError, match="training setting 'epochs' must be int, not 2.5"):
        T.TrainConfig(task_dir=str(task_dir), epochs="2.5")
    with pytest.raises(ValueError, match="training setting 'augment' must be bool, not 'maybe'"):
        T.TrainConfig(task_dir=str(task_dir), augment="maybe")
    with pytest.raises(ValueError, match="epochs must be at least 1, not 0"):
        T.TrainConfig(task_dir=str(task_dir), epochs=0)
    with pytest.raises(ValueError, match="unknown training setting"):
        T.TrainConfig.from_dict({"task_dir": "x", "epochz": 3})
    cfg = T.TrainConfig(task_dir=str(task_dir), sensors="s2")
    assert cfg.sensors == ["s2"] and cfg.name == "TINY-unet_prepost-s2-s0"
    assert T.TrainConfig.from_dict(cfg.to_dict()) == cfg
    # text, as `--set KEY=VALUE` and papermill -p pass it, means the same as the values
    text = {"epochs": "3", "lr": "1e-3", "augment": "false", "crop": "null", "sensors": '["s2", "s1asc"]'}
    text |= {
        "pos_weight": "auto",
        "num_workers": "2",
        "device": '"cpu"',
        "run_name": "7",
        "runs_dir": task_dir,
    }
    got = T.TrainConfig(task_dir=task_dir, **text)
    want = {"epochs": 3, "lr": 1e-3, "augment": False, "crop": None, "sensors": ["s2", "s1asc"]}
    want |= {
        "pos_weight": "auto",
        "num_workers": 2,
        "device": "cpu",
        "run_name": "7",
        "runs_dir": str(task_dir),
    }
    assert {k: getattr(got, k) for k in want} == want and got.task_dir == str(task_dir)


# ------------------------------------------------------------------------------------------ training
def test_two_epochs_reduce_the_loss_and_write_the_run(base, tmp_path):
    res = T.train(base, epochs=2, runs_dir=str(tmp_path))
    h = res.history
    assert [r["epoch"] for r in h] == [1, 2] and res.epochs_run == 2
    assert h[1]["train_loss"] < h[0]["train_loss"]
    assert h[1]["val_loss"] < h[0]["val_loss"]
    assert res.device == "cpu" and res.n_params > 0 and 0 <= res.best_val_f1 <= 1
    run = res.run_dir
    assert {p.name for p in run.iterdir()} >= {"best.pt", "last.pt", "history.csv", "run.json"}
    with open(run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and list(rows[0]) == list(T.HISTORY_COLUMNS)
    assert json.loads((run / "run.json").read_text())["summary"]["epochs_run"] == 2

    # checkpoints load with weights_only=True (no pickled code)
    last = torch.load(run / "last.pt", weights_only=True)
    best = torch.load(run / "best.pt", weights_only=True)
    assert last["epoch"] == 2 and {"model", "optimizer", "scheduler", "scaler", "rng"} <= set(last)
    assert best["epoch"] == res.best_epoch and best["metrics"]["val_f1_best"] == pytest.approx(
        res.best_val_f1
    )
    model, ck = T.load_model(run, "best")
    for k, v in model.state_dict().items():
        assert torch.equal(v, best["model"][k])

    # a finished run is not overwritten by accident
    with pytest.raises(FileExistsError, match="resume=True"):
        T.train(base, epochs=2, runs_dir=str(tmp_path))


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(base, tmp_path):
    cfg = {
        **base,
        "epochs": 3,
        "augment": True,
        "crop": 64,
        "model_kwargs": {"widths": [4, 8, 16], "dropout": 0.2},
    }
    full = T.train(cfg, runs_dir=str(tmp_path / "a"))

    class Interrupt(Exception):
        pass

    def stop_after_two(row, history):
        if row["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        T.train(cfg, runs_dir=str(tmp_path / "b"), callback=stop_after_two)
    part = torch.load(tmp_path / "b" / full.run_dir.name / "last.pt", weights_only=True)
    assert part["epoch"] == 2
    resumed = T.train(cfg, runs_dir=str(tmp_path / "b"), resume=True)
    assert resumed.epochs_run == 3

    a = torch.load(full.run_dir / "last.pt", weights_only=True)
    b = torch.load(resumed.run_dir / "last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(sa[n], sb[n]) for n in sa)
    assert a["scheduler"] == b["scheduler"]
    keep = [c for c in T.HISTORY_COLUMNS if "seconds" not in c and "per_s" not in c]
    assert [[r[c] for c in keep] for r in full.history] == [[r[c] for c in keep] for r in resumed.history]

    # resuming with settings that change the result is refused
    with pytest.raises(ValueError, match="settings differ"):
        T.train(cfg, runs_dir=str(tmp_path / "b"), resume=True, lr=0.5)


def test_fusion_series_model_trains(base, tmp_path):
    res = T.train(
        base,
        sensors=["s1asc", "s2"],
        model="utae",
        model_kwargs={
            "encoder_widths": [8, 8, 16],
            "decoder_widths": [8, 8, 16],
            "n_head": 4,
            "d_model": 16,
            "d_k": 2,
        },
        epochs=1,
        crop=32,
        runs_dir=str(tmp_path),
        loss="focal_dice",
    )
    assert res.epochs_run == 1 and res.history[0]["train_loss"] > 0
    ck = T.load_checkpoint(res.run_dir / "last.pt")
    assert ck["in_channels"] == {"s1asc": 4, "s2": 12}


def test_early_stopping(base, tmp_path):
    # lr 0: only the batch-norm statistics move, so the validation score soon stops improving
    res = T.train(base, epochs=8, lr=0.0, patience=1, runs_dir=str(tmp_path))
    assert res.stopped_early and res.epochs_run == res.best_epoch + 1 < 8


# ------------------------------------------------------------------------------------------ errors
def test_no_positives_and_empty_split_are_clear_errors(small_sample, tmp_path, base):
    neg = write_tiny_task(small_sample, tmp_path / "NEG", sensors=("s2",), annotated=False)
    with pytest.raises(ValueError, match="no landslide pixels"):
        T.train(base, task_dir=str(neg), epochs=1, runs_dir=str(tmp_path / "r"))
    empty = write_tiny_task(small_sample, tmp_path / "EMPTY", sensors=("s2",))
    sp = json.loads((empty / "s2" / "splits.json").read_text())
    sp["val"] = []
    (empty / "s2" / "splits.json").write_text(json.dumps(sp))
    with pytest.raises(ValueError, match="'val'.*empty"):
        T.train(base, task_dir=str(empty), epochs=1, runs_dir=str(tmp_path / "r"))


def test_binary_counts_match_sklearn():
    from sklearn.metrics import f1_score, jaccard_score

    g = torch.Generator().manual_seed(0)
    y = (torch.rand(4000, generator=g) < 0.1).float()
    p = (torch.rand(4000, generator=g) * 0.6 + 0.4 * y).clamp(0, 1)
    c = T._BinaryCounts(100)
    c.update(p[:1500], y[:1500])
    c.update(p[1500:], y[1500:])
    s = c.scores()
    pred = (p >= 0.5).numpy()
    assert s["f1"] == pytest.approx(f1_score(y.numpy(), pred))
    assert s["iou"] == pytest.approx(jaccard_score(y.numpy(), pred))
    best = (p >= s["threshold"]).numpy()
    assert s["f1_best"] == pytest.approx(f1_score(y.numpy(), best)) and s["f1_best"] >= s["f1"]


def test_cli_train(base, tmp_path, capsys, monkeypatch):
    from s12ls_utils import cli

    args = [
        "train",
        base["task_dir"],
        "--epochs",
        "1",
        "--runs-dir",
        str(tmp_path),
        "--run-name",
        "cli",
        "--set",
        f"data_dir={base['data_dir']}",
        "--set",
        f"cache_dir={base['cache_dir']}",
        "--set",
        'model_kwargs={"widths": [4, 8]}',
        "--set",
        "progress=false",
    ]
    assert cli.main(args) == 0
    assert "1 epoch(s) on cpu" in capsys.readouterr().out
    assert (tmp_path / "cli" / "last.pt").is_file()
    assert cli.main(args) == 2  # the run exists: neither --resume nor --overwrite
    assert "resume" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main([*args, "--overwrite", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_max_steps_caps_the_epoch_and_the_history_times_the_steps(base, tmp_path):
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        T.TrainConfig(task_dir=base["task_dir"], max_steps=0)
    res = T.train(base, epochs=2, max_steps=1, runs_dir=str(tmp_path))
    for row in res.history:
        # one step of batch_size samples per epoch
        assert row["train_samples_per_s"] * row["train_seconds"] == pytest.approx(base["batch_size"])
        assert 0 < row["first_step_seconds"] <= row["train_seconds"] < row["epoch_seconds"]
        assert 0 <= row["data_seconds"] <= row["train_seconds"]
    assert res.backend is None and res.peak_memory_bytes is None  # one process, CPU


def test_the_torchrun_entry_is_the_command_line_and_trainconfig_checks_its_settings(
    task_dir, capsys, monkeypatch
):
    """``python -m s12ls_utils.cli train`` (what torchrun starts) passes the options as given; TrainConfig
    rejects a bad one before any work, and the command exits with 2 naming it. The entry runs as its own
    process once; the other settings go through the same ``main`` in this process (a process start costs
    seconds: torch is imported again)."""
    import subprocess
    import sys

    from s12ls_utils import cli

    cases = [
        (["--set", "epochs=0"], "epochs must be at least 1, not 0"),
        (["--model", "vit"], "model must be 'unet_prepost'"),
        (["--set", "augment=maybe"], "training setting 'augment' must be bool, not 'maybe'"),
        (["--set", "batch_size=3", "--nproc", "2"], "multiple of 2"),
    ]
    opts, said = cases[0]
    cmd = [sys.executable, "-m", "s12ls_utils.cli", "train", str(task_dir), *opts]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr, (opts, out.stderr)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for opts, said in cases:  # an exception instead of the exit status would fail the test here
        assert cli.main(["train", str(task_dir), *opts]) == 2, opts
        assert said in capsys.readouterr().err, opts


def test_training_never_imports_the_command_line():
    """Imports run one way (cli → training): the torchrun entry is the command line, which sits on top."""
    import subprocess
    import sys

    code = (
        "import sys, s12ls_utils.training; "
        "print(sorted(m for m in sys.modules if m.startswith('s12ls_utils.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    mods = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - a list literal printed above
    assert "s12ls_utils.training" in mods and "s12ls_utils.cli" not in mods
