"""The configuration table of every service, generated from the settings classes (`whctl settings`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from webhooks_cli.settings import CliSettings
from webhooks_common.settings import CommonSettings

# Each service declares its settings class as an entry point of this group in its pyproject.toml, so this
# library names no service (dependencies run from the services to the libraries, never back): the table
# lists whatever is installed, and a service that is not installed only drops its rows.
ENTRY_POINT_GROUP = "webhooks.settings"


@dataclass(frozen=True)
class Row:
    variable: str
    default: str
    service: str
    description: str


def env_name(cls: type[Any], name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    prefix = cls.model_config.get("env_prefix", "") or ""
    return f"{prefix}{name}".upper()


def default_text(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "(required)" if field.default_factory is None else "(computed)"
    if field.default is None:
        return "(unset)"
    if isinstance(field.default, bool):
        return str(field.default).lower()
    return str(field.default)


def rows_for(service: str, cls: type[Any], skip: set[str]) -> list[Row]:
    rows = []
    for name, field in cls.model_fields.items():
        var = env_name(cls, name, field)
        if var in skip:
            continue
        rows.append(Row(var, default_text(field), service, " ".join((field.description or "").split())))
    return rows


def sources() -> Iterator[tuple[str, type[Any]]]:
    """(who reads it, settings class): the common fields, each installed service by name, then whctl's."""
    yield "all services", CommonSettings
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            yield ep.name, ep.load()
        except ImportError:
            continue
    yield "whctl, make run", CliSettings


def all_rows() -> list[Row]:
    rows: list[Row] = []
    common = set(CommonSettings.model_fields)
    seen: set[str] = set()
    for service, cls in sources():
        own = [n for n in cls.model_fields if cls is CommonSettings or n not in common]
        names = {env_name(cls, n, cls.model_fields[n]) for n in own}
        # A name several services read (AUTH_JWT_SECRET: registry, whctl) is listed once, by its first reader.
        new = [r for r in rows_for(service, cls, seen) if r.variable in names]
        seen.update(r.variable for r in new)
        rows.extend(new)
    return rows


def markdown(rows: list[Row]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| Variable | Default | Read by | Description |", "|---|---|---|---|"]
    lines += [f"| `{r.variable}` | `{cell(r.default)}` | {r.service} | {cell(r.description)} |" for r in rows]
    return "\n".join(lines) + "\n"
