"""The real server for browser tests and benchmarks: uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator


@contextlib.contextmanager
def server_in_thread(app, limits=None) -> Iterator[str]:
    """Serve APP with uvicorn on a free loopback port in a thread; yields the base URL ("http://127.0.0.1:N/").

    uvicorn runs as `photoavatar serve` runs it (server/serving.py: its timeouts and limits), with LIMITS, else the
    app's own limits when it is the photoavatar server, else the defaults."""
    import uvicorn

    from photoavatar.server.limits import Limits
    from photoavatar.server.serving import uvicorn_config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if limits is None:
        state = getattr(getattr(app, "state", None), "photoavatar", None)
        limits = state.settings.limits if state is not None else Limits()
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, limits, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start within 60 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
