"""The options of kubemu's pytest plugin, apart from it.

kubemu's pytest11 entry point (kubemu/pytest_entry.py) adds them in every run
where kubemu is installed, and must not import kubemu.testing to do so: pytest
rewrites the asserts of a plugin module only if it is not imported yet.
"""
from __future__ import annotations

import pytest

SCOPES = ("session", "package", "module", "class", "function")
DEFAULTS = {"scope": "session", "nodes": "0", "components": "", "profile": "fast",
            "log_lines": "20"}


def add_options(parser: pytest.Parser) -> None:
    """The plugin's options; both the entry point and the plugin add them (once)."""
    group = parser.getgroup("kubemu", "kubemu clusters for tests (kubemu.testing)")
    if any("--kubemu-scope" in option.names() for option in group.options):
        return
    group.addoption("--kubemu-scope", choices=SCOPES, default=None,
                    help="how widely the kubemu_cluster fixture's cluster is shared "
                         "(default: ini kubemu_scope, else session)")
    group.addoption("--kubemu-nodes", type=int, default=None,
                    help="nodes of the shared cluster (default: ini kubemu_nodes, else 0)")
    group.addoption("--kubemu-components", default=None, metavar="NAME[,NAME]",
                    help="processes of the shared cluster, of: etcd, apiserver, scheduler, "
                         "controller-manager, runtime, kubelet, kube-proxy "
                         "(default: the control plane, and the node components with nodes)")
    group.addoption("--kubemu-profile", choices=("fast", "default"), default=None,
                    help="component timings of the shared cluster (default: fast)")
    group.addoption("--kubemu-log-lines", type=int, default=None,
                    help="log lines per component in a failing test's report (default 20)")
    for name, default in DEFAULTS.items():
        parser.addini(f"kubemu_{name}", f"kubemu.testing: the default of --kubemu-"
                      f"{name.replace('_', '-')}", default=default)
