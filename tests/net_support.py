"""Network helpers for kube-proxy's tests and bench: backends, clients, metrics.

Backends are tiny asyncio servers on 127.255.<b>.1..n, all on one port (an
EndpointSlice port is shared by its endpoints; no cluster's block is 255, so
they never meet a cluster's addresses). TCP ones send their name on connect
and echo lines; UDP ones answer "<name>:<datagram>".
"""
from __future__ import annotations

import asyncio
import json
import random

import grpc

from kube_proxy.app import METRICS_METHOD

IO_TIMEOUT_S = 3.0


async def read_metrics(address: str, timeout_s: float = 5.0) -> dict:
    """kube-proxy's metrics JSON (see kube_proxy.app) from its health address."""
    async with grpc.aio.insecure_channel(address) as channel:
        raw = await channel.unary_unary(METRICS_METHOD)(b"", timeout=timeout_s)
    return json.loads(raw)


class Backends:
    """TCP (and UDP) servers on 127.255.<b>.1..n, all on one port."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.block = (rng or random.Random()).randint(1, 254)
        self.port = 0
        self.servers: dict[str, asyncio.AbstractServer] = {}
        self.udp: list[asyncio.DatagramTransport] = []

    def ip(self, i: int) -> str:
        return f"127.255.{self.block}.{i}"

    async def start_tcp(self, n: int) -> list[str]:
        for i in range(1, n + 1):
            await self.start_one(i)
        return [self.ip(i) for i in range(1, n + 1)]

    async def start_one(self, i: int) -> None:
        name = self.ip(i)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(f"{name}\n".encode())
            try:
                while line := await reader.readline():
                    writer.write(line)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, name, self.port)
        self.port = self.port or server.sockets[0].getsockname()[1]
        self.servers[name] = server

    async def stop_one(self, i: int) -> None:
        server = self.servers.pop(self.ip(i))
        server.close()

    async def start_udp(self, n: int) -> list[str]:
        loop = asyncio.get_running_loop()
        for i in range(1, n + 1):
            name = self.ip(i)

            class Echo(asyncio.DatagramProtocol):
                def connection_made(self, transport):
                    self.transport = transport

                def datagram_received(self, data, addr, name=name):
                    self.transport.sendto(f"{name}:".encode() + data, addr)

            transport, _ = await loop.create_datagram_endpoint(
                Echo, local_addr=(name, self.port))
            self.port = self.port or transport.get_extra_info("sockname")[1]
            self.udp.append(transport)
        return [self.ip(i) for i in range(1, n + 1)]

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        for transport in self.udp:
            transport.close()


async def ask(ip: str, port: int) -> str:
    """Connect, read the backend's name; "" when the connection is refused or reset."""
    try:
        async with asyncio.timeout(IO_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(ip, port)
            try:
                line = await reader.readline()
            finally:
                writer.close()
    except (ConnectionError, OSError):
        return ""
    return line.decode().strip()


async def ask_many(ip: str, port: int, n: int) -> list[str]:
    return [await ask(ip, port) for _ in range(n)]


