"""Train a Residual Attention Network: ``python train.py [hydra overrides]`` (see README)."""

from resattn.cli.app import train_main

if __name__ == "__main__":
    train_main()
