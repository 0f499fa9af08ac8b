"""Offline tests for :mod:`s12ls_utils.download` (archives are built on the fly; the Hub is faked)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from huggingface_hub.hf_api import DatasetInfo
from huggingface_hub.utils import filter_repo_objects

from s12ls_utils import catalog, cli
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


def test_unpack_skips_non_patch_members_and_reports_them(tmp_path: Path) -> None:
    members = {
        "italy/italy_s2_1.nc": payload("p1"),
        "italy/._italy_s2_1.nc": b"\x00\x05\x16\x07 resource fork",
        "__MACOSX/italy/._italy_s2_1.nc": b"\x00\x05\x16\x07",
        "__MACOSX/italy_s2_2.nc": b"not a patch either",
        "._italy_s2_2.nc": b"\x00\x05\x16\x07",
        "italy_s2_2.nc": payload("p2"),
        "x/y/z/italy_s2_3.nc": payload("p3"),
        "italy/README.txt": b"read me",
        ".DS_Store": b"ds",
        "italy/italy_s2_4.nc.md5": b"md5",
    }
    archive = make_archive(tmp_path / "s2" / "italy.tar.gz", members, dirs=("italy", "x", "x/y", "x/y/z"))

    report = unpack(tmp_path, sensors=["s2"], progress=False)

    expected_ignored = [
        ("italy/._italy_s2_1.nc", dl.REASON_APPLEDOUBLE),
        ("__MACOSX/italy/._italy_s2_1.nc", dl.REASON_MACOSX),
        ("__MACOSX/italy_s2_2.nc", dl.REASON_MACOSX),
        ("._italy_s2_2.nc", dl.REASON_APPLEDOUBLE),
        ("italy/README.txt", dl.REASON_NOT_PATCH),
        (".DS_Store", dl.REASON_NOT_PATCH),
        ("italy/italy_s2_4.nc.md5", dl.REASON_NOT_PATCH),
    ]
    assert report.extracted == [archive] and report.failed == [] and report.n_files == 3
    assert report.ignored == [dl.IgnoredMember(archive, m, r) for m, r in expected_ignored]
    assert sorted(p.name for p in (tmp_path / "s2").iterdir()) == [
        "italy.tar.gz" + dl.MARKER_SUFFIX,
        "italy_s2_1.nc",
        "italy_s2_2.nc",
        "italy_s2_3.nc",
    ]
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.iterdir()] == ["s2"]
    assert (tmp_path / "s2" / "italy_s2_1.nc").read_bytes() == payload("p1")
    marker = json.loads(archive.with_name(archive.name + dl.MARKER_SUFFIX).read_text())
    assert marker["sensor"] == "s2" and marker["format"] == 2
    assert [(f["member"], f["path"]) for f in marker["files"]] == [
        ("italy/italy_s2_1.nc", "italy_s2_1.nc"),
        ("italy_s2_2.nc", "italy_s2_2.nc"),
        ("x/y/z/italy_s2_3.nc", "italy_s2_3.nc"),
    ]
    assert [(i["member"], i["reason"]) for i in marker["ignored"]] == expected_ignored
    assert summarize(report) == "\n".join(
        [
            "1 archive(s) extracted, 0 already extracted, 0 failed; 3 data file(s) in place.",
            "7 archive member(s) skipped (not patch files of the archive's sensor):",
            "  3 not a patch file (<region>_<sensor>_<id>.nc), e.g. s2/italy.tar.gz: italy/README.txt; "
            "s2/italy.tar.gz: .DS_Store; s2/italy.tar.gz: italy/italy_s2_4.nc.md5",
            "  2 AppleDouble resource fork (._*), e.g. s2/italy.tar.gz: italy/._italy_s2_1.nc; "
            "s2/italy.tar.gz: ._italy_s2_2.nc",
            "  2 macOS metadata (__MACOSX/), e.g. s2/italy.tar.gz: __MACOSX/italy/._italy_s2_1.nc; "
            "s2/italy.tar.gz: __MACOSX/italy_s2_2.nc",
        ]
    )

    # a second run skips the archive and still reports what it left out (from the marker)
    again = unpack(tmp_path, sensors=["s2"], progress=False)
    assert again.skipped == [archive] and again.extracted == [] and again.n_files == 3
    assert again.ignored == report.ignored


def test_unpack_refuses_patches_of_another_sensor(tmp_path: Path) -> None:
    good = make_archive(tmp_path / "s2" / "a_italy.tar.gz", {"italy_s2_1.nc": payload("ok")})
    mixed = make_archive(
        tmp_path / "s2" / "b_peru.tar.gz",
        {"peru/peru_s2_9.nc": payload("s2"), "peru/peru_s1asc_9.nc": payload("s1"), "README": b"x"},
    )

    report = unpack(tmp_path, sensors=["s2"], progress=False)

    assert report.extracted == [good] and report.ignored == [] and report.n_files == 1
    assert report.failed == [
        (
            mixed,
            f"refusing to extract {mixed}: member 'peru/peru_s1asc_9.nc' is a s1asc patch, but this is an "
            "archive of s2 patches (the archive is not what its folder says)",
        )
    ]
    assert sorted(p.name for p in (tmp_path / "s2").iterdir()) == [
        "a_italy.tar.gz" + dl.MARKER_SUFFIX,
        "b_peru.tar.gz",
        "italy_s2_1.nc",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2"]
    with pytest.raises(dl.ForeignPatchError) as excinfo:
        dl._extract(mixed, tmp_path / "s2", strip_dirs=True, sensor="s2")
    assert (excinfo.value.member, excinfo.value.sensor, excinfo.value.found) == (
        "peru/peru_s1asc_9.nc",
        "s2",
        "s1asc",
    )


def test_unpack_reads_markers_of_the_previous_format(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "s2" / "italy.tar.gz", S2_FILES)
    unpack(tmp_path, sensors=["s2"], progress=False)
    marker = archive.with_name(archive.name + dl.MARKER_SUFFIX)
    content = json.loads(marker.read_text())
    del content["ignored"], content["sensor"]
    content["format"] = 1
    marker.write_text(json.dumps(content))

    report = unpack(tmp_path, sensors=["s2"], progress=False)
    assert report.skipped == [archive] and report.ignored == [] and report.n_files == 2


# --------------------------------------------------------------------------------------------------------
# the hub as published today, and older snapshots, faked
# --------------------------------------------------------------------------------------------------------

REPO_LIST = ["README.md", ".gitattributes"]


def patch_bytes(version: str, name: str) -> bytes:
    """Content of a patch: different per version, so that mixing versions is detected."""
    return payload(f"{version}:{name}", 700)


def today_members(version: str, sensor: str) -> dict[str, dict[str, bytes]]:
    """``{archive name: {member: content}}`` of one sensor folder of today's hub."""
    s = sensor
    archives = {
        f"italy_{s}.tar.gz": {  # nested, like `tar czf italy.tar.gz italy/` on a Mac
            f"italy/italy_{s}_1.nc": patch_bytes(version, f"italy_{s}_1.nc"),
            f"italy/._italy_{s}_1.nc": b"\x00\x05\x16\x07AppleDouble",
            f"italy/italy_{s}_2.nc": patch_bytes(version, f"italy_{s}_2.nc"),
            f"__MACOSX/italy/._italy_{s}_2.nc": b"\x00\x05\x16\x07",
            "italy/README.txt": b"regional archive",
        },
        f"nepal_{s}.tar.gz": {  # flat, plus one deeply nested file
            f"nepal_{s}_3.nc": patch_bytes(version, f"nepal_{s}_3.nc"),
            f"._nepal_{s}_3.nc": b"\x00\x05\x16\x07",
            f"a/b/c/nepal_{s}_4.nc": patch_bytes(version, f"nepal_{s}_4.nc"),
        },
    }
    if sensor == "s2":
        archives["peru_s2.tar.gz"] = {"./peru/peru_s2_5.nc": patch_bytes(version, "peru_s2_5.nc")}
    return archives


def today_patches(sensor: str) -> list[str]:
    names = [f"italy_{sensor}_1.nc", f"italy_{sensor}_2.nc", f"nepal_{sensor}_3.nc", f"nepal_{sensor}_4.nc"]
    return sorted(names + (["peru_s2_5.nc"] if sensor == "s2" else []))


def today_ignored(data_dir: Path, sensors=SENSORS) -> list[dl.IgnoredMember]:
    out = []
    for s in sensors:
        italy, nepal = data_dir / s / f"italy_{s}.tar.gz", data_dir / s / f"nepal_{s}.tar.gz"
        out += [
            dl.IgnoredMember(italy, f"italy/._italy_{s}_1.nc", dl.REASON_APPLEDOUBLE),
            dl.IgnoredMember(italy, f"__MACOSX/italy/._italy_{s}_2.nc", dl.REASON_MACOSX),
            dl.IgnoredMember(italy, "italy/README.txt", dl.REASON_NOT_PATCH),
            dl.IgnoredMember(nepal, f"._nepal_{s}_3.nc", dl.REASON_APPLEDOUBLE),
        ]
    return out


TASK_FILES = {
    "tasks/S12LS-LD/harmonized/config.json": b'{"task": "LD"}',
    "tasks/S12LS-LD/harmonized/s2/splits.json": b'{"train": []}',
    "tasks/S12LS-LD/raw/s2/norm.json": b'{"s2": {}}',
    "tasks/S12LS-AD/raw/s2/splits.json": b'{"test": []}',
}


def write_zip(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("inventories.shp", text)


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """Snapshots of the dataset repository, one folder per revision (``main`` = today's layout)."""
    root = tmp_path / "hub"
    main = root / "main"
    for version in dl.VERSIONS:
        for sensor in SENSORS:
            for name, members in today_members(version, sensor).items():
                dirs = ("italy",) if name.startswith("italy") else ()
                make_archive(main / f"data_{version}" / sensor / name, members, dirs=dirs)
        write_zip(main / f"data_{version}" / "inventories.shp.zip", f"{version} inventory")
    for rel, data in TASK_FILES.items():
        (main / rel).parent.mkdir(parents=True, exist_ok=True)
        (main / rel).write_bytes(data)
    for rel in REPO_LIST:
        (main / rel).write_text("card")

    old = root / "v0.1"  # the layout before data_harmonized/ and data_raw/
    for sensor in SENSORS:
        make_archive(
            old / sensor / f"italy_{sensor}.tar.gz",
            {f"{sensor}/italy_{sensor}_{i}.nc": patch_bytes("old", f"italy_{sensor}_{i}.nc") for i in (1, 2)},
        )
    write_zip(old / "inventories.shp.zip", "old inventory")
    (old / "tasks" / "S12LS-LD" / "s2").mkdir(parents=True)
    (old / "tasks" / "S12LS-LD" / "s2" / "splits.json").write_text('{"train": []}')
    (old / "README.md").write_text("card")

    odd = root / "odd"  # neither layout
    make_archive(odd / "archives" / "s2" / "x.tar.gz", {"italy_s2_1.nc": b"x"})
    (odd / "README.md").write_text("card")

    partial = root / "partial"  # today's layout, s2 only, no tasks
    make_archive(partial / "data_harmonized" / "s2" / "italy_s2.tar.gz", {"italy_s2_1.nc": b"x"})
    write_zip(partial / "data_harmonized" / "inventories.shp.zip", "inv")
    make_archive(partial / "data_raw" / "s1asc" / "a.tar.gz", {"a_s1asc_1.nc": b"x"})

    # where the inventory is: at the root only (what third-party downloaders fetch), in both places, nowhere
    for name in ("rootinv", "bothinv", "noinv"):
        snap = root / name
        make_archive(
            snap / "data_harmonized" / "s2" / "italy_s2.tar.gz",
            {f"italy_s2_{i}.nc": patch_bytes(name, f"italy_s2_{i}.nc") for i in (1, 2)},
        )
        if name in ("rootinv", "bothinv"):
            write_zip(snap / "inventories.zip", "root inventory")
        if name == "bothinv":
            write_zip(snap / "data_harmonized" / "inventories.shp.zip", "versioned inventory")
        (snap / "README.md").write_text("card")
    return root


def commit_of(snapshot: str) -> str:
    """The fake commit sha of a snapshot folder (40 hex digits, like the hub's)."""
    return hashlib.sha1(snapshot.encode()).hexdigest()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeHub:
    """Replaces ``huggingface_hub.dataset_info`` and ``snapshot_download``: serves a local folder.

    ``<root>/<name>/`` is one snapshot, reached by its name (``main`` when no revision is given) or by its
    commit sha (:func:`commit_of`). ``dataset_info`` answers as the hub does with ``files_metadata=True``:
    the resolved commit and every file with its size, and for archives and zip files (LFS on the hub) the
    sha256 of the content (``wrong_sha`` names files whose sha256 the hub gets wrong, to fake a corrupt
    download). The patterns are applied with huggingface_hub's own ``filter_repo_objects``, as
    ``snapshot_download`` does.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.list_calls: list[dict] = []
        self.calls: list[dict] = []
        self.copied: list[str] = []
        self.wrong_sha: set[str] = set()

    def _folder(self, revision: str | None) -> Path:
        name = revision or "main"
        for folder in sorted(self.root.iterdir()):
            if name in (folder.name, commit_of(folder.name)):
                return folder
        raise OSError(f"404 Client Error: Revision Not Found for url: .../{revision}")

    def _files(self, revision: str | None) -> list[str]:
        folder = self._folder(revision)
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def dataset_info(self, repo_id, *, revision=None, files_metadata=False, token=None) -> DatasetInfo:
        assert repo_id == REPO_ID and files_metadata
        self.list_calls.append({"revision": revision, "token": token})
        folder = self._folder(revision)
        siblings = []
        for rel in self._files(revision):
            path = folder / rel
            sibling = {"rfilename": rel, "size": path.stat().st_size}
            if rel.endswith((".tar.gz", ".zip")):
                sha = "0" * 64 if rel in self.wrong_sha else sha256_of(path)
                sibling["lfs"] = {"size": path.stat().st_size, "sha256": sha, "pointerSize": 134}
            siblings.append(sibling)
        return DatasetInfo(id=REPO_ID, sha=commit_of(folder.name), siblings=siblings)

    def snapshot_download(self, *, repo_id, repo_type=None, revision=None, local_dir=None, **kwargs) -> str:
        assert (repo_id, repo_type) == (REPO_ID, "dataset")
        self.calls.append({"revision": revision, "local_dir": local_dir, **kwargs})
        folder = self._folder(revision)
        selected = filter_repo_objects(
            self._files(revision),
            allow_patterns=kwargs.get("allow_patterns"),
            ignore_patterns=kwargs.get("ignore_patterns"),
        )
        for rel in selected:
            target = Path(local_dir) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / rel, target)
            self.copied.append(rel)
        return str(local_dir)


@pytest.fixture
def fake_hub(hub: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake = FakeHub(hub)
    monkeypatch.setattr(dl, "dataset_info", fake.dataset_info)
    monkeypatch.setattr(dl, "snapshot_download", fake.snapshot_download)
    return fake


def tree(root: Path) -> list[str]:
    """Every file (hidden ones included) and folder (with a trailing ``/``) below ``root``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        out += [(rel / d).as_posix() + "/" for d in dirnames]
        out += [(rel / f).as_posix() for f in filenames]
    return sorted(out)


def with_folders(files: list[str]) -> list[str]:
    folders = {p.as_posix() + "/" for f in files for p in PurePosixPath(f).parents if p.parts}
    return sorted(set(files) | folders)


def today_tree(
    version: str, sensors=SENSORS, *, keep_archives=False, tasks=True, inventory=True
) -> list[str]:
    files = [f"data_{version}/{dl.MANIFEST_NAME}"]
    for s in sensors:
        files += [f"data_{version}/{s}/{n}" for n in today_patches(s)]
        for name in today_members(version, s):
            files.append(f"data_{version}/{s}/{name}{dl.MARKER_SUFFIX}")
            if keep_archives:
                files.append(f"data_{version}/{s}/{name}")
    if inventory:
        files.append(f"data_{version}/inventories.shp.zip")
    if tasks:
        files += [rel for rel in TASK_FILES if f"/{version}/" in rel]
    return with_folders(files)


def check_patches(data_dir: Path, version: str, sensors=SENSORS) -> None:
    for s in sensors:
        for name in today_patches(s):
            assert (data_dir / s / name).read_bytes() == patch_bytes(version, name), name


def test_detect_layout_today(hub: Path) -> None:
    files = FakeHub(hub)._files(None)
    layout = dl.detect_layout(files)
    assert layout.kind == "versioned" and layout.version == "harmonized"
    assert layout.archives == {
        s: [f"data_harmonized/{s}/{n}" for n in sorted(today_members("harmonized", s))] for s in SENSORS
    }
    assert layout.inventory == "data_harmonized/inventories.shp.zip"
    assert layout.tasks == [
        "tasks/S12LS-LD/harmonized/config.json",
        "tasks/S12LS-LD/harmonized/s2/splits.json",
    ]
    assert layout.prefix == "data_harmonized/" and layout.task_pattern == "tasks/*/harmonized/**"
    assert layout.archive_pattern("s2") == "data_harmonized/s2/*.tar.gz"
    assert layout.data_dir(Path("D")) == Path("D/data_harmonized")
    assert layout.describe() == "data_harmonized/<sensor>/*.tar.gz (versioned layout)"

    raw = dl.detect_layout(files, version="raw", sensors=["s1dsc"])
    assert raw.archives == {
        "s1dsc": ["data_raw/s1dsc/italy_s1dsc.tar.gz", "data_raw/s1dsc/nepal_s1dsc.tar.gz"]
    }
    assert raw.inventory == "data_raw/inventories.shp.zip"
    assert raw.tasks == ["tasks/S12LS-AD/raw/s2/splits.json", "tasks/S12LS-LD/raw/s2/norm.json"]
    assert raw.data_dir(Path("D")) == Path("D/data_raw")


def test_detect_layout_root(hub: Path) -> None:
    layout = dl.detect_layout(FakeHub(hub)._files("v0.1"), sensors=["s2", "s1asc"])
    assert layout.kind == "root"
    assert layout.archives == {"s2": ["s2/italy_s2.tar.gz"], "s1asc": ["s1asc/italy_s1asc.tar.gz"]}
    assert layout.inventory == "inventories.shp.zip"
    assert layout.tasks == ["tasks/S12LS-LD/s2/splits.json"]
    assert layout.prefix == "" and layout.task_pattern == "tasks/**"
    assert layout.data_dir(Path("D")) == Path("D")
    assert layout.describe() == (
        "<sensor>/*.tar.gz at the repository root (older root layout; the snapshot has no data_harmonized/ folder)"
    )


def test_detect_layout_errors_list_the_snapshot(hub: Path) -> None:
    fake = FakeHub(hub)
    with pytest.raises(ValueError) as excinfo:
        dl.detect_layout(fake._files("odd"), revision="odd")
    assert str(excinfo.value) == (
        "paulhoehn/Sen12Landslides at revision 'odd' has no archives for s1asc, s1dsc, s2 in neither "
        "data_harmonized/<sensor>/*.tar.gz (there is no data_harmonized/ folder) nor <sensor>/*.tar.gz at the "
        "root (older layout); the snapshot has archives in archives/s2/ (1 archive); "
        "top-level entries: README.md, archives/"
    )
    with pytest.raises(ValueError) as excinfo:
        dl.detect_layout(fake._files("partial"), sensors=["s2", "s1asc"])
    assert str(excinfo.value) == (
        "paulhoehn/Sen12Landslides at the main branch has no archives for s1asc in "
        "data_harmonized/<sensor>/*.tar.gz; the snapshot has archives in data_harmonized/s2/ (1 archive), "
        "data_raw/s1asc/ (1 archive); top-level entries: data_harmonized/, data_raw/"
    )
    with pytest.raises(ValueError, match="has no archives for s2 in neither .*; the snapshot has no files$"):
        dl.detect_layout([], sensors=["s2"])
    with pytest.raises(
        ValueError, match=r"; the snapshot has no \.tar\.gz archives; top-level entries: a/, b$"
    ):
        dl.detect_layout(["b", "a/s2/x.zip"], sensors=["s2"])
    with pytest.raises(ValueError, match="unknown version 'cooked'; valid versions are harmonized, raw"):
        dl.detect_layout([], version="cooked")


def test_download_today_harmonized_end_to_end(tmp_path: Path, fake_hub: FakeHub) -> None:
    dest = tmp_path / "data"
    report = download_dataset(dest, token="hf_dummy", progress=False)

    assert fake_hub.list_calls == [{"revision": None, "token": "hf_dummy"}]
    (call,) = fake_hub.calls
    assert Path(call["local_dir"]) == dest
    assert call["revision"] == commit_of("main") and call["token"] == "hf_dummy"  # the commit, not "main"
    assert call["allow_patterns"] == [
        "data_harmonized/s1asc/*.tar.gz",
        "data_harmonized/s1dsc/*.tar.gz",
        "data_harmonized/s2/*.tar.gz",
        "tasks/*/harmonized/**",
        "data_harmonized/inventories.shp.zip",
    ]
    assert call["ignore_patterns"] is None
    assert not [rel for rel in fake_hub.copied if "raw" in rel or not rel.startswith(("data_h", "tasks/"))]

    data_dir = dest / "data_harmonized"
    assert tree(dest) == today_tree("harmonized")
    check_patches(data_dir, "harmonized")
    with zipfile.ZipFile(data_dir / "inventories.shp.zip") as zf:
        assert zf.read("inventories.shp") == b"harmonized inventory"

    assert isinstance(report, dl.DownloadReport) and report.ok
    assert report.extracted == [
        data_dir / s / name for s in SENSORS for name in sorted(today_members("harmonized", s))
    ]
    assert report.skipped == [] and report.n_files == 13
    assert report.ignored == today_ignored(data_dir)
    assert (report.layout.kind, report.data_dir, report.inventory, report.revision) == (
        "versioned",
        data_dir,
        data_dir / "inventories.shp.zip",
        None,
    )
    assert (report.resolved_revision, report.inventory_source) == (
        commit_of("main"),
        "data_harmonized/inventories.shp.zip",
    )
    main = commit_of("main")
    assert summarize(report) == "\n".join(
        [
            "Hub layout at the main branch: data_harmonized/<sensor>/*.tar.gz (versioned layout)",
            f"Hub commit: {main} (s12ls download --revision {main} gets the same files)",
            "7 archive(s) extracted, 0 already extracted, 0 failed; 13 data file(s) in place.",
            "12 archive member(s) skipped (not patch files of the archive's sensor):",
            "  6 AppleDouble resource fork (._*), e.g. s1asc/italy_s1asc.tar.gz: italy/._italy_s1asc_1.nc; "
            "s1asc/nepal_s1asc.tar.gz: ._nepal_s1asc_3.nc; s1dsc/italy_s1dsc.tar.gz: italy/._italy_s1dsc_1.nc",
            "  3 macOS metadata (__MACOSX/), e.g. s1asc/italy_s1asc.tar.gz: __MACOSX/italy/._italy_s1asc_2.nc; "
            "s1dsc/italy_s1dsc.tar.gz: __MACOSX/italy/._italy_s1dsc_2.nc; "
            "s2/italy_s2.tar.gz: __MACOSX/italy/._italy_s2_2.nc",
            "  3 not a patch file (<region>_<sensor>_<id>.nc), e.g. s1asc/italy_s1asc.tar.gz: italy/README.txt; "
            "s1dsc/italy_s1dsc.tar.gz: italy/README.txt; s2/italy_s2.tar.gz: italy/README.txt",
            f"Data folder: {data_dir} (e.g. s12ls catalog {data_dir})",
            f"Inventory: {data_dir / 'inventories.shp.zip'} (the hub's data_harmonized/inventories.shp.zip)",
            f"Manifest: {data_dir / dl.MANIFEST_NAME}",
        ]
    )

    # what `s12ls catalog <dest>/data_harmonized` lists: every patch, nothing else, no complaints
    listing, errors = catalog._list_files(data_dir, SENSORS)
    assert errors == []
    assert sorted(listing) == sorted(f"{s}/{n}" for s in SENSORS for n in today_patches(s))

    # a second run neither downloads nor extracts the archives again, and reports the same skips
    before = snapshot(dest)
    again = download_dataset(dest, token="hf_dummy", progress=False)
    assert fake_hub.calls[1]["ignore_patterns"] == [
        f"data_harmonized/{s}/{name}" for s in SENSORS for name in sorted(today_members("harmonized", s))
    ]
    assert again.extracted == [] and again.skipped == report.extracted and again.ok
    assert again.n_files == 13 and again.ignored == report.ignored
    assert tree(dest) == today_tree("harmonized")
    assert {k: v for k, v in snapshot(dest).items() if k.endswith(".nc")} == {
        k: v for k, v in before.items() if k.endswith(".nc")
    }


def test_download_raw_version_some_sensors_keep_archives(tmp_path: Path, fake_hub: FakeHub) -> None:
    dest = tmp_path / "data"
    report = download_dataset(
        dest, version="raw", sensors=["s2", "s1dsc"], keep_archives=True, progress=False
    )

    assert fake_hub.calls[0]["allow_patterns"] == [
        "data_raw/s2/*.tar.gz",
        "data_raw/s1dsc/*.tar.gz",
        "tasks/*/raw/**",
        "data_raw/inventories.shp.zip",
    ]
    assert tree(dest) == today_tree("raw", ["s1dsc", "s2"], keep_archives=True)
    check_patches(dest / "data_raw", "raw", ["s1dsc", "s2"])
    with zipfile.ZipFile(dest / "data_raw" / "inventories.shp.zip") as zf:
        assert zf.read("inventories.shp") == b"raw inventory"
    assert report.ok and report.n_files == 9 and report.data_dir == dest / "data_raw"
    assert report.ignored == today_ignored(dest / "data_raw", ["s2", "s1dsc"])
    assert summarize(report).splitlines()[0] == (
        "Hub layout at the main branch: data_raw/<sensor>/*.tar.gz (versioned layout)"
    )


def test_download_old_revision_with_root_layout(tmp_path: Path, fake_hub: FakeHub) -> None:
    dest = tmp_path / "data"
    report = download_dataset(dest, revision="v0.1", progress=False)

    assert fake_hub.list_calls == [{"revision": "v0.1", "token": None}]
    (call,) = fake_hub.calls
    assert call["revision"] == commit_of("v0.1")
    assert call["allow_patterns"] == [
        "s1asc/*.tar.gz",
        "s1dsc/*.tar.gz",
        "s2/*.tar.gz",
        "tasks/**",
        "inventories.shp.zip",
    ]
    expected = [f"{s}/italy_{s}_{i}.nc" for s in SENSORS for i in (1, 2)]
    expected += [f"{s}/italy_{s}.tar.gz{dl.MARKER_SUFFIX}" for s in SENSORS]
    expected += ["inventories.shp.zip", "tasks/S12LS-LD/s2/splits.json", dl.MANIFEST_NAME]
    assert tree(dest) == with_folders(expected)
    for s in SENSORS:
        for i in (1, 2):
            assert (dest / s / f"italy_{s}_{i}.nc").read_bytes() == patch_bytes("old", f"italy_{s}_{i}.nc")
    assert report.ok and report.n_files == 6 and report.ignored == []
    assert (report.layout.kind, report.data_dir, report.inventory) == (
        "root",
        dest,
        dest / "inventories.shp.zip",
    )
    text = summarize(report)
    assert text.splitlines()[0] == (
        "Hub layout at revision 'v0.1': <sensor>/*.tar.gz at the repository root (older root layout; the "
        "snapshot has no data_harmonized/ folder)"
    )
    assert text.splitlines()[-3] == f"Data folder: {dest} (e.g. s12ls catalog {dest})"
    assert dl.read_manifest(dest)["revision"] == commit_of("v0.1")


def test_download_fails_clearly_when_the_snapshot_lacks_the_sensors(
    tmp_path: Path, fake_hub: FakeHub
) -> None:
    dest = tmp_path / "data"
    with pytest.raises(ValueError, match=r"has no archives for s2 in neither .* archives/s2/ \(1 archive\)"):
        download_dataset(dest, sensors=["s2"], revision="odd", progress=False)
    with pytest.raises(
        ValueError,
        match=r"^paulhoehn/Sen12Landslides at revision 'partial' has no archives for s1dsc in data_harmonized/",
    ):
        download_dataset(dest, sensors=["s2", "s1dsc"], revision="partial", progress=False)
    assert fake_hub.calls == [] and not dest.exists()


def test_truncated_archive_fails_and_leaves_no_partial_files(
    tmp_path: Path, hub: Path, fake_hub: FakeHub
) -> None:
    full = make_archive(
        tmp_path / "full.tar.gz",
        {f"zz/zz_s2_{i}.nc": os.urandom(64 * 1024) for i in range(1, 5)},
        dirs=("zz",),
    )
    cut = hub / "main" / "data_harmonized" / "s2" / "zz_cut.tar.gz"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    with tarfile.open(cut, "r|gz") as tar:  # its first members are complete: a naive unpack would write them
        first = next(member for member in tar if member.isfile())
        assert (first.name, len(tar.extractfile(first).read())) == ("zz/zz_s2_1.nc", 64 * 1024)
    dest = tmp_path / "data"

    report = download_dataset(dest, progress=False)

    archive = dest / "data_harmonized" / "s2" / "zz_cut.tar.gz"
    assert [a for a, _ in report.failed] == [archive]
    assert report.failed[0][1].startswith(f"{archive} is corrupt or truncated: ")
    assert len(report.extracted) == 7 and report.n_files == 13
    # the good archives are in place, the bad one is kept for inspection, and nothing else of it exists
    assert tree(dest) == with_folders(today_tree("harmonized") + ["data_harmonized/s2/zz_cut.tar.gz"])
    text = summarize(report)
    assert f"  FAILED {archive}: {archive} is corrupt or truncated: " in text
    assert "7 archive(s) extracted, 0 already extracted, 1 failed; 13 data file(s) in place." in text

    # running again fails the same way and still leaves no partial files
    again = download_dataset(dest, progress=False)
    assert [a for a, _ in again.failed] == [archive] and len(again.skipped) == 7
    assert tree(dest) == with_folders(today_tree("harmonized") + ["data_harmonized/s2/zz_cut.tar.gz"])


def test_fetch_returns_the_layout_and_archives(tmp_path: Path, fake_hub: FakeHub) -> None:
    got = fetch(tmp_path / "d", sensors="s1dsc", include_tasks=False, max_workers=2)
    data_dir = tmp_path / "d" / "data_harmonized"
    assert got.archives == [
        data_dir / "s1dsc" / "italy_s1dsc.tar.gz",
        data_dir / "s1dsc" / "nepal_s1dsc.tar.gz",
    ]
    assert got.data_dir == data_dir and got.inventory == data_dir / "inventories.shp.zip"
    assert got.layout.kind == "versioned"
    assert fake_hub.calls[0]["max_workers"] == 2
    assert fake_hub.calls[0]["allow_patterns"] == [
        "data_harmonized/s1dsc/*.tar.gz",
        "data_harmonized/inventories.shp.zip",
    ]


def test_fetch_without_tasks_in_the_snapshot_warns(
    tmp_path: Path, fake_hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="s12ls_utils.download"):
        got = fetch(tmp_path / "d", sensors=["s2"], revision="partial")
    assert fake_hub.calls[0]["allow_patterns"] == [
        "data_harmonized/s2/*.tar.gz",
        "data_harmonized/inventories.shp.zip",
    ]
    assert "the snapshot has no task files matching tasks/*/harmonized/**" in caplog.text
    assert got.archives == [tmp_path / "d" / "data_harmonized" / "s2" / "italy_s2.tar.gz"]


def test_fetch_with_nothing_selected(tmp_path: Path, fake_hub: FakeHub) -> None:
    with pytest.raises(ValueError, match="nothing to download"):
        fetch(tmp_path, sensors=[], include_tasks=False, include_inventory=False)
    assert fake_hub.calls == [] and fake_hub.list_calls == []


def test_malicious_archive_from_hub(tmp_path: Path, hub: Path, fake_hub: FakeHub) -> None:
    build_malicious(hub / "main" / "data_harmonized" / "s2" / "zz_evil.tar.gz", tmp_path, "nested_dotdot")
    build_malicious(
        hub / "main" / "data_harmonized" / "s1asc" / "zz_link.tar.gz", tmp_path, "symlink_dir_then_write"
    )
    outside_before = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("data", "hub"))}
    dest = tmp_path / "data"

    report = download_dataset(dest, progress=False)

    data_dir = dest / "data_harmonized"
    failed = {a.relative_to(data_dir).as_posix(): reason for a, reason in report.failed}
    assert set(failed) == {"s2/zz_evil.tar.gz", "s1asc/zz_link.tar.gz"}
    assert "'..'" in failed["s2/zz_evil.tar.gz"] and "symbolic link" in failed["s1asc/zz_link.tar.gz"]
    assert len(report.extracted) == 7
    # the bad archives are kept, have no marker, and nothing of theirs was written
    assert tree(dest) == with_folders(
        today_tree("harmonized")
        + ["data_harmonized/s2/zz_evil.tar.gz", "data_harmonized/s1asc/zz_link.tar.gz"]
    )
    assert {
        k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("data", "hub"))
    } == outside_before
    assert not (tmp_path / "outside").exists()
    assert "2 failed" in summarize(report)


@pytest.mark.parametrize("bad", [["s3"], ["s2", "S2"], "sentinel2"])
def test_unknown_sensor(tmp_path: Path, fake_hub: FakeHub, bad) -> None:
    with pytest.raises(ValueError, match="sensor must be 's1asc', 's1dsc' or 's2'"):
        download_dataset(tmp_path, sensors=bad, progress=False)
    assert fake_hub.calls == [] and fake_hub.list_calls == []
    with pytest.raises(ValueError, match="sensor must be 's1asc', 's1dsc' or 's2'"):
        unpack(tmp_path, sensors=bad, progress=False)


def test_unknown_version(tmp_path: Path, fake_hub: FakeHub) -> None:
    with pytest.raises(ValueError, match="unknown version 'harmonised'; valid versions are harmonized, raw"):
        download_dataset(tmp_path, version="harmonised", progress=False)
    assert fake_hub.calls == [] and fake_hub.list_calls == []


# --------------------------------------------------------------------------------------------------------
# s12ls download
# --------------------------------------------------------------------------------------------------------


def test_cli_download_default(tmp_path: Path, fake_hub: FakeHub, capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "data"
    assert cli.main(["download", "--dest", str(dest), "--token", "hf_x"]) == 0
    out = capsys.readouterr().out.splitlines()
    data_dir = dest / "data_harmonized"
    assert out[0] == "Hub layout at the main branch: data_harmonized/<sensor>/*.tar.gz (versioned layout)"
    assert out[1].startswith(f"Hub commit: {commit_of('main')} ")
    assert out[2] == "7 archive(s) extracted, 0 already extracted, 0 failed; 13 data file(s) in place."
    assert out[3] == "12 archive member(s) skipped (not patch files of the archive's sensor):"
    assert out[4].startswith("  6 AppleDouble resource fork (._*), e.g. s1asc/italy_s1asc.tar.gz: ")
    assert out[-3:] == [
        f"Data folder: {data_dir} (e.g. s12ls catalog {data_dir})",
        f"Inventory: {data_dir / 'inventories.shp.zip'} (the hub's data_harmonized/inventories.shp.zip)",
        f"Manifest: {data_dir / dl.MANIFEST_NAME}",
    ]
    assert fake_hub.list_calls == [{"revision": None, "token": "hf_x"}]
    assert tree(dest) == today_tree("harmonized")
    check_patches(data_dir, "harmonized")


def test_cli_download_raw_comma_sensors(
    tmp_path: Path, fake_hub: FakeHub, capsys: pytest.CaptureFixture
) -> None:
    dest = tmp_path / "data"
    argv = ["download", "--dest", str(dest), "--version", "raw", "--sensors", "s2,s1asc", "s2"]
    assert cli.main([*argv, "--keep-archives", "--no-tasks", "--no-inventory"]) == 0
    assert fake_hub.calls[0]["allow_patterns"] == ["data_raw/s2/*.tar.gz", "data_raw/s1asc/*.tar.gz"]
    assert tree(dest) == today_tree("raw", ["s1asc", "s2"], keep_archives=True, tasks=False, inventory=False)
    check_patches(dest / "data_raw", "raw", ["s1asc", "s2"])
    assert capsys.readouterr().out.splitlines()[-2] == "Inventory: not downloaded"


def test_cli_download_old_revision(tmp_path: Path, fake_hub: FakeHub, capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "data"
    assert (
        cli.main(["download", "--dest", str(dest), "--sensors", "s2", "--revision", "v0.1", "--no-tasks"])
        == 0
    )
    out = capsys.readouterr().out
    assert "Hub layout at revision 'v0.1': <sensor>/*.tar.gz at the repository root (older root layout" in out
    assert tree(dest) == with_folders(
        [
            "s2/italy_s2_1.nc",
            "s2/italy_s2_2.nc",
            f"s2/italy_s2.tar.gz{dl.MARKER_SUFFIX}",
            "inventories.shp.zip",
            dl.MANIFEST_NAME,
        ]
    )


def test_cli_download_failures(
    tmp_path: Path, hub: Path, fake_hub: FakeHub, capsys: pytest.CaptureFixture
) -> None:
    dest = tmp_path / "data"
    assert cli.main(["download", "--dest", str(dest), "--revision", "odd"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "s12ls download: error: paulhoehn/Sen12Landslides at revision 'odd' has no archives for s1asc, s1dsc, s2"
    )
    assert (
        "the snapshot has archives in archives/s2/ (1 archive); top-level entries: README.md, archives/"
        in err
    )

    assert cli.main(["download", "--dest", str(dest), "--revision", "nope"]) == 2  # hub error (an OSError)
    assert capsys.readouterr().err == (
        "s12ls download: error: listing paulhoehn/Sen12Landslides at revision 'nope': 404 Client Error: Revision Not Found for url: .../nope\n"
    )
    assert not dest.exists()

    full = make_archive(tmp_path / "full.tar.gz", {f"zz_s2_{i}.nc": os.urandom(50_000) for i in range(3)})
    cut = hub / "main" / "data_harmonized" / "s2" / "zz_cut.tar.gz"
    cut.write_bytes(full.read_bytes()[:60_000])
    assert cli.main(["download", "--dest", str(dest), "--sensors", "s2"]) == 1
    archive = dest / "data_harmonized" / "s2" / "zz_cut.tar.gz"
    assert f"  FAILED {archive}: {archive} is corrupt or truncated" in capsys.readouterr().out
    assert tree(dest) == with_folders(today_tree("harmonized", ["s2"]) + ["data_harmonized/s2/zz_cut.tar.gz"])


@pytest.mark.parametrize(
    "argv", [["--sensors", "s3"], ["--sensors", "s2,S1"], ["--sensors", ","], ["--version", "harmonised"]]
)
def test_cli_download_usage_errors(tmp_path: Path, fake_hub: FakeHub, argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["download", "--dest", str(tmp_path / "d"), *argv])
    assert excinfo.value.code == 2
    assert "s12ls download: error: argument" in capsys.readouterr().err
    assert fake_hub.list_calls == [] and not (tmp_path / "d").exists()


def test_cli_download_unreachable_hub_is_a_clear_error(tmp_path: Path, monkeypatch, capsys) -> None:
    """A transport error that is not an OSError (httpx's ConnectError) ends in one line, not a traceback."""

    class ConnectError(Exception):  # stands in for httpx's, which derives from Exception only
        pass

    def unreachable(*args, **kwargs):
        raise ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(dl, "dataset_info", unreachable)
    dest = tmp_path / "real"
    assert cli.main(["download", "--dest", str(dest), "--sensors", "s2"]) == 2
    err = capsys.readouterr().err
    assert "listing paulhoehn/Sen12Landslides" in err and "ConnectError" in err and "reachable" in err
    assert not dest.exists()  # nothing written before the snapshot could be listed


# --------------------------------------------------------------------------------------------------------
# the inventory in either place, the pinned commit and the manifest
# --------------------------------------------------------------------------------------------------------


def inventory_text(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        return zf.read("inventories.shp").decode()


def test_detect_layout_finds_the_inventory_in_either_place(hub: Path) -> None:
    fake = FakeHub(hub)
    assert dl.detect_layout(fake._files("main")).inventory == "data_harmonized/inventories.shp.zip"
    assert dl.detect_layout(fake._files("rootinv"), sensors=["s2"]).inventory == "inventories.zip"
    # both: the version's own inventory (the upstream README) comes first
    assert dl.detect_layout(fake._files("bothinv"), sensors=["s2"]).inventory == (
        "data_harmonized/inventories.shp.zip"
    )
    none = dl.detect_layout(fake._files("noinv"), sensors=["s2"])
    assert none.inventory is None
    assert none.inventory_candidates == ["data_harmonized/inventories.shp.zip", "inventories.zip"]
    assert none.inventory_note() == (
        "no landslide inventory in the snapshot (looked for data_harmonized/inventories.shp.zip and "
        "inventories.zip); the patches download without it"
    )
    root = dl.detect_layout(fake._files("v0.1"))
    assert root.inventory == "inventories.shp.zip" and root.inventory_note() is None


def test_root_inventory_lands_in_the_data_folder(tmp_path: Path, fake_hub: FakeHub) -> None:
    dest = tmp_path / "data"
    report = download_dataset(dest, sensors=["s2"], revision="rootinv", progress=False)

    data_dir = dest / "data_harmonized"
    assert fake_hub.calls[0]["allow_patterns"] == ["data_harmonized/s2/*.tar.gz", "inventories.zip"]
    assert inventory_text(data_dir / "inventories.shp.zip") == "root inventory"
    assert not (dest / "inventories.zip").exists()  # moved, not copied
    assert (report.inventory, report.inventory_source) == (
        data_dir / "inventories.shp.zip",
        "inventories.zip",
    )
    assert f"Inventory: {data_dir / 'inventories.shp.zip'} (the hub's inventories.zip)" in summarize(report)
    assert sorted(p.name for p in (data_dir / "s2").glob("*.nc")) == ["italy_s2_1.nc", "italy_s2_2.nc"]
    inv = dl.read_manifest(data_dir)["inventory"]
    hub_zip = fake_hub.root / "rootinv" / "inventories.zip"
    assert inv["path"] == "inventories.zip" and inv["file"] == "inventories.shp.zip"
    assert (inv["sha256"], inv["size"], inv["verified"]) == (sha256_of(hub_zip), hub_zip.stat().st_size, True)

    # a second run finds it in place with the hub's sha256 and does not download it again
    again = download_dataset(dest, sensors=["s2"], revision="rootinv", progress=False)
    assert fake_hub.calls[1]["allow_patterns"] == ["data_harmonized/s2/*.tar.gz"]
    assert again.inventory == data_dir / "inventories.shp.zip" and again.inventory_source == "inventories.zip"
    assert dl.read_manifest(data_dir)["inventory"]["sha256"] == sha256_of(hub_zip)


def test_inventory_in_both_places_takes_the_versions_own(tmp_path: Path, fake_hub: FakeHub) -> None:
    dest = tmp_path / "data"
    report = download_dataset(dest, sensors=["s2"], revision="bothinv", progress=False)
    assert fake_hub.calls[0]["allow_patterns"][-1] == "data_harmonized/inventories.shp.zip"
    assert inventory_text(dest / "data_harmonized" / "inventories.shp.zip") == "versioned inventory"
    assert report.inventory_source == "data_harmonized/inventories.shp.zip"
    assert not (dest / "inventories.zip").exists()


def test_no_inventory_is_one_line_and_the_patches_still_arrive(
    tmp_path: Path, fake_hub: FakeHub, capsys: pytest.CaptureFixture
) -> None:
    dest = tmp_path / "data"
    assert cli.main(["download", "--dest", str(dest), "--sensors", "s2", "--revision", "noinv"]) == 0
    captured = capsys.readouterr()
    data_dir = dest / "data_harmonized"
    assert sorted(p.name for p in (data_dir / "s2").glob("*.nc")) == ["italy_s2_1.nc", "italy_s2_2.nc"]
    assert not (data_dir / "inventories.shp.zip").exists()
    lines = (captured.out + captured.err).splitlines()
    said = [line for line in lines if line.startswith("Inventory") or "inventories" in line]
    assert said == [
        "Inventory: no landslide inventory in the snapshot (looked for data_harmonized/inventories.shp.zip "
        "and inventories.zip); the patches download without it"
    ]
    manifest = dl.read_manifest(data_dir)
    assert manifest["inventory"] is None and "looked for" in manifest["inventory_note"]
    assert [a["name"] for a in manifest["archives"]] == ["italy_s2.tar.gz"]


def test_manifest_records_the_commit_each_archive_and_the_time(tmp_path: Path, fake_hub: FakeHub) -> None:
    from datetime import UTC, datetime, timedelta

    dest = tmp_path / "data"
    before = datetime.now(UTC).replace(microsecond=0)
    report = download_dataset(dest, progress=False)
    after = datetime.now(UTC)

    data_dir = dest / "data_harmonized"
    manifest = json.loads((data_dir / dl.MANIFEST_NAME).read_text())
    assert report.manifest == data_dir / dl.MANIFEST_NAME and manifest == dl.read_manifest(data_dir)
    assert (manifest["repo_id"], manifest["revision"], manifest["requested_revision"]) == (
        REPO_ID,
        commit_of("main"),
        None,
    )
    assert (manifest["version"], manifest["layout"]) == ("harmonized", "versioned")
    when = datetime.fromisoformat(manifest["downloaded_at"])
    assert before <= when <= after
    hub_main = fake_hub.root / "main"
    expected = sorted(
        f"data_harmonized/{s}/{name}" for s in SENSORS for name in today_members("harmonized", s)
    )
    assert [a["path"] for a in manifest["archives"]] == expected
    for a in manifest["archives"]:
        assert a["name"] == Path(a["path"]).name and a["sensor"] == Path(a["path"]).parent.name
        assert (a["size"], a["sha256"]) == (
            (hub_main / a["path"]).stat().st_size,
            sha256_of(hub_main / a["path"]),
        )
        assert a["verified"] is True and a["downloaded_at"] == manifest["downloaded_at"]
    assert manifest["inventory"]["path"] == "data_harmonized/inventories.shp.zip"
    assert manifest["tasks"] == [
        "tasks/S12LS-LD/harmonized/config.json",
        "tasks/S12LS-LD/harmonized/s2/splits.json",
    ]

    # a second run downloads nothing new: the archives keep the record of when they were downloaded
    first = {a["path"]: a for a in manifest["archives"]}
    download_dataset(dest, progress=False)
    again = dl.read_manifest(data_dir)
    assert {a["path"]: a for a in again["archives"]} == first
    assert datetime.fromisoformat(again["downloaded_at"]) >= when
    assert datetime.fromisoformat(again["downloaded_at"]) - when < timedelta(minutes=5)


def test_archives_extracted_before_the_manifest_existed_are_recorded_unverified(
    tmp_path: Path, fake_hub: FakeHub
) -> None:
    dest = tmp_path / "data"
    download_dataset(dest, sensors=["s2"], progress=False)
    data_dir = dest / "data_harmonized"
    (data_dir / dl.MANIFEST_NAME).unlink()  # as a download made by an older version of the package left it
    download_dataset(dest, sensors=["s2"], progress=False)
    archives = dl.read_manifest(data_dir)["archives"]
    hub_main = fake_hub.root / "main"
    assert [a["verified"] for a in archives] == [False, False, False]  # not hashed by this run: not claimed
    assert [a["sha256"] for a in archives] == [sha256_of(hub_main / a["path"]) for a in archives]
    assert [a["downloaded_at"] for a in archives] == [None, None, None]


@pytest.mark.parametrize("how", ["branch", "commit"])
def test_revision_pins_the_commit(tmp_path: Path, fake_hub: FakeHub, how: str) -> None:
    revision = "rootinv" if how == "branch" else commit_of("rootinv")
    dest = tmp_path / "data"
    report = download_dataset(dest, sensors=["s2"], revision=revision, progress=False)
    assert fake_hub.calls[0]["revision"] == commit_of("rootinv")  # snapshot_download gets the commit
    for i in (1, 2):
        got = (dest / "data_harmonized" / "s2" / f"italy_s2_{i}.nc").read_bytes()
        assert got == patch_bytes("rootinv", f"italy_s2_{i}.nc")  # that commit's files, not main's
    manifest = dl.read_manifest(dest / "data_harmonized")
    assert (manifest["revision"], manifest["requested_revision"]) == (commit_of("rootinv"), revision)
    assert report.resolved_revision == commit_of("rootinv")


def test_a_data_folder_holds_one_commit(tmp_path: Path, fake_hub: FakeHub) -> None:
    dest = tmp_path / "data"
    download_dataset(dest, sensors=["s2"], progress=False)
    before = snapshot(dest)
    with pytest.raises(ValueError) as excinfo:
        download_dataset(dest, sensors=["s2"], revision="rootinv", progress=False)
    message = str(excinfo.value)
    assert commit_of("main") in message and commit_of("rootinv") in message
    assert f"--revision {commit_of('main')}" in message
    assert len(fake_hub.calls) == 1 and snapshot(dest) == before  # nothing downloaded, nothing changed
    # completing the same commit by its sha works
    download_dataset(dest, sensors=["s1asc"], revision=commit_of("main"), progress=False)
    assert {a["sensor"] for a in dl.read_manifest(dest / "data_harmonized")["archives"]} == {"s1asc", "s2"}


def test_an_archive_that_differs_from_the_hubs_sha256_is_not_unpacked(
    tmp_path: Path, fake_hub: FakeHub
) -> None:
    fake_hub.wrong_sha = {"data_harmonized/s2/nepal_s2.tar.gz"}
    dest = tmp_path / "data"
    report = download_dataset(dest, sensors=["s2"], progress=False)

    s2 = dest / "data_harmonized" / "s2"
    assert [a for a, _ in report.failed] == [s2 / "nepal_s2.tar.gz"]
    assert "differs from the hub's" in report.failed[0][1] and "run the download again" in report.failed[0][1]
    assert not (s2 / "nepal_s2.tar.gz").exists() and (s2 / f"nepal_s2.tar.gz{dl.MISMATCH_SUFFIX}").is_file()
    assert not list(s2.glob("nepal_s2_*.nc"))  # nothing of it unpacked
    assert sorted(p.name for p in s2.glob("*.nc")) == ["italy_s2_1.nc", "italy_s2_2.nc", "peru_s2_5.nc"]
    recorded = [a["name"] for a in dl.read_manifest(s2.parent)["archives"]]
    assert recorded == ["italy_s2.tar.gz", "peru_s2.tar.gz"]
    assert "1 failed" in summarize(report)

    fake_hub.wrong_sha = set()  # the next run fetches it anew and unpacks it
    again = download_dataset(dest, sensors=["s2"], progress=False)
    assert again.ok and again.extracted == [s2 / "nepal_s2.tar.gz"]
    assert sorted(p.name for p in s2.glob("nepal_s2_*.nc")) == ["nepal_s2_3.nc", "nepal_s2_4.nc"]


def test_a_short_commit_sha_gets_a_hint(tmp_path: Path, fake_hub: FakeHub, capsys) -> None:
    dest = tmp_path / "data"
    assert cli.main(["download", "--dest", str(dest), "--revision", "40af2dd"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "s12ls download: error: listing paulhoehn/Sen12Landslides at revision '40af2dd': 404"
    )
    assert "looks like a short commit sha" in err and "full 40-character" in err
    assert not dest.exists()


def test_data_revision_for_the_protocol_table(tmp_path: Path, fake_hub: FakeHub) -> None:
    dest = tmp_path / "data"
    download_dataset(dest, sensors=["s2"], progress=False)
    data_dir = dest / "data_harmonized"
    day = dl.read_manifest(data_dir)["downloaded_at"][:10]
    assert dl.data_revision(data_dir) == (
        f"{commit_of('main')} (paulhoehn/Sen12Landslides, data_harmonized, downloaded {day})"
    )
    other = tmp_path / "other"
    other.mkdir()
    assert dl.data_revision(other) == "unknown"
    (other / "synthetic_manifest.json").write_text("{}")
    assert dl.data_revision(other) == "synthetic sample"
    (other / dl.MANIFEST_NAME).write_text("not json")
    assert dl.data_revision(other) == "unknown (unreadable download manifest)"
    with pytest.raises(ValueError, match="is not a download manifest"):
        dl.read_manifest(other)
