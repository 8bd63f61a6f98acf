"""new_row: a table model's new row as a dict, the same as building the model and dumping it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import SQLModel

from app import models
from app.core.ids import new_id, utcnow
from app.core.models import new_row

TABLES = [m for m in vars(models).values() if isinstance(m, type) and issubclass(m, SQLModel) and m is not SQLModel]


def fresh(model: type[SQLModel]) -> set[str]:
    """The fields a default factory makes anew for every row (ids, timestamps): compared by type."""
    return {name for name, field in model.model_fields.items() if field.default_factory in (new_id, utcnow)}


def required_values(model: type[SQLModel]) -> dict[str, Any]:
    """A value for each field the model cannot default (strings: neither side checks types)."""
    return {name: f"given-{name}" for name, field in model.model_fields.items() if field.is_required()}


@pytest.mark.parametrize("model", TABLES, ids=lambda m: m.__name__)
def test_new_row_is_the_models_dump_with_its_defaults(model):
    values = required_values(model)
    built, made = model(**values).model_dump(warnings=False), new_row(model, values)
    assert built.keys() == made.keys()
    assert {k: v for k, v in made.items() if k not in fresh(model)} == {k: v for k, v in built.items() if k not in fresh(model)}
    again = new_row(model, values)
    for name in fresh(model):
        assert type(made[name]) is type(built[name])
        if name == "id":
            assert again["id"] != made["id"]  # made per row, not once


def test_new_row_takes_given_values_over_defaults_and_makes_fresh_mutable_defaults():
    first = new_row(models.Measure, required_values(models.Measure) | {"risk_flag_open": True, "id": "chosen"})
    second = new_row(models.Measure, required_values(models.Measure))
    assert (first["risk_flag_open"], first["id"], second["risk_flag_open"]) == (True, "chosen", False)
    first["risk_items"].append(9)
    assert second["risk_items"] == [] and new_row(models.Measure, required_values(models.Measure))["risk_items"] == []


def test_a_misspelt_or_missing_field_is_a_type_error():
    values = required_values(models.Measure)
    with pytest.raises(TypeError, match="totl"):
        new_row(models.Measure, values | {"totl": 3})
    del values["total"]
    with pytest.raises(TypeError, match="total"):
        new_row(models.Measure, values)
