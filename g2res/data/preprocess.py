"""``g2res preprocess``: validate a G2Net-layout data set, whiten, bandpass, pack a cache.

Stages (each resumable; state lives in ``CACHE_DIR/.partial`` until the end):

1. read the label CSVs;
2. estimate the noise PSD per detector (Welch in float32, averaged over a seeded
   random subset of the label-0 training rows, or of all training rows, or read
   from a file);
3. one streaming pass over every sample file: worker threads each take a chunk of
   ``CHUNK`` files, read each file once, checksum (crc32) and check it, and on the
   CPU whiten + bandpass the chunk (one FFT pass, one torch thread per worker: the
   workers are the parallelism); on a GPU the main thread conditions whole batches.
   A writer thread appends the batches to the split's ``.npy`` array while the
   workers read the next one; progress is recorded after each batch. Without
   ``skip_bad`` the first bad file stops conditioning, the pass goes on checking
   so the error lists every bad file;
4. write ids, labels, ``psd.npz``, ``bad_files.csv`` and ``manifest.json``, then
   move everything into place (``manifest.json`` last).

An interrupted run resumes at the last finished batch and produces the same bytes
as an uninterrupted one.

Sharding: ``shard=(i, n)`` processes the ``i``-th of ``n`` contiguous slices of
each split's rows (CSV order) into a *shard directory*; every shard computes the
same PSD from the same seeded subset (or reads ``psd_source``), and
:func:`merge_shards` joins the shard directories into a cache with the same bytes
as a single run. The cache format is described in :mod:`g2res.data.cache`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
import zipfile
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
    format_problems,
    read_file,
    read_split_csv,
    write_report,
)
from g2res.signal import WhitenBandpass, load_psd, welch
from g2res.utils import atomic_path, resolve_device, save_npy, write_json

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
# Samples per worker task (read + check + FFT on the CPU): small enough that a task's
# working set stays in a core's cache, large enough to amortise the FFT set-up per call.
CHUNK = 32
FILES_CHECKSUM = "sha256 of the lines '<id> <crc32 of the file's bytes, 8 hex digits>' in CSV order"


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
    shard: tuple[int, int] | None = None,
    _interrupt_after: int | None = None,
) -> Path:
    """Build the cache of ``data_dir`` in ``out_dir`` and return ``out_dir``.

    Args:
        data_dir: data set in the G2Net layout (``training_labels.csv`` and/or
            ``sample_submission.csv`` with ``train/``/``test/`` files).
        out_dir: cache directory (a shard directory with ``shard``); an
            interrupted run there is resumed.
        config: PSD, taper, bandpass, dtype and batching settings.
        seed: picks the random subset of samples used for the PSD.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the signal steps.
        skip_bad: exclude bad files (listed in ``bad_files.csv``) instead of stopping.
        force: discard an existing cache or interrupted run in ``out_dir``.
        progress: show progress bars.
        shard: ``(i, n)``: process only slice ``i`` (0-based) of ``n`` of every
            split; join the ``n`` shard directories with :func:`merge_shards`.

    Raises:
        BadInputError: bad files or rows (without ``skip_bad``); the message lists
            the first 20 and points to ``out_dir/bad_files.csv``.
        FileExistsError: ``out_dir`` holds other files, or a cache/interrupted run
            made with other settings, and ``force`` is not set.
    """
    _check_config(config)
    shard = _check_shard(shard)
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
    fingerprint = _fingerprint(identity)
    run_fingerprint = fingerprint if shard is None else _fingerprint(dict(identity, shard=shard))

    if _prepare_out(out, run_fingerprint, force, SHARD_OUTPUTS if shard else OUTPUTS):
        if progress:
            print(f"g2res preprocess: {out} is already complete and up to date")
        return out
    partial = out / PARTIAL
    state = _load_state(partial, run_fingerprint, force)
    torch_device = resolve_device(device)
    bar = dict(disable=not progress, unit="sample", dynamic_ncols=True)

    entries, csv_problems = {}, []
    for split in splits:
        entries[split], found = read_split_csv(data_dir, split)
        csv_problems += found
    rows = {s: _shard_rows(len(entries[s]), shard) for s in splits}
    if "done" not in state:
        state.update(
            done={s: 0 for s in splits}, written={s: 0 for s in splits}, problems=[], psd=False
        )
        _save_state(partial, state)
    run = _Run(data_dir, partial, config, skip_bad, csv_problems, state, bar, _interrupt_after)

    with _torch_threads(1), ThreadPoolExecutor(max(1, config.workers)) as pool:
        conditioner = None
        if run.conditioning():
            if not state["psd"]:
                _estimate_psd(data_dir, partial, config, seed, psd_file, entries, pool, bar)
                state["psd"] = True
                _save_state(partial, state)
            conditioner = _conditioner(partial, config, torch_device)
        for split in splits:
            start, stop = rows[split]
            run.stream(split, [e.id for e in entries[split][start:stop]], conditioner, pool)

    file_problems = [Problem(*p) for p in state["problems"]]
    problems = csv_problems + file_problems
    report = out / BAD_FILES
    if problems and not skip_bad:
        write_report(report, problems)
        shutil.rmtree(partial)  # nothing to resume: the files must be fixed first
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

    bad_rows = {(p.split, p.id) for p in file_problems}
    good, lines = {}, {}
    crcs = {s: np.load(partial / f"{s}_crc.npy", allow_pickle=False) for s in splits}
    for split in splits:
        start, stop = rows[split]
        part = entries[split][start:stop]
        good[split] = [e for e in part if (split, e.id) not in bad_rows]
        lines[split] = _file_lines(part, crcs[split])
        _finish_array(partial / f"{split}.npy", len(good[split]))
        with atomic_path(partial / f"{split}_ids.txt") as tmp:
            tmp.write_text("".join(f"{e.id}\n" for e in good[split]))
        if split == "train":
            labels = np.array([e.label for e in good[split]], np.int8)
            save_npy(partial / "train_labels.npy", labels)
    names = _names(splits, bool(problems))
    psd_source = str(psd_file) if psd_file is not None else config.psd_source
    if shard is None:
        digests = {f"{s}_files": hashlib.sha256(lines[s].encode()).hexdigest() for s in splits}
        manifest = _manifest(identity, fingerprint, psd_source, partial, digests, problems)
    else:
        for split in splits:
            with atomic_path(partial / f"{split}_files.txt") as tmp:
                tmp.write_text(lines[split])
            names.append(f"{split}_files.txt")
        manifest = {
            "format": SHARD_FORMAT,
            "version": __version__,
            "shard": list(shard),
            "rows": {s: list(rows[s]) for s in splits},
            "counts": {s: len(good[s]) for s in splits},
            "csv_problems": len(csv_problems),
            "psd_source": psd_source,
            "identity": identity,
            "cache_fingerprint": fingerprint,
            "fingerprint": run_fingerprint,
        }
    _install(out, partial, names, manifest, SHARD_OUTPUTS if shard else OUTPUTS)
    return out


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


def _check_shard(shard) -> list[int] | None:
    if shard is None:
        return None
    i, n = (int(v) for v in shard)
    if not 0 <= i < n:
        raise ValueError(f"shard {i}/{n}: need 0 <= I < N")
    return [i, n]


def _shard_rows(n_rows: int, shard) -> tuple[int, int]:
    """Row range ``[start, stop)`` of a split that ``shard`` processes (all without one)."""
    if shard is None:
        return 0, n_rows
    i, n = shard
    return n_rows * i // n, n_rows * (i + 1) // n


def _fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads (process-wide), then restore."""
    # The worker threads are the parallelism: each reads and conditions its own chunk
    # with the GIL released. torch's OpenMP team on top spins while it waits for work,
    # taking the cores the readers need (2.6x slower end to end on 2 cores).
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _in_order(pool: ThreadPoolExecutor, fn, items: list, depth: int = 8):
    """``pool.map(fn, items)`` with at most ``depth`` tasks queued ahead of the consumer."""
    tasks = [pool.submit(fn, item) for item in items[:depth]]
    for k in range(len(items)):
        result = tasks[k].result()
        tasks[k] = None  # let the result go once consumed
        if k + depth < len(items):
            tasks.append(pool.submit(fn, items[k + depth]))
        yield result


# ---------------------------------------------------------------------------- files
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


def _file_lines(entries, crcs: np.ndarray) -> str:
    return "".join(
        f"{e.id} {c:08x}\n" if c >= 0 else f"{e.id} -\n" for e, c in zip(entries, crcs.tolist())
    )


def _read_into(path: Path, buf: np.ndarray, i: int) -> tuple[str | None, int]:
    """Read, check and checksum one file; a good sample goes to ``buf[i]``."""
    array, problem, crc = read_file(path)
    if array is not None:
        buf[i] = array
    return problem, crc


# ---------------------------------------------------------------------------- stage 2
def _estimate_psd(data_dir, partial, config, seed, psd_file, entries, pool, bar) -> None:
    if psd_file is not None:
        freqs, psd, rate = load_psd(psd_file, n_detectors=len(DETECTORS))
        if rate is not None and rate != SAMPLE_RATE:
            raise ValueError(f"PSD file {psd_file} is for {rate} Hz data, not {SAMPLE_RATE} Hz")
        n_used = 0
    else:
        if "train" not in entries:
            raise FileNotFoundError(
                f"--psd-source {config.psd_source} needs training samples ({TRAIN_LABELS}); "
                "give a PSD file with --psd-source FILE instead"
            )
        ids = np.array([e.id for e in entries["train"]])
        labels = np.array([e.label for e in entries["train"]])
        pool_idx = (
            np.flatnonzero(labels == 0) if config.psd_source == "noise" else np.arange(ids.size)
        )
        if pool_idx.size == 0:
            raise ValueError(
                f"--psd-source {config.psd_source}: no usable training samples"
                + (" with target 0" if config.psd_source == "noise" else "")
            )
        # Chosen among the CSV rows, before any file is read, so every shard of a
        # sharded run picks the same subset; bad files among them are left out.
        rng = np.random.default_rng(seed)
        if pool_idx.size > config.psd_max_samples:
            pool_idx = np.sort(rng.choice(pool_idx, config.psd_max_samples, replace=False))
        chosen = ids[pool_idx]

        def chunk_psd(part):
            """Worker: summed Welch PSD ``(3, f)`` of the good files among ``part``."""
            buf = np.empty((len(part), *EXPECTED_SHAPE), np.float64)
            found = [
                _read_into(data_dir / relative_path("train", i), buf, k) for k, i in enumerate(part)
            ]
            keep = np.array([problem is None for problem, _ in found], bool)
            if not keep.any():
                return None, 0
            freqs_t, p = welch(
                torch.from_numpy(buf[keep]),
                SAMPLE_RATE,
                segment_duration=config.psd_segment,
                overlap=config.psd_overlap,
                window=config.psd_window,
                average=config.psd_average,
                dtype=torch.float32,
            )
            return (freqs_t, p.sum(0)), int(keep.sum())

        total, n_used = None, 0
        parts = [chosen[s : s + CHUNK] for s in range(0, len(chosen), CHUNK)]
        with tqdm(total=len(chosen), desc="estimating PSD", **bar) as pbar:
            # Summed in chunk order, so the result does not depend on the thread count.
            for part, (result, n_good) in zip(parts, _in_order(pool, chunk_psd, parts)):
                if result is not None:
                    freqs_t, s = result
                    total = s if total is None else total + s
                n_used += n_good
                pbar.update(len(part))
        if n_used == 0:
            raise BadInputError(f"--psd-source {config.psd_source}: every chosen file is bad")
        freqs, psd = freqs_t.numpy(), (total / n_used).numpy()
    _save_npz(
        partial / PSD_FILE,
        frequencies=np.asarray(freqs, np.float64),
        psd=np.asarray(psd, np.float64),
        sample_rate=np.float64(SAMPLE_RATE),
        n_samples=np.int64(n_used),
    )


def _conditioner(partial: Path, config: PreprocessConfig, device) -> WhitenBandpass:
    with np.load(partial / PSD_FILE, allow_pickle=False) as z:
        freqs, psd = z["frequencies"], z["psd"]
    return WhitenBandpass(
        freqs,
        psd,
        SAMPLE_RATE,
        N_SAMPLES,
        fmin=config.fmin,
        fmax=config.fmax,
        order=config.filter_order,
        window=config.window,
        window_alpha=config.window_alpha,
    ).to(device)


# ---------------------------------------------------------------------------- stage 3
class _Run:
    """The streaming pass: read + check + condition + write, batch by batch."""

    def __init__(self, data_dir, partial, config, skip_bad, csv_problems, state, bar, budget):
        self.data_dir, self.partial, self.config = data_dir, partial, config
        self.skip_bad, self.csv_problems, self.state = skip_bad, csv_problems, state
        self.bar, self.budget = bar, budget

    def conditioning(self) -> bool:
        """False once a bad row or file makes the run fail anyway: only check the rest."""
        return self.skip_bad or not (self.csv_problems or self.state["problems"])

    def stream(self, split, ids, conditioner, pool) -> None:
        state, partial, bs = self.state, self.partial, self.config.batch_size
        n = len(ids)
        path, crc_path = partial / f"{split}.npy", partial / f"{split}_crc.npy"
        done = state["done"][split]
        if done == 0 or not path.is_file() or not crc_path.is_file():
            done = state["done"][split] = state["written"][split] = 0
            _create_array(path, n, self.config.dtype)
            save_npy(crc_path, np.full(n, -1, np.int64))
        row_bytes = np.dtype(self.config.dtype).itemsize * 3 * N_SAMPLES
        offset = len(_npy_header((n, *EXPECTED_SHAPE), self.config.dtype))
        crc_mm = np.load(crc_path, mmap_mode="r+", allow_pickle=False)
        out_dtype = getattr(torch, self.config.dtype)
        on_cpu = conditioner is not None and conditioner.transfer.device.type == "cpu"
        self.conditioner = conditioner  # None once the run is bound to fail
        fd = os.open(path, os.O_RDWR)

        def load(part, c, buf, out):
            """Worker: read rows ``c:c+CHUNK`` of a batch into ``buf``, condition into ``out``."""
            stop = min(c + CHUNK, len(part))
            found = []
            for k in range(c, stop):
                problem, crc = _read_into(self.data_dir / relative_path(split, part[k]), buf, k)
                if problem is not None:
                    buf[k] = 0  # dropped later; zeros keep the FFT of the chunk finite
                found.append((problem, crc))
            cond = self.conditioner
            if out is not None and cond is not None:
                with torch.no_grad():
                    y = cond(torch.from_numpy(buf[c:stop]))
                torch.from_numpy(out[c:stop]).copy_(y)  # rounds to the cache dtype
            return found

        def submit(start):
            part = ids[start : start + bs]
            buf = np.empty((len(part), *EXPECTED_SHAPE), np.float32)
            out = np.empty(buf.shape, self.config.dtype) if on_cpu else None
            tasks = [pool.submit(load, part, c, buf, out) for c in range(0, len(part), CHUNK)]
            return start, buf, out, tasks

        def write(start, y, written, crcs, problems):
            view = memoryview(y).cast("B") if y is not None else b""
            pos = offset + written * row_bytes
            while view:  # pwrite may write less than asked
                k = os.pwrite(fd, view, pos)
                view, pos = view[k:], pos + k
            crc_mm[start : start + len(crcs)] = crcs
            crc_mm.flush()
            os.fsync(fd)  # data on disk before the state says so
            state["problems"] += problems
            state["done"][split] = start + len(crcs)
            state["written"][split] = written + (0 if y is None else len(y))
            _save_state(partial, state)

        starts = list(range(done, n, bs))
        pending = tasks = None
        try:
            with (
                tqdm(total=n, initial=done, desc=f"preprocessing {split}", **self.bar) as pbar,
                ThreadPoolExecutor(1) as writer,
            ):
                # The next batch is queued before this one is collected, so the workers
                # never wait for the main thread.
                pending = submit(starts[0]) if starts else None
                written = state["written"][split]
                jobs = []
                for k in range(len(starts)):
                    start, buf, out, tasks = pending
                    pending = submit(starts[k + 1]) if k + 1 < len(starts) else None
                    found = [f for task in tasks for f in task.result()]
                    problems = [
                        [relative_path(split, ids[start + j]).as_posix(), ids[start + j], split, p]
                        for j, (p, _) in enumerate(found)
                        if p is not None
                    ]
                    crcs = np.array([c for _, c in found], np.int64)
                    y = None
                    if problems and not self.skip_bad:
                        conditioner = self.conditioner = None  # the run fails: stop conditioning
                    if conditioner is not None and self.conditioning():
                        good = np.array([p is None for p, _ in found]) if problems else slice(None)
                        if on_cpu:
                            y = out[good]
                        else:
                            y = self._condition(buf[good], conditioner, out_dtype, bs)
                    jobs.append(writer.submit(write, start, y, written, crcs, problems))
                    written += 0 if y is None else len(y)
                    n_rows = len(crcs)
                    jobs[-1].add_done_callback(lambda _, m=n_rows: pbar.update(m))
                    if len(jobs) > 2:  # bound memory; surface writer errors
                        jobs.pop(0).result()
                    if self.budget is not None:
                        self.budget -= 1
                        if self.budget <= 0:
                            for job in jobs:
                                job.result()
                            raise _Interrupt(f"test hook: stopped after a batch of {split}")
                for job in jobs:
                    job.result()
        finally:
            # On an interruption, drop the chunks still queued (a no-op on finished ones).
            for task in (tasks or []) + (pending[3] if pending else []):
                task.cancel()
            os.close(fd)

    @staticmethod
    def _condition(buf: np.ndarray, conditioner, out_dtype, chunk) -> np.ndarray:
        """Whiten + bandpass ``(b, 3, time)`` float32 on the device; returns the cache dtype."""
        device = conditioner.transfer.device
        out = torch.empty(buf.shape, dtype=out_dtype)
        x = torch.from_numpy(buf)
        with torch.no_grad():
            for c in range(0, len(x), chunk):
                out[c : c + chunk] = conditioner(x[c : c + chunk].to(device)).to(out_dtype).cpu()
        return out.numpy()


# ---------------------------------------------------------------------------- stage 4
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
