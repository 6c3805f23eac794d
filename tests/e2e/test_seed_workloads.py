"""The seed notes' workload walkthroughs (shared/seeds/): Deployments,
ReplicaSets, a StatefulSet and Jobs, run as a reader would:
their manifests (tests/unit/test_seed_manifests.py: verbatim where the notes
kept them whole, restored where they lost their key-only lines) and their
commands, word for word, through `kubemu` on a real cluster (the whole
control plane with the fast profile, two nodes). What is checked is what the
notes show or a reader sees: kubectl's output, column by column where the
notes print it, and the objects the commands leave behind.

The cluster is this module's own, so the commands run in the default
namespace as the notes' do; each test deletes what it created and waits for
the garbage collector to take the dependents. Replica counts stay small.

The images are the built-in catalog's (kubelet/runtime/images.py): nginx-slim
(seed 000's StatefulSet) is nginx's stand-in, kubernetes-bootcamp (seed 001)
the tutorial's server.js.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import urllib.request

import pytest
import yaml

from kubemu.client.wait import wait_for_sync
from tests.e2e.test_kubelet import (CLI_TIMEOUT_S, REPO, ClusterThread, Seen, serving,
                                    workload_control_plane)
from tests.unit.test_seed_manifests import (KUARD, KUARD_DEPLOYMENT, NGINX_DEPLOYMENT,
                                            ONESHOT_JOB, PARALLEL_JOB, WEB_STATEFULSET)

pytestmark = pytest.mark.e2e

WAIT_S = 90.0
GREEN = KUARD.replace(":blue", ":green")
AGE = r"\d+(s|m\d*s?)"   # kubectl's short ages: 7s, 2m3s, 3m

# seed 004, line 1915 (the notes have `image: ""`; the book runs kuard).
KUARD_REPLICASET = f"""\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: kuard
spec:
  replicas: 1
  selector:
    matchLabels:
      app: kuard
      version: "2"
  template:
    metadata:
      labels:
        app: kuard
        version: "2"
    spec:
      containers:
        - name: kuard
          image: "{GREEN}"
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("seed-workloads-home")
    yield from serving(ClusterThread(home, nodes=2, kinds=workload_control_plane()))


@pytest.fixture
def workdir(tmp_path):
    """Where the reader keeps the manifests: the commands run here."""
    return tmp_path


def kubemu(cluster: ClusterThread, workdir: pathlib.Path, *args: str
           ) -> subprocess.CompletedProcess:
    """tests.e2e.test_kubelet.kubemu, run from the reader's directory (so `-f NAME`
    and the command line `--record` writes are the notes' own)."""
    env = dict(os.environ, KUBEMU_HOME=str(cluster.home),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "kubemu.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, cwd=workdir)


def ok(cluster, workdir, *args: str) -> str:
    got = kubemu(cluster, workdir, *args)
    assert got.returncode == 0, (args, got.stdout, got.stderr)
    return got.stdout


def columns(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines()]


def jsonpath(cluster, workdir, what: str, template: str) -> str:
    return ok(cluster, workdir, "get", *what.split(), "-o", f"jsonpath={template}")


def wait_jsonpath(cluster, workdir, what: str, template: str, want: str,
                  timeout_s: float = WAIT_S) -> None:
    def seen():
        got = kubemu(cluster, workdir, "get", *what.split(), "-o", f"jsonpath={template}")
        return True if got.returncode == 0 and got.stdout == want else Seen(
            [got.stdout, got.stderr])
    wait_for_sync(seen, timeout_s, interval_s=0.3, message=f"{what} {template} == {want!r}")


def wait_gone(cluster, workdir, what: str, timeout_s: float = WAIT_S) -> None:
    def gone():   # a list comes back empty, a named object NotFound
        got = kubemu(cluster, workdir, "get", *what.split(), "-o", "name")
        return True if (got.returncode, got.stdout) == (0, "") or (
            got.returncode == 1 and "(NotFound)" in got.stderr) else Seen(
                [got.stdout, got.stderr])
    wait_for_sync(gone, timeout_s, interval_s=0.3, message=f"{what} gone")


DEPLOYMENT_WAITING = re.compile(
    r'Waiting for deployment "(?P<name>[a-z-]+)" rollout to finish: ('
    r"\d+ out of \d+ new replicas have been updated|\d+ old replicas are pending termination|"
    r"\d+ of \d+ updated replicas are available)\.\.\.$"
    r"|Waiting for deployment spec update to be observed\.\.\.$")


def rollout_status(cluster, workdir, *what: str) -> list[str]:
    """`rollout status` to its end: every line is one of kubectl's, the last says done."""
    lines = ok(cluster, workdir, "rollout", "status", *what, "--timeout=50s").splitlines()
    name = what[-1].split("/")[-1]
    assert lines[-1] == f'deployment "{name}" successfully rolled out', lines
    assert all(DEPLOYMENT_WAITING.match(line) for line in lines[:-1]), lines
    return lines


def pod_template_hash(cluster, workdir, rs: str) -> str:
    return jsonpath(cluster, workdir, f"rs {rs}", "{.metadata.labels.pod-template-hash}")


def replicasets(cluster, workdir, selector: str) -> dict[str, list[str]]:
    """`get replicasets --selector=...` by name, the header checked."""
    rows = columns(ok(cluster, workdir, "get", "replicasets", f"--selector={selector}"))
    assert rows[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    return {row[0]: row[1:] for row in rows[1:]}


def kuard_manifest(image: str, cause: str, replicas: int = 2) -> str:
    """Seed 004 lines 2186-2251: the kuard Deployment with the book's strategy, the
    new image and the change-cause annotated on the pod template."""
    doc = yaml.safe_load(KUARD_DEPLOYMENT)
    doc["spec"]["replicas"] = replicas
    doc["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1},
                               "type": "RollingUpdate"}
    template = doc["spec"]["template"]
    template["metadata"]["annotations"] = {"kubernetes.io/change-cause": cause}
    template["spec"]["containers"][0].update(image=image, imagePullPolicy="Always")
    return yaml.safe_dump(doc, sort_keys=False)


# ---------------------------------------------------------------- seed 004 §10

def test_kuard_deployment_as_the_book_walks_it(cluster, workdir):
    k = lambda *args: ok(cluster, workdir, *args)  # noqa: E731
    (workdir / "kuard-deployment.yaml").write_text(KUARD_DEPLOYMENT)
    assert k("create", "-f", "kuard-deployment.yaml") == "deployment.apps/kuard created\n"
    assert k("get", "deployments", "kuard", "-o", "jsonpath", "--template",
             "{.spec.selector.matchLabels}") == '{"run":"kuard"}'
    rollout_status(cluster, workdir, "deployments", "kuard")
    (first,) = replicasets(cluster, workdir, "run=kuard")
    assert first == f"kuard-{pod_template_hash(cluster, workdir, first)}"

    # "Resize the deployment", then the ReplicaSet: the Deployment sets it back to 2.
    assert k("scale", "deployments", "kuard", "--replicas=2") == "deployment.apps/kuard scaled\n"
    rollout_status(cluster, workdir, "deployments", "kuard")
    assert replicasets(cluster, workdir, "run=kuard")[first][:3] == ["2", "2", "2"]
    assert k("scale", "rs", first, "--replicas=1") == f"replicaset.apps/{first} scaled\n"
    wait_jsonpath(cluster, workdir, f"rs {first}", "{.spec.replicas}/{.status.readyReplicas}",
                  "2/2")
    rows = columns(k("get", "deployments"))
    assert rows[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows[1][:4] == ["kuard", "2/2", "2", "2"] and re.fullmatch(AGE, rows[1][4])
    def two_running():   # the pod the ReplicaSet deleted may still be terminating
        pods = columns(k("get", "pods", "-l", "run=kuard"))
        return pods if [p[1:4] for p in pods[1:]] == [["1/1", "Running", "0"]] * 2 \
            else Seen(pods)
    pods = wait_for_sync(two_running, WAIT_S, interval_s=0.3, message="2 kuard pods Running")
    assert pods[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert all(re.fullmatch(rf"{first}-[a-z0-9]{{5}}", p[0]) for p in pods[1:])

    # `--export` is gone from kubectl (1.18); the book's replace still works.
    got = kubemu(cluster, workdir, "get", "deployments", "kuard", "--export", "-o", "yaml")
    assert (got.returncode, got.stderr) == (
        1, "error: unknown flag: --export\nSee 'kubemu get --help' for usage.\n")
    (workdir / "kuard-deployment.yml").write_text(k("get", "deployments", "kuard", "-o", "yaml"))
    assert k("replace", "-f", "kuard-deployment.yml", "--save-config") == \
        "deployment.apps/kuard replaced\n"

    described = k("describe", "deployments", "kuard")
    for line in ("Name:                   kuard",
                 "Namespace:              default",
                 "Selector:               run=kuard",
                 "Replicas:               2 desired | 2 updated | 2 total | 2 available | "
                 "0 unavailable",
                 "StrategyType:           RollingUpdate",
                 "MinReadySeconds:        0",
                 "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
                 "  Labels:  run=kuard",
                 "  Progressing    True    NewReplicaSetAvailable",
                 "  Available      True    MinimumReplicasAvailable",
                 "OldReplicaSets:  <none>",
                 f"NewReplicaSet:   {first} (2/2 replicas created)",
                 "Events:"):
        assert line in described.splitlines(), (line, described)
    events = described.split("Events:\n", 1)[1].splitlines()
    assert events[0].split() == ["Type", "Reason", "Age", "From", "Message"]
    scaling = [" ".join(e.split()) for e in events[2:]]
    assert any(re.fullmatch(rf"Normal ScalingReplicaSet {AGE} deployment-controller Scaled up "
                            rf"replica set {first} from 0 to 1", e) for e in scaling), scaling
    assert any(re.fullmatch(rf"Normal ScalingReplicaSet {AGE}( \(x\d+ over {AGE}\))? "
                            rf"deployment-controller Scaled up replica set {first} from 1 to 2",
                            e) for e in scaling), scaling

    # "Updating a Container Image": green, annotated on the template, applied.
    (workdir / "kuard-deployment.yaml").write_text(kuard_manifest(GREEN, "Update to green kuard"))
    assert k("apply", "-f", "kuard-deployment.yaml") == "deployment.apps/kuard configured\n"
    rollout_status(cluster, workdir, "deployments", "kuard")
    wide = columns(k("get", "replicasets", "-o", "wide"))
    assert wide[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES",
                       "SELECTOR"]
    (second,) = set(replicasets(cluster, workdir, "run=kuard")) - {first}
    rows = {row[0]: row for row in wide[1:]}
    assert rows[first][1:4] == ["0", "0", "0"] and rows[first][5:] == [
        "kuard", KUARD, f"pod-template-hash={first.removeprefix('kuard-')},run=kuard"]
    assert rows[second][1:4] == ["2", "2", "2"] and rows[second][5:] == [
        "kuard", GREEN, f"pod-template-hash={second.removeprefix('kuard-')},run=kuard"]

    assert k("rollout", "pause", "deployments", "kuard") == "deployment.apps/kuard paused\n"
    assert k("rollout", "resume", "deployments", "kuard") == "deployment.apps/kuard resumed\n"

    assert k("rollout", "history", "deployment", "kuard") == (
        "deployment.apps/kuard \n"
        "REVISION  CHANGE-CAUSE\n"
        "1         <none>\n"
        "2         Update to green kuard\n\n")
    assert k("rollout", "history", "deployment", "kuard", "--revision=2").startswith(
        "deployment.apps/kuard with revision #2\n"
        "Pod Template:\n"
        f"  Labels:\tpod-template-hash={second.removeprefix('kuard-')}\n"
        "\trun=kuard\n"
        "  Annotations:\tkubernetes.io/change-cause: Update to green kuard\n"
        "  Containers:\n"
        "   kuard:\n"
        f"    Image:\t{GREEN}\n")

    # "Change the version and annotation back to blue and apply."
    (workdir / "kuard-deployment.yaml").write_text(kuard_manifest(KUARD, "Update to blue kuard"))
    assert k("apply", "-f", "kuard-deployment.yaml") == "deployment.apps/kuard configured\n"
    rollout_status(cluster, workdir, "deployments", "kuard")
    assert k("rollout", "history", "deployment", "kuard").splitlines()[1:] == [
        "REVISION  CHANGE-CAUSE", "1         <none>", "2         Update to green kuard",
        "3         Update to blue kuard", ""]

    # "To rollback to the green kuard": revision 2 comes back as 4.
    assert k("rollout", "undo", "deployments", "kuard") == "deployment.apps/kuard rolled back\n"
    rollout_status(cluster, workdir, "deployments", "kuard")
    assert k("rollout", "history", "deployment", "kuard").splitlines()[2:] == [
        "1         <none>", "3         Update to blue kuard", "4         Update to green kuard",
        ""]
    wait_jsonpath(cluster, workdir, "pods -l run=kuard",
                  "{range .items[*]}{.spec.containers[0].image} {end}", f"{GREEN} {GREEN} ")
    wide = {row[0]: row for row in columns(k("get", "rs", "-o", "wide"))[1:]}
    assert wide[second][1:4] == ["2", "2", "2"]
    assert [wide[name][1:4] for name in wide if name != second] == [["0", "0", "0"]] * 2

    # "Rollback to a specific version in history ... It creates a new revision 5"
    assert k("rollout", "undo", "deployments", "kuard", "--to-revision=3") == \
        "deployment.apps/kuard rolled back\n"
    rollout_status(cluster, workdir, "deployments", "kuard")
    assert k("rollout", "history", "deployment", "kuard").splitlines()[2:] == [
        "1         <none>", "4         Update to green kuard", "5         Update to blue kuard",
        ""]
    described = k("describe", "deployments", "kuard").splitlines()
    new = next(line for line in described if line.startswith("NewReplicaSet:"))
    assert re.fullmatch(r"NewReplicaSet:   kuard-[a-z0-9]+ \(2/2 replicas created\)", new)
    old = next(line for line in described if line.startswith("OldReplicaSets:"))
    assert sorted(old.removeprefix("OldReplicaSets:  ").split(", ")) == sorted(
        f"{name} (0/0 replicas created)" for name in (first, second))
    assert "RollingUpdateStrategy:  1 max unavailable, 1 max surge" in described
    assert any("Scaled down replica set" in line for line in described), described

    # "Deleting the deployment deletes all replicasets and pods."
    assert k("delete", "-f", "kuard-deployment.yaml") == 'deployment.apps "kuard" deleted\n'
    wait_gone(cluster, workdir, "rs -l run=kuard")
    wait_gone(cluster, workdir, "pods -l run=kuard")


# ---------------------------------------------------------------- seeds 000, 002, 003

def test_nginx_deployment_scaled_updated_paused_and_recorded(cluster, workdir):
    k = lambda *args: ok(cluster, workdir, *args)  # noqa: E731
    (workdir / "nginx-deployment.yaml").write_text(NGINX_DEPLOYMENT)
    # seed 000, line 735: `kubectl apply -f foo.yaml --record`
    got = kubemu(cluster, workdir, "apply", "-f", "nginx-deployment.yaml", "--record")
    assert (got.returncode, got.stdout, got.stderr) == (
        0, "deployment.apps/nginx-deployment created\n",
        "Flag --record has been deprecated, --record will be removed in the future\n")
    rollout_status(cluster, workdir, "deployment/nginx-deployment")
    rows = columns(k("get", "deployments", "nginx-deployment"))
    assert rows[1][:4] == ["nginx-deployment", "3/3", "3", "3"]

    # seed 000, line 772: the notes' typo is named as pflag names it.
    got = kubemu(cluster, workdir, "scale", "deployments", "nginx-deployment", "--replicaa=10")
    assert (got.returncode, got.stdout, got.stderr) == (
        1, "", "error: unknown flag: --replicaa\nSee 'kubemu scale --help' for usage.\n")
    # seed 002, line 5605 (to 2 here, not 10: two cores) and seed 000, line 793
    assert k("scale", "deployment", "nginx-deployment", "--replicas=2") == \
        "deployment.apps/nginx-deployment scaled\n"
    rollout_status(cluster, workdir, "deployment/nginx-deployment")
    assert k("scale", "deployments", "nginx-deployment", "--replicas=3") == \
        "deployment.apps/nginx-deployment scaled\n"
    rollout_status(cluster, workdir, "deployment/nginx-deployment")

    # seed 000, line 801
    assert k("set", "image", "deployment/nginx-deployment", "nginx=nginx:1.9.1") == \
        "deployment.apps/nginx-deployment image updated\n"
    rollout_status(cluster, workdir, "deployment/nginx-deployment")
    # The Deployment's change-cause is still apply's: the new ReplicaSet copies it.
    cause = "kubemu apply --filename=nginx-deployment.yaml --record=true"
    assert k("rollout", "history", "deployment/nginx-deployment") == (
        "deployment.apps/nginx-deployment \n"
        "REVISION  CHANGE-CAUSE\n"
        f"1         {cause}\n"
        f"2         {cause}\n\n")

    # seed 000, lines 737-757: pause, change while paused, no rollback, resume.
    assert k("rollout", "pause", "deployment/nginx-deployment") == \
        "deployment.apps/nginx-deployment paused\n"
    got = kubemu(cluster, workdir, "rollout", "pause", "deployment/nginx-deployment")
    assert (got.returncode, got.stderr) == (
        1, 'error: deployments.apps "nginx-deployment" is already paused\n')
    assert k("set", "image", "deployment/nginx-deployment", "nginx=nginx:1.9.2") == \
        "deployment.apps/nginx-deployment image updated\n"
    wait_jsonpath(cluster, workdir, "deployment nginx-deployment",
                  "{.status.observedGeneration}", jsonpath(
                      cluster, workdir, "deployment nginx-deployment", "{.metadata.generation}"))
    assert k("rollout", "status", "deployment/nginx-deployment", "--watch=false") == (
        'Waiting for deployment "nginx-deployment" rollout to finish: 0 out of 3 new replicas '
        "have been updated...\n")
    got = kubemu(cluster, workdir, "rollout", "undo", "deployment/nginx-deployment")
    assert (got.returncode, got.stderr) == (
        1, "error: you cannot rollback a paused deployment; resume it first with 'kubectl "
           "rollout resume' and try again\n")
    wait_jsonpath(cluster, workdir, "pods -l app=nginx",
                  "{range .items[*]}{.spec.containers[0].image} {end}", "nginx:1.9.1 " * 3)
    assert k("rollout", "resume", "deploy/nginx-deployment") == \
        "deployment.apps/nginx-deployment resumed\n"
    rollout_status(cluster, workdir, "deployment/nginx-deployment")
    # seed 003, line 652
    assert k("rollout", "undo", "deployment/nginx-deployment", "--to-revision=2") == \
        "deployment.apps/nginx-deployment rolled back\n"
    rollout_status(cluster, workdir, "deployment/nginx-deployment")
    assert k("rollout", "history", "deployment/nginx-deployment").splitlines()[2:] == [
        f"1         {cause}", f"3         {cause}", f"4         {cause}", ""]
    wait_jsonpath(cluster, workdir, "pods -l app=nginx",
                  "{range .items[*]}{.spec.containers[0].image} {end}", "nginx:1.9.1 " * 3)

    assert k("delete", "-f", "nginx-deployment.yaml") == \
        'deployment.apps "nginx-deployment" deleted\n'
    wait_gone(cluster, workdir, "rs -l app=nginx")
    wait_gone(cluster, workdir, "pods -l app=nginx")


# ---------------------------------------------------------------- seed 004 §9

def test_kuard_replicaset_as_the_book_walks_it(cluster, workdir):
    k = lambda *args: ok(cluster, workdir, *args)  # noqa: E731
    (workdir / "kuard-rs.yml").write_text(KUARD_REPLICASET)
    assert k("apply", "-f", "kuard-rs.yml") == "replicaset.apps/kuard created\n"
    wait_jsonpath(cluster, workdir, "rs kuard", "{.status.readyReplicas}", "1")
    pods = columns(k("get", "pods", "-l", "app=kuard"))
    assert len(pods) == 2 and pods[1][1:4] == ["1/1", "Running", "0"]
    (pod,) = [row[0] for row in pods[1:]]
    assert re.fullmatch(r"kuard-[a-z0-9]{5}", pod)
    rows = columns(k("get", "rs"))
    assert rows[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert [r[:4] for r in rows[1:]] == [["kuard", "1", "1", "1"]]

    described = k("describe", "rs", "kuard").splitlines()
    for line in ("Name:         kuard", "Namespace:    default",
                 "Selector:     app=kuard,version=2",
                 "Replicas:     1 current / 1 desired",
                 "Pods Status:  1 Running / 0 Waiting / 0 Succeeded / 0 Failed",
                 "Pod Template:", "  Labels:  app=kuard", "           version=2"):
        assert line in described, (line, described)
    assert any(re.fullmatch(rf"  Normal  SuccessfulCreate  {AGE} +replicaset-controller  "
                            rf"Created pod: {pod}", line) for line in described), described

    # "Finding a Replicaset from a pod": the ownerReference.
    owner = yaml.safe_load(k("get", "pods", pod, "-o", "yaml"))["metadata"]["ownerReferences"]
    assert [{key: ref[key] for key in ("apiVersion", "blockOwnerDeletion", "controller", "kind",
                                       "name")} for ref in owner] == [
        {"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
         "kind": "ReplicaSet", "name": "kuard"}]
    assert columns(k("get", "pods", "-l", "app=kuard,version=2"))[1][0] == pod

    assert k("scale", "replicasets", "kuard", "--replicas=4") == "replicaset.apps/kuard scaled\n"
    wait_jsonpath(cluster, workdir, "rs kuard", "{.status.readyReplicas}", "4")
    (workdir / "kuard-rs.yml").write_text(KUARD_REPLICASET.replace("replicas: 1", "replicas: 3"))
    assert k("apply", "-f", "kuard-rs.yml") == "replicaset.apps/kuard configured\n"
    wait_jsonpath(cluster, workdir, "rs kuard",
                  "{.status.replicas}/{.status.readyReplicas}", "3/3")

    # "Delete a replicaset without deleting the pods" (kubectl's deprecated spelling).
    got = kubemu(cluster, workdir, "delete", "rs", "kuard", "--cascade=false")
    assert (got.returncode, got.stdout, got.stderr) == (
        0, 'replicaset.apps "kuard" deleted\n',
        "warning: --cascade=false is deprecated (boolean value) and can be replaced with "
        "--cascade=orphan.\n")
    wait_gone(cluster, workdir, "rs kuard")
    orphans = json.loads(k("get", "pods", "-l", "app=kuard", "-o", "json"))["items"]
    assert len(orphans) == 3
    assert all(not p["metadata"].get("ownerReferences") for p in orphans), orphans
    assert k("delete", "pods", "-l", "app=kuard", "--grace-period=1").count("deleted") == 3
    wait_gone(cluster, workdir, "pods -l app=kuard")


# ---------------------------------------------------------------- seed 000, line 830

def test_web_statefulset_starts_in_order_and_reports_its_rollout(cluster, workdir):
    k = lambda *args: ok(cluster, workdir, *args)  # noqa: E731
    (workdir / "web.yaml").write_text(WEB_STATEFULSET)
    assert k("apply", "-f", "web.yaml") == "statefulset.apps/web created\n"
    lines = k("rollout", "status", "statefulset/web", "--timeout=50s").splitlines()
    assert lines[-1] == "partitioned roll out complete: 2 new pods have been updated...", lines
    assert all(re.fullmatch(r"Waiting for [12] pods to be ready\.\.\.|"
                            r"Waiting for statefulset spec update to be observed\.\.\.", line)
               for line in lines[:-1]), lines
    rows = columns(k("get", "statefulsets"))
    assert rows[0] == ["NAME", "READY", "AGE"] and rows[1][:2] == ["web", "2/2"]
    pods = columns(k("get", "pods", "-l", "app=nginx"))
    assert [(p[0], p[1], p[2]) for p in pods[1:]] == [("web-0", "1/1", "Running"),
                                                      ("web-1", "1/1", "Running")]
    # ordered: web-1 was created only after web-0 was Ready
    ready_0 = json.loads(k("get", "pod", "web-0", "-o", "json"))["status"]["conditions"]
    ready_at = next(c["lastTransitionTime"] for c in ready_0 if c["type"] == "Ready")
    created_1 = jsonpath(cluster, workdir, "pod web-1", "{.metadata.creationTimestamp}")
    assert created_1 >= ready_at
    assert jsonpath(cluster, workdir, "pvc", "{range .items[*]}{.metadata.name} {end}") == \
        "www-web-0 www-web-1 "

    described = k("describe", "statefulset", "web").splitlines()
    for line in ("Name:               web", "Selector:           app=nginx",
                 "Replicas:           2 desired | 2 total",
                 "Update Strategy:    RollingUpdate", "  Partition:        0",
                 "Pods Status:        2 Running / 0 Waiting / 0 Succeeded / 0 Failed",
                 "      /usr/share/nginx/html from www (rw)", "Volume Claims:",
                 "  Name:          www", "  Capacity:      1Gi",
                 "  Access Modes:  [ReadWriteOnce]"):
        assert line in described, (line, described)
    assert any(re.fullmatch(rf"  Normal  SuccessfulCreate  {AGE} +statefulset-controller  "
                            r"create Pod web-1 in StatefulSet web successful", line)
               for line in described), described
    assert k("rollout", "history", "statefulset/web") == (
        "statefulset.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n\n")

    assert k("delete", "-f", "web.yaml") == 'statefulset.apps "web" deleted\n'
    wait_gone(cluster, workdir, "pods -l app=nginx")


# ---------------------------------------------------------------- seed 004 §12

def test_parallel_job_generates_its_keys_and_completes(cluster, workdir):
    k = lambda *args: ok(cluster, workdir, *args)  # noqa: E731
    (workdir / "job-parallel.yaml").write_text(PARALLEL_JOB)
    assert k("apply", "-f", "job-parallel.yaml") == "job.batch/parallel created\n"
    wait_jsonpath(cluster, workdir, "job parallel", "{.status.succeeded}", "10")
    rows = columns(k("get", "jobs"))
    assert rows[0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert rows[1][:3] == ["parallel", "Complete", "10/10"]

    described = k("describe", "job", "parallel").splitlines()
    for line in ("Name:             parallel", "Labels:           chapter=jobs",
                 "Parallelism:      5", "Completions:      10",
                 "Completion Mode:  NonIndexed",
                 "Pods Statuses:    0 Active (0 Ready) / 10 Succeeded / 0 Failed",
                 "    Command:", "      /kuard", "    Args:", "      --keygen-enable"):
        assert line in described, (line, described)
    assert any(re.fullmatch(rf"  Normal  Completed         {AGE} +job-controller  Job completed",
                            line) for line in described), described
    created = [line for line in described if "Created pod: parallel-" in line]
    assert len(created) == 10, described

    # "Then get the logs of the pod to view the keys generated"
    pods = json.loads(k("get", "pods", "-l", "chapter=jobs", "-o", "json"))["items"]
    assert len(pods) == 10 and {p["status"]["phase"] for p in pods} == {"Succeeded"}
    log = k("logs", pods[0]["metadata"]["name"])
    assert log.count("Item done: SHA256:") == 10 and "Workload exiting" in log

    assert k("delete", "rs,svc,job", "-l", "chapter=jobs") == 'job.batch "parallel" deleted\n'
    wait_gone(cluster, workdir, "pods -l chapter=jobs")


def test_oneshot_job_without_a_command_fails_as_the_notes_found(cluster, workdir):
    """Seed 004 line 2600 ("I think the job failed for me") and line 2741: kuard's
    image has a CMD, not an ENTRYPOINT, so args alone are the program to run."""
    k = lambda *args: ok(cluster, workdir, *args)  # noqa: E731
    (workdir / "job-oneshot.yaml").write_text(ONESHOT_JOB)
    assert k("apply", "-f", "job-oneshot.yaml") == "job.batch/oneshot created\n"

    def failed_to_start():
        events = k("get", "events", "--field-selector", "reason=Failed")
        return events if 'exec: "--keygen-enable": executable file not found in $PATH' \
            in events else Seen(events)
    wait_for_sync(failed_to_start, WAIT_S, interval_s=0.5, message="the notes' exec error")
    rows = columns(k("get", "jobs"))
    assert rows[1][:3] == ["oneshot", "Running", "0/1"]
    assert k("delete", "jobs", "oneshot") == 'job.batch "oneshot" deleted\n'
    wait_gone(cluster, workdir, "pods -l job-name=oneshot")


# ---------------------------------------------------------------- seed 004, line 2599

def test_run_i_oneshot_waits_for_a_pod_that_never_runs(cluster, workdir):
    """`kubectl run -i oneshot --restart=OnFailure -- --keygen-enable ...`: the
    args replace kuard's CMD, so the container cannot start ("I think the job
    failed for me"); -i waits for the pod to run, and says when it gives up."""
    env = dict(os.environ, KUBEMU_HOME=str(cluster.home))
    got = subprocess.run(
        [sys.executable, "-m", "kubemu.cli.main", "run", "-i", "oneshot", f"--image={KUARD}",
         "--restart=OnFailure", "--pod-running-timeout=10s", "--", "--keygen-enable",
         "--keygen-exit-on-complete", "--keygen-num-to-gen", "10"],
        env=env, input="", capture_output=True, text=True, timeout=CLI_TIMEOUT_S, cwd=workdir)
    assert (got.returncode, got.stdout, got.stderr) == (
        1, "", "error: timed out waiting for the condition\n")
    pod = json.loads(ok(cluster, workdir, "get", "pod", "oneshot", "-o", "json"))
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    assert pod["spec"]["containers"][0]["args"][0] == "--keygen-enable"
    ready = [c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["False"], pod["status"]   # restarted over and over, never started
    assert ok(cluster, workdir, "delete", "pod", "oneshot") == 'pod "oneshot" deleted\n'
    wait_gone(cluster, workdir, "pod oneshot")


# ---------------------------------------------------------------- seed 001, line 268

BOOTCAMP = "gcr.io/google-samples/kubernetes-bootcamp:v1"


def bootcamp_answers(cluster, workdir, replicas: int, version: str) -> dict[str, str]:
    """Each Running bootcamp pod asked at its IP, port 8080: pod name -> answer."""
    def answers():
        pods = json.loads(ok(cluster, workdir, "get", "pods", "-l", "app=kubernetes-bootcamp",
                             "-o", "json"))["items"]
        live = [p for p in pods if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]
        if len(live) != replicas:
            return Seen([(p["metadata"]["name"], p["status"].get("phase")) for p in pods])
        got = {}
        for pod in live:
            url = f"http://{pod['status']['podIP']}:8080/"
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    got[pod["metadata"]["name"]] = resp.read().decode()
            except OSError as err:
                return Seen(f"{url}: {err}")
        return got if all(f"| v={version}" in a for a in got.values()) else Seen(got)
    return wait_for_sync(answers, WAIT_S, interval_s=0.5,
                         message=f"{replicas} bootcamp pods answering v={version}")


def test_kubernetes_bootcamp_as_the_tutorial_walks_it(cluster, workdir):
    k = lambda *args: ok(cluster, workdir, *args)  # noqa: E731
    assert k("create", "deployment", "kubernetes-bootcamp", f"--image={BOOTCAMP}") == \
        "deployment.apps/kubernetes-bootcamp created\n"
    rollout_status(cluster, workdir, "deployments/kubernetes-bootcamp")
    (name, answer), = bootcamp_answers(cluster, workdir, 1, "1").items()
    assert answer == f"Hello Kubernetes bootcamp! | Running on: {name} | v=1\n"
    assert f"HOSTNAME={name}\n" in k("exec", name, "--", "env")
    log = k("logs", name).splitlines()
    assert re.fullmatch(rf"Kubernetes Bootcamp App Started At: \S+Z \| Running On:  {name} ",
                        log[0]), log
    assert any(line.startswith(f"Running On: {name} | Total Requests: 1 | ") for line in log)

    assert k("scale", "deployments/kubernetes-bootcamp", "--replicas=4") == \
        "deployment.apps/kubernetes-bootcamp scaled\n"
    assert len(bootcamp_answers(cluster, workdir, 4, "1")) == 4
    assert k("scale", "deployments/kubernetes-bootcamp", "--replicas=2") == \
        "deployment.apps/kubernetes-bootcamp scaled\n"
    rollout_status(cluster, workdir, "deployments/kubernetes-bootcamp")

    # "Update image of the application": the tutorial's v2.
    assert k("set", "image", "deployments/kubernetes-bootcamp",
             "kubernetes-bootcamp=jocatalin/kubernetes-bootcamp:v2") == \
        "deployment.apps/kubernetes-bootcamp image updated\n"
    rollout_status(cluster, workdir, "deployments/kubernetes-bootcamp")
    answers = bootcamp_answers(cluster, workdir, 2, "2")
    assert all(a == f"Hello Kubernetes bootcamp! | Running on: {n} | v=2\n"
               for n, a in answers.items()), answers

    assert k("delete", "deployment", "kubernetes-bootcamp") == \
        'deployment.apps "kubernetes-bootcamp" deleted\n'
    wait_gone(cluster, workdir, "pods -l app=kubernetes-bootcamp")
