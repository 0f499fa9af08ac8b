"""The package's parts and the direction of their imports: no library module imports the sample generator."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "s12ls_utils"
LIBRARY = sorted(p for p in PKG.glob("*.py") if p.name != "__init__.py")


def _imported(node: ast.AST) -> list[str]:
    """The modules an import node names; relative imports resolved as from a module of ``s12ls_utils``."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            base = ".".join(["s12ls_utils", base] if base else ["s12ls_utils"])
        return [base] + [f"{base}.{a.name}" for a in node.names]
    return []


def _sample_imports(path: Path) -> tuple[list[int], list[int]]:
    """Line numbers of imports of ``s12ls_utils.sample`` at module level and inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nested = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        for n in ast.walk(f)
    }
    top, inner = [], []
    for node in ast.walk(tree):
        names = _imported(node)
        if any(n == "s12ls_utils.sample" or n.startswith("s12ls_utils.sample.") for n in names):
            (inner if id(node) in nested else top).append(node.lineno)
    return top, inner


def test_the_library_lists_its_modules():
    assert {"io", "schema", "catalog", "cli"} <= {p.stem for p in LIBRARY}
    assert (PKG / "sample" / "generate.py").is_file() and (PKG / "sample" / "realism.py").is_file()
    assert not (PKG / "synthetic.py").exists() and not (PKG / "realism.py").exists()


def test_no_library_module_imports_the_sample():
    """Only the ``s12ls`` command imports the generator, and only inside its ``synth`` and ``realism`` commands."""
    offenders = {}
    for path in LIBRARY:
        top, inner = _sample_imports(path)
        if top or (inner and path.stem != "cli"):
            offenders[path.name] = top + inner
    assert not offenders, f"library modules that import s12ls_utils.sample: {offenders}"
    top, inner = _sample_imports(PKG / "cli.py")
    assert not top and len(inner) == 2, (top, inner)


def test_the_check_sees_a_relative_import(tmp_path):
    """The check above is not vacuous: it finds ``from .sample import`` and ``from . import sample``."""
    bad = tmp_path / "bad.py"
    bad.write_text("from .sample import make_sample\n\ndef f():\n    from . import sample\n")
    assert _sample_imports(bad) == ([1], [4])


#: The functions that open a file for reading, per library.
OPENERS = {
    "xarray": {
        "open_dataset",
        "open_mfdataset",
        "load_dataset",
        "open_dataarray",
        "load_dataarray",
        "open_datatree",
    },
    "netCDF4": {"Dataset", "MFDataset"},
    "h5py": {"File"},
    "h5netcdf": {"File"},
}


def _reader_calls(path: Path) -> list[str]:
    """``line: call`` of each call of an opener of :data:`OPENERS` in a module, through the library's name
    or alias (``xr.open_dataset``) or a name imported from it (``from netCDF4 import Dataset``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules, functions = {}, {}  # local name -> library; local name -> (library, function)
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            modules.update({a.asname or a.name: a.name for a in n.names if a.name in OPENERS})
        elif isinstance(n, ast.ImportFrom) and n.module in OPENERS:
            functions.update({a.asname or a.name: (n.module, a.name) for a in n.names})
    found = []
    for node in ast.walk(tree):
        f = node.func if isinstance(node, ast.Call) else None
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            lib, name = modules.get(f.value.id), f.attr
        elif isinstance(f, ast.Name):
            lib, name = functions.get(f.id, (None, None))
        else:
            continue
        if lib is not None and name in OPENERS[lib]:
            found.append(f"{node.lineno}: {ast.unparse(f)}")
    return found


def test_only_io_opens_a_patch_for_reading():
    """One reader: ``io.py`` is the only module that opens a file with xarray, netCDF4 or h5py (the sample
    generator writes its files with ``to_netcdf``, which is no read)."""
    modules = sorted(PKG.rglob("*.py"))
    offenders = {p.relative_to(PKG).as_posix(): _reader_calls(p) for p in modules if p.name != "io.py"}
    assert not {k: v for k, v in offenders.items() if v}, f"modules that open files themselves: {offenders}"
    assert _reader_calls(PKG / "io.py"), "io.py opens no file: the check looks for the wrong calls"


def test_the_reader_check_sees_each_way_of_opening(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import netCDF4, h5py\nimport xarray as xr\nfrom netCDF4 import Dataset as D\n"
        "xr.open_dataset(p)\nnetCDF4.Dataset(p)\nh5py.File(p)\nD(p)\nxr.open_mfdataset(ps)\nds.to_netcdf(p)\nxr.Dataset()\n"
    )
    assert [c.split(": ")[0] for c in _reader_calls(bad)] == [
        "4",
        "5",
        "6",
        "7",
        "8",
    ]  # not xr.Dataset, to_netcdf


def _package_imports(path: Path) -> set[str]:
    """The ``s12ls_utils`` modules ``path`` imports anywhere in it (module level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        for name in _imported(node):
            parts = name.split(".")
            if parts[0] == "s12ls_utils" and len(parts) > 1:
                names.add(parts[1])
    return names - {path.stem}


def _import_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in LIBRARY}
    return {p.stem: _package_imports(p) & (modules | {"sample"}) for p in LIBRARY}


def test_no_library_module_imports_the_book():
    """``book`` (the chapters' plumbing) may import the library, never the other way round; ``evaluate``
    does not import ``figures`` (the figures sit on top of the evaluation)."""
    graph = _import_graph()
    assert "book" in graph, "s12ls_utils/book.py is missing"
    offenders = sorted(m for m, deps in graph.items() if "book" in deps)
    assert not offenders, f"library modules that import s12ls_utils.book: {offenders}"
    assert "figures" not in graph["evaluate"] and "plots" not in graph
    assert not (PKG / "plots.py").exists()


def _circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Every pair of modules that reach each other through imports (each circle by its modules)."""

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for dep in graph.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    reached = {m: reach(m) for m in graph}
    return {frozenset({a, b}) for a in graph for b in reached[a] if a != b and a in reached.get(b, ())}


def test_no_import_circle():
    """Imports run one way, module level and inside functions alike."""
    assert not _circles(_import_graph())


def test_the_circle_check_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {
        frozenset(p) for p in ({"a", "b"}, {"b", "c"}, {"a", "c"})
    }
    assert _circles({"a": {"b"}, "b": set()}) == set()
    assert _package_imports(PKG / "book.py") >= {"evaluate", "figures"}


def test_the_package_cites_no_file_outside_the_repository():
    """Docstrings point readers to files they have: the book's pages, not the team's notes beside the clone."""
    outside = ("../shared", "REAL-FORMAT", "DESIGN.md", "DESIGN §")
    found = [f"{p.relative_to(PKG)}: {s}" for p in PKG.rglob("*.py") for s in outside if s in p.read_text()]
    assert not found, found


#: The most lines (``wc -l``) one module of the package may hold (issue 23).
MAX_MODULE_LINES = 1_600


def test_no_module_holds_more_than_1600_lines():
    """A module past this bound has grown two concerns; split it by concern, never by packing lines."""
    sizes = {p.relative_to(PKG).as_posix(): len(p.read_bytes().splitlines()) for p in PKG.rglob("*.py")}
    assert len(sizes) > 20 and max(sizes.values()) > 1_000, sizes  # the package, not an empty folder
    too_big = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_big, f"modules over {MAX_MODULE_LINES} lines: {too_big}"
