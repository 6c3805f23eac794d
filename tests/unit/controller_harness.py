"""One controller on the apiserver's registry over the in-memory store
(tests/unit/cli_memclient.MemClient: real validation, defaulting,
preconditions and deletion rules), its informers filled by hand with
`cache`, so a test can make the cache stale on purpose, as it is for a
while after every write."""
from __future__ import annotations

from controller_manager.base import Context, Controller, Options
from kubemu.loops import Loops
from tests.unit.cli_memclient import NOW_S, MemClient


class ControllerHarness:
    def __init__(self, controller: type[Controller], client: MemClient,
                 options: Options | None = None):
        self.client = client
        self.ctx = Context(client, options or Options(apiserver="-"), Loops(),
                           clock=lambda: NOW_S)
        self.controller = controller(self.ctx)

    def cache(self, resource: str, items) -> None:
        """What the informer of `resource` holds (handlers run as for a relist)."""
        informer = self.ctx.informers.get(resource)
        informer._replace(list(items))
        informer.has_synced.set()

    async def names(self, resource: str) -> list[str]:
        """The names of `resource` in the store (not the cache)."""
        return sorted(o.metadata.name for o in (await self.client.list(resource)).items)

    async def stop(self) -> None:
        await self.ctx.stop()
