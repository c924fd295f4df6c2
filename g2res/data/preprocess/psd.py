"""Stage 2 of ``g2res preprocess``: the noise PSD per detector (Welch over a seeded
subset of training samples, or read from a file) and the whitening + bandpass it sets up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from g2res import DETECTORS, N_SAMPLES, SAMPLE_RATE
from g2res.config import PreprocessConfig
from g2res.data.cache import PSD_FILE
from g2res.data.layout import TRAIN_LABELS, relative_path
from g2res.data.preprocess.reading import CHUNK, _in_order, _read_into
from g2res.data.preprocess.writer import _save_npz
from g2res.data.validate import EXPECTED_SHAPE, BadInputError
from g2res.signal import WhitenBandpass, load_psd, welch


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
