"""The table of per-kind strategies, keyed by the Kind from kubemu.api.kinds.

kubemu may not import the apiserver, so the table lives here: `strategies()`
builds one Strategy per kind of a kinds Registry, from the entries in
`_STRATEGIES` (keyed by group and kind) or the default Strategy for a plain
kind. Adding a kind with rules of its own = a module here + one entry.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from apiserver.servicealloc import Ranges
from apiserver.strategy.base import Strategy, generated_name, now_rfc3339
from apiserver.strategy.ingress import IngressStrategy
from apiserver.strategy.job import JobStrategy
from apiserver.strategy.namespace import NamespaceStrategy
from apiserver.strategy.node import NodeStrategy
from apiserver.strategy.pod import PodStrategy
from apiserver.strategy.priority import PriorityClassStrategy
from apiserver.strategy.service import ServiceStrategy
from apiserver.strategy.volume import ClaimStrategy, PendingOnCreateStrategy
from kubemu.api.kinds import Kind, Registry

__all__ = ["DEFAULT_EVENT_TTL_S", "Settings", "Strategy", "generated_name", "now_rfc3339",
           "strategies"]

DEFAULT_EVENT_TTL_S = 3600  # kube-apiserver's --event-ttl (1h)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The apiserver flags strategies read."""

    default_toleration_s: int = 300
    service_ranges: Ranges = dataclasses.field(default_factory=Ranges.parse)
    default_unreachable_toleration_s: int = 300
    # --event-ttl: how long an Event is kept after its last write.
    event_ttl_s: int = DEFAULT_EVENT_TTL_S


Factory = Callable[[Kind, Settings], Strategy]


def _create_on_update(kind: Kind, _settings: Settings) -> Strategy:
    return Strategy(kind, allow_create_on_update=True)


def _event(kind: Kind, settings: Settings) -> Strategy:
    """Events: created on update, and gone --event-ttl after their last write."""
    strategy = Strategy(kind, allow_create_on_update=True)
    strategy.ttl_s = settings.event_ttl_s
    return strategy


_STRATEGIES: dict[tuple[str, str], Factory] = {
    ("", "Pod"): lambda kind, settings: PodStrategy(
        kind, default_toleration_s=settings.default_toleration_s,
        default_unreachable_toleration_s=settings.default_unreachable_toleration_s),
    ("", "Namespace"): lambda kind, _: NamespaceStrategy(kind),
    ("", "Node"): lambda kind, _: NodeStrategy(kind),
    ("", "PersistentVolume"): lambda kind, _: PendingOnCreateStrategy(kind),
    ("", "PersistentVolumeClaim"): lambda kind, _: ClaimStrategy(kind),
    ("batch", "Job"): lambda kind, _: JobStrategy(kind),
    ("networking.k8s.io", "Ingress"): lambda kind, _: IngressStrategy(kind),
    # Kinds whose update creates a missing object, as in Kubernetes (Services too).
    ("", "Service"): lambda kind, settings: ServiceStrategy(kind, settings.service_ranges),
    ("", "Endpoints"): _create_on_update,
    ("", "Event"): _event,
    ("coordination.k8s.io", "Lease"): _create_on_update,
    ("scheduling.k8s.io", "PriorityClass"): lambda kind, _: PriorityClassStrategy(kind),
}


def strategies(kinds: Registry, *, default_toleration_s: int = 300,
               service_ranges: Ranges | None = None,
               default_unreachable_toleration_s: int = 300,
               event_ttl_s: int = DEFAULT_EVENT_TTL_S) -> dict[Kind, Strategy]:
    """One strategy per kind of `kinds`."""
    settings = Settings(default_toleration_s, service_ranges or Ranges.parse(),
                        default_unreachable_toleration_s, event_ttl_s=event_ttl_s)
    return {kind: _STRATEGIES.get((kind.group, kind.kind), _default)(kind, settings)
            for kind in kinds.kinds}


def _default(kind: Kind, _settings: Settings) -> Strategy:
    return Strategy(kind)
