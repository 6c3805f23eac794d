"""Jobs (Kubernetes' pkg/registry/batch/job): the generated selector, which
needs the uid given on create, and the batch/v1 default of orphaning a Job's
pods when its deletion names no propagationPolicy (Kubernetes keeps that for
backwards compatibility; kubectl always sends one, Background by default)."""
from __future__ import annotations

from google.protobuf.message import Message

from apiserver.strategy.base import Strategy
from kubemu.api import defaults


class JobStrategy(Strategy):
    default_gc_policy = "Orphan"

    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        if not obj.spec.HasField("selector"):
            defaults.job_selector_defaults(obj, obj.metadata.uid)
