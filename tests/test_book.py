"""The book's plumbing, ``s12ls_utils.book``, and the static figures of ``s12ls_utils.figures``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from s12ls_utils import book, figures, images


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
    assert book.run_from_repo_root() == root.resolve()
    assert Path.cwd() == root.resolve()
    assert book.run_from_repo_root() == root.resolve()  # idempotent at the root


def test_run_from_repo_root_leaves_other_folders_alone(tmp_path, restore_cwd):
    _checkout(tmp_path)
    elsewhere = tmp_path / "elsewhere" / "deep"
    elsewhere.mkdir(parents=True)
    os.chdir(elsewhere)
    assert book.run_from_repo_root() == elsewhere.resolve()
    assert Path.cwd() == elsewhere.resolve()
    # a folder with _toc.yml but no book/ is not a checkout of this book
    (tmp_path / "elsewhere" / "_toc.yml").write_text("root: x\n")
    assert book.run_from_repo_root() == elsewhere.resolve()


def test_book_pages_reads_nested_toc_in_order(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n"
        "  - caption: A\n    chapters:\n      - file: book/01-a\n        sections:\n          - file: book/01-a-more\n"
        "      - file: book/02-b\n"
        "  - caption: B\n    chapters:\n      - file: book/results\n"
    )
    assert book.book_pages(tmp_path) == [
        "book/intro",
        "book/01-a",
        "book/01-a-more",
        "book/02-b",
        "book/results",
    ]


def test_book_pages_of_this_book_exist():
    root = Path(__file__).resolve().parents[1]
    pages = book.book_pages(root)
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
    fig = book.static_patch_map(frame, "Test map")
    assert isinstance(fig, book.StaticFigure)
    assert fig.png.startswith(PNG_MAGIC)
    assert fig.alt.startswith("Test map: 3 locations in 2 regions")
    assert "1 location without a position" in fig.alt
    assert "italy 2" in fig.alt


def test_static_patch_map_takes_the_position_of_another_sensor():
    nan = float("nan")
    frame = _frame([("a_1", "s2", "a", nan, nan), ("a_1", "s1asc", "a", 10.0, 20.0)])
    fig = book.static_patch_map(frame, "one")
    assert "1 locations in 1 regions" in fig.alt and "without" not in fig.alt


def test_static_patch_map_rejects_bad_input():
    nan = float("nan")
    with pytest.raises(ValueError, match="lacks"):
        book.static_patch_map(_frame([("a_1", "s2", "a", 1.0, 2.0)]).drop(columns="lat"), "t")
    with pytest.raises(ValueError, match="no location"):
        book.static_patch_map(_frame([("a_1", "s2", "a", nan, nan)]), "t")
    with pytest.raises(ValueError, match="WGS84"):  # projected metres passed by mistake
        book.static_patch_map(_frame([("a_1", "s2", "a", 500_000.0, 4_900_000.0)]), "t")


def test_static_patch_map_of_the_published_metadata():
    from s12ls_utils import reference

    published = reference.patches()
    fig = book.static_patch_map(published, "published")
    n_loc = published["id"].nunique()
    unlocated = int(published.groupby("id")["lon"].count().eq(0).sum())
    assert unlocated > 0
    assert f"{n_loc - unlocated:,} locations in {published['region'].nunique()} regions" in fig.alt
    assert f"{unlocated:,} locations without a position" in fig.alt


def test_static_pixel_histogram_describes_the_values():
    values = [50, 60, 100, 292, 300, 1000, 8911]
    fig = book.static_pixel_histogram(values, "Pixels")
    assert isinstance(fig, book.StaticFigure)
    assert fig.png.startswith(PNG_MAGIC)
    assert fig.alt.startswith("Pixels: 7 patches, 50 to 8,911 landslide pixels, median 292")
    # one value, or values that fill exactly one decade, still make a figure
    assert "1 patches" in book.static_pixel_histogram([50], "one").alt
    assert "10 to 100" in book.static_pixel_histogram([10, 100], "decade", bins_per_decade=1).alt


@pytest.mark.parametrize("bad", [[], [0, 5], [-3, 5], [float("nan"), 5], [float("inf")]])
def test_static_pixel_histogram_rejects_values_a_log_axis_cannot_show(bad):
    with pytest.raises(ValueError):
        book.static_pixel_histogram(bad, "t")


def test_static_pixel_histogram_rejects_bad_bins():
    with pytest.raises(ValueError, match="bins_per_decade"):
        book.static_pixel_histogram([1, 2], "t", bins_per_decade=0)


# --------------------------------------------------------------------------------------------------
# book.param: chapter parameters passed as Python values, papermill -p text or YAML
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
    assert book.param("sensors", value, "list", choices=SENSORS) == expected


def test_param_list_without_choices_keeps_items():
    assert book.param("widths", "[8, 16]", "list") == [8, 16]
    assert book.param("names", "a,b", "list") == ["a", "b"]


@pytest.mark.parametrize("value", ['["s3"]', "s3", "s1asc,s3", ["s3"], "[]", [], ","])
def test_param_list_rejects_unknown_or_empty(value):
    with pytest.raises(ValueError, match=r"parameter 'sensors'.*allowed: 's1asc', 's1dsc', 's2'"):
        book.param("sensors", value, "list", choices=SENSORS)


@pytest.mark.parametrize(
    "value, expected",
    [([0, 1, 3], [0, 1, 3]), ("0,1,3", [0, 1, 3]), ("[2, 8]", [2, 8]), (" 9 ", [9]), ((3, "3"), [3])],
)
def test_param_list_of_numbers_from_text(value, expected):
    """Chapter 02's SCL classes: text items match the numeric choices by their text."""
    assert book.param("scl_bad_classes", value, "list", choices=list(range(12))) == expected


@pytest.mark.parametrize("value", ["12", "[True]", "a", [255], "2.0"])
def test_param_list_of_numbers_rejects_other_values(value):
    with pytest.raises(ValueError, match="parameter 'scl_bad_classes': unknown value"):
        book.param("scl_bad_classes", value, "list", choices=list(range(12)))


def test_class_balance_table_counts_and_percentages():
    import pandas as pd

    from s12ls_utils import catalog as cat_mod

    cat = pd.DataFrame(
        {
            "key": ["a_1", "a_1", "a_2", "b_3", "b_4"],
            "region": ["a", "a", "a", "b", "b"],
            "annotated": [True, True, False, True, False],
            "n_positive": [1638, 1638, 0, 164, 0],
            "sensor": ["s2", "s1asc", "s2", "s2", "s2"],
        }
    )
    styled = book.class_balance_table(
        cat_mod.class_balance(cat, by="region"), cat_mod.class_balance(cat, by=None)
    )
    t = styled.data
    assert list(t.index) == ["a", "b", "all regions"]
    assert t["locations"].tolist() == [2, 2, 4] and t["annotated locations"].tolist() == [1, 1, 2]
    assert t["locations"].dtype == "int64" and t["annotated locations"].dtype == "int64"
    assert t.loc["all regions", "annotated (%)"] == pytest.approx(50)
    # a location counts once, whatever its sensors: 1638 of 2 x 16384 pixels in region a
    assert t.loc["a", "landslide pixels, all locations (%)"] == pytest.approx(100 * 1638 / (2 * 16384))
    assert t.loc["a", "landslide pixels, annotated locations (%)"] == pytest.approx(100 * 1638 / 16384)
    html = styled.to_html()
    assert "Class balance per location" in html and "5.00" in html


@pytest.mark.parametrize("value", [3, {"a": 1}, '{"a": 1}', '["s2"'])
def test_param_list_rejects_other_types(value):
    with pytest.raises(ValueError, match="parameter 'sensors'"):
        book.param("sensors", value, "list")


@pytest.mark.parametrize(
    "value",
    [{"widths": [8, 16]}, '{"widths": [8, 16]}', "widths: [8, 16]", "{widths: [8, 16]}"],
)
def test_param_dict_accepts_every_form(value):
    assert book.param("model_kwargs", value, "dict") == {"widths": [8, 16]}


@pytest.mark.parametrize("value", ["[1, 2]", "just text", 3, ["a"], "{a: [1,"])
def test_param_dict_rejects_non_mappings(value):
    with pytest.raises(ValueError, match="parameter 'model_kwargs'"):
        book.param("model_kwargs", value, "dict")


def test_param_none_and_defaults():
    assert book.param("model_kwargs", None, "dict", default=None) is None
    assert book.param("model_kwargs", "", "dict", default=dict) == {}
    assert book.param("workers", None, "int", default=None) is None
    with pytest.raises(ValueError, match=r"parameter 'sensors' is required.*allowed: 's1asc'"):
        book.param("sensors", None, "list", choices=SENSORS)


def test_param_choice():
    assert book.param("model", "utae", "choice", choices=["unet_prepost", "utae"]) == "utae"
    assert book.param("model", " utae ", "choice", choices=["unet_prepost", "utae"]) == "utae"
    assert book.param("device", "cuda:1", "choice", choices=book.DEVICES) == "cuda:1"
    with pytest.raises(ValueError, match=r"parameter 'model': got 'resnet'; allowed: 'unet_prepost', 'utae'"):
        book.param("model", "resnet", "choice", choices=["unet_prepost", "utae"])
    with pytest.raises(ValueError, match="parameter 'device'.*'auto', 'cpu'"):
        book.param("device", "gpu", "choice", choices=book.DEVICES)
    with pytest.raises(ValueError, match="needs choices"):
        book.param("model", "utae", "choice")


def test_param_numbers_and_bools():
    assert book.param("epochs", 2, "int") == 2
    assert book.param("epochs", "2", "int") == 2
    assert book.param("epochs", 2.0, "int") == 2
    assert book.param("share", "0.1", "float") == pytest.approx(0.1)
    assert book.param("share", 1, "float") == 1.0
    assert book.param("num_workers", "auto", "int", choices=["auto"]) == "auto"
    assert book.param("num_workers", "4", "int", choices=["auto"]) == 4
    for text, want in [
        ("true", True),
        ("False", False),
        ("yes", True),
        ("0", False),
        (True, True),
        (0, False),
    ]:
        assert book.param("progress", text, "bool") is want
    for bad, kind in [
        ("two", "int"),
        (2.5, "int"),
        (True, "int"),
        ("x", "float"),
        ("maybe", "bool"),
        (2, "bool"),
    ]:
        with pytest.raises(ValueError, match="parameter 'p'"):
            book.param("p", bad, kind)
    with pytest.raises(ValueError, match="parameter 'num_workers'.*allowed: 'auto'"):
        book.param("num_workers", "many", "int", choices=["auto"])
    with pytest.raises(ValueError, match="param kind must be .*, not 'tuple'"):
        book.param("p", 1, "tuple")


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
    names = figures.schema.FEATURES["s1asc"]
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
    fc = images.composite_image(comp, valid, "s1asc", 1)
    assert fc.shape == (16, 16, 3) and fc.min() >= 0 and fc.max() <= 1
    no_data = np.array([int(images.NO_DATA_COLOR[i : i + 2], 16) / 255 for i in (1, 3, 5)], dtype="float32")
    np.testing.assert_allclose(fc[0, 0], no_data)  # invalid pixel drawn in the no-data colour
    vv = images.composite_image(comp, valid, "s1asc", 1, s1="VV")
    assert vv.shape == (16, 16) and np.isnan(vv[0, 0]) and np.nanmax(vv) <= -5
    ds = _s1_patch()
    assert images.sensor_image(ds, 0, "s1dsc").shape == (16, 16, 3)
    assert images.sensor_image(ds, 0, "s1dsc", s1="VH").shape == (16, 16)
    with pytest.raises(ValueError, match="the S1 display must be .*, not 'HH'"):
        images.sensor_image(ds, 0, "s1dsc", s1="HH")
    assert "dB" in images.stretch_label("s1asc") and "2–98" in images.stretch_label("s2")


@pytest.mark.parametrize("s1", ["false_color", "VV", "VH"])
def test_galleries_draw_s1(s1, bokeh):
    import holoviews as hv

    comp, valid = _s1_comp()
    y = np.zeros((16, 16), dtype="float32")
    y[4:9, 4:9] = 1
    pre = images.composite_image(comp, valid, "s1asc", 0, s1=s1)
    post = images.composite_image(comp, valid, "s1asc", 1, s1=s1)
    label = images.stretch_label("s1asc", s1)

    prob = np.linspace(0, 1, 256, dtype="float32").reshape(16, 16)
    items = [{"id": "p1", "y": y, "prob": prob, "pre": pre, "post": post}]
    titles = _titles(figures.prediction_gallery(items, 0.5, sensor="s1asc", s1=s1))
    assert titles[0] == f"p1: s1asc before\n{label}" and titles[1] == f"s1asc after\n{label}"
    # rows 8-15 reach 0.5: 128 pixels predicted, 5 of them in the mask (its row 8), 20 mask pixels missed
    assert titles[3] == "errors at 0.50\nF1 0.07"

    ds = _s1_patch()
    items = [{"id": "p1", "y": y, "pred": prob > 0.5, "pre": images.sensor_image(ds, 0, "s1asc", s1)}]
    items[0]["post"] = images.sensor_image(ds, 3, "s1asc", s1)
    titles = _titles(figures.error_gallery(items, sensor="s1asc", s1=s1))
    assert len(titles) == 6 and titles[0] == f"p1: s1asc before\n{label}" and titles[1].endswith(label)
    assert titles[-1] == "Legend"  # the no-data colour, the mask outline and the error colours
    legend = list(figures.error_gallery(items, sensor="s1asc", s1=s1))[-1]
    words = [el.text for el in legend if isinstance(el, hv.Text)]
    assert words == [images.NO_DATA_LABEL, *figures._ERROR_LABELS.values(), "mapped landslides (mask)"]
    colours = list(legend.get(0).dframe()["color"])
    assert colours == [images.NO_DATA_COLOR, *(figures._ERROR_OPTS["cmap"][v] for v in figures._ERROR_LABELS)]

    panels = figures.composite_panels(comp, valid, y, "s1asc", "p1 (data)", s1=s1)
    assert _titles(panels) == [f"{when} the event (s1asc, {label})" for when in ("before", "after")]
    assert hv.Store.lookup_options("bokeh", panels, "plot").kwargs["title"] == "p1 (data)"


def test_galleries_fusion_one_row_per_sensor(bokeh):
    comp, valid = _s1_comp()
    rng = np.random.default_rng(2)
    s2 = rng.uniform(0, 1, (16, 16, 3)).astype("float32")
    s1 = images.composite_image(comp, valid, "s1asc", 1)
    y = np.zeros((16, 16), dtype="float32")
    prob = np.full((16, 16), 0.2, dtype="float32")
    item = {"id": "p1", "y": y, "prob": prob, "pred": prob > 0.5}
    item |= {"pre": {"s2": s2, "s1asc": s1}, "post": {"s2": s2, "s1asc": s1}}
    layout = figures.prediction_gallery([item], 0.5, sensor=["s2", "s1asc"])
    assert len(layout) == 9  # two rows of four, the second padded, and the legend
    bokeh.render(layout)  # draws (the padding included)
    titles = _titles(layout)
    assert titles[0] == "p1: s2 before\ntrue colour 2–98 %"
    assert titles[4] == f"s1asc before\n{images.stretch_label('s1asc')}"
    layout = figures.error_gallery([item], sensor=["s2", "s1asc"])
    assert len(layout) == 11  # two rows of five and the legend
    assert _titles(layout)[5].startswith("s1asc before")


# --------------------------------------------------------------------------------------------------
# Records: shares, and where the book's execution and a rerun write
# --------------------------------------------------------------------------------------------------
def test_share_records_the_fraction_and_glues_a_percentage(tmp_path):
    import json

    assert book._display_value(book.share(0.0287)) == "2.9 %"
    assert book._display_value(book.share(0.5)) == "50 %"
    assert book._display_value(book.share(float("nan"))) == "n/a"
    assert book._display_value(0.0287) == "0.0287"  # a plain float stays a number
    book.record("ch", results_dir=tmp_path, glue=False, positive=book.share(0.0287))
    assert json.loads((tmp_path / "ch.json").read_text())["positive"] == 0.0287


def test_outputs_of_the_book_and_of_a_rerun(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(book.BOOK_ENV, str(tmp_path / "book"))
    out = book.outputs()
    assert out.book and out.results_dir == tmp_path / "book" / "results"
    assert out.runs_dir == tmp_path / "book" / "runs" and out.run_name("ch05-x") == "ch05-x"
    monkeypatch.delenv(book.BOOK_ENV)
    rerun = book.outputs()
    assert not rerun.book and rerun.results_dir.parts[:2] == ("results", "reruns")
    assert rerun.results_dir.name == rerun.stamp and rerun.runs_dir == Path("runs")
    assert rerun.run_name("ch05-x") == f"ch05-x-{rerun.stamp}"
    assert "this rerun records its results in results/reruns/" in capsys.readouterr().out
    assert book.outputs().stamp == rerun.stamp  # one time per process (a kernel runs one chapter)
    given = book.outputs(tmp_path / "r", tmp_path / "runs")
    assert given.results_dir == tmp_path / "r" and given.runs_dir == tmp_path / "runs"
    assert book.book_dir() == book.BOOK_DIR


# --------------------------------------------------------------------------------------------------
# Viewer steps, one stretch per patch, the no-data colour
# --------------------------------------------------------------------------------------------------
def test_viewer_steps_pair_acquisitions_by_date_not_by_index():
    s2 = np.array(["2023-03-21", "2023-03-26", "2023-04-20"], dtype="datetime64[D]")
    s1 = np.array(
        ["2023-02-20", "2023-03-04", "2023-03-16", "2023-03-28", "2023-04-21"], dtype="datetime64[D]"
    )
    ref, steps, idx = images.viewer_steps({"s1asc": s1, "s2": s2})
    assert ref == "s2" and [str(d)[:10] for d in steps] == ["2023-03-21", "2023-03-26", "2023-04-20"]
    assert idx["s2"] == [0, 1, 2]
    assert idx["s1asc"] == [2, 3, 4]  # nearest: 03-16 (5 d) not 02-20 (index 0)
    tie = images.viewer_steps(
        {
            "s2": np.array(["2023-01-05"], "datetime64[D]"),
            "s1asc": np.array(["2023-01-03", "2023-01-07"], "datetime64[D]"),
        }
    )
    assert tie[2]["s1asc"] == [0]  # the earlier one on a tie
    ref, _, _ = images.viewer_steps({"s1dsc": s1})
    assert ref == "s1dsc"
    with pytest.raises(ValueError, match="no sensor"):
        images.viewer_steps({})


def _s2_ds(scale=(1.0, 3.0)):
    import xarray as xr

    rng = np.random.default_rng(0)
    n_t, h, w = len(scale), 8, 8
    data = {}
    for b in ("B02", "B03", "B04"):
        base = rng.uniform(500, 1500, (h, w))
        data[b] = (("time", "y", "x"), np.stack([base * s for s in scale]).astype("float32"))
    data["SCL"] = (("time", "y", "x"), np.full((n_t, h, w), 4, dtype="uint8"))
    times = np.array(["2023-01-01", "2023-01-11", "2023-01-21"][:n_t], dtype="datetime64[ns]")
    return xr.Dataset(data, coords={"time": times})


def test_one_stretch_per_patch_keeps_brightness_comparable_over_dates():
    ds = _s2_ds((1.0, 3.0))
    own = [images.true_color(ds, t) for t in range(2)]
    assert abs(own[0].mean() - own[1].mean()) < 0.05  # per-date stretch: both look alike
    limits = images.true_color_limits(ds)
    shared = [images.true_color(ds, t, limits=limits) for t in range(2)]
    assert shared[1].mean() > shared[0].mean() + 0.3  # one stretch: the brighter date is brighter


def test_stretch_leaves_out_pixels_of_unknown_quality():
    """Pixels of SCL 255 (unknown quality) are not usable for the stretch, like clouds: bright pixels of 255
    do not darken the rest."""
    ds = _s2_ds((1.0, 1.0, 1.0))
    bright = ds.copy(deep=True)
    for b in ("B02", "B03", "B04"):
        bright[b].values[2, :4] *= 6
    scl = ds["SCL"].values.copy()
    scl[2, :4] = 255
    unknown = bright.assign(SCL=(ds["SCL"].dims, scl))
    assert images.true_color_limits(bright)[1] > 1.5 * images.true_color_limits(ds)[1]
    without = ds.assign(SCL=(ds["SCL"].dims, scl))  # the same pixels left out, at their usual brightness
    assert images.true_color_limits(unknown) == pytest.approx(images.true_color_limits(without))


def test_no_data_pixels_get_their_own_colour():
    rgb = np.full((4, 4, 3), 0.5, dtype="float32")
    rgb[0, 0, 1] = np.nan
    flag = np.zeros((4, 4), dtype=bool)
    flag[3, 3] = True
    out = images.with_no_data(rgb, flag)
    colour = np.array([int(images.NO_DATA_COLOR[i : i + 2], 16) / 255 for i in (1, 3, 5)], dtype="float32")
    np.testing.assert_allclose(out[0, 0], colour)
    np.testing.assert_allclose(out[3, 3], colour)
    np.testing.assert_allclose(out[1, 1], 0.5)
    ds = _s2_ds((1.0,))
    ds["SCL"][0, 2, 2] = 0  # no data in the scene classification
    img = images.sensor_image(ds, 0, "s2")
    np.testing.assert_allclose(img[2, 2], colour)


def test_region_maps_one_panel_per_region_with_its_own_extent(bokeh):
    import pandas as pd

    cat = pd.DataFrame(
        {
            "key": ["italy_1", "italy_1", "italy_2", "hokkaido_5"],
            "sensor": ["s2", "s1asc", "s2", "s2"],
            "lon": [11.0, 11.0, 11.02, 142.0],
            "lat": [44.0, 44.0, 44.01, 42.7],
            "region": ["italy", "italy", "italy", "hokkaido"],
            "annotated": [True, True, False, True],
            "n_positive": [30, 30, 0, 12],
        }
    )
    layout = figures.region_maps(cat)
    assert len(layout) == 2
    titles = [hv_title(p) for p in layout]
    assert titles == ["italy\n2 locations, 1 annotated", "hokkaido\n1 locations, 1 annotated"]
    xlim = _plot_opts(layout[0])["xlim"]
    assert xlim[0] < 11.0 and xlim[1] > 11.02 and xlim[1] - xlim[0] < 1  # its own extent, not the globe
    with pytest.raises(ValueError, match="no location"):
        figures.region_maps(cat.assign(lon=np.nan))


def _plot_opts(el) -> dict:
    import holoviews as hv

    return hv.Store.lookup_options("bokeh", el, "plot").kwargs


def hv_title(el) -> str:
    return _plot_opts(el).get("title", "")


def test_mask_outline_is_one_line_around_every_blob(bokeh):
    m = np.zeros((12, 12), dtype="float32")
    m[2:5, 2:5] = 1
    m[8:10, 8:11] = 1
    line = figures.mask_outline(m, (0, 0, 12, 12))
    xy = line.array([0, 1])
    breaks = np.isnan(xy[:, 0])
    assert breaks.sum() == 1  # two closed contours joined by one NaN row
    pts = xy[~breaks]
    assert pts[:, 0].min() < 3 and pts[:, 0].max() > 10  # both blobs outlined


def test_chapter05_run_is_found_by_name_and_checked(tmp_path, monkeypatch):
    """Chapter 06's default run: chapter 05's run of this task and sensor, only when its run.json says it was
    trained on this task folder (and data folder) and on this sensor alone, and its best.pt exists."""
    monkeypatch.chdir(tmp_path)
    data, task_path = tmp_path / "data", tmp_path / "data" / "tasks" / "S12LS-LD"
    task_path.mkdir(parents=True)

    def write_run(sensor: str, config: dict, best: bool = True) -> Path:
        run = tmp_path / "runs" / f"ch05-S12LS-LD-unet_prepost-{sensor}"
        run.mkdir(parents=True, exist_ok=True)
        (run / "run.json").write_text(json.dumps({"config": config, "summary": {}}))
        if best:
            (run / "best.pt").write_bytes(b"")
        elif (run / "best.pt").exists():
            (run / "best.pt").unlink()
        return run

    rel = "data/tasks/S12LS-LD"  # as chapter 05 records it, relative to the folder it runs in
    assert book.chapter05_run(task_path, "s2", "runs", data) is None  # no run at all
    run = write_run("s2", {"task_dir": rel, "sensors": ["s2"], "data_dir": None})
    assert book.chapter05_run(task_path, "s2", "runs", data) == Path("runs") / run.name
    assert book.chapter05_run(task_path, "s1asc", "runs", data) is None  # another sensor's run: none
    write_run("s2", {"task_dir": rel, "sensors": ["s2", "s1asc"], "data_dir": None})  # a fusion run
    assert book.chapter05_run(task_path, "s2", "runs", data) is None
    write_run("s2", {"task_dir": "elsewhere/tasks/S12LS-LD", "sensors": ["s2"], "data_dir": None})
    assert book.chapter05_run(task_path, "s2", "runs", data) is None  # another task folder
    write_run("s2", {"task_dir": rel, "sensors": ["s2"], "data_dir": str(tmp_path / "other")})
    assert book.chapter05_run(task_path, "s2", "runs", data) is None  # another data folder
    write_run("s2", {"task_dir": rel, "sensors": ["s2"], "data_dir": str(data)}, best=False)
    assert book.chapter05_run(task_path, "s2", "runs", data) is None  # no best.pt


# --------------------------------------------------------------------------------------------------
# Static renderings: drawn from the same HoloViews object with matplotlib
# --------------------------------------------------------------------------------------------------
def _interactive_figures():
    import pandas as pd

    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "val_loss": 1.2 / e,
            "val_f1": e / 10,
            "val_f1_best": e / 9,
            "val_iou": e / 20,
        }
        for e in range(1, 6)
    ]
    curves = pd.DataFrame(
        {"method": ["model"] * 3 + ["reference"] * 3, "recall": [0.0, 0.5, 1.0] * 2}
        | {"precision": [1.0, 0.8, 0.1, 1.0, 0.4, 0.1], "threshold": [0.9, 0.5, 0.1] * 2}
    )
    rows = [
        {"split": split, "test_set": test_set, "f1": 0.6, "f1_low": 0.5, "f1_high": 0.7}
        | {"ap": 0.5, "ap_low": 0.4, "ap_high": 0.6}
        for split in ("published", "blocked")
        for test_set in ("own test", "common")
    ]
    from types import SimpleNamespace

    from s12ls_utils.known_issues import ISSUES

    files = [
        {"issue": key, "sensor": sensor, "path": f"{key}_{sensor}_{i}"}
        for n, key in enumerate(k for k in ISSUES if k != "ad_annotated_only")
        for sensor in ("s1asc", "s2")
        for i in range(n % 3 + 1)
    ]
    return {
        "known_issue_bars": figures.known_issue_bars(SimpleNamespace(files=pd.DataFrame(files))),
        "training_curves": figures.training_curves(history),
        "pr_curves_plot": figures.pr_curves_plot(curves, 0.1, data="synthetic sample"),
        "split_optimism_plot": figures.split_optimism_plot(pd.DataFrame(rows)),
    }


@pytest.mark.parametrize(
    "name", ["known_issue_bars", "training_curves", "pr_curves_plot", "split_optimism_plot"]
)
def test_static_is_drawn_from_the_interactive_figure(name):
    """Every figure a chapter shows statically (book.static) renders, with the Bokeh figure's titles, axis
    labels, legend positions and colours carried over to matplotlib."""
    hv = pytest.importorskip("holoviews")
    hv.extension("bokeh", logo=False)
    obj = _interactive_figures()[name]
    converted = book.for_matplotlib(obj)
    panels = [e for e in obj.traverse(lambda x: x, [hv.Overlay])] or [obj]
    panels_mpl = [e for e in converted.traverse(lambda x: x, [hv.Overlay])] or [converted]
    for bk, mpl in zip(panels, panels_mpl, strict=True):
        want = hv.Store.lookup_options("bokeh", bk, "plot").kwargs
        got = hv.Store.lookup_options("matplotlib", mpl, "plot").kwargs
        for key in ("title", "xlabel", "ylabel", "legend_position"):
            if key in want:
                assert got.get(key) == want[key], (name, key)

        def layers(x):
            return list(x) if isinstance(x, hv.Overlay) else [x]

        for layer, layer_mpl in zip(layers(bk), layers(mpl), strict=True):
            color = hv.Store.lookup_options("bokeh", layer, "style").kwargs.get("color")
            if isinstance(color, str):
                assert hv.Store.lookup_options("matplotlib", layer_mpl, "style").kwargs["color"] == color
    static = book.static(obj, f"{name}, drawn statically")
    assert isinstance(static, book.StaticFigure) and static.png.startswith(b"\x89PNG")
    assert 300 < static.width_px < 1200 and static.height_px > 200
    assert repr(static).endswith(f"{name}, drawn statically")


def test_static_needs_a_description_and_one_figure():
    hv = pytest.importorskip("holoviews")
    hv.extension("bokeh", logo=False)
    with pytest.raises(ValueError, match="alt text"):
        book.static(_interactive_figures()["training_curves"], " ")
    with pytest.raises(TypeError, match="HoloMap"):
        book.static(hv.HoloMap({i: hv.Curve([0, i]) for i in range(2)}), "two frames")


def test_setup_loads_the_extension_without_the_logo(tmp_path, restore_cwd, monkeypatch):
    """The one-call chapter set-up: repository root as working folder, Bokeh loaded inline without logo."""
    hv = pytest.importorskip("holoviews")
    pytest.importorskip("hvplot.pandas")  # imported before hv.extension is replaced below
    root = _checkout(tmp_path)
    os.chdir(root / "book")
    calls = []
    monkeypatch.setattr(hv, "extension", lambda *a, **kw: calls.append((a, kw)))
    book.setup()
    assert Path.cwd() == root.resolve()
    assert calls == [(("bokeh",), {"inline": True, "logo": False})]
    # hvplot (1.4 s per kernel) is imported only when asked for
    monkeypatch.delitem(sys.modules, "hvplot.pandas")
    book.setup()
    assert "hvplot.pandas" not in sys.modules
    book.setup(hvplot=True)
    assert "hvplot.pandas" in sys.modules


def test_recorder_binds_the_chapter_and_records_a_table(tmp_path):
    """``recorder`` writes into the folder it was given; a table is recorded as its rows, index included."""
    import pandas as pd

    rec = book.recorder("99-x", tmp_path)
    table = pd.DataFrame({"files": [3, 4]}, index=pd.Index(["s2", "s1asc"], name="sensor"))
    rec(counts=table, n=np.int64(7))
    got = json.loads((tmp_path / "99-x.json").read_text())
    assert got == {"counts": [{"sensor": "s2", "files": 3}, {"sensor": "s1asc", "files": 4}], "n": 7}


def test_flat_names_a_tables_cells_for_the_record():
    import pandas as pd

    index = pd.MultiIndex.from_tuples([("S12LS-LD", "s2"), ("S12LS-AD", "aligned")], names=["task", "scope"])
    totals = pd.Series([4988, 11719], index=index).rename({"S12LS-LD": "ld", "S12LS-AD": "ad"})
    assert book.flat(totals, "real_") == {"real_ld_s2": 4988, "real_ad_aligned": 11719}
    got = book.flat(pd.DataFrame({"train": [1, 2], "test": [3, None]}, index=["a", "b"]), suffix="_n")
    assert list(got) == ["a_train_n", "a_test_n", "b_train_n", "b_test_n"]
    assert got["a_test_n"] == 3 and np.isnan(got["b_test_n"])  # a missing cell stays, as NaN
    assert book.flat({"drift": 0.1, "regions": 7}, "blk_ld_") == {"blk_ld_drift": 0.1, "blk_ld_regions": 7}
