"""The client library every component and the CLI use to talk to the apiserver.

clientset (deadlines, retries on UNAVAILABLE for idempotent calls), informer
(list + watch, relist on Expired), workqueue (client-go's contract), leader
election (Lease objects), wait_for (conditions instead of sleeps).

Names are imported on first use so that `kubemu.client.config` (which the CLI
needs for every command) does not pull in gRPC and structlog.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Client": "clientset", "DeleteResult": "clientset", "ListResult": "clientset",
    "WatchEvent": "clientset",
    "ClusterConfig": "config", "home_dir": "config", "load_cluster_config": "config",
    "Informer": "informer", "meta_namespace_key": "informer",
    "LeaderElector": "leaderelection",
    "WaitTimeout": "wait", "wait_for": "wait", "wait_for_sync": "wait",
    "RateLimitingQueue": "workqueue",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kubemu.client' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kubemu.client.{module}"), name)
