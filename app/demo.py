"""The demo organization that ``make run`` creates, with fictional people only."""

from __future__ import annotations

import asyncio
import json
import secrets as pysecrets
from datetime import date
from pathlib import Path
from typing import Any

from app.core.cli import with_db
from app.deps import Principal
from app.identity import repository as identity
from app.patients import repository as patients

CREDENTIALS_FILE = Path(".ipt-demo-credentials.json")
DEMO_ORG = "Demo Community Mental Health Service"
PEOPLE = [
    ("admin@demo.ipt.example", "Demo Administrator", ["admin"]),
    ("supervisor@demo.ipt.example", "Dr Sam Okafor (supervisor)", ["supervisor", "clinician"]),
    ("clinician@demo.ipt.example", "Alex Rivera (IPT therapist)", ["clinician"]),
    ("nurse@demo.ipt.example", "Jo Lindqvist (IPC nurse)", ["clinician"]),
    ("researcher@demo.ipt.example", "Riya Shah (researcher)", ["researcher"]),
]
PATIENTS = [  # fictional: names chosen to be obviously made up
    ("DEMO-0001", "Ada Example", date(1984, 3, 14), "female"),
    ("DEMO-0002", "Ben Sample", date(1971, 9, 2), "male"),
    ("DEMO-0003", "Cleo Placeholder", date(2009, 6, 21), "female"),
    ("DEMO-0004", "Dev Fictional", date(1990, 1, 30), "other"),
    ("DEMO-0005", "Eve Madeup", date(1958, 11, 5), "female"),
    ("DEMO-0006", "Finn Notreal", date(1979, 7, 17), "male"),
]


def ensure_demo() -> str:
    """Create the demo organization unless it exists; return the log-in text to print."""
    stored = json.loads(CREDENTIALS_FILE.read_text()) if CREDENTIALS_FILE.exists() else None
    credentials = asyncio.run(with_db(lambda db, s: _ensure(db, s, stored)))
    CREDENTIALS_FILE.write_text(json.dumps(credentials, indent=2) + "\n")
    CREDENTIALS_FILE.chmod(0o600)
    lines = [f"Demo organization: {DEMO_ORG}", "Log in at http://127.0.0.1:8000/docs (POST /v1/auth/token):"]
    lines += [f"  {email:32} password: {credentials['password']}  ({role})" for email, _, role in credentials["people"]]
    return "\n".join(lines)


async def _ensure(db: Any, secrets: Any, stored: dict | None) -> dict:
    people = [(email, ", ".join(roles)) for email, _, roles in PEOPLE]
    if stored and await identity.user_for_login(db, PEOPLE[0][0]) is not None:
        return stored
    if await identity.user_for_login(db, PEOPLE[0][0]) is not None:
        raise RuntimeError(f"the demo exists but {CREDENTIALS_FILE} is gone; delete the database to start afresh")
    password = "demo-" + pysecrets.token_urlsafe(9)
    password_hash = secrets.hash_password(password)
    org = await identity.create_organization(db, DEMO_ORG)
    users = {}
    for email, name, roles in PEOPLE:
        users[email] = await identity.create_user(
            db, org["id"], {"email": email, "display_name": name, "roles": roles, "password_hash": password_hash}
        )
    await seed_clinical(db, org["id"], users)
    return {"organization_id": org["id"], "password": password, "people": [(e, "", r) for e, r in people]}


async def seed_clinical(db: Any, org_id: str, users: dict[str, dict]) -> None:
    """Fictional patients with courses in several protocols and phases, built through the services."""
    creator = Principal("user", users["clinician@demo.ipt.example"]["id"], org_id, frozenset(), ("clinician",))
    supervisor = Principal("user", users["supervisor@demo.ipt.example"]["id"], org_id, frozenset(), ("supervisor",))
    for (external_id, name, born, sex), plan in zip(PATIENTS, COURSE_PLANS, strict=True):
        patient = await patients.create(
            db, creator, {"external_id": external_id, "display_name": name, "birth_date": born, "sex": sex}
        )
        therapist = users[plan["therapist"]]["id"]
        await _run_course(db, supervisor, patient["id"], therapist, plan)


# Each plan: protocol, weeks since the start, and the steps taken one week apart
# ("s" = an attended session, "x" = a missed one, a phase name = a transition).
COURSE_PLANS = [
    {"therapist": "clinician@demo.ipt.example", "protocol": "ipt", "weeks_ago": 8, "area": "role_dispute", "risk": True,
     "steps": ["s", "s", "middle", "s", "x", "s", "s", "s"]},
    {"therapist": "clinician@demo.ipt.example", "protocol": "ipt-b", "weeks_ago": 1, "area": None, "steps": ["s"]},
    {"therapist": "clinician@demo.ipt.example", "protocol": "ipt-a", "weeks_ago": 13, "area": "role_transition",
     "steps": ["s", "s", "s", "middle"] + ["s"] * 7 + ["termination", "s"]},
    {"therapist": "nurse@demo.ipt.example", "protocol": "ipc", "weeks_ago": 7, "area": "grief",
     "steps": ["s", "middle", "s", "s", "s", "termination", "s", "completed"]},
    {"therapist": "nurse@demo.ipt.example", "protocol": "ipt-m", "weeks_ago": 20, "area": "interpersonal_deficits",
     "steps": ["s", "middle", "s", "s", "s"]},
    {"therapist": "clinician@demo.ipt.example", "protocol": "ipt", "weeks_ago": 6, "area": "grief",
     "steps": ["s", "x", "x", "discontinued"]},
]
DETAILS = {
    "grief": {"deceased_relationship": "mother"},
    "role_dispute": {"with_whom": "partner", "stage": "renegotiation"},
    "role_transition": {"old_role": "pupil", "new_role": "apprentice"},
    "interpersonal_deficits": {},
}


async def _run_course(db: Any, actor: Principal, patient_id: str, therapist_id: str, plan: dict) -> None:
    from datetime import timedelta

    from app.core.ids import today
    from app.courses import service as courses
    from app.formulations import service as formulations
    from app.sessions import service as sessions

    started = today() - timedelta(weeks=plan["weeks_ago"])
    course = await courses.create(db, actor, {"patient_id": patient_id, "therapist_id": therapist_id,
                                              "protocol": plan["protocol"], "started_on": started})
    if plan["area"]:
        area = {"area": plan["area"], "focal": True, "primary": True, "details": DETAILS[plan["area"]],
                "goals": [{"text": "Goal agreed with the patient", "status": "active"}]}
        await formulations.put_formulation(db, actor, course["id"], {
            "diagnosis": "F32.1", "summary": "Fictional formulation for the demo.", "status": "agreed",
            "agreed_on": started + timedelta(weeks=1), "problem_areas": [area]}, None)
        await formulations.add_relationship(db, actor, course["id"], {"label": "Partner (demo)", "relationship": "partner", "ring": 1})
    attended = 0
    for week, step in enumerate(plan["steps"]):
        if step in ("s", "x"):
            attendance = "attended" if step == "s" else "missed"
            held_on = min(started + timedelta(weeks=week), today())
            session = await sessions.record(db, actor, course["id"], {
                "held_on": held_on, "attendance": attendance,
                "modality": "in_person", "duration_minutes": 50, "problem_areas_addressed": [], "note": None})
            if attendance == "attended" and course["protocol"] != "ipt-m":
                attended += 1
                await _measures(db, actor, course["id"], session["id"], held_on, attended, risk=plan.get("risk", False))
        else:
            reason = "lost_to_follow_up" if step == "discontinued" else None
            await courses.transition(db, actor, course["id"], {"to": step, "reason": reason}, None)


def _items(total: int, count: int, top: int) -> list[int]:
    """Item responses adding up to ``total``, spread evenly (fictional data)."""
    items = [min(top, total // count + (1 if i < total % count else 0)) for i in range(count)]
    return items


async def _measures(db: Any, actor: Principal, course_id: str, session_id: str, on: Any, nth: int, risk: bool) -> None:
    """A PHQ-9 and a GAD-7 at each attended session, improving week by week."""
    from app.measures import service as measures

    phq = _items(max(19 - 2 * (nth - 1), 3), 9, 3)
    phq[8] = 1 if risk and nth == 1 else 0  # item 9: thoughts of self-harm, flagged once for the demo
    gad = _items(max(13 - 2 * (nth - 1), 2), 7, 3)
    for instrument, items in (("phq-9", phq), ("gad-7", gad)):
        await measures.record(db, actor, course_id, {"instrument": instrument, "administered_on": on, "items": items,
                                                     "total": None, "session_id": session_id})
