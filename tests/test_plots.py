"""Chapter-support helpers of ``s12ls_utils.plots`` that are not figures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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


# --------------------------------------------------------------------------------------------------
# plots.param: chapter parameters passed as Python values, papermill -p text or YAML
# --------------------------------------------------------------------------------------------------
SENSORS = ("s1asc", "s1dsc", "s2")


@pytest.mark.parametrize(
    "value, expected",
    [
        (["s1asc"], ["s1asc"]),
        (("s1asc", "s2"), ["s1asc", "s2"]),
        ('["s1asc"]', ["s1asc"]),
        ('["s1asc", "s2"]', ["s1asc", "s2"]),
        ("[s1asc, s2]", ["s1asc", "s2"]),  # YAML flow list
        ("s1asc,s2", ["s1asc", "s2"]),
        (" s1asc , s2 ", ["s1asc", "s2"]),
        ("s2", ["s2"]),
        (["s2", "s2"], ["s2"]),
    ],
)
def test_param_list_accepts_every_form(value, expected):
    assert plots.param("sensors", value, "list", choices=SENSORS) == expected


def test_param_list_without_choices_keeps_items():
    assert plots.param("widths", "[8, 16]", "list") == [8, 16]
    assert plots.param("names", "a,b", "list") == ["a", "b"]


@pytest.mark.parametrize("value", ['["s3"]', "s3", "s1asc,s3", ["s3"], "[]", [], ","])
def test_param_list_rejects_unknown_or_empty(value):
    with pytest.raises(ValueError, match=r"parameter 'sensors'.*allowed: 's1asc', 's1dsc', 's2'"):
        plots.param("sensors", value, "list", choices=SENSORS)


@pytest.mark.parametrize("value", [3, {"a": 1}, '{"a": 1}', '["s2"'])
def test_param_list_rejects_other_types(value):
    with pytest.raises(ValueError, match="parameter 'sensors'"):
        plots.param("sensors", value, "list")


@pytest.mark.parametrize(
    "value",
    [{"widths": [8, 16]}, '{"widths": [8, 16]}', "widths: [8, 16]", "{widths: [8, 16]}"],
)
def test_param_dict_accepts_every_form(value):
    assert plots.param("model_kwargs", value, "dict") == {"widths": [8, 16]}


@pytest.mark.parametrize("value", ["[1, 2]", "just text", 3, ["a"], "{a: [1,"])
def test_param_dict_rejects_non_mappings(value):
    with pytest.raises(ValueError, match="parameter 'model_kwargs'"):
        plots.param("model_kwargs", value, "dict")


def test_param_none_and_defaults():
    assert plots.param("model_kwargs", None, "dict", default=None) is None
    assert plots.param("model_kwargs", "", "dict", default=dict) == {}
    assert plots.param("workers", None, "int", default=None) is None
    with pytest.raises(ValueError, match=r"parameter 'sensors' is required.*allowed: 's1asc'"):
        plots.param("sensors", None, "list", choices=SENSORS)


def test_param_choice():
    assert plots.param("model", "utae", "choice", choices=["unet_prepost", "utae"]) == "utae"
    assert plots.param("model", " utae ", "choice", choices=["unet_prepost", "utae"]) == "utae"
    assert plots.param("device", "cuda:1", "choice", choices=plots.DEVICES) == "cuda:1"
    with pytest.raises(ValueError, match=r"parameter 'model': got 'resnet'; allowed: 'unet_prepost', 'utae'"):
        plots.param("model", "resnet", "choice", choices=["unet_prepost", "utae"])
    with pytest.raises(ValueError, match="parameter 'device'.*'auto', 'cpu'"):
        plots.param("device", "gpu", "choice", choices=plots.DEVICES)
    with pytest.raises(ValueError, match="needs choices"):
        plots.param("model", "utae", "choice")


def test_param_numbers_and_bools():
    assert plots.param("epochs", 2, "int") == 2
    assert plots.param("epochs", "2", "int") == 2
    assert plots.param("epochs", 2.0, "int") == 2
    assert plots.param("share", "0.1", "float") == pytest.approx(0.1)
    assert plots.param("share", 1, "float") == 1.0
    assert plots.param("num_workers", "auto", "int", choices=["auto"]) == "auto"
    assert plots.param("num_workers", "4", "int", choices=["auto"]) == 4
    for text, want in [
        ("true", True),
        ("False", False),
        ("yes", True),
        ("0", False),
        (True, True),
        (0, False),
    ]:
        assert plots.param("progress", text, "bool") is want
    for bad, kind in [
        ("two", "int"),
        (2.5, "int"),
        (True, "int"),
        ("x", "float"),
        ("maybe", "bool"),
        (2, "bool"),
    ]:
        with pytest.raises(ValueError, match="parameter 'p'"):
            plots.param("p", bad, kind)
    with pytest.raises(ValueError, match="parameter 'num_workers'.*allowed: 'auto'"):
        plots.param("num_workers", "many", "int", choices=["auto"])
    with pytest.raises(ValueError, match="param kind"):
        plots.param("p", 1, "tuple")


# --------------------------------------------------------------------------------------------------
# Galleries draw what the sensor has (S2 true colour, S1 false colour or VV/VH dB)
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def bokeh():
    hv = pytest.importorskip("holoviews")
    hv.extension("bokeh")
    return hv


def _titles(layout) -> list[str]:
    import holoviews as hv

    titles = []
    for el in layout:
        if isinstance(el, hv.Empty):
            continue
        base = el.get(0) if isinstance(el, hv.Overlay) else el
        titles.append(hv.Store.lookup_options("bokeh", base, "plot").kwargs.get("title", ""))
    return titles


def _s1_comp(h=16, w=16, rng=None):
    rng = rng or np.random.default_rng(0)
    names = plots.schema.FEATURES["s1asc"]
    comp = np.zeros((2, len(names), h, w), dtype="int16")
    comp[:, names.index("VV")] = rng.integers(-2000, -500, (2, h, w))  # dB x 100
    comp[:, names.index("VH")] = rng.integers(-2800, -1200, (2, h, w))
    valid = np.ones((2, h, w), dtype=bool)
    valid[:, 0, 0] = False
    return comp, valid


def _s1_patch(h=16, w=16, t=4):
    import xarray as xr

    rng = np.random.default_rng(1)
    dims = ("time", "y", "x")
    return xr.Dataset(
        {
            "VV": (dims, rng.uniform(0.01, 0.3, (t, h, w)).astype("float32")),
            "VH": (dims, rng.uniform(0.001, 0.05, (t, h, w)).astype("float32")),
        }
    )


def test_s1_images_false_colour_and_db():
    comp, valid = _s1_comp()
    fc = plots.composite_image(comp, valid, "s1asc", 1)
    assert fc.shape == (16, 16, 3) and fc.min() >= 0 and fc.max() <= 1
    assert (fc[0, 0] == 0).all()  # invalid pixel drawn black
    vv = plots.composite_image(comp, valid, "s1asc", 1, s1="VV")
    assert vv.shape == (16, 16) and np.isnan(vv[0, 0]) and np.nanmax(vv) <= -5
    ds = _s1_patch()
    assert plots.sensor_image(ds, 0, "s1dsc").shape == (16, 16, 3)
    assert plots.sensor_image(ds, 0, "s1dsc", s1="VH").shape == (16, 16)
    with pytest.raises(ValueError, match="s1 display"):
        plots.sensor_image(ds, 0, "s1dsc", s1="HH")
    assert "dB" in plots.stretch_label("s1asc") and "2–98" in plots.stretch_label("s2")


@pytest.mark.parametrize("s1", ["false_color", "VV", "VH"])
def test_galleries_draw_s1(s1, bokeh):
    comp, valid = _s1_comp()
    y = np.zeros((16, 16), dtype="float32")
    y[4:9, 4:9] = 1
    pre = plots.composite_image(comp, valid, "s1asc", 0, s1=s1)
    post = plots.composite_image(comp, valid, "s1asc", 1, s1=s1)
    label = plots.stretch_label("s1asc", s1)

    prob = np.linspace(0, 1, 256, dtype="float32").reshape(16, 16)
    items = [{"id": "p1", "y": y, "prob": prob, "pre": pre, "post": post}]
    titles = _titles(plots.prediction_gallery(items, 0.5, sensor="s1asc", s1=s1))
    assert titles[0] == f"p1: s1asc before, {label}" and titles[1] == f"s1asc after, {label}"

    ds = _s1_patch()
    items = [{"id": "p1", "y": y, "pred": prob > 0.5, "pre": plots.sensor_image(ds, 0, "s1asc", s1)}]
    items[0]["post"] = plots.sensor_image(ds, 3, "s1asc", s1)
    titles = _titles(plots.error_gallery(items, sensor="s1asc", s1=s1))
    assert len(titles) == 5 and titles[0] == f"p1: s1asc before, {label}" and titles[1].endswith(label)

    titles = _titles(plots.composite_panels(comp, valid, y, "s1asc", "p1", s1=s1))
    assert all(label in t and "s1asc" in t for t in titles)


def test_galleries_fusion_one_row_per_sensor(bokeh):
    comp, valid = _s1_comp()
    rng = np.random.default_rng(2)
    s2 = rng.uniform(0, 1, (16, 16, 3)).astype("float32")
    s1 = plots.composite_image(comp, valid, "s1asc", 1)
    y = np.zeros((16, 16), dtype="float32")
    prob = np.full((16, 16), 0.2, dtype="float32")
    item = {"id": "p1", "y": y, "prob": prob, "pred": prob > 0.5}
    item |= {"pre": {"s2": s2, "s1asc": s1}, "post": {"s2": s2, "s1asc": s1}}
    layout = plots.prediction_gallery([item], 0.5, sensor=["s2", "s1asc"])
    assert len(layout) == 8  # two rows of four, the second padded
    bokeh.render(layout)  # draws (the padding included)
    titles = _titles(layout)
    assert titles[0] == "p1: s2 before, true colour 2–98 %"
    assert titles[4] == f"s1asc before, {plots.stretch_label('s1asc')}"
    layout = plots.error_gallery([item], sensor=["s2", "s1asc"])
    assert len(layout) == 10
    assert _titles(layout)[5].startswith("s1asc before")
