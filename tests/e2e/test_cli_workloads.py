"""The workload verbs of issue 9 (scale, rollout, wait, patch, edit, replace, create
job|cronjob, delete --cascade) against a real apiserver over a real etcd.

No controller runs here: the tests write what controllers would (ReplicaSets
owned by the Deployment, status) themselves, so that the commands' requests
and printing are checked end to end through gRPC.
"""
from __future__ import annotations

import json

from tests.e2e.test_cli import Result, home, kubemu  # noqa: F401 - fixtures

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "kuard-amd64:blue", ports: [{containerPort: 8080}]}
"""


def test_scale_patch_and_rollout_verbs(kubemu, tmp_path, monkeypatch):  # noqa: F811
    assert kubemu("apply", "-f", "-", stdin=DEPLOYMENT).code == 0
    assert kubemu("scale", "deploy/web", "--replicas=10") == Result(
        0, "deployment.apps/web scaled\n", "")
    assert kubemu("scale", "deploy/web", "--replicas=3", "--current-replicas=2") == Result(
        1, "", "error: Expected replicas to be 2, was 10\n")
    # strategic (the default) merges the containers by name: the port stays
    assert kubemu("patch", "deploy", "web", "-p", json.dumps({"spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "kuard-amd64:green"}]}}}})) == Result(
        0, "deployment.apps/web patched\n", "")
    assert kubemu("get", "deploy/web", "-o",
                  "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}"
                  ).out == "8080"
    assert kubemu("patch", "deploy/web", "--type=json", "-p",
                  '[{"op":"replace","path":"/spec/replicas","value":3}]') == Result(
        0, "deployment.apps/web patched\n", "")
    assert kubemu("patch", "deploy/web", "--type=merge", "-p",
                  '{"spec":{"replicas":3}}') == Result(
        0, "deployment.apps/web patched (no change)\n", "")

    assert kubemu("rollout", "pause", "deploy/web") == Result(
        0, "deployment.apps/web paused\n", "")
    assert kubemu("rollout", "resume", "deploy/web") == Result(
        0, "deployment.apps/web resumed\n", "")
    assert kubemu("rollout", "restart", "deploy/web") == Result(
        0, "deployment.apps/web restarted\n", "")

    # What the deployment controller would have written: two revisions.
    uid = kubemu("get", "deploy/web", "-o", "jsonpath={.metadata.uid}").out
    for revision, color in ((1, "blue"), (2, "green")):
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"web-{color}",
                           "labels": {"app": "web", "pod-template-hash": color},
                           "annotations": {"deployment.kubernetes.io/revision": str(revision),
                                           "kubernetes.io/change-cause": f"to {color}"},
                           "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                "name": "web", "uid": uid,
                                                "controller": True}]},
              "spec": {"replicas": 0, "selector": {"matchLabels": {
                  "app": "web", "pod-template-hash": color}},
                       "template": {"metadata": {"labels": {"app": "web",
                                                            "pod-template-hash": color}},
                                    "spec": {"containers": [{"name": "web",
                                                             "image": f"kuard-amd64:{color}"}]}}}}
        assert kubemu("create", "-f", "-", stdin=json.dumps(rs)).code == 0
    assert kubemu("rollout", "history", "deployment/web") == Result(
        0, "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         to blue\n2         to green\n"
           "\n", "")
    assert kubemu("rollout", "undo", "deployment/web", "--to-revision=1") == Result(
        0, "deployment.apps/web rolled back\n", "")
    assert kubemu("get", "deploy/web", "-o",
                  "jsonpath={.spec.template.spec.containers[0].image}").out == "kuard-amd64:blue"
    assert kubemu("rollout", "undo", "deployment/web", "--to-revision=9") == Result(
        1, "", "error: unable to find specified revision 9 in history\n")

    generation = kubemu("get", "deploy/web", "-o", "jsonpath={.metadata.generation}").out
    status = {"status": {"observedGeneration": int(generation), "replicas": 3,
                         "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                         "conditions": [{"type": "Available", "status": "True"}]}}
    assert kubemu("patch", "deploy/web", "--subresource=status", "--type=merge",
                  "-p", json.dumps(status)).code == 0
    assert kubemu("rollout", "status", "deploy/web", "--watch=false") == Result(
        0, 'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are '
           "available...\n", "")
    assert kubemu("wait", "deploy/web", "--for=condition=Available") == Result(
        0, "deployment.apps/web condition met\n", "")
    assert kubemu("wait", "deploy/web", "--for=jsonpath={.status.availableReplicas}=3",
                  "--timeout=1s") == Result(
        1, "", "error: timed out waiting for the condition on deployments/web\n")

    monkeypatch.setenv("KUBE_EDITOR", "sed -i -e 's/replicas: 3/replicas: 4/'")
    assert kubemu("edit", "deploy/web") == Result(0, "deployment.apps/web edited\n", "")
    assert kubemu("get", "deploy/web", "-o", "jsonpath={.spec.replicas}").out == "4"

    assert kubemu("replace", "-f", "-", stdin=DEPLOYMENT) == Result(
        0, "deployment.apps/web replaced\n", "")
    assert kubemu("get", "deploy/web", "-o", "jsonpath={.spec.replicas}").out == "2"

    assert kubemu("delete", "deploy/web", "--cascade=orphan", "--wait=false") == Result(
        0, 'deployment.apps "web" deleted\n', "")


def test_create_job_and_cronjob(kubemu):  # noqa: F811
    assert kubemu("create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *",
                  "--", "date") == Result(0, "cronjob.batch/tick created\n", "")
    assert kubemu("create", "job", "once", "--from=cronjob/tick") == Result(
        0, "job.batch/once created\n", "")
    job = json.loads(kubemu("get", "job/once", "-o", "json").out)
    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["date"]
    assert kubemu("create", "job", "hello", "--image=busybox", "--", "echo", "hi") == Result(
        0, "job.batch/hello created\n", "")


def test_rollout_status_and_wait_follow_the_watch(kubemu, home):  # noqa: F811
    """Both commands list, then watch from the list's resourceVersion: each status
    change made while they run is seen, and they end when the rollout is done."""
    import os
    import subprocess
    import sys

    from tests.support import REPO

    assert kubemu("apply", "-f", "-", stdin=DEPLOYMENT).code == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "kubemu.cli.main", "--home", str(home)]
    status = subprocess.Popen([*base, "rollout", "status", "deploy/web", "--timeout=30s"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=REPO, env=env)
    waiter = subprocess.Popen([*base, "wait", "deploy/web", "--for=condition=Available",
                               "--timeout=30s"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        first = status.stdout.readline()
        assert first == "Waiting for deployment spec update to be observed...\n", first
        for available in (1, 2):
            change = {"status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                                 "readyReplicas": available, "availableReplicas": available}}
            if available == 2:
                change["status"]["conditions"] = [{"type": "Available", "status": "True"}]
            assert kubemu("patch", "deploy/web", "--subresource=status", "--type=merge",
                          "-p", json.dumps(change)).code == 0
            if available == 1:
                line = status.stdout.readline()
                assert line == ('Waiting for deployment "web" rollout to finish: 1 of 2 updated '
                                "replicas are available...\n"), line
        out, err = status.communicate(timeout=30)
        assert (status.returncode, out, err) == (
            0, 'deployment "web" successfully rolled out\n', "")
        out, err = waiter.communicate(timeout=30)
        assert (waiter.returncode, out, err) == (0, "deployment.apps/web condition met\n", "")
    finally:
        for proc in (status, waiter):
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
