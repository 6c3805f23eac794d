"""Is an etcd version one with the 3.5.0-3.5.2 data-inconsistency bug? (pure)

etcd 3.5.0 to 3.5.2 can lose writes on a member killed under load
(etcd-io/etcd#13766, fixed in 3.5.3). Helper C's deploy.components.etcd_affected
is the shared answer; until it lands this module answers the same question.
"""
from __future__ import annotations

import re

try:  # the shared check, when deploy.components has it
    from deploy.components import etcd_affected as _shared
except ImportError:  # pragma: no cover - depends on the merge order
    _shared = None


def _own(version: str) -> bool:
    match = re.match(r"^\s*v?(\d+)\.(\d+)\.(\d+)", version or "")
    if not match:
        return False
    major, minor, patch = map(int, match.groups())
    return (major, minor) == (3, 5) and patch <= 2


def etcd_affected(version: str) -> bool:
    """True for 3.5.0, 3.5.1 and 3.5.2 (any suffix); False otherwise, unknown included."""
    if _shared is not None:
        return bool(_shared(version))
    return _own(version)
