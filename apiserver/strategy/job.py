"""Jobs (Kubernetes' pkg/registry/batch/job): the generated selector, which
needs the uid given on create."""
from __future__ import annotations

from google.protobuf.message import Message

from apiserver.strategy.base import Strategy
from kubemu.api import defaults


class JobStrategy(Strategy):
    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        if not obj.spec.HasField("selector"):
            defaults.job_selector_defaults(obj, obj.metadata.uid)
