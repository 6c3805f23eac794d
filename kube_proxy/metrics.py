"""Per-Service traffic counters, and their JSON form.

One `ServiceMetrics` per Service ("namespace/name") served by this proxy:
connections (TCP) and sessions (UDP) total and active, bytes in (client to
endpoint) and out (endpoint to client), and errors: connections refused for
want of an endpoint, connects that failed (each failed try), connections
dropped at a bound (connection or session table full), packets dropped.
Counters live while the Service is served; a Service that goes away takes
its counters with it (the table is bounded by the Services that exist).

`snapshot()` is what the metrics RPC returns (see kube_proxy.app): a JSON
object {"node": ..., "services": {"ns/name": {...}}, "listeners": [...]}.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ServiceMetrics:
    connections_total: int = 0
    connections_active: int = 0
    udp_sessions_total: int = 0
    udp_sessions_active: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    refused: int = 0            # no usable endpoint
    connect_errors: int = 0     # a try to one endpoint failed
    dropped: int = 0            # a bound was hit (connections, sessions, packets)

    @property
    def errors(self) -> int:
        return self.refused + self.connect_errors + self.dropped

    def as_dict(self) -> dict[str, int]:
        out = dataclasses.asdict(self)
        out["errors"] = self.errors
        return out


class Metrics:
    def __init__(self) -> None:
        self.services: dict[str, ServiceMetrics] = {}

    def of(self, service: str) -> ServiceMetrics:
        m = self.services.get(service)
        if m is None:
            m = self.services[service] = ServiceMetrics()
        return m

    def retain(self, services: set[str]) -> None:
        """Forget Services no longer served (their in-flight connections still
        count into the dropped object, which nobody reads any more)."""
        for name in list(self.services):
            if name not in services:
                del self.services[name]

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {name: m.as_dict() for name, m in sorted(self.services.items())}
