"""Export filters: instrument, protocol and the years courses started in; a bad or unknown parameter is a 422."""

from __future__ import annotations

from datetime import date

import pytest

from tests.support.clinic import open_course
from tests.support.measures import gad7, phq9, record
from tests.support.research import export, ndjson_rows


@pytest.fixture(scope="module")
async def filtered(app, client):
    """Three courses: ipt started three years ago (PHQ-9 and GAD-7), ipc last year (GAD-7), ipt-b now (none)."""
    from tests.support.world import make_world

    world = await make_world(app)
    this_year = date.today().year
    old = await open_course(client, world.clinician, "ipt", started_days_ago=(date.today() - date(this_year - 3, 6, 1)).days)
    await record(client, world.clinician, old, "phq-9", phq9(12))
    await record(client, world.clinician, old, "gad-7", gad7(9))
    middle = await open_course(client, world.clinician, "ipc", started_days_ago=(date.today() - date(this_year - 1, 6, 1)).days)
    await record(client, world.clinician, middle, "gad-7", gad7(10))
    await open_course(client, world.clinician, "ipt-b", started_days_ago=0)
    return world, this_year


def _summary(rows: list[dict]) -> list[tuple]:
    return sorted((r["protocol"], r["start_year"], r.get("instrument")) for r in rows)


async def test_no_filter_exports_everything(client, filtered):
    world, year = filtered
    assert _summary(ndjson_rows(await export(client, world.researcher, "measures"))) == [
        ("ipc", year - 1, "gad-7"), ("ipt", year - 3, "gad-7"), ("ipt", year - 3, "phq-9")]
    assert _summary(ndjson_rows(await export(client, world.researcher, "courses"))) == [
        ("ipc", year - 1, None), ("ipt", year - 3, None), ("ipt-b", year, None)]


async def test_instrument_filter_keeps_its_measures_and_the_courses_that_have_it(client, filtered):
    world, year = filtered
    assert _summary(ndjson_rows(await export(client, world.researcher, "measures", instrument="gad-7"))) == [
        ("ipc", year - 1, "gad-7"), ("ipt", year - 3, "gad-7")]
    courses = ndjson_rows(await export(client, world.researcher, "courses", instrument="phq-9"))
    assert _summary(courses) == [("ipt", year - 3, None)]
    assert courses[0]["gad_7_administrations"] == 1  # the course keeps all its outcomes
    assert ndjson_rows(await export(client, world.researcher, "measures", instrument="epds")) == []


async def test_protocol_and_start_year_filters_combine(client, filtered):
    world, year = filtered
    assert _summary(ndjson_rows(await export(client, world.researcher, "courses", protocol="ipt"))) == [
        ("ipt", year - 3, None)]
    assert _summary(ndjson_rows(await export(client, world.researcher, "courses", started_year_from=year - 1))) == [
        ("ipc", year - 1, None), ("ipt-b", year, None)]
    assert _summary(ndjson_rows(await export(client, world.researcher, "courses", started_year_to=year - 1))) == [
        ("ipc", year - 1, None), ("ipt", year - 3, None)]
    rows = ndjson_rows(await export(client, world.researcher, "measures", started_year_from=year - 1,
                                    started_year_to=year - 1, protocol="ipc", instrument="gad-7", format="ndjson"))
    assert _summary(rows) == [("ipc", year - 1, "gad-7")]
    assert ndjson_rows(await export(client, world.researcher, "measures", protocol="ipt-b")) == []


@pytest.mark.parametrize("params", [
    {"instrument": "phq9"}, {"protocol": "cbt"}, {"format": "xlsx"}, {"profile": "full"},
    {"started_year_from": "2024", "started_year_to": "2023"}, {"started_year_from": "last"},
    {"started_year_to": "1066"}, {"instrumnet": "phq-9"},
])
async def test_bad_or_unknown_parameters_are_refused(client, filtered, params):
    world, _ = filtered
    for dataset in ("measures", "courses"):
        response = await export(client, world.researcher, dataset, expect=422, **params)
        assert response.json()["code"] == "validation_error"
