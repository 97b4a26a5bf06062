"""Domain errors. The CLI turns each into one line on stderr and a non-zero exit code."""


class FerError(Exception):
    """Base class: a problem with what the user gave us, not a bug in fer."""

    exit_code = 1


class ConfigError(FerError):
    exit_code = 2


class DataError(FerError):
    pass


class CheckpointError(FerError):
    pass


class InputError(FerError):
    pass


class TrainingError(FerError):
    """The training itself failed (it diverged)."""


class OutputError(FerError):
    """fer could not write its results (a full disk, a read-only folder)."""
