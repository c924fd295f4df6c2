"""Models: one registry for 2D ResNets, 1D ResNets, timm backbones and heads."""

# Importing the model modules runs their registrations (@register_model, register_prefix).
from g2res.models import resnet, resnet1d, timm_backbone  # noqa: F401
from g2res.models.classifier import Classifier, build_model
from g2res.models.heads import LinearHead, MLPHead, create_head, list_heads
from g2res.models.registry import create_model, is_model, list_models, register_model
from g2res.models.resnet import ResNet
from g2res.models.resnet1d import ResNet1d

__all__ = [
    "Classifier",
    "LinearHead",
    "MLPHead",
    "ResNet",
    "ResNet1d",
    "build_model",
    "create_head",
    "create_model",
    "is_model",
    "list_heads",
    "list_models",
    "register_model",
]
