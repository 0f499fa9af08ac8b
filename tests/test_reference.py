"""The vendored published metadata: what it holds, that it re-derives from the archive, and that the
published splits and task definitions are reproduced exactly from it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s12ls_utils import reference, splits

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = ROOT / "data" / "reference"
ARCHIVE = ROOT.parent / "shared" / "reference" / "sen12landslides-5b313f2.tar.xz"

#: Published counts per task and scope (upstream README / config files; DESIGN §3.2).
PUBLISHED = {
    "S12LS-LD": {"s2": 4988, "s1asc": 4793, "s1dsc": 4666, "aligned": 4392},
    "S12LS-AD": {"s2": 13628, "s1asc": 13306, "s1dsc": 12622, "aligned": 11719},
}


def test_no_vendored_file_is_over_2_mb():
    files = [p for p in REF_DIR.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {
        "patches.parquet",
        "experiments.parquet",
        "norms.json",
        "configs.json",
        "low_quality_ids.json",
        "file_stats.parquet",
        "region_stats.parquet",
        "anomalies.parquet",
        "source.json",
        "derive.py",
        "README.md",
    }
    assert max(p.stat().st_size for p in files) < 2_000_000


def test_counts_are_the_published_ones():
    c = reference.counts().set_index(["task", "scope"])
    for task, scopes in PUBLISHED.items():
        for scope, n in scopes.items():
            assert c.loc[(task, scope), "total"] == n, (task, scope)
    # 20 % test first, then 20 % of the rest for validation
    ld = c.loc[("S12LS-LD", "s2")]
    assert (ld["train"], ld["val"], ld["test"]) == (3192, 798, 998)


def test_patches_table_columns_and_facts():
    df = reference.patches()
    assert len(df) == 13628 + 13306 + 12622
    assert not df.duplicated(["sensor", "id"]).any()
    assert set(df["region"].astype(str)) >= {"usa_alaska", "usa_puertorico", "italy", "kyrgyzstan1"}
    ak = df[df["region"] == "usa_alaska"]
    assert (ak["inventory"] == "usa").all() and len(ak[ak["sensor"] == "s2"]) == 147
    # every file name is <region>_<sensor>_<id>.nc and the id is <region>_<id>
    assert (
        df["file"]
        == df["region"].astype(str)
        + "_"
        + df["sensor"].astype(str)
        + "_"
        + df["patch_id"].astype(str)
        + ".nc"
    ).all()
    assert (df["id"] == df["region"].astype(str) + "_" + df["patch_id"].astype(str)).all()
    # S12LS-LD: >= 50 landslide pixels, no usa_alaska or nepal
    ld = df[df["split_S12LS-LD"].notna()]
    assert ld["n_positive"].min() >= 50
    assert not ld["region"].isin(["usa_alaska", "nepal"]).any()
    # locations: UTM zones, projected centres on the 10 m grid; only 236 S2 AD patches lack one
    assert df["lon"].isna().sum() == 236 and (df.loc[df["lon"].isna(), "sensor"] == "s2").all()
    located = df.dropna(subset=["x"])
    assert located["epsg"].between(32601, 32760).all()
    assert np.allclose(located["x"] % 10, 0) and np.allclose(located["y"] % 10, 0)
    # the same location has the same position for every sensor
    per_id = located.groupby("id")[["x", "y", "epsg"]].nunique()
    assert (per_id <= 1).all().all()
    assert df["low_quality"].sum() > 0


def test_region_sizes_match_real_format_notes():
    # REAL-FORMAT.md lists the S2 patches per region of the published S12LS-AD
    s2 = reference.split_frame("S12LS-AD", "s2")
    counts = s2["region"].astype(str).value_counts()
    assert counts["italy"] == 5321 and counts["nepal"] == 14 and counts["lanaodelnorte"] == 71
    assert counts.sum() == 13628 and len(counts) == 16


@pytest.mark.parametrize("task", list(PUBLISHED))
@pytest.mark.parametrize("scope", reference.SCOPES)
def test_reference_split_reproduces_every_published_split(task, scope):
    """tasks/S12LS-LD/harmonized/{s2,s1asc,s1dsc}/splits.json, splits_aligned.json and
    tasks/S12LS-AD/raw/{s2,s1asc,s1dsc}/splits.json, splits_aligned.json, assignment for assignment."""
    pub = reference.split_frame(task, scope)
    shuffled = pub.sample(frac=1.0, random_state=7)  # any row order
    got = splits.reference_split(shuffled[["file", "n_positive"]])
    assert got.index.equals(shuffled.index)
    assert (got == shuffled["split"]).all(), f"{(got != shuffled['split']).sum()} assignments differ"


def test_reference_split_depends_on_the_seed_and_checks_input():
    pub = reference.split_frame("S12LS-LD", "s2")
    other = splits.reference_split(pub[["file", "n_positive"]], seed=43)
    assert (other != pub["split"]).mean() > 0.2
    with pytest.raises(KeyError, match="n_positive"):
        splits.reference_split(pub[["file"]])
    with pytest.raises(ValueError, match="twice"):
        splits.reference_split(pd.concat([pub.head(3), pub.head(1)])[["file", "n_positive"]])
    with pytest.raises(ValueError, match="test_size"):
        splits.reference_split(pub[["file", "n_positive"]], test_size=1.0)
    empty = splits.reference_split(pub.head(0)[["file", "n_positive"]])
    assert empty.empty


def test_presets_select_the_published_tasks_on_the_reference_catalog():
    cat = reference.catalog()
    for task, scopes in PUBLISHED.items():
        sel = splits.select(cat, task)
        assert {s: len(df) for s, df in sel.items()} == {s: n for s, n in scopes.items() if s != "aligned"}
        # and exactly the published files
        for sensor, df in sel.items():
            pub = set(reference.split_frame(task, sensor)["file"])
            assert {Path(p).name for p in df["path"].astype(str)} == pub


def test_make_splits_with_the_published_preset_gives_the_published_assignment():
    res = splits.make_splits(reference.catalog(), "S12LS-LD")
    assert res.method == "reference"
    counts = res.counts().set_index("scope")["total"].to_dict()
    assert counts == PUBLISHED["S12LS-LD"]
    for scope, frame in res.scopes().items():
        pub = reference.split_frame("S12LS-LD", scope).set_index("id")["split"]
        got = frame.set_index(frame["key"].astype(str))["split"]
        assert (got.reindex(pub.index) == pub).all(), scope


def test_strict_presets_have_their_own_names_and_stricter_rules():
    for name, published in (("S12LS-LD-strict", "S12LS-LD"), ("S12LS-AD-strict", "S12LS-AD")):
        strict, pub = splits.load_config(name), splits.load_config(published)
        assert strict.name == name and strict.method == "spatial" and strict.exclude_low_quality
        assert pub.method == "reference" and not pub.exclude_low_quality
    cat = reference.catalog()
    lq = reference.low_quality_ids()
    sel = splits.select(cat, "S12LS-AD-strict")
    for sensor, df in sel.items():
        assert not df["key"].astype(str).isin(lq).any()
        n_lq = reference.patches(sensor)["low_quality"].sum()
        assert len(df) == PUBLISHED["S12LS-AD"][sensor] - n_lq


def test_norms_configs_and_statistics():
    ld = reference.norms("S12LS-LD")
    assert ld["s1asc"]["mean"]["VV"] < 0  # harmonized: dB
    assert reference.norms("S12LS-LD", "raw")["s1asc"]["mean"]["VV"] > 0  # raw: linear
    assert set(ld["aligned"]) == {"s1asc", "s1dsc", "s2"}
    with pytest.raises(ValueError, match="harmonized"):
        reference.norms("S12LS-AD", "harmonized")
    cfg = reference.configs()["S12LS-LD"]["harmonized"]["filter_criteria"]
    assert cfg["min_annotated_pixel"] == 50 and cfg["exclude_patterns"] == ["usa_alaska", "nepal"]
    assert len(reference.low_quality_ids()) == 2536
    fs = reference.file_stats()
    assert set(fs["variable"].astype(str)) == {"VH", "VV", "DEM"} and len(fs) == 3 * 15284
    vh = fs[fs["variable"] == "VH"]["mean"]
    assert 0.0 < vh.median() < 0.1  # linear backscatter
    rs = reference.region_stats()
    assert set(rs["sensor"].astype(str)) == {"s1asc", "s1dsc", "s2"}
    assert set(rs["statistic"].astype(str)) == {"mean", "std", "min", "max", "p1", "p99"}
    assert len(reference.anomalies()) > 0
    src = reference.source()
    assert src["commit"] == "5b313f2" and src["license"] == "CC BY 4.0"


def test_old_format_s1_norms_are_vh_vv_dem():
    en = reference.experiment_norms()["exp1/final"]["s1asc"]["mean"]
    assert set(en) == {"VH", "VV", "DEM"}
    assert en["VH"] < en["VV"]  # VH is the weaker polarisation
    exp = reference.experiments()
    assert set(exp["experiment"].astype(str)) == {
        "exp1/final",
        *(f"exp3/{f}" for f in ("africa", "america", "central_asia", "europe", "oceania", "southeast_asia")),
    }


def test_unknown_names_raise_clear_errors():
    with pytest.raises(ValueError, match="S12LS-LD"):
        reference.split_frame("S12LS-XX", "s2")
    with pytest.raises(ValueError, match="aligned"):
        reference.split_frame("S12LS-LD", "s3")
    with pytest.raises(ValueError, match="s1asc"):
        reference.patches("s3")


def test_missing_reference_folder_says_where_to_look(tmp_path, monkeypatch):
    monkeypatch.setenv("S12LS_REFERENCE_DIR", str(tmp_path))
    reference._parquet.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="S12LS_REFERENCE_DIR"):
            reference.patches()
    finally:
        monkeypatch.delenv("S12LS_REFERENCE_DIR")
        reference._parquet.cache_clear()


@pytest.mark.skipif(not ARCHIVE.is_file(), reason="../shared/reference is not present")
def test_rederiving_from_the_archive_gives_the_committed_files(tmp_path):
    spec = importlib.util.spec_from_file_location("derive", REF_DIR / "derive.py")
    derive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(derive)
    written = derive.derive(ARCHIVE, tmp_path)
    assert set(written) == {p.name for p in REF_DIR.iterdir() if p.suffix in (".parquet", ".json")}
    for name, path in written.items():
        if name.endswith(".parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(REF_DIR / name))
        else:
            assert json.loads(path.read_text()) == json.loads((REF_DIR / name).read_text()), name
    sums = (ARCHIVE.parent / "SHA256SUMS").read_text().split()
    assert json.loads((tmp_path / "source.json").read_text())["archive_sha256"] == sums[0]


@pytest.mark.skipif(not ARCHIVE.is_file(), reason="../shared/reference is not present")
def test_load_task_reads_the_real_old_format_folders(tmp_path):
    """experiments/exp1/final and exp3/africa as published: paths, splits and S1 norms in VH, VV, DEM order."""
    import tarfile

    with tarfile.open(ARCHIVE, "r:xz") as tar:
        members = [m for m in tar.getmembers() if "/experiments/" in m.name and m.isfile()]
        tar.extractall(tmp_path, members=members, filter="data")
    top = next(tmp_path.iterdir())
    task = splits.load_task(top / "experiments" / "exp1" / "final")
    assert task.format == "old" and task.sensors == ["s1asc", "s1dsc", "s2"]
    raw = json.loads((top / "experiments/exp1/final/s1asc/norm_data.json").read_text())
    assert task.norm["s1asc"]["mean"]["VH"] == pytest.approx(raw["mean"][0])
    assert task.norm["s1asc"]["mean"]["VV"] == pytest.approx(raw["mean"][1])
    assert task.norm["s1asc"]["std"]["DEM"] == pytest.approx(raw["std"][2])
    mean, _ = task.channel_stats("s1asc")  # our channel order, VV first
    assert list(mean[:2]) == pytest.approx([raw["mean"][1], raw["mean"][0]])
    s2 = json.loads((top / "experiments/exp1/final/s2/norm_data.json").read_text())
    assert task.norm["s2"]["mean"]["B02"] == pytest.approx(s2["mean"][0])
    assert task.norm["s2"]["mean"]["DEM"] == pytest.approx(s2["mean"][-1])
    exp = reference.experiments()
    exp1 = exp[(exp["experiment"] == "exp1/final") & (exp["sensor"] == "s2")]
    for split in splits.SPLITS:
        assert {Path(e["path"]).name for e in task.splits["s2"][split]} == set(
            exp1.loc[exp1["split"] == split, "file"]
        )
    africa = splits.load_task(top / "experiments" / "exp3" / "africa")
    assert africa.counts().set_index("scope").loc["s2", "total"] == 13628
