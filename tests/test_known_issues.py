"""Tests for :mod:`s12ls_utils.known_issues` and ``s12ls validate`` (notes, empty folders, ``--report``).

The data folder is written here, one file per known issue, with the real format's writer of the tests
(``tests/real_format.py``), never with the package's generator: the sample may change, these files do not.
"""

from __future__ import annotations

import json
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
from quality_files import fill_gap, set_scl_255, write_s1
from real_format import MULTI_TIMES, write_real_patch

from s12ls_utils import cli, schema
from s12ls_utils.known_issues import ISSUES, check_files, known_issues, patch_files, real_dataset

EVENT = "2018-09-01"  # inside MULTI_TIMES: a valid pre/post pair


def _s2(data: Path, name: str, **kw) -> Path:
    kw.setdefault("event_date", EVENT)
    kw.setdefault("date_confidence", "1.0")
    return write_real_patch(data / "s2" / f"{name}.nc", kw.pop("times", MULTI_TIMES), **kw)


@pytest.fixture(scope="module")
def issue_folder(tmp_path_factory) -> Path:
    """A data folder with one file per known issue (and two plain ones), and an annotated-only S12LS-AD task."""
    data = tmp_path_factory.mktemp("issues") / "data"
    _s2(data, "italy_s2_1")  # plain, annotated
    _s2(data, "italy_s2_2", event_date="", date_confidence="")  # plain, not annotated
    _s2(data, "hiroshima_s2_1427", mask=np.zeros((128, 128), np.uint8))  # annotated, empty mask
    set_scl_255(_s2(data, "chimanimani_s2_3"), whole=(4, 9), partial=(11,))
    _s2(data, "italy_s2_4", event_date="None", date_confidence="nan")  # annotated, undated
    _s2(data, "italy_s2_5", event_date="2018-07-01")  # before the series: pre/post 0/0
    _s2(data, "italy_s2_6", event_date="2018-12-01")  # after it: 14/14
    _s2(data, "italy_s2_7", times=MULTI_TIMES[:12] + [MULTI_TIMES[11]] * 3)  # padded: 3 repeated dates
    _s2(data, "italy_s2_8", date_confidence="0.6")  # date from an NDVI drop
    _s2(data, "usa_alaska_s2_9")
    write_s1(data / "s1asc" / "usa_puertorico_s1asc_10.nc", seed=1)
    write_s1(data / "s1asc" / "italy_s1asc_11.nc", seed=2, edit=fill_gap)  # 2 frames filled by copying

    def nan_gap(values):
        values[3, :5, :4] = np.nan

    write_s1(data / "s1dsc" / "italy_s1dsc_12.nc", seed=3, edit=nan_gap)  # 20 NaN per band
    # an S12LS-AD folder that lists only the annotated S2 files (the harmonized one at upstream 5b313f2)
    entries = [
        {"id": n.replace("_s2_", "_"), "s2": f"s2/{n}.nc", "pixel_annotated": 144, "inventory": "italy"}
        for n in ("italy_s2_1", "italy_s2_5", "italy_s2_6")
    ]
    ad = data / "tasks" / "S12LS-AD" / "s2"
    ad.mkdir(parents=True)
    (ad / "splits.json").write_text(json.dumps({"train": entries[:2], "val": [], "test": entries[2:]}))
    ok = data / "tasks" / "S12LS-AD-blocked" / "s2"  # an AD folder that lists a negative too: fine
    ok.mkdir(parents=True)
    negative = {"id": "italy_2", "s2": "s2/italy_s2_2.nc", "pixel_annotated": 0, "inventory": "italy"}
    (ok / "splits.json").write_text(json.dumps({"train": [entries[0], negative], "val": [], "test": []}))
    return data


@pytest.fixture(scope="module")
def found(issue_folder):
    return known_issues(issue_folder, scheduler="synchronous", progress=False)


#: What each issue must list in the folder above: {issue: {path: count}}.
EXPECTED = {
    "annotated_empty_mask": {"s2/hiroshima_s2_1427.nc": 1},
    "scl_unknown": {"s2/chimanimani_s2_3.nc": 3},
    "undated": {"s2/italy_s2_4.nc": 1},
    "event_outside": {"s2/italy_s2_5.nc": 1, "s2/italy_s2_6.nc": 1},
    "repeated_dates": {"s2/italy_s2_7.nc": 3},
    "ndvi_dates": {"s2/italy_s2_8.nc": 1},
    "usa_token": {"s2/usa_alaska_s2_9.nc": 1, "s1asc/usa_puertorico_s1asc_10.nc": 1},
    "ad_annotated_only": {"tasks/S12LS-AD/s2/splits.json": 3},
    "s1_filled": {"s1asc/italy_s1asc_11.nc": 2},
    "s1_nan": {"s1dsc/italy_s1dsc_12.nc": 40},
}


def test_every_issue_is_found_in_the_files_that_show_it(found, issue_folder):
    assert set(EXPECTED) == set(ISSUES)
    got = {}
    for row in found.files.itertuples():
        path = row.path
        if row.issue == "ad_annotated_only":
            path = Path(path).relative_to(issue_folder).as_posix()
        got.setdefault(row.issue, {})[path] = row.count
    assert got == EXPECTED
    assert list(found.files.columns) == ["issue", "sensor", "path", "count", "detail"]
    assert found.n_files == {"s1asc": 2, "s1dsc": 1, "s2": 10}
    assert len(found.checks) == 13 and all(c.ok for c in found.checks)


def test_details_say_what_was_found(found):
    detail = found.files.set_index(["issue", "path"])["detail"]
    assert detail["scl_unknown", "s2/chimanimani_s2_3.nc"] == "2 whole frame(s)"
    assert detail["event_outside", "s2/italy_s2_5.nc"] == "event 2018-07-01 before the first image"
    assert detail["event_outside", "s2/italy_s2_6.nc"] == "event 2018-12-01 after the last image"
    assert detail["undated", "s2/italy_s2_4.nc"] == "no dated event: no pre/post pair"
    assert detail["ndvi_dates", "s2/italy_s2_8.nc"] == "lowest date_confidence 0.6"
    assert detail["usa_token", "s2/usa_alaska_s2_9.nc"] == "region usa_alaska, inventory token usa"
    assert detail["s1_filled", "s1asc/italy_s1asc_11.nc"] == "up to 272 pixels of a frame equal a neighbour"


def test_summary_lists_every_issue_found_or_not(found):
    s = found.summary()
    assert list(s.index) == list(ISSUES)
    assert s.loc["event_outside", ["files", "count"]].tolist() == [2, 2]
    assert s.loc["scl_unknown", ["files", "count", "counted"]].tolist() == [1, 3, "frames"]
    assert s.loc["usa_token", "examples"] == "usa_puertorico_s1asc_10, usa_alaska_s2_9"  # by path
    assert s.loc["ad_annotated_only", "examples"].endswith("tasks/S12LS-AD")
    text = found.to_text()
    assert "event outside the series (pre/post 0/0 or 14/14)" in text and "2 file(s)" in text


def test_kept_by_applies_the_presets_selection(found):
    kept = found.kept_by()
    # S12LS-LD keeps annotated files with >= 50 landslide pixels outside usa_alaska and nepal; AD keeps all
    assert kept.loc["event_outside", ["files", "S12LS-LD", "S12LS-AD"]].tolist() == [2, 2, 2]
    assert kept.loc["annotated_empty_mask", ["S12LS-LD", "S12LS-AD"]].tolist() == [0, 1]
    assert kept.loc["usa_token", ["S12LS-LD", "S12LS-AD"]].tolist() == [1, 2]  # Puerto Rico stays in LD
    assert "ad_annotated_only" not in kept.index  # a task folder is no patch file of a selection


def test_a_clean_folder_has_no_issue(tmp_path):
    data = tmp_path / "data"
    _s2(data, "italy_s2_1")
    write_s1(data / "s1asc" / "italy_s1asc_1.nc")
    res = known_issues(data, scheduler="synchronous", progress=False)
    assert res.files.empty and (res.summary()["files"] == 0).all() and res.kept_by().empty


def test_real_dataset_counts_come_from_the_metadata():
    from s12ls_utils import reference

    table = real_dataset()
    assert list(table.index) == list(ISSUES) and set(table.columns) == {"title", "real dataset", "source"}
    pat = reference.patches()
    n_alaska = int(((pat["region"] == "usa_alaska") & (pat["sensor"] == "s2")).sum())
    assert f"{n_alaska} s2" in table.loc["usa_token", "real dataset"]
    n_ad = int(pat.loc[pat["sensor"] == "s2", "split_S12LS-AD"].notna().sum())
    assert f"{n_ad:,} S2 patches" in table.loc["ad_annotated_only", "real dataset"]
    assert "hiroshima_s2_1427" in table.loc["annotated_empty_mask", "real dataset"]
    assert "vendored metadata" in table.loc["usa_token", "source"]


def test_patch_files_and_clear_errors(issue_folder, tmp_path):
    assert len(patch_files(issue_folder)) == 13
    assert patch_files(issue_folder / "s1asc") == sorted((issue_folder / "s1asc").glob("*.nc"))
    one = issue_folder / "s2" / "italy_s2_1.nc"
    assert patch_files(one) == [one]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no patch files in .*empty \(looked for .*s2\}/\*\.nc\)"):
        patch_files(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        patch_files(tmp_path / "smaple")


def test_check_files_keeps_the_order(issue_folder):
    paths = patch_files(issue_folder)[::-1]
    checks = check_files(paths, scheduler="threads", workers=2, progress=False)
    assert [c.path for c in checks] == paths


# --------------------------------------------------------------------------------------------------------
# s12ls validate
# --------------------------------------------------------------------------------------------------------


def test_validate_scl_255_exits_0_with_a_note(tmp_path, capsys):
    data = tmp_path / "data"
    set_scl_255(_s2(data, "chimanimani_s2_1"), whole=(2, 3, 4))
    _s2(data, "italy_s2_2")
    assert cli.main(["validate", str(data), "--scheduler", "synchronous"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 of 2 files valid"
    assert out[1] == (
        "quality note: 1 file(s) hold 3 frame(s) with SCL 255 (unknown quality: unusable for cloud masks, not "
        "a format error), e.g. chimanimani_s2_1.nc (3)"
    )
    assert cli.main(["validate", str(data), "--details", "--scheduler", "synchronous"]) == 0
    assert f"{data / 's2' / 'chimanimani_s2_1.nc'}: note: SCL 255" in capsys.readouterr().out


def test_validate_an_invalid_file_exits_1(tmp_path, capsys):
    data = tmp_path / "data"
    path = _s2(data, "italy_s2_1")
    with netCDF4.Dataset(path, "a") as ds:
        ds.setncattr("satellite", "s1")
    assert cli.main(["validate", str(data), "--scheduler", "synchronous"]) == 1
    out = capsys.readouterr().out
    assert f"{path}:\n  - attribute 'satellite' is 's1'" in out and "0 of 1 files valid" in out


@pytest.mark.parametrize("case", ["empty", "mistyped", "no-sensor-folders"])
def test_validate_a_folder_without_patch_files_exits_non_zero(tmp_path, capsys, case):
    folder = tmp_path / "data"
    if case != "mistyped":
        folder.mkdir()
    if case == "no-sensor-folders":
        (folder / "README.md").write_text("not data")
        (folder / "other").mkdir()
        _s2(folder / "other", "italy_s2_1")  # a patch file, but not in a sensor folder of this folder
    assert cli.main(["validate", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("s12ls validate: error: ")
    assert ("does not exist" if case == "mistyped" else "no patch files in") in err
    assert "0 of 0" not in err


def test_validate_report_prints_the_issues_and_writes_csv(issue_folder, tmp_path, capsys):
    csv = tmp_path / "issues.csv"
    argv = ["validate", str(issue_folder), "--report", "--csv", str(csv), "--scheduler", "synchronous"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "13 of 13 files valid" in out
    assert (
        f"Known issues of the real files, looked for in {issue_folder} (2 s1asc, 1 s1dsc, 10 s2 files):"
        in out
    )
    assert "S1 gaps filled by the writer" in out and "2 frames" in out
    table = pd.read_csv(csv)
    assert set(table["issue"]) == set(EXPECTED) and set(table["data_dir"]) == {str(issue_folder)}
    # a sensor folder is checked, but the report needs a data folder
    assert cli.main(["validate", str(issue_folder / "s2"), "--report", "--scheduler", "synchronous"]) == 0
    assert "--report looks at a data folder" in capsys.readouterr().out


def test_schema_quality_keys_are_what_the_report_reads():
    assert set(schema.QUALITY_KEYS) == {
        "repeated_dates",
        "scl_unknown_frames",
        "scl_unknown_whole_frames",
        "s1_nan_pixels",
        "s1_repeat_pixels",
        "s1_filled_frames",
    }


def test_figures_for_the_page_record(found):
    figs = found.figures(real_dataset())
    assert figs["n_files"] == 13 and (figs["n_files_s1asc"], figs["n_files_s1dsc"], figs["n_files_s2"]) == (
        2,
        1,
        10,
    )
    assert (figs["scl_unknown_files"], figs["scl_unknown_count"]) == (1, 3)
    assert figs["scl_unknown_examples"] == "chimanimani_s2_3" and figs["s1_nan_count"] == 40
    assert figs["undated_examples"] == "italy_s2_4"
    assert figs["event_outside_kept_s12ls_ld"] == 2 and figs["annotated_empty_mask_kept_s12ls_ld"] == 0
    assert figs["fill_min_pixels"] == schema.S1_FILL_MIN_PIXELS
    # the largest run among the S1 files with no filled frame: the speckled and the NaN one, not the filled one
    assert figs["s1_repeat_max_unflagged"] < schema.S1_FILL_MIN_PIXELS  # the filled file has 272
    assert figs["usa_token_real"] == real_dataset().loc["usa_token", "real dataset"]
    clean = known_issues(found.data_dir, scheduler="synchronous", progress=False).figures()
    assert "usa_token_real" not in clean  # without the real-dataset table, no such keys


def test_issue_figures_draw_the_files_per_issue_and_sensor(found):
    import holoviews as hv

    from s12ls_utils import book, figures

    hv.extension("bokeh")
    bars = figures.known_issue_bars(found)
    data = bars.dframe()
    per_issue = data.groupby("issue")["files"].sum()
    assert per_issue[ISSUES["usa_token"].title] == 2 and per_issue[ISSUES["s1_filled"].title] == 1
    assert ISSUES["ad_annotated_only"].title not in set(data["issue"])  # task folders are no patch files
    assert set(data["sensor"]) == {"S1 ascending", "S1 descending", "S2"}
    static = book.static(bars, "Patch files per known issue")  # the appendix's static rendering
    assert static.png.startswith(b"\x89PNG") and static.width_px > 300


def test_an_unreadable_task_folder_is_skipped_not_reported(tmp_path, caplog):
    data = tmp_path / "data"
    _s2(data, "italy_s2_1")
    broken = data / "tasks" / "S12LS-AD" / "s2"
    broken.mkdir(parents=True)
    (broken / "splits.json").write_text('{"train": [')  # as a folder caught half written
    with caplog.at_level("WARNING", logger="s12ls_utils.known_issues"):
        res = known_issues(data, scheduler="synchronous", progress=False)
    assert res.files.empty and "is not a readable task folder" in caplog.text
