"""The example's fixtures: kubemu's plugin, and the controller running in the test.

`pytest_plugins` loads kubemu.testing: the fixtures kubemu_cluster (one cluster
shared by the session, shaped by pyproject.toml's kubemu_* settings),
kubemu_client and kubemu_namespace, and the `kubemu` marker.
"""
from __future__ import annotations

import asyncio

import pytest

from echo_controller import EchoController

pytest_plugins = ["kubemu.testing"]

SYNC_TIMEOUT_S = 30.0


async def start_controller(controller: EchoController) -> asyncio.Task[None]:
    """Run `controller` as a task of the test's event loop, once it has listed."""
    task = asyncio.create_task(controller.run(), name="echo-controller")
    await controller.informer.wait_synced(SYNC_TIMEOUT_S)
    return task


async def stop_controller(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def controller(kubemu_cluster, kubemu_namespace):
    """The echo controller, watching the test's namespace, on a client of its own."""
    async with kubemu_cluster.new_client() as client:
        controller = EchoController(client, namespace=kubemu_namespace)
        task = await start_controller(controller)
        try:
            yield controller
        finally:
            await stop_controller(task)
