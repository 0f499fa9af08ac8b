"""Download and unpack the Sen12Landslides dataset from the Hugging Face Hub.

The dataset lives in the Hugging Face *dataset* repository ``paulhoehn/Sen12Landslides``::

    s1asc/*.tar.gz          Sentinel-1 ascending patches   (archives of <region>_s1asc_<id>.nc)
    s1dsc/*.tar.gz          Sentinel-1 descending patches  (archives of <region>_s1dsc_<id>.nc)
    s2/*.tar.gz             Sentinel-2 patches             (archives of <region>_s2_<id>.nc)
    inventories.shp.zip     landslide inventories
    tasks/S12LS-LD/...      task definitions (small json / geojson files)
    tasks/S12LS-AD/...

The upstream instructions run ``tar -xzvf archive -C data/$sensor && rm archive``.  This module does
the same, but safely and idempotently:

1. :func:`fetch` downloads the selected parts with :func:`huggingface_hub.snapshot_download`
   (resumable; the token defaults to ``HF_TOKEN`` or the cached ``huggingface-cli login``).
   Archives already extracted by an earlier run are not downloaded again.
2. :func:`unpack` extracts every ``<dest>/<sensor>/*.tar.gz`` with :func:`safe_extract`, which refuses
   archives containing absolute paths, ``..`` components, links, device files or anything else that
   could land outside the target folder, checks that each file has the size recorded in the archive and
   flattens the archive's folders so that the ``.nc`` files end up directly in ``<dest>/<sensor>/``.
   After a verified extraction a marker ``<archive>.extracted.json`` (member names and sizes) is written
   atomically and only then is the archive deleted (unless ``keep_archives``).  A second run finds the
   marker, checks the files and skips the archive.  One bad archive does not stop the others; it is
   recorded in :attr:`UnpackReport.failed` and kept on disk for inspection.
3. :func:`download_dataset` does both.

Example
-------
>>> from pathlib import Path
>>> from s12ls_utils.download import download_dataset, summarize
>>> report = download_dataset(Path("data"), sensors=["s2"])  # doctest: +SKIP
>>> print(summarize(report))  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import filecmp
import glob
import gzip
import json
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from huggingface_hub import snapshot_download
from tqdm import tqdm

__all__ = [
    "REPO_ID",
    "SENSORS",
    "PATCH_PATTERN",
    "MARKER_SUFFIX",
    "UnsafeArchiveError",
    "CorruptArchiveError",
    "UnpackReport",
    "safe_extract",
    "fetch",
    "unpack",
    "download_dataset",
    "summarize",
]

logger = logging.getLogger(__name__)

REPO_ID = "paulhoehn/Sen12Landslides"
"""Hugging Face dataset repository holding Sen12Landslides."""

SENSORS = ("s1asc", "s1dsc", "s2")
"""Sensor folders of the dataset: Sentinel-1 ascending / descending and Sentinel-2."""

PATCH_PATTERN = re.compile(r"^(?P<region>.+)_(?P<sensor>s1asc|s1dsc|s2)_(?P<id>\d+)\.nc$")
"""File-name pattern of a data patch, e.g. ``italy_s2_123.nc``."""

ARCHIVE_GLOB = "*.tar.gz"
MARKER_SUFFIX = ".extracted.json"
"""Suffix appended to an archive's name to form its extraction marker."""

_MARKER_FORMAT = 1


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
    """

    extracted: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    n_files: int = 0

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


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Return why ``member`` must not be extracted, or ``None`` when it is acceptable."""
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


def _is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (after resolving symlinks) lies strictly inside ``root``."""
    real_root = Path(os.path.realpath(root))
    real_path = Path(os.path.realpath(path))
    return real_path != real_root and real_path.is_relative_to(real_root)


def _plan(archive: Path, members: list[tarfile.TarInfo], dest: Path, strip_dirs: bool) -> list[_FileEntry]:
    """Check every member of ``archive`` and work out where its regular files will go.

    Raises
    ------
    UnsafeArchiveError
        On the first member that is unsafe; nothing has been written at that point.
    """
    seen: set[PurePosixPath] = set()
    entries: list[_FileEntry] = []
    for member in members:
        problem = _member_problem(member)
        if problem is not None:
            raise UnsafeArchiveError(archive, member.name, problem)
        path = PurePosixPath(member.name)
        if not path.parts:
            raise UnsafeArchiveError(archive, member.name, "does not name a file or folder")
        if path in seen:
            raise UnsafeArchiveError(archive, member.name, "appears more than once")
        seen.add(path)
        if member.isdir():
            continue
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
    return entries


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


def _extract(archive: Path, dest: Path, strip_dirs: bool) -> list[tuple[_FileEntry, Path]]:
    """Implementation of :func:`safe_extract`, also returning member names and sizes."""
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    with _archive_errors(archive), tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        entries = _plan(archive, members, dest, strip_dirs)
        if not entries:
            logger.warning("%s contains no files", archive)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extracting-", dir=dest.parent))
        try:
            tar.extractall(tmp, members=members, filter="data")
            # Read to the end of the stream so that gzip checks its CRC and length trailer.
            while tar.fileobj.read(1 << 20):
                pass
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
    return [(entry, by_rel[entry.rel.as_posix()]) for entry in entries]


def safe_extract(archive: Path, dest: Path, *, strip_dirs: bool = True) -> list[Path]:
    """Extract a ``.tar.gz`` / ``.tar`` archive into ``dest`` after checking every member.

    The whole archive is refused, and nothing is written into ``dest``, if any member has an absolute
    path or a ``..`` component, is a symbolic or hard link, a device file or FIFO, appears twice, or would
    otherwise land outside ``dest``.  The files are first extracted into a temporary folder next to
    ``dest`` (same filesystem) with :mod:`tarfile`'s ``"data"`` filter as a second line of defence, their
    sizes are compared with the archive headers, and only then are they moved into ``dest``.  The
    temporary folder is removed in every case.

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
    return list(dict.fromkeys(path for _, path in _extract(archive, dest, strip_dirs)))


# --------------------------------------------------------------------------------------------------------
# Markers and unpacking
# --------------------------------------------------------------------------------------------------------


def _marker_path(archive: Path) -> Path:
    return archive.with_name(archive.name + MARKER_SUFFIX)


def _write_marker(marker: Path, archive: Path, files: list[tuple[_FileEntry, Path]]) -> None:
    """Write the extraction marker of ``archive`` atomically (temporary file + ``os.replace``)."""
    content = {
        "format": _MARKER_FORMAT,
        "archive": archive.name,
        "archive_size": archive.stat().st_size,
        "files": [
            {"member": entry.member, "path": entry.rel.as_posix(), "size": entry.size} for entry, _ in files
        ],
    }
    fd, tmp_name = tempfile.mkstemp(prefix=f".{marker.name}.", suffix=".tmp", dir=marker.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(content, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, marker)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _completed_files(archive: Path) -> list[Path] | None:
    """Files recorded in ``archive``'s marker, if the marker exists and all of them are on disk.

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
        archive_size = int(content["archive_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
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
    return list(dict.fromkeys(paths))


def _remove_archive(archive: Path) -> None:
    try:
        archive.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # extraction succeeded; a leftover archive only costs disk space
        logger.warning("could not delete %s: %s", archive, exc)


def _warn_unexpected_names(archive: Path, sensor: str, paths: list[Path]) -> None:
    odd = [p.name for p in paths if (m := PATCH_PATTERN.match(p.name)) is None or m["sensor"] != sensor]
    if odd:
        logger.warning(
            "%s: %d file(s) do not look like %s patches (<region>_%s_<id>.nc), e.g. %s",
            archive.name,
            len(odd),
            sensor,
            sensor,
            odd[0],
        )


def _unpack_one(archive: Path, sensor: str, keep_archives: bool) -> tuple[bool, list[Path]]:
    """Extract one archive unless already done; returns ``(extracted_now, files)``."""
    done = _completed_files(archive)
    if done is not None:
        if not keep_archives and archive.exists():
            _remove_archive(archive)  # an earlier run stopped between marker and deletion
        return False, done
    if not archive.exists():
        raise FileNotFoundError(
            f"{archive} is gone but the files listed in {_marker_path(archive).name} are incomplete; "
            "download it again"
        )
    files = _extract(archive, archive.parent, strip_dirs=True)
    _write_marker(_marker_path(archive), archive, files)
    if not keep_archives:
        _remove_archive(archive)
    paths = list(dict.fromkeys(path for _, path in files))
    _warn_unexpected_names(archive, sensor, paths)
    return True, paths


def _archives_in(folder: Path) -> list[Path]:
    """Archives in ``folder``, including ones already deleted whose marker remains."""
    names = {p.name for p in folder.glob(ARCHIVE_GLOB) if p.is_file()}
    names |= {p.name[: -len(MARKER_SUFFIX)] for p in folder.glob(ARCHIVE_GLOB + MARKER_SUFFIX)}
    return [folder / name for name in sorted(names)]


def _validate_sensors(sensors: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(sensors, str):
        sensors = (sensors,)
    chosen = tuple(dict.fromkeys(sensors))
    unknown = [s for s in chosen if s not in SENSORS]
    if unknown:
        raise ValueError(f"unknown sensor(s) {unknown}; valid sensors are {', '.join(SENSORS)}")
    return chosen


def unpack(
    dest: Path,
    *,
    sensors: Iterable[str] = SENSORS,
    keep_archives: bool = False,
    progress: bool = True,
) -> UnpackReport:
    """Safely extract every ``<dest>/<sensor>/*.tar.gz`` into ``<dest>/<sensor>/``.

    Each archive is extracted with :func:`safe_extract` (folders flattened).  After a verified extraction
    the marker ``<archive>.extracted.json`` is written atomically, and only then is the archive deleted.
    Archives whose marker matches the files on disk are skipped, so running this again is cheap; this
    also holds when the archive itself has already been deleted.

    Parameters
    ----------
    dest : Path
        Dataset root holding one folder per sensor.
    sensors : iterable of str, default SENSORS
        Sensor folders to process.
    keep_archives : bool, default False
        Keep the archives after extraction instead of deleting them.
    progress : bool, default True
        Show a tqdm progress bar over the archives.

    Returns
    -------
    UnpackReport
        Archives extracted, skipped and failed.  A failing archive (unsafe, corrupt, clashing) is logged,
        recorded in ``failed`` and kept on disk; the other archives are still processed.

    Raises
    ------
    ValueError
        An unknown sensor was requested.
    """
    dest = Path(dest)
    chosen = _validate_sensors(sensors)
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
            extracted_now, paths = _unpack_one(archive, sensor, keep_archives)
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
        files.update(paths)
    report.n_files = len(files)
    return report


# --------------------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------------------


def _allow_patterns(sensors: tuple[str, ...], include_tasks: bool, include_inventory: bool) -> list[str]:
    patterns = [f"{sensor}/*" for sensor in sensors]
    if include_tasks:
        patterns.append("tasks/**")
    if include_inventory:
        patterns.append("inventories.shp.zip")
    return patterns


def _extracted_patterns(dest: Path, sensors: tuple[str, ...]) -> list[str]:
    """Repository paths of archives whose extraction marker matches the files in ``dest``."""
    patterns = []
    for sensor in sensors:
        folder = dest / sensor
        if not folder.is_dir():
            continue
        for archive in _archives_in(folder):
            if _completed_files(archive) is not None:
                patterns.append(f"{sensor}/{glob.escape(archive.name)}")
    return patterns


def fetch(
    dest: Path,
    *,
    sensors: Iterable[str] = SENSORS,
    revision: str | None = None,
    token: str | bool | None = None,
    include_tasks: bool = True,
    include_inventory: bool = True,
    max_workers: int = 4,
    skip_extracted: bool = True,
) -> list[Path]:
    """Download (or resume downloading) the selected parts of the dataset into ``dest``.

    Uses :func:`huggingface_hub.snapshot_download` with ``local_dir=dest``, so the repository layout is
    reproduced under ``dest`` and interrupted downloads resume.

    Parameters
    ----------
    dest : Path
        Dataset root; created if needed.
    sensors : iterable of str, default SENSORS
        Sensors whose archives to download.
    revision : str, optional
        Branch, tag or commit of the dataset repository (default: the main branch).
    token : str or bool, optional
        Hugging Face token.  ``None`` uses ``HF_TOKEN`` or the cached login; ``False`` sends none.
    include_tasks : bool, default True
        Also download ``tasks/**`` (task definitions).
    include_inventory : bool, default True
        Also download ``inventories.shp.zip``.
    max_workers : int, default 4
        Parallel downloads.
    skip_extracted : bool, default True
        Do not download archives that an earlier :func:`unpack` already extracted (their marker matches
        the files on disk).  Delete the marker to force a new download.

    Returns
    -------
    list of Path
        The sensor archives (``<dest>/<sensor>/*.tar.gz``) present after the download.

    Raises
    ------
    ValueError
        An unknown sensor was requested, or nothing was selected for download.
    """
    dest = Path(dest)
    chosen = _validate_sensors(sensors)
    allow = _allow_patterns(chosen, include_tasks, include_inventory)
    if not allow:
        raise ValueError("nothing to download: no sensors selected and tasks/inventory excluded")
    ignore = _extracted_patterns(dest, chosen) if skip_extracted else []
    if ignore:
        logger.info("not downloading %d archive(s) that are already extracted", len(ignore))
    dest.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s (%s) into %s", REPO_ID, ", ".join(allow), dest)
    snapshot_download(
        repo_id=REPO_ID,
        repo_type="dataset",
        revision=revision,
        local_dir=dest,
        allow_patterns=allow,
        ignore_patterns=ignore or None,
        token=token,
        max_workers=max_workers,
    )
    return sorted(p for sensor in chosen for p in (dest / sensor).glob(ARCHIVE_GLOB) if p.is_file())


def download_dataset(
    dest: Path,
    *,
    sensors: Iterable[str] = SENSORS,
    revision: str | None = None,
    token: str | bool | None = None,
    keep_archives: bool = False,
    include_tasks: bool = True,
    include_inventory: bool = True,
    progress: bool = True,
) -> UnpackReport:
    """Download the dataset into ``dest`` and unpack it to ``<dest>/<sensor>/<name>.nc``.

    Runs :func:`fetch` and then :func:`unpack`; safe to run again after an interruption.

    Parameters
    ----------
    dest : Path
        Dataset root.
    sensors : iterable of str, default SENSORS
        Any of ``"s1asc"``, ``"s1dsc"``, ``"s2"``.
    revision : str, optional
        Branch, tag or commit of the dataset repository.
    token : str or bool, optional
        Hugging Face token (``None``: ``HF_TOKEN`` or the cached login).
    keep_archives : bool, default False
        Keep the ``.tar.gz`` archives after a verified extraction.
    include_tasks : bool, default True
        Also download the task definitions under ``tasks/``.
    include_inventory : bool, default True
        Also download ``inventories.shp.zip``.
    progress : bool, default True
        Show a progress bar while unpacking (download progress bars are controlled by
        ``huggingface_hub``, e.g. ``HF_HUB_DISABLE_PROGRESS_BARS=1``).

    Returns
    -------
    UnpackReport
        See :func:`unpack`.

    Raises
    ------
    ValueError
        An unknown sensor was requested.
    """
    chosen = _validate_sensors(sensors)
    fetch(
        dest,
        sensors=chosen,
        revision=revision,
        token=token,
        include_tasks=include_tasks,
        include_inventory=include_inventory,
    )
    return unpack(dest, sensors=chosen, keep_archives=keep_archives, progress=progress)


def summarize(report: UnpackReport) -> str:
    """One-paragraph, human-readable summary of an :class:`UnpackReport` (for the CLI).

    Parameters
    ----------
    report : UnpackReport
        Result of :func:`unpack` or :func:`download_dataset`.

    Returns
    -------
    str
        Counts of extracted, skipped and failed archives and files, followed by one line per failure.
    """
    lines = [
        f"{len(report.extracted)} archive(s) extracted, {len(report.skipped)} already extracted, "
        f"{len(report.failed)} failed; {report.n_files} data file(s) in place."
    ]
    lines.extend(f"  FAILED {archive}: {reason}" for archive, reason in report.failed)
    return "\n".join(lines)
