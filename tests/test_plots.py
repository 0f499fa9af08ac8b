"""Chapter-support helpers of ``s12ls_utils.plots`` that are not figures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s12ls_utils import plots


@pytest.fixture
def restore_cwd():
    before = Path.cwd()
    yield
    os.chdir(before)


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text("root: book/intro\n")
    return root


def test_run_from_repo_root_moves_up_from_book(tmp_path, restore_cwd):
    root = _checkout(tmp_path)
    os.chdir(root / "book")
    assert plots.run_from_repo_root() == root.resolve()
    assert Path.cwd() == root.resolve()
    assert plots.run_from_repo_root() == root.resolve()  # idempotent at the root


def test_run_from_repo_root_leaves_other_folders_alone(tmp_path, restore_cwd):
    _checkout(tmp_path)
    elsewhere = tmp_path / "elsewhere" / "deep"
    elsewhere.mkdir(parents=True)
    os.chdir(elsewhere)
    assert plots.run_from_repo_root() == elsewhere.resolve()
    assert Path.cwd() == elsewhere.resolve()
    # a folder with _toc.yml but no book/ is not a checkout of this book
    (tmp_path / "elsewhere" / "_toc.yml").write_text("root: x\n")
    assert plots.run_from_repo_root() == elsewhere.resolve()


def test_book_pages_reads_nested_toc_in_order(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n"
        "  - caption: A\n    chapters:\n      - file: book/01-a\n        sections:\n          - file: book/01-a-more\n"
        "      - file: book/02-b\n"
        "  - caption: B\n    chapters:\n      - file: book/results\n"
    )
    assert plots.book_pages(tmp_path) == [
        "book/intro",
        "book/01-a",
        "book/01-a-more",
        "book/02-b",
        "book/results",
    ]


def test_book_pages_of_this_book_exist():
    root = Path(__file__).resolve().parents[1]
    pages = plots.book_pages(root)
    assert pages[0] == "book/intro"
    assert all((root / f"{p}.md").is_file() or (root / f"{p}.ipynb").is_file() for p in pages)


# --------------------------------------------------------------------------------------------------
# Static figures of the published dataset (chapter 01)
# --------------------------------------------------------------------------------------------------
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["id", "sensor", "region", "lon", "lat"])


def test_static_patch_map_draws_one_marker_per_location():
    nan = float("nan")
    frame = _frame(
        [
            ("italy_1", "s2", "italy", 11.1, 44.2),
            ("italy_1", "s1asc", "italy", 11.1, 44.2),  # same location, another sensor: drawn once
            ("italy_2", "s2", "italy", 11.3, 44.1),
            ("nepal_1", "s2", "nepal", 85.3, 27.7),
            ("nepal_2", "s2", "nepal", nan, nan),  # no published position: counted, not drawn
        ]
    )
    fig = plots.static_patch_map(frame, "Test map")
    assert isinstance(fig, plots.StaticFigure)
    assert fig.png.startswith(PNG_MAGIC)
    assert fig.alt.startswith("Test map: 3 locations in 2 regions")
    assert "1 location without a position" in fig.alt
    assert "italy 2" in fig.alt


def test_static_patch_map_takes_the_position_of_another_sensor():
    nan = float("nan")
    frame = _frame([("a_1", "s2", "a", nan, nan), ("a_1", "s1asc", "a", 10.0, 20.0)])
    fig = plots.static_patch_map(frame, "one")
    assert "1 locations in 1 regions" in fig.alt and "without" not in fig.alt


def test_static_patch_map_rejects_bad_input():
    nan = float("nan")
    with pytest.raises(ValueError, match="lacks"):
        plots.static_patch_map(_frame([("a_1", "s2", "a", 1.0, 2.0)]).drop(columns="lat"), "t")
    with pytest.raises(ValueError, match="no location"):
        plots.static_patch_map(_frame([("a_1", "s2", "a", nan, nan)]), "t")
    with pytest.raises(ValueError, match="WGS84"):  # projected metres passed by mistake
        plots.static_patch_map(_frame([("a_1", "s2", "a", 500_000.0, 4_900_000.0)]), "t")


def test_static_patch_map_of_the_published_metadata():
    from s12ls_utils import reference

    published = reference.patches()
    fig = plots.static_patch_map(published, "published")
    n_loc = published["id"].nunique()
    unlocated = int(published.groupby("id")["lon"].count().eq(0).sum())
    assert unlocated > 0
    assert f"{n_loc - unlocated:,} locations in {published['region'].nunique()} regions" in fig.alt
    assert f"{unlocated:,} locations without a position" in fig.alt


def test_static_pixel_histogram_describes_the_values():
    values = [50, 60, 100, 292, 300, 1000, 8911]
    fig = plots.static_pixel_histogram(values, "Pixels")
    assert isinstance(fig, plots.StaticFigure)
    assert fig.png.startswith(PNG_MAGIC)
    assert fig.alt.startswith("Pixels: 7 patches, 50 to 8,911 landslide pixels, median 292")
    # one value, or values that fill exactly one decade, still make a figure
    assert "1 patches" in plots.static_pixel_histogram([50], "one").alt
    assert "10 to 100" in plots.static_pixel_histogram([10, 100], "decade", bins_per_decade=1).alt


@pytest.mark.parametrize("bad", [[], [0, 5], [-3, 5], [float("nan"), 5], [float("inf")]])
def test_static_pixel_histogram_rejects_values_a_log_axis_cannot_show(bad):
    with pytest.raises(ValueError):
        plots.static_pixel_histogram(bad, "t")


def test_static_pixel_histogram_rejects_bad_bins():
    with pytest.raises(ValueError, match="bins_per_decade"):
        plots.static_pixel_histogram([1, 2], "t", bins_per_decade=0)
