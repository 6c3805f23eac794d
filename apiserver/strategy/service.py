"""Services: ClusterIP and NodePort allocation (apiserver.servicealloc) on
create, update and delete; an update that leaves out an allocated value keeps
it; an update of a missing Service creates it, as in Kubernetes."""
from __future__ import annotations

import random

from google.protobuf.message import Message

from apiserver import servicealloc
from apiserver.storage import Reservation
from apiserver.strategy.base import Strategy
from kubemu.api.kinds import Kind


class ServiceStrategy(Strategy):
    reserves = True

    def __init__(self, kind: Kind, ranges: servicealloc.Ranges,
                 rng: random.Random | None = None):
        super().__init__(kind, allow_create_on_update=True)
        self.ranges = ranges
        self.rng = rng or random.Random()

    def prepare_for_update(self, new: Message, old: Message) -> None:
        # Kubernetes' order (svcStrategy.PrepareForUpdate).
        servicealloc.patch_allocated_values(new, old)
        servicealloc.normalize_cluster_ips(new, old)
        servicealloc.drop_type_dependent_fields(new, old)
        super().prepare_for_update(new, old)

    async def reserve(self, store, obj: Message, old: Message | None) -> Reservation:
        return await servicealloc.Allocator(store, self.ranges, self.rng).plan(obj, old)

    def release(self, obj: Message) -> Reservation:
        return servicealloc.release_plan(obj)
