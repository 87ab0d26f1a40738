"""What reaches the console, decided in one place: library noise that is silenced on purpose (each entry says why),
text meant for the run's log file only, and the console's short line format.

Hydra's job logging (``conf/hydra/default.yaml``) makes the console a :class:`ConsoleHandler` with
:class:`ConsoleFilter` and :class:`ConsoleFormatter`; the log file keeps every record, timestamped. The entry points call
:func:`silence_harmless_warnings` before training starts.
"""

from __future__ import annotations

import logging
import re
import warnings

# Python warnings known to be harmless here: (message pattern, why it is silenced).
HARMLESS_WARNINGS = (
    (
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        "pytorch_lightning's own use of a torch API that torch deprecated; nothing a user can change",
    ),
    (
        r"The number of training batches \(\d+\) is smaller than the logging interval",
        "short runs: per-step curves are thinned by trainer.log_every_n_steps, epoch metrics are logged regardless",
    ),
    (
        r".*overrides the configure_model",
        "callbacks.ema: the module's configure_model only sets the memory format and compiles, it shards nothing",
    ),
    (
        r".*does not have many workers",
        "the data sets are tensors in memory and batches are slices of them: workers would only copy (data.num_workers sets them)",
    ),
)

# Lightning console lines (INFO) that carry nothing for a user of this project; they stay in the log file.
QUIET_LINES = (
    r"💡 Tip:",  # advertisements for Lightning's add-on packages
    r"(TPU|HPU) available:",  # accelerators this project does not use
    r"Loading `train_dataloader` to estimate number of stepping batches",  # an internal step of the one-cycle schedule
)
_QUIET = re.compile("|".join(QUIET_LINES))

# ``log.info(text, extra=LOG_FILE_ONLY)``: the record goes to the run's log file, not to the console.
LOG_FILE_ONLY = {"log_file_only": True}


def silence_harmless_warnings() -> None:
    """Ignore the warnings of :data:`HARMLESS_WARNINGS` in this process (idempotent)."""
    for pattern, _why in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


class ConsoleFilter(logging.Filter):
    """Drops records marked :data:`LOG_FILE_ONLY` and Lightning's :data:`QUIET_LINES` from the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "log_file_only", False):
            return False
        return not (
            record.levelno <= logging.INFO
            and record.name.startswith(("pytorch_lightning", "lightning"))
            and _QUIET.match(record.getMessage())
        )


class ConsoleHandler(logging.StreamHandler):
    """A stream handler that writes around an active progress bar (``tqdm.write``) instead of onto its line."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # noqa: BLE001 - logging must never raise (logging.Handler.handleError's contract)
            self.handleError(record)


class ConsoleFormatter(logging.Formatter):
    """The message alone (INFO lines are what a run reports); warnings and errors keep their level: ``WARNING: ...``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno <= logging.INFO else f"{record.levelname}: {text}"
