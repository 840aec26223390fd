"""The one error type of :mod:`satkit.analysis`."""

__all__ = ["RunError"]


class RunError(ValueError):
    """A run directory (or a table read from one) is missing, corrupt or incomplete.

    The message always names the offending file or directory, so a user can fix it without
    reading a pandas traceback.
    """
