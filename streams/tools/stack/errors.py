"""The one exception of the stack package."""


class StackError(RuntimeError):
    """The local stack could not be installed, started, checked or stopped.

    The message says what went wrong and, where a server failed, which log file tells why.
    """
