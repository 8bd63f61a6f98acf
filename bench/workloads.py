"""The benchmarked endpoints: what each requests, on the API and on the floor, and the data files wrk reads.

Reads pick paths at random from a list written once. Writes are prepared again before every wrk
invocation from the database's current state (each course's last session number and date), so
whatever the previous runs wrote, every prepared request is one the rules allow.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg
from common import BenchError
from load import READ_SCRIPT, WRITE_SCRIPT, Prepare
from seed import Seeded
from servers import http

from app.core.pagination import encode_cursor
from app.rules import PROTOCOLS

# The pool courses are IPT (16 planned, 2 in termination) in the middle phase: S5 allows numbers up to 14.
LAST_MIDDLE_NUMBER = PROTOCOLS["ipt"].default_planned - PROTOCOLS["ipt"].termination_min
# An upper bound on either server's write rate here, to size the measure bodies prepared per course.
RATE_CEILING = 5000
_JSON = {"separators": (",", ":")}


@dataclass(frozen=True)
class Endpoint:
    """One row of the results table."""

    name: str
    label: str
    request: str  # as shown in the table
    login: str  # whose token: "clinician", or the supervisor of the "small" or "big" list organization
    write: bool = False
    courses: int = 0  # lists: how many courses the organization has

    @property
    def script(self) -> Path:
        return WRITE_SCRIPT if self.write else READ_SCRIPT


def endpoints(seeded: Seeded) -> list[Endpoint]:
    """Reads first, then writes, so the writes never disturb what the reads measure."""
    found = [Endpoint("get_course", "get a course", "GET /v1/courses/{id}", "clinician")]
    for label in ("small", "big"):
        if label in seeded.lists:
            size = seeded.lists[label][2]
            found.append(Endpoint(f"list_{label}", f"list courses ({size:,}-course org)",
                                  "GET /v1/courses?cursor=...", label, courses=size))
    found += [
        Endpoint("outcomes", "get outcomes", "GET /v1/courses/{id}/outcomes", "clinician"),
        Endpoint("record_session", "record a session", "POST /v1/courses/{id}/sessions", "clinician", write=True),
        Endpoint("record_measure", "record a measure", "POST /v1/courses/{id}/measures", "clinician", write=True),
    ]
    if seeded.group_pool:
        found.append(Endpoint("record_group_session", "record a group session (8 members)",
                              "POST /v1/groups/{id}/sessions", "clinician", write=True))
    return found


class Workloads:
    """Writes the data file of each endpoint for the API or the floor."""

    def __init__(self, database_url: str, seeded: Seeded, sign, out: Path, threads: int, measured_seconds: int) -> None:
        self.url, self.seeded, self.sign, self.out, self.threads = database_url, seeded, sign, out, threads
        self.measured_seconds = measured_seconds
        self.rng = random.Random(7)
        self._list_ids: dict[str, list[str]] = {}

    def prepare(self, endpoint: Endpoint, floor: bool, token: str | None) -> Prepare:
        """A callable that writes the data file for the next wrk invocation and returns the script's arguments."""
        path = self.out / f"{endpoint.name}-{'floor' if floor else 'api'}.txt"

        def run() -> list[str]:
            lines = self.lines(endpoint, floor)
            if not lines:
                raise BenchError(f"{endpoint.label}: no requests left to prepare (the write pool is used up; "
                                 "run again with a bigger --session-courses / --measure-courses)")
            path.write_text("\n".join(lines) + "\n")
            auth = [token] if token else []
            return [str(path), str(self.threads), *auth] if endpoint.write else [str(path), *auth]

        return run

    def lines(self, endpoint: Endpoint, floor: bool) -> list[str]:
        """The paths (reads) or path-and-bodies lines (writes) of an endpoint."""
        if endpoint.name == "get_course":
            return [f"/v1/courses/{c}" for c in self.seeded.read_courses]
        if endpoint.name == "outcomes":
            return [f"/v1/courses/{c}/outcomes" for c in self.seeded.read_courses]
        if endpoint.name.startswith("list_"):
            org = self.seeded.lists[endpoint.login][0]
            if floor:
                return [f"/v1/courses?org={org}&after={i}" for i in self.list_ids(endpoint.login)]
            cursors = (encode_cursor(self.sign, "courses", i) for i in self.list_ids(endpoint.login))
            return [f"/v1/courses?cursor={c}" for c in cursors]
        if endpoint.name == "record_session":
            return self.session_lines(floor)
        if endpoint.name == "record_measure":
            return self.measure_lines(floor)
        if endpoint.name == "record_group_session":
            return self.group_session_lines(floor)
        raise BenchError(f"unknown endpoint {endpoint.name}")

    def list_ids(self, label: str, how_many: int = 5000) -> list[str]:
        """Random course ids of a list organization, leaving out its last page so every page is full.

        A cursor made at one of them (signed as the app signs it) reads the page after it, so the
        load reads pages all through the list, not just the first.
        """
        if label not in self._list_ids:
            org = self.seeded.lists[label][0]
            with psycopg.connect(self.url) as conn:
                rows = conn.execute(
                    "SELECT id FROM course WHERE organization_id = %(org)s AND id < (SELECT id FROM course "
                    "WHERE organization_id = %(org)s ORDER BY id DESC OFFSET 50 LIMIT 1) ORDER BY random() LIMIT %(n)s",
                    {"org": org, "n": how_many}).fetchall()
            self._list_ids[label] = [r[0] for r in rows]
        return self._list_ids[label]

    def session_lines(self, floor: bool) -> list[str]:
        """Per pool course, its next attended sessions a week apart, up to the last number S5 allows."""
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT course_id, max(number), max(held_on) FROM therapy_session WHERE course_id = ANY(%s) "
                "GROUP BY course_id ORDER BY course_id", (self.seeded.session_pool,)).fetchall()
        lines = []
        for course, number, latest in rows:
            bodies = []
            for k in range(1, LAST_MIDDLE_NUMBER - number + 1):
                body = {"held_on": (latest + timedelta(days=7 * k)).isoformat(), "attendance": "attended",
                        "modality": "in_person", "duration_minutes": 50, "problem_areas_addressed": ["role_dispute"],
                        "note": "Bench session note."}
                if floor:
                    body["number"] = number + k  # the floor does not count: it is told
                bodies.append(json.dumps(body, **_JSON))
            if bodies:
                lines.append("\t".join([f"/v1/courses/{course}/sessions", *bodies]))
        return lines

    def measure_lines(self, floor: bool) -> list[str]:
        """Per pool course, PHQ-9s dated at its latest session (item 9 at 0: no risk flag), enough for one run."""
        with psycopg.connect(self.url) as conn:
            rows = conn.execute("SELECT id, latest_session_on, sessions_attended FROM course WHERE id = ANY(%s) "
                                "ORDER BY id", (self.seeded.measure_pool,)).fetchall()
        per_course = math.ceil(self.measured_seconds * RATE_CEILING / max(len(rows), 1)) + 2
        lines = []
        for course, latest, attended in rows:
            bodies = []
            for _ in range(per_course):
                body = {"instrument": "phq-9", "administered_on": latest.isoformat(),
                        "items": [self.rng.randint(0, 3) for _ in range(8)] + [0]}
                if floor:
                    body["session_number"] = attended  # the floor does not count: it is told
                bodies.append(json.dumps(body, **_JSON))
            lines.append("\t".join([f"/v1/courses/{course}/measures", *bodies]))
        return lines


    def group_session_lines(self, floor: bool) -> list[str]:
        """Per pool group, its remaining group sessions a week apart, every member present (the floor is told
        the numbers, phases and courses)."""
        from app.rules.groups import GROUP_PROTOCOLS

        with psycopg.connect(self.url) as conn:
            groups = conn.execute("SELECT id, sessions_held, planned_sessions, latest_session_on FROM ipt_group "
                                  "WHERE id = ANY(%s) ORDER BY id", (self.seeded.group_pool,)).fetchall()
            members = conn.execute("SELECT group_id, id, course_id FROM group_member WHERE group_id = ANY(%s) "
                                   "AND status = 'active' ORDER BY group_id, id", (self.seeded.group_pool,)).fetchall()
        by_group: dict[str, list[tuple[str, str]]] = {}
        for group_id, member_id, course_id in members:
            by_group.setdefault(group_id, []).append((member_id, course_id))
        spec, start = GROUP_PROTOCOLS["group-ipt"], date.today() - timedelta(days=7 * 17)
        lines = []
        for group_id, held, planned, latest in groups:
            bodies = []
            for number in range(held + 1, planned + 1):
                body = {"held_on": ((latest or start) + timedelta(days=7 * (number - held))).isoformat(),
                        "duration_minutes": 90,
                        "attendance": [{"member_id": m, "attendance": "attended"} for m, _ in by_group[group_id]]}
                if floor:  # the floor does not count: it is told
                    body = {**body, "number": number, "phase": spec.phase_of(number, planned),
                            "courses": [c for _, c in by_group[group_id]]}
                bodies.append(json.dumps(body, **_JSON))
            if bodies:
                lines.append("\t".join([f"/v1/groups/{group_id}/sessions", *bodies]))
        return lines


def probe(base: str, endpoint: Endpoint, lines: list[str], token: str | None) -> tuple[int, object]:
    """One request of the endpoint (the first prepared one); its status and parsed body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if endpoint.write:
        path, body = lines[0].split("\t")[:2]
        headers["Content-Type"] = "application/json"
        status, raw = http("POST", base + path, data=body.encode(), headers=headers)
    else:
        status, raw = http("GET", base + lines[0], headers=headers)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw[:300]


def same_data(endpoint: Endpoint, api: object, floor: object) -> str:
    """Whether the API and the floor answered the same probe (a read) with the same rows."""
    if endpoint.write:
        return "n/a (each inserts its own row)"
    if endpoint.name == "get_course":
        shared = [k for k in api if k in floor]
        differ = [k for k in shared if api[k] != floor[k]]
        return f"same {len(shared)} shared fields" if not differ else f"DIFFERENT fields: {differ}"
    if endpoint.name.startswith("list_"):
        same = [c["id"] for c in api["data"]] == [c["id"] for c in floor["data"]]
        return f"same {len(api['data'])} course ids" if same else "DIFFERENT course ids"
    if endpoint.name == "outcomes":
        api_ids = {p["measure_id"] for i in api["instruments"] for p in i["trajectory"]}
        floor_ids = {m["id"] for m in floor}
        return f"same {len(api_ids)} measures" if api_ids == floor_ids else "DIFFERENT measures"
    return "?"
