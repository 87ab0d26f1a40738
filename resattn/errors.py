"""User-facing errors: reported as one line naming the problem and the fix, never as a traceback; the exit codes
(README, "Faults while training"). :mod:`resattn.cli.exits` is the one place that turns them into ``error:`` lines."""

EXIT_JOBS_FAILED = 1  # a sweep ran, and at least one job failed or left no metrics.json
EXIT_USER_ERROR = 2  # bad input (config, data, checkpoint, resume dir): nothing ran
EXIT_DIVERGED = 3  # loss or weights stopped being finite (resattn.callbacks.TrainingDiverged)
EXIT_RANK_LOST = 4  # another DDP rank died or stopped responding (resattn.callbacks.RankLost)
EXIT_NO_SPACE = 5  # a checkpoint or result could not be written: disk full or quota exceeded (DiskFull)
EXIT_SIGNAL_BASE = 128  # a stop by signal N exits 128 + N: SIGTERM 143 (resattn.callbacks.signals.RunInterrupted)
EXIT_SIGINT = EXIT_SIGNAL_BASE + 2  # SIGINT (Ctrl-C): 130


class ResattnError(Exception):
    """Base class for errors caused by the user's input (config, data, checkpoints)."""


class ConfigError(ResattnError, ValueError):
    """A config value is out of range, of the wrong kind or inconsistent with another."""


class DataError(ResattnError):
    """The dataset is missing, unreadable or malformed."""


class CheckpointError(ResattnError):
    """A checkpoint or run directory is missing, truncated or incompatible."""


class DiskFull(ResattnError):
    """A file could not be written because its file system is full (or a quota is exceeded)."""

    exit_code = EXIT_NO_SPACE
