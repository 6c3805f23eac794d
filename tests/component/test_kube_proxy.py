"""kube-proxy against a real etcd + apiserver, with Services and EndpointSlices made by hand.

Addresses (unique per test, so parallel tests never share a listener):
ClusterIPs in the standalone apiserver's service range 127.1.0.0/24 at a
random port, node IPs 127.0.255.x, backends on 127.255.x.y (no cluster's
block is 255). Backends are tiny asyncio servers: TCP ones send their name
on connect and echo lines; UDP ones answer "<name>:<datagram>".
"""
from __future__ import annotations

import asyncio
import random
import signal
import socket
import sys

import pytest

from kubemu.client.wait import wait_for
from tests.net_builders import endpoint, endpoint_slice, service
from tests.net_support import IO_TIMEOUT_S, Backends, ask, ask_many, read_metrics
from tests.support import Proc, free_port, wait_serving

WAIT_S = 20.0
_rng = random.Random()


def cluster_ip() -> str:
    return f"127.1.0.{_rng.randint(100, 250)}"


def service_port() -> int:
    return _rng.randint(20000, 29999)


def node_ip() -> str:
    return f"127.0.255.{_rng.randint(1, 254)}"


class KubeProxyProc:
    def __init__(self, workdir, apiserver: str, node: str, ip: str, *flags: str):
        self.health = f"127.0.0.1:{free_port()}"
        self.node = node
        self.ip = ip
        self.argv = [sys.executable, "-m", "kube_proxy", "--apiserver", apiserver,
                     "--node-name", node, "--node-ip", ip, "--health-listen", self.health,
                     "--connect-timeout-s", "0.5", "--drain-s", "1", "--sync-period-s", "2",
                     "--udp-timeout-s", "5", "--log-level", "debug", *flags]
        self.proc = Proc(self.argv, workdir / f"kube-proxy-{node}.log")

    async def start(self) -> "KubeProxyProc":
        def start() -> None:
            self.proc.start()
            try:
                wait_serving(self.health, self.proc)
            except BaseException:
                self.proc.stop()
                raise
        await asyncio.to_thread(start)
        return self

    async def stop(self) -> None:
        await asyncio.to_thread(self.proc.stop)

    async def kill(self) -> None:
        await asyncio.to_thread(self.proc.kill)

    async def metrics(self) -> dict:
        return await read_metrics(self.health)


@pytest.fixture
async def backends():
    b = Backends()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
async def proxy(tmp_path, apiserver):
    p = await KubeProxyProc(tmp_path, apiserver.address, "node-1", node_ip()).start()
    try:
        yield p
    finally:
        await p.stop()


def tcp_port(port: int, name: str = "http", **extra) -> dict:
    return {"name": name, "port": port, "protocol": "TCP", **extra}


async def make_service(client, name: str, cip: str, port: int, backend_port: int,
                       endpoints: list[dict], **spec):
    svc = await client.create(service(name, cip, [tcp_port(port, **spec.pop("port_extra", {}))],
                                      **spec))
    sl = None
    if endpoints is not None:
        sl = await client.create(endpoint_slice(f"{name}-1", name, endpoints,
                                                [tcp_port(backend_port)]))
    return svc, sl


async def test_traffic_reaches_only_ready_endpoints(client, proxy, backends):
    ips = await backends.start_tcp(3)
    cip, port = cluster_ip(), service_port()
    _, sl = await make_service(client, "web", cip, port, backends.port,
                               [endpoint(ips[0]), endpoint(ips[1]), endpoint(ips[2], ready=False)])
    await wait_for(lambda: ask(cip, port), WAIT_S)
    seen = await ask_many(cip, port, 12)
    assert set(seen) == {ips[0], ips[1]}, seen
    # The third becomes ready: it gets traffic too.
    sl.endpoints[2].conditions.ready = True
    await client.update(sl)

    async def all_three():
        return set(await ask_many(cip, port, 6)) == set(ips)
    await wait_for(all_three, WAIT_S)
    m = await proxy.metrics()
    stats = m["services"]["default/web"]
    assert stats["connections_total"] >= 18 and stats["bytes_out"] > 0, stats
    assert any(row["listener"] == f"{cip}:{port}/TCP" for row in m["listeners"]), m


async def test_no_ready_endpoints_refuses(client, proxy, backends):
    ips = await backends.start_tcp(1)
    cip, port = cluster_ip(), service_port()
    await make_service(client, "nothing", cip, port, backends.port,
                       [endpoint(ips[0], ready=False)])

    async def refused_counted():
        assert await ask(cip, port) == ""
        return (await proxy.metrics())["services"].get("default/nothing", {}).get("refused", 0)
    await wait_for(refused_counted, WAIT_S)


async def test_serving_terminating_fallback(client, proxy, backends):
    ips = await backends.start_tcp(2)
    cip, port = cluster_ip(), service_port()
    await make_service(client, "term", cip, port, backends.port,
                       [endpoint(ips[0], ready=False, serving=True, terminating=True),
                        endpoint(ips[1], ready=False, serving=False, terminating=True)])
    await wait_for(lambda: ask(cip, port), WAIT_S)
    assert set(await ask_many(cip, port, 6)) == {ips[0]}


async def test_failed_connect_retries_another_endpoint(client, proxy, backends):
    ips = await backends.start_tcp(3)
    await backends.stop_one(2)  # its address refuses connections
    cip, port = cluster_ip(), service_port()
    await make_service(client, "flaky", cip, port, backends.port,
                       [endpoint(ip) for ip in ips])
    await wait_for(lambda: ask(cip, port), WAIT_S)
    seen = await ask_many(cip, port, 9)
    assert "" not in seen and set(seen) == {ips[0], ips[2]}, seen
    stats = (await proxy.metrics())["services"]["default/flaky"]
    assert stats["connect_errors"] >= 1, stats


async def test_session_affinity_client_ip(client, proxy, backends):
    ips = await backends.start_tcp(3)
    cip, port = cluster_ip(), service_port()
    await make_service(client, "sticky", cip, port, backends.port,
                       [endpoint(ip) for ip in ips], sessionAffinity="ClientIP",
                       sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})
    first = await wait_for(lambda: ask(cip, port), WAIT_S)
    assert set(await ask_many(cip, port, 8)) == {first}


async def test_in_flight_connection_survives_endpoint_update(client, proxy, backends):
    ips = await backends.start_tcp(2)
    cip, port = cluster_ip(), service_port()
    _, sl = await make_service(client, "live", cip, port, backends.port, [endpoint(ips[0])])
    await wait_for(lambda: ask(cip, port), WAIT_S)
    async with asyncio.timeout(IO_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(cip, port)
        assert (await reader.readline()).decode().strip() == ips[0]
    # The only endpoint goes away; another one comes.
    del sl.endpoints[:]
    sl.endpoints.append(endpoint_slice("x", "live", [endpoint(ips[1])]).endpoints[0])
    await client.update(sl)

    async def moved():
        return await ask(cip, port) == ips[1]
    await wait_for(moved, WAIT_S)
    async with asyncio.timeout(IO_TIMEOUT_S):
        writer.write(b"still here\n")
        assert await reader.readline() == b"still here\n"
    writer.close()


async def test_nodeport_and_load_balancer_ip(client, proxy, backends):
    ips = await backends.start_tcp(1)
    cip, port = cluster_ip(), service_port()
    node_port = _rng.randint(30000, 32767)
    lb_ip = f"127.1.255.{_rng.randint(1, 254)}"
    svc, _ = await make_service(client, "ext", cip, port, backends.port, [endpoint(ips[0])],
                                type_="LoadBalancer", port_extra={"nodePort": node_port})
    svc.status.load_balancer.ingress.add(ip=lb_ip, ip_mode="VIP")
    await client.update_status(svc)
    assert await wait_for(lambda: ask(proxy.ip, node_port), WAIT_S) == ips[0]
    assert await wait_for(lambda: ask(lb_ip, port), WAIT_S) == ips[0]
    assert await ask(cip, port) == ips[0]


async def test_external_traffic_policy_local(client, proxy, backends):
    ips = await backends.start_tcp(2)
    cip, port = cluster_ip(), service_port()
    node_port = _rng.randint(30000, 32767)
    await make_service(client, "local", cip, port, backends.port,
                       [endpoint(ips[0], node="node-1"), endpoint(ips[1], node="node-2")],
                       type_="NodePort", externalTrafficPolicy="Local",
                       port_extra={"nodePort": node_port})
    await wait_for(lambda: ask(proxy.ip, node_port), WAIT_S)
    assert set(await ask_many(proxy.ip, node_port, 6)) == {ips[0]}
    assert set(await ask_many(cip, port, 6)) == set(ips)  # the ClusterIP is not Local


async def test_udp_echo_replies_from_service_address(client, proxy, backends):
    ips = await backends.start_udp(2)
    cip, port = cluster_ip(), service_port()
    await client.create(service("dns", cip, [{"name": "dns", "port": port, "protocol": "UDP"}]))
    await client.create(endpoint_slice("dns-1", "dns", [endpoint(ip) for ip in ips],
                                       [{"name": "dns", "port": backends.port,
                                         "protocol": "UDP"}]))
    loop = asyncio.get_running_loop()

    def exchange() -> tuple[bytes, tuple]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(b"hello", (cip, port))
            try:
                return s.recvfrom(1024)
            except OSError:
                return b"", ()

    async def answered():
        data, addr = await loop.run_in_executor(None, exchange)
        return (data, addr) if data else None
    data, addr = await wait_for(answered, WAIT_S)
    assert addr == (cip, port)
    name, _, payload = data.decode().partition(":")
    assert name in ips and payload == "hello"
    stats = (await proxy.metrics())["services"]["default/dns"]
    assert stats["udp_sessions_total"] >= 1 and stats["bytes_in"] >= 5, stats


async def test_listener_that_cannot_bind_gets_event_and_rest_is_served(client, proxy, backends):
    ips = await backends.start_tcp(1)
    cip = cluster_ip()
    taken_port, free = service_port(), service_port()
    # Someone else holds cip:taken_port without SO_REUSEPORT (as a privileged
    # port is held by the kernel's rule when not root): that listener fails.
    blocker = socket.socket()
    blocker.bind((cip, taken_port))
    blocker.listen()
    try:
        await client.create(service("half", cip, [tcp_port(taken_port, "a"),
                                                  tcp_port(free, "b")]))
        await client.create(endpoint_slice("half-1", "half", [endpoint(ips[0])],
                                           [tcp_port(backends.port, "a"),
                                            tcp_port(backends.port, "b")]))
        assert await wait_for(lambda: ask(cip, free), WAIT_S) == ips[0]

        async def warning():
            events = (await client.list("events", "default")).items
            return [e for e in events if e.reason == "FailedToListen"
                    and e.involved_object.name == "half"]
        found = await wait_for(warning, WAIT_S)
        assert found[0].type == "Warning"
        assert found[0].message.startswith(f"cannot serve {cip}:{taken_port}/TCP: "
                                           "address already in use"), found[0].message
    finally:
        blocker.close()


async def test_two_proxies_share_cluster_ip_and_survive_a_kill(tmp_path, apiserver, client,
                                                               proxy, backends):
    ips = await backends.start_tcp(2)
    cip, port = cluster_ip(), service_port()
    await make_service(client, "shared", cip, port, backends.port, [endpoint(ip) for ip in ips])
    other = await KubeProxyProc(tmp_path, apiserver.address, "node-2", node_ip()).start()
    try:
        async def both_listening():
            rows = [(await p.metrics())["listeners"] for p in (proxy, other)]
            return all(any(r["listener"] == f"{cip}:{port}/TCP" and r.get("endpoints")
                           for r in listeners) for listeners in rows)
        await wait_for(both_listening, WAIT_S)

        async def both_carry():
            await ask_many(cip, port, 10)
            totals = [(await p.metrics())["services"].get("default/shared", {})
                      .get("connections_total", 0) for p in (proxy, other)]
            return all(totals)
        await wait_for(both_carry, WAIT_S)  # the kernel spreads connections over both
        await proxy.kill()
        seen = await ask_many(cip, port, 10)
        assert "" not in seen and set(seen) == set(ips), seen
    finally:
        await other.stop()


async def test_local_policy_lb_ip_only_held_by_nodes_with_local_endpoints(tmp_path, apiserver,
                                                                         client, proxy,
                                                                         backends):
    ips = await backends.start_tcp(1)
    cip, port = cluster_ip(), service_port()
    lb_ip = f"127.1.255.{_rng.randint(1, 254)}"
    svc, _ = await make_service(client, "lbl", cip, port, backends.port,
                                [endpoint(ips[0], node="node-1")], type_="LoadBalancer",
                                externalTrafficPolicy="Local",
                                port_extra={"nodePort": _rng.randint(30000, 32767)})
    svc.status.load_balancer.ingress.add(ip=lb_ip, ip_mode="VIP")
    await client.update_status(svc)
    other = await KubeProxyProc(tmp_path, apiserver.address, "node-2", node_ip()).start()
    try:
        async def synced(p: KubeProxyProc) -> bool:
            m = await p.metrics()
            return any(r["listener"] == f"{cip}:{port}/TCP" for r in m["listeners"])
        await wait_for(lambda: synced(other), WAIT_S)
        await wait_for(lambda: synced(proxy), WAIT_S)
        listeners = {p.node: {r["listener"] for r in (await p.metrics())["listeners"]}
                     for p in (proxy, other)}
        assert f"{lb_ip}:{port}/TCP" in listeners["node-1"]
        assert f"{lb_ip}:{port}/TCP" not in listeners["node-2"]
        # Without a listener on node-2, the kernel hands every connection to node-1.
        assert await ask_many(lb_ip, port, 10) == [ips[0]] * 10
    finally:
        await other.stop()


async def refused(ip: str, port: int) -> bool:
    try:
        async with asyncio.timeout(IO_TIMEOUT_S):
            _, writer = await asyncio.open_connection(ip, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_listeners_follow_service_port_changes(client, proxy, backends):
    ips = await backends.start_tcp(1)
    cip, old_port, new_port = cluster_ip(), service_port(), service_port()
    svc, _ = await make_service(client, "moving", cip, old_port, backends.port,
                                [endpoint(ips[0])])
    await wait_for(lambda: ask(cip, old_port), WAIT_S)
    svc.spec.ports[0].port = new_port
    await client.update(svc)
    assert await wait_for(lambda: ask(cip, new_port), WAIT_S) == ips[0]
    await wait_for(lambda: refused(cip, old_port), WAIT_S)


async def test_graceful_stop_closes_listeners_then_drains(tmp_path, apiserver, client, backends):
    ips = await backends.start_tcp(1)
    cip, port = cluster_ip(), service_port()
    await make_service(client, "drain", cip, port, backends.port, [endpoint(ips[0])])
    p = await KubeProxyProc(tmp_path, apiserver.address, "node-1", node_ip(),
                            "--drain-s", "30").start()
    try:
        await wait_for(lambda: ask(cip, port), WAIT_S)
        async with asyncio.timeout(IO_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(cip, port)
            assert (await reader.readline()).decode().strip() == ips[0]
        p.proc.signal(signal.SIGTERM)
        await wait_for(lambda: refused(cip, port), WAIT_S)  # no listener any more
        async with asyncio.timeout(IO_TIMEOUT_S):
            writer.write(b"draining\n")  # the connection in flight still works
            assert await reader.readline() == b"draining\n"
            writer.close()
        # Its last connection ended: the proxy exits before the drain deadline.
        await wait_for(lambda: not p.proc.alive(), WAIT_S)
        assert p.proc.popen.returncode == 0
    finally:
        await p.stop()
