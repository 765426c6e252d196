"""User-facing errors: the CLI prints them as one line and exits 2, never a traceback."""


class MedsentError(Exception):
    """Bad input or usage that the user can fix; exit code 2."""

    exit_code = 2


class DataError(MedsentError):
    """The data file cannot be read or mapped to text + label."""


class ConfigError(MedsentError):
    """A configuration value is invalid."""


class RunError(MedsentError):
    """A run folder is missing, incomplete or tampered with."""


class TrainingError(MedsentError):
    """Training diverged (NaN/inf loss); the last good checkpoint is kept for --resume. Exit 1."""

    exit_code = 1
