"""``preprocess``: one data set (or one shard of it) into a cache, stage by stage."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from g2res import __version__
from g2res.config import PreprocessConfig
from g2res.data.layout import SAMPLE_SUBMISSION, TRAIN_LABELS
from g2res.data.preprocess.psd import _conditioner, _estimate_psd
from g2res.data.preprocess.reading import (
    _check_config,
    _check_shard,
    _file_lines,
    _fingerprint,
    _sha256_file,
    _shard_rows,
    _torch_threads,
)
from g2res.data.preprocess.stream import _Run
from g2res.data.preprocess.writer import (
    BAD_FILES,
    OUTPUTS,
    PARTIAL,
    SHARD_FORMAT,
    SHARD_OUTPUTS,
    _finish_array,
    _install,
    _load_state,
    _manifest,
    _names,
    _prepare_out,
    _save_state,
)
from g2res.data.validate import (
    CSV_FOR_SPLIT,
    BadInputError,
    Problem,
    format_problems,
    read_split_csv,
    write_report,
)
from g2res.utils import atomic_path, resolve_device, save_npy


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
