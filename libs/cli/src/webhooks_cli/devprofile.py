"""The development profile of `make run`: which settings it adds, and the dev keys kept in `.infra/dev.env`.

Precedence (DESIGN.md): a variable set in the environment always wins, then `.env`, then the profile.
The two keys are generated once per checkout and kept in `.infra/dev.env` (git-ignored), so tokens and
stored signing secrets stay valid across restarts of `make run`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from dotenv import dotenv_values

DEV_ENV = Path(".infra") / "dev.env"
GENERATED = ("AUTH_JWT_SECRET", "WEBHOOK_SECRETS_KEY")
# Safe defaults are off everywhere; the development profile turns these on so that a receiver on
# http://127.0.0.1 works out of the box, the Webhooks page can mint a token, and logs are for people.
# Its servers listen on loopback only: a development stack has no business on every interface.
FIXED: dict[str, str] = {
    "REGISTRY_ALLOW_HTTP": "true",
    "DELIVERY_ALLOW_PRIVATE_TARGETS": "true",
    "REGISTRY_DEV_TOKENS": "true",
    "REGISTRY_HOST": "127.0.0.1",
    "ROUTER_WEB_BIND": "127.0.0.1",
    "DELIVERER_METRICS_HOST": "127.0.0.1",
    "LOG_FORMAT": "text",
}

ENVIRONMENT, DOTENV, PROFILE = "environment", ".env", "dev profile"


@dataclass(frozen=True)
class Setting:
    name: str
    value: str
    origin: str  # ENVIRONMENT | DOTENV | PROFILE


def generate_dev_keys() -> dict[str, str]:
    return {
        "AUTH_JWT_SECRET": "dev-" + secrets.token_urlsafe(32),
        "WEBHOOK_SECRETS_KEY": Fernet.generate_key().decode(),
    }


def resolve(
    environ: Mapping[str, str], dotenv: Mapping[str, str | None], profile: Mapping[str, str]
) -> list[Setting]:
    """Where each profile setting comes from (pure): environment > .env > profile."""
    out = []
    for name, value in profile.items():
        if name in environ:
            out.append(Setting(name, environ[name], ENVIRONMENT))
        elif dotenv.get(name) is not None:
            out.append(Setting(name, str(dotenv[name]), DOTENV))
        else:
            out.append(Setting(name, value, PROFILE))
    return out


def child_env(environ: Mapping[str, str], resolved: list[Setting]) -> dict[str, str]:
    """The environment for the services: the caller's plus the profile's values that nobody overrode.

    `.env` values are not copied: the services read `.env` themselves (pydantic-settings).
    """
    env = dict(environ)
    env.update({s.name: s.value for s in resolved if s.origin == PROFILE})
    return env


def dev_env_path(root: Path | None = None) -> Path:
    """`WEBHOOKS_DEV_ENV`, else `.infra/dev.env` under `root`, else the first one found from the cwd up."""
    if os.environ.get("WEBHOOKS_DEV_ENV"):
        return Path(os.environ["WEBHOOKS_DEV_ENV"])
    if root is not None:
        return root / DEV_ENV
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / DEV_ENV).exists():
            return folder / DEV_ENV
    return here / DEV_ENV


def read_dev_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_or_create_dev_keys(path: Path) -> dict[str, str]:
    """The dev keys from `path`, generating (and storing) the ones that are missing."""
    keys = read_dev_env(path)
    missing = {k: v for k, v in generate_dev_keys().items() if k not in keys}
    if missing:
        keys.update(missing)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "# Development keys of `make run` (generated once; delete this file to get new ones).\n"
        body += "".join(f"{k}={keys[k]}\n" for k in sorted(keys))
        path.write_text(body)
        path.chmod(0o600)
    return keys


def profile(root: Path, environ: Mapping[str, str], dotenv: Mapping[str, str | None]) -> dict[str, str]:
    """The profile's values; touches `.infra/dev.env` only when a key is not set otherwise."""
    values = dict(FIXED)
    if all(k in environ or dotenv.get(k) is not None for k in GENERATED):
        values.update({k: "" for k in GENERATED})  # overridden anyway: no need to create the file
    else:
        keys = load_or_create_dev_keys(dev_env_path(root))
        values.update({k: keys[k] for k in GENERATED})
    return values
