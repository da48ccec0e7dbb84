"""whctl's tables at 80 columns: ids, event types and URLs are never cut with "…"; `webhooks update`
sends only what was asked to change."""

from __future__ import annotations

import io

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from webhooks_cli.main import WEBHOOK_COLS, cli, update_patch
from webhooks_cli.tables import Col, fitted, kept_columns
from webhooks_common.catalog import catalog

HOOK_ID = "0b6f3a52-9c1e-4f7d-8a43-5d2e1c9b7a10"
URL = "https://hooks.example-receiver.com/wink/webhooks/booking-events"
EVENTS = "booking.refund.partial\nmanaging_entity.subscription.provisioned"


def render(table: object, width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width, highlight=False).print(table)
    return out.getvalue()


def hook_rows() -> tuple[list[Col], list[list[str]]]:
    return WEBHOOK_COLS, [[HOOK_ID, "Wink Stalker", "True", URL, EVENTS, "3"]]


def test_a_webhook_row_keeps_its_id_url_and_event_types_whole_at_80_columns() -> None:
    cols, rows = hook_rows()
    text = render(fitted(cols, rows, 80)[0])
    assert "…" not in text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    for value in (HOOK_ID, URL, "booking.refund.partial", "managing_entity.subscription.provisioned"):
        assert any(value in line for line in lines), value  # whole, on one line
    assert "Wink Stalker" in text  # nothing left out: too narrow for a row, so a block per webhook


def test_a_wide_terminal_shows_one_row_per_webhook() -> None:
    cols, rows = hook_rows()
    table, left_out = fitted(cols, rows, 200)
    text = render(table, 200)
    assert left_out == [] and "…" not in text
    assert any(HOOK_ID in line and URL in line for line in text.splitlines())


def test_plain_rich_tables_cut_the_id_this_module_exists_for() -> None:
    from rich.table import Table

    cols, rows = hook_rows()
    plain = Table(*(c.name for c in cols))
    plain.add_row(*rows[0])
    assert "…" in render(plain)  # the defect: at 80 columns rich shortens cells with an ellipsis


def test_columns_are_dropped_least_important_first_and_only_when_needed() -> None:
    cols, rows = hook_rows()
    assert kept_columns(cols, rows, 400) == [0, 1, 2, 3, 4, 5]
    kept = kept_columns(cols, rows, 150)
    assert 5 not in kept and {0, 3, 4} <= set(kept)  # version goes first
    assert set(kept_columns(cols, rows, 40)) == {0, 3, 4}  # copy columns stay even when too wide


def test_whctl_events_never_cuts_an_event_type_in_an_80_column_terminal() -> None:
    result = CliRunner().invoke(cli, ["events"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    lines = result.output.splitlines()
    for entry in catalog():
        assert any(entry.key in line for line in lines), entry.key


def test_whctl_settings_never_cuts_a_variable_name_at_80_columns() -> None:
    result = CliRunner().invoke(cli, ["settings"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert "REGISTRY_MAX_WEBHOOKS_PER_ENTITY" in result.output


def test_update_sends_only_what_was_asked() -> None:
    assert update_patch(None, None, (), False, False, "e", None) == {"enabled": False}
    assert update_patch("N", "https://x.example", ("a.b",), False, None, "e", "E") == {
        "name": "N",
        "eventUrl": "https://x.example",
        "eventList": ["a.b"],
        "entity": {"identifier": "e", "name": "E"},
    }
    assert update_patch(None, None, (), True, True, "e", None) == {"eventList": [], "enabled": True}
    with pytest.raises(click.UsageError):
        update_patch(None, None, (), False, None, "e", None)
    with pytest.raises(click.UsageError):
        update_patch(None, None, ("a.b",), True, None, "e", None)
