"""Static pods: pods the kubelet runs from manifest files, without the apiserver.

Model (Kubernetes' pkg/kubelet/config/file.go, config/common.go and
pod/mirror_client.go):
- Every `--file-check-frequency` the kubelet reads each file of its
  `--pod-manifest-path` directory (names starting with "." are skipped; at
  most MANIFEST_FILES_MAX files of at most MANIFEST_BYTES_MAX each): one Pod
  per file, YAML or JSON. A file that does not decode, or whose pod is
  invalid, is logged and skipped (the other files still count).
- A manifest becomes a static pod as Kubernetes makes it: name
  `<name>-<nodeName>`, namespace `default` when none, `spec.nodeName` the
  node, the uid a hash of the manifest, the node and the file's path (so an
  edit is a new pod), the annotations `kubernetes.io/config.hash` (= uid),
  `kubernetes.io/config.source: file` and `kubernetes.io/config.seen` (when
  this kubelet first saw it), a toleration of every NoExecute taint, the
  API's defaults. The kubelet runs it like any other pod, keyed by that uid.
- Its mirror pod is its copy in the API, so that `get pods` shows it: same
  name, namespace and spec, the annotation `kubernetes.io/config.mirror` (the
  hash), an ownerReference to the Node (controller). The kubelet owns
  mirrors: `mirror_plan` says which to create (missing) and which to delete
  (stale hash, marked for deletion by someone, or no static pod left) —
  deleted with grace 0 and a uid precondition, then made again if the
  static pod is still there. The pod's status is written to its mirror.
Pure functions but `read_manifests` (file I/O, run it in a thread).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re
from typing import Any, Iterable, Mapping, Sequence

import yaml
from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import codec, defaults, errors, validation
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
SOURCE_ANNOTATION = "kubernetes.io/config.source"
HASH_ANNOTATION = "kubernetes.io/config.hash"
SEEN_ANNOTATION = "kubernetes.io/config.seen"
FILE_SOURCE = "file"
MANIFEST_FILES_MAX = 256
MANIFEST_BYTES_MAX = 1 << 20
DEFAULT_FILE_CHECK_FREQUENCY_S = 20.0  # Kubernetes' --file-check-frequency

_PODS = REGISTRY.by_resource("pods")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(text: str) -> float:
    """A Go duration ("20s", "1m30s", "500ms") or plain seconds, as seconds."""
    text = text.strip()
    try:
        value_s = float(text)
    except ValueError:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"invalid duration {text!r}") from None
        value_s = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if value_s <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return value_s


def is_mirror(pod: Message) -> bool:
    return MIRROR_ANNOTATION in pod.metadata.annotations


@dataclasses.dataclass(frozen=True)
class Manifest:
    """One file of the manifest directory: its decoded document, or why not."""

    path: str
    doc: dict[str, Any] | None
    error: str = ""


def read_manifests(directory: pathlib.Path) -> list[Manifest]:
    """Every manifest file of `directory`, sorted by name (blocking I/O); none
    when it does not exist; OSError when it cannot be listed (the caller
    keeps what it runs: a passing error must not stop every static pod)."""
    try:
        names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
    except FileNotFoundError:
        return []
    found = []
    for name in names[:MANIFEST_FILES_MAX]:
        path = directory / name
        try:
            if not path.is_file():
                continue
            with open(path, "rb") as f:
                data = f.read(MANIFEST_BYTES_MAX + 1)
        except OSError as err:
            found.append(Manifest(str(path), None, f"cannot read: {err}"))
            continue
        if len(data) > MANIFEST_BYTES_MAX:
            found.append(Manifest(str(path), None, f"larger than {MANIFEST_BYTES_MAX} bytes"))
            continue
        try:
            doc = yaml.safe_load(data)
        except yaml.YAMLError as err:
            found.append(Manifest(str(path), None, f"not YAML or JSON: {err}"))
            continue
        if not isinstance(doc, dict):
            found.append(Manifest(str(path), None, "not a single object"))
            continue
        found.append(Manifest(str(path), doc))
    return found


def manifest_hash(doc: Mapping[str, Any], node_name: str, path: str) -> str:
    """The static pod's uid: the manifest, the node and the file (config/common.go)."""
    hasher = hashlib.md5(usedforsecurity=False)
    hasher.update(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    hasher.update(f"host:{node_name}".encode())
    hasher.update(f"file:{path}".encode())
    return hasher.hexdigest()


def static_pod(doc: Mapping[str, Any], node_name: str, path: str, seen_s: float) -> Message:
    """The pod a manifest describes, as the kubelet runs it; errors.ApiError
    (BadRequest, Invalid) for a manifest that is not a valid Pod."""
    if doc.get("apiVersion") != "v1" or doc.get("kind") != "Pod":
        raise errors.BadRequest(f"{path}: not a v1 Pod (apiVersion {doc.get('apiVersion')!r}, "
                                f"kind {doc.get('kind')!r})")
    pod = codec.from_dict(core_pb2.Pod, dict(doc))
    meta = pod.metadata
    # Always the hash, even when the manifest names a uid (Kubernetes keeps
    # that one and sees an edit as an update): here an edit is a new pod,
    # found by the hash the directory scan computes.
    uid = manifest_hash(doc, node_name, path)
    meta.uid = uid
    meta.name = f"{meta.name}-{node_name.lower()}"
    meta.namespace = meta.namespace or "default"
    meta.annotations[HASH_ANNOTATION] = uid
    meta.annotations[SOURCE_ANNOTATION] = FILE_SOURCE
    meta.annotations[SEEN_ANNOTATION] = timefmt.rfc3339_nano(int(seen_s * 1e9))
    pod.spec.node_name = node_name
    # Static pods stay through node problems (AddOrUpdateTolerationInPod).
    if not any(t.operator == "Exists" and not t.key and t.effect == "NoExecute"
               for t in pod.spec.tolerations):
        pod.spec.tolerations.add(operator="Exists", effect="NoExecute")
    defaults.apply_defaults(_PODS, pod)
    problems = validation.validate(_PODS, pod)
    if problems:
        raise errors.Invalid("Pod", meta.name, problems)
    pod.status.phase = "Pending"
    return pod


def mirror_pod(pod: Message, node: Message) -> Message:
    """The API copy of static `pod`, owned by `node` (mirror_client.CreateMirrorPod)."""
    mirror = core_pb2.Pod()
    mirror.metadata.name, mirror.metadata.namespace = pod.metadata.name, pod.metadata.namespace
    mirror.metadata.labels.update(pod.metadata.labels)
    mirror.metadata.annotations.update(pod.metadata.annotations)
    mirror.metadata.annotations[MIRROR_ANNOTATION] = pod.metadata.annotations[HASH_ANNOTATION]
    mirror.metadata.owner_references.add(api_version="v1", kind="Node",
                                         name=node.metadata.name, uid=node.metadata.uid,
                                         controller=True)
    mirror.spec.CopyFrom(pod.spec)
    return mirror


@dataclasses.dataclass
class MirrorPlan:
    create: list[Message] = dataclasses.field(default_factory=list)  # static pods
    delete: list[Message] = dataclasses.field(default_factory=list)  # mirror pods


def mirror_plan(static: Iterable[Message], api_pods: Sequence[Message]) -> MirrorPlan:
    """What makes the node's mirror pods match its static pods (`api_pods`:
    the pods bound to this node, as the kubelet's informer has them)."""
    plan = MirrorPlan()
    by_name = {(p.metadata.namespace, p.metadata.name): p for p in api_pods}
    wanted = {}
    for pod in static:
        key = (pod.metadata.namespace, pod.metadata.name)
        wanted[key] = pod
        existing = by_name.get(key)
        if existing is None:
            plan.create.append(pod)
        elif not is_mirror(existing):
            continue  # a regular pod holds the name: Kubernetes leaves it alone too
        elif existing.metadata.annotations[MIRROR_ANNOTATION] \
                != pod.metadata.annotations[HASH_ANNOTATION] \
                or existing.metadata.deletion_timestamp:
            plan.delete.append(existing)  # made again once it is gone
    for key, existing in by_name.items():
        if is_mirror(existing) and key not in wanted:
            plan.delete.append(existing)
    return plan
