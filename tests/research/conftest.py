"""A planted organization shared by the read-only research tests of a module (planting costs a few seconds)."""

from __future__ import annotations

import pytest

from tests.support.research import Planted, plant, sign_data_use_agreement
from tests.support.world import World, make_world


@pytest.fixture(scope="module")
async def planted(app, client) -> tuple[World, Planted]:
    """An organization with a data-use agreement and the planted courses; tests must not change it."""
    world = await make_world(app)
    await sign_data_use_agreement(client, world)
    return world, await plant(client, world)
