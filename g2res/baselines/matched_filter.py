"""The matched filter: per-detector complex SNR by FFT correlation and a network statistic.

For data d and a template h of one detector, both whitened by the PSD S it is
given (never the simulator's), the complex SNR at lag t is

    z(t) = 4 df sum_{fmin <= f} d~(f) h~*(f) / S(f) exp(2 pi i f t) / sqrt(<h|h>),

computed for all lags, templates and detectors at once by the batched core
:mod:`g2res.signal.matched` (Re z and Im z as real inverse FFTs of one product with
kernels formed once per bank; DC and Nyquist left out), so |z| is maximised over
phase. In Gaussian noise Re z and Im z have unit variance. The data are tapered with a Tukey
window first (2-s windows are not periodic).

The network statistic at H1 lag t is |z_H1(t)|^2 + max |z_L1|^2 within
``windows["L1"]`` s of t + max |z_V1|^2 within ``windows["V1"]`` s (the light travel
times H1-L1 10 ms, H1-V1 27.3 ms, plus 1 ms), maximised over lags and templates; we
report its square root (the network SNR). Templates with merger at sample 0
(:mod:`g2res.baselines.bank`) put the peak at the merger time; the oracle's
templates are the injected per-detector signals in place, so its peak is at lag 0.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from g2res import DETECTORS
from g2res.baselines.bank import F_LOWER, TemplateBank, stochastic_bank, whitening
from g2res.baselines.marginal import marginal_statistic
from g2res.baselines.oracle import Oracle  # noqa: F401 (re-exported: the command's --oracle)
from g2res.baselines.samples import read_batch, read_sample, split_ids  # noqa: F401
from g2res.signal.gate import GATE_TAPER, GATE_WINDOW
from g2res.signal.matched import (
    complex_snr,
    correlation_kernels,
    sliding_max,
    snr_power,
    snr_quadratures,
    template_chunk,
)
from g2res.utils import atomic_open, resolve_device

SAMPLE_RATE = 2048.0  # Hz
N_SAMPLES = 4096
WINDOWS = {"L1": 0.011, "V1": 0.0283}  # s, coincidence windows relative to H1
TAPER_ALPHA = 0.1  # Tukey: 0.1 s ramps, so mergers up to 1.9 s keep their full amplitude


def load_filter_psd(
    path: str | os.PathLike, sample_rate: float = SAMPLE_RATE, n_samples: int = N_SAMPLES
) -> np.ndarray:
    """A PSD file (``psd.npz`` of a cache or a table, see ``g2res.signal.psd.load_psd``)
    interpolated linearly onto ``rfftfreq(n_samples, 1 / sample_rate)``: (3, f) strain^2/Hz."""
    from g2res.signal.psd import load_psd

    freqs, psd, rate = load_psd(path, n_detectors=len(DETECTORS))
    if rate is not None and abs(rate - sample_rate) > 1e-6:
        raise ValueError(f"PSD file {path} is for {rate} Hz data, not {sample_rate} Hz")
    grid = np.fft.rfftfreq(n_samples, 1.0 / sample_rate)
    if freqs[-1] < grid[-1] * 0.99 or freqs[0] > F_LOWER:
        raise ValueError(
            f"PSD file {path} covers {freqs[0]:g}-{freqs[-1]:g} Hz; the matched filter needs "
            f"{F_LOWER:g}-{grid[-1]:g} Hz"
        )
    return np.stack([np.interp(grid, freqs, row) for row in psd])


class MatchedFilter:
    """Matched filter of ``(batch, 3, n_samples)`` strain against templates.

    ``psd`` (3, f) strain^2/Hz on the rfft grid of ``n_samples`` at ``sample_rate`` Hz;
    ``fmin``/``fmax`` Hz bound the inner products; ``upsample`` refines the lag grid;
    ``gate`` (sigmas; None: off) autogates the whitened data first
    (:mod:`g2res.baselines.gating`, half-width ``gate_window`` s, tapers ``gate_taper`` s);
    ``psd_var`` divides each sample's own PSD variation (a scale and a tilt per detector,
    :mod:`g2res.baselines.psdvar`) out of its whitened data before that; ``time_window``
    (start, end) s keeps the network statistic's H1 lags (merger times) within it
    (:mod:`g2res.baselines.time_window`; None: every lag).
    """

    def __init__(
        self,
        psd: np.ndarray,
        sample_rate: float = SAMPLE_RATE,
        n_samples: int = N_SAMPLES,
        fmin: float = F_LOWER,
        fmax: float | None = None,
        taper_alpha: float = TAPER_ALPHA,
        windows: dict[str, float] | None = None,
        upsample: int = 1,
        device: str | torch.device = "cpu",
        gate: float | None = None,
        gate_window: float = GATE_WINDOW,
        gate_taper: float = GATE_TAPER,
        psd_var: bool = False,
        time_window: tuple[float, float] | None = None,
    ):
        from g2res.baselines.time_window import lag_mask
        from g2res.signal.windows import window_array

        self.sample_rate = float(sample_rate)
        self.n_samples = int(n_samples)
        self.frequencies = np.fft.rfftfreq(self.n_samples, 1.0 / self.sample_rate)
        psd = np.asarray(psd, dtype=np.float64)
        if psd.shape != (len(DETECTORS), self.frequencies.size):
            raise ValueError(f"psd must be (3, {self.frequencies.size}), got {psd.shape}")
        self.weight = whitening(psd, self.frequencies, fmin, fmax)  # (3, f)
        self.taper = window_array("tukey", self.n_samples, taper_alpha)
        self.upsample = int(upsample)
        self.length = self.n_samples * self.upsample
        rate = self.sample_rate * self.upsample
        windows = WINDOWS if windows is None else windows
        self.pool = [int(np.ceil(windows[d] * rate)) for d in DETECTORS[1:]]
        self.device = torch.device(device)
        self.lag_mask = (None if time_window is None
                         else lag_mask(time_window, self.length, rate, self.device))  # fmt: skip
        if gate is not None and not (gate > 0 and gate_window >= 0 and gate_taper >= 0):
            raise ValueError(f"gate {gate} sigmas, window {gate_window} s, taper {gate_taper} "
                             "s: need a positive threshold and lengths >= 0")  # fmt: skip
        self.gate = (gate, gate_window, gate_taper) if gate is not None else None
        self.gated_fraction: np.ndarray | None = None  # (batch, 3) of the last data_spectra
        self.psd_var = None
        if psd_var:
            from g2res.baselines.psdvar import PsdVariation

            band = (self.weight != 0).any(0)
            self.psd_var = PsdVariation(band, self.sample_rate, self.n_samples, taper_alpha)
        self.variation: np.ndarray | None = None  # (batch, 3) of the last data_spectra

    def data_spectra(self, x: np.ndarray) -> torch.Tensor:
        """Tapered, whitened spectra (batch, 3, f) complex64, scaled so that noise has
        E|.|^2 = 2 per frequency in the band (``x`` (batch, 3, n) strain); corrected for
        the sample's PSD variation with ``psd_var`` (``variation`` (batch, 3)) and gated
        when ``gate`` is set (``gated_fraction`` (batch, 3) then holds the gated shares)."""
        spec = np.fft.rfft(np.asarray(x, dtype=np.float64) * self.taper, axis=-1)
        # rfft / fs approximates the Fourier transform; times sqrt(4 df) / sqrt(S).
        spec = spec * self.weight * np.sqrt(4.0 / (self.sample_rate * self.n_samples))
        if self.psd_var is not None:  # before the gate, whose threshold is in noise sigmas
            spec, self.variation = self.psd_var(spec)
        if self.gate is not None:
            from g2res.baselines.gating import gate_spectra

            spec, self.gated_fraction = gate_spectra(
                spec, self.n_samples, self.sample_rate, *self.gate, band=self.weight != 0
            )
        return torch.as_tensor(spec, dtype=torch.complex64).to(self.device)

    def template_spectra(
        self, h: np.ndarray, per_detector: bool | None = None
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Unit-norm whitened spectra of templates and their optimal SNRs sigma.

        ``h`` (..., n) for one waveform seen by every detector (``per_detector`` False),
        or (..., 3, n) per detector (True). None: per detector when the last but one axis
        has 3 entries, so a bank of exactly 3 templates (3, n) must say False.
        Returns complex64 (..., 3, f) and sigma (..., 3) (for h in strain).
        """
        h = np.asarray(h, dtype=np.float64)
        if per_detector is None:
            per_detector = h.ndim > 1 and h.shape[-2] == len(DETECTORS)
        if per_detector and (h.ndim < 2 or h.shape[-2] != len(DETECTORS)):
            raise ValueError(
                f"per-detector templates need shape (..., {len(DETECTORS)}, n), got {h.shape}"
            )
        if not per_detector:
            h = h[..., None, :]
        spec = np.fft.rfft(h, axis=-1) * self.weight
        norm2 = np.sum(np.abs(spec) ** 2, axis=-1)
        if np.any(norm2 == 0):
            raise ValueError("a template has no power in the analysis band")
        sigma = np.sqrt(norm2 * 4.0 / (self.sample_rate * self.n_samples))
        unit = spec / np.sqrt(norm2)[..., None]
        unit = np.broadcast_to(unit, (*unit.shape[:-2], len(DETECTORS), unit.shape[-1])).copy()
        return torch.as_tensor(unit, dtype=torch.complex64).to(self.device), sigma

    def kernels(self, u: torch.Tensor) -> torch.Tensor:
        """Correlation kernels (..., 3, 2, f) of unit-norm template spectra ``u`` (..., 3, f)
        (:func:`g2res.signal.matched.correlation_kernels`): form them once per bank."""
        return correlation_kernels(u, self.length / 2.0, self.n_samples)

    def snr_series(self, d: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Complex SNR (batch, templates, 3, lags) of data spectra ``d`` (batch, 3, f) with
        template spectra ``u`` (templates, 3, f) or per sample (batch, templates, 3, f)."""
        return complex_snr(d, self.kernels(u), self.length)

    def network(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Network statistic of complex SNRs (batch, T, 3, lags): for each (batch, T) the
        maximum over H1 lags of the coincident sum of |z|^2, its lag index and the three
        per-detector |z|^2 there. Shapes (batch, T)."""
        return self.network_power(z.real.square() + z.imag.square())

    def network_power(self, p: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """:meth:`network` of per-detector ``|z|^2`` (batch, T, 3, lags)."""
        pooled = [p[:, :, 0]] + [sliding_max(p[:, :, k], w) for k, w in enumerate(self.pool, 1)]
        total = pooled[0] + pooled[1]
        for part in pooled[2:]:
            total += part
        if self.lag_mask is not None:  # lags outside the merger-time window never win
            total = total.masked_fill(~self.lag_mask, float("-inf"))
        stat, lag = total.max(-1)
        per_det = torch.stack([part.gather(-1, lag[..., None])[..., 0] for part in pooled], -1)
        return stat, lag, per_det

    def filter(
        self,
        x: np.ndarray,
        u: torch.Tensor,
        template_batch: int | None = 64,
        chisq_bins: int = 0,
        kernels=None,
        coherent: int = 0,
        sigma: np.ndarray | None = None,
    ) -> dict:
        """Best network statistic of data ``x`` (batch, 3, n) over templates ``u``
        (T, 3, f) or per sample (batch, T, 3, f).

        ``kernels``: ``self.kernels(u)`` when already formed (once per bank). Templates go
        through the batched core (:mod:`g2res.signal.matched`) in chunks of at most
        ``template_batch`` that fit :data:`~g2res.signal.matched.CHUNK_BYTES`.
        Returns numpy arrays (batch,): ``snr`` (network SNR), ``template`` (index),
        ``time`` (s, H1 lag of the peak) and ``snr_H1``, ``snr_L1``, ``snr_V1``. With
        ``chisq_bins`` p > 0 templates are ranked by the network re-weighted SNR
        (:mod:`g2res.baselines.chisq`), returned as ``newsnr``, with ``chisq_r_<det>`` and
        ``newsnr_<det>`` of each detector at the peak (``snr`` etc. of the same template).
        With ``coherent`` K > 0 (a bank shared by the batch; ``sigma`` (T, 3) its template
        sigmas from :meth:`template_spectra`) the K best templates of each sample are
        searched again coherently (:mod:`g2res.baselines.coherent`): ``coh_snr``,
        ``null_snr``, ``coh_template`` and ``coh_time`` (s, H1) of the best of them.
        Always returned: ``marginal``, the bank-marginalised log likelihood ratio
        :func:`marginal_statistic` of every template's statistic (newSNR^2 with the veto).
        """
        if coherent and (chisq_bins or u.dim() != 3 or sigma is None):
            raise ValueError(
                "the coherent statistic needs one bank shared by the batch, its template "
                "sigmas, and no chi-squared veto"
            )
        d = self.data_spectra(x)
        n = d.shape[0]
        k = self.kernels(u) if kernels is None else kernels
        n_templates = k.shape[-4]
        chunk = template_chunk(n, len(DETECTORS), d.shape[-1], self.length, limit=template_batch)
        rows = torch.arange(n, device=self.device)
        if chisq_bins:
            from g2res.baselines.chisq import filter_vetoed

            best, index, lag, dets, veto, rank, ranks = filter_vetoed(
                self, d, u, k, chunk, chisq_bins
            )
            marginal = marginal_statistic(ranks)
        else:
            stats, lags, pers = [], [], []
            with torch.no_grad():
                for s in range(0, n_templates, chunk):
                    q = snr_quadratures(d, k[..., s : s + chunk, :, :, :], self.length)
                    stat, lag, per = self.network_power(snr_power(q))
                    stats.append(stat)
                    lags.append(lag)
                    pers.append(per)
            stat, lag, per = torch.cat(stats, 1), torch.cat(lags, 1), torch.cat(pers, 1)
            marginal = marginal_statistic(stat)
            best, index = stat.max(1)  # first maximum: the lowest template index on ties
            if coherent:
                from g2res.baselines.coherent import search_best_templates

                coh = search_best_templates(self, d, u, sigma, stat, lag, coherent)
            lag, dets = lag[rows, index], per[rows, index]
            veto = None
        out = {
            "snr": best.clamp(min=0).sqrt().cpu().numpy().astype(np.float64),
            "template": index.cpu().numpy(),
            "time": lag.cpu().numpy() / (self.sample_rate * self.upsample),
            "marginal": marginal,
        }
        for j, det in enumerate(DETECTORS):
            out[f"snr_{det}"] = dets[:, j].clamp(min=0).sqrt().cpu().numpy().astype(np.float64)
            if self.gate is not None:
                out[f"gated_{det}"] = self.gated_fraction[:, j]
            if self.psd_var is not None:
                out[f"psd_var_{det}"] = self.variation[:, j]
        if coherent:
            out.update(coh)
        if veto is not None:  # --- chi-squared veto
            out["newsnr"] = rank.clamp(min=0).sqrt().cpu().numpy()
            for key, j, det in ((key, j, det) for key in veto for j, det in enumerate(DETECTORS)):
                out[f"{key}_{det}"] = veto[key][:, j].numpy()
        return out


# ---------------------------------------------------------------------------- command
def rank_probability(stat: np.ndarray) -> np.ndarray:
    """Monotone map of a statistic to (0, 1): (rank - 1/2) / n, ties sharing their rank."""
    from scipy.stats import rankdata

    stat = np.asarray(stat, dtype=np.float64)
    return (rankdata(stat) - 0.5) / max(len(stat), 1)


def companion_path(out: str | os.PathLike) -> Path:
    """``name.raw.csv`` beside a submission ``name.csv``: the raw statistics."""
    out = Path(out)
    return out.with_name(f"{out.stem}.raw.csv")


def matched_filter(
    data_dir: str | os.PathLike,
    psd: str | os.PathLike,
    out: str | os.PathLike,
    split: str = "test",
    oracle: bool = False,
    bank: TemplateBank | str | os.PathLike | None = None,
    mass_range: tuple[float, float] = (7.0, 50.0),
    spin_max: float = 0.99,
    minimal_match: float = 0.95,
    approximant: str = "IMRPhenomD",
    save_bank: str | os.PathLike | None = None,
    taper_alpha: float = TAPER_ALPHA,
    batch_size: int = 8,
    template_batch: int = 64,
    device: str = "auto",
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    chisq_bins: int = 0,
    gate: float | None = None,
    gate_window: float = GATE_WINDOW,
    gate_taper: float = GATE_TAPER,
    coherent: int = 0,
    marginal: bool = False,
    psd_var: bool = False,
    time_window: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """``g2res baseline matched-filter``: filter every sample of ``split`` and write

    - ``out``: ``id,target`` with target the rank-transformed network SNR in (0, 1);
    - ``companion_path(out)``: id, network SNR, per-detector SNRs, peak time (s) and
      the best template (index and parameters; for the oracle the injection id).

    The bank is loaded from ``bank`` (a ``.npz`` from ``save_bank``) or placed for
    ``psd``. With ``chisq_bins`` p > 0 the chi-squared veto re-weights the SNRs and the
    submission ranks the network re-weighted SNR (companion columns ``newsnr``,
    ``chisq_r_<det>``, ``newsnr_<det>``). With ``gate`` (sigmas) the whitened data are
    autogated first (:mod:`g2res.baselines.gating`; companion columns ``gated_<det>``, the
    gated share of each detector). With ``psd_var`` each sample's PSD variation (a scale
    and a tilt per detector) is divided out of its whitened data first (companion columns
    ``psd_var_<det>``). With ``time_window`` (start, end) s the statistic only peaks at
    H1 merger times within it (:mod:`g2res.baselines.time_window`; the oracle's too). With
    ``coherent`` K > 0 the K best templates of each
    sample are searched coherently and the submission ranks ``coh_snr``
    (:mod:`g2res.baselines.coherent`). The companion's ``marginal`` column is the
    bank-marginalised log likelihood ratio (:func:`marginal_statistic`, of newSNR^2 with
    the veto); with ``marginal`` the submission ranks it instead of the best template's.
    The companion's ``stat`` column is the statistic the submission ranks. Returns the
    companion table.
    """
    from tqdm.auto import tqdm

    from g2res.baselines.time_window import lag_mask

    out = Path(out)
    raw_out = companion_path(out)
    for path in (out, raw_out):
        if path.exists() and not force:
            raise FileExistsError(f"{path} already exists; pass --force to overwrite it")
    if coherent < 0 or (coherent and (chisq_bins or oracle)):
        raise ValueError(
            f"--coherent {coherent}: need K >= 0 templates, and neither --chisq nor --oracle"
        )
    if marginal and (coherent or oracle):
        raise ValueError(
            "--marginal averages over a template bank: not with --coherent or --oracle"
        )
    if chisq_bins:
        from g2res.baselines.chisq import chisq_dof

        chisq_dof(chisq_bins)  # fewer than 2 bins fails before the bank is placed
    ids = split_ids(data_dir, split)
    dev = resolve_device(device)
    filt_psd = load_filter_psd(psd)
    mf = MatchedFilter(filt_psd, taper_alpha=taper_alpha, device=dev, gate=gate,
                       gate_window=gate_window, gate_taper=gate_taper,
                       psd_var=psd_var, time_window=None if oracle else time_window)  # fmt: skip

    the_oracle = Oracle(data_dir, seed) if oracle else None
    templates = kernels = None
    if the_oracle is None:
        if isinstance(bank, (str, os.PathLike)):
            bank = TemplateBank.load(bank)
        if bank is None:
            bank = stochastic_bank(
                filt_psd, mf.frequencies, mass_range, spin_max, minimal_match, approximant,
                seed=seed, device=dev, progress=progress,
            )  # fmt: skip
        if save_bank is not None:
            bank.save(save_bank)
        templates, sigma = mf.template_spectra(bank.waveforms(), per_detector=False)
        kernels = mf.kernels(templates)  # once per bank

    rows: list[pd.DataFrame] = []
    bar = tqdm(total=len(ids), desc="matched filter", unit="sample", disable=not progress)
    with ThreadPoolExecutor(4) as pool:
        for s in range(0, len(ids), batch_size):
            batch = ids[s : s + batch_size]
            x = read_batch(data_dir, split, batch, pool)
            if the_oracle is not None:
                chosen = [the_oracle.template_id(i) for i in batch]
                signals = np.stack([the_oracle.signal(c) for c in chosen])
                if time_window is not None:  # lag 0 is each template's own H1 merger time
                    t_h1 = the_oracle.table.loc[chosen, "t_H1"].to_numpy()
                    mf.lag_mask = lag_mask(time_window, mf.length, SAMPLE_RATE * mf.upsample,
                                           dev, offset=t_h1)  # fmt: skip
                u, _ = mf.template_spectra(signals, per_detector=True)
                res = mf.filter(x, u[:, None], template_batch, chisq_bins)
                extra = {"template_id": chosen}
            else:
                res = mf.filter(x, templates, template_batch, chisq_bins, kernels=kernels,
                                coherent=coherent, sigma=sigma)  # fmt: skip
                extra = {k: getattr(bank, k)[res["template"]] for k in ("mass1", "mass2")}
                extra.update({k: getattr(bank, k)[res["template"]] for k in ("spin1z", "spin2z")})
            frame = pd.DataFrame({"id": batch, **res, **extra})
            rows.append(frame)
            bar.update(len(batch))
    bar.close()
    table = pd.concat(rows, ignore_index=True)
    if the_oracle is not None:
        table = table.drop(columns="template")
    if marginal:
        stat = table["marginal"]
    else:
        stat = table["newsnr"] if chisq_bins else table["coh_snr"] if coherent else table["snr"]
    table["stat"] = stat
    submission = pd.DataFrame({"id": table["id"], "target": rank_probability(stat)})
    with atomic_open(raw_out, "w", newline="") as fh:
        table.to_csv(fh, index=False)
    with atomic_open(out, "w", newline="") as fh:
        submission.to_csv(fh, index=False)
    return table
