"""How to cite the book and under which licences: `CITATION.cff` is the record, and every page that repeats it
agrees with it.

`CITATION.cff` must parse as YAML with the keys of the Citation File Format 1.2.0 that GitHub and Zenodo read;
its title, authors, version, licence and repository agree with `pyproject.toml`, `_config.yml` and `LICENSE`;
the "Cite this book" box of the introduction and the README's "Citing and licences" section repeat the same
record; the dataset citation (Hoehn et al. 2025) is the same in the record, the introduction and the vendored
metadata; and the licences named on those pages are MIT for the book and CC BY 4.0 for the dataset and the
metadata in `data/reference/`. The table of contents keeps the results page out of the appendices.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INTRO = (ROOT / "book" / "intro.md").read_text()
README = (ROOT / "README.md").read_text()
DOI = re.compile(r"10\.\d{4,9}/\S+")
SPDX = {
    "MIT": "MIT License",
    "CC-BY-4.0": "CC BY 4.0",
}  # the licences this project names, as pages spell them


@pytest.fixture(scope="module")
def cff() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _reference(cff: dict, kind: str) -> dict:
    refs = [r for r in cff["references"] if r["type"] == kind]
    assert len(refs) == 1, f"CITATION.cff should have one reference of type {kind}, has {len(refs)}"
    return refs[0]


def _bibtex(text: str) -> dict[str, dict[str, str]]:
    """The BibTeX entries in ``text``: key -> {"type": ..., field: value}, values with whitespace collapsed
    and the outer braces removed (a value in double braces keeps one pair)."""
    entries = {}
    for m in re.finditer(r"@(\w+)\{([^,\s]+),", text):
        body, depth, i = "", 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            body += text[i] if depth else ""
            i += 1
        fields = {"type": m[1].lower()}
        for f in re.finditer(r"(\w+)\s*=\s*\{((?:[^{}]|\{[^{}]*\})*)\}", body):
            fields[f[1].lower()] = " ".join(f[2].split())
        entries[m[2]] = fields
    return entries


def _section(text: str, heading: str) -> str:
    """The Markdown section under ``heading`` (a full heading line), up to the next heading of its level
    or higher."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    nxt = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest[: nxt.start()] if nxt else rest


def _cite_box() -> str:
    m = re.search(r"^(`{4,})\{admonition\} Cite this book\n(.*?)^\1$", INTRO, flags=re.S | re.M)
    assert m, 'book/intro.md has no "Cite this book" admonition'
    return m[2]


def _book_line(cff: dict, year: str) -> str:
    """The one-line citation of the book that the intro box and the README give."""
    authors = "; ".join(a.get("name") or f"{a['family-names']}, {a['given-names']}" for a in cff["authors"])
    return (
        f"{authors} ({year}). *{cff['title']}* (version {cff['version']}). {SPDX[cff['license']]}. "
        f"<{cff['repository-code']}>"
    )


def test_citation_cff_has_the_keys_of_the_format(cff):
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "version", "license", "repository-code", "type"):
        assert isinstance(cff.get(key), str) and cff[key].strip(), f"CITATION.cff: {key} missing or empty"
    assert cff["type"] in ("software", "dataset")
    assert cff["license"] in SPDX, f"CITATION.cff: licence {cff['license']!r} is not one this project names"
    for who in [cff, *cff["references"]]:
        assert who["authors"], f"{who['title']}: no authors"
        for a in who["authors"]:
            assert a.get("name") or (a.get("family-names") and a.get("given-names")), a
    for ref in cff["references"]:
        assert {"type", "title", "authors"} <= ref.keys(), ref
        assert ref.get("doi") or ref.get("url"), f"{ref['title']}: neither doi nor url"
        if "doi" in ref:
            assert DOI.fullmatch(ref["doi"]), ref["doi"]
        if "license" in ref:
            assert ref["license"] in SPDX, ref["license"]


def test_citation_cff_agrees_with_the_package_the_config_and_the_licence_file(cff, config):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cff["version"] == project["version"]
    assert cff["license"] == project["license"]
    assert cff["title"] == config["title"]
    assert [a.get("name") for a in cff["authors"]] == [config["author"]]
    assert cff["repository-code"] == config["repository"]["url"]
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith(SPDX[cff["license"]] + "\n"), "LICENSE is not the licence CITATION.cff names"
    assert f"Copyright (c) {config['copyright']} {config['author']}" in licence


def test_the_dataset_is_cited_alike_in_the_record_the_intro_and_the_vendored_metadata(cff):
    article, dataset = _reference(cff, "article"), _reference(cff, "dataset")
    intro = _bibtex(_section(INTRO, "### Citing the dataset"))
    bib = next(e for e in intro.values() if e["type"] == "article")
    assert bib["doi"] == article["doi"] and bib["title"] == article["title"]
    assert bib["journal"] == article["journal"]
    assert (bib["volume"], bib["pages"], bib["year"]) == tuple(
        map(str, (article["volume"], article["start"], article["year"]))
    )
    assert bib["author"] == " and ".join(
        f"{a['family-names']}, {a['given-names']}" for a in article["authors"]
    )
    assert any(e.get("url") == dataset["url"] for e in intro.values()), (
        "intro: no entry with the dataset's url"
    )
    assert dataset["license"] == "CC-BY-4.0"
    source = json.loads((ROOT / "data" / "reference" / "source.json").read_text())
    assert source["license"] == SPDX[dataset["license"]]
    assert article["doi"] in source["citation"] and dataset["repository-code"].endswith(source["repository"])


def test_the_intro_box_repeats_the_record(cff, config):
    box = _cite_box()
    year = str(config["copyright"])
    assert _book_line(cff, year) in " ".join(box.split())
    (entry,) = _bibtex(box).values()
    assert entry["type"] == "software"
    assert entry["title"] == cff["title"] and entry["version"] == cff["version"] and entry["year"] == year
    assert entry["author"] == "{" + config["author"] + "}" and entry["license"] == cff["license"]
    assert entry["url"] == cff["repository-code"]


def test_the_intro_and_the_readme_state_both_licences(cff, config):
    intro, readme = _section(INTRO, "### Licences"), _section(README, "## Citing and licences")
    book, data = SPDX[cff["license"]], SPDX[_reference(cff, "dataset")["license"]]
    for name, text in (("intro", intro), ("README", readme)):
        assert book in text and data in text, f"{name} does not name both licences"
        assert "data/reference/" in text, f"{name} does not say what the dataset's licence covers here"
    assert _book_line(cff, str(config["copyright"])) in " ".join(readme.replace("> ", "").split())
    assert _reference(cff, "article")["doi"] in readme
    ref_readme = (ROOT / "data" / "reference" / "README.md").read_text()
    assert re.search(r"\*\*Licence:\*\* CC BY 4\.0", ref_readme), (
        "data/reference/README.md: no CC BY 4.0 licence"
    )


def test_results_page_stands_outside_the_appendices():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = {p["caption"]: [c["file"] for c in p["chapters"]] for p in toc["parts"]}
    captions = list(parts)
    owner = next(c for c, files in parts.items() if "book/results" in files)
    assert owner != "Appendices", "the results page is filed under the appendices"
    assert all(f.startswith("book/appendix-") for f in parts["Appendices"]), parts["Appendices"]
    assert captions.index("Chapters") < captions.index(owner) < captions.index("Appendices"), captions
