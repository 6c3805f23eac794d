"""`kubemu wait`: kubectl's --for conditions, messages and timeouts."""
from __future__ import annotations

import asyncio

import pytest

from kubemu.cli import wait
from kubemu.cli.common import CliError
from tests.unit.cli_memclient import MemClient, install, run_cli


@pytest.mark.parametrize("text,parts", [
    ("{.status.phase}=Running", ["{.status.phase}", "Running"]),
    ("{.a}", ["{.a}"]),
    ("{.items[?(@.x==1)].y}=2", ["{.items[?(@.x==1)].y}", "2"]),
], ids=["value", "no-value", "keeps-double-equals"])
def test_split_jsonpath_input(text, parts):
    assert wait.split_jsonpath_input(text) == parts


@pytest.mark.parametrize("values,message", [
    ([], 'unrecognized condition: ""'),
    (["ready"], 'unrecognized condition: "ready"'),
    (["jsonpath={.a}="], "jsonpath wait has to have a value after equal sign, like "
                         "--for=jsonpath='{.status.readyReplicas}'=3"),
    (["jsonpath={.a}=1=2"], "jsonpath wait format must be --for=jsonpath='{.status."
                            "readyReplicas}'=3 or --for=jsonpath='{.status.readyReplicas}'"),
], ids=["none", "unknown", "empty-value", "two-values"])
def test_condition_errors(values, message):
    with pytest.raises(CliError) as err:
        wait.parse_conditions(values)
    assert str(err.value) == message


def doc(conditions, generation=2, observed=None) -> dict:
    status = {"conditions": conditions}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"generation": generation}, "status": status}


@pytest.mark.parametrize("for_,obj,met", [
    ("condition=Ready", doc([{"type": "Ready", "status": "True"}]), True),
    ("condition=ready", doc([{"type": "Ready", "status": "True"}]), True),
    ("condition=Ready=false", doc([{"type": "Ready", "status": "False"}]), True),
    ("condition=Ready", doc([{"type": "Ready", "status": "False"}]), False),
    ("condition=Ready", doc([]), False),
    ("condition=Available", doc([{"type": "Available", "status": "True"}], observed=1), False),
    ("condition=Available", doc([{"type": "Available", "status": "True",
                                  "observedGeneration": 2}], observed=1), True),
], ids=["true", "case-folded", "value", "other-value", "absent", "stale-generation",
        "condition-generation"])
def test_condition_met(for_, obj, met):
    [cond] = wait.parse_conditions([for_])
    assert wait.condition_met(obj, cond) is met


@pytest.mark.parametrize("for_,obj,met", [
    ("jsonpath={.status.phase}=Running", {"status": {"phase": "Running"}}, True),
    ("jsonpath=.status.phase=Running", {"status": {"phase": "Pending"}}, False),
    ("jsonpath={.status.readyReplicas}=3", {"status": {"readyReplicas": 3}}, True),
    ("jsonpath={.status.readyReplicas}", {"status": {"readyReplicas": 0}}, True),
    ("jsonpath={.status.readyReplicas}", {"status": {}}, False),
    ("jsonpath={.status.ok}='true'", {"status": {"ok": True}}, True),
], ids=["string", "relaxed-other", "number", "any", "missing", "bool"])
def test_jsonpath_met(for_, obj, met):
    [cond] = wait.parse_conditions([for_])
    assert wait.jsonpath_met(obj, cond) is met


def test_jsonpath_on_a_map_is_refused():
    [cond] = wait.parse_conditions(["jsonpath={.status}=x"])
    with pytest.raises(CliError, match="nested object or list which is not supported"):
        wait.jsonpath_met({"status": {"a": 1}}, cond)


# ---------------------------------------------------------------- against the registry

@pytest.fixture
async def mem(monkeypatch):
    return install(monkeypatch, await MemClient.new())


def job(name="j"):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}],
                                           "restartPolicy": "Never"}}}}


async def test_waits_for_a_condition_then_prints_kubectls_line(mem, capsys):
    await mem.put(job())
    task = asyncio.create_task(run_cli("wait", "job/j", "--for=condition=Complete",
                                       "--timeout=10s"))
    await mem.settled()
    assert not task.done()
    await mem.set_status("jobs", "j", {"conditions": [{"type": "Complete", "status": "True"}]})
    assert await asyncio.wait_for(task, 10) == 0
    assert capsys.readouterr().out == "job.batch/j condition met\n"


async def test_timeout_and_check_once(mem, capsys):
    await mem.put(job())
    assert await run_cli("wait", "job/j", "--for=condition=Complete", "--timeout=50ms") == 1
    assert capsys.readouterr().err == "error: timed out waiting for the condition on jobs/j\n"
    assert await run_cli("wait", "job/j", "--for=condition=Complete", "--timeout=0") == 1
    assert capsys.readouterr().err == "error: condition not met for jobs/j\n"


async def test_wait_for_delete(mem, capsys):
    await mem.put(job("a"))
    await mem.put(job("b"))
    task = asyncio.create_task(run_cli("wait", "jobs", "--all", "--for=delete"))
    await mem.settled()
    # As kubectl deletes (a Job's own default, Orphan, would keep it until a GC runs).
    await mem.delete("jobs", "a", "default", propagation_policy="Background")
    await mem.settled()
    await mem.delete("jobs", "b", "default", propagation_policy="Background")
    assert await asyncio.wait_for(task, 10) == 0
    assert capsys.readouterr().out == "job.batch/a condition met\njob.batch/b condition met\n"
    # Already gone: nothing to wait for, nothing printed.
    assert await run_cli("wait", "job/a", "--for=delete") == 0
    assert capsys.readouterr() == ("", "")


async def test_jsonpath_and_selector(mem, capsys):
    for name in ("a", "b"):
        data = job(name)
        data["metadata"]["labels"] = {"app": "x"}
        await mem.put(data)
        await mem.set_status("jobs", name, {"active": 1})
    assert await run_cli("wait", "jobs", "-l", "app=x", "--for=jsonpath={.status.active}=1") == 0
    assert capsys.readouterr().out == "job.batch/a condition met\njob.batch/b condition met\n"


async def test_no_match_and_missing_object(mem, capsys):
    assert await run_cli("wait", "jobs", "-l", "app=none", "--for=condition=Complete") == 1
    assert capsys.readouterr().err == "error: no matching resources found\n"
    assert await run_cli("wait", "job/nope", "--for=condition=Complete") == 1
    assert capsys.readouterr().err == 'Error from server (NotFound): jobs.batch "nope" not found\n'


async def test_wait_for_create_then_a_condition(mem, capsys):
    task = asyncio.create_task(run_cli("wait", "job/late", "--for=create",
                                       "--for=jsonpath={.spec.parallelism}=1", "--timeout=10s"))
    from kubemu.client.wait import wait_for

    await wait_for(lambda: ("get", "jobs", "late") in mem.calls, 5)   # it polls, job absent
    assert not task.done()
    await mem.put(job("late"))
    assert await asyncio.wait_for(task, 10) == 0
    # kubectl's IsCreated is a condition too: each met condition prints its line.
    assert capsys.readouterr().out == "job.batch/late condition met\n" * 2
