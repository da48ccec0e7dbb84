"""A minimal faust app for the foundation test: counts words into a Table and reports the counts.

Run as `python -m tests.integration.apps.counter_app worker`, configured by environment: COUNTER_APP_ID,
COUNTER_IN_TOPIC, COUNTER_OUT_TOPIC, KAFKA_BOOTSTRAP_SERVERS, COUNTER_WEB_PORT, COUNTER_DATA_DIR.
For every word it reads it writes "word=count" to the out topic, the count read from the Table, so the
test sees whether the Table's state survived a restart (recovered from its changelog).
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ["COUNTER_APP_ID"],
    broker=f"kafka://{os.environ.get('KAFKA_BOOTSTRAP_SERVERS', '127.0.0.1:9092')}",
    store="memory://",
    web_port=int(os.environ.get("COUNTER_WEB_PORT", "6066")),
    web_enabled=False,
    datadir=os.environ.get("COUNTER_DATA_DIR", "/tmp/counter-app"),
    topic_partitions=1,
    topic_replication_factor=1,
    producer_acks=-1,
    broker_commit_every=1,
    broker_commit_interval=0.1,
    # The killed worker stays a group member until its session times out; keep that short for the test.
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
)

words = app.topic(os.environ["COUNTER_IN_TOPIC"], key_type=str, value_type=str, partitions=1)
out = app.topic(os.environ["COUNTER_OUT_TOPIC"], key_type=str, value_type=str, partitions=1)
counts = app.Table("counts", default=int, partitions=1)


@app.agent(words)
async def count(stream: faust.StreamT[str]) -> None:
    async for word in stream:
        counts[word] += 1
        await out.send(key=word, value=f"{word}={counts[word]}")


if __name__ == "__main__":
    app.main()
