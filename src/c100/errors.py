"""Errors that c100 reports to a person: one class per kind of fault, each with its exit code.

The CLI prints ``error: <message>`` and exits with ``exit_code``; no traceback for these.
"""


class C100Error(Exception):
    exit_code = 1


class ConfigError(C100Error):
    """A bad option, recipe or config value."""

    exit_code = 2


class UnknownNameError(ConfigError):
    """An unknown model or recipe name; the message lists close matches."""


class DataError(C100Error):
    """The data set is missing, unreadable or not what it claims to be."""

    exit_code = 3


class DataMissingError(DataError):
    exit_code = 3


class DataCorruptError(DataError):
    """Truncated or unreadable pickle, or a pickle naming a foreign global."""

    exit_code = 4


class DataContentError(DataError):
    """Wrong shape, dtype, label range, per-class counts or pixel hash."""

    exit_code = 5


class CheckpointError(C100Error):
    """A missing, truncated, corrupted or foreign checkpoint."""

    exit_code = 6


class RunFolderError(C100Error):
    """A run folder that holds a different run, or is unusable."""

    exit_code = 7


class NumericalError(C100Error):
    """A NaN or inf loss or weights, or a diverging loss (c100.engine.numerics.LOSS_EXPLODED), stopped training."""

    exit_code = 8


class InputImageError(C100Error):
    """A file given for prediction is not a readable image."""

    exit_code = 9


class ResourceError(C100Error):
    """Out of memory or disk."""

    exit_code = 10


class ReportError(C100Error):
    """Run folders that cannot be reported: missing, malformed or unfinished files."""

    exit_code = 11


class StudyError(C100Error):
    """A tuning study folder or database study that holds a different study, or is unusable."""

    exit_code = 12


class StorageError(C100Error):
    """A study storage URL that cannot be parsed, has no driver installed, or cannot be reached."""

    exit_code = 13


def close_matches_message(kind, name, known):
    import difflib

    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    msg = f"unknown {kind} {name!r}"
    if close:
        msg += f"; did you mean: {', '.join(close)}?"
    return msg + f" (`c100 {'models' if kind == 'model' else 'recipes'}` lists all {len(known)})"
