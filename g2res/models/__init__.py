"""Models: one registry for 2D ResNets, 1D ResNets, timm backbones and heads."""
