"""The oracle of a simulated data set: the exact injected per-detector signals as templates
(``g2res baseline matched-filter --oracle``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from g2res.data.layout import INJECTIONS


class Oracle:
    """The exact injected per-detector signals of a simulated data set (truth/).

    Each signal is rendered again with the simulator's own code and settings
    (``truth/simulate.json``, ``truth/psd.npy`` only for its SNR scaling). A noise
    sample gets the signal of an injection chosen at random with ``seed``.
    """

    def __init__(self, data_dir: str | os.PathLike, seed: int = 0):
        from g2res.data.simulate import PSD_FILE, SETTINGS_FILE
        from g2res.data.waveforms import Injector

        root = Path(data_dir)
        table_path, settings_path, psd_path = (
            root / INJECTIONS,
            root / SETTINGS_FILE,
            root / PSD_FILE,
        )
        for p in (table_path, settings_path, psd_path):
            if not p.is_file():
                raise FileNotFoundError(
                    f"--oracle needs the simulator's truth: {p} does not exist "
                    "(only data sets made by `g2res simulate` have it)"
                )
        self.table = pd.read_csv(table_path, dtype={"id": str}).set_index("id")
        settings = json.loads(settings_path.read_text())
        # (frequency, H1, L1, V1) on the window's rfft grid, as the simulator wrote it.
        truth_psd = np.load(psd_path, allow_pickle=False)[:, 1:].T
        self.injector = Injector(truth_psd, approximant=settings["config"]["approximant"])
        signals = self.table.index[self.table["target"] == 1]
        if len(signals) == 0:
            raise ValueError(f"{table_path} has no injections")
        self.signal_ids = sorted(signals)
        self.rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(8,)))

    def template_id(self, sample_id: str) -> str:
        """The injection whose waveform is the template of ``sample_id``."""
        if sample_id not in self.table.index:
            raise ValueError(f"sample {sample_id} is not in the truth table")
        if self.table.at[sample_id, "target"] == 1:
            return sample_id
        return self.signal_ids[int(self.rng.integers(len(self.signal_ids)))]

    def signal(self, injection_id: str) -> np.ndarray:
        """The injected signal (3, 4096) strain of ``injection_id``, as simulated."""
        from g2res.data.simulate import PARAMETER_COLUMNS
        from g2res.data.waveforms import BBHParameters

        row = self.table.loc[injection_id]
        params = BBHParameters(
            **{k: float(row[k]) for k in PARAMETER_COLUMNS}, snr=float(row["snr_network"])
        )
        signal, _ = self.injector.render(params)
        return signal
