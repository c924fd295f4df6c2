"""Any timm 2D model as a backbone (``create_model("timm:<name>")``), offline only."""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from g2res.models.registry import TIMM_PREFIX, register_prefix

__all__ = ["TimmBackbone"]


class TimmBackbone(nn.Module):
    """``timm.create_model(name, pretrained=False, in_chans, num_classes=0)``.

    ``(batch, in_chans, H, W)`` -> pooled features ``(batch, num_features)``. timm is
    never allowed to download: ``pretrained`` is a local state-dict file (e.g. a timm
    checkpoint) loaded with ``weights_only=True``, its first convolution adapted when
    the channel count differs. Other keyword arguments go to ``timm.create_model``
    (e.g. ``drop_rate``, ``drop_path_rate``).

    ``stages`` splits the model at its ``feature_info`` points (stem first).
    """

    is_2d = True

    def __init__(
        self,
        name: str,
        in_chans: int = 3,
        pretrained: str | os.PathLike | None = None,
        **kwargs,
    ):
        super().__init__()
        import timm

        if not timm.is_model(name):
            raise ValueError(f"timm has no model {name!r} (see timm.list_models())")
        for key in ("pretrained", "pretrained_cfg_overlay", "num_classes", "in_chans"):
            kwargs.pop(key, None)
        self.name = name
        self.in_chans = in_chans
        self.model = timm.create_model(
            name, pretrained=False, in_chans=in_chans, num_classes=0, **kwargs
        )
        self.num_features = int(self.model.num_features)
        if pretrained is not None:
            from g2res.models.pretrained import load_pretrained

            first = (
                self.model.pretrained_cfg.get("first_conv")
                if hasattr(self.model, "pretrained_cfg")
                else None
            )
            missing = load_pretrained(self.model, pretrained, first_conv=first)
            if missing:
                warnings.warn(
                    f"{pretrained}: {len(missing)} tensors of timm:{name} kept their "
                    f"random init (first: {missing[:3]})",
                    stacklevel=2,
                )
        self.__dict__["_stages"] = self._split_stages()

    def _split_stages(self) -> list[nn.Module]:
        # Parameters are registered in forward order in timm's CNNs; cut that order
        # after the last parameter of each feature_info module.
        names = [n for n, _ in self.model.named_parameters()]
        infos = getattr(self.model, "feature_info", None) or []
        cuts = []
        for info in infos:
            prefix = info["module"] + "."
            last = max((i for i, n in enumerate(names) if n.startswith(prefix)), default=None)
            if last is not None and (not cuts or last > cuts[-1]):
                cuts.append(last)
        if not cuts:
            return [self.model]
        cuts[-1] = len(names) - 1  # the rest (e.g. conv_head) joins the last stage
        owners: dict[int, list[str]] = {}
        start = 0
        for stage, cut in enumerate(cuts):
            for n in names[start : cut + 1]:
                owners.setdefault(stage, []).append(n.rsplit(".", 1)[0])
            start = cut + 1
        stages = []
        for stage in range(len(cuts)):
            modules = dict.fromkeys(owners.get(stage, []))  # ordered, unique
            stages.append(nn.ModuleList([self.model.get_submodule(m) for m in modules]))
        return stages

    @property
    def stages(self) -> list[nn.Module]:
        """Ordered groups of modules, input side first."""
        return self.__dict__["_stages"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"timm:{self.name} expects (batch, chan, H, W), got {tuple(x.shape)}")
        return self.model(x)


def _timm_knows(name: str) -> bool:
    import timm

    return timm.is_model(name)


register_prefix(TIMM_PREFIX, TimmBackbone, _timm_knows)
