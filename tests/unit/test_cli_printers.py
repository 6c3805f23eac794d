"""kubectl's output, table-driven: AGE, pod STATUS, per-kind columns, -o json|yaml shapes."""
from __future__ import annotations

import datetime
import json

import pytest

from kubemu.cli import printers
from kubemu.cli.printers import TableOptions
from tests.unit.cli_kubectl_objects import workload

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def ago(seconds: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, *, age_s: float = 30, **extra) -> dict:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(age_s), **extra}


# ---------------------------------------------------------------- AGE

@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"),
    (182, "3m2s"), (599, "9m59s"), (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"),
    (3 * 3600 + 300, "3h5m"), (8 * 3600, "8h"), (47 * 3600 + 59 * 60, "47h"),
    (48 * 3600, "2d"), (50 * 3600, "2d2h"), (8 * 86400, "8d"), (400 * 86400, "400d"),
    (2 * 365 * 86400, "2y"), (2 * 365 * 86400 + 3 * 86400, "2y3d"), (9 * 365 * 86400, "9y"),
], ids=lambda v: str(v))
def test_human_duration(seconds, text):
    assert printers.human_duration(seconds) == text


@pytest.mark.parametrize("timestamp, text", [
    (ago(5), "5s"), (ago(182), "3m2s"), ("2024-05-01T11:59:58.500000Z", "1s"),
    ("", "<unknown>"), ("not a time", "<unknown>"), (ago(2 * 86400), "2d"),
], ids=["5s", "3m2s", "fraction-truncated", "empty", "garbage", "days"])
def test_since(timestamp, text):
    assert printers.since(timestamp, NOW) == text


# ---------------------------------------------------------------- pod STATUS

def cs(name="c", *, ready=False, restarts=0, state=None, last=None) -> dict:
    out = {"name": name, "ready": ready, "restartCount": restarts, "state": state or {}}
    if last:
        out["lastState"] = last
    return out


RUNNING = {"running": {"startedAt": ago(60)}}


def pod(statuses=(), *, containers=1, phase="Running", init=(), init_specs=0, deleting=False,
        reason="", conditions=()) -> dict:
    status = {"phase": phase, "containerStatuses": list(statuses)}
    if init:
        status["initContainerStatuses"] = list(init)
    if reason:
        status["reason"] = reason
    if conditions:
        status["conditions"] = [{"type": t, "status": s} for t, s in conditions]
    m = meta("p")
    if deleting:
        m["deletionTimestamp"] = ago(-30)
    return {"metadata": m,
            "spec": {"containers": [{"name": f"c{i}"} for i in range(containers)],
                     "initContainers": [{"name": f"i{i}"} for i in range(init_specs)]},
            "status": status}


@pytest.mark.parametrize("obj, ready, status, restarts", [
    (pod(phase="Pending", statuses=()), "0/1", "Pending", 0),
    (pod([cs(ready=True, state=RUNNING)]), "1/1", "Running", 0),
    (pod([cs(ready=False, state=RUNNING)]), "0/1", "Running", 0),
    (pod([cs(state={"waiting": {"reason": "ContainerCreating"}})], phase="Pending"),
     "0/1", "ContainerCreating", 0),
    (pod([cs(restarts=4, state={"waiting": {"reason": "CrashLoopBackOff"}})]),
     "0/1", "CrashLoopBackOff", 4),
    (pod([cs(state={"waiting": {"reason": "ErrImagePull"}})], phase="Pending"),
     "0/1", "ErrImagePull", 0),
    (pod([cs(state={"waiting": {"reason": "ImagePullBackOff"}})], phase="Pending"),
     "0/1", "ImagePullBackOff", 0),
    (pod([cs(state={"terminated": {"reason": "Completed", "exitCode": 0}})],
         phase="Succeeded"), "0/1", "Completed", 0),
    (pod([cs(state={"terminated": {"reason": "OOMKilled", "exitCode": 137}})],
         phase="Failed"), "0/1", "OOMKilled", 0),
    (pod([cs(state={"terminated": {"exitCode": 3}})], phase="Failed"), "0/1", "ExitCode:3", 0),
    (pod([cs(state={"terminated": {"exitCode": 137, "signal": 9}})], phase="Failed"),
     "0/1", "Signal:9", 0),
    (pod([cs(ready=True, state=RUNNING)], deleting=True), "1/1", "Terminating", 0),
    (pod([cs(state={"terminated": {"reason": "Completed"}})], phase="Succeeded",
         deleting=True), "0/1", "Completed", 0),
    (pod([], phase="Failed", reason="Evicted"), "0/1", "Evicted", 0),
    (pod([cs("a", ready=True, state=RUNNING),
          cs("b", state={"terminated": {"reason": "Completed"}})], containers=2,
         conditions=[("Ready", "False")]), "1/2", "NotReady", 0),
    (pod([cs("a", ready=True, state=RUNNING),
          cs("b", state={"terminated": {"reason": "Completed"}})], containers=2,
         conditions=[("Ready", "True")]), "1/2", "Running", 0),
    (pod([cs("a", ready=True, state=RUNNING, restarts=1),
          cs("b", ready=True, state=RUNNING, restarts=2)], containers=2), "2/2", "Running", 3),
    (pod([], phase="Pending", init_specs=2, init=[cs("i0", state={"running": {}})]),
     "0/1", "Init:0/2", 0),
    (pod([], phase="Pending", init_specs=1,
         init=[cs("i0", restarts=2, state={"waiting": {"reason": "CrashLoopBackOff"}})]),
     "0/1", "Init:CrashLoopBackOff", 2),
    (pod([], phase="Pending", init_specs=1,
         init=[cs("i0", state={"terminated": {"reason": "Error", "exitCode": 1}})]),
     "0/1", "Init:Error", 0),
    (pod([], phase="Pending", init_specs=1, init=[cs("i0", state={"terminated": {"exitCode": 2}})]),
     "0/1", "Init:ExitCode:2", 0),
], ids=["pending", "running", "running-not-ready", "creating", "crashloop", "errimagepull",
        "imagepullbackoff", "completed", "oomkilled", "exitcode", "signal", "terminating",
        "terminating-but-done", "evicted", "completed-sidecar-not-ready",
        "completed-sidecar-ready", "restarts-summed", "init-running", "init-crashloop",
        "init-error", "init-exitcode"])
def test_pod_status(obj, ready, status, restarts):
    got_ready, got_status, got_restarts, _ = printers.pod_status(obj)
    assert (got_ready, got_status, got_restarts) == (ready, status, restarts)


def _deleted(obj: dict, **status) -> dict:
    obj["metadata"]["deletionTimestamp"] = ago(-30)
    obj["status"].update(status)
    return obj


def _sidecar_pod(started: bool, ready: bool, restarts: int = 0) -> dict:
    obj = pod([cs("c0", ready=True, state=RUNNING)], conditions=[("Initialized", "True")])
    obj["spec"]["initContainers"] = [{"name": "proxy", "restartPolicy": "Always"}]
    obj["status"]["initContainerStatuses"] = [
        {**cs("proxy", ready=ready, restarts=restarts, state=RUNNING), "started": started}]
    return obj


# kubectl 1.32's printPod (kubernetes/pkg/printers/internalversion/printers.go):
# deletion wins over any container reason unless the phase is terminal, NodeLost
# shows Unknown, a scheduling gate shows SchedulingGated, sidecars (restartable init
# containers) count in READY and RESTARTS.
@pytest.mark.parametrize("obj, ready, status, restarts", [
    (_deleted(pod([cs(state={"waiting": {"reason": "CrashLoopBackOff"}}, restarts=5)])),
     "0/1", "Terminating", 5),
    (_deleted(pod([cs(state={"terminated": {"reason": "Error", "exitCode": 143}})])),
     "0/1", "Terminating", 0),
    (_deleted(pod([cs(state={"terminated": {"reason": "Error", "exitCode": 143}})],
                  phase="Failed")), "0/1", "Error", 0),
    (_deleted(pod([cs(ready=True, state=RUNNING)]), reason="NodeLost"), "1/1", "Unknown", 0),
    (_deleted(pod([], phase="Pending")), "0/1", "Terminating", 0),
    (pod([], phase="Pending", conditions=[("PodScheduled", "False")]) | {
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}},
     "0/1", "SchedulingGated", 0),
    (_sidecar_pod(started=True, ready=True, restarts=2), "2/2", "Running", 2),
    (_sidecar_pod(started=True, ready=False), "1/2", "Running", 0),
], ids=["deleted-crashloop", "deleted-killed-not-yet-terminal", "deleted-and-failed",
        "node-lost", "deleted-pending", "scheduling-gated", "sidecar-ready",
        "sidecar-not-ready"])
def test_pod_status_kubectl_132_rules(obj, ready, status, restarts):
    got_ready, got_status, got_restarts, _ = printers.pod_status(obj)
    assert (got_ready, got_status, got_restarts) == (ready, status, restarts)


def test_pod_ip_column_reads_pod_ips_first():
    obj = pod([cs(ready=True, state=RUNNING)])
    obj["status"].update(podIP="10.0.0.1", podIPs=[{"ip": "10.0.0.2"}])
    assert printers.row("pods", obj, TableOptions(wide=True), NOW)[5] == "10.0.0.2"


def test_pod_restarts_show_when_the_last_one_was():
    obj = pod([cs(ready=True, state=RUNNING, restarts=2,
                  last={"terminated": {"finishedAt": ago(70)}})])
    assert printers.row("pods", obj, TableOptions(), NOW)[3] == "2 (70s ago)"


# ---------------------------------------------------------------- per-kind tables

NODE = {"metadata": {"name": "n1", "creationTimestamp": ago(3600),
                     "labels": {"node-role.kubernetes.io/control-plane": "",
                                "node-role.kubernetes.io/worker": ""}},
        "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                  {"type": "Ready", "status": "True"}],
                   "nodeInfo": {"kubeletVersion": "v1.30.0-kubemu"},
                   "addresses": [{"type": "InternalIP", "address": "127.0.1.1"}]}}

CASES = [
    ("pods", pod([cs(ready=True, state=RUNNING)]) | {"spec": {
        "containers": [{"name": "c"}], "nodeName": "n1"}} | {"status": {
            "phase": "Running", "podIP": "127.1.0.2",
            "containerStatuses": [cs(ready=True, state=RUNNING)]}},
     ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["p", "1/1", "Running", "0", "30s"],
     ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
     ["127.1.0.2", "n1", "<none>", "<none>"]),
    ("deployments", {"metadata": meta("web"), "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}},
     ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["web", "2/3", "3", "2", "30s"],
     ["CONTAINERS", "IMAGES", "SELECTOR"], ["nginx", "nginx:1.25", "app=web"]),
    ("deployments", {"metadata": meta("zero"), "spec": {"replicas": 0}},
     ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["zero", "0/0", "0", "0", "30s"],
     None, None),
    ("replicasets", {"metadata": meta("web-1"), "spec": {"replicas": 2},
                     "status": {"replicas": 2, "readyReplicas": 1}},
     ["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["web-1", "2", "2", "1", "30s"],
     None, None),
    ("statefulsets", {"metadata": meta("db"), "spec": {"replicas": 3},
                      "status": {"readyReplicas": 3}},
     ["NAME", "READY", "AGE"], ["db", "3/3", "30s"], None, None),
    ("daemonsets", {"metadata": meta("proxy"), "spec": {"template": {"spec": {
        "nodeSelector": {"kubernetes.io/os": "linux"}}}}, "status": {
        "desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
        "updatedNumberScheduled": 3, "numberAvailable": 2}},
     ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
     ["proxy", "3", "3", "2", "3", "2", "kubernetes.io/os=linux", "30s"], None, None),
    ("nodes", NODE, ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
     ["n1", "Ready,SchedulingDisabled", "control-plane,worker", "60m", "v1.30.0-kubemu"],
     ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
     ["127.0.1.1", "<none>", "<unknown>", "<unknown>", "<unknown>"]),
    ("nodes", {"metadata": {"name": "n2", "creationTimestamp": ago(10)},
               "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}},
     ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], ["n2", "NotReady", "<none>", "10s", ""],
     None, None),
    ("services", {"metadata": meta("web"), "spec": {
        "type": "NodePort", "clusterIP": "127.10.0.7", "selector": {"app": "web"},
        "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}},
     ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
     ["web", "NodePort", "127.10.0.7", "<none>", "80:30080/TCP,53/UDP", "30s"],
     ["SELECTOR"], ["app=web"]),
    ("services", {"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIP": "None",
                                                   "ports": [{"port": 443}]}},
     ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
     ["lb", "LoadBalancer", "None", "<pending>", "443/TCP", "30s"], None, None),
    ("services", {"metadata": meta("ext"), "spec": {"type": "ExternalName",
                                                    "externalName": "example.com"}},
     ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
     ["ext", "ExternalName", "<none>", "example.com", "<none>", "30s"], None, None),
    ("configmaps", {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"},
                    "binaryData": {"c": "AA=="}},
     ["NAME", "DATA", "AGE"], ["cfg", "3", "30s"], None, None),
    ("secrets", {"metadata": meta("s"), "data": {"a": "MQ=="}},
     ["NAME", "TYPE", "DATA", "AGE"], ["s", "Opaque", "1", "30s"], None, None),
    ("namespaces", {"metadata": {"name": "dev", "creationTimestamp": ago(200)},
                    "status": {"phase": "Terminating"}},
     ["NAME", "STATUS", "AGE"], ["dev", "Terminating", "3m20s"], None, None),
    ("jobs", {"metadata": meta("pi"), "spec": {"completions": 3},
              "status": {"succeeded": 1, "startTime": ago(25)}},
     ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], ["pi", "Running", "1/3", "25s", "30s"],
     None, None),
    ("jobs", {"metadata": meta("done"), "spec": {"parallelism": 2},
              "status": {"succeeded": 1, "startTime": ago(25), "completionTime": ago(15),
                         "conditions": [{"type": "Complete", "status": "True"}]}},
     ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
     ["done", "Complete", "1/1 of 2", "10s", "30s"], None, None),
    ("cronjobs", {"metadata": meta("tick"), "spec": {"schedule": "*/1 * * * *"},
                  "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": ago(20)}},
     ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
     ["tick", "*/1 * * * *", "<none>", "<unset>", "1", "20s", "30s"], None, None),
    ("events", {"metadata": meta("p.1"), "type": "Warning", "reason": "BackOff",
                "involvedObject": {"kind": "Pod", "name": "p"}, "count": 5,
                "firstTimestamp": ago(300), "lastTimestamp": ago(10),
                "message": "Back-off restarting failed container\n"},
     ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
     ["10s", "Warning", "BackOff", "pod/p", "Back-off restarting failed container"],
     ["SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"],
     ["", "", "5m", "5", "p.1"]),
    # An events.k8s.io series (kube-scheduler's): no first/lastTimestamp, no
    # count, no source — eventTime, series and the reporting fields instead.
    ("events", {"metadata": meta("stuck.2"), "type": "Warning", "reason": "FailedScheduling",
                "involvedObject": {"kind": "Pod", "name": "stuck"}, "eventTime": ago(120),
                "series": {"count": 4, "lastObservedTime": ago(20)},
                "reportingComponent": "default-scheduler",
                "reportingInstance": "default-scheduler-host",
                "message": "0/3 nodes are available: 3 Insufficient cpu."},
     ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
     ["20s", "Warning", "FailedScheduling", "pod/stuck",
      "0/3 nodes are available: 3 Insufficient cpu."],
     ["SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"],
     ["", "default-scheduler, default-scheduler-host", "2m", "4", "stuck.2"]),
    # A singleton events.k8s.io Event: LAST SEEN falls back to eventTime, COUNT to 1.
    ("events", {"metadata": meta("big.3"), "type": "Normal", "reason": "Scheduled",
                "involvedObject": {"kind": "Pod", "name": "big"}, "eventTime": ago(90),
                "reportingComponent": "default-scheduler", "message": "assigned"},
     ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
     ["90s", "Normal", "Scheduled", "pod/big", "assigned"],
     ["SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"],
     ["", "default-scheduler", "90s", "1", "big.3"]),
    ("endpoints", {"metadata": meta("web"), "subsets": [
        {"addresses": [{"ip": f"127.1.0.{i}"} for i in range(1, 6)], "ports": [{"port": 80}]}]},
     ["NAME", "ENDPOINTS", "AGE"],
     ["web", "127.1.0.1:80,127.1.0.2:80,127.1.0.3:80 + 2 more...", "30s"], None, None),
    ("endpoints", {"metadata": meta("none")}, ["NAME", "ENDPOINTS", "AGE"],
     ["none", "<none>", "30s"], None, None),
    ("leases", {"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "sched-1"}},
     ["NAME", "HOLDER", "AGE"], ["kube-scheduler", "sched-1", "30s"], None, None),
    ("persistentvolumes", {"metadata": meta("pv1"), "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
        "claimRef": {"namespace": "default", "name": "data"}}, "status": {"phase": "Bound"}},
     ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS",
      "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"],
     ["pv1", "1Gi", "RWO,RWX", "Retain", "Bound", "default/data", "local", "<unset>", "", "30s"],
     None, None),
    ("persistentvolumeclaims", {"metadata": meta("data"), "spec": {
        "volumeName": "pv1", "storageClassName": "local"}, "status": {
        "phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}},
     ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
      "VOLUMEATTRIBUTESCLASS", "AGE"],
     ["data", "Bound", "pv1", "1Gi", "RWO", "local", "<unset>", "30s"], None, None),
    ("widgets", {"metadata": meta("w")}, ["NAME", "AGE"], ["w", "30s"], None, None),
]


@pytest.mark.parametrize("resource, obj, columns, values, wide_columns, wide_values", CASES,
                         ids=[f"{c[0]}-{c[1]['metadata']['name']}" for c in CASES])
def test_table_row(resource, obj, columns, values, wide_columns, wide_values):
    assert printers.headers(resource, TableOptions()) == columns
    assert printers.row(resource, obj, TableOptions(), NOW) == values
    if wide_columns is not None:
        wide = TableOptions(wide=True)
        assert printers.headers(resource, wide) == columns + wide_columns
        assert printers.row(resource, obj, wide, NOW) == values + wide_values


def test_all_namespaces_labels_and_kind_prefix():
    obj = {"metadata": meta("cfg", labels={"b": "2", "a": "1"}) | {"namespace": "dev"}}
    opts = TableOptions(all_namespaces=True, show_labels=True, kind_prefix="configmap")
    assert printers.headers("configmaps", opts) == ["NAMESPACE", "NAME", "DATA", "AGE", "LABELS"]
    assert printers.row("configmaps", obj, opts, NOW) == [
        "dev", "configmap/cfg", "0", "30s", "a=1,b=2"]


def test_table_is_aligned_like_kubectl():
    text = printers.render_table([["NAME", "READY", "AGE"], ["a-long-name", "1/1", "5s"],
                                  ["b", "0/1", "10m"]])
    assert text == ("NAME          READY   AGE\n"
                    "a-long-name   1/1     5s\n"
                    "b             0/1     10m\n")


def test_tabwriter_remembers_widths_for_watch_rows():
    writer = printers.TabWriter()
    writer.render([["NAME", "STATUS", "AGE"], ["web-abcdef", "Running", "1s"]])
    # A later, shorter row keeps the earlier columns: watch output stays aligned.
    assert writer.render([["x", "Pending", "0s"]]) == "x            Pending   0s\n"


def test_selector_formatting():
    # labels.Selector.String(): requirements sorted by key, whatever part they came from
    selector = {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["b", "a"]},
        {"key": "env", "operator": "NotIn", "values": ["prod"]},
        {"key": "canary", "operator": "Exists"}, {"key": "old", "operator": "DoesNotExist"}]}
    assert printers.format_selector(selector) == (
        "app=web,canary,env notin (prod),!old,tier in (a,b)")
    assert printers.format_selector({}) == "<none>"
    assert printers.format_selector(None) == "<none>"
    assert printers.selector_string({}) == ""
    assert printers.format_selector({"matchExpressions": [
        {"key": "a", "operator": "Bogus"}]}) == "<error>"


# ---------------------------------------------------------------- -o json / yaml

def test_list_shape_is_kubectls():
    items = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]
    doc = json.loads(printers.format_json(printers.as_list(items)))
    assert doc == {"apiVersion": "v1", "kind": "List", "items": items,
                   "metadata": {"resourceVersion": ""}}
    assert list(doc) == ["apiVersion", "items", "kind", "metadata"]


def test_json_is_indented_four_and_keeps_unicode():
    text = printers.format_json({"apiVersion": "v1", "data": {"k": "é"}})
    assert text == '{\n    "apiVersion": "v1",\n    "data": {\n        "k": "é"\n    }\n}\n'


def test_yaml_is_sorted_double_quoted_and_block_for_multiline():
    text = printers.format_yaml({"metadata": {"name": "x", "annotations": {"a": "{}\n"}},
                                 "apiVersion": "v1", "data": {"n": "1", "e": "", "t": "true"}})
    assert text == ('apiVersion: v1\n'
                    'data:\n  e: ""\n  n: "1"\n  t: "true"\n'
                    'metadata:\n  annotations:\n    a: |\n      {}\n  name: x\n')


def test_to_json_sets_api_version_and_kind_first():
    from kubemu.api.v1 import core_pb2
    from kubemu.cli.common import to_json

    cm = core_pb2.ConfigMap()
    cm.metadata.name = "x"
    cm.data["k"] = "v"
    assert list(to_json(cm).items()) == [("apiVersion", "v1"), ("kind", "ConfigMap"),
                                         ("metadata", {"name": "x"}), ("data", {"k": "v"})]


# ---------------------------------------------------------------- workload kinds (issue 9)
# Columns as kubectl 1.32's server-side printers lay them out
# (kubernetes/pkg/printers/internalversion/printers.go); objects from cli_kubectl_objects.

WORKLOAD_CASES = [
    ("deployments", workload("Deployment", "web"), ["web", "3/3", "3", "3", "60m"],
     ["main", "nginx:1.25", "app=web"]),
    ("deployments", workload("Deployment", "once"), ["once", "0/1", "0", "0", "60m"],
     ["main", "busybox", "app=once,env,tier in (a,b)"]),
    # printDeployment prints the selector's String() itself: no <none> for an empty one
    ("deployments", {"metadata": meta("bare", age_s=3600), "spec": {}},
     ["bare", "0/1", "0", "0", "60m"], ["", "", ""]),
    ("replicasets", workload("ReplicaSet", "web-5d4f8b8c9"),
     ["web-5d4f8b8c9", "3", "3", "3", "55m"],
     ["main", "nginx:1.25", "app=web,pod-template-hash=5d4f8b8c9"]),
    ("replicasets", {"metadata": meta("bare", age_s=3600), "spec": {"replicas": 0}},
     ["bare", "0", "0", "0", "60m"], ["", "", "<none>"]),
    ("statefulsets", workload("StatefulSet", "db"), ["db", "2/3", "60m"],
     ["main", "postgres:16"]),
    ("daemonsets", workload("DaemonSet", "proxy"),
     ["proxy", "3", "3", "2", "3", "2", "kubernetes.io/os=linux", "60m"],
     ["main", "envoy:1.30", "app=proxy"]),
    ("jobs", workload("Job", "pi"), ["pi", "Running", "2/5", "59m", "60m"],
     ["main", "perl:5.34", "batch.kubernetes.io/controller-uid=uid-pi"]),
    ("jobs", workload("Job", "idx"), ["idx", "Complete", "3/3", "3m5s", "60m"],
     ["main", "busybox", "batch.kubernetes.io/controller-uid=uid-idx"]),
    ("jobs", {"metadata": meta("new", age_s=5), "spec": {"parallelism": 1}},
     ["new", "Running", "0/1", "", "5s"], ["", "", "<none>"]),
    ("cronjobs", workload("CronJob", "tick"),
     ["tick", "*/5 * * * *", "Etc/UTC", "True", "2", "5m", "60m"],
     ["main", "busybox", "<none>"]),
    ("cronjobs", workload("CronJob", "bare"),
     ["bare", "@hourly", "<none>", "<unset>", "0", "<none>", "60m"],
     ["main", "busybox", "<none>"]),
    ("controllerrevisions", workload("ControllerRevision", "db-6c5d4b8f7"),
     ["db-6c5d4b8f7", "statefulset.apps/db", "1", "60m"], []),
    ("controllerrevisions", {"metadata": meta("orphan", age_s=60), "revision": 4},
     ["orphan", "<none>", "4", "60s"], []),
    ("controllerrevisions", {"metadata": meta("core", age_s=60, ownerReferences=[
        {"apiVersion": "v1", "kind": "Pod", "name": "p", "controller": True}]), "revision": "7"},
     ["core", "pod/p", "7", "60s"], []),
    ("persistentvolumes", workload("PersistentVolume", "pv-1"),
     ["pv-1", "1Gi", "RWO", "Delete", "Bound", "default/data-db-0", "standard", "<unset>", "",
      "60m"], ["Filesystem"]),
    ("persistentvolumes", workload("PersistentVolume", "pv-local"),
     ["pv-local", "500Mi", "ROX,RWX", "Retain", "Available", "", "", "<unset>", "", "60m"],
     ["<unset>"]),
    ("persistentvolumes", {"metadata": meta("gone", age_s=60, deletionTimestamp=ago(1),
                                            annotations={"volume.beta.kubernetes.io/storage-class":
                                                         "old"}),
                           "spec": {"capacity": {"storage": "1024Mi"}, "storageClassName": "new",
                                    "volumeAttributesClassName": "gold"},
                           "status": {"phase": "Released", "reason": "Gone"}},
     ["gone", "1Gi", "", "", "Terminating", "", "old", "gold", "Gone", "60s"], ["<unset>"]),
    ("persistentvolumeclaims", workload("PersistentVolumeClaim", "data-db-0"),
     ["data-db-0", "Bound", "pv-1", "1Gi", "RWO", "standard", "<unset>", "60m"],
     ["Filesystem"]),
    ("persistentvolumeclaims", workload("PersistentVolumeClaim", "scratch"),
     ["scratch", "Pending", "", "", "", "standard", "<unset>", "60m"], ["Filesystem"]),
    ("storageclasses", workload("StorageClass", "standard"),
     ["standard (default)", "kubemu.io/local-path", "Delete", "WaitForFirstConsumer", "false",
      "60m"], []),
    ("storageclasses", workload("StorageClass", "fast"),
     ["fast", "kubemu.io/local-path", "Retain", "Immediate", "true", "60m"], []),
    ("storageclasses", {"metadata": meta("beta", age_s=60, annotations={
        "storageclass.beta.kubernetes.io/is-default-class": "true"}), "provisioner": "x"},
     ["beta (default)", "x", "Delete", "Immediate", "false", "60s"], []),
    ("storageclasses", {"metadata": meta("no", age_s=60, annotations={
        "storageclass.kubernetes.io/is-default-class": "True"}), "provisioner": "x"},
     ["no", "x", "Delete", "Immediate", "false", "60s"], []),
]


@pytest.mark.parametrize("resource, obj, values, wide_values", WORKLOAD_CASES,
                         ids=[f"{c[0]}-{c[1]['metadata']['name']}" for c in WORKLOAD_CASES])
def test_workload_rows(resource, obj, values, wide_values):
    assert printers.row(resource, obj, TableOptions(), NOW) == values
    assert printers.row(resource, obj, TableOptions(wide=True), NOW) == values + wide_values


@pytest.mark.parametrize("resource, columns, wide", [
    ("deployments", ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
     ["CONTAINERS", "IMAGES", "SELECTOR"]),
    ("replicasets", ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
     ["CONTAINERS", "IMAGES", "SELECTOR"]),
    ("statefulsets", ["NAME", "READY", "AGE"], ["CONTAINERS", "IMAGES"]),
    ("daemonsets", ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                    "NODE SELECTOR", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"]),
    ("jobs", ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
     ["CONTAINERS", "IMAGES", "SELECTOR"]),
    ("cronjobs", ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
     ["CONTAINERS", "IMAGES", "SELECTOR"]),
    ("controllerrevisions", ["NAME", "CONTROLLER", "REVISION", "AGE"], []),
    ("persistentvolumes", ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS",
                           "CLAIM", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"],
     ["VOLUMEMODE"]),
    ("persistentvolumeclaims", ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES",
                                "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"], ["VOLUMEMODE"]),
    ("storageclasses", ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                        "ALLOWVOLUMEEXPANSION", "AGE"], []),
], ids=lambda v: v if isinstance(v, str) else None)
def test_workload_headers(resource, columns, wide):
    assert printers.headers(resource, TableOptions()) == columns
    assert printers.headers(resource, TableOptions(wide=True)) == columns + wide


def _job(*conditions, deleting=False) -> dict:
    m = meta("j")
    if deleting:
        m["deletionTimestamp"] = ago(1)
    return {"metadata": m, "status": {"conditions": [{"type": t, "status": s}
                                                     for t, s in conditions]}}


@pytest.mark.parametrize("job, status", [
    (_job(), "Running"),
    (_job(("Complete", "True")), "Complete"),
    (_job(("Complete", "False"), ("Failed", "True")), "Failed"),
    (_job(("FailureTarget", "True"), ("Failed", "True")), "Failed"),
    (_job(("Suspended", "True"), deleting=True), "Terminating"),
    (_job(("Complete", "True"), deleting=True), "Complete"),
    (_job(("Suspended", "True")), "Suspended"),
    (_job(("Suspended", "False")), "Running"),
    (_job(("FailureTarget", "True")), "FailureTarget"),
    (_job(("SuccessCriteriaMet", "True")), "Running"),
    # the first condition of a type decides, as hasJobCondition reads them
    (_job(("Complete", "False"), ("Complete", "True")), "Running"),
], ids=["none", "complete", "failed", "failed-over-target", "terminating",
        "complete-while-deleting", "suspended", "resumed", "failure-target",
        "success-criteria-met", "first-condition-wins"])
def test_job_status_column(job, status):
    assert printers.job_status(job) == status
