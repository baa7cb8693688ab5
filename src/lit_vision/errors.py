"""The exception type for user mistakes (bad data, bad config values): shown as one message, no traceback."""


class UserError(Exception):
    """A problem the user can fix: the message names the file, line, column or key, and the fix."""
