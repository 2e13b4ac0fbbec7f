"""The one signal that ends an utterance early: barge-in, stop, a closing session or a failure.

Each utterance carries one `Interruption`, created with it. Whoever ends it early calls `interrupt(reason)`
once; every stage the utterance passes through reads or subscribes to that same object:
- synthesis (a worker thread) reads `interrupted` between segments and stops making audio;
- the playout drops the utterance's audio at once (the next 20 ms frame is silence), and with it whatever the
  transport buffers downstream (LiveKit's SDK queue);
- the session cancels the utterance's task and sends `utterance_end` with the reason, on which the client drops
  the utterance's events (web/sync.js).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from photoavatar.live.protocol import END_REASONS

EARLY_END_REASONS = tuple(reason for reason in END_REASONS if reason != "done")


class Interruption:
    def __init__(self) -> None:
        self._set = threading.Event()  # read from the synthesis thread
        self.reason: str | None = None
        self.error: str | None = None  # the message the client sees when reason is "error"
        self._subscribers: list[Callable[[Interruption], None]] = []

    @property
    def interrupted(self) -> bool:
        return self._set.is_set()

    def subscribe(self, callback: Callable[[Interruption], None]) -> None:
        """Call CALLBACK (on the event loop) when interrupted; at once if it already is."""
        if self.interrupted:
            callback(self)
        else:
            self._subscribers.append(callback)

    def interrupt(self, reason: str, error: str | None = None) -> bool:
        """End the utterance early (event loop thread); False when it was interrupted already."""
        if reason not in EARLY_END_REASONS:
            raise ValueError(f"an interruption's reason must be one of {EARLY_END_REASONS}, got {reason!r}")
        if self.interrupted:
            return False
        self.reason, self.error = reason, error
        self._set.set()
        subscribers, self._subscribers = self._subscribers, []
        for callback in subscribers:
            callback(self)
        return True
