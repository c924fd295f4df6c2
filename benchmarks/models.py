"""Benchmark the model family on CPU: parameters, samples/s, front-end share.

For each recipe (front-end + backbone + linear head, full width) at batch 32 on
(3, 4096) whitened strain: parameters, forward samples/s (eval, no grad),
forward+backward samples/s (train mode, one AdamW step excluded), the front-end's own
samples/s and the share of the forward time spent in it. Goal: CQT under 25 % of a
ResNet18's forward time. The matched-filter bank front-end (``bank<N>``: N IMRPhenomD
templates, 7-50 Msun, whitened by the design PSD like a cache; top-4 |z| series,
max-pooled by 4, as pipelines/bank-resnet1d.yaml) is timed beside it. Prints a table
and writes benchmarks/results/models.json.

    python benchmarks/models.py --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

from g2res.config import ModelConfig
from g2res.models import build_model
from g2res.utils import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds as _time  # noqa: E402

GOAL_FRONTEND_SHARE = 0.25

RECIPES = {
    "cqt+resnet16": ({"name": "cqt"}, {"name": "resnet16"}),
    "cqt+resnet18": ({"name": "cqt"}, {"name": "resnet18"}),
    "cqt+resnet34": ({"name": "cqt"}, {"name": "resnet34"}),
    "cqt+resnet50": ({"name": "cqt"}, {"name": "resnet50"}),
    "cqt+resnet101": ({"name": "cqt"}, {"name": "resnet101"}),
    "cqt+resnet152": ({"name": "cqt"}, {"name": "resnet152"}),
    "stft+resnet18": ({"name": "stft"}, {"name": "resnet18"}),
    "cqt+timm:efficientnet_b0": ({"name": "cqt"}, {"name": "timm:efficientnet_b0"}),
    "identity+resnet1d_18": ({"name": "identity"}, {"name": "resnet1d_18"}),
    "identity+resnet1d_34": ({"name": "identity"}, {"name": "resnet1d_34"}),
    "identity+resnet1d_50": ({"name": "identity"}, {"name": "resnet1d_50"}),
    "bank64+resnet1d_18": (
        {"name": "bank", "k": 4, "pool": 4, "templates": 64},
        {"name": "resnet1d_18", "stem_kernel": 15},
    ),
    "bank256+resnet1d_18": (
        {"name": "bank", "k": 4, "pool": 4, "templates": 256},
        {"name": "resnet1d_18", "stem_kernel": 15},
    ),
}


def design_bank(n: int):
    """``n`` templates (masses uniform in 7-50 Msun, seed 0) whitened like a cache of
    design-PSD noise: what ``g2res cv-train`` places, without the placement time."""
    import numpy as np

    from g2res.baselines.bank import template_waveform
    from g2res.data.noise import design_psd, rfft_frequencies
    from g2res.transforms.bank import whiten_templates

    m = np.random.default_rng(0).uniform(7.0, 50.0, size=(n, 2))
    waves = np.stack([template_waveform(max(a, b), min(a, b)) for a, b in m])
    freqs = rfft_frequencies()
    cond = {"fmin": 20.0, "fmax": 500.0, "filter_order": 8, "sample_rate": 2048.0,
            "n_time": 4096}  # fmt: skip
    return whiten_templates(waves, freqs, design_psd(freqs), cond)


def bench(frontend: dict, backbone: dict, batch: int, repeats: int) -> dict:
    frontend = dict(frontend)
    n_templates = frontend.pop("templates", None)
    model = build_model(ModelConfig(frontend=frontend, backbone=backbone))
    if n_templates:
        model.frontend.set_bank(design_bank(n_templates))
    x = torch.randn(batch, 3, 4096, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        t_front = _time(lambda: model.frontend(x), repeats)
        t_fwd = _time(lambda: model(x), repeats)
        image = tuple(model.frontend(x[:1]).shape[1:])
    model.train()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x).mean().backward()

    t_step = _time(step, repeats)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "input_shape": list(image),
        "forward_samples_per_s": batch / t_fwd,
        "train_samples_per_s": batch / t_step,
        "frontend_ms": t_front * 1e3,
        "frontend_samples_per_s": batch / t_front,
        "forward_ms": t_fwd * 1e3,
        "frontend_share": t_front / t_fwd,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--only", nargs="*", help="recipe names (default: all)")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "models.json"), help="JSON"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = args.only or list(RECIPES)
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {list(RECIPES)}")

    results = {}
    header = (
        f"{'recipe':26s} {'params':>9s} {'input':>14s} {'fwd/s':>8s} {'train/s':>8s} "
        f"{'front/s':>8s} {'front%':>7s}"
    )
    print(header)
    print("-" * len(header))
    for name in names:
        r = bench(*RECIPES[name], batch=args.batch_size, repeats=args.repeats)
        results[name] = r
        shape = "x".join(map(str, r["input_shape"]))
        print(
            f"{name:26s} {r['params'] / 1e6:8.2f}M {shape:>14s} {r['forward_samples_per_s']:8.1f} "
            f"{r['train_samples_per_s']:8.1f} {r['frontend_samples_per_s']:8.1f} "
            f"{100 * r['frontend_share']:6.1f}%",
            flush=True,
        )
    summary = {
        "batch_size": args.batch_size,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "goal": f"CQT front-end < {GOAL_FRONTEND_SHARE:.0%} of cqt+resnet18 forward time",
        "results": results,
    }
    if "cqt+resnet18" in results:
        share = results["cqt+resnet18"]["frontend_share"]
        summary["goal_met"] = share < GOAL_FRONTEND_SHARE
        print(f"\nCQT share of ResNet18 forward: {share:.1%} (goal < {GOAL_FRONTEND_SHARE:.0%})")
    for name in (n for n in results if n.startswith("bank")):
        r = results[name]
        print(
            f"{name}: bank front-end {r['frontend_samples_per_s']:.0f} samples/s, "
            f"{r['frontend_share']:.1%} of the forward pass"
        )
    write_json(args.out, summary)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
