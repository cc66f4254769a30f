"""The service's refusals, and log text that cannot forge a line."""


class HTTPError(Exception):
    """A request the service refuses: status, the problem, and what it expects instead."""

    def __init__(self, status: int, error: str, expected: str = "", headers=()) -> None:
        super().__init__(error)
        self.status, self.error, self.expected, self.headers = status, error, expected, headers


def loggable(text: str, limit: int = 200) -> str:
    """`text` with control characters escaped (no forged log lines), cut to `limit`."""
    escaped = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."
