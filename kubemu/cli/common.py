"""What every object command shares: options, resource-type arguments, errors, the client.

- `CliError` is a user error; main prints it as `error: <message>` and exits 1.
- `format_error` words any error the way kubectl prints it (one line), or
  returns None for a bug (which then shows its traceback).
- Resource arguments follow kubectl: `TYPE [NAME...]`, `TYPE1,TYPE2 [NAME...]`
  or `TYPE/NAME...`; types resolve through kinds.REGISTRY (plural, singular,
  short name, Kind, `deployments.apps`).
Only the standard library is imported at module level (start-up time).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubemu.api.kinds import Kind
    from kubemu.client.clientset import Client

DEFAULT_NAMESPACE = "default"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class CliError(Exception):
    """A mistake in the command line or its input: `error: <message>`, exit 1.

    A message of several lines is several errors, each printed as `error: <line>`,
    unless `verbatim`: then it is one error printed as it is after `error: `
    (kubectl's multi-line errors, e.g. a failed JSONPath template's dump).
    """

    def __init__(self, message: str = "", *, verbatim: bool = False):
        super().__init__(message)
        self.verbatim = verbatim


def add_namespace_arg(parser: argparse.ArgumentParser, *, all_namespaces: bool = False,
                      nested: bool = False) -> None:
    """-n/--namespace (and -A). `nested`: a sub-subcommand, whose default must not hide
    a -n given to its parent command (`create -n dev configmap x`)."""
    parser.add_argument("-n", "--namespace", default=argparse.SUPPRESS if nested else None,
                        help="the namespace (default: default)")
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true",
                            help="across every namespace")


def namespace_of(args: argparse.Namespace) -> str:
    return args.namespace or DEFAULT_NAMESPACE


def client_for(args: argparse.Namespace) -> Client:
    """The cluster's client for `args.home`; use it with `async with`."""
    from kubemu.client.clientset import Client

    return Client.from_home(args.home)


# ---------------------------------------------------------------- resource arguments

def resolve_kind(name: str) -> Kind:
    from kubemu.api import errors
    from kubemu.api.kinds import REGISTRY

    try:
        return REGISTRY.resolve(name)
    except errors.NotFound:
        raise CliError(f'the server doesn\'t have a resource type "{name}"') from None


def kind_label(kind: Kind) -> str:
    """`pod`, `deployment.apps`: how kubectl names a kind in `kind/name` output."""
    return f"{kind.kind.lower()}.{kind.group}" if kind.group else kind.kind.lower()


@dataclasses.dataclass
class Target:
    kind: Kind
    names: list[str]  # empty: every object (of the namespace / selector)


# `kubectl get all`: the workload kinds, those this build knows.
ALL_RESOURCES = ("pods", "services", "daemonsets", "deployments", "replicasets",
                 "statefulsets", "horizontalpodautoscalers", "jobs", "cronjobs")


def parse_targets(words: list[str], *, allow_all: bool = False) -> list[Target]:
    """kubectl's resource arguments as (kind, names) groups, in the order given."""
    if not words:
        raise CliError("you must specify the type of resource to get. "
                       "Use \"kubemu api-resources\" for a complete list of supported resources")
    if "/" in words[0]:
        targets: dict[str, Target] = {}
        for word in words:
            type_name, sep, name = word.partition("/")
            if not sep or not type_name or not name:
                raise CliError(
                    "there is no need to specify a resource type as a separate argument "
                    f"when passing arguments in resource/name form (e.g. 'kubemu get "
                    f"resource/<resource_name>' instead of 'kubemu get resource "
                    f"resource/<resource_name>'): {word!r}")
            kind = resolve_kind(type_name)
            targets.setdefault(kind.resource, Target(kind, [])).names.append(name)
        return list(targets.values())
    types, names = words[0], words[1:]
    for name in names:
        if "/" in name:
            raise CliError(
                "there is no need to specify a resource type as a separate argument when "
                "passing arguments in resource/name form (e.g. 'kubemu get resource/"
                "<resource_name>' instead of 'kubemu get resource resource/<resource_name>'")
    found: dict[str, Target] = {}
    for type_name in types.split(","):
        if not type_name:
            continue
        if allow_all and type_name.lower() == "all":
            kinds = [_known(resource) for resource in ALL_RESOURCES]
            for kind in filter(None, kinds):
                found.setdefault(kind.resource, Target(kind, list(names)))
            continue
        kind = resolve_kind(type_name)
        found.setdefault(kind.resource, Target(kind, list(names)))
    if not found:
        raise CliError(f"no resource type in {types!r}")
    return list(found.values())


def _known(resource: str) -> Kind | None:
    from kubemu.api.kinds import REGISTRY

    try:
        return REGISTRY.by_resource(resource)
    except Exception:  # noqa: BLE001 - a kind this build does not have yet
        return None


# ---------------------------------------------------------------- objects

def to_json(obj: Any, kind: Kind | None = None) -> dict[str, Any]:
    """The Kubernetes JSON of a message, apiVersion and kind first and always set."""
    from kubemu.api import codec
    from kubemu.api.kinds import REGISTRY

    kind = kind or REGISTRY.by_message(obj)
    data = codec.to_dict(obj)
    rest = {k: v for k, v in data.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": data.get("apiVersion") or kind.api_version,
            "kind": data.get("kind") or kind.kind, **rest}


# ---------------------------------------------------------------- errors

def format_error(exc: BaseException) -> str | None:
    """The one line kubectl would print for `exc`; None when it is a bug."""
    errors = sys.modules.get("kubemu.api.errors")
    if errors is not None and isinstance(exc, errors.ApiError):
        if exc.reason == "Invalid" and " is invalid" in exc.message:
            return f"The {exc.message}"
        if exc.reason == "Unauthorized":
            return f"error: You must be logged in to the server ({exc.message})"
        return f"Error from server ({exc.reason}): {exc.message}"
    if isinstance(exc, CliError):
        if exc.verbatim:
            return f"error: {exc}"
        return "\n".join(f"error: {line}" for line in str(exc).splitlines() or [""])
    config = sys.modules.get("kubemu.client.config")
    if config is not None and isinstance(exc, (config.ClusterNotFound, config.BadClusterConfig)):
        return f"error: {exc}"
    return None


def print_error(exc: BaseException) -> None:
    message = format_error(exc)
    if message is None:
        raise exc
    write_error(message)


def write_error(message: str) -> None:
    """One error on stderr, ending in exactly one newline unless it brings its own."""
    sys.stderr.write(message if message.endswith("\n") else message + "\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    """kubectl's WarningPrinter (no colour: stderr is not a terminal we paint)."""
    write_error(f"Warning: {message}")
