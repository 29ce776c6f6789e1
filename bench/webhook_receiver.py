"""A webhook receiver on loopback for tests and `bench.webhooks`: an HTTP server in a thread that records every POST.

It can answer a status of the test's choosing, take its time, and go down and come back up
on the same port (a receiver being redeployed). `verify` checks a delivery's signature with
the lines docs/realtime.md gives receivers (read from the page, so the two cannot drift).
"""
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "realtime.md"


@dataclass(frozen=True)
class Received:
    headers: dict
    body: bytes
    at: float  # time.monotonic() when it arrived


class Receiver:
    """`with Receiver() as r:` serves http://127.0.0.1:<port>/hook until the block ends.

    `answer(n)` gives the status code and the delay before answering for the n-th request
    (from 1); by default 200 at once. Requests answered other than 2xx are recorded too.
    """

    def __init__(self, answer=None, port: int = 0):
        self.answer = answer or (lambda n: (200, 0.0))
        self.received: list[Received] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hook"

    def up(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do
            # Status, headers and body leave in one write (flushed after each request): written apart,
            # the body waits for the client's delayed ACK of the headers (Nagle), 40 ms a request.
            wbufsize = 64 * 1024

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests += 1
                    status, delay_s = receiver.answer(receiver.requests)
                    receiver.received.append(Received(dict(self.headers), body, time.monotonic()))
                if delay_s:
                    time.sleep(delay_s)
                reply = b'{"ok": true}' if 200 <= status < 300 else b'{"error": "not now"}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the sender gave up waiting (a timeout test)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def down(self) -> None:
        """Stop answering: new connections are refused until `up()` (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Receiver":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [r.body for r in self.received]

    def event_ids(self) -> list[int]:
        """Dispatch-Event-Id of every request recorded, in arrival order."""
        with self._lock:
            return [int(r.headers["Dispatch-Event-Id"]) for r in self.received]


def documented_verify():
    """The `verify(secret, body, header)` function of docs/realtime.md's Webhooks section, as receivers copy it."""
    text = DOC.read_text()
    match = re.search(r"<!-- webhook-verify -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/realtime.md has no ```python block after <!-- webhook-verify -->"
    namespace: dict = {}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)  # noqa: S102 (our own documentation)
    return namespace["verify"]
