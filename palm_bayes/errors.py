"""Exceptions that palm-bayes raises for problems the user can fix."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (a file, a column, a row, a flag).

    The message is one line that names the file/column/row and says what was expected; the command line prints
    it without a traceback and exits with status 2.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OutputError(OSError):
    """An output could not be written without touching a file palm-bayes does not own."""
