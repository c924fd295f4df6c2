"""Stage 4 of ``g2res preprocess``: the atomic cache writer (output directory and
resume state, ``.npy``/``.npz`` files with exact bytes, manifest, the final move into place)."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from g2res import DETECTORS, N_SAMPLES, SAMPLE_RATE, __version__
from g2res.data.cache import MANIFEST, PSD_FILE
from g2res.data.validate import EXPECTED_SHAPE
from g2res.utils import atomic_path, write_json

PARTIAL = ".partial"
STATE = "state.json"
BAD_FILES = "bad_files.csv"
OUTPUTS = (
    PSD_FILE,
    "train.npy",
    "train_ids.txt",
    "train_labels.npy",
    "test.npy",
    "test_ids.txt",
    BAD_FILES,
    MANIFEST,
)
SHARD_OUTPUTS = (*OUTPUTS, "train_files.txt", "test_files.txt")
FORMAT = "g2res-cache-1"
SHARD_FORMAT = "g2res-shard-1"
FILES_CHECKSUM = "sha256 of the lines '<id> <crc32 of the file's bytes, 8 hex digits>' in CSV order"


def _prepare_out(out: Path, fingerprint: str, force: bool, own_names) -> bool:
    """Make ``out`` ready; True when it already holds this exact cache."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"cache path {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    own = set(own_names) | {PARTIAL}
    if force:
        for name in own:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        return False
    foreign = sorted(p.name for p in out.iterdir() if p.name not in own)
    if foreign:
        raise FileExistsError(
            f"cache directory {out} holds files g2res did not write ({', '.join(foreign[:5])}); "
            "choose another --out or pass --force"
        )
    manifest = out / MANIFEST
    if manifest.is_file() and not (out / PARTIAL).exists():
        try:
            old = json.loads(manifest.read_text()).get("fingerprint")
        except (OSError, ValueError):
            old = None
        if old == fingerprint:
            return True
        raise FileExistsError(
            f"{out} already holds a cache made from other data or settings; "
            "pass --force to replace it"
        )
    return False


def _load_state(partial: Path, fingerprint: str, force: bool) -> dict:
    f = partial / STATE
    if f.is_file():
        state = json.loads(f.read_text())
        if state.get("fingerprint") == fingerprint:
            return state
        raise FileExistsError(
            f"{partial.parent} holds an interrupted run with other data or settings; "
            "run it with the same settings to resume, or pass --force to start over"
        )
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    state = {"fingerprint": fingerprint}
    _save_state(partial, state)
    return state


def _save_state(partial: Path, state: dict) -> None:
    write_json(partial / STATE, state)


def _npy_header(shape: tuple[int, ...], dtype) -> bytes:
    """The exact header ``np.save`` writes for a C-ordered array of ``shape``."""
    buf = io.BytesIO()
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
    np.lib.format.write_array_header_1_0(buf, dict(d, shape=tuple(shape)))
    return buf.getvalue()


def _read_header(fh) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the ``.npy`` file ``fh``, leaving it at the data."""
    major, _ = np.lib.format.read_magic(fh)
    read = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = read(fh)
    return shape, dtype


def _create_array(path: Path, n: int, dtype) -> None:
    """An ``(n, 3, 4096)`` ``.npy`` file of zeros (sparse), to be filled by offset."""
    header = _npy_header((n, *EXPECTED_SHAPE), dtype)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + n * np.dtype(dtype).itemsize * 3 * N_SAMPLES)


def _finish_array(path: Path, n_rows: int) -> None:
    """Shrink an array made by :func:`_create_array` to its first ``n_rows`` rows.

    The result is byte for byte what ``np.save`` writes for those rows.
    """
    with open(path, "r+b") as fh:
        shape, dtype = _read_header(fh)
        offset = fh.tell()
        if shape[0] == n_rows:
            return
        header = _npy_header((n_rows, *shape[1:]), dtype)
        size = n_rows * dtype.itemsize * int(np.prod(shape[1:]))
        if len(header) == offset:  # always, unless the row count's digits cross a boundary
            fh.seek(0)
            fh.write(header)
            fh.truncate(offset + size)
            return
    with open(path, "rb") as src, atomic_path(path) as tmp, open(tmp, "wb") as dst:
        src.seek(offset)
        dst.write(header)
        left = size
        while left:
            block = src.read(min(left, 64 << 20))
            dst.write(block)
            left -= len(block)


def _save_npz(path: Path, **arrays) -> None:
    """``np.savez`` with fixed zip timestamps, so equal arrays give equal bytes."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)


def _names(splits, with_report: bool) -> list[str]:
    names = [PSD_FILE]
    for split in splits:
        names += [f"{split}.npy", f"{split}_ids.txt"]
        if split == "train":
            names.append("train_labels.npy")
    if with_report:
        names.append(BAD_FILES)
    return names


def _manifest(identity, fingerprint, psd_source, partial, file_digests, problems) -> dict:
    counts = {}
    for split in ("train", "test"):
        if (partial / f"{split}_ids.txt").is_file():
            counts[split] = len((partial / f"{split}_ids.txt").read_text().split())
    labels_file = partial / "train_labels.npy"
    positives = (
        int(np.load(labels_file, allow_pickle=False).sum()) if labels_file.is_file() else None
    )
    with np.load(partial / PSD_FILE, allow_pickle=False) as z:
        n_psd = int(z["n_samples"])
    return {
        "format": FORMAT,
        "version": __version__,
        "sample_rate": SAMPLE_RATE,
        "n_time": N_SAMPLES,
        "detectors": list(DETECTORS),
        "dtype": identity["settings"]["dtype"],
        "data_dir": identity["data_dir"],
        "counts": dict(counts, bad=len(problems), train_positive=positives),
        "psd": {"source": psd_source, "n_samples": n_psd},
        "settings": identity["settings"],
        "checksums": dict(identity["checksums"], **file_digests),
        "checksum_methods": {
            "csv and psd_source": "sha256 of the file's bytes",
            "<split>_files": FILES_CHECKSUM,
        },
        "fingerprint": fingerprint,
    }


def _install(out: Path, partial: Path, names, manifest: dict, own) -> None:
    """Move the finished files from ``partial`` into ``out`` (``manifest.json`` last)."""
    write_json(partial / MANIFEST, manifest)
    for name in names:
        src = partial / name
        if src.exists():
            os.replace(src, out / name)
        elif not (out / name).exists():
            raise RuntimeError(f"preprocess lost {src} while finishing; rerun with --force")
    for name in set(own) - set(names) - {MANIFEST}:
        (out / name).unlink(missing_ok=True)  # stale files of an earlier, different cache
    os.replace(partial / MANIFEST, out / MANIFEST)
    shutil.rmtree(partial)
