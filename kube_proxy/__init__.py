"""kubemu's kube-proxy: one process per node serving Services with userspace
TCP and UDP proxies (asyncio end to end).

Layout: `servicemap` (pure: Services + EndpointSlices -> listeners and routes),
`balancer` (pure: the choice table of one route, session affinity),
`proxy` (the listeners, connections, UDP sessions and their bounds),
`metrics` (per-Service counters), `app` (informers, sync loop, health,
events), `__main__` (flags).
"""
