"""The add-on manifests under deploy/addons/ and which ones `kubemu up` applies.

As kubeadm does, a new cluster gets its DNS (CoreDNS) and nothing more; the
ingress controller is there to be enabled (`kubemu apply -f` the manifest), as
`minikube addons enable ingress` does. The apply step of the supervisor takes
`default_manifests()` in order; a manifest that is not there (an add-on of a
branch not merged yet) is skipped.
"""
from __future__ import annotations

import dataclasses
import pathlib

ADDONS_DIR = pathlib.Path(__file__).resolve().parent / "addons"


@dataclasses.dataclass(frozen=True)
class Addon:
    name: str
    manifest: str          # file name in ADDONS_DIR
    default: bool          # applied by `kubemu up`

    @property
    def path(self) -> pathlib.Path:
        return ADDONS_DIR / self.manifest


ADDONS = (
    Addon("coredns", "coredns.yaml", default=True),
    Addon("ingress-nginx", "ingress-nginx.yaml", default=False),
)


def by_name(name: str) -> Addon:
    for addon in ADDONS:
        if addon.name == name:
            return addon
    raise KeyError(f"unknown add-on {name!r}; known: {', '.join(a.name for a in ADDONS)}")


def default_manifests() -> list[pathlib.Path]:
    """The manifests `kubemu up` applies, in order, those present."""
    return [a.path for a in ADDONS if a.default and a.path.is_file()]
