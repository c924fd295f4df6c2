"""Stage 3 of ``g2res preprocess``: the streaming pass (read + check + condition +
write, batch by batch; resumable after each batch)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from tqdm.auto import tqdm

from g2res import N_SAMPLES
from g2res.data.layout import relative_path
from g2res.data.preprocess.reading import CHUNK, _read_into
from g2res.data.preprocess.writer import _create_array, _npy_header, _save_state
from g2res.data.validate import EXPECTED_SHAPE
from g2res.utils import save_npy


class _Interrupt(KeyboardInterrupt):
    """Raised by the test hook ``_interrupt_after`` to simulate Ctrl-C."""


class _Run:
    """The streaming pass: read + check + condition + write, batch by batch."""

    def __init__(self, data_dir, partial, config, skip_bad, csv_problems, state, bar, budget):
        self.data_dir, self.partial, self.config = data_dir, partial, config
        self.skip_bad, self.csv_problems, self.state = skip_bad, csv_problems, state
        self.bar, self.budget = bar, budget

    def conditioning(self) -> bool:
        """False once a bad row or file makes the run fail anyway: only check the rest."""
        return self.skip_bad or not (self.csv_problems or self.state["problems"])

    def stream(self, split, ids, conditioner, pool) -> None:
        state, partial, bs = self.state, self.partial, self.config.batch_size
        n = len(ids)
        path, crc_path = partial / f"{split}.npy", partial / f"{split}_crc.npy"
        done = state["done"][split]
        if done == 0 or not path.is_file() or not crc_path.is_file():
            done = state["done"][split] = state["written"][split] = 0
            _create_array(path, n, self.config.dtype)
            save_npy(crc_path, np.full(n, -1, np.int64))
        row_bytes = np.dtype(self.config.dtype).itemsize * 3 * N_SAMPLES
        offset = len(_npy_header((n, *EXPECTED_SHAPE), self.config.dtype))
        crc_mm = np.load(crc_path, mmap_mode="r+", allow_pickle=False)
        out_dtype = getattr(torch, self.config.dtype)
        on_cpu = conditioner is not None and conditioner.transfer.device.type == "cpu"
        self.conditioner = conditioner  # None once the run is bound to fail
        fd = os.open(path, os.O_RDWR)

        def load(part, c, buf, out):
            """Worker: read rows ``c:c+CHUNK`` of a batch into ``buf``, condition into ``out``."""
            stop = min(c + CHUNK, len(part))
            found = []
            for k in range(c, stop):
                problem, crc = _read_into(self.data_dir / relative_path(split, part[k]), buf, k)
                if problem is not None:
                    buf[k] = 0  # dropped later; zeros keep the FFT of the chunk finite
                found.append((problem, crc))
            cond = self.conditioner
            if out is not None and cond is not None:
                with torch.no_grad():
                    y = cond(torch.from_numpy(buf[c:stop]))
                torch.from_numpy(out[c:stop]).copy_(y)  # rounds to the cache dtype
            return found

        def submit(start):
            part = ids[start : start + bs]
            buf = np.empty((len(part), *EXPECTED_SHAPE), np.float32)
            out = np.empty(buf.shape, self.config.dtype) if on_cpu else None
            tasks = [pool.submit(load, part, c, buf, out) for c in range(0, len(part), CHUNK)]
            return start, buf, out, tasks

        def write(start, y, written, crcs, problems):
            view = memoryview(y).cast("B") if y is not None else b""
            pos = offset + written * row_bytes
            while view:  # pwrite may write less than asked
                k = os.pwrite(fd, view, pos)
                view, pos = view[k:], pos + k
            crc_mm[start : start + len(crcs)] = crcs
            crc_mm.flush()
            os.fsync(fd)  # data on disk before the state says so
            state["problems"] += problems
            state["done"][split] = start + len(crcs)
            state["written"][split] = written + (0 if y is None else len(y))
            _save_state(partial, state)

        starts = list(range(done, n, bs))
        pending = tasks = None
        try:
            with (
                tqdm(total=n, initial=done, desc=f"preprocessing {split}", **self.bar) as pbar,
                ThreadPoolExecutor(1) as writer,
            ):
                # The next batch is queued before this one is collected, so the workers
                # never wait for the main thread.
                pending = submit(starts[0]) if starts else None
                written = state["written"][split]
                jobs = []
                for k in range(len(starts)):
                    start, buf, out, tasks = pending
                    pending = submit(starts[k + 1]) if k + 1 < len(starts) else None
                    found = [f for task in tasks for f in task.result()]
                    problems = [
                        [relative_path(split, ids[start + j]).as_posix(), ids[start + j], split, p]
                        for j, (p, _) in enumerate(found)
                        if p is not None
                    ]
                    crcs = np.array([c for _, c in found], np.int64)
                    y = None
                    if problems and not self.skip_bad:
                        conditioner = self.conditioner = None  # the run fails: stop conditioning
                    if conditioner is not None and self.conditioning():
                        good = np.array([p is None for p, _ in found]) if problems else slice(None)
                        if on_cpu:
                            y = out[good]
                        else:
                            y = self._condition(buf[good], conditioner, out_dtype, bs)
                    jobs.append(writer.submit(write, start, y, written, crcs, problems))
                    written += 0 if y is None else len(y)
                    n_rows = len(crcs)
                    jobs[-1].add_done_callback(lambda _, m=n_rows: pbar.update(m))
                    if len(jobs) > 2:  # bound memory; surface writer errors
                        jobs.pop(0).result()
                    if self.budget is not None:
                        self.budget -= 1
                        if self.budget <= 0:
                            for job in jobs:
                                job.result()
                            raise _Interrupt(f"test hook: stopped after a batch of {split}")
                for job in jobs:
                    job.result()
        finally:
            # On an interruption, drop the chunks still queued (a no-op on finished ones).
            for task in (tasks or []) + (pending[3] if pending else []):
                task.cancel()
            os.close(fd)

    @staticmethod
    def _condition(buf: np.ndarray, conditioner, out_dtype, chunk) -> np.ndarray:
        """Whiten + bandpass ``(b, 3, time)`` float32 on the device; returns the cache dtype."""
        device = conditioner.transfer.device
        out = torch.empty(buf.shape, dtype=out_dtype)
        x = torch.from_numpy(buf)
        with torch.no_grad():
            for c in range(0, len(x), chunk):
                out[c : c + chunk] = conditioner(x[c : c + chunk].to(device)).to(out_dtype).cpu()
        return out.numpy()
