"""``g2res pretrain``: train a recipe's model on signals injected on the fly, then fine-tune.

Stage 1 (this module): every batch is made on the device by
:class:`g2res.transforms.inject.InjectionBatches` from a waveform pool and the cache's
noise (``injection:`` in the recipe), for ``injection.steps`` optimiser steps (AdamW,
linear warm-up then cosine decay, gradient clipping, AMP on CUDA). A stratified
``injection.val_fraction`` of the labelled training samples is held out: it measures the
ROC AUC every ``injection.eval_every`` steps, and its noise rows are never injected into.

Stage 2: fine-tuning starts from these weights through ``train.init_from=RUN/best.pt``
(:func:`load_pretrained`; meant for every fold of ``g2res cv-train``). The same loop
also trains with ``injection.mode: mix`` (a fraction ``mix_fraction`` of each batch
injected, the rest labelled training samples outside the held-out set) and ``off``
(labelled samples only), from ``train.init_from`` when set; :func:`mix_injections`
mixes injected samples into any other loop's batches.

Run directory: ``config.yaml``, ``best.pt`` (best validation AUC), ``last.pt`` (resume),
``history.csv`` (step, lr, train_loss, val_loss, val_auc, seconds), ``metrics.json``,
``tb/`` (TensorBoard events, :mod:`g2res.train.tracking`; ``train/*`` and
``time/injection_share`` at steps 1.., ``val/*`` at steps eval_every, 2 eval_every..).
A batch is a pure function of (seed, step), so ``--resume`` reproduces an uninterrupted
run on CPU.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from g2res.config import Config
from g2res.models.checkpoint import load_pretrained, save_checkpoint
from g2res.train.injection import injection_source, mix_injections
from g2res.train.optim import lr_lambda
from g2res.train.tracking import open_writer, total_grad_norm
from g2res.utils import atomic_path, check_output_dir, resolve_device, seed_everything, write_json

__all__ = ["pretrain", "injection_source", "load_pretrained", "mix_injections", "holdout_split"]

BEST, LAST, HISTORY, METRICS = "best.pt", "last.pt", "history.csv", "metrics.json"


def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, val_rows): a stratified, seeded split of the labelled samples."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    if fraction <= 0:
        return rows, rows[:0]
    if not fraction < 1:
        raise ValueError(f"injection.val_fraction={fraction}: need a fraction in [0, 1)")
    train, val = train_test_split(rows, test_size=fraction, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(val)


class _LabelledBatches:
    """Random labelled training samples of the cache; batch ``step`` from (seed, step)."""

    def __init__(self, cache, rows, seed: int, device):
        self.array, self.labels = cache.array("train"), cache.labels("train").astype(np.float32)
        self.rows, self.seed, self.device = np.asarray(rows), int(seed), device

    def batch(self, step: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(6, step)))
        idx = np.sort(rng.choice(self.rows, size=n, replace=n > self.rows.size))
        x = torch.from_numpy(np.asarray(self.array[idx], dtype=np.float32)).to(self.device)
        return x, torch.from_numpy(self.labels[idx]).to(self.device)


def _augmenter(cfg: Config, sample_rate: float, device, cache=None):
    """The recipe's training augmentations, or the identity when there are none.

    ``cache``: the cache whose PSD and conditioning ``augment.glitch`` renders glitches with.
    """
    try:
        from g2res.transforms.augment import Augment
    except ImportError:
        settings = ("max_shift", "mask_width", "glitch_snr", "glitch_kinds")
        probs = [v for k, v in vars(cfg.augment).items() if k not in settings]
        if any(probs):
            raise
        return lambda x, generator=None: x
    return Augment(cfg.augment, sample_rate, cache=cache).to(device).train()


@torch.no_grad()
def _evaluate(model, cache, rows, batch_size, device, amp) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    if len(rows) == 0:
        return math.nan, math.nan
    array, labels = cache.array("train"), cache.labels("train").astype(np.float32)
    model.eval()
    logits = []
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        x = torch.from_numpy(np.asarray(array[idx], dtype=np.float32)).to(device)
        with torch.autocast(device.type, enabled=amp):
            logits.append(model(x).float().reshape(-1).cpu())
    model.train()
    z = torch.cat(logits)
    y = torch.from_numpy(labels[rows])
    loss = float(nn.functional.binary_cross_entropy_with_logits(z, y))
    auc = float(roc_auc_score(y.numpy(), z.numpy())) if 0 < y.sum() < len(y) else math.nan
    return loss, auc


def pretrain(
    cfg: Config,
    out_dir: str | os.PathLike,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    model: nn.Module | None = None,
) -> dict:
    """Pretrain ``cfg.model`` on injected batches into ``out_dir``; returns metrics.json.

    ``model``: train this module instead of ``build_model(cfg.model)`` (library use; it
    maps (batch, 3, time) to logits (batch, 1) and may offer ``param_groups``).
    """
    from tqdm.auto import tqdm

    from g2res.data.cache import Cache

    inj, tc = cfg.injection, cfg.train
    if inj.steps < 1 or tc.batch_size < 1 or inj.eval_every < 1:
        raise ValueError("injection.steps, injection.eval_every and train.batch_size must be >= 1")
    out = Path(out_dir)
    if not (resume and (out / LAST).is_file()):
        check_output_dir(out, force=force or resume, what="pretrain run")
        resume = False
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    amp = bool(tc.amp and device.type == "cuda")
    seed_everything(cfg.seed)
    cache = Cache(cfg.cache) if cfg.cache else None
    if cache is None:
        raise ValueError("the recipe has no cache: set cache=CACHE_DIR (g2res preprocess)")
    train_rows, val_rows = holdout_split(cache.labels("train"), inj.val_fraction, cfg.seed)
    if inj.mode not in ("pretrain", "mix", "off"):
        raise ValueError(f"injection.mode={inj.mode!r}: use off, pretrain or mix")
    # mode pretrain: every sample injected; mix: a fraction mix_fraction of each batch,
    # the rest labelled training samples (fraction 0: plain training by the same loop).
    n_inject = {"pretrain": tc.batch_size, "off": 0}.get(
        inj.mode, round(inj.mix_fraction * tc.batch_size)
    )
    if not 0 <= inj.mix_fraction <= 1:
        raise ValueError(f"injection.mix_fraction={inj.mix_fraction}: need a fraction in [0, 1]")
    source = injection_source(cfg, train_rows, device) if n_inject else None
    labelled = _LabelledBatches(cache, train_rows, cfg.seed, device)
    n_time = int(cache.manifest.get("n_time", 4096))
    if model is None:
        from g2res.models import build_model

        model = build_model(cfg.model, sample_rate=cache.sample_rate, n_time=n_time,
                            conditioning=cache.conditioning)  # fmt: skip
    from g2res.transforms.bank import attach_bank  # bank front-end: templates beside the run

    attach_bank(model, cache, cfg.model.bank, cfg.seed, out, progress=progress)
    model = model.to(device)
    if amp and getattr(model, "is_2d", False) and tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    augment = _augmenter(cfg, cache.sample_rate, device, cache)
    lr = inj.lr if inj.lr is not None else tc.lr
    backbone_lr = tc.backbone_lr if inj.lr is None else None
    if hasattr(model, "param_groups"):
        groups = model.param_groups(lr, backbone_lr, tc.weight_decay)
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=tc.weight_decay)
    warmup = min(max(1, inj.steps // 20), 1000)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(inj.steps, warmup))
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    loss_fn = nn.BCEWithLogitsLoss()

    step, history, best = 0, [], -math.inf
    if tc.init_from and not resume:
        load_pretrained(model, tc.init_from)
    if resume:
        ckpt = torch.load(out / LAST, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, best = int(ckpt["step"]), float(ckpt["best_auc"])
        history = pd.read_csv(out / HISTORY).to_dict("records") if (out / HISTORY).is_file() else []
    cfg.save(out / "config.yaml")
    # RUN/tb/ (g2res[tracking]); on resume, the first step logged again is step + 1
    board = open_writer(out / "tb", purge_step=step + 1 if step else None)

    t_inject = t_model = 0.0
    first_step = step
    losses: list[float] = []
    model.train()
    bar = tqdm(total=inj.steps, initial=step, desc="pretrain", unit="step",
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    started = time.perf_counter()
    while step < inj.steps:
        t0 = time.perf_counter()
        parts = []
        if n_inject:
            parts.append(source.batch(step, n_inject)[:2])
        if n_inject < tc.batch_size:
            parts.append(labelled.batch(step, tc.batch_size - n_inject))
        x = torch.cat([part[0] for part in parts])
        y = torch.cat([part[1] for part in parts])
        gen = torch.Generator()  # augmentations draw on the CPU: same on any device
        gen.manual_seed(
            int(np.random.SeedSequence(cfg.seed, spawn_key=(5, step)).generate_state(1)[0])
        )
        x = augment(x, generator=gen)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        with torch.autocast(device.type, enabled=amp):
            loss = loss_fn(model(x).float().reshape(-1), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        grad_norm = None
        if tc.grad_clip:
            scaler.unscale_(optimizer)
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        elif board is not None:
            grad_norm = total_grad_norm(model.parameters(), scaler)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_inject += t1 - t0
        t_model += time.perf_counter() - t1
        losses.append(float(loss.detach()))
        step += 1
        if board is not None:  # x: steps done, as in history.csv
            t2 = time.perf_counter()
            board.scalar("train/loss", losses[-1], step)
            board.scalar("train/lr", optimizer.param_groups[0]["lr"], step)
            board.scalar("train/grad_norm", grad_norm, step)
            board.scalar("time/injection_share", (t1 - t0) / max(t2 - t0, 1e-12), step)
        bar.update()
        if step % inj.eval_every == 0 or step == inj.steps:
            val_loss, val_auc = _evaluate(
                model, cache, val_rows, tc.eval_batch_size, device, amp
            )  # fmt: skip
            history.append(dict(
                step=step, lr=scheduler.get_last_lr()[0], train_loss=float(np.mean(losses)),
                val_loss=val_loss, val_auc=val_auc, seconds=time.perf_counter() - started,
            ))  # fmt: skip
            losses = []
            if board is not None:
                board.scalar("val/loss", val_loss, step)
                board.scalar("val/auc", val_auc, step)
                board.flush()
            bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", auc=f"{val_auc:.3f}")
            state = dict(
                model=model.state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), step=step, epoch=step, fold=None,
                config=cfg.to_dict(), metrics=dict(val_auc=val_auc, val_loss=val_loss),
                sample_rate=float(cache.sample_rate), n_time=n_time,
                conditioning=cache.conditioning,
            )  # fmt: skip
            improved = not math.isnan(val_auc) and val_auc > best
            if improved or (math.isnan(val_auc) and step == inj.steps):
                best = val_auc if improved else best
                save_checkpoint(out / BEST, state)
            state["best_auc"] = best
            with atomic_path(out / HISTORY) as tmp:
                pd.DataFrame(history).to_csv(tmp, index=False)
            save_checkpoint(out / LAST, state)
    bar.close()
    if board is not None:
        board.close()
    if not (out / BEST).is_file():  # resumed after the last step, or no validation set
        save_checkpoint(out / BEST, torch.load(out / LAST, map_location="cpu", weights_only=True))
    metrics = dict(
        steps=inj.steps,
        batch_size=tc.batch_size,
        best_val_auc=best if best > -math.inf else None,
        final_val_auc=history[-1]["val_auc"] if history else None,
        n_val=int(len(val_rows)),
        n_noise_rows=int(getattr(getattr(source, "noise", None), "indices", np.empty(0)).size),
        mode=inj.mode,
        injected_per_batch=n_inject,
        init_from=tc.init_from,
        device=str(device),
        seconds_injection=t_inject,
        seconds_model=t_model,
        injection_share=t_inject / max(t_inject + t_model, 1e-12),
        timed_steps=inj.steps - first_step,
    )
    write_json(out / METRICS, metrics)
    return metrics
