"""Label and field selectors as one predicate over objects (None = everything)."""
from __future__ import annotations

from typing import Callable

from google.protobuf.message import Message

from kubemu.api import fields, labels
from kubemu.api.kinds import Kind


def predicate(kind: Kind, label_selector: str, field_selector: str
              ) -> Callable[[Message], bool] | None:
    label_sel = labels.parse(label_selector) if label_selector.strip() else None
    field_sel = fields.parse(field_selector, kind) if field_selector.strip() else None
    if label_sel is None and field_sel is None:
        return None

    def matches(obj: Message) -> bool:
        if label_sel is not None and not label_sel.matches(obj.metadata.labels):
            return False
        return field_sel is None or field_sel.matches(obj)
    return matches
