"""apply_defaults() fills Kubernetes' defaults, leaves set fields alone, and is idempotent."""
from __future__ import annotations

from typing import Any

import pytest

from kubemu.api import codec, defaults, validation
from kubemu.api.kinds import REGISTRY
from tests.unit import test_validation as manifests


def defaulted(doc: dict) -> dict:
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    obj = codec.from_dict(kind.message, doc)
    defaults.apply_defaults(kind, obj)
    return codec.to_dict(obj)


def at(doc: Any, path: str) -> Any:
    for step in manifests._steps(path):
        doc = doc[step]
    return doc


ALL = manifests.ALL_VALID


@pytest.mark.parametrize("manifest", ALL, ids=lambda f: f.__name__)
def test_applying_twice_changes_nothing(manifest):
    doc = manifest()
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    obj = codec.from_dict(kind.message, doc)
    defaults.apply_defaults(kind, obj)
    once = obj.SerializeToString(deterministic=True)
    defaults.apply_defaults(kind, obj)
    assert obj.SerializeToString(deterministic=True) == once
    # And the defaulted object survives a JSON round trip unchanged.
    again = codec.from_dict(kind.message, codec.to_dict(obj))
    defaults.apply_defaults(kind, again)
    assert again.SerializeToString(deterministic=True) == once


@pytest.mark.parametrize("manifest", ALL, ids=lambda f: f.__name__)
def test_defaulted_manifests_are_valid(manifest):
    doc = manifest()
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    obj = codec.from_dict(kind.message, doc)
    defaults.apply_defaults(kind, obj)
    if kind.kind == "Job":
        defaults.job_selector_defaults(obj, "uid-1")
    assert [str(p) for p in validation.validate(kind, obj)] == []


C0 = "spec.containers[0]"


def probe_pod() -> dict:
    doc = manifests.pod()
    manifests.put(doc, f"{C0}.livenessProbe", {"httpGet": {"port": 80}})
    manifests.put(doc, f"{C0}.readinessProbe", {"tcpSocket": {"port": 80}})
    manifests.put(doc, f"{C0}.env", [{"name": "POD",
                                      "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
    manifests.put(doc, "spec.volumes", [{"name": "data"}, {"name": "cfg", "configMap": {"name": "c"}},
                                        {"name": "s", "secret": {"secretName": "s"}}])
    manifests.put(doc, "spec.tolerations", [{"key": "a", "value": "b", "effect": "NoSchedule"}])
    return doc


@pytest.mark.parametrize("path,value", [
    ("spec.restartPolicy", "Always"),
    ("spec.terminationGracePeriodSeconds", 30),
    ("spec.dnsPolicy", "ClusterFirst"),
    ("spec.schedulerName", "default-scheduler"),
    ("spec.enableServiceLinks", True),
    ("spec.securityContext", {}),
    (f"{C0}.imagePullPolicy", "IfNotPresent"),
    (f"{C0}.terminationMessagePath", "/dev/termination-log"),
    (f"{C0}.terminationMessagePolicy", "File"),
    (f"{C0}.resources", {}),
    (f"{C0}.ports[0].protocol", "TCP"),
    (f"{C0}.livenessProbe.timeoutSeconds", 1),
    (f"{C0}.livenessProbe.periodSeconds", 10),
    (f"{C0}.livenessProbe.successThreshold", 1),
    (f"{C0}.livenessProbe.failureThreshold", 3),
    (f"{C0}.livenessProbe.httpGet.path", "/"),
    (f"{C0}.livenessProbe.httpGet.scheme", "HTTP"),
    (f"{C0}.readinessProbe.periodSeconds", 10),
    (f"{C0}.env[0].valueFrom.fieldRef.apiVersion", "v1"),
    ("spec.volumes[0].emptyDir", {}),
    ("spec.volumes[1].configMap.defaultMode", 420),
    ("spec.volumes[2].secret.defaultMode", 420),
    ("spec.tolerations[0].operator", "Equal"),
])
def test_pod_defaults(path, value):
    assert at(defaulted(probe_pod()), path) == value


@pytest.mark.parametrize("image,policy", [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("localhost:5000/app", "Always"), ("localhost:5000/app:v1", "IfNotPresent"),
    ("busybox@sha256:abcd", "IfNotPresent"), ("gcr.io/kuar-demo/kuard-amd64:blue", "IfNotPresent"),
])
def test_image_pull_policy(image, policy):
    doc = manifests.put(manifests.pod(), f"{C0}.image", image)
    assert at(defaulted(doc), f"{C0}.imagePullPolicy") == policy


def test_set_fields_are_kept():
    doc = manifests.pod()
    manifests.put(doc, "spec.restartPolicy", "Never")
    manifests.put(doc, "spec.terminationGracePeriodSeconds", 0)
    manifests.put(doc, "spec.enableServiceLinks", False)
    manifests.put(doc, f"{C0}.imagePullPolicy", "Never")
    manifests.put(doc, f"{C0}.livenessProbe", {"tcpSocket": {"port": 80}, "periodSeconds": 3})
    out = defaulted(doc)
    assert out["spec"]["restartPolicy"] == "Never"
    assert out["spec"]["terminationGracePeriodSeconds"] == 0
    assert out["spec"]["enableServiceLinks"] is False
    assert at(out, f"{C0}.imagePullPolicy") == "Never"
    assert at(out, f"{C0}.livenessProbe.periodSeconds") == 3


@pytest.mark.parametrize("resources,requests", [
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, {"cpu": "1", "memory": "1Gi"}),
    ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
     {"cpu": "500m", "memory": "1Gi"}),
    ({"requests": {"cpu": "250m"}}, {"cpu": "250m"}),
], ids=["from-limits", "partial", "requests-only"])
def test_requests_default_to_limits(resources, requests):
    doc = manifests.put(manifests.pod(), f"{C0}.resources", resources)
    assert at(defaulted(doc), f"{C0}.resources.requests") == requests


def test_templates_get_pod_spec_defaults_but_not_pod_only_ones():
    doc = manifests.put(manifests.deployment(), "spec.template.spec.containers[0].resources",
                        {"limits": {"cpu": "1"}})
    spec = defaulted(doc)["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "enableServiceLinks" not in spec
    assert "requests" not in spec["containers"][0]["resources"]


@pytest.mark.parametrize("manifest,expected", [
    (manifests.deployment, {
        "spec.replicas": 2,
        "spec.strategy.type": "RollingUpdate",
        "spec.strategy.rollingUpdate.maxSurge": "25%",
        "spec.strategy.rollingUpdate.maxUnavailable": "25%",
        "spec.revisionHistoryLimit": 10,
        "spec.progressDeadlineSeconds": 600,
        "spec.template.spec.dnsPolicy": "ClusterFirst"}),
    (manifests.replica_set, {"spec.replicas": 2,
                             "spec.template.spec.terminationGracePeriodSeconds": 30}),
    (manifests.stateful_set, {
        "spec.podManagementPolicy": "OrderedReady",
        "spec.updateStrategy.type": "RollingUpdate",
        "spec.updateStrategy.rollingUpdate.partition": 0,
        "spec.revisionHistoryLimit": 10,
        "spec.volumeClaimTemplates[0].spec.volumeMode": "Filesystem"}),
    (manifests.daemon_set, {
        "spec.updateStrategy.type": "RollingUpdate",
        "spec.updateStrategy.rollingUpdate.maxUnavailable": 1,
        "spec.updateStrategy.rollingUpdate.maxSurge": 0,
        "spec.revisionHistoryLimit": 10}),
    (manifests.job, {
        "spec.parallelism": 1, "spec.completions": 1, "spec.backoffLimit": 6,
        "spec.completionMode": "NonIndexed", "spec.suspend": False,
        "spec.podReplacementPolicy": "TerminatingOrFailed",
        "spec.template.spec.restartPolicy": "Never"}),
    (manifests.cron_job, {
        "spec.concurrencyPolicy": "Allow", "spec.suspend": False,
        "spec.successfulJobsHistoryLimit": 3, "spec.failedJobsHistoryLimit": 1,
        "spec.jobTemplate.spec.template.spec.schedulerName": "default-scheduler"}),
    (manifests.service, {
        "spec.type": "ClusterIP", "spec.sessionAffinity": "None",
        "spec.ports[0].protocol": "TCP", "spec.ports[0].targetPort": 8080,
        "spec.internalTrafficPolicy": "Cluster", "spec.ipFamilies": ["IPv4"],
        "spec.ipFamilyPolicy": "SingleStack"}),
    (manifests.endpoints, {"subsets[0].ports[0].protocol": "TCP"}),
    (manifests.secret, {"type": "Opaque"}),
    (manifests.namespace, {"status.phase": "Active"}),
    (manifests.pv, {"spec.persistentVolumeReclaimPolicy": "Retain",
                    "spec.volumeMode": "Filesystem"}),
    (manifests.pvc, {"spec.volumeMode": "Filesystem"}),
], ids=["deployment", "replicaset", "statefulset", "daemonset", "job", "cronjob", "service",
        "endpoints", "secret", "namespace", "pv", "pvc"])
def test_kind_defaults(manifest, expected):
    out = defaulted(manifest())
    assert {path: at(out, path) for path in expected} == expected


@pytest.mark.parametrize("manifest,path", [
    (manifests.deployment, "spec.replicas"), (manifests.replica_set, "spec.replicas"),
    (manifests.stateful_set, "spec.replicas"),
])
def test_replicas_default_to_one(manifest, path):
    doc = manifests.drop(manifest(), path)
    assert at(defaulted(doc), path) == 1


@pytest.mark.parametrize("spec,expected", [
    ({}, {"parallelism": 1, "completions": 1}),
    ({"parallelism": 3}, {"parallelism": 3}),
    ({"completions": 5}, {"parallelism": 1, "completions": 5}),
    ({"parallelism": 0, "completions": 0}, {"parallelism": 0, "completions": 0}),
], ids=["neither", "parallelism-only", "completions-only", "zeros-kept"])
def test_job_parallelism_and_completions(spec, expected):
    doc = manifests.job()
    doc["spec"].update(spec)
    out = defaulted(doc)["spec"]
    assert {k: out[k] for k in ("parallelism", "completions") if k in out} == expected


def test_service_named_target_port_and_external_name():
    doc = manifests.put(manifests.service(), "spec.ports[0].targetPort", "http")
    assert at(defaulted(doc), "spec.ports[0].targetPort") == "http"
    doc = manifests.drop(manifests.service(), "spec.ports[0].targetPort")
    assert at(defaulted(doc), "spec.ports[0].targetPort") == 80
    ext = defaulted(manifests.put(manifests.service(), "spec",
                                  {"type": "ExternalName", "externalName": "example.com"}))
    assert "ipFamilies" not in ext["spec"] and "internalTrafficPolicy" not in ext["spec"]
    node_port = defaulted(manifests.put(manifests.service(), "spec.type", "NodePort"))
    assert node_port["spec"]["externalTrafficPolicy"] == "Cluster"


def test_secret_string_data_is_merged_into_data():
    doc = manifests.secret()
    doc["stringData"] = {"username": "admin", "password": "override"}
    out = defaulted(doc)
    assert "stringData" not in out
    assert out["data"] == {"username": "YWRtaW4=", "password": "b3ZlcnJpZGU="}


def test_job_selector_defaults():
    kind = REGISTRY.by_resource("jobs")
    job = codec.from_dict(kind.message, manifests.job())
    defaults.apply_defaults(kind, job)
    defaults.job_selector_defaults(job, "uid-1")
    out = codec.to_dict(job)
    assert out["spec"]["selector"] == {"matchLabels": {
        "batch.kubernetes.io/controller-uid": "uid-1"}}
    assert out["spec"]["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": "uid-1", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "uid-1", "job-name": "pi"}
    assert out["metadata"]["labels"] == out["spec"]["template"]["metadata"]["labels"]
    assert validation.validate(kind, job) == []
    defaults.job_selector_defaults(job, "uid-1")
    assert codec.to_dict(job) == out


def test_job_selector_defaults_keep_user_labels():
    kind = REGISTRY.by_resource("jobs")
    doc = manifests.put(manifests.job(), "spec.template.metadata", {"labels": {"app": "pi"}})
    doc["metadata"]["labels"] = {"team": "math"}
    job = codec.from_dict(kind.message, doc)
    defaults.apply_defaults(kind, job)
    defaults.job_selector_defaults(job, "uid-2")
    assert dict(job.metadata.labels) == {"team": "math"}
    assert job.spec.template.metadata.labels["app"] == "pi"
    assert job.spec.template.metadata.labels["controller-uid"] == "uid-2"


def test_add_default_tolerations():
    kind = REGISTRY.by_resource("pods")
    pod = codec.from_dict(kind.message, manifests.pod())
    defaults.add_default_tolerations(pod, not_ready_s=5, unreachable_s=7)
    defaults.add_default_tolerations(pod)
    assert codec.to_dict(pod)["spec"]["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 5},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 7}]


def resources(requests=None, limits=None) -> dict:
    out: dict = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


@pytest.mark.parametrize("containers,qos", [
    ([{}], "BestEffort"),
    ([resources({"cpu": "100m"})], "Burstable"),
    ([resources(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),  # requests defaulted
    ([resources({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
    ([resources({"cpu": "1000m", "memory": "1Gi"}, {"cpu": "1", "memory": "1024Mi"})],
     "Guaranteed"),
    ([resources({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], "Burstable"),
    ([resources(limits={"cpu": "1"})], "Burstable"),
    ([resources(limits={"cpu": "1", "memory": "1Gi"}), {}], "Burstable"),
    ([resources({"cpu": "0"})], "BestEffort"),
    ([resources({"example.com/gpu": "1"})], "BestEffort"),
], ids=["nothing", "request-only", "limits-only", "equal", "equal-other-units",
        "request-below-limit", "cpu-limit-only", "one-container-without", "zero-request",
        "extended-only"])
def test_qos_class(containers, qos):
    doc = manifests.pod()
    doc["spec"]["containers"] = [
        {"name": f"c{i}", "image": "busybox", **({"resources": r} if r else {})}
        for i, r in enumerate(containers)]
    kind = REGISTRY.by_resource("pods")
    pod = codec.from_dict(kind.message, doc)
    defaults.apply_defaults(kind, pod)
    assert defaults.qos_class(pod) == qos
    assert defaults.qos_class(pod.spec) == qos


# Fields the code reads when a message has them, and that the protos do not
# (yet) have: reading them is deliberate. Any other miss is a typo.
OPTIONAL_FIELDS = {
    ("PodSpec", "metadata"),  # qos_class tells a Pod from a PodSpec
    ("Probe", "sleep"),  # shared handler code: only lifecycle hooks have sleep...
    ("LifecycleHandler", "grpc"),  # ...and only probes have grpc
    ("Volume", "csi"), ("Volume", "ephemeral"), ("Volume", "local"), ("Volume", "nfs"),
}


def test_every_field_name_used_exists(monkeypatch):
    """Run everything with accessors that note names a message does not have."""
    from kubemu.api import fields

    misses: set[tuple[str, str]] = set()

    def note(msg, name):
        if msg is not None and name not in msg.DESCRIPTOR.fields_by_name:
            misses.add((msg.DESCRIPTOR.name, name))

    def value(msg, name, default=None):
        note(msg, name)
        return fields.field_value(msg, name, default)

    def is_set(msg, name):
        note(msg, name)
        return fields.field_is_set(msg, name)

    real_has = defaults._has

    def has(msg, name):
        note(msg, name)
        return real_has(msg, name)

    for module in (*validation.MODULES, defaults):
        for name, replacement in (("field_value", value), ("field_is_set", is_set)):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, replacement)
    monkeypatch.setattr(defaults, "_has", has)
    rich = probe_pod()
    manifests.put(rich, "spec.affinity", {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "a", "operator": "Exists"}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "podAffinityTerm": {"topologyKey": "zone",
                                              "labelSelector": {"matchLabels": {"a": "b"}}}}]}})
    manifests.put(rich, "spec.topologySpreadConstraints", [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
         "minDomains": 1}])
    manifests.put(rich, f"{C0}.lifecycle", {"preStop": {"sleep": {"seconds": 1}},
                                            "postStart": {"httpGet": {"port": 80}}})
    manifests.put(rich, f"{C0}.envFrom", [{"configMapRef": {"name": "c"}, "prefix": "C_"}])
    manifests.put(rich, f"{C0}.resources", {"limits": {"cpu": "1"}})
    manifests.put(rich, f"{C0}.startupProbe", {"grpc": {"port": 9000}})
    rich["spec"]["volumes"].extend([
        {"name": "d", "downwardAPI": {"items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "p", "projected": {"sources": [{"configMap": {"name": "c"}}]}},
        {"name": "h", "hostPath": {"path": "/tmp"}},
        {"name": "c", "persistentVolumeClaim": {"claimName": "data"}}])
    docs = [rich] + [m() for m in ALL]
    for doc in docs:
        kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
        obj = codec.from_dict(kind.message, doc)
        defaults.apply_defaults(kind, obj)
        validation.validate(kind, obj, obj)
        if kind.kind == "Pod":
            defaults.qos_class(obj)
    assert misses <= OPTIONAL_FIELDS, sorted(misses - OPTIONAL_FIELDS)
