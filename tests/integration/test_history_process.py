"""`python -m registry history` as deployed: it gives way to delivery on shared cores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from tests.servers import Servers
from webhooks_common.topics import Topics
from webhooks_devtools.ports import free_port
from webhooks_devtools.procs import Proc
from webhooks_devtools.services import readyz


def _nice(pid: int) -> int:
    # /proc/<pid>/stat: field 19 is the niceness; split after the command name, which may hold spaces
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


async def test_the_history_process_lowers_its_own_priority(
    servers: Servers, topics: Topics, uid: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "KAFKA_TOPIC_PREFIX": topics.prefix,
        "MONGO_URL": servers.mongo_url.rsplit("/", 1)[0] + f"/h{uid}",
        "REGISTRY_HISTORY_HOST": "127.0.0.1",
        "REGISTRY_HISTORY_PORT": str(port),
        "REGISTRY_HISTORY_NICE": "7",
        "WEBHOOK_SECRETS_KEY": Fernet.generate_key().decode(),
        "AUTH_JWT_SECRET": "history-process-test-secret-of-32-bytes",
    }
    proc = Proc(
        "history",
        [sys.executable, "-m", "registry", "history"],
        env,
        cwd=tmp_path,
        log_path=tmp_path / "history.log",
        ready=readyz(port),
    )
    proc.start()
    try:
        await proc.wait_ready(60)
        assert proc.pid is not None
        assert _nice(proc.pid) == min(19, os.nice(0) + 7)
    finally:
        await proc.stop(10)
