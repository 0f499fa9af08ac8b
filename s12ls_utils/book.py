"""The book's plumbing: what every chapter does around its analysis, and nothing the library needs.

- :func:`setup`: a chapter's set-up in one call (the repository root as working directory, the offline
  HoloViews extension without its logo, the matplotlib defaults);
- :func:`param`: a chapter parameter, whatever way it was passed (papermill text, YAML, Python);
- :func:`outputs` and :func:`record`: where a chapter records and runs, and its results record.
  ``record(chapter, **figures)`` glues each figure for the text (myst-nb ``glue``) and writes them to
  ``<results_dir>/<chapter>.json``. Where that is, and where chapter 05 writes its runs, is decided once per
  chapter by :func:`outputs`: the book's own execution (``make book``) records under the executed book
  (``_build/executed/results/`` and ``runs/``), which is what the tests and chapter 06 read; a rerun
  (papermill with parameters, JupyterLab) records under ``results/reruns/<time>/`` and names its runs with
  the same time, so no rerun overwrites the book's record or an earlier rerun;
- :func:`chapter_run_name` and :func:`chapter05_run`: which training run a chapter writes and finds;
- :func:`static`: the static (PNG) rendering of an interactive figure, drawn from the same HoloViews object
  with the matplotlib backend, so that the book reads completely without JavaScript;
- :func:`book_pages`: the pages of ``_toc.yml``, in order.

This module may import the library; no library module imports it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .evaluate import Share, plain, share
from .figures import STATIC_WIDTH_IN, StaticFigure

__all__ = [
    "BOOK_DIR",
    "BOOK_ENV",
    "DEVICES",
    "RESULTS_DIR",
    "Outputs",
    "Share",
    "book_dir",
    "book_pages",
    "captioned",
    "chapter05_run",
    "chapter_run_name",
    "flat",
    "for_matplotlib",
    "outputs",
    "param",
    "record",
    "recorder",
    "rerun_stamp",
    "run_from_repo_root",
    "setup",
    "share",
    "static",
]

RESULTS_DIR = Path("results")


#: Set (by ``.ci/execute_chapters.py``) to the executed book's folder while the book's own chapters run.
BOOK_ENV = "S12LS_BOOK"


#: Where ``make book`` executes the chapters; its ``results/`` and ``runs/`` are the book's record.
BOOK_DIR = Path("_build") / "executed"


def book_pages(root: str | Path = ".") -> list[str]:
    """Every page named in ``<root>/_toc.yml`` (the root page first, then parts, chapters and sections in
    order), without suffix: the one reading of the table of contents that the build script and the tests
    share."""
    import yaml

    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in toc.items() if k != "root"})
    return pages


def run_from_repo_root(start: str | Path | None = None, max_up: int = 3) -> Path:
    """Make the book's repository root the working directory, so that chapter paths mean one thing.

    A chapter's relative paths (``data/sample``, ``results/``, ``runs/``) are relative to the repository
    root, which is where papermill and CI run them. JupyterLab, Binder and a direct ``jupyter-book build``
    start the kernel in ``book/`` instead. Called at the top of every chapter: walks up from ``start``
    (default: the working directory) at most ``max_up`` levels to the first folder holding both
    ``_toc.yml`` and ``book/`` and changes into it. Outside such a checkout (a chapter copied elsewhere)
    nothing changes. Returns the working directory afterwards.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in [here, *here.parents][: max_up + 1]:
        if (folder / "_toc.yml").is_file() and (folder / "book").is_dir():
            if folder != Path.cwd().resolve():
                os.chdir(folder)
            return folder
    return Path.cwd()


_PARAM_KINDS = ("list", "dict", "choice", "int", "float", "bool")


#: Values of a chapter's ``device`` parameter (``training.select_device`` checks availability).
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps", *(f"cuda:{i}" for i in range(8)))


_MISSING = object()


def _parse_text(name: str, text: str, kind: str):
    """A JSON (or YAML flow) value written as text, as papermill's ``-p`` passes it."""
    import yaml

    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"parameter {name!r}: cannot read {text!r} as a {kind} ({err})") from None


def _allowed(choices) -> str:
    return ", ".join(repr(c) for c in choices)


def param(name: str, value, kind: str, *, choices=None, default=_MISSING):
    """Normalise one chapter parameter, whatever way it was passed, or raise a ``ValueError`` naming it.

    papermill's ``-p name value`` passes text (only ``True``/``False``/``None`` and numbers are converted),
    ``-y``/``-f`` pass YAML values and a reader edits the cell with Python values. Each chapter calls this
    right after its Parameters cell, before any work, so that all of these mean the same:

    - ``kind="list"``: a list or tuple, a JSON/YAML list as text (``'["s1asc", "s2"]'``, ``'[s1asc, s2]'``),
      or comma-separated text (``"s1asc,s2"``, or one item ``"s2"``); returns a ``list`` (duplicates
      dropped, order kept). With ``choices`` every item must be one of them (text matches a choice by its
      text: ``"2"`` is the choice ``2``) and the list is not empty.
    - ``kind="dict"``: a mapping or JSON/YAML text (``'{"widths": [8, 16]}'``, ``'widths: [8, 16]'``);
      returns a ``dict``.
    - ``kind="choice"``: one of ``choices`` (compared as text when the choices are text:
      ``-p device cpu``).
    - ``kind="int"``, ``"float"``, ``"bool"``: a number / truth value or its text (``"true"``, ``"no"``…);
      with ``choices`` a few named values (``"auto"``) are accepted too.

    ``default``: returned for ``None`` (and an empty text); without it ``None`` is an error. Pass
    ``default=None`` to allow ``None`` through.
    """
    if kind not in _PARAM_KINDS:
        raise ValueError(f"param kind {kind!r}: expected one of {', '.join(_PARAM_KINDS)}")
    choices = None if choices is None else list(choices)
    allowed = f"; allowed: {_allowed(choices)}" if choices else ""
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is _MISSING:
            raise ValueError(f"parameter {name!r} is required (got {value!r}){allowed}")
        return default() if callable(default) else default

    def fail(what: str):
        raise ValueError(f"parameter {name!r}: {what}{allowed}")

    if kind == "list":
        items = value
        if isinstance(value, str):
            text = value.strip()
            items = _parse_text(name, text, kind) if text[:1] in "[({" else text
            if isinstance(items, str):
                items = [s.strip() for s in items.split(",") if s.strip()]
        if isinstance(items, Mapping) or not isinstance(items, list | tuple):
            fail(f"expected a list (e.g. '[\"a\", \"b\"]' or 'a,b'), got {value!r}")
        out = []
        by_text = {str(c): c for c in choices or ()}  # "2" from text means the choice 2
        for item in items:
            item = item.strip() if isinstance(item, str) else item
            if choices is not None and item not in choices and isinstance(item, str):
                item = by_text.get(item, item)
            if choices is not None and (item not in choices or isinstance(item, bool)):
                fail(f"unknown value {item!r} in {value!r}")
            if item not in out:
                out.append(item)
        if choices is not None and not out:
            fail("the list is empty")
        return out
    if kind == "dict":
        out = _parse_text(name, value, kind) if isinstance(value, str) else value
        if not isinstance(out, Mapping):
            fail(f"expected a dict (e.g. '{{\"key\": 1}}' or 'key: 1'), got {value!r}")
        return dict(out)
    if kind == "choice":
        if not choices:
            raise ValueError(f"parameter {name!r}: kind 'choice' needs choices")
        if value in choices:
            return value
        if isinstance(value, str) and value.strip() in choices:
            return value.strip()
        fail(f"got {value!r}")
    # numbers and truth values, with optional named alternatives (``"auto"``)
    if choices and value in choices:
        return value
    if isinstance(value, str):
        text = value.strip()
        if choices and text in choices:
            return text
        if kind == "bool":
            low = text.lower()
            if low in ("true", "yes", "1", "on"):
                return True
            if low in ("false", "no", "0", "off"):
                return False
            fail(f"expected true or false, got {value!r}")
        try:
            value = int(text) if kind == "int" else float(text)
        except ValueError:
            fail(f"expected {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
        return value
    if kind == "bool":
        if isinstance(value, bool | np.bool_) or value in (0, 1):
            return bool(value)
        fail(f"expected true or false, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        fail(f"expected {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
    if kind == "int":
        if float(value) != int(value):
            fail(f"expected an integer, got {value!r}")
        return int(value)
    return float(value)


@dataclass(frozen=True)
class Outputs:
    """Where a chapter writes: its results record, its training runs, and the suffix of its run names."""

    results_dir: Path
    runs_dir: Path
    book: bool  #: True while the book's own execution runs the chapter
    stamp: str | None  #: a rerun's time (``20261203T071502``), None for the book's execution

    def run_name(self, name: str) -> str:
        """``name`` for the book's execution, ``name-<stamp>`` for a rerun (never the book's run)."""
        return name if self.stamp is None else f"{name}-{self.stamp}"


def book_dir() -> Path:
    """The executed book whose ``results/`` and ``runs/`` are the book's record: ``$S12LS_BOOK`` while the
    book executes, else ``_build/executed`` (``make book``'s folder)."""
    return Path(os.environ.get(BOOK_ENV) or BOOK_DIR)


_STAMP: list[str] = []


def rerun_stamp() -> str:
    """One UTC time per process (a kernel runs one chapter), used to name a rerun's record and runs."""
    if not _STAMP:
        from datetime import UTC, datetime

        _STAMP.append(datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    return _STAMP[0]


def outputs(results_dir: str | Path | None = None, runs_dir: str | Path | None = None) -> Outputs:
    """Resolve a chapter's ``results_dir`` and ``runs_dir`` parameters (``None``: the default below).

    - The book's own execution (``$S12LS_BOOK`` set, as ``.ci/execute_chapters.py`` does): the book's
      record, ``<book>/results`` and ``<book>/runs``; run names as the chapter makes them.
    - Any other run (papermill with or without parameters, JupyterLab, Binder): ``results/reruns/<time>``
      and ``runs``, with ``-<time>`` appended to default run names, so that a rerun never replaces the
      book's record and two reruns never replace each other. The folder is printed.

    A value passed explicitly is used as given in both cases.
    """
    book = bool(os.environ.get(BOOK_ENV))
    stamp = None if book else rerun_stamp()
    if results_dir is None:
        results_dir = book_dir() / "results" if book else RESULTS_DIR / "reruns" / stamp
        if not book:
            print(f"this rerun records its results in {results_dir}/ (the book's record stays as it is)")
    if runs_dir is None:
        runs_dir = book_dir() / "runs" if book else Path("runs")
    return Outputs(Path(results_dir), Path(runs_dir), book, stamp)


def record(chapter: str, results_dir: str | Path = RESULTS_DIR, glue: bool = True, **figures) -> None:
    """Record a chapter's key figures: glue each one (when run in a kernel) and merge them into
    ``<results_dir>/<chapter>.json`` (see :func:`outputs` for which folder a chapter uses).

    Returns nothing, so that a cell ending in ``record(...)`` shows no output.
    """
    path = Path(results_dir) / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update({k: plain(v) for k, v in figures.items()})
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)
    if glue:
        try:
            from IPython import get_ipython
            from myst_nb import glue as _glue
        except ImportError:  # pragma: no cover - the book stack is not installed
            return None
        if get_ipython() is not None:
            for k, v in figures.items():
                _glue(k, _display_value(v), display=False)
    return None


def recorder(chapter: str, results_dir: str | Path | None = None):
    """The chapter's :func:`record`, bound to its name and to the folder :func:`outputs` resolves from the
    ``results_dir`` parameter: ``rec = book.recorder(CHAPTER, results_dir)``, then ``rec(**facts)`` records
    (and glues) a dict of figures that a library function returned, or ``rec(name=table)`` a whole table."""
    return functools.partial(record, chapter, outputs(results_dir).results_dir)


def flat(table, prefix: str = "", suffix: str = "") -> dict:
    """The cells of a Series or DataFrame as figures for :func:`record`, each named ``<prefix><labels><suffix>``
    with its row labels (every index level) and, for a DataFrame, its column, joined by ``_``:
    ``rec(**flat(totals, "real_"))`` records ``real_ld_s2`` … from a Series indexed by (task, scope). Rename the
    labels first where they are not names (``.rename({"S12LS-LD": "ld"})``)."""
    cells = table.stack(future_stack=True) if hasattr(table, "columns") else table
    return {
        f"{prefix}{'_'.join(map(str, k if isinstance(k, tuple) else (k,)))}{suffix}": v
        for k, v in cells.items()
    }


def captioned(table, caption: str, precision: int = 3):
    """``table`` (a DataFrame) as a chapter shows it: ``caption`` above it (what it holds and on which data),
    numbers at ``precision`` decimals, missing values left blank. Returns a pandas ``Styler``."""
    return table.style.format(precision=precision, na_rep="").set_caption(caption)


def _display_value(v):
    if isinstance(v, Share):
        return v.percent_text()
    if isinstance(v, float | np.floating):
        v = float(v)
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    return v


# --------------------------------------------------------------------------------------------------
# Chapter set-up
# --------------------------------------------------------------------------------------------------
def setup() -> None:
    """A chapter's set-up in one call: the repository root becomes the working folder
    (:func:`run_from_repo_root`), so that a chapter's paths mean one thing in papermill, JupyterLab and Binder.

    Loads the HoloViews extension for Bokeh with its JavaScript inline (the book is read offline) and
    without the HoloViews logo that would otherwise follow every set-up cell, registers ``.hvplot`` on
    DataFrames, and sets the matplotlib
    defaults of the static figures (white background, the book's column width)."""
    import holoviews as hv
    import matplotlib as mpl

    run_from_repo_root()
    hv.extension("bokeh", inline=True, logo=False)
    from IPython.utils.capture import capture_output

    with capture_output():  # hvplot loads the extension a second time, from the web: not shown
        import hvplot.pandas  # noqa: F401  (registers .hvplot on DataFrames)

    mpl.rcParams.update({"figure.facecolor": "white", "figure.figsize": (STATIC_WIDTH_IN, 4.0)})


# --------------------------------------------------------------------------------------------------
# Training runs of the chapters
# --------------------------------------------------------------------------------------------------
def chapter_run_name(chapter: str, task_path: str | Path, model: str, sensors: Sequence[str]) -> str:
    """The run name a chapter gives a training run: ``<chapter>-<task label>-<model>-<sensors joined by +>``
    (``ch05-S12LS-LD-unet_prepost-s2``); chapter 06 finds chapter 05's run by it."""
    from .tasks import task_label

    return f"{chapter}-{task_label(task_path)}-{model}-{'+'.join(sensors)}"


def chapter05_run(
    task_path: str | Path, sensor: str, runs_dir: str | Path = "runs", data_dir: str | Path | None = None
) -> Path | None:
    """The run chapter 05 trains with its default model on the task folder ``task_path`` and ``sensor`` (run
    name ``ch05-<task label>-unet_prepost-<sensor>`` under ``runs_dir``), when it exists, has its ``best.pt``
    and was trained on this task folder (and its data folder, where the run names one: ``data_dir``, else
    the task's own) and on ``sensor`` alone (its ``run.json``); else None. Relative paths are taken from the
    current folder.

    Chapter 06 evaluates this run by default (:func:`s12ls_utils.evaluate.run_for`): the book's own run,
    found by name and checked, not whatever run a parameterised rerun recorded last."""
    run = Path(runs_dir) / chapter_run_name("ch05", task_path, "unet_prepost", [sensor])
    try:
        cfg = json.loads((run / "run.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return None
    if not (run / "best.pt").is_file() or list(cfg.get("sensors") or []) != [sensor]:
        return None
    if not cfg.get("task_dir") or Path(cfg["task_dir"]).resolve() != Path(task_path).resolve():
        return None
    if cfg.get("data_dir"):  # trained with an explicit data folder: it must be this task's
        if data_dir is None:
            from .splits import load_task

            data_dir = load_task(task_path).data_dir
        if Path(cfg["data_dir"]).resolve() != Path(data_dir).resolve():
            return None
    return run


# --------------------------------------------------------------------------------------------------
# Static renderings of the interactive figures
# --------------------------------------------------------------------------------------------------
#: Bokeh plot options that mean the same for matplotlib, and Bokeh style options with their matplotlib name.
_PLOT_OPTIONS = (
    "title", "xlabel", "ylabel", "clabel", "xlim", "ylim", "clim", "logx", "logy", "logz", "invert_xaxis",
    "invert_yaxis", "invert_axes", "xrotation", "yrotation", "legend_position", "show_legend", "show_grid",
    "colorbar", "xticks", "yticks", "stacked", "multi_level", "xformatter", "yformatter", "cformatter",
)  # fmt: skip
_STYLE_OPTIONS = {
    "color": "color", "line_width": "linewidth", "alpha": "alpha", "line_dash": "linestyle", "cmap": "cmap",
    "fill_color": "facecolor", "line_color": "edgecolor", "marker": "marker", "fill_alpha": "alpha",
}  # fmt: skip
_DASHES = {"dashed": "--", "dotted": ":", "dashdot": "-.", "solid": "-"}
_MARKERS = {"circle": "o", "square": "s", "triangle": "^", "diamond": "D", "cross": "+", "x": "x"}


def _matplotlib_options(element):
    """``element`` with its Bokeh titles, labels, limits, legend and colours set for matplotlib too."""
    import holoviews as hv

    plot = hv.Store.lookup_options("bokeh", element, "plot").kwargs
    style = hv.Store.lookup_options("bokeh", element, "style").kwargs
    kw = {k: v for k, v in plot.items() if k in _PLOT_OPTIONS}
    for k, v in style.items():
        if k in _STYLE_OPTIONS and not isinstance(v, hv.dim):
            names = {"line_dash": _DASHES, "marker": _MARKERS}.get(k, {})
            kw[_STYLE_OPTIONS[k]] = names.get(v, v) if isinstance(v, str) else v
    by = kw.get("color")
    if isinstance(by, str) and by in {d.name for d in element.dimensions()}:  # coloured by a dimension
        cmap = kw.pop("cmap", None)
        kw["color"] = hv.dim(by).categorize(cmap) if isinstance(cmap, Mapping) else hv.dim(by)
        if cmap is not None and not isinstance(cmap, Mapping):
            kw["cmap"] = cmap
    if plot.get("width") and plot.get("height"):  # the Bokeh figure's proportions
        kw["aspect"] = plot["width"] / plot["height"]
    tree = hv.Store.options(backend="matplotlib")[type(element).__name__]
    allowed = set(tree["plot"].allowed_keywords) | set(tree["style"].allowed_keywords)
    if "color" in kw and "ecolor" in allowed and isinstance(element, hv.ErrorBars):  # in the series' colour
        kw["ecolor"] = kw["edgecolor"] = kw["color"]
    kw = {k: v for k, v in kw.items() if k in allowed}
    return element.opts(backend="matplotlib", clone=True, **kw) if kw else element


def for_matplotlib(obj):
    """``obj`` (a HoloViews element, overlay or layout) with the Bokeh options that matplotlib understands
    (titles, axis labels, limits, legends, colours, proportions) set for matplotlib too."""
    import holoviews as hv
    from holoviews.plotting import mpl  # noqa: F401  (registers the matplotlib backend and its options)

    return obj.map(_matplotlib_options, lambda x: isinstance(x, hv.Element | hv.Overlay))


def static(obj, alt: str, height_in: float = 3.6) -> StaticFigure:
    """The static (PNG) rendering of an interactive HoloViews figure, drawn from the same object.

    ``obj`` (an element, overlay or layout, as a :mod:`s12ls_utils.figures` function returns it) is rendered
    with the matplotlib backend after its titles, axis labels, limits, legends and colours are carried over
    from the Bokeh options; the figure is the book's column wide and ``height_in`` inches high per row of
    panels. ``alt`` describes the figure (its text form and the image's alt text); it may not be empty."""
    import holoviews as hv

    if not alt.strip():
        raise ValueError("a static figure needs a description (alt text)")
    if isinstance(obj, hv.HoloMap | hv.DynamicMap):
        raise TypeError(f"static() draws one figure, not a {type(obj).__name__} of several")
    obj = for_matplotlib(obj)
    rows = 1
    if isinstance(obj, hv.Layout):
        cols = obj._max_cols or len(obj)  # noqa: SLF001  (the column count .cols(n) set)
        rows = -(-len(obj) // cols)
        obj = obj.opts(sublabel_format="", backend="matplotlib")
    fig = hv.render(obj, backend="matplotlib")
    fig.set_size_inches(STATIC_WIDTH_IN, height_in * rows)
    return StaticFigure(fig, alt, tight=True)
