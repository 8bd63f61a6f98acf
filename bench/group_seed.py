"""The write pool of "record a group session": group IPT groups of 8 members, each ready for its first session.

Rows are made with the app's own defaults (app.core.models.new_row) and inserted straight into the
tables: per group a group-ipt group (16 planned sessions, capacity 8) led by the benchmark
clinician, and 8 patients, each with a course in the group protocol and a member row whose one
pre-group meeting is held, so the load can record up to 16 group sessions per group.
"""

from __future__ import annotations

from datetime import date, timedelta

import psycopg

from app.core.ids import new_id, utcnow
from app.core.models import new_row
from app.courses.models import Course
from app.groups.models import GroupFacilitator, GroupMember, IptGroup
from app.patients.models import Patient

MEMBERS = 8
PLANNED = 16


def _insert(conn: psycopg.Connection, table: str, rows: list[dict]) -> None:
    names = list(rows[0])
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(f'%({n})s' for n in names)})", rows)


def seed_groups(conn: psycopg.Connection, org_id: str, clinician_id: str, count: int) -> list[str]:
    """``count`` groups of the organization, led by the clinician; their ids."""
    started_on = date.today() - timedelta(days=7 * (PLANNED + 2))
    groups, facilitators, patients, courses, members = [], [], [], [], []
    for _ in range(count):
        group = new_row(IptGroup, {"organization_id": org_id, "name": "Bench group", "protocol": "group-ipt",
                                   "planned_sessions": PLANNED, "capacity": MEMBERS})
        groups.append(group)
        facilitators.append(new_row(GroupFacilitator, {"group_id": group["id"], "user_id": clinician_id, "lead": True}))
        for _ in range(MEMBERS):
            patient = new_row(Patient, {"id": new_id(), "organization_id": org_id, "display_name": "Bench member",
                                        "created_by": clinician_id})
            course = new_row(Course, {"organization_id": org_id, "patient_id": patient["id"],
                                      "therapist_id": clinician_id, "protocol": "group-ipt",
                                      "planned_sessions": PLANNED, "started_on": started_on})
            patients.append(patient)
            courses.append(course)
            members.append(new_row(GroupMember, {"organization_id": org_id, "group_id": group["id"],
                                                 "patient_id": patient["id"], "course_id": course["id"],
                                                 "pre_group_meetings": 1, "last_pre_group_on": started_on,
                                                 "created_at": utcnow()}))
    for table, rows in (("ipt_group", groups), ("group_facilitator", facilitators), ("patient", patients),
                        ("course", courses), ("group_member", members)):
        _insert(conn, table, rows)
    conn.commit()
    return [g["id"] for g in groups]
