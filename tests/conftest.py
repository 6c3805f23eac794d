"""Shared fixtures: real etcd and apiserver processes in per-test directories."""
from __future__ import annotations

import pytest

from tests.support import APIServerProc, Etcd


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
