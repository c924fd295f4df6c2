"""How close is the matched filter to the FFTs it needs? Template-sample correlations per
second of the previous path, the batched core, and the floor, in one run.

A batch of ``--batch`` coloured-noise samples (3, 4096) is filtered against ``--templates``
IMRPhenomD bank templates (design PSD) by

- ``old``: the previous implementation (:mod:`g2res.baselines.reference`: complex inverse
  FFT of the zero-padded one-sided product, ``max_pool1d`` coincidence windows), chunks
  of 64 templates;
- ``new``: ``MatchedFilter.filter`` on the batched core (:mod:`g2res.signal.matched`:
  Re z and Im z as one batched ``irfft`` of the product with kernels formed once per bank,
  log-step coincidence maxima), chunks sized to ``CHUNK_BYTES``; also at other budgets;
- ``floor``: only the inverse FFTs the new path needs (``irfft`` of precomputed product
  arrays of the same chunks), and the old path's complex ``ifft`` of its product for
  comparison.

A template-sample correlation is one template against one sample (three detectors, all
lags, both quadratures). The data spectra are included in old and new (once per batch).
Goal: new within 2x of its FFT floor. Also checks that new equals old (network SNR,
template, lag). Prints a table and writes benchmarks/results/matched_filter.json.

    python benchmarks/matched_filter.py --threads 2 --templates 256 --batch 8
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from g2res.baselines.bank import template_waveform
from g2res.baselines.matched_filter import MatchedFilter
from g2res.baselines.reference import reference_filter
from g2res.data.noise import ColoredNoise, design_psd, rfft_frequencies
from g2res.signal.matched import CHUNK_BYTES, snr_quadratures, template_chunk
from g2res.utils import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds as _time  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "matched_filter.json"
GOAL_FLOOR_RATIO = 2.0
ISSUE_TEMPLATES, ISSUE_SAMPLES = 570, 2000  # the benchmark bank and test split of issue 17


def templates(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` bank templates (n, 4096) with component masses in 7-50 Msun."""
    m = rng.uniform(7.0, 50.0, size=(n, 2))
    return np.stack([template_waveform(max(a, b), min(a, b)) for a, b in m])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--templates", type=int, default=256)
    p.add_argument("--batch", type=int, default=8, help="samples per filter call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument(
        "--budgets", type=float, nargs="*", default=[4, 8, 16, 32, 64], help="MiB per chunk"
    )
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    psd = design_psd(rfft_frequencies())
    mf = MatchedFilter(psd)
    u, _ = mf.template_spectra(templates(args.templates, rng))
    x = ColoredNoise(design_psd)(rng, batch=args.batch)
    b, n_t = args.batch, args.templates
    pairs = b * n_t

    kernels = mf.kernels(u)
    rows: list[dict] = []

    def add(what: str, seconds: float, **extra) -> None:
        rows.append(dict(what=what, seconds=seconds, per_s=pairs / seconds, **extra))

    add(
        "old (complex ifft, max_pool1d)",
        _time(lambda: reference_filter(mf, x, u, 64), args.repeats),
    )
    t_kernels = _time(lambda: mf.kernels(u), args.repeats)
    new_s = _time(lambda: mf.filter(x, u, None, kernels=kernels), args.repeats)
    chunk = template_chunk(b, 3, mf.frequencies.size, mf.length)
    add("new (batched irfft core)", new_s, chunk=chunk, budget_mib=CHUNK_BYTES / 2**20)

    d = mf.data_spectra(x)
    dprod = d.to(torch.complex64)[:, None, :, None, :]
    prods = [dprod * kernels[s : s + chunk] for s in range(0, n_t, chunk)]

    def floor() -> None:
        for q in prods:
            torch.fft.irfft(q, n=mf.length, dim=-1)

    floor_s = _time(floor, args.repeats)
    add("floor: irfft of the new path's products", floor_s, chunk=chunk)
    old_prods = [d[:, None] * u[s : s + 64].conj() for s in range(0, n_t, 64)]

    def old_floor() -> None:
        for q in old_prods:
            torch.fft.ifft(q, n=mf.length, dim=-1)

    add("old path's complex ifft alone", _time(old_floor, args.repeats), chunk=64)

    sweep = []
    for mib in args.budgets:
        c = template_chunk(b, 3, mf.frequencies.size, mf.length, budget=int(mib * 2**20))

        def run(c=c) -> None:
            with torch.no_grad():
                for s in range(0, n_t, c):
                    snr_quadratures(d, kernels[s : s + c], mf.length)

        sec = _time(run, args.repeats)
        sweep.append(dict(budget_mib=mib, chunk=c, seconds=sec, per_s=pairs / sec))

    new, old = mf.filter(x, u, None, kernels=kernels), reference_filter(mf, x, u, 64)
    equal = dict(
        max_rel_snr=float(np.max(np.abs(new["snr"] - old["snr"]) / old["snr"])),
        same_template=bool(np.array_equal(new["template"], old["template"])),
        same_time=bool(np.array_equal(new["time"], old["time"])),
    )
    old_s = rows[0]["seconds"]
    print(
        f"{b} samples x {n_t} templates, 3 detectors x 4096 lags, {args.threads} threads, "
        f"torch {torch.__version__}"
    )
    print(f"{'path':42s} {'ms':>9s} {'template-samples/s':>19s} {'x old':>7s} {'x floor':>8s}")
    for r in rows:
        r["speedup_vs_old"] = old_s / r["seconds"]
        r["ratio_to_floor"] = r["seconds"] / floor_s
        print(
            f"{r['what']:42s} {1e3 * r['seconds']:9.1f} {r['per_s']:19.0f} "
            f"{r['speedup_vs_old']:7.2f} {r['ratio_to_floor']:8.2f}"
        )
    print(f"kernels of the bank, once: {1e3 * t_kernels:.1f} ms")
    print("\ncorrelation only (product + irfft) per chunk budget:")
    for s in sweep:
        print(
            f"  {s['budget_mib']:6.0f} MiB  {s['chunk']:4d} templates/chunk  "
            f"{s['per_s']:10.0f} template-samples/s"
        )
    ratio = new_s / floor_s
    eta = ISSUE_TEMPLATES * ISSUE_SAMPLES / (pairs / new_s)
    eta_old = ISSUE_TEMPLATES * ISSUE_SAMPLES / (pairs / old_s)
    print(
        f"\nnew / floor = {ratio:.2f} (goal <= {GOAL_FLOOR_RATIO:g}); new = "
        f"{old_s / new_s:.1f}x old; {ISSUE_TEMPLATES} templates x {ISSUE_SAMPLES} samples: "
        f"{eta / 60:.1f} min (old {eta_old / 60:.1f} min) at these rates"
    )
    print(f"new vs old: {equal}")
    result = dict(
        batch=b,
        templates=n_t,
        threads=args.threads,
        repeats=args.repeats,
        torch=torch.__version__,
        machine=platform.processor() or platform.machine(),
        rows=rows,
        kernels_seconds=t_kernels,
        chunk_sweep=sweep,
        new_over_floor=ratio,
        goal=f"new <= {GOAL_FLOOR_RATIO:g} x floor",
        goal_met=ratio <= GOAL_FLOOR_RATIO,
        minutes_570x2000=dict(new=eta / 60, old=eta_old / 60),
        equal=equal,
    )
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
