"""Failure budgets slide (no double allowance at a window's edge), agree in memory and in Redis, and keep
counting in the process when Redis does not answer."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.core.ratelimit import PENDING_SECONDS, Budget, MemoryRateLimiter, RedisRateLimiter, retry_after
from tests.support.live import free_port
from tests.support.redisdb import REDIS_TIMEOUT_SECONDS, REDIS_URL, redis_prefix

WINDOW = 60.0
T0 = 1_800_000_000.0  # a window boundary of the fixed windows this replaced (T0 % 60 == 0)


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest):
    """A limiter of each kind; the Redis one under a key prefix of its own, deleted afterwards."""
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    with redis_prefix() as prefix:
        redis_limiter = RedisRateLimiter(REDIS_URL, prefix, REDIS_TIMEOUT_SECONDS)
        try:
            yield redis_limiter
        finally:
            await redis_limiter.close()


async def _fail(limiter, budget: Budget, at: float, ticket: str) -> list[float]:
    """One attempt at ``at`` that fails if admitted; the waits it was given."""
    waits = await limiter.admit([budget], WINDOW, ticket, at)
    if not any(waits):
        await limiter.settle([budget], WINDOW, ticket, at, failed=True)
    return waits


async def test_a_guesser_gains_nothing_at_a_window_edge(limiter):
    budget = Budget("login:acct:edge", 10)
    for n in range(10):
        assert await _fail(limiter, budget, T0 - 0.5 + n * 0.01, f"t{n}") == [0.0]
    # A fixed window would start afresh at T0 and allow ten more; the sliding log waits for the first to age out.
    waits = await _fail(limiter, budget, T0 + 0.5, "late")
    assert waits[0] == pytest.approx(WINDOW - 1.0) and retry_after(waits) == 59
    assert any(await _fail(limiter, budget, T0 + WINDOW - 0.51, "early"))
    assert await _fail(limiter, budget, T0 + WINDOW - 0.5, "aged") == [0.0]  # the first one's minute is over
    assert any(await _fail(limiter, budget, T0 + WINDOW - 0.495, "next"))  # and only the first one's


async def test_attempts_in_flight_count_against_a_strict_budget_until_they_settle(limiter):
    budget = Budget("login:acct:strict", 2)
    assert await limiter.admit([budget], WINDOW, "a", T0) == [0.0]
    assert await limiter.admit([budget], WINDOW, "b", T0) == [0.0]
    assert await limiter.admit([budget], WINDOW, "c", T0) == [1.0]  # both slots are in flight
    await limiter.settle([budget], WINDOW, "a", T0 + 0.1, failed=False)  # a success gives its slot back
    assert await limiter.admit([budget], WINDOW, "c", T0 + 0.2) == [0.0]
    # A slot whose process died is dropped after PENDING_SECONDS.
    assert await limiter.admit([budget], WINDOW, "d", T0 + 0.3) == [1.0]
    assert await limiter.admit([budget], WINDOW, "d", T0 + PENDING_SECONDS + 0.3) == [0.0]


async def test_an_attempt_is_admitted_on_all_its_budgets_or_on_none(limiter):
    address, account = Budget("login:ip:x", 1), Budget("login:acct:y", 5)
    assert await _fail(limiter, address, T0, "first") == [0.0]
    waits = await limiter.admit([account, address], WINDOW, "second", T0 + 1)
    assert waits[0] == 0.0 and waits[1] == pytest.approx(WINDOW - 1)
    # The refusal took no slot on the budget that had room: five attempts still fit in it.
    for n in range(5):
        assert await limiter.admit([account], WINDOW, f"n{n}", T0 + 2) == [0.0]


async def test_headroom_lets_attempts_in_flight_past_the_limit_but_not_failures(limiter):
    budget = Budget("login:ip:burst", 2, headroom=2)
    assert [await limiter.admit([budget], WINDOW, f"b{n}", T0) for n in range(5)] == [[0.0]] * 4 + [[1.0]]
    for n in range(4):
        await limiter.settle([budget], WINDOW, f"b{n}", T0 + 0.1, failed=True)
    assert (await limiter.admit([budget], WINDOW, "after", T0 + 0.2))[0] == pytest.approx(WINDOW - 0.1)


async def test_unreachable_redis_falls_back_to_counting_in_this_process(caplog):
    dead = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", "ipt-test-dead:")
    budget = Budget("login:acct:down", 3)
    try:
        with caplog.at_level(logging.ERROR, logger="ipt.ratelimit"):
            await asyncio.gather(*(dead.hit(f"user:{n}", 10) for n in range(20)))  # all find it down at once
            waits = [await _fail(dead, budget, T0 + n, f"d{n}") for n in range(4)]
            assert await dead.hit("user:down", 1) is None and await dead.hit("user:down", 1) is not None
    finally:
        await dead.close()
    assert waits[:3] == [[0.0]] * 3 and waits[3][0] == pytest.approx(WINDOW - 3)  # still limited, not open
    assert [r.message for r in caplog.records if "Redis is not answering" in r.message]
    assert len(caplog.records) == 1  # once per outage, not once per attempt
