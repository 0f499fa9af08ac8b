"""Chapter 06 says what its numbers were computed on (issue 21): "synthetic sample" before the first number of
its overview, headline and summary; a data label in the title or caption of every figure and table it computes;
real-data commands that follow the book's recipe; the raw S12LS-AD folder for real AD work. Checked on the
committed notebook (no execution) and on the figure helpers the chapter calls."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s12ls_utils import book, figures

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "06-positive-class-evaluation.ipynb"
#: The chapter's figure helpers: each takes ``data`` and puts it in the title.
FIGURES = ("pr_curves_plot", "macro_gap_bars", "detection_rate_plot", "error_gallery")


def _cells() -> list[dict]:
    return json.loads(CHAPTER.read_text())["cells"]


def _src(cell: dict) -> str:
    return "".join(cell["source"])


def _markdown(predicate) -> str:
    found = [_src(c) for c in _cells() if c["cell_type"] == "markdown" and predicate(_src(c))]
    assert found, "no such markdown cell"
    return found[0]


def _section(text: str, heading: str) -> str:
    """``text`` from ``heading`` on (a cell may hold the title and the overview)."""
    return text[text.index(heading) :]


def _first_number(text: str) -> int:
    """Where the first number of a text is: a glued figure (``{glue…}`…```) or a digit that is not part of a
    word (``S12LS``), outside code. Code is blanked out, so positions stay those of the text."""
    blank = re.sub(r"```.*?```|`[^`]*`", lambda m: " " * len(m.group(0)), text, flags=re.S)
    # a glue role is blanked with its backticks: find it in the original, digits in the blanked text
    hits = [m.start() for m in re.finditer(r"\{glue", text)]
    hits += [m.start() for m in re.finditer(r"(?<![\w\-.])\d", blank)]
    return min(hits) if hits else len(text)


@pytest.mark.parametrize(
    "where",
    ["overview", "headline", "summary"],
)
def test_synthetic_sample_is_named_before_the_first_number(where):
    text = {
        "overview": lambda: _section(_markdown(lambda s: "## Overview" in s), "## Overview"),
        "headline": lambda: _markdown(lambda s: "{glue:text}`n_test` patches" in s and "model_f1" in s),
        "summary": lambda: _markdown(lambda s: s.startswith("## Summary")),
    }[where]()
    first = _first_number(text)
    assert first < len(text), f"{where}: no number found"
    assert "synthetic sample" in text[:first], (
        f"{where}: first number before 'synthetic sample': {text[:first]!r}"
    )


def test_first_number_detector():
    assert _first_number("On S12LS-LD `x = 3` the F1 is 0.7") == len("On S12LS-LD `x = 3` the F1 is ")
    assert _first_number("a {glue:text}`n` b 3") == 2


def test_every_figure_and_table_names_its_data():
    """Every figure helper is called with ``data=``, every table is shown through ``book.captioned`` with the
    data label in its caption (``{data}``), and nothing is shown as a bare ``.round(…)`` frame."""
    code = [_src(c) for c in _cells() if c["cell_type"] == "code"]
    calls = 0
    for src in code:
        for name in FIGURES:
            for m in re.finditer(rf"figures\.{name}\(", src):
                calls += 1
                depth, i = 1, m.end()
                while depth:  # the call's argument text
                    depth += {"(": 1, ")": -1}.get(src[i], 0)
                    i += 1
                assert "data=" in src[m.end() : i], f"figures.{name} called without data="
        assert not re.search(r"\.round\(\d\)\s*$", src.strip()), (
            f"a table shown without caption: {src[-80:]!r}"
        )
    assert calls == len(FIGURES)
    captions = [src for src in code if "book.captioned(" in src]
    assert len(captions) >= 8 and all("{data}" in src for src in captions)


def test_real_data_commands_follow_the_recipe():
    """Real-data commands evaluate with the recipe (S12LS-LD-blocked, region folds for transfer); the published
    recipe is named as a reproduction on the published, leaking split; AD work points at the raw folder."""
    text = "\n".join(_src(c) for c in _cells() if c["cell_type"] == "markdown")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = "".join(b for b in blocks if "papermill" in b or "s12ls" in b)
    # that each is the recipe's own command: tests/test_recipe.py
    assert "data/real/data_harmonized/tasks/S12LS-LD-blocked" in commands and "S12LS-LD-regions" in commands
    assert "S12LS-LD-strict" not in text and "tasks/S12LS-LD/harmonized" not in text
    published = _markdown(lambda s: "published-recipe.yaml" in s)
    assert "leaks" in published and "not a protocol" in published
    assert "data/real/tasks/S12LS-AD/raw" in text and "upstream issue 1" in text


@pytest.fixture
def curves() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": ["model"] * 3 + ["reference"] * 3,
            "recall": [0.0, 0.5, 1.0] * 2,
            "precision": [1.0, 0.8, 0.1, 1.0, 0.4, 0.1],
            "threshold": [0.9, 0.5, 0.1] * 2,
        }
    )


def _title(obj) -> str:
    import holoviews as hv

    return hv.Store.lookup_options("bokeh", obj, "plot").kwargs.get("title", "")


def test_figure_titles_name_the_data(curves):
    import holoviews as hv

    hv.extension("bokeh")
    label = "synthetic sample"
    assert _title(figures.pr_curves_plot(curves, 0.1, data=label)).endswith(f"({label})")
    assert "(" not in _title(figures.pr_curves_plot(curves, 0.1))
    scores = {
        m: {"f1": 0.5, "iou": 0.3, "macro_f1": 0.7, "macro_iou": 0.6, "accuracy": 0.9, "prevalence": 0.05}
        for m in ("model", "reference")
    }
    assert _title(figures.macro_gap_bars(scores, data=label)).endswith(f"({label})")
    det = pd.DataFrame(
        {
            "method": ["model"],
            "size_bin": ["1–9 px"],
            "landslides": [4],
            "found": [2],
            "detection_rate": [0.5],
        }
    )
    assert _title(figures.detection_rate_plot(det, 0.5, data=label)).endswith(f"({label})")
    item = {
        "id": "r_1",
        "pre": np.zeros((8, 8, 3)),
        "post": np.zeros((8, 8, 3)),
        "y": np.eye(8),
        "pred": np.eye(8),
    }
    assert _title(figures.error_gallery([item], data=label)).endswith(f"({label})")
    static = book.for_matplotlib(figures.pr_curves_plot(curves, 0.1, data=label))  # its static rendering
    assert hv.Store.lookup_options("matplotlib", static, "plot").kwargs["title"].endswith(f"({label})")


def test_captioned_table_keeps_its_caption_and_blanks_missing_values():
    table = pd.DataFrame({"f1": [0.123456, np.nan]}, index=["a", "b"])
    html = book.captioned(table, "Scores, synthetic sample").to_html()
    assert "<caption>Scores, synthetic sample</caption>" in html
    assert "0.123" in html and "0.123456" not in html and "nan" not in html.lower()
