"""`kubemu wait`: wait for a condition on objects, as `kubectl wait`.

`kubemu wait (TYPE NAME... | TYPE/NAME... | -f FILE | TYPE -l SEL | TYPE --all)
--for=CONDITION... [--timeout=30s]`, each --for one of:
- `delete`: until the object is gone (one already gone is skipped silently);
- `create`: until the objects exist (polled every 0.5 s), always first;
- `condition=NAME[=VALUE]`: until status.conditions has type NAME (case
  folded) with status VALUE (default true, case folded), and that condition's
  observedGeneration (else status.observedGeneration), when set, is not
  older than metadata.generation;
- `jsonpath={EXPR}[=VALUE]`: until EXPR gives exactly one scalar, equal to
  VALUE (after Go's %v and trimming) or, without VALUE, any.
Conditions are checked in order, per object, with one deadline for the
whole command; each met one prints `pod/web condition met`. A timeout is
kubectl's `timed out waiting for the condition on pods/web`; --timeout=0
checks once (`condition not met for pods/web`); a negative one waits a week.
Each wait lists the object by name, then watches it (common.watch_object).
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from typing import Any, Callable

from kubemu.cli import common
from kubemu.cli.common import CliError

Obj = dict[str, Any]
DEFAULT_TIMEOUT_S = 30.0
FOREVER_S = 168 * 3600.0   # kubectl's "negative means a week"
CREATE_POLL_S = 0.5


@dataclasses.dataclass
class Condition:
    """One --for: `kind` is delete, create, condition or jsonpath."""
    kind: str
    name: str = ""
    value: str = ""
    path: Any = None   # a parsed JSONPath (jsonpath)
    any_value: bool = False


def split_jsonpath_input(text: str) -> list[str]:
    """kubectl's splitJSONPathInput: split on `=` but keep `==`."""
    out, element, i = [], [], 0
    while i < len(text):
        if text[i] == "=":
            if i < len(text) - 1 and text[i + 1] == "=":
                element.append("==")
                i += 2
                continue
            out.append("".join(element))
            element = []
            i += 1
            continue
        element.append(text[i])
        i += 1
    out.append("".join(element))
    return out


def parse_conditions(values: list[str]) -> list[Condition]:
    """kubectl's conditionFuncsFor, with its errors."""
    from kubemu.cli import jsonpath

    out: list[Condition] = []
    for cond in values:
        lower = cond.lower()
        if lower == "delete":
            out.append(Condition("delete"))
        elif lower == "create":
            out.append(Condition("create"))
        elif cond.startswith("condition="):
            name = cond.removeprefix("condition=")
            value = "true"
            if "=" in name:
                name, _, value = name.partition("=")
            out.append(Condition("condition", name=name, value=value))
        elif cond.startswith("jsonpath="):
            parts = split_jsonpath_input(cond.removeprefix("jsonpath="))
            if not 1 <= len(parts) <= 2:
                raise CliError("jsonpath wait format must be --for=jsonpath='{.status."
                               "readyReplicas}'=3 or --for=jsonpath='{.status.readyReplicas}'")
            try:
                expression = jsonpath.relaxed(parts[0])
            except jsonpath.JSONPathError as exc:
                raise CliError(str(exc)) from None
            value = ""
            if len(parts) == 2:
                value = parts[1].strip("'\"")
                if not value:
                    raise CliError("jsonpath wait has to have a value after equal sign, like "
                                   "--for=jsonpath='{.status.readyReplicas}'=3")
            if not expression:
                raise CliError("jsonpath expression cannot be empty")
            try:
                path = jsonpath.JSONPath(expression, allow_missing_keys=True)
            except jsonpath.JSONPathError as exc:
                raise CliError(str(exc)) from None
            out.append(Condition("jsonpath", value=value, path=path, any_value=not value))
        else:
            raise CliError(f"unrecognized condition: {_go_quote(cond)}")
    if not out:
        raise CliError('unrecognized condition: ""')
    return out


def _go_quote(text: str) -> str:
    from kubemu.cli import gofmt

    return gofmt.quote(text)


def condition_met(doc: Obj, cond: Condition) -> bool:
    """kubectl's ConditionalWait.checkCondition."""
    generation = (doc.get("metadata") or {}).get("generation")
    status = doc.get("status") or {}
    for c in status.get("conditions") or []:
        if not isinstance(c, dict) or str(c.get("type", "")).casefold() != cond.name.casefold():
            continue
        if "status" not in c:
            continue
        if generation is not None:
            observed = c.get("observedGeneration", status.get("observedGeneration"))
            if observed is not None and int(observed) < int(generation):
                return False
        return str(c["status"]).casefold() == cond.value.casefold()
    return False


def jsonpath_met(doc: Obj, cond: Condition) -> bool:
    """kubectl's JSONPathWait.checkCondition."""
    from kubemu.cli import gofmt, jsonpath

    try:
        results = cond.path.find(doc)
    except jsonpath.JSONPathError as exc:
        raise CliError(str(exc)) from None
    if not results or not results[0]:
        return False
    if len(results) > 1:
        raise CliError("given jsonpath expression matches more than one list")
    if len(results[0]) > 1:
        raise CliError("given jsonpath expression matches more than one value")
    if cond.any_value:
        return True
    value = results[0][0]
    if isinstance(value, (dict, list)):
        raise CliError("jsonpath leads to a nested object or list which is not supported")
    return gofmt.sprint(value).strip() == cond.value.strip()


CHECKS: dict[str, Callable[[Obj, Condition], bool]] = {
    "condition": condition_met, "jsonpath": jsonpath_met}


async def _wait_one(client: Any, kind: Any, ns: str, name: str, cond: Condition,
                    deadline: float, timeout_s: float) -> bool:
    """True when met (print then); False when the object was gone for --for=delete
    before the wait began (nothing printed). Raises CliError otherwise."""
    from kubemu.api import errors

    label = f"{kind.resource}/{name}"
    if cond.kind == "delete":
        try:
            await client.get(kind.resource, name, ns)
        except errors.NotFound:
            return False   # kubectl's builder never visits it
        if timeout_s == 0:
            raise CliError(f"condition not met for {label}")
        check: Callable[[Obj | None], bool] = lambda doc: doc is None   # noqa: E731
    else:
        test = CHECKS[cond.kind]
        if timeout_s == 0:
            doc = common.to_json(await client.get(kind.resource, name, ns), kind)
            if not test(doc, cond):
                raise CliError(f"condition not met for {label}")
            return True

        def check(doc: Obj | None) -> bool:
            if doc is None:
                raise errors.not_found(kind.qualified_resource, name)
            return test(doc, cond)
    remaining_s = deadline - time.monotonic()
    if remaining_s <= 0:
        raise CliError(f"timed out waiting for the condition on {label}")
    try:
        await asyncio.wait_for(common.watch_object(client, kind, ns, name, check), remaining_s)
    except TimeoutError:
        raise CliError(f"timed out waiting for the condition on {label}") from None
    return True


async def _wait_created(client: Any, args: argparse.Namespace, namespace: str,
                        deadline: float) -> None:
    from kubemu.api import errors

    while True:
        try:
            refs = await common.object_refs(client, args, namespace)
            for kind, ns, name in refs:
                await client.get(kind.resource, name, ns)
            if refs:
                return
        except errors.NotFound:
            pass
        if time.monotonic() >= deadline:
            raise CliError("timed out waiting for the condition")
        await asyncio.sleep(min(CREATE_POLL_S, max(0.0, deadline - time.monotonic())))


async def run_wait(args: argparse.Namespace) -> int:
    from kubemu.api import errors

    conditions = parse_conditions(args.for_)
    if not args.resources and not args.filename:
        raise CliError(common.NO_RESOURCES, verbatim=True)
    if args.output not in ("", "name"):
        raise CliError(f"unable to match a printer suitable for the output format "
                       f'"{args.output}", allowed formats are: name')
    timeout_s = FOREVER_S if args.timeout_s < 0 else args.timeout_s
    deadline = time.monotonic() + timeout_s
    namespace = "" if args.all_namespaces else common.namespace_of(args)
    for_delete = any(c.kind == "delete" for c in conditions)
    async with common.client_for(args) as client:
        if any(c.kind == "create" for c in conditions):
            await _wait_created(client, args, namespace, deadline)
        refs = await common.object_refs(client, args, namespace)
        if not refs and not for_delete:
            raise CliError("no matching resources found")
        for kind, ns, name in refs:
            for cond in conditions:
                if cond.kind == "create":
                    met = True
                else:
                    try:
                        met = await _wait_one(client, kind, ns, name, cond, deadline, timeout_s)
                    except errors.NotFound:
                        if for_delete:
                            break   # kubectl's builder skips what is gone already
                        raise
                if not met:
                    break
                print(common.name_line(kind, name,
                                       "" if args.output == "name" else "condition met"),
                      flush=True)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "wait", help="wait for a specific condition on one or many resources",
        description="Wait for a condition on objects, like kubectl wait: "
                    "--for=delete|create|condition=NAME[=VALUE]|jsonpath='{EXPR}'[=VALUE].")
    p.add_argument("resources", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--for", dest="for_", action="append", default=[], metavar="CONDITION",
                   help="the condition to wait for; repeatable (all must hold, in order)")
    p.add_argument("--timeout", type=common.parse_duration_s, default=DEFAULT_TIMEOUT_S,
                   dest="timeout_s", help="give up after this long (default 30s; 0: check once; "
                                          "negative: a week)")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--field-selector", default="")
    p.add_argument("--all", action="store_true", help="every object of the type(s)")
    p.add_argument("-o", "--output", default="", metavar="name")
    common.add_namespace_arg(p, all_namespaces=True)
    p.set_defaults(func=run_wait)
