"""The one exception type for problems the user can fix (bad input, bad config value)."""


class MeshStyleError(Exception):
    """A user-facing error: the message names the problem and the fix, in one line.

    The command line prints it without a traceback and exits with status 2.
    """
