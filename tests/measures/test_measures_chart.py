"""The trajectory chart: well-formed SVG, one point per measure, risk flags marked, nothing identifying."""

import xml.etree.ElementTree as ET

from app.instruments import get_instrument
from app.measures.chart import ChartPoint, render
from tests.support.clinic import CourseDriver, open_course
from tests.support.measures import day, phq9, record

SVG = "{http://www.w3.org/2000/svg}"


def by_class(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if css in e.get("class", "").split()]


async def test_chart_draws_each_measure_bands_and_the_flagged_one(client, world):
    course = await open_course(client, world.clinician, diagnosis="F32.1 after bereavement")
    drive = CourseDriver(client, world.clinician, course)
    await record(client, world.clinician, course, "phq-9", phq9(19), on=day(course, 0))
    for _ in range(2):
        await drive.session()
    await record(client, world.clinician, course, "phq-9", phq9(13, item9=1), on=day(course, 2))
    await drive.session()
    await record(client, world.clinician, course, "phq-9", phq9(7), on=day(course, 3))
    await record(client, world.clinician, course, "gad-7", [2] * 7, on=day(course, 3))
    response = await client.get(f"/v1/courses/{course['id']}/outcomes/chart.svg?instrument=phq-9",
                                headers=world.clinician.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.text)
    assert root.tag == SVG + "svg"
    assert root.find(SVG + "title").text == "PHQ-9 score by session"
    [line] = root.iter(SVG + "polyline")
    coords = [tuple(map(float, pair.split(","))) for pair in line.get("points").split()]
    assert len(coords) == 3 == len(by_class(root, "circle", "point"))
    assert coords[0][0] < coords[1][0] < coords[2][0]  # sessions 0, 2, 3 left to right
    assert coords[0][1] < coords[1][1] < coords[2][1]  # 19, 13, 7: lower totals sit lower on the page
    [marker] = by_class(root, "circle", "risk-marker")
    assert (float(marker.get("cx")), float(marker.get("cy"))) == coords[1]
    assert {b.get("class") for b in by_class(root, "rect", "band")} == {
        f"band band-{code}" for code in ("minimal", "mild", "moderate", "moderately_severe", "severe")}
    labels = " ".join(t.text or "" for t in root.iter(SVG + "text"))
    assert "Session" in labels and "Total score" in labels
    for private in ("Test Patient", course["patient_id"], course["id"], "bereavement", world.clinician.id):
        assert private not in response.text


async def test_chart_of_an_instrument_not_yet_used_is_an_empty_frame(client, world):
    course = await open_course(client, world.clinician)
    url = f"/v1/courses/{course['id']}/outcomes/chart.svg"
    response = await client.get(f"{url}?instrument=mspss", headers=world.clinician.headers)
    root = ET.fromstring(response.text)
    assert list(root.iter(SVG + "polyline")) == [] and by_class(root, "text", "empty")
    assert len(by_class(root, "rect", "band")) == 3
    for query in ("", "?instrument=phq-10"):
        refused = await client.get(url + query, headers=world.clinician.headers)
        assert (refused.status_code, refused.json()["code"]) == (422, "validation_error")


def test_acknowledged_flags_stay_marked_but_dashed_and_mspss_shades_high_as_good():
    svg = render(get_instrument("mspss"), [ChartPoint(0, 2.5, False, False), ChartPoint(4, 5.5, True, False)], 12)
    root = ET.fromstring(svg)
    [marker] = by_class(root, "circle", "risk-marker")
    assert "acknowledged" in marker.get("class")
    fills = {b.get("class").split("-", 1)[1]: b.get("fill") for b in by_class(root, "rect", "band")}
    phq = ET.fromstring(render(get_instrument("phq-9"), [], 16))
    phq_fills = {b.get("class").split("-", 1)[1]: b.get("fill") for b in by_class(phq, "rect", "band")}
    assert fills["high"] == phq_fills["minimal"] and fills["low"] == phq_fills["severe"]


async def test_the_chart_is_svg_unless_accept_prefers_a_download(client, world):
    course = await open_course(client, world.clinician)
    url = f"/v1/courses/{course['id']}/outcomes/chart.svg?instrument=phq-9"
    for accept, media in (("image/svg+xml", "image/svg+xml"), ("*/*", "image/svg+xml"), ("text/html", "image/svg+xml"),
                          ("application/octet-stream", "application/octet-stream"),
                          ("image/svg+xml;q=0.5, application/octet-stream", "application/octet-stream")):
        response = await client.get(url, headers={**world.clinician.headers, "Accept": accept})
        assert (response.status_code, response.headers["content-type"].split(";")[0]) == (200, media), accept
        assert response.headers["vary"] == "Accept"
        assert ET.fromstring(response.text).tag == SVG + "svg"  # the same document either way
        download = response.headers.get("content-disposition")
        assert download == ('attachment; filename="phq-9-chart.svg"' if media != "image/svg+xml" else None)
