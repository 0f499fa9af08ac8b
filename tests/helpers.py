"""What several test files share besides fixtures (those are in conftest.py): the published figures of the real
dataset, stated once; loading a script that is not a package module; reading glue roles; re-writing a patch."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import xarray as xr

from s12ls_utils import tasks
from s12ls_utils.sample import load_manifest

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------------
# The published figures of the real dataset. Each is stated here once and derived once, in
# tests/test_reference.py, from the vendored metadata (data/reference/); other tests compare with these names.
# --------------------------------------------------------------------------------------------------
#: Patches per task and scope (upstream README and config files; DESIGN §3.2).
PUBLISHED_TOTALS = {
    "S12LS-LD": {"s2": 4988, "s1asc": 4793, "s1dsc": 4666, "aligned": 4392},
    "S12LS-AD": {"s2": 13628, "s1asc": 13306, "s1dsc": 12622, "aligned": 11719},
}
#: S2 patches of S12LS-AD without a published position (the only unlocated patches).
UNLOCATED_S2 = 236
#: Share of the published S12LS-LD S2 test tiles that touch a training tile, in percent, rounded (DESIGN §3.2).
PUBLISHED_LD_S2_LEAK_PCT = 92


def load_script(path: Path, name: str | None = None) -> ModuleType:
    """Import a script that is not a package module (``benchmarks/*.py``, ``.ci/*.py``, ``data/reference/*.py``)."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # where dataclasses look a class's module up
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------------
# Notebooks as committed (book/*.ipynb)
# --------------------------------------------------------------------------------------------------
def notebook_cells(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text())["cells"]


def cell_source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def parameters_cell(path: Path) -> dict:
    """The cell tagged ``parameters`` (papermill's); exactly one, tests/test_notebooks.py checks."""
    return next(c for c in notebook_cells(path) if "parameters" in c.get("metadata", {}).get("tags", []))


def parameter_defaults(path: Path) -> dict[str, object]:
    """``{name: default}`` of a chapter's parameters cell (a default that is not a literal: its source text)."""
    out = {}
    for node in ast.parse(cell_source(parameters_cell(path))).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    try:
                        out[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        out[target.id] = ast.unparse(node.value)
    return out


# --------------------------------------------------------------------------------------------------
# Glue roles and directives (myst-nb) in a page's text
# --------------------------------------------------------------------------------------------------
_GLUE_ROLE = re.compile(r"\{glue(?::(any|text|md|math|figure))?\}`([^`]+)`")
_GLUE_DIRECTIVE = re.compile(r"^(?:`{3,}|:{3,})\{glue(?::(?:any|figure|md|math))?\}[ \t]+(\S+)", re.M)


def glue_refs(text: str) -> list[tuple[str | None, str]]:
    """``(document, key)`` of every figure ``text`` pastes with a glue role or directive; ``document`` is None for
    the page's own figures and ``NN-….ipynb`` for a figure pasted from another document (``doc.ipynb::key``).
    A ``{glue:text}`` role's format (``key:fmt``) is dropped: myst-nb splits it off at the last colon."""
    refs = []
    for role, target in _GLUE_ROLE.findall(text):
        doc, sep, key = target.rpartition("::")
        if role == "text" and ":" in key:
            key = key.rpartition(":")[0]
        refs.append((doc if sep else None, key))
    for target in _GLUE_DIRECTIVE.findall(text):
        doc, sep, key = target.rpartition("::")
        refs.append((doc if sep else None, key))
    return refs


# --------------------------------------------------------------------------------------------------
# Samples and patch files
# --------------------------------------------------------------------------------------------------
def copy_sample(sample: Path, tmp_path: Path) -> Path:
    """A private copy of a sample at ``tmp_path/data`` without its caches (``.s12ls_catalog.parquet``,
    ``.s12ls_cache``), modification times kept; tests that change files work on one."""
    return Path(shutil.copytree(sample, tmp_path / "data", ignore=shutil.ignore_patterns(".s12ls_*")))


def rewrite(src: Path, dst: Path, modify: Callable[[xr.Dataset], xr.Dataset | None] | None = None) -> Path:
    """Re-write a patch with xarray after ``modify`` (encodings dropped so that new dtypes stick)."""
    with xr.open_dataset(src, engine="netcdf4") as ds:
        ds = ds.load()
    if modify is not None:
        out = modify(ds)
        ds = ds if out is None else out
    for v in ds.variables.values():
        v.encoding.clear()
    enc = {}
    if "time" in ds.variables and np.issubdtype(ds["time"].dtype, np.datetime64):
        enc["time"] = {"units": "days since 1970-01-01", "dtype": "int64"}
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(dst, engine="netcdf4", encoding=enc)
    return dst


# --------------------------------------------------------------------------------------------------
# Task folders
# --------------------------------------------------------------------------------------------------
# Published S12LS-LD statistics in channel order (DESIGN §3.2; S1 in linear units) for the old-format task.
_PUBLISHED = {
    "s2": (
        [1861, 2029, 1953, 2394, 3354, 3668, 3762, 3852, 2613, 1889, 685],
        [2459, 2330, 2330, 2244, 2029, 2006, 2038, 1960, 1331, 1204, 649],
    ),
    "s1asc": ([0.037, 0.157, 692], [0.041, 0.147, 649]),
    "s1dsc": ([0.037, 0.157, 692], [0.041, 0.147, 649]),
}


def write_tiny_task(
    data_dir: Path, out: Path, sensors=("s2",), fmt: str = "new", annotated: bool = True
) -> Path:
    """A task folder written directly (DESIGN §3.2) from a synthetic sample's manifest.

    Keys present in every sensor; train = the first annotated + 2 non-annotated, val = the second
    annotated + 1 non-annotated, test = 1 non-annotated. ``annotated=False`` leaves annotated patches out
    of train (a task without positives). ``fmt="old"``: ``data_paths.json`` + ``norm_data.json`` with the
    published (linear S1) statistics.
    """
    files = load_manifest(data_dir)["files"]
    by_key: dict[str, dict[str, dict]] = {}
    for r in files:
        by_key.setdefault(r["key"], {})[r["sensor"]] = r
    keys = sorted(k for k, v in by_key.items() if all(s in v for s in sensors))
    ann = [k for k in keys if by_key[k][sensors[0]]["annotated"]]
    non = [k for k in keys if not by_key[k][sensors[0]]["annotated"]]
    assert len(ann) >= 2 and len(non) >= 4, (ann, non)
    groups = {
        "train": (ann[:1] if annotated else []) + non[:2],
        "val": ann[1:2] + non[2:3],
        "test": non[3:4],
    }

    def entry(k: str, ss) -> dict:
        r = by_key[k][ss[0]]
        return {
            "id": k,
            **{s: by_key[k][s]["path"] for s in ss},
            "pixel_annotated": r["n_positive"],
            "inventory": r["region"],
        }

    out.mkdir(parents=True, exist_ok=True)
    norm = {}
    for s in sensors:
        (out / s).mkdir(exist_ok=True)
        if fmt == "old":
            paths = {sp: [f"/original/data/{by_key[k][s]['path']}" for k in ks] for sp, ks in groups.items()}
            (out / s / "data_paths.json").write_text(json.dumps(paths))
            mean, std = _PUBLISHED[s]
            (out / s / "norm_data.json").write_text(json.dumps({"mean": mean, "std": std}))
        else:
            (out / s / "splits.json").write_text(
                json.dumps({sp: [entry(k, [s]) for k in ks] for sp, ks in groups.items()})
            )
            train_paths = [by_key[k][s]["path"] for k in groups["train"]]
            norm[s] = tasks.norm_stats(train_paths, data_dir, s, workers=1)
            (out / s / "norm.json").write_text(json.dumps({s: norm[s]}))
    if fmt == "new" and len(sensors) > 1:  # every key is in every sensor: the aligned train set is the same
        (out / "splits_aligned.json").write_text(
            json.dumps({sp: [entry(k, list(sensors)) for k in ks] for sp, ks in groups.items()})
        )
        (out / "norm_aligned.json").write_text(json.dumps(norm))
    if fmt == "new":
        (out / "config.json").write_text(json.dumps({"name": out.name, "s1_unit": "dB"}))
    return out
