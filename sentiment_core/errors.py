"""The exception that means "the user can fix this", and the one line it prints.

Scripts catch :class:`UserError`, print its message on one line and exit non-zero; anything
else is a bug and keeps its traceback.
"""


from collections.abc import Iterator


class UserError(Exception):
    """A problem with the user's input or environment, with a message that names the fix."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error: many libraries' messages
    run to several lines (tarfile lists every method it tried, SQLAlchemy appends background
    links), and some are empty (then the exception's type)."""
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(":") if text else type(exc).__name__


def causes(error: BaseException | None) -> Iterator[BaseException]:
    """``error``, then what it was raised from or while handling, and so on, each once (a
    wrapper's wrapped error, an error raised in an ``except`` block's own error)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def root_cause(error: BaseException) -> BaseException:
    """The innermost error ``error`` was raised from: the driver's own words, not its wrappers'."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def interruption(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM in ``error``'s chain, also when an error raised while handling it (a
    store that refused a write) took its place; None if there is none."""
    return next((cause for cause in causes(error) if isinstance(cause, KeyboardInterrupt)), None)


def was_interrupted(error: BaseException) -> bool:
    """Whether ``error`` is an interruption, or an error that took one's place (:func:`interruption`)."""
    return interruption(error) is not None
