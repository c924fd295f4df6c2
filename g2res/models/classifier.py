"""Front-end -> backbone -> head, built from a :class:`g2res.config.ModelConfig`."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from g2res.config import Config, ModelConfig
from g2res.models.heads import create_head
from g2res.models.registry import create_model
from g2res.signal.gate import Gate
from g2res.signal.normalise import NORMALISATIONS, RobustNormalise, SpectralNormalise
from g2res.transforms.frontends import create_frontend

__all__ = ["Classifier", "build_model", "task_model_config"]

# What a run learns (g2res.train.tasks): the number of model outputs follows from it.
TASKS = ("classification", "regression", "multitask")


def _spec(d: dict | str, what: str) -> tuple[str, dict]:
    if isinstance(d, str):
        return d, {}
    if not isinstance(d, dict) or "name" not in d:
        raise ValueError(f"model.{what} must be a mapping with a 'name', got {d!r}")
    kwargs = dict(d)
    return str(kwargs.pop("name")), kwargs


def _no_decay(name: str, p: nn.Parameter) -> bool:
    # Biases, norm scales and pooling exponents are not regularised.
    return p.ndim <= 1 or name.endswith(".bias")


class Classifier(nn.Module):
    """Whitened strain ``(batch, 3, time)`` -> logits ``(batch, 1)``.

    Attributes: ``normalise`` (optional :class:`g2res.signal.normalise.RobustNormalise`,
    the input's first step), ``gate`` (optional :class:`g2res.signal.gate.Gate`, next;
    neither has weights), ``frontend``, ``backbone``, ``head``, ``is_2d`` (image backbone).
    ``freeze(spec)`` fixes parameters and keeps the frozen BatchNorms in eval mode
    (also after ``train()``); ``param_groups`` builds AdamW groups.
    """

    def __init__(
        self,
        frontend: nn.Module,
        backbone: nn.Module,
        head: nn.Module,
        frontend_name: str = "?",
        backbone_name: str = "?",
        gate: nn.Module | None = None,
        normalise: nn.Module | None = None,
    ):
        super().__init__()
        f2d, b2d = bool(getattr(frontend, "is_2d", False)), bool(getattr(backbone, "is_2d", True))
        if f2d != b2d:
            kind = {True: "2D (image)", False: "1D (time series)"}
            raise ValueError(
                f"front-end {frontend_name!r} gives {kind[f2d]} inputs but backbone "
                f"{backbone_name!r} is a {kind[b2d]} model; pair cqt/stft with 2D "
                "backbones and identity or bank with resnet1d_*"
            )
        f_out, b_in = getattr(frontend, "out_chans", None), getattr(backbone, "in_chans", None)
        if f_out is not None and b_in is not None and f_out != b_in:
            raise ValueError(
                f"front-end {frontend_name!r} gives {f_out} channels but backbone "
                f"{backbone_name!r} takes in_chans={b_in}"
            )
        self.normalise = normalise
        self.gate = gate
        self.frontend = frontend
        self.backbone = backbone
        self.head = head
        self.is_2d = f2d
        self.frozen: str | int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, chan, time)`` float32 whitened strain -> ``(batch, 1)`` logits."""
        if self.normalise is not None:
            x = self.normalise(x)
        if self.gate is not None:
            x = self.gate(x)
        return self.head(self.backbone(self.frontend(x)))

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen is None:
            return []
        if self.frozen == "backbone":
            return [self.backbone]
        return list(self.backbone.stages[: int(self.frozen)])

    def freeze(self, spec: str | int | None) -> Classifier:
        """``"backbone"``: fix the whole backbone; ``N``: its first N stages (stem is
        stage 0); ``None`` or 0: train everything. Replaces any earlier freeze."""
        if spec is not None and spec != "backbone":
            if isinstance(spec, bool) or not isinstance(spec, int):
                raise ValueError(
                    f"model.freeze must be 'backbone', an integer or null, got {spec!r}"
                )
            n_stages = len(self.backbone.stages)
            if not 0 <= spec <= n_stages:
                raise ValueError(
                    f"model.freeze={spec} but the backbone has {n_stages} stages (0..{n_stages})"
                )
        for p in self.backbone.parameters():
            p.requires_grad_(True)
        self.frozen = None if spec in (None, 0) else spec
        for module in self._frozen_modules():
            for p in module.parameters():
                p.requires_grad_(False)
        self.train(self.training)
        return self

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        # Frozen BatchNorms keep their running statistics.
        for module in self._frozen_modules():
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def param_groups(
        self, lr: float, backbone_lr: float | None = None, weight_decay: float = 0.0
    ) -> list[dict]:
        """AdamW groups of trainable parameters: head and front-end at ``lr``, backbone
        at ``backbone_lr`` (``lr`` when None); no weight decay on biases/norms."""
        groups = []
        parts = [("head", self.head, lr), ("frontend", self.frontend, lr)]
        parts.append(("backbone", self.backbone, lr if backbone_lr is None else backbone_lr))
        for part, module, part_lr in parts:
            decay, no_decay = [], []
            for name, p in module.named_parameters():
                if p.requires_grad:
                    (no_decay if _no_decay(name, p) else decay).append(p)
            for params, wd, tag in ((decay, weight_decay, ""), (no_decay, 0.0, "_no_decay")):
                if params:
                    groups.append(
                        {"params": params, "lr": part_lr, "weight_decay": wd, "name": part + tag}
                    )
        return groups


def build_model(
    cfg: ModelConfig | None = None,
    sample_rate: float = 2048.0,
    n_time: int = 4096,
    conditioning: dict | None = None,
) -> Classifier:
    """Build the :class:`Classifier` a recipe's ``model`` section describes.

    ``in_chans`` of the backbone defaults to the front-end's output channels;
    ``cfg.pretrained`` (a local file) loads backbone weights; ``cfg.freeze`` is applied;
    ``cfg.gate.threshold`` set puts a :class:`~g2res.signal.gate.Gate` before the front-end,
    ``cfg.normalise`` (``mad``) a :class:`~g2res.signal.normalise.RobustNormalise` first,
    ``spectral`` a :class:`~g2res.signal.normalise.SpectralNormalise` for the cache's
    ``conditioning`` (:attr:`g2res.data.cache.Cache.conditioning`: bandpass and taper;
    preprocess's defaults when None).
    """
    cfg = cfg if cfg is not None else ModelConfig()
    f_name, f_kwargs = _spec(cfg.frontend, "frontend")
    b_name, b_kwargs = _spec(cfg.backbone, "backbone")
    h_name, h_kwargs = _spec(cfg.head, "head")
    frontend = create_frontend(f_name, sample_rate=sample_rate, n_time=n_time, **f_kwargs)
    b_kwargs.setdefault("in_chans", getattr(frontend, "out_chans", 3))
    if cfg.pretrained is not None:
        b_kwargs["pretrained"] = cfg.pretrained
    backbone = create_model(b_name, **b_kwargs)
    head = create_head(h_name, backbone.num_features, **h_kwargs)
    gate = normalise = None
    if cfg.gate.threshold is not None:
        gate = Gate(cfg.gate.threshold, cfg.gate.window, cfg.gate.taper, sample_rate=sample_rate)
    if cfg.normalise is not None:
        if cfg.normalise not in NORMALISATIONS:
            raise ValueError(
                f"model.normalise {cfg.normalise!r}: choose from {list(NORMALISATIONS)} or null"
            )
        normalise = (
            RobustNormalise()
            if cfg.normalise == "mad"
            else spectral_normaliser(sample_rate, n_time, conditioning)
        )
    model = Classifier(
        frontend, backbone, head, frontend_name=f_name, backbone_name=b_name, gate=gate,
        normalise=normalise,
    )  # fmt: skip
    if cfg.freeze is not None:
        model.freeze(cfg.freeze)
    return model


def spectral_normaliser(
    sample_rate: float, n_time: int, conditioning: dict | None = None
) -> SpectralNormalise:
    """The :class:`SpectralNormalise` of series conditioned as ``conditioning`` says."""
    from g2res.data.cache import conditioning_settings

    c = conditioning_settings(conditioning)
    window = str(c["window"]).lower()
    if window not in ("tukey", "boxcar", "none"):
        raise ValueError(
            f"model.normalise spectral: the cache's series were tapered by a {window!r} "
            "window; it fits the untapered middle of a tukey or boxcar taper only"
        )
    alpha = float(c["window_alpha"]) if window == "tukey" else 0.0
    return SpectralNormalise(
        sample_rate, n_time, fmin=float(c["fmin"]), fmax=float(c["fmax"]),
        filter_order=c["filter_order"], window_alpha=alpha,
    )  # fmt: skip


def _n_outputs(cfg: Config) -> int:
    if cfg.task not in TASKS:
        raise ValueError(f"task={cfg.task!r}: use one of {list(TASKS)}")
    if cfg.task != "classification" and not cfg.targets:
        raise ValueError(f"task={cfg.task} needs targets: e.g. targets=[network_snr,chirp_mass]")
    return {"classification": 1, "regression": 0, "multitask": 1}[cfg.task] + (
        len(cfg.targets) if cfg.task != "classification" else 0
    )


def task_model_config(cfg: Config) -> ModelConfig:
    """``cfg.model`` with a head of as many outputs as the task needs."""
    n = _n_outputs(cfg)
    if n == 1:
        return cfg.model
    head = cfg.model.head if isinstance(cfg.model.head, dict) else {"name": cfg.model.head}
    return dataclasses.replace(cfg.model, head={**head, "num_outputs": n})
