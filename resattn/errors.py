"""User-facing errors: reported as one line naming the problem and the fix, never as a traceback."""


class ResattnError(Exception):
    """Base class for errors caused by the user's input (config, data, checkpoints)."""


class ConfigError(ResattnError, ValueError):
    """A config value is out of range, of the wrong kind or inconsistent with another."""


class DataError(ResattnError):
    """The dataset is missing, unreadable or malformed."""


class CheckpointError(ResattnError):
    """A checkpoint or run directory is missing, truncated or incompatible."""
