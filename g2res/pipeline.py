"""``g2res run``: simulate -> preprocess -> cv-train -> submit -> evaluate from one recipe.

Work directory layout (``--out WORKDIR``)::

    config.yaml        the resolved recipe; a re-run must use the same one
    data/              simulated data set (skipped when the recipe sets data_dir)
    cache/             preprocessed cache (skipped when the recipe sets cache)
    runs/<name>/       cv-train output (folds, checkpoints, oof.csv, metrics.json)
    submission.csv     the blended test predictions
    evaluation.json    test metrics, when the data set has truth/test_labels.csv

Each step that is already complete is skipped and an interrupted one resumes, so
running the same command again continues where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from g2res.config import Config, load_config
from g2res.data.layout import INJECTIONS, SAMPLE_SUBMISSION, TEST_LABELS, TRAIN_LABELS
from g2res.utils import write_json

CONFIG_FILE = "config.yaml"
SUBMISSION = "submission.csv"
EVALUATION = "evaluation.json"


def _check_workdir(cfg: Config, workdir: Path, force: bool) -> None:
    """Refuse a directory that is not this recipe's work directory (unless ``force``)."""
    saved = workdir / CONFIG_FILE
    if saved.is_file():
        if force or load_config(saved).to_dict() == cfg.to_dict():
            return
        raise FileExistsError(
            f"{workdir} holds a run of another recipe ({saved} differs); "
            "use another --out, or --force to start over"
        )
    if workdir.is_dir() and any(workdir.iterdir()) and not force:
        raise FileExistsError(
            f"{workdir} is not empty and is not a g2res work directory (no {CONFIG_FILE}); "
            "use another --out, or --force"
        )


def _data_complete(data: Path) -> bool:
    # simulate writes the CSV files last, after every sample file.
    return (data / TRAIN_LABELS).is_file() and (data / SAMPLE_SUBMISSION).is_file()


def _cache_complete(cache: Path) -> bool:
    from g2res.data.cache import Cache, CacheError

    try:
        c = Cache(cache)
    except CacheError:
        return False
    # preprocess keeps its unfinished work in .partial/ until the very end.
    finished = not (cache / ".partial").exists()
    return finished and c.has_split("train") and c.has_split("test")


def _run_complete(run: Path) -> bool:
    return (run / "oof.csv").is_file() and (run / "metrics.json").is_file()


def run_pipeline(
    cfg: Config,
    workdir: str | os.PathLike,
    *,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Run every step of ``cfg`` in ``workdir``; return ``{"workdir", "steps", "evaluation"}``.

    ``steps`` maps each step to ``"done"`` (ran now) or ``"skipped"`` (already
    complete) with its seconds. ``evaluation`` is the result of
    :func:`g2res.ensemble.evaluate.evaluate` (None without truth labels).
    ``force`` starts every step over.
    """
    log = log or (lambda _msg: None)
    workdir = Path(workdir)
    external_data = bool(cfg.data_dir)
    data = Path(cfg.data_dir) if cfg.data_dir else workdir / "data"
    cache = Path(cfg.cache) if cfg.cache else workdir / "cache"
    cfg = cfg.replace({"data_dir": str(data), "cache": str(cache)})
    _check_workdir(cfg, workdir, force)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg.save(workdir / CONFIG_FILE)
    run_dir = workdir / "runs" / cfg.name
    steps: dict[str, dict] = {}
    changed = force

    def step(name: str, complete: bool, fn: Callable[[], object]) -> None:
        nonlocal changed
        if complete and not changed:
            log(f"[{name}] already complete, skipped")
            steps[name] = {"status": "skipped", "seconds": 0.0}
            return
        log(f"[{name}] ...")
        t0 = time.perf_counter()
        fn()
        changed = True  # every later step must follow
        seconds = time.perf_counter() - t0
        steps[name] = {"status": "done", "seconds": round(seconds, 1)}
        log(f"[{name}] done in {seconds:.0f} s")

    if external_data:
        steps["simulate"] = {"status": "external", "seconds": 0.0}
    else:
        from g2res.data.simulate import simulate

        step(
            "simulate",
            _data_complete(data),
            lambda: simulate(
                data, config=cfg.simulate, seed=cfg.seed, force=True, progress=progress
            ),
        )

    from g2res.data.preprocess import preprocess

    step(
        "preprocess",
        _cache_complete(cache),
        lambda: preprocess(
            data,
            cache,
            config=cfg.preprocess,
            seed=cfg.seed,
            device=cfg.device,
            force=changed,
            progress=progress,
        ),
    )

    from g2res.train.cv import cv_train

    step(
        "cv-train",
        _run_complete(run_dir),
        lambda: cv_train(cfg, run_dir, resume=not changed, force=changed, progress=progress),
    )

    from g2res.ensemble.submit import submit

    submission = workdir / SUBMISSION
    step(
        "submit",
        submission.is_file(),
        lambda: submit(
            [run_dir],
            cache,
            submission,
            tta=cfg.submit.tta,
            method=cfg.submit.blend,
            batch_size=cfg.submit.batch_size,
            device=cfg.device,
            force=True,
            progress=progress,
            log=log,
        ),
    )

    evaluation = None
    labels = data / TEST_LABELS
    if labels.is_file():
        from g2res.ensemble.evaluate import evaluate

        injections = data / INJECTIONS
        evaluation = evaluate(
            submission,
            labels,
            injections=injections if injections.is_file() else None,
            plots=workdir / "plots",
        )
        write_json(workdir / EVALUATION, {"steps": steps, **evaluation})
        log(f"test AUC {evaluation['metrics']['auc']:.4f} on {evaluation['n']} samples")
    else:
        log(f"no {labels}: submission written, nothing to score it against")
    return {"workdir": str(workdir), "steps": steps, "evaluation": evaluation}
