"""`kubemu port-forward` end to end: local port -> CLI -> apiserver (PodPortForward)
-> the pod's kubelet (PortForward) -> the pod's IP, on a real one-node cluster
(tests/e2e/test_kubelet.py's harness, a cluster of this module's own), with an
nginx pod answering HTTP on port 80 of its pod IP.
"""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (REPO, ClusterThread, cli, create_pod, obj, pod_doc,
                                    Seen, is_ready, serving, wait_pod)

pytestmark = pytest.mark.e2e

FORWARD_WAIT_S = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("portforward-home")))


class PortForward:
    """`kubemu port-forward ...` running; its output lines collected by threads."""

    def __init__(self, cluster: ClusterThread, *args: str):
        env = dict(os.environ, KUBEMU_HOME=str(cluster.home))
        self.proc = subprocess.Popen([sys.executable, "-m", "kubemu.cli.main", "port-forward",
                                      *args], env=env, cwd=REPO, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out),
                                         daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err),
                                         daemon=True)]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    async def local_port(self) -> int:
        def forwarding():
            found = [re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+$", line)
                     for line in self.out]
            found = [m for m in found if m]
            if self.proc.poll() is not None:
                raise AssertionError(f"port-forward ended: {self.out} {self.err}")
            return int(found[0].group(1)) if found else None
        return await wait_for(forwarding, FORWARD_WAIT_S, interval_s=0.05,
                              message="the Forwarding line")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        for reader in self.readers:
            reader.join(5)
        return code

    async def astop(self) -> int:
        return await asyncio.to_thread(self.stop)


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, ""


async def nginx_pod(api, ns: str, name: str = "web", labels: dict | None = None) -> dict:
    doc = pod_doc(name, ns, [{"name": "nginx", "image": "nginx",
                              "ports": [{"name": "http", "containerPort": 80}]}])
    doc["metadata"]["labels"] = labels or {"app": name}
    await create_pod(api, doc)
    return await wait_pod(api, ns, name, is_ready)


async def test_port_forward_to_a_pod_carries_http_and_survives_a_refused_port(
        cluster, api, ns):
    await nginx_pod(api, ns)
    forward = PortForward(cluster, "-n", ns, "pod/web", ":80", ":81")
    try:
        port = await forward.local_port()
        status, body = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/")
        assert status == 200, body
        assert "nginx" in body.lower()
        assert f"Handling connection for {port}" in forward.out
        # Nothing listens on 81 in the pod: that connection fails, the forwarder stays.
        refused_port = int(next(re.match(r".*:(\d+) -> 81$", line).group(1)
                                for line in forward.out if line.endswith("-> 81")))
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            await asyncio.to_thread(fetch, f"http://127.0.0.1:{refused_port}/")
        def refused():
            found = [line for line in forward.err
                     if f"an error occurred forwarding {refused_port} -> 81" in line
                     and "connection refused" in line]
            return found or Seen(forward.err)
        await wait_for(refused, FORWARD_WAIT_S, message="the refused connection's error")
        status, _ = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/")
        assert status == 200
        assert forward.proc.poll() is None
    finally:
        assert await forward.astop() == 0, forward.err


async def test_port_forward_to_a_service_uses_its_target_port_in_a_selected_pod(
        cluster, api, ns):
    await nginx_pod(api, ns, "backend", {"app": "backend"})
    await api.create(obj({"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": "front", "namespace": ns},
                          "spec": {"selector": {"app": "backend"},
                                   "ports": [{"name": "web", "port": 8080,
                                              "targetPort": "http"}]}}))
    forward = PortForward(cluster, "-n", ns, "svc/front", "0:web")
    try:
        port = await forward.local_port()
        assert f"Forwarding from 127.0.0.1:{port} -> 80" in forward.out
        status, body = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/")
        assert status == 200, body
    finally:
        assert await forward.astop() == 0, forward.err


async def test_port_forward_to_a_replicaset_picks_a_pod_by_its_selector(cluster, api, ns):
    await nginx_pod(api, ns, "member", {"app": "member"})
    # No controller runs in this cluster: the ReplicaSet only lends its selector.
    await api.create(obj({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                          "metadata": {"name": "set", "namespace": ns},
                          "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "member"}},
                                   "template": {"metadata": {"labels": {"app": "member"}},
                                                "spec": {"containers": [
                                                    {"name": "nginx", "image": "nginx"}]}}}}))
    forward = PortForward(cluster, "-n", ns, "rs/set", ":http")
    try:
        port = await forward.local_port()
        status, _ = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/")
        assert status == 200
    finally:
        assert await forward.astop() == 0, forward.err


async def test_port_forward_ends_when_its_pod_is_deleted(cluster, api, ns):
    await nginx_pod(api, ns, "short")
    forward = PortForward(cluster, "-n", ns, "short", ":80")
    try:
        await forward.local_port()
        await api.delete("pods", "short", ns)
        code = await asyncio.to_thread(forward.proc.wait, FORWARD_WAIT_S)
        await asyncio.to_thread(forward.stop)
        assert code == 1
        assert forward.err == ["error: lost connection to pod"]
    finally:
        await forward.astop()


async def test_port_forward_to_a_pending_pod_is_refused_as_kubectl_refuses_it(cluster, api, ns):
    doc = pod_doc("waiting", ns, [{"name": "nginx", "image": "nginx"}])
    del doc["spec"]["nodeName"]  # no scheduler runs here: it stays Pending
    await create_pod(api, doc)
    done = await cli(cluster, "port-forward", "-n", ns, "waiting", "8080:80")
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: unable to forward port because pod is not running. "
                                   "Current status=Pending")
