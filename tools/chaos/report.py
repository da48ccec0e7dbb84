"""What a chaos or soak result means (pure): the list of problems (empty = passed) and the Markdown report."""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"


def chaos_verdict(r: dict[str, Any]) -> list[str]:
    """Everything the run must show; each failed expectation is one line."""
    problems: list[str] = []
    if r["events_expected"] == 0:
        problems.append("no event was accepted by Kafka")
    if r["lost"]:
        problems.append(f"{r['lost']} events lost (accepted by Kafka, never delivered)")
    if r["dead_letters"]:
        problems.append(f"{r['dead_letters']} tasks dead-lettered")
    for f in r["faults"]:
        if f["recovered_at"] is None:
            problems.append(
                f"{f['name']}: no recovery within the deadline ({f['detail'].get('not_recovered')})"
            )
        if f["unplanned_exits"]:
            problems.append(f"{f['name']}: {'; '.join(f['unplanned_exits'])}")
        if f["name"].startswith("FerretDB"):
            problems += _ferretdb_problems(f)
        if f["name"].startswith("SIGKILL the registry"):
            problems += _lease_problems(f)
    return problems


def _lease_problems(f: dict[str, Any]) -> list[str]:
    d = f["detail"]
    if "lease_holders_before" in d:
        return [f"{f['name']}: {len(d['lease_holders_before'])} registries held the lease, not 1: {d}"]
    if d.get("create_status") != 201:
        return [f"{f['name']}: a create through another registry answered {d}"]
    if d.get("published_after_s") is None:
        return [f"{f['name']}: the change made through {d.get('create_via')} never reached the routers: {d}"]
    return []


def _ferretdb_problems(f: dict[str, Any]) -> list[str]:
    d = f["detail"]
    out: list[str] = []
    for what in ("list_during_outage", "create_during_outage"):
        got = d.get(what) or {}
        if got.get("status") != 503 or got.get("content_type") != PROBLEM_JSON:
            out.append(f"registry {what.replace('_', ' ')}: {got} (want 503 {PROBLEM_JSON})")
    if d.get("readyz_during_outage") != 503:
        out.append(f"registry /readyz during the outage answered {d.get('readyz_during_outage')}, not 503")
    if not d.get("delivered_during_outage"):
        out.append("no delivery while the database was down: delivery must go on from Kafka")
    if d.get("registry_ready_after_s") is None:
        out.append("the registry did not become ready again after the database came back")
    if d.get("create_after_outage") != 201:
        out.append(f"creating a webhook after the outage answered {d.get('create_after_outage')}, not 201")
    return out


def soak_verdict(r: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if r["valid_lost"]:
        problems.append(f"{r['valid_lost']} valid events not delivered")
    if r["bad_missing"]:
        problems.append(f"{r['bad_missing']} malformed records not on the invalid topic")
    if r["unexpected_invalid"]:
        problems.append(f"{r['unexpected_invalid']} records on the invalid topic that were not sent as bad")
    if r["restarts"]:
        problems.append(f"service restarts during the soak: {r['restarts']}")
    if r.get("valid_command_applied", True) is not True:  # (older results have no such check)
        problems.append("a valid command sent after the malformed ones was not applied by the registry")
    if r.get("unplanned_exits"):
        problems.append(f"process exits nobody caused: {r['unplanned_exits']}")
    problems += _internal_problems(r)
    for name, m in r["rss"].items():
        if m.get("growth_mb") is not None and m["growth_mb"] > r["config"]["rss_growth_limit_mb"]:
            problems.append(
                f"{name} RSS grew {m['growth_mb']} MB (limit {r['config']['rss_growth_limit_mb']})"
            )
    return problems


def _internal_problems(r: dict[str, Any]) -> list[str]:
    """The internal topics: each malformed record set aside the way its consumer does it (bad_records.py)."""
    problems: list[str] = []
    for topic, row in r.get("by_topic", {}).items():
        way, sent, seen = row["set_aside_by"], row["sent"], row["on_invalid"]
        if way == "invalid" and seen != sent:
            problems.append(f"{topic}: {sent - seen} of {sent} malformed records not on webhooks.invalid")
        elif way == "none" and seen not in (0, sent):
            problems.append(f"{topic}: only {seen} of {sent} malformed records set aside (all or none)")
    expected = r.get("config_bad_expected")
    if expected is not None:
        skips = r.get("config_skipped", {})
        if not skips:
            problems.append("no config view was asked for its skipped records")
        for process, got in skips.items():
            if got != expected:
                problems.append(f"{process}'s config view skipped {got}, expected {expected}")
    return problems


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def render(chaos: dict[str, Any] | None, soak: dict[str, Any] | None) -> str:
    out = [
        "# Chaos and bad-input soak",
        "",
        "Generated by `make chaos` / `make soak` (tools/chaos) from bench/results/chaos.json and",
        "bench/results/soak.json. Everything runs on a private Kafka + FerretDB pair started for the run,",
        "with the real services (`python -m registry|router|deliverer`) as supervised subprocesses and",
        "loopback receivers counting deliveries by `webhook-id`.",
        "",
    ]
    if chaos:
        out += render_chaos(chaos)
    if soak:
        out += render_soak(soak)
    return "\n".join(out) + "\n"


def render_chaos(r: dict[str, Any]) -> list[str]:
    c = r["config"]
    verdict = r.get("verdict", [])
    lines = [
        f"## Faults under load ({r['started_at']}, {r['duration_s']} s)",
        "",
        f"{r['webhooks']} webhooks created through the registry API; {r['events_scheduled']} events at "
        f"{c['rate']}/s on the input topic; {c.get('registries', 1)} registries, {c['routers']} routers, "
        f"{c['deliverers']} deliverers; "
        f"deliverer retry schedule `{c['retry_schedule']}`; session timeouts {c['session_timeout_s']} s.",
        "",
        "| result | value |",
        "|---|---|",
        _row(["events expected (accepted by Kafka)", r["events_expected"]]),
        _row(["delivered at least once", r["delivered_at_least_once"]]),
        _row(["**lost**", f"**{r['lost']}**"]),
        _row(["duplicates (same webhook-id delivered again)", r["duplicates"]]),
        _row(["dead letters", r["dead_letters"]]),
        _row(["500s answered by failing receivers", r["answered_500"]]),
        _row(["producer re-sends (broker away)", r["producer_resends"]]),
        _row(["end-to-end latency (scheduled -> first 2xx)", _fmt_lat(r["latency_s"])]),
        _row(["process restarts (ours: kills)", ", ".join(f"{k} {v}" for k, v in r["restarts"].items())]),
        _row(["exits nobody caused (needed a hand)", r["unplanned_exits"] or "none"]),
        _row(["verdict", "; ".join(verdict) or "-"]),
        _row(["code", _code(r)]),
        "",
        "A fault has recovered when no accepted event older than "
        f"{c['lag_ok_s']} s is undelivered and every service",
        "answers ready; measured from the fault and from the heal (killed process restarted by the",
        "supervisor and ready, broker or database back, receivers answering 2xx again).",
        "",
        "| # | fault | outage s | recovered after s | max lag s | delivered during | needed a hand | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(r["faults"], 1):
        hand = "yes: " + "; ".join(f["unplanned_exits"]) if f["unplanned_exits"] else "no"
        if f["recovered_at"] is None:
            hand = "NOT RECOVERED"
        lines.append(
            _row(
                [
                    i,
                    f["name"],
                    f["outage_s"],
                    f["recovery_s"],
                    f["max_lag_s"],
                    f["delivered_during"],
                    hand,
                    _notes(f["detail"]) + ("" if f["under_load"] else " (load had ended)"),
                ]
            )
        )
    lines.append("")
    return lines


def _code(r: dict[str, Any]) -> str:
    code = r.get("code") or {}
    dirty = code.get("uncommitted") or []
    return f"{code.get('head', '?')}" + (
        f" + uncommitted: {', '.join(d[3:] for d in dirty)}" if dirty else ""
    )


def _notes(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()).replace("|", "/")


def _fmt_lat(lat: dict[str, float]) -> str:
    return ", ".join(f"{k} {v} s" for k, v in lat.items()) if lat else "-"


def render_soak(r: dict[str, Any]) -> list[str]:
    c = r["config"]
    lines = [
        f"## Bad-input soak ({r['started_at']}, {r['duration_s']} s)",
        "",
        f"{r['bad_sent']} malformed records interleaved with {r['valid_sent']} valid events on the input "
        f"topics at ~{c['rate']}/s; no faults. Every malformed record must appear on `webhooks.invalid`",
        "(counted by source partition and offset), every valid event must be delivered, no service may",
        f"restart, and RSS (sampled every {c['rss_every_s']} s) must stay flat (growth from the first",
        f"quarter of the run to the end under {c['rss_growth_limit_mb']} MB).",
        "",
        "| result | value |",
        "|---|---|",
        _row(["valid sent / delivered", f"{r['valid_sent']} / {r['valid_delivered']}"]),
        _row(["malformed sent / on webhooks.invalid", f"{r['bad_sent']} / {r['bad_seen']}"]),
        _row(["on webhooks.invalid but not sent as malformed", r["unexpected_invalid"]]),
        _row(["service restarts", r["restarts"] or "none"]),
        _row(["process exits nobody caused", r.get("unplanned_exits") or "none"]),
        _row(["valid command after the malformed ones applied", r.get("valid_command_applied", "-")]),
        _row(["verdict", "; ".join(r.get("verdict", [])) or "-"]),
        _row(["code", _code(r)]),
        "",
        "| kind sent | count | | reason on webhooks.invalid | count |",
        "|---|---|---|---|---|",
    ]
    kinds = sorted(r["bad_by_kind"].items())
    reasons = sorted(r["invalid_by_reason"].items())
    for i in range(max(len(kinds), len(reasons))):
        k = kinds[i] if i < len(kinds) else ("", "")
        why = reasons[i] if i < len(reasons) else ("", "")
        lines.append(_row([k[0], k[1], "", why[0], why[1]]))
    lines += _render_internal(r)
    lines += [
        "",
        "| process | RSS at 25% MB | at 50% | at 75% | peak | end | growth 25% -> end MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in sorted(r["rss"].items()):
        cells = [m.get(k, "-") for k in ("q1_mb", "q2_mb", "q3_mb", "peak_mb", "end_mb", "growth_mb")]
        lines.append(_row([name, *cells]))
    lines.append("")
    return lines


def _render_internal(r: dict[str, Any]) -> list[str]:
    if "by_topic" not in r:
        return []  # a result from before the internal topics were soaked
    how = {
        "invalid": "on webhooks.invalid",
        "skip_metric": "config views' skip metric",
        "none": "no consumer (harmless)",
    }
    lines = [
        "",
        f"{r['internal_sent']} malformed records on the internal topics, same run (kinds per family:",
        "; ".join(
            f"{family}: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
            for family, kinds in r["internal_by_kind"].items()
        )
        + ").",
        "",
        "| topic | malformed sent | set aside by | on webhooks.invalid |",
        "|---|---|---|---|",
    ]
    for topic, row in r["by_topic"].items():
        lines.append(_row([topic, row["sent"], how[row["set_aside_by"]], row["on_invalid"]]))
    expected = r.get("config_bad_expected", {})
    lines += [
        "",
        f"Config records skipped per process (expected {_fmt_counts(expected)}): "
        + "; ".join(f"{p} {_fmt_counts(got)}" for p, got in sorted(r.get("config_skipped", {}).items()))
        + ".",
    ]
    return lines


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
