"""The G2Net file layout: ``<split>/<a>/<b>/<c>/<id>.npy`` plus two CSV files.

``a``, ``b``, ``c`` are the first three characters of the sample id. Training ids
and labels come from ``training_labels.csv`` (``id,target``), test ids from
``sample_submission.csv`` (``id,target``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

TRAIN_LABELS = "training_labels.csv"
SAMPLE_SUBMISSION = "sample_submission.csv"
TRUTH_DIR = "truth"
TEST_LABELS = "truth/test_labels.csv"
INJECTIONS = "truth/injections.csv"
SPLITS = ("train", "test")

# Real G2Net ids are 10 lowercase hex characters; we accept any length >= 3 of
# lowercase hex so user data sets with other id lengths still work.
ID_PATTERN = re.compile(r"^[0-9a-f]{3,}$")


def is_valid_id(sample_id: str) -> bool:
    """True if ``sample_id`` can name a file in the G2Net layout."""
    return bool(ID_PATTERN.match(sample_id))


def relative_path(split: str, sample_id: str) -> Path:
    """``<split>/<a>/<b>/<c>/<id>.npy`` for ``sample_id``."""
    if not is_valid_id(sample_id):
        raise ValueError(f"malformed sample id {sample_id!r}: expected lowercase hex")
    return Path(split, sample_id[0], sample_id[1], sample_id[2], f"{sample_id}.npy")


def sample_path(root: str | os.PathLike, split: str, sample_id: str) -> Path:
    """Absolute path of one sample file under data root ``root``."""
    return Path(root) / relative_path(split, sample_id)
