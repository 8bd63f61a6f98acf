"""Helpers for the research export tests: call an export, read NDJSON and CSV back, plant identifiable data."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import orjson

from tests.support.measures import day, gad7, phq9, record
from tests.support.world import Actor, World, create_patient

DATASETS = ("measures", "courses")
FORMATS = ("ndjson", "csv")
PROFILES = ("safe_harbor", "limited")


async def export(client: Any, actor: Actor, dataset: str, expect: int = 200, **params: Any) -> Any:
    """GET /v1/research/{dataset} with the query params; asserts the status and returns the response."""
    response = await client.get(f"/v1/research/{dataset}", params=params, headers=actor.headers)
    assert response.status_code == expect, response.text
    return response


def ndjson_rows(response: Any) -> list[dict]:
    """The rows of an NDJSON export (every line, including the last, ends with a newline)."""
    text = response.text
    assert text == "" or text.endswith("\n")
    return [orjson.loads(line) for line in text.splitlines()]


def csv_table(response: Any) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a CSV export, read with the csv module; asserts CRLF line ends."""
    text = response.text
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    return header, rows


def _typed(value: str, kind: str) -> Any:
    if value == "":
        return None
    if kind == "boolean":
        assert value in ("true", "false"), value
        return value == "true"
    if kind == "integer":
        return int(value)
    if kind == "integer|string":
        return value if value.endswith("+") else int(value)
    if kind == "number":
        number = float(value)
        return int(number) if number.is_integer() and "." not in value else number
    return value


def csv_as_ndjson(response: Any, dictionary: dict, dataset: str) -> list[dict]:
    """A CSV export read back and normalised to what the NDJSON export says: types, nulls, items as a list."""
    kinds = {c["name"]: c["type"] for d in dictionary["datasets"] if d["name"] == dataset for c in d["columns"]}
    header, rows = csv_table(response)
    out = []
    for row in rows:
        assert len(row) == len(header)
        values = {name: _typed(value, kinds[name]) for name, value in zip(header, row, strict=True)}
        if dataset == "measures":
            items = [values.pop(name) for name in header if name.startswith("item_")]
            present = [v for v in items if v is not None]
            assert items[:len(present)] == present, "CSV items must fill item_1.. without gaps"
            values["items"] = present or None
        out.append(values)
    return out


async def dictionary(client: Any, actor: Actor) -> dict:
    """GET /v1/research/dictionary."""
    response = await client.get("/v1/research/dictionary", headers=actor.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def sign_data_use_agreement(client: Any, world: World, value: bool = True) -> None:
    """PATCH /v1/organization {"data_use_agreement": value} as the admin."""
    org = await client.get("/v1/organization", headers=world.admin.headers)
    headers = {**world.admin.headers, "If-Match": org.headers["etag"]}
    response = await client.patch("/v1/organization", json={"data_use_agreement": value}, headers=headers)
    assert response.status_code == 200, response.text


# --- planted, identifiable data ----------------------------------------------------------------
NAME = "Zebulon Quixotic-Marchbanks"
EXTERNAL_ID = "EHR-LEAK-778899"
SECRETS = (  # free text written into every field that takes it; none may leave in an export
    "LEAKDIAGNOSIS", "LEAKFORMDIAG", "LEAKSUMMARY", "LEAKWITHWHOM", "LEAKDECEASED", "LEAKGOAL", "LEAKOLDROLE",
    "LEAKLABEL", "Hortensia", "LEAKPOSITIVES", "LEAKDIFFICULT", "LEAKEXPECT", "LEAKCHANGE", "LEAKCONTACT",
    "LEAKTIMELINE", "LEAKNOTE", "LEAKACK", "LEAKTRANSITION", "LEAKEXTENSION", "LEAKDISCONTINUE", "Quixotic",
    "Marchbanks", "Zebulon", "EHR-LEAK", "Ignatius",
)


@dataclass
class Planted:
    """What was planted: every real id and date that must not appear in an export."""

    ids: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)
    courses: list[dict] = field(default_factory=list)


def _years_before(day_: date, years: int, extra_days: int) -> date:
    return day_.replace(year=day_.year - years) - timedelta(days=extra_days)


async def _post(client: Any, actor: Actor, url: str, body: dict, planted: Planted, expect: int = 201) -> dict:
    response = await client.post(url, json=body, headers=actor.headers)
    assert response.status_code == expect, response.text
    data = response.json()
    if isinstance(data.get("id"), str):
        planted.ids.add(data["id"])
    return data


async def plant(client: Any, world: World) -> Planted:
    """Two courses full of names, ids, free text and dates: a 95-year-old's (discontinued) and a patient's without a birth date."""
    planted = Planted(ids={world.org_id, *(a.id for a in world.actors.values())})
    clinician = world.clinician
    started = date.today() - timedelta(days=120)
    old = await create_patient(client, clinician, display_name=NAME, external_id=EXTERNAL_ID,
                               birth_date=_years_before(started, 95, 10).isoformat(), sex="female")
    planted.ids.add(old["id"])
    planted.dates.add(old["birth_date"])
    course = await _post(client, clinician, "/v1/courses", {
        "patient_id": old["id"], "protocol": "ipc", "started_on": started.isoformat(),
        "diagnosis": "LEAKDIAGNOSIS melancholia"}, planted)
    url = f"/v1/courses/{course['id']}"
    held = started
    for n in range(2):
        held += timedelta(days=3)
        session = await _post(client, clinician, f"{url}/sessions", {
            "held_on": held.isoformat(), "attendance": "attended", "modality": "video",
            "note": f"LEAKNOTE {n} talked about Ignatius"}, planted)
        planted.dates.add(session["held_on"])
        if n == 0:
            await _formulation_and_inventory(client, clinician, url, started, planted)
            await _post(client, clinician, f"{url}/transitions", {"to": "middle", "note": "LEAKTRANSITION"}, planted,
                        expect=200)
    await _post(client, world.supervisor, f"{url}/extensions", {"sessions": 1, "reason": "LEAKEXTENSION"}, planted,
                expect=200)
    baseline = await record(client, clinician, course, "phq-9", phq9(19, item9=2), on=day(course, 1))
    await record(client, clinician, course, "gad-7", gad7(14), on=day(course, 1))
    await record(client, clinician, course, "phq-9", phq9(8), on=day(course, 6))
    await record(client, clinician, course, "gad-7", gad7(5), on=day(course, 6))
    await record(client, clinician, course, "bdi-ii", total=31, on=day(course, 6))
    await _post(client, clinician, f"{url}/risk-acknowledgements", {"measure_id": baseline["id"], "note": "LEAKACK"},
                planted)
    await _post(client, clinician, f"{url}/transitions",
                {"to": "discontinued", "reason": "moved_away", "note": "LEAKDISCONTINUE"}, planted, expect=200)
    planted.ids.add(course["id"])
    planted.courses.append(course)

    unknown = await create_patient(client, clinician, display_name="Ignatius Marchbanks-Quixotic",
                                   external_id="EHR-LEAK-000001")
    planted.ids.add(unknown["id"])
    second = await _post(client, clinician, "/v1/courses", {
        "patient_id": unknown["id"], "protocol": "ipt", "started_on": (started + timedelta(days=2)).isoformat()},
        planted)
    await record(client, clinician, second, "gad-7", gad7(11), on=day(second, 0))
    planted.courses.append(second)
    for c in planted.courses:
        planted.dates.add(c["started_on"])
        response = await client.get(f"/v1/courses/{c['id']}/measures?limit=200", headers=clinician.headers)
        for m in response.json()["data"]:
            planted.ids.add(m["id"])
            planted.dates.add(m["administered_on"])
    return planted


async def _formulation_and_inventory(client: Any, clinician: Actor, url: str, started: date, planted: Planted) -> None:
    formulation = {
        "diagnosis": "LEAKFORMDIAG F32.1", "summary": "LEAKSUMMARY low since the quarrel with Hortensia",
        "status": "agreed",  # agreed today (an explicit agreed_on is a 500 today: see the report of issue 6)
        "problem_areas": [
            {"area": "grief", "focal": True, "primary": False,
             "details": {"deceased_relationship": "LEAKDECEASED", "died_on": (started - timedelta(days=40)).isoformat()},
             "goals": [{"text": "LEAKGOAL mourn"}]},
            {"area": "role_dispute", "focal": True, "primary": True,
             "details": {"with_whom": "LEAKWITHWHOM Hortensia", "stage": "impasse"},
             "goals": [{"text": "LEAKGOAL renegotiate"}]},
            {"area": "role_transition", "focal": False, "primary": False, "details": {"old_role": "LEAKOLDROLE"}},
        ],
    }
    response = await client.put(f"{url}/formulation", json=formulation, headers=clinician.headers)
    assert response.status_code == 201, response.text
    planted.ids.add(response.json()["id"])
    planted.dates.update({response.json()["agreed_on"], formulation["problem_areas"][0]["details"]["died_on"]})
    relationship = await _post(client, clinician, f"{url}/inventory", {
        "label": "LEAKLABEL Aunt Hortensia", "relationship": "other_family", "ring": 1,
        "contact_frequency": "LEAKCONTACT daily", "positives": "LEAKPOSITIVES", "difficulties": "LEAKDIFFICULT",
        "expectations": "LEAKEXPECT", "changes_wanted": "LEAKCHANGE", "linked_problem_area": "role_dispute"}, planted)
    assert relationship["label"].startswith("LEAKLABEL")
    event = await _post(client, clinician, f"{url}/timeline", {
        "occurred_on": (started - timedelta(days=40)).isoformat(), "event": "LEAKTIMELINE the funeral",
        "mood_change": "much_worse"}, planted)
    planted.dates.add(event["occurred_on"])
