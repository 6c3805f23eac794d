"""Events on a real apiserver over a real etcd: --event-ttl expires them
through etcd leases (watchers see them go), and a repeated event recorded by
kubemu.client.events.EventRecorder is one Event whose count `get events` and
`describe` show."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys

import pytest

from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.client.clientset import Client
from kubemu.client.events import WARNING, EventRecorder
from kubemu.client.wait import wait_for
from tests.builders import configmap, make_pod
from tests.support import REPO, APIServerProc

EVENT_TTL = "2s"
WAIT_S = 20.0


@pytest.fixture
async def short_ttl(tmp_path, etcd):
    server = await APIServerProc(tmp_path, etcd.endpoint, "--event-ttl", EVENT_TTL).astart()
    try:
        async with Client(server.address, timeout_s=10.0) as client:
            yield client
    finally:
        await server.astop()


def event(name: str):
    return codec.from_dict(REGISTRY.by_resource("events").message, {
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web"},
        "reason": "Started", "message": "Started container web", "type": "Normal",
        "count": 1, "source": {"component": "kubelet"}})


async def test_an_event_expires_after_the_event_ttl(short_ttl):
    client = short_ttl
    created = await client.create(event("web.1"))
    await client.create(configmap("kept"))

    async def watch_delete():
        async with contextlib.aclosing(client.watch(
                "events", "default", resource_version=created.metadata.resource_version,
                timeout_s=WAIT_S)) as stream:
            async for change in stream:
                if change.type == "DELETED":
                    return change.object.metadata.name
        return None
    watched = asyncio.create_task(watch_delete())

    async def gone():
        try:
            await client.get("events", "web.1", "default")
            return False
        except errors.NotFound:
            return True
    await wait_for(gone, WAIT_S, interval_s=0.2, message="the event expired")
    assert await asyncio.wait_for(watched, WAIT_S) == "web.1"
    assert (await client.list("events", "default")).items == []
    assert (await client.get("configmaps", "kept", "default")).metadata.name == "kept"


def kubemu(home, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubemu.cli.main", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=dict(os.environ))


async def test_a_repeated_event_is_one_event_with_a_count(client, apiserver, etcd, tmp_path):
    pod = await client.create(make_pod("web").build())
    recorder = EventRecorder(client, "kubelet", host="node-1")
    recorder.start()
    try:
        for _ in range(3):
            recorder.record(pod, WARNING, "BackOff", "Back-off restarting failed container web "
                            "in pod web_default(uid)", field_path="spec.containers{web}")
        await recorder.flush(WAIT_S)
    finally:
        await recorder.stop()
    [stored] = (await client.list("events", "default")).items
    assert stored.count == 3

    home = tmp_path / "home"
    home.mkdir()
    (home / "kubeconfig.json").write_text(json.dumps(
        {"apiserver": apiserver.address, "etcd": [etcd.endpoint]}))
    listed = await asyncio.to_thread(kubemu, home, "get", "events")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    # get's LAST SEEN is the last time alone (printEvent); "(x3 over ...)" is
    # describe's and `kubectl events`', and COUNT is in -o wide.
    assert row.split()[1:4] == ["Warning", "BackOff", "pod/web"]
    wide = await asyncio.to_thread(kubemu, home, "get", "events", "-o", "wide")
    assert wide.returncode == 0, wide.stderr
    assert wide.stdout.splitlines()[1].split()[-2:] == ["3", stored.metadata.name]
    described = await asyncio.to_thread(kubemu, home, "describe", "pod", "web")
    assert described.returncode == 0, described.stderr
    [line] = [x for x in described.stdout.splitlines() if "BackOff" in x]
    assert "(x3 over" in line and line.split()[-1] == "web_default(uid)", line
