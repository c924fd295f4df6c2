"""Is on-the-fly injection the bottleneck? Time to build an injected batch vs a model step.

For a batch of B samples on one device: building the batch (pool read, projection, shift,
conditioning, SNR scaling, cached or Gaussian noise) against one training step
(forward + backward + AdamW) of the recipe models. Goal: injection under ~25% of a model
step for the 1D ResNet (so it never dominates training); prints a table and writes
benchmarks/results/inject.json.

    python benchmarks/inject.py --pool POOL --cache CACHE [--batch-size 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from g2res.config import ModelConfig
from g2res.transforms.inject import InjectionBatches, SNRSchedule

RESULTS = Path(__file__).parent / "results" / "inject.json"
sys.path.insert(0, str(Path(__file__).parent))
MODELS = {
    "resnet1d_18": ModelConfig(
        frontend={"name": "identity"}, backbone={"name": "resnet1d_18"}, head={"name": "linear"}
    ),
    "cqt+resnet18": ModelConfig(
        frontend={"name": "cqt"}, backbone={"name": "resnet18"}, head={"name": "linear"}
    ),
}


def _time(fn, repeats: int, device) -> float:
    fn()  # warm-up (allocations, FFT plans)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / repeats


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pool", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", nargs="*", default=list(MODELS))
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    b = args.batch_size
    rows = []
    step = [0]
    for noise in ("cache", "gaussian"):
        source = InjectionBatches(
            args.pool, args.cache, noise=noise, rate=0.5, snr=SNRSchedule((4, 20)), device=device
        )

        def make(source=source):
            step[0] += 1
            source.batch(step[0], b)

        seconds = _time(make, args.repeats, device)
        rows.append(dict(what=f"injected batch ({noise} noise)", seconds=seconds))
    inject_s = rows[0]["seconds"]

    try:
        from g2res.models import build_model
    except ImportError:  # registry not in this checkout: the benchmark's reference CNN
        from sensitivity_injection import reference_cnn

        print("g2res.models.build_model not available: timing the reference 1D CNN")
        build_model, args.models = None, ["reference_cnn_w16"]
    for name in args.models:
        model = reference_cnn(16) if build_model is None else build_model(MODELS[name])
        model = model.to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randn(b, 3, 4096, device=device)
        y = (torch.rand(b, device=device) < 0.5).float()

        def train_step(model=model, opt=opt, x=x, y=y):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(x).reshape(-1), y
            )  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()

        seconds = _time(train_step, max(2, args.repeats // 2), device)
        rows.append(dict(what=f"train step {name}", seconds=seconds))
    for r in rows:
        r["samples_per_s"] = b / r["seconds"]
        r["ratio_to_injection"] = r["seconds"] / inject_s
    print(f"batch {b}, device {device}, {args.threads} threads")
    print(f"{'step':40s} {'ms/batch':>10s} {'samples/s':>10s} {'x injection':>12s}")
    for r in rows:
        print(
            f"{r['what']:40s} {1e3 * r['seconds']:10.1f} {r['samples_per_s']:10.0f} "
            f"{r['ratio_to_injection']:12.1f}"
        )
    result = dict(
        batch_size=b,
        device=str(device),
        threads=args.threads,
        machine=platform.processor() or platform.machine(),
        rows=rows,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
