"""Front-ends (CQT, STFT, matched-filter bank, identity) and augmentations, as batched modules."""

from g2res.transforms.augment import TTA_TRANSFORMS, Augment
from g2res.transforms.frontends import Identity, create_frontend, list_frontends, register_frontend

__all__ = [
    "TTA_TRANSFORMS",
    "Augment",
    "Identity",
    "create_frontend",
    "list_frontends",
    "register_frontend",
]
