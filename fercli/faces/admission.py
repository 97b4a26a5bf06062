"""Which requests fer serve takes, decided before their bodies are read, and the bounded read of those it takes.

A request is admitted while the wait it can expect stays under ``max_wait_s``: the requests already in (being read,
waiting or being analysed) shared among the workers, times the time one takes (a moving average of the last ones).
A burst of quick requests is queued and served; a flood that would wait longer is told 503 with a Retry-After of
that wait. The bodies in flight also share a byte budget, so slow uploads cannot hold the memory hostage: an upload
reserves its declared size (the largest allowed when it declares none) before a byte of it is read.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_WAIT_S = 10.0
BODY_BUDGET_BYTES = 128 * 1024 * 1024  # bodies held at once, read or waiting: six of the largest uploads
READ_TIMEOUT_S = 30.0  # an upload that sends nothing for this long is dropped
FRAMING = 64 * 1024  # what multipart headers and boundaries may add to the image itself


class TooLarge(Exception):
    pass


class TooSlow(Exception):
    pass


@dataclass
class Ticket:
    reserved: int
    entered: float


class Admission:
    """One per server; used from its event loop only (no locks needed)."""

    def __init__(self, *, workers: int, max_wait_s: float = MAX_WAIT_S, budget: int = BODY_BUDGET_BYTES,
                 first_guess_s: float = 0.1):
        self.workers, self.max_wait_s, self.budget = workers, max_wait_s, budget
        self.service_s = first_guess_s  # moving average of one request's analysis time
        self.inside, self.held = 0, 0

    def expected_wait(self) -> float:
        return self.inside / self.workers * self.service_s

    def enter(self, declared: int | None, limit: int) -> Ticket | float:
        """A ticket, or the seconds to wait before trying again."""
        wait = self.expected_wait()
        reserved = min(declared, limit + FRAMING) if declared is not None else limit + FRAMING
        if wait > self.max_wait_s or self.held + reserved > self.budget:
            return max(1.0, wait)
        self.inside += 1
        self.held += reserved
        return Ticket(reserved, time.perf_counter())

    def leave(self, ticket: Ticket, service_s: float | None = None) -> None:
        self.inside -= 1
        self.held -= ticket.reserved
        if service_s is not None:  # analysed: the average follows the machine's real pace
            self.service_s = 0.8 * self.service_s + 0.2 * service_s

    @staticmethod
    def retry_after(seconds: float) -> str:
        return str(math.ceil(seconds))


async def read_body(receive_chunks, limit: int, timeout_s: float = READ_TIMEOUT_S) -> bytes:
    """Every byte of a body, of any kind (raw, multipart, chunked), stopped at ``limit`` and at ``timeout_s`` without
    a byte. ``receive_chunks``: the request's stream (an async iterator of bytes)."""
    chunks, size = [], 0
    iterator = receive_chunks.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), timeout_s)
        except StopAsyncIteration:
            return b"".join(chunks)
        except asyncio.TimeoutError:
            raise TooSlow from None
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
