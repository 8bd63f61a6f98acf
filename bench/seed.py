"""Seed the load benchmark's database by COPY: organizations, users, courses, sessions and measures.

Rows are shaped as the app stores them: the column lists are checked against the app's tables
(export_seed.check_columns), scores come from the app's scorer (export_seed.Pools), JSON columns
hold json.dumps text, and each course row carries the counters and measure facts the services keep
on it. Ids are UUIDv7 made at the row's created_at, as the app would have made them then, so the
ids of different organizations interleave in creation order as they do in a real database.

What is made (sizes from ``Sizes``, scaled by run.py's --scale):

- the benchmarked organization (bootstrapped by ``ipt bootstrap``): ten clinicians, one of them the
  benchmark clinician, and a supervisor; half of the full courses, one tenth of them treated by
  the benchmark clinician; plus the write pools, open courses of the benchmark clinician kept for
  the session and measure POSTs;
- the other full courses spread over the other organizations;
- two list organizations, one with 10,000 courses and one with 1,000,000 (each with a supervisor),
  whose course rows carry their counters but no sessions or measures (the list reads only courses).

A full course has its own patient, a formulation when it got past the initial phase, weekly
attended sessions (a few missed appointments between them), and a PHQ-9, GAD-7, WSAS and MSPSS at
baseline and after every attended session.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg
from export_seed import COLUMNS, Pools, _phases, check_columns
from group_seed import seed_groups
from psycopg.types.json import Json

from app.identity.models import AppUser, Organization
from app.rules import DISCONTINUE_REASONS, PROTOCOLS

INSTRUMENTS = ("phq-9", "gad-7", "wsas", "mspss")
POOL_STARTED_DAYS_AGO = 120  # pool courses: 3 weekly sessions from here, then room for 11 more weekly ones
POOL_ATTENDED = 3
_PROTOCOLS = {"ipt": 72, "ipt-a": 10, "ipt-b": 8, "ipc": 5, "ipt-m": 5}
_ENDINGS = {"completed": 65, "discontinued": 17, "open": 18}
_SEXES = ("female", "male", "other", "unknown")
_AREAS = (
    ("grief", {"deceased_relationship": "mother", "died_on": "2020-03-01"}),
    ("role_dispute", {"with_whom": "partner", "stage": "impasse"}),
    ("role_transition", {"old_role": "worker", "new_role": "retired", "occurred_on": "2021-06-01"}),
    ("interpersonal_deficits", {}),
)
_EPOCH = date(1970, 1, 1).toordinal()
_FLUSH_EVERY = 4000  # courses per COPY round: bounded memory, parents before children


@dataclass(frozen=True)
class Sizes:
    """How much to seed."""

    courses: int = 20_000  # full courses: half in the benchmarked organization, half in the others
    organizations: int = 50  # all of them: the benchmarked one, the two list organizations and the others
    list_small: int = 10_000
    list_big: int = 1_000_000  # 0: no big list organization
    session_courses: int = 5_000  # write pool for POST .../sessions
    measure_courses: int = 2_000  # write pool for POST .../measures
    groups: int = 400  # write pool for POST /v1/groups/{id}/sessions: 8 members, 16 sessions each


@dataclass
class Seeded:
    """Who logs in, and which courses each load reads or writes."""

    org_id: str
    clinician_id: str
    clinician_email: str
    read_courses: list[str]  # the benchmark clinician's full courses
    session_pool: list[str]
    measure_pool: list[str]
    lists: dict[str, tuple[str, str, int]]  # "small"/"big" -> (organization id, its supervisor's email, courses)
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per seeding step
    group_pool: list[str] = field(default_factory=list)  # group IPT groups ready for their sessions


class Seeder:
    """Builds rows into per-table buffers and writes them by COPY, parents first."""

    ORDER = ("patient", "course", "therapy_session", "formulation", "measure")

    def __init__(self, conn: psycopg.Connection, rng: random.Random, today: date) -> None:
        self.conn, self.rng, self.today = conn, rng, today
        self.pools = Pools.build(rng, per_instrument=3000, instruments=INSTRUMENTS)
        self.rows: dict[str, list[tuple]] = {t: [] for t in self.ORDER}
        self.counts = dict.fromkeys(self.ORDER, 0)
        self.patients_in: dict[str, int] = {}

    # ids and clocks -----------------------------------------------------------------------------
    def stamp(self, day: date, second: int) -> tuple[str, datetime]:
        """A UUIDv7 id and its created_at for a moment of ``day`` (as app.core.ids.new_id makes them)."""
        rng = self.rng
        ms = ((day.toordinal() - _EPOCH) * 86_400 + second) * 1000 + rng.randrange(1000)
        value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", datetime.fromtimestamp(ms / 1000, UTC)

    def office_hours(self) -> int:
        return self.rng.randrange(8 * 3600, 18 * 3600)

    # rows ---------------------------------------------------------------------------------------------
    def patient(self, org: str, creator: str, day: date) -> str:
        n = self.patients_in[org] = self.patients_in.get(org, 0) + 1
        pid, at = self.stamp(day, self.rng.randrange(7 * 3600, 8 * 3600))  # registered before the first session
        born = day - timedelta(days=self.rng.randrange(12 * 365, 90 * 365))
        self.rows["patient"].append((pid, org, f"EHR-{n:08d}", f"Bench Patient {n}", born, self.rng.choice(_SEXES),
                                     creator, 1, at, at))
        return pid

    def shape(self) -> tuple[str, str, int, date]:
        """A course's protocol, how it ends (completed, discontinued, open), attended sessions and start date."""
        rng = self.rng
        protocol = rng.choices(list(_PROTOCOLS), list(_PROTOCOLS.values()))[0]
        ending = rng.choices(list(_ENDINGS), list(_ENDINGS.values()))[0]
        planned = PROTOCOLS[protocol].default_planned
        if ending == "completed":
            attended = planned - rng.choice((0, 0, 0, 1, 2))
        else:
            attended = rng.randint(1, planned - 1)
        if ending == "open":  # recent enough that the last weekly session was last week or earlier
            started = self.today - timedelta(days=7 * (attended + 1) + rng.randrange(7))
        else:
            started = self.today - timedelta(days=rng.randrange(7 * (attended + 3), 6 * 365))
        return protocol, ending, attended, started

    def full_course(self, org: str, therapist: str, *, pool: bool = False, children: bool = True) -> str:
        """One course with its patient (and, with ``children``, its sessions, formulation and measures)."""
        rng = self.rng
        if pool:  # open, in the middle phase after three initial sessions: room for S3-S5-legal sessions
            protocol, ending, attended = "ipt", "open", POOL_ATTENDED
            started = self.today - timedelta(days=POOL_STARTED_DAYS_AGO)
            phases = ["initial"] * attended
        else:
            protocol, ending, attended, started = self.shape()
            phases = _phases(attended, protocol)
        spec = PROTOCOLS[protocol]
        held = [started + timedelta(days=7 * (n + 1)) for n in range(attended)]
        patient = self.patient(org, therapist, started)
        course_id, created = self.stamp(started, rng.randrange(8 * 3600, 9 * 3600))
        if pool:
            phase, in_phase, ended, reason = "middle", 0, None, None
        elif ending == "open":
            phase, in_phase, ended, reason = phases[-1], phases.count(phases[-1]), None, None
        elif ending == "completed":
            phase, in_phase, ended, reason = "completed", 0, held[-1] + timedelta(days=1), "completed"
        else:
            reason = rng.choice(DISCONTINUE_REASONS)
            phase, in_phase, ended = "discontinued", 0, held[-1] + timedelta(days=14)
        changes = 0
        if children:
            changes = self.children(org, course_id, therapist, started, held, phases, spec.initial_max)
        last_day = ended or held[-1]
        updated = datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC) + timedelta(
            seconds=self.office_hours())
        self.rows["course"].append((
            course_id, org, patient, therapist, protocol, spec.default_planned, 0, phase, started, ended, reason,
            "F32.1 bench diagnosis", attended, in_phase, held[-1], False, started, held[-1], attended, held[0],
            1 + changes, created, max(updated, created),
        ))
        return course_id

    def children(self, org: str, course_id: str, therapist: str, started: date, held: list[date], phases: list[str],
                 initial_max: int) -> int:
        """A course's sessions, formulation and measures; returns how many changes bumped its version."""
        rng, rows = self.rng, self.rows
        session_ids = []
        for n, day in enumerate(held):
            sid, at = self.stamp(day, self.office_hours())
            session_ids.append(sid)
            rows["therapy_session"].append((sid, org, course_id, n + 1, day, "attended", "in_person", 50, "[]",
                                            "Bench session note.", phases[n], 1, at, at, None))
            if n + 1 < len(held) and rng.random() < 0.2:  # now and then a missed or cancelled appointment
                missed_on = day + timedelta(days=3)
                mid, at = self.stamp(missed_on, self.office_hours())
                attendance = rng.choice(("missed", "cancelled"))
                rows["therapy_session"].append((mid, org, course_id, None, missed_on, attendance, "telephone", None,
                                                "[]", None, phases[n], 1, at, at, None))
        if phases.count("initial") < len(phases) or rng.random() < 0.5:
            agreed_on = held[min(1, len(held) - 1)]
            area, details = rng.choice(_AREAS)
            areas = [{"area": area, "focal": True, "primary": True, "details": details,
                      "goals": [{"id": self.stamp(agreed_on, 0)[0], "text": "Bench goal", "status": "active"}]}]
            fid, at = self.stamp(agreed_on, self.office_hours())
            rows["formulation"].append((fid, org, course_id, "F32.1", "Bench formulation summary.", "agreed", agreed_on,
                                        json.dumps(areas), 1, at, at))
        # Baseline at the start, then after every attended session, improving with noise.
        start, end = rng.uniform(10, 24), rng.uniform(2, 16)
        measures = 0
        for point in range(len(held) + 1):
            day = started if point == 0 else held[point - 1]
            session_id = None if point == 0 else session_ids[point - 1]
            level = start + (end - start) * point / len(held) + rng.gauss(0, 2)
            for instrument in INSTRUMENTS:
                items, total, severity = self.pools.pick(rng, instrument, _target(instrument, level))
                mid, at = self.stamp(day, self.office_hours())
                rows["measure"].append((mid, org, course_id, session_id, instrument, day, items, total, severity, "[]",
                                        point, False, None, None, 1, at, therapist))
                measures += 1
        return len(held) + measures

    def flush(self, force: bool = False) -> None:
        """COPY the buffered rows once enough courses are waiting (or ``force``), parents first."""
        if not force and len(self.rows["course"]) < _FLUSH_EVERY:
            return
        with self.conn.cursor() as cur:
            for table in self.ORDER:
                rows = self.rows[table]
                if not rows:
                    continue
                with cur.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                self.counts[table] += len(rows)
                rows.clear()
        self.conn.commit()


def _target(instrument: str, level: float) -> float:
    """The total to aim for on ``instrument`` for a depression level on the PHQ-9's scale (0-27)."""
    if instrument == "gad-7":
        return level * 0.75
    if instrument == "wsas":
        return level * 1.3
    if instrument == "mspss":  # perceived support: higher is better, 1-7
        return 6.5 - level / 5.5
    return level


def _user(org_id: str, email: str, name: str, roles: list[str], password_hash: str) -> dict:
    values = AppUser(organization_id=org_id, email=email, display_name=name, roles=roles,
                     password_hash=password_hash).model_dump()
    values["roles"] = Json(values["roles"])
    return values


def _insert(conn: psycopg.Connection, table: str, rows: list[dict]) -> None:
    names = list(rows[0])
    with conn.cursor() as cur:
        marks = ", ".join(f"%({n})s" for n in names)
        cur.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", rows)


def seed(database_url: str, org_id: str, password_hash: str, sizes: Sizes, rng_seed: int = 20261126) -> Seeded:
    """Fill the bootstrapped organization ``org_id`` and make the others; every password hashes to ``password_hash``."""
    check_columns()
    rng = random.Random(rng_seed)
    today = datetime.now(UTC).date()
    others = [Organization(name=f"Bench Other Organization {i + 1}").model_dump()
              for i in range(max(0, sizes.organizations - 3))]
    small = Organization(name="Bench List Organization (small)").model_dump()
    big = Organization(name="Bench List Organization (big)").model_dump() if sizes.list_big else None
    list_orgs = [small] + ([big] if big else [])

    users = [_user(org_id, f"clinician{i}@bench.ipt.example", f"Bench Clinician {i}", ["clinician"], password_hash)
             for i in range(10)]
    users.append(_user(org_id, "supervisor@bench.ipt.example", "Bench Supervisor", ["supervisor"], password_hash))
    clinicians_of: dict[str, list[str]] = {org_id: [u["id"] for u in users[:10]]}
    for n, org in enumerate(others + list_orgs):
        mine = [_user(org["id"], f"clinician{i}@org{n}.bench.ipt.example", f"Clinician {i}", ["clinician"],
                      password_hash) for i in range(20 if org in list_orgs else 4)]
        clinicians_of[org["id"]] = [u["id"] for u in mine]
        users += mine
    lists = {}
    for label, org, size in (("small", small, sizes.list_small), ("big", big, sizes.list_big)):
        if org is not None:
            email = f"supervisor@{label}.bench.ipt.example"
            users.append(_user(org["id"], email, f"Supervisor ({label} list)", ["supervisor"], password_hash))
            lists[label] = (org["id"], email, size)

    timings: dict[str, float] = {}
    started = time.monotonic()
    with psycopg.connect(database_url) as conn:
        # The rows are consistent by construction (parents are written first); skipping the per-row
        # foreign-key triggers for this session only halves the time COPY takes. Needs a superuser.
        try:
            conn.execute("SET session_replication_role = replica")
            conn.commit()
        except psycopg.errors.InsufficientPrivilege:
            conn.rollback()
        _insert(conn, "organization", others + list_orgs)
        _insert(conn, "app_user", users)
        conn.commit()
        seeder = Seeder(conn, rng, today)
        me = clinicians_of[org_id][0]
        read_courses = []
        for n in range(sizes.courses // 2):
            therapist = clinicians_of[org_id][n % 10]
            course = seeder.full_course(org_id, therapist)
            if therapist == me:
                read_courses.append(course)
            seeder.flush()
        session_pool = [seeder.full_course(org_id, me, pool=True) for _ in range(sizes.session_courses)]
        seeder.flush()
        measure_pool = [seeder.full_course(org_id, me, pool=True) for _ in range(sizes.measure_courses)]
        seeder.flush()
        seeder.flush(force=True)
        group_pool = seed_groups(conn, org_id, me, sizes.groups) if sizes.groups else []
        rest = sizes.courses - sizes.courses // 2
        for n in range(rest if others else 0):
            org = others[n % len(others)]["id"]
            seeder.full_course(org, rng.choice(clinicians_of[org]))
            seeder.flush()
        seeder.flush(force=True)
        timings["full courses and write pools"] = time.monotonic() - started
        for org, how_many in ((small, sizes.list_small), (big, sizes.list_big)):
            started = time.monotonic()
            for _ in range(how_many if org else 0):
                seeder.full_course(org["id"], rng.choice(clinicians_of[org["id"]]), children=False)
                seeder.flush()
            seeder.flush(force=True)
            if org:
                timings[f"list organization of {how_many:,} courses"] = time.monotonic() - started
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # what autovacuum would have done by the time traffic arrives
        # Seeding wrote gigabytes of WAL: without this, the checkpoint it set off goes on writing
        # (and fsyncing) for minutes, stalling commits under the first server measured but not the
        # second. A database in service has no such backlog. (Needs a superuser or pg_checkpoint.)
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")
    timings["VACUUM ANALYZE and CHECKPOINT"] = time.monotonic() - started
    counts = {"organizations": 1 + len(others) + len(list_orgs), "users": 1 + len(users), **seeder.counts}
    counts["groups"] = len(group_pool)
    return Seeded(org_id, me, users[0]["email"], read_courses, session_pool, measure_pool, lists, counts, timings,
                  group_pool)
