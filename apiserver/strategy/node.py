"""Nodes (Kubernetes' pkg/registry/core/node): the kubelet registers its Node
with its status, so status is kept on create."""
from __future__ import annotations

from google.protobuf.message import Message

from apiserver.strategy.base import Strategy


class NodeStrategy(Strategy):
    def prepare_for_create(self, obj: Message) -> None:
        if self.kind.has_spec:
            obj.metadata.generation = 1
