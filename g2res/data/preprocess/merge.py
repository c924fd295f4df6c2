"""``merge_shards``: the shard directories of one sharded run into one cache."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from g2res import N_SAMPLES
from g2res.data.cache import MANIFEST, PSD_FILE
from g2res.data.preprocess.writer import (
    BAD_FILES,
    OUTPUTS,
    PARTIAL,
    SHARD_FORMAT,
    _install,
    _manifest,
    _names,
    _npy_header,
    _prepare_out,
    _read_header,
)
from g2res.data.validate import EXPECTED_SHAPE, Problem, write_report
from g2res.utils import atomic_path, save_npy


def merge_shards(
    shard_dirs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Join the shard directories of one ``preprocess(..., shard=(i, n))`` run into a cache.

    The cache in ``out_dir`` has the same bytes as a single ``preprocess`` run with
    the same data and settings. Every shard ``0..n-1`` must be given once (any
    order), complete, made with the same data, settings and PSD.
    """
    shards = []
    for d in shard_dirs:
        d = Path(d)
        try:
            m = json.loads((d / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(
                f"{d} is not a finished preprocess shard ({MANIFEST}: {exc})"
            ) from None
        if m.get("format") != SHARD_FORMAT or (d / PARTIAL).exists():
            raise ValueError(f"{d} is not a finished preprocess shard (made with --shard I/N)")
        shards.append((d, m))
    if not shards:
        raise ValueError("merge needs the shard directories")
    shards.sort(key=lambda dm: dm[1]["shard"][0])
    n = shards[0][1]["shard"][1]
    have = [m["shard"][0] for _, m in shards]
    if have != list(range(n)) or any(m["shard"][1] != n for _, m in shards):
        raise ValueError(f"merge needs each of the shards 0..{n - 1} of {n} once; got {have}")
    ref_dir, ref = shards[0]
    for d, m in shards[1:]:
        if m["cache_fingerprint"] != ref["cache_fingerprint"]:
            raise ValueError(
                f"shards {ref_dir} and {d} were made from other data or settings; "
                "rerun them with the same settings"
            )
        if (d / PSD_FILE).read_bytes() != (ref_dir / PSD_FILE).read_bytes():
            raise ValueError(
                f"shards {ref_dir} and {d} estimated different PSDs (other machines or "
                "versions?); rerun them with --psd-source pointing at one psd.npz"
            )
    identity, fingerprint = ref["identity"], ref["cache_fingerprint"]
    splits = list(ref["rows"])
    out = Path(out_dir)
    if _prepare_out(out, fingerprint, force, OUTPUTS):
        if progress:
            print(f"g2res preprocess --merge: {out} is already complete and up to date")
        return out
    partial = out / PARTIAL
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    shutil.copyfile(ref_dir / PSD_FILE, partial / PSD_FILE)

    problems, by_split = [], {s: [] for s in splits}
    for i, (d, m) in enumerate(shards):
        listed = []
        if (d / BAD_FILES).is_file():
            with open(d / BAD_FILES, newline="") as fh:
                listed = [Problem(**r) for r in csv.DictReader(fh)]
        if i == 0:
            problems += listed[: m["csv_problems"]]
        for p in listed[m["csv_problems"] :]:
            by_split[p.split].append(p)
    problems += [p for s in splits for p in by_split[s]]
    if problems:
        write_report(partial / BAD_FILES, problems)

    digests = {}
    total = sum(m["counts"][s] for _, m in shards for s in splits)
    dtype = np.dtype(identity["settings"]["dtype"])
    with tqdm(total=total, desc="merging shards", disable=not progress, unit="sample") as pbar:
        for split in splits:
            text = "".join((d / f"{split}_files.txt").read_text() for d, _ in shards)
            digests[f"{split}_files"] = hashlib.sha256(text.encode()).hexdigest()
            ids = "".join((d / f"{split}_ids.txt").read_text() for d, _ in shards)
            with atomic_path(partial / f"{split}_ids.txt") as tmp:
                tmp.write_text(ids)
            if split == "train":
                labels = [np.load(d / "train_labels.npy", allow_pickle=False) for d, _ in shards]
                save_npy(partial / "train_labels.npy", np.concatenate(labels))
            n_good = sum(m["counts"][split] for _, m in shards)
            with atomic_path(partial / f"{split}.npy") as tmp, open(tmp, "wb") as dst:
                dst.write(_npy_header((n_good, *EXPECTED_SHAPE), dtype))
                for d, m in shards:
                    with open(d / f"{split}.npy", "rb") as src:
                        shape, _ = _read_header(src)
                        if shape != (m["counts"][split], *EXPECTED_SHAPE):
                            raise ValueError(f"{d / f'{split}.npy'} has shape {shape}")
                        while block := src.read(64 << 20):
                            dst.write(block)
                            pbar.update(len(block) // (dtype.itemsize * 3 * N_SAMPLES))
    manifest = _manifest(identity, fingerprint, ref["psd_source"], partial, digests, problems)
    _install(out, partial, _names(splits, bool(problems)), manifest, OUTPUTS)
    return out
