"""What several test files share besides fixtures (those are in conftest.py): the published figures of the real
dataset, stated once; loading a script that is not a package module; reading glue roles; re-writing a patch."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import xarray as xr

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
    spec.loader.exec_module(module)
    return module


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
# Patch files
# --------------------------------------------------------------------------------------------------
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
