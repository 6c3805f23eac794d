"""`kubemu create job|cronjob`: kubectl's generators, and a job made from a cronjob."""
from __future__ import annotations

import json

import pytest

from tests.unit.cli_memclient import MemClient, install, run_cli


@pytest.fixture
async def mem(monkeypatch):
    return install(monkeypatch, await MemClient.new())


# What kubectl 1.32 prints for the same command lines (--dry-run=client -o json).
KUBECTL_JOB = {
    "kind": "Job", "apiVersion": "batch/v1",
    "metadata": {"name": "x", "creationTimestamp": None},
    "spec": {"template": {"metadata": {"creationTimestamp": None},
                          "spec": {"containers": [{"name": "x", "image": "busybox",
                                                   "command": ["sh", "-c", "echo hi"],
                                                   "resources": {}}],
                                   "restartPolicy": "Never"}}},
    "status": {}}
KUBECTL_CRONJOB = {
    "kind": "CronJob", "apiVersion": "batch/v1",
    "metadata": {"name": "cj", "creationTimestamp": None},
    "spec": {"schedule": "*/1 * * * *",
             "jobTemplate": {"metadata": {"name": "cj", "creationTimestamp": None},
                             "spec": {"template": {
                                 "metadata": {"creationTimestamp": None},
                                 "spec": {"containers": [{"name": "cj", "image": "busybox",
                                                          "resources": {}}],
                                          "restartPolicy": "OnFailure"}}}}},
    "status": {}}


@pytest.mark.parametrize("argv,expected", [
    (["create", "job", "x", "--image=busybox", "--dry-run=client", "-o", "json", "--",
      "sh", "-c", "echo hi"], KUBECTL_JOB),
    (["create", "cronjob", "cj", "--image=busybox", "--schedule=*/1 * * * *",
      "--dry-run=client", "-o", "json"], KUBECTL_CRONJOB),
], ids=["job", "cronjob"])
async def test_generators_print_what_kubectl_prints(mem, capsys, argv, expected):
    assert await run_cli(*argv) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == expected
    assert list(json.loads(out)) == list(expected)   # and in kubectl's key order


async def test_create_job_and_cronjob_for_real(mem, capsys):
    assert await run_cli("create", "job", "x", "--image=busybox") == 0
    assert await run_cli("create", "cronjob", "cj", "--image=busybox", "--schedule=@hourly",
                         "--restart=Never") == 0
    assert capsys.readouterr().out == "job.batch/x created\ncronjob.batch/cj created\n"
    cj = await mem.doc("cronjobs", "cj")
    assert cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


async def test_job_from_a_cronjob_is_annotated_and_owned(mem, capsys):
    await mem.put({"apiVersion": "batch/v1", "kind": "CronJob",
                   "metadata": {"name": "cj"},
                   "spec": {"schedule": "* * * * *", "jobTemplate": {
                       "metadata": {"labels": {"team": "a"}, "annotations": {"note": "n"}},
                       "spec": {"template": {"spec": {
                           "containers": [{"name": "c", "image": "busybox"}],
                           "restartPolicy": "OnFailure"}}}}}})
    assert await run_cli("create", "job", "manual", "--from=cronjob/cj") == 0
    assert capsys.readouterr().out == "job.batch/manual created\n"
    job = await mem.doc("jobs", "manual")
    cj = await mem.doc("cronjobs", "cj")
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual",
                                              "note": "n"}
    assert job["metadata"]["labels"]["team"] == "a"
    [ref] = job["metadata"]["ownerReferences"]
    assert ref == {"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj",
                   "uid": cj["metadata"]["uid"], "controller": True}
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"


@pytest.mark.parametrize("argv,err", [
    (["create", "job", "j"], "error: either --image or --from must be specified\n"),
    (["create", "job", "j", "--image=x", "--from=cronjob/a"],
     "error: either --image or --from must be specified\n"),
    (["create", "job", "j", "--from=cronjob/a", "--", "ls"],
     "error: cannot specify --from and command\n"),
    (["create", "job", "j", "--from=cronjob/nope"],
     'Error from server (NotFound): cronjobs.batch "nope" not found\n'),
    (["create", "job", "j", "--from=configmap/c"], "error: unknown object type *v1.ConfigMap\n"),
    (["create", "cronjob", "cj", "--image=busybox"],
     'error: required flag(s) "schedule" not set\n'),
], ids=["neither", "both", "from-and-command", "missing-cronjob", "not-a-cronjob",
        "no-schedule"])
async def test_errors_as_kubectl(mem, capsys, argv, err):
    await mem.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    assert await run_cli(*argv) == 1
    assert capsys.readouterr().err == err
