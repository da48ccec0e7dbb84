"""`python -m router`: one router worker (SIGTERM/SIGINT stop it gracefully)."""

from __future__ import annotations

from faust import Worker

from router.app import build_app
from router.settings import RouterSettings
from webhooks_common.gc_tuning import tune_gc
from webhooks_common.settings import load_settings


def main() -> None:
    settings = load_settings(RouterSettings)
    app = build_app(settings)
    tune_gc(settings.gc_threshold)
    worker = Worker(
        app,
        loglevel=settings.log_level,
        logging_config=_logging_config(settings.log_level, settings.log_format),
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()


def _logging_config(level: str, fmt: str) -> dict[str, object]:
    formatter: dict[str, object] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "static_fields": {"service": "router"},
        }
        if fmt == "json"
        else {"format": "%(asctime)s router %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {"aiokafka": {"level": "WARNING"}},
    }


if __name__ == "__main__":
    main()
