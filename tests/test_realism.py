"""``s12ls_utils.sample.realism``: the folder's side and the real side of every quantity, computed directly.

The first part checks that the numbers are the right ones (on the suite's small sample); the last part
bounds how realistic the default sample is (the generator is calibrated against the reference).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from real_format import real_data_fixture  # noqa: F401  (fixture real_data)

from s12ls_utils import book, cli, reference
from s12ls_utils.catalog import build_catalog
from s12ls_utils.io import open_patch
from s12ls_utils.sample import generate, realism

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(small_sample):
    return realism.realism(small_sample, scheduler="synchronous")


def _q(x):
    return np.quantile(np.asarray(x, dtype="float64"), realism.QUANTILES)


def test_report_has_every_quantity(report):
    assert set(report.table.columns) == set(realism.TABLE_COLUMNS)
    assert list(report.distances.columns)[:4] == ["quantity", "group", "ks", "median_ratio"]
    assert set(report.distances["quantity"]) == set(realism.QUANTITIES)
    assert set(report.table["quantity"]) == set(realism.QUANTITIES)
    groups = set(zip(report.distances["quantity"], report.distances["group"], strict=True))
    for stat in ("mean", "std", "p99"):
        for orbit in ("s1asc", "s1dsc"):
            for band in ("VH", "VV"):
                assert (f"s1_{stat}", f"{orbit}/{band}") in groups
    assert ("landslide_px", "LD-like") in groups and ("landslide_px", "annotated") in groups
    # japan_hokkaido is matched to the real hokkaido
    assert "hokkaido" in set(report.table.loc[report.table["quantity"] == "s2_mean", "group"])
    assert report.failures == []
    text = report.to_text()
    for q in realism.QUANTITIES:
        assert q in text


def test_ks_in_unit_interval(report):
    ks = report.distances["ks"].dropna()
    assert len(ks) >= 16
    assert ((ks >= 0) & (ks <= 1)).all()
    ratios = report.distances["median_ratio"].dropna()
    assert (ratios >= 0).all()


def test_real_side_equals_reference(report):
    fs = reference.file_stats()
    for stat in ("mean", "std", "p99"):
        for band in ("VH", "VV"):
            real = fs.loc[fs["variable"] == band, stat].to_numpy(dtype="float64")
            for orbit in ("s1asc", "s1dsc"):  # both orbits against the s1dsc reference
                got = [
                    report.value(f"s1_{stat}", f"{orbit}/{band}", f"q{p}", "real") for p in ("05", "50", "95")
                ]
                np.testing.assert_allclose(got, _q(real), rtol=1e-12)
    dem = fs.loc[fs["variable"] == "DEM", "mean"]
    assert report.value("dem_mean", "s1dsc", "q50", "real") == pytest.approx(float(np.median(dem)))
    ld = reference.split_frame("S12LS-LD", "s2")["n_positive"]
    assert report.value("landslide_px", "LD-like", "q50", "real") == pytest.approx(float(ld.median()))
    assert report.value("landslide_px", "LD-like", "n", "real") == len(ld)
    rs = reference.region_stats()
    hk = rs[(rs["sensor"] == "s2") & (rs["region"] == "hokkaido") & (rs["statistic"] == "mean")]
    assert report.value("s2_mean", "hokkaido", "mean", "real") == pytest.approx(
        float(hk.loc[hk["over_files"] == "mean", "value"].iloc[0])
    )
    s2 = reference.patches("s2")
    it = s2[s2["region"] == "italy"]
    assert report.value("annotated_share", "italy", "share", "real") == pytest.approx(
        100 * float((it["n_positive"] > 0).mean())
    )
    # tiling of the real S2 lattice: 92 % of the LD test tiles touch a training tile (DESIGN); most tiles touch one
    assert 80 < report.value("tiles_touching", "s2", "share", "real") <= 100
    assert report.value("tiles_touching", "s2", "n", "real") == int(s2["x"].notna().sum())


def test_data_side_equals_direct_computation(report, small_sample):
    cat = build_catalog(small_sample, scheduler="synchronous", progress=False)
    s1 = cat[cat["sensor"].astype(str) == "s1dsc"].iloc[0]
    with open_patch(small_sample / str(s1["path"]), s1_unit="linear") as ds:
        vv = ds["VV"].values.astype("float64")
        dem = ds["DEM"].values.astype("float64")
    vv = vv[np.isfinite(vv)]
    summ = realism.file_summary(small_sample / str(s1["path"]))
    assert summ["VV_mean"] == pytest.approx(vv.mean())
    assert summ["VV_std"] == pytest.approx(vv.std())
    assert summ["VV_p99"] == pytest.approx(np.percentile(vv, 99))
    assert summ["DEM_mean"] == pytest.approx(np.nanmean(dem))
    assert float(summ["VV_mean"]) in set(report.samples[("s1_mean", "s1dsc/VV")]["data"].tolist())
    # the folder's quantiles are those of every file's summary
    vv_means = [
        realism.file_summary(small_sample / str(p))["VV_mean"]
        for p in cat.loc[cat["sensor"].astype(str) == "s1dsc", "path"]
    ]
    got = [report.value("s1_mean", "s1dsc/VV", f"q{p}") for p in ("05", "50", "95")]
    np.testing.assert_allclose(got, _q(vv_means), rtol=1e-12)
    assert report.value("s1_mean", "s1dsc/VV", "q50_dB") == pytest.approx(
        float(np.median(10 * np.log10(vv_means)))
    )
    # S2: the ten bands pooled, no-data zeros out, raw terms (the sample is the raw release: stored values)
    s2 = cat[cat["sensor"].astype(str) == "s2"].iloc[0]
    with open_patch(small_sample / str(s2["path"]), harmonize=False) as ds:
        bands = np.stack(
            [
                ds[b].values.astype("float64")
                for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
            ]
        )
    bands = bands[np.isfinite(bands) & (bands != 0)]
    assert realism.file_summary(small_sample / str(s2["path"]))["band_mean"] == pytest.approx(bands.mean())
    # landslide pixels and annotated share from the catalog
    cs2 = cat[cat["sensor"].astype(str) == "s2"]
    ann = cs2.loc[cs2["n_positive"] > 0, "n_positive"]
    assert report.value("landslide_px", "annotated", "q50") == pytest.approx(float(ann.median()))
    assert report.value("landslide_px", "annotated", "n") == len(ann)


def test_joint_quantities_equal_direct_computation(report, small_sample):
    """The orbit difference per location, the VV/VH ratio per file, the NaN/Inf and repeated-step counts and
    the SCL 255 share, computed here from the files and the generator's record."""
    cat = build_catalog(small_sample, scheduler="synchronous", progress=False)
    summ = {str(p): realism.file_summary(small_sample / str(p)) for p in cat["path"]}
    vv = {
        (str(k), str(s)): summ[str(p)].get("VV_mean")
        for k, s, p in zip(cat["key"], cat["sensor"], cat["path"], strict=True)
        if str(s) != "s2"
    }
    diffs = sorted(
        abs(10 * np.log10(vv[(k, "s1asc")]) - 10 * np.log10(vv[(k, "s1dsc")]))
        for k in {k for k, _ in vv}
        if (k, "s1asc") in vv and (k, "s1dsc") in vv
    )
    assert diffs and report.value("s1_orbit_diff", "VV", "n") == len(diffs)
    # (to_db works in float32)
    np.testing.assert_allclose(sorted(report.samples[("s1_orbit_diff", "VV")]["data"]), diffs, atol=1e-5)
    assert report.value("s1_orbit_diff", "VV", "max") == pytest.approx(max(diffs), abs=1e-5)
    ratios = [
        10 * np.log10(summ[str(p)]["VV_mean"] / summ[str(p)]["VH_mean"])
        for p, s in zip(cat["path"], cat["sensor"], strict=True)
        if str(s) == "s1dsc"
    ]
    assert report.value("s1_ratio", "s1dsc", "q50") == pytest.approx(float(np.median(ratios)), abs=1e-5)
    fs = reference.file_stats()
    w = fs.pivot_table(index="file", columns="variable", values="mean", observed=True)
    real = 10 * np.log10(w["VV"] / w["VH"]).dropna()
    assert report.value("s1_ratio", "s1dsc", "q50", "real") == pytest.approx(float(real.median()), abs=1e-5)
    man = generate.load_manifest(small_sample)
    s2 = [f for f in man["files"] if f["sensor"] == "s2"]
    share = 100 * sum(len(f["scl_unknown_steps"]) for f in s2) / (15 * len(s2))
    assert report.value("scl_unknown", "s2", "share") == pytest.approx(share)
    assert report.value("scl_unknown", "s2", "share", "real") == pytest.approx(100 * 3285 / (1133 * 15))
    for s in ("s1asc", "s1dsc", "s2"):
        assert report.value("nonfinite", s, "values") == 0 == report.value("nonfinite", s, "values", "real")
        steps = sum(f["n_padded"] for f in man["files"] if f["sensor"] == s)
        assert report.value("repeated_dates", s, "steps") == steps
    assert report.value("repeated_dates", "s2", "steps", "real") == 0
    assert np.isnan(report.value("repeated_dates", "s1asc", "steps", "real"))  # S1 dates were not checked
    head = report.headline()
    assert head["realism_orbit_diff_max"] == pytest.approx(max(diffs), abs=1e-5)
    assert head["realism_nonfinite"] == 0 and head["realism_repeated_s2_steps"] == 0


def test_file_summary_counts_gaps_and_repeated_dates(small_sample, tmp_path, real_data):
    """NaN values and repeated time steps are counted as stored (the writer's padding; a file with gaps)."""
    import shutil

    import netCDF4

    s1 = next((small_sample / "s1asc").glob("*.nc"))
    dst = tmp_path / "s1asc" / s1.name
    dst.parent.mkdir()
    shutil.copyfile(s1, dst)
    with netCDF4.Dataset(dst, "r+") as nc:
        nc["VV"][2, :3, :] = np.nan  # 3 x 128 values
        nc["VH"][0, 0, 0] = np.inf
    got = realism.file_summary(dst)
    assert got["nonfinite"] == 3 * 128 + 1 and np.isfinite(got["VV_mean"])
    assert realism.file_summary(s1)["nonfinite"] == 0
    assert realism.file_summary(real_data.files["padded"])["repeated_steps"] == 3
    assert realism.file_summary(real_data.files["multi"])["repeated_steps"] == 0


def test_connected_areas_on_a_small_lattice():
    import pandas as pd

    w = 1280.0
    frame = pd.DataFrame(
        {
            "key": ["a", "b", "c", "d", "e"],
            "epsg": [32632] * 4 + [32633],
            # a-b side by side, c diagonal to b (8-neighbour), d far away; e in another zone
            "center_x": [0.0, w, 2 * w, 50 * w, 0.0],
            "center_y": [0.0, 0.0, w, 0.0, 0.0],
        }
    )
    touching, sizes = realism.connected_areas(frame)
    assert touching.to_dict() == {"a": True, "b": True, "c": True, "d": False, "e": False}
    assert sizes.tolist() == [3, 1, 1]


def test_match_region():
    real = ["hokkaido", "usa_alaska", "italy"]
    assert realism.match_region("japan_hokkaido", real) == "hokkaido"
    assert realism.match_region("hokkaido", real) == "hokkaido"
    assert realism.match_region("usa_alaska", real) == "usa_alaska"
    assert realism.match_region("usa_puertorico", real) is None


def test_static_figure(report):
    fig = book.static_realism(report)
    assert fig.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "KS" in fig.alt


def test_cli_prints_the_table(small_sample, tmp_path, capsys):
    out = tmp_path / "realism.csv"
    assert cli.main(["realism", str(small_sample), "--scheduler", "synchronous", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Distances" in text and "s1_mean" in text and "tiles_touching" in text
    assert out.is_file() and "quantity,group,statistic,real,data,ratio" in out.read_text()


def test_bad_folder_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        realism.realism(tmp_path / "missing")
    with pytest.raises(ValueError, match="no readable patch file"):
        realism.realism(tmp_path)
    assert cli.main(["realism", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Bounds on the default sample (the one the book runs on): the generator is calibrated against the reference
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def default_report(tmp_path_factory):
    """The report of the default sample: ``data/sample`` when it is the default one (``make`` wrote it, the
    chapters ran on it), else a fresh one written here."""
    data = ROOT / "data" / "sample"
    try:
        man = generate.load_manifest(data)
        ok = (man["n_per_sensor"], man["seed"], man["release"], man.get("dims"), man.get("pad_s2")) == (
            generate.DEFAULT_N_PER_SENSOR,
            0,
            "raw",
            ["time", "x", "y"],
            False,
        )
    except (OSError, ValueError, KeyError):
        ok = False
    if not ok:
        data = tmp_path_factory.mktemp("default") / "sample"
        generate.make_sample(data, progress=False)
    return realism.realism(data, progress=False)


@pytest.mark.parametrize("group", [f"{o}/{p}" for o in ("s1asc", "s1dsc") for p in ("VH", "VV")])
@pytest.mark.parametrize("q", ["q05", "q50", "q95"])
def test_s1_per_file_means_within_30_percent(default_report, group, q):
    ratio = default_report.value("s1_mean", group, q, side="ratio")
    assert 1 / 1.3 <= ratio <= 1.3, (group, q, ratio)


def test_s2_region_means_within_20_percent(default_report):
    t = default_report.table
    rows = t[(t["quantity"] == "s2_mean") & (t["statistic"] == "mean")]
    assert len(rows) >= 3, rows  # every sample region the reference has statistics for
    for _, r in rows.iterrows():
        assert 0.8 <= r["ratio"] <= 1.2, (r["group"], r["real"], r["data"])


def test_ld_landslide_pixels_median_within_a_factor_1_5(default_report):
    ratio = default_report.value("landslide_px", "LD-like", "q50", side="ratio")
    assert 1 / 1.5 <= ratio <= 1.5, ratio


def test_orbits_agree_per_location(default_report):
    """Ascending and descending files of one location are calibrated together: the per-location difference
    of the per-file mean VV is at most 5 dB at the 95th percentile and 8 dB at worst."""
    q95_bound, max_bound = realism.ORBIT_DIFF_BOUNDS
    assert (q95_bound, max_bound) == (5.0, 8.0)
    assert default_report.value("s1_orbit_diff", "VV", "n") > 100
    assert default_report.value("s1_orbit_diff", "VV", "q95") <= q95_bound
    assert default_report.value("s1_orbit_diff", "VV", "max") <= max_bound


@pytest.mark.parametrize("orbit", ["s1asc", "s1dsc"])
def test_vv_vh_ratio_like_the_real_files(default_report, orbit):
    """The per-file VV/VH ratio (dB) stays near the real s1dsc files (5.7 / 6.3 / 9.0 dB at 5 / 50 / 95 %); its
    upper tail is a little short in the sample (8.3 dB at q95 before the orbits were calibrated together)."""
    for q, tol in (("q05", 1.0), ("q50", 0.5), ("q95", 1.25)):
        real = default_report.value("s1_ratio", orbit, q, "real")
        data = default_report.value("s1_ratio", orbit, q)
        assert abs(data - real) <= tol, (orbit, q, real, data)


def test_file_facts_like_the_real_files(default_report):
    """No NaN/Inf anywhere, no repeated S2 date, whole SCL 255 frames at about the real rate in every S2
    file."""
    for s in ("s1asc", "s1dsc", "s2"):
        assert default_report.value("nonfinite", s, "values") == 0, s
    assert default_report.value("repeated_dates", "s2", "steps") == 0
    real = default_report.value("scl_unknown", "s2", "share", "real")
    assert abs(default_report.value("scl_unknown", "s2", "share") / real - 1) <= 0.25
    assert default_report.value("scl_unknown", "s2", "files_share") == 100


def test_most_tiles_touch_another(default_report):
    assert default_report.value("tiles_touching", "s2", "share") >= 60


def test_default_sample_ld_split_is_big_enough(default_report, tmp_path):
    """The published S12LS-LD recipe on the default sample: at least 12 test and 6 validation patches (S2)."""
    from s12ls_utils import tasks

    tasks.write_task(default_report.data_dir, tmp_path / "tasks", "S12LS-LD", progress=False)
    row = tasks.load_task(tmp_path / "tasks" / "S12LS-LD").counts().set_index("scope").loc["s2"]
    assert row["test"] >= 12 and row["val"] >= 6, row
