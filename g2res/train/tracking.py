"""TensorBoard event files of a run (optional extra ``g2res[tracking]``).

``cv-train`` writes ``RUN/tb/fold<k>/`` and ``pretrain`` writes ``RUN/tb/``, so
``tensorboard --logdir runs`` shows every run and fold. Scalars (``step``: the number of
optimiser steps done, from 1, as pretrain's history.csv counts them; ``epoch``: the number
of finished epochs, from 1):

=========================  =======  ==============================================
tag                        x        value
=========================  =======  ==============================================
``train/loss``             step     the batch's training loss
``train/lr``               step     learning rate of the first parameter group
``train/grad_norm``        step     total L2 norm of all gradients before clipping
                                    (unscaled under mixed precision)
``epoch/train_loss``       epoch    mean training loss of the epoch (cv-train)
``epoch/val_loss``         epoch    validation loss (cv-train)
``epoch/val_auc``          epoch    validation ROC AUC (cv-train)
``epoch/lr``               epoch    learning rate at the end of the epoch (cv-train)
``val/loss``, ``val/auc``  steps    held-out loss and ROC AUC, at the evaluation
                           done     steps (pretrain: eval_every, 2 eval_every, ...)
``time/injection_share``   step     share of the step's wall time spent making the
                                    injected batch (pretrain)
=========================  =======  ==============================================

Without ``tensorboard`` installed a one-line notice is printed once per process and
nothing else changes. A failure of the logger (full disk, broken install) is reported in
one line and turns logging off; it never stops training. Under DDP only rank 0 writes.
On ``--resume`` the events of the interrupted run after the resumed step are dropped
(``purge_step``: the first step the resumed run logs), so no curve is doubled.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import torch

__all__ = ["ScalarWriter", "TensorBoardCallback", "open_writer", "total_grad_norm"]

_NOTICE_SHOWN = False


def _notice(text: str) -> None:
    global _NOTICE_SHOWN
    if not _NOTICE_SHOWN:
        _NOTICE_SHOWN = True
        print(text, file=sys.stderr, flush=True)


class ScalarWriter:
    """A ``SummaryWriter`` for ``log_dir`` whose every call is guarded: the first error is
    reported in one line and the writer turns itself off. The folder and the event file
    are created on the first scalar. ``purge_step``: see the module docstring."""

    def __init__(self, log_dir: str | os.PathLike, purge_step: int | None = None):
        self.log_dir, self.purge_step = Path(log_dir), purge_step
        self._writer = None
        self.enabled = True

    def _fail(self, exc: Exception) -> None:
        self.enabled = False
        print(f"TensorBoard logging to {self.log_dir} off: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)  # fmt: skip
        self.close()

    def scalar(self, tag: str, value, step: int) -> None:
        """Add ``value`` (a number or 0-d tensor; NaN and None are skipped) at ``step``."""
        if not self.enabled or value is None:
            return
        try:
            value = float(value)
            if math.isnan(value):
                return
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.log_dir), purge_step=self.purge_step)
            self._writer.add_scalar(tag, value, int(step))
        except Exception as exc:  # a logging failure never stops training
            self._fail(exc)

    def flush(self) -> None:
        if self._writer is not None:
            try:
                self._writer.flush()
            except Exception as exc:
                self._fail(exc)

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # closing after a failure: nothing more to report
                pass


def open_writer(log_dir: str | os.PathLike, purge_step: int | None = None) -> ScalarWriter | None:
    """A :class:`ScalarWriter` for ``log_dir``, or None (after a one-line notice, once per
    process) when ``tensorboard`` is not installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception:  # ImportError, or a broken install
        _notice("g2res: no TensorBoard logs: tensorboard is not installed "
                "(pip install g2res[tracking])")  # fmt: skip
        return None
    return ScalarWriter(log_dir, purge_step)


def total_grad_norm(parameters, scaler=None) -> torch.Tensor | None:
    """Total L2 norm of the gradients of ``parameters`` (what ``clip_grad_norm_`` returns),
    divided by the GradScaler's scale when mixed precision is on; None without gradients."""
    grads = [p.grad.detach().float() for p in parameters if p.grad is not None]
    if not grads:
        return None
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if scaler is not None and scaler.is_enabled():
        norm = norm / scaler.get_scale()
    return norm


class TensorBoardCallback:
    """:class:`g2res.train.loop.FoldTrainer` callback writing one fold's scalars (module
    docstring) to ``log_dir``.

    The gradient norm is the one ``clip_grad_norm_`` computed when the loop clips
    (``trainer.grad_norm``); without clipping it is computed here after the backward pass.
    Writes only on the main process (``trainer.main``)."""

    def __init__(self, log_dir: str | os.PathLike):
        self.log_dir = Path(log_dir)
        self.writer: ScalarWriter | None = None
        self._norm = None
        self._started = False

    def _open(self, trainer, epoch: int) -> ScalarWriter | None:
        if not self._started:
            self._started = True
            if getattr(trainer, "main", True):
                purge = epoch * trainer.steps_per_epoch + 1 if epoch else None
                self.writer = open_writer(self.log_dir, purge_step=purge)
        return self.writer if self.writer is not None and self.writer.enabled else None

    def after_backward(self, trainer, epoch: int, step: int) -> None:
        w = self._open(trainer, epoch)
        if w is None or trainer.cfg.train.grad_clip:
            return
        try:
            self._norm = total_grad_norm(trainer.model.parameters(), trainer.scaler)
        except Exception as exc:  # a logging failure never stops training
            w._fail(exc)

    def after_step(self, trainer, epoch: int, step: int, loss: float) -> None:
        w = self._open(trainer, epoch)
        if w is None:
            return
        g = epoch * trainer.steps_per_epoch + step + 1  # steps done
        clip = trainer.cfg.train.grad_clip
        norm = getattr(trainer, "grad_norm", None) if clip else self._norm
        w.scalar("train/loss", loss, g)
        w.scalar("train/lr", trainer.optimizer.param_groups[0]["lr"], g)
        w.scalar("train/grad_norm", norm, g)
        self._norm = None

    def epoch_end(self, trainer, row: dict) -> None:
        e = int(row["epoch"])
        w = self._open(trainer, e - 1)
        if w is None:
            return
        for key in ("train_loss", "val_loss", "val_auc", "lr"):
            w.scalar(f"epoch/{key}", row.get(key), e)
        w.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
