"""How uvicorn runs the server: every timeout set on purpose (docs/limits.md lists them).

uvicorn's own defaults leave one gap: a client that sends half a request head and then nothing holds
its connection (and a slot of the process) for as long as it likes, because the keep-alive timer stops
at the first byte. `GuardedH11Protocol` closes a connection whose request head has not arrived within
`header_timeout_s`. A stalled body is the request guard's job (server/middleware.py, body_timeout_s).
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from photoavatar.server.limits import Limits

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 10  # open sessions are closed by the app's lifespan; requests get this long to end
MAX_REQUEST_HEAD_BYTES = 16 * 1024  # h11's limit on an incomplete request head (its default, stated)
WS_PING_S = 20  # a WebSocket peer that does not answer a ping within this is dropped (uvicorn's default, stated)


class GuardedH11Protocol(H11Protocol):
    header_timeout_s: float = Limits.header_timeout_s

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_head():
            self._arm_head_timer()
        else:
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm_head_timer()  # the keep-alive timer takes over until the next request's first byte

    def connection_lost(self, exc) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        if self.transport.get_protocol() is not self:  # upgraded to a WebSocket: no more request heads here
            return False
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():
            log.info("closing a connection from %s: no complete request head within %s s",
                     self.client, self.header_timeout_s)
            self.transport.close()


def uvicorn_config(app, host: str, port: int, limits: Limits, log_level: str = "info") -> uvicorn.Config:
    protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": limits.header_timeout_s})
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol,
                          timeout_keep_alive=limits.keep_alive_s, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                          h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
                          limit_concurrency=limits.max_connections, ws_max_size=limits.max_ws_message_bytes,
                          ws_ping_interval=WS_PING_S, ws_ping_timeout=WS_PING_S)
