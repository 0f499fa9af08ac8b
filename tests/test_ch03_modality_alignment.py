"""Chapter 03 (modality alignment): execute it and check the figures it recorded against the generator's
own record, then run it on a copy with one deliberately inconsistent file."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import nbformat
import netCDF4
import numpy as np
import pytest

from s12ls_utils import schema
from s12ls_utils.catalog import CACHE_NAME
from s12ls_utils.sample import generate

ROOT = Path(__file__).resolve().parents[1]
STEM = "03-modality-alignment"
CLEAR_BELOW = 0.1
pytestmark = pytest.mark.chapter


def _by_key(data_dir: Path) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for f in generate.load_manifest(data_dir)["files"]:
        out[f["key"]][f["sensor"]] = f
    return dict(out)


def _combination(recs: dict) -> str:
    return "+".join(s for s in schema.SENSORS if s in recs)


def _timing(recs: dict) -> dict:
    """Event-relative measures of one location, computed directly from the manifest's dates."""
    days = {s: np.array(r["times"], dtype="datetime64[D]") for s, r in recs.items()}
    events = [np.datetime64(d, "D") for r in recs.values() for d in r["event_dates"]]
    if not events:
        return {}
    ev = min(events)
    out: dict = {}
    for s, d in days.items():
        after = d[d > ev]
        out[f"first_{s}"] = float((after.min() - ev).astype(int)) if after.size else np.nan
    if "s2" in recs:
        bad = np.array(recs["s2"]["bad_fraction"])
        clear = days["s2"][(days["s2"] > ev) & (bad < CLEAR_BELOW)]
        out["has_clear"] = bool(clear.size)
        if clear.size:
            first = clear.min()
            out["first_clear"] = float((first - ev).astype(int))
            for s, d in days.items():
                out[f"{s}_before"] = int(((d > ev) & (d < first)).sum())
    return out


def _expected(data_dir: Path) -> dict:
    by_key = _by_key(data_dir)
    matched = {k: r for k, r in by_key.items() if len(r) >= 2}
    timing = [t for t in (_timing(r) for r in matched.values()) if t]
    with_s2 = [t for t in timing if "has_clear" in t]
    clear = [t for t in with_s2 if t["has_clear"]]

    def med(rows, col):
        v = np.array([r[col] for r in rows if col in r], dtype="float64")
        v = v[np.isfinite(v)]
        return float(np.median(v))

    full = [r for r in by_key.values() if set(r) == set(schema.SENSORS)]
    combos: dict[str, int] = defaultdict(int)
    for r in by_key.values():
        combos[_combination(r)] += 1
    return {
        "n_locations": len(by_key),
        "combination_counts": dict(combos),
        "n_all_three": len(full),
        "n_aligned_annotated": sum(any(f["annotated"] for f in r.values()) for r in full),
        "n_groups_checked": len(matched),
        "n_time_groups": len(matched),
        "n_event_groups_with_s2": len(with_s2),
        "n_without_clear_s2": len(with_s2) - len(clear),
        "median_days_to_first_clear_s2": med(clear, "first_clear"),
        "median_s1asc_before_clear_s2": med(clear, "s1asc_before"),
        "median_s1dsc_before_clear_s2": med(clear, "s1dsc_before"),
        "median_s2_cloudy_before_clear_s2": med(clear, "s2_before"),
        "median_days_first_s1asc": med(timing, "first_s1asc"),
        "median_days_first_s1dsc": med(timing, "first_s1dsc"),
        "median_days_first_s2": med(timing, "first_s2"),
        "aligned_keys": {k for k, r in by_key.items() if set(r) == set(schema.SENSORS)},
    }


def _figure_outputs(nb) -> list[str]:
    """The HTML of every HoloViews figure output (Bokeh document embedded in the output)."""
    return [
        o["data"].get("text/html", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "application/vnd.holoviews_exec.v0+json" in o.get("data", {}) and "text/plain" in o["data"]
    ]


def test_ch03_modality_alignment(run_chapter):
    ch = run_chapter(STEM)
    res = ch.results
    exp = _expected(ch.data_dir)
    # alignment counts equal the generator's own record
    assert res["n_locations"] == exp["n_locations"]
    assert res["combination_counts"] == exp["combination_counts"]
    assert sum(res["combination_counts"].values()) == res["n_locations"]
    assert res["n_all_three"] == res["n_aligned_present"] == exp["n_all_three"] > 0
    assert res["n_files"] == sum(
        exp["combination_counts"][c] * len(c.split("+")) for c in exp["combination_counts"]
    )
    # the sample is consistent: the strictly aligned set is every location with all three sensors
    assert res["n_mismatches"] == 0 and res["mismatch_keys"] == [] and res["n_excluded"] == 0
    assert res["n_aligned"] == exp["n_all_three"]
    assert res["n_aligned_annotated"] == exp["n_aligned_annotated"]
    assert res["n_groups_checked"] == exp["n_groups_checked"]
    # time alignment, recomputed from the manifest's dates and scene-class shares
    for name in (
        "n_time_groups",
        "n_event_groups_with_s2",
        "n_without_clear_s2",
        "median_days_to_first_clear_s2",
        "median_s1asc_before_clear_s2",
        "median_s1dsc_before_clear_s2",
        "median_s2_cloudy_before_clear_s2",
        "median_days_first_s1asc",
        "median_days_first_s1dsc",
        "median_days_first_s2",
    ):
        assert res[name] == pytest.approx(exp[name]), name
    assert res["n_time_errors"] == 0
    # the first clear view never comes before the first view (on the sample, whose clouds do not follow the
    # event, the medians may be equal)
    assert res["median_days_to_first_clear_s2"] >= res["median_days_first_s2"]
    assert 0 <= res["pct_within_near_s1asc"] <= 100 and 0 <= res["pct_within_near_s1dsc"] <= 100
    assert res["timeline_key"] in exp["aligned_keys"]
    # the interactive figures are embedded in the outputs (they render without a kernel)
    figures = _figure_outputs(ch.nb)
    assert len(figures) >= 6
    assert all("docs_json" in html for html in figures)


def test_ch03_reports_a_deliberately_inconsistent_pair(small_sample, tmp_path):
    import papermill as pm

    data = tmp_path / "data"
    shutil.copytree(small_sample, data)
    (data / CACHE_NAME).unlink(missing_ok=True)
    by_key = _by_key(data)
    key = sorted(k for k, r in by_key.items() if set(r) == set(schema.SENSORS) and r["s2"]["annotated"])[0]
    with netCDF4.Dataset(data / by_key[key]["s1asc"]["path"], "a") as ds:
        ds.variables["x"][:] = ds.variables["x"][:] + 10.0  # one pixel east

    out_nb = tmp_path / f"{STEM}.ipynb"
    pm.execute_notebook(
        str(ROOT / "book" / f"{STEM}.ipynb"),
        str(out_nb),
        cwd=str(ROOT),
        kernel_name="python3",
        progress_bar=False,
        parameters={"data_dir": str(data), "results_dir": str(tmp_path / "results")},
        request_save_on_cell_execute=False,  # as .ci/execute_chapters.py
    )
    res = json.loads((tmp_path / "results" / f"{STEM}.json").read_text())
    nb = nbformat.read(out_nb, as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert res["mismatch_keys"] == [key]
    assert res["n_mismatches"] == 2  # s1asc against s1dsc and against s2
    assert res["mismatch_checks"] == {"grid_x": 2}
    assert res["n_excluded"] == 1
    assert res["n_aligned"] == res["n_aligned_present"] - 1
    # the mismatch table shown in the chapter names the location
    shown = [
        o["data"].get("text/html", "")
        for c in nb.cells
        if "check_consistency" in c.source
        for o in c.get("outputs", [])
        if o.get("output_type") == "execute_result"
    ]
    assert shown and key in shown[0] and "grid_x" in shown[0]
