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
  with the matplotlib backend, so that the book reads completely without JavaScript; and the static
  figures drawn with matplotlib directly (``static_*``: the patch map and filmstrip, the histograms, the
  realism report), where a HoloViews object does not render in matplotlib or none exists;
- :func:`class_balance_table`: the class-balance table as the chapters show it;
- :func:`book_pages`: the pages of ``_toc.yml``, in order.

This module may import the library; no library module imports it.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import schema
from .evaluate import Share, plain, share  # noqa: F401  (book.share: the chapters mark a fraction with it)
from .figures import (
    ALIGN_LABELS,
    ANNOTATED_COLORS,
    SHORT_SENSOR,
    SIGNATURE_GROUP_COLORS,
    SIGNATURE_GROUP_LABELS,
    SPLIT_COLORS,
    upset_table,
)
from .images import DB_RANGES, backscatter_db, true_color, true_color_limits

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
    schema.check_choice("param kind", kind, _PARAM_KINDS)
    choices = None if choices is None else list(choices)
    allowed = f"; allowed: {', '.join(map(repr, choices))}" if choices else ""
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


@functools.cache
def rerun_stamp() -> str:
    """One UTC time per process (a kernel runs one chapter), used to name a rerun's record and runs."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


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
    labels first where they are not names (``.rename({"S12LS-LD": "ld"})``). A dict of figures (what a library
    function returns) is named the same way: ``flat({"drift": 0.1}, "blk_ld_")`` gives ``blk_ld_drift``."""
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
def setup(hvplot: bool = False) -> None:
    """A chapter's set-up in one call: the repository root becomes the working folder
    (:func:`run_from_repo_root`), so that a chapter's paths mean one thing in papermill, JupyterLab and Binder.

    Loads the HoloViews extension for Bokeh with its JavaScript inline (the book is read offline) and
    without the HoloViews logo that would otherwise follow every set-up cell, and sets the matplotlib
    defaults of the static figures (white background, the book's column width). With ``hvplot``, also
    registers ``.hvplot`` on DataFrames: an import of 1.4 s per kernel, so only the chapters that plot with it
    ask for it."""
    import holoviews as hv
    import matplotlib as mpl

    run_from_repo_root()
    hv.extension("bokeh", inline=True, logo=False)
    if hvplot:
        from IPython.utils.capture import capture_output

        with capture_output():  # hvplot loads the extension a second time, from the web: not shown
            import hvplot.pandas  # noqa: F401

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


# --------------------------------------------------------------------------------------------------
# Static renderings of the key figures
# --------------------------------------------------------------------------------------------------
# Each chapter's key figure is also drawn with matplotlib, under the interactive one: the reading is
# complete in print, in a PDF, without JavaScript and without a kernel. Same data, same colours and
# labels as the HoloViews figure; the functions take what the interactive helper takes.
STATIC_DPI = 150
STATIC_WIDTH_IN = 7.6  # the book's content column is about 780 CSS px; 100 px per inch on screen


class StaticFigure:
    """A matplotlib figure rendered once to PNG.

    It displays as ``image/png`` whatever matplotlib backend the kernel runs (``MPLBACKEND=Agg`` in
    ``make book`` included) and is never shown twice, because no pyplot figure is kept open. The output
    metadata carries the display width (CSS px), so the high-resolution PNG is drawn at the column width;
    the plain-text form is the description ``alt``.
    """

    def __init__(self, fig, alt: str, dpi: int = STATIC_DPI, tight: bool = False):
        import io as _io

        if not alt.strip():
            raise ValueError("a static figure needs a description (alt text)")
        buf = _io.BytesIO()
        # tight: cropped to what is drawn (titles, labels and legends outside the axes included)
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white", bbox_inches="tight" if tight else None)
        self.png = buf.getvalue()
        self.alt = alt
        width, height = int.from_bytes(self.png[16:20], "big"), int.from_bytes(self.png[20:24], "big")
        self.width_px, self.height_px = round(width * 100 / dpi), round(height * 100 / dpi)

    def _repr_png_(self):
        return self.png, {"width": self.width_px}

    def __repr__(self) -> str:
        return f"[static figure, {self.width_px}×{self.height_px} px] {self.alt}"

    def save(self, path: str | Path) -> Path:
        """Write the PNG to ``path`` and return it."""
        path = Path(path)
        path.write_bytes(self.png)
        return path


def _figure(height_in: float, width_in: float = STATIC_WIDTH_IN, **kw):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained", **kw)


def static_patch_filmstrip(data_dir: str | Path, key: str, cols: int = 5) -> StaticFigure:
    """All dates of one location at once: the Sentinel-2 true-colour frames of :func:`patch_viewer`.

    Each frame is titled with its date and the days from the event; frames after the event have a red
    border, and the mapped landslides are outlined in red. Without Sentinel-2 at this location the frames
    are Sentinel-1 VV in dB (ascending, else descending) on the viewer's fixed window.
    """
    from matplotlib.lines import Line2D

    from .io import location_files, open_patch, patch_mask
    from .signatures import patch_alignment

    paths = location_files(data_dir, key, ("s2", "s1asc", "s1dsc"))
    if not paths:
        raise FileNotFoundError(f"no patch {key!r} under {data_dir}")
    sensor, path = next(iter(paths.items()))
    with open_patch(path, load=True) as ds:
        mask = patch_mask(ds)
        align = patch_alignment(ds)
        dates = [str(t)[:10] for t in ds.time.values]
        if sensor == "s2":
            limits = true_color_limits(ds)  # one stretch for every date: brightness compares over time
            frames = [true_color(ds, t, limits=limits) for t in range(len(dates))]
        else:
            frames = [backscatter_db(ds, "VV", t) for t in range(len(dates))]
    rows = math.ceil(len(frames) / cols)
    fig = _figure(rows * STATIC_WIDTH_IN / cols * 1.2 + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    for t, ax in enumerate(axes.flat):
        ax.set(xticks=[], yticks=[])
        if t >= len(frames):
            ax.set_axis_off()
            continue
        if sensor == "s2":
            ax.imshow(frames[t], interpolation="nearest")
        else:
            ax.imshow(frames[t], cmap="gray", vmin=DB_RANGES["VV"][0], vmax=DB_RANGES["VV"][1])
        ax.contour(mask, levels=[0.5], colors="red", linewidths=0.8)
        rel = align.rel_days[t]
        days = "" if np.isnan(rel) else f"\n{rel:+.0f} d".replace("-", "−")
        ax.set_title(dates[t] + days, fontsize=8)
        if align.phase[t] == "post":
            for spine in ax.spines.values():
                spine.set(edgecolor="red", linewidth=2)
    what = (
        "Sentinel-2 true colour (one stretch for all dates)" if sensor == "s2" else f"{sensor} VV (dB, −25…0)"
    )
    event = f"event {align.event_date}" if align.event_date else "no event date"
    fig.suptitle(f"{key}: {what} on every date\n({event}; days from the event under each date)", fontsize=9)
    fig.legend(
        handles=[
            Line2D([], [], color="red", lw=0.8, label="mapped landslide outline"),
            Line2D(
                [],
                [],
                color="red",
                lw=0,
                marker="s",
                mfc="none",
                mec="red",
                mew=2,
                ms=9,
                label="after the event",
            ),
        ],
        loc="outside lower center",
        ncols=2,
        fontsize=8,
        frameon=False,
    )
    return StaticFigure(
        fig, f"Patch {key}: {what} on all {len(frames)} dates, {event}, landslides outlined in red."
    )


def static_signatures(
    agg, signals=(("s2", "NDVI"), ("s1asc", "VH_dB"), ("s1dsc", "VH_dB")), region: str = "all"
) -> StaticFigure:
    """The first states of :func:`signature_plot` side by side: one panel per ``(sensor, feature)``.

    Per pixel group, the median across patches (line and markers) and the inter-quartile range (band)
    against days relative to the event, dashed line at day 0. Signals missing from ``agg`` are skipped.
    """
    from .signatures import FEATURE_LABELS

    d = agg[agg["region"].astype(str) == region]
    present = [
        (s, f) for s, f in signals if ((d["sensor"].astype(str) == s) & (d["feature"].astype(str) == f)).any()
    ]
    if not present:
        raise ValueError(f"none of {list(signals)} is in the table (region {region!r})")
    fig = _figure(3.0)
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    for ax, (sensor, feature) in zip(axes, present, strict=True):
        sub = d[(d["sensor"].astype(str) == sensor) & (d["feature"].astype(str) == feature)]
        ax.axvline(0, color="black", ls="--", lw=1)
        for g, color in SIGNATURE_GROUP_COLORS.items():
            dg = sub[sub["group"].astype(str) == g].sort_values("rel_day")
            x = dg["rel_day"].to_numpy(dtype="float64")
            ax.fill_between(
                x,
                dg["p25"].to_numpy(dtype="float64"),
                dg["p75"].to_numpy(dtype="float64"),
                color=color,
                alpha=0.2,
                lw=0,
            )
            ax.plot(
                x,
                dg["median"].to_numpy(dtype="float64"),
                color=color,
                lw=1.8,
                marker="o",
                ms=3,
                label=SIGNATURE_GROUP_LABELS[g],
            )
        ax.set_title(f"{SHORT_SENSOR[sensor]} {feature}", fontsize=9)
        ax.set_xlabel("days relative to event (d)", fontsize=8)
        ax.set_ylabel(FEATURE_LABELS.get(feature, feature), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    where = "all regions" if region == "all" else region
    fig.suptitle(f"Median and inter-quartile range across patches per pixel group ({where})", fontsize=10)
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8, frameon=False
    )
    names = ", ".join(f"{SHORT_SENSOR[s]} {f}" for s, f in present)
    return StaticFigure(
        fig, f"Temporal signatures ({names}) of landslide, ring and other pixels around the event."
    )


def static_availability(avail, title: str = "Locations per sensor combination") -> StaticFigure:
    """The UpSet figure of :func:`availability_upset`: stacked bars (annotated / not) over a dot matrix."""
    combos, full = upset_table(avail)
    totals = full.sum(axis=1).to_numpy()
    x = np.arange(len(combos))
    fig = _figure(4.2)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    base = np.zeros(len(combos))
    for status, color in ANNOTATED_COLORS.items():
        v = full[status].to_numpy(dtype="float64")
        top.bar(x, v, bottom=base, color=color, label=status, width=0.6)
        base += v
    for xi, tot in zip(x, totals, strict=True):
        top.annotate(
            str(int(tot)),
            (xi, tot),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    top.set_ylim(0, totals.max() * 1.15 + 1)
    top.set_ylabel("number of locations", fontsize=8)
    top.set_title(title, fontsize=10)
    top.legend(fontsize=8, frameon=False)
    top.tick_params(labelsize=7)
    for yi, s in enumerate(schema.SENSORS):
        has = np.array([s in c.split("+") for c in combos])
        bottom.scatter(x[has], np.full(has.sum(), yi), color="black", s=40, zorder=3)
        bottom.scatter(x[~has], np.full((~has).sum(), yi), color="#dddddd", s=40, zorder=3)
    bottom.set_yticks(range(len(schema.SENSORS)), [ALIGN_LABELS[s] for s in schema.SENSORS], fontsize=7)
    bottom.set_ylim(len(schema.SENSORS) - 0.4, -0.6)  # first sensor on top, as in the interactive figure
    bottom.set_xticks(x, combos, fontsize=7, rotation=20, ha="right")
    bottom.set_xlabel("sensor combination (filled dot: sensor present)", fontsize=8)
    return StaticFigure(
        fig, f"{title}: {', '.join(f'{c} {int(n)}' for c, n in zip(combos, totals, strict=True))}."
    )


def static_region_split_bars(frame, title: str, value: str = "patches") -> StaticFigure:
    """Patches (or landslide pixels) per region and split, as horizontal stacked bars with their shares.

    ``frame`` has ``region`` and ``split`` (and ``n_positive`` for ``value="landslide pixels"``), e.g.
    :func:`s12ls_utils.reference.split_frame`. Regions are sorted by size, largest on top; the number at
    the end of each bar is the region's total and its test share.
    """

    schema.check_choice("value", value, ("patches", "landslide pixels"))
    df = frame.assign(region=frame["region"].astype(str), split=frame["split"].astype(str))
    weight = df["n_positive"] if value == "landslide pixels" else 1
    table = (
        df.assign(w=weight)
        .pivot_table(index="region", columns="split", values="w", aggfunc="sum", fill_value=0)
        .reindex(columns=list(SPLIT_COLORS), fill_value=0)
    )
    table = table.loc[table.sum(axis=1).sort_values().index]
    if table.empty:
        raise ValueError("no patches to draw")
    fig = _figure(0.28 * len(table) + 1.3)
    ax = fig.subplots()
    left = np.zeros(len(table))
    for split, color in SPLIT_COLORS.items():
        ax.barh(table.index, table[split], left=left, color=color, label=split)
        left += table[split].to_numpy()
    for y, (total, test) in enumerate(zip(table.sum(axis=1), table["test"], strict=True)):
        ax.text(total, y, f" {total:,.0f} ({100 * test / total:.0f} % test)", va="center", fontsize=7)
    ax.set_xlim(0, left.max() * 1.25)
    ax.set_xlabel(f"{value} (count)", fontsize=8)
    ax.set_ylabel("region (inventory)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(title="split", fontsize=7, title_fontsize=7, loc="lower right", frameon=False)
    ax.set_title(title, fontsize=10)
    shares = table.sum() / table.to_numpy().sum() * 100
    alt = f"{title}: {len(table)} regions; " + ", ".join(f"{s} {shares[s]:.0f} %" for s in SPLIT_COLORS)
    return StaticFigure(fig, alt + f" of all {value}.")


def _lon_label(v: float, _pos=None) -> str:
    v = (v + 180) % 360 - 180 if abs(v) > 180 else v
    return "0°" if v == 0 else f"{abs(v):.0f}° {'E' if v > 0 else 'W'}"


def _lat_label(v: float, _pos=None) -> str:
    return "0°" if v == 0 else f"{abs(v):.0f}° {'N' if v > 0 else 'S'}"


def _spread_labels(ys: list[float], min_gap: float) -> list[float]:
    """Label heights moved apart (in order) so that neighbours are at least ``min_gap`` apart, centred on
    where they wanted to be."""
    out = list(ys)
    for _ in range(50):
        moved = False
        for i in range(1, len(out)):
            gap = out[i] - out[i - 1]
            if gap < min_gap:
                shift = (min_gap - gap) / 2
                out[i - 1] -= shift
                out[i] += shift
                moved = True
        if not moved:
            break
    return out


def static_patch_map(frame, title: str = "Patch locations (WGS84)") -> StaticFigure:
    """Every location of ``frame`` as one small marker at its longitude/latitude, coloured by region.

    ``frame`` has ``region``, ``lon`` and ``lat`` (degrees, WGS84), one row per patch, e.g.
    :func:`s12ls_utils.reference.patches` or a catalog. Rows of one location (column ``id`` or ``key``,
    shared across sensors) are drawn once, at the first position given. Locations without a position are
    counted in the legend title and the description, not drawn. No coastlines or tiles (drawn offline): a
    degree grid for orientation, the region names beside their points, and a legend with the number of
    locations per region.
    """
    import pandas as pd
    from matplotlib import colormaps
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    missing = {"region", "lon", "lat"} - set(frame.columns)
    if missing:
        raise ValueError(f"the frame lacks the column(s) {sorted(missing)}")
    df = pd.DataFrame(
        {
            "region": frame["region"].astype(str).to_numpy(),
            "lon": pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype="float64"),
            "lat": pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype="float64"),
        }
    )
    key = next((c for c in ("id", "key") if c in frame.columns), None)
    if key is not None:
        df["loc"] = frame[key].astype(str).to_numpy()
        df = df.groupby("loc", sort=False).agg(
            region=("region", "first"), lon=("lon", "first"), lat=("lat", "first")
        )
    located = df.dropna(subset=["lon", "lat"])
    n_unlocated = len(df) - len(located)
    if located.empty:
        raise ValueError("no location with a longitude and latitude to draw")
    if not (located["lon"].between(-180, 180).all() and located["lat"].between(-90, 90).all()):
        raise ValueError(
            "lon/lat must be WGS84 degrees (lon in −180…180, lat in −90…90), not projected metres"
        )
    sizes = located["region"].value_counts()
    regions = list(sizes.index)
    cmap = colormaps["tab20"]
    colors = {r: cmap(i % cmap.N) for i, r in enumerate(regions)}
    fig = _figure(4.1)
    ax = fig.subplots()
    for r in regions:
        sub = located[located["region"] == r]
        ax.scatter(
            sub["lon"], sub["lat"], s=6, color=colors[r], linewidths=0, alpha=0.8, label=f"{r} ({sizes[r]:,})"
        )
    # region names to the right of each region's points, moved apart where they would collide
    centres = located.groupby("region").agg(lon=("lon", "max"), lat=("lat", "median"))
    order = centres.sort_values("lat").index
    for side in (True, False):  # east and west hemisphere labels do not collide with each other
        names = [r for r in order if (centres.at[r, "lon"] >= 0) == side]
        ys = _spread_labels([float(centres.at[r, "lat"]) for r in names], min_gap=7.0)
        for r, y in zip(names, ys, strict=True):
            x0, y0 = float(centres.at[r, "lon"]), float(centres.at[r, "lat"])
            left = x0 > 150  # no room on the right near the date line
            ax.annotate(
                r,
                (x0, y0),
                xytext=(x0 + (-14 if left else 4), y),
                textcoords="data",
                ha="right" if left else "left",
                va="center",
                fontsize=6.5,
                color="black",
                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5, "shrinkA": 0, "shrinkB": 2},
            )
    ax.set_xlim(-180, 180)
    ax.set_ylim(-55, 75)
    ax.set_aspect("equal")
    ax.xaxis.set_major_locator(MultipleLocator(30))
    ax.yaxis.set_major_locator(MultipleLocator(20))
    ax.xaxis.set_major_formatter(FuncFormatter(_lon_label))
    ax.yaxis.set_major_formatter(FuncFormatter(_lat_label))
    ax.grid(color="0.85", lw=0.5)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("longitude (degrees, WGS84)", fontsize=8)
    ax.set_ylabel("latitude (degrees, WGS84)", fontsize=8)
    ax.set_title(title, fontsize=10)
    legend_title = "region (number of locations)"
    unlocated = f"{n_unlocated:,} location" + ("" if n_unlocated == 1 else "s")
    if n_unlocated:
        legend_title += f"; {unlocated} without a published position not drawn"
    fig.legend(
        *ax.get_legend_handles_labels(),
        loc="outside lower center",
        ncols=4,
        fontsize=7,
        title=legend_title,
        title_fontsize=7,
        markerscale=3,
        frameon=False,
    )
    largest = ", ".join(f"{r} {sizes[r]:,}" for r in regions[:3])
    alt = (
        f"{title}: {len(located):,} locations in {len(regions)} regions on a longitude/latitude grid "
        f"(largest: {largest})"
    )
    if n_unlocated:
        alt += f"; {unlocated} without a position not drawn"
    return StaticFigure(fig, alt + ".")


def static_pixel_histogram(
    values, title: str = "Landslide pixels per patch", bins_per_decade: int = 8
) -> StaticFigure:
    """Histogram of landslide pixels per patch on logarithmic bins, median and mean marked.

    ``values``: positive pixel counts (10 m pixels, 100 m² each), one per patch. The top axis gives the
    same quantity as an area in km². Raises ``ValueError`` on an empty input or a value that is not a
    positive finite number (a logarithmic axis cannot show it).
    """
    v = np.asarray(values, dtype="float64").ravel()
    if v.size == 0:
        raise ValueError("no values to plot")
    if not (np.isfinite(v).all() and (v > 0).all()):
        raise ValueError(
            "pixel counts must be positive finite numbers (log axis); drop the empty patches first"
        )
    if bins_per_decade < 1:
        raise ValueError("bins_per_decade must be at least 1")
    # bins start at the smallest value, so that a threshold of the selection (e.g. 50 px) is a bin edge
    n_bins = max(1, math.ceil(np.log10(v.max() / v.min()) * bins_per_decade - 1e-9))
    edges = v.min() * 10 ** (np.arange(n_bins + 1) / bins_per_decade)
    edges[-1] = max(edges[-1], v.max())  # rounding must not leave the largest value out
    median, mean = float(np.median(v)), float(v.mean())
    px_m2 = schema.PIXEL_SIZE_M**2
    fig = _figure(3.4)
    ax = fig.subplots()
    ax.hist(v, bins=edges, color="#8c564b", edgecolor="white", lw=0.6, label=f"patches ({v.size:,})")
    ax.axvline(median, color="black", ls="--", lw=1.2, label=f"median {median:,.0f} px")
    ax.axvline(mean, color="black", ls=":", lw=1.4, label=f"mean {mean:,.0f} px")
    ax.set_xscale("log")
    ax.set_xlim(edges[0] / 1.5, edges[-1] * 1.5)
    ax.set_xlabel(
        f"landslide pixels per patch (count of {schema.PIXEL_SIZE_M:g} m × {schema.PIXEL_SIZE_M:g} m "
        f"= {px_m2:g} m² pixels, log scale)",
        fontsize=8,
    )
    ax.set_ylabel("number of patches", fontsize=8)
    top = ax.secondary_xaxis("top", functions=(lambda p: p * px_m2 / 1e6, lambda a: a * 1e6 / px_m2))
    top.set_xlabel("landslide area per patch (km²)", fontsize=8)
    top.tick_params(labelsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    ax.set_title(title, fontsize=10)
    return StaticFigure(
        fig,
        f"{title}: {v.size:,} patches, {v.min():,.0f} to {v.max():,.0f} landslide pixels, median "
        f"{median:,.0f}, mean {mean:,.0f} (logarithmic bins).",
    )


def class_balance_table(balance, overall=None, caption: str | None = None):
    """The class balance of :func:`s12ls_utils.catalog.class_balance` (**per location**: a location's mask
    is the same in every sensor, so it counts once) as a table to read: counts as integers, shares as
    percentages. ``overall`` (its ``by=None`` row) is appended as ``all regions``. Returns a pandas Styler
    whose ``data`` holds the numbers."""
    import pandas as pd

    rows = balance if overall is None else pd.concat([balance, overall.rename(index=lambda _: "all regions")])
    table = pd.DataFrame(
        {
            "locations": rows["locations"].astype("int64"),
            "annotated locations": (rows["annotated_share"] * rows["locations"]).round().astype("int64"),
            "annotated (%)": 100 * rows["annotated_share"],
            "landslide pixels, all locations (%)": 100 * rows["positive_fraction"],
            "landslide pixels, annotated locations (%)": 100 * rows["positive_fraction_annotated"],
        },
        index=rows.index.rename("region"),
    )
    pct = [c for c in table.columns if c.endswith("(%)")]
    return (
        table.style.format("{:,d}", subset=["locations", "annotated locations"])
        .format("{:.2f}", subset=pct, na_rep="–")
        .set_caption(caption or "Class balance per location, by region")
    )


_REAL_COLOR = "#222222"
_DATA_COLORS = {"s1asc": "#1f77b4", "s1dsc": "#ff7f0e", "data": "#2ca02c"}


def _ecdf(ax, values, label: str, color: str, ls: str = "-", lw: float = 1.4) -> None:
    v = np.sort(np.asarray(values, dtype="float64")[np.isfinite(values)])
    if v.size == 0:
        return
    y = np.arange(1, v.size + 1) / v.size
    ax.step(np.r_[v[0], v], np.r_[0.0, y], where="post", color=color, ls=ls, lw=lw, label=label)


def _panel_style(ax, title: str, xlabel: str, ylabel: str, legend_loc: str = "best", ncol: int = 1) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, frameon=False, loc=legend_loc, ncol=ncol)


def _paired_bars(ax, table, quantity: str, value: str, err: str | None = None) -> list[str]:
    t = table[table["quantity"] == quantity]
    groups = list(dict.fromkeys(t["group"]))
    x = np.arange(len(groups))

    def pick(stat, side):
        s = t[t["statistic"] == stat].set_index("group")[side]
        return s.reindex(groups).to_numpy(dtype="float64")

    for side, dx, color, label in (
        ("real", -0.2, _REAL_COLOR, "real"),
        ("data", 0.2, _DATA_COLORS["data"], "data folder"),
    ):
        yerr = pick(err, side) if err else None
        ax.bar(
            x + dx,
            pick(value, side),
            0.4,
            color=color,
            label=label,
            yerr=yerr,
            capsize=2,
            error_kw={"lw": 0.8},
        )
    ax.set_xticks(x, groups, fontsize=7, rotation=20, ha="right")
    top = np.nanmax(np.r_[pick(value, "real") + (pick(err, "real") if err else 0), pick(value, "data"), 1.0])
    ax.set_ylim(0, top * 1.3)  # room for the legend above the bars
    return groups


def static_realism(report, title: str = "How close the data folder is to the real dataset") -> StaticFigure:
    """Real vs data folder side by side, from a :class:`s12ls_utils.sample.realism.RealismReport`.

    Small multiples: Sentinel-1 per-file mean VV and VH (ECDFs in dB; the real s1dsc files against the
    folder's ascending and descending files), Sentinel-2 mean per region (paired bars, ± the std over
    files), annotated share per region (paired bars), per-file mean DEM (ECDFs), landslide pixels per patch
    (ECDFs, log axis; annotated and LD-like), the connected tile areas a tile lies in (ECDFs, log axis; the
    touching shares in the legend), the KS distance of every sample quantity, the per-file VV/VH ratio
    (ECDFs, dB) and the per-location difference of the two orbits' mean VV (ECDF, dB, with the bounds the
    sample is held to; the file facts NaN/Inf, repeated S2 dates and SCL 255 frames in the legend).
    """
    from matplotlib.ticker import MaxNLocator

    from .io import to_db

    samples = report.samples
    table = report.table
    dist = report.distances
    fig = _figure(13.2)
    axes = fig.subplots(5, 2)
    fig.suptitle(title, fontsize=10)

    for ax, band in zip(axes[0], ("VV", "VH"), strict=True):
        real = samples[("s1_mean", f"s1dsc/{band}")]["real"]
        _ecdf(ax, to_db(real), f"real s1dsc ({real.size:,} files)", _REAL_COLOR)
        for orbit in ("s1asc", "s1dsc"):
            data = samples[("s1_mean", f"{orbit}/{band}")]["data"]
            _ecdf(ax, to_db(data), f"data {orbit} ({data.size} files)", _DATA_COLORS[orbit])
        _panel_style(
            ax,
            f"Sentinel-1 {band}: per-file mean",
            f"per-file mean {band} (dB, from linear)",
            "share of files (ECDF)",
            "upper left",
        )
        ax.xaxis.set_major_locator(MaxNLocator(6))

    ax = axes[1, 0]
    groups = _paired_bars(ax, table, "s2_mean", "mean", "std")
    _panel_style(
        ax,
        "Sentinel-2: mean reflectance per region",
        "region",
        "mean of 10 bands (DN, raw release)\n± std over files",
        "upper left",
        2,
    )
    if not groups:
        ax.text(0.5, 0.5, "no region in both", transform=ax.transAxes, ha="center", fontsize=8)

    ax = axes[1, 1]
    _paired_bars(ax, table, "annotated_share", "share")
    ax.set_ylim(0, 135)
    ax.set_yticks(range(0, 101, 20))
    _panel_style(
        ax,
        "Annotated share of S2 patches per region",
        "region",
        "patches with landslide pixels (%)",
        "upper left",
        2,
    )

    ax = axes[2, 0]
    dem = samples[("dem_mean", "s1dsc")]
    _ecdf(ax, dem["real"], f"real s1dsc ({dem['real'].size:,} files)", _REAL_COLOR)
    _ecdf(ax, dem["data"], f"data s1dsc ({dem['data'].size} files)", _DATA_COLORS["s1dsc"])
    _panel_style(
        ax, "DEM: per-file mean elevation", "per-file mean DEM (m)", "share of files (ECDF)", "lower right"
    )

    ax = axes[2, 1]
    for group, ls in (("LD-like", "-"), ("annotated", "--")):
        s = samples[("landslide_px", group)]
        _ecdf(ax, s["real"], f"real {group} ({s['real'].size:,})", _REAL_COLOR, ls)
        _ecdf(ax, s["data"], f"data {group} ({s['data'].size})", _DATA_COLORS["data"], ls)
    ax.set_xscale("log")
    _panel_style(
        ax,
        "Landslide pixels per S2 patch",
        "landslide pixels per patch (log scale)",
        "share of patches (ECDF)",
        "upper left",
    )

    ax = axes[3, 0]
    s = samples[("tile_area", "tiles")]
    touch = table[(table["quantity"] == "tiles_touching") & (table["statistic"] == "share")].iloc[0]
    _ecdf(ax, s["real"], f"real ({s['real'].size:,} tiles, {touch['real']:.0f} % touch one)", _REAL_COLOR)
    _ecdf(
        ax, s["data"], f"data ({s['data'].size} tiles, {touch['data']:.0f} % touch one)", _DATA_COLORS["data"]
    )
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.3)
    ax.set_yticks(np.linspace(0, 1, 6))
    _panel_style(
        ax,
        "S2 tiling: connected area of each tile",
        "tiles in the connected area (log scale)",
        "share of tiles (ECDF)",
        "upper left",
    )

    ax = axes[3, 1]
    d = dist[dist["ks"].notna()].iloc[::-1]
    labels = [f"{q} {g}" for q, g in zip(d["quantity"], d["group"], strict=True)]
    y = np.arange(len(d))
    ax.barh(y, d["ks"].to_numpy(dtype="float64"), color=_DATA_COLORS["data"], label="KS statistic")
    ax.set_yticks(y, labels, fontsize=6)
    ax.set_xlim(0, 1)
    _panel_style(
        ax, "Distance per quantity", "two-sample KS statistic (0 = same, 1 = disjoint)", "", "upper right"
    )

    ax = axes[4, 0]
    real = samples[("s1_ratio", "s1dsc")]["real"]
    _ecdf(ax, real, f"real s1dsc ({real.size:,} files)", _REAL_COLOR)
    for orbit in ("s1asc", "s1dsc"):
        data = samples[("s1_ratio", orbit)]["data"]
        _ecdf(ax, data, f"data {orbit} ({data.size} files)", _DATA_COLORS[orbit])
    _panel_style(
        ax,
        "Sentinel-1: VV/VH ratio per file",
        "10·log10(mean VV / mean VH) (dB)",
        "share of files (ECDF)",
        "lower right",
    )

    ax = axes[4, 1]
    diff = samples[("s1_orbit_diff", "VV")]["data"]

    def fact(quantity: str, group: str, statistic: str, side: str) -> float:
        hit = table[
            (table["quantity"] == quantity) & (table["group"] == group) & (table["statistic"] == statistic)
        ]
        return float(hit[side].iloc[0]) if len(hit) else float("nan")

    nonfinite = sum(np.nan_to_num(fact("nonfinite", s, "values", "data")) for s in schema.SENSORS)
    facts = (
        f"data: {nonfinite:,.0f} NaN/Inf values, {fact('repeated_dates', 's2', 'steps', 'data'):.0f} repeated "
        f"S2 dates,\n{fact('scl_unknown', 's2', 'share', 'data'):.1f} % of S2 frames SCL 255 "
        f"(real: 0, 0, {fact('scl_unknown', 's2', 'share', 'real'):.1f} %)"
    )
    _ecdf(ax, diff, f"data ({diff.size} locations with both orbits)", _DATA_COLORS["data"])
    for bound, ls, what in zip(
        report.orbit_diff_bounds, (":", "--"), ("95th percentile", "worst"), strict=True
    ):
        ax.axvline(bound, color="0.4", ls=ls, lw=1, label=f"bound at the {what}: {bound:g} dB")
    ax.set_ylim(-0.03, 1.45)
    ax.set_yticks(np.linspace(0, 1, 6))
    _panel_style(
        ax,
        "Sentinel-1: asc − dsc mean VV per location",
        "|mean VV asc − mean VV dsc| (dB)",
        "share of locations (ECDF)",
        "upper left",
    )
    ax.text(0.98, 0.04, facts, transform=ax.transAxes, ha="right", va="bottom", fontsize=6.5)

    ks = dist.set_index(["quantity", "group"])["ks"]
    alt = (
        f"{title}: ten panels comparing the real dataset's published statistics with the data folder. "
        f"KS distance of the per-file mean VV {ks.get(('s1_mean', 's1dsc/VV'), float('nan')):.2f} (s1dsc), "
        f"of LD-like landslide pixels {ks.get(('landslide_px', 'LD-like'), float('nan')):.2f}; "
        f"{touch['real']:.0f} % of real and {touch['data']:.0f} % of the folder's S2 tiles touch another; "
        f"the two orbits' mean VV differ by at most {(diff.max() if diff.size else np.nan):.1f} dB per location."
    )
    return StaticFigure(fig, alt)
