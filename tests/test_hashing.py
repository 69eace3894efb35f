"""The password worker's policy (appliance/hashing.py): one scrypt at a time, a bounded
queue, the fewest recent failures first, "busy" for whoever is left over."""

from __future__ import annotations

import asyncio

import pytest

from appliance.auth import hash_password
from appliance.errors import LoginBusy
from appliance.hashing import PasswordWorker, return_large_blocks

STORED = hash_password("correct horse")


@pytest.fixture
async def worker() -> PasswordWorker:
    return PasswordWorker(max_waiting=2)


async def started(worker: PasswordWorker, password: str, failures: int) -> asyncio.Task[bool]:
    task = asyncio.create_task(worker.verify(password, STORED, failures=failures))
    await asyncio.sleep(0)  # it has taken the worker or its place in the queue
    return task


async def test_the_right_password_matches_and_a_wrong_one_does_not(
    worker: PasswordWorker,
) -> None:
    assert await worker.verify("correct horse", STORED) is True
    assert await worker.verify("wrong", STORED) is False


async def test_the_address_with_fewest_failures_goes_first(worker: PasswordWorker) -> None:
    done: list[str] = []

    async def login(name: str, failures: int) -> None:
        await worker.verify("wrong", STORED, failures=failures)
        done.append(name)

    first = asyncio.create_task(login("hashing", 4))
    await asyncio.sleep(0)
    guesser = asyncio.create_task(login("guesser", 3))
    await asyncio.sleep(0)
    household = asyncio.create_task(login("household", 0))
    await asyncio.gather(first, guesser, household)
    assert done == ["hashing", "household", "guesser"]


async def test_a_full_queue_says_busy_to_equals_and_makes_room_for_fewer_failures(
    worker: PasswordWorker,
) -> None:
    hashing = await started(worker, "wrong", 1)
    early = await started(worker, "wrong", 2)
    late = await started(worker, "wrong", 2)
    with pytest.raises(LoginBusy):
        await worker.verify("wrong", STORED, failures=2)  # full of equals: at once
    household = await started(worker, "correct horse", 0)
    with pytest.raises(LoginBusy):
        await late  # the last of those with most failures gave its place
    assert await household is True
    assert await early is False
    assert await hashing is False


async def test_a_cancelled_login_gives_its_place_and_its_turn_back(
    worker: PasswordWorker,
) -> None:
    hashing = await started(worker, "wrong", 0)
    gone = await started(worker, "wrong", 0)
    gone.cancel()
    after = await started(worker, "correct horse", 0)
    assert await hashing is False
    assert await after is True
    with pytest.raises(asyncio.CancelledError):
        await gone
    # handed the turn and cancelled before it ran: the next login still gets one
    mine = worker.verify("wrong", STORED)  # this task's: it takes the worker first
    handed = asyncio.create_task(worker.verify("wrong", STORED))
    nxt = asyncio.create_task(worker.verify("correct horse", STORED))
    assert await mine is False
    handed.cancel()  # its turn was handed as mine ended; it has not run since
    assert await nxt is True
    with pytest.raises(asyncio.CancelledError):
        await handed


def test_glibc_is_told_to_unmap_scrypts_memory() -> None:
    assert return_large_blocks() is True
