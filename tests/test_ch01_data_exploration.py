"""Execute the chapters (or reuse `make execute`'s copies) and check the figures they recorded.

The ``run_chapter`` fixture (conftest.py) gives the executed notebook, its recorded results and the
data folder it ran on. Chapters 02+ have their own test modules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s12ls_utils import schema, synthetic

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.chapter


def test_ch01_data_exploration(run_chapter):
    ch = run_chapter("01-data-exploration")
    res = ch.results
    assert not ch.errors()
    man = synthetic.load_manifest(ch.data_dir)
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
    referenced = ch.referenced_glue()
    assert referenced, "the chapter text glues no figures"
    assert referenced <= ch.glued(), f"glue names missing: {referenced - ch.glued()}"
