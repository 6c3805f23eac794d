"""Named fault points, for chaos experiments and for tests of recovery.

A component given a fault directory (`--fault-dir DIR`) checks its fault
points by name where a failure is worth rehearsing (the apiserver's etcd
watch, a kubelet's PLEG relist, ...): `faults.check("etcd-watch-pods")`
raises InjectedFault while the file DIR/etcd-watch-pods exists, and does
nothing once it is removed. Without a directory a check costs one attribute
test. The fault is real to the code around the point: it is an exception of
a type nothing expects, the way a bug or a library's surprise would be.
"""
from __future__ import annotations

import os


class InjectedFault(RuntimeError):
    """Raised at a fault point whose file exists."""


class Faults:
    def __init__(self, directory: str | os.PathLike[str] | None = None):
        self.directory = os.fspath(directory) if directory else ""

    def active(self, name: str) -> bool:
        return bool(self.directory) and os.path.exists(os.path.join(self.directory, name))

    def check(self, name: str) -> None:
        if self.active(name):
            raise InjectedFault(f"injected fault {name!r} (remove "
                                f"{os.path.join(self.directory, name)} to end it)")


NO_FAULTS = Faults()
