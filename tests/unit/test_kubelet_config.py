"""The kubelet's pure pieces: $(VAR) expansion and env sources, volume files,
back-off, pod IPs, log tails, and the node addresses the supervisor hands out."""
from __future__ import annotations

import io
import os
import pathlib
import re
import stat
from fractions import Fraction

import pytest

from deploy import components as comp
from kubelet import envvars, logs, node, volumes
from kubemu.backoff import Backoff
from kubelet.ipam import PodIPAllocator, PoolExhausted
from tests.builders import obj

# ---------------------------------------------------------------- expansion


@pytest.mark.parametrize("text,expected", [
    ("$(A)", "1"),
    ("x$(A)y$(B)z", "x1y2z"),
    ("$$(A)", "$(A)"),
    ("$(UNKNOWN)", "$(UNKNOWN)"),
    ("$(A", "$(A"),
    ("$A", "$A"),
    ("cost: $$5", "cost: $5"),
    ("end$", "end$"),
    ("$()", "$()"),
], ids=lambda v: repr(v))
def test_expand(text, expected):
    assert envvars.expand(text, {"A": "1", "B": "2"}.get) == expected


def make_pod(env=None, env_from=None, **spec):
    ctr = {"name": "main", "image": "busybox", "env": env or [], "envFrom": env_from or [],
           "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}
    return obj({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                             "labels": {"app": "web"}},
                "spec": {"nodeName": "n1", "containers": [ctr], **spec}})


CONFIG = obj({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "cfg", "namespace": "ns"},
              "data": {"color": "blue", "bad-name!": "x"}})
SECRET = obj({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"},
              "data": {"pw": "czNjcmV0"}})


def lookup(kind, namespace, name):
    found = {("ConfigMap", "cfg"): CONFIG, ("Secret", "s"): SECRET}.get((kind, name))
    return found if found is not None and namespace == "ns" else None


def env_of(pod) -> dict[str, str]:
    return dict(envvars.container_env(pod, pod.spec.containers[0], lookup, host_ip="127.0.9.1",
                                      pod_ip="127.9.1.2", allocatable={"cpu": "4",
                                                                       "memory": "8Gi"}))


def test_env_sources_and_order():
    pod = make_pod(env=[
        {"name": "COLOR", "value": "red"},
        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                           "divisor": "1Mi"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu",
                                                               "divisor": "1m"}}},
        {"name": "MSG", "value": "$(COLOR)-$(CM_color)"}],
        env_from=[{"prefix": "CM_", "configMapRef": {"name": "cfg"}}])
    env = env_of(pod)
    assert env["CM_color"] == "blue" and "CM_bad-name!" not in env
    assert (env["COLOR"], env["FROM_CM"], env["PW"]) == ("red", "blue", "s3cret")
    assert (env["IP"], env["APP"]) == ("127.9.1.2", "web")
    assert (env["MEM"], env["CPU"], env["CPU_REQ"]) == ("64", "4", "250")
    assert env["MSG"] == "red-blue"


@pytest.mark.parametrize("env,env_from,message", [
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}], [],
     "couldn't find key nope in ConfigMap ns/cfg"),
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}}], [],
     'configmap "missing" not found'),
    ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}}], [],
     "couldn't find key nope in Secret ns/s"),
    ([], [{"secretRef": {"name": "missing"}}], 'secret "missing" not found'),
], ids=["cm-key", "cm", "secret-key", "secret-envfrom"])
def test_missing_sources_are_config_errors(env, env_from, message):
    with pytest.raises(envvars.ConfigError) as err:
        env_of(make_pod(env=env, env_from=env_from))
    assert str(err.value) == message


def test_optional_sources_may_be_missing():
    env = env_of(make_pod(env=[{"name": "X", "valueFrom": {"configMapKeyRef": {
        "name": "cfg", "key": "nope", "optional": True}}}],
        env_from=[{"configMapRef": {"name": "missing", "optional": True}}]))
    assert "X" not in env


def test_service_links():
    svc = obj({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "my-db", "namespace": "ns"},
               "spec": {"clusterIP": "127.250.0.10", "ports": [{"name": "sql", "port": 5432,
                                                                 "protocol": "TCP"}]}})
    env = envvars.service_env([svc])
    assert env["MY_DB_SERVICE_HOST"] == "127.250.0.10"
    assert env["MY_DB_SERVICE_PORT"] == "5432" and env["MY_DB_SERVICE_PORT_SQL"] == "5432"
    assert env["MY_DB_PORT"] == "tcp://127.250.0.10:5432"
    assert env["MY_DB_PORT_5432_TCP_ADDR"] == "127.250.0.10"


# ---------------------------------------------------------------- volumes

def test_atomic_writer_swaps_content_and_links(tmp_path):
    target = tmp_path / "vol"
    assert volumes.write_atomically(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert (target / "a").read_text() == "1" and (target / "dir" / "b").read_text() == "2"
    assert os.readlink(target / "a") == "..data/a"
    assert not volumes.write_atomically(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert volumes.write_atomically(target, {"a": (b"changed", 0o644)})
    assert (target / "a").read_text() == "changed"
    assert not (target / "dir").exists()
    stamped = [p for p in target.iterdir() if p.name.startswith("..") and p.name != "..data"]
    assert len(stamped) == 1, "old payload directories are removed"


def test_configmap_volume_payload_items_and_errors():
    vol = obj({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
               "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [
                   {"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o400,
                                               "items": [{"key": "color", "path": "x/color"}]}},
                   {"name": "w", "configMap": {"name": "cfg", "items": [{"key": "nope",
                                                                         "path": "n"}]}},
                   {"name": "m", "configMap": {"name": "missing"}}]}})
    pod = vol
    args = dict(host_ip="", pod_ip="", allocatable={})
    assert volumes.volume_payload(pod.spec.volumes[0], pod, lookup, **args) == {
        "x/color": (b"blue", 0o400)}
    with pytest.raises(volumes.VolumeError, match="configmap references non-existent config "
                                                  "key: nope"):
        volumes.volume_payload(pod.spec.volumes[1], pod, lookup, **args)
    with pytest.raises(volumes.VolumeError, match='volume "m" : configmap "missing" not found'):
        volumes.volume_payload(pod.spec.volumes[2], pod, lookup, **args)


# ---------------------------------------------------------------- back-off

def test_crash_loop_back_off_doubles_caps_and_resets():
    now = [1000.0]
    b = Backoff(10, 40, 600, clock=lambda: now[0])
    assert b.remaining_s("k", since_s=now[0]) == 0          # first restart: at once
    assert [b.next("k") for _ in range(4)] == [10, 20, 40, 40]
    assert b.remaining_s("k", since_s=now[0] - 5) == 35
    now[0] += 601                                             # 10 min clean
    assert b.remaining_s("k", since_s=now[0]) == 0 and b.next("k") == 10




# ---------------------------------------------------------------- pod IPs

def test_pod_ips_round_robin_persist_and_reconcile(tmp_path):
    path = tmp_path / "ipam.json"
    ipam = PodIPAllocator("127.9.1.0/29", path)  # hosts .1-.6; .1 is the gateway's
    a, b = ipam.allocate("a"), ipam.allocate("b")
    assert (a, b) == ("127.9.1.2", "127.9.1.3") and ipam.allocate("a") == a
    ipam.release("a")
    assert ipam.allocate("c") == "127.9.1.4", "a freed address is not reused at once"
    ipam.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = PodIPAllocator("127.9.1.0/29", path)
    assert again.ip_of("b") == b and again.ip_of("c") == "127.9.1.4"
    again.reconcile([("b", b)])
    assert again.ip_of("c") is None
    for uid in "defg":
        again.allocate(uid)
    with pytest.raises(PoolExhausted):
        again.allocate("h")


# ---------------------------------------------------------------- logs

@pytest.mark.parametrize("data,lines,expected", [
    (b"a\nb\nc\n", 2, b"b\nc\n"),
    (b"a\nb\nc", 2, b"b\nc"),
    (b"a\nb\n", 5, b"a\nb\n"),
    (b"a\nb\n", 0, b""),
    (b"", 3, b""),
    (b"x" * 20000 + b"\nlast\n", 1, b"last\n"),
])
def test_tail_offset(data, lines, expected):
    f = io.BytesIO(data)
    f.seek(logs.tail_offset(f, lines))
    assert f.read() == expected


# ---------------------------------------------------------------- node addresses

@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Network claims (normally machine-wide, in the temp directory) stay in the test's."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()


def test_node_addresses_are_stable_per_home_and_distinct_between_live_homes(tmp_path,
                                                                           private_tmp):
    home = tmp_path / "h1"
    home.mkdir()
    block = comp.network_block(home)
    assert comp.NETWORK_BLOCK_MIN <= block <= comp.NETWORK_BLOCK_MAX
    assert comp.network_block(home) == block
    launch = comp.Launch(home=home, name="node-3/kubelet", node="node-3", host="127.0.0.1",
                         ports={"grpc": 1234}, peers={"apiserver": "127.0.0.1:1"}, binaries={})
    assert comp.node_ip(launch) == f"127.0.{block}.3"
    assert comp.pod_cidr(launch) == f"127.{block}.3.0/24"
    assert comp.runtime_socket(launch).endswith(".sock")
    with pytest.raises(ValueError):
        comp.node_index("worker")


def test_a_block_held_by_a_live_cluster_is_not_taken(tmp_path, private_tmp):
    import fcntl

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    block = comp.network_block(first)
    # `first` is live (its supervisor lock is held); `second` claims to want the same block.
    lock = os.open(first / "supervisor.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        (second / comp.NETWORK_FILE).write_text(f'{{"block": {block}}}\n')
        assert comp.network_block(second) != block
    finally:
        os.close(lock)


def test_long_homes_get_a_short_runtime_socket(tmp_path):
    import tempfile

    home = tmp_path / ("x" * 120)
    launch = comp.Launch(home=home, name="node-1/runtime", node="node-1", host="127.0.0.1",
                         ports={}, peers={}, binaries={})
    socket = pathlib.Path(comp.runtime_socket(launch))  # only a name: nothing is created
    assert socket.parent == pathlib.Path(tempfile.gettempdir())
    assert socket.name.startswith("kubemu-") and socket.name.endswith("-node-1.sock")
    short = comp.Launch(home=pathlib.Path("/h"), name="node-1/runtime", node="node-1",
                        host="127.0.0.1", ports={}, peers={}, binaries={})
    assert comp.runtime_socket(short) == "/h/nodes/node-1/runtime.sock"


# ---------------------------------------------------------------- admission

def requesting(cpu: str = "", memory: str = "", init_cpu: str = ""):
    def resources(c, m):
        requests = {k: v for k, v in (("cpu", c), ("memory", m)) if v}
        return {"requests": requests} if requests else {}
    spec = {"containers": [{"name": "a", "image": "x", "resources": resources(cpu, memory)}]}
    if init_cpu:
        spec["initContainers"] = [{"name": "i", "image": "x",
                                   "resources": resources(init_cpu, "")}]
    return obj({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})


@pytest.mark.parametrize("new,running,expected", [
    (requesting(cpu="500m"), [requesting(cpu="3")], None),
    (requesting(cpu="1500m"), [requesting(cpu="3")],
     ("OutOfcpu", "Pod was rejected: Node didn't have enough resource: cpu, requested: 1500, "
                  "used: 3000, capacity: 4000")),
    (requesting(init_cpu="2"), [requesting(cpu="3")],
     ("OutOfcpu", "Pod was rejected: Node didn't have enough resource: cpu, requested: 2000, "
                  "used: 3000, capacity: 4000")),
    (requesting(memory="2Gi"), [requesting(memory="1Gi")],
     ("OutOfmemory", "Pod was rejected: Node didn't have enough resource: memory, "
                   "requested: 2147483648, used: 1073741824, capacity: 2147483648")),
    (requesting(), [requesting(), requesting()],
     ("OutOfpods", "Pod was rejected: Node didn't have enough resource: pods, requested: 1, "
                   "used: 2, capacity: 2")),
], ids=["fits", "out-of-cpu", "init-request-counts", "out-of-memory", "out-of-pods"])
def test_admission(new, running, expected):
    from kubelet import admission

    allocatable = {"cpu": "4", "memory": "2Gi", "pods": "2"}
    assert admission.admit(new, running, allocatable) == expected


# ---------------------------------------------------------------- eviction thresholds


def test_eviction_hard_defaults_are_kubernetes():
    t = node.parse_eviction_hard(node.DEFAULT_EVICTION_HARD)
    assert t == {"memory.available": node.Threshold(quantity=100 << 20),
                 "nodefs.available": node.Threshold(fraction=Fraction(1, 10)),
                 "pid.available": node.Threshold(fraction=Fraction(1, 10))}


@pytest.mark.parametrize("text,message", [
    ("disk.available<1Gi", "unsupported eviction signal disk.available"),
    ("memory.available>1Gi", "want signal<value"),
    ("nodefs.available<120%", "must be >= 0% and <= 100%"),
    ("nodefs.available<x%", "invalid percentage x%"),
    ("memory.available<lots", "invalid quantity 'lots'"),
    ("pid.available<1,pid.available<2", "duplicate eviction threshold for signal pid.available"),
])
def test_eviction_hard_refuses_bad_thresholds(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        node.parse_eviction_hard(text)


def test_pressure_follows_the_thresholds(tmp_path):
    everything = node.parse_eviction_hard(
        "memory.available<1Pi,nodefs.available<100%,pid.available<100%")
    assert node.measure_pressure(str(tmp_path), everything) == node.Pressure(True, True, True)
    nothing = node.parse_eviction_hard("memory.available<0,nodefs.available<0%,pid.available<0")
    assert node.measure_pressure(str(tmp_path), nothing) == node.Pressure(False, False, False)
    # Setting the flag replaces every default: a signal left out is never crossed.
    only_disk = node.parse_eviction_hard("nodefs.available<100%")
    assert node.measure_pressure(str(tmp_path), only_disk) == node.Pressure(False, True, False)
    kinds = [(k, ok, reason) for k, ok, reason, _ in node.conditions(
        node.Pressure(False, True, False), True, "")]
    assert kinds[1] == ("DiskPressure", True, "KubeletHasDiskPressure")
