"""validate() reports the problems Kubernetes reports, at the paths it reports them.

Each case is a small manifest, a change to it, and the exact (path, type)
pairs expected; a few cases pin the whole message. Objects are defaulted
before validation, as the apiserver does.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Callable

import pytest

from kubemu.api import codec, defaults, validation
from kubemu.api.kinds import REGISTRY

# ---------------------------------------------------------------- helpers

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _steps(path: str) -> list[str | int]:
    return [int(i) if i else name for name, i in _STEP.findall(path)]


def put(doc: dict, path: str, value: Any) -> dict:
    """Set a nested field by path ("spec.containers[0].image"); returns doc."""
    steps = _steps(path)
    node: Any = doc
    for step, nxt in zip(steps, steps[1:]):
        if isinstance(step, int):
            node = node[step]
        else:
            node = node.setdefault(step, [] if isinstance(nxt, int) else {})
    node[steps[-1]] = value
    return doc


def drop(doc: dict, path: str) -> dict:
    steps = _steps(path)
    node: Any = doc
    for step in steps[:-1]:
        node = node[step]
    del node[steps[-1]]
    return doc


def build(doc: dict, *, apply_defaults: bool = True):
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    obj = codec.from_dict(kind.message, doc)
    if apply_defaults:
        defaults.apply_defaults(kind, obj)
        if kind.kind == "Job" and not obj.spec.HasField("selector"):
            defaults.job_selector_defaults(obj, "0b7c9c2e-5b4c-4d8e-9f00-000000000001")
    return kind, obj


def problems(doc: dict, old_doc: dict | None = None, *, apply_defaults: bool = True):
    kind, obj = build(doc, apply_defaults=apply_defaults)
    old = build(old_doc, apply_defaults=apply_defaults)[1] if old_doc is not None else None
    if old is not None:
        # What the apiserver carries over from the stored object.
        obj.metadata.uid = obj.metadata.uid or old.metadata.uid
    return validation.validate(kind, obj, old)


def pairs(found) -> list[tuple[str, str]]:
    return [(p.path, p.type) for p in found]


Mutation = Callable[[dict], Any]


def run_cases(base: Callable[[], dict], mutate: Mutation, expected):
    doc = base()
    mutate(doc)
    assert pairs(problems(doc)) == expected


# ---------------------------------------------------------------- manifests

def pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25",
                                     "ports": [{"containerPort": 80, "name": "http"}]}]}}


def template(**spec: Any) -> dict:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}], **spec}}


def deployment() -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": template()}}


def replica_set() -> dict:
    doc = deployment()
    doc["kind"] = "ReplicaSet"
    return doc


def stateful_set() -> dict:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"serviceName": "db", "replicas": 3,
                     "selector": {"matchLabels": {"app": "web"}}, "template": template(),
                     "volumeClaimTemplates": [{
                         "metadata": {"name": "data"},
                         "spec": {"accessModes": ["ReadWriteOnce"],
                                  "resources": {"requests": {"storage": "1Gi"}}}}]}}


def daemon_set() -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}}


def job() -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default"},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "perl:5.34",
                                "command": ["perl", "-e", "print 1"]}]}}}}


def cron_job() -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"schedule": "*/5 * * * *",
                     "jobTemplate": {"spec": {"template": {"spec": {
                         "restartPolicy": "OnFailure",
                         "containers": [{"name": "hello", "image": "busybox"}]}}}}}}


def service() -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}


def endpoints() -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "127.0.1.5"}], "ports": [{"port": 8080}]}]}


def node() -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
            "spec": {"podCIDR": "127.1.0.0/16",
                     "taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}


def config_map() -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default"},
            "data": {"app.conf": "x=1", "MODE": "fast"}}


def secret() -> dict:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "default"},
            "data": {"password": "czNjcjN0"}}


def namespace() -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}


def lease() -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}


def event() -> dict:
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Scheduled", "type": "Normal"}


def pv() -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": "/tmp/pv-1"}}}


def pvc() -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}


ALL_VALID = [pod, deployment, replica_set, stateful_set, daemon_set, job, cron_job, service,
             endpoints, node, config_map, secret, namespace, lease, event, pv, pvc]


@pytest.mark.parametrize("manifest", ALL_VALID, ids=lambda f: f.__name__)
def test_valid_manifests_have_no_problems(manifest):
    assert [str(p) for p in problems(manifest())] == []


@pytest.mark.parametrize("manifest", ALL_VALID, ids=lambda f: f.__name__)
def test_raw_manifests_validate_like_defaulted_ones(manifest):
    doc = manifest()
    if doc["kind"] == "Job":
        # The apiserver generates a Job's selector; give a raw Job one by hand.
        put(doc, "spec.selector", {"matchLabels": {"job": "pi"}})
        put(doc, "spec.template.metadata", {"labels": {"job": "pi"}})
    assert [str(p) for p in problems(doc, apply_defaults=False)] == []


@pytest.mark.parametrize("manifest", ALL_VALID, ids=lambda f: f.__name__)
def test_unchanged_update_has_no_problems(manifest):
    assert [str(p) for p in problems(manifest(), manifest())] == []


# ---------------------------------------------------------------- exact messages

def test_missing_image_is_exactly_one_required_value():
    doc = drop(pod(), "spec.containers[0].image")
    assert [str(p) for p in problems(doc)] == ["spec.containers[0].image: Required value"]


def test_bad_pod_name():
    found = problems(put(pod(), "metadata.name", "My_Pod"))
    assert [str(p) for p in found] == [
        'metadata.name: Invalid value: "My_Pod": a lowercase RFC 1123 subdomain must consist '
        "of lower case alphanumeric characters, '-' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'example.com', regex used for validation is "
        r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]


def test_deployment_selector_must_match_template_labels():
    doc = put(deployment(), "spec.selector.matchLabels", {"app": "api"})
    assert [str(p) for p in problems(doc)] == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]


@pytest.mark.parametrize("policy", ["Always", None], ids=["explicit", "defaulted"])
def test_job_restart_policy_always_is_unsupported(policy):
    doc = job()
    if policy is None:
        drop(doc, "spec.template.spec.restartPolicy")
    else:
        put(doc, "spec.template.spec.restartPolicy", policy)
    assert [str(p) for p in problems(doc)] == [
        'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: '
        '"OnFailure", "Never"']


def test_requests_above_limits():
    doc = put(pod(), "spec.containers[0].resources",
              {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})
    assert [str(p) for p in problems(doc)] == [
        'spec.containers[0].resources.requests: Invalid value: "2": must be less than or '
        "equal to cpu limit of 1"]


def test_volume_mount_of_unknown_volume():
    doc = put(pod(), "spec.containers[0].volumeMounts", [{"name": "x", "mountPath": "/x"}])
    assert [str(p) for p in problems(doc)] == [
        'spec.containers[0].volumeMounts[0].name: Not found: "x"']


def test_pod_update_of_immutable_field():
    old = pod()
    new = put(pod(), "spec.restartPolicy", "Never")
    found = problems(new, old)
    assert pairs(found) == [("spec", "Forbidden")]
    assert found[0].detail.startswith(
        "pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
        "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
        "(allow it to be set to 1 if it was previously negative)")
    # Then, on the next lines, go-cmp's diff of the specs (kubemu/api/validation/godiff.py).
    assert "negative)\n  core.PodSpec{\n" in found[0].detail
    assert ('- \tRestartPolicy:                 "Always",\n'
            '+ \tRestartPolicy:                 "Never",\n') in found[0].detail


def test_bad_cron_schedule_message():
    doc = put(cron_job(), "spec.schedule", "61 * * * *")
    assert [str(p) for p in problems(doc)] == [
        'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61']


# ---------------------------------------------------------------- metadata

@pytest.mark.parametrize("mutate,expected", [
    (lambda d: drop(d, "metadata.name"), [("metadata.name", "Required value")]),
    (lambda d: (drop(d, "metadata.name"), put(d, "metadata.generateName", "web-")), []),
    (lambda d: (drop(d, "metadata.name"), put(d, "metadata.generateName", "Web_")),
     [("metadata.generateName", "Invalid value")]),
    (lambda d: put(d, "metadata.name", "a" * 254), [("metadata.name", "Invalid value")]),
    (lambda d: put(d, "metadata.name", "web.v1"), []),
    (lambda d: drop(d, "metadata.namespace"), [("metadata.namespace", "Required value")]),
    (lambda d: put(d, "metadata.namespace", "Team_A"), [("metadata.namespace", "Invalid value")]),
    (lambda d: put(d, "metadata.labels", {"bad key": "x"}), [("metadata.labels", "Invalid value")]),
    (lambda d: put(d, "metadata.labels", {"app": "-x-"}), [("metadata.labels", "Invalid value")]),
    (lambda d: put(d, "metadata.labels", {"app": ""}), []),
    (lambda d: put(d, "metadata.labels", {"example.com/app": "x"}), []),
    (lambda d: put(d, "metadata.labels", {"a/b/c": "x"}), [("metadata.labels", "Invalid value")]),
    (lambda d: put(d, "metadata.annotations", {"Example.com/Note": "anything at all"}), []),
    (lambda d: put(d, "metadata.annotations", {"not valid": "x"}),
     [("metadata.annotations", "Invalid value")]),
    (lambda d: put(d, "metadata.annotations", {"big": "x" * (256 * 1024)}),
     [("metadata.annotations", "Too long")]),
    (lambda d: put(d, "metadata.ownerReferences", [{"apiVersion": "apps/v1",
                                                     "kind": "ReplicaSet", "name": "web"}]),
     [("metadata.ownerReferences.uid", "Invalid value")]),
    (lambda d: put(d, "metadata.ownerReferences", [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": True}]),
     [("metadata.ownerReferences", "Invalid value")]),
    (lambda d: put(d, "metadata.finalizers", ["example.com/cleanup", "orphan"]), []),
    (lambda d: put(d, "metadata.finalizers", ["bad finalizer"]),
     [("metadata.finalizers", "Invalid value")]),
], ids=["name-missing", "generate-name-only", "bad-generate-name", "name-too-long",
        "dotted-name", "namespace-missing", "bad-namespace", "bad-label-key",
        "bad-label-value", "empty-label-value", "prefixed-label-key", "two-slashes-label",
        "annotation-key-any-case", "bad-annotation-key", "annotations-too-big",
        "owner-without-uid", "two-controllers", "qualified-finalizers", "bad-finalizer"])
def test_pod_metadata(mutate, expected):
    run_cases(pod, mutate, expected)


@pytest.mark.parametrize("manifest,mutate,expected", [
    (namespace, lambda d: put(d, "metadata.name", "team.a"), [("metadata.name", "Invalid value")]),
    (namespace, lambda d: put(d, "metadata.name", "a" * 64), [("metadata.name", "Invalid value")]),
    (namespace, lambda d: put(d, "metadata.namespace", "default"),
     [("metadata.namespace", "Forbidden")]),
    (namespace, lambda d: put(d, "spec.finalizers", ["custom"]),
     [("spec.finalizers", "Invalid value")]),
    (service, lambda d: put(d, "metadata.name", "1web"), [("metadata.name", "Invalid value")]),
    (node, lambda d: put(d, "metadata.name", "node-1.example.com"), []),
    (cron_job, lambda d: put(d, "metadata.name", "c" * 53), [("metadata.name", "Invalid value")]),
], ids=["namespace-is-a-label", "namespace-too-long", "cluster-scoped-with-namespace",
        "namespace-finalizer-unqualified", "service-name-dns-1035", "node-name-subdomain",
        "cronjob-name-52"])
def test_names_per_kind(manifest, mutate, expected):
    run_cases(manifest, mutate, expected)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "metadata.uid", "other"), [("metadata.uid", "Invalid value")]),
    (lambda d: put(d, "metadata.name", "other"), [("metadata.name", "Invalid value")]),
    (lambda d: put(d, "metadata.namespace", "other"), [("metadata.namespace", "Invalid value")]),
    (lambda d: put(d, "metadata.creationTimestamp", "2030-01-01T00:00:00Z"),
     [("metadata.creationTimestamp", "Invalid value")]),
    (lambda d: put(d, "metadata.labels", {"new": "label"}), []),
], ids=["uid", "name", "namespace", "creation-timestamp", "labels-may-change"])
def test_generic_update_rules(mutate, expected):
    old = put(config_map(), "metadata.uid", "1234")
    put(old, "metadata.creationTimestamp", "2024-01-01T00:00:00Z")
    new = copy.deepcopy(old)
    mutate(new)
    found = problems(new, old)
    assert pairs(found) == expected
    assert all(p.detail == "field is immutable" for p in found)


# ---------------------------------------------------------------- pods

C0 = "spec.containers[0]"


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.containers", []), [("spec.containers", "Required value")]),
    (lambda d: drop(d, f"{C0}.name"), [(f"{C0}.name", "Required value")]),
    (lambda d: put(d, f"{C0}.name", "App_1"), [(f"{C0}.name", "Invalid value")]),
    (lambda d: d["spec"]["containers"].append({"name": "app", "image": "busybox"}),
     [("spec.containers[1].name", "Duplicate value")]),
    (lambda d: put(d, "spec.initContainers", [{"name": "app", "image": "busybox"}]),
     [("spec.initContainers[0].name", "Duplicate value")]),
    (lambda d: put(d, f"{C0}.image", " nginx"), [(f"{C0}.image", "Invalid value")]),
    (lambda d: put(d, f"{C0}.ports[0].containerPort", 70000),
     [(f"{C0}.ports[0].containerPort", "Invalid value")]),
    (lambda d: put(d, f"{C0}.ports[0].containerPort", 0),
     [(f"{C0}.ports[0].containerPort", "Required value")]),
    (lambda d: put(d, f"{C0}.ports[0].name", "http-metrics-long"),
     [(f"{C0}.ports[0].name", "Invalid value")]),
    (lambda d: put(d, f"{C0}.ports[0].name", "8080"), [(f"{C0}.ports[0].name", "Invalid value")]),
    (lambda d: put(d, f"{C0}.ports[0].protocol", "HTTP"),
     [(f"{C0}.ports[0].protocol", "Unsupported value")]),
    (lambda d: put(d, f"{C0}.ports[0].hostPort", 99999),
     [(f"{C0}.ports[0].hostPort", "Invalid value")]),
    (lambda d: d["spec"]["containers"][0]["ports"].append({"containerPort": 81, "name": "http"}),
     [(f"{C0}.ports[1].name", "Duplicate value")]),
    (lambda d: put(d, "spec.restartPolicy", "Sometimes"),
     [("spec.restartPolicy", "Unsupported value")]),
    (lambda d: put(d, "spec.dnsPolicy", "Google"), [("spec.dnsPolicy", "Unsupported value")]),
    (lambda d: put(d, f"{C0}.imagePullPolicy", "Sometimes"),
     [(f"{C0}.imagePullPolicy", "Unsupported value")]),
    (lambda d: put(d, "spec.terminationGracePeriodSeconds", -1),
     [("spec.terminationGracePeriodSeconds", "Invalid value")]),
    (lambda d: put(d, "spec.activeDeadlineSeconds", 0),
     [("spec.activeDeadlineSeconds", "Invalid value")]),
    (lambda d: put(d, "spec.nodeSelector", {"disk": "ssd!"}),
     [("spec.nodeSelector", "Invalid value")]),
    (lambda d: put(d, "spec.nodeName", "Node_1"), [("spec.nodeName", "Invalid value")]),
], ids=["no-containers", "container-name-missing", "bad-container-name", "duplicate-container",
        "init-container-clash", "image-whitespace", "port-out-of-range", "port-missing",
        "port-name-too-long", "port-name-without-letter", "bad-protocol", "bad-host-port",
        "duplicate-port-name", "bad-restart-policy", "bad-dns-policy", "bad-pull-policy",
        "negative-grace", "zero-deadline", "bad-node-selector", "bad-node-name"])
def test_pod_spec(mutate, expected):
    run_cases(pod, mutate, expected)


@pytest.mark.parametrize("probe,expected", [
    ({"httpGet": {"path": "/healthz", "port": 8080}}, []),
    ({"httpGet": {"port": "http"}, "initialDelaySeconds": 3, "periodSeconds": 5}, []),
    ({"tcpSocket": {"port": 80}, "exec": {"command": ["true"]}},
     [(f"{C0}.livenessProbe.tcpSocket", "Forbidden")]),
    ({"periodSeconds": 5}, [(f"{C0}.livenessProbe", "Required value")]),
    ({"exec": {"command": []}}, [(f"{C0}.livenessProbe.exec.command", "Required value")]),
    ({"httpGet": {"port": 0}}, [(f"{C0}.livenessProbe.httpGet.port", "Invalid value")]),
    ({"httpGet": {"port": "Not_A_Name"}}, [(f"{C0}.livenessProbe.httpGet.port", "Invalid value")]),
    ({"httpGet": {"port": 80, "scheme": "FTP"}},
     [(f"{C0}.livenessProbe.httpGet.scheme", "Unsupported value")]),
    ({"tcpSocket": {"port": 80}, "periodSeconds": -1},
     [(f"{C0}.livenessProbe.periodSeconds", "Invalid value")]),
    ({"tcpSocket": {"port": 80}, "failureThreshold": -2},
     [(f"{C0}.livenessProbe.failureThreshold", "Invalid value")]),
    ({"tcpSocket": {"port": 80}, "successThreshold": 2},
     [(f"{C0}.livenessProbe.successThreshold", "Invalid value")]),
], ids=["http", "named-port", "two-handlers", "no-handler", "exec-without-command",
        "port-zero", "bad-port-name", "bad-scheme", "negative-period", "negative-failure",
        "liveness-success-not-1"])
def test_liveness_probe(probe, expected):
    run_cases(pod, lambda d: put(d, f"{C0}.livenessProbe", probe), expected)


def test_readiness_success_threshold_may_exceed_1():
    doc = put(pod(), f"{C0}.readinessProbe", {"tcpSocket": {"port": 80}, "successThreshold": 3})
    assert problems(doc) == []


def test_startup_probe_success_threshold_must_be_1():
    doc = put(pod(), f"{C0}.startupProbe", {"tcpSocket": {"port": 80}, "successThreshold": 3})
    assert pairs(problems(doc)) == [(f"{C0}.startupProbe.successThreshold", "Invalid value")]


def test_init_containers_may_not_have_probes():
    doc = put(pod(), "spec.initContainers", [{"name": "init", "image": "busybox",
                                              "readinessProbe": {"tcpSocket": {"port": 80}}}])
    assert pairs(problems(doc)) == [("spec.initContainers[0].readinessProbe", "Forbidden")]


@pytest.mark.parametrize("resources,expected", [
    ({"requests": {"cpu": "500m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}, []),
    ({"requests": {"cpu": "1000m"}, "limits": {"cpu": "1"}}, []),
    ({"requests": {"memory": "abc"}}, [(f"{C0}.resources.requests[memory]", "Invalid value")]),
    # Requests default to limits, so a bad limit is reported twice, as in Kubernetes.
    ({"limits": {"memory": "abc"}}, [(f"{C0}.resources.limits[memory]", "Invalid value"),
                                     (f"{C0}.resources.requests[memory]", "Invalid value")]),
    ({"requests": {"cpu": "-1"}}, [(f"{C0}.resources.requests[cpu]", "Invalid value")]),
    ({"requests": {"gpu": "1"}}, [(f"{C0}.resources.requests[gpu]", "Invalid value")]),
    ({"requests": {"example.com/gpu": "1"}}, []),
    ({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
     [(f"{C0}.resources.requests", "Invalid value")]),
], ids=["valid", "equal-in-other-units", "bad-quantity", "bad-limit", "negative", "non-standard-name",
        "extended-resource", "memory-request-above-limit"])
def test_resources(resources, expected):
    run_cases(pod, lambda d: put(d, f"{C0}.resources", resources), expected)


def test_quantity_error_wording():
    doc = put(pod(), f"{C0}.resources", {"requests": {"memory": "1Mb"}})
    assert [str(p) for p in problems(doc)] == [
        f'{C0}.resources.requests[memory]: Invalid value: "1Mb": quantities must match the '
        "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]


def with_volumes(volumes, mounts):
    def mutate(d):
        put(d, "spec.volumes", volumes)
        put(d, f"{C0}.volumeMounts", mounts)
    return mutate


@pytest.mark.parametrize("mutate,expected", [
    (with_volumes([{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
                  [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/c"}]),
     []),
    (with_volumes([{"name": "data"}], [{"name": "data", "mountPath": "/data"}]), []),
    (with_volumes([{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}], []),
     [("spec.volumes[1].name", "Duplicate value")]),
    (with_volumes([{"name": "Data", "emptyDir": {}}], []),
     [("spec.volumes[0].name", "Invalid value")]),
    (with_volumes([{"name": "data", "emptyDir": {}, "hostPath": {"path": "/tmp"}}], []),
     [("spec.volumes[0].hostPath", "Forbidden")]),
    (with_volumes([{"name": "h", "hostPath": {}}], []),
     [("spec.volumes[0].hostPath.path", "Required value")]),
    (with_volumes([{"name": "s", "secret": {}}], []),
     [("spec.volumes[0].secret.secretName", "Required value")]),
    (with_volumes([{"name": "c", "configMap": {"name": "c", "defaultMode": 1024}}], []),
     [("spec.volumes[0].configMap.defaultMode", "Invalid value")]),
    (with_volumes([{"name": "p", "persistentVolumeClaim": {}}], []),
     [("spec.volumes[0].persistentVolumeClaim.claimName", "Required value")]),
    (with_volumes([{"name": "data", "emptyDir": {}}], [{"name": "data"}]),
     [(f"{C0}.volumeMounts[0].mountPath", "Required value")]),
    (with_volumes([{"name": "data", "emptyDir": {}}],
                  [{"name": "data", "mountPath": "/d"}, {"name": "data", "mountPath": "/d"}]),
     [(f"{C0}.volumeMounts[1].mountPath", "Invalid value")]),
    (with_volumes([{"name": "data", "emptyDir": {}}],
                  [{"name": "data", "mountPath": "/d", "subPath": "../etc"}]),
     [(f"{C0}.volumeMounts[0].subPath", "Invalid value")]),
], ids=["valid", "no-source-is-emptydir", "duplicate-volume", "bad-volume-name",
        "two-sources", "hostpath-without-path", "secret-without-name", "bad-default-mode",
        "pvc-without-claim", "mount-path-missing", "mount-path-twice", "subpath-escapes"])
def test_volumes(mutate, expected):
    run_cases(pod, mutate, expected)


@pytest.mark.parametrize("env,expected", [
    ([{"name": "MODE", "value": "fast"}, {"name": "my.env-name", "value": "1"}], []),
    ([{"name": "1BAD", "value": "x"}], [(f"{C0}.env[0].name", "Invalid value")]),
    ([{"value": "x"}], [(f"{C0}.env[0].name", "Required value")]),
    ([{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}], []),
    ([{"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}], []),
    ([{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}],
     [(f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "Unsupported value")]),
    ([{"name": "X", "valueFrom": {}}], [(f"{C0}.env[0].valueFrom", "Invalid value")]),
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"},
                                  "secretKeyRef": {"name": "s", "key": "k"}}}],
     [(f"{C0}.env[0].valueFrom", "Invalid value")]),
    ([{"name": "X", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
     [(f"{C0}.env[0].valueFrom", "Invalid value")]),
    ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s"}}}],
     [(f"{C0}.env[0].valueFrom.secretKeyRef.key", "Required value")]),
    ([{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}],
     [(f"{C0}.env[0].valueFrom.resourceFieldRef.resource", "Unsupported value")]),
], ids=["plain", "digit-first", "no-name", "field-ref", "label-subscript", "unsupported-field",
        "value-from-empty", "two-sources", "value-and-value-from", "key-missing",
        "bad-resource-ref"])
def test_env(env, expected):
    run_cases(pod, lambda d: put(d, f"{C0}.env", env), expected)


@pytest.mark.parametrize("tolerations,expected", [
    ([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"},
      {"operator": "Exists"},
      {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
       "tolerationSeconds": 300}], []),
    ([{"key": "a", "operator": "Maybe"}], [("spec.tolerations[0].operator", "Unsupported value")]),
    ([{"key": "a", "operator": "Exists", "effect": "Sometimes"}],
     [("spec.tolerations[0].effect", "Unsupported value")]),
    ([{"operator": "Equal", "value": "x"}], [("spec.tolerations[0].operator", "Invalid value")]),
    ([{"key": "a", "operator": "Exists", "value": "x"}],
     [("spec.tolerations[0].operator", "Invalid value")]),
    ([{"key": "a", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}],
     [("spec.tolerations[0].effect", "Invalid value")]),
], ids=["valid", "bad-operator", "bad-effect", "empty-key-needs-exists", "exists-with-value",
        "seconds-need-noexecute"])
def test_tolerations(tolerations, expected):
    run_cases(pod, lambda d: put(d, "spec.tolerations", tolerations), expected)


NA = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"


@pytest.mark.parametrize("affinity,expected", [
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}, []),
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": []}}}, [(f"{NA}.nodeSelectorTerms", "Required value")]),
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "Like", "values": ["ssd"]}]}]}}},
     [(f"{NA}.nodeSelectorTerms[0].matchExpressions[0].operator", "Invalid value")]),
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In"}]}]}}},
     [(f"{NA}.nodeSelectorTerms[0].matchExpressions[0].values", "Required value")]),
    ({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 0, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}},
     [("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
       "Invalid value")]),
    ({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}}]}},
     [("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
       ".topologyKey", "Required value")]),
    ({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}},
         "topologyKey": "kubernetes.io/hostname"}]}}, []),
], ids=["node-affinity", "no-terms", "bad-operator", "in-without-values", "weight-zero",
        "anti-affinity-without-topology", "pod-affinity"])
def test_affinity(affinity, expected):
    run_cases(pod, lambda d: put(d, "spec.affinity", affinity), expected)


@pytest.mark.parametrize("constraints,expected", [
    ([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
       "labelSelector": {"matchLabels": {"app": "web"}}}], []),
    ([{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
     [("spec.topologySpreadConstraints[0].maxSkew", "Invalid value")]),
    ([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Whatever"}],
     [("spec.topologySpreadConstraints[0].whenUnsatisfiable", "Unsupported value")]),
    ([{"maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"}],
     [("spec.topologySpreadConstraints[0].topologyKey", "Required value")]),
    ([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"},
      {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}],
     [("spec.topologySpreadConstraints[1].{topologyKey, whenUnsatisfiable}", "Duplicate value")]),
], ids=["valid", "max-skew-zero", "bad-when-unsatisfiable", "no-topology-key", "repeated"])
def test_topology_spread(constraints, expected):
    run_cases(pod, lambda d: put(d, "spec.topologySpreadConstraints", constraints), expected)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, f"{C0}.image", "nginx:1.26"), []),
    (lambda d: put(d, "spec.activeDeadlineSeconds", 30), []),
    (lambda d: put(d, "spec.tolerations", [{"key": "a", "operator": "Exists"},
                                           {"key": "b", "operator": "Exists"}]), []),
    (lambda d: put(d, "spec.tolerations", []), [("spec.tolerations[0]", "Forbidden")]),
    (lambda d: put(d, "spec.restartPolicy", "Never"), [("spec", "Forbidden")]),
    (lambda d: put(d, f"{C0}.ports[0].containerPort", 81), [("spec", "Forbidden")]),
    (lambda d: put(d, "spec.nodeName", "node-2"), [("spec", "Forbidden")]),
    (lambda d: d["spec"]["containers"].append({"name": "b", "image": "busybox"}),
     [("spec.containers", "Forbidden")]),
], ids=["image", "set-deadline", "add-toleration", "remove-toleration", "restart-policy",
        "port", "node-name", "add-container"])
def test_pod_update(mutate, expected):
    old = put(pod(), "spec.nodeName", "node-1")
    put(old, "spec.tolerations", [{"key": "a", "operator": "Exists"}])
    new = copy.deepcopy(old)
    mutate(new)
    assert pairs(problems(new, old)) == expected


def test_pod_update_deadline_may_only_shrink():
    old = put(pod(), "spec.activeDeadlineSeconds", 30)
    assert problems(put(pod(), "spec.activeDeadlineSeconds", 10), old) == []
    assert pairs(problems(put(pod(), "spec.activeDeadlineSeconds", 60), old)) == [
        ("spec.activeDeadlineSeconds", "Invalid value")]
    assert pairs(problems(pod(), old)) == [("spec.activeDeadlineSeconds", "Invalid value")]


# ---------------------------------------------------------------- workloads

T = "spec.template"


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: drop(d, "spec.selector"), [("spec.selector", "Required value")]),
    (lambda d: put(d, "spec.selector", {}), [("spec.selector", "Invalid value")]),
    (lambda d: put(d, "spec.selector.matchLabels", {"app": "api"}),
     [(f"{T}.metadata.labels", "Invalid value")]),
    (lambda d: put(d, "spec.selector", {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["web", "api"]}]}), []),
    (lambda d: put(d, "spec.selector", {"matchExpressions": [{"key": "app", "operator": "In"}]}),
     [("spec.selector.matchExpressions[0].values", "Required value"),
      ("spec.selector", "Invalid value")]),
    (lambda d: put(d, "spec.replicas", -1), [("spec.replicas", "Invalid value")]),
    (lambda d: put(d, "spec.replicas", 0), []),
    (lambda d: put(d, f"{T}.spec.restartPolicy", "Never"),
     [(f"{T}.spec.restartPolicy", "Unsupported value")]),
    (lambda d: drop(d, f"{T}.spec.containers[0].image"),
     [(f"{T}.spec.containers[0].image", "Required value")]),
    (lambda d: put(d, f"{T}.metadata.labels", {"app": "web", "bad key": "x"}),
     [(f"{T}.labels", "Invalid value")]),
    (lambda d: put(d, f"{T}.spec.activeDeadlineSeconds", 10),
     [(f"{T}.spec.activeDeadlineSeconds", "Forbidden")]),
    (lambda d: put(d, "spec.strategy", {"type": "BlueGreen"}),
     [("spec.strategy.type", "Unsupported value")]),
    (lambda d: put(d, "spec.strategy", {"type": "Recreate"}), []),
    (lambda d: put(d, "spec.strategy", {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
     [("spec.strategy.rollingUpdate", "Forbidden")]),
    (lambda d: put(d, "spec.strategy", {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
     [("spec.strategy.rollingUpdate.maxUnavailable", "Invalid value")]),
    (lambda d: put(d, "spec.strategy", {"rollingUpdate": {"maxSurge": "0%",
                                                          "maxUnavailable": 0}}),
     [("spec.strategy.rollingUpdate.maxUnavailable", "Invalid value")]),
    (lambda d: put(d, "spec.strategy", {"rollingUpdate": {"maxSurge": "half"}}),
     [("spec.strategy.rollingUpdate.maxSurge", "Invalid value")]),
    (lambda d: put(d, "spec.strategy", {"rollingUpdate": {"maxSurge": -1}}),
     [("spec.strategy.rollingUpdate.maxSurge", "Invalid value")]),
    (lambda d: put(d, "spec.strategy", {"rollingUpdate": {"maxUnavailable": "150%"}}),
     [("spec.strategy.rollingUpdate.maxUnavailable", "Invalid value")]),
    (lambda d: put(d, "spec.strategy", {"rollingUpdate": {"maxSurge": 3, "maxUnavailable": "50%"}}),
     []),
    (lambda d: put(d, "spec.revisionHistoryLimit", -1),
     [("spec.revisionHistoryLimit", "Invalid value")]),
    (lambda d: (put(d, "spec.minReadySeconds", 700), put(d, "spec.progressDeadlineSeconds", 600)),
     [("spec.progressDeadlineSeconds", "Invalid value")]),
], ids=["no-selector", "empty-selector", "selector-mismatch", "expression-selector",
        "expression-without-values", "negative-replicas", "zero-replicas",
        "template-restart-never", "template-image-missing", "bad-template-label",
        "template-deadline", "bad-strategy", "recreate", "recreate-with-rolling",
        "surge-and-unavailable-zero", "percent-zero", "bad-percent", "negative-surge",
        "over-100-percent", "mixed-int-percent", "negative-history", "deadline-vs-min-ready"])
def test_deployment(mutate, expected):
    run_cases(deployment, mutate, expected)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.replicas", 5), []),
    (lambda d: put(d, f"{T}.spec.containers[0].image", "nginx:2"), []),
    (lambda d: put(d, "spec.selector.matchLabels", {"app": "web", "tier": "x"}),
     [("spec.selector", "Invalid value")]),
], ids=["scale", "new-image", "selector-change"])
def test_deployment_update(mutate, expected):
    old = deployment()
    new = deployment()
    put(new, f"{T}.metadata.labels", {"app": "web", "tier": "x"})
    put(old, f"{T}.metadata.labels", {"app": "web", "tier": "x"})
    mutate(new)
    found = problems(new, old)
    assert pairs(found) == expected
    if expected:
        assert found[0].detail == "field is immutable"


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.selector.matchLabels", {"app": "api"}),
     [(f"{T}.metadata.labels", "Invalid value")]),
    (lambda d: put(d, f"{T}.spec.restartPolicy", "OnFailure"),
     [(f"{T}.spec.restartPolicy", "Unsupported value")]),
    (lambda d: put(d, "spec.replicas", -3), [("spec.replicas", "Invalid value")]),
], ids=["selector-mismatch", "restart-on-failure", "negative-replicas"])
def test_replica_set(mutate, expected):
    run_cases(replica_set, mutate, expected)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.podManagementPolicy", "Parallel"), []),
    (lambda d: put(d, "spec.podManagementPolicy", "Random"),
     [("spec.podManagementPolicy", "Invalid value")]),
    (lambda d: put(d, "spec.updateStrategy", {"type": "OnDelete"}), []),
    (lambda d: put(d, "spec.updateStrategy", {"type": "Sometimes"}),
     [("spec.updateStrategy.type", "Unsupported value")]),
    (lambda d: put(d, "spec.updateStrategy", {"type": "RollingUpdate",
                                              "rollingUpdate": {"partition": -1}}),
     [("spec.updateStrategy.rollingUpdate.partition", "Invalid value")]),
    (lambda d: put(d, "spec.selector.matchLabels", {"app": "db"}),
     [(f"{T}.metadata.labels", "Invalid value")]),
    (lambda d: drop(d, "spec.volumeClaimTemplates[0].spec.resources"),
     [("spec.volumeClaimTemplates[0].spec.resources[storage]", "Required value")]),
], ids=["parallel", "bad-pod-management", "on-delete", "bad-strategy", "negative-partition",
        "selector-mismatch", "claim-without-storage"])
def test_stateful_set(mutate, expected):
    run_cases(stateful_set, mutate, expected)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.replicas", 5), []),
    (lambda d: put(d, f"{T}.spec.containers[0].image", "nginx:2"), []),
    (lambda d: put(d, "spec.updateStrategy", {"type": "OnDelete"}), []),
    (lambda d: put(d, "spec.serviceName", "other"), [("spec", "Forbidden")]),
    (lambda d: put(d, "spec.podManagementPolicy", "Parallel"), [("spec", "Forbidden")]),
    (lambda d: put(d, "spec.volumeClaimTemplates[0].spec.resources.requests.storage", "2Gi"),
     [("spec", "Forbidden")]),
], ids=["scale", "new-image", "strategy", "service-name", "pod-management", "claim-templates"])
def test_stateful_set_update(mutate, expected):
    new = stateful_set()
    mutate(new)
    assert pairs(problems(new, stateful_set())) == expected


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.selector.matchLabels", {"app": "api"}),
     [(f"{T}.metadata.labels", "Invalid value")]),
    (lambda d: put(d, "spec.selector", {}), [("spec.selector", "Invalid value")]),
    (lambda d: put(d, "spec.updateStrategy", {"type": "OnDelete"}), []),
    (lambda d: put(d, "spec.updateStrategy", {"type": "Recreate"}),
     [("spec.updateStrategy.type", "Unsupported value")]),
    (lambda d: put(d, "spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": 0,
                                                                "maxSurge": 0}}),
     [("spec.updateStrategy.rollingUpdate.maxUnavailable", "Required value")]),
    (lambda d: put(d, "spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": 1,
                                                                "maxSurge": 1}}),
     [("spec.updateStrategy.rollingUpdate.maxSurge", "Invalid value")]),
    (lambda d: put(d, f"{T}.spec.restartPolicy", "Never"),
     [(f"{T}.spec.restartPolicy", "Unsupported value")]),
], ids=["selector-mismatch", "empty-selector", "on-delete", "bad-strategy", "both-zero",
        "both-non-zero", "restart-never"])
def test_daemon_set(mutate, expected):
    run_cases(daemon_set, mutate, expected)


def test_daemon_set_selector_is_immutable():
    old = daemon_set()
    new = put(daemon_set(), "spec.selector.matchLabels", {"app": "web", "x": "y"})
    put(new, f"{T}.metadata.labels", {"app": "web", "x": "y"})
    assert pairs(problems(new, old)) == [("spec.selector", "Invalid value")]


JT = "spec.template"


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, f"{JT}.spec.restartPolicy", "OnFailure"), []),
    (lambda d: put(d, "spec.parallelism", -1), [("spec.parallelism", "Invalid value")]),
    (lambda d: put(d, "spec.completions", -1), [("spec.completions", "Invalid value")]),
    (lambda d: put(d, "spec.backoffLimit", -1), [("spec.backoffLimit", "Invalid value")]),
    (lambda d: put(d, "spec.completionMode", "Sometimes"),
     [("spec.completionMode", "Unsupported value")]),
    (lambda d: (put(d, "spec.selector", {"matchLabels": {"job": "x"}}),
                put(d, f"{JT}.metadata", {"labels": {"job": "y"}})),
     [(f"{JT}.metadata.labels", "Invalid value")]),
    (lambda d: drop(d, f"{JT}.spec.containers[0].image"),
     [(f"{JT}.spec.containers[0].image", "Required value")]),
], ids=["on-failure", "negative-parallelism", "negative-completions", "negative-backoff",
        "bad-completion-mode", "selector-mismatch", "image-missing"])
def test_job(mutate, expected):
    run_cases(job, mutate, expected)


def test_job_without_selector_is_rejected_unless_generated():
    doc = job()
    assert pairs(problems(doc, apply_defaults=False)) == [("spec.selector", "Required value")]
    assert problems(doc) == []  # build() generated it, as the apiserver does


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.parallelism", 3), []),
    (lambda d: put(d, "spec.suspend", True), []),
    (lambda d: put(d, f"{JT}.spec.containers[0].image", "perl:5.36"),
     [(JT, "Invalid value")]),
    (lambda d: put(d, "spec.completions", 5), [("spec.completions", "Invalid value")]),
], ids=["parallelism", "suspend", "template", "completions"])
def test_job_update(mutate, expected):
    def counted() -> dict:
        return put(put(job(), "spec.completions", 1), "spec.parallelism", 1)
    new = counted()
    mutate(new)
    found = problems(new, counted())
    assert pairs(found) == expected
    assert all(p.detail == "field is immutable" for p in found)


JTS = "spec.jobTemplate.spec"


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.schedule", "@hourly"), []),
    (lambda d: put(d, "spec.schedule", "0 9-17/2 * JAN-MAR mon,fri"), []),
    (lambda d: put(d, "spec.schedule", "@every 1h30m"), []),
    (lambda d: put(d, "spec.schedule", "@fortnightly"), [("spec.schedule", "Invalid value")]),
    (lambda d: put(d, "spec.schedule", "* * * *"), [("spec.schedule", "Invalid value")]),
    (lambda d: put(d, "spec.schedule", "* * * * 7"), [("spec.schedule", "Invalid value")]),
    (lambda d: put(d, "spec.schedule", "*/0 * * * *"), [("spec.schedule", "Invalid value")]),
    (lambda d: put(d, "spec.schedule", "5-1 * * * *"), [("spec.schedule", "Invalid value")]),
    (lambda d: put(d, "spec.schedule", "x * * * *"), [("spec.schedule", "Invalid value")]),
    (lambda d: put(d, "spec.schedule", "TZ=UTC * * * * *"), [("spec.schedule", "Invalid value")]),
    (lambda d: drop(d, "spec.schedule"), [("spec.schedule", "Required value")]),
    (lambda d: put(d, "spec.concurrencyPolicy", "Sometimes"),
     [("spec.concurrencyPolicy", "Unsupported value")]),
    (lambda d: put(d, f"{JTS}.template.spec.restartPolicy", "Always"),
     [(f"{JTS}.template.spec.restartPolicy", "Unsupported value")]),
    (lambda d: put(d, f"{JTS}.backoffLimit", -1), [(f"{JTS}.backoffLimit", "Invalid value")]),
    (lambda d: put(d, f"{JTS}.selector", {"matchLabels": {"a": "b"}}),
     [(f"{JTS}.selector", "Invalid value")]),
    (lambda d: put(d, "spec.successfulJobsHistoryLimit", -1),
     [("spec.successfulJobsHistoryLimit", "Invalid value")]),
    (lambda d: put(d, "spec.timeZone", "Europe/Paris"), []),
    (lambda d: put(d, "spec.timeZone", "Mars/Olympus_Mons"), [("spec.timeZone", "Invalid value")]),
    (lambda d: put(d, "spec.timeZone", "Local"), [("spec.timeZone", "Invalid value")]),
    (lambda d: put(d, "spec.timeZone", ""), [("spec.timeZone", "Invalid value")]),
    (lambda d: put(d, "spec.timeZone", "../etc"), [("spec.timeZone", "Invalid value")]),
], ids=["hourly", "ranges-steps-names", "every", "unknown-macro", "four-fields",
        "weekday-7", "zero-step", "backwards-range", "not-a-number", "tz-in-schedule",
        "no-schedule", "bad-concurrency", "job-restart-always", "job-backoff",
        "job-selector", "negative-history", "time-zone", "unknown-time-zone", "local-time-zone",
        "empty-time-zone", "time-zone-dots"])
def test_cron_job(mutate, expected):
    run_cases(cron_job, mutate, expected)


@pytest.mark.parametrize("schedule,error", [
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("@yearly", ""), ("@daily", ""), ("0 0 * * SUN", ""), ("1,2,3 * * * *", ""),
])
def test_cron_errors(schedule, error):
    assert validation.cron_error(schedule) == error


# ---------------------------------------------------------------- core kinds

@pytest.mark.parametrize("mutate,expected", [
    (lambda d: drop(d, "spec.ports"), [("spec.ports", "Required value")]),
    (lambda d: put(d, "spec.ports[0].port", 0), [("spec.ports[0].port", "Invalid value")]),
    (lambda d: put(d, "spec.ports[0].port", 65536), [("spec.ports[0].port", "Invalid value")]),
    (lambda d: put(d, "spec.ports", [{"port": 80}, {"port": 443}]),
     [("spec.ports[0].name", "Required value"), ("spec.ports[1].name", "Required value")]),
    (lambda d: put(d, "spec.ports", [{"port": 80, "name": "web"}, {"port": 443, "name": "web"}]),
     [("spec.ports[1].name", "Duplicate value")]),
    (lambda d: put(d, "spec.ports", [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]),
     [("spec.ports[1]", "Duplicate value")]),
    (lambda d: put(d, "spec.ports[0].targetPort", "http"), []),
    (lambda d: put(d, "spec.ports[0].targetPort", "HTTP_PORT"),  # bad characters, no a-z
     [("spec.ports[0].targetPort", "Invalid value"), ("spec.ports[0].targetPort", "Invalid value")]),
    (lambda d: put(d, "spec.ports[0].targetPort", 70000),
     [("spec.ports[0].targetPort", "Invalid value")]),
    (lambda d: put(d, "spec.ports[0].protocol", "ICMP"),
     [("spec.ports[0].protocol", "Unsupported value")]),
    (lambda d: put(d, "spec.type", "Internal"), [("spec.type", "Unsupported value")]),
    (lambda d: (put(d, "spec.type", "NodePort"), put(d, "spec.ports[0].nodePort", 30080)), []),
    # The range is the apiserver's --service-node-port-range: the allocator
    # refuses a port outside it (tests/unit/test_servicealloc.py), as in Kubernetes.
    (lambda d: (put(d, "spec.type", "NodePort"), put(d, "spec.ports[0].nodePort", 80)), []),
    (lambda d: put(d, "spec.ports[0].nodePort", 30080), [("spec.ports[0].nodePort", "Forbidden")]),
    (lambda d: put(d, "spec", {"type": "ExternalName", "externalName": "example.com"}), []),
    (lambda d: put(d, "spec", {"type": "ExternalName"}), [("spec.externalName", "Required value")]),
    (lambda d: put(d, "spec.clusterIP", "None"), []),
    (lambda d: (put(d, "spec.clusterIP", "None"), drop(d, "spec.ports")), []),
    (lambda d: put(d, "spec.clusterIP", "10.0.0.300"), [("spec.clusterIPs[0]", "Invalid value")]),
    (lambda d: put(d, "spec.sessionAffinity", "Sticky"),
     [("spec.sessionAffinity", "Unsupported value")]),
    (lambda d: put(d, "spec.selector", {"app": "web!"}), [("spec.selector", "Invalid value")]),
], ids=["no-ports", "port-zero", "port-too-big", "names-required", "duplicate-names",
        "duplicate-port", "named-target", "bad-target-name", "bad-target-number",
        "bad-protocol", "bad-type", "node-port", "node-port-range-is-the-allocators",
        "node-port-on-cluster-ip", "external-name", "external-name-missing", "headless",
        "headless-without-ports", "bad-cluster-ip", "bad-affinity", "bad-selector"])
def test_service(mutate, expected):
    run_cases(service, mutate, expected)


@pytest.mark.parametrize("old_ip,new_ip,expected", [
    ("", "127.10.0.5", []),
    ("127.10.0.5", "127.10.0.5", []),
    ("127.10.0.5", "127.10.0.6", [("spec.clusterIPs[0]", "Invalid value")]),
    ("127.10.0.5", "", [("spec.clusterIPs[0]", "Required value")]),
], ids=["allocate", "same", "change", "clear"])
def test_service_cluster_ip_is_immutable(old_ip, new_ip, expected):
    old = put(service(), "spec.clusterIP", old_ip) if old_ip else service()
    new = put(service(), "spec.clusterIP", new_ip) if new_ip else service()
    assert pairs(problems(new, old)) == expected


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "subsets[0].addresses[0].ip", "not-an-ip"),
     [("subsets[0].addresses[0].ip", "Invalid value")]),
    (lambda d: put(d, "subsets[0].addresses[0].ip", "::1"), []),
    (lambda d: put(d, "subsets[0].ports[0].port", 0), [("subsets[0].ports[0].port", "Invalid value")]),
    (lambda d: put(d, "subsets[0].ports", [{"port": 1}, {"port": 2}]),
     [("subsets[0].ports[0].name", "Required value"), ("subsets[0].ports[1].name", "Required value")]),
    (lambda d: put(d, "subsets[0].addresses", []), [("subsets[0]", "Required value")]),
    (lambda d: put(d, "subsets[0].notReadyAddresses", [{"ip": "127.0.1.6"}]), []),
], ids=["bad-ip", "ipv6", "port-zero", "names-required", "no-addresses", "not-ready"])
def test_endpoints(mutate, expected):
    run_cases(endpoints, mutate, expected)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "spec.taints[0].effect", "Evict"), [("spec.taints[0].effect", "Unsupported value")]),
    (lambda d: drop(d, "spec.taints[0].effect"), [("spec.taints[0].effect", "Required value")]),
    (lambda d: put(d, "spec.taints[0].key", "bad key"), [("spec.taints[0].key", "Invalid value")]),
    (lambda d: put(d, "spec.taints[0].value", "-x"), [("spec.taints[0].value", "Invalid value")]),
    (lambda d: d["spec"]["taints"].append(dict(d["spec"]["taints"][0])),
     [("spec.taints[1]", "Duplicate value")]),
    (lambda d: put(d, "spec.podCIDR", "127.1.0.0"), [("spec.podCIDR", "Invalid value")]),
    (lambda d: put(d, "status.capacity.cpu", "two"),  # allocatable defaults to capacity
     [("status.capacity[cpu]", "Invalid value"), ("status.allocatable[cpu]", "Invalid value")]),
], ids=["bad-effect", "no-effect", "bad-key", "bad-value", "duplicate", "bad-cidr",
        "bad-capacity"])
def test_node(mutate, expected):
    run_cases(node, mutate, expected)


def test_node_pod_cidr_may_not_change():
    assert pairs(problems(put(node(), "spec.podCIDR", "127.2.0.0/16"), node())) == [
        ("spec.podCIDRs", "Forbidden")]
    assert problems(node(), drop(node(), "spec.podCIDR")) == []


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "data", {"bad key": "x"}), [("data[bad key]", "Invalid value")]),
    (lambda d: put(d, "data", {"..": "x"}), [("data[..]", "Invalid value")]),
    (lambda d: put(d, "binaryData", {"app.conf": "eA=="}), [("data[app.conf]", "Invalid value")]),
    (lambda d: put(d, "binaryData", {"logo.png": "eA=="}), []),
    (lambda d: put(d, "data", {"big": "x" * (1024 * 1024 + 1)}), [("", "Too long")]),
], ids=["bad-key", "dot-dot", "key-in-both", "binary", "too-big"])
def test_config_map(mutate, expected):
    run_cases(config_map, mutate, expected)


@pytest.mark.parametrize("manifest", [config_map, secret], ids=["configmap", "secret"])
def test_immutable_data(manifest):
    old = put(manifest(), "immutable", True)
    assert problems(copy.deepcopy(old), old) == []
    changed = put(copy.deepcopy(old), "data", {"other": "eA=="})
    assert pairs(problems(changed, old)) == [("data", "Forbidden")]
    unlocked = put(copy.deepcopy(old), "immutable", False)
    assert pairs(problems(unlocked, old)) == [("immutable", "Forbidden")]
    # A mutable one may change freely.
    assert problems(put(manifest(), "data", {"other": "eA=="}), manifest()) == []


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: put(d, "data", {"bad/key": "eA=="}), [("data[bad/key]", "Invalid value")]),
    (lambda d: put(d, "stringData", {"bad key": "x"}), [("data[bad key]", "Invalid value")]),
    (lambda d: put(d, "type", "kubernetes.io/tls"),
     [("data[tls.crt]", "Required value"), ("data[tls.key]", "Required value")]),
    (lambda d: put(d, "type", "kubernetes.io/basic-auth"), []),
    (lambda d: put(d, "type", "kubernetes.io/service-account-token"),
     [("metadata.annotations[kubernetes.io/service-account.name]", "Required value")]),
    (lambda d: put(d, "type", "example.com/custom"), []),
], ids=["bad-key", "bad-string-data-key", "tls-without-keys", "basic-auth", "sa-token",
        "custom-type"])
def test_secret(mutate, expected):
    run_cases(secret, mutate, expected)


def test_secret_type_is_immutable():
    assert pairs(problems(put(secret(), "type", "example.com/x"), secret())) == [
        ("type", "Invalid value")]


@pytest.mark.parametrize("manifest,mutate,expected", [
    (lease, lambda d: put(d, "spec.leaseDurationSeconds", 0),
     [("spec.leaseDurationSeconds", "Invalid value")]),
    (lease, lambda d: put(d, "spec.leaseTransitions", -1),
     [("spec.leaseTransitions", "Invalid value")]),
    (event, lambda d: drop(d, "involvedObject"), [("involvedObject", "Required value")]),
    (event, lambda d: put(d, "involvedObject.namespace", "other"),
     [("involvedObject.namespace", "Invalid value")]),
    (event, lambda d: put(d, "type", "Bad"), [("type", "Unsupported value")]),
    (event, lambda d: (put(d, "involvedObject", {"kind": "Node", "name": "node-1"})), []),
], ids=["lease-duration-zero", "lease-negative-transitions", "event-without-object",
        "event-namespace-mismatch", "event-bad-type", "event-for-node"])
def test_lease_and_event(manifest, mutate, expected):
    run_cases(manifest, mutate, expected)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: drop(d, "spec.capacity"),
     [("spec.capacity", "Required value"), ("spec.capacity", "Unsupported value")]),
    (lambda d: put(d, "spec.capacity", {"storage": "0"}), [("spec.capacity[storage]", "Invalid value")]),
    (lambda d: put(d, "spec.accessModes", []), [("spec.accessModes", "Required value")]),
    (lambda d: put(d, "spec.accessModes", ["ReadWriteSometimes"]),
     [("spec.accessModes", "Unsupported value")]),
    (lambda d: drop(d, "spec.hostPath"), [("spec", "Required value")]),
    (lambda d: put(d, "spec.local", {"path": "/mnt"}), [("spec.local", "Forbidden")]),
    (lambda d: put(d, "spec.persistentVolumeReclaimPolicy", "Keep"),
     [("spec.persistentVolumeReclaimPolicy", "Unsupported value")]),
], ids=["no-capacity", "zero-capacity", "no-access-modes", "bad-access-mode", "no-source",
        "two-sources", "bad-reclaim-policy"])
def test_pv(mutate, expected):
    run_cases(pv, mutate, expected)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: drop(d, "spec.accessModes"), [("spec.accessModes", "Required value")]),
    (lambda d: drop(d, "spec.resources"), [("spec.resources[storage]", "Required value")]),
    (lambda d: put(d, "spec.resources.requests.storage", "lots"),
     [("spec.resources[storage]", "Invalid value")]),
    (lambda d: put(d, "spec.volumeMode", "Raw"), [("spec.volumeMode", "Unsupported value")]),
], ids=["no-access-modes", "no-storage", "bad-storage", "bad-volume-mode"])
def test_pvc(mutate, expected):
    run_cases(pvc, mutate, expected)


def bound_pvc() -> dict:
    return put(pvc(), "status.phase", "Bound")


@pytest.mark.parametrize("base, mutate, expected", [
    (bound_pvc, lambda d: put(d, "spec.resources.requests.storage", "2Gi"), []),
    (pvc, lambda d: put(d, "spec.resources.requests.storage", "2Gi"), [("spec", "Forbidden")]),
    (pvc, lambda d: put(d, "spec.volumeName", "pv-1"), []),
    (bound_pvc, lambda d: put(d, "spec.resources.requests.storage", "512Mi"),
     [("spec.resources.requests.storage", "Forbidden")]),
    (pvc, lambda d: put(d, "spec.accessModes", ["ReadWriteMany"]), [("spec", "Forbidden")]),
    (pvc, lambda d: put(d, "spec.storageClassName", "standard"), []),
    (pvc, lambda d: put(d, "spec.storageClassName", ""), [("spec", "Forbidden")]),
    (lambda: put(pvc(), "spec.storageClassName", "slow"),
     lambda d: put(d, "spec.storageClassName", "standard"), [("spec", "Forbidden")]),
    (lambda: put(pvc(), "metadata.annotations",
                 {"volume.beta.kubernetes.io/storage-class": "slow"}),
     lambda d: put(d, "spec.storageClassName", "standard"), [("spec", "Forbidden")]),
    (lambda: put(pvc(), "metadata.annotations",
                 {"volume.beta.kubernetes.io/storage-class": "slow"}),
     lambda d: put(d, "spec.storageClassName", "slow"), []),
], ids=["grow-bound", "grow-pending", "bind-once", "shrink", "access-modes",
        "retroactive-default-class", "nil-to-no-class", "class-change", "class-by-annotation",
        "class-from-annotation"])
def test_pvc_update(base, mutate, expected):
    new = base()
    mutate(new)
    assert pairs(problems(new, base())) == expected


def test_pvc_volume_name_may_not_change_once_set():
    old = put(pvc(), "spec.volumeName", "pv-1")
    assert pairs(problems(put(pvc(), "spec.volumeName", "pv-2"), old)) == [("spec", "Forbidden")]


def test_kind_without_rules_gets_metadata_checks_only():
    kind = REGISTRY.by_resource("configmaps")
    assert "ConfigMap" in validation.VALIDATORS
    bare = type(kind)(kind="Thing", group="", version="v1", resource="things",
                      message=kind.message)
    obj = codec.from_dict(kind.message, {"metadata": {"name": "Bad_Name", "namespace": "x"},
                                         "data": {"bad key": "v"}})
    assert pairs(validation.validate(bare, obj)) == [("metadata.name", "Invalid value")]


@pytest.mark.parametrize("host_path,expected", [
    ("/var/log", []),
    ("/var/..log/x", []),
    ("/var/log/../../etc", ['spec.volumes[0].hostPath.path: Invalid value: "/var/log/../../etc": '
                            "must not contain '..'"]),
    ("..", ['spec.volumes[0].hostPath.path: Invalid value: "..": must not contain \'..\'']),
    ("/data/..", ['spec.volumes[0].hostPath.path: Invalid value: "/data/..": '
                  "must not contain '..'"]),
], ids=["plain", "dots-in-a-name", "backsteps", "only-backstep", "trailing-backstep"])
def test_host_path_must_not_step_back(host_path, expected):
    doc = pod()
    put(doc, "spec.volumes", [{"name": "h", "hostPath": {"path": host_path}}])
    assert [str(p) for p in problems(doc)] == expected


def test_persistent_volume_host_path_must_not_step_back():
    doc = put(pv(), "spec.hostPath", {"path": "/tmp/../etc"})
    assert [str(p) for p in problems(doc)] == [
        'spec.hostPath.path: Invalid value: "/tmp/../etc": must not contain \'..\'']
