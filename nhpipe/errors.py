"""The one exception type for problems the user can fix.

The CLI prints an :class:`InputError` as a single line and exits with status 2; any other
exception is a bug in nhpipe and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input or options: the message names the problem and what to do about it."""
