"""The exception that means "the user can fix this", and the one line it prints.

Scripts catch :class:`UserError`, print its message on one line and exit non-zero; anything
else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input or environment, with a message that names the fix."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error: many libraries' messages
    run to several lines (tarfile lists every method it tried, SQLAlchemy appends background
    links), and some are empty (then the exception's type)."""
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(":") if text else type(exc).__name__
