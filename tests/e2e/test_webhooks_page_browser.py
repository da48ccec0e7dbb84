"""The Webhooks page in headless Chromium (Debian's `chromium`, driven by Playwright from PyPI) against the
system `make run` starts: what a person sees and does, and what then reaches a real receiver.

Screenshots of the list, the create form, the delivery view and the chart are taken on every run; they
replace the committed ones in docs/screenshots/ only with UPDATE_SCREENSHOTS=1 (else a temporary folder), so
a test run leaves the tree clean.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from playwright.async_api import Browser, ConsoleMessage, Locator, Page, async_playwright, expect

from tests.conftest import eventually
from tests.e2e.stack import Stack
from tests.servers import ROOT
from tests.support.receiver import Reply

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = Path(CHROMIUM).exists()
SHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "webhooks-page-screenshots"
)
MARK = "booking.cancelled"
TIMEOUT_MS = 15_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    async with async_playwright() as pw:
        # --no-sandbox: the tests run as root in a container, where Chromium's sandbox cannot start.
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        await b.close()


class Seen:
    """Console errors and CSP violations of one page: a page that works must have none."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg: ConsoleMessage) -> None:
        # 4xx answers the page asked for on purpose (a bad token) are logged by Chromium as resource errors.
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            self.errors.append(msg.text)


@pytest.fixture
async def page(browser: Browser, stack: Stack) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, base_url=stack.api)
    pg = await context.new_page()
    seen = Seen(pg)
    yield pg
    await context.close()
    assert seen.errors == [], seen.errors


async def open_page(page: Page) -> None:
    await page.goto("/")
    await expect(page.locator("body[data-ready=true]")).to_be_attached()


async def sign_in(page: Page, token: str) -> None:
    await open_page(page)
    await page.get_by_label("Token", exact=True).fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Create new webhook")).to_be_visible()


def card(page: Page, name: str) -> Locator:
    return page.locator("#webhook-list > li").filter(has=page.get_by_role("heading", name=name, exact=True))


async def fill_form(
    page: Page, *, name: str, url: str, events: list[tuple[str, str]], entity_name: str
) -> None:
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Name", exact=True).fill(name)
    await dialog.get_by_label("Entity name").fill(entity_name)
    for query, key in events:
        await dialog.get_by_label("Events", exact=True).fill(query)
        await dialog.locator(f"label.option[data-value='{key}'] input").check()
    await dialog.get_by_label("Events", exact=True).fill("")
    await dialog.get_by_label("Webhook URL").fill(url)


async def shot(page: Page, name: str, target: Locator | None = None) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    if target is None:
        await page.screenshot(path=str(SHOTS / name), full_page=True)
    else:
        await target.screenshot(path=str(SHOTS / name))


async def history_served(stack: Stack) -> set[str]:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.api}/openapi.json") as resp:
        doc = orjson.loads(await resp.read())
    return {f"{m.upper()} {p.split('/webhook', 1)[-1]}" for p, ops in doc["paths"].items() for m in ops}


# --- serving and sign-in ------------------------------------------------------------------------------


async def test_page_is_served_with_a_strict_csp_and_no_third_party_resources(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.api}/") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            csp = resp.headers["Content-Security-Policy"]
            html = await resp.text()
        for asset in ("app.js", "api.js", "events.js", "chart.js", "dom.js", "page.css"):
            async with http.get(f"{stack.api}/page/{asset}") as resp:
                assert resp.status == 200, asset
                assert resp.headers["Content-Security-Policy"] == csp
                body = (await resp.text()).replace("http://www.w3.org/2000/svg", "")  # a namespace name
                assert "http://" not in body and "https://" not in body, asset
        async with http.get(f"{stack.api}/page/../settings.py") as resp:
            assert resp.status == 404
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert "<script>" not in html and " style=" not in html and "onclick" not in html


async def test_bad_token_is_refused_next_to_the_field_and_a_good_one_stays_out_of_the_url(
    page: Page, stack: Stack, entity: str
) -> None:
    await open_page(page)
    token_field = page.get_by_label("Token", exact=True)
    await token_field.fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#token-error")).to_contain_text("names no entity")
    await expect(token_field).to_have_attribute("aria-invalid", "true")

    forged = stack.token(entity)[:-4] + "AAAA"  # right claims, wrong signature: the registry says 401
    await token_field.fill(forged)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#token-error")).to_contain_text("401")

    token = stack.token(entity)
    await token_field.fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text(f"No webhooks yet for {entity}")).to_be_visible()
    assert token not in page.url and "token" not in page.url.lower()
    assert await page.evaluate("sessionStorage.getItem('webhooks.token')") == token

    await page.reload()  # the same tab keeps the session
    await expect(page.get_by_role("button", name="Create new webhook")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Token", exact=True)).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('webhooks.token')") is None


async def test_development_profile_mints_a_token_for_the_entity_given(page: Page, entity: str) -> None:
    await open_page(page)
    await page.get_by_label("Entity for a development token").fill(entity)
    await page.get_by_role("button", name="Get development token").click()
    await expect(page.get_by_text(f"No webhooks yet for {entity}")).to_be_visible()
    await expect(page.get_by_label("Account", exact=True)).to_have_value(entity)


# --- Studio's flows ---------------------------------------------------------------------------------------


async def test_create_new_webhook_then_an_event_arrives_at_the_receiver(
    page: Page, stack: Stack, entity: str
) -> None:
    path = f"/page/{entity}"
    await stack.create(entity, stack.rx.url(f"/other/{entity}"), [MARK], name="Existing hook")
    await sign_in(page, stack.token(entity))
    await page.get_by_role("button", name="Create new webhook").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("heading", name="Create new webhook")).to_be_visible()
    await expect(dialog.get_by_text("No events chosen: this webhook receives all events.")).to_be_visible()
    await expect(dialog.get_by_label("Enabled")).to_be_checked()
    await expect(dialog.get_by_label("Entity", exact=True)).to_have_value(entity)

    # The searchable, grouped catalogue: a search narrows it, categories are headed.
    await dialog.get_by_label("Events", exact=True).fill("refund")
    await expect(dialog.locator("label.option[data-value='booking.refund.full']")).to_be_visible()
    await expect(dialog.locator("label.option[data-value='booking.create']")).to_be_hidden()
    await expect(dialog.locator("fieldset.category legend", has_text="Booking")).to_be_visible()

    await fill_form(
        page,
        name="Wink Stalker",
        url=stack.rx.url(path),
        events=[("booking created", "booking.create")],
        entity_name="Cool Account",
    )
    await expect(dialog.get_by_text("1 event chosen.")).to_be_visible()
    await shot(page, "create-form.png", dialog)
    await dialog.get_by_role("button", name="Save").click()

    await expect(dialog).to_be_hidden()
    hook_card = card(page, "Wink Stalker")
    await expect(hook_card).to_contain_text(stack.rx.url(path))
    await expect(hook_card).to_contain_text("booking.create")
    await expect(hook_card).to_contain_text("Cool Account")
    await expect(hook_card.get_by_text("Enabled", exact=True)).to_be_visible()
    await expect(page.get_by_role("status").first).to_contain_text('Created "Wink Stalker"')
    await shot(page, "list.png")

    status, hooks = await stack.call("GET", entity, "/list")
    mine = [h for h in hooks if h["name"] == "Wink Stalker"]
    assert status == 200 and len(mine) == 1
    assert (mine[0]["enabled"], mine[0]["eventList"], mine[0]["ownerName"]) == (
        True,
        ["booking.create"],
        "Cool Account",
    )
    await stack.barrier(entity)
    event_id = await stack.send(entity, "booking.create", {"bookingId": "bk_page"})
    got = await stack.delivered(path, event_id)
    assert orjson.loads(got.body)["data"] == {"bookingId": "bk_page"}


async def test_errors_from_the_api_are_shown_next_to_the_fields_they_name(
    page: Page, stack: Stack, entity: str
) -> None:
    await sign_in(page, stack.token(entity))
    await page.get_by_role("button", name="Create new webhook").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Entity name").fill("Cool Account")
    await dialog.get_by_label("Webhook URL").fill("ftp://example.com/hooks")
    await dialog.get_by_role("button", name="Save").click()

    await expect(dialog.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    await expect(dialog.locator("#f-name-error")).not_to_be_empty()

    await dialog.get_by_label("Name", exact=True).fill("Wink Stalker")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog.get_by_label("Webhook URL")).to_have_attribute("aria-invalid", "true")
    await expect(dialog.get_by_label("Name", exact=True)).not_to_have_attribute("aria-invalid", "true")
    await expect(dialog.locator("#f-url-error")).not_to_be_empty()
    # The message is tied to its field for assistive technology too.
    described = await dialog.get_by_label("Webhook URL").get_attribute("aria-describedby")
    assert described is not None and "f-url-error" in described.split()
    await dialog.get_by_role("button", name="Cancel").click()
    status, hooks = await stack.call("GET", entity, "/list")
    assert (status, hooks) == (200, [])


async def test_actions_update_switches_off_changes_events_and_url(
    page: Page, stack: Stack, entity: str
) -> None:
    hook = await stack.create(entity, stack.rx.url(f"/u/{entity}"), ["booking.created"])
    await sign_in(page, stack.token(entity))
    hook_card = card(page, "Wink Stalker")
    await hook_card.get_by_role("button", name="Actions").click()
    await page.get_by_role("menuitem", name="Update").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_label("Name", exact=True)).to_have_value("Wink Stalker")
    await dialog.get_by_label("Enabled").uncheck()
    await dialog.get_by_role("button", name="Remove booking.created").click()
    await dialog.get_by_label("Events", exact=True).fill("cancelled")
    await dialog.locator(f"label.option[data-value='{MARK}'] input").check()
    await dialog.get_by_label("Webhook URL").fill(stack.rx.url(f"/u2/{entity}"))
    await dialog.get_by_role("button", name="Save").click()

    await expect(dialog).to_be_hidden()
    await expect(hook_card.get_by_text("Disabled", exact=True)).to_be_visible()
    await expect(hook_card).to_contain_text(stack.rx.url(f"/u2/{entity}"))
    status, record = await stack.call("GET", entity, f"/{hook['id']}")
    assert status == 200
    assert (record["enabled"], record["eventList"], record["eventUrl"], record["version"]) == (
        False,
        [MARK],
        stack.rx.url(f"/u2/{entity}"),
        2,
    )


async def test_actions_remove_asks_ok_then_nothing_arrives(page: Page, stack: Stack, entity: str) -> None:
    path = f"/r/{entity}"
    hook = await stack.create(entity, stack.rx.url(path), ["booking.created"], name="Goes away")
    await stack.create(entity, stack.rx.url(f"/m/{entity}"), [MARK], name="marker")
    await stack.barrier(entity)
    before = await stack.send(entity, "booking.create")
    await stack.delivered(path, before)

    await sign_in(page, stack.token(entity))
    hook_card = card(page, "Goes away")
    await hook_card.get_by_role("button", name="Actions").click()
    await page.get_by_role("menuitem", name="Remove").click()
    confirm = page.get_by_role("dialog")
    await expect(confirm).to_contain_text('Remove "Goes away"?')
    await confirm.get_by_role("button", name="Cancel").click()  # Cancel keeps it
    await expect(hook_card).to_be_visible()
    await hook_card.get_by_role("button", name="Actions").click()
    await page.get_by_role("menuitem", name="Remove").click()
    await confirm.get_by_role("button", name="OK").click()
    await expect(hook_card).to_have_count(0)
    await expect(page.get_by_role("status").first).to_contain_text('Removed "Goes away"')

    await stack.assert_removed(entity, hook["id"], path, MARK)


async def test_signing_secret_is_shown_on_request_and_rotates(page: Page, stack: Stack, entity: str) -> None:
    hook = await stack.create(entity, stack.rx.url(f"/s/{entity}"), [])
    await sign_in(page, stack.token(entity))
    await expect(card(page, "Wink Stalker")).to_contain_text("All events")
    await card(page, "Wink Stalker").get_by_role("button", name="Details").click()
    await expect(page.get_by_role("heading", name="Wink Stalker", level=2)).to_be_visible()
    secret_box = page.locator("#secret-value")
    await expect(secret_box).to_be_hidden()
    await page.get_by_role("button", name="Show secret").click()
    first = await stack.secret(entity, hook["id"])
    await expect(secret_box).to_have_text(first)
    await page.get_by_role("button", name="Hide secret").click()
    await expect(secret_box).to_be_hidden()

    await page.get_by_role("button", name="Rotate secret").click()
    await page.get_by_role("dialog").get_by_role("button", name="OK").click()
    await expect(page.locator("#secret-status")).to_contain_text("previous secret keeps signing until")
    second = await stack.secret(entity, hook["id"])
    assert second != first
    await expect(secret_box).to_have_text(second)


async def test_chart_buckets_and_catalogue_groups_are_computed_as_a_person_reads_them(page: Page) -> None:
    await open_page(page)
    result = await page.evaluate(
        """async () => {
          const chart = await import('/page/chart.js');
          const events = await import('/page/events.js');
          const now = Date.parse('2026-01-01T12:00:00Z');
          const at = (min) => new Date(now - min * 60e3).toISOString();
          const items = [
            { createdAt: at(1), status: 'succeeded' }, { createdAt: at(2), status: 'failed' },
            { createdAt: at(3), status: 'dead' }, { createdAt: at(4), status: 'pending' },
            { createdAt: at(50), status: 'succeeded' }, { createdAt: at(90), status: 'succeeded' },
            { createdAt: at(23 * 60), status: 'failed' }, { createdAt: at(25 * 60), status: 'failed' },
          ];
          const sum = (bs, k) => bs.reduce((s, b) => s + b[k], 0);
          const hour = chart.bucketize(items, 'hour', now);
          const day = chart.bucketize(items, 'day', now);
          const groups = events.groupCatalogue([
            { value: 'booking.create', label: 'Booking: Booking created' },
            { value: 'booking.cancelled', label: 'Booking: Booking cancelled' },
            { value: 'payee.created', label: 'Payee: Payee created' },
          ]);
          return {
            hour: [hour.length, sum(hour, 'succeeded'), sum(hour, 'failed'), hour[11].failed],
            day: [day.length, sum(day, 'succeeded'), sum(day, 'failed')],
            groups: [...groups.entries()].map(([k, v]) => [k, v.map((e) => e.label)]),
            match: events.matches(
              { value: 'booking.refund.full', label: 'Full refund', category: 'Booking' }, 'REFUND'),
          };
        }"""
    )
    assert result["hour"] == [12, 2, 2, 2]  # 12 five-minute bars; pending is neither; dead counts as failed
    assert result["day"] == [24, 3, 3]  # 24 hourly bars; 25 h ago is outside
    assert result["groups"] == [
        ["Booking", ["Booking created", "Booking cancelled"]],
        ["Payee", ["Payee created"]],
    ]
    assert result["match"] is True


# --- keyboard, small screens, labels -----------------------------------------------------------------------

UNLABELLED = """() => [...document.querySelectorAll('button, input, select, textarea')]
  .filter((c) => c.offsetParent !== null || c.closest('dialog[open]'))
  .filter((c) => {
    const name = (c.getAttribute('aria-label') || '').trim()
      || (c.labels && [...c.labels].map((l) => l.textContent).join('').trim())
      || (c.getAttribute('aria-labelledby') || '').trim()
      || (c.tagName === 'BUTTON' && c.textContent.trim());
    return !name;
  }).map((c) => c.outerHTML.slice(0, 120))"""


async def test_create_with_the_keyboard_alone_at_360_px(page: Page, stack: Stack, entity: str) -> None:
    await page.set_viewport_size({"width": 360, "height": 740})
    path = f"/k/{entity}"
    await stack.create(
        entity,
        stack.rx.url(f"/k0/{entity}"),
        ["booking.created"],
        name="A rather long webhook name that must wrap",
    )
    await open_page(page)
    kb = page.keyboard
    await expect(page.get_by_label("Token", exact=True)).to_be_focused()
    await kb.type(stack.token(entity))
    await kb.press("Enter")
    await expect(page.get_by_role("button", name="Create new webhook")).to_be_focused()
    assert await page.evaluate(UNLABELLED) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360

    # The Actions menu opens, moves and closes with keys.
    actions = card(page, "A rather long webhook name that must wrap").get_by_role("button", name="Actions")
    await actions.focus()
    await kb.press("Enter")
    await expect(page.get_by_role("menuitem", name="Update")).to_be_focused()
    await kb.press("ArrowDown")
    await expect(page.get_by_role("menuitem", name="Remove")).to_be_focused()
    await kb.press("Escape")
    await expect(actions).to_be_focused()

    await page.get_by_role("button", name="Create new webhook").focus()
    await kb.press("Enter")
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_label("Name", exact=True)).to_be_focused()
    assert await page.evaluate(UNLABELLED) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await kb.type("Keyboard hook")
    await kb.press("Tab")
    await expect(dialog.get_by_label("Enabled")).to_be_focused()
    await kb.press("Tab")
    await expect(dialog.get_by_label("Entity", exact=True)).to_be_focused()
    await kb.press("Tab")
    await expect(dialog.get_by_label("Entity name")).to_be_focused()
    await kb.type("Cool Account")
    await kb.press("Tab")
    await expect(dialog.get_by_label("Events", exact=True)).to_be_focused()
    await kb.type("booking.create")
    await kb.press("Enter")  # picks the first match
    await expect(dialog.get_by_text("1 event chosen.")).to_be_visible()
    await dialog.get_by_label("Webhook URL").focus()
    await kb.type(stack.rx.url(path))
    await kb.press("Enter")  # submits the form: Save
    await expect(dialog).to_be_hidden()
    await expect(card(page, "Keyboard hook")).to_contain_text("booking.create")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360

    await card(page, "Keyboard hook").get_by_role("button", name="Details").focus()
    await kb.press("Enter")
    await expect(page.get_by_role("heading", name="Keyboard hook", level=2)).to_be_focused()
    assert await page.evaluate(UNLABELLED) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360

    # Back, then Actions > Remove > OK, keys only.
    await page.get_by_role("button", name="Back to webhooks").focus()
    await kb.press("Enter")
    keyboard_actions = card(page, "Keyboard hook").get_by_role("button", name="Actions")
    await expect(keyboard_actions).to_be_focused()
    await kb.press("ArrowDown")
    await kb.press("ArrowDown")
    await expect(page.get_by_role("menuitem", name="Remove")).to_be_focused()
    await kb.press("Enter")
    confirm = page.get_by_role("dialog")
    await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    await kb.press("Tab")
    await expect(confirm.get_by_role("button", name="OK")).to_be_focused()
    await kb.press("Enter")
    await expect(card(page, "Keyboard hook")).to_have_count(0)
    await expect(page.get_by_role("button", name="Create new webhook")).to_be_focused()


# --- the delivery history (when this registry serves it) ---------------------------------------------------


async def _history_or_absent(page: Page, stack: Stack) -> set[str]:
    served = await history_served(stack)
    if "GET /{id}/delivery/list" not in served:
        await expect(
            page.get_by_text("This registry does not serve the delivery history yet.")
        ).to_be_visible()
        await expect(page.get_by_role("heading", name="Deliveries")).to_be_hidden()
    return served


async def test_deliveries_resend_test_event_health_and_chart(page: Page, stack: Stack, entity: str) -> None:
    path = f"/h/{entity}"
    stack.rx.script(path, [Reply(500, body=b"boom"), Reply(204)])  # the first event: 500 then 204
    hook = await stack.create(entity, stack.rx.url(path), ["booking.created", MARK])
    await sign_in(page, stack.token(entity))
    await card(page, "Wink Stalker").get_by_role("button", name="Details").click()
    served = await _history_or_absent(page, stack)
    if "GET /{id}/delivery/list" not in served:
        pytest.skip("this registry does not serve the delivery history (the page says so; checked above)")

    await stack.barrier(entity)
    first = await stack.send(entity, "booking.create", {"bookingId": "bk_hist"})
    await eventually(lambda: len(stack.received(path, first)) == 2, timeout=40, what="a 500 then a 204")
    stack.rx.always(path, Reply(503, body=b"down"))
    failing = await stack.send(entity, MARK)
    await stack.delivered(path, failing)

    deliveries = page.locator("#deliveries tbody tr")

    async def listed() -> bool:
        # Both deliveries: the history writer stores the failing one a moment after the receiver answered.
        await page.get_by_role("button", name="Refresh").click()
        rows = page.locator(f"#deliveries tr[data-event='{first}']")
        ok = await rows.count() == 1 and "succeeded" in (await rows.inner_text())
        return ok and await page.locator(f"#deliveries tr[data-event='{failing}']").count() == 1

    await eventually(listed, timeout=30, what="both deliveries listed, the first as succeeded")
    row = page.locator(f"#deliveries tr[data-event='{first}']")
    await expect(row).to_contain_text("booking.create")
    await expect(row.locator("td").nth(2)).to_have_text("2")
    await expect(row).to_contain_text("HTTP 204")
    assert await deliveries.count() >= 2

    await row.get_by_role("button", name=f"View delivery {first}").click()
    view = page.locator("#delivery")
    await expect(view).to_be_visible()
    await expect(page.locator("#delivery-payload")).to_contain_text("bk_hist")
    await expect(page.locator("#delivery-attempts > li")).to_have_count(2)
    await expect(page.locator("#delivery-attempts")).to_contain_text("HTTP 500")
    await expect(page.locator("#delivery-attempts")).to_contain_text("HTTP 204")
    await page.locator("#delivery-attempts details").first.locator("summary").click()
    await expect(page.locator("#delivery-attempts")).to_contain_text("boom")
    await shot(page, "delivery.png", page.locator("#deliveries-title").locator("xpath=ancestor::section[1]"))

    # Resend: the receiver gets the same event (same webhook-id) once more.
    stack.rx.always(path, Reply(204))
    await page.get_by_role("button", name="Resend").click()
    await expect(page.locator("#deliveries-status")).to_contain_text("Resend of")
    await eventually(lambda: len(stack.received(path, first)) == 3, timeout=30, what="the resent delivery")
    ids = {r.webhook_id for r in stack.received(path, first)}
    assert len(ids) == 1

    # Send test event: it arrives, marked as a test.
    if "POST /{id}/test" in served:
        await page.get_by_label("Test event type").select_option(MARK)  # one it subscribes to
        await page.get_by_role("button", name="Send test event").click()
        await expect(page.locator("#send-status")).to_contain_text("Test event")
        text = await page.locator("#send-status").inner_text()
        test_id = text.split("Test event ", 1)[1].split(" ", 1)[0]
        got = await stack.delivered(path, test_id)
        assert orjson.loads(got.body)["type"] == MARK

    # Health and the chart: succeeded against failed.
    await page.get_by_role("button", name="Refresh").click()
    health = page.locator("#health")
    await expect(health.get_by_role("row", name="Last hour")).to_be_visible()
    await expect(page.locator(".chart-svg rect.ok").first).to_be_visible()
    await expect(page.locator(".chart-svg rect.bad").first).to_be_visible()
    await expect(page.locator("#chart .legend")).to_contain_text("Failed (1)")
    await page.get_by_role("button", name="Last day").click()
    await expect(page.get_by_role("button", name="Last day")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#chart-svg-title")).to_have_text("Deliveries over the last day")
    await page.get_by_role("button", name="Last hour").click()
    await shot(page, "chart.png", page.locator("#chart-title").locator("xpath=ancestor::section[1]"))
    _ = hook


async def test_recover_and_replay_for_a_time_window(page: Page, stack: Stack, entity: str) -> None:
    path = f"/rr/{entity}"
    early = await stack.send(entity, "booking.create")  # before the webhook exists: only a replay sends it
    stack.rx.always(path, Reply(500))
    await stack.create(entity, stack.rx.url(path), ["booking.created"])
    await sign_in(page, stack.token(entity))
    await card(page, "Wink Stalker").get_by_role("button", name="Details").click()
    served = await _history_or_absent(page, stack)
    if "POST /{id}/recover" not in served:
        await expect(page.get_by_role("button", name="Recover")).to_be_hidden()
        pytest.skip("this registry does not serve recover/replay (the page hides them; checked above)")

    await stack.barrier(entity)
    failed = await stack.send(entity, "booking.create")
    await stack.delivered(path, failed)  # answered 500
    stack.rx.always(path, Reply(204))

    async def failed_listed() -> bool:  # what a person waits for: the failure in the list
        await page.get_by_role("button", name="Refresh").click()
        row = page.locator(f"#deliveries tr[data-event='{failed}']")
        return await row.count() == 1 and "HTTP 500" in await row.inner_text()

    await eventually(failed_listed, timeout=30, what="the failed delivery listed")
    status = page.locator("#send-status")
    await page.get_by_role("button", name="Recover").click()
    await expect(status).to_contain_text("Recover job", timeout=60_000)
    await expect(status).to_contain_text("succeeded", timeout=60_000)
    await expect(status).to_contain_text(re.compile(r"sent [1-9]"))
    await eventually(lambda: len(stack.received(path, failed)) >= 2, timeout=30, what="the recovered event")

    await page.get_by_role("button", name="Replay").click()
    await expect(status).to_contain_text("Replay job", timeout=60_000)
    await expect(status).to_contain_text("succeeded", timeout=60_000)
    await stack.delivered(path, early, timeout=60)


# --- the same webhooks from whctl -------------------------------------------------------------------------


async def test_whctl_update_changes_only_what_is_given_and_the_page_shows_it(
    page: Page, stack: Stack, entity: str
) -> None:
    hook = await stack.create(entity, stack.rx.url(f"/w/{entity}"), ["booking.created"])
    done = await stack.awhctl(
        "--json", "webhooks", "update", hook["id"], "--entity", entity, "--disable", "--event", MARK
    )
    assert done.returncode == 0, done.stderr
    updated = orjson.loads(done.stdout)
    assert (updated["enabled"], updated["eventList"], updated["eventUrl"], updated["name"]) == (
        False,
        [MARK],
        hook["eventUrl"],
        "Wink Stalker",
    )
    stale = await stack.awhctl(
        "webhooks", "update", hook["id"], "--entity", entity, "--enable", "--if-match", "1"
    )
    assert stale.returncode != 0 and "409" in stale.stderr

    # The table in an 80-column terminal: the id and the URL whole, never "…".
    listed = await stack.awhctl("webhooks", "list", "--entity", entity, columns=80)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert "…" not in listed.stdout
    assert any(hook["id"] in ln for ln in lines) and any(hook["eventUrl"] in ln for ln in lines)

    await sign_in(page, stack.token(entity))
    hook_card = card(page, "Wink Stalker")
    await expect(hook_card.get_by_text("Disabled", exact=True)).to_be_visible()
    await expect(hook_card).to_contain_text(MARK)
