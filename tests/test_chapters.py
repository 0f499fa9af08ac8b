"""Execute the chapters (or reuse `make execute`'s copies) and check the figures they recorded.

With ``S12LS_EXECUTED`` set (``make test`` does), the executed notebooks under that folder and the
results in ``results/`` are checked as they are; otherwise each chapter is executed here with papermill
on a freshly written synthetic sample.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

from s12ls_utils import schema, synthetic

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.chapter


@pytest.fixture(scope="session")
def run_chapter(tmp_path_factory):
    cache: dict[str, tuple[nbformat.NotebookNode, dict]] = {}
    executed_dir = os.environ.get("S12LS_EXECUTED")

    def run(stem: str) -> tuple[nbformat.NotebookNode, dict]:
        if stem in cache:
            return cache[stem]
        if executed_dir and (ROOT / executed_dir / "book" / f"{stem}.ipynb").exists():
            nb_path = ROOT / executed_dir / "book" / f"{stem}.ipynb"
            results = json.loads((ROOT / "results" / f"{stem}.json").read_text())
        else:
            import papermill as pm

            work = tmp_path_factory.mktemp(stem)
            data = work / "data"
            synthetic.make_sample(data, n_per_sensor=20, seed=11, progress=False)
            nb_path = work / f"{stem}.ipynb"
            pm.execute_notebook(
                str(ROOT / "book" / f"{stem}.ipynb"),
                str(nb_path),
                cwd=str(ROOT),
                kernel_name="python3",
                progress_bar=False,
                parameters={"data_dir": str(data), "results_dir": str(work / "results")},
            )
            results = json.loads((work / "results" / f"{stem}.json").read_text())
        nb = nbformat.read(nb_path, as_version=4)
        cache[stem] = (nb, results)
        return cache[stem]

    return run


def _errors(nb) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def _glued(nb) -> set[str]:
    names = set()
    for c in nb.cells:
        for o in c.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook", {})
            if "name" in meta:
                names.add(meta["name"])
    return names


def test_ch01_data_exploration(run_chapter):
    nb, res = run_chapter("01-data-exploration")
    assert not _errors(nb)
    man = synthetic.load_manifest(
        ROOT / res["data_dir"] if not Path(res["data_dir"]).is_absolute() else res["data_dir"]
    )
    files = man["files"]
    # counts equal the generator's own record
    for s in schema.SENSORS:
        assert res[f"n_files_{s}"] == sum(f["sensor"] == s for f in files)
    assert res["n_files_total"] == len(files)
    keys = {f["key"] for f in files}
    assert res["n_locations"] == len(keys)
    assert res["n_regions"] == len({f["region"] for f in files}) >= 4
    assert res["n_annotated"] == sum(f["annotated"] for f in files)
    assert res["n_errors"] == 0
    assert res["n_landslides"] == man["n_landslides"]
    # class balance: positives once per location
    per_key = {f["key"]: f["n_positive"] for f in files}
    expected = sum(per_key.values()) / (len(per_key) * schema.PATCH_SIZE**2)
    assert res["positive_fraction"] == pytest.approx(expected, rel=1e-9)
    assert 0.005 < res["positive_fraction"] < 0.1
    assert res["positive_fraction_annotated"] > res["positive_fraction"]
    # sizes from the inventory: median area within the generator's range (3 px .. 1500 px)
    assert 300 <= res["median_area_m2"] <= 150_000
    s2_clear = [sum(b < 0.1 for b in f["bad_fraction"]) for f in files if f["sensor"] == "s2"]
    assert res["s2_median_clear_dates"] == pytest.approx(float(np.median(s2_clear)))
    assert res["viewer_key"] in keys
    # every glued figure the text refers to exists
    text = "\n".join("".join(c.source) for c in nb.cells if c.cell_type == "markdown")
    import re

    referenced = set(re.findall(r"\{glue:text\}`([^`]+)`", text))
    assert referenced, "the chapter text glues no figures"
    assert referenced <= _glued(nb), f"glue names missing: {referenced - _glued(nb)}"
