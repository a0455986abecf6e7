"""structlog, configured once: JSON when not a TTY, ``call_id``/``channel`` bound per call."""

from __future__ import annotations

import logging
import sys
from typing import Literal

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


def configure_logging(level: str = "info", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    """Route structlog and stdlib logging (aiohttp, redis) to stderr in one format."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=(
            [*shared, structlog.processors.format_exc_info, mask_personal_data, renderer]
            if use_json
            else [*shared, mask_personal_data, renderer]
        ),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=max(_LEVELS[level], logging.INFO), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    # aiohttp's access log would print every request path; our API logs what matters itself.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
