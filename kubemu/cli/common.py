"""What every object command shares: options, resource-type arguments, errors, the client.

- `CliError` is a user error; main prints it as `error: <message>` and exits 1.
- `format_error` words any error the way kubectl prints it (one line), or
  returns None for a bug (which then shows its traceback).
- Resource arguments follow kubectl: `TYPE [NAME...]`, `TYPE1,TYPE2 [NAME...]`
  or `TYPE/NAME...`; types resolve through kinds.REGISTRY (plural, singular,
  short name, Kind, `deployments.apps`). `object_refs` turns a command line
  (names, `-f`, `-l`, `--all`) into (kind, namespace, name) triples.
- `watch_object` is kubectl's UntilWithSync on one object (list by name, then
  watch from the list's resourceVersion); `parse_duration_s` reads Go
  durations (`--timeout=30s`); `change_cause` is the deprecated `--record`.
Only the standard library is imported at module level (start-up time).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from kubemu.api.kinds import Kind
    from kubemu.client.clientset import Client

DEFAULT_NAMESPACE = "default"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


# kubectl's resource builder when neither names nor -f are given (printed verbatim).
NO_RESOURCES = ("You must provide one or more resources by argument or filename.\n"
                "Example resource specifications include:\n"
                "   '-f rsrc.yaml'\n"
                "   '--filename=rsrc.json'\n"
                "   '<resource> <name>'\n"
                "   '<resource>'")


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


async def object_refs(client: Any, args: argparse.Namespace, namespace: str, *,
                      words: list[str] | None = None,
                      all_when_unnamed: bool = False) -> list[tuple[Kind, str, str]]:
    """(kind, namespace, name) of every object the command line names, in order:
    `-f` manifests (args.filename, args.recursive), or resource words (`words`,
    default args.resources) with names, or with `-l` (args.selector) /
    `--all` (args.all) / `--field-selector` listing them (or, with
    `all_when_unnamed`, a type alone: kubectl's ResourceTypeOrNameArgs(true, ...)).
    A kind that is not namespaced gets namespace ""."""
    filenames = getattr(args, "filename", None) or []
    selector = getattr(args, "selector", "") or ""
    field_selector = getattr(args, "field_selector", "") or ""
    every = getattr(args, "all", False)
    words = list(args.resources if words is None else words)
    if filenames:
        if words:
            raise CliError("cannot specify both resource arguments and -f")
        from kubemu.cli import manifests

        docs = manifests.load_documents(filenames, recursive=getattr(args, "recursive", False))
        decoded, problems = manifests.decode(docs, namespace=args.namespace)
        if problems:
            raise CliError("\n".join(problems))  # one line per problem
        return [(m.kind, m.namespace, m.name) for m in decoded]
    out: list[tuple[Kind, str, str]] = []
    for target in parse_targets(words):
        ns = namespace if target.kind.namespaced else ""
        if target.names:
            if selector or every:
                raise CliError("name cannot be provided when a selector or --all is specified")
            out.extend((target.kind, ns, name) for name in target.names)
        elif selector or every or field_selector or all_when_unnamed:
            result = await client.list_all(target.kind.resource, ns, label_selector=selector,
                                           field_selector=field_selector)
            out.extend((target.kind, o.metadata.namespace if target.kind.namespaced else "",
                        o.metadata.name) for o in result.items)
        else:
            raise CliError("resource(s) were provided, but no name was specified")
    return out


def name_line(kind: Kind, name: str, operation: str = "", dry_run: str = "none") -> str:
    """kubectl's name printer: `deployment.apps/web scaled`, with its dry-run suffix."""
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run, "")
    return f"{kind_label(kind)}/{name}" + (f" {operation}" if operation else "") + suffix


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


# ---------------------------------------------------------------- watching one object

# A watch of one object re-opens its stream (server timeouts, Expired) at most this often.
WATCH_RESTARTS_MAX = 10_000


async def watch_object(client: Any, kind: Any, ns: str, name: str,
                       check: Callable[[dict[str, Any] | None], bool]) -> None:
    """kubectl's UntilWithSync on one object (field selector metadata.name): `check`
    gets the object's JSON on the list and on every ADDED/MODIFIED event, None
    on DELETED; returns when it says True. Re-lists when the stream ends."""
    from contextlib import aclosing

    from kubemu.api import errors

    selector = f"metadata.name={name}"
    for _ in range(WATCH_RESTARTS_MAX):
        listed = await client.list(kind.resource, ns, field_selector=selector)
        for item in listed.items:
            if check(to_json(item, kind)):
                return
        if not listed.items and check(None):
            return
        stream = client.watch(kind.resource, ns, resource_version=listed.resource_version,
                              field_selector=selector)
        try:
            async with aclosing(stream):
                async for event in stream:
                    if event.type in ("ADDED", "MODIFIED") and event.object is not None:
                        if check(to_json(event.object, kind)):
                            return
                    elif event.type == "DELETED":
                        if check(None):
                            return
        except errors.Expired:
            continue
    raise CliError(f"{kind.resource}/{name}: the watch ended {WATCH_RESTARTS_MAX} times")


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


# ---------------------------------------------------------------- flags

_DURATION_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                     "m": 60.0, "h": 3600.0}


def parse_duration_s(text: str) -> float:
    """Go's time.ParseDuration (`30s`, `1m30s`, `-1s`, `0`), in seconds: kubectl's
    duration flags (--timeout). An argparse `type=`."""
    import re

    rest = text.strip()
    sign = -1.0 if rest.startswith("-") else 1.0
    rest = rest.lstrip("+-")
    if rest == "0":
        return 0.0
    if not rest:
        raise argparse.ArgumentTypeError(f'time: invalid duration "{text}"')
    total_s = 0.0
    for _ in range(64):   # at most one number per unit; bounded all the same
        if not rest:
            return sign * total_s
        match = re.match(r"([0-9]*\.?[0-9]*)([^0-9.]*)", rest)
        number, unit = match.group(1), match.group(2)
        if not number or number == ".":
            raise argparse.ArgumentTypeError(f'time: invalid duration "{text}"')
        if not unit:
            raise argparse.ArgumentTypeError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS_S:
            raise argparse.ArgumentTypeError(f'time: unknown unit "{unit}" in duration "{text}"')
        total_s += float(number) * _DURATION_UNITS_S[unit]
        rest = rest[match.end():]
    raise argparse.ArgumentTypeError(f'time: invalid duration "{text}"')


# ---------------------------------------------------------------- --record (deprecated)

CHANGE_CAUSE = "kubernetes.io/change-cause"
# Flags that say where the cluster is, never part of a recorded command line.
_UNRECORDED_FLAGS = ("home",)


def add_record_arg(p: argparse.ArgumentParser) -> None:
    """kubectl's deprecated, hidden --record: the command line goes into the object's
    `kubernetes.io/change-cause` annotation (what `rollout history` shows)."""
    p.add_argument("--record", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(record_parser=p)


def change_cause(args: argparse.Namespace, argv: list[str] | None = None) -> str | None:
    """The annotation value kubectl's RecordFlags would write, or None without --record:
    `kubemu` + the words that are not flags + ` --<long name>=<value>` for each flag
    given, in the order given (cli-runtime's parseCommandArguments). Warns as kubectl
    does that --record is deprecated."""
    if not getattr(args, "record", False):
        return None
    warn_deprecated_record()
    parser = getattr(args, "record_parser", None)
    words = list(sys.argv[1:] if argv is None else argv)
    actions: dict[str, argparse.Action] = {}
    for action in parser._actions if parser is not None else []:
        for option in action.option_strings:
            actions[option] = action
    positional: list[str] = []
    flags: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            positional.extend(words[i:])
            break
        if not word.startswith("-") or word == "-":
            positional.append(word)
            continue
        option, sep, value = word.partition("=")
        if not sep and not word.startswith("--") and len(word) > 2:
            option, value, sep = word[:2], word[2:], "="   # -pVALUE
        action = actions.get(option)
        if action is None and option in ("--home",):
            if not sep:
                i += 1
            continue
        if action is None:
            positional.append(word)
            continue
        if not sep:
            if action.nargs == 0:
                value = "true"
            elif i < len(words):
                value, i = words[i], i + 1
        long_names = [o for o in action.option_strings if o.startswith("--")]
        name = (long_names[0] if long_names else option).lstrip("-")
        if name not in _UNRECORDED_FLAGS:
            flags.append(f" --{name}={value}")
    return "kubemu" + "".join(" " + w for w in positional) + "".join(flags)


def warn_deprecated_record() -> None:
    write_error("Flag --record has been deprecated, --record will be removed in the future")
