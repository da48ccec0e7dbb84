"""Dead letters: which ones to re-drive and the fresh task each one becomes (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from webhooks_common.models import DeadLetter, DeliveryTask


@dataclass(frozen=True)
class Selection:
    """Which dead letters to re-drive; every given criterion must hold. `everything` must be explicit."""

    everything: bool = False
    webhook_id: str | None = None
    entity_id: str | None = None
    task_id: str | None = None
    since_ms: int | None = None

    @property
    def empty(self) -> bool:
        return not (self.everything or self.webhook_id or self.entity_id or self.task_id or self.since_ms)

    def matches(self, dead: DeadLetter) -> bool:
        t = dead.task
        return (
            (self.webhook_id is None or t.webhook_id == self.webhook_id)
            and (self.entity_id is None or t.entity_id == self.entity_id)
            and (self.task_id is None or t.task_id == self.task_id)
            and (self.since_ms is None or dead.dead_at_ms >= self.since_ms)
        )


def redrive_task(dead: DeadLetter, now_ms: int) -> DeliveryTask:
    """The dead task, due now with a full retry budget again (attempt 1).

    The task id, and so the `webhook-id` header, stays the same: a receiver that already processed it
    can tell. The history is kept so the delivery log still shows the earlier attempts; `entered_at_ms`
    restarts so the deliverer's grace for a config it has not seen yet counts from the re-drive.
    """
    return dead.task.model_copy(update={"attempt": 1, "due_at_ms": 0, "entered_at_ms": now_ms})


def latest_per_task(dead: list[DeadLetter]) -> list[DeadLetter]:
    """One dead letter per task (the last one): a task re-driven and dead again shows up twice."""
    by_task: dict[str, DeadLetter] = {}
    for d in dead:
        by_task[d.task.task_id] = d
    return list(by_task.values())
