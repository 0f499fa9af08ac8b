"""The chapters rerun the ways a reader reruns them (``.ci/parameter_matrix.py``, ``make matrix``).

``make test`` runs the matrix after the book and sets ``S12LS_MATRIX`` to its folder; these tests read what
each case recorded. Without it (a plain ``pytest``) they are skipped, unless ``S12LS_REQUIRE_MATRIX=1``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: the cases issue 15 asks for, by what they cover
REQUIRED = {
    "02-s1asc": "02 with sensors s1asc",
    "03-s2only": "03 on an s2-only folder",
    "04-s2only": "04 with presets other than the default",
    "05-utae-s1asc": "05 with utae on s1asc",
    "05-convgru-s2only": "05 with convgru on s2",
    "05-fusion": "05 with S1/S2 fusion",
    "06-utae-s1asc": "06 on the utae run",
    "06-convgru-s2only": "06 on the convgru run",
    "06-fusion": "06 on the fusion run",
    "05-rerun-defaults": "a default rerun that must not replace the book's record",
    "01-s2only": "01 on an s2-only folder",
    "02-s2only": "02 on an s2-only folder",
    "05-s2only-fusion": "a clear message where a chapter cannot run",
    "05-ad": "05 on the S12LS-AD task",
    "07-s1asc-europe": "07 on the radar with another region held out",
}


@pytest.fixture(scope="module")
def matrix() -> dict:
    folder = os.environ.get("S12LS_MATRIX")
    summary = ROOT / folder / "summary.json" if folder else None
    if summary is None or not summary.exists():
        msg = (
            f"no parameter matrix at {summary} (make test runs .ci/parameter_matrix.py and sets S12LS_MATRIX)"
        )
        if os.environ.get("S12LS_REQUIRE_MATRIX") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    data = json.loads(summary.read_text())
    data["folder"] = summary.parent
    data["by_name"] = {c["name"]: c for c in data["cases"]}
    return data


def record(matrix: dict, name: str) -> dict:
    case = matrix["by_name"][name]
    folder = Path(case["results_dir"])
    folder = folder if folder.is_absolute() else ROOT / folder
    return json.loads((folder / f"{case['chapter']}.json").read_text())


def executed(matrix: dict, name: str):
    case = matrix["by_name"][name]
    return nbformat.read(matrix["folder"] / name / f"{case['chapter']}.ipynb", as_version=4)


def test_every_required_case_ran_as_expected(matrix):
    missing = sorted(set(REQUIRED) - set(matrix["by_name"]))
    assert not missing, f"cases missing from the matrix: {missing}"
    bad = {c["name"]: c["error"] for c in matrix["cases"] if not c["ok"]}
    assert not bad, f"cases that ended otherwise than expected: {bad}"
    assert all(c["seconds"] > 0 for c in matrix["cases"])


def test_reruns_left_the_book_record_alone(matrix):
    assert matrix["book_record_files"] > 0, "the book's record was empty when the matrix ran"
    assert matrix["book_record_unchanged"]


def test_a_default_rerun_records_apart_and_names_its_run_with_its_time(matrix):
    case = matrix["by_name"]["05-rerun-defaults"]
    assert case["results_dir"] and Path(case["results_dir"]).parts[:2] == ("results", "reruns")
    rec = record(matrix, "05-rerun-defaults")
    run = Path(rec["run_dir"])
    assert re.fullmatch(r"ch05-S12LS-LD-unet_prepost-s2-\d{8}T\d{6}", run.name), run.name
    assert rec["epochs_run"] == 1
    book = (
        ROOT / os.environ.get("S12LS_EXECUTED", "_build/executed") / "results" / "05-baseline-training.json"
    )
    if book.exists():
        assert Path(json.loads(book.read_text())["run_dir"]).name == "ch05-S12LS-LD-unet_prepost-s2"


@pytest.mark.parametrize(
    ("name", "model", "sensors"),
    [
        ("05-utae-s1asc", "utae", "s1asc"),
        ("05-convgru-s2only", "convgru", "s2"),
        ("05-fusion", "unet_prepost", "s1asc+s2"),
    ],
)
def test_chapter05_trains_the_model_and_sensors_it_was_given(matrix, name, model, sensors):
    rec = record(matrix, name)
    assert rec["model"] == model and rec["sensors"] == sensors
    assert rec["epochs_run"] == 1
    assert Path(rec["run_dir"]).name == name  # the run_name the case passed
    assert (Path(rec["run_dir"]) / "best.pt").is_file()


@pytest.mark.parametrize(
    ("name", "trained"),
    [
        ("06-utae-s1asc", "05-utae-s1asc"),
        ("06-convgru-s2only", "05-convgru-s2only"),
        ("06-fusion", "05-fusion"),
    ],
)
def test_chapter06_evaluates_the_run_it_is_given_and_draws_its_gallery(matrix, name, trained):
    rec = record(matrix, name)
    assert rec["run_source"] == "parameter"
    assert Path(rec["run_dir"]) == Path(record(matrix, trained)["run_dir"])
    assert 0 <= rec["model_f1"] <= 1 and rec["n_test"] > 0
    nb = executed(matrix, name)
    gallery = [c for c in nb.cells if c.cell_type == "code" and "figures.error_gallery(" in c.source]
    assert gallery and gallery[0].outputs, "the error gallery drew nothing"
    assert not any(
        o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )


def test_an_s2_only_folder_runs_through_the_chapters(matrix):
    r01 = record(matrix, "01-s2only")
    assert r01["n_files_s2"] > 0 and r01["n_files_s1asc"] == 0 and r01["n_files_s1dsc"] == 0
    r02 = record(matrix, "02-s2only")  # default sensors: those the folder has
    assert r02["n_patches_s2"] > 0 and r02["n_patches_s1asc"] == 0 and r02["n_patches_s1dsc"] == 0
    r03 = record(matrix, "03-s2only")
    assert set(r03["combination_counts"]) == {"s2"} and r03["n_locations"] == r01["n_locations"]
    r04 = record(matrix, "04-s2only")
    assert r04["presets"] == ["S12LS-LD", "S12LS-AD-blocked"]
    assert Path(r04["task_dir_ld"]).is_dir() and Path(r04["task_dir_ad_blocked"]).is_dir()
    assert "task_dir_ld_blocked" not in r04 and "task_dir_ad" not in r04  # only the presets asked for


def test_chapter02_on_s1_only_uses_the_radar_in_its_example(matrix):
    rec = record(matrix, "02-s1asc")
    assert rec["example_sensor"] == "s1asc"
    assert rec["n_patches_s1asc"] > 0 and rec["n_patches_s2"] == 0


def test_a_missing_sensor_is_named_before_any_work(matrix):
    case = matrix["by_name"]["05-s2only-fusion"]
    assert case["returncode"] != 0
    assert "parameter 'sensors'" in case["error"] and "has no s1asc files" in case["error"]
    assert "(it has: s2)" in case["error"]


def test_chapter05_trains_on_s12ls_ad_and_chapter06_scores_that_run(matrix):
    trained = record(matrix, "05-ad")
    assert Path(trained["task_dir"]).name == "S12LS-AD" and trained["model"] == "utae"
    scored = record(matrix, "06-fusion")
    assert scored["ad_run_source"] == "parameter"
    assert Path(scored["ad_run_dir"]) == Path(trained["run_dir"])
    assert scored["ad_n_test"] > scored["ad_n_test_with_landslides"] > 0
    assert 0 <= scored["ad_model_pixel_f1"] <= 1


def test_chapter07_holds_out_the_fold_it_is_given_on_the_sensor_it_is_given(matrix):
    rec = record(matrix, "07-s1asc-europe")
    assert rec["sensor"] == "s1asc" and rec["holdout_fold"] == "europe"
    assert "italy" in rec["holdout_regions"].split(", ")
    entries = rec["split_optimism"]
    assert {"published", "blocked", "region"} <= set(entries)
    for label in ("published", "blocked", "region"):
        e = entries[label]
        assert e["n_train"] > 0 and e["n_test"] > 0 and 0 < e["test_prevalence"] < 1


def test_the_pool_keeps_the_order_of_dependencies_and_both_lanes_busy():
    """``make test`` runs the book's chapters and the cases in one pool (``run_pool``): a job starts only after the
    jobs it reads, and a lane never waits while there is a job it could run (here C runs while A does: A ends only
    once C has started, so a pool that ran one job at a time would stop at A's timeout)."""
    import threading

    from helpers import load_script

    pm = load_script(ROOT / ".ci" / "parameter_matrix.py")
    events, lock = [], threading.Lock()
    c_started = threading.Event()

    def job(name: str, after=(), wait=None, signal=None):
        def run(cpus):
            with lock:
                events.append(("start", name))
            if signal is not None:
                signal.set()
            if wait is not None:
                assert wait.wait(20), f"{name}: nothing ran beside it"
            with lock:
                events.append(("end", name))
            return {"name": name}

        return pm.Job(name, run, tuple(after))

    ended = []
    jobs = [job("A", wait=c_started), job("B", after=["A", "not in the pool"]), job("C", signal=c_started)]
    pm.run_pool(jobs, [None, None], lambda j, res: ended.append(res["name"]))
    assert sorted(ended) == ["A", "B", "C"]
    assert events.index(("start", "C")) < events.index(("end", "A")) < events.index(("start", "B"))
