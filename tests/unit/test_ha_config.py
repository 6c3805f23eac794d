"""The HA pieces that need no process: the apiserver's etcd channel target for
one or several members, the etcd member ports kept in the home, the replica
counts, and `kubemu etcd`'s etcdctl-style table and sizes."""
from __future__ import annotations

import json

import pytest

from apiserver.storage import _channel_target
from deploy import components as comp
from kubemu.cli.etcd import humanize_bytes, table


@pytest.mark.parametrize(("endpoints", "want"), [
    ("127.0.0.1:2379", ("127.0.0.1", 2379)),
    ("http://127.0.0.1:2379", ("127.0.0.1", 2379)),
    ("127.0.0.1:1, http://127.0.0.2:2,127.0.0.3:3", ("ipv4:127.0.0.1:1,127.0.0.2:2,127.0.0.3", 3)),
], ids=["one", "one-url", "three"])
def test_the_etcd_channel_target(endpoints, want):
    assert _channel_target(endpoints) == want


@pytest.mark.parametrize(("endpoints", "error"), [
    ("", "Required value"),
    ("127.0.0.1:x", "expected host:port"),
    ("localhost:1,127.0.0.1:2", "must be IPv4 addresses"),
], ids=["empty", "no-port", "hostname-among-several"])
def test_a_bad_etcd_endpoint_list_is_refused(endpoints, error):
    with pytest.raises(ValueError, match=error):
        _channel_target(endpoints)


@pytest.mark.parametrize(("replicas", "error"), [
    ({"etcd": 0}, "etcd: must be >= 1, got 0"),
    ({"apiserver": 0}, "apiserver: must be >= 1, got 0"),
    ({"scheduler": -1}, "scheduler: must be >= 0, got -1"),
], ids=["no-etcd", "no-apiserver", "negative-schedulers"])
def test_replica_counts_are_checked(replicas, error):
    with pytest.raises(ValueError, match=error):
        comp.check_replicas(replicas)


@pytest.mark.parametrize("fronts", [False, True], ids=["before-peer-fronts", "peer-fronts"])
def test_etcd_member_ports_are_kept_for_the_next_start(tmp_path, fronts):
    names = ["etcd-0", "etcd-1", "etcd-2"]
    assert comp.etcd_previous_ports(tmp_path, names) is None  # a new cluster
    ports = {n: {"client": 1000 + i, "peer": 2000 + i, **({"peer_front": 3000 + i} if fronts else {})}
             for i, n in enumerate(names)}
    comp.record_etcd_ports(tmp_path, ports)
    for name in names:
        (tmp_path / "etcd" / name / "member").mkdir(parents=True)
    assert comp.etcd_previous_ports(tmp_path, names) == [ports[n] for n in names]
    with pytest.raises(ValueError, match=r"holds the data of members etcd-0, etcd-1, etcd-2, "
                                         r"not etcd-0: start with --etcd 3"):
        comp.etcd_previous_ports(tmp_path, ["etcd-0"])
    (tmp_path / "etcd" / "members.json").write_text(json.dumps({"etcd-0": {}}))
    with pytest.raises(ValueError, match="but not the ports it ran on"):
        comp.etcd_previous_ports(tmp_path, names)


def test_a_home_from_before_member_names_keeps_its_etcd_data(tmp_path):
    (tmp_path / "etcd" / "data" / "member").mkdir(parents=True)
    assert comp.etcd_previous_ports(tmp_path, ["etcd-0"]) is None
    assert (tmp_path / "etcd" / "etcd-0" / "member").is_dir()
    assert not (tmp_path / "etcd" / "data").exists()


@pytest.mark.parametrize(("size", "want"), [
    (0, "0 B"), (9, "9 B"), (20480, "20 kB"), (1_234_567, "1.2 MB"), (25_000_000, "25 MB"),
])
def test_db_sizes_as_etcdctl_prints_them(size, want):
    assert humanize_bytes(size) == want


def test_the_table_is_etcdctls():
    assert table(("ID", "IS LEADER"), [("8e9e05c52164694d", "true")]) == (
        "+------------------+-----------+\n"
        "|        ID        | IS LEADER |\n"
        "+------------------+-----------+\n"
        "| 8e9e05c52164694d |      true |\n"
        "+------------------+-----------+\n")


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize("cluster, advertised", [
    ((), "http://127.0.0.1:2380"),
    ((("etcd-0", "http://127.0.0.1:3000"), ("etcd-1", "http://127.0.0.1:3001")),
     "http://127.0.0.1:3001"),
], ids=["lone-member", "member-behind-its-peer-front"])
def test_an_etcd_member_advertises_its_peer_front_and_listens_on_its_own_port(
        tmp_path, cluster, advertised):
    name = "etcd-1" if cluster else "etcd-0"
    launch = comp.Launch(home=tmp_path, name=name, node="", host="127.0.0.1",
                         ports={"client": 2379, "peer": 2380}, peers={},
                         binaries={comp.ETCD: "etcd"}, etcd_cluster=cluster)
    argv = comp.etcd_argv(launch)
    assert _flag(argv, "--listen-peer-urls") == "http://127.0.0.1:2380"
    assert _flag(argv, "--initial-advertise-peer-urls") == advertised
    assert _flag(argv, "--initial-cluster") == ",".join(
        f"{n}={u}" for n, u in (cluster or ((name, advertised),)))
