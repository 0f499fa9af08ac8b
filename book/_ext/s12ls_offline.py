"""Local Sphinx extension: the built book works from disk with no network.

The chapters' HoloViews/Panel outputs are executed with ``hv.extension("bokeh", inline=True)``, so BokehJS
and Panel's JavaScript are in the notebooks. Three things still stood between a page opened from disk
and a complete, error-free rendering; each is fixed here, at build time, from the installed packages:

1. **Panel stylesheets.** Panel gives its layouts and widgets ``ImportedStyleSheet`` models whose URLs point
   at ``https://cdn.holoviz.org/panel/<version>/dist/…`` (``panel.io.resources.CDN_DIST``). Panel only
   inlines them for its own notebook display path (``pn.config.inline``), not for HoloViews plots or
   ``.embed()`` output, so every chapter page asked the CDN for ``listpanel.css``, ``loading.css`` and the
   theme files. Each such URL is rewritten to a copy of the same file from the installed Panel's ``dist``
   folder under ``_static/panel/``; a URL whose file the installed Panel does not ship fails the build
   (``-W``) instead of failing quietly in the reader's browser.
2. **BokehJS once per book, not once per page.** The extension's load script (BokehJS, Panel and their
   dependencies, about 3 MB) is identical in every chapter. Large inline ``<script>`` outputs are written
   once to ``_static/nb-js/<sha256>.js`` and referenced with ``<script src>``: the same synchronous script
   in the same place, loaded from the book's own files (and cached by the browser across pages).
3. **Body-only scripts added twice.** Sphinx 7.4 registers a script added with ``app.add_js_file(None,
   body=…)`` after the builder started both with ``filename=None`` and ``filename=''``, and its duplicate
   check compares the file names, so the script appears twice in every page. sphinx-thebe's config
   script declares ``const THEBE_JS_URL``, and the second copy throws "Identifier 'THEBE_JS_URL' has
   already been declared" on every page. The page's script list is de-duplicated on the script's
   content (file name, body, attributes) before the page is written.

It also adds the book's stylesheet, ``static/s12ls.css``: wide tables scroll inside the content column.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.osutil import relative_uri

logger = logging.getLogger(__name__)

PANEL_STATIC = "_static/panel"
SCRIPT_STATIC = "_static/nb-js"
#: inline scripts at least this long are written to ``_static`` (the load script is ~3 MB; the scripts
#: that embed one figure's document are kept in the page, they are page-specific)
EXTERNALISE_MIN_CHARS = 256 * 1024

_PANEL_CDN = re.compile(
    r"https://cdn\.holoviz\.org/panel/(?P<version>[^/\"'\s]+)/dist/(?P<path>[^\"'\s?#\\]+)"
)
_INLINE_SCRIPT = re.compile(
    r"\A\s*<script type=\"(?P<type>(?:application|text)/javascript)\">(?P<body>.*)</script>\s*\Z",
    re.S,
)


def _panel_dist() -> tuple[str, Path]:
    """Version string in Panel's CDN URLs and the installed ``dist`` folder those URLs mirror."""
    from panel.io.resources import CDN_DIST, DIST_DIR

    version = _PANEL_CDN.match(CDN_DIST + "x").group("version")
    return version, Path(DIST_DIR)


def _page_uri(app: Sphinx, docname: str, target: str) -> str:
    """URI of ``target`` (a path below the HTML output folder) relative to the page of ``docname``."""
    return relative_uri(app.builder.get_target_uri(docname), target)


def _localise_panel_urls(
    app: Sphinx, docname: str, html: str, missing: set[str]
) -> str:
    version, dist = _panel_dist()
    outdir = Path(app.builder.outdir)

    def repl(m: re.Match) -> str:
        rel = m.group("path")
        src = dist / rel
        if m.group("version") != version or not src.is_file():
            missing.add(m.group(0))
            return m.group(0)
        dst = outdir / PANEL_STATIC / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        return _page_uri(app, docname, f"{PANEL_STATIC}/{rel}")

    return _PANEL_CDN.sub(repl, html)


def _externalise_script(app: Sphinx, docname: str, html: str) -> str:
    m = _INLINE_SCRIPT.match(html)
    # one script per output, nothing page-specific around it; anything else stays as it is
    if (
        m is None
        or len(m.group("body")) < EXTERNALISE_MIN_CHARS
        or "</script>" in m.group("body")
    ):
        return html
    body = m.group("body")
    name = f"{hashlib.sha256(body.encode('utf-8')).hexdigest()[:20]}.js"
    dst = Path(app.builder.outdir) / SCRIPT_STATIC / name
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(body, encoding="utf-8")
    src = _page_uri(app, docname, f"{SCRIPT_STATIC}/{name}")
    return f'<script type="{m.group("type")}" src="{src}"></script>'


def localise_outputs(
    app: Sphinx, doctree: nodes.document, docname: str
) -> None:
    """Rewrite the raw HTML of notebook outputs so that the page needs no network (items 1 and 2)."""
    if app.builder.format != "html":
        return
    missing: set[str] = set()
    for node in list(doctree.findall(nodes.raw)):
        if "html" not in node.get("format", "").split():
            continue
        old = node.astext()
        new = _externalise_script(
            app, docname, _localise_panel_urls(app, docname, old, missing)
        )
        if new != old:
            node.replace_self(nodes.raw(new, new, format=node["format"]))
    for url in sorted(missing):
        logger.warning(
            "%s: output needs %s, which the installed Panel does not ship; the page would need the network",
            docname,
            url,
            type="s12ls_offline",
            subtype="panel",
        )


def drop_duplicate_scripts(
    app: Sphinx, pagename, templatename, context, doctree
) -> None:
    """Keep the first of scripts that are equal but for ``None`` vs ``''`` as file name (item 3)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for js in scripts:
        attrs = getattr(js, "attributes", {})
        key = (
            str(getattr(js, "filename", js) or ""),
            getattr(js, "priority", 0),
            tuple(sorted(attrs.items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


STYLE_DIR = Path(__file__).parent / "static"


def add_style(app: Sphinx, config) -> None:
    """The book's own stylesheet (``static/s12ls.css``: wide tables scroll in the content column)."""
    config.html_static_path = [*config.html_static_path, str(STYLE_DIR)]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", add_style)
    app.add_css_file("s12ls.css")
    app.connect("doctree-resolved", localise_outputs)
    app.connect("html-page-context", drop_duplicate_scripts)
    return {
        "version": "1",
        "parallel_read_safe": True,
        "parallel_write_safe": False,
    }
