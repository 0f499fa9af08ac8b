"""Known issues of the real Sen12Landslides files, found in any data folder.

Third parties who read the released files in bulk, and the published metadata, show things about the real
files that every user meets sooner or later: annotated patches with an empty mask, SCL frames of unknown
quality, undated annotations, events outside the series, and more. :func:`known_issues` looks for each of
them (:data:`ISSUES`) in a data folder and returns, per issue, the files that show it and a count
(:class:`KnownIssues`); ``s12ls validate DATA --report`` prints the table, and the book's appendix "Known
issues of the real files" shows it for the folder the book runs on. :func:`real_dataset` says what is known
of each issue in the real dataset as a whole: counts from the vendored metadata
(:mod:`s12ls_utils.reference`) where it can give them, else what third-party reads of the files report
(:data:`THIRD_PARTY_READS`).

How each issue is found (nothing is guessed that the files or the metadata do not say):

- from the catalog's header scan (:func:`s12ls_utils.catalog.build_catalog`): annotated with an empty mask
  (``annotated='True'``, no MASK pixel at t=0), annotated but undated (``event_date`` holds ``None``/``nan``/
  ``NaT``), event outside the series (the primary event before the first or after the last image: the writer's
  ``pre_post_dates`` 0/0 or 14/14), event dates derived from an NDVI drop (lowest ``date_confidence`` < 1), and
  the ``usa`` inventory token (a region whose first ``_`` token, the published ``inventory``, differs from it);
- from reading every file (:func:`s12ls_utils.io.check_patch`, the validator): SCL 255 frames, repeated
  time stamps, Sentinel-1 gaps left as NaN, and Sentinel-1 gaps **filled** by the writer. A filled gap has no
  NaN: the writer copies the nearest valid pixel into it, which leaves runs of exactly equal values, while
  measured float backscatter hardly ever repeats exactly. A frame counts as filled when at least
  :data:`s12ls_utils.schema.S1_FILL_MIN_PIXELS` of its VV or VH pixels equal a neighbour (clip limits
  excluded). That is a trace, not a proof: a filled gap of a few pixels goes unseen, and the threshold was set
  on the synthetic sample, not on real files;
- from the task folders next to the data (``<data>/tasks/<TASK>/`` and, for a download,
  ``<dest>/tasks/<TASK>/<release>/``): an ``S12LS-AD`` folder that lists only annotated patches while the data
  folder has others (the harmonized one at upstream commit ``5b313f2`` does).

Which task presets keep the files of each issue (:meth:`KnownIssues.kept_by`) comes from the presets'
selection rules applied to the catalog (:func:`s12ls_utils.splits.select`), not from task folders on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import io, schema
from .parallel import map_files


@dataclass(frozen=True)
class Issue:
    """One known issue: a short title, what its ``count`` counts, and how it is found."""

    title: str
    counted: str
    how: str


#: The known issues, in the order the book's appendix presents them.
ISSUES: dict[str, Issue] = {
    "annotated_empty_mask": Issue(
        "annotated with an empty mask", "files", "annotated='True' and no MASK pixel at the first time step"
    ),
    "scl_unknown": Issue(
        "SCL 255 frames (unknown quality)",
        "frames",
        "S2 frames with SCL 255 in any pixel (whole frames counted)",
    ),
    "undated": Issue(
        "annotated but undated", "undated entries", "event_date entries None/nan/NaT of annotated patches"
    ),
    "event_outside": Issue(
        "event outside the series (pre/post 0/0 or 14/14)",
        "files",
        "the earliest dated event on or before the first image, or after the last",
    ),
    "repeated_dates": Issue("repeated time stamps", "repeated steps", "time steps equal to the step before"),
    "ndvi_dates": Issue(
        "event date derived from an NDVI drop", "files", "annotated, lowest date_confidence below 1"
    ),
    "usa_token": Issue(
        "the inventory token differs from the region (usa)",
        "files",
        "first '_' token of the file name (the published 'inventory') is not the region",
    ),
    "ad_annotated_only": Issue(
        "an S12LS-AD task folder lists only annotated patches",
        "patches listed",
        "S12LS-AD* task folders next to the data whose entries are all annotated files",
    ),
    "s1_filled": Issue(
        "S1 gaps filled by the writer",
        "frames",
        f"VV or VH frames with at least {schema.S1_FILL_MIN_PIXELS} pixels equal to a neighbour (clip limits "
        "excluded)",
    ),
    "s1_nan": Issue("S1 gaps left as NaN", "pixels", "non-finite VV/VH values"),
}

#: What third parties report from reading the released files, per issue (where the vendored metadata cannot
#: tell). Facts with their source; the numbers are theirs (the format notes of this project, ``book/appendix-data.md``).
THIRD_PARTY_READS: dict[str, str] = {
    "scl_unknown": "3,285 frames in the 1,133 raw Chimanimani S2 files (every one of them has some), whole "
    "frames; harmonized files too (the post-event frame of indonesia_s2_165); SCL 0 never occurs",
    "undated": "not counted: the published metadata holds no event dates",
    "event_outside": "about 1,340 of the annotated S2 patches have no single valid pre/post pair (several "
    "events or dates)",
    "repeated_dates": "none in the 13,628 harmonized S2 files and the 1,133 raw Chimanimani S2 files; S1 not "
    "checked",
    "ndvi_dates": "not counted: the published metadata holds no event dates",
    "s1_filled": "no NaN or Inf in the 1,133 raw Chimanimani files: the writer fills gaps by nearest neighbour "
    "in S1, S2 and the DEM; the filled pixels were not counted",
    "s1_nan": "none: no NaN or Inf in the raw Chimanimani files that were read",
}

#: The annotated files with an empty mask that third parties found in all 13,628 harmonized S2 files.
EMPTY_MASK_FILES: tuple[str, ...] = ("hiroshima_s2_1427", "hiroshima_s2_1428")

_TIDY_COLUMNS = ["issue", "sensor", "path", "count", "detail"]
log = logging.getLogger(__name__)


def patch_files(path: str | Path) -> list[Path]:
    """The patch files a path names: a data folder's ``<sensor>/*.nc``, a sensor folder's ``*.nc``, or the file.

    Raises
    ------
    FileNotFoundError
        The path does not exist, or a folder holds no patch file (an empty or mistyped folder); the message
        says where it looked.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{p} does not exist (neither a data folder nor a patch file)")
    files = sorted(f for s in schema.SENSORS for f in (p / s).glob("*.nc"))
    if p.name in schema.SENSORS:
        files += sorted(p.glob("*.nc"))
    if not files:
        where = f"{p}/{{{','.join(schema.SENSORS)}}}/*.nc" + (
            f" or {p}/*.nc" if p.name in schema.SENSORS else ""
        )
        raise FileNotFoundError(f"no patch files in {p} (looked for {where}): is it the data folder?")
    return files


def check_files(
    paths: Sequence[str | Path], *, workers: int | None = None, scheduler="processes", progress: bool = True
) -> list[schema.PatchCheck]:
    """:func:`s12ls_utils.io.check_patch` of every file, in parallel
    (:func:`s12ls_utils.parallel.map_files`), in the order given. A file whose check raised (a worker that
    died) gets a :class:`~s12ls_utils.schema.PatchCheck` with that error."""
    items = [str(p) for p in paths]
    res = map_files(
        io.check_patch, items, workers=workers, scheduler=scheduler, desc="checking", progress=progress
    )
    failed = {f.item: f.reason for f in res.failures}
    return [
        r if r is not None else schema.PatchCheck(Path(p), errors=[f"could not be checked: {failed.get(p)}"])
        for p, r in zip(items, res.results, strict=True)
    ]


def _task_folders(data_dir: Path) -> list[Path]:
    """Task folders next to a data folder: ``<data>/tasks/<TASK>/`` and ``<dest>/tasks/<TASK>/<release>/``."""
    found = {p.parent.parent for p in data_dir.glob("tasks/*/*/splits.json")}
    release = schema.RELEASE_FOLDERS.get(data_dir.name)
    if release is not None:
        found |= {p.parent.parent for p in data_dir.parent.glob(f"tasks/*/{release}/*/splits.json")}
    return sorted(found)


def _ad_annotated_only(data_dir: Path, catalog: pd.DataFrame) -> list[dict]:
    """Rows for S12LS-AD* task folders that list only annotated files of a sensor that has others."""
    from .tasks import load_task, task_label

    annotated = dict(zip(catalog["path"].astype(str), catalog["annotated"].astype(bool), strict=True))
    rows = []
    for folder in _task_folders(data_dir):
        if not task_label(folder).startswith("S12LS-AD"):
            continue
        try:
            task = load_task(folder, data_dir=data_dir, warn_missing=False)
        except (OSError, ValueError, KeyError) as exc:  # not a task folder (or one being written): skip it
            log.warning("%s is not a readable task folder, not checked: %s", folder, exc)
            continue
        for sensor, splits in task.splits.items():
            listed = [str(e["path"]) for entries in splits.values() for e in entries]
            flags = [annotated[p] for p in listed if p in annotated]
            others = int((~catalog.loc[catalog["sensor"] == sensor, "annotated"].astype(bool)).sum())
            if flags and all(flags) and others:
                rows.append(
                    {
                        "issue": "ad_annotated_only",
                        "sensor": sensor,
                        "path": str(folder / sensor / "splits.json"),
                        "count": len(listed),
                        "detail": f"lists only annotated patches; the data folder has {others} others",
                    }
                )
    return rows


def _catalog_rows(cat: pd.DataFrame) -> pd.DataFrame:
    """Tidy rows of the issues the header scan shows."""
    annotated = cat["annotated"].astype(bool)
    region = cat["region"].astype(str)
    token = region.str.split("_").str[0]
    position = cat["event_position"].astype(str)
    dates = cat["event_date"].dt.strftime("%Y-%m-%d").fillna("")
    parts = [
        ("annotated_empty_mask", annotated & (cat["n_positive"] == 0), 1, "annotated='True', MASK empty"),
        (
            "undated",
            annotated & (cat["n_undated_events"] > 0),
            cat["n_undated_events"],
            pd.Series("dated events too: the earliest gives the pair", index=cat.index).where(
                position != "undated", "no dated event: no pre/post pair"
            ),
        ),
        (
            "event_outside",
            position.isin(["before", "after"]),
            1,
            "event "
            + dates
            + position.map({"before": " before the first image", "after": " after the last image"}),
        ),
        (
            "ndvi_dates",
            annotated & (cat["date_confidence"] < 1),
            1,
            "lowest date_confidence " + cat["date_confidence"].map("{:g}".format),
        ),
        ("usa_token", token != region, 1, "region " + region + ", inventory token " + token),
    ]
    frames = []
    for issue, hit, count, detail in parts:
        frame = pd.DataFrame(
            {
                "issue": issue,
                "sensor": cat["sensor"].astype(str),
                "path": cat["path"].astype(str),
                "count": count,
                "detail": detail,
            }
        )
        frames.append(frame[hit.to_numpy()])
    return pd.concat(frames, ignore_index=True)


def _check_rows(checks: Iterable[schema.PatchCheck], data_dir: Path) -> pd.DataFrame:
    """Tidy rows of the issues that reading the files shows."""
    rows = []
    for c in checks:
        q = c.quality
        try:
            rel = c.path.resolve().relative_to(data_dir.resolve()).as_posix()
        except ValueError:
            rel = str(c.path)
        sensor = c.path.parent.name
        found = [
            ("scl_unknown", q["scl_unknown_frames"], f"{q['scl_unknown_whole_frames']} whole frame(s)"),
            ("repeated_dates", q["repeated_dates"], "a short series padded with its last image"),
            (
                "s1_filled",
                q["s1_filled_frames"],
                f"up to {q['s1_repeat_pixels']} pixels of a frame equal a neighbour",
            ),
            ("s1_nan", q["s1_nan_pixels"], "VV/VH values that are NaN or infinite"),
        ]
        rows += [
            {"issue": k, "sensor": sensor, "path": rel, "count": int(n), "detail": d}
            for k, n, d in found
            if n
        ]
    return pd.DataFrame(rows, columns=_TIDY_COLUMNS)


@dataclass
class KnownIssues:
    """What :func:`known_issues` found in a data folder.

    Attributes
    ----------
    data_dir : Path
        The folder.
    files : pandas.DataFrame
        One row per issue and file: ``issue`` (a key of :data:`ISSUES`), ``sensor``, ``path`` (relative to the
        data folder; a ``splits.json`` for ``ad_annotated_only``), ``count`` (what :attr:`Issue.counted` says)
        and ``detail``.
    checks : list of PatchCheck
        The validator's result for every file (errors, warnings, notes, quality figures).
    kept : pandas.DataFrame
        Per issue of patch files (rows) and task preset (columns): how many of the issue's files the preset's
        selection keeps.
    n_files : dict of str to int
        Patch files per sensor in the folder.
    """

    data_dir: Path
    files: pd.DataFrame
    checks: list[schema.PatchCheck]
    kept: pd.DataFrame
    n_files: dict[str, int]

    def summary(self, examples: int = 3) -> pd.DataFrame:
        """One row per issue of :data:`ISSUES` (all of them, found or not): ``title``, ``files`` (how many),
        ``count`` (their total), ``counted`` (what is counted) and ``examples`` (file names)."""
        rows = []
        for key, issue in ISSUES.items():
            hit = self.files[self.files["issue"] == key]
            names = [Path(p).name.removesuffix(".nc") for p in hit["path"]]
            if key == "ad_annotated_only":
                names = [Path(p).parent.parent.as_posix() for p in hit["path"]]
            rows.append(
                {
                    "issue": key,
                    "title": issue.title,
                    "files": int(hit["path"].nunique()),
                    "count": int(hit["count"].sum()),
                    "counted": issue.counted,
                    "examples": ", ".join(dict.fromkeys(names[:examples]))
                    + (", …" if len(set(names)) > examples else ""),
                }
            )
        return pd.DataFrame(rows).set_index("issue")

    def kept_by(self) -> pd.DataFrame:
        """Per issue with files: how many of them each task preset keeps (columns: presets), and how many
        there are (``files``)."""
        counts = self.summary()["files"]
        out = self.kept.join(counts)
        return out[out["files"] > 0][["files", *self.kept.columns]]

    def figures(self, real: pd.DataFrame | None = None) -> dict:
        """Flat figures for a page's record: ``n_files`` (and ``n_files_<sensor>``), per issue ``<issue>_files``,
        ``<issue>_count`` and ``<issue>_examples`` (``"none"`` without files), per issue of patch files and
        preset ``<issue>_kept_<preset>`` (``S12LS-LD`` → ``s12ls_ld``), ``s1_repeat_max_unflagged`` (the most
        pixels of one S1 frame repeating a neighbour among files with no frame counted as filled),
        ``fill_min_pixels``, and with ``real`` (:func:`real_dataset`) ``<issue>_real`` and ``<issue>_source``."""
        out: dict = {"n_files": sum(self.n_files.values())}
        out.update({f"n_files_{s}": n for s, n in self.n_files.items()})
        for key, row in self.summary().iterrows():
            out[f"{key}_files"] = int(row["files"])
            out[f"{key}_count"] = int(row["count"])
            out[f"{key}_examples"] = row["examples"] or "none"
        for key, row in self.kept.iterrows():
            for preset, n in row.items():
                out[f"{key}_kept_{preset.lower().replace('-', '_')}"] = int(n)
        unflagged = [
            c.quality["s1_repeat_pixels"]
            for c in self.checks
            if c.path.parent.name in schema.S1_SENSORS and not c.quality["s1_filled_frames"]
        ]
        out["s1_repeat_max_unflagged"] = max(unflagged, default=0)
        out["fill_min_pixels"] = schema.S1_FILL_MIN_PIXELS
        if real is not None:
            for key, row in real.iterrows():
                out[f"{key}_real"] = row["real dataset"]
                out[f"{key}_source"] = row["source"]
        return out

    def to_text(self) -> str:
        """The summary as text, for ``s12ls validate --report``."""
        s = self.summary()
        n = ", ".join(f"{v} {k}" for k, v in self.n_files.items())
        lines = [f"Known issues of the real files, looked for in {self.data_dir} ({n} files):"]
        width = max(len(t) for t in s["title"])
        for row in s.itertuples():
            found = f"{row.files:,} file(s)" if row.files else "none"
            if row.files and row.counted != "files":
                found += f", {row.count:,} {row.counted}"
            lines.append(f"  {row.title:<{width}}  {found}" + (f"  e.g. {row.examples}" if row.files else ""))
        kept = self.kept_by()
        if len(kept):
            lines.append("Files of each issue that the task presets keep:")
            lines += ["  " + line for line in kept.to_string().splitlines()]
        return "\n".join(lines)


def files_per_issue(found) -> pd.DataFrame:
    """Patch files per known issue (rows: titles, in :data:`s12ls_utils.known_issues.ISSUES` order) and sensor
    (columns); task-folder issues are left out (they are no patch files)."""
    files = found.files[found.files["issue"] != "ad_annotated_only"]
    keys = [k for k in ISSUES if k != "ad_annotated_only"]
    table = files.groupby(["issue", "sensor"])["path"].nunique().unstack(fill_value=0)
    table = table.reindex(index=keys, columns=list(schema.SENSORS), fill_value=0).astype(int)
    table.index = [ISSUES[k].title for k in keys]
    return table


def known_issues(
    data_dir: str | Path,
    *,
    presets: Sequence[str] | None = None,
    workers: int | None = None,
    scheduler="processes",
    progress: bool = True,
    checks: Sequence[schema.PatchCheck] | None = None,
) -> KnownIssues:
    """Find the known issues of the real files (:data:`ISSUES`) in a data folder.

    Parameters
    ----------
    data_dir
        A data folder (``<data>/<sensor>/*.nc``): the synthetic sample, ``data/real/data_harmonized``…
    presets
        Task presets whose selections :meth:`KnownIssues.kept_by` reports (default: every preset,
        :data:`s12ls_utils.tasks.PRESETS`).
    workers, scheduler, progress
        How the files are read (:func:`s12ls_utils.parallel.map_files`; the catalog uses its cache).
    checks
        The results of :func:`check_files` on the folder's files when the caller has them already (``s12ls
        validate --report``), so the files are not read twice.

    Returns
    -------
    KnownIssues

    Raises
    ------
    FileNotFoundError
        The folder does not exist or holds no patch file.
    """
    from .catalog import build_catalog
    from .splits import select
    from .tasks import PRESETS, load_config

    root = Path(data_dir)
    paths = patch_files(root)
    run = {"workers": workers, "scheduler": scheduler, "progress": progress}
    cat = build_catalog(root, **run)
    if checks is None:
        checks = check_files(paths, **run)
    rows = [_catalog_rows(cat), _check_rows(checks, root)]
    ad = _ad_annotated_only(root, cat)
    if ad:
        rows.append(pd.DataFrame(ad, columns=_TIDY_COLUMNS))
    files = pd.concat(rows, ignore_index=True)
    order = {k: i for i, k in enumerate(ISSUES)}
    files = files.sort_values(["issue", "path"], key=lambda c: c.map(order) if c.name == "issue" else c)
    files = files.reset_index(drop=True).astype({"count": "int64"})
    kept = {}
    for preset in presets or PRESETS:
        chosen = {p for frame in select(cat, load_config(preset)).values() for p in frame["path"].astype(str)}
        kept[preset] = {
            k: int(files.loc[files["issue"] == k, "path"].isin(chosen).sum())
            for k in ISSUES
            if k != "ad_annotated_only"  # task folders, not patch files
        }
    n_files = {s: int(sum(p.parent.name == s for p in paths)) for s in schema.SENSORS}
    return KnownIssues(root, files, list(checks), pd.DataFrame(kept).rename_axis("issue"), n_files)


def real_dataset() -> pd.DataFrame:
    """What is known of each issue (:data:`ISSUES`) in the real dataset as a whole: ``real dataset`` (a
    sentence with the figures) and ``source``. Counts come from the vendored metadata
    (:mod:`s12ls_utils.reference`, upstream commit ``5b313f2``) where it can give them, else from third-party
    reads of the released files (:data:`THIRD_PARTY_READS`)."""
    from . import reference

    pat = reference.patches()
    commit = str(reference.source().get("commit", "5b313f2"))[:7]
    meta = f"vendored metadata (upstream commit {commit})"
    third = "third-party reads of the released files"
    s2 = pat[pat["sensor"] == "s2"]
    ad = s2[s2["split_S12LS-AD"].notna()]
    n_annotated = int((ad["n_positive"] > 0).sum())

    empty = s2[s2["file"].str.removesuffix(".nc").isin(EMPTY_MASK_FILES)]
    in_tasks = [t for t in reference.TASKS if empty[f"split_{t}"].notna().all()]
    empty_text = (
        f"{', '.join(EMPTY_MASK_FILES)} (found by reading all {len(ad):,} harmonized S2 files); the metadata gives them "
        f"{int(empty['n_positive'].max()) if len(empty) else 'no'} landslide pixels; listed in "
        f"{', '.join(in_tasks) or 'no published task'}"
    )
    usa = pat[pat["inventory"].astype(str) != pat["region"].astype(str)]
    per = usa.groupby(["region", "sensor"]).size().unstack(fill_value=0)
    usa_text = "; ".join(
        f"{region}: " + " / ".join(f"{per.loc[region].get(s, 0)} {s}" for s in schema.SENSORS)
        for region in per.index
    )
    tokens = ", ".join(sorted(set(usa["inventory"].astype(str))))
    rows = {
        "annotated_empty_mask": (empty_text, f"{third}; {meta}"),
        "scl_unknown": (THIRD_PARTY_READS["scl_unknown"], third),
        "undated": (THIRD_PARTY_READS["undated"], meta),
        "event_outside": (
            THIRD_PARTY_READS["event_outside"]
            + f"; the metadata counts {n_annotated:,} S2 patches with landslide "
            "pixels",
            f"{third}; {meta}",
        ),
        "repeated_dates": (THIRD_PARTY_READS["repeated_dates"], third),
        "ndvi_dates": (THIRD_PARTY_READS["ndvi_dates"], meta),
        "usa_token": (f"files whose inventory token ({tokens}) is not their region: {usa_text}", meta),
        "ad_annotated_only": (
            f"S12LS-AD (raw) lists {len(ad):,} S2 patches, {n_annotated:,} of them with landslide pixels; the "
            f"harmonized S12LS-AD folder at upstream commit {commit} lists the annotated ones only (upstream "
            "issue 1, fixed later)",
            meta,
        ),
        "s1_filled": (THIRD_PARTY_READS["s1_filled"], third),
        "s1_nan": (THIRD_PARTY_READS["s1_nan"], third),
    }
    return pd.DataFrame(
        [
            {"issue": k, "title": ISSUES[k].title, "real dataset": v[0], "source": v[1]}
            for k, v in rows.items()
        ]
    ).set_index("issue")
