"""The metric names of a run, in one place: what the LightningModule logs, what ``train()`` returns and writes
to ``metrics.json``, and what comparisons report."""

from __future__ import annotations

import re

# Logged every epoch by resattn.training.module.ResAttnModule: valid monitor keys (checkpoint, early stopping, scheduler).
LOGGED_METRICS = ("val/acc", "val/loss", "val/acc_best", "train/loss", "train/acc", "lr")
# Numeric keys of the metrics resattn.training.fit.train returns (valid optimized_metric values) ...
RESULT_METRICS = ("val/acc_best", "val/acc", "epochs", "global_step", "train_time_s", "wall_time_s")
# ... plus these after the test (test=true), and one accuracy per class, e.g. test/acc_cat.
TEST_METRICS = ("test/acc", "test/loss")
CLASS_METRIC = re.compile(r"^test/acc_\w+$")
# Per-run numbers of a comparison table (sweep summaries, python -m resattn.report), in this order.
REPORTED_METRICS = ("val/acc_best", "test/acc", "test/loss", "epochs", "train_time_s", "wall_time_s")
# The accuracy and loss columns of the mean ± std table over seeds.
AGGREGATED_METRICS = ("val/acc_best", "test/acc", "test/loss")
