"""`kubemu delete --cascade`, its deprecated boolean spellings, and --wait."""
from __future__ import annotations

import asyncio

import pytest

from tests.unit.cli_memclient import MemClient, install, run_cli


@pytest.fixture
async def mem(monkeypatch):
    client = install(monkeypatch, await MemClient.new())
    sent: list[str] = []
    delete = client.delete

    async def recording(*args, **kwargs):
        sent.append(kwargs.get("propagation_policy", ""))
        return await delete(*args, **kwargs)
    client.delete = recording
    client.sent = sent
    return client


async def put_cm(mem, name="c", finalizers=()):
    await mem.put({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "finalizers": list(finalizers)}})


@pytest.mark.parametrize("flags,policy,err", [
    ([], "Background", ""),
    (["--cascade"], "Background", ""),
    (["--cascade=foreground"], "Foreground", ""),
    (["--cascade=orphan"], "Orphan", ""),
    (["--cascade=background"], "Background", ""),
    (["--cascade=true"], "Background", "warning: --cascade=true is deprecated (boolean value) "
                                       "and can be replaced with --cascade=background.\n"),
    (["--cascade=false"], "Orphan", "warning: --cascade=false is deprecated (boolean value) and "
                                    "can be replaced with --cascade=orphan.\n"),
], ids=["default", "bare", "foreground", "orphan", "background", "true", "false"])
async def test_cascade_is_the_propagation_policy(mem, capsys, flags, policy, err):
    await put_cm(mem)
    assert await run_cli("delete", "cm", "c", "--wait=false", *flags) == 0
    assert mem.sent == [policy]
    assert capsys.readouterr() == ('configmap "c" deleted\n', err)


async def test_an_unknown_cascade_value_is_refused_before_anything_is_sent(mem, capsys):
    await put_cm(mem)
    assert await run_cli("delete", "cm", "c", "--cascade=Foreground") == 1
    assert capsys.readouterr().err == ('error: invalid cascade value (Foreground). Must be '
                                       '"background", "foreground", or "orphan"\n')
    assert mem.sent == []


async def test_wait_lasts_until_the_finalizers_are_gone(mem, capsys):
    await put_cm(mem, finalizers=["example.com/hold"])
    task = asyncio.create_task(run_cli("delete", "cm", "c", "--cascade=foreground"))
    from kubemu.client.wait import wait_for

    await wait_for(lambda: mem.sent, 5)
    doc = await mem.doc("configmaps", "c")
    assert doc["metadata"]["finalizers"] == ["example.com/hold", "foregroundDeletion"]
    assert not task.done()
    await mem.patch("configmaps", "c", "default", patch={"metadata": {"finalizers": None}})
    assert await asyncio.wait_for(task, 10) == 0
    assert capsys.readouterr().out == 'configmap "c" deleted\n'


async def test_wait_timeout_is_kubectls_error(mem, capsys):
    await put_cm(mem, finalizers=["example.com/hold"])
    assert await run_cli("delete", "cm", "c", "--timeout=100ms") == 1
    assert capsys.readouterr().err == "error: timed out waiting for the condition on " \
                                      "configmaps/c\n"


async def test_nothing_selected_says_so_on_stdout(mem, capsys):
    assert await run_cli("delete", "cm", "-l", "app=none") == 0
    assert capsys.readouterr() == ("No resources found\n", "")
