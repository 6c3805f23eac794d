"""Objects that kubectl 1.32.5 was pointed at (a fake API server serving exactly
these) to capture the expected outputs pasted into the CLI printer tests.

`PODS` is what `kubectl get pods` listed in namespace default; `pod(name)` one
of them as `kubectl get pod NAME` got it; `CONFIGMAP` is `kubectl get cm tiny`.
"""
from __future__ import annotations

import copy


def _pod(name: str, *, labels: dict, node: str, ip: str, phase: str = "Running",
         containers: list, restarts: int = 0, cpu: str = "", memory: str = "") -> dict:
    for c in containers:
        if cpu:
            c["resources"] = {"requests": {"cpu": cpu, "memory": memory}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"annotations": {"note": "a<b>&c"}, "creationTimestamp": "2024-05-01T11:00:00Z",
                     "labels": labels, "name": name, "namespace": "default",
                     "resourceVersion": "12", "uid": f"uid-{name}"},
        "spec": {"containers": containers, "dnsPolicy": "ClusterFirst", "nodeName": node,
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30},
        "status": {
            "conditions": [{"lastTransitionTime": "2024-05-01T11:00:05Z", "status": "True",
                            "type": "Ready"}],
            "containerStatuses": [
                {"image": c["image"], "name": c["name"], "ready": True, "restartCount": restarts,
                 "started": True, "state": {"running": {"startedAt": "2024-05-01T11:00:03Z"}}}
                for c in containers],
            "hostIP": "127.1.0.1", "phase": phase, "podIP": ip, "qosClass": "Burstable"},
    }


PODS = [
    _pod("kuard", labels={"app": "kuard", "tier": "front"}, node="node-1", ip="10.244.1.7",
         containers=[{"image": "gcr.io/kuar-demo/kuard-amd64:blue", "name": "web",
                      "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
         cpu="250m", memory="128Mi"),
    _pod("nginx", labels={"app": "nginx"}, node="node-2", ip="10.244.2.3", restarts=3,
         containers=[{"image": "nginx:1.25", "name": "web",
                      "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
         cpu="1", memory="1Gi"),
    _pod("two", labels={"app": "two", "env": "dev"}, node="node-1", ip="10.244.1.9",
         phase="Pending",
         containers=[{"command": ["sh", "-c", "sleep 3600"], "env": [{"name": "X", "value": "1"}],
                      "image": "busybox", "name": "a"},
                     {"args": ["x", "y"], "image": "alpine:3.19", "name": "b"}]),
]
del PODS[2]["metadata"]["annotations"]
PODS[2]["status"]["containerStatuses"][1].update(
    ready=False, state={"waiting": {"reason": "ImagePullBackOff"}})

CONFIGMAP = {"apiVersion": "v1", "data": {"a": "1", "b": "two"}, "kind": "ConfigMap",
             "metadata": {"name": "tiny", "namespace": "default"}}


def pod(name: str) -> dict:
    return copy.deepcopy(next(p for p in PODS if p["metadata"]["name"] == name))


def pod_list() -> dict:
    """What kubectl get hands to its printers for `get pods`: a v1 List."""
    return {"apiVersion": "v1", "items": copy.deepcopy(PODS), "kind": "List",
            "metadata": {"resourceVersion": ""}}


# ---------------------------------------------------------------- workloads (issue 9)
# What `kubectl describe` of each kind below was run against; the fake server also
# served WORKLOAD_PODS and WORKLOAD_EVENTS, which the describers read.

def _meta(name: str, *, uid: str = "", created: str = "2024-05-01T11:00:00Z",
          namespace: str | None = "default", owner: tuple[str, str, str] | None = None,
          **extra) -> dict:
    meta = {"creationTimestamp": created, "name": name, "resourceVersion": "42",
            "uid": uid or f"uid-{name}", **extra}
    if namespace:
        meta["namespace"] = namespace
    if owner:
        kind, owner_name, api_version = owner
        meta["ownerReferences"] = [{"apiVersion": api_version, "blockOwnerDeletion": True,
                                    "controller": True, "kind": kind, "name": owner_name,
                                    "uid": f"uid-{owner_name}"}]
    return meta


def _template(labels: dict, image: str, **spec) -> dict:
    return {"metadata": {"labels": labels},
            "spec": {"containers": [{"image": image, "name": "main",
                                     "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
                     "restartPolicy": "Always", **spec}}


def _workload_pod(name: str, phase: str, owner: tuple[str, str, str], labels: dict,
                  volumes: list | None = None) -> dict:
    spec = {"containers": [{"image": "nginx:1.25", "name": "main"}], "nodeName": "node-1"}
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": _meta(name, owner=owner, labels=labels),
            "spec": spec, "status": {"phase": phase}}


_WEB = {"app": "web"}
_DEPLOY = ("Deployment", "web", "apps/v1")
_NEW_RS = ("ReplicaSet", "web-5d4f8b8c9", "apps/v1")

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": _meta("web", generation=2, labels=_WEB, annotations={
        "deployment.kubernetes.io/revision": "3", "note": "a<b>&c",
        "kubernetes.io/change-cause": "kubectl set image deployment/web main=nginx:1.25 " * 3,
        "multi": "line one\nline two\n",
        "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Deployment"}\n'}),
    "spec": {"progressDeadlineSeconds": 600, "replicas": 3, "revisionHistoryLimit": 10,
             "selector": {"matchLabels": _WEB},
             "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                          "type": "RollingUpdate"},
             "template": _template(_WEB, "nginx:1.25")},
    "status": {"availableReplicas": 3, "conditions": [
        {"lastTransitionTime": "2024-05-01T11:00:10Z", "lastUpdateTime": "2024-05-01T11:00:10Z",
         "message": "Deployment has minimum availability.", "reason": "MinimumReplicasAvailable",
         "status": "True", "type": "Available"},
        {"lastTransitionTime": "2024-05-01T11:00:00Z", "lastUpdateTime": "2024-05-01T11:05:00Z",
         "message": 'ReplicaSet "web-5d4f8b8c9" has successfully progressed.',
         "reason": "NewReplicaSetAvailable", "status": "True", "type": "Progressing"}],
        "observedGeneration": 2, "readyReplicas": 3, "replicas": 4, "updatedReplicas": 3,
        "unavailableReplicas": 1},
}


def _replicaset(name: str, image: str, replicas: int, created: str, *,
                owner: tuple[str, str, str] | None = _DEPLOY) -> dict:
    pod_hash = name.rsplit("-", 1)[-1]
    labels = {**_WEB, "pod-template-hash": pod_hash}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": _meta(name, created=created, owner=owner, labels=labels,
                              annotations={"deployment.kubernetes.io/desired-replicas": "3",
                                           "deployment.kubernetes.io/max-replicas": "4",
                                           "deployment.kubernetes.io/revision": "3"}),
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": _template(labels, image)},
            "status": {"availableReplicas": replicas, "fullyLabeledReplicas": replicas,
                       "observedGeneration": 1, "readyReplicas": replicas, "replicas": replicas}}


REPLICASETS = [
    _replicaset("web-5d4f8b8c9", "nginx:1.25", 3, "2024-05-01T11:05:00Z"),
    _replicaset("web-6b7c8d9f0", "nginx:1.24", 1, "2024-05-01T11:03:00Z"),
    _replicaset("web-7c9f6d4b8", "nginx:1.23", 0, "2024-05-01T11:00:00Z"),
    # matches the selector but is not the Deployment's: describe leaves it out
    _replicaset("web-stray", "nginx:1.25", 2, "2024-05-01T11:00:00Z",
                owner=("Deployment", "someone-else", "apps/v1")),
]

RECREATE = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": _meta("once", labels={"app": "once"}),
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "once"},
                                         "matchExpressions": [{"key": "tier", "operator": "In",
                                                               "values": ["b", "a"]},
                                                              {"key": "env",
                                                               "operator": "Exists"}]},
             "strategy": {"type": "Recreate"}, "minReadySeconds": 5,
             "template": _template({"app": "once", "env": "dev", "tier": "a"}, "busybox",
                                   serviceAccountName="runner",
                                   nodeSelector={"disk": "ssd"})},
    "status": {},
}

_DB = {"app": "db"}
STATEFULSET = {
    "apiVersion": "apps/v1", "kind": "StatefulSet",
    "metadata": _meta("db", labels=_DB),
    "spec": {"podManagementPolicy": "OrderedReady", "replicas": 3, "revisionHistoryLimit": 10,
             "selector": {"matchLabels": _DB}, "serviceName": "db",
             "template": {
                 "metadata": {"labels": _DB, "annotations": {"kubectl.kubernetes.io/restartedAt":
                                                             "2024-05-01T11:30:00Z"}},
                 "spec": {"containers": [{
                     "args": ["-c", "max_connections=50\nshared_buffers=64MB"],
                     "command": ["postgres"], "image": "postgres:16", "name": "main",
                     "env": [{"name": "PGDATA", "value": "/data/pg"},
                             {"name": "POD", "valueFrom": {"fieldRef": {
                                 "apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                     "ports": [{"containerPort": 5432, "name": "pg", "protocol": "TCP"},
                               {"containerPort": 9187, "name": "metrics", "protocol": "TCP"}],
                     "readinessProbe": {"exec": {"command": ["pg_isready"]},
                                        "failureThreshold": 3, "periodSeconds": 5,
                                        "successThreshold": 1, "timeoutSeconds": 1},
                     "resources": {"limits": {"memory": "512Mi"},
                                   "requests": {"cpu": "250m", "memory": "256Mi"}},
                     "volumeMounts": [{"mountPath": "/data", "name": "data"},
                                      {"mountPath": "/etc/pg", "name": "conf",
                                       "readOnly": True}]}],
                     "initContainers": [{"image": "busybox", "name": "init",
                                         "command": ["sh", "-c", "true"]}],
                     "serviceAccountName": "db",
                     "volumes": [{"configMap": {"name": "pg-conf", "defaultMode": 420},
                                  "name": "conf"},
                                 {"emptyDir": {}, "name": "scratch"}]}},
             "updateStrategy": {"rollingUpdate": {"partition": 1}, "type": "RollingUpdate"},
             "volumeClaimTemplates": [{
                 "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "data"},
                 "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                          "resources": {"requests": {"storage": "1Gi"}},
                          "volumeMode": "Filesystem"}}]},
    "status": {"availableReplicas": 2, "currentReplicas": 2, "currentRevision": "db-6c5d4b8f7",
               "readyReplicas": 2, "replicas": 2, "updateRevision": "db-6c5d4b8f7"},
}

_PROXY = {"app": "proxy"}
DAEMONSET = {
    "apiVersion": "apps/v1", "kind": "DaemonSet",
    "metadata": _meta("proxy", labels=_PROXY, annotations={"deprecated.daemonset.template.generation": "1"}),
    "spec": {"revisionHistoryLimit": 10, "selector": {"matchLabels": _PROXY},
             "template": _template(_PROXY, "envoy:1.30", nodeSelector={"kubernetes.io/os": "linux"},
                                   tolerations=[{"operator": "Exists", "effect": "NoSchedule"},
                                                {"key": "node.kubernetes.io/unreachable",
                                                 "operator": "Exists", "effect": "NoExecute",
                                                 "tolerationSeconds": 300}]),
             "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
                                "type": "RollingUpdate"}},
    "status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberAvailable": 2,
               "numberMisscheduled": 1, "numberReady": 2, "observedGeneration": 1,
               "updatedNumberScheduled": 3, "numberUnavailable": 1},
}

_PI = {"batch.kubernetes.io/controller-uid": "uid-pi", "batch.kubernetes.io/job-name": "pi",
       "controller-uid": "uid-pi", "job-name": "pi"}
JOB = {
    "apiVersion": "batch/v1", "kind": "Job",
    "metadata": _meta("pi", labels=_PI),
    "spec": {"backoffLimit": 6, "completionMode": "NonIndexed", "completions": 5,
             "manualSelector": False, "parallelism": 2, "podReplacementPolicy": "TerminatingOrFailed",
             "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-pi"}},
             "suspend": False,
             "template": _template(_PI, "perl:5.34", restartPolicy="Never")},
    "status": {"active": 2, "failed": 1, "ready": 1, "startTime": "2024-05-01T11:00:01Z",
               "succeeded": 2, "terminating": 0, "uncountedTerminatedPods": {}},
}

_IDX = {"batch.kubernetes.io/controller-uid": "uid-idx", "batch.kubernetes.io/job-name": "idx",
        "controller-uid": "uid-idx", "job-name": "idx"}
INDEXED_JOB = {
    "apiVersion": "batch/v1", "kind": "Job",
    "metadata": _meta("idx", labels=_IDX, owner=("CronJob", "tick", "batch/v1")),
    "spec": {"activeDeadlineSeconds": 300, "backoffLimit": 6, "completionMode": "Indexed",
             "completions": 3, "parallelism": 3,
             "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-idx"}},
             "suspend": False, "ttlSecondsAfterFinished": 100,
             "template": _template(_IDX, "busybox", restartPolicy="OnFailure")},
    "status": {"completedIndexes": "0-2", "completionTime": "2024-05-01T11:03:05Z",
               "conditions": [{"lastProbeTime": "2024-05-01T11:03:05Z",
                               "lastTransitionTime": "2024-05-01T11:03:05Z",
                               "status": "True", "type": "Complete"}],
               "ready": 0, "startTime": "2024-05-01T11:00:00Z", "succeeded": 3},
}

CRONJOB = {
    "apiVersion": "batch/v1", "kind": "CronJob",
    "metadata": _meta("tick"),
    "spec": {"concurrencyPolicy": "Forbid", "failedJobsHistoryLimit": 1,
             "jobTemplate": {"metadata": {},
                             "spec": {"completions": 1, "parallelism": 1, "backoffLimit": 2,
                                      "template": _template({}, "busybox",
                                                            restartPolicy="OnFailure")}},
             "schedule": "*/5 * * * *", "startingDeadlineSeconds": 100,
             "successfulJobsHistoryLimit": 3, "suspend": True, "timeZone": "Etc/UTC"},
    "status": {"active": [{"apiVersion": "batch/v1", "kind": "Job", "name": "tick-28577000",
                           "namespace": "default", "uid": "uid-tick-28577000"},
                          {"apiVersion": "batch/v1", "kind": "Job", "name": "tick-28577005",
                           "namespace": "default", "uid": "uid-tick-28577005"}],
               "lastScheduleTime": "2024-05-01T11:55:00Z"},
}

BARE_CRONJOB = {
    "apiVersion": "batch/v1", "kind": "CronJob",
    "metadata": _meta("bare"),
    "spec": {"jobTemplate": {"spec": {"template": _template({}, "busybox",
                                                            restartPolicy="Never")}},
             "schedule": "@hourly"},
}

PERSISTENT_VOLUME = {
    "apiVersion": "v1", "kind": "PersistentVolume",
    "metadata": _meta("pv-1", namespace=None, finalizers=["kubernetes.io/pv-protection"],
                      annotations={"pv.kubernetes.io/provisioned-by": "kubemu.io/local-path"}),
    "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
             "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                          "name": "data-db-0", "namespace": "default", "uid": "uid-data-db-0"},
             "hostPath": {"path": "/var/lib/kubemu/volumes/pv-1", "type": "DirectoryOrCreate"},
             "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                 {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}]}},
             "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
             "volumeMode": "Filesystem"},
    "status": {"lastPhaseTransitionTime": "2024-05-01T11:00:02Z", "phase": "Bound"},
}

LOCAL_VOLUME = {
    "apiVersion": "v1", "kind": "PersistentVolume",
    "metadata": _meta("pv-local", namespace=None),
    "spec": {"accessModes": ["ReadWriteMany", "ReadOnlyMany"], "capacity": {"storage": "500Mi"},
             "local": {"path": "/mnt/disks/a"}, "persistentVolumeReclaimPolicy": "Retain"},
    "status": {"phase": "Available", "message": "waiting"},
}

PVC = {
    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
    "metadata": _meta("data-db-0", labels=_DB, finalizers=["kubernetes.io/pvc-protection"],
                      annotations={"pv.kubernetes.io/bind-completed": "yes",
                                   "volume.kubernetes.io/selected-node": "node-1"}),
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
             "storageClassName": "standard", "volumeMode": "Filesystem", "volumeName": "pv-1"},
    "status": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}, "phase": "Bound"},
}

PENDING_PVC = {
    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
    "metadata": _meta("scratch"),
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}},
             "storageClassName": "standard", "volumeMode": "Filesystem"},
    "status": {"phase": "Pending"},
}

STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": _meta("standard", namespace=None, annotations={
        "storageclass.kubernetes.io/is-default-class": "true"}),
    "provisioner": "kubemu.io/local-path", "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer",
}

FAST_CLASS = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": _meta("fast", namespace=None),
    "provisioner": "kubemu.io/local-path", "parameters": {"type": "ssd", "fs": "ext4"},
    "allowVolumeExpansion": True, "mountOptions": ["debug", "noatime"],
    "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate",
}

CONTROLLER_REVISION = {
    "apiVersion": "apps/v1", "kind": "ControllerRevision",
    "metadata": _meta("db-6c5d4b8f7", labels={**_DB, "controller.kubernetes.io/hash": "6c5d4b8f7"},
                      owner=("StatefulSet", "db", "apps/v1")),
    "data": {"spec": {"template": {"$patch": "replace", "metadata": {"labels": _DB},
                                   "spec": {"containers": [{"image": "postgres:16",
                                                            "name": "main"}]}}}},
    "revision": 1,
}

WORKLOAD_PODS = [
    _workload_pod("web-5d4f8b8c9-aaaaa", "Running", _NEW_RS,
                  {**_WEB, "pod-template-hash": "5d4f8b8c9"}),
    _workload_pod("web-5d4f8b8c9-bbbbb", "Running", _NEW_RS,
                  {**_WEB, "pod-template-hash": "5d4f8b8c9"}),
    _workload_pod("web-5d4f8b8c9-ccccc", "Pending", _NEW_RS,
                  {**_WEB, "pod-template-hash": "5d4f8b8c9"}),
    # same labels, another owner: not counted
    _workload_pod("web-5d4f8b8c9-stray", "Failed", ("ReplicaSet", "web-stray", "apps/v1"),
                  {**_WEB, "pod-template-hash": "5d4f8b8c9"}),
    _workload_pod("db-0", "Running", ("StatefulSet", "db", "apps/v1"), _DB,
                  [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]),
    _workload_pod("db-1", "Pending", ("StatefulSet", "db", "apps/v1"), _DB),
    _workload_pod("proxy-abcde", "Running", ("DaemonSet", "proxy", "apps/v1"), _PROXY),
    _workload_pod("proxy-fghij", "Succeeded", ("DaemonSet", "proxy", "apps/v1"), _PROXY),
    _workload_pod("proxy-klmno", "Failed", ("DaemonSet", "proxy", "apps/v1"), _PROXY),
]


def _event(name: str, kind: str, obj: str, reason: str, message: str, *,
           component: str, count: int = 1, type_: str = "Normal",
           first: str = "2024-05-01T11:00:00Z", last: str = "2024-05-01T11:00:00Z",
           namespace: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "Event", "count": count, "firstTimestamp": first,
            "involvedObject": {"apiVersion": "apps/v1", "kind": kind, "name": obj,
                               "namespace": namespace, "uid": f"uid-{obj}"},
            "lastTimestamp": last, "message": message,
            "metadata": _meta(name, namespace=namespace or None, created=first),
            "reason": reason, "source": {"component": component}, "type": type_}


WORKLOAD_EVENTS = [
    _event("web.1", "Deployment", "web", "ScalingReplicaSet",
           "Scaled up replica set web-5d4f8b8c9 from 0 to 3", component="deployment-controller",
           first="2024-05-01T11:05:00Z", last="2024-05-01T11:05:00Z"),
    _event("web.2", "Deployment", "web", "ScalingReplicaSet",
           "Scaled down replica set web-6b7c8d9f0 from 3 to 1", component="deployment-controller",
           count=2, first="2024-05-01T11:05:01Z", last="2024-05-01T11:06:00Z"),
    _event("pi.1", "Job", "pi", "SuccessfulCreate", "Created pod: pi-x7k2p",
           component="job-controller", first="2024-05-01T11:00:01Z", last="2024-05-01T11:00:01Z"),
    _event("tick.1", "CronJob", "tick", "SuccessfulCreate", "Created job tick-28577005",
           component="cronjob-controller", first="2024-05-01T11:55:00Z",
           last="2024-05-01T11:55:00Z"),
    _event("data-db-0.1", "PersistentVolumeClaim", "data-db-0", "WaitForFirstConsumer",
           "waiting for first consumer to be created before binding",
           component="persistentvolume-controller", first="2024-05-01T11:00:00Z",
           last="2024-05-01T11:00:01Z", count=3),
]

WORKLOADS = [DEPLOYMENT, *REPLICASETS, RECREATE, STATEFULSET, DAEMONSET, JOB, INDEXED_JOB,
             CRONJOB, BARE_CRONJOB, PERSISTENT_VOLUME, LOCAL_VOLUME, PVC, PENDING_PVC,
             STORAGE_CLASS, FAST_CLASS, CONTROLLER_REVISION]


def workload(kind: str, name: str) -> dict:
    return copy.deepcopy(next(o for o in WORKLOADS
                              if o["kind"] == kind and o["metadata"]["name"] == name))
