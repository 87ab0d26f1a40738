"""resattn: Residual Attention Networks on CIFAR-10 with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
