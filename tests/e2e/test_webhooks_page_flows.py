"""Every flow of Studio's Webhooks page, through the running system (`make run`) to a real HTTP receiver."""

from __future__ import annotations

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.e2e.stack import Stack
from webhooks_common.secrets import generate_secret

MARK = "booking.cancelled"  # a second Wink type, for marker events


async def test_create_then_booking_event_is_delivered_and_signature_verifies(
    stack: Stack, entity: str
) -> None:
    path = f"/stalker/{entity}"
    hook = await stack.create(entity, stack.rx.url(path), ["booking.created"])
    assert (hook["name"], hook["enabled"], hook["ownerName"], hook["eventList"]) == (
        "Wink Stalker",
        True,
        "Cool Account",
        ["booking.created"],
    )
    await stack.barrier(entity)

    data = {"bookingId": "bk_1", "total": {"amount": 24900, "currency": "USD"}}
    event_id = await stack.send(entity, "booking.create", data)
    got = await stack.delivered(path, event_id)

    secret = await stack.secret(entity, hook["id"])
    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["id"] == event_id
    assert payload["type"] == "booking.create"
    assert payload["entityId"] == entity
    assert payload["data"] == data
    assert got.headers["content-type"].startswith("application/json")
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(got.body, got.headers)


async def test_disabled_webhook_gets_nothing_and_enabled_again_it_does(stack: Stack, entity: str) -> None:
    hook = await stack.create(entity, stack.rx.url(f"/w/{entity}"), ["booking.created"])
    marker = await stack.create(entity, stack.rx.url(f"/m/{entity}"), [MARK], name="marker")
    await stack.patch(entity, hook["id"], enabled=False)
    await stack.barrier(entity)

    negative = await stack.send(entity, "booking.create")
    mark = await stack.send(entity, MARK)
    await stack.delivered(f"/m/{entity}", mark)
    await stack.assert_not_routed(negative, hook["id"], f"/w/{entity}")
    assert stack.received(f"/w/{entity}") == []
    assert marker["enabled"]

    await stack.patch(entity, hook["id"], enabled=True)
    await stack.barrier(entity)
    positive = await stack.send(entity, "booking.create")
    await stack.delivered(f"/w/{entity}", positive)
    assert stack.received(f"/w/{entity}", negative) == []


async def test_changed_event_list_gets_only_the_new_types(stack: Stack, entity: str) -> None:
    path = f"/w/{entity}"
    hook = await stack.create(entity, stack.rx.url(path), ["booking.created"])
    await stack.barrier(entity)
    before = await stack.send(entity, "booking.create")
    await stack.delivered(path, before)

    changed = await stack.patch(entity, hook["id"], eventList=[MARK, "booking.refund.*"])
    assert changed["eventList"] == [MARK, "booking.refund.*"]
    await stack.barrier(entity)
    old_type = await stack.send(entity, "booking.create")
    new_type = await stack.send(entity, MARK)
    wildcard = await stack.send(entity, "booking.refund.full")
    await stack.delivered(path, new_type)
    await stack.delivered(path, wildcard)
    await stack.assert_not_routed(old_type, hook["id"], path)


async def test_changed_url_only_the_new_url_receives(stack: Stack, entity: str) -> None:
    old, new = f"/old/{entity}", f"/new/{entity}"
    hook = await stack.create(entity, stack.rx.url(old), ["booking.created"])
    await stack.barrier(entity)
    first = await stack.send(entity, "booking.create")
    await stack.delivered(old, first)

    await stack.patch(entity, hook["id"], eventUrl=stack.rx.url(new))
    await stack.barrier(entity)
    second = await stack.send(entity, "booking.create")
    await stack.delivered(new, second)
    # Its only task points at the new URL, so nothing for it can ever reach the old one.
    assert {t.url for t in await stack.tasks_for(second)} == {stack.rx.url(new)}
    assert stack.received(old, second) == []
    assert stack.received(new, first) == []


async def test_removed_webhook_gets_nothing(stack: Stack, entity: str) -> None:
    path = f"/w/{entity}"
    hook = await stack.create(entity, stack.rx.url(path), ["booking.created"])
    await stack.create(entity, stack.rx.url(f"/m/{entity}"), [MARK], name="marker")
    await stack.barrier(entity)
    before = await stack.send(entity, "booking.create")
    await stack.delivered(path, before)

    await stack.delete(entity, hook["id"])
    await stack.assert_removed(entity, hook["id"], path, MARK)


async def test_trippay_account_receives_a_payment_event(stack: Stack, entity: str) -> None:
    path = f"/trippay/{entity}"
    hook = await stack.create(
        entity,
        stack.rx.url(path),
        ["internal.payment.succeeded"],
        name="Payments",
        entity_name="TripPay account",
    )
    await stack.barrier(entity)
    data = {"paymentId": "pay_1", "amount": 24900, "currency": "USD"}
    event_id = await stack.send(entity, "internal.payment.succeeded", data)
    got = await stack.delivered(path, event_id)
    payload = Webhook(await stack.secret(entity, hook["id"])).verify(got.body, got.headers)
    assert (payload["type"], payload["data"]) == ("internal.payment.succeeded", data)
    # It came in on TripPay's topic, not Wink's.
    assert [t.source for t in await stack.tasks_for(event_id)] == ["trippay"]


async def test_empty_event_list_gets_everything_of_its_account_and_nothing_of_another(
    stack: Stack, entity: str
) -> None:
    other = f"{entity}-other"
    mine, theirs = f"/all/{entity}", f"/all/{other}"
    hook = await stack.create(entity, stack.rx.url(mine), [])
    await stack.create(other, stack.rx.url(theirs), [], entity_name="Other Account")
    await stack.barrier(entity)
    await stack.barrier(other)

    types = ["booking.create", "managing_entity.created", "internal.payment.succeeded", "payee.create"]
    sent = [await stack.send(entity, t) for t in types]
    foreign = await stack.send(other, "booking.create")
    for event_id in sent:
        await stack.delivered(mine, event_id)
    await stack.delivered(
        theirs, foreign
    )  # the same event is the marker: its tasks were all written together
    await stack.assert_not_routed(foreign, hook["id"], mine)
    received_types = {orjson.loads(r.body)["type"] for r in stack.received(mine)}
    assert set(types) <= received_types
