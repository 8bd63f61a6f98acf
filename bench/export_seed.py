"""Seed a migrated database with courses full of measures for the research export benchmark, by COPY.

Rows are shaped as the app stores them: the column lists are checked against the app's tables, ids
are UUIDv7 from ``app.core.ids``, scores come from ``app.instruments.score`` (the scorer the API
uses), JSON columns hold ``json.dumps`` text as SQLAlchemy writes it, and the course row carries the
counters and measure facts the services keep on it. Building a SQLModel object per row (as
bench/seed.py does for patients) would take minutes for a million measures, so rows are tuples.

Each course: one patient, a formulation (most courses), 3-16 weekly attended sessions, and a
PHQ-9 and a GAD-7 at baseline and after every session, improving with noise.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg

from app.core.ids import new_id
from app.courses.models import Course
from app.formulations.models import Formulation
from app.identity.models import AppUser
from app.instruments import INSTRUMENTS, score
from app.measures.models import Measure
from app.patients.models import Patient
from app.rules import DISCONTINUE_REASONS, PROTOCOLS
from app.sessions.models import TherapySession

COLUMNS = {
    "patient": ("id", "organization_id", "external_id", "display_name", "birth_date", "sex", "created_by", "version",
                "created_at", "updated_at"),
    "course": ("id", "organization_id", "patient_id", "therapist_id", "protocol", "planned_sessions",
               "extension_sessions", "phase", "started_on", "ended_on", "end_reason", "diagnosis", "sessions_attended",
               "attended_in_phase", "latest_session_on", "risk_flag_open", "first_measure_on", "last_measure_on",
               "last_measure_session_number", "first_attended_on", "version", "created_at", "updated_at"),
    "therapy_session": ("id", "organization_id", "course_id", "number", "held_on", "attendance", "modality",
                        "duration_minutes", "problem_areas_addressed", "note", "phase", "version", "created_at",
                        "updated_at", "group_session_id"),
    "formulation": ("id", "organization_id", "course_id", "diagnosis", "summary", "status", "agreed_on",
                    "problem_areas", "version", "created_at", "updated_at"),
    "measure": ("id", "organization_id", "course_id", "session_id", "instrument", "administered_on", "items", "total",
                "severity", "risk_items", "session_number", "risk_flag_open", "acknowledged_at", "acknowledged_by_id",
                "version", "created_at", "created_by"),
}
_MODELS = {"patient": Patient, "course": Course, "therapy_session": TherapySession, "formulation": Formulation,
           "measure": Measure}
_SEXES = ("female", "male", "other", "unknown")
_AREAS = (
    ("grief", {"deceased_relationship": "mother"}),
    ("role_dispute", {"with_whom": "partner", "stage": "impasse"}),
    ("role_transition", {"old_role": "worker", "new_role": "retired"}),
    ("interpersonal_deficits", {}),
)
_PROTOCOL_WEIGHTS = {"ipt": 60, "ipt-b": 15, "ipc": 10, "ipt-a": 10, "ipt-m": 5}


def check_columns() -> None:
    """The seed writes every column of each table, and nothing else."""
    for table, names in COLUMNS.items():
        model_columns = set(_MODELS[table].__table__.columns.keys())
        if set(names) != model_columns:
            raise RuntimeError(f"bench/export_seed.py is out of date with the {table} table: "
                               f"{sorted(set(names) ^ model_columns)}")


@dataclass
class Pools:
    """Scored item vectors per instrument and total, so that scoring runs once per vector, not per row."""

    by_total: dict[str, dict[int, list[tuple[str, float, str]]]] = field(default_factory=dict)

    @classmethod
    def build(cls, rng: random.Random, per_instrument: int = 6000,
              instruments: tuple[str, ...] = ("phq-9", "gad-7")) -> Pools:
        pools = cls()
        for instrument in instruments:
            inst, table = INSTRUMENTS[instrument], {}
            for _ in range(per_instrument):
                bias = rng.random()
                items = [min(high, max(low, round(rng.gauss(bias * high, 0.8)))) for low, high in inst.item_ranges]
                if instrument == "phq-9":
                    items[8] = 0  # no risk items: a positive one would need its acknowledgement rows as well
                scored = score(instrument, items, None)
                table.setdefault(int(scored.total), []).append((json.dumps(items), float(scored.total), scored.severity))
            pools.by_total[instrument] = table
        return pools

    def pick(self, rng: random.Random, instrument: str, target: float) -> tuple[str, float, str]:
        table = self.by_total[instrument]
        total = min(table, key=lambda t: abs(t - target))
        return rng.choice(table[total])


def _phases(count: int, protocol: str) -> list[str]:
    spec = PROTOCOLS[protocol]
    initial = min(spec.initial_max, max(1, count // 5))
    termination = min(spec.termination_min, max(0, count - initial))
    return ["initial"] * initial + ["middle"] * (count - initial - termination) + ["termination"] * termination


def seed_organization(conn: psycopg.Connection, rng: random.Random, pools: Pools, org_id: str, measures: int,
                      clinicians: int = 20) -> dict[str, int]:
    """Fill one organization with ``measures`` measure rows (and the courses, sessions, patients they need)."""
    now = datetime.now(UTC)
    users = []
    for n in range(clinicians):
        users.append({"id": new_id(), "organization_id": org_id, "email": f"clin{n}-{org_id[-12:]}@bench.ipt.example",
                      "display_name": f"Bench Clinician {n}", "password_hash": "!", "roles": json.dumps(["clinician"]),
                      "active": True, "version": 1, "created_at": now, "updated_at": now})
    assert set(users[0]) == set(AppUser.__table__.columns.keys())
    with conn.cursor() as cur:
        names = list(users[0])
        cur.executemany(f"INSERT INTO app_user ({', '.join(names)}) VALUES ({', '.join('%s' for _ in names)})",
                        [tuple(u[n] for n in names) for u in users])
    counts = dict.fromkeys(COLUMNS, 0)
    protocols = list(_PROTOCOL_WEIGHTS)
    weights = list(_PROTOCOL_WEIGHTS.values())
    left = measures
    while left > 0:
        # One block of courses at a time: rows held in lists (bounded), then one COPY per table, parents first.
        block: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
        for _ in range(2000):
            if left <= 0:
                break
            left -= _course(rng, pools, org_id, users, protocols, weights, now, left, block, counts["patient"] + 1)
            counts["patient"] += 1
        with conn.cursor() as cur:
            for table in ("patient", "course", "therapy_session", "formulation", "measure"):
                with cur.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
                    for row in block[table]:
                        copy.write_row(row)
                if table != "patient":
                    counts[table] += len(block[table])
    return counts


def _course(rng: random.Random, pools: Pools, org_id: str, users: list[dict], protocols: list[str],
            weights: list[int], now: datetime, left: int, block: dict[str, list[tuple]], number: int) -> int:
    """Append one course's rows to ``block``; returns how many measures it has (at most ``left``)."""
    therapist = rng.choice(users)["id"]
    protocol = rng.choices(protocols, weights)[0]
    spec = PROTOCOLS[protocol]
    started = date(2019, 1, 1) + timedelta(days=rng.randrange(0, 6 * 365))
    born = started - timedelta(days=rng.randrange(12 * 365, 96 * 365))
    patient_id, course_id = new_id(), new_id()
    block["patient"].append((patient_id, org_id, f"EHR-{org_id[-6:]}-{number:07d}", f"Bench Patient {number}",
                             born if rng.random() > 0.05 else None, rng.choice(_SEXES), therapist, 1, now, now))
    attended = rng.randint(max(3, spec.planned_min // 2), spec.default_planned)
    phases = _phases(attended, protocol)
    held = [started + timedelta(days=7 * (n + 1)) for n in range(attended)]
    session_ids = [new_id() for _ in range(attended)]
    for n in range(attended):
        block["therapy_session"].append((session_ids[n], org_id, course_id, n + 1, held[n], "attended", "in_person", 50,
                                         "[]", "Bench session note.", phases[n], 1, now, now, None))
    if rng.random() < 0.85:
        area, details = rng.choice(_AREAS)
        areas = [{"area": area, "focal": True, "primary": True, "details": details,
                  "goals": [{"text": "Bench goal", "status": "active", "id": new_id()}]}]
        block["formulation"].append((new_id(), org_id, course_id, "F32.1", "Bench formulation summary.", "agreed",
                                     started + timedelta(days=14), json.dumps(areas), 1, now, now))
    # Baseline at the start, then after every session, improving with noise; both instruments each time.
    start_phq, end_phq = rng.uniform(10, 24), rng.uniform(2, 16)
    written, last_day, last_number = 0, started, 0
    for point in range(attended + 1):
        share = point / attended
        on = started if point == 0 else held[point - 1]
        session_id = None if point == 0 else session_ids[point - 1]
        for instrument, scale in (("phq-9", 1.0), ("gad-7", 0.75)):
            if written >= left:
                break
            target = (start_phq + (end_phq - start_phq) * share + rng.gauss(0, 2)) * scale
            items, total, severity = pools.pick(rng, instrument, target)
            block["measure"].append((new_id(), org_id, course_id, session_id, instrument, on, items, total, severity,
                                     "[]", point, False, None, None, 1, now, therapist))
            written += 1
            last_day, last_number = on, point
    ending = rng.random()
    if ending < 0.6:
        phase, ended_on, reason = "completed", held[-1] + timedelta(days=1), "completed"
    elif ending < 0.8:
        phase, ended_on, reason = "discontinued", held[-1] + timedelta(days=3), rng.choice(DISCONTINUE_REASONS)
    else:
        phase, ended_on, reason = phases[-1], None, None
    in_phase = sum(1 for p in phases if p == phases[-1]) if ended_on is None else 0
    block["course"].append((course_id, org_id, patient_id, therapist, protocol, spec.default_planned, 0, phase, started,
                            ended_on, reason, "F32.1 bench diagnosis", attended, in_phase, held[-1], False, started,
                            last_day, last_number, held[0], 1, now, now))
    return written
