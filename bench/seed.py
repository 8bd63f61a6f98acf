"""Seed a migrated benchmark database quickly, with rows shaped exactly as the app makes them.

Row values come from the app's own SQLModel tables (``Patient(...).model_dump()`` is what
``app.patients.repository.create`` inserts; ``AppUser(...)`` and ``Organization(...)`` likewise), so
ids are UUIDv7 from ``app.core.ids``, timestamps are UTC and ``version`` starts at 1. Only the
writing is different: COPY for patients, executemany for the few users and organizations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

import psycopg
from psycopg.types.json import Json

from app.identity.models import AppUser, Organization
from app.patients.models import Patient

_FIRST = ["Ada", "Ben", "Cleo", "Dev", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Mo", "Nia", "Oli", "Pia"]
_LAST = ["Example", "Sample", "Placeholder", "Fictional", "Madeup", "Notreal", "Testcase", "Dummy", "Standin", "Mock"]
_SEXES = ["female", "male", "other", "unknown"]
_PATIENT_COLUMNS = (
    "id", "organization_id", "external_id", "display_name", "birth_date", "sex", "created_by", "version", "created_at", "updated_at",
)
_USER_COLUMNS = (
    "id", "organization_id", "email", "display_name", "password_hash", "roles", "active", "version", "created_at", "updated_at",
)
_ORG_COLUMNS = ("id", "name", "data_use_agreement", "version", "created_at", "updated_at")


@dataclass
class Seeded:
    """What the benchmark needs from the seed: who logs in, and which patients they may read."""

    clinician_email: str
    clinician_password: str
    patient_ids: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def _patient(rng: random.Random, org_id: str, creator_id: str, number: int) -> tuple:
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 70 * 365))
    values = Patient(
        organization_id=org_id,
        created_by=creator_id,
        external_id=f"EHR-{number:07d}",
        display_name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)} {number}",
        birth_date=born,
        sex=rng.choice(_SEXES),
    ).model_dump()
    return tuple(values[name] for name in _PATIENT_COLUMNS)


def _user(org_id: str, email: str, name: str, roles: list[str], password_hash: str) -> dict:
    values = AppUser(
        organization_id=org_id, email=email.lower(), display_name=name, roles=roles, password_hash=password_hash
    ).model_dump()
    values["roles"] = Json(values["roles"])
    return values


def _insert(cur: psycopg.Cursor, table: str, columns: tuple[str, ...], rows: list[dict]) -> None:
    names = ", ".join(columns)
    marks = ", ".join(f"%({c})s" for c in columns)
    cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


def seed(
    database_url: str,
    org_id: str,
    password_hash: str,
    password: str,
    *,
    patients: int = 10_000,
    colleagues: int = 2,
    other_orgs: int = 3,
    rng_seed: int = 20261126,
) -> Seeded:
    """Fill the bootstrapped organization and a few others; return the benchmark clinician's log-in and patients.

    The benchmarked organization gets ``patients`` patients created by the benchmark clinician,
    plus a tenth as many for each colleague clinician; each other organization gets a quarter as
    many, so the table and its indexes hold more than the rows being read.
    """
    rng = random.Random(rng_seed)
    orgs = [Organization(name=f"Bench Other Org {i + 1}").model_dump() for i in range(other_orgs)]
    clinician = _user(org_id, "clinician@bench.ipt.example", "Bench Clinician", ["clinician"], password_hash)
    users = [clinician]
    users += [
        _user(org_id, f"colleague{i + 1}@bench.ipt.example", f"Bench Colleague {i + 1}", ["clinician"], password_hash)
        for i in range(colleagues)
    ]
    users += [
        _user(o["id"], f"clinician@other{i + 1}.bench.ipt.example", f"Other Clinician {i + 1}", ["clinician"], password_hash)
        for i, o in enumerate(orgs)
    ]

    plan: list[tuple[str, str, int]] = [(org_id, clinician["id"], patients)]
    plan += [(org_id, u["id"], max(1, patients // 10)) for u in users[1 : 1 + colleagues]]
    plan += [(u["organization_id"], u["id"], max(1, patients // 4)) for u in users[1 + colleagues :]]

    mine: list[str] = []
    counts = {"organizations": 1 + len(orgs), "users": 1 + len(users), "patients": 0}
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        _insert(cur, "organization", _ORG_COLUMNS, orgs)
        _insert(cur, "app_user", _USER_COLUMNS, users)
        numbers: dict[str, int] = {}
        with cur.copy(f"COPY patient ({', '.join(_PATIENT_COLUMNS)}) FROM STDIN") as copy:
            for owner_org, creator, how_many in plan:
                for _ in range(how_many):
                    numbers[owner_org] = numbers.get(owner_org, 0) + 1
                    row = _patient(rng, owner_org, creator, numbers[owner_org])
                    copy.write_row(row)
                    if creator == clinician["id"]:
                        mine.append(row[0])
                    counts["patients"] += 1
        conn.commit()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # what autovacuum would have done by the time traffic arrives
    return Seeded(clinician["email"], password, mine, counts)
