"""`kubemu rollout ...`: kubectl's status viewers, history, rollback and pausers."""
from __future__ import annotations

import asyncio
import base64
import datetime
import json

import pytest

from kubemu.cli import rollout
from kubemu.cli.common import CliError
from tests.unit.cli_memclient import MemClient, install, run_cli


def dep_status(generation=2, observed=2, replicas=3, **status) -> dict:
    return {"metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, **status}}


@pytest.mark.parametrize("doc,message,done", [
    (dep_status(observed=1), "Waiting for deployment spec update to be observed...\n", False),
    (dep_status(updatedReplicas=1), 'Waiting for deployment "web" rollout to finish: 1 out of 3 '
                                    "new replicas have been updated...\n", False),
    (dep_status(updatedReplicas=3, replicas=3) | {"status": {
        "observedGeneration": 2, "updatedReplicas": 3, "replicas": 4}},
     'Waiting for deployment "web" rollout to finish: 1 old replicas are pending '
     "termination...\n", False),
    (dep_status(updatedReplicas=3, replicas=3) | {"status": {
        "observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 1}},
     'Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are '
     "available...\n", False),
    (dep_status() | {"status": {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3,
                                "availableReplicas": 3}},
     'deployment "web" successfully rolled out\n', True),
], ids=["not-observed", "updating", "old-pending", "unavailable", "done"])
def test_deployment_status_viewer(doc, message, done):
    assert rollout.deployment_status(doc) == (message, done)


def test_progress_deadline_and_revision_pin_are_errors():
    doc = dep_status(updatedReplicas=1)
    doc["status"]["conditions"] = [{"type": "Progressing", "status": "False",
                                    "reason": "ProgressDeadlineExceeded"}]
    with pytest.raises(CliError, match='^deployment "web" exceeded its progress deadline$'):
        rollout.deployment_status(doc)
    doc = dep_status()
    doc["metadata"]["annotations"] = {rollout.REVISION_ANNOTATION: "2"}
    with pytest.raises(CliError, match=r"^desired revision \(3\) is different from the running "
                                       r"revision \(2\)$"):
        rollout.deployment_status(doc, 3)


@pytest.mark.parametrize("status,message,done", [
    ({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 1},
     'Waiting for daemon set "ds" rollout to finish: 1 out of 3 new pods have been updated...\n',
     False),
    ({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
      "numberAvailable": 2},
     'Waiting for daemon set "ds" rollout to finish: 2 of 3 updated pods are available...\n',
     False),
    ({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
      "numberAvailable": 3}, 'daemon set "ds" successfully rolled out\n', True),
    ({}, "Waiting for daemon set spec update to be observed...\n", False),
], ids=["updating", "unavailable", "done", "not-observed"])
def test_daemonset_status_viewer(status, message, done):
    doc = {"metadata": {"name": "ds", "generation": 1}, "spec": {}, "status": status}
    assert rollout.daemonset_status(doc) == (message, done)


@pytest.mark.parametrize("spec,status,message,done", [
    ({"replicas": 3}, {"observedGeneration": 1, "readyReplicas": 1},
     "Waiting for 2 pods to be ready...\n", False),
    ({"replicas": 3, "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"partition": 1}}},
     {"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1},
     "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...\n",
     False),
    ({"replicas": 3, "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"partition": 0}}},
     {"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3},
     "partitioned roll out complete: 3 new pods have been updated...\n", True),
    ({"replicas": 3}, {"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1,
                       "currentRevision": "web-1", "updateRevision": "web-2"},
     "waiting for statefulset rolling update to complete 1 pods at revision web-2...\n", False),
    ({"replicas": 3}, {"observedGeneration": 1, "readyReplicas": 3, "currentReplicas": 3,
                       "currentRevision": "web-2", "updateRevision": "web-2"},
     "statefulset rolling update complete 3 pods at revision web-2...\n", True),
], ids=["not-ready", "partition-waiting", "partition-done", "rolling", "done"])
def test_statefulset_status_viewer(spec, status, message, done):
    doc = {"metadata": {"name": "web", "generation": 1}, "spec": spec, "status": status}
    assert rollout.statefulset_status(doc) == (message, done)


def test_on_delete_strategy_has_no_status():
    with pytest.raises(CliError, match="only available for RollingUpdate strategy type"):
        rollout.statefulset_status({"spec": {"updateStrategy": {"type": "OnDelete"}}})


@pytest.mark.parametrize("now,text", [
    (datetime.datetime(2026, 11, 30, 9, 1, 2, 345, tzinfo=datetime.timezone.utc),
     "2026-11-30T09:01:02Z"),
    (datetime.datetime(2026, 11, 30, 9, 1, 2, tzinfo=datetime.timezone(
        datetime.timedelta(hours=2))), "2026-11-30T09:01:02+02:00"),
], ids=["utc", "offset"])
def test_restarted_at_is_go_rfc3339(now, text):
    assert rollout.restarted_at(now) == text


# ---------------------------------------------------------------- against the registry

def template(image: str, hash_: str = "") -> dict:
    labels = {"app": "web"} | ({"pod-template-hash": hash_} if hash_ else {})
    return {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": image}]}}


@pytest.fixture
async def mem(monkeypatch):
    return install(monkeypatch, await MemClient.new())


async def make_history(mem, images=("blue", "green"), causes=("", "set image green"),
                       current="green", paused=False):
    """A Deployment on `current` and one ReplicaSet per revision it went through."""
    dep = await mem.put({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {
            rollout.REVISION_ANNOTATION: str(len(images)),
            "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": 2, "paused": paused, "selector": {"matchLabels": {"app": "web"}},
                 "template": template(current)}})
    for revision, (image, cause) in enumerate(zip(images, causes), start=1):
        annotations = {rollout.REVISION_ANNOTATION: str(revision)}
        if cause:
            annotations[rollout.CHANGE_CAUSE_ANNOTATION] = cause
        await mem.put({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"web-{image}", "labels": {"app": "web",
                                                            "pod-template-hash": image},
                         "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "web", "uid": dep.metadata.uid,
                                              "controller": True}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web",
                                                                 "pod-template-hash": image}},
                     "template": template(image, image)}})
    # Someone else's ReplicaSet with matching labels: not part of the history.
    await mem.put({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "stray", "labels": {"app": "web"},
                     "annotations": {rollout.REVISION_ANNOTATION: "9"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": template("stray")}})
    return dep


async def test_history_table(mem, capsys):
    await make_history(mem)
    assert await run_cli("rollout", "history", "deployment/web") == 0
    assert capsys.readouterr().out == ("deployment.apps/web \n"
                                       "REVISION  CHANGE-CAUSE\n"
                                       "1         <none>\n"
                                       "2         set image green\n\n")


@pytest.mark.parametrize("rs_cause,template_cause,shown", [
    ("", "Update to green kuard", "Update to green kuard"),
    ("kubemu set image deploy/web c=green --record=true", "Update to green kuard",
     "kubemu set image deploy/web c=green --record=true"),
    ("", "", "<none>"),
], ids=["template-only", "replicaset-wins", "neither"])
async def test_history_reads_the_change_cause_of_the_template_too(
        mem, capsys, rs_cause, template_cause, shown):
    """Seed 004 line 2245: the kuard Deployment's pod template carries its
    kubernetes.io/change-cause; kubectl's history shows it when the ReplicaSet has none."""
    await make_history(mem, causes=("", rs_cause))
    if template_cause:
        await mem.patch("replicasets", "web-green", "default", patch={"spec": {"template": {
            "metadata": {"annotations": {rollout.CHANGE_CAUSE_ANNOTATION: template_cause}}}}})
    assert await run_cli("rollout", "history", "deployment/web") == 0
    assert capsys.readouterr().out.splitlines()[2:4] == ["1         <none>",
                                                         f"2         {shown}"]


async def test_history_of_one_revision_prints_its_template(mem, capsys):
    await make_history(mem)
    assert await run_cli("rollout", "history", "deploy", "web", "--revision=2") == 0
    out = capsys.readouterr().out
    assert out.startswith("deployment.apps/web with revision #2\nPod Template:\n"
                          "  Labels:\tapp=web\n\tpod-template-hash=green\n"
                          "  Annotations:\tkubernetes.io/change-cause: set image green\n"
                          "  Containers:\n   c:\n    Image:\tgreen\n")
    assert await run_cli("rollout", "history", "deploy", "web", "--revision=7") == 1
    assert capsys.readouterr().err == "error: unable to find the specified revision\n"


async def test_undo_to_the_previous_revision_copies_the_template(mem, capsys):
    await make_history(mem)
    assert await run_cli("rollout", "undo", "deployment/web") == 0
    assert capsys.readouterr().out == "deployment.apps/web rolled back\n"
    doc = await mem.doc("deployments", "web")
    assert doc["spec"]["template"]["spec"]["containers"][0]["image"] == "blue"
    assert doc["spec"]["template"]["metadata"]["labels"] == {"app": "web"}  # no hash label
    # kubectl's annotation rules: the skipped ones keep the Deployment's values.
    assert doc["metadata"]["annotations"] == {
        rollout.REVISION_ANNOTATION: "2", "kubectl.kubernetes.io/last-applied-configuration": "{}"}


async def test_undo_to_a_revision_the_template_already_has_is_skipped(mem, capsys):
    await make_history(mem)
    assert await run_cli("rollout", "undo", "deployment/web", "--to-revision=2") == 0
    assert capsys.readouterr().out == ("deployment.apps/web skipped rollback (current template "
                                       "already matches revision 2)\n")


async def test_undo_to_a_cause_carries_the_revisions_annotations(mem, capsys):
    await make_history(mem, images=("blue", "green", "red"), causes=("first", "", ""),
                       current="red")
    assert await run_cli("rollout", "undo", "deployment/web", "--to-revision=1") == 0
    doc = await mem.doc("deployments", "web")
    assert doc["metadata"]["annotations"][rollout.CHANGE_CAUSE_ANNOTATION] == "first"
    assert doc["spec"]["template"]["spec"]["containers"][0]["image"] == "blue"


@pytest.mark.parametrize("flags,paused,err", [
    (["--to-revision=5"], False, "error: unable to find specified revision 5 in history\n"),
    ([], True, "error: you cannot rollback a paused deployment; resume it first with 'kubectl "
               "rollout resume' and try again\n"),
], ids=["unknown-revision", "paused"])
async def test_undo_errors(mem, capsys, flags, paused, err):
    await make_history(mem, paused=paused)
    assert await run_cli("rollout", "undo", "deployment/web", *flags) == 1
    assert capsys.readouterr().err == err


async def test_pause_resume_and_their_errors(mem, capsys):
    await make_history(mem)
    assert await run_cli("rollout", "pause", "deployment/web") == 0
    assert capsys.readouterr().out == "deployment.apps/web paused\n"
    assert (await mem.doc("deployments", "web"))["spec"]["paused"] is True
    assert await run_cli("rollout", "pause", "deployment/web") == 1
    assert capsys.readouterr().err == 'error: deployments.apps "web" is already paused\n'
    assert await run_cli("rollout", "restart", "deployment/web") == 1
    assert capsys.readouterr().err == ('error: deployments.apps "web" can\'t restart paused '
                                       "deployment (run rollout resume first)\n")
    assert await run_cli("rollout", "resume", "deployment/web") == 0
    assert capsys.readouterr().out == "deployment.apps/web resumed\n"
    assert await run_cli("rollout", "resume", "deployment/web") == 1
    assert capsys.readouterr().err == 'error: deployments.apps "web" is not paused\n'


async def test_restart_sets_the_template_annotation(mem, capsys):
    await make_history(mem)
    assert await run_cli("rollout", "restart", "deployment/web") == 0
    assert capsys.readouterr().out == "deployment.apps/web restarted\n"
    doc = await mem.doc("deployments", "web")
    stamp = doc["spec"]["template"]["metadata"]["annotations"][rollout.RESTARTED_AT_ANNOTATION]
    assert datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None


async def test_no_resource_is_kubectls_error(mem, capsys):
    assert await run_cli("rollout", "status") == 1
    assert capsys.readouterr().err == "error: required resource not specified\n"


async def test_status_watches_until_rolled_out(mem, capsys):
    await make_history(mem)
    task = asyncio.create_task(run_cli("rollout", "status", "deployment/web", "--timeout=10s"))
    await mem.settled()
    await mem.set_status("deployments", "web", {"observedGeneration": 1, "replicas": 2,
                                                "updatedReplicas": 1})
    await mem.settled()
    await mem.set_status("deployments", "web", {"observedGeneration": 1, "replicas": 2,
                                                "updatedReplicas": 2, "readyReplicas": 1,
                                                "availableReplicas": 1})
    await mem.settled()
    await mem.set_status("deployments", "web", {"observedGeneration": 1, "replicas": 2,
                                                "updatedReplicas": 2, "readyReplicas": 2,
                                                "availableReplicas": 2})
    assert await asyncio.wait_for(task, 10) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Waiting for deployment spec update to be observed...",
        'Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been '
        "updated...",
        'Waiting for deployment "web" rollout to finish: 1 of 2 updated replicas are available...',
        'deployment "web" successfully rolled out']


async def test_status_without_watch_prints_once_and_times_out(mem, capsys):
    await make_history(mem)
    await mem.set_status("deployments", "web", {"observedGeneration": 1, "replicas": 2,
                                                "updatedReplicas": 1})
    assert await run_cli("rollout", "status", "deployment/web", "--watch=false") == 0
    assert capsys.readouterr().out == ('Waiting for deployment "web" rollout to finish: 1 out of '
                                       "2 new replicas have been updated...\n")
    assert await run_cli("rollout", "status", "deployment/web", "--timeout=50ms") == 1
    assert capsys.readouterr().err == "error: timed out waiting for the condition\n"


async def test_status_stops_on_progress_deadline(mem, capsys):
    await make_history(mem)
    await mem.set_status("deployments", "web", {"observedGeneration": 1, "conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})
    assert await run_cli("rollout", "status", "deployment/web") == 1
    assert capsys.readouterr().err == 'error: deployment "web" exceeded its progress deadline\n'


async def test_daemonset_history_without_controllerrevisions_says_so(mem, capsys):
    await mem.put({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
                   "spec": {"selector": {"matchLabels": {"app": "ds"}},
                            "template": {"metadata": {"labels": {"app": "ds"}},
                                         "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    mem.missing.add("controllerrevisions")
    assert await run_cli("rollout", "history", "ds/ds") == 1
    assert "unable to find history controlled by DaemonSet ds" in capsys.readouterr().err


def revision(n: int, image: str, cause: str = "") -> dict:
    annotations = {rollout.CHANGE_CAUSE_ANNOTATION: cause} if cause else {}
    return {"metadata": {"name": f"ds-{n}", "annotations": annotations}, "revision": n,
            "data": {"spec": {"template": {"$patch": "replace", "metadata": {"labels": {}},
                                           "spec": {"containers": [{"name": "c",
                                                                    "image": image}]}}}}}


def test_controller_revision_history_choice_and_template():
    history = rollout.controller_history([revision(1, "a", "first"), revision(3, "c"),
                                          revision(2, "b")])
    assert rollout.history_table({r: rollout._change_cause(h) for r, h in history.items()}) == \
        "REVISION  CHANGE-CAUSE\n1         first\n2         <none>\n3         <none>\n"
    assert rollout.choose_controller_revision(history, 0)["revision"] == 2
    assert rollout.choose_controller_revision(history, 1)["revision"] == 1
    assert rollout.revision_template(history[1]) == {
        "metadata": {"labels": {}}, "spec": {"containers": [{"name": "c", "image": "a"}]}}
    with pytest.raises(CliError, match="^unable to find specified revision 7 in history$"):
        rollout.choose_controller_revision(history, 7)
    with pytest.raises(CliError, match="^no last revision to roll back to$"):
        rollout.choose_controller_revision({1: revision(1, "a")}, 0)
    ds = {"kind": "DaemonSet", "spec": {"template": {"spec": {}}, "selector": {}}}
    assert rollout.applied_revision(ds, rollout.revision_template(history[2]))["spec"] == {
        "template": {"metadata": {"labels": {}}, "spec": {"containers": [
            {"name": "c", "image": "b"}]}}, "selector": {}}


@pytest.mark.parametrize("encode", [
    json.dumps, lambda d: base64.b64encode(json.dumps(d).encode()).decode()],
    ids=["json-text", "base64"])
def test_revision_data_may_be_text(encode):
    h = revision(1, "a")
    h["data"] = encode(h["data"])
    assert rollout.revision_template(h)["spec"]["containers"][0]["image"] == "a"
    h["data"] = "%%%"
    with pytest.raises(CliError, match="^unable to parse history ds-1$"):
        rollout.revision_template(h)


async def test_history_as_yaml_prints_the_replicasets(mem, capsys):
    await make_history(mem)
    assert await run_cli("rollout", "history", "deploy/web", "--revision=1", "-o",
                         "jsonpath={.metadata.name}") == 0
    assert capsys.readouterr().out == "web-blue"


@pytest.mark.parametrize("argv,err", [
    (["rollout", "status", "rs/web-blue"],
     "error: no status viewer has been implemented for ReplicaSet.apps\n"),
    (["rollout", "history", "rs/web-blue"],
     'error: no history viewer has been implemented for "ReplicaSet.apps"\n'),
    (["rollout", "undo", "rs/web-blue"],
     'error: no rollbacker has been implemented for "ReplicaSet.apps"\n'),
    (["rollout", "pause", "rs/web-blue"],
     'error: replicasets.apps "web-blue" pausing is not supported\n'),
], ids=["status", "history", "undo", "pause"])
async def test_kinds_without_rollouts(mem, capsys, argv, err):
    await make_history(mem)
    assert await run_cli(*argv) == 1
    assert capsys.readouterr().err == err


async def test_daemonset_undo_applies_the_revisions_data(mem, capsys, monkeypatch):
    """ControllerRevisions are not served in this build: the history is handed in, the
    strategic patch ($patch: replace of the template) goes to the real registry."""
    ds = await mem.put({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
        "spec": {"selector": {"matchLabels": {"app": "ds"}},
                 "template": {"metadata": {"labels": {"app": "ds", "extra": "x"}},
                              "spec": {"containers": [{"name": "c", "image": "new"},
                                                      {"name": "side", "image": "s"}]}}}})
    old = {"metadata": {"name": "ds-1", "ownerReferences": [
               {"uid": ds.metadata.uid, "controller": True}]},
           "revision": 1,
           "data": {"spec": {"template": {
               "$patch": "replace", "metadata": {"labels": {"app": "ds"}},
               "spec": {"containers": [{"name": "c", "image": "old"}]}}}}}
    current = json.loads(json.dumps(old))
    current["revision"] = 2

    async def history(client, owner):
        return [old, current]
    monkeypatch.setattr(rollout, "_controller_revisions", history)
    assert await run_cli("rollout", "undo", "ds/ds") == 0
    assert capsys.readouterr().out == "daemonset.apps/ds rolled back\n"
    template = (await mem.doc("daemonsets", "ds"))["spec"]["template"]
    assert template["metadata"]["labels"] == {"app": "ds"}
    assert [(c["name"], c["image"]) for c in template["spec"]["containers"]] == [("c", "old")]
