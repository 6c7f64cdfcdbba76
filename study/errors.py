"""The one exception type the command line turns into a single line on stderr and exit status 2."""


class UserError(ValueError):
    """Bad input the user can fix; its message names the problem and what to do about it."""
