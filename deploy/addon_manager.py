"""Cluster add-ons: the manifests in deploy/addons/, applied as kubeadm applies
its CoreDNS (phases/addons/dns).

A manifest is a YAML file with kubeadm-style placeholders (`{{ .DNSIP }}`),
filled from `AddonValues` (the cluster's addresses); an unknown placeholder is
an error, never left in an object. `apply(client, names, values)` applies every
object as `kubemu apply` does (kubemu.cli.apply.apply_one: create, or a
three-way merge patch against the last-applied annotation), so running it
again on a cluster that has them changes nothing: a restarted `kubemu up`
re-applies safely, and a user's edit to a field the manifest does not set is
kept. Failures of the apiserver are retried within a deadline.
"""
from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import re
from typing import Any, Callable, Sequence

from deploy.components import CLUSTER_DOMAIN, dns_service_ip
from kubemu.api import errors

__all__ = ["AddonError", "AddonValues", "DEFAULT_ADDONS", "KNOWN_ADDONS", "apply", "chosen",
           "dns_service_ip", "load"]

ADDONS_DIR = pathlib.Path(__file__).resolve().parent / "addons"
COREDNS = "coredns"
INGRESS_NGINX = "ingress-nginx"
# In the order they are applied. As kubeadm, a new cluster gets its DNS and
# nothing more; the ingress controller is there to be enabled (`kubemu up
# --addons ingress-nginx`, or `kubemu apply -f deploy/addons/ingress-nginx.yaml`),
# as `minikube addons enable ingress` does.
DEFAULT_ADDONS: tuple[str, ...] = (COREDNS,)
KNOWN_ADDONS: tuple[str, ...] = (COREDNS, INGRESS_NGINX)


def chosen(extra: Sequence[str], *, none: bool = False) -> tuple[str, ...]:
    """The add-ons `kubemu up` applies: the defaults (unless `none`) and `extra`,
    in KNOWN_ADDONS' order. ValueError names an unknown one."""
    for name in extra:
        if name not in KNOWN_ADDONS:
            raise ValueError(f"unknown add-on {name!r}; known: {', '.join(KNOWN_ADDONS)}")
    wanted = set(extra) | (set() if none else set(DEFAULT_ADDONS))
    return tuple(name for name in KNOWN_ADDONS if name in wanted)
MANIFEST_BYTES_MAX = 1 << 20
RETRY_S = 0.5

_PLACEHOLDER = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


class AddonError(Exception):
    """An add-on's manifest is missing or not valid; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class AddonValues:
    """What the manifests are templated with (kubeadm's names)."""

    dns_ip: str
    dns_domain: str = CLUSTER_DOMAIN

    def as_template(self) -> dict[str, str]:
        return {"DNSIP": self.dns_ip, "DNSDomain": self.dns_domain}


def render(text: str, values: dict[str, str], *, source: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise AddonError(f"{source}: unknown placeholder {m.group(0)!r} "
                             f"(known: {', '.join(sorted(values))})")
        return values[m.group(1)]
    return _PLACEHOLDER.sub(sub, text)


def manifest_text(name: str, addons_dir: pathlib.Path = ADDONS_DIR) -> tuple[str, str]:
    """(source path, text) of an add-on's manifest (blocking)."""
    path = addons_dir / f"{name}.yaml"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MANIFEST_BYTES_MAX + 1)
    except OSError as err:
        raise AddonError(f"add-on {name!r}: {path}: {err.strerror}") from None
    if len(text) > MANIFEST_BYTES_MAX:
        raise AddonError(f"add-on {name!r}: {path}: larger than {MANIFEST_BYTES_MAX} bytes")
    return str(path), text


def load(names: Sequence[str], values: AddonValues,
         addons_dir: pathlib.Path = ADDONS_DIR) -> list[Any]:
    """Every object of the named add-ons, decoded strictly (blocking: reads files).
    AddonError on anything that `kubemu apply` would refuse."""
    from kubemu.cli.common import CliError
    from kubemu.cli.manifests import decode, split_documents

    docs = []
    for name in names:
        source, text = manifest_text(name, addons_dir)
        try:
            docs.extend(split_documents(render(text, values.as_template(), source=source),
                                        source))
        except CliError as err:
            raise AddonError(str(err)) from None
    manifests, problems = decode(docs, namespace=None)
    if problems:
        raise AddonError("; ".join(problems))
    return manifests


async def apply(client: Any, manifests: Sequence[Any], *, timeout_s: float,
                progress: Callable[[str], None] = lambda line: None) -> list[str]:
    """Apply each object in turn (`kind/name created|configured|unchanged`, one
    line each, also given to `progress`); an apiserver that is not answering
    yet, or a conflict, is retried until timeout_s. Other errors raise."""
    from kubemu.cli.apply import apply_one

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    lines: list[str] = []
    for manifest in manifests:
        while True:
            try:
                operation, _ = await apply_one(client, manifest)
                break
            except errors.ApiError as err:
                # Conflict, Unavailable, Timeout: the same call may succeed later.
                if not err.temporary or loop.time() + RETRY_S > deadline:
                    raise AddonError(f"{manifest.label}: {err.message}") from None
                await asyncio.sleep(RETRY_S)  # retry interval, bounded by the deadline
        line = f"{manifest.label} {operation}"
        lines.append(line)
        progress(line)
    return lines
