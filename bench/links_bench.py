"""deploy.links: what a front adds to a connection — latency, throughput, connect cost.

    .venv/bin/python bench/links_bench.py [--round-trips 5000] [--connects 300] [--mib 512]

Three processes, as in a cluster: this one hosts `Links` (the supervisor's
place), a server process (an echo port, and a sink port that counts bytes to
EOF and answers the count), and a client process with blocking sockets
(TCP_NODELAY). Measured from the client, straight to the server and then
through a front (`frontend`), and through a peer front (`peer_front`):
1. round trip of 64 bytes on one connection: p50/p99 over `round_trips`;
2. throughput one way: `mib` MiB written to the sink, until its count comes back;
3. connect + first round trip on a new connection: p50/p99 over `connects`;
   through the peer front also while a member is cut, when every new
   connection first looks its dialer up in /proc (the client registered as a
   member).
Figures are printed; nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from deploy.links import Limits, Links  # noqa: E402

_SERVER = r"""
import asyncio, struct

async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()

async def sink(reader, writer):
    total = 0
    while data := await reader.read(1 << 20):
        total += len(data)
    writer.write(struct.pack("!Q", total))
    await writer.drain()
    writer.close()

async def main():
    e = await asyncio.start_server(echo, "127.0.0.1", 0)
    s = await asyncio.start_server(sink, "127.0.0.1", 0)
    print(e.sockets[0].getsockname()[1], s.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

_CLIENT = r"""
import json, socket, struct, sys, time

def connect(address):
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock

def round_trip(sock, payload):
    sock.sendall(payload)
    got = 0
    while got < len(payload):
        got += len(sock.recv(65536))

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1e6

def run(cmd):
    kind, echo, sink, n, mib = cmd["kind"], cmd["echo"], cmd["sink"], cmd["n"], cmd["mib"]
    payload = b"x" * 64
    out = {}
    if kind in ("rtt", "all"):
        sock = connect(echo)
        for _ in range(100):
            round_trip(sock, payload)
        times = []
        for _ in range(n):
            t = time.perf_counter(); round_trip(sock, payload); times.append(time.perf_counter() - t)
        sock.close()
        out["rtt_us_p50"], out["rtt_us_p99"] = pct(times, 0.5), pct(times, 0.99)
    if kind in ("throughput", "all"):
        sock = connect(sink)
        chunk = b"y" * (1 << 20)
        t = time.perf_counter()
        for _ in range(mib):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        count = struct.unpack("!Q", sock.recv(8))[0]
        elapsed = time.perf_counter() - t
        sock.close()
        assert count == mib << 20, count
        out["throughput_mib_s"] = mib / elapsed
    if kind in ("connect", "all"):
        times = []
        for _ in range(cmd["connects"]):
            t = time.perf_counter()
            sock = connect(echo); round_trip(sock, payload)
            times.append(time.perf_counter() - t)
            sock.close()
        out["connect_us_p50"], out["connect_us_p99"] = pct(times, 0.5), pct(times, 0.99)
    return out

for line in sys.stdin:
    print(json.dumps(run(json.loads(line))), flush=True)
"""


async def main(args: argparse.Namespace) -> None:
    server = await asyncio.create_subprocess_exec(sys.executable, "-c", _SERVER,
                                                  stdout=asyncio.subprocess.PIPE)
    client = await asyncio.create_subprocess_exec(sys.executable, "-c", _CLIENT,
                                                  stdin=asyncio.subprocess.PIPE,
                                                  stdout=asyncio.subprocess.PIPE)
    links = Links(Limits(buffer_high_bytes=args.buffer_kib * 1024))
    try:
        ports = (await asyncio.wait_for(server.stdout.readline(), 10)).split()
        echo, sink = (f"127.0.0.1:{int(p)}" for p in ports)

        async def measure(kind: str, echo_at: str, sink_at: str) -> dict:
            cmd = {"kind": kind, "echo": echo_at, "sink": sink_at, "n": args.round_trips,
                   "mib": args.mib, "connects": args.connects}
            client.stdin.write(json.dumps(cmd).encode() + b"\n")
            await client.stdin.drain()
            return json.loads(await asyncio.wait_for(client.stdout.readline(), 600))

        echo_front = await links.frontend("bench", lambda: [("echo", echo)])
        sink_front = await links.frontend("bench-sink", lambda: [("sink", sink)])
        peer_echo = await links.peer_front("etcd-0", echo)
        peer_sink = await links.peer_front("etcd-9", sink)
        links.register("etcd-1", client.pid)

        rows = [("direct", await measure("all", echo, sink)),
                ("front", await measure("all", echo_front, sink_front)),
                ("peer front", await measure("all", peer_echo, peer_sink))]
        await links.cut(["etcd-2"], for_s=None)  # a member cut: every dialer is looked up
        await links.peer_front("etcd-2", "127.0.0.1:1")
        rows.append(("peer front, member cut", await measure("connect", peer_echo, peer_sink)))
        links.heal()

        print(f"deploy.links bench: {args.round_trips} round trips of 64 B, {args.mib} MiB one way, "
              f"{args.connects} connects; buffers {args.buffer_kib} KiB; pid {os.getpid()} hosts the fronts")
        print(f"{'path':<24}{'rtt p50 us':>12}{'rtt p99 us':>12}{'MiB/s':>10}"
              f"{'connect p50 us':>16}{'connect p99 us':>16}")
        for label, r in rows:
            def f(key: str, width: int, fmt: str = "{:.0f}") -> str:
                return (fmt.format(r[key]) if key in r else "-").rjust(width)
            print(f"{label:<24}{f('rtt_us_p50', 12)}{f('rtt_us_p99', 12)}"
                  f"{f('throughput_mib_s', 10)}{f('connect_us_p50', 16)}{f('connect_us_p99', 16)}")
        direct, front = rows[0][1], rows[1][1]
        print(f"front adds {front['rtt_us_p50'] - direct['rtt_us_p50']:.0f} us to a round trip (p50), "
              f"keeps {100 * front['throughput_mib_s'] / direct['throughput_mib_s']:.0f}% of the throughput")
    finally:
        await links.close()
        for proc in (client, server):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=5000)
    parser.add_argument("--connects", type=int, default=300)
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--buffer-kib", type=int, default=Limits().buffer_high_bytes // 1024,
                        help="the fronts' write buffer high-water mark")
    asyncio.run(main(parser.parse_args()))
