"""Helpers that drive a course through the HTTP API, as a clinician's app would."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from app.core.ids import new_id, utcnow
from tests.support.world import Actor, create_patient

AGREED_FORMULATION = {
    "diagnosis": "F32.1",
    "summary": "Low mood since the move, linked to the loss of a work role.",
    "status": "agreed",
    "problem_areas": [
        {"area": "role_transition", "focal": True, "primary": True,
         "details": {"old_role": "nurse", "new_role": "carer"},
         "goals": [{"text": "Build support in the new role"}]},
    ],
}


async def open_course(client: Any, actor: Actor, protocol: str = "ipt", started_days_ago: int = 200, **fields: Any) -> dict:
    """A new patient and an open course for them, started some days ago so sessions can be dated."""
    patient = await create_patient(client, actor)
    body = {"patient_id": patient["id"], "protocol": protocol,
            "started_on": (date.today() - timedelta(days=started_days_ago)).isoformat(), **fields}
    response = await client.post("/v1/courses", json=body, headers=actor.headers)
    assert response.status_code == 201, response.text
    return response.json()


class CourseDriver:
    """Records sessions with increasing dates and moves phases, asserting each step is accepted."""

    def __init__(self, client: Any, actor: Actor, course: dict) -> None:
        self.client, self.actor, self.course = client, actor, course
        self.day = date.fromisoformat(course["started_on"])

    @property
    def url(self) -> str:
        return f"/v1/courses/{self.course['id']}"

    async def session(self, attendance: str = "attended", expect: int = 201) -> Any:
        """Record one session a day after the previous one."""
        self.day += timedelta(days=1)
        body = {"held_on": self.day.isoformat(), "attendance": attendance, "modality": "video"}
        response = await self.client.post(f"{self.url}/sessions", json=body, headers=self.actor.headers)
        assert response.status_code == expect, response.text
        return response.json()

    async def move(self, to: str, expect: int = 200, **extra: Any) -> Any:
        """Ask for a phase transition."""
        response = await self.client.post(f"{self.url}/transitions", json={"to": to, **extra}, headers=self.actor.headers)
        assert response.status_code == expect, response.text
        if expect == 200:
            self.course = response.json()
        return response.json()

    async def prepare_middle(self) -> None:
        """Write an agreed formulation and one inventory relationship (P2, P3)."""
        response = await self.client.put(f"{self.url}/formulation", json=AGREED_FORMULATION, headers=self.actor.headers)
        assert response.status_code == 201, response.text
        relationship = {"label": "Partner (J)", "relationship": "partner", "ring": 1}
        response = await self.client.post(f"{self.url}/inventory", json=relationship, headers=self.actor.headers)
        assert response.status_code == 201, response.text

    async def read(self) -> dict:
        response = await self.client.get(self.url, headers=self.actor.headers)
        assert response.status_code == 200, response.text
        self.course = response.json()
        return self.course


def outbox_event(org_id: str, event_id: str | None = None) -> dict:
    """An outbox row to queue by hand (the tests of queued writes and transactions)."""
    return {"id": event_id or new_id(), "organization_id": org_id, "type": "course.created", "data": {"n": 1},
            "created_at": utcnow()}
