"""The synthetic sample: a small offline copy of Sen12Landslides in the real files' format, and its check.

- :mod:`~s12ls_utils.sample.generate` writes the sample (:func:`make_sample`) and its manifest
  (:func:`load_manifest`).
- :mod:`~s12ls_utils.sample.realism` compares a data folder with the published statistics of the real
  dataset (``realism.realism(data_dir)``).

This part sits on top of the library: it may import any library module, and no library module imports it.
"""

from . import generate, realism
from .generate import (
    DEFAULT_N_PER_SENSOR,
    INVENTORY_NAME,
    MANIFEST_NAME,
    REGION_BY_NAME,
    REGIONS,
    calibration,
    load_manifest,
    make_sample,
)

__all__ = [
    "DEFAULT_N_PER_SENSOR",
    "INVENTORY_NAME",
    "MANIFEST_NAME",
    "REGIONS",
    "REGION_BY_NAME",
    "calibration",
    "generate",
    "load_manifest",
    "make_sample",
    "realism",
]
