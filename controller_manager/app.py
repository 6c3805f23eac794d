"""The controller-manager process: a health server, and terms of standby and leadership.

- A `Term` is one stretch of this process's life: a Context (client, shared
  informers, event recorders, Loops) and the controllers built on it.
  Informers run (caches stay warm) whether or not we lead, so a standby that
  takes over starts syncing at once; controllers are built and their workers
  run only while we lead. When leadership is lost the whole term is thrown
  away (no half-done expectations leak into the next one) and a fresh standby
  term starts.
- Leadership: the Lease kube-system/kube-controller-manager. The elector
  cancels the workers when it steps down; a graceful stop releases the Lease
  so a standby takes over at once.
- Health: grpc.health.v1, SERVING once the informers have synced (leader or
  standby), NOT_SERVING while a loop it owns is down.
"""
from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Callable

import structlog

from kubemu import aio, fileutil
from kubemu import server as grpc_server
from kubemu.client.clientset import Client
from kubemu.client.leaderelection import LeaderElector
from kubemu.loops import Loops

from controller_manager import registry
from controller_manager.base import Context, Controller, Options

log = structlog.get_logger("controller_manager")


class Term:
    def __init__(self, client: Client, options: Options,
                 classes: list[type[Controller]], loops: Loops,
                 clock: Callable[[], float] = time.time):
        self.ctx = Context(client, options, loops, clock=clock)
        self.classes = classes
        self.controllers: list[Controller] = []

    def build(self) -> None:
        """Build the controllers: their constructors ask for informers and add handlers."""
        self.controllers = [cls(self.ctx) for cls in self.classes]

    async def start_informers(self) -> None:
        # Informers every enabled controller needs, started before leading.
        for cls in self.classes:
            for resource in cls.resources:
                self.ctx.informers.get(resource)
        self.ctx.informers.start()
        await self.ctx.informers.wait_synced()

    async def lead(self) -> None:
        self.build()
        self.ctx.informers.start()
        opts = self.ctx.options
        async with asyncio.TaskGroup() as group:
            for controller in self.controllers:
                workers = opts.workers(controller.name, controller.default_workers)
                group.create_task(controller.run(workers), name=controller.name)

    async def stop(self, flush_events_s: float = 0.0) -> None:
        for controller in self.controllers:
            controller.queue.shutdown()
        await self.ctx.stop(flush_events_s)


class ControllerManagerApp:
    def __init__(self, options: Options, clock: Callable[[], float] = time.time):
        if not options.identity:
            options.identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        self.options = options
        self.classes = registry.select(options.controllers)
        self._clock = clock
        self._log = log.bind(identity=options.identity)
        self.server: grpc_server.Server | None = None
        self.term: Term | None = None
        self.elector: LeaderElector | None = None
        self._stopping = False

    async def run(self, stop: asyncio.Event) -> None:
        options = self.options
        client = Client(options.apiserver, timeout_s=options.rpc_timeout_s,
                        user_agent=f"kubemu-controller-manager/{options.identity}")
        self.server = grpc_server.Server(options.health_listen, grace_s=options.shutdown_grace_s)
        address = await self.server.start()
        if options.address_file:
            # A write with fsync: off the event loop, which must never block.
            await asyncio.to_thread(fileutil.atomic_write, options.address_file, address + "\n")
        self._log.info("controller-manager started", health=address, apiserver=options.apiserver,
                       controllers=[c.name for c in self.classes],
                       leader_elect=options.leader_elect)
        try:
            await aio.run_until(stop, self._run_terms(client), before_cancel=self._stop_gracefully)
        finally:
            await self.server.stop()
            await client.close()
            self._log.info("controller-manager stopped")

    async def _run_terms(self, client: Client) -> None:
        assert self.server is not None
        while True:
            term = self.term = Term(client, self.options, self.classes,
                                    Loops(on_health=self._loop_health), clock=self._clock)
            try:
                await term.start_informers()
                await self.server.set_serving(True)
                if not self.options.leader_elect:
                    await term.lead()
                    return
                opts = self.options
                elector = self.elector = LeaderElector(
                    client, opts.lease_namespace, opts.lease_name, opts.identity,
                    lease_duration_s=opts.lease_duration_s,
                    renew_deadline_s=opts.renew_deadline_s,
                    retry_period_s=opts.retry_period_s, clock=self._clock)
                self._log.info("waiting for the lease",
                               lease=f"{opts.lease_namespace}/{opts.lease_name}")
                await elector.run(lambda: self._lead(term), lambda: None)
                self._log.warning("stopped leading; starting over as a standby")
            finally:
                await term.stop(self.options.shutdown_grace_s if self._stopping else 0.0)

    def _stop_gracefully(self) -> None:
        self._stopping = True

    async def _lead(self, term: Term) -> None:
        self._log.info("became leader")
        assert self.elector is not None
        term.ctx.lease_ok = self.elector.holds_fresh_lease
        await term.lead()

    async def _loop_health(self, name: str, ok: bool) -> None:
        if self.server is not None:
            await self.server.set_check(f"loop:{name}", ok)
