"""The client library every component and the CLI use to talk to the apiserver.

clientset (deadlines, retries on UNAVAILABLE for idempotent calls), informer
(list + watch, relist on Expired), workqueue (client-go's contract), leader
election (Lease objects), wait_for (conditions instead of sleeps).
"""
from kubemu.client.clientset import Client, DeleteResult, ListResult, WatchEvent
from kubemu.client.config import ClusterConfig, home_dir, load_cluster_config
from kubemu.client.informer import Informer, meta_namespace_key
from kubemu.client.leaderelection import LeaderElector
from kubemu.client.wait import WaitTimeout, wait_for, wait_for_sync
from kubemu.client.workqueue import RateLimitingQueue

__all__ = [
    "Client", "ClusterConfig", "DeleteResult", "Informer", "LeaderElector", "ListResult",
    "RateLimitingQueue", "WaitTimeout", "WatchEvent", "home_dir", "load_cluster_config",
    "meta_namespace_key", "wait_for", "wait_for_sync",
]
