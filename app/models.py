"""Imports every table module so the metadata is complete (for Alembic and tests)."""

from app.audit.models import AuditArchive, AuditChain, AuditEvent, AuditSeal  # noqa: F401
from app.core.idempotency import IdempotencyRecord  # noqa: F401
from app.courses.models import Course, CourseExtension, CourseTransition  # noqa: F401
from app.exports.models import BulkExport, BulkExportFile  # noqa: F401
from app.formulations.models import Formulation, InventoryRelationship, TimelineEvent  # noqa: F401
from app.groups.models import GroupFacilitator, GroupMember, GroupSession, IptGroup  # noqa: F401
from app.identity.models import AppUser, ClientAssertion, Integration, Organization, RefreshToken  # noqa: F401
from app.measures.models import Measure, RiskAcknowledgement  # noqa: F401
from app.patients.models import Patient  # noqa: F401
from app.sessions.models import TherapySession  # noqa: F401
from app.webhooks.models import OutboxEvent, WebhookDelivery, WebhookSubscription  # noqa: F401
