"""One typed configuration for a g2res recipe.

A recipe (``pipelines/*.yaml``) is loaded into :class:`Config`; any field can be
overridden from the command line with dotted ``key=value`` pairs, e.g.
``train.lr=3e-4 model.backbone.name=resnet34 augment.sign_flip=0.5``.

Values (in a recipe file or an override) are converted by the type of the field
they set: a ``str`` field keeps the text as written (``injection.mode=off`` is the
string ``"off"``, not YAML 1.1's false), a ``bool`` field takes true/false, on/off,
yes/no or 1/0 (any case), numbers take ``3e-4`` or ``1000``, lists and tuples are
YAML flow sequences (``cv.fold=[0,2]``; one value is a list of one), and ``null``
(or nothing: ``train.ema=``) clears an optional field. A value that does not fit is
an error naming the field, the value and the type expected.

Sections whose fields are free-form (``model.frontend``, ``model.backbone``,
``model.head``) are plain dicts: their ``name`` picks a registered component and
the other keys are passed to it as keyword arguments; having no field types, their
values are what YAML makes of them (``residual: off`` is false, ``eps: 1e-5`` a number).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from g2res import TAPER_ALPHA
from g2res.config.values import ConfigError, _build, _load_yaml, _structure, _Text


@dataclass
class SimulateConfig:
    """``g2res simulate``: a synthetic data set in the G2Net layout."""

    n_train: int = 2000  # training samples
    n_test: int = 1000  # test samples
    snr: tuple[float, float] = (4.0, 16.0)  # network optimal SNR range of injections
    signal_fraction: float = 0.5  # fraction of samples with target 1
    # fraction of the test split with target 1; None: signal_fraction (a low-FAP test set
    # wants many noise samples: 5,000 noise + 2,000 signals is 2/7)
    test_signal_fraction: float | None = None
    approximant: str = "IMRPhenomXPHM"  # lalsimulation approximant
    psd: str | None = None  # PSD file (frequency + one PSD column per detector); None: design
    merger_window: tuple[float, float] = (1.5, 1.9)  # s, merger time range in the 2-s window
    mass_range: tuple[float, float] = (7.0, 50.0)  # solar masses, detector-frame component masses
    workers: int = 1  # processes
    # Non-Gaussian noise (g2res.data.glitches); the defaults leave the data as without them.
    glitch_rate: float = 0.0  # expected glitches per sample (Poisson), each in one detector
    glitch_snr: tuple[float, float] = (8.0, 50.0)  # per-detector optimal SNR range of glitches
    glitch_kinds: list[str] = field(
        default_factory=lambda: ["sine_gaussian", "blip", "scattered_light"]
    )
    psd_drift: float = 0.0  # X: PSD scale in [1-X, 1+X] and a tilt of up to 1+X at 20/500 Hz


@dataclass
class PreprocessConfig:
    """``g2res preprocess``: PSD estimation, whitening, bandpass, packed cache."""

    psd_source: str = "noise"  # noise (label-0 train) | all (all train) | path to a PSD file
    psd_segment: float = 0.5  # s, Welch segment length
    psd_overlap: float = 0.5  # fraction of a segment
    psd_window: str = "hann"
    psd_average: str = "median"  # median | mean
    # Samples averaged for the PSD (seeded random subset): 1024 x 7 Welch segments give
    # ~1.7% scatter per 2-Hz bin (0.8% in the whitening ASD); more only costs time.
    psd_max_samples: int = 1024
    window: str = "tukey"  # taper applied before whitening
    window_alpha: float = TAPER_ALPHA  # Tukey shape parameter (see g2res.TAPER_ALPHA)
    fmin: float = 20.0  # Hz, bandpass low edge
    fmax: float = 500.0  # Hz, bandpass high edge
    filter_order: int = 8  # Butterworth order of the zero-phase bandpass
    dtype: str = "float32"  # float32 | float16
    batch_size: int = 1024  # samples per batch
    workers: int = 4  # threads reading files


@dataclass
class BankConfig:
    """The template bank of the ``bank`` front-end (``model.frontend: {name: bank}``).

    Placed stochastically (``g2res.baselines.bank.stochastic_bank``) for the cache's PSD
    once per run, whitened with the cache's conditioning, saved as ``RUN/bank.npz`` and
    carried in every checkpoint. Its cost per sample grows with ``templates``.
    """

    templates: int = 64  # most templates; placement stops earlier once the prior is covered
    mass_range: tuple[float, float] = (7.0, 50.0)  # solar masses, detector-frame components
    spin_max: float = 0.99  # largest aligned-spin magnitude proposed
    minimal_match: float = 0.9  # a proposal is kept when its best match is below this
    approximant: str = "IMRPhenomD"  # aligned-spin or non-spinning lalsimulation approximant
    convergence: int = 100  # stop after this many covered proposals in a row
    # Whiten each detector's templates by its own PSD; false: by the detectors' harmonic
    # mean, one template set for all (for augmentations that reorder detectors).
    per_detector: bool = True


@dataclass
class GateConfig:
    """Autogating of the model's input (``g2res.signal.gate``), before the front-end.

    Applied inside the model, so cached data, ``augment.glitch`` glitches and on-the-fly
    injections are gated alike in training and in ``g2res submit`` (the checkpoint's recipe
    carries it). ``threshold: null`` leaves the input as it is; 7 is the measured default
    of ``g2res.signal.gate`` (no gate on 1,000 noise and 500 BBH samples of SNR <= 16, every
    blip of SNR 20-50 gated).
    """

    threshold: float | None = None  # robust sigmas of whitened noise; None: no gating
    window: float = 0.1  # s, half-width zeroed around each excursion
    taper: float = 0.05  # s, Hann ramp on each side of a gate


@dataclass
class ModelConfig:
    """Front-end -> backbone -> head. Each is ``{name: ..., **kwargs}``."""

    frontend: dict = field(default_factory=lambda: {"name": "cqt"})
    backbone: dict = field(default_factory=lambda: {"name": "resnet18"})
    head: dict = field(default_factory=lambda: {"name": "linear"})
    pretrained: str | None = None  # local weights file for the backbone
    freeze: str | int | None = None  # "backbone" or number of leading stages to freeze
    bank: BankConfig = field(default_factory=BankConfig)  # the bank front-end's templates
    gate: GateConfig = field(default_factory=GateConfig)  # autogating of the input
    # "mad": each sample's detector series over its own robust std (g2res.signal.normalise),
    # before the gate, so a drifting noise level is not read as power; "spectral": a scale
    # and a spectral tilt per sample and detector fitted to the sample's own median Welch
    # PSD and divided out (g2res.signal.normalise.SpectralNormalise); None: as cached.
    normalise: str | None = None


@dataclass
class AugmentConfig:
    """Training-time augmentations on whitened strain; each value is a probability."""

    time_shift: float = 0.0  # circular shift of all detectors together
    max_shift: float = 0.2  # s, largest |shift|
    swap_h1l1: float = 0.0  # exchange the H1 and L1 channels
    sign_flip: float = 0.0  # multiply the whole sample by -1
    time_mask: float = 0.0  # zero a stretch of time in all detectors
    mask_width: float = 0.1  # s, largest masked stretch
    detector_dropout: float = 0.0  # zero one random detector
    permute_detectors: float = 0.0  # reorder the detector channels at random (H1, L1, V1)
    glitch: float = 0.0  # add a simulated glitch (g2res.data.glitches) to one random detector
    glitch_snr: tuple[float, float] = (8.0, 50.0)  # its optimal SNR against the cache's PSD
    glitch_kinds: list[str] = field(
        default_factory=lambda: ["sine_gaussian", "blip", "scattered_light"]
    )


@dataclass
class TrainConfig:
    """Optimisation for one fold."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3  # head (and whole model unless backbone_lr is set)
    backbone_lr: float | None = None  # separate learning rate for the backbone
    weight_decay: float = 1e-2
    scheduler: str = "cosine"  # cosine | onecycle | constant
    warmup_epochs: float = 1.0
    grad_clip: float | None = 1.0  # max gradient norm; None disables
    amp: bool = True  # mixed precision (CUDA only)
    channels_last: bool = True  # memory format for 2D models (CUDA only)
    ema: float | None = None  # EMA decay of weights, e.g. 0.999; None disables
    patience: int | None = None  # early stopping on validation AUC; None disables
    # DataLoader worker processes; None: one per two CPU cores beyond the first two (0 on a
    # 2-core machine, where workers would take the cores the model trains on), at most 8.
    num_workers: int | None = None
    eval_batch_size: int = 256
    init_from: str | None = None  # checkpoint every fold starts from (g2res pretrain)


@dataclass
class CVConfig:
    """Cross-validation."""

    folds: int = 5
    fold: list[int] | None = None  # train only these folds; None: all
    folds_file: str | None = None  # adopt another run's folds.csv (same split across a study)
    fold_parallel: bool = False  # under torchrun: one fold per process instead of data-parallel


@dataclass
class SubmitConfig:
    """``g2res submit``: ensembling."""

    tta: list[str] = field(default_factory=list)  # e.g. [swap_h1l1, sign_flip]
    blend: str = "mean"  # mean | rank
    batch_size: int = 256


@dataclass
class InjectionConfig:
    """Training on signals injected on the fly (``g2res pretrain``, ``mode: mix``).

    Signals come from a waveform pool (``g2res waveforms``), are projected with random
    sky position and polarisation, conditioned like the cache and scaled to a network
    SNR; noise comes from the cache's label-0 training samples or is Gaussian.
    """

    mode: str = "off"  # off | pretrain (g2res pretrain) | mix (cv-train mixes in injected batches)
    pool: str | None = None  # waveform pool directory
    noise: str = "cache"  # cache (label-0 training rows) | gaussian (coloured by the cache PSD)
    # Noise PSD of each injected sample, one entry drawn per sample: cache (the cache's
    # estimate) | file:PATH (a PSD file as `g2res simulate --psd` reads it).
    psd_sources: list[str] = field(default_factory=lambda: ["cache"])
    psd_tilt: float = 0.0  # X: per sample/detector PSD scale in [1-X, 1+X] x tilt (f/100 Hz)^a
    snr: tuple[float, float] = (4.0, 20.0)  # network SNR range (conditioned, whitened norm)
    snr_distribution: str = "uniform"  # uniform | loguniform | volume (p ~ snr^-4)
    curriculum_snr: tuple[float, float] | None = None  # start range, annealed to snr
    curriculum_steps: int = 0  # steps over which curriculum_snr moves to snr
    rate: float = 0.5  # fraction of injected samples holding a signal
    merger_window: tuple[float, float] = (1.4, 1.95)  # s, geocentre merger time in the window
    steps: int = 10000  # pretraining optimiser steps
    lr: float | None = None  # pretraining learning rate; None: train.lr
    mix_fraction: float = 0.5  # mode mix: fraction of each batch that is injected
    eval_every: int = 500  # steps between validations on the labelled data (pretrain)
    val_fraction: float = 0.2  # pretrain: labelled training samples held out for validation


@dataclass
class RegressionConfig:
    """``task: regression`` or ``multitask``: how the ``targets`` are learnt."""

    loss: str = "mse"  # mse | huber (on standardised targets)
    samples: str = "positives"  # positives (signals only) | all (noise: SNR 0, masses undefined)
    weight: float = 1.0  # multitask: weight of the regression loss next to the detection BCE
    table: str | None = None  # injections table; None: DATA/truth/injections.csv of the cache


@dataclass
class Config:
    """A whole recipe."""

    name: str = "recipe"
    description: str = ""
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data_dir: str | None = None  # raw data in the G2Net layout
    cache: str | None = None  # preprocessed cache directory
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    submit: SubmitConfig = field(default_factory=SubmitConfig)
    injection: InjectionConfig = field(default_factory=InjectionConfig)
    task: str = "classification"  # classification | regression | multitask (both, one backbone)
    # Regression targets: injections-table columns or chirp_mass, total_mass, mass_ratio,
    # network_snr.
    targets: list[str] = field(default_factory=list)
    regression: RegressionConfig = field(default_factory=RegressionConfig)

    def to_dict(self) -> dict:
        return _to_plain(dataclasses.asdict(self))

    def save(self, path: str | os.PathLike) -> None:
        """Write the resolved recipe as YAML (atomically)."""
        from g2res.utils import atomic_open

        with atomic_open(path, "w") as fh:
            yaml.safe_dump(self.to_dict(), fh, sort_keys=False)

    def replace(self, overrides: list[str] | dict | None) -> Config:
        """A copy with dotted overrides applied."""
        return apply_overrides(self, overrides)


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def config_from_dict(data: dict | None) -> Config:
    """Build a :class:`Config` from a (possibly partial) nested dict."""
    return _build(Config, data or {})


def load_config(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None
) -> Config:
    """Load a YAML recipe (or the defaults when ``path`` is None) and apply overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe {path} does not exist")
        try:
            data = _load_yaml(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"recipe {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"recipe {path} must be a mapping at top level")
    try:
        cfg = config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return apply_overrides(cfg, overrides)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> (["train", "lr"], value).

    The value keeps its text for the field's type to convert (see the module docs):
    a :class:`str` subclass whose ``parsed`` is what YAML makes of it.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. train.lr=3e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has no key")
    try:
        parsed = _load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        parsed = raw
    if isinstance(parsed, _Text):
        if parsed.quoted:
            return key.split("."), parsed
        parsed = parsed.parsed
    return key.split("."), _Text(raw.strip(), parsed)


def apply_overrides(cfg: Config, overrides: list[str] | dict | None) -> Config:
    """Return a copy of ``cfg`` with dotted overrides applied and re-validated."""
    if not overrides:
        return cfg
    data = cfg.to_dict()
    items = (
        overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    )
    for key, value in items:
        keys = key.split(".") if isinstance(key, str) else key
        node = data
        for part in keys[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"unknown recipe field {'.'.join(keys)!r}")
            if node[part] is None:
                node[part] = {}
            node[part] = _structure(node[part])  # a mapping set by an earlier override
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {'.'.join(keys)!r}: its parent is not a mapping")
        node[keys[-1]] = value
    return config_from_dict(data)
