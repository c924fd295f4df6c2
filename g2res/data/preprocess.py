"""``g2res preprocess``: validate a G2Net-layout data set, whiten, bandpass, pack a cache.

Stages (each resumable; state lives in ``CACHE_DIR/.partial`` until the end):

1. read the label CSVs and every sample file (threads, progress bar), checking each;
2. estimate the noise PSD per detector (Welch, averaged over a seeded random subset
   of label-0 training samples, or all training samples, or read from a file);
3. whiten + bandpass every sample in batches (one FFT pass, any device) into
   memory-mapped ``.npy`` arrays, recording progress after each batch;
4. write ids, labels, ``psd.npz``, ``bad_files.csv`` and ``manifest.json``, then
   move everything into place (``manifest.json`` last).

An interrupted run resumes at the last finished batch and produces the same bytes
as an uninterrupted one. The cache format is described in :mod:`g2res.data.cache`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from g2res import DETECTORS, N_SAMPLES, SAMPLE_RATE, __version__
from g2res.config import PreprocessConfig
from g2res.data.cache import MANIFEST, PSD_FILE
from g2res.data.layout import SAMPLE_SUBMISSION, TRAIN_LABELS, relative_path
from g2res.data.validate import (
    CSV_FOR_SPLIT,
    EXPECTED_SHAPE,
    BadInputError,
    Problem,
    check_array,
    format_problems,
    read_sample,
    read_split_csv,
    write_report,
)
from g2res.signal import WhitenBandpass, load_psd, welch
from g2res.utils import atomic_path, resolve_device, write_json

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
FORMAT = "g2res-cache-1"


class _Interrupt(KeyboardInterrupt):
    """Raised by the test hook ``_interrupt_after`` to simulate Ctrl-C."""


def preprocess(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: PreprocessConfig = PreprocessConfig(),  # noqa: B008 - frozen defaults, never mutated
    seed: int = 0,
    device: str = "auto",
    skip_bad: bool = False,
    force: bool = False,
    progress: bool = True,
    *,
    _interrupt_after: int | None = None,
) -> Path:
    """Build the cache of ``data_dir`` in ``out_dir`` and return ``out_dir``.

    Args:
        data_dir: data set in the G2Net layout (``training_labels.csv`` and/or
            ``sample_submission.csv`` with ``train/``/``test/`` files).
        out_dir: cache directory; an interrupted run there is resumed.
        config: PSD, taper, bandpass, dtype and batching settings.
        seed: picks the random subset of samples used for the PSD.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the signal steps.
        skip_bad: exclude bad files (listed in ``bad_files.csv``) instead of stopping.
        force: discard an existing cache or interrupted run in ``out_dir``.
        progress: show progress bars.

    Raises:
        BadInputError: bad files or rows (without ``skip_bad``); the message lists
            the first 20 and points to ``out_dir/bad_files.csv``.
        FileExistsError: ``out_dir`` holds other files, or a cache/interrupted run
            made with other settings, and ``force`` is not set.
    """
    _check_config(config)
    data_dir = Path(data_dir).resolve()
    out = Path(out_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory {data_dir} does not exist")
    splits = [s for s in ("train", "test") if (data_dir / CSV_FOR_SPLIT[s]).is_file()]
    if not splits:
        raise FileNotFoundError(
            f"{data_dir} has neither {TRAIN_LABELS} nor {SAMPLE_SUBMISSION}: not a G2Net layout"
        )
    checksums = {CSV_FOR_SPLIT[s]: _sha256_file(data_dir / CSV_FOR_SPLIT[s]) for s in splits}
    psd_file = None
    if config.psd_source not in ("noise", "all"):
        psd_file = Path(config.psd_source).resolve()
        if not psd_file.is_file():
            raise FileNotFoundError(
                f"--psd-source {config.psd_source!r} is neither 'noise', 'all' nor a file"
            )
        checksums["psd_source"] = _sha256_file(psd_file)
    settings = dict(dataclasses.asdict(config), seed=int(seed), skip_bad=bool(skip_bad))
    settings.pop("workers")  # does not change the result
    identity = dict(settings=settings, data_dir=str(data_dir), checksums=checksums)
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    if _prepare_out(out, fingerprint, force):
        if progress:
            print(f"g2res preprocess: {out} is already complete and up to date")
        return out
    partial = out / PARTIAL
    state = _load_state(partial, fingerprint, force)
    torch_device = resolve_device(device)
    bar = dict(disable=not progress, unit="sample", dynamic_ncols=True)

    with ThreadPoolExecutor(max(1, config.workers)) as pool:
        if not state.get("validated"):
            _validate(data_dir, out, partial, splits, skip_bad, pool, bar, state)
            _save_state(partial, state)
        if not state.get("psd"):
            _estimate_psd(data_dir, partial, config, seed, psd_file, pool, bar, torch_device)
            state["psd"] = True
            _save_state(partial, state)
        with np.load(partial / PSD_FILE, allow_pickle=False) as z:
            freqs, psd = z["frequencies"], z["psd"]
        conditioner = WhitenBandpass(
            freqs,
            psd,
            SAMPLE_RATE,
            N_SAMPLES,
            fmin=config.fmin,
            fmax=config.fmax,
            order=config.filter_order,
            window=config.window,
            window_alpha=config.window_alpha,
        ).to(torch_device)
        budget = [_interrupt_after]
        for split in state["splits"]:
            _condition_split(
                data_dir, partial, split, config, conditioner, pool, bar, state, budget
            )
    _finalize(out, partial, state, identity, fingerprint, config, psd_file)
    return out


# ---------------------------------------------------------------------------- setup
def _check_config(config: PreprocessConfig) -> None:
    if config.dtype not in ("float32", "float16"):
        raise ValueError(f"preprocess dtype must be float32 or float16, got {config.dtype!r}")
    if config.batch_size < 1 or config.psd_max_samples < 1:
        raise ValueError("preprocess batch_size and psd_max_samples must be positive")
    if not 0 < config.fmin < config.fmax < SAMPLE_RATE / 2:
        raise ValueError(
            f"bandpass needs 0 < fmin < fmax < {SAMPLE_RATE / 2:g} Hz, "
            f"got fmin={config.fmin}, fmax={config.fmax}"
        )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _prepare_out(out: Path, fingerprint: str, force: bool) -> bool:
    """Make ``out`` ready; True when it already holds this exact cache."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"cache path {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    own = set(OUTPUTS) | {PARTIAL}
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


# ---------------------------------------------------------------------------- stage 1
def _validate(data_dir, out, partial, splits, skip_bad, pool, bar, state) -> None:
    entries, problems = {}, []
    for split in splits:
        entries[split], csv_problems = read_split_csv(data_dir, split)
        problems += csv_problems
    total = sum(len(e) for e in entries.values())
    good: dict[str, list] = {}
    digests: dict[str, str] = {}
    with tqdm(total=total, desc="checking files", **bar) as pbar:
        for split in splits:
            rows = entries[split]

            def check(entry, split=split):
                array, problem, digest = read_sample(data_dir, split, entry.id)
                return problem, digest

            h = hashlib.sha256()
            kept = []
            for entry, (problem, digest) in zip(rows, pool.map(check, rows, chunksize=64)):
                pbar.update()
                h.update(f"{entry.id} {digest}\n".encode())
                if problem:
                    rel = relative_path(split, entry.id).as_posix()
                    problems.append(Problem(rel, entry.id, split, problem))
                else:
                    kept.append(entry)
            good[split] = kept
            digests[f"{split}_files"] = h.hexdigest()
    report = out / BAD_FILES
    if problems and not skip_bad:
        write_report(report, problems)
        raise BadInputError(
            f"{len(problems)} bad input file(s) or row(s) in {data_dir}:\n"
            f"{format_problems(problems, data_dir)}\n"
            f"Full list: {report}. Fix or remove them, or pass --skip-bad to exclude them.",
            problems,
        )
    if problems:
        write_report(partial / BAD_FILES, problems)
        print(
            f"g2res preprocess: excluding {len(problems)} bad file(s) or row(s); listed in {report}"
        )
    elif report.exists():
        report.unlink()  # a report from an earlier failed run no longer applies
    for split, kept in good.items():
        with atomic_path(partial / f"{split}_ids.txt") as tmp:
            tmp.write_text("".join(f"{e.id}\n" for e in kept))
        if split == "train":
            from g2res.utils import save_npy

            save_npy(partial / "train_labels.npy", np.array([e.label for e in kept], np.int8))
    state.update(
        validated=True,
        splits={s: len(k) for s, k in good.items()},
        n_bad=len(problems),
        file_checksums=digests,
        done={s: 0 for s in good},
    )


# ---------------------------------------------------------------------------- stage 2
def _load_into(data_dir: Path, split: str, sample_id: str, buf: np.ndarray, i: int) -> None:
    path = data_dir / relative_path(split, sample_id)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise BadInputError(
            f"{path} changed since it was checked ({exc}); rerun with --force"
        ) from None
    problem = check_array(array, EXPECTED_SHAPE)
    if problem:
        raise BadInputError(f"{path} changed since it was checked: {problem}; rerun with --force")
    buf[i] = array


def _read_batch(data_dir, split, ids, pool, dtype=np.float32) -> np.ndarray:
    buf = np.empty((len(ids), *EXPECTED_SHAPE), dtype=dtype)
    list(pool.map(lambda a: _load_into(data_dir, split, a[1], buf, a[0]), enumerate(ids)))
    return buf


def _estimate_psd(data_dir, partial, config, seed, psd_file, pool, bar, device) -> None:
    if psd_file is not None:
        freqs, psd, rate = load_psd(psd_file, n_detectors=len(DETECTORS))
        if rate is not None and rate != SAMPLE_RATE:
            raise ValueError(f"PSD file {psd_file} is for {rate} Hz data, not {SAMPLE_RATE} Hz")
        n_used = 0
    else:
        ids_file = partial / "train_ids.txt"
        if not ids_file.is_file():
            raise FileNotFoundError(
                f"--psd-source {config.psd_source} needs training samples ({TRAIN_LABELS}); "
                "give a PSD file with --psd-source FILE instead"
            )
        ids = np.array(ids_file.read_text().split())
        labels = np.load(partial / "train_labels.npy", allow_pickle=False)
        pool_idx = (
            np.flatnonzero(labels == 0) if config.psd_source == "noise" else np.arange(ids.size)
        )
        if pool_idx.size == 0:
            raise ValueError(
                f"--psd-source {config.psd_source}: no usable training samples"
                + (" with target 0" if config.psd_source == "noise" else "")
            )
        rng = np.random.default_rng(seed)
        if pool_idx.size > config.psd_max_samples:
            pool_idx = np.sort(rng.choice(pool_idx, config.psd_max_samples, replace=False))
        chosen = ids[pool_idx]
        total = None
        step = min(config.batch_size, 512)
        with tqdm(total=len(chosen), desc="estimating PSD", **bar) as pbar:
            for start in range(0, len(chosen), step):
                batch = _read_batch(
                    data_dir, "train", chosen[start : start + step], pool, np.float64
                )
                freqs_t, p = welch(
                    torch.from_numpy(batch).to(device),
                    SAMPLE_RATE,
                    segment_duration=config.psd_segment,
                    overlap=config.psd_overlap,
                    window=config.psd_window,
                    average=config.psd_average,
                )
                s = p.sum(0).cpu()
                total = s if total is None else total + s
                pbar.update(len(batch))
        freqs, psd = freqs_t.cpu().numpy(), (total / len(chosen)).numpy()
        n_used = len(chosen)
    with atomic_path(partial / PSD_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            frequencies=np.asarray(freqs, np.float64),
            psd=np.asarray(psd, np.float64),
            sample_rate=np.float64(SAMPLE_RATE),
            n_samples=np.int64(n_used),
        )


# ---------------------------------------------------------------------------- stage 3
def _condition_split(data_dir, partial, split, config, conditioner, pool, bar, state, budget):
    ids = (partial / f"{split}_ids.txt").read_text().split()
    n = len(ids)
    path = partial / f"{split}.npy"
    done = state["done"][split]
    if done == 0 or not path.is_file():
        done = 0
        with atomic_path(path) as tmp:
            np.lib.format.open_memmap(tmp, "w+", np.dtype(config.dtype), (n, *EXPECTED_SHAPE))
    mm = np.load(path, mmap_mode="r+", allow_pickle=False)
    bs = config.batch_size
    starts = list(range(done, n, bs))
    device = conditioner.transfer.device
    out_dtype = getattr(torch, config.dtype)
    with (
        tqdm(total=n, initial=done, desc=f"conditioning {split}", **bar) as pbar,
        ThreadPoolExecutor(1) as prefetcher,
    ):
        fetch = lambda s: _read_batch(data_dir, split, ids[s : s + bs], pool)  # noqa: E731
        pending = prefetcher.submit(fetch, starts[0]) if starts else None
        for k, start in enumerate(starts):
            batch = pending.result()
            pending = prefetcher.submit(fetch, starts[k + 1]) if k + 1 < len(starts) else None
            with torch.no_grad():
                y = conditioner(torch.from_numpy(batch).to(device)).to(out_dtype).cpu()
            mm[start : start + len(batch)] = y.numpy()
            mm.flush()
            state["done"][split] = start + len(batch)  # samples written
            _save_state(partial, state)
            pbar.update(len(batch))
            if budget[0] is not None:
                budget[0] -= 1
                if budget[0] <= 0:
                    if pending is not None:
                        pending.cancel()
                    raise _Interrupt(f"test hook: stopped after a batch of {split}")
    del mm


# ---------------------------------------------------------------------------- stage 4
def _finalize(out, partial, state, identity, fingerprint, config, psd_file) -> None:
    names = [PSD_FILE]
    counts = {}
    for split, n in state["splits"].items():
        names += [f"{split}.npy", f"{split}_ids.txt"]
        counts[split] = n
        if split == "train":
            names.append("train_labels.npy")
    if state["n_bad"]:
        names.append(BAD_FILES)
    labels_file = partial / "train_labels.npy"
    positives = (
        int(np.load(labels_file, allow_pickle=False).sum()) if labels_file.is_file() else None
    )
    with (
        np.load(partial / PSD_FILE, allow_pickle=False)
        if (partial / PSD_FILE).is_file()
        else (np.load(out / PSD_FILE, allow_pickle=False)) as z
    ):
        n_psd = int(z["n_samples"])
    manifest = {
        "format": FORMAT,
        "version": __version__,
        "sample_rate": SAMPLE_RATE,
        "n_time": N_SAMPLES,
        "detectors": list(DETECTORS),
        "dtype": config.dtype,
        "data_dir": identity["data_dir"],
        "counts": dict(counts, bad=state["n_bad"], train_positive=positives),
        "psd": {
            "source": str(psd_file) if psd_file is not None else config.psd_source,
            "n_samples": n_psd,
        },
        "settings": identity["settings"],
        "checksums": dict(identity["checksums"], **state["file_checksums"]),
        "fingerprint": fingerprint,
    }
    write_json(partial / MANIFEST, manifest)
    for name in names:
        src = partial / name
        if src.exists():
            os.replace(src, out / name)
        elif not (out / name).exists():
            raise RuntimeError(f"preprocess lost {src} while finishing; rerun with --force")
    for name in set(OUTPUTS) - set(names) - {MANIFEST}:
        (out / name).unlink(missing_ok=True)  # stale files of an earlier, different cache
    os.replace(partial / MANIFEST, out / MANIFEST)
    shutil.rmtree(partial)
