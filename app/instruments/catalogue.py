"""The outcome-measure catalogue (domain.md, "Outcome measures") as data.

Every number a clinician or researcher might want to check lives here: item ranges, bands,
risk items, caseness, reliable change (with where it comes from), remission, LOINC, licence.
Scoring and outcome code reads these values and never repeats them.
"""

import math
from dataclasses import dataclass, fields

Number = int | float


class UnknownInstrument(KeyError, ValueError):
    """No instrument with this id. A KeyError (a catalogue lookup) and a ValueError (bad input)."""

    def __init__(self, instrument_id: object) -> None:
        super().__init__(f"unknown instrument {instrument_id!r}")
        self.instrument_id = instrument_id

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Band:
    """A severity band: totals from `low` to `high`, both inclusive, are reported as `code`."""

    code: str
    label: str
    low: Number
    high: Number

    def contains(self, total: Number) -> bool:
        """True when `total` lies inside the band (inclusive at both ends)."""
        return self.low <= total <= self.high


@dataclass(frozen=True)
class Instrument:
    """One questionnaire or rating scale, with every threshold the outcome rules need.

    `caseness` is "at or above"; `remission_below` is "strictly below" (domain.md's "<= 7" is
    stored as below 8, with the text kept in `remission_rule`); `reliable_change` is the smallest
    change, in the good or bad direction, that counts as reliable ("at least the threshold").
    Where the threshold is this project's Jacobson-Truax estimate, `reliable_change_sd` and
    `reliable_change_r` hold the inputs so it can be recomputed with `jacobson_truax`.
    """

    id: str
    name: str
    version: str  # year of the published version scored here
    description: str
    item_count: int  # 0 for a total-only instrument
    item_ranges: tuple[tuple[int, int], ...]  # (lowest, highest) per item, item 1 first
    total_only: bool
    total_min: Number
    total_max: Number
    scoring: str  # "sum" | "qids_sr16" | "mean"
    bands: tuple[Band, ...]
    risk_items: tuple[int, ...]  # 1-based item numbers; positive when the response is > 0
    caseness: float | None
    reliable_change: float | None
    reliable_change_source: str
    remission_below: float | None
    remission_rule: str
    higher_is_better: bool
    loinc_panel: str | None
    loinc_total: str | None
    licence: str
    clinician_rated: bool
    reliable_change_sd: float | None = None
    reliable_change_r: float | None = None
    loinc_items: tuple[str, ...] = ()  # LOINC code per item, item 1 first; empty where LOINC has none we use

    def as_dict(self) -> dict:
        """The instrument as JSON-ready data (lists, not tuples)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value):
    if isinstance(value, Band):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def jacobson_truax(sd: float, r: float) -> float:
    """Jacobson & Truax (1991) reliable change: 1.96 * SD * sqrt(2) * sqrt(1 - r)."""
    return 1.96 * sd * math.sqrt(2) * math.sqrt(1 - r)


def _bands(*spec: tuple[str, str, Number, Number]) -> tuple[Band, ...]:
    return tuple(Band(*b) for b in spec)


def _estimate(sd: float, r: float, threshold: int, sd_from: str, r_from: str) -> str:
    value = jacobson_truax(sd, r)
    return (
        f"Project estimate (Jacobson-Truax 1.96*SD*sqrt(2)*sqrt(1-r)): SD {sd} ({sd_from}); "
        f"r {r} ({r_from}); 1.96*{sd}*sqrt(2)*sqrt(1-{r}) = {value:.2f}, "
        f"rounded to {threshold}."
    )


_NHS_TT = "NHS Talking Therapies for anxiety and depression manual (NHS England)"
_STAR_D = "STAR*D level-1 entry, n=2,280"

INSTRUMENTS: dict[str, Instrument] = {
    i.id: i
    for i in (
        Instrument(
            id="phq-9",
            name="Patient Health Questionnaire-9",
            version="2001",
            description="Self-report depression severity over the last two weeks; nine DSM "
            "criteria rated 0 'not at all' to 3 'nearly every day'.",
            item_count=9,
            item_ranges=((0, 3),) * 9,
            total_only=False,
            total_min=0,
            total_max=27,
            scoring="sum",
            bands=_bands(
                ("minimal", "Minimal", 0, 4),
                ("mild", "Mild", 5, 9),
                ("moderate", "Moderate", 10, 14),
                ("moderately_severe", "Moderately severe", 15, 19),
                ("severe", "Severe", 20, 27),
            ),
            risk_items=(9,),
            caseness=10,
            reliable_change=6,
            reliable_change_source=f"{_NHS_TT}: reliable change on the PHQ-9 is 6 points.",
            remission_below=5,
            remission_rule="< 5",
            higher_is_better=False,
            loinc_panel="44249-1",
            loinc_total="44261-6",
            loinc_items=("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
                         "44260-8"),
            licence="Free: no permission required to reproduce, translate, display or "
            "distribute (Pfizer).",
            clinician_rated=False,
        ),
        Instrument(
            id="gad-7",
            name="Generalized Anxiety Disorder-7",
            version="2006",
            description="Self-report anxiety severity over the last two weeks; seven items "
            "rated 0 'not at all' to 3 'nearly every day'.",
            item_count=7,
            item_ranges=((0, 3),) * 7,
            total_only=False,
            total_min=0,
            total_max=21,
            scoring="sum",
            bands=_bands(
                ("minimal", "Minimal", 0, 4),
                ("mild", "Mild", 5, 9),
                ("moderate", "Moderate", 10, 14),
                ("severe", "Severe", 15, 21),
            ),
            risk_items=(),
            caseness=8,
            reliable_change=4,
            reliable_change_source=f"{_NHS_TT}: reliable change on the GAD-7 is 4 points.",
            remission_below=5,
            remission_rule="< 5",
            higher_is_better=False,
            loinc_panel="69737-5",
            loinc_total="70274-6",
            loinc_items=("69725-0", "68509-8", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"),
            licence="Free: no permission required to reproduce, translate, display or "
            "distribute (Pfizer).",
            clinician_rated=False,
        ),
        Instrument(
            id="epds",
            name="Edinburgh Postnatal Depression Scale",
            version="1987",
            description="Self-report perinatal depression screen over the past seven days; "
            "ten items, submitted already keyed 0-3 (items 3 and 5-10 reversed on the form).",
            item_count=10,
            item_ranges=((0, 3),) * 10,
            total_only=False,
            total_min=0,
            total_max=30,
            scoring="sum",
            bands=_bands(
                ("low", "Low likelihood of depression", 0, 9),
                ("possible", "Possible depression", 10, 12),
                ("probable", "Probable depression", 13, 30),
            ),
            risk_items=(10,),
            caseness=13,
            reliable_change=4,
            reliable_change_source="Matthey S. (2004) Calculating clinically significant "
            "change in postnatal depression studies using the Edinburgh Postnatal Depression "
            "Scale. J Affect Disord 78:269-272: reliable change of 4 points.",
            remission_below=10,
            remission_rule="< 10",
            higher_is_better=False,
            loinc_panel="71354-5",
            loinc_total="99046-5",
            licence="Free to use with citation of Cox, Holden & Sagovsky (1987), "
            "Br J Psychiatry 150:782-786 (copyright Royal College of Psychiatrists).",
            clinician_rated=False,
        ),
        Instrument(
            id="hamd-17",
            name="Hamilton Rating Scale for Depression, 17-item",
            version="1960/1967",
            description="Clinician-rated depression severity from an interview; items "
            "1, 2, 3, 7, 8, 9, 10, 11 and 15 rated 0-4, the other eight 0-2.",
            item_count=17,
            item_ranges=tuple(
                (0, 4) if n in (1, 2, 3, 7, 8, 9, 10, 11, 15) else (0, 2) for n in range(1, 18)
            ),
            total_only=False,
            total_min=0,
            total_max=52,
            scoring="sum",
            bands=_bands(
                ("none", "No depression", 0, 7),
                ("mild", "Mild", 8, 16),
                ("moderate", "Moderate", 17, 23),
                ("severe", "Severe", 24, 52),
            ),
            risk_items=(3,),
            caseness=17,
            reliable_change=6,
            reliable_change_source=_estimate(
                4.7,
                0.789,
                6,
                "ASSUMED typical baseline SD of outpatient trials with an HAM-D entry "
                "threshold; not taken from one cited sample, to be confirmed",
                "pooled Cronbach's alpha, Trajkovic et al. 2011, Psychiatry Res 189:1-9, "
                "doi:10.1016/j.psychres.2010.12.007",
            ),
            reliable_change_sd=4.7,
            reliable_change_r=0.789,
            remission_below=8,
            remission_rule="<= 7",
            higher_is_better=False,
            loinc_panel=None,
            loinc_total=None,
            licence="Public domain.",
            clinician_rated=True,
        ),
        Instrument(
            id="qids-sr16",
            name="Quick Inventory of Depressive Symptomatology, Self-Report (16 items)",
            version="2003",
            description="Self-report depression severity over the past seven days; sixteen "
            "items (0-3) scored as the nine DSM symptom domains.",
            item_count=16,
            item_ranges=((0, 3),) * 16,
            total_only=False,
            total_min=0,
            total_max=27,
            scoring="qids_sr16",
            bands=_bands(
                ("none", "No depression", 0, 5),
                ("mild", "Mild", 6, 10),
                ("moderate", "Moderate", 11, 15),
                ("severe", "Severe", 16, 20),
                ("very_severe", "Very severe", 21, 27),
            ),
            risk_items=(12,),
            caseness=11,
            reliable_change=5,
            reliable_change_source=_estimate(
                4.8,
                0.86,
                5,
                f"{_STAR_D}, Acta Psychiatr Scand 2015;131:51-60, doi:10.1111/acps.12301, "
                "Table 2",
                "Cronbach's alpha, Rush et al. 2003, Biol Psychiatry 54:573-583",
            ),
            reliable_change_sd=4.8,
            reliable_change_r=0.86,
            remission_below=6,
            remission_rule="<= 5",
            higher_is_better=False,
            loinc_panel=None,
            loinc_total=None,
            licence="Free for clinical and research use (copyright A. John Rush; "
            "ids-qids.org).",
            clinician_rated=False,
        ),
        Instrument(
            id="wsas",
            name="Work and Social Adjustment Scale",
            version="2002",
            description="Self-report functional impairment attributed to the problem: work, "
            "home management, social leisure, private leisure, close relationships; each "
            "0 'not at all' to 8 'very severely'.",
            item_count=5,
            item_ranges=((0, 8),) * 5,
            total_only=False,
            total_min=0,
            total_max=40,
            scoring="sum",
            bands=_bands(
                ("subclinical", "Subclinical", 0, 9),
                ("significant", "Significant functional impairment", 10, 20),
                ("severe", "Severe (moderately severe or worse) impairment", 21, 40),
            ),
            risk_items=(),
            caseness=10,
            reliable_change=8,
            reliable_change_source=_estimate(
                8.9,
                0.89,
                8,
                f"{_STAR_D}, Ther Adv Chronic Dis 2016;7:160-169, "
                "doi:10.1177/2040622316639769, Table 2",
                "Cronbach's alpha in depressed outpatients, German WSAS validation, "
                "BMC Health Serv Res 2021, doi:10.1186/s12913-021-06622-x",
            ),
            reliable_change_sd=8.9,
            reliable_change_r=0.89,
            remission_below=10,
            remission_rule="< 10",
            higher_is_better=False,
            loinc_panel=None,
            loinc_total=None,
            licence="Free to use with citation of Mundt et al. (2002), "
            "Br J Psychiatry 180:461-464.",
            clinician_rated=False,
        ),
        Instrument(
            id="mspss",
            name="Multidimensional Scale of Perceived Social Support",
            version="1988",
            description="Self-report perceived support from a significant other, family and "
            "friends; twelve items 1 'very strongly disagree' to 7 'very strongly agree'. "
            "Higher is better.",
            item_count=12,
            item_ranges=((1, 7),) * 12,
            total_only=False,
            total_min=1.0,
            total_max=7.0,
            scoring="mean",
            # Totals are means rounded to 2 decimals, so "below 3" is 1.00-2.99 and
            # "above 5" is 5.01-7.00; 3.00 and 5.00 themselves are moderate.
            bands=_bands(
                ("low", "Low perceived social support", 1.0, 2.99),
                ("moderate", "Moderate perceived social support", 3.0, 5.0),
                ("high", "High perceived social support", 5.01, 7.0),
            ),
            risk_items=(),
            caseness=None,
            reliable_change=None,
            reliable_change_source="Not defined: domain.md sets no reliable-change "
            "threshold for the MSPSS.",
            remission_below=None,
            remission_rule="n/a",
            higher_is_better=True,
            loinc_panel=None,
            loinc_total=None,
            licence="Free to use with citation of Zimet et al. (1988), "
            "J Pers Assess 52:30-41.",
            clinician_rated=False,
        ),
        Instrument(
            id="bdi-ii",
            name="Beck Depression Inventory-II",
            version="1996",
            description="Self-report depression severity over the past two weeks; "
            "licensed, so only the total (0-63) is recorded, never the items.",
            item_count=0,
            item_ranges=(),
            total_only=True,
            total_min=0,
            total_max=63,
            scoring="sum",
            bands=_bands(
                ("minimal", "Minimal", 0, 13),
                ("mild", "Mild", 14, 19),
                ("moderate", "Moderate", 20, 28),
                ("severe", "Severe", 29, 63),
            ),
            risk_items=(),
            caseness=20,
            reliable_change=9,
            reliable_change_source=_estimate(
                12.75,
                0.93,
                9,
                "outpatients, n=500, Beck, Steer & Brown 1996, BDI-II Manual",
                "one-week test-retest, n=26 outpatients, same manual",
            ),
            reliable_change_sd=12.75,
            reliable_change_r=0.93,
            remission_below=14,
            remission_rule="<= 13",
            higher_is_better=False,
            loinc_panel=None,
            loinc_total=None,
            licence="Proprietary (Pearson): purchased forms; items are not stored.",
            clinician_rated=False,
        ),
    )
}


def get_instrument(instrument_id: str) -> Instrument:
    """The catalogue entry for `instrument_id`; UnknownInstrument when there is none."""
    try:
        return INSTRUMENTS[instrument_id]
    except (KeyError, TypeError):
        raise UnknownInstrument(instrument_id) from None
