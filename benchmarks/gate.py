"""What the autogate (g2res.signal.gate) gates: noise, chirps and glitches, per kind.

Simulates (one seed) a clean data set of ``--n-noise`` noise and ``--n-signal`` BBH samples
(network SNR ``--snr``), preprocesses it like the cache, and for each threshold reports:

- false gates: the share of noise samples (and of detector series) with any gate;
- chirps: the share of signal samples with any gate, and the largest network SNR gated;
- glitches (``augment.glitch``'s generator, conditioned like the cache, added to one
  detector of the noise samples), per kind and SNR range: the share gated and the median
  and 90th percentile of the residual SNR (norm of what is left of the glitch over its norm).

    python benchmarks/gate.py --workdir /tmp/g2res-gate          # ~3 min on one core
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sensitivity_table as st  # noqa: E402
import sensitivity as sens  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--n-noise", type=int, default=1000)
    p.add_argument("--n-signal", type=int, default=500)
    p.add_argument("--snr", type=float, nargs=2, default=(4.0, 16.0))
    p.add_argument("--thresholds", type=float, nargs="+", default=[5.0, 5.5, 6.0, 7.0, 8.0])
    p.add_argument("--window", type=float, default=None, help="s; default GATE_WINDOW")
    p.add_argument("--taper", type=float, default=None, help="s; default GATE_TAPER")
    p.add_argument("--glitch-snr", type=float, nargs="+", default=[8.0, 20.0, 50.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "gate.json"))
    return p.parse_args(argv)  # fmt: skip


def weights(x, threshold, window, taper, rate):
    """The gate's weights (n, d, t) of ``x`` (n, d, t) (what g2res.signal.gate multiplies)."""
    import torch

    from g2res.signal.gate import gate_weight, noise_level

    x = torch.as_tensor(x)
    med, sigma = noise_level(x)
    exc = ((x - med).abs() > threshold * sigma) & (sigma > 0)
    return gate_weight(exc, window * rate, taper * rate).numpy()


def main(argv=None) -> dict:
    import torch

    from g2res.config import PreprocessConfig, SimulateConfig
    from g2res.data.cache import Cache
    from g2res.signal.gate import GATE_TAPER, GATE_WINDOW
    from g2res.transforms.augment import GlitchInjector
    from g2res.utils import write_json

    args = parse_args(argv)
    window = GATE_WINDOW if args.window is None else args.window
    taper = GATE_TAPER if args.taper is None else args.taper
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    timer = st.Timer(work / "timings.json")
    n = args.n_noise + args.n_signal
    sim = SimulateConfig(n_train=n, n_test=8, snr=tuple(args.snr),
                         signal_fraction=args.n_signal / n)  # fmt: skip
    _, cache_dir = sens.prepare_data(work, sim, PreprocessConfig(), args.seed, timer)
    cache = Cache(cache_dir)
    x = np.asarray(cache.array("train"), dtype=np.float32)
    y = cache.labels("train")
    import pandas as pd

    truth = pd.read_csv(cache.data_dir / "truth" / "injections.csv", dtype={"id": str})
    snr_of = dict(zip(truth.id, truth.snr_network))
    ids = cache.ids("train")
    snr = np.array([snr_of.get(i, 0.0) for i in ids])
    noise, signal = x[y == 0], x[y == 1]
    rate = cache.sample_rate
    rng = np.random.default_rng(args.seed)
    glitches = {}
    for kind in ("blip", "sine_gaussian", "scattered_light"):
        for lo, hi in zip(args.glitch_snr[:-1], args.glitch_snr[1:]):
            inj = GlitchInjector.from_cache(cache, [kind], (lo, hi))
            det = rng.integers(3, size=len(noise))
            g = torch.cat([inj(det[s : s + 100], rng) for s in range(0, len(noise), 100)])
            glitches[(kind, lo, hi)] = (g.numpy(), det)
    rows = []
    for thr in args.thresholds:
        w0 = weights(noise, thr, window, taper, rate)
        ws = weights(signal, thr, window, taper, rate)
        gated_s = (ws < 1).any(axis=(1, 2))
        row = {
            "threshold": thr, "window": window, "taper": taper,
            "false_gate_samples": float((w0 < 1).any(axis=(1, 2)).mean()),
            "false_gate_series": float((w0 < 1).any(axis=2).mean()),
            "n_noise": len(noise),
            "chirps_gated": float(gated_s.mean()), "n_signal": len(signal),
            "largest_snr_gated": float(snr[y == 1][gated_s].max()) if gated_s.any() else None,
            "glitches": {},
        }  # fmt: skip
        for (kind, lo, hi), (g, det) in glitches.items():
            w = weights(noise + g, thr, window, taper, rate)
            rows_ = np.arange(len(det))
            gd = g[rows_, det]
            resid = np.linalg.norm(gd * w[rows_, det], axis=-1) / np.linalg.norm(gd, axis=-1)
            row["glitches"][f"{kind} {lo:g}-{hi:g}"] = {
                "gated": float((w[rows_, det] < 1).any(axis=-1).mean()),
                "residual_median": float(np.median(resid)),
                "residual_p90": float(np.quantile(resid, 0.9)),
                "residual_below_0.1": float((resid < 0.1).mean()),
            }
        rows.append(row)
        print(f"threshold {thr:g} sigma, window {window:g} s, taper {taper:g} s: false gates "
              f"{row['false_gate_samples']:.4f} of {len(noise)} noise samples, chirps gated "
              f"{row['chirps_gated']:.4f} of {len(signal)} (largest SNR "
              f"{row['largest_snr_gated']})")  # fmt: skip
        for k, v in row["glitches"].items():
            print(f"  {k:24s} gated {v['gated']:.3f}  residual median "
                  f"{v['residual_median']:.3f}  p90 {v['residual_p90']:.3f}  "
                  f"<0.1: {v['residual_below_0.1']:.3f}")  # fmt: skip
    result = {"benchmark": "gate", "seed": args.seed, "snr": list(args.snr), "rows": rows}
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
