"""Notebook hygiene: what DESIGN.md §4 asks of every chapter, checked on the committed files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import cell_source, glue_refs, load_script, notebook_cells

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]-*.ipynb"))
ALLOWED_TAGS = {"parameters", "hide-input", "hide-output", "remove-input", "remove-cell", "raises-exception"}
RESULTS_PAGE = ROOT / "book" / "results.md"
# every executed page (chapters and appendices) and every text page of the book
BOOK_NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
BOOK_PAGES = sorted((ROOT / "book").glob("*.md"))
# a role pasting a figure from another document: {glue}`doc.ipynb::key` or {glue:text}`doc.ipynb::key:fmt`
CROSS_GLUE = re.compile(r"\{glue(:text)?\}`([^`]+\.ipynb)::([^`]+)`")
SKELETON = [
    "## Overview",
    "## Prerequisites",
    "## Imports",
    "## Parameters",
    "## Summary",
    "### What's next?",
    "## Resources and references",
]


def test_there_are_chapters():
    assert CHAPTERS, "no chapters found in book/"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_no_outputs_committed(nb):
    for cell in notebook_cells(nb):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{nb.name}: a code cell has outputs committed"
            assert cell.get("execution_count") is None, f"{nb.name}: execution counts committed"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_no_execution_metadata_committed(nb):
    """What a run leaves besides outputs: papermill's records, JupyterLab's cell timings, widget state."""
    meta = json.loads(nb.read_text())["metadata"]
    assert not {"papermill", "widgets"} & set(meta), f"{nb.name}: run metadata committed: {set(meta)}"
    for cell in notebook_cells(nb):
        left = {"execution", "papermill"} & set(cell.get("metadata", {}))
        assert not left, f"{nb.name}: cell {cell.get('id')} carries run metadata {left}"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_kernel_is_python3(nb):
    """papermill, `make lab` and Binder all start the kernel named in the notebook: `python3`."""
    spec = json.loads(nb.read_text())["metadata"].get("kernelspec", {})
    assert spec.get("name") == "python3", f"{nb.name}: kernelspec {spec.get('name')!r}, expected 'python3'"


def test_ruff_lints_the_chapters():
    """`make lint` runs `ruff check .`: the chapters must be among the files it sees, and pass."""
    ruff = [sys.executable, "-m", "ruff"]
    seen = subprocess.run([*ruff, "check", ".", "--show-files"], cwd=ROOT, capture_output=True, text=True)
    assert seen.returncode == 0, seen.stderr
    listed = {Path(line.strip()).resolve() for line in seen.stdout.splitlines() if line.strip()}
    missing = [nb.name for nb in CHAPTERS if nb.resolve() not in listed]
    assert not missing, f"`ruff check .` skips {missing} (pyproject: extend-include *.ipynb)"
    run = subprocess.run(
        [*ruff, "check", "--no-cache", *map(str, CHAPTERS)], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_one_parameters_cell_and_allowed_tags(nb):
    cells = notebook_cells(nb)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name}: {len(tagged)} cells tagged 'parameters'"
    for c in cells:
        bad = set(c.get("metadata", {}).get("tags", [])) - ALLOWED_TAGS
        assert not bad, f"{nb.name}: tags not allowed: {bad}"


# parameters that are choices, whatever their default (papermill -p passes them as text)
CHOICE_PARAMETERS = {"sensor", "sensors", "model", "model_kwargs", "device"}


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_list_dict_choice_parameters_are_normalised(nb):
    """Every list, dict or choice parameter goes through ``book.param`` in the cell after Parameters.

    papermill's ``-p sensors '["s1asc"]'`` passes a string; the normalisation makes it a list (or a clear
    ``ValueError`` naming the parameter) before any work starts.
    """
    import ast

    cells = notebook_cells(nb)
    i = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    wanted = []
    for node in ast.parse(cell_source(cells[i])).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if isinstance(node.value, ast.List | ast.Dict | ast.Tuple) or name in CHOICE_PARAMETERS:
                wanted.append(name)
    after = cell_source(cells[i + 1]) if i + 1 < len(cells) and cells[i + 1]["cell_type"] == "code" else ""
    normalised = {
        node.args[0].value
        for node in ast.walk(ast.parse(after))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "param"
        and len(node.args) >= 2
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[1], ast.Name)
        and node.args[1].id == node.args[0].value
    }
    missing = [n for n in wanted if n not in normalised]
    assert not missing, f"{nb.name}: normalise {missing} with book.param right after the Parameters cell"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_skeleton_sections_in_order(nb):
    cells = notebook_cells(nb)
    md = [cell_source(c) for c in cells if c["cell_type"] == "markdown"]
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
        for line in (cell_source(c).splitlines()[:1] or [""])
    ]
    last_heading = None
    for kind, text in kinds:
        if kind == "h" and text.startswith("#"):
            last_heading = text
        if kind == "p":
            assert last_heading == "## Parameters", f"{nb.name}: parameters cell is not under '## Parameters'"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_setup_is_one_call_in_the_first_code_cell(nb):
    """The first code cell is the imports and ``book.setup()`` (working folder, offline HoloViews extension
    without its logo; ``hvplot=True`` where the chapter plots with ``.hvplot``): no chapter loads the extension or
    hvplot itself, before or after, and only a chapter that uses ``.hvplot`` pays for its import."""
    code = [cell_source(c) for c in notebook_cells(nb) if c["cell_type"] == "code"]
    import ast

    setup = [
        ast.unparse(n) for n in ast.parse(code[0]).body if not isinstance(n, ast.Import | ast.ImportFrom)
    ]
    uses_hvplot = any(".hvplot." in src for src in code)
    want = "book.setup(hvplot=True)" if uses_hvplot else "book.setup()"
    assert setup == [want], f"{nb.name}: the first code cell holds {setup}"
    for src in code:
        assert "hv.extension(" not in src and "import hvplot" not in src, (
            f"{nb.name}: leave that to book.setup()"
        )


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_in_toc_and_small(nb):
    toc = (ROOT / "_toc.yml").read_text()
    assert f"book/{nb.stem}" in toc, f"{nb.name} is not listed in _toc.yml"
    # record-keeping cells (book.record alone, input collapsed) do not count: they are bookkeeping
    analysis = [c for c in notebook_cells(nb) if not _record_only(c)]
    assert len(analysis) <= 45, f"{nb.name}: over ~40 cells, split the chapter"


def test_toc_entries_exist():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc.get("parts", []) for ch in part.get("chapters", [])]
    for f in files:
        assert (ROOT / f"{f}.ipynb").exists() or (ROOT / f"{f}.md").exists(), f"_toc.yml names missing {f}"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_key_figure_has_a_static_rendering(nb):
    """The key figure is also drawn as an image (``book.static(figure)``, or a ``book.static_*`` figure), as a
    captioned figure with alt text and the class tests/test_rendered_book.py looks for: the reading is complete
    without JavaScript."""
    static = [
        c
        for c in notebook_cells(nb)
        if c["cell_type"] == "code" and re.search(r"book\.static(\(|_)", cell_source(c))
    ]
    assert static, f"{nb.name}: no static rendering of the key figure (book.static, book.static_*)"
    for c in static:
        opts = c.get("metadata", {}).get("mystnb", {})
        assert "s12ls-static" in opts.get("image", {}).get("classes", ""), (
            f"{nb.name}: {c['id']} lacks the class"
        )
        assert opts["image"].get("alt") and opts.get("figure", {}).get("caption"), f"{nb.name}: alt/caption"


def _is_record_call(node) -> bool:
    import ast

    call = node.value if isinstance(node, ast.Expr) else None
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "record"
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "book"
    )


def _record_only(cell: dict) -> bool:
    import ast

    if cell["cell_type"] != "code" or "book.record(" not in cell_source(cell):
        return False
    return all(_is_record_call(n) for n in ast.parse(cell_source(cell)).body)


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_record_keeping_sits_in_collapsed_cells(nb):
    """A chapter reads as analysis: every ``book.record(...)`` is in a cell of its own (nothing else in it)
    whose input is collapsed (``hide-input``), or in the removed set-up cell after the Parameters."""
    import ast

    for c in notebook_cells(nb):
        tags = set(c.get("metadata", {}).get("tags", []))
        if c["cell_type"] != "code" or "book.record(" not in cell_source(c) or "remove-cell" in tags:
            continue
        body = ast.parse(cell_source(c)).body
        assert all(_is_record_call(n) for n in body), (
            f"{nb.name}: {c['id']} mixes record keeping and analysis"
        )
        assert "hide-input" in tags, f"{nb.name}: {c['id']} records figures with its input shown"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_static_twins_are_collapsed_below_the_interactive_figure(nb):
    """The static rendering of an interactive figure sits below it, collapsed (its output behind a named
    toggle, its code removed); a static figure that stands alone (no interactive twin) stays open."""
    cells = notebook_cells(nb)
    twins = 0
    for i, c in enumerate(cells):
        opts = c.get("metadata", {}).get("mystnb", {})
        caption = opts.get("figure", {}).get("caption", "")
        if c["cell_type"] != "code" or not caption.startswith("Static rendering of"):
            continue
        twins += 1
        tags = set(c["metadata"].get("tags", []))
        assert {"remove-input", "hide-output"} <= tags, f"{nb.name}: {c['id']} is not collapsed"
        assert "static" in opts.get("code_prompt_show", ""), f"{nb.name}: {c['id']}: name the toggle"
        before = [
            x
            for x in cells[:i]
            if x["cell_type"] == "code" and "hide-input" not in x["metadata"].get("tags", [])
        ]
        assert before and "figures." in cell_source(before[-1]), (
            f"{nb.name}: {c['id']} is not below its figure"
        )
    assert twins >= 1, f"{nb.name}: no static twin of an interactive figure"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_live_widgets_are_marked(nb):
    """A figure fed from the running kernel (streams, DynamicMap) is static in the book: the text says so."""
    code = "\n".join(cell_source(c) for c in notebook_cells(nb) if c["cell_type"] == "code")
    text = "\n".join(cell_source(c) for c in notebook_cells(nb) if c["cell_type"] == "markdown")
    if re.search(r"live_training_curves|hv\.DynamicMap|hv\.streams|\.servable\(", code):
        assert "Needs a running kernel" in text, f"{nb.name}: live widget not marked 'Needs a running kernel'"


def _cross_glue(text: str) -> list[tuple[str, str]]:
    """(notebook, key) of every cross-document glue role; `{glue:text}` must carry a format spec, or
    myst-nb takes the key for the spec (it splits ``doc::key:fmt`` at the last colon)."""
    refs = []
    for text_role, doc, rest in CROSS_GLUE.findall(text):
        key, sep, fmt = rest.partition(":")
        if text_role:
            assert sep and fmt, f"{{glue:text}}`{doc}::{rest}` needs a format, e.g. `{doc}::{key}:s`"
        refs.append((doc, key))
    return refs


def test_results_page_covers_every_chapter():
    text = RESULTS_PAGE.read_text()
    refs = _cross_glue(text)
    assert {doc for doc, _ in refs} == {nb.name for nb in CHAPTERS}, "results.md must glue from each chapter"
    for nb in CHAPTERS:
        assert f"{{doc}}`{nb.stem}`" in text, f"results.md does not link {nb.stem}"


def _pasted_from(nb: Path) -> dict[str, set[str]]:
    """``{page: keys}``: the figures of ``nb`` that other pages of the book (results page, appendices, other
    chapters) paste with ``{glue}`nb.ipynb::key``` roles."""
    pages = [p for p in sorted(BOOK_NOTEBOOKS + BOOK_PAGES) if p != nb]
    pasted = {}
    for page in pages:
        text = (
            page.read_text()
            if page.suffix == ".md"
            else "\n".join(cell_source(c) for c in notebook_cells(page) if c["cell_type"] == "markdown")
        )
        _cross_glue(text)  # a {glue:text} role across documents must carry a format
        keys = {key for doc, key in glue_refs(text) if doc == nb.name}
        if keys:
            pasted[page.relative_to(ROOT).as_posix()] = keys
    return pasted


@pytest.mark.chapter
@pytest.mark.parametrize("nb", BOOK_NOTEBOOKS, ids=lambda p: p.stem)
def test_each_chapter_ran_and_every_glue_it_cites_exists(nb, run_chapter):
    """The executed notebook (``S12LS_EXECUTED``, or executed here) holds no error output; its text pastes
    figures; every figure its text pastes, and every figure another page pastes from it
    (``{glue}`nb.ipynb::key```), it glued (a build would warn otherwise); and what it glues is in its record."""
    ch = run_chapter(nb.stem)
    assert ch.errors() == [], f"{nb.name} ran with errors"
    own = ch.referenced_glue()
    assert own, f"{nb.name}: the text glues no figures"
    glued = ch.glued()
    assert not own - glued, f"{nb.name}: its text pastes figures it never glued: {sorted(own - glued)}"
    for page, keys in _pasted_from(nb).items():
        assert not keys - glued, f"{page} pastes figures {nb.name} never glued: {sorted(keys - glued)}"
    assert own <= set(ch.results), f"{nb.name}: glued but not in its record: {sorted(own - set(ch.results))}"


def _execute_script():
    return load_script(ROOT / ".ci" / "execute_chapters.py")


def test_executed_copies_lose_widget_outputs_and_state(tmp_path):
    """A tqdm notebook bar in an executed chapter made the built page fetch the widget manager from a CDN
    (caught by the browser test on a fresh clone); the executed copies must drop such outputs."""
    import nbformat

    script = _execute_script()
    nb = nbformat.v4.new_notebook()
    bar = nbformat.v4.new_output(
        "display_data",
        data={script.WIDGET_MIME: {"model_id": "abc", "version_major": 2}, "text/plain": "catalog: 0%"},
    )
    text = nbformat.v4.new_output("stream", name="stdout", text="152 files\n")
    nb.cells = [nbformat.v4.new_code_cell("scan()", outputs=[bar, text]), nbformat.v4.new_markdown_cell("x")]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    path = tmp_path / "ch.ipynb"
    nbformat.write(nb, path)
    assert script.drop_widget_outputs(path) == 1
    back = nbformat.read(path, as_version=4)
    assert back.cells[0].outputs == [text]
    assert "widgets" not in back.metadata
    assert script.drop_widget_outputs(path) == 0  # idempotent


def test_executed_chapters_carry_no_widget_state():
    executed = ROOT / "_build" / "executed" / "book"
    if not executed.is_dir():
        pytest.skip("no executed chapters (make execute)")
    for path in sorted(executed.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        assert "widgets" not in nb["metadata"], path.name
        mimes = {k for c in nb["cells"] for o in c.get("outputs", []) for k in o.get("data", {})}
        assert _execute_script().WIDGET_MIME not in mimes, path.name


def test_pages_cite_nothing_outside_the_repository():
    """Readers of the book have the repository, not the team's design notes: no page or chapter refers to
    DESIGN sections."""
    pages = [*CHAPTERS, *sorted((ROOT / "book").glob("*.md"))]
    cited = [p.relative_to(ROOT).as_posix() for p in pages if re.search(r"DESIGN\s*§", p.read_text())]
    assert cited == []


# --------------------------------------------------------------------------------------------------
# Numbers in the text come from glue
# --------------------------------------------------------------------------------------------------
_STRIP = [
    re.compile(r"```.*?```", re.S),  # code blocks
    re.compile(r"\{[a-z:]+\}`[^`]*`"),  # roles: {glue:text}`…`, {doc}`…`
    re.compile(r"`[^`]*`"),  # inline code
    re.compile(r"\$[^$]*\$"),  # math
    re.compile(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+"),  # link targets
    re.compile(r"\d{4}-\d{2}-\d{2}"),  # dates
    re.compile(
        r"\b(?:B\d{1,2}A?|S12LS-\w+|EPSG:\d+|[A-Za-z]+\d+[A-Za-z\d]*)\b"
    ),  # band names, task/model names
    re.compile(r"^#+ .*$", re.M),  # headings (numbered sections)
]
_NUMBER = re.compile(r"(?<![\w.\-−])[-−]?\d[\d,]*(?:\.\d+)?")


def _typed_numbers(text: str) -> list[str]:
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    return [m.group(0) for m in _NUMBER.finditer(text)]


def _as_float(text: str) -> float | None:
    t = text.strip().replace("−", "-").replace(",", "").removesuffix(" %").removesuffix("%")
    try:
        return float(t)
    except ValueError:
        return None


#: Numbers that are constants of the data or the methods, not results: the 10 m pixel, 15 dates, 128-pixel
#: patches, 100 (percent), 1000 histogram bins.
_CONSTANTS = {10.0, 15.0, 100.0, 128.0, 1000.0}


def _checked(token: str, value: float) -> bool:
    """Decimals (scores, shares, ratios) always; integers from 100 up, except the constants (smaller integers
    mostly count what the text names: chapters, sections, percentiles, minutes to read)."""
    if "." in token:
        return True
    return abs(value) >= 100 and abs(value) not in _CONSTANTS


def _same(token: str, value: float, glued_text: str, glued_value: float) -> bool:
    """The typed token shows a glued figure: the same text, or both decimals of the same value."""
    text = glued_text.removesuffix(" %")
    return token == text or ("." in token and "." in text and value == glued_value)


def _published_values() -> set[float]:
    from s12ls_utils.reference import PUBLISHED_LD_BENCHMARK

    return {float(v) for row in PUBLISHED_LD_BENCHMARK for k, v in row.items() if k != "model"}


def test_typed_number_detector_finds_numbers_outside_roles():
    text = "F1 of 0.77 on {glue:text}`n_test` patches, `x = 3`, B04, 2023-03-21, 1,234 pixels and −0.5"
    assert _typed_numbers(text) == ["0.77", "1,234", "−0.5"]
    # what issue 16 found typed into chapter 06: ROC AUCs and a share, each also glued
    assert _same("0.956", 0.956, "0.956", 0.956) and _same("6.1", 6.1, "6.1 %", 6.1)
    assert not _same("1.0", 1.0, "1", 1.0) and not _same("0.5", 0.5, "50 %", 50.0)
    assert _checked("0.62", 0.62) and _checked("1,234", 1234.0) and not _checked("30", 30.0)


#: Glued wall-clock measurements (durations, read speeds and their ratios). A chapter 05 run once measured
#: read_speedup at 256, the U-Net's widest layer typed in its text.
TIMING = re.compile(r"seconds|_ms_per_|speedup")


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_no_number_is_typed_where_a_glue_exists(nb, run_chapter):
    """A number written into a chapter's text must come from glue: a typed digit that equals one of the
    chapter's glued figures (as shown, or as a number) fails. Dates, band names, code, links and the published
    benchmark values are allowed."""
    ch = run_chapter(nb.stem)
    shown = {}
    for name in ch.glued():
        if TIMING.search(name):
            continue  # a wall-clock figure differs at every run: one that equals a typed number is chance
        text = ch.glued_text(name)
        value = _as_float(text)
        if value is not None:
            shown[name] = (text, value)
    allowed = _published_values()
    hits = []
    for cell in ch.nb.cells:
        if cell.cell_type != "markdown" or "## Resources and references" in "".join(cell.source):
            continue  # the reference list cites volumes and pages
        for token in _typed_numbers("".join(cell.source)):
            value = _as_float(token)
            if value is None or value in allowed or not _checked(token, value):
                continue
            same = [n for n, (text, v) in shown.items() if _same(token, value, text, v)]
            if same:
                text = "".join(cell.source)
                at = text.find(token)
                hits.append(f"{token!r} (glued as {same[0]}) in …{text[max(0, at - 50) : at + 30]!r}…")
    assert not hits, f"{nb.name}: numbers typed where a glue exists: {hits}"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_shown_code_fits_the_page(nb):
    """Code the page shows stays within the chapters' line length (book/ruff.toml), so it does not clip in the
    content column; `make lint` checks the formatting itself (ruff format --check book)."""
    import tomllib

    width = tomllib.loads((ROOT / "book" / "ruff.toml").read_text())["line-length"]
    long = [
        line
        for c in notebook_cells(nb)
        if c["cell_type"] == "code" and "remove-cell" not in c.get("metadata", {}).get("tags", [])
        for line in cell_source(c).splitlines()
        if len(line) > width
    ]
    assert not long, f"{nb.name}: lines over {width} characters: {long}"


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux only")
def test_lanes_are_pinned_to_disjoint_shares_of_the_cpus():
    """Two lanes on two cores must not oversubscribe them: each lane's processes see only their share of the
    CPUs (torch threads and worker pools size themselves by the affinity)."""
    ex = _execute_script()
    cpus = os.sched_getaffinity(0)
    shares = ex.cpu_shares(2)
    if len(cpus) < 2:
        assert shares == []
        return
    assert len(shares) == 2 and not (shares[0] & shares[1]) and shares[0] | shares[1] == cpus
    assert ex.cpu_shares(1) == [] and ex.pinned(None) is None
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
        capture_output=True,
        text=True,
        preexec_fn=ex.pinned(shares[1]),
    )
    assert child.stdout.strip() == str(sorted(shares[1]))
