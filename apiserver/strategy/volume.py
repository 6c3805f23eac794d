"""PersistentVolumes and PersistentVolumeClaims (Kubernetes'
pkg/registry/core/persistentvolume{,claim}): Pending on create."""
from __future__ import annotations

from google.protobuf.message import Message

from apiserver.strategy.base import Strategy


class PendingOnCreateStrategy(Strategy):
    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        obj.status.phase = "Pending"
