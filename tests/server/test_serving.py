"""uvicorn's timeouts, set on purpose (issue 12 §9): a half-sent request is not held open."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from urllib.parse import urlsplit

import pytest
import websockets
from fastapi import FastAPI, WebSocket

from photoavatar.server.app import create_app
from photoavatar.server.config import ServerSettings
from photoavatar.server.limits import Limits
from photoavatar.testing.servers import server_in_thread


@contextlib.contextmanager
def running(tmp_path, limits: Limits):
    """The photoavatar server with LIMITS, served as `photoavatar serve` serves it; yields its port."""
    (tmp_path / "avatars").mkdir(exist_ok=True)
    app = create_app(ServerSettings(avatars_dir=tmp_path / "avatars", limits=limits))
    with server_in_thread(app) as url:
        yield urlsplit(url).port


def closed_after_s(port: int, first_bytes: bytes, give_up_s: float) -> float | None:
    """Send FIRST_BYTES, then nothing; seconds until the server closes the connection (None: still open)."""
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(first_bytes)
        start = time.monotonic()
        client.settimeout(give_up_s)
        try:
            while client.recv(4096):
                pass
        except TimeoutError:
            return None
        except ConnectionResetError:
            pass
        return time.monotonic() - start


@pytest.mark.parametrize("first_bytes", [b"", b"POST /speak HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"])
def test_a_request_head_that_never_completes_is_closed(tmp_path, first_bytes):
    with running(tmp_path, Limits(header_timeout_s=1)) as port:
        waited = closed_after_s(port, first_bytes, give_up_s=8)
        assert waited is not None and waited < 4, waited


def test_an_idle_keep_alive_connection_is_closed_and_a_slow_body_ends(tmp_path):
    with running(tmp_path, Limits(header_timeout_s=30, keep_alive_s=1, body_timeout_s=1)) as port:
        request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        waited = closed_after_s(port, request, give_up_s=8)
        assert waited is not None and waited < 4
        half_body = (b"POST /session-live HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"avatar_id\": ")
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(half_body)
            client.settimeout(8)
            reply = client.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408"), reply


def test_connections_past_the_limit_get_503_at_once(tmp_path):
    with running(tmp_path, Limits(max_connections=3, header_timeout_s=30)) as port:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            time.sleep(0.3)
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                client.settimeout(5)
                assert client.recv(4096).startswith(b"HTTP/1.1 503")
        finally:
            for connection in idle:
                connection.close()


def test_a_websocket_outlives_the_head_timeout(tmp_path):
    app = FastAPI()

    @app.websocket("/echo")
    async def echo(connection: WebSocket) -> None:
        await connection.accept()
        while True:
            await connection.send_text(await connection.receive_text())

    async def talk(port: int) -> str:
        async with websockets.connect(f"ws://127.0.0.1:{port}/echo") as connection:
            await asyncio.sleep(2.5)  # past the head timeout
            await connection.send("still here")
            return await asyncio.wait_for(connection.recv(), 5)

    with server_in_thread(app, Limits(header_timeout_s=1)) as url:
        assert asyncio.run(talk(urlsplit(url).port)) == "still here"
