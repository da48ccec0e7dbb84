"""Running the services as child processes, written once for `make run`, the tests, the benches and
`make chaos`: `procs` (one process: start, readiness, stop), `supervise` (restart with backoff),
`ports`, `lines` (output cut into lines, however long), `services` (how each of our services says it
is ready), `router_worker`, `pids`, `topic_tap` (a topic read in the background). It never imports a
service; only `topic_tap` needs more than the standard library (aiokafka, webhooks_common)."""
