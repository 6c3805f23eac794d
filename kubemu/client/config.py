"""Where a cluster lives and how to reach it.

A cluster's home is `--home`, else `$KUBEMU_HOME`, else `~/.kubemu`. The
supervisor writes `<home>/kubeconfig.json` once every address is known:

    {"apiserver": "127.0.0.1:PORT", "apiservers": ["127.0.0.1:PORT", ...],
     "etcd": ["127.0.0.1:PORT", ...],
     "components": {...free-form, owned by the supervisor...}}

`apiserver` is the address clients use; `apiservers` lists every apiserver
(apiserver first; absent in files of older supervisors: [apiserver]).

Writes are atomic (kubemu.fileutil.atomic_write: a temporary file in the same
directory, then rename), so a reader sees either the old file or the new one,
never half of one; the file is 0600 and a home it creates 0700, whatever the
umask (it names every address of a cluster that only its user should reach).

A program running in a pod (an add-on) finds the apiserver as client-go's
rest.InClusterConfig does: `in_cluster_config()` reads KUBERNETES_SERVICE_HOST
and KUBERNETES_SERVICE_PORT, which the kubelet sets from the `kubernetes`
Service in `default`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
from typing import Any, Mapping

from kubemu import fileutil

HOME_ENV = "KUBEMU_HOME"
SERVICE_HOST_ENV = "KUBERNETES_SERVICE_HOST"
SERVICE_PORT_ENV = "KUBERNETES_SERVICE_PORT"
# client-go's rest.ErrNotInCluster, word for word.
NOT_IN_CLUSTER = ("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                  "KUBERNETES_SERVICE_PORT must be defined")
DEFAULT_HOME = "~/.kubemu"
KUBECONFIG_FILE = "kubeconfig.json"
# The file is a handful of addresses; anything far bigger is not ours.
_KUBECONFIG_BYTES_MAX = 1 << 20


class ClusterNotFound(FileNotFoundError):
    """No kubeconfig.json in the home: the cluster is not up (or another home is meant)."""


class BadClusterConfig(ValueError):
    """kubeconfig.json exists but is not what the supervisor writes."""


def home_dir(explicit: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The cluster's home: `explicit`, else $KUBEMU_HOME, else ~/.kubemu."""
    if explicit is not None and str(explicit) != "":
        return pathlib.Path(explicit).expanduser()
    env = os.environ.get(HOME_ENV, "")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path(DEFAULT_HOME).expanduser()


@dataclasses.dataclass
class ClusterConfig:
    """Every address of one cluster, as the supervisor wrote them."""

    apiserver: str
    etcd: list[str] = dataclasses.field(default_factory=list)
    components: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Every apiserver of the cluster; empty means [apiserver].
    apiservers: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.apiservers:
            self.apiservers = [self.apiserver]

    def to_dict(self) -> dict[str, Any]:
        return {"apiserver": self.apiserver, "apiservers": list(self.apiservers),
                "etcd": list(self.etcd), "components": dict(self.components)}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "kubeconfig") -> ClusterConfig:
        if not isinstance(data, dict):
            raise BadClusterConfig(f"{source}: expected a JSON object")
        apiserver = data.get("apiserver")
        if not isinstance(apiserver, str) or not apiserver:
            raise BadClusterConfig(f"{source}: apiserver: Required value: an address host:port")
        etcd = data.get("etcd", [])
        if not isinstance(etcd, list) or not all(isinstance(a, str) for a in etcd):
            raise BadClusterConfig(f"{source}: etcd: Invalid value: expected a list of addresses")
        components = data.get("components", {})
        if not isinstance(components, dict):
            raise BadClusterConfig(f"{source}: components: Invalid value: expected an object")
        apiservers = data.get("apiservers", [])
        if not isinstance(apiservers, list) or not all(
                isinstance(a, str) and a for a in apiservers):
            raise BadClusterConfig(
                f"{source}: apiservers: Invalid value: expected a list of addresses")
        # Unknown top-level keys are ignored: a newer supervisor may add some.
        return cls(apiserver=apiserver, etcd=list(etcd), components=dict(components),
                   apiservers=list(apiservers))


def kubeconfig_path(home: str | os.PathLike[str] | None = None) -> pathlib.Path:
    return home_dir(home) / KUBECONFIG_FILE


def load_cluster_config(home: str | os.PathLike[str] | None = None) -> ClusterConfig:
    """The cluster config in `home` (resolved with home_dir).

    Raises ClusterNotFound when there is no file, BadClusterConfig when it is
    not valid.
    """
    home_path = home_dir(home)
    path = home_path / KUBECONFIG_FILE
    try:
        with open(path, "rb") as f:
            raw = f.read(_KUBECONFIG_BYTES_MAX + 1)
    except FileNotFoundError:
        raise ClusterNotFound(
            f"no cluster found in {home_path}: run 'kubemu up' first (or set {HOME_ENV})"
        ) from None
    if len(raw) > _KUBECONFIG_BYTES_MAX:
        raise BadClusterConfig(f"{path}: larger than {_KUBECONFIG_BYTES_MAX} bytes")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadClusterConfig(f"{path}: not valid JSON: {exc}") from None
    return ClusterConfig.from_dict(data, source=str(path))


def in_cluster_config(environ: Mapping[str, str] | None = None) -> ClusterConfig:
    """The apiserver as a pod sees it: the `kubernetes` Service's address from the
    environment the kubelet gave the pod. ClusterNotFound (client-go's message)
    when either variable is missing or empty."""
    env = os.environ if environ is None else environ
    host, port = env.get(SERVICE_HOST_ENV, ""), env.get(SERVICE_PORT_ENV, "")
    if not host or not port:
        raise ClusterNotFound(NOT_IN_CLUSTER)
    # net.JoinHostPort: an IPv6 address gets brackets.
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ClusterConfig(apiserver=address)


def apiserver_or_exit(flag: str, home: str | os.PathLike[str] | None) -> str:
    """A component's apiserver: its --apiserver flag, else the cluster config in
    `home`; otherwise "error: <why>" on stderr and exit 2 (a usage error)."""
    if flag:
        return flag
    try:
        return load_cluster_config(home).apiserver
    except (ClusterNotFound, BadClusterConfig) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def write_cluster_config(home: str | os.PathLike[str] | None, cfg: ClusterConfig) -> pathlib.Path:
    """Write `cfg` to `<home>/kubeconfig.json` (0600) atomically; returns the path.
    Blocking (an fsync): call it from a thread in async code."""
    home_path = home_dir(home)
    if not home_path.is_dir():
        fileutil.private_dir(home_path)
    path = home_path / KUBECONFIG_FILE
    fileutil.atomic_write(path, json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    return path
