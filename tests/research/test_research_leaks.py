"""No export, in any format or profile, carries a name, an external id, free text, a date or a real id."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.support.research import (
    DATASETS,
    EXTERNAL_ID,
    FORMATS,
    NAME,
    PROFILES,
    SECRETS,
    csv_as_ndjson,
    dictionary,
    export,
    ndjson_rows,
)

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dataset", DATASETS)
async def test_no_identifier_leaves_in_any_export(app, client, planted, dataset, fmt, profile):
    world, seeded = planted
    response = await export(client, world.researcher, dataset, format=fmt, profile=profile)
    body = response.text
    rows = body.count("\n") - (1 if fmt == "csv" else 0)
    assert rows == (6 if dataset == "measures" else 2)  # the planted rows are all there
    for secret in (NAME, EXTERNAL_ID, *SECRETS):
        assert secret.lower() not in body.lower(), f"{secret!r} leaked into {dataset}/{fmt}/{profile}"
    for real_id in seeded.ids:
        assert real_id not in body, f"a real id leaked into {dataset}/{fmt}/{profile}"
    assert not UUID.search(body), "something shaped like a real id was exported"
    for planted_date in seeded.dates:
        assert planted_date not in body
    assert not ISO_DATE.search(body), "a date was exported"
    async with app.state.engine.connect() as db:
        key = await db.scalar(sa.text("SELECT research_export_key FROM organization WHERE id = :o"), {"o": world.org_id})
    assert key and key not in body, "the export key itself was exported"
    assert response.headers["x-export-profile"] == profile


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("dataset", DATASETS)
async def test_the_95_year_old_is_90_plus_and_an_unknown_birth_date_is_null(client, planted, dataset, profile):
    world, _ = planted
    rows = ndjson_rows(await export(client, world.researcher, dataset, profile=profile))
    assert sorted({row["course"]: row["age_at_start"] for row in rows}.values(), key=str) == ["90+", None]
    table = csv_as_ndjson(await export(client, world.researcher, dataset, format="csv", profile=profile),
                          await dictionary(client, world.researcher), dataset)
    assert sorted({row["course"]: row["age_at_start"] for row in table}.values(), key=str) == ["90+", None]


async def test_only_focal_problem_area_codes_leave_primary_first(client, planted):
    world, _ = planted
    rows = ndjson_rows(await export(client, world.researcher, "courses"))
    areas = {(row["problem_area_primary"], row["problem_area_secondary"]) for row in rows}
    assert areas == {("role_dispute", "grief"), (None, None)}  # the non-focal role_transition stays behind


async def test_the_only_date_element_is_the_start_year_and_limited_adds_only_day_counts(client, planted):
    world, seeded = planted
    safe = ndjson_rows(await export(client, world.researcher, "courses"))
    limited = ndjson_rows(await export(client, world.researcher, "courses", profile="limited"))
    assert {r["start_year"] for r in safe} == {int(c["started_on"][:4]) for c in seeded.courses}
    assert set(limited[0]) - set(safe[0]) == {"ended_day"}
    assert {r["ended_day"] for r in limited} == {120, None}  # discontinued today, 120 days after its start; open
    safe_measures = ndjson_rows(await export(client, world.researcher, "measures"))
    limited_measures = ndjson_rows(await export(client, world.researcher, "measures", profile="limited"))
    assert set(limited_measures[0]) - set(safe_measures[0]) == {"day"}
    assert sorted(r["day"] for r in limited_measures) == [0, 1, 1, 6, 6, 6]
