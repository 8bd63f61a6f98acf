"""Scoring: totals, bands, risk items and strict validation for every catalogue instrument."""

from decimal import ROUND_HALF_UP, Decimal

import pytest

from app.instruments import INSTRUMENTS, ItemError, UnknownInstrument, score, severity_of

QIDS_DOMAIN_FIRST_ITEMS = (1, 5, 6, 10, 11, 12, 13, 14, 15)


def inputs_for(inst, target):
    """Keyword arguments for `score` that give `target` as the total (or item sum for MSPSS)."""
    if inst.total_only:
        return {"total": target}
    items = [low for low, _ in inst.item_ranges]
    slots = (
        [n - 1 for n in QIDS_DOMAIN_FIRST_ITEMS]
        if inst.scoring == "qids_sr16"
        else range(inst.item_count)
    )
    rest = target - sum(items)
    for i in slots:
        low, high = inst.item_ranges[i]
        step = min(high - low, rest)
        items[i] += step
        rest -= step
    assert rest == 0, f"cannot build {target} for {inst.id}"
    return {"items": items}


def achievable(inst):
    """Every total the instrument can produce, mapped to the inputs that produce it."""
    if inst.scoring == "mean":
        sums = range(inst.item_count * 1, inst.item_count * 7 + 1)
        return {
            float((Decimal(s) / inst.item_count).quantize(Decimal("0.01"), ROUND_HALF_UP)):
                inputs_for(inst, s)
            for s in sums
        }
    return {t: inputs_for(inst, t) for t in range(inst.total_min, inst.total_max + 1)}


def band_edge_cases():
    for inst in INSTRUMENTS.values():
        totals = achievable(inst)
        for band in inst.bands:
            inside = sorted(t for t in totals if band.contains(t))
            for side, total in (("lowest", inside[0]), ("highest", inside[-1])):
                yield pytest.param(
                    inst.id, total, totals[total], band.code,
                    id=f"{inst.id}-{band.code}-{side}-{total}",
                )


@pytest.mark.parametrize("instrument_id, total, inputs, code", list(band_edge_cases()))
def test_total_on_each_side_of_every_band_edge_gets_that_band(instrument_id, total, inputs, code):
    result = score(instrument_id, **inputs)
    assert result.total == total
    assert result.severity == code
    assert severity_of(instrument_id, total) == code


@pytest.mark.parametrize("instrument_id", INSTRUMENTS)
def test_lowest_and_highest_possible_input_give_the_total_range(instrument_id):
    inst = INSTRUMENTS[instrument_id]
    if inst.total_only:
        low, high = {"total": inst.total_min}, {"total": inst.total_max}
    else:
        low = {"items": [lo for lo, _ in inst.item_ranges]}
        high = {"items": [hi for _, hi in inst.item_ranges]}
    assert score(instrument_id, **low).total == inst.total_min
    assert score(instrument_id, **low).severity == inst.bands[0].code
    assert score(instrument_id, **high).total == inst.total_max
    assert score(instrument_id, **high).severity == inst.bands[-1].code


@pytest.mark.parametrize("instrument_id", INSTRUMENTS)
def test_every_possible_total_falls_in_exactly_one_band(instrument_id):
    inst = INSTRUMENTS[instrument_id]
    for total in achievable(inst):
        assert sum(band.contains(total) for band in inst.bands) == 1, total


def test_phq9_items_are_summed():
    assert score("phq-9", [3, 3, 2, 2, 1, 1, 0, 0, 0]).total == 12


def test_hamd_allows_4_on_item_1_but_refuses_3_on_item_4():
    items = [0] * 17
    items[0] = 4
    assert score("hamd-17", items).total == 4
    items[3] = 3
    with pytest.raises(ItemError) as caught:
        score("hamd-17", items)
    assert caught.value.item == 4


def test_qids_takes_the_highest_of_each_grouped_domain():
    items = [1, 3, 0, 2,  # sleep: highest is 3
             2,  # sad mood
             0, 2, 3, 1,  # appetite/weight: highest is 3
             1, 1, 0, 1, 1,  # concentration, self, suicide, interest, energy: 4
             2, 1]  # psychomotor: highest is 2
    assert score("qids-sr16", items).total == 3 + 2 + 3 + 4 + 2


def test_qids_raising_a_non_highest_item_in_a_group_leaves_the_total_unchanged():
    base = [3, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0]
    raised = [3, 2, 2, 2, 0, 3, 1, 2, 2, 0, 0, 0, 0, 0, 3, 3]
    assert score("qids-sr16", base).total == score("qids-sr16", raised).total == 9


def test_qids_all_threes_is_27_not_the_raw_sum_of_48():
    assert score("qids-sr16", [3] * 16).total == 27


def test_mspss_total_is_the_item_mean():
    result = score("mspss", [7] * 6 + [6] * 6)
    assert result.total == 6.5
    assert result.severity == "high"
    assert result.case is None


def test_mspss_mean_is_rounded_to_two_decimals():
    assert score("mspss", [4] * 11 + [1]).total == 3.75
    assert score("mspss", [3] * 11 + [4]).total == 3.08  # 37 / 12 = 3.0833
    assert score("mspss", [3] * 11 + [2]).total == 2.92  # 35 / 12 = 2.9167 -> low
    assert score("mspss", [3] * 11 + [2]).severity == "low"
    assert score("mspss", [3] * 12).severity == "moderate"
    assert score("mspss", [5] * 11 + [6]).total == 5.08
    assert score("mspss", [5] * 11 + [6]).severity == "high"


@pytest.mark.parametrize(
    "instrument_id, total, case",
    [("phq-9", 9, False), ("phq-9", 10, True), ("gad-7", 7, False), ("gad-7", 8, True),
     ("epds", 12, False), ("epds", 13, True), ("hamd-17", 16, False), ("hamd-17", 17, True),
     ("qids-sr16", 10, False), ("qids-sr16", 11, True), ("wsas", 9, False), ("wsas", 10, True),
     ("bdi-ii", 19, False), ("bdi-ii", 20, True)],
)
def test_case_is_total_at_or_above_caseness(instrument_id, total, case):
    assert score(instrument_id, **inputs_for(INSTRUMENTS[instrument_id], total)).case is case


@pytest.mark.parametrize(
    "instrument_id, item", [("phq-9", 9), ("epds", 10), ("hamd-17", 3), ("qids-sr16", 12)]
)
def test_risk_item_at_1_is_reported_and_at_0_is_not(instrument_id, item):
    inst = INSTRUMENTS[instrument_id]
    quiet = [low for low, _ in inst.item_ranges]
    assert score(instrument_id, quiet).risk_items == ()
    positive = list(quiet)
    positive[item - 1] = 1
    assert score(instrument_id, positive).risk_items == (item,)


def test_other_items_never_raise_a_risk_item():
    assert score("phq-9", [3] * 8 + [0]).risk_items == ()
    assert score("gad-7", [3] * 7).risk_items == ()
    assert score("wsas", [8] * 5).risk_items == ()
    assert score("mspss", [1] * 12).risk_items == ()
    assert score("bdi-ii", total=63).risk_items == ()


def _refused(instrument_id, **inputs) -> ItemError:
    with pytest.raises(ItemError) as caught:
        score(instrument_id, **inputs)
    assert isinstance(caught.value, ValueError)
    return caught.value


@pytest.mark.parametrize("count", [0, 8, 10])
def test_wrong_item_count_is_refused_without_naming_an_item(count):
    error = _refused("phq-9", items=[0] * count)
    assert (error.field, error.item) == ("items", None)
    assert "9 items" in error.message


@pytest.mark.parametrize(
    "bad, why",
    [(4, "above range"), (-1, "below range"), (2.0, "float"), (1.5, "fraction"),
     (True, "bool"), ("2", "string"), (None, "None")],
)
def test_bad_item_value_is_refused_naming_the_item(bad, why):
    items = [1] * 9
    items[6] = bad
    error = _refused("phq-9", items=items)
    assert (error.field, error.item) == ("items", 7)
    assert error.loc == ("items", 6)
    assert "item 7" in error.message


def test_mspss_item_0_is_below_its_range_of_1_to_7():
    items = [4] * 12
    items[11] = 0
    assert _refused("mspss", items=items).item == 12


def test_the_first_offending_item_is_named():
    assert _refused("gad-7", items=[0, 0, 9, "x", 0, 0, 0]).item == 3


@pytest.mark.parametrize("shape", ["012012012", {"a": 1}, 5, {0, 1}])
def test_items_that_are_not_a_list_are_refused(shape):
    assert _refused("phq-9", items=shape).item is None


def test_missing_items_are_refused():
    error = _refused("phq-9")
    assert (error.field, error.item) == ("items", None)


def test_a_total_sent_for_an_item_instrument_is_refused():
    error = _refused("phq-9", items=[0] * 9, total=0)
    assert (error.field, error.item) == ("total", None)


@pytest.mark.parametrize("items", [[1] * 21, []])
def test_items_for_bdi_ii_are_refused_even_with_a_total(items):
    error = _refused("bdi-ii", items=items, total=10)
    assert (error.field, error.item) == ("items", None)


def test_bdi_ii_without_a_total_is_refused():
    error = _refused("bdi-ii")
    assert (error.field, error.item, error.loc) == ("total", None, ("total",))


@pytest.mark.parametrize("total", [-1, 64, 20.0, True, "20"])
def test_bdi_ii_total_outside_0_to_63_or_not_a_whole_number_is_refused(total):
    assert _refused("bdi-ii", total=total).field == "total"


def test_unknown_instrument_is_refused():
    with pytest.raises(UnknownInstrument):
        score("phq-8", [0] * 8)


@pytest.mark.parametrize(
    "instrument_id, total, code",
    [("phq-9", 0, "minimal"), ("phq-9", 27, "severe"), ("mspss", 2.995, "moderate"),
     ("mspss", 5.004, "moderate"), ("mspss", 5.006, "high"), ("mspss", 1, "low")],
)
def test_severity_of_maps_a_total_to_its_band(instrument_id, total, code):
    assert severity_of(instrument_id, total) == code


@pytest.mark.parametrize(
    "instrument_id, total",
    [("phq-9", 28), ("phq-9", -1), ("phq-9", 4.5), ("phq-9", None), ("mspss", 0.5),
     ("mspss", True), ("bdi-ii", 64)],
)
def test_severity_of_refuses_a_total_the_instrument_cannot_produce(instrument_id, total):
    with pytest.raises(ItemError) as caught:
        severity_of(instrument_id, total)
    assert caught.value.field == "total"


@pytest.mark.parametrize("total", [float("nan"), float("inf"), "3"])
def test_mspss_severity_of_refuses_a_total_that_is_not_a_finite_number(total):
    with pytest.raises(ItemError):
        severity_of("mspss", total)
