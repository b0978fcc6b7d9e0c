"""Errors a user can fix by changing a config, a path or a file.

Everything raised as a :class:`UserError` is reported by ``cli.py`` and the
``python -m recal.commands.<name>`` commands as one short message and a non-zero exit,
without a traceback: the message itself must name the bad value and what was
expected. Bugs stay ordinary exceptions and keep their tracebacks.
"""

from __future__ import annotations


class UserError(Exception):
    """Base class of errors caused by user input (config, paths, files)."""


class InvalidOptionError(UserError, ValueError):
    """An unknown name, an option a module does not take, or a value out of range."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset root or a file inside it is missing or laid out unexpectedly."""


class CorruptImageError(UserError, OSError):
    """An image file that cannot be decoded."""


class CheckpointMismatchError(UserError, RuntimeError):
    """A checkpoint or weights file that does not fit the configured model."""


class NonFiniteLossError(UserError, FloatingPointError):
    """Training produced a NaN or infinite loss."""
