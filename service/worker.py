"""gunicorn's gevent worker, answering the requests gunicorn itself refuses in JSON too.

gunicorn refuses a request it cannot parse (a bad Content-Length, request line or header)
before the app sees it, with an HTML page. In this worker those answers are JSON in the
service's own shape ({"error", "expected"}), so every 4xx a client gets reads the same.
render.yaml starts it with `--worker-class service.worker.JsonErrorGeventWorker`.
"""

import orjson
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

from service.errors import loggable


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's util.write_error, with a JSON body instead of an HTML page."""
    body = orjson.dumps(
        {
            "error": f"{reason}: {loggable(mesg)}" if mesg else reason,
            "expected": "a well-formed HTTP/1.1 request (request line, headers, Content-Length)",
        }
    )
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class JsonErrorGeventWorker(GeventWorker):
    """The gevent worker; its refusals before the app are JSON (see the module docstring)."""

    def init_process(self) -> None:
        # Only this worker process writes gunicorn's error pages through util.write_error.
        util.write_error = write_json_error
        super().init_process()
