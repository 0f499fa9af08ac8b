"""The appendix "Known issues of the real files": execute it (or read the book's executed copy) and check that
its text pastes only what it recorded, and that the record holds every issue with the counts the data folder
gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from s12ls_utils import schema
from s12ls_utils.catalog import build_catalog
from s12ls_utils.known_issues import ISSUES

STEM = "appendix-known-issues"
pytestmark = pytest.mark.chapter


@pytest.fixture(scope="module")
def page(run_chapter):
    return run_chapter(STEM)


def test_every_issue_has_its_paragraph(page):
    for key in ISSUES:  # every issue has its paragraph
        assert {f"{key}_files", f"{key}_examples", f"{key}_real", f"{key}_source"} <= page.referenced_glue()


def test_record_holds_every_issue_for_the_folder(page):
    rec = page.results
    assert [row["issue"] for row in rec["issues"]] == list(ISSUES)
    for row in rec["issues"]:
        assert rec[f"{row['issue']}_files"] == row["files"] >= 0
        assert (
            rec[f"{row['issue']}_count"] == row["count"] >= row["files"]
            or row["issue"] == "ad_annotated_only"
        )
    n = {s: len(list((page.data_dir / s).glob("*.nc"))) for s in schema.SENSORS}
    assert rec["n_files"] == sum(n.values()) and all(rec[f"n_files_{s}"] == n[s] for s in n)
    synthetic = (page.data_dir / "synthetic_manifest.json").is_file()
    assert (rec["data_revision"] == "synthetic sample") == synthetic
    assert rec["fill_min_pixels"] == schema.S1_FILL_MIN_PIXELS


def test_header_issues_match_the_catalog(page):
    """What the page counts from the headers, counted again here straight from the catalog."""
    cat = build_catalog(page.data_dir, progress=False)
    rec = page.results
    annotated = cat["annotated"].astype(bool)
    assert rec["annotated_empty_mask_files"] == int((annotated & (cat["n_positive"] == 0)).sum())
    assert rec["event_outside_files"] == int(cat["event_position"].isin(["before", "after"]).sum())
    assert rec["ndvi_dates_files"] == int((annotated & (cat["date_confidence"] < 1)).sum())
    regions = cat["region"].astype(str)
    assert rec["usa_token_files"] == int((regions.str.split("_").str[0] != regions).sum())
    assert rec["undated_count"] == int(cat.loc[annotated, "n_undated_events"].sum())
    assert rec["event_outside_kept_s12ls_ad"] == rec["event_outside_files"]  # S12LS-AD keeps every file


def test_page_is_in_the_book():
    from s12ls_utils.book import book_pages

    root = Path(__file__).resolve().parents[1]
    assert f"book/{STEM}" in book_pages(root)
