"""Ingresses (Kubernetes' pkg/registry/networking/ingress): an Ingress created
without a class gets the default IngressClass (the DefaultIngressClass
admission plugin), so `get ingress` shows its CLASS as in Kubernetes."""
from __future__ import annotations

from typing import Mapping, Sequence

from google.protobuf.message import Message

from apiserver.strategy.base import Strategy
from apiserver.strategy.volume import newest_marked

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
# The annotation that named an Ingress's class before spec.ingressClassName.
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
INGRESS_CLASSES = "ingressclasses"


class IngressStrategy(Strategy):
    admission_reads = (INGRESS_CLASSES,)

    def admit(self, obj: Message, current: Mapping[str, Sequence[Message]]) -> None:
        """DefaultIngressClass: only on create, only when neither the field nor
        the old annotation names a class; the newest default class wins."""
        if obj.spec.HasField("ingress_class_name") \
                or CLASS_ANNOTATION in obj.metadata.annotations:
            return
        default = newest_marked(current.get(INGRESS_CLASSES, ()), (DEFAULT_CLASS_ANNOTATION,))
        if default is not None:
            obj.spec.ingress_class_name = default.metadata.name
