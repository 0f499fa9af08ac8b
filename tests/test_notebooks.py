"""Notebook hygiene: what DESIGN.md §4 asks of every chapter, checked on the committed files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]-*.ipynb"))
ALLOWED_TAGS = {"parameters", "hide-input", "hide-output", "remove-cell", "raises-exception"}
SKELETON = [
    "## Overview",
    "## Prerequisites",
    "## Imports",
    "## Parameters",
    "## Summary",
    "### What's next?",
    "## Resources and references",
]


def _cells(nb_path: Path) -> list[dict]:
    return json.loads(nb_path.read_text())["cells"]


def _src(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_chapters():
    assert CHAPTERS, "no chapters found in book/"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_no_outputs_committed(nb):
    for cell in _cells(nb):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{nb.name}: a code cell has outputs committed"
            assert cell.get("execution_count") is None, f"{nb.name}: execution counts committed"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_one_parameters_cell_and_allowed_tags(nb):
    cells = _cells(nb)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name}: {len(tagged)} cells tagged 'parameters'"
    for c in cells:
        bad = set(c.get("metadata", {}).get("tags", [])) - ALLOWED_TAGS
        assert not bad, f"{nb.name}: tags not allowed: {bad}"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_skeleton_sections_in_order(nb):
    cells = _cells(nb)
    md = [_src(c) for c in cells if c["cell_type"] == "markdown"]
    assert md and re.match(r"^# \S", md[0]), f"{nb.name}: must start with a '# Title' cell"
    headings = [line.strip() for text in md for line in text.splitlines() if line.startswith("#")]
    positions = []
    for section in SKELETON:
        assert section in headings, f"{nb.name}: section {section!r} missing"
        positions.append(headings.index(section))
    assert positions == sorted(positions), f"{nb.name}: skeleton sections out of order"
    # the parameters cell sits in the Parameters section, right after Imports
    kinds = [
        ("h", line.strip())
        if c["cell_type"] == "markdown"
        else ("p" if "parameters" in c.get("metadata", {}).get("tags", []) else "c", "")
        for c in cells
        for line in (_src(c).splitlines()[:1] or [""])
    ]
    last_heading = None
    for kind, text in kinds:
        if kind == "h" and text.startswith("#"):
            last_heading = text
        if kind == "p":
            assert last_heading == "## Parameters", f"{nb.name}: parameters cell is not under '## Parameters'"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_holoviews_extension_inline_before_hvplot(nb):
    code = "\n".join(_src(c) for c in _cells(nb) if c["cell_type"] == "code")
    if "hvplot" in code or "geoviews" in code or "holoviews" in code:
        ext = code.find('hv.extension("bokeh", inline=True)')
        assert ext >= 0, f"{nb.name}: call hv.extension('bokeh', inline=True) (offline plots)"
        for lib in ("import hvplot", "import geoviews"):
            if lib in code:
                assert code.find(lib) > ext, f"{nb.name}: {lib} before hv.extension(...)"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_in_toc_and_small(nb):
    toc = (ROOT / "_toc.yml").read_text()
    assert f"book/{nb.stem}" in toc, f"{nb.name} is not listed in _toc.yml"
    assert len(_cells(nb)) <= 45, f"{nb.name}: over ~40 cells, split the chapter"


def test_toc_entries_exist():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc.get("parts", []) for ch in part.get("chapters", [])]
    for f in files:
        assert (ROOT / f"{f}.ipynb").exists() or (ROOT / f"{f}.md").exists(), f"_toc.yml names missing {f}"
