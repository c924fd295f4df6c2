"""Training one fold: batches from the memory-mapped cache, AdamW, warm-up + cosine or
one-cycle schedule, gradient clipping, AMP and ``channels_last`` on CUDA, EMA of weights,
early stopping on validation AUC, and exact resume.

Exact resume: the order of the samples, the augmentations, the injected batches and the
global torch RNG (dropout) of epoch ``e`` are pure functions of (seed, fold, e); DataLoader
workers only read. ``last.pt`` saved after every epoch therefore holds everything that
differs between an interrupted and an uninterrupted run (weights, optimiser, scheduler,
scaler, EMA, history), and ``--resume`` reaches the same weights on the CPU.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from g2res.config import Config
from g2res.models.checkpoint import (
    is_fold_checkpoint,
    load_checkpoint,
    load_pretrained,
    save_checkpoint,
)
from g2res.train.batches import (
    _AUGMENT,
    _INIT,
    _INJECT,
    _TORCH,
    BatchReader,
    _loader,
    _MemmapOpener,
    default_workers,
    derive_seed,
    epoch_batches,
    predict_logits,
)
from g2res.train.distributed import Dist
from g2res.train.injection import injection_source, mix_injections
from g2res.train.optim import ema_update, lr_lambda, make_optimizer, make_scheduler
from g2res.train.tasks import Task, regression_targets, task_model_config
from g2res.utils import atomic_path

__all__ = [
    "derive_seed",
    "lr_lambda",
    "make_optimizer",
    "make_scheduler",
    "epoch_batches",
    "BatchReader",
    "predict_logits",
    "FoldResult",
    "FoldTrainer",
]

BEST, LAST, HISTORY, FOLD_OOF = "best.pt", "last.pt", "history.csv", "oof.csv"


@dataclass
class FoldResult:
    """Outcome of one fold: best validation AUC, its epoch, the validation rows and
    their predicted probabilities at that epoch, and the per-epoch history."""

    fold: int
    best_auc: float
    best_epoch: int
    epochs_run: int
    val_rows: np.ndarray
    val_prob: np.ndarray
    history: pd.DataFrame = field(repr=False)
    stopped_early: bool = False
    seconds: float = 0.0


class FoldTrainer:
    """Train ``cfg.model`` on ``train_rows`` of the cache and validate on ``val_rows``.

    Writes ``out_dir/{best.pt,last.pt,history.csv,oof.csv}``. ``log`` receives one line
    per epoch and per fold. ``in_memory``: read the cache into memory first (benchmarks).
    ``targets`` (n_train,): training targets in [0, 1] per cache row (default: the cache's
    labels; soft pseudo-labels for pseudo-labelled rows); validation always uses the
    cache's labels. ``callbacks``: objects with optional methods
    ``after_backward(trainer, epoch, step)`` (gradients are there) and
    ``epoch_end(trainer, row)`` (``row``: the epoch's history entry, may be extended),
    ``after_step(trainer, epoch, step, loss)`` (after the optimiser step; ``grad_norm``:
    the total norm before clipping when clipping) and ``close()`` (the fold is done).
    """

    def __init__(
        self,
        cfg: Config,
        cache,
        train_rows,
        val_rows,
        fold: int,
        out_dir: str | os.PathLike,
        device: torch.device,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        in_memory: bool = False,
        targets: np.ndarray | None = None,
        callbacks: tuple = (),
        dist=None,
    ):
        self.cfg, self.cache, self.fold = cfg, cache, int(fold)
        self.train_rows = np.sort(np.asarray(train_rows, dtype=np.int64))
        self.val_rows = np.sort(np.asarray(val_rows, dtype=np.int64))
        self.out = Path(out_dir)
        self.device, self.progress = device, progress
        self.log = log or (lambda _msg: None)
        self.ids = np.asarray(cache.ids("train"))
        self.labels = cache.labels("train").astype(np.float32)
        self.targets = self.labels if targets is None else np.asarray(targets, np.float32)
        if (
            self.targets.shape != self.labels.shape
            or not np.isfinite(self.targets[self.train_rows]).all()
        ):
            raise ValueError("targets: one finite value in [0, 1] per training row is needed")
        self.task = Task(cfg)
        self.reg = regression_targets(cfg, cache, self.ids) if self.task.names else None
        if self.reg is not None:
            if not self.task.detect:  # nothing to learn from rows without any target
                self.train_rows = self.train_rows[np.isfinite(self.reg[self.train_rows]).any(1)]
            self.task.fit(self.reg[self.train_rows])
        self.train_y = self.task.targets(self.targets, self.reg)
        self.callbacks = tuple(callbacks)
        self.grad_norm: torch.Tensor | None = None
        # Data-parallel: each process takes every world_size-th sample of a global batch.
        self.dist = dist if dist is not None else Dist()
        self.main = self.dist.is_main
        self.progress = progress and self.main
        path = cache.path / "train.npy"
        if in_memory:
            self.array = np.ascontiguousarray(cache.array("train"), dtype=np.float32)
        else:
            self.array = _MemmapOpener(path)
        self.n_time = int(cache.array("train").shape[-1])
        tc = cfg.train
        if tc.epochs < 1 or tc.batch_size < 2 or tc.eval_batch_size < 1:
            raise ValueError("train.epochs >= 1, train.batch_size >= 2 and eval_batch_size >= 1")
        self.amp = bool(tc.amp and device.type == "cuda")
        self.workers = 0 if in_memory else default_workers(tc.num_workers)

    # --------------------------------------------------------------------- building
    def _build(self):
        from g2res.models import build_model
        from g2res.transforms.augment import Augment

        cfg, tc = self.cfg, self.cfg.train
        # Initial weights depend on (seed, fold) only: not on the folds trained before.
        torch.manual_seed(derive_seed(cfg.seed, _INIT, self.fold))
        model_cfg, init = task_model_config(cfg), tc.init_from
        whole = bool(init) and is_fold_checkpoint(init)
        if init and not whole:  # backbone weights (timm or torchvision style, local file)
            model_cfg = dataclasses.replace(model_cfg, pretrained=init)
        model = build_model(model_cfg, sample_rate=self.cache.sample_rate, n_time=self.n_time,
                            conditioning=self.cache.conditioning)  # fmt: skip
        if whole:
            load_pretrained(model, init)
        from g2res.transforms.bank import attach_bank  # bank front-end: the run's templates

        attach_bank(model, self.cache, cfg.model.bank, cfg.seed, self.out.parent,
                    init if whole else None, write=self.main, progress=self.progress)  # fmt: skip
        model = model.to(self.device)
        if self.device.type == "cuda" and tc.channels_last and getattr(model, "is_2d", False):
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.net = model  # what the training step calls: the DDP wrapper when distributed
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(model, device_ids=ids)
        self.min_batch = 2 * self.dist.world_size
        if tc.batch_size < self.min_batch:
            raise ValueError(f"train.batch_size={tc.batch_size}: at least 2 per process")
        self.steps_per_epoch = len(self._batches(0))
        self.optimizer = make_optimizer(model, tc)
        self.scheduler = make_scheduler(self.optimizer, tc, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.ema = None
        if tc.ema:
            from torch.optim.swa_utils import AveragedModel

            if not 0 < tc.ema < 1:
                raise ValueError(f"train.ema={tc.ema}: an EMA decay is in (0, 1), e.g. 0.999")
            self.ema = AveragedModel(model, multi_avg_fn=ema_update(tc.ema), use_buffers=True)
        self.augment = Augment(cfg.augment, self.cache.sample_rate, cache=self.cache)
        self.augment = self.augment.to(self.device).train()
        self.injections = None
        inj = cfg.injection
        if inj.mode == "mix" and inj.mix_fraction > 0:
            if cfg.task != "classification":
                raise ValueError("injection.mode=mix trains detection only (task: classification)")
            # Only this fold's training rows lend their noise: validation stays unseen.
            self.injections = injection_source(
                cfg, self.train_rows, self.device, seed=derive_seed(cfg.seed, _INJECT, self.fold)
            )

    def _eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def _state(self, epoch: int, **extra) -> dict:
        return dict(
            model=self._eval_model().state_dict(),
            train_model=self.model.state_dict() if self.ema is not None else None,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            ema=self.ema.state_dict() if self.ema is not None else None,
            epoch=epoch,
            fold=self.fold,
            config=self.cfg.to_dict(),
            sample_rate=float(self.cache.sample_rate),
            n_time=self.n_time,
            conditioning=self.cache.conditioning,
            task=self.task.state(),
            **extra,
        )

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["train_model"] or ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            if ckpt.get("ema") is None:
                raise ValueError(f"{self.out / LAST} was written without EMA; train.ema changed")
            self.ema.load_state_dict(ckpt["ema"])

    # --------------------------------------------------------------------- running
    def _batches(self, epoch: int) -> list[np.ndarray]:
        tc, d = self.cfg.train, self.dist
        b = epoch_batches(self.train_rows, tc.batch_size, self.cfg.seed, self.fold, epoch,
                          min_size=self.min_batch)  # fmt: skip
        return [x[d.rank :: d.world_size] for x in b] if d.enabled else b

    def _train_epoch(self, epoch: int) -> dict:
        from tqdm.auto import tqdm

        cfg, tc = self.cfg, self.cfg.train
        torch.manual_seed(derive_seed(cfg.seed, _TORCH, self.fold, epoch))  # dropout etc.
        key = (self.fold, epoch) + ((self.dist.rank,) if self.dist.enabled else ())
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, _AUGMENT, *key))
        batches = self._batches(epoch)
        loader = _loader(BatchReader(self.array, self.train_y, batches), self.workers, self.device)
        self.model.train()
        bar = tqdm(loader, total=len(batches), leave=False, dynamic_ncols=True, unit="batch",
                   desc=f"fold {self.fold} epoch {epoch + 1}/{tc.epochs}",
                   disable=not self.progress)  # fmt: skip
        total_loss, seen, t_data, t_step = 0.0, 0, 0.0, 0.0
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(bar):
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if self.injections is not None:
                step = epoch * self.steps_per_epoch + i
                x, y = mix_injections(x, y[:, 0], self.injections, step,
                                      cfg.injection.mix_fraction)  # fmt: skip
                y = y.reshape(-1, 1)
            x = self.augment(x, generator=gen)
            t1 = time.perf_counter()
            t_data += t1 - t0
            with torch.autocast(self.device.type, enabled=self.amp):
                loss = self.task.loss(self.net(x).float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            for cb in self.callbacks:
                if hasattr(cb, "after_backward"):
                    cb.after_backward(self, epoch, i)
            if tc.grad_clip:  # the total norm before clipping, for the callbacks
                self.scaler.unscale_(self.optimizer)
                self.grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            value = float(loss.detach())
            for cb in self.callbacks:
                if hasattr(cb, "after_step"):
                    cb.after_step(self, epoch, i, value)
            total_loss += value * x.shape[0]
            seen += x.shape[0]
            bar.set_postfix(loss=f"{total_loss / seen:.4f}")
            t0 = time.perf_counter()
            t_step += t0 - t1
        bar.close()
        total_loss, seen = (float(v) for v in self.dist.sum([total_loss, seen]))
        return {
            "train_loss": total_loss / max(seen, 1),
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "train_samples": int(seen),
            "data_seconds": t_data,
            "step_seconds": t_step,
        }

    def _validate(self) -> tuple[np.ndarray, dict]:
        d = self.dist
        rows = self.val_rows[d.rank :: d.world_size]
        logits = predict_logits(self._eval_model(), self.array, rows,
                                self.cfg.train.eval_batch_size, self.device, self.amp,
                                self.workers)  # fmt: skip
        if d.enabled:  # the whole fold's predictions on every rank, in val_rows order
            parts = d.all_gather(logits)
            logits = np.empty((self.val_rows.size, self.task.n_outputs), np.float32)
            for r, part in enumerate(parts):
                logits[r :: d.world_size] = part
        reg = self.reg[self.val_rows] if self.reg is not None else None
        return logits, self.task.evaluate(logits, self.labels[self.val_rows], reg)

    def _write_oof(self, out: np.ndarray) -> None:
        if not self.main:
            return
        cols = self.task.predictions(out)
        df = pd.DataFrame({
            "id": self.ids[self.val_rows], "target": self.labels[self.val_rows].astype(int),
            "prediction": cols.pop("prediction"), "fold": self.fold,
        })  # fmt: skip
        for k, name in enumerate(self.task.names):
            df[name] = self.reg[self.val_rows, k]
            df[f"{name}_pred"] = cols[f"{name}_pred"]
        with atomic_path(self.out / FOLD_OOF) as tmp:
            df.to_csv(tmp, index=False)

    def load_result(self, ckpt: dict, history: list[dict]) -> FoldResult:
        """The result of a finished fold from its checkpoint and fold oof.csv."""
        oof = pd.read_csv(self.out / FOLD_OOF, dtype={"id": str})
        if not np.array_equal(oof["id"].to_numpy(), self.ids[self.val_rows]):
            raise ValueError(f"{self.out / FOLD_OOF} does not hold this fold's validation ids")
        return FoldResult(
            fold=self.fold,
            best_auc=float(ckpt["best_auc"]),
            best_epoch=int(ckpt["best_epoch"]),
            epochs_run=int(ckpt["epoch"]),
            val_rows=self.val_rows,
            val_prob=oof["prediction"].to_numpy(np.float64),
            history=pd.DataFrame(history),
            stopped_early=bool(ckpt.get("stopped_early", False)),
            seconds=float(sum(h["seconds"] for h in history)),
        )

    def fit(self, resume: bool = False) -> FoldResult:
        """Train (or continue with ``resume``) and return the fold's result."""
        tc = self.cfg.train
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self._build()
        epoch, history = 0, []
        best_auc, best_epoch, bad_epochs = -math.inf, 0, 0
        if resume and (self.out / LAST).is_file():
            ckpt = load_checkpoint(self.out / LAST, self.device)
            if ckpt.get("finished"):
                return self.load_result(ckpt, ckpt["history"])
            self._restore(ckpt)
            epoch, history = int(ckpt["epoch"]), list(ckpt["history"])
            best_auc, best_epoch = float(ckpt["best_auc"]), int(ckpt["best_epoch"])
            bad_epochs = int(ckpt["bad_epochs"])
            if self.main:
                self.log(f"fold {self.fold}: resuming after epoch {epoch}")
        stopped = False
        while epoch < tc.epochs and not stopped:
            t0 = time.perf_counter()
            row = self._train_epoch(epoch)
            logits, val = self._validate()
            score = val.pop("score")
            epoch += 1
            row = {"epoch": epoch, **row, **val, "seconds": time.perf_counter() - t0}
            for cb in self.callbacks:
                if hasattr(cb, "epoch_end"):
                    cb.epoch_end(self, row)
            # Plain Python values: checkpoints are read back with weights_only=True.
            row = {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
            history.append(row)
            improved = not math.isnan(score) and score > best_auc
            if improved or best_epoch == 0:
                best_auc = score if improved else best_auc
                best_epoch, bad_epochs = epoch, 0
                self._write_oof(logits)
                self._save(BEST, self._state(epoch, metrics=val))
            else:
                bad_epochs += 1
            stopped = tc.patience is not None and bad_epochs >= tc.patience
            if self.main:
                with atomic_path(self.out / HISTORY) as tmp:
                    pd.DataFrame(history).to_csv(tmp, index=False)
            finished = stopped or epoch >= tc.epochs
            self._save(LAST, self._state(
                epoch, history=history, best_auc=best_auc, best_epoch=best_epoch,
                bad_epochs=bad_epochs, finished=finished, stopped_early=stopped,
                metrics=val,
            ))  # fmt: skip
            mark = " *" if best_epoch == epoch else ""
            shown = " ".join(f"{k} {v:.4f}" for k, v in val.items() if "_r2_" not in k)
            self._epoch_line(f"fold {self.fold} epoch {epoch}/{tc.epochs}: loss "
                             f"{row['train_loss']:.4f} {shown}{mark} "
                             f"({row['seconds']:.0f} s)")  # fmt: skip
        if stopped and self.main:
            self.log(f"fold {self.fold}: no better validation AUC for {tc.patience} epochs")
        for cb in self.callbacks:
            if hasattr(cb, "close"):
                cb.close()
        self.dist.barrier()  # rank 0's files are complete before anyone reads them
        return self.load_result(load_checkpoint(self.out / LAST), history)

    def _save(self, name: str, state: dict) -> None:
        if self.main:
            save_checkpoint(self.out / name, state)

    def _epoch_line(self, text: str) -> None:
        if not self.main:
            return
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(text)
        else:
            self.log(text)
