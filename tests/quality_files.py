"""Small real-format files that show the quality issues of the real files (tests of the validator and of
:mod:`s12ls_utils.known_issues`): speckled Sentinel-1 with gaps filled by copying, SCL 255 frames. Written with
``tests/real_format.py`` (the dataset writer's format), never with the package's generator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import netCDF4
import numpy as np
from real_format import MULTI_TIMES, write_real_patch


def write_s1(path: Path, seed: int = 0, *, edit: Callable[[np.ndarray], None] | None = None) -> Path:
    """A real-format S1 patch whose VV and VH are speckled (neighbours practically never equal), then
    ``edit``-ed."""
    write_real_patch(path, MULTI_TIMES, event_date="2018-09-01", date_confidence="1.0")
    rng = np.random.default_rng(seed)
    with netCDF4.Dataset(path, "a") as ds:
        ds.set_auto_mask(False)
        for band in ("VV", "VH"):
            values = rng.gamma(4.0, 0.02, size=ds[band].shape).clip(1e-4, 0.99).astype("float32")
            if edit is not None:
                edit(values)
            ds[band][:] = values
    return path


def fill_gap(values: np.ndarray) -> None:
    """A 16 x 16 gap in frames 2 and 5, filled as the writer does: each pixel copies the nearest valid one
    (here the row above the gap)."""
    for t in (2, 5):
        values[t, 40:56, 30:46] = values[t, 39, 30:46]


def set_scl_255(path: Path, whole: tuple[int, ...], partial: tuple[int, ...] = ()) -> None:
    """Set SCL to 255 in whole frames ``whole`` and in an 8 x 8 corner of frames ``partial``."""
    with netCDF4.Dataset(path, "a") as ds:
        scl = ds["SCL"][:]
        for t in whole:
            scl[t] = 255
        for t in partial:
            scl[t, :8, :8] = 255
        ds["SCL"][:] = scl
