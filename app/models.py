"""Imports every table module so the metadata is complete (for Alembic and tests)."""

from app.identity.models import AppUser, Integration, Organization, RefreshToken  # noqa: F401
from app.patients.models import Patient  # noqa: F401
