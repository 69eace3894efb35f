"""The one worker that checks passwords: scrypt off the event loop, in bounded memory.

scrypt (``auth.verify_password``) needs 16 MiB of work memory a hash. Run on the
event loop's default pool, each of its threads kept its last 16 MiB in a malloc arena
of its own (glibc raises its mmap threshold to the largest block freed, so from the
second hash on the block comes from the arena and stays there): 155 wrong passwords
left 112 MiB behind on a Pi for good (issue 22). Here one thread hashes, glibc is told
to map blocks of :data:`MMAP_THRESHOLD` and more on their own, so each hash's 16 MiB
goes back to the system when it is freed, and at most :data:`MAX_WAITING` logins wait
for it: the next is answered 503 at once (``LoginBusy``), and the household's login
goes before those of addresses that have been wrong already, so a crowd of guessers
costs the household a moment, never the memory.

Example (in a ``cleanup_ctx``)::

    worker = PasswordWorker()
    ok = await worker.verify("correct horse", stored_hash, failures=0)  # or LoginBusy
    worker.close()
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .auth import verify_password
from .errors import LoginBusy

log = logging.getLogger(__name__)

MAX_WAITING = 8
"""Logins waiting for the worker (the last waits 9 hashes: half a second on an x86 core
of the tests); the next is told to try again in a second, and its address is not
charged for it."""
MMAP_THRESHOLD = 8 * 1024 * 1024
"""Blocks this large and larger get pages of their own, unmapped when freed: scrypt's
16 MiB, never a video frame (720p is 1.4 MB). Within glibc's limit (16 MiB on 32-bit)."""
_M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>


@functools.cache
def return_large_blocks() -> bool:
    """Set glibc's mmap threshold to :data:`MMAP_THRESHOLD` for this process (once);
    False with another C library (musl unmaps large blocks anyway)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        done = False
    if not done:
        log.info("cannot set the C library's mmap threshold: scrypt's memory may be kept")
    return done


@dataclass(eq=False)
class _Waiter:
    failures: int
    """Recent wrong passwords from its address: fewer is served first."""
    turn: asyncio.Future[None]


class PasswordWorker:
    """One thread for scrypt, and at most ``max_waiting`` logins waiting for it, the
    one from the address with the fewest recent wrong passwords first (the household,
    not a guesser that has already been wrong; first come among equals). A login that
    finds every place taken by logins with as few failures is told "busy"; one with
    fewer takes the place of the last with most, which is told "busy" instead."""

    def __init__(self, *, max_waiting: int = MAX_WAITING) -> None:
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="scrypt")
        self._hashing = False
        self._waiting: list[_Waiter] = []
        return_large_blocks()

    async def verify(self, password: str, stored: str, *, failures: int = 0) -> bool:
        """Whether ``password`` matches the ``stored`` scrypt hash. Raises LoginBusy
        (503, Retry-After: 1) when no place is left for a login with ``failures``."""
        await self._take_turn(failures)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, verify_password, password, stored
            )
        finally:
            self._pass_turn()

    async def _take_turn(self, failures: int) -> None:
        if not self._hashing and not self._waiting:
            self._hashing = True
            return
        if len(self._waiting) >= self.max_waiting:
            last = max(reversed(self._waiting), key=lambda w: w.failures)
            if last.failures <= failures:
                raise LoginBusy()
            self._waiting.remove(last)
            last.turn.set_exception(LoginBusy())
        waiter = _Waiter(failures, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        try:
            await waiter.turn
        except asyncio.CancelledError:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.turn.done() and not waiter.turn.cancelled():
                self._pass_turn()  # handed the turn, then cancelled: hand it on
            raise

    def _pass_turn(self) -> None:
        self._hashing = False
        if self._waiting:
            first = min(self._waiting, key=lambda w: w.failures)  # the earliest of those
            self._waiting.remove(first)
            self._hashing = True
            first.turn.set_result(None)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
