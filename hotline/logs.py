"""structlog, configured once: readable lines (coloured) on a terminal, JSON otherwise;
``call_id``/``channel`` bound per call."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any, Literal

import structlog

from common.privacy import mask_fallback_names

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def mask_personal_data(_logger: object, _method: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
    """No whole caller number in a log line: the old fallback message names carry one (the
    values call sites mask themselves, callers and names, are masked where they are logged)."""
    for key, value in event.items():
        if isinstance(value, str) and "fb-" in value:
            event[key] = mask_fallback_names(value)
    return event


def json_line(event: Any, *, default: Callable[[Any], Any] | None = None, **_: Any) -> str:
    """One JSON line, UTF-8 as it is (``ensure_ascii=False``), values JSON has no type for through
    ``default``. ``json.dumps``'s own separators (``", "``, ``": "``) are kept on purpose: log
    readers and the tests match ``"key": "value"``; pydantic-core's compact output, a third faster
    per line (15.9 → 11.1 µs), broke them and is not worth it."""
    return json.dumps(event, ensure_ascii=False, default=default)


LogFormat = Literal["auto", "json", "console"]


def chosen_format(fmt: LogFormat, stderr_is_tty: bool) -> Literal["json", "console"]:
    """``auto``: readable lines on a terminal (``make run``, ``hotline12345 stack``: the
    controllers run in its process, on its stderr), JSON for a supervisor, a pipe or a file."""
    if fmt == "auto":
        return "console" if stderr_is_tty else "json"
    return fmt


def log_processors(fmt: Literal["json", "console"], colors: bool) -> list[structlog.types.Processor]:
    """The processor chain: masking runs before the renderer, in either format; colours only
    where asked (a terminal), never in JSON."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        return [
            *shared,
            structlog.processors.format_exc_info,
            mask_personal_data,
            structlog.processors.JSONRenderer(serializer=json_line),
        ]
    return [*shared, mask_personal_data, structlog.dev.ConsoleRenderer(colors=colors)]


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Route structlog and stdlib logging (aiohttp, redis) to stderr in one format."""
    tty = sys.stderr.isatty()
    structlog.configure(
        processors=log_processors(chosen_format(fmt, tty), colors=tty),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # a module's logger is built once, at its first line after this (not on every line)
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=max(_LEVELS[level], logging.INFO), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    # aiohttp's access log would print every request path; our API logs what matters itself.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
