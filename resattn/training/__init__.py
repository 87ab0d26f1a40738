"""Training and evaluation: the LightningModule, its builders, the fit and test loops, checkpoints, schedules, speed
switches, precision and test-time augmentation."""
