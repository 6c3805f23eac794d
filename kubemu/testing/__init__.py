"""kubemu in other people's tests: `Cluster` (a private cluster with the
components a test needs) and, loaded with `-p kubemu.testing`, a pytest plugin
(fixtures kubemu_cluster, kubemu_client, kubemu_namespace; the `kubemu` marker;
logs, status and events in a failing test's report).

    from kubemu.testing import Cluster, API_ONLY

    async with Cluster(components=API_ONLY) as cluster:      # etcd + apiserver
        await cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", ...})

See kubemu/testing/cluster.py and kubemu/testing/plugin.py, and the README's
"Testing your own components".
"""
from __future__ import annotations

from kubemu.testing.cluster import (
    API_ONLY,
    APISERVER,
    COMPONENTS,
    CONTROL_PLANE,
    CONTROLLER_MANAGER,
    ETCD,
    KUBE_PROXY,
    KUBELET,
    NODE_COMPONENTS,
    RUNTIME,
    SCHEDULER,
    Cluster,
    ClusterError,
    ProcessesLeft,
)
from kubemu.client.wait import WaitTimeout

__all__ = ["API_ONLY", "APISERVER", "COMPONENTS", "CONTROL_PLANE", "CONTROLLER_MANAGER", "ETCD",
           "KUBE_PROXY", "KUBELET", "NODE_COMPONENTS", "RUNTIME", "SCHEDULER", "Cluster",
           "ClusterError", "ProcessesLeft", "WaitTimeout"]

try:
    import pytest  # noqa: F401 - the plugin below is only for a pytest run
except ImportError:
    pass
else:
    # `-p kubemu.testing` registers this module: pytest finds the plugin's hooks
    # and fixtures among its names.
    from kubemu.testing.plugin import (  # noqa: F401
        kubemu_client,
        kubemu_cluster,
        kubemu_namespace,
        kubemu_shared_cluster,
        pytest_addoption,
        pytest_configure,
        pytest_runtest_makereport,
    )
