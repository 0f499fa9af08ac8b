"""Download and unpack the Sen12Landslides dataset from the Hugging Face Hub.

The dataset lives in the Hugging Face *dataset* repository ``paulhoehn/Sen12Landslides``.  Today it is
published in two versions, each with several archives per sensor (grouped by region; S2 harmonized alone
is 28 archives, ~39 GB)::

    data_harmonized/s1asc/*.tar.gz        Sentinel-1 ascending patches  (<region>_s1asc_<id>.nc)
    data_harmonized/s1dsc/*.tar.gz        Sentinel-1 descending patches (<region>_s1dsc_<id>.nc)
    data_harmonized/s2/*.tar.gz           Sentinel-2 patches            (<region>_s2_<id>.nc)
    data_harmonized/inventories.shp.zip   landslide inventory of this version (the upstream README)
    data_raw/{s1asc,s1dsc,s2}/*.tar.gz    the same patches before harmonization
    data_raw/inventories.shp.zip
    inventories.zip                       the inventory at the root (what third-party downloaders fetch)
    tasks/<task>/<harmonized|raw>/...     task definitions (small json / geojson files)

:func:`download_dataset` (``s12ls download``) fetches one version and unpacks it like the upstream README
(``tar -xzvf archive -C data/$sensor``), so that ``<dest>/data_<version>`` is a data folder for the rest of
the package (``s12ls catalog <dest>/data_harmonized``)::

    <dest>/data_<version>/<sensor>/<region>_<sensor>_<id>.nc
    <dest>/data_<version>/<sensor>/<archive>.tar.gz.extracted.json   (resume markers)
    <dest>/data_<version>/inventories.shp.zip                        (wherever the hub keeps it)
    <dest>/data_<version>/download-manifest.json                     (revision, archives, sha256, time)
    <dest>/tasks/<task>/<version>/...

Older snapshots (reached with ``revision=``) kept the archives at the repository root
(``<sensor>/*.tar.gz``, ``inventories.shp.zip``, ``tasks/...``).  :func:`detect_layout` looks at the file
list of the requested snapshot and falls back to this *root* layout when ``data_<version>/`` is absent; the
data then land in ``<dest>/<sensor>/`` and ``<dest>`` is the data folder.

Steps:

1. :func:`fetch` asks the hub which commit the requested revision is (:func:`huggingface_hub.dataset_info`:
   the commit sha, every file with its size and, for LFS files, its sha256), picks the layout and the
   inventory (:data:`INVENTORY_NAME` in the version folder, else :data:`ROOT_INVENTORY` at the root; with
   neither, :attr:`FetchResult.inventory_note` says in one line what was looked for, and the patches still
   download), and downloads the selected parts **at that commit** with
   :func:`huggingface_hub.snapshot_download` into ``<dest>`` (resumable; the token defaults to ``HF_TOKEN`` or
   the cached ``huggingface-cli login``).  Archives already extracted by an earlier run are not downloaded
   again.  Every archive downloaded is hashed and compared with the hub's sha256; one that differs is
   renamed ``<archive>.sha256-mismatch`` (kept, never unpacked; the next run downloads it anew).
2. :func:`unpack` extracts every ``<data_dir>/<sensor>/*.tar.gz``.  Every member is checked as in
   :func:`safe_extract` (no absolute paths, ``..`` components, links, device files or anything else that
   could land outside the target folder; one unsafe member refuses the whole archive).  Of the regular
   files, only patch files of the archive's sensor (:data:`PATCH_PATTERN`) are unpacked, flat into
   ``<data_dir>/<sensor>/`` whatever folder they sit in inside the archive.  macOS ``._*`` AppleDouble
   files, ``__MACOSX/`` entries and any other non-patch file are skipped and reported
   (:attr:`UnpackReport.ignored`, :func:`summarize`).  A patch of *another* sensor makes the archive fail
   (:class:`ForeignPatchError`): it means the archive is not what its folder says, and neither dropping real
   data nor mixing sensors in one folder is a safe guess.  Files are extracted into a temporary folder,
   checked against the archive headers (sizes, gzip checksum) and only then moved into place, so a
   truncated or corrupt archive fails with an error naming it and leaves no partial files.  After a verified
   extraction a marker ``<archive>.extracted.json`` (files, sizes, skipped members) is written atomically
   and only then is the archive deleted (unless ``keep_archives``).  A second run finds the marker, checks
   the files and skips the archive.  One bad archive does not stop the others; it is recorded in
   :attr:`UnpackReport.failed` and kept on disk for inspection.
3. :func:`download_dataset` does both and writes the **manifest** :data:`MANIFEST_NAME` in the data folder
   (:func:`read_manifest`): the repository, the commit sha the hub resolved, the requested revision, the
   version, the time, and per archive in place its name, size, sha256 and whether the downloaded file was
   checked against that sha256; the inventory likewise.  A later run into the same folder at another commit
   stops before downloading anything (one data folder holds one revision).  :func:`data_revision` reads the
   manifest back for a protocol table.

Pinning: ``download_dataset(dest, revision="<40-character commit sha>")`` (``s12ls download --revision``)
downloads exactly that commit; the hub resolves branches and tags, but not short shas.

Example
-------
>>> from pathlib import Path
>>> from s12ls_utils.download import download_dataset, summarize
>>> report = download_dataset(Path("data/real"), sensors=["s2"])  # doctest: +SKIP
>>> print(summarize(report))  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import filecmp
import glob
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath, PureWindowsPath

from huggingface_hub import dataset_info, snapshot_download
from tqdm import tqdm

from .schema import FILENAME_RE, SENSORS, check_sensors

logger = logging.getLogger(__name__)

REPO_ID = "paulhoehn/Sen12Landslides"
"""Hugging Face dataset repository holding Sen12Landslides."""

VERSIONS = ("harmonized", "raw")
"""Published versions of the data, each in its own ``data_<version>/`` folder on the hub."""

DEFAULT_VERSION = "harmonized"

PATCH_PATTERN = FILENAME_RE
"""File-name pattern of a data patch, e.g. ``italy_s2_123.nc`` (:data:`s12ls_utils.schema.FILENAME_RE`)."""

ARCHIVE_GLOB = "*.tar.gz"
MARKER_SUFFIX = ".extracted.json"
"""Suffix appended to an archive's name to form its extraction marker."""

INVENTORY_NAME = "inventories.shp.zip"
"""The inventory's name in a version folder (upstream README) and in every local data folder."""
ROOT_INVENTORY = "inventories.zip"
"""The inventory at the hub's root: what third-party downloaders fetch (22 MB, 74,956 polygons)."""
MANIFEST_NAME = "download-manifest.json"
"""The download's record in the data folder: revision, archives (name, size, sha256), inventory, time."""
_MANIFEST_FORMAT = 1
MISMATCH_SUFFIX = ".sha256-mismatch"
"""Suffix given to a downloaded file whose sha256 differs from the hub's (kept, never unpacked)."""
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{4,39}$")

_MARKER_FORMAT = 2  # 1: no "ignored" list (every regular file was extracted)

REASON_APPLEDOUBLE = "AppleDouble resource fork (._*)"
"""Why a ``._*`` member (macOS resource fork) is not unpacked."""
REASON_MACOSX = "macOS metadata (__MACOSX/)"
"""Why a member below a ``__MACOSX/`` folder is not unpacked."""
REASON_NOT_PATCH = "not a patch file (<region>_<sensor>_<id>.nc)"
"""Why any other member not named like a patch file (:data:`PATCH_PATTERN`) is not unpacked."""


class HubError(OSError):
    """The hub could not be reached or answered with an error (network, access, unknown revision)."""


def _hub_call(what: str, fn, *args, **kwargs):
    """Call a huggingface_hub function; its transport errors (not all of them OSErrors) become a
    :class:`HubError` that names what was asked and the cause, instead of a traceback."""
    try:
        return fn(*args, **kwargs)
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError):
            raise HubError(f"{what}: {exc}") from exc
        raise
    except Exception as exc:  # httpx/hub exceptions that are not OSErrors (e.g. a ConnectError)
        raise HubError(
            f"{what}: {type(exc).__name__}: {exc} (is the Hugging Face hub reachable from this machine?)"
        ) from exc


class UnsafeArchiveError(ValueError):
    """An archive contains a member that could write outside the target folder or is not a plain file.

    Parameters
    ----------
    archive : Path
        The archive that was refused.
    member : str
        Name of the offending member as stored in the archive.
    reason : str
        Why the member was refused.
    """

    def __init__(self, archive: Path, member: str, reason: str) -> None:
        self.archive = Path(archive)
        self.member = member
        self.reason = reason
        super().__init__(f"refusing to extract {self.archive}: member {member!r} {reason}")


class CorruptArchiveError(ValueError):
    """An archive is truncated, corrupt, or its extracted content does not match its headers."""


class ForeignPatchError(ValueError):
    """An archive of one sensor's patches contains a patch file of another sensor.

    Parameters
    ----------
    archive : Path
        The archive that was refused (nothing of it is written).
    member : str
        The member named like a patch of ``found``.
    sensor : str
        The sensor of the archive (its folder).
    found : str
        The sensor in the member's file name.
    """

    def __init__(self, archive: Path, member: str, sensor: str, found: str) -> None:
        self.archive = Path(archive)
        self.member = member
        self.sensor = sensor
        self.found = found
        super().__init__(
            f"refusing to extract {self.archive}: member {member!r} is a {found} patch, but this is an "
            f"archive of {sensor} patches (the archive is not what its folder says)"
        )


@dataclass(frozen=True)
class IgnoredMember:
    """An archive member deliberately not unpacked.

    Attributes
    ----------
    archive : Path
        The archive it belongs to.
    member : str
        Its name inside the archive.
    reason : str
        One of ``REASON_APPLEDOUBLE``, ``REASON_MACOSX``, ``REASON_NOT_PATCH``.
    """

    archive: Path
    member: str
    reason: str


@dataclass
class UnpackReport:
    """Outcome of :func:`unpack`.

    Attributes
    ----------
    extracted : list of Path
        Archives extracted (and verified) by this run.
    skipped : list of Path
        Archives found already fully extracted (their marker matched the files on disk).  The archive
        itself may no longer exist.
    failed : list of (Path, str)
        Archives that could not be extracted, with the reason.  They are left on disk.
    n_files : int
        Number of data files verified present for the extracted and skipped archives.
    ignored : list of IgnoredMember
        Members of the extracted and skipped archives that were not unpacked because they are not patch
        files (AppleDouble ``._*`` files, ``__MACOSX/`` entries, anything else).
    """

    extracted: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    n_files: int = 0
    ignored: list[IgnoredMember] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """``True`` when no archive failed."""
        return not self.failed


@dataclass(frozen=True)
class _FileEntry:
    """A regular file of an archive: its member name, final path relative to dest, and size."""

    member: str
    rel: PurePosixPath
    size: int


# --------------------------------------------------------------------------------------------------------
# Safe extraction
# --------------------------------------------------------------------------------------------------------


def _member_filter(archive: Path, keep: set[str]):
    """The PEP 706 filter (``extractall(filter=…)``) of every archive; it sees every member. An unsafe one
    (:func:`_member_problem`) raises :class:`UnsafeArchiveError`, refusing the whole archive; one not in
    ``keep`` is skipped; the others pass through :func:`tarfile.data_filter`."""

    def check(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        problem = _member_problem(member)
        if problem is not None:
            raise UnsafeArchiveError(archive, member.name, problem)
        return tarfile.data_filter(member, path) if member.name in keep else None

    return check


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` must not be extracted, or ``None`` when it is acceptable (:func:`_member_filter`)."""
    name = member.name
    if not name or "\x00" in name:
        return "has an empty or invalid name"
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "has an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "has a '..' path component"
    if member.issym():
        return f"is a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"is a hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "is a device file"
    if member.isfifo():
        return "is a FIFO"
    if not (member.isreg() or member.isdir()):
        return f"has unsupported type {member.type!r}"
    return None


def _ignore_reason(archive: Path, name: str, sensor: str) -> str | None:
    """Why regular file ``name`` of an archive of ``sensor`` patches is not unpacked (``None``: unpack it).

    Raises
    ------
    ForeignPatchError
        ``name`` is a patch file of another sensor.
    """
    path = PurePosixPath(name)
    if "__MACOSX" in path.parts:
        return REASON_MACOSX
    if path.name.startswith("._"):
        return REASON_APPLEDOUBLE
    match = PATCH_PATTERN.match(path.name)
    if match is None:
        return REASON_NOT_PATCH
    if match["sensor"] != sensor:
        raise ForeignPatchError(archive, name, sensor, match["sensor"])
    return None


def _is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (after resolving symlinks) lies strictly inside ``root``."""
    real_root = Path(os.path.realpath(root))
    real_path = Path(os.path.realpath(path))
    return real_path != real_root and real_path.is_relative_to(real_root)


def _plan(
    archive: Path, members: list[tarfile.TarInfo], dest: Path, strip_dirs: bool, sensor: str | None
) -> tuple[list[_FileEntry], list[tuple[str, str]], ForeignPatchError | None]:
    """Work out where the regular files of ``archive`` will go (the members themselves are checked as they
    are extracted, :func:`_member_filter`).

    With ``sensor``, only patch files of that sensor are kept; the other regular files are returned as
    ``(member, reason)`` pairs, and the first patch of another sensor as a :class:`ForeignPatchError` that
    :func:`_extract` raises once every member has passed the filter (so an unsafe member is named first).

    Raises
    ------
    UnsafeArchiveError
        A member that names nothing, appears twice, would land outside ``dest`` or below a file; nothing
        has been written at that point.
    """
    seen: set[PurePosixPath] = set()
    files: list[tarfile.TarInfo] = []
    for member in members:
        path = PurePosixPath(member.name)
        if not path.parts:
            raise UnsafeArchiveError(archive, member.name, "does not name a file or folder")
        if path in seen:
            raise UnsafeArchiveError(archive, member.name, "appears more than once")
        seen.add(path)
        if member.isreg():  # links and special files never get this far (_member_filter)
            files.append(member)

    entries: list[_FileEntry] = []
    ignored: list[tuple[str, str]] = []
    foreign = None
    for member in files:
        try:
            reason = None if sensor is None else _ignore_reason(archive, member.name, sensor)
        except ForeignPatchError as exc:
            foreign = foreign or exc
            continue
        if reason is not None:
            ignored.append((member.name, reason))
            continue
        path = PurePosixPath(member.name)
        rel = PurePosixPath(path.name) if strip_dirs else path
        if not _is_inside(dest / rel, dest):
            raise UnsafeArchiveError(archive, member.name, f"would be written outside {dest}")
        entries.append(_FileEntry(member=member.name, rel=rel, size=member.size))
    # A path that is a file in one member and a folder in another cannot be extracted consistently.
    file_paths = {PurePosixPath(e.member) for e in entries}
    for entry in entries:
        for parent in PurePosixPath(entry.member).parents:
            if parent in file_paths:
                raise UnsafeArchiveError(
                    archive, entry.member, f"lies below {str(parent)!r}, which is a file"
                )
    return entries, ignored, foreign


@contextmanager
def _archive_errors(archive: Path) -> Iterator[None]:
    """Turn low-level decompression / tar errors into :class:`CorruptArchiveError` naming ``archive``."""
    try:
        yield
    except tarfile.FilterError as exc:
        raise UnsafeArchiveError(
            archive, exc.tarinfo.name, f"was rejected by tarfile's data filter ({exc})"
        ) from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CorruptArchiveError(f"{archive} is corrupt or truncated: {exc}") from exc


def _same_content(a: Path, b: Path) -> bool:
    return filecmp.cmp(a, b, shallow=False)


def _move_file(src: Path, target: Path) -> None:
    """Move ``src`` to ``target`` atomically, copying through a hidden temporary name across filesystems."""
    try:
        os.replace(src, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        partial = target.with_name(f".{target.name}.partial")
        try:
            shutil.copyfile(src, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


def _move_into(archive: Path, tmp: Path, dest: Path, entries: list[_FileEntry]) -> list[Path]:
    """Move verified files from ``tmp`` into ``dest``; all name clashes are resolved before anything moves."""
    moves: dict[PurePosixPath, Path] = {}  # final relative path -> extracted source
    final: dict[PurePosixPath, Path] = {}
    for entry in entries:
        src = tmp / entry.member
        target = dest / entry.rel
        if entry.rel in final:
            first = moves.get(entry.rel, target)
            if not _same_content(first, src):
                raise FileExistsError(
                    f"{archive}: member {entry.member!r} would replace {target} with different content"
                )
            continue
        if target.is_symlink() or target.exists():
            if target.is_symlink() or not target.is_file() or not _same_content(target, src):
                raise FileExistsError(
                    f"{archive}: member {entry.member!r} clashes with existing {target} (different content)"
                )
        else:
            moves[entry.rel] = src
        final[entry.rel] = target

    dest.mkdir(parents=True, exist_ok=True)
    moved: list[Path] = []
    try:
        for rel, src in moves.items():
            target = final[rel]
            target.parent.mkdir(parents=True, exist_ok=True)
            _move_file(src, target)
            moved.append(target)
    except BaseException:
        for target in moved:  # roll back so that dest holds no partial extraction
            target.unlink(missing_ok=True)
        raise
    return list(final.values())


def _extract(
    archive: Path, dest: Path, strip_dirs: bool, sensor: str | None = None
) -> tuple[list[tuple[_FileEntry, Path]], list[tuple[str, str]]]:
    """Implementation of :func:`safe_extract`; with ``sensor``, only that sensor's patch files.

    Returns the extracted entries with their final paths, and the ignored ``(member, reason)`` pairs.
    """
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    with _archive_errors(archive), tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        entries, ignored, foreign = _plan(archive, members, dest, strip_dirs, sensor)
        if not entries and foreign is None:
            logger.warning(
                "%s contains no %s", archive, "files" if sensor is None else f"{sensor} patch files"
            )
        keep = {entry.member for entry in entries}
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extracting-", dir=dest.parent))
        try:
            tar.extractall(tmp, filter=_member_filter(archive, keep))
            # Read to the end of the stream so that gzip checks its CRC and length trailer.
            while tar.fileobj.read(1 << 20):
                pass
            if foreign is not None:
                raise foreign
            for entry in entries:
                src = tmp / entry.member
                try:
                    st = os.lstat(src)
                except FileNotFoundError:
                    raise CorruptArchiveError(
                        f"{archive}: member {entry.member!r} was not extracted"
                    ) from None
                if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
                    raise CorruptArchiveError(
                        f"{archive}: member {entry.member!r} extracted with {st.st_size} bytes, "
                        f"but the archive header says {entry.size}"
                    )
            paths = _move_into(archive, tmp, dest, entries)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    by_rel = {p.relative_to(dest).as_posix(): p for p in paths}
    return [(entry, by_rel[entry.rel.as_posix()]) for entry in entries], ignored


def safe_extract(archive: Path, dest: Path, *, strip_dirs: bool = True) -> list[Path]:
    """Extract a ``.tar.gz`` / ``.tar`` archive into ``dest``, checking every member.

    The whole archive is refused, and nothing is written into ``dest``, if any member has an absolute
    path or a ``..`` component, is a symbolic or hard link, a device file or FIFO, appears twice, or would
    otherwise land outside ``dest``.  The files are first extracted into a temporary folder next to
    ``dest`` (same filesystem) through one PEP 706 filter (:func:`_member_filter`: these checks, then
    :func:`tarfile.data_filter`), their sizes are compared with the archive headers, and only then are
    they moved into ``dest``.  The temporary folder is removed in every case.  Every regular file is
    extracted; :func:`unpack` adds the selection of patch files.

    Parameters
    ----------
    archive : Path
        The archive to extract.
    dest : Path
        Target folder; created (with parents) if needed.
    strip_dirs : bool, default True
        Flatten folders inside the archive so every file lands directly in ``dest``.  Two members with the
        same file name are fine when their content is identical, otherwise an error is raised.

    Returns
    -------
    list of Path
        Final paths of the extracted files (each once).

    Raises
    ------
    UnsafeArchiveError
        A member is unsafe (see above).
    CorruptArchiveError
        The archive is truncated or corrupt, or an extracted file has the wrong size.  ``dest`` is left
        without partial files.
    FileExistsError
        A file would replace an existing file (or another member) with different content.
    FileNotFoundError
        ``archive`` does not exist.
    """
    files, _ = _extract(archive, dest, strip_dirs)
    return list(dict.fromkeys(path for _, path in files))


# --------------------------------------------------------------------------------------------------------
# Markers and unpacking
# --------------------------------------------------------------------------------------------------------


def _marker_path(archive: Path) -> Path:
    return archive.with_name(archive.name + MARKER_SUFFIX)


def _write_marker(
    marker: Path,
    archive: Path,
    sensor: str,
    files: list[tuple[_FileEntry, Path]],
    ignored: list[tuple[str, str]],
) -> None:
    """Write the extraction marker of ``archive`` atomically (:func:`_write_json`)."""
    content = {
        "format": _MARKER_FORMAT,
        "archive": archive.name,
        "archive_size": archive.stat().st_size,
        "sensor": sensor,
        "files": [
            {"member": entry.member, "path": entry.rel.as_posix(), "size": entry.size} for entry, _ in files
        ],
        "ignored": [{"member": member, "reason": reason} for member, reason in ignored],
    }
    _write_json(marker, content)


def _write_json(path: Path, content) -> None:
    """Write ``content`` as JSON to ``path`` atomically (temporary file + ``os.replace``)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(content, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _completed(archive: Path) -> tuple[list[Path], list[tuple[str, str]]] | None:
    """Files and ignored members recorded in ``archive``'s marker, if all those files are on disk.

    Returns ``None`` when there is no usable marker, a file is missing or has the wrong size, or the
    archive on disk differs in size from the one the marker describes.
    """
    marker = _marker_path(archive)
    if not marker.is_file():
        return None
    folder = archive.parent
    try:
        content = json.loads(marker.read_text(encoding="utf-8"))
        files = [(folder / item["path"], int(item["size"])) for item in content["files"]]
        ignored = [(str(item["member"]), str(item["reason"])) for item in content.get("ignored", [])]
        archive_size = int(content["archive_size"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("ignoring unreadable marker %s: %s", marker, exc)
        return None
    if archive.exists() and archive.stat().st_size != archive_size:
        logger.info("%s differs from the archive recorded in %s; extracting again", archive, marker.name)
        return None
    paths: list[Path] = []
    for path, size in files:
        if not _is_inside(path, folder) or not path.is_file() or path.stat().st_size != size:
            return None
        paths.append(path)
    return list(dict.fromkeys(paths)), ignored


def _remove_archive(archive: Path) -> None:
    try:
        archive.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # extraction succeeded; a leftover archive only costs disk space
        logger.warning("could not delete %s: %s", archive, exc)


def _unpack_one(
    archive: Path, sensor: str, keep_archives: bool
) -> tuple[bool, list[Path], list[tuple[str, str]]]:
    """Extract one archive unless already done; returns ``(extracted_now, files, ignored members)``."""
    done = _completed(archive)
    if done is not None:
        if not keep_archives and archive.exists():
            _remove_archive(archive)  # an earlier run stopped between marker and deletion
        return False, *done
    if not archive.exists():
        raise FileNotFoundError(
            f"{archive} is gone but the files listed in {_marker_path(archive).name} are incomplete; "
            "download it again"
        )
    files, ignored = _extract(archive, archive.parent, strip_dirs=True, sensor=sensor)
    _write_marker(_marker_path(archive), archive, sensor, files, ignored)
    if not keep_archives:
        _remove_archive(archive)
    if ignored:
        logger.info(
            "%s: skipped %d member(s) that are not %s patch files", archive.name, len(ignored), sensor
        )
    return True, list(dict.fromkeys(path for _, path in files)), ignored


def _archives_in(folder: Path) -> list[Path]:
    """Archives in ``folder``, including ones already deleted whose marker remains."""
    names = {p.name for p in folder.glob(ARCHIVE_GLOB) if p.is_file()}
    names |= {p.name[: -len(MARKER_SUFFIX)] for p in folder.glob(ARCHIVE_GLOB + MARKER_SUFFIX)}
    return [folder / name for name in sorted(names)]


def _validate_version(version: str) -> str:
    if version not in VERSIONS:
        raise ValueError(f"unknown version {version!r}; valid versions are {', '.join(VERSIONS)}")
    return version


def unpack(
    dest: Path,
    *,
    sensors: Iterable[str] = SENSORS,
    keep_archives: bool = False,
    progress: bool = True,
) -> UnpackReport:
    """Safely extract every ``<dest>/<sensor>/*.tar.gz`` into ``<dest>/<sensor>/``.

    ``dest`` is a data folder: ``<root>/data_harmonized`` or ``<root>/data_raw`` for today's hub layout,
    the download root itself for the older root layout.  Each archive is checked like in
    :func:`safe_extract`; its patch files of ``sensor`` are extracted flat into ``<dest>/<sensor>/``
    (whatever folders they sit in inside the archive), its other regular files (``._*`` AppleDouble
    files, ``__MACOSX/`` entries, anything not named like a patch) are skipped and listed in
    :attr:`UnpackReport.ignored`, and a patch file of another sensor fails the archive
    (:class:`ForeignPatchError`).  After a verified extraction the marker ``<archive>.extracted.json`` is
    written atomically, and only then is the archive deleted.  Archives whose marker matches the files on
    disk are skipped (their ignored members are reported again from the marker), so running this again is
    cheap; this also holds when the archive itself has already been deleted.

    Parameters
    ----------
    dest : Path
        Data folder holding one folder per sensor.
    sensors : iterable of str, default SENSORS
        Sensor folders to process.
    keep_archives : bool, default False
        Keep the archives after extraction instead of deleting them.
    progress : bool, default True
        Show a tqdm progress bar over the archives.

    Returns
    -------
    UnpackReport
        Archives extracted, skipped and failed, and the members not unpacked.  A failing archive (unsafe,
        corrupt, clashing, foreign patches) is logged, recorded in ``failed`` and kept on disk, and nothing
        of it is written; the other archives are still processed.

    Raises
    ------
    ValueError
        An unknown sensor was requested.
    """
    dest = Path(dest)
    chosen = check_sensors(sensors)
    jobs: list[tuple[str, Path]] = []
    for sensor in chosen:
        folder = dest / sensor
        if not folder.is_dir():
            logger.warning("no folder %s; nothing to unpack for %s", folder, sensor)
            continue
        jobs.extend((sensor, archive) for archive in _archives_in(folder))

    report = UnpackReport()
    files: set[Path] = set()
    for sensor, archive in tqdm(jobs, desc="Unpacking", unit="archive", disable=not progress):
        try:
            extracted_now, paths, ignored = _unpack_one(archive, sensor, keep_archives)
        except (ValueError, OSError) as exc:
            logger.error("failed to unpack %s: %s", archive, exc)
            report.failed.append((archive, str(exc)))
            continue
        if extracted_now:
            logger.info("extracted %d file(s) from %s", len(paths), archive)
            report.extracted.append(archive)
        else:
            logger.debug("%s already extracted; skipping", archive)
            report.skipped.append(archive)
        report.ignored.extend(IgnoredMember(archive, member, reason) for member, reason in ignored)
        files.update(paths)
    report.n_files = len(files)
    return report


# --------------------------------------------------------------------------------------------------------
# Hub layout
# --------------------------------------------------------------------------------------------------------


@dataclass
class HubLayout:
    """Where one snapshot of the hub keeps the requested data; made by :func:`detect_layout`.

    Attributes
    ----------
    kind : str
        ``"versioned"`` (today: ``data_<version>/<sensor>/*.tar.gz``) or ``"root"`` (older snapshots:
        ``<sensor>/*.tar.gz``).
    version : str
        The requested version (``"harmonized"`` or ``"raw"``); a root-layout snapshot has no version
        folders, its archives are used as they are.
    archives : dict of str to list of str
        Repository paths of the archives of each requested sensor.
    inventory : str or None
        Repository path of the landslide inventory the download uses: the first of
        :attr:`inventory_candidates` the snapshot holds, ``None`` when it holds none.
    tasks : list of str
        Repository paths of the task files of this version (``tasks/<task>/<version>/...``; all of
        ``tasks/`` for the root layout).
    """

    kind: str
    version: str
    archives: dict[str, list[str]]
    inventory: str | None
    tasks: list[str]

    @property
    def prefix(self) -> str:
        """Repository folder (with ``/``) holding the sensor folders: ``data_<version>/`` or ``""``."""
        return f"data_{self.version}/" if self.kind == "versioned" else ""

    @property
    def task_pattern(self) -> str:
        """``allow_patterns`` entry selecting the task files of this layout."""
        return f"tasks/*/{self.version}/**" if self.kind == "versioned" else "tasks/**"

    @property
    def inventory_candidates(self) -> list[str]:
        """Where the inventory is looked for, in order: ``<prefix>inventories.shp.zip`` (the upstream README
        at the vendored commit), then ``inventories.zip`` at the root (what third-party downloaders fetch)."""
        return [f"{self.prefix}{INVENTORY_NAME}", ROOT_INVENTORY]

    def inventory_note(self) -> str | None:
        """One line saying what was looked for when the snapshot has no inventory (``None`` when it has one)."""
        if self.inventory is not None:
            return None
        return (
            f"no landslide inventory in the snapshot (looked for {' and '.join(self.inventory_candidates)}); "
            "the patches download without it"
        )

    def archive_pattern(self, sensor: str) -> str:
        """``allow_patterns`` entry selecting the archives of ``sensor``."""
        return f"{self.prefix}{sensor}/{ARCHIVE_GLOB}"

    def data_dir(self, dest: Path) -> Path:
        """The local data folder (holding ``<sensor>/*.nc``) below the download root ``dest``."""
        return Path(dest) / self.prefix.rstrip("/") if self.prefix else Path(dest)

    def describe(self) -> str:
        """One line naming the layout, e.g. for the CLI summary."""
        if self.kind == "versioned":
            return f"data_{self.version}/<sensor>/*.tar.gz (versioned layout)"
        return (
            f"<sensor>/*.tar.gz at the repository root (older root layout; the snapshot has no "
            f"data_{self.version}/ folder)"
        )


def _archive_folders(files: list[str]) -> dict[str, list[str]]:
    """``{folder: [archive paths]}`` of the ``.tar.gz`` files of a repository listing."""
    folders: dict[str, list[str]] = defaultdict(list)
    for path in files:
        if fnmatchcase(path, ARCHIVE_GLOB):
            folders[PurePosixPath(path).parent.as_posix()].append(path)
    return {folder: sorted(paths) for folder, paths in folders.items()}


def _describe_snapshot(files: list[str]) -> str:
    """What a snapshot holds: its archive folders (with counts) and top-level entries."""
    if not files:
        return "the snapshot has no files"
    folders = _archive_folders(files)
    top = sorted({p.split("/", 1)[0] + ("/" if "/" in p else "") for p in files})
    if folders:
        listed = ", ".join(
            f"{'(root)' if folder == '.' else folder + '/'} ({len(paths)} archive{'s' * (len(paths) != 1)})"
            for folder, paths in sorted(folders.items())
        )
        text = f"the snapshot has archives in {listed}"
    else:
        text = "the snapshot has no .tar.gz archives"
    return f"{text}; top-level entries: {', '.join(top)}"


def _revision_name(revision: str | None) -> str:
    return "the main branch" if revision is None else f"revision {revision!r}"


def detect_layout(
    files: Iterable[str],
    *,
    version: str = DEFAULT_VERSION,
    sensors: Iterable[str] = SENSORS,
    revision: str | None = None,
) -> HubLayout:
    """Work out where a snapshot keeps the archives of ``sensors`` from its list of files.

    When the snapshot has a ``data_<version>/`` folder, the archives are ``data_<version>/<sensor>/*.tar.gz``
    (today's layout).  Without it, they are looked for at the root, ``<sensor>/*.tar.gz`` (older
    snapshots).  The inventory is the first of :attr:`HubLayout.inventory_candidates` the snapshot holds.

    Parameters
    ----------
    files : iterable of str
        Repository paths of the snapshot (:attr:`Snapshot.files`).
    version : {"harmonized", "raw"}, default "harmonized"
        Version to look for.
    sensors : iterable of str, default SENSORS
        Sensors whose archives are needed.
    revision : str, optional
        Only used in messages.

    Returns
    -------
    HubLayout

    Raises
    ------
    ValueError
        Unknown version or sensor, or the chosen layout has no archives for some requested sensor; the
        message lists the archive folders and top-level entries of the snapshot.
    """
    version = _validate_version(version)
    chosen = check_sensors(sensors)
    files = sorted(files)
    folders = _archive_folders(files)
    versioned = any(path.startswith(f"data_{version}/") for path in files)
    kind = "versioned" if versioned else "root"
    prefix = f"data_{version}/" if versioned else ""
    archives = {sensor: folders.get(f"{prefix}{sensor}", []) for sensor in chosen}
    missing = [sensor for sensor, paths in archives.items() if not paths]
    if missing:
        if versioned:
            where = f"in data_{version}/<sensor>/*.tar.gz"
        else:
            where = (
                f"in neither data_{version}/<sensor>/*.tar.gz (there is no data_{version}/ folder) nor "
                "<sensor>/*.tar.gz at the root (older layout)"
            )
        raise ValueError(
            f"{REPO_ID} at {_revision_name(revision)} has no archives for {', '.join(missing)} {where}; "
            f"{_describe_snapshot(files)}"
        )
    layout = HubLayout(kind=kind, version=version, archives=archives, inventory=None, tasks=[])
    present = set(files)
    layout.inventory = next((p for p in layout.inventory_candidates if p in present), None)
    layout.tasks = [path for path in files if fnmatchcase(path, layout.task_pattern)]
    return layout


# --------------------------------------------------------------------------------------------------------
# The snapshot: which commit, which files
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubFile:
    """One file of a snapshot as the hub lists it.

    Attributes
    ----------
    path : str
        Repository path.
    size : int or None
        Size in bytes.
    sha256 : str or None
        The hub's sha256 of the content (LFS files: every archive and the inventory); ``None`` for small files
        kept in git.
    """

    path: str
    size: int | None
    sha256: str | None


@dataclass
class Snapshot:
    """What :func:`list_snapshot` returns: the commit the hub resolved and that commit's files."""

    revision: str
    files: dict[str, HubFile]


def _revision_hint(revision: str | None) -> str:
    """A hint for a revision that looks like a short commit sha (the hub does not resolve those)."""
    if revision is not None and _SHORT_SHA.match(revision):
        return (
            f" ({revision!r} looks like a short commit sha: the hub resolves branches, tags and full "
            "40-character shas only; copy the full sha from the dataset's commit history)"
        )
    return ""


def list_snapshot(revision: str | None = None, token: str | bool | None = None) -> Snapshot:
    """Ask the hub which commit ``revision`` is and list that commit's files with sizes and sha256.

    Parameters
    ----------
    revision : str, optional
        Branch, tag or full commit sha (default: the main branch).
    token : str or bool, optional
        Hugging Face token (``None``: ``HF_TOKEN`` or the cached login; ``False``: none).

    Returns
    -------
    Snapshot
        ``revision`` is the 40-character commit sha the hub resolved; downloading at it gets exactly these
        files, however the branch moves meanwhile.

    Raises
    ------
    HubError
        The hub could not be reached, or does not know the revision (with a hint for a short sha).
    """
    what = f"listing {REPO_ID} at {_revision_name(revision)}"
    try:
        info = _hub_call(what, dataset_info, REPO_ID, revision=revision, files_metadata=True, token=token)
    except HubError as exc:
        hint = _revision_hint(revision)
        if hint:
            raise HubError(f"{exc}{hint}") from exc
        raise
    if not info.sha:
        raise HubError(f"{what}: the hub did not say which commit it resolved")
    files = {}
    for sib in info.siblings or []:
        lfs = sib.lfs
        files[sib.rfilename] = HubFile(
            sib.rfilename, lfs.size if lfs is not None else sib.size, lfs.sha256 if lfs is not None else None
        )
    return Snapshot(str(info.sha), files)


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# --------------------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------------------


@dataclass
class FetchResult:
    """Outcome of :func:`fetch`.

    Attributes
    ----------
    layout : HubLayout
        The layout found in the snapshot.
    data_dir : Path
        Local data folder: ``<dest>/data_<version>`` (versioned layout) or ``<dest>`` (root layout).
    archives : list of Path
        The sensor archives (``<data_dir>/<sensor>/*.tar.gz``) present after the download.
    inventory : Path or None
        ``<data_dir>/inventories.shp.zip`` when it was requested and is present (whichever hub path it came
        from: :attr:`HubLayout.inventory`).
    revision : str
        The commit sha the hub resolved (the download was made at it).
    hub_files : dict of str to HubFile
        The snapshot's files.
    hashes : dict of str to str
        Repository path → sha256 of the local file, for the archives and the inventory checked by this run
        (each equal to the hub's sha256 where the hub gives one).
    failed : list of (Path, str)
        Downloaded files whose sha256 differs from the hub's: renamed ``<name>.sha256-mismatch``, never
        unpacked.
    inventory_note : str or None
        One line saying what was looked for when the snapshot has no inventory.
    """

    layout: HubLayout
    data_dir: Path
    archives: list[Path]
    inventory: Path | None
    revision: str = ""
    hub_files: dict[str, HubFile] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    inventory_note: str | None = None


@dataclass
class DownloadReport(UnpackReport):
    """Outcome of :func:`download_dataset`: an :class:`UnpackReport` plus where the data came from and went.

    Attributes
    ----------
    layout : HubLayout or None
        The layout found in the snapshot.
    revision : str or None
        The requested revision (``None``: the main branch).
    data_dir : Path or None
        Local data folder (``<dest>/data_<version>``, or ``<dest>`` for the root layout); pass it to
        ``s12ls catalog``.
    inventory : Path or None
        The local inventory, ``<data_dir>/inventories.shp.zip``, if any.
    resolved_revision : str or None
        The commit sha the hub resolved: the data are that commit's.
    inventory_source : str or None
        The inventory's path on the hub (``data_<version>/inventories.shp.zip`` or ``inventories.zip``).
    inventory_note : str or None
        One line saying what was looked for when the snapshot has no inventory.
    manifest : Path or None
        The manifest written (:data:`MANIFEST_NAME` in the data folder).
    """

    layout: HubLayout | None = None
    revision: str | None = None
    data_dir: Path | None = None
    inventory: Path | None = None
    resolved_revision: str | None = None
    inventory_source: str | None = None
    inventory_note: str | None = None
    manifest: Path | None = None


def _extracted_archives(data_dir: Path, prefix: str, sensors: tuple[str, ...]) -> list[str]:
    """Repository paths of archives whose extraction marker matches the files in ``data_dir``."""
    paths = []
    for sensor in sensors:
        folder = data_dir / sensor
        if not folder.is_dir():
            continue
        for archive in _archives_in(folder):
            if _completed(archive) is not None:
                paths.append(f"{prefix}{sensor}/{archive.name}")
    return paths


def read_manifest(data_dir: str | Path) -> dict | None:
    """The download manifest of a data folder (:data:`MANIFEST_NAME`), ``None`` when there is none.

    Keys: ``repo_id``, ``revision`` (the commit sha the hub resolved), ``requested_revision`` (``None``: the
    main branch), ``version``, ``layout``, ``downloaded_at`` (UTC, ISO 8601), ``archives`` (per archive in
    place: ``sensor``, ``name``, ``path`` on the hub, ``size``, ``sha256``, ``verified`` = the downloaded file
    was hashed and matched the hub's sha256, ``downloaded_at``), ``inventory`` (``path`` on the hub, ``file``,
    ``size``, ``sha256``, ``verified``; ``None`` without one), ``inventory_note`` and ``tasks``.

    Raises
    ------
    ValueError
        The file exists but is not a manifest (the message names it).
    """
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(content, dict) or not isinstance(content.get("revision"), str):
            raise ValueError("no 'revision'")
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not a download manifest ({exc}); delete it to download afresh") from exc
    return content


def data_revision(data_dir: str | Path) -> str:
    """Which data a folder holds, for a protocol table: the hub commit of its download manifest
    (``"<sha> (paulhoehn/Sen12Landslides, data_harmonized, downloaded 2026-01-31)"``), ``"synthetic sample"``
    for the generator's folder, else ``"unknown"`` (also for an unreadable manifest)."""
    from .io import RELEASE_MANIFEST

    try:
        manifest = read_manifest(data_dir)
    except ValueError:
        return "unknown (unreadable download manifest)"
    if manifest is None:
        return "synthetic sample" if (Path(data_dir) / RELEASE_MANIFEST).is_file() else "unknown"
    folder = f"data_{manifest['version']}" if manifest.get("layout") == "versioned" else "root layout"
    when = str(manifest.get("downloaded_at") or "")[:10] or "at an unknown time"
    return f"{manifest['revision']} ({manifest.get('repo_id', REPO_ID)}, {folder}, downloaded {when})"


def fetch(
    dest: Path,
    *,
    version: str = DEFAULT_VERSION,
    sensors: Iterable[str] = SENSORS,
    revision: str | None = None,
    token: str | bool | None = None,
    include_tasks: bool = True,
    include_inventory: bool = True,
    max_workers: int = 4,
    skip_extracted: bool = True,
    progress: bool = True,
) -> FetchResult:
    """Download (or resume downloading) the selected parts of the dataset into ``dest``.

    Resolves ``revision`` to a commit and lists its files (:func:`list_snapshot`), picks its layout and
    inventory with :func:`detect_layout`, then calls :func:`huggingface_hub.snapshot_download` at that commit
    with ``local_dir=dest``, so the repository layout is reproduced under ``dest``
    (``<dest>/data_<version>/<sensor>/*.tar.gz``, or ``<dest>/<sensor>/*.tar.gz`` for a root-layout snapshot)
    and interrupted downloads resume.  An inventory kept at the hub's root (``inventories.zip``) is moved to
    ``<data_dir>/inventories.shp.zip``, where a versioned one lands, so a data folder always has it under one
    name.  Every archive downloaded (and the inventory) is hashed and compared with the hub's sha256.

    Parameters
    ----------
    dest : Path
        Download root; created if needed (not before the snapshot has been listed).
    version : {"harmonized", "raw"}, default "harmonized"
        Version of the data (``data_<version>/`` on the hub).
    sensors : iterable of str, default SENSORS
        Sensors whose archives to download.
    revision : str, optional
        Branch, tag or full commit sha of the dataset repository (default: the main branch).
    token : str or bool, optional
        Hugging Face token.  ``None`` uses ``HF_TOKEN`` or the cached login; ``False`` sends none.
    include_tasks : bool, default True
        Also download the task definitions of this version (``tasks/*/<version>/**``; ``tasks/**`` for a
        root-layout snapshot).
    include_inventory : bool, default True
        Also download the inventory (:attr:`HubLayout.inventory_candidates`, the first present).  Without
        one in the snapshot the patches still download, and :attr:`FetchResult.inventory_note` says what
        was looked for.  A local inventory with the hub's sha256 is not downloaded again.
    max_workers : int, default 4
        Parallel downloads.
    skip_extracted : bool, default True
        Do not download archives that an earlier :func:`unpack` already extracted (their marker matches
        the files on disk).  Delete the marker to force a new download.
    progress : bool, default True
        Show a progress bar while hashing the downloaded files.

    Returns
    -------
    FetchResult
        The layout, the commit, the local data folder, the archives present after the download and the
        checks made.

    Raises
    ------
    ValueError
        An unknown version or sensor was requested, nothing was selected for download, the snapshot has no
        archives for a requested sensor (see :func:`detect_layout`), or the data folder holds a download
        of another commit (its manifest says which: pass that as ``revision`` to complete it).
    HubError
        The hub could not be reached or does not know the revision.
    """
    dest = Path(dest)
    version = _validate_version(version)
    chosen = check_sensors(sensors)
    if not chosen and not include_tasks and not include_inventory:
        raise ValueError("nothing to download: no sensors selected and tasks/inventory excluded")
    snap = list_snapshot(revision, token)
    layout = detect_layout(list(snap.files), version=version, sensors=chosen, revision=revision)
    logger.info(
        "%s at %s (commit %s): %s", REPO_ID, _revision_name(revision), snap.revision, layout.describe()
    )
    data_dir = layout.data_dir(dest)
    previous = read_manifest(data_dir)
    if previous is not None and previous["revision"] != snap.revision:
        raise ValueError(
            f"{data_dir} holds a download of commit {previous['revision']} ({MANIFEST_NAME}), but the hub "
            f"resolved {_revision_name(revision)} to {snap.revision}; one data folder holds one revision: pass "
            f"--revision {previous['revision']} to complete that download, or choose another destination"
        )
    allow = [layout.archive_pattern(sensor) for sensor in chosen]
    if include_tasks:
        if layout.tasks:
            allow.append(layout.task_pattern)
        else:
            logger.warning("the snapshot has no task files matching %s", layout.task_pattern)
    hashes: dict[str, str] = {}
    target = data_dir / INVENTORY_NAME
    inventory_note = layout.inventory_note() if include_inventory else None
    if inventory_note is not None:
        logger.info(inventory_note)
    fetch_inventory = include_inventory and layout.inventory is not None
    if fetch_inventory and target.is_file():
        want = snap.files[layout.inventory].sha256
        digest = _sha256(target)
        if want is not None and digest == want:
            fetch_inventory = False  # already here, as the hub has it
            hashes[layout.inventory] = digest
    if fetch_inventory:
        allow.append(layout.inventory)
    if not allow:
        raise ValueError("nothing to download: no sensors selected and no tasks/inventory in the snapshot")
    done = _extracted_archives(data_dir, layout.prefix, chosen) if skip_extracted else []
    if done:
        logger.info("not downloading %d archive(s) that are already extracted", len(done))
    dest.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s (%s) into %s", REPO_ID, ", ".join(allow), dest)
    _hub_call(
        f"downloading {REPO_ID} at commit {snap.revision}",
        snapshot_download,
        repo_id=REPO_ID,
        repo_type="dataset",
        revision=snap.revision,
        local_dir=dest,
        allow_patterns=allow,
        ignore_patterns=[glob.escape(p) for p in done] or None,
        token=token,
        max_workers=max_workers,
    )
    checks = [(p, dest / p) for s in chosen for p in layout.archives[s] if p not in set(done)]
    if fetch_inventory:
        src = dest / layout.inventory
        if src != target and src.is_file():  # the root inventory: into the data folder, under one name
            target.parent.mkdir(parents=True, exist_ok=True)
            _move_file(src, target)
        checks.append((layout.inventory, target))
    failed: list[tuple[Path, str]] = []
    for rel, local in tqdm(checks, desc="Checking sha256", unit="file", disable=not progress):
        if not local.is_file():
            continue
        digest, want = _sha256(local), snap.files[rel].sha256
        if want is not None and digest != want:
            kept = local.with_name(local.name + MISMATCH_SUFFIX)
            os.replace(local, kept)
            reason = (
                f"sha256 {digest} differs from the hub's {want} (commit {snap.revision}): kept as {kept.name}, "
                "not unpacked; run the download again to fetch it anew"
            )
            logger.error("%s: %s", local, reason)
            failed.append((local, reason))
            continue
        hashes[rel] = digest
    archives = sorted(p for sensor in chosen for p in (data_dir / sensor).glob(ARCHIVE_GLOB) if p.is_file())
    inventory = target if include_inventory and layout.inventory is not None and target.is_file() else None
    return FetchResult(
        layout,
        data_dir,
        archives,
        inventory,
        revision=snap.revision,
        hub_files=snap.files,
        hashes=hashes,
        failed=failed,
        inventory_note=inventory_note,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _file_entry(rel: str, fetched: FetchResult, old: Mapping | None, now: str) -> dict:
    """Manifest entry of one hub file in place: this run's check, else the previous manifest's, else the hub's."""
    hub = fetched.hub_files.get(rel)
    if rel in fetched.hashes:
        size = hub.size if hub is not None else None
        return {
            "path": rel,
            "size": size,
            "sha256": fetched.hashes[rel],
            "verified": True,
            "downloaded_at": now,
        }
    if old is not None:
        return {k: old.get(k) for k in ("path", "size", "sha256", "verified", "downloaded_at")}
    return {
        "path": rel,
        "size": hub.size if hub is not None else None,
        "sha256": hub.sha256 if hub is not None else None,
        "verified": False,  # extracted before this manifest existed: the archive was not hashed here
        "downloaded_at": None,
    }


def _write_manifest(
    fetched: FetchResult,
    unpacked: UnpackReport,
    requested: str | None,
    include_tasks: bool,
) -> Path:
    """Merge this run into the data folder's manifest (same commit; see :func:`fetch`) and write it."""
    layout, data_dir = fetched.layout, fetched.data_dir
    previous = read_manifest(data_dir) or {}
    now = _now()
    old = {a["path"]: a for a in previous.get("archives", []) if a.get("path")}
    entries = dict(old)  # archives of sensors this run did not touch stay recorded
    for archive in [*unpacked.extracted, *unpacked.skipped]:
        rel = f"{layout.prefix}{archive.parent.name}/{archive.name}"
        entry = _file_entry(rel, fetched, old.get(rel), now)
        entries[rel] = {"sensor": archive.parent.name, "name": archive.name, **entry}
    inventory = previous.get("inventory")
    if fetched.inventory is not None:
        rel = layout.inventory
        same = inventory if inventory is not None and inventory.get("path") == rel else None
        inventory = {**_file_entry(rel, fetched, same, now), "file": INVENTORY_NAME}
    elif inventory is not None and not (data_dir / INVENTORY_NAME).is_file():
        inventory = None
    tasks = set(previous.get("tasks", [])) | (set(layout.tasks) if include_tasks else set())
    manifest = {
        "format": _MANIFEST_FORMAT,
        "repo_id": REPO_ID,
        "repo_type": "dataset",
        "revision": fetched.revision,
        "requested_revision": requested,
        "version": layout.version,
        "layout": layout.kind,
        "downloaded_at": now,
        "archives": [entries[k] for k in sorted(entries)],
        "inventory": inventory,
        "inventory_note": fetched.inventory_note if inventory is None else None,
        "tasks": sorted(tasks),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / MANIFEST_NAME
    _write_json(path, manifest)
    return path


def download_dataset(
    dest: Path,
    *,
    version: str = DEFAULT_VERSION,
    sensors: Iterable[str] = SENSORS,
    revision: str | None = None,
    token: str | bool | None = None,
    keep_archives: bool = False,
    include_tasks: bool = True,
    include_inventory: bool = True,
    progress: bool = True,
) -> DownloadReport:
    """Download one version of the dataset into ``dest``, unpack it and record what was downloaded.

    Runs :func:`fetch` and then :func:`unpack` on the data folder, and writes the manifest
    (:data:`MANIFEST_NAME`, :func:`read_manifest`); safe to run again after an interruption.  Result with
    today's hub::

        <dest>/data_<version>/<sensor>/<region>_<sensor>_<id>.nc
        <dest>/data_<version>/inventories.shp.zip
        <dest>/data_<version>/download-manifest.json
        <dest>/tasks/<task>/<version>/...

    and ``<dest>/<sensor>/...``, ``<dest>/inventories.shp.zip``, ``<dest>/download-manifest.json``,
    ``<dest>/tasks/...`` for an older root-layout snapshot (``revision=``).

    Parameters
    ----------
    dest : Path
        Download root.
    version : {"harmonized", "raw"}, default "harmonized"
        Version of the data.
    sensors : iterable of str, default SENSORS
        Any of ``"s1asc"``, ``"s1dsc"``, ``"s2"``.
    revision : str, optional
        Branch, tag or full commit sha of the dataset repository (default: the main branch).  Either way
        the download is made at the commit the hub resolves, and the manifest records it.
    token : str or bool, optional
        Hugging Face token (``None``: ``HF_TOKEN`` or the cached login).
    keep_archives : bool, default False
        Keep the ``.tar.gz`` archives after a verified extraction.
    include_tasks : bool, default True
        Also download the task definitions of this version.
    include_inventory : bool, default True
        Also download the landslide inventory (see :func:`fetch`).
    progress : bool, default True
        Show progress bars while hashing and unpacking (download progress bars are controlled by
        ``huggingface_hub``, e.g. ``HF_HUB_DISABLE_PROGRESS_BARS=1``).

    Returns
    -------
    DownloadReport
        See :func:`unpack`; also the layout, the commit, the local data folder, the inventory and where it
        came from, and the manifest.  Archives whose sha256 differed from the hub's are in ``failed``.

    Raises
    ------
    ValueError
        See :func:`fetch`.
    """
    chosen = check_sensors(sensors)
    fetched = fetch(
        dest,
        version=version,
        sensors=chosen,
        revision=revision,
        token=token,
        include_tasks=include_tasks,
        include_inventory=include_inventory,
        progress=progress,
    )
    unpacked = unpack(fetched.data_dir, sensors=chosen, keep_archives=keep_archives, progress=progress)
    manifest = _write_manifest(fetched, unpacked, revision, include_tasks)
    report = DownloadReport(
        **{f.name: getattr(unpacked, f.name) for f in fields(UnpackReport)},
        layout=fetched.layout,
        revision=revision,
        data_dir=fetched.data_dir,
        inventory=fetched.inventory,
        resolved_revision=fetched.revision,
        inventory_source=fetched.layout.inventory if fetched.inventory is not None else None,
        inventory_note=fetched.inventory_note,
        manifest=manifest,
    )
    report.failed = [*fetched.failed, *report.failed]
    return report


def summarize(report: UnpackReport, *, max_examples: int = 3) -> str:
    """Human-readable summary of an :class:`UnpackReport` or :class:`DownloadReport` (for the CLI).

    Parameters
    ----------
    report : UnpackReport
        Result of :func:`unpack` or :func:`download_dataset`.
    max_examples : int, default 3
        Examples shown per kind of skipped member.

    Returns
    -------
    str
        The hub layout and commit (download reports), counts of extracted, skipped and failed archives and
        files, the skipped members by reason with examples, one line per failure, and the data folder, the
        inventory (where it came from, or one line saying what was looked for) and the manifest.
    """
    lines = []
    download = isinstance(report, DownloadReport) and report.layout is not None
    if download:
        lines.append(f"Hub layout at {_revision_name(report.revision)}: {report.layout.describe()}")
        if report.resolved_revision:
            lines.append(
                f"Hub commit: {report.resolved_revision} (s12ls download --revision {report.resolved_revision} "
                "gets the same files)"
            )
    lines.append(
        f"{len(report.extracted)} archive(s) extracted, {len(report.skipped)} already extracted, "
        f"{len(report.failed)} failed; {report.n_files} data file(s) in place."
    )
    if report.ignored:
        lines.append(
            f"{len(report.ignored)} archive member(s) skipped (not patch files of the archive's sensor):"
        )
        by_reason: dict[str, list[IgnoredMember]] = defaultdict(list)
        for item in report.ignored:
            by_reason[item.reason].append(item)
        counts = Counter({reason: len(items) for reason, items in by_reason.items()})
        for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            examples = "; ".join(
                f"{item.archive.parent.name}/{item.archive.name}: {item.member}"
                for item in by_reason[reason][:max_examples]
            )
            lines.append(f"  {n} {reason}, e.g. {examples}")
    lines.extend(f"  FAILED {archive}: {reason}" for archive, reason in report.failed)
    if download:
        lines.append(f"Data folder: {report.data_dir} (e.g. s12ls catalog {report.data_dir})")
        if report.inventory is not None:
            lines.append(f"Inventory: {report.inventory} (the hub's {report.inventory_source})")
        else:
            lines.append(f"Inventory: {report.inventory_note or 'not downloaded'}")
        if report.manifest is not None:
            lines.append(f"Manifest: {report.manifest}")
    return "\n".join(lines)
