"""Shared fixtures: real etcd and apiserver processes in per-test directories
(for tests that need a store or apiserver of their own), kubemu.testing's
plugin (a shared cluster and a namespace per test), and the suite's debug mode.

Debug mode (kubemu.aiodebug): every event loop of the test process and of
every component process the tests start reports a callback that blocks it
for more than SLOW_CALLBACK_MS (CPU-bound or waiting in the kernel; being
preempted by a loaded machine does not count). Reports go to one file per
pytest worker; a test during which a report arrived fails, naming the process
and the callback. `KUBEMU_SLOW_CALLBACK_MS=0` in the environment turns it off.
"""
from __future__ import annotations

import os
import pathlib
import tempfile

import pytest
import structlog

from kubemu import aiodebug, grpcaio
from tests.support import APIServerProc, Etcd

# pytester: the plugin's own tests run pytest in pytest. kubemu.testing: the
# shared cluster (shape in pyproject.toml) and kubemu_* fixtures of the tests
# that moved onto it, so the public plugin runs in every run of the suite.
pytest_plugins = ["pytester", "kubemu.testing"]

SLOW_CALLBACK_MS = 100
_uninstall = None


def pytest_configure(config):
    global _uninstall
    # structlog's default console renderer draws tracebacks with rich, which
    # takes a few hundred ms of CPU per exception logged in this process.
    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
        structlog.dev.ConsoleRenderer(colors=False,
                                      exception_formatter=structlog.dev.plain_traceback)])
    grpcaio.keep_initialized()  # the tests' own channels come and go
    threshold = os.environ.get(aiodebug.THRESHOLD_ENV, str(SLOW_CALLBACK_MS))
    if float(threshold) <= 0:
        os.environ.pop(aiodebug.THRESHOLD_ENV, None)
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    fd, report = tempfile.mkstemp(prefix=f"kubemu-slow-callbacks-{worker}-", suffix=".jsonl")
    os.close(fd)
    os.environ[aiodebug.THRESHOLD_ENV] = threshold
    os.environ[aiodebug.REPORT_ENV] = report
    _uninstall = aiodebug.install(float(threshold),
                                  lambda slow: aiodebug.append_report(report, slow),
                                  process="pytest")


def pytest_unconfigure(config):
    report = os.environ.get(aiodebug.REPORT_ENV, "")
    if _uninstall is not None:
        _uninstall()
    if report:
        pathlib.Path(report).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def no_blocking_calls_in_event_loops(request):
    """Fail the test if any event loop was blocked while it ran."""
    report = os.environ.get(aiodebug.REPORT_ENV, "")
    if not report or request.node.get_closest_marker("blocks_event_loop"):
        yield
        return
    path = pathlib.Path(report)
    start = path.stat().st_size if path.exists() else 0
    yield
    if not path.exists() or path.stat().st_size <= start:
        return
    with open(path, encoding="utf-8") as f:
        f.seek(start)
        lines = [line for line in f.read().splitlines() if line.strip()]
    if lines:
        import json

        found = [str(aiodebug.SlowCallback(**json.loads(line))) for line in lines[:10]]
        pytest.fail("an event loop was blocked (kubemu.aiodebug):\n  " + "\n  ".join(found),
                    pytrace=False)


@pytest.fixture
def etcd(tmp_path):
    server = Etcd(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def apiserver(tmp_path, etcd):
    server = APIServerProc(tmp_path, etcd.endpoint).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(apiserver):
    from kubemu.client.clientset import Client

    c = Client(apiserver.address, timeout_s=10.0)
    try:
        yield c
    finally:
        await c.close()
