"""Logging set-up, once per process.

Components log JSON lines (one object per line) to their log file, or
human-readable lines when writing to a terminal. Bind `component`, `node`
and object keys on the logger, never format them into the message.

`configure` also turns on the blocking-call check of kubemu.aiodebug when the
environment asks for it (the test suite does), since every component calls it
once at start.
"""
from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from kubemu import aiodebug, fileutil


def configure(component: str, *, log_file: str | None = None, level: str = "info",
              node: str | None = None) -> structlog.stdlib.BoundLogger:
    stream: TextIO = (open(fileutil.private_file(log_file), "a", buffering=1) if log_file
                      else sys.stderr)
    human = stream.isatty()
    renderer = (structlog.dev.ConsoleRenderer(colors=False) if human
                else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    context = {"component": component}
    if node:
        context["node"] = node
    structlog.contextvars.bind_contextvars(**context)
    logger = structlog.get_logger()
    aiodebug.from_environment(f"{component}{'/' + node if node else ''}", log=logger.error)
    return logger
