"""The demo organization that ``make run`` creates, with fictional people only."""

from __future__ import annotations

import asyncio
import json
import secrets as pysecrets
from datetime import date
from pathlib import Path
from typing import Any

from app.cli import _with_db
from app.identity import repository as identity
from app.patients import repository as patients
from app.deps import Principal

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
    credentials = asyncio.run(_with_db(lambda db, s: _ensure(db, s, stored)))
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
    """Fictional patients, created by the demo clinician so they are in her caseload."""
    creator = Principal("user", users["clinician@demo.ipt.example"]["id"], org_id, frozenset(), ("clinician",))
    for external_id, name, born, sex in PATIENTS:
        await patients.create(db, creator, {"external_id": external_id, "display_name": name, "birth_date": born, "sex": sex})
