"""Add years of audit events to the bench database, already sealed into each organization's hash chain.

The events are shaped as the app writes them (bench/../app/audit/writer.py: a clinician's reads and
writes of courses, sessions, measures, patients and outcomes, some refusals; ids and codes only),
spread evenly over the months of the last ``YEARS`` years with the organizations interleaved, each id
a UUIDv7 at its event's time. Each organization's chain goes on from its head (the bench seals what
the runs left first): the seals are computed here with the app's own chain code (app.audit.chain.link),
in the order the sealer would take the events, (tx, id): one transaction per batch writes the batch's
events (tx filled by the column's default: that transaction's id), their seals, and the moved chain
heads, so the live sealer finds nothing of them to do and `ipt audit verify` walks them as any other.
Written by COPY in text form (every value here is plain ASCII: no escaping needed).
"""

from __future__ import annotations

import multiprocessing
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from load import cpu_seconds

from app.audit import chain, partitions
from app.audit.models import AuditChain, AuditEvent, AuditSeal

YEARS = 6
BATCH = 250_000  # events per transaction
_CHUNK = 5000  # rows per write to COPY
EVENT_COLUMNS = ("id", "organization_id", "at", "actor_type", "actor_id", "action", "resource_type", "resource_id",
                 "patient_id", "request_id", "ip", "user_agent", "outcome", "details")
SEAL_COLUMNS = ("event_id", "organization_id", "seq", "prev_hash", "hash", "at")
# What a clinic's day of requests looks like in the log: (action, resource type, outcome, weight).
_KINDS = (("read", "course", 200, 40), ("read", "outcome", 200, 12), ("read", "measure", 200, 10),
          ("read", "session", 200, 8), ("read", "patient", 200, 8), ("create", "measure", 201, 9),
          ("create", "session", 201, 7), ("update", "course", 200, 3), ("create", "course", 201, 1),
          ("denied", "course", 404, 1), ("create", "token", 200, 1))
_AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
           "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15",
           "ehr-connector/3.2", "python-httpx/0.27")
_DRAW = [k[:3] for k in _KINDS for _ in range(k[3])]  # one draw of a random index picks by weight
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NULL = "\\N"  # COPY's text form of NULL
# Below every transaction id of the cluster, as the README (Audit) says for seeding: the seeded events
# sort before every event the runs wrote or will write, in the sealer's (tx, id) order.
SEEDED_TX = 1
_TX = f"\t{SEEDED_TX}"


def check_columns() -> None:
    """The seed writes every column of the audit tables the app has (tx by its default), and nothing else."""
    for model, names in ((AuditEvent, (*EVENT_COLUMNS, "tx")), (AuditSeal, SEAL_COLUMNS),
                         (AuditChain, ("organization_id", "seq", "hash", "position", "event_id"))):
        have = set(model.__table__.columns.keys())
        if have != set(names):
            raise RuntimeError(f"bench/audit_seed.py is out of date with {model.__tablename__}: {sorted(have ^ set(names))}")


def _uuid7(rng: random.Random, ms: int) -> str:
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def audit_bytes(conn: psycopg.Connection) -> int:
    """The audit tables' size on disk, partitions and indexes included."""
    return int(conn.execute(
        "SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE oid = ANY(%(tables)s::regclass[]) OR oid IN "
        "(SELECT inhrelid FROM pg_inherits WHERE inhparent = ANY(%(tables)s::regclass[]))",
        {"tables": ["audit_event", "audit_seal"]}).fetchone()[0] or 0)


@dataclass
class Clinic:
    """One organization's users, (course, patient) pairs, NAT address and chain head, to draw its events from."""

    id: str
    actors: list[str]
    courses: list[tuple[str, str]]
    address: str
    walk: chain.Walk  # its chain so far: the head the runs left, or genesis
    last: tuple[int, str] = (-1, "")  # the head's (position, event id): where the sealer resumes


def _clinics(conn: psycopg.Connection) -> list[Clinic]:
    orgs = [r[0] for r in conn.execute("SELECT id FROM organization ORDER BY id")]
    actors: dict[str, list[str]] = {org: [] for org in orgs}
    for org, user in conn.execute("SELECT organization_id, id FROM app_user ORDER BY id"):
        actors[org].append(user)
    clinics = []
    for n, org in enumerate(orgs):
        courses = conn.execute("SELECT id, patient_id FROM course WHERE organization_id = %s ORDER BY random() LIMIT 500",
                               (org,)).fetchall()
        clinics.append(Clinic(org, actors[org] or [None], courses or [(None, None)], f"10.{n // 256}.{n % 256}",
                              chain.Walk()))
    for org, seq, digest, position, event_id in conn.execute(
            "SELECT organization_id, seq, hash, position, event_id FROM audit_chain"):
        clinic = next((c for c in clinics if c.id == org), None)
        if clinic:
            clinic.walk, clinic.last = chain.Walk(seq, digest), (position, event_id)
    return clinics


def _event(rng: random.Random, clinic: Clinic, at_us: int) -> dict:
    """One request's audit event as the app writes it (app/audit/writer.py), at ``at_us`` microseconds."""
    action, resource_type, outcome = _DRAW[int(rng.random() * len(_DRAW))]
    token = resource_type == "token"
    course, patient = (None, None) if token else rng.choice(clinic.courses)
    return {
        "id": _uuid7(rng, at_us // 1000), "organization_id": clinic.id, "at": _EPOCH + timedelta(microseconds=at_us),
        "actor_type": "user", "actor_id": rng.choice(clinic.actors), "action": action, "resource_type": resource_type,
        # A course's own id, or (its sessions, measures) an id made before the event.
        "resource_id": None if token else course if resource_type in ("course", "outcome")
        else _uuid7(rng, at_us // 1000 - rng.randrange(1, 10**9)),
        "patient_id": patient, "request_id": f"{rng.getrandbits(128):032x}",
        "ip": f"{clinic.address}.{rng.randrange(1, 255)}", "user_agent": rng.choice(_AGENTS), "outcome": outcome,
        "details": {},
    }


def _seed_part(database_url: str, clinics: list[Clinic], count: int, first_us: int, span_us: int, rng_seed: int) -> dict:
    """Write ``count`` events of these organizations with their seals, one transaction per BATCH; CPU spent."""
    rng = random.Random(rng_seed)
    step_us = span_us // max(count, 1)
    own_cpu = time.process_time()
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        backend_cpu = cpu_seconds(conn.info.backend_pid) or 0.0
        for done in range(0, count, BATCH):
            rows, seals, last = [], [], {}
            with cur.copy(f"COPY audit_event ({', '.join(EVENT_COLUMNS)}, tx) FROM STDIN") as copy:
                for n in range(done, min(done + BATCH, count)):
                    # Evenly spread, each at least a millisecond after the one before: generation order
                    # is id order, the sealer's order among events of one tx.
                    clinic = clinics[int(rng.random() * len(clinics))]
                    event = _event(rng, clinic, first_us + n * step_us + rng.randrange(max(step_us - 1000, 1)))
                    ((_, seq, prev, digest, at),) = chain.extend(clinic.walk, [event])
                    stamp = at.isoformat()
                    seals.append(f"{event['id']}\t{clinic.id}\t{seq}\t{prev}\t{digest}\t{stamp}\n")
                    last[clinic.id] = clinic
                    clinic.last = max(clinic.last, (SEEDED_TX, event["id"]))
                    event["at"], event["details"], event["outcome"] = stamp, "{}", str(event["outcome"])
                    rows.append("\t".join([_NULL if event[c] is None else event[c] for c in EVENT_COLUMNS]) + _TX)
                    if len(rows) == _CHUNK:  # one write per row would cost a round through libpq each
                        copy.write("\n".join(rows) + "\n")
                        rows.clear()
                if rows:
                    copy.write("\n".join(rows) + "\n")
            with cur.copy(f"COPY audit_seal ({', '.join(SEAL_COLUMNS)}) FROM STDIN") as copy:
                for at in range(0, len(seals), _CHUNK):
                    copy.write("".join(seals[at:at + _CHUNK]))
            # A chain the runs began keeps its head's (position, event id): the seeded events' (1, id)
            # sort before it, and the sealer resumes after it, at the runs' next events.
            cur.executemany(
                "INSERT INTO audit_chain (organization_id, seq, hash, position, event_id) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (organization_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                "position = excluded.position, event_id = excluded.event_id",
                [(c.id, c.walk.seq, c.walk.hash, *c.last) for c in last.values()])
            conn.commit()
        return {"python_cpu_s": time.process_time() - own_cpu,
                "postgres_cpu_s": (cpu_seconds(conn.info.backend_pid) or 0.0) - backend_cpu}


def seed_audit(database_url: str, count: int, processes: int = 2, rng_seed: int = 20261203) -> dict:
    """Add ``count`` sealed events over the last YEARS years, every organization's interleaved; what it took.

    ``processes`` share the organizations (each chain is written by one of them), each with its
    own connection: the hashing is Python's, and one process left a core idle.
    """
    check_columns()
    started = time.monotonic()
    with psycopg.connect(database_url) as conn:
        clinics = _clinics(conn)
    now = datetime.now(UTC) - timedelta(days=1)  # before the runs' events: the past
    first_us = int((now - timedelta(days=365 * YEARS) - _EPOCH).total_seconds() * 1_000_000)
    span_us = int((now - _EPOCH).total_seconds() * 1_000_000) - first_us
    with psycopg.connect(database_url, autocommit=True) as conn:  # a partition for every month of the years
        month, have = partitions.month_of(now - timedelta(days=365 * YEARS)), {
            r[0] for r in conn.execute("SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c "
                                       "ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_event'::regclass")}
        while month <= partitions.month_of(now):
            if partitions.name("audit_event", month) not in have:
                for table in partitions.TABLES:
                    for statement in partitions.ddl(table, month):
                        conn.execute(statement)
            month = partitions.next_month(month)
    groups = [clinics[k::processes] for k in range(processes)]
    counts = [count * len(g) // len(clinics) for g in groups]
    counts[0] += count - sum(counts)
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(pool.map(_seed_part, [database_url] * processes, groups, counts, [first_us] * processes,
                              [span_us] * processes, [rng_seed + k for k in range(processes)]))
    with psycopg.connect(database_url) as conn:
        size_bytes = audit_bytes(conn)
    seconds = time.monotonic() - started
    return {"events": count, "seconds": seconds, "rate": count / seconds if seconds else 0.0, "bytes": size_bytes,
            "python_cpu_s": sum(p["python_cpu_s"] for p in parts),
            "postgres_cpu_s": sum(p["postgres_cpu_s"] for p in parts),
            "description": f"{len(clinics)} organizations interleaved, evenly over the last {YEARS} years' months, "
                           f"already sealed; written by {processes} processes"}
