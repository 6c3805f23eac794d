"""Pod IPs from the node's pod CIDR, like the host-local IPAM plugin.

Addresses are handed out round-robin after the last one given (a freed
address is not reused at once, so a client of a deleted pod does not reach
its successor), skipping the network address, the first host address (the
"gateway", by convention) and the broadcast address. The table
(ip -> pod uid) changes in memory; `await flush()` writes it atomically to
`<root>/ipam.json` (0600) in a thread after a change, so a restarted
kubelet gives each pod the address it had; `reconcile` then frees the
addresses of pods that no longer have a sandbox. `save()` is the blocking
write, for start-up and tests.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import pathlib
from typing import Iterable

from kubemu.fileutil import atomic_write


class PoolExhausted(Exception):
    pass


class PodIPAllocator:
    def __init__(self, cidr: str, path: pathlib.Path):
        self.network = ipaddress.ip_network(cidr, strict=False)
        if self.network.num_addresses < 4:
            raise ValueError(f"pod CIDR {cidr} is too small (need at least a /30)")
        self.path = path
        self.allocated: dict[str, str] = {}    # ip -> pod uid
        self.last = ""
        self._dirty = False
        self._flushing = asyncio.Lock()
        self._load()

    def _hosts(self) -> list[str]:
        hosts = [str(h) for h in self.network.hosts()]
        return hosts[1:]  # the first one is the gateway's, by convention

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # unreadable: start empty; reconcile() re-adds the live pods
        allocated = data.get("allocated", {}) if isinstance(data, dict) else {}
        self.allocated = {ip: uid for ip, uid in allocated.items()
                          if isinstance(uid, str) and self._in_pool(ip)}
        last = data.get("last", "") if isinstance(data, dict) else ""
        self.last = last if isinstance(last, str) and self._in_pool(last) else ""

    def _in_pool(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def _snapshot(self) -> str:
        return json.dumps({"cidr": str(self.network), "last": self.last,
                           "allocated": self.allocated}, indent=1, sort_keys=True)

    def _save(self) -> None:
        self._dirty = True

    def save(self) -> None:
        """Write the table now (blocking)."""
        atomic_write(self.path, self._snapshot(), fsync=False)
        self._dirty = False

    async def flush(self) -> None:
        """Write the table if it changed, in a thread; flushes run one at a time,
        each writing the table as it is when it starts, so the last one wins."""
        async with self._flushing:
            if not self._dirty:
                return
            self._dirty = False
            try:
                await asyncio.to_thread(atomic_write, self.path, self._snapshot(), fsync=False)
            except BaseException:
                self._dirty = True
                raise

    def ip_of(self, uid: str) -> str | None:
        return next((ip for ip, owner in self.allocated.items() if owner == uid), None)

    def allocate(self, uid: str) -> str:
        """The pod's address: the one it has, else the next free one."""
        mine = self.ip_of(uid)
        if mine is not None:
            return mine
        hosts = self._hosts()
        start = hosts.index(self.last) + 1 if self.last in hosts else 0
        for i in range(len(hosts)):
            ip = hosts[(start + i) % len(hosts)]
            if ip not in self.allocated:
                self.allocated[ip] = uid
                self.last = ip
                self._save()
                return ip
        raise PoolExhausted(f"no free address in pod CIDR {self.network} "
                            f"({len(self.allocated)} allocated)")

    def assign(self, uid: str, ip: str) -> None:
        """Record an address a pod already has (found in its sandbox)."""
        if self._in_pool(ip) and self.allocated.get(ip) != uid:
            self.allocated[ip] = uid
            self._save()

    def release(self, uid: str) -> None:
        freed = [ip for ip, owner in self.allocated.items() if owner == uid]
        for ip in freed:
            del self.allocated[ip]
        if freed:
            self._save()

    def reconcile(self, live: Iterable[tuple[str, str]]) -> None:
        """Keep exactly the (uid, ip) pairs of live sandboxes."""
        wanted = {ip: uid for uid, ip in live if ip and self._in_pool(ip)}
        if wanted != self.allocated:
            self.allocated = wanted
            self._save()
