"""The refusals of the service and the pipeline, and log text that cannot forge a line."""


class Refusal(Exception):
    """Something the user can fix, refused with a message that names the problem and the fix.

    Every user-facing refusal (a bad input file, a gate that failed, a promotion refused, a git
    remote that answers no) derives from it, so an entry point catches this one type and prints
    its message; any other exception is our own bug and keeps its traceback.
    """


class HTTPError(Refusal):
    """A request the service refuses: status, the problem, and what it expects instead."""

    def __init__(self, status: int, error: str, expected: str = "", headers=()) -> None:
        super().__init__(error)
        self.status, self.error, self.expected, self.headers = status, error, expected, headers


def loggable(text: str, limit: int = 200) -> str:
    """`text` with control characters escaped (no forged log lines), cut to `limit`."""
    escaped = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."
