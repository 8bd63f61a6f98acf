"""Helpers that record outcome measures through the HTTP API."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.support.world import Actor


def phq9(total: int, item9: int = 0) -> list[int]:
    """PHQ-9 items adding up to ``total`` with item 9 (the risk item) as given."""
    rest = total - item9
    assert 0 <= rest <= 24 and 0 <= item9 <= 3
    items = [min(3, max(0, rest - 3 * i)) for i in range(8)]
    return [*items, item9]


def gad7(total: int) -> list[int]:
    """GAD-7 items adding up to ``total``."""
    return [min(3, max(0, total - 3 * i)) for i in range(7)]


def day(course: dict, offset: int) -> str:
    """The course's start date plus ``offset`` days, as the API writes dates."""
    return (date.fromisoformat(course["started_on"]) + timedelta(days=offset)).isoformat()


async def record(client: Any, actor: Actor, course: dict, instrument: str, items: Any = None, *, on: str | None = None,
                 expect: int = 201, **extra: Any) -> dict:
    """POST a measure and return the response body, asserting the status."""
    body: dict[str, Any] = {"instrument": instrument, "administered_on": on or day(course, 0), **extra}
    if items is not None:
        body["items"] = items
    response = await client.post(f"/v1/courses/{course['id']}/measures", json=body, headers=actor.headers)
    assert response.status_code == expect, response.text
    return response.json()


async def course_codes(client: Any, actor: Actor, course: dict) -> list[str]:
    """The advisory codes the course carries now."""
    response = await client.get(f"/v1/courses/{course['id']}", headers=actor.headers)
    assert response.status_code == 200, response.text
    return [a["code"] for a in response.json()["advisories"]]
