"""Change from baseline on each measure, and course outcomes worked out by hand, through the API."""

from tests.support.clinic import CourseDriver, open_course
from tests.support.measures import day, gad7, phq9, record


async def outcomes(client, actor, course) -> dict:
    response = await client.get(f"/v1/courses/{course['id']}/outcomes", headers=actor.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_change_and_reliable_change_follow_the_baseline(client, world):
    course = await open_course(client, world.clinician)
    seen = []
    for offset, total in ((1, 18), (2, 12), (3, 15), (4, 24)):
        m = await record(client, world.clinician, course, "phq-9", phq9(total), on=day(course, offset))
        seen.append((m["change_from_baseline"], m["reliable_change"]))
    # A move of exactly 6 either way is reliable: "at least the threshold".
    assert seen == [(0, None), (-6, "improved"), (-3, "unchanged"), (6, "deteriorated")]


async def test_a_backdated_administration_becomes_the_baseline(client, world):
    course = await open_course(client, world.clinician)
    later = await record(client, world.clinician, course, "gad-7", gad7(12), on=day(course, 5))
    earlier = await record(client, world.clinician, course, "gad-7", gad7(16), on=day(course, 1))
    assert (earlier["change_from_baseline"], earlier["reliable_change"]) == (0, None)
    reread = (await client.get(f"/v1/courses/{course['id']}/measures/{later['id']}", headers=world.clinician.headers)).json()
    assert (reread["change_from_baseline"], reread["reliable_change"]) == (-4, "improved")


async def test_outcome_of_a_recovered_phq9_course(client, world):
    course = await open_course(client, world.clinician)
    drive = CourseDriver(client, world.clinician, course)
    base = await record(client, world.clinician, course, "phq-9", phq9(18), on=day(course, 0))
    for _ in range(3):
        await drive.session()
    latest = await record(client, world.clinician, course, "phq-9", phq9(8), on=day(course, 3))
    result = await outcomes(client, world.clinician, course)
    assert result["paired"] is None
    assert result["instruments"] == [{
        "instrument": "phq-9",
        "baseline": {"measure_id": base["id"], "administered_on": day(course, 0), "total": 18, "severity": "moderately_severe"},
        "latest": {"measure_id": latest["id"], "administered_on": day(course, 3), "total": 8, "severity": "mild"},
        "change": -10, "response": True, "remission": False,
        "reliable_improvement": True, "reliable_deterioration": False,
        "case_at_baseline": True, "case_at_latest": False, "recovery": True, "reliable_recovery": True,
        "trajectory": [
            {"measure_id": base["id"], "administered_on": day(course, 0), "session_number": 0, "total": 18},
            {"measure_id": latest["id"], "administered_on": day(course, 3), "session_number": 3, "total": 8},
        ],
    }]


async def test_outcome_from_a_baseline_of_zero_has_no_response(client, world):
    course = await open_course(client, world.clinician)
    await record(client, world.clinician, course, "phq-9", phq9(0), on=day(course, 1))
    await record(client, world.clinician, course, "phq-9", phq9(3), on=day(course, 2))
    [phq] = (await outcomes(client, world.clinician, course))["instruments"]
    assert (phq["change"], phq["response"], phq["remission"]) == (3, None, True)
    assert (phq["reliable_improvement"], phq["reliable_deterioration"]) == (False, False)
    assert (phq["case_at_baseline"], phq["case_at_latest"], phq["recovery"], phq["reliable_recovery"]) == (
        False, False, False, False)


async def test_outcome_of_a_single_measure_is_its_own_baseline_and_latest(client, world):
    course = await open_course(client, world.clinician)
    only = await record(client, world.clinician, course, "phq-9", phq9(14))
    [phq] = (await outcomes(client, world.clinician, course))["instruments"]
    assert phq["baseline"] == phq["latest"] and phq["baseline"]["measure_id"] == only["id"]
    assert (phq["change"], phq["response"], phq["remission"]) == (0, False, False)
    assert (phq["reliable_improvement"], phq["reliable_deterioration"]) == (False, False)
    assert (phq["case_at_baseline"], phq["case_at_latest"], phq["recovery"], phq["reliable_recovery"]) == (
        True, True, False, False)
    assert len(phq["trajectory"]) == 1


async def test_mspss_rises_as_support_grows_and_leaves_undefined_flags_null(client, world):
    course = await open_course(client, world.clinician)
    await record(client, world.clinician, course, "mspss", [3] * 11 + [2], on=day(course, 1))  # 2.92 low
    await record(client, world.clinician, course, "mspss", [4, 5] * 6, on=day(course, 9))  # 4.50 moderate
    [mspss] = (await outcomes(client, world.clinician, course))["instruments"]
    assert (mspss["baseline"]["total"], mspss["latest"]["total"], mspss["change"]) == (2.92, 4.5, 1.58)
    assert (mspss["baseline"]["severity"], mspss["latest"]["severity"]) == ("low", "moderate")
    flags = ("response", "remission", "reliable_improvement", "reliable_deterioration", "case_at_baseline",
             "case_at_latest", "recovery", "reliable_recovery")
    assert {name: mspss[name] for name in flags} == dict.fromkeys(flags)


async def test_paired_phq9_and_gad7_where_one_improves_and_the_other_deteriorates(client, world):
    course = await open_course(client, world.clinician)
    await record(client, world.clinician, course, "gad-7", gad7(6), on=day(course, 1))
    await record(client, world.clinician, course, "phq-9", phq9(16), on=day(course, 1))
    await record(client, world.clinician, course, "phq-9", phq9(8), on=day(course, 8))
    await record(client, world.clinician, course, "gad-7", gad7(12), on=day(course, 8))
    result = await outcomes(client, world.clinician, course)
    assert [i["instrument"] for i in result["instruments"]] == ["phq-9", "gad-7"]  # catalogue order
    phq, gad = result["instruments"]
    assert (phq["change"], phq["reliable_improvement"], phq["recovery"]) == (-8, True, True)
    assert (gad["change"], gad["reliable_deterioration"], gad["case_at_baseline"], gad["case_at_latest"]) == (
        6, True, False, True)
    # A case at intake (PHQ-9 16); GAD-7 12 is a case at the last paired date, so not recovered;
    # one reliable deterioration rules out paired reliable improvement.
    assert result["paired"] == {"case_at_intake": True, "recovery": False, "reliable_improvement": False,
                                "reliable_deterioration": True}


async def test_a_course_without_measures_has_empty_outcomes(client, world):
    course = await open_course(client, world.clinician)
    assert await outcomes(client, world.clinician, course) == {"instruments": [], "paired": None}
