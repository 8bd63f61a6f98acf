"""The catalogue holds exactly domain.md's table, as JSON-ready, recomputable data."""

import dataclasses
import json

import pytest

from app.instruments import INSTRUMENTS, UnknownInstrument, get_instrument, jacobson_truax

# domain.md's table, copied by hand: (items, item range, total range, bands, risk items,
# caseness, reliable change, remission rule, LOINC panel, LOINC total)
DOMAIN_TABLE = {
    "phq-9": (9, (0, 3), (0, 27),
              [(0, 4, "minimal"), (5, 9, "mild"), (10, 14, "moderate"),
               (15, 19, "moderately_severe"), (20, 27, "severe")],
              (9,), 10, 6, "< 5", "44249-1", "44261-6"),
    "gad-7": (7, (0, 3), (0, 21),
              [(0, 4, "minimal"), (5, 9, "mild"), (10, 14, "moderate"), (15, 21, "severe")],
              (), 8, 4, "< 5", "69737-5", "70274-6"),
    "epds": (10, (0, 3), (0, 30),
             [(0, 9, "low"), (10, 12, "possible"), (13, 30, "probable")],
             (10,), 13, 4, "< 10", "71354-5", "99046-5"),
    "hamd-17": (17, None, (0, 52),
                [(0, 7, "none"), (8, 16, "mild"), (17, 23, "moderate"), (24, 52, "severe")],
                (3,), 17, 6, "<= 7", None, None),
    "qids-sr16": (16, (0, 3), (0, 27),
                  [(0, 5, "none"), (6, 10, "mild"), (11, 15, "moderate"), (16, 20, "severe"),
                   (21, 27, "very_severe")],
                  (12,), 11, 5, "<= 5", None, None),
    "wsas": (5, (0, 8), (0, 40),
             [(0, 9, "subclinical"), (10, 20, "significant"), (21, 40, "severe")],
             (), 10, 8, "< 10", None, None),
    "mspss": (12, (1, 7), (1.0, 7.0),
              [(1.0, 2.99, "low"), (3.0, 5.0, "moderate"), (5.01, 7.0, "high")],
              (), None, None, "n/a", None, None),
    "bdi-ii": (0, None, (0, 63),
               [(0, 13, "minimal"), (14, 19, "mild"), (20, 28, "moderate"), (29, 63, "severe")],
               (), 20, 9, "<= 13", None, None),
}


def test_catalogue_has_exactly_the_eight_instruments_of_domain_md():
    assert list(INSTRUMENTS) == list(DOMAIN_TABLE)


@pytest.mark.parametrize("instrument_id", DOMAIN_TABLE)
def test_catalogue_entry_matches_domain_table(instrument_id):
    count, item_range, totals, bands, risk, caseness, rc, remission, panel, total = (
        DOMAIN_TABLE[instrument_id]
    )
    inst = INSTRUMENTS[instrument_id]
    assert inst.id == instrument_id
    assert inst.item_count == count == len(inst.item_ranges)
    if item_range is not None:
        assert set(inst.item_ranges) == {item_range}
    assert (inst.total_min, inst.total_max) == totals
    assert [(b.low, b.high, b.code) for b in inst.bands] == bands
    assert inst.risk_items == risk
    assert inst.caseness == caseness
    assert inst.reliable_change == rc
    assert inst.remission_rule == remission
    assert (inst.loinc_panel, inst.loinc_total) == (panel, total)


def test_hamd_items_1_2_3_7_8_9_10_11_15_range_0_to_4_and_the_others_0_to_2():
    ranges = INSTRUMENTS["hamd-17"].item_ranges
    wide = {n for n, r in enumerate(ranges, start=1) if r == (0, 4)}
    narrow = {n for n, r in enumerate(ranges, start=1) if r == (0, 2)}
    assert wide == {1, 2, 3, 7, 8, 9, 10, 11, 15}
    assert narrow == set(range(1, 18)) - wide
    assert sum(high for _, high in ranges) == 52


def test_only_hamd_is_clinician_rated_only_bdi_is_total_only_only_mspss_is_higher_better():
    assert [i.id for i in INSTRUMENTS.values() if i.clinician_rated] == ["hamd-17"]
    assert [i.id for i in INSTRUMENTS.values() if i.total_only] == ["bdi-ii"]
    assert [i.id for i in INSTRUMENTS.values() if i.higher_is_better] == ["mspss"]
    assert INSTRUMENTS["qids-sr16"].scoring == "qids_sr16"
    assert INSTRUMENTS["mspss"].scoring == "mean"


@pytest.mark.parametrize("instrument_id", DOMAIN_TABLE)
def test_remission_below_is_the_strict_form_of_the_remission_rule(instrument_id):
    inst = INSTRUMENTS[instrument_id]
    op, _, number = inst.remission_rule.partition(" ")
    expected = {"<": lambda n: n, "<=": lambda n: n + 1, "n/a": None}[op]
    assert inst.remission_below == (None if expected is None else expected(int(number)))


@pytest.mark.parametrize(
    "instrument_id, origin",
    [("phq-9", "NHS Talking Therapies"), ("gad-7", "NHS Talking Therapies"),
     ("epds", "Matthey"), ("hamd-17", "Jacobson-Truax"), ("qids-sr16", "Jacobson-Truax"),
     ("wsas", "Jacobson-Truax"), ("bdi-ii", "Jacobson-Truax")],
)
def test_reliable_change_source_names_its_origin(instrument_id, origin):
    assert origin in INSTRUMENTS[instrument_id].reliable_change_source


@pytest.mark.parametrize("instrument_id", ["hamd-17", "qids-sr16", "wsas", "bdi-ii"])
def test_estimated_reliable_change_recomputes_from_its_stated_sd_and_r(instrument_id):
    inst = INSTRUMENTS[instrument_id]
    value = jacobson_truax(inst.reliable_change_sd, inst.reliable_change_r)
    assert int(value + 0.5) == inst.reliable_change
    assert f"SD {inst.reliable_change_sd} " in inst.reliable_change_source
    assert f"r {inst.reliable_change_r} " in inst.reliable_change_source
    assert f"{value:.2f}" in inst.reliable_change_source


def test_jacobson_truax_formula_matches_a_hand_computation():
    # 1.96 * 10 * sqrt(2) * sqrt(1 - 0.75) = 1.96 * 10 * 1.41421 * 0.5 = 13.859
    assert jacobson_truax(10, 0.75) == pytest.approx(13.859, abs=1e-3)


def test_as_dict_is_json_ready_with_lists_not_tuples():
    data = INSTRUMENTS["hamd-17"].as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["item_ranges"][0] == [0, 4]
    assert data["risk_items"] == [3]
    assert data["bands"][0] == {"code": "none", "label": "No depression", "low": 0, "high": 7}
    assert data["remission_below"] == 8 and data["remission_rule"] == "<= 7"
    assert INSTRUMENTS["bdi-ii"].as_dict()["item_ranges"] == []


def test_catalogue_entries_cannot_be_changed_in_place():
    with pytest.raises(dataclasses.FrozenInstanceError):
        INSTRUMENTS["phq-9"].caseness = 11


@pytest.mark.parametrize("bad_id", ["phq9", "PHQ-9", "", None, ["phq-9"]])
def test_unknown_instrument_is_a_key_error_and_a_value_error(bad_id):
    with pytest.raises(UnknownInstrument) as caught:
        get_instrument(bad_id)
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)
    assert "unknown instrument" in str(caught.value)
