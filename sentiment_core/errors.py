"""The one exception type that means "the user can fix this".

Scripts catch :class:`UserError`, print its message on one line and exit non-zero; anything
else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input or environment, with a message that names the fix."""
