"""Offline tests for :mod:`s12ls_utils.download` (archives are built on the fly; the Hub is faked)."""

from __future__ import annotations

import fnmatch
import io
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from s12ls_utils import download as dl
from s12ls_utils.download import (
    REPO_ID,
    SENSORS,
    CorruptArchiveError,
    UnpackReport,
    UnsafeArchiveError,
    download_dataset,
    fetch,
    safe_extract,
    summarize,
    unpack,
)

# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------


def payload(name: str, size: int = 1000) -> bytes:
    """Deterministic, name-dependent content."""
    seed = name.encode()
    return (seed * (size // len(seed) + 1))[:size]


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def make_archive(
    path: Path, files: dict[str, bytes], *, mode: str = "w:gz", dirs: tuple[str, ...] = ()
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for d in dirs:
            add_dir(tar, d)
        for name, data in files.items():
            add_file(tar, name, data)
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every path below ``root`` (hidden ones included) with (size, mtime_ns) for files."""
    out: dict[str, tuple[int, int] | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[p.relative_to(root).as_posix()] = None if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


# --------------------------------------------------------------------------------------------------------
# safe_extract
# --------------------------------------------------------------------------------------------------------


def test_safe_extract_flattens_nested_folders(tmp_path: Path) -> None:
    files = {
        "s2/italy_s2_1.nc": payload("a", 1234),
        "s2/sub/italy_s2_2.nc": payload("b", 10),
        "./s2/peru_s2_3.nc": payload("c", 0),
    }
    archive = make_archive(tmp_path / "a.tar.gz", files, dirs=("s2", "s2/sub"))
    dest = tmp_path / "data" / "s2"

    paths = safe_extract(archive, dest)

    assert sorted(paths) == sorted(dest / Path(n).name for n in files)
    for name, data in files.items():
        target = dest / Path(name).name
        assert target.stat().st_size == len(data)
        assert target.read_bytes() == data
    assert sorted(p.name for p in dest.iterdir()) == ["italy_s2_1.nc", "italy_s2_2.nc", "peru_s2_3.nc"]
    # the temporary folder next to dest is gone
    assert [p.name for p in dest.parent.iterdir()] == ["s2"]
    assert archive.exists()


def test_safe_extract_keeps_folders_without_strip(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a.tar", {"x/y/f.nc": b"123"}, mode="w")
    dest = tmp_path / "out"
    assert safe_extract(archive, dest, strip_dirs=False) == [dest / "x" / "y" / "f.nc"]
    assert (dest / "x" / "y" / "f.nc").read_bytes() == b"123"


def test_flattened_duplicates_identical_ok_different_refused(tmp_path: Path) -> None:
    same = make_archive(tmp_path / "same.tar.gz", {"a/r_s2_1.nc": b"xyz", "b/r_s2_1.nc": b"xyz"})
    dest = tmp_path / "d1"
    assert safe_extract(same, dest) == [dest / "r_s2_1.nc"]

    diff = make_archive(
        tmp_path / "diff.tar.gz", {"a/ok_s2_1.nc": b"1", "a/r_s2_1.nc": b"xyz", "b/r_s2_1.nc": b"abc"}
    )
    dest2 = tmp_path / "d2"
    with pytest.raises(FileExistsError, match="diff.tar.gz"):
        safe_extract(diff, dest2)
    assert not dest2.exists()


def test_existing_file_clash(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "r_s2_1.nc").write_bytes(b"old")
    (dest / "r_s2_2.nc").write_bytes(b"same")

    same = make_archive(tmp_path / "same.tar.gz", {"r_s2_2.nc": b"same", "r_s2_3.nc": b"new"})
    assert sorted(safe_extract(same, dest)) == [dest / "r_s2_2.nc", dest / "r_s2_3.nc"]

    clash = make_archive(tmp_path / "clash.tar.gz", {"r_s2_4.nc": b"four", "r_s2_1.nc": b"different"})
    before = snapshot(dest)
    with pytest.raises(FileExistsError, match="clash.tar.gz"):
        safe_extract(clash, dest)
    assert snapshot(dest) == before
    assert (dest / "r_s2_1.nc").read_bytes() == b"old"


def _abs_member(tmp_path: Path) -> list[tarfile.TarInfo]:
    info = tarfile.TarInfo(str(tmp_path / "evil_abs.nc"))
    info.size = 4
    return [info]


def _named(name: str) -> list[tarfile.TarInfo]:
    info = tarfile.TarInfo(name)
    info.size = 4
    return [info]


def _link(kind: bytes, name: str, target: str) -> list[tarfile.TarInfo]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return [info]


def _special(kind: bytes) -> list[tarfile.TarInfo]:
    info = tarfile.TarInfo("special.nc")
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return [info]


def _symlink_then_write(tmp_path: Path) -> list[tarfile.TarInfo]:
    """Classic attack: a symlinked folder pointing outside, then a file written through it."""
    link = tarfile.TarInfo("sub")
    link.type = tarfile.SYMTYPE
    link.linkname = str(tmp_path / "outside")
    through = tarfile.TarInfo("sub/evil.nc")
    through.size = 4
    return [link, through]


MALICIOUS = {
    "absolute": _abs_member,
    "absolute_tmp": lambda tmp_path: _named("/tmp/evil.nc"),
    "windows_drive": lambda tmp_path: _named("C:/evil.nc"),
    "dotdot": lambda tmp_path: _named("../escape.nc"),
    "nested_dotdot": lambda tmp_path: _named("a/../../escape.nc"),
    "symlink_outside": lambda tmp_path: _link(tarfile.SYMTYPE, "link.nc", str(tmp_path / "outside.nc")),
    "symlink_relative": lambda tmp_path: _link(tarfile.SYMTYPE, "link.nc", "../../outside.nc"),
    "symlink_dir_then_write": _symlink_then_write,
    "hardlink": lambda tmp_path: _link(tarfile.LNKTYPE, "hard.nc", "good_s2_1.nc"),
    "hardlink_outside": lambda tmp_path: _link(tarfile.LNKTYPE, "hard.nc", "../../outside.nc"),
    "char_device": lambda tmp_path: _special(tarfile.CHRTYPE),
    "block_device": lambda tmp_path: _special(tarfile.BLKTYPE),
    "fifo": lambda tmp_path: _special(tarfile.FIFOTYPE),
    "duplicate": lambda tmp_path: _named("good_s2_1.nc"),
}


def build_malicious(path: Path, tmp_path: Path, case: str) -> tuple[Path, str]:
    """A gzip'd tar with a harmless member first, then the malicious member(s)."""
    members = MALICIOUS[case](tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "good_s2_1.nc", b"good")
        for info in members:
            tar.addfile(info, io.BytesIO(b"evil") if info.isreg() else None)
    return path, members[-1].name if case != "symlink_dir_then_write" else members[0].name


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_safe_extract_refuses_malicious_archives(tmp_path: Path, case: str) -> None:
    archive, bad_member = build_malicious(tmp_path / "archives" / f"{case}.tar.gz", tmp_path, case)
    dest = tmp_path / "root" / "data" / "s2"
    dest.mkdir(parents=True)
    (dest / "existing_s2_9.nc").write_bytes(b"keep me")
    before = snapshot(tmp_path)

    with pytest.raises(UnsafeArchiveError) as excinfo:
        safe_extract(archive, dest)

    err = excinfo.value
    assert err.archive == archive
    assert err.member == bad_member
    assert archive.name in str(err) and repr(bad_member) in str(err)
    assert snapshot(tmp_path) == before  # nothing new anywhere, no leftover temp folder
    assert not (tmp_path / "outside").exists()
    if case == "absolute_tmp":
        assert not (Path("/tmp/evil.nc").exists() and Path("/tmp/evil.nc").read_bytes() == b"evil")


@pytest.mark.parametrize("mode", ["w:gz", "w"])
def test_safe_extract_truncated_archive(tmp_path: Path, mode: str) -> None:
    suffix = ".tar.gz" if mode == "w:gz" else ".tar"
    good = make_archive(
        tmp_path / f"good{suffix}",
        {f"s2/r_s2_{i}.nc": os.urandom(64 * 1024) for i in range(4)},
        mode=mode,
    )
    blob = good.read_bytes()
    archive = tmp_path / "src" / f"cut{suffix}"
    archive.parent.mkdir()
    archive.write_bytes(blob[: len(blob) // 2])
    dest = tmp_path / "data" / "s2"
    dest.mkdir(parents=True)
    before = snapshot(tmp_path / "data")

    with pytest.raises(CorruptArchiveError, match=f"cut{suffix}"):
        safe_extract(archive, dest)

    assert snapshot(tmp_path / "data") == before
    assert archive.exists()


def test_safe_extract_size_mismatch_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_archive(tmp_path / "a.tar.gz", {"r_s2_1.nc": b"12345", "r_s2_2.nc": b"678"})
    original = tarfile.TarFile.extractall

    def short_extract(self, path, *args, **kwargs):
        original(self, path, *args, **kwargs)
        (Path(path) / "r_s2_2.nc").write_bytes(b"6")  # simulate a short write

    monkeypatch.setattr(tarfile.TarFile, "extractall", short_extract)
    dest = tmp_path / "data" / "s2"
    with pytest.raises(CorruptArchiveError, match=r"a\.tar\.gz.*r_s2_2\.nc.*1 bytes.*says 3"):
        safe_extract(archive, dest)
    assert not dest.exists()
    assert list((tmp_path / "data").iterdir()) == []


def test_safe_extract_refuses_to_write_through_symlink_in_dest(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    archive = make_archive(tmp_path / "a.tar.gz", {"sub/f.nc": b"x"})
    with pytest.raises(UnsafeArchiveError, match="outside"):
        safe_extract(archive, dest, strip_dirs=False)
    assert list(outside.iterdir()) == []

    (dest / "r_s2_1.nc").symlink_to(outside / "target.nc")
    archive2 = make_archive(tmp_path / "b.tar.gz", {"r_s2_1.nc": b"x"})
    with pytest.raises((UnsafeArchiveError, FileExistsError)):
        safe_extract(archive2, dest)
    assert list(outside.iterdir()) == []


def test_safe_extract_bad_gzip_checksum(tmp_path: Path) -> None:
    good = make_archive(tmp_path / "good.tar.gz", {"r_s2_1.nc": payload("x", 5000)})
    blob = bytearray(good.read_bytes())
    blob[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    archive = tmp_path / "crc.tar.gz"
    archive.write_bytes(bytes(blob))
    with pytest.raises(CorruptArchiveError, match="crc.tar.gz"):
        safe_extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_safe_extract_not_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / "junk.tar.gz"
    archive.write_bytes(b"this is not a tarball at all" * 10)
    with pytest.raises(CorruptArchiveError, match="junk.tar.gz"):
        safe_extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.tar.gz"]


def test_safe_extract_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        safe_extract(tmp_path / "nope.tar.gz", tmp_path / "dest")


# --------------------------------------------------------------------------------------------------------
# unpack
# --------------------------------------------------------------------------------------------------------

S2_FILES = {"s2/italy_s2_1.nc": payload("i1"), "s2/italy_s2_2.nc": payload("i2", 3000)}


def test_unpack_is_idempotent_and_deletes_archive(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "s2" / "italy.tar.gz", S2_FILES)

    first = unpack(tmp_path, sensors=["s2"], progress=False)
    assert first.extracted == [archive] and first.skipped == [] and first.failed == []
    assert first.n_files == 2
    assert not archive.exists()
    marker = archive.with_name(archive.name + dl.MARKER_SUFFIX)
    content = json.loads(marker.read_text())
    assert {(f["member"], f["path"], f["size"]) for f in content["files"]} == {
        (name, Path(name).name, len(data)) for name, data in S2_FILES.items()
    }
    before = snapshot(tmp_path)

    second = unpack(tmp_path, sensors=["s2"], progress=False)
    assert second.extracted == [] and second.failed == []
    assert second.skipped == [archive]
    assert second.n_files == 2
    assert snapshot(tmp_path) == before  # no file rewritten (sizes and mtimes unchanged)


def test_unpack_keep_archives(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "s2" / "italy.tar.gz", S2_FILES)

    first = unpack(tmp_path, sensors=("s2",), keep_archives=True, progress=False)
    assert first.extracted == [archive]
    assert archive.exists()
    before = snapshot(tmp_path)

    second = unpack(tmp_path, sensors=("s2",), keep_archives=True, progress=False)
    assert second.skipped == [archive] and second.extracted == []
    assert snapshot(tmp_path) == before

    # a later run without keep_archives finishes the job without extracting again
    third = unpack(tmp_path, sensors=("s2",), progress=False)
    assert third.skipped == [archive]
    assert not archive.exists()
    assert (tmp_path / "s2" / "italy_s2_1.nc").read_bytes() == S2_FILES["s2/italy_s2_1.nc"]


def test_unpack_reextracts_when_files_missing(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "s2" / "italy.tar.gz", S2_FILES)
    unpack(tmp_path, sensors=["s2"], keep_archives=True, progress=False)
    (tmp_path / "s2" / "italy_s2_2.nc").unlink()

    report = unpack(tmp_path, sensors=["s2"], keep_archives=True, progress=False)
    assert report.extracted == [archive]
    assert (tmp_path / "s2" / "italy_s2_2.nc").read_bytes() == S2_FILES["s2/italy_s2_2.nc"]


def test_unpack_marker_without_archive_and_missing_files_fails(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "s2" / "italy.tar.gz", S2_FILES)
    unpack(tmp_path, sensors=["s2"], progress=False)
    (tmp_path / "s2" / "italy_s2_1.nc").unlink()

    report = unpack(tmp_path, sensors=["s2"], progress=False)
    assert [a for a, _ in report.failed] == [archive]
    assert "incomplete" in report.failed[0][1]
    assert not report.ok


def test_unpack_corrupt_archive_is_kept_and_others_continue(tmp_path: Path) -> None:
    good = make_archive(tmp_path / "s2" / "a_good.tar.gz", S2_FILES)
    full = make_archive(tmp_path / "tmp" / "x.tar.gz", {"s2/peru_s2_7.nc": os.urandom(200_000)})
    bad = tmp_path / "s2" / "b_cut.tar.gz"
    bad.write_bytes(full.read_bytes()[:100_000])

    report = unpack(tmp_path, sensors=["s2"], progress=False)

    assert report.extracted == [good]
    assert [a for a, _ in report.failed] == [bad]
    assert "b_cut.tar.gz" in report.failed[0][1]
    assert bad.exists()
    assert not bad.with_name(bad.name + dl.MARKER_SUFFIX).exists()
    assert not (tmp_path / "s2" / "peru_s2_7.nc").exists()
    assert sorted(p.name for p in (tmp_path / "s2").iterdir()) == sorted(
        ["a_good.tar.gz" + dl.MARKER_SUFFIX, "b_cut.tar.gz", "italy_s2_1.nc", "italy_s2_2.nc"]
    )
    text = summarize(report)
    assert "1 archive(s) extracted" in text and "1 failed" in text and "b_cut.tar.gz" in text


def test_unpack_missing_sensor_folder_is_not_an_error(tmp_path: Path) -> None:
    report = unpack(tmp_path, progress=False)
    assert report == UnpackReport()


# --------------------------------------------------------------------------------------------------------
# download_dataset with a fake Hub
# --------------------------------------------------------------------------------------------------------


def patch_name(sensor: str, region: str, i: int) -> str:
    return f"{region}_{sensor}_{i}.nc"


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """A local folder laid out like the Hugging Face dataset repository."""
    remote = tmp_path / "hub"
    for sensor in SENSORS:
        make_archive(
            remote / sensor / f"italy_{sensor}.tar.gz",
            {f"{sensor}/{patch_name(sensor, 'italy', i)}": payload(f"{sensor}{i}") for i in range(3)},
        )
    (remote / "tasks" / "S12LS-LD").mkdir(parents=True)
    (remote / "tasks" / "S12LS-LD" / "splits.json").write_text('{"train": []}')
    (remote / "tasks" / "S12LS-AD").mkdir(parents=True)
    (remote / "tasks" / "S12LS-AD" / "aoi.geojson").write_text(
        '{"type": "FeatureCollection", "features": []}'
    )
    with zipfile.ZipFile(remote / "inventories.shp.zip", "w") as zf:
        zf.writestr("inventories.shp", b"shp")
    (remote / "README.md").write_text("# card")
    return remote


class FakeHub:
    """Stands in for ``huggingface_hub.snapshot_download``: copies matching files from a local folder."""

    def __init__(self, remote: Path) -> None:
        self.remote = remote
        self.calls: list[dict] = []
        self.copied: list[str] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        local_dir = Path(kwargs["local_dir"])
        allow = kwargs.get("allow_patterns")
        ignore = kwargs.get("ignore_patterns") or []
        for src in sorted(self.remote.rglob("*")):
            rel = src.relative_to(self.remote).as_posix()
            if src.is_dir():
                continue
            if allow is not None and not any(fnmatch.fnmatchcase(rel, p) for p in allow):
                continue
            if any(fnmatch.fnmatchcase(rel, p) for p in ignore):
                continue
            target = local_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            self.copied.append(rel)
        return str(local_dir)


@pytest.fixture
def fake_hub(hub: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake = FakeHub(hub)
    monkeypatch.setattr("s12ls_utils.download.snapshot_download", fake)
    return fake


def test_download_dataset_end_to_end(tmp_path: Path, fake_hub: FakeHub) -> None:
    dest = tmp_path / "data"
    report = download_dataset(dest, revision="v1.0", token="hf_dummy", progress=False)

    (call,) = fake_hub.calls
    assert call["repo_id"] == REPO_ID == "paulhoehn/Sen12Landslides"
    assert call["repo_type"] == "dataset"
    assert call["revision"] == "v1.0"
    assert call["token"] == "hf_dummy"
    assert Path(call["local_dir"]) == dest
    assert call["allow_patterns"] == ["s1asc/*", "s1dsc/*", "s2/*", "tasks/**", "inventories.shp.zip"]
    assert call["ignore_patterns"] is None

    assert report.ok and report.skipped == []
    assert sorted(a.name for a in report.extracted) == sorted(f"italy_{s}.tar.gz" for s in SENSORS)
    assert report.n_files == 9
    for sensor in SENSORS:
        names = sorted(p.name for p in (dest / sensor).glob("*.nc"))
        assert names == [patch_name(sensor, "italy", i) for i in range(3)]
        assert (dest / sensor / patch_name(sensor, "italy", 0)).read_bytes() == payload(f"{sensor}0")
        assert not list((dest / sensor).glob("*.tar.gz"))
        assert not (dest / sensor / sensor).exists()
    assert (dest / "tasks" / "S12LS-LD" / "splits.json").is_file()
    assert (dest / "tasks" / "S12LS-AD" / "aoi.geojson").is_file()
    assert (dest / "inventories.shp.zip").is_file()
    assert not (dest / "README.md").exists()

    # a second run neither downloads nor extracts the archives again
    before = snapshot(dest)
    again = download_dataset(dest, revision="v1.0", token="hf_dummy", progress=False)
    assert sorted(fake_hub.calls[1]["ignore_patterns"]) == sorted(f"{s}/italy_{s}.tar.gz" for s in SENSORS)
    assert again.extracted == [] and len(again.skipped) == 3 and again.ok
    assert again.n_files == 9
    assert {k: v for k, v in snapshot(dest).items() if k.endswith(".nc")} == {
        k: v for k, v in before.items() if k.endswith(".nc")
    }
    assert not list(dest.glob("*/*.tar.gz"))


def test_download_dataset_sensor_filter(tmp_path: Path, fake_hub: FakeHub) -> None:
    dest = tmp_path / "data"
    report = download_dataset(
        dest, sensors=["s2"], include_tasks=False, include_inventory=False, keep_archives=True, progress=False
    )

    (call,) = fake_hub.calls
    assert call["allow_patterns"] == ["s2/*"]
    assert call["revision"] is None and call["token"] is None
    assert fake_hub.copied == ["s2/italy_s2.tar.gz"]
    assert not (dest / "s1asc").exists() and not (dest / "s1dsc").exists()
    assert not (dest / "tasks").exists() and not (dest / "inventories.shp.zip").exists()
    assert sorted(p.name for p in (dest / "s2").glob("*.nc")) == [
        patch_name("s2", "italy", i) for i in range(3)
    ]
    assert (dest / "s2" / "italy_s2.tar.gz").exists()  # keep_archives
    assert [a.name for a in report.extracted] == ["italy_s2.tar.gz"]


def test_fetch_returns_archives_and_accepts_single_sensor_string(tmp_path: Path, fake_hub: FakeHub) -> None:
    got = fetch(tmp_path / "d", sensors="s1dsc", include_tasks=False, max_workers=2)
    assert got == [tmp_path / "d" / "s1dsc" / "italy_s1dsc.tar.gz"]
    assert fake_hub.calls[0]["max_workers"] == 2
    assert fake_hub.calls[0]["allow_patterns"] == ["s1dsc/*", "inventories.shp.zip"]


def test_fetch_with_nothing_selected(tmp_path: Path, fake_hub: FakeHub) -> None:
    with pytest.raises(ValueError, match="nothing to download"):
        fetch(tmp_path, sensors=[], include_tasks=False, include_inventory=False)
    assert fake_hub.calls == []


def test_malicious_archive_from_hub(tmp_path: Path, hub: Path, fake_hub: FakeHub) -> None:
    build_malicious(hub / "s2" / "zz_evil.tar.gz", tmp_path, "nested_dotdot")
    build_malicious(hub / "s1asc" / "zz_link.tar.gz", tmp_path, "symlink_dir_then_write")
    outside_before = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("data", "hub"))}
    dest = tmp_path / "data"

    report = download_dataset(dest, progress=False)

    failed = {a.relative_to(dest).as_posix(): reason for a, reason in report.failed}
    assert set(failed) == {"s2/zz_evil.tar.gz", "s1asc/zz_link.tar.gz"}
    assert "'..'" in failed["s2/zz_evil.tar.gz"] and "symbolic link" in failed["s1asc/zz_link.tar.gz"]
    assert sorted(a.name for a in report.extracted) == sorted(f"italy_{s}.tar.gz" for s in SENSORS)
    # the bad archives are kept, have no marker, and nothing of theirs was written
    for rel in failed:
        assert (dest / rel).is_file()
        assert not (dest / (rel + dl.MARKER_SUFFIX)).exists()
    assert not list(dest.rglob("good_s2_1.nc")) and not list(dest.rglob("escape.nc"))
    assert {
        k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("data", "hub"))
    } == outside_before
    assert not (tmp_path / "outside").exists()
    assert not [p for p in dest.rglob("*") if ".extracting-" in p.name]
    assert "2 failed" in summarize(report)


@pytest.mark.parametrize("bad", [["s3"], ["s2", "S2"], "sentinel2"])
def test_unknown_sensor(tmp_path: Path, fake_hub: FakeHub, bad) -> None:
    with pytest.raises(ValueError, match="s1asc, s1dsc, s2"):
        download_dataset(tmp_path, sensors=bad, progress=False)
    assert fake_hub.calls == []
    with pytest.raises(ValueError, match="unknown sensor"):
        unpack(tmp_path, sensors=bad, progress=False)
