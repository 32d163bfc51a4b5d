"""`dfer serve`'s per-session statistics: later recordings of one person standardised with those before them.

A client sends a `session` id with each recording; the server keeps the running moments of that session's clips
(`dfer.adapt.moments`), in memory only, and scores each recording with its session's statistics, the recording
itself included: the first recording of a session is a group of one and adapts nothing, the second is standardised
with both, and so on. Per-session statistics of a voice encoder are close to a voiceprint, so they are never written
anywhere, and they are bounded:
- in count: at most `max_sessions` sessions, the least recently used evicted first;
- in age: a session unused for `max_age` seconds is dropped;
- in size: a session holds sums of a fixed size (per encoder stream, 2 x D + 2 numbers), whatever its recordings.
Serve's worker threads share one `SessionStatistics`; a lock makes each update whole.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from dfer.adapt.moments import Moments
from dfer.adapt.saved import merged

MAX_SESSIONS = 1024
MAX_AGE = 3600.0  # seconds a session is kept after its last recording
MAX_ID = 128  # characters of a session id


class SessionStatistics:
    def __init__(self, max_sessions: int = MAX_SESSIONS, max_age: float = MAX_AGE,
                 clock: Callable[[], float] = time.monotonic):
        self.max_sessions, self.max_age, self.clock = max_sessions, max_age, clock
        self.sessions: OrderedDict[str, tuple[float, dict[str, Moments]]] = OrderedDict()  # id -> (last use, moments)
        self.lock = threading.Lock()

    def add(self, session: str, moments: dict[str, Moments]) -> dict[str, Moments]:
        """Add one recording's moments to its session; the session's moments now, the recording included."""
        with self.lock:
            now = self.clock()
            self._forget_older_than(now - self.max_age)
            _, before = self.sessions.pop(session, (now, {}))
            total = merged(before, moments)
            self.sessions[session] = (now, total)  # the most recent last
            while len(self.sessions) > self.max_sessions:
                self.sessions.popitem(last=False)
            return total

    def _forget_older_than(self, oldest: float) -> None:
        while self.sessions and next(iter(self.sessions.values()))[0] < oldest:
            self.sessions.popitem(last=False)

    def __len__(self) -> int:
        with self.lock:
            return len(self.sessions)

    def __contains__(self, session: str) -> bool:
        with self.lock:
            return session in self.sessions
