"""What the kubelet writes is private whatever the umask: 0700 directories, 0600
files; configMap/secret/downwardAPI files keep the mode Kubernetes gives them
(what a container sees) inside those 0700 directories."""
from __future__ import annotations

import os
import stat

import pytest

from kubelet import logs, volumes
from kubelet.ipam import PodIPAllocator
from tests.builders import obj


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def pod_with_volumes():
    return obj({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                             "labels": {"app": "demo"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": [
                    {"name": "creds", "secret": {"secretName": "creds"}},
                    {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o440,
                                                  "items": [{"key": "a", "path": "dir/a",
                                                             "mode": 0o400},
                                                            {"key": "b", "path": "b"}]}},
                    {"name": "info", "downwardAPI": {"items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})


async def test_volumes_are_private_directories_with_kubernetes_file_modes(tmp_path, umask_022):
    root, claims = tmp_path / "kubelet", tmp_path / "volumes"
    objects = {
        ("Secret", "creds"): obj({"apiVersion": "v1", "kind": "Secret",
                                  "metadata": {"name": "creds", "namespace": "ns"},
                                  "data": {"password": "czNjcmV0"}}),
        ("ConfigMap", "cfg"): obj({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "cfg", "namespace": "ns"},
                                   "data": {"a": "1", "b": "2"}}),
    }

    async def claim_path(namespace: str, claim: str) -> str:
        return str(claims / f"pvc-{claim}")

    manager = volumes.VolumeManager(root, [claims])
    paths = await manager.setup(pod_with_volumes(), lambda kind, ns, name: objects.get(
        (kind, name)), claim_path, host_ip="127.0.9.1", pod_ip="127.9.1.2", allocatable={})
    written = 0
    for directory, _, filenames in os.walk(root):
        assert mode(directory) == 0o700, directory  # every one, the payload ones included
        written += sum(not os.path.islink(os.path.join(directory, n)) for n in filenames)
    assert written == 4, "secret, configMap (2), downwardAPI, and nothing else"
    assert mode(paths["data"]) == 0o700 and mode(claims) == 0o700
    assert mode(paths["scratch"]) == 0o700
    # What the container reads, through the ..data link, has Kubernetes' modes.
    assert mode(os.path.realpath(os.path.join(paths["creds"], "password"))) == 0o644
    assert mode(os.path.realpath(os.path.join(paths["cfg"], "dir/a"))) == 0o400
    assert mode(os.path.realpath(os.path.join(paths["cfg"], "b"))) == 0o440
    assert mode(os.path.realpath(os.path.join(paths["info"], "labels"))) == 0o644


async def test_a_persistent_volumes_own_path_is_made_as_kubernetes_makes_it(tmp_path, umask_022):
    outside = tmp_path / "outside" / "pv"

    async def claim_path(namespace: str, claim: str) -> str:
        return str(outside)

    pod = obj({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": [
                   {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
    manager = volumes.VolumeManager(tmp_path / "kubelet", [tmp_path / "volumes"])
    await manager.setup(pod, lambda *_: None, claim_path, host_ip="", pod_ip="", allocatable={})
    assert mode(outside) == 0o755
    assert mode(tmp_path / "kubelet" / "pods") == 0o700


def test_pod_ip_table_and_rotated_logs_are_0600(tmp_path, umask_022):
    ipam = PodIPAllocator("127.9.1.0/29", tmp_path / "ipam.json")
    ipam.allocate("a")
    ipam.save()
    assert mode(tmp_path / "ipam.json") == 0o600
    log = tmp_path / "0.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, b"x\n" * 100)
    os.close(fd)
    assert logs.rotate(log, 100, 3, 0.0)
    assert [mode(f) for f in logs.rotated_files(log)] == [0o600, 0o600]
