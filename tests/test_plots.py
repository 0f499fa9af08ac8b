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
