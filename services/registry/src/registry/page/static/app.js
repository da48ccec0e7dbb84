// The Webhooks page: Studio's flows (Create new webhook, Actions > Update / Remove) plus each webhook's
// secret, health, deliveries and chart, all through the registry's own HTTP API.

import { Api, ApiError, claimsOf } from "./api.js";
import { PERIODS, bucketize, drawChart } from "./chart.js";
import { $, el, when } from "./dom.js";
import { EventPicker } from "./events.js";

const TOKEN_KEY = "webhooks.token"; // sessionStorage: this tab only, gone when it closes
const CHART_PAGES = 10; // at most 1,000 deliveries read for the chart
const JOB_POLL_MS = 1000;

const state = {
  api: null,
  entities: [],
  account: null,
  webhooks: [],
  catalogue: [],
  features: null, // Set of "METHOD /path" served by this registry, or null when unknown
  current: null, // the webhook shown in the detail view
  period: "hour",
  chartItems: [],
  cursor: null,
  delivery: null,
};

const picker = new EventPicker({
  search: $("f-events"),
  options: $("f-events-options"),
  chosen: $("f-events-chosen"),
  summary: $("f-events-summary"),
});

// --- small helpers ------------------------------------------------------------------------------------

function notice(text) {
  $("notice").textContent = text;
}

function show(view) {
  for (const id of ["sign-in", "list-view", "detail-view"]) $(id).hidden = id !== view;
  $("session").hidden = view === "sign-in";
}

function has(key) {
  return state.features === null || state.features.has(key);
}

function describe(err) {
  if (err instanceof ApiError) {
    if (err.status === 401) return "The token was refused (401): it is missing, malformed or expired.";
    if (err.status === 403) return `Not allowed (403): ${err.message}`;
    return err.message;
  }
  return String(err);
}

function eventsText(list) {
  return list && list.length ? list.join(", ") : "All events";
}

// --- sign-in --------------------------------------------------------------------------------------------

async function signIn(token) {
  $("token-error").textContent = "";
  $("token").removeAttribute("aria-invalid");
  const claims = claimsOf(token);
  const entities = claims && Array.isArray(claims.entities) ? claims.entities.map(String) : [];
  if (!entities.length) {
    fail("This is not a token of this platform: it names no entity (claim `entities`).");
    return false;
  }
  const api = new Api(token);
  try {
    await api.list(entities[0]);
  } catch (err) {
    fail(describe(err));
    return false;
  }
  state.api = api;
  state.entities = entities;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  const account = $("account");
  account.replaceChildren(...entities.map((e) => el("option", { value: e }, e)));
  state.account = entities[0];
  show("list-view");
  await Promise.all([loadCatalogue(), refreshList()]);
  $("create").focus();
  return true;

  function fail(text) {
    $("token-error").textContent = text;
    $("token").setAttribute("aria-invalid", "true");
    $("token").focus();
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.api = null;
  state.current = null;
  $("webhook-list").replaceChildren();
  show("sign-in");
  notice("Signed out.");
  $("token").focus();
}

// --- list ---------------------------------------------------------------------------------------------

async function loadCatalogue() {
  try {
    state.catalogue = await state.api.events(state.account);
    picker.setCatalogue(state.catalogue);
  } catch (err) {
    notice(`The event catalogue could not be read: ${describe(err)}`);
  }
}

async function refreshList() {
  const status = $("list-status");
  status.textContent = "Loading…";
  try {
    state.webhooks = await state.api.list(state.account);
  } catch (err) {
    status.textContent = describe(err);
    return;
  }
  renderList();
}

function renderList() {
  const list = $("webhook-list");
  list.replaceChildren(...state.webhooks.map(card));
  const n = state.webhooks.length;
  $("list-status").textContent = n
    ? `${n} webhook${n === 1 ? "" : "s"} for ${state.account}.`
    : `No webhooks yet for ${state.account}. "Create new webhook" adds one.`;
}

function card(hook) {
  const nameId = `wh-${hook.id}-name`;
  const li = el("li", { class: "card", "aria-labelledby": nameId, "data-id": hook.id });
  const head = el("div", { class: "card-head" },
    el("h3", { id: nameId }, hook.name),
    el("span", { class: `badge ${hook.enabled ? "on" : "off"}` }, hook.enabled ? "Enabled" : "Disabled"),
    actionsMenu(hook));
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "Webhook URL"), el("dd", {}, el("code", { class: "wrap" }, hook.eventUrl)),
    el("dt", {}, "Events"), el("dd", {}, eventsText(hook.eventList)),
    el("dt", {}, "Entity"), el("dd", {}, `${hook.ownerName} (${hook.ownerIdentifier})`),
    el("dt", {}, "ID"), el("dd", {}, el("code", { class: "wrap" }, hook.id)));
  if (hook.disabledReason) facts.append(el("dt", {}, "Disabled because"), el("dd", {}, hook.disabledReason));
  const details = el("button", { type: "button", class: "secondary", "aria-label": `Details of ${hook.name}` }, "Details");
  details.addEventListener("click", () => openDetail(hook));
  li.append(head, facts, details);
  return li;
}

// The "Actions" menu button (WAI-ARIA menu button pattern: arrows move, Escape closes).
function actionsMenu(hook) {
  const menuId = `menu-${hook.id}`;
  const button = el("button", { type: "button", class: "secondary", "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": menuId }, "Actions");
  const update = el("button", { type: "button", role: "menuitem", tabindex: "-1" }, "Update");
  const remove = el("button", { type: "button", role: "menuitem", tabindex: "-1", class: "danger-text" }, "Remove");
  const menu = el("ul", { id: menuId, role: "menu", class: "menu", "aria-label": `Actions for ${hook.name}`, hidden: true },
    el("li", { role: "none" }, update), el("li", { role: "none" }, remove));
  const items = [update, remove];
  const wrap = el("div", { class: "menu-wrap" }, button, menu);

  const open = (focusAt = 0) => {
    closeMenus();
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    items[focusAt].focus();
  };
  const close = (refocus) => {
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (refocus) button.focus();
  };
  button.addEventListener("click", () => (menu.hidden ? open() : close(false)));
  button.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown") { ev.preventDefault(); open(0); }
    if (ev.key === "ArrowUp") { ev.preventDefault(); open(items.length - 1); }
  });
  menu.addEventListener("keydown", (ev) => {
    const at = items.indexOf(document.activeElement);
    if (ev.key === "ArrowDown") { ev.preventDefault(); items[(at + 1) % items.length].focus(); }
    if (ev.key === "ArrowUp") { ev.preventDefault(); items[(at - 1 + items.length) % items.length].focus(); }
    if (ev.key === "Home") { ev.preventDefault(); items[0].focus(); }
    if (ev.key === "End") { ev.preventDefault(); items[items.length - 1].focus(); }
    if (ev.key === "Escape") { ev.preventDefault(); close(true); }
    if (ev.key === "Tab") close(false);
  });
  update.addEventListener("click", () => { close(false); openForm(hook, button); });
  remove.addEventListener("click", () => { close(false); confirmRemove(hook, button); });
  wrap.closeMenu = () => close(false);
  return wrap;
}

function closeMenus() {
  for (const wrap of document.querySelectorAll(".menu-wrap")) wrap.closeMenu();
}

document.addEventListener("click", (ev) => {
  if (!ev.target.closest(".menu-wrap")) closeMenus();
});

// --- the create / update form ---------------------------------------------------------------------------

const FIELD_OF = [
  [/^name$/, "f-name"],
  [/^enabled$/, "f-enabled"],
  [/^entity(\.|$)/, "f-entity"],
  [/^eventList(\[|$)/, "f-events"],
  [/^eventUrl$/, "f-url"],
];

let editing = null; // the record being updated, or null when creating
let returnFocus = null;

function clearErrors(form) {
  for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

// problem+json `errors: [{field, reason}]` next to the fields they name; the rest above the form.
function showProblem(err, fieldOf, formError) {
  const rest = [];
  let first = null;
  for (const e of err.errors) {
    const match = fieldOf.find(([re]) => re.test(e.field || ""));
    if (!match) {
      rest.push(`${e.field}: ${e.reason}`);
      continue;
    }
    const input = $(match[1]);
    const out = $(`${match[1]}-error`);
    out.textContent = out.textContent ? `${out.textContent} ${e.reason}` : e.reason;
    input.setAttribute("aria-invalid", "true");
    if (e.field === "entity.name") $("f-entity-name")?.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  if (!err.errors.length) {
    formError.textContent = err.status === 409 && editing
      ? `${err.message} Close the form and open Update again to see the latest version.`
      : describe(err);
  } else if (rest.length) {
    formError.textContent = rest.join(" ");
  }
  (first || formError).focus?.();
  return first;
}

function openForm(hook, opener) {
  editing = hook;
  returnFocus = opener || document.activeElement;
  const form = $("webhook-form");
  clearErrors(form);
  $("form-title").textContent = hook ? `Update "${hook.name}"` : "Create new webhook";
  const entity = $("f-entity");
  const ids = hook ? [hook.ownerIdentifier] : state.entities;
  entity.replaceChildren(...ids.map((e) => el("option", { value: e }, e)));
  entity.value = hook ? hook.ownerIdentifier : state.account;
  entity.disabled = Boolean(hook); // a webhook stays with its entity
  $("f-name").value = hook ? hook.name : "";
  $("f-enabled").checked = hook ? hook.enabled : true;
  $("f-entity-name").value = hook ? hook.ownerName : entityName(state.account);
  $("f-url").value = hook ? hook.eventUrl : "";
  picker.setSelected(hook ? hook.eventList : []);
  $("form-dialog").showModal();
  $("f-name").focus();
}

function entityName(identifier) {
  const known = state.webhooks.find((w) => w.ownerIdentifier === identifier);
  return known ? known.ownerName : "";
}

function closeForm() {
  $("form-dialog").close();
  if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
  else $("create").focus();
}

async function saveForm(ev) {
  ev.preventDefault();
  const form = $("webhook-form");
  clearErrors(form);
  const identifier = $("f-entity").value;
  const body = {
    name: $("f-name").value.trim(),
    enabled: $("f-enabled").checked,
    entity: { identifier, name: $("f-entity-name").value.trim() },
    eventList: picker.value(),
    eventUrl: $("f-url").value.trim(),
  };
  const save = $("form-save");
  save.disabled = true;
  try {
    const saved = editing
      ? await state.api.update(identifier, editing.id, body, editing.version)
      : await state.api.create(identifier, body);
    const wasEditing = Boolean(editing);
    editing = null;
    $("form-dialog").close();
    notice(`${wasEditing ? "Updated" : "Created"} "${saved.name}".`);
    if (identifier !== state.account) {
      state.account = identifier;
      $("account").value = identifier;
    }
    await refreshList();
    if (state.current && state.current.id === saved.id) openDetail(saved);
    const again = document.querySelector(`li[data-id="${CSS.escape(saved.id)}"] button[aria-haspopup]`);
    (again || $("create")).focus();
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    showProblem(err, FIELD_OF, $("form-error"));
  } finally {
    save.disabled = false;
  }
}

// --- confirmation ---------------------------------------------------------------------------------------

let confirmAction = null;

function confirm(title, text, action, opener) {
  returnFocus = opener || document.activeElement;
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-error").textContent = "";
  confirmAction = action;
  $("confirm-dialog").showModal();
  $("confirm-cancel").focus();
}

function confirmRemove(hook, opener) {
  confirm(`Remove "${hook.name}"?`, `It stops receiving events at once. This cannot be undone.`, async () => {
    await state.api.remove(hook.ownerIdentifier, hook.id);
    notice(`Removed "${hook.name}".`);
    if (state.current && state.current.id === hook.id) {
      state.current = null;
      show("list-view");
    }
    await refreshList();
    return $("create"); // its card is gone: focus goes to the next thing to do
  }, opener);
}

async function confirmOk() {
  const action = confirmAction;
  try {
    const next = await action();
    confirmAction = null;
    $("confirm-dialog").close(); // after close(): the dialog hands focus back to its opener first
    const target = next || returnFocus;
    if (target && document.contains(target)) target.focus();
  } catch (err) {
    $("confirm-error").textContent = describe(err);
  }
}

function confirmCancel() {
  confirmAction = null;
  $("confirm-dialog").close();
  if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
}

// --- detail: facts, secret, health, chart, send, deliveries -------------------------------------------

async function openDetail(hook) {
  state.current = hook;
  state.delivery = null;
  $("detail-title").textContent = hook.name;
  const facts = $("detail-facts");
  facts.replaceChildren(
    el("dt", {}, "Status"), el("dd", {}, hook.enabled ? "Enabled" : `Disabled${hook.disabledReason ? `: ${hook.disabledReason}` : ""}`),
    el("dt", {}, "Webhook URL"), el("dd", {}, el("code", { class: "wrap" }, hook.eventUrl)),
    el("dt", {}, "Events"), el("dd", {}, eventsText(hook.eventList)),
    el("dt", {}, "Entity"), el("dd", {}, `${hook.ownerName} (${hook.ownerIdentifier})`),
    el("dt", {}, "ID"), el("dd", {}, el("code", { class: "wrap" }, hook.id)),
    el("dt", {}, "Version"), el("dd", {}, String(hook.version)),
    el("dt", {}, "Last update"), el("dd", {}, when(hook.lastUpdate)));
  hideSecret();
  $("secret-status").textContent = "";
  $("send-status").textContent = "";
  $("delivery").hidden = true;
  fillTestTypes(hook);
  const now = new Date();
  $("window-since").value = localInput(new Date(now.getTime() - 3600e3));
  $("window-until").value = ""; // empty: up to now, whenever the button is pressed
  show("detail-view");
  $("detail-title").setAttribute("tabindex", "-1");
  $("detail-title").focus();
  await loadHistory();
}

function localInput(d) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fillTestTypes(hook) {
  const concrete = (hook.eventList || []).filter((t) => !t.endsWith("*"));
  const types = concrete.length ? concrete : state.catalogue.map((c) => c.value);
  $("test-type").replaceChildren(...types.map((t) => el("option", { value: t }, t)));
}

function hideSecret() {
  $("secret-value").hidden = true;
  $("secret-value").textContent = "";
  $("secret-show").textContent = "Show secret";
  $("secret-show").setAttribute("aria-expanded", "false");
}

async function toggleSecret() {
  if (!$("secret-value").hidden) {
    hideSecret();
    return;
  }
  const hook = state.current;
  try {
    const { secret } = await state.api.secret(hook.ownerIdentifier, hook.id);
    $("secret-value").replaceChildren(el("code", { class: "wrap" }, secret));
    $("secret-value").hidden = false;
    $("secret-show").textContent = "Hide secret";
    $("secret-show").setAttribute("aria-expanded", "true");
  } catch (err) {
    $("secret-status").textContent = describe(err);
  }
}

function rotateSecret() {
  const hook = state.current;
  confirm(`Rotate the signing secret of "${hook.name}"?`,
    "A new secret signs from now on; the old one keeps signing too until it expires, so receivers can switch over.",
    async () => {
      const rotated = await state.api.rotate(hook.ownerIdentifier, hook.id);
      $("secret-value").replaceChildren(el("code", { class: "wrap" }, rotated.secret));
      $("secret-value").hidden = false;
      $("secret-show").textContent = "Hide secret";
      $("secret-show").setAttribute("aria-expanded", "true");
      $("secret-status").textContent = `Rotated. The previous secret keeps signing until ${when(rotated.previousExpiresAt)}.`;
      return $("secret-rotate");
    }, $("secret-rotate"));
}

const PANELS = {
  health: ["GET /{id}/stats"],
  chart: ["GET /{id}/delivery/list"],
  send: ["POST /{id}/test", "POST /{id}/recover", "POST /{id}/replay"],
  deliveries: ["GET /{id}/delivery/list"],
};

async function loadHistory() {
  const panels = {
    health: $("health-title").parentElement,
    chart: $("chart-title").parentElement,
    send: $("send-title").parentElement,
    deliveries: $("deliveries-title").closest("section.panel"),
  };
  let any = false;
  for (const [name, keys] of Object.entries(PANELS)) {
    const on = keys.some(has);
    panels[name].hidden = !on;
    any = any || on;
  }
  $("test-form").hidden = !has("POST /{id}/test");
  $("recover").hidden = !has("POST /{id}/recover");
  $("replay").hidden = !has("POST /{id}/replay");
  $("window-form").hidden = $("recover").hidden && $("replay").hidden;
  $("history-missing").hidden = any;
  await Promise.all([
    has("GET /{id}/stats") ? loadHealth() : null,
    has("GET /{id}/delivery/list") ? loadDeliveries(true) : null,
    has("GET /{id}/delivery/list") ? loadChart() : null,
  ]);
}

// A 404 from a route this registry does not have hides the part that needs it.
function missing(err, panel) {
  if (err instanceof ApiError && err.status === 404 && !err.problem.errors && state.features === null) {
    panel.hidden = true;
    return true;
  }
  return false;
}

function pct(rate) {
  return rate === null || rate === undefined ? "-" : `${(rate * 100).toFixed(1)}%`;
}

function ms(v) {
  return v === null || v === undefined ? "-" : `${Math.round(v)} ms`;
}

async function loadHealth() {
  const hook = state.current;
  const box = $("health");
  try {
    const stats = await state.api.stats(hook.ownerIdentifier, hook.id);
    const rows = [["Last hour", stats.lastHour], ["Last day", stats.lastDay]];
    const table = el("table", { class: "health" },
      el("caption", { class: "sr-only" }, "Delivery attempts of this webhook"),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Window"), el("th", { scope: "col" }, "Attempts"),
        el("th", { scope: "col" }, "Succeeded"), el("th", { scope: "col" }, "Failed"), el("th", { scope: "col" }, "Success rate"),
        el("th", { scope: "col" }, "p50"), el("th", { scope: "col" }, "p99"))),
      el("tbody", {}, rows.map(([label, w]) => el("tr", {}, el("th", { scope: "row" }, label), el("td", {}, String(w.attempts)),
        el("td", {}, String(w.successes)), el("td", {}, String(w.failures)), el("td", {}, pct(w.successRate)),
        el("td", {}, ms(w.p50Ms)), el("td", {}, ms(w.p99Ms))))));
    const verdict = healthVerdict(hook, stats.lastHour, stats.lastDay);
    const parts = [el("p", { class: `verdict ${verdict.cls}` }, verdict.text), el("div", { class: "table-wrap" }, table)];
    const last = stats.lastDay.lastFailure;
    if (last) {
      parts.push(el("p", { class: "help" }, `Last failure ${when(last.at)}: ${last.statusCode ? `HTTP ${last.statusCode}` : last.error || "no answer"}${last.eventId ? ` (event ${last.eventId})` : ""}.`));
    }
    box.replaceChildren(...parts);
  } catch (err) {
    if (!missing(err, box.parentElement)) box.replaceChildren(el("p", { class: "field-error" }, describe(err)));
  }
}

export function healthVerdict(hook, hour, day) {
  if (!hook.enabled) return { cls: "off", text: `Disabled${hook.disabledReason ? `: ${hook.disabledReason}` : ""}.` };
  const w = hour.attempts ? hour : day;
  if (!w.attempts) return { cls: "idle", text: "No deliveries in the last day." };
  if (w.failures === 0) return { cls: "ok", text: "Healthy: every recent attempt succeeded." };
  if (w.successes === 0) return { cls: "bad", text: "Failing: every recent attempt failed." };
  return { cls: "warn", text: `Degraded: ${pct(w.successRate)} of recent attempts succeeded.` };
}

async function loadChart() {
  const hook = state.current;
  const since = new Date(Date.now() - PERIODS.day.spanMs).toISOString();
  const items = [];
  let cursor = null;
  try {
    for (let i = 0; i < CHART_PAGES; i += 1) {
      const page = await state.api.deliveries(hook.ownerIdentifier, hook.id, { since, limit: 100, cursor });
      items.push(...page.items);
      cursor = page.nextCursor;
      if (!cursor) break;
    }
  } catch (err) {
    if (!missing(err, $("chart").parentElement)) $("chart").replaceChildren(el("p", { class: "field-error" }, describe(err)));
    return;
  }
  state.chartItems = items;
  renderChart();
}

function renderChart() {
  drawChart($("chart"), bucketize(state.chartItems, state.period, Date.now()), state.period);
  for (const b of document.querySelectorAll("button.period")) {
    b.setAttribute("aria-pressed", String(b.dataset.period === state.period));
  }
}

let deliveriesSeq = 0; // only the answer to the latest request is shown (refreshes may overlap)

async function loadDeliveries(fresh) {
  const hook = state.current;
  const body = $("deliveries").tBodies[0];
  const status = $("deliveries-status");
  const seq = ++deliveriesSeq;
  status.textContent = "Loading…";
  let page;
  try {
    page = await state.api.deliveries(hook.ownerIdentifier, hook.id, {
      status: $("delivery-filter").value,
      limit: 20,
      cursor: fresh ? null : state.cursor,
    });
  } catch (err) {
    if (seq !== deliveriesSeq) return;
    if (!missing(err, $("deliveries-title").closest("section.panel"))) status.textContent = describe(err);
    return;
  }
  if (seq !== deliveriesSeq || state.current !== hook) return;
  if (fresh) body.replaceChildren();
  for (const item of page.items) body.append(deliveryRow(item));
  state.cursor = page.nextCursor;
  $("deliveries-more").hidden = !page.nextCursor;
  const n = body.rows.length;
  status.textContent = n ? `${n} deliver${n === 1 ? "y" : "ies"} shown, newest first.` : "No deliveries yet.";
}

function answerOf(item) {
  if (item.lastStatusCode) return `HTTP ${item.lastStatusCode}`;
  return item.lastError || "-";
}

function deliveryRow(item) {
  const view = el("button", { type: "button", class: "secondary small", "aria-label": `View delivery ${item.eventId}` }, "View");
  view.addEventListener("click", () => openDelivery(item.eventId));
  return el("tr", { "data-event": item.eventId },
    el("td", {}, el("span", { class: "type" }, item.eventType), el("br"), el("code", { class: "wrap" }, item.eventId)),
    el("td", {}, el("span", { class: `badge ${item.status}` }, item.status)),
    el("td", {}, String(item.attempts)),
    el("td", {}, answerOf(item)),
    el("td", {}, when(item.createdAt)),
    el("td", {}, view));
}

async function openDelivery(eventId) {
  const hook = state.current;
  const box = $("delivery");
  try {
    const d = await state.api.delivery(hook.ownerIdentifier, hook.id, eventId);
    state.delivery = d;
    $("delivery-title").textContent = `Delivery of ${d.eventType}`;
    $("delivery-facts").replaceChildren(
      el("dt", {}, "Event ID"), el("dd", {}, el("code", { class: "wrap" }, d.eventId)),
      el("dt", {}, "Status"), el("dd", {}, el("span", { class: `badge ${d.status}` }, d.status)),
      el("dt", {}, "Created"), el("dd", {}, when(d.createdAt)),
      ...(d.deadReason ? [el("dt", {}, "Why it stopped"), el("dd", {}, d.deadReason)] : []));
    $("delivery-payload").textContent = d.payload === null || d.payload === undefined
      ? "(the payload was not kept)"
      : JSON.stringify(d.payload, null, 2);
    $("resend").hidden = !has("POST /{id}/delivery/{eventId}/resend");
    $("delivery-attempts").replaceChildren(...d.attempts.map((a) => el("li", {},
      el("p", {}, `Attempt ${a.attempt} at ${when(a.at)}: `,
        el("strong", {}, a.statusCode ? `HTTP ${a.statusCode}` : a.error || "no answer"),
        ` (${a.outcome}, ${Math.round(a.durationMs)} ms)`,
        a.nextAttemptAt ? `; next attempt ${when(a.nextAttemptAt)}` : ""),
      el("p", { class: "help" }, "Sent to ", el("code", { class: "wrap" }, a.url)),
      a.responseBody ? el("details", {}, el("summary", {}, "What the receiver answered"), el("pre", { tabindex: "0" }, a.responseBody)) : el("p", { class: "help" }, "The receiver's answer had no body."))));
    box.hidden = false;
    box.focus();
  } catch (err) {
    $("deliveries-status").textContent = describe(err);
  }
}

async function resend() {
  const hook = state.current;
  const d = state.delivery;
  try {
    await state.api.resend(hook.ownerIdentifier, hook.id, d.eventId);
    $("deliveries-status").textContent = `Resend of ${d.eventId} requested: it is on its way.`;
    setTimeout(() => loadDeliveries(true), 1500);
  } catch (err) {
    $("deliveries-status").textContent = describe(err);
  }
}

async function sendTest(ev) {
  ev.preventDefault();
  const hook = state.current;
  $("test-type-error").textContent = "";
  try {
    const accepted = await state.api.sendTest(hook.ownerIdentifier, hook.id, $("test-type").value);
    $("send-status").textContent = `Test event ${accepted.eventId} sent: it appears in Deliveries once attempted.`;
    setTimeout(() => { loadDeliveries(true); loadChart(); loadHealth(); }, 1500);
  } catch (err) {
    if (err instanceof ApiError && err.errors.length) showProblem(err, [[/^eventType$/, "test-type"]], $("send-status"));
    else $("send-status").textContent = describe(err);
  }
}

async function runWindow(kind) {
  const hook = state.current;
  for (const id of ["window-since", "window-until"]) {
    $(`${id}-error`).textContent = "";
    $(id).removeAttribute("aria-invalid");
  }
  const since = $("window-since").value;
  const until = $("window-until").value;
  if (!since) {
    $("window-since-error").textContent = "Choose the start of the window.";
    $("window-since").setAttribute("aria-invalid", "true");
    $("window-since").focus();
    return;
  }
  const window = { since: new Date(since).toISOString() };
  if (until) window.until = new Date(until).toISOString();
  const label = kind === "recover" ? "Recover" : "Replay";
  try {
    const job = await state.api[kind](hook.ownerIdentifier, hook.id, window);
    $("send-status").textContent = jobText(job);
    const jobId = job && (job.jobId || job.id);
    if (jobId && has("GET /{id}/job/{jobId}")) pollJob(label, jobId);
  } catch (err) {
    if (err instanceof ApiError && err.errors.length) {
      showProblem(err, [[/^since$/, "window-since"], [/^until$/, "window-until"]], $("send-status"));
    } else {
      $("send-status").textContent = `${label}: ${describe(err)}`;
    }
  }
}

// A recover/replay job as a sentence: its state, its counts, and the part of the window Kafka no longer holds.
function jobText(job) {
  if (!job || typeof job !== "object") return "";
  const parts = [`${job.kind ? `${job.kind[0].toUpperCase()}${job.kind.slice(1)} job` : "Job"} ${job.jobId || job.id || ""}: ${job.state || job.status || "accepted"}`];
  if (job.counts) parts.push(`considered ${job.counts.considered}, sent ${job.counts.sent}, skipped ${job.counts.skipped}`);
  if (job.missing) parts.push(`Kafka no longer holds ${when(job.missing.since)} to ${when(job.missing.until)}`);
  if (job.error) parts.push(job.error);
  return `${parts.join("; ")}.`;
}

async function pollJob(label, jobId) {
  const hook = state.current;
  for (let i = 0; i < 120 && state.current === hook; i += 1) {
    await new Promise((r) => setTimeout(r, JOB_POLL_MS));
    try {
      const job = await state.api.job(hook.ownerIdentifier, hook.id, jobId);
      $("send-status").textContent = jobText(job);
      const s = String(job.state || job.status || "");
      if (["done", "succeeded", "failed", "completed", "finished"].includes(s)) {
        loadDeliveries(true);
        loadChart();
        return;
      }
    } catch (err) {
      $("send-status").textContent = `${label}: ${describe(err)}`;
      return;
    }
  }
}

// --- wiring -----------------------------------------------------------------------------------------------

function wire() {
  $("sign-in-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await signIn($("token").value.trim());
  });
  $("dev-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const entity = $("dev-entity").value.trim();
    $("dev-entity-error").textContent = "";
    try {
      const { token } = await Api.mintDevToken(entity);
      await signIn(token);
    } catch (err) {
      $("dev-entity-error").textContent = describe(err);
    }
  });
  $("sign-out").addEventListener("click", signOut);
  $("account").addEventListener("change", async () => {
    state.account = $("account").value;
    state.current = null;
    show("list-view");
    await refreshList();
  });
  $("create").addEventListener("click", () => openForm(null, $("create")));
  $("webhook-form").addEventListener("submit", saveForm);
  $("form-cancel").addEventListener("click", () => { editing = null; closeForm(); });
  $("form-dialog").addEventListener("cancel", () => { editing = null; setTimeout(closeForm); });
  $("confirm-ok").addEventListener("click", confirmOk);
  $("confirm-cancel").addEventListener("click", confirmCancel);
  $("confirm-dialog").addEventListener("cancel", () => { confirmAction = null; });
  $("back").addEventListener("click", async () => {
    const id = state.current && state.current.id;
    state.current = null;
    show("list-view");
    await refreshList();
    const card = id && document.querySelector(`li[data-id="${CSS.escape(id)}"] button[aria-haspopup]`);
    (card || $("create")).focus();
  });
  $("secret-show").addEventListener("click", toggleSecret);
  $("secret-rotate").addEventListener("click", rotateSecret);
  for (const b of document.querySelectorAll("button.period")) {
    b.addEventListener("click", () => { state.period = b.dataset.period; renderChart(); });
  }
  $("test-form").addEventListener("submit", sendTest);
  $("recover").addEventListener("click", () => runWindow("recover"));
  $("replay").addEventListener("click", () => runWindow("replay"));
  $("delivery-filter").addEventListener("change", () => loadDeliveries(true));
  $("deliveries-refresh").addEventListener("click", () => { loadDeliveries(true); loadChart(); loadHealth(); });
  $("deliveries-more").addEventListener("click", () => loadDeliveries(false));
  $("resend").addEventListener("click", resend);
}

async function start() {
  wire();
  const [features, devTokens] = await Promise.all([Api.features(), Api.devTokens()]);
  state.features = features;
  $("dev-form").hidden = !devTokens;
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved && (await signIn(saved))) return;
  show("sign-in");
  document.body.dataset.ready = "true";
  $("token").focus();
}

start().finally(() => { document.body.dataset.ready = "true"; });
