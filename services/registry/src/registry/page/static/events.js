// The "Events" control: a searchable multi-select over the catalogue (`…/webhook/event/list`), grouped by
// category. Nothing chosen means every event, and the control says so.

import { el } from "./dom.js";

// `{value, label: "Category: Label"}` -> grouped entries (pure).
export function groupCatalogue(items) {
  const groups = new Map();
  for (const item of items) {
    const at = item.label.indexOf(": ");
    const category = at > 0 ? item.label.slice(0, at) : "Other";
    const label = at > 0 ? item.label.slice(at + 2) : item.label;
    if (!groups.has(category)) groups.set(category, []);
    groups.get(category).push({ value: item.value, label, category });
  }
  return groups;
}

export function matches(entry, query) {
  const q = query.trim().toLowerCase();
  if (!q) return true;
  return [entry.value, entry.label, entry.category].some((s) => s.toLowerCase().includes(q));
}

export class EventPicker {
  constructor({ search, options, chosen, summary }) {
    this.search = search;
    this.options = options;
    this.chosenList = chosen;
    this.summary = summary;
    this.groups = new Map();
    this.selected = [];
    this.search.addEventListener("input", () => this.filter());
    this.search.addEventListener("keydown", (ev) => {
      // Enter in the search box picks the first match instead of submitting the form.
      if (ev.key === "Enter") {
        ev.preventDefault();
        const first = this.options.querySelector("label:not([hidden]) input:not(:checked)");
        if (first) {
          first.checked = true;
          this.toggle(first.value, true);
        }
      }
    });
  }

  setCatalogue(items) {
    this.groups = groupCatalogue(items);
    this.options.replaceChildren();
    for (const [category, entries] of this.groups) {
      const id = `cat-${category.replace(/\W+/g, "-").toLowerCase()}`;
      const box = el("fieldset", { class: "category", "data-category": category });
      box.append(el("legend", { id }, category));
      for (const entry of entries) {
        const input = el("input", { type: "checkbox", value: entry.value });
        input.addEventListener("change", () => this.toggle(entry.value, input.checked));
        box.append(el("label", { class: "option", "data-value": entry.value }, input, ` ${entry.label} `, el("code", {}, entry.value)));
      }
      this.options.append(box);
    }
    this.render();
  }

  setSelected(values) {
    this.selected = [...values];
    this.search.value = "";
    this.filter();
    this.render();
  }

  value() {
    return [...this.selected];
  }

  toggle(value, on) {
    const has = this.selected.includes(value);
    if (on && !has) this.selected.push(value);
    if (!on && has) this.selected = this.selected.filter((v) => v !== value);
    this.render();
  }

  filter() {
    const q = this.search.value;
    let shown = 0;
    for (const box of this.options.querySelectorAll("fieldset")) {
      let any = false;
      for (const label of box.querySelectorAll("label.option")) {
        const entry = this.entry(label.dataset.value);
        const ok = matches(entry, q);
        label.hidden = !ok;
        any = any || ok;
        if (ok) shown += 1;
      }
      box.hidden = !any;
    }
    this.matchCount = shown;
    this.render();
  }

  entry(value) {
    for (const entries of this.groups.values()) {
      const found = entries.find((e) => e.value === value);
      if (found) return found;
    }
    return { value, label: value, category: "" };
  }

  render() {
    for (const input of this.options.querySelectorAll("input[type=checkbox]")) {
      input.checked = this.selected.includes(input.value);
    }
    this.chosenList.replaceChildren();
    for (const value of this.selected) {
      const remove = el("button", { type: "button", class: "chip-remove", "aria-label": `Remove ${value}` }, "×");
      remove.addEventListener("click", () => {
        this.toggle(value, false);
        this.search.focus();
      });
      this.chosenList.append(el("li", { class: "chip" }, el("code", {}, value), remove));
    }
    const n = this.selected.length;
    let text = n === 0
      ? "No events chosen: this webhook receives all events."
      : `${n} event${n === 1 ? "" : "s"} chosen.`;
    if (this.search.value.trim()) text += ` ${this.matchCount} match${this.matchCount === 1 ? "" : "es"} "${this.search.value.trim()}".`;
    this.summary.textContent = text;
  }
}
