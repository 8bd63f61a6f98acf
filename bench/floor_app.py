"""The floor: the least a Python server can do for each benchmarked endpoint, from PostgreSQL.

A raw ASGI app (no framework, no auth, no ORM) on the same uvicorn as the API. Each request runs,
on a psycopg 3 pool (prepared statements as psycopg does by default), the same read or insert as
the API (same table, same columns) plus an INSERT into audit_event with the columns the app
fills, and answers with orjson. As in the API, a read and its audit row are two statements with
no transaction around them (each is atomic; at READ COMMITTED a transaction adds nothing to a
read), and an insert and its audit row are one transaction. What it does not do, on purpose:

- no token, no account re-read, no caseload filter, no rate limit, no idempotency;
- the list takes its organization and position as plain query parameters (``?org=&after=``), not
  a signed cursor, and returns the last id as ``next_cursor``;
- outcomes returns the course's measures (the columns the API's outcomes query reads), not the
  outcomes computed from them;
- the session and measure POSTs insert the row (the session's ``number`` and the measure's
  ``session_number`` come in the body: the floor does not count) plus the audit row; they do not
  lock the course, check the rules, update the course's counters or write a webhook outbox row;
  the measure is scored as a PHQ-9 (sum of the items, severity band, item 9 as the risk item);
- the audit row is not sealed into the hash chain (the API's sealer does that in the background).

    FLOOR_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/<db> FLOOR_ACTOR_ID=<user id> \\
    uvicorn floor_app:app --app-dir bench --workers 1 --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs

import orjson
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

COURSE_COLUMNS = (  # app.courses.repository.COURSE_COLUMNS
    "id, organization_id, patient_id, therapist_id, protocol, planned_sessions, extension_sessions, phase, started_on, "
    "ended_on, end_reason, diagnosis, sessions_attended, attended_in_phase, latest_session_on, risk_flag_open, "
    "first_measure_on, last_measure_on, last_measure_session_number, first_attended_on, version, created_at, updated_at"
)
MEASURE_COLUMNS = (  # app.measures.repository.PUBLIC
    "id, course_id, session_id, instrument, administered_on, items, total, severity, risk_items, session_number, "
    "risk_flag_open, acknowledged_at, acknowledged_by_id, version, created_at, created_by"
)
POINT_COLUMNS = "id, instrument, administered_on, session_number, total, severity"  # app.measures.repository.POINT
SESSION_COLUMNS = (  # app.sessions.repository.PUBLIC
    "id, course_id, number, held_on, attendance, modality, duration_minutes, problem_areas_addressed, note, phase, "
    "version, created_at, updated_at"
)
GET_COURSE = f"SELECT {COURSE_COLUMNS} FROM course WHERE id = %s"
LIST_PAGE = f"SELECT {COURSE_COLUMNS} FROM course WHERE organization_id = %s AND id > %s ORDER BY id LIMIT %s"
OUTCOME_MEASURES = f"SELECT {POINT_COLUMNS} FROM measure WHERE course_id = %s ORDER BY administered_on, id"
# The inserts take the organization (and the session its phase) from the course, in the same statement.
INSERT_SESSION = (
    "INSERT INTO therapy_session (id, organization_id, course_id, number, held_on, attendance, modality, "
    "duration_minutes, problem_areas_addressed, note, phase, version, created_at, updated_at) "
    "SELECT %(id)s, c.organization_id, c.id, %(number)s, %(held_on)s, %(attendance)s, %(modality)s, "
    "%(duration_minutes)s, %(problem_areas_addressed)s, %(note)s, c.phase, 1, %(now)s, %(now)s "
    f"FROM course c WHERE c.id = %(course_id)s RETURNING {SESSION_COLUMNS}"
)
INSERT_MEASURE = (
    "INSERT INTO measure (id, organization_id, course_id, session_id, instrument, administered_on, items, total, "
    "severity, risk_items, session_number, risk_flag_open, acknowledged_at, acknowledged_by_id, version, created_at, "
    "created_by) "
    "SELECT %(id)s, c.organization_id, c.id, NULL, %(instrument)s, %(administered_on)s, %(items)s, %(total)s, "
    "%(severity)s, %(risk_items)s, %(session_number)s, %(risk_flag_open)s, NULL, NULL, 1, %(now)s, %(actor)s "
    f"FROM course c WHERE c.id = %(course_id)s RETURNING {MEASURE_COLUMNS}"
)
_AUDIT_NAMES = "id, organization_id, at, actor_type, actor_id, action, resource_type, resource_id, patient_id, " \
    "request_id, ip, user_agent, outcome, details"
AUDIT = (
    f"INSERT INTO audit_event ({_AUDIT_NAMES}) VALUES (%(id)s, %(org)s, %(now)s, 'user', %(actor)s, %(action)s, "
    "%(type)s, %(resource)s, %(patient)s, %(request)s, %(ip)s, %(agent)s, %(outcome)s, '{}')"
)
AUDIT_OF_COURSE = (  # organization and patient from the course, as the API's audit row has them
    f"INSERT INTO audit_event ({_AUDIT_NAMES}) SELECT %(id)s, c.organization_id, %(now)s, 'user', %(actor)s, "
    "%(action)s, %(type)s, %(resource)s, c.patient_id, %(request)s, %(ip)s, %(agent)s, %(outcome)s, '{}' "
    "FROM course c WHERE c.id = %(course)s"
)
# A group session: the group's row locked, the session, each member's session of their own course (numbered as
# told), their courses' counters and the group's, one audit row: what the API writes, without the rules.
LOCK_GROUP = "SELECT organization_id FROM ipt_group WHERE id = %s FOR UPDATE"
INSERT_GROUP_SESSION = (
    "INSERT INTO group_session (id, organization_id, group_id, number, held_on, phase, duration_minutes, recorded_by, "
    "created_at) VALUES (%(id)s, %(org)s, %(group)s, %(number)s, %(held_on)s, %(phase)s, %(duration)s, %(actor)s, %(now)s)"
)
INSERT_MEMBER_SESSION = (
    "INSERT INTO therapy_session (id, organization_id, course_id, number, held_on, attendance, modality, "
    "duration_minutes, problem_areas_addressed, note, phase, group_session_id, version, created_at, updated_at) "
    "VALUES (%(id)s, %(org)s, %(course)s, %(number)s, %(held_on)s, 'attended', 'in_person', %(duration)s, '[]', NULL, "
    "%(phase)s, %(session)s, 1, %(now)s, %(now)s)"
)
UPDATE_MEMBER_COURSES = (
    "UPDATE course SET sessions_attended = %(number)s, attended_in_phase = attended_in_phase + 1, phase = %(phase)s, "
    "latest_session_on = %(held_on)s, version = version + 1, updated_at = %(now)s WHERE id = ANY(%(courses)s)"
)
UPDATE_GROUP = ("UPDATE ipt_group SET sessions_held = %(number)s, latest_session_on = %(held_on)s, version = version + 1, "
                "updated_at = %(now)s WHERE id = %(group)s")
PHQ9_BANDS = ((4, "minimal"), (9, "mild"), (14, "moderate"), (19, "moderately_severe"), (27, "severe"))
ACTOR = os.environ.get("FLOOR_ACTOR_ID")  # stands in for the token's subject: the floor has no auth
_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z  # as app.core.http.dumps
_NOT_FOUND = b'{"status":404}'

pool = AsyncConnectionPool(
    os.environ["FLOOR_DATABASE_URL"],
    min_size=int(os.environ.get("FLOOR_POOL_SIZE", "10")),  # the API's IPT_DB_POOL_SIZE default
    max_size=int(os.environ.get("FLOOR_POOL_SIZE", "10")),
    # Writes open their transaction themselves. Through PgBouncer's transaction pooling (FLOOR_PREPARE=0)
    # no statement is prepared: PgBouncer 1.18 would run it on a server connection that never saw it.
    kwargs={"row_factory": dict_row, "autocommit": True,
            **({"prepare_threshold": None} if os.environ.get("FLOOR_PREPARE") == "0" else {})},
    open=False,
)


def new_id() -> str:
    """A UUIDv7 (time-ordered, like the app's ids, so audit and row inserts land at the index's end)."""
    value = (time.time_ns() // 1_000_000 << 80) | (0x7 << 76) | (uuid.uuid4().int & ((1 << 76) - 1))
    value = (value & ~(0b11 << 62)) | (0b10 << 62)
    return str(uuid.UUID(int=value))


def _audit(scope, action: str, resource_type: str, resource_id: str | None, outcome: int, **where) -> dict:
    headers = dict(scope["headers"])
    return {"id": new_id(), "now": datetime.now(UTC), "actor": ACTOR, "action": action, "type": resource_type,
            "resource": resource_id, "request": uuid.uuid4().hex, "ip": (scope.get("client") or ("",))[0],
            "agent": (headers.get(b"user-agent") or b"").decode()[:300] or None, "outcome": outcome, **where}


def _dumps(value) -> bytes:
    return orjson.dumps(value, default=float, option=_JSON_OPTIONS)  # default: NUMERIC totals arrive as Decimal


async def get_course(scope, course_id: str) -> tuple[int, bytes]:
    async with pool.connection() as conn:
        row = await (await conn.execute(GET_COURSE, (course_id,))).fetchone()
        if row is None:
            return 404, _NOT_FOUND
        event = _audit(scope, "read", "course", course_id, 200, org=row["organization_id"], patient=row["patient_id"])
        await conn.execute(AUDIT, event)
    return 200, _dumps(row)


async def list_courses(scope) -> tuple[int, bytes]:
    query = parse_qs(scope["query_string"].decode())
    org, after = query["org"][0], query.get("after", [""])[0]
    limit = int(query.get("limit", ["50"])[0])
    async with pool.connection() as conn:
        rows = await (await conn.execute(LIST_PAGE, (org, after, limit + 1))).fetchall()
        await conn.execute(AUDIT, _audit(scope, "read", "course", None, 200, org=org, patient=None))
    cursor = rows[limit - 1]["id"] if len(rows) > limit else None
    return 200, _dumps({"data": rows[:limit], "next_cursor": cursor})


async def outcomes(scope, course_id: str) -> tuple[int, bytes]:
    async with pool.connection() as conn:
        rows = await (await conn.execute(OUTCOME_MEASURES, (course_id,))).fetchall()
        await conn.execute(AUDIT_OF_COURSE, _audit(scope, "read", "outcome", course_id, 200, course=course_id))
    return 200, _dumps(rows)


async def _insert_audited(scope, insert: str, values: dict, resource_type: str, course_id: str) -> tuple[int, bytes]:
    """The insert and its audit row, in one transaction; 404 when the course is not there."""
    async with pool.connection() as conn, conn.transaction():
        row = await (await conn.execute(insert, values)).fetchone()
        if row is None:
            return 404, _NOT_FOUND
        await conn.execute(AUDIT_OF_COURSE, _audit(scope, "create", resource_type, row["id"], 201, course=course_id))
    return 201, _dumps(row)


async def record_session(scope, course_id: str, body: dict) -> tuple[int, bytes]:
    values = {"id": new_id(), "now": datetime.now(UTC), "course_id": course_id, "number": body.get("number"),
              "held_on": body["held_on"], "attendance": body["attendance"],
              "modality": body.get("modality", "in_person"), "duration_minutes": body.get("duration_minutes"),
              "note": body.get("note"),
              "problem_areas_addressed": orjson.dumps(body.get("problem_areas_addressed", [])).decode()}
    return await _insert_audited(scope, INSERT_SESSION, values, "session", course_id)


async def record_measure(scope, course_id: str, body: dict) -> tuple[int, bytes]:
    items = body["items"]
    total = sum(items)
    risk = [9] if items[8] > 0 else []
    values = {"id": new_id(), "now": datetime.now(UTC), "course_id": course_id, "instrument": body["instrument"],
              "administered_on": body["administered_on"], "items": orjson.dumps(items).decode(), "total": total,
              "severity": next(code for high, code in PHQ9_BANDS if total <= high),
              "risk_items": orjson.dumps(risk).decode(), "session_number": body.get("session_number"),
              "risk_flag_open": bool(risk), "actor": ACTOR}
    return await _insert_audited(scope, INSERT_MEASURE, values, "measure", course_id)


async def record_group_session(scope, group_id: str, body: dict) -> tuple[int, bytes]:
    now = datetime.now(UTC)
    values = {"id": new_id(), "now": now, "group": group_id, "number": body["number"], "held_on": body["held_on"],
              "phase": body["phase"], "duration": body.get("duration_minutes"), "actor": ACTOR,
              "courses": body["courses"]}
    async with pool.connection() as conn, conn.transaction():
        group = await (await conn.execute(LOCK_GROUP, (group_id,))).fetchone()
        if group is None:
            return 404, _NOT_FOUND
        values["org"] = group["organization_id"]
        await conn.execute(INSERT_GROUP_SESSION, values)
        async with conn.cursor() as cur:
            await cur.executemany(INSERT_MEMBER_SESSION, [
                {**values, "id": new_id(), "course": course, "session": values["id"]} for course in body["courses"]])
        await conn.execute(UPDATE_MEMBER_COURSES, values)
        await conn.execute(UPDATE_GROUP, values)
        await conn.execute(AUDIT, _audit(scope, "create", "group", group_id, 201, org=values["org"], patient=None))
    return 201, _dumps({"id": values["id"], "group_id": group_id, "number": body["number"], "held_on": body["held_on"],
                        "phase": body["phase"], "attendance": [{"course_id": c, "attendance": "attended"}
                                                               for c in body["courses"]]})


async def _respond(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await pool.open(wait=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def route(scope, receive) -> tuple[int, bytes]:
    """Dispatch on method and path: the benchmarked endpoints and /healthz."""
    method, parts = scope["method"], scope["path"].strip("/").split("/")
    if parts == ["healthz"]:
        return 200, b'{"status":"ok"}'
    if method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "groups"] and parts[3] == "sessions":
        return await record_group_session(scope, parts[2], orjson.loads(await _read_body(receive)))
    if parts[:2] != ["v1", "courses"]:
        return 404, _NOT_FOUND
    if method == "GET" and len(parts) == 2:
        return await list_courses(scope)
    if method == "GET" and len(parts) == 3:
        return await get_course(scope, parts[2])
    if method == "GET" and len(parts) == 4 and parts[3] == "outcomes":
        return await outcomes(scope, parts[2])
    if method == "POST" and len(parts) == 4 and parts[3] in ("sessions", "measures"):
        body = orjson.loads(await _read_body(receive))
        writer = record_session if parts[3] == "sessions" else record_measure
        return await writer(scope, parts[2], body)
    return 404, _NOT_FOUND


async def app(scope, receive, send) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    status, body = await route(scope, receive)
    await _respond(send, status, body)
