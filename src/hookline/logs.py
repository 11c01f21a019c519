"""Logging: structlog, JSON lines on stderr (or readable lines on a terminal).

hookline's own lines go through structlog at the configured level. Lines of the libraries underneath
(uvicorn, SQLAlchemy, the database drivers, HTTP clients) are rendered the same way, so every line of a
process is one JSON object, but never below INFO, and the chattiest never below WARNING: their debug lines
quote SQL parameters and URLs, which can hold secrets, signing keys and header values.
"""

from __future__ import annotations

import logging
import sys

import structlog

# Libraries whose INFO lines are noise or may quote what they send (statements, parameters, URLs).
QUIET = ("aiosqlite", "asyncpg", "sqlalchemy", "alembic", "httpx", "httpcore", "websockets", "hpack")


def configure_logging(level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    # Plain tracebacks: rich's would print local variables, and those can hold keys and secrets.
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamper,
                structlog.processors.format_exc_info,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    for name in QUIET:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
