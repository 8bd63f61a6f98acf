"""The contract holds under real concurrent HTTP clients against a live server, on both databases."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import httpx

from tests.conftest import VIA_PGBOUNCER
from tests.support.clinic import CourseDriver, open_course

pytestmark = VIA_PGBOUNCER
CLIENTS = 20


def _race(base: str, requests: list[tuple[str, str, dict, dict]]) -> list[httpx.Response]:
    """Fire the requests at once from separate threads, each with its own connection."""
    barrier = threading.Barrier(len(requests))

    def fire(request: tuple[str, str, dict, dict]) -> httpx.Response:
        method, path, body, headers = request
        with httpx.Client(base_url=base, timeout=60) as http:
            http.get("/healthz")  # open the connection before the start line
            barrier.wait()
            return http.request(method, path, json=body, headers=headers)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(fire, requests))


async def _course_at_last_session(client, actor) -> CourseDriver:
    """An ipc course (3 planned, 1 termination) with 2 sessions attended, in termination."""
    drive = CourseDriver(client, actor, await open_course(client, actor, "ipc", planned_sessions=3))
    await drive.session()
    await drive.prepare_middle()
    await drive.move("middle")
    await drive.session()
    await drive.move("termination")
    return drive


async def _assert_state_allowed(client, actor, drive: CourseDriver) -> list[dict]:
    """Numbers gap-free from 1; every attended session in a phase the rules allow for its number."""
    course = await drive.read()
    sessions = (await client.get(f"{drive.url}/sessions?limit=200", headers=actor.headers)).json()["data"]
    attended = [s for s in sessions if s["attendance"] == "attended"]
    assert [s["number"] for s in attended] == list(range(1, len(attended) + 1))
    assert course["sessions_attended"] == len(attended) <= course["session_limit"]
    from app.rules import PROTOCOLS

    spec = PROTOCOLS[course["protocol"]]
    for s in attended:
        if s["number"] > spec.initial_max:
            assert s["phase"] != "initial", s
        if s["number"] > course["session_limit"] - spec.termination_min:
            assert s["phase"] == "termination", s
    return attended


async def test_last_session_race_has_one_winner(client, world, live_url):
    drive = await _course_at_last_session(client, world.clinician)
    held_on = (date.today() - timedelta(days=1)).isoformat()
    body = {"held_on": held_on, "attendance": "attended"}
    responses = _race(live_url, [("POST", f"{drive.url}/sessions", body, world.clinician.headers)] * CLIENTS)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (CLIENTS - 1), [r.text for r in responses if r.status_code not in (201, 409)]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"session_limit_reached"}
    assert {r.json()["rule"] for r in responses if r.status_code == 409} == {"S3"}
    attended = await _assert_state_allowed(client, world.clinician, drive)
    assert len(attended) == 3


async def test_missed_sessions_racing_are_all_recorded_without_numbers(client, world, live_url):
    drive = await _course_at_last_session(client, world.clinician)
    body = {"held_on": (date.today() - timedelta(days=1)).isoformat(), "attendance": "missed"}
    responses = _race(live_url, [("POST", f"{drive.url}/sessions", body, world.clinician.headers)] * 10)
    assert [r.status_code for r in responses] == [201] * 10
    assert all(r.json()["number"] is None for r in responses)
    await _assert_state_allowed(client, world.clinician, drive)


async def test_transition_racing_session_leaves_allowed_state(client, world, live_url):
    """Middle phase at the last middle session: either order is fine, the outcome must be allowed."""
    for attended_in_middle in (8, 9):  # ipt-a, 12 planned: the last middle session is number 10
        drive = CourseDriver(client, world.clinician, await open_course(client, world.clinician, "ipt-a"))
        await drive.session()
        await drive.prepare_middle()
        await drive.move("middle")
        for _ in range(attended_in_middle):
            await drive.session()
        held_on = (drive.day + timedelta(days=1)).isoformat()
        responses = _race(live_url, [
            ("POST", f"{drive.url}/sessions", {"held_on": held_on, "attendance": "attended"}, world.clinician.headers),
            ("POST", f"{drive.url}/transitions", {"to": "termination"}, world.clinician.headers),
        ])
        session, transition = responses
        assert transition.status_code == 200, transition.text
        assert session.status_code in (201, 409), session.text
        if session.status_code == 409:
            assert session.json()["code"] == "termination_phase_required"
        await _assert_state_allowed(client, world.clinician, drive)
        assert (await drive.read())["phase"] == "termination"
