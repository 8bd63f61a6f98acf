"""No export, in any format or profile, carries a name, an external id, free text, a date or a real id."""

from __future__ import annotations

import re

import pytest

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
    plant,
    sign_data_use_agreement,
)

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


@pytest.fixture
async def planted(client, world):
    """The planted courses, in an organization with a data-use agreement (so 'limited' can be read too)."""
    await sign_data_use_agreement(client, world)
    return await plant(client, world)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dataset", DATASETS)
async def test_no_identifier_leaves_in_any_export(client, world, planted, dataset, fmt, profile):
    response = await export(client, world.researcher, dataset, format=fmt, profile=profile)
    body = response.text
    assert body.count("\n") >= 3 if dataset == "measures" else 2  # the planted rows are there
    for secret in (NAME, EXTERNAL_ID, *SECRETS):
        assert secret.lower() not in body.lower(), f"{secret!r} leaked into {dataset}/{fmt}/{profile}"
    for real_id in planted.ids:
        assert real_id not in body, f"a real id leaked into {dataset}/{fmt}/{profile}"
    assert not UUID.search(body), "something shaped like a real id was exported"
    for planted_date in planted.dates:
        assert planted_date not in body
    assert not ISO_DATE.search(body), "a date was exported"
    assert response.headers["x-export-profile"] == profile


@pytest.mark.parametrize("profile", PROFILES)
async def test_the_95_year_old_is_90_plus_and_an_unknown_birth_date_is_null(client, world, planted, profile):
    for dataset in DATASETS:
        rows = ndjson_rows(await export(client, world.researcher, dataset, profile=profile))
        ages = {row["course"]: row["age_at_start"] for row in rows}
        assert sorted(ages.values(), key=str) == ["90+", None], ages
        table = csv_as_ndjson(await export(client, world.researcher, dataset, format="csv", profile=profile),
                              await dictionary(client, world.researcher), dataset)
        assert sorted({row["course"]: row["age_at_start"] for row in table}.values(), key=str) == ["90+", None]


async def test_only_focal_problem_area_codes_leave_primary_first(client, world, planted):
    rows = ndjson_rows(await export(client, world.researcher, "courses"))
    areas = {(row["problem_area_primary"], row["problem_area_secondary"]) for row in rows}
    assert areas == {("role_dispute", "grief"), (None, None)}
