"""Socket tokens and tickets never reach a log line: the redaction filter, our LOGGING, and a real uvicorn."""
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from websockets.sync.client import connect

from dispatch.log_redact import RedactSecretsFilter, redact
from tests.integration.test_embedded_server import ROOT, _call, _free_port


@pytest.mark.parametrize(
    "line, expected",
    [
        ('"WebSocket /ws/notifications/?token=abc123" [accepted]', '"WebSocket /ws/notifications/?token=[redacted]" [accepted]'),
        ("/ws/notifications/?last_event_id=4&ticket=Zx-_9", "/ws/notifications/?last_event_id=4&ticket=[redacted]"),
        ("GET /x?TOKEN=abc&page=2 HTTP/1.1", "GET /x?TOKEN=[redacted]&page=2 HTTP/1.1"),
        ("/ws/%3Ftoken=abc", "/ws/%3Ftoken=[redacted]"),
        ("/auth/providers/?mytoken=1&tokens=2", "/auth/providers/?mytoken=1&tokens=2"),
        ("token rotation finished", "token rotation finished"),
    ],
)
def test_redact_hides_only_token_and_ticket_values(line, expected):
    assert redact(line) == expected


def test_the_filter_rewrites_uvicorns_lazy_arguments():
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/ws/notifications/?token=s3cr3t"), None,
    )

    assert RedactSecretsFilter().filter(record) is True
    assert record.getMessage() == '127.0.0.1:5000 - "WebSocket /ws/notifications/?token=[redacted]" [accepted]'


def _has_filter(filterer) -> bool:
    return any(isinstance(f, RedactSecretsFilter) for f in filterer.filters)


def test_our_logging_config_puts_the_filter_where_servers_log():
    # config/settings.py LOGGING is in force in this process too.
    console = [h for h in logging.getLogger().handlers if h.get_name() == "console"]

    assert _has_filter(logging.getLogger("uvicorn.error"))  # WebSocket handshakes
    assert _has_filter(logging.getLogger("uvicorn.access"))  # HTTP request lines
    assert console and all(_has_filter(h) for h in console)  # everything else (daphne's runserver, ours)


@pytest.fixture
def uvicorn_server(tmp_path):
    """One uvicorn, SQLite, our settings and uvicorn's own logging; yields (base URL, the server's stderr so far)."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CI")},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    port, log = _free_port(), tmp_path / "uvicorn.log"
    with open(log, "w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _until_answering(base + "/healthz", log)
        yield base, log
    finally:
        server.terminate()
        server.wait(timeout=10)


def _until_answering(url: str, log) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=1)
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer: {log.read_text()[-2000:]}")


def test_uvicorn_logs_socket_handshakes_without_tokens_or_tickets(uvicorn_server):
    base, log = uvicorn_server
    body = {"username": "logcheck", "password": "pass-12345-long", "role": "customer", "name": "Log Check"}
    token = _call(base, "/auth/register/", body=body)["token"]
    request = urllib.request.Request(base + "/auth/socket-ticket/", data=b"", method="POST")
    request.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        ticket = json.loads(response.read())["ticket"]
    ws = base.replace("http", "ws", 1) + "/ws/notifications/"

    for query in (f"?ticket={ticket}", f"?token={token}&last_event_id=0"):
        with connect(ws + query, open_timeout=10) as socket:
            with pytest.raises(TimeoutError):
                socket.recv(timeout=0.3)  # open: nothing to say yet
    urllib.request.urlopen(f"{base}/healthz?token={token}", timeout=5)  # an HTTP request line too
    time.sleep(0.5)

    text = log.read_text()
    assert "WebSocket /ws/notifications/?ticket=[redacted]" in text, text
    assert "WebSocket /ws/notifications/?token=[redacted]&last_event_id=0" in text, text
    assert "/healthz?token=[redacted]" in text, text
    assert token not in text and ticket not in text
