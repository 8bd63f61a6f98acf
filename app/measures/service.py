"""Measure use cases: score with the instruments module, write under the course's row lock, report outcomes."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app import instruments
from app.audit import context as audit
from app.core.errors import Conflict, Forbidden, Unprocessable
from app.core.ids import today
from app.core.pagination import Page
from app.courses import repository as courses
from app.courses import service as course_service
from app.deps import Principal
from app.instruments.scoring import round2
from app.measures import chart, repository
from app.sessions import repository as sessions
from app.webhooks import outbox

_MEAN_SCORED = frozenset(i for i in instruments.INSTRUMENTS if instruments.get_instrument(i).scoring == "mean")


def number(instrument_id: str, value: Any) -> int | float:
    """A stored total as the API shows it: a whole number, or the MSPSS mean to 2 decimals."""
    return round2(value) if instrument_id in _MEAN_SCORED else int(value)


def present(measure: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """A measure with its total normalised and its change from the instrument's baseline in the course."""
    instrument = measure["instrument"]
    total, base = number(instrument, measure["total"]), number(instrument, baseline["total"])
    is_baseline = measure["id"] == baseline["id"]
    return {
        **measure,
        "total": total,
        "change_from_baseline": instruments.change_from_baseline(instrument, base, total),
        "reliable_change": None if is_baseline else instruments.reliable_change(instrument, base, total),
    }


def _score(data: dict[str, Any]) -> instruments.Score:
    try:
        return instruments.score(data["instrument"], data.get("items"), data.get("total"))
    except instruments.UnknownInstrument:
        message = f"instrument must be one of {', '.join(instruments.INSTRUMENTS)}"
        raise Unprocessable("Unknown instrument.", errors=[{"loc": ["instrument"], "message": message}]) from None
    except instruments.ItemError as exc:
        raise Unprocessable(exc.message, errors=[{"loc": list(exc.loc), "message": exc.message}]) from None


async def record(db: AsyncConnection, principal: Principal, course_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Score and store an administration on an open course (S6); a positive risk item flags, never blocks."""
    course = await course_service.get_open_for_change(db, principal, course_id)
    scored = _score(data)
    day = data["administered_on"]
    if day > today():
        raise Unprocessable("administered_on cannot be in the future.",
                            errors=[{"loc": ["administered_on"], "message": "must not be after today"}])
    session_number = None
    if data.get("session_id") is not None:
        session_number = (await sessions.get(db, course_id, data["session_id"]))["number"]
    if session_number is None:  # unlinked, or linked to a missed or cancelled appointment
        session_number = await _attended_by(db, course, day)
    # Read before the insert (one round trip less); a course with no measure yet has no baseline to read.
    baseline = None if course["first_measure_on"] is None else await repository.baseline(db, course_id, data["instrument"])
    measure = await repository.insert(db, {
        "organization_id": principal.organization_id, "course_id": course_id, "session_id": data.get("session_id"),
        "instrument": data["instrument"], "administered_on": day,
        "items": None if data.get("items") is None else list(data["items"]),
        "total": scored.total, "severity": scored.severity, "risk_items": list(scored.risk_items),
        "session_number": session_number, "risk_flag_open": bool(scored.risk_items), "created_by": principal.id,
    })
    await courses.save_later(db, course_id, _facts_with(course, measure))
    facts = {"course_id": course_id, "patient_id": course["patient_id"], "measure_id": measure["id"],
             "instrument": measure["instrument"]}
    await outbox.emit(db, principal.organization_id, "measure.recorded", {
        **facts, "administered_on": day.isoformat(), "total": scored.total, "severity": scored.severity,
        "session_number": session_number,
    })
    if scored.risk_items:
        await outbox.emit(db, principal.organization_id, "risk.flagged", {**facts, "risk_items": list(scored.risk_items)})
    audit.note(resource_type="measure", resource_id=measure["id"], patient_id=course["patient_id"])
    if baseline is None or day < baseline["administered_on"]:  # the first of its instrument (ids break a tie: it is newest)
        baseline = measure
    return present(measure, baseline)


async def _attended_by(db: AsyncConnection, course: dict[str, Any], day: date) -> int:
    """Attended sessions held on or before ``day``: every one, from the course row, unless one was held later."""
    latest = course["latest_session_on"]
    if latest is None or latest <= day:
        return course["sessions_attended"]
    return await repository.attended_by(db, course["id"], day)


def _facts_with(course: dict[str, Any], measure: dict[str, Any]) -> dict[str, Any]:
    """The course row's measure facts once ``measure`` is added (repository.course_facts, without reading every measure).

    The new measure has the newest id, so it is the latest administration exactly when no other is dated later.
    """
    day, first, last = measure["administered_on"], course["first_measure_on"], course["last_measure_on"]
    facts = {
        "first_measure_on": day if first is None or day < first else first,
        "last_measure_on": day if last is None or day > last else last,
        "risk_flag_open": bool(course["risk_flag_open"]) or measure["risk_flag_open"],
    }
    if last is None or day >= last:
        facts["last_measure_session_number"] = measure["session_number"]
    return facts


async def get(db: AsyncConnection, principal: Principal, course_id: str, measure_id: str) -> dict[str, Any]:
    """One measure of a course in reach, with its change from baseline."""
    course = await courses.get(db, principal, course_id)
    measure = await repository.get(db, course_id, measure_id)
    audit.note(resource_type="measure", resource_id=measure_id, patient_id=course["patient_id"])
    baseline = await repository.baseline(db, course_id, measure["instrument"])
    return present(measure, baseline)


async def list_page(db: AsyncConnection, principal: Principal, course_id: str, page: Page, instrument: str | None) -> dict:
    """A page of a course's measures, each with its change from baseline."""
    course = await courses.get(db, principal, course_id)
    audit.note(patient_id=course["patient_id"])
    result = await repository.list_page(db, course_id, page, instrument)
    baselines = await repository.baselines(db, course_id, instrument)
    result["data"] = [present(m, baselines[m["instrument"]]) for m in result["data"]]
    return result


def course_outcomes(points: dict[str, list[instruments.MeasurePoint]]) -> list[dict[str, Any]]:
    """One outcome per instrument a course has, in catalogue order (as GET .../outcomes)."""
    return [instruments.instrument_outcome(i, points[i]) for i in instruments.INSTRUMENTS if i in points]


def points_by_instrument(measures: list[Any]) -> dict[str, list[instruments.MeasurePoint]]:
    """Measures' POINT rows as outcome points, by instrument."""
    points: dict[str, list[instruments.MeasurePoint]] = {}
    for m in measures:
        total = number(m["instrument"], m["total"])
        point = instruments.MeasurePoint(m["id"], m["administered_on"], m["session_number"], total, m["severity"])
        points.setdefault(m["instrument"], []).append(point)
    return points


async def outcomes(db: AsyncConnection, principal: Principal, course_id: str) -> dict[str, Any]:
    """api.md's outcomes of a course: one entry per instrument it has (catalogue order), and the paired result."""
    course = await courses.get(db, principal, course_id)
    audit.note(resource_type="outcome", resource_id=course_id, patient_id=course["patient_id"])
    points = points_by_instrument(await repository.points(db, course_id))
    return {
        "instruments": course_outcomes(points),
        "paired": instruments.paired_outcome(points.get("phq-9", ()), points.get("gad-7", ())),
    }


async def chart_svg(db: AsyncConnection, principal: Principal, course_id: str, instrument: str) -> str:
    """The SVG trajectory of one instrument in a course in reach."""
    course = await courses.get(db, principal, course_id)
    audit.note(resource_type="outcome", resource_id=course_id, patient_id=course["patient_id"])
    points = [
        chart.ChartPoint(m["session_number"] or 0, number(instrument, m["total"]), bool(m["risk_items"]),
                         bool(m["risk_flag_open"]))
        for m in await repository.chart_points(db, course_id, instrument)
    ]
    limit = course_service.snapshot(course).limit
    return chart.render(instruments.get_instrument(instrument), points, limit)


async def acknowledge(db: AsyncConnection, principal: Principal, course_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Close a measure's open risk flag: the course's therapist or a supervisor, never an integration."""
    course = await courses.get(db, principal, course_id, lock=True)
    is_therapist = principal.id == course["therapist_id"]
    if principal.kind != "user" or not (is_therapist or "supervisor" in principal.roles):
        raise Forbidden("Only the course's therapist or a supervisor can acknowledge a risk flag.")
    await repository.get(db, course_id, data["measure_id"])
    if not await repository.close_flag(db, data["measure_id"], principal.id):
        raise Conflict("risk_flag_not_open", "This measure has no open risk flag to acknowledge.")
    ack = await repository.insert_acknowledgement(db, {
        "organization_id": principal.organization_id, "course_id": course_id, "measure_id": data["measure_id"],
        "note": data["note"], "by_type": principal.kind, "by_id": principal.id,
    })
    still_open = (await repository.course_facts(db, course_id))["risk_flag_open"]
    if still_open != course["risk_flag_open"]:
        await courses.save(db, course_id, {"risk_flag_open": still_open})
    audit.note(resource_type="risk_acknowledgement", resource_id=ack["id"], patient_id=course["patient_id"])
    return ack


async def list_acknowledgements(db: AsyncConnection, principal: Principal, course_id: str, page: Page) -> dict:
    """A page of a course's risk acknowledgements."""
    course = await courses.get(db, principal, course_id)
    audit.note(patient_id=course["patient_id"])
    return await repository.list_acknowledgements(db, course_id, page)


async def facts_after_sessions_changed(db: AsyncConnection, course_id: str) -> dict[str, Any]:
    """Renumber a course's measures after a session was recorded or deleted; the facts to save on the course."""
    await repository.renumber(db, course_id)
    return await repository.course_facts(db, course_id)
