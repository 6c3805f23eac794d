"""Namespaces (Kubernetes' pkg/registry/core/namespace and the
NamespaceLifecycle admission): Active on create with the `kubernetes`
finalizer; a deletion makes it Terminating until its content is gone and the
finalizer removed through the finalize subresource (an update keeps
spec.finalizers); the system namespaces may not be deleted."""
from __future__ import annotations

from google.protobuf.message import Message

from apiserver.strategy.base import Strategy
from kubemu.api import errors

NAMESPACE_FINALIZER = "kubernetes"
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        obj.status.phase = "Active"
        if NAMESPACE_FINALIZER not in obj.spec.finalizers:
            obj.spec.finalizers.append(NAMESPACE_FINALIZER)

    def prepare_for_update(self, new: Message, old: Message) -> None:
        """An update keeps spec.finalizers (only finalize changes them) and the
        status, as Kubernetes' namespace strategy does."""
        super().prepare_for_update(new, old)
        del new.spec.finalizers[:]
        new.spec.finalizers.extend(old.spec.finalizers)

    def prepare_for_finalize(self, new: Message, old: Message) -> Message:
        """namespaces/finalize: the stored namespace with new spec.finalizers."""
        merged = type(old)()
        merged.CopyFrom(old)
        del merged.spec.finalizers[:]
        merged.spec.finalizers.extend(new.spec.finalizers)
        return merged

    def check_delete(self, name: str) -> None:
        if name in PROTECTED_NAMESPACES:
            raise errors.Forbidden(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted')

    def before_delete(self, obj: Message) -> bool:
        obj.status.phase = "Terminating"
        return True

    def deletion_complete(self, obj: Message) -> bool:
        return super().deletion_complete(obj) and not obj.spec.finalizers
