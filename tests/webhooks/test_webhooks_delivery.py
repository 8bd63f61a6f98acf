"""Webhooks: subscriptions, signed deliveries a receiver verifies on its own, retries, and several workers."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import sqlalchemy as sa

from app.main import create_app
from app.webhooks import worker as worker_module
from app.webhooks.models import WebhookDelivery
from app.webhooks.worker import Worker
from tests.conftest import PG_VIA_PGBOUNCER, VIA_PGBOUNCER, test_settings
from tests.support.clinic import CourseDriver, open_course
from tests.support.live import live_server
from tests.support.receiver import receiver
from tests.support.world import make_world


@pytest.fixture(scope="module")
async def hook_app(database_url):
    """An app that may deliver to loopback (IPT_WEBHOOK_ALLOW_PRIVATE=true), as these tests need."""
    application = create_app(test_settings(database_url, webhook_allow_private=True))
    yield application
    await application.state.engine.dispose()


@pytest.fixture
async def hook_client(hook_app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hook_app), base_url="http://t") as http:
        yield http


async def _subscribe(client, world, url, events=("course.created", "session.recorded", "course.phase_changed")):
    response = await client.post("/v1/webhooks", json={"url": url, "events": list(events)}, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _drain(worker: Worker, until, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "deliveries did not arrive in time"
        await worker.run_once()
        await asyncio.sleep(0.05)


@VIA_PGBOUNCER
async def test_delivery_is_signed_so_an_independent_receiver_verifies_it(hook_app, hook_client):
    world = await make_world(hook_app)
    with receiver() as inbox:
        subscription = await _subscribe(hook_client, world, inbox.url)
        inbox.secret = subscription["secret"]
        assert inbox.secret.startswith("whsec_")
        course = await open_course(hook_client, world.clinician)
        worker = Worker(hook_app.state.engine, hook_app.state.secrets.box, allow_private=True)
        await _drain(worker, lambda: len(inbox.received) >= 1)
        await worker.http.aclose()
    delivery = inbox.received[0]
    assert delivery["signature_ok"]
    body = delivery["body"]
    assert body["type"] == "course.created" and body["id"] == delivery["id"]
    assert body["data"]["course_id"] == course["id"]
    assert set(body) == {"id", "type", "created_at", "data"}
    assert "display_name" not in str(body) and "Test Patient" not in str(body)
    read = await hook_client.get(f"/v1/webhooks/{subscription['id']}", headers=world.admin.headers)
    assert "secret" not in read.json()


@VIA_PGBOUNCER
async def test_receiver_failing_twice_gets_the_event_on_the_third_attempt(hook_app, hook_client):
    world = await make_world(hook_app)
    with receiver(failures=2) as inbox:
        subscription = await _subscribe(hook_client, world, inbox.url, events=["course.created"])
        inbox.secret = subscription["secret"]
        await open_course(hook_client, world.clinician)
        worker = Worker(hook_app.state.engine, hook_app.state.secrets.box, allow_private=True, base_delay=0.05)
        await _drain(worker, lambda: len(inbox.received) >= 1)
        await worker.http.aclose()
    assert inbox.attempts == 3
    assert inbox.valid()[0]["body"]["type"] == "course.created"
    log = (await hook_client.get(f"/v1/webhooks/{subscription['id']}/deliveries", headers=world.admin.headers)).json()
    [entry] = log["data"]
    assert (entry["status"], entry["attempts"], entry["last_status_code"]) == ("delivered", 3, 204)


async def test_one_pass_fans_out_a_burst_larger_than_a_batch(hook_app, hook_client, monkeypatch):
    monkeypatch.setattr(worker_module, "FAN_OUT_BATCH", 1)
    world = await make_world(hook_app)
    with receiver() as inbox:
        inbox.secret = (await _subscribe(hook_client, world, inbox.url, events=["course.created"]))["secret"]
        for _ in range(3):
            await open_course(hook_client, world.clinician)
        worker = Worker(hook_app.state.engine, hook_app.state.secrets.box, allow_private=True)
        assert await worker.run_once() == 3  # all three events fanned out and delivered in one pass
        await worker.http.aclose()
    assert len(inbox.valid()) == 3


async def test_backoff_grows_exponentially_up_to_a_cap():
    from app.webhooks.worker import MAX_DELAY_SECONDS, backoff

    delays = [backoff(n, 5) for n in range(1, 12)]
    assert delays[:4] == [5, 10, 20, 40]
    assert max(delays) == MAX_DELAY_SECONDS


@VIA_PGBOUNCER
async def test_manual_retry_redelivers_a_failed_delivery(hook_app, hook_client):
    world = await make_world(hook_app)
    with receiver() as inbox:
        subscription = await _subscribe(hook_client, world, inbox.url, events=["course.created"])
        inbox.secret = subscription["secret"]
        await open_course(hook_client, world.clinician)
        worker = Worker(hook_app.state.engine, hook_app.state.secrets.box, allow_private=True)
        await _drain(worker, lambda: len(inbox.received) >= 1)
        deliveries = f"/v1/webhooks/{subscription['id']}/deliveries"
        [entry] = (await hook_client.get(deliveries, headers=world.admin.headers)).json()["data"]
        retried = await hook_client.post(f"{deliveries}/{entry['id']}/retry", headers=world.admin.headers)
        assert retried.status_code == 202 and retried.json()["status"] == "pending"
        await _drain(worker, lambda: len(inbox.received) >= 2)
        await worker.http.aclose()
    assert inbox.received[0]["id"] == inbox.received[1]["id"]  # the same event id, so receivers can dedupe


async def test_private_and_loopback_urls_are_refused_by_default(app, client, world):
    for url in ("http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://169.254.169.254/latest", "http://[::1]/x",
                "ftp://example.org/x", "http://user:pw@example.org/x"):
        response = await client.post("/v1/webhooks", json={"url": url, "events": ["course.created"]}, headers=world.admin.headers)
        assert response.status_code == 422, (url, response.text)


async def test_webhooks_need_the_manage_scope_and_stay_in_their_organization(hook_app, hook_client):
    world, other = await make_world(hook_app), await make_world(hook_app)
    subscription = await _subscribe(hook_client, world, "http://127.0.0.1:9/x")
    forbidden = await hook_client.get("/v1/webhooks", headers=world.clinician.headers)
    assert forbidden.status_code == 403
    for method, path in (("GET", ""), ("GET", "/deliveries"), ("DELETE", "")):
        response = await hook_client.request(method, f"/v1/webhooks/{subscription['id']}{path}",
                                             headers=other.admin.headers | {"If-Match": '"1"'})
        assert response.status_code == 404


async def test_events_are_written_in_the_same_transaction_as_the_change(hook_app, hook_client):
    """A refused session writes no event; an accepted one writes exactly one."""
    from app.webhooks.models import OutboxEvent

    world = await make_world(hook_app)
    drive = CourseDriver(hook_client, world.clinician, await open_course(hook_client, world.clinician, "ipc", planned_sessions=3))
    await drive.move("middle", expect=409)
    await drive.session()

    async def count(event_type):
        async with hook_app.state.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(OutboxEvent).where(
                OutboxEvent.organization_id == world.org_id, OutboxEvent.type == event_type)
            return await conn.scalar(query)

    assert await count("session.recorded") == 1
    assert await count("course.phase_changed") == 0


@PG_VIA_PGBOUNCER
async def test_two_server_processes_deliver_each_event_exactly_once(postgres_url):
    """Several API processes on one PostgreSQL (SQLite is the single-process embedded default)."""
    hook_app = create_app(test_settings(postgres_url, webhook_allow_private=True))
    transport = httpx.ASGITransport(app=hook_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as hook_client:
        await _deliver_through_two_servers(hook_app, hook_client, postgres_url)
    await hook_app.state.engine.dispose()


async def _deliver_through_two_servers(hook_app, hook_client, database_url):
    world = await make_world(hook_app)
    events = 30
    with receiver() as inbox:
        subscription = await _subscribe(hook_client, world, inbox.url, events=["session.recorded"])
        inbox.secret = subscription["secret"]
        key = hook_app.state.settings.secret_key
        env = {"IPT_WEBHOOK_ALLOW_PRIVATE": "true", "IPT_WEBHOOK_WORKER": "true"}
        with live_server(database_url, key, **env), live_server(database_url, key, **env):
            drive = CourseDriver(hook_client, world.clinician, await open_course(hook_client, world.clinician, "ipt"))
            for _ in range(events // 2):
                await drive.session(attendance="missed")
                await drive.session(attendance="cancelled")
            deadline = time.monotonic() + 30
            while len(inbox.received) < events and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)  # time for a duplicate to show up, if there were one
    ids = [r["id"] for r in inbox.received]
    assert len(ids) == events and len(set(ids)) == events
    assert all(r["signature_ok"] for r in inbox.received)
    async with hook_app.state.engine.connect() as conn:
        statuses = (await conn.execute(sa.select(WebhookDelivery.status).where(
            WebhookDelivery.subscription_id == subscription["id"]))).scalars().all()
    # Every delivery ended delivered; a connection-level failure before the receiver saw a request may
    # have cost an extra attempt, but the receiver got each event exactly once (the ids above).
    assert len(statuses) == events and set(statuses) == {"delivered"}


# --- the signing secret at rest -------------------------------------------------------------
async def _stored_secret(hook_app, subscription_id: str) -> str:
    from app.webhooks.models import WebhookSubscription

    async with hook_app.state.engine.connect() as conn:
        return await conn.scalar(sa.select(WebhookSubscription.secret).where(WebhookSubscription.id == subscription_id))


async def _set_stored_secret(hook_app, subscription_id: str, stored: str) -> None:
    from app.webhooks.models import WebhookSubscription

    async with hook_app.state.engine.begin() as conn:
        await conn.execute(sa.update(WebhookSubscription).where(WebhookSubscription.id == subscription_id).values(secret=stored))


@pytest.mark.parametrize("stored_as", ["sealed", "in the clear"])
async def test_the_database_holds_the_signing_secret_sealed_and_deliveries_verify(hook_app, hook_client, stored_as):
    """Sealed as the API stores it now, or in the clear as earlier versions stored it: both sign."""
    world = await make_world(hook_app)
    with receiver() as inbox:
        subscription = await _subscribe(hook_client, world, inbox.url, events=["course.created"])
        inbox.secret = subscription["secret"]
        stored = await _stored_secret(hook_app, subscription["id"])
        key_bytes = subscription["secret"].removeprefix("whsec_")
        assert stored.startswith("sealed1:") and key_bytes not in stored and subscription["secret"] not in stored
        if stored_as == "in the clear":
            await _set_stored_secret(hook_app, subscription["id"], subscription["secret"])
        await open_course(hook_client, world.clinician)
        worker = Worker(hook_app.state.engine, hook_app.state.secrets.box, allow_private=True)
        await _drain(worker, lambda: len(inbox.received) >= 1)
        await worker.http.aclose()
    assert inbox.received[0]["signature_ok"]


async def test_a_sealed_secret_moved_to_another_subscription_sends_nothing_and_logs_why(hook_app, hook_client):
    world = await make_world(hook_app)
    with receiver() as inbox:
        victim = await _subscribe(hook_client, world, inbox.url, events=["course.created"])
        thief = await _subscribe(hook_client, world, inbox.url, events=["course.created"])
        paused = await hook_client.patch(f"/v1/webhooks/{victim['id']}", json={"active": False},
                                         headers=world.admin.headers | {"If-Match": '"1"'})
        assert paused.status_code == 200, paused.text  # only the thief's row is to be delivered to
        await _set_stored_secret(hook_app, thief["id"], await _stored_secret(hook_app, victim["id"]))
        await open_course(hook_client, world.clinician)
        worker = Worker(hook_app.state.engine, hook_app.state.secrets.box, allow_private=True)
        deliveries = f"/v1/webhooks/{thief['id']}/deliveries"

        async def attempted() -> list:
            return [d for d in (await hook_client.get(deliveries, headers=world.admin.headers)).json()["data"] if d["attempts"]]

        deadline = time.monotonic() + 15
        while not await attempted():
            assert time.monotonic() < deadline, "the delivery was never attempted"
            await worker.run_once()
        await worker.http.aclose()
        assert inbox.received == []  # nothing signed with a secret that is not this subscription's
    [entry] = await attempted()
    assert (entry["status"], entry["last_error"], entry["last_status_code"]) == ("pending", "SecretUnreadable", None)


def test_a_secret_box_opens_only_what_it_sealed_for_that_row():
    from app.core.security import SecretBox, SecretUnreadable

    box = SecretBox("k" * 48)
    sealed = box.seal("whsec_c2VjcmV0", "row-1")
    assert sealed != box.seal("whsec_c2VjcmV0", "row-1")  # a fresh nonce every time
    assert box.open(sealed, "row-1") == "whsec_c2VjcmV0"
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for stored, row, opener in ((sealed, "row-2", box), (sealed, "row-1", SecretBox("j" * 48)), (tampered, "row-1", box),
                                ("sealed1:!!", "row-1", box)):
        with pytest.raises(SecretUnreadable):
            opener.open(stored, row)
