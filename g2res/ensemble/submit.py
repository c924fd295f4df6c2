"""``g2res submit``: fold models x TTA -> per-run mean -> blend or stack -> validated CSV."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from g2res.data.cache import Cache
from g2res.data.layout import SAMPLE_SUBMISSION
from g2res.ensemble import blend as blending
from g2res.ensemble import prediction_cache as pcache
from g2res.ensemble import stack as stacking
from g2res.ensemble.predict import ModelLoader, find_run, predict_run_folds, tta_transforms
from g2res.ensemble.submission import make_submission, read_sample_submission, write_submission
from g2res.utils import resolve_device


def _run_names(paths: Sequence[Path]) -> list[str]:
    names = [p.name for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    return names


def find_sample_submission(cache: Cache, override: str | os.PathLike | None = None) -> Path:
    """``override``, else ``sample_submission.csv`` in the data directory the cache came from."""
    if override is not None:
        return Path(override)
    if cache.data_dir is None:
        raise FileNotFoundError(
            f"cache {cache.path} does not record its data directory; pass --sample-submission FILE"
        )
    path = cache.data_dir / SAMPLE_SUBMISSION
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} (from the data directory recorded in cache {cache.path}) does not exist; "
            "pass --sample-submission FILE"
        )
    return path


def submit(
    runs: Sequence[str | os.PathLike],
    cache: str | os.PathLike | Cache | None,
    out: str | os.PathLike,
    *,
    sample_submission: str | os.PathLike | None = None,
    tta: Sequence[str] | None = None,
    method: str = "mean",
    weights: Sequence[float] | None = None,
    fit_weights: bool = False,
    fill_missing: float | None = None,
    stack: str | None = None,
    stat_train: Mapping[str, str | os.PathLike] | None = None,
    stat_test: Mapping[str, str | os.PathLike] | None = None,
    stack_fold_scale: bool = True,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
    load_model: ModelLoader | None = None,
    cache_predictions: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Predict the cache's test split with every run and write the blended submission.

    Each run contributes the mean probability of its fold models (each averaged
    over the identity and the ``tta`` transforms; None: each run's own recipe's
    ``submit.tta``, ``[]``: none). Runs are combined by ``method``
    (``mean`` or ``rank``) with ``weights`` (default equal), or with weights fitted
    on the runs' OOF predictions when ``fit_weights``, or by a stacker when ``stack``
    (``logistic`` or ``hgb``, :mod:`g2res.ensemble.stack`): fitted on the runs'
    OOF predictions and the ``stat_train`` statistics (``{name: csv}``), applied to
    the runs' test predictions and the ``stat_test`` statistics, cross-validated over
    the runs' folds and saved as ``stack_path(out)`` (``seed``: the ``hgb`` seed); with
    ``stack_fold_scale`` (default) each run's logits are standardised per fold model
    first (:mod:`g2res.ensemble.stack`). ``cache`` None: the cache
    named in the first run's ``config.yaml``. With ``cache_predictions`` each run's test
    probabilities are kept in ``RUN/predictions/`` and reused by the next submit of the
    same data, checkpoints and TTA (:mod:`g2res.ensemble.prediction_cache`). Every check
    (output file, ids, OOF alignment) runs before the slow prediction. Returns a summary dict:
    ``out``, ``runs``, ``tta`` (the transforms, None when the runs used different
    ones), ``tta_per_run``, ``weights``, ``oof`` (per-run and blend OOF AUC when every
    run has ``oof.csv``), ``stack`` (the stacker's inputs and cross-validated
    metrics, or None), ``reused_predictions`` (per run), ``n_test``, ``n_filled``.
    """
    log = log or (lambda _msg: None)
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; pass --force to overwrite it")
    if not runs:
        raise ValueError("no runs given")
    if method not in blending.METHODS:
        raise ValueError(f"unknown blend {method!r}; choose from {list(blending.METHODS)}")
    if weights is not None and fit_weights:
        raise ValueError("give either weights or fit_weights, not both")
    found = [find_run(r) for r in runs]
    recipe = found[0].config() if found[0].config_path.is_file() else None
    names = _run_names([r.path for r in found])
    run_tta = _tta_per_run(found, tta, log)
    for t in run_tta:
        tta_transforms(t)  # unknown names fail now, not after loading models
    if weights is not None:
        weights = blending._check_weights(weights, len(found))

    if cache is None:
        cache = recipe.cache if recipe is not None else None
        if cache is None:
            raise ValueError(f"no --cache given and {found[0].config_path} names none")
    cache = cache if isinstance(cache, Cache) else Cache(cache)
    sample_path = find_sample_submission(cache, sample_submission)
    sample = read_sample_submission(sample_path)
    ids = cache.ids("test")
    array = cache.array("test")
    if len(ids) != len(array):
        raise RuntimeError(f"cache {cache.path}: {len(ids)} test ids but {len(array)} samples")
    make_submission(ids, np.zeros(len(ids)), sample, fill_missing)  # id checks, before predicting

    oof = stacker = None
    have_oof = all(r.oof_path.is_file() for r in found)
    if stack is not None:
        if weights is not None or fit_weights:
            raise ValueError(
                "--stack fits its own combination of the runs: drop --weights/--fit-weights"
            )
        if not have_oof:
            lacking = [str(r.oof_path) for r in found if not r.oof_path.is_file()]
            raise FileNotFoundError(f"--stack needs out-of-fold predictions: no {lacking[0]}")
        stack_out = stacking.stack_path(out)
        if stack_out.exists() and not force:
            raise FileExistsError(f"{stack_out} already exists; pass --force to overwrite it")
        stacker = stacking.fit_stack(
            [r.oof_path for r in found], names, stack, stat_train, stat_test,
            test_ids=ids, sample_ids=sample["id"].astype(str).tolist(), seed=seed,
            fold_scale=stack_fold_scale,
        )  # fmt: skip
        log(stacking.format_report(stacker.cv, stack))
    elif stat_train or stat_test:
        raise ValueError("statistics (--stat-train/--stat-test) are inputs of --stack only")
    elif fit_weights and not have_oof:
        lacking = [str(r.oof_path) for r in found if not r.oof_path.is_file()]
        raise FileNotFoundError(f"--fit-weights needs out-of-fold predictions: no {lacking[0]}")
    elif have_oof:
        frames = [blending.read_oof(r.oof_path) for r in found]
        _, y, p_oof = blending.align_oof(frames, names)
        if fit_weights:
            weights = blending.fit_weights(y, p_oof, method)
        oof = blending.oof_report(y, p_oof, names, method, weights)

    device = resolve_device(device)
    fold_preds, reused = _predict_runs(
        found, run_tta, ids, array, batch_size, device, progress, load_model,
        cache_predictions, log,
    )  # fmt: skip
    preds = [p.mean(axis=0) for p in fold_preds]
    if stacker is not None:
        final = stacker.predict_folds(
            [dict(zip(r.checkpoints, p)) for r, p in zip(found, fold_preds)]
        )
    else:
        final = blending.blend(np.stack(preds, axis=1), method, weights)
    df = make_submission(ids, final, sample, fill_missing)
    write_submission(df, out, sample, force=force)
    if stacker is not None:
        stacker.save(stack_out, force=force)
        log(f"wrote {stack_out} (the fitted {stack} stacker)")
    per_run_tta = [[name for name, _ in tta_transforms(t)] for t in run_tta]
    w = blending._check_weights(np.ones(len(found)) if weights is None else weights, len(found))
    summary = {
        "out": str(out),
        "runs": dict(zip(names, [str(r.path) for r in found])),
        "method": method if stacker is None else f"stack:{stack}",
        "tta": per_run_tta[0] if all(t == per_run_tta[0] for t in per_run_tta) else None,
        "tta_per_run": dict(zip(names, per_run_tta)),
        "weights": dict(zip(names, w.tolist())) if stacker is None else None,
        "oof": oof,
        "stack": None if stacker is None else {"path": str(stack_out), **stacker.to_json()},
        "reused_predictions": dict(zip(names, reused)),
        "n_test": int(len(df)),
        "n_filled": int(len(df) - len(ids)),
    }
    if oof is not None:
        for name in names:
            log(f"OOF AUC {name}: {oof['runs'][name]:.4f} (weight {summary['weights'][name]:.2f})")
        what = "fitted-weight" if fit_weights else method
        log(f"OOF AUC of the {what} blend: {oof['blend']:.4f}" + (" (in-sample)" * fit_weights))
    log(f"wrote {out} ({len(df)} rows)")
    return summary


def fold_predictions(
    run: str | os.PathLike,
    cache: str | os.PathLike | Cache,
    tta: Sequence[str] | None = None,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = True,
    load_model: ModelLoader | None = None,
    cache_predictions: bool = True,
    log: Callable[[str], None] | None = print,
) -> tuple[list[str], dict[int, np.ndarray]]:
    """The cache's test ids and ``{fold: (n,)}`` probabilities of each fold model of
    ``run`` (TTA as in :func:`submit`; kept in and reused from ``RUN/predictions/``): what
    a fold-scaled saved stacker (:func:`g2res.ensemble.stack.apply_saved_stack`) takes."""
    log = log or (lambda _msg: None)
    found = find_run(run)
    cache = cache if isinstance(cache, Cache) else Cache(cache)
    ids = cache.ids("test")
    (t,) = _tta_per_run([found], tta, log)
    (probs,), _ = _predict_runs(
        [found], [t], ids, cache.array("test"), batch_size, resolve_device(device), progress,
        load_model, cache_predictions, log,
    )  # fmt: skip
    return ids, dict(zip(found.checkpoints, probs))


def _predict_runs(
    found, run_tta, ids, array, batch_size, device, progress, load_model, keep, log
) -> tuple[list[np.ndarray], list[bool]]:
    """Each run's fold models' test probabilities ``(folds, n)``, from ``RUN/predictions/``
    when ``keep`` and a prediction of the same data, checkpoints, TTA and device is stored
    there (else predicted, and stored when ``keep``); and whether each was reused."""
    digest = pcache.data_digest(ids, array) if keep else None
    preds, reused = [], []
    for run, t in zip(found, run_tta):
        path = None
        if digest is not None:
            tta_names = [name for name, _ in tta_transforms(t)]
            key = pcache.prediction_key(run.checkpoints, digest, tta_names, device.type, load_model)
            path = pcache.cache_path(run.path, key)
            probs = pcache.load_predictions(path, ids)
            if probs is not None:
                log(f"reusing the test predictions of {run.name} ({path})")
                preds.append(probs)
                reused.append(True)
                continue
        log(f"predicting {len(ids)} test samples with {run.name} ({len(run.checkpoints)} folds)")
        probs = predict_run_folds(run, array, t, batch_size, device, progress, load_model)
        if path is not None:
            try:
                pcache.save_predictions(path, ids, probs)
            except OSError as exc:  # a read-only run directory: predict again next time
                log(f"could not keep the test predictions of {run.name} in {path}: {exc}")
        preds.append(probs)
        reused.append(False)
    return preds, reused


def _tta_per_run(found, tta, log) -> list[list[str] | None]:
    """The test-time transforms of each run: ``tta`` for all when given, else each run's
    own recipe's ``submit.tta`` (a bank front-end and a CQT model want different ones)."""
    if tta is not None:
        return [list(tta)] * len(found)
    out = []
    for run in found:
        recipe = run.config() if run.config_path.is_file() else None
        t = list(recipe.submit.tta) if recipe is not None and recipe.submit.tta else None
        if t:
            log(f"TTA from the recipe of {run.path} (submit.tta): {', '.join(t)}")
        out.append(t)
    return out
