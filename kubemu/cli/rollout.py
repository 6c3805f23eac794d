"""`kubemu rollout status|history|undo|pause|resume|restart`, as kubectl rollout.

Objects are named as kubectl names them (`TYPE NAME`, `TYPE/NAME`, `-f`, `-l`;
a type alone means every object of it). What each does, after kubectl's
polymorphichelpers:
- status: lists the object by `metadata.name`, then watches it and prints
  the status viewer's line on every event until the rollout is done
  (DeploymentStatusViewer, DaemonSetStatusViewer, StatefulSetStatusViewer,
  word for word; `deployment "web" exceeded its progress deadline` is an
  error). `--watch=false` prints once; `--timeout` ends the watch with
  `timed out waiting for the condition`; `--revision` pins a Deployment's
  revision.
- history: a Deployment's revisions are its ReplicaSets (those it controls:
  ownerReference with controller true and its uid), numbered by the
  `deployment.kubernetes.io/revision` annotation; a DaemonSet's or
  StatefulSet's are its ControllerRevisions. CHANGE-CAUSE is the
  `kubernetes.io/change-cause` annotation (a ReplicaSet's, else its pod
  template's, as kubectl reads them). `--revision=N` prints that
  revision's pod template as kubectl describes it.
- undo: a Deployment gets the chosen ReplicaSet's template (without its
  pod-template-hash label) and its annotations (except kubectl's
  annotationsToSkip, which keep the Deployment's values) in one JSON patch,
  as kubectl's DeploymentRollbacker sends; a DaemonSet or StatefulSet gets
  the ControllerRevision's data as a strategic merge patch.
- pause / resume: spec.paused (Deployments only, as kubectl's pauser).
- restart: the pod template annotation `kubectl.kubernetes.io/restartedAt`
  (RFC 3339, local time).
Resolving, history and the status messages are pure functions of the
objects' Kubernetes JSON; I/O stays in the run_* functions.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from typing import Any, Callable

from kubemu.cli import common
from kubemu.cli.common import CliError

Obj = dict[str, Any]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE_ANNOTATION = common.CHANGE_CAUSE
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
POD_TEMPLATE_HASH = "pod-template-hash"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
# kubectl's annotationsToSkip: a rollback keeps the Deployment's own values of these.
ANNOTATIONS_TO_SKIP = frozenset({
    common.LAST_APPLIED, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, "deprecated.deployment.rollback.to"})
CONTROLLER_REVISIONS = "controllerrevisions"

ROLLOUT_KINDS = ("deployments", "daemonsets", "statefulsets")


# ---------------------------------------------------------------- status viewers (pure)

def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _revision_of(obj: Obj) -> int:
    return _int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION))


def deployment_status(d: Obj, revision: int = 0) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: (message, done); CliError when it failed."""
    meta, spec, status = d.get("metadata") or {}, d.get("spec") or {}, d.get("status") or {}
    name = meta.get("name", "")
    if revision > 0:
        running = _revision_of(d)
        if revision != running:
            raise CliError(f"desired revision ({revision}) is different from the running "
                           f"revision ({running})")
    if _int(meta.get("generation")) <= _int(status.get("observedGeneration")):
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Progressing" and cond.get("reason") == TIMED_OUT_REASON:
                raise CliError(f'deployment "{name}" exceeded its progress deadline')
        replicas = spec.get("replicas")
        updated = _int(status.get("updatedReplicas"))
        if replicas is not None and updated < _int(replicas):
            return (f'Waiting for deployment "{name}" rollout to finish: {updated} out of '
                    f"{_int(replicas)} new replicas have been updated...\n", False)
        total = _int(status.get("replicas"))
        if total > updated:
            return (f'Waiting for deployment "{name}" rollout to finish: {total - updated} old '
                    "replicas are pending termination...\n", False)
        available = _int(status.get("availableReplicas"))
        if available < updated:
            return (f'Waiting for deployment "{name}" rollout to finish: {available} of '
                    f"{updated} updated replicas are available...\n", False)
        return f'deployment "{name}" successfully rolled out\n', True
    return "Waiting for deployment spec update to be observed...\n", False


def daemonset_status(ds: Obj, revision: int = 0) -> tuple[str, bool]:
    """kubectl's DaemonSetStatusViewer."""
    meta, spec, status = ds.get("metadata") or {}, ds.get("spec") or {}, ds.get("status") or {}
    name = meta.get("name", "")
    if ((spec.get("updateStrategy") or {}).get("type") or "RollingUpdate") != "RollingUpdate":
        raise CliError("rollout status is only available for RollingUpdate strategy type")
    if _int(meta.get("generation")) <= _int(status.get("observedGeneration")):
        updated = _int(status.get("updatedNumberScheduled"))
        desired = _int(status.get("desiredNumberScheduled"))
        if updated < desired:
            return (f'Waiting for daemon set "{name}" rollout to finish: {updated} out of '
                    f"{desired} new pods have been updated...\n", False)
        available = _int(status.get("numberAvailable"))
        if available < desired:
            return (f'Waiting for daemon set "{name}" rollout to finish: {available} of '
                    f"{desired} updated pods are available...\n", False)
        return f'daemon set "{name}" successfully rolled out\n', True
    return "Waiting for daemon set spec update to be observed...\n", False


def statefulset_status(sts: Obj, revision: int = 0) -> tuple[str, bool]:
    """kubectl's StatefulSetStatusViewer."""
    meta, spec, status = sts.get("metadata") or {}, sts.get("spec") or {}, sts.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        raise CliError("rollout status is only available for RollingUpdate strategy type")
    observed = _int(status.get("observedGeneration"))
    if observed == 0 or _int(meta.get("generation")) > observed:
        return "Waiting for statefulset spec update to be observed...\n", False
    replicas = spec.get("replicas")
    ready = _int(status.get("readyReplicas"))
    if replicas is not None and ready < _int(replicas):
        return f"Waiting for {_int(replicas) - ready} pods to be ready...\n", False
    updated = _int(status.get("updatedReplicas"))
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        partition = rolling.get("partition")
        if replicas is not None and partition is not None:
            wanted = _int(replicas) - _int(partition)
            if updated < wanted:
                return (f"Waiting for partitioned roll out to finish: {updated} out of "
                        f"{wanted} new pods have been updated...\n", False)
        return f"partitioned roll out complete: {updated} new pods have been updated...\n", True
    if status.get("updateRevision") != status.get("currentRevision"):
        return (f"waiting for statefulset rolling update to complete {updated} pods at "
                f"revision {status.get('updateRevision', '')}...\n", False)
    return (f"statefulset rolling update complete {_int(status.get('currentReplicas'))} pods "
            f"at revision {status.get('currentRevision', '')}...\n", True)


STATUS_VIEWERS: dict[str, Callable[[Obj, int], tuple[str, bool]]] = {
    "deployments": deployment_status,
    "daemonsets": daemonset_status,
    "statefulsets": statefulset_status,
}


# ---------------------------------------------------------------- history (pure)

def selector_string(selector: Obj | None) -> str:
    from kubemu.cli.printers import NONE, format_selector

    text = format_selector(selector)
    return "" if text == NONE else text


def controlled_by(obj: Obj, owner: Obj) -> bool:
    """metav1.IsControlledBy: a controller ownerReference with the owner's uid."""
    uid = (owner.get("metadata") or {}).get("uid")
    return any(ref.get("controller") and ref.get("uid") == uid
               for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def deployment_history(replicasets: list[Obj]) -> dict[int, Obj]:
    """revision -> ReplicaSet (those without a revision are skipped, as kubectl does)."""
    out: dict[int, Obj] = {}
    for rs in replicasets:
        text = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
        try:
            out[int(text)] = rs
        except (TypeError, ValueError):
            continue
    return out


def revision_data(history: Obj) -> Obj:
    """A ControllerRevision's data (raw JSON in Kubernetes; a string or object here)."""
    data = history.get("data")
    if isinstance(data, str):   # raw JSON, or (bytes in the message) base64 of it
        import base64
        import binascii

        try:
            data = json.loads(data)
        except ValueError:
            try:
                data = json.loads(base64.b64decode(data, validate=True))
            except (ValueError, binascii.Error):
                raise CliError("unable to parse history "
                               f"{(history.get('metadata') or {}).get('name', '')}") from None
    return data if isinstance(data, dict) else {}


def revision_template(history: Obj) -> Obj:
    """The pod template a ControllerRevision records (its `$patch` directive dropped)."""
    template = dict(((revision_data(history).get("spec") or {}).get("template")) or {})
    template.pop("$patch", None)
    return template


def controller_history(revisions: list[Obj]) -> dict[int, Obj]:
    return {_int(h.get("revision")): h for h in revisions}


def history_table(causes: dict[int, str]) -> str:
    """kubectl's `REVISION  CHANGE-CAUSE` table (tabwriter padding 2)."""
    from kubemu.cli.printers import tabbed

    if not causes:
        return "No rollout history found."
    lines = ["REVISION\tCHANGE-CAUSE"]
    lines += [f"{r}\t{causes[r] or '<none>'}" for r in sorted(causes)]
    return tabbed(lines)


def pod_template_text(template: Obj) -> str:
    """describe.DescribePodTemplate's text (kubectl's PrefixWriter: tabs left as they are)."""
    from kubemu.cli import describe

    lines = describe.Lines()
    describe._pod_template(lines, 0, template)
    # A map's continuation lines (`\tpod-template-hash=...`) carry no indent in
    # kubectl's output; describe's tabwriter hides the difference, this text does not.
    return "".join((line.lstrip(" ") if line.lstrip(" ").startswith("\t") else line) + "\n"
                   for line in lines.lines)


def _change_cause(obj: Obj) -> str:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION, "")


def deployment_change_cause(rs: Obj) -> str:
    """kubectl's DeploymentHistoryViewer: the ReplicaSet's change-cause, else its pod
    template's (a cause written into the template, as the seed notes' kuard example
    does, shows in the history too)."""
    return _change_cause(rs) or _change_cause((rs.get("spec") or {}).get("template") or {})


def _without_hash(template: Obj) -> Obj:
    out = json.loads(json.dumps(template))
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
        if not labels:
            out["metadata"].pop("labels")
    return out


def choose_deployment_revision(name: str, history: dict[int, Obj], to_revision: int) -> Obj:
    """kubectl's deploymentRevision: the ReplicaSet to roll back to (0: the previous)."""
    if to_revision > 0:
        if to_revision not in history:
            raise CliError(f"unable to find specified revision {to_revision} in history")
        return history[to_revision]
    revisions = sorted(history)
    if len(revisions) < 2:
        raise CliError(f'no rollout history found for deployment "{name}"')
    return history[revisions[-2]]


def deployment_rollback_patch(deployment: Obj, rs: Obj) -> list[Obj] | None:
    """The JSON patch kubectl's DeploymentRollbacker sends; None when the template
    already matches (kubectl's equalIgnoreHash)."""
    template = _without_hash((rs.get("spec") or {}).get("template") or {})
    if template == _without_hash((deployment.get("spec") or {}).get("template") or {}):
        return None
    have = (deployment.get("metadata") or {}).get("annotations") or {}
    annotations = {k: v for k, v in have.items() if k in ANNOTATIONS_TO_SKIP}
    annotations.update({k: v for k, v in ((rs.get("metadata") or {}).get("annotations")
                                          or {}).items() if k not in ANNOTATIONS_TO_SKIP})
    return [{"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace" if have else "add", "path": "/metadata/annotations",
             "value": annotations}]


def choose_controller_revision(history: dict[int, Obj], to_revision: int) -> Obj:
    """kubectl's findHistory (0: the one before the latest)."""
    if to_revision == 0 and len(history) <= 1:
        raise CliError("no last revision to roll back to")
    if to_revision == 0:
        return history[sorted(history)[-2]]
    if to_revision not in history:
        raise CliError(f"unable to find specified revision {to_revision} in history")
    return history[to_revision]


def restarted_at(now: datetime.datetime | None = None) -> str:
    """Go's time.Now().Format(time.RFC3339): local time, `Z` for UTC."""
    now = now or datetime.datetime.now().astimezone()
    text = now.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# ---------------------------------------------------------------- I/O

def _check_kind(kind: Any, verb: str) -> None:
    if kind.resource not in ROLLOUT_KINDS:
        raise CliError(f'no {verb} has been implemented for "{kind.kind}.{kind.group}"'
                       if kind.group else f'no {verb} has been implemented for "{kind.kind}"')


async def _refs(client: Any, args: argparse.Namespace) -> list[tuple[Any, str, str]]:
    if not args.resources and not args.filename:
        raise CliError("required resource not specified")
    return await common.object_refs(client, args, common.namespace_of(args),
                                    all_when_unnamed=True)


async def _doc(client: Any, kind: Any, ns: str, name: str) -> Obj:
    return common.to_json(await client.get(kind.resource, name, ns), kind)


async def _owned_replicasets(client: Any, deployment: Obj) -> list[Obj]:
    from kubemu.api.kinds import REGISTRY

    rs_kind = REGISTRY.by_resource("replicasets")
    meta = deployment["metadata"]
    listed = await client.list_all("replicasets", meta.get("namespace", ""),
                                   label_selector=selector_string(
                                       (deployment.get("spec") or {}).get("selector")))
    return [doc for doc in (common.to_json(o, rs_kind) for o in listed.items)
            if controlled_by(doc, deployment)]


async def _controller_revisions(client: Any, owner: Obj) -> list[Obj]:
    from kubemu.api import errors

    meta = owner["metadata"]
    try:
        listed = await client.list_all(CONTROLLER_REVISIONS, meta.get("namespace", ""),
                                       label_selector=selector_string(
                                           (owner.get("spec") or {}).get("selector")))
    except errors.NotFound:
        raise CliError(f'unable to find history controlled by {owner.get("kind")} '
                       f'{meta.get("name")}: the server doesn\'t have a resource type '
                       f'"{CONTROLLER_REVISIONS}"') from None
    docs = [common.to_json(o) for o in listed.items]
    return [doc for doc in docs if controlled_by(doc, owner)]


async def _history(client: Any, kind: Any, obj: Obj) -> tuple[dict[int, Obj], dict[int, Obj]]:
    """(revision -> object, revision -> pod template) of one workload."""
    if kind.resource == "deployments":
        history = deployment_history(await _owned_replicasets(client, obj))
        return history, {r: (rs.get("spec") or {}).get("template") or {}
                         for r, rs in history.items()}
    history = controller_history(await _controller_revisions(client, obj))
    return history, {r: revision_template(h) for r, h in history.items()}


def applied_revision(obj: Obj, template: Obj) -> Obj:
    """The DaemonSet or StatefulSet as it was at a revision (kubectl's
    applyDaemonSetHistory / applyStatefulSetHistory: the template replaced)."""
    out = json.loads(json.dumps(obj))
    out.setdefault("spec", {})["template"] = template
    return out


async def run_history(args: argparse.Namespace) -> int:
    if args.revision < 0:
        raise CliError(f"revision must be a positive integer: {args.revision}")
    from kubemu.cli import output

    printer = output.make_printer(args.output, allowed=output.OBJECT_FORMATS) \
        if args.output else None
    async with common.client_for(args) as client:
        for kind, ns, name in await _refs(client, args):
            _check_kind(kind, "history viewer")
            obj = await _doc(client, kind, ns, name)
            history, templates = await _history(client, kind, obj)
            if printer is not None:
                # kubectl prints a Deployment's ReplicaSets, else the object at each revision.
                objects = history if kind.resource == "deployments" else {
                    r: applied_revision(obj, t) for r, t in templates.items()}
                if args.revision > 0:
                    if args.revision not in objects:
                        raise CliError("unable to find the specified revision")
                    sys.stdout.write(printer.render(objects[args.revision]))
                else:
                    for r in sorted(objects):
                        sys.stdout.write(printer.render(objects[r]))
                continue
            if args.revision > 0:
                if not history:
                    text = "No rollout history found."
                elif args.revision not in templates:
                    raise CliError("unable to find the specified revision")
                else:
                    template = json.loads(json.dumps(templates[args.revision]))
                    cause = _change_cause(history[args.revision])
                    if cause:
                        template.setdefault("metadata", {}).setdefault(
                            "annotations", {})[CHANGE_CAUSE_ANNOTATION] = cause
                    text = pod_template_text(template)
                head = f"with revision #{args.revision}"
            else:
                cause_of = deployment_change_cause if kind.resource == "deployments" \
                    else _change_cause
                text = history_table({r: cause_of(h) for r, h in history.items()})
                head = ""
            print(f"{common.kind_label(kind)}/{name} {head}\n{text}", flush=True)
    return 0


async def run_undo(args: argparse.Namespace) -> int:
    from kubemu.api import errors

    async with common.client_for(args) as client:
        for kind, ns, name in await _refs(client, args):
            _check_kind(kind, "rollbacker")
            if args.to_revision < 0:
                raise CliError(f"unable to find specified revision {args.to_revision} in history")
            obj = await _doc(client, kind, ns, name)
            history, _ = await _history(client, kind, obj)
            if kind.resource == "deployments":
                rs = choose_deployment_revision(name, history, args.to_revision)
                if args.dry_run == "client":
                    print(common.name_line(kind, name, pod_template_text(
                        (rs.get("spec") or {}).get("template") or {}), "client"), flush=True)
                    continue
                if (obj.get("spec") or {}).get("paused"):
                    raise CliError("you cannot rollback a paused deployment; resume it first "
                                   "with 'kubectl rollout resume' and try again")
                patch: Any = deployment_rollback_patch(obj, rs)
                patch_type = "json"
            else:
                chosen = choose_controller_revision(history, args.to_revision)
                if args.dry_run == "client":
                    print(common.name_line(kind, name, pod_template_text(
                        revision_template(chosen)), "client"), flush=True)
                    continue
                same = revision_template(chosen) == (obj.get("spec") or {}).get("template")
                patch = None if same else revision_data(chosen)
                patch_type = "strategic"
            if patch is None:
                print(common.name_line(kind, name, "skipped rollback (current template already "
                                       f"matches revision {args.to_revision})", args.dry_run),
                      flush=True)
                continue
            try:
                await client.patch(kind.resource, name, ns, patch=patch, patch_type=patch_type,
                                   dry_run=args.dry_run == "server")
            except errors.ApiError as exc:
                raise CliError(f"failed restoring revision {args.to_revision}: "
                               f"{exc.message}") from None
            print(common.name_line(kind, name, "rolled back", args.dry_run), flush=True)
    return 0


def _pause_patch(kind: Any, obj: Obj, paused: bool) -> Obj:
    if kind.resource != "deployments":
        raise CliError(("pausing" if paused else "resuming") + " is not supported")
    if bool((obj.get("spec") or {}).get("paused")) == paused:
        raise CliError("is already paused" if paused else "is not paused")
    return {"spec": {"paused": paused}}


def _restart_patch(kind: Any, obj: Obj, now: str) -> Obj:
    if kind.resource not in ROLLOUT_KINDS:
        raise CliError("restarting is not supported")
    spec = obj.get("spec") or {}
    if kind.resource == "deployments" and spec.get("paused"):
        raise CliError("can't restart paused deployment (run rollout resume first)")
    have = (((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {})
    if have.get(RESTARTED_AT_ANNOTATION) == now:
        return {}
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: now}}}}}


async def _run_patcher(args: argparse.Namespace, verb: str, done: str,
                       make: Callable[[Any, Obj], Obj]) -> int:
    """kubectl's pause/resume/restart loop: every object, errors gathered to the end."""
    from kubemu.api import errors

    failed = []
    async with common.client_for(args) as client:
        refs = await _refs(client, args)
        if not refs:
            common.write_error(f"No resources found in {common.namespace_of(args)} namespace.")
            return 0
        for kind, ns, name in refs:
            try:
                obj = await _doc(client, kind, ns, name)
            except errors.ApiError as exc:
                failed.append(common.format_error(exc))
                continue
            try:
                patch = make(kind, obj)
            except CliError as exc:
                failed.append(f'error: {kind.qualified_resource} "{name}" {exc}')
                continue
            if not patch:
                if verb == "restart":
                    failed.append(f"error: failed to create patch for {name}: if restart has "
                                  "already been triggered within the past second, please wait "
                                  "before attempting to trigger another")
                    continue
                print(common.name_line(kind, name, f"already {done}"), flush=True)
                continue
            try:
                await client.patch(kind.resource, name, ns, patch=patch)
            except errors.ApiError as exc:
                failed.append(f"error: failed to patch: {exc.message}")
                continue
            print(common.name_line(kind, name, done), flush=True)
    for message in failed:
        common.write_error(message)
    return 1 if failed else 0


async def run_pause(args: argparse.Namespace) -> int:
    return await _run_patcher(args, "pause", "paused",
                              lambda kind, obj: _pause_patch(kind, obj, True))


async def run_resume(args: argparse.Namespace) -> int:
    return await _run_patcher(args, "resume", "resumed",
                              lambda kind, obj: _pause_patch(kind, obj, False))


async def run_restart(args: argparse.Namespace) -> int:
    now = restarted_at()
    return await _run_patcher(args, "restart", "restarted",
                              lambda kind, obj: _restart_patch(kind, obj, now))


async def run_status(args: argparse.Namespace) -> int:
    if args.revision < 0:
        raise CliError(f"revision must be a positive integer: {args.revision}")
    async with common.client_for(args) as client:
        refs = await _refs(client, args)
        if not refs:
            common.write_error(f"No resources found in {common.namespace_of(args)} namespace.")
            return 0
        for kind, ns, name in refs:
            viewer = STATUS_VIEWERS.get(kind.resource)
            if viewer is None:
                group_kind = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
                raise CliError(f"no status viewer has been implemented for {group_kind}")
            await _doc(client, kind, ns, name)  # NotFound before any watch, as kubectl

            def check(doc: Obj | None) -> bool:
                if doc is None:
                    raise CliError("object has been deleted")
                message, done = viewer(doc, args.revision)
                sys.stdout.write(message)
                sys.stdout.flush()
                return done or not args.watch

            try:
                if args.timeout_s > 0:
                    await asyncio.wait_for(common.watch_object(client, kind, ns, name, check),
                                           args.timeout_s)
                else:
                    await common.watch_object(client, kind, ns, name, check)
            except TimeoutError:
                raise CliError("timed out waiting for the condition") from None
    return 0


# ---------------------------------------------------------------- argparse

def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("resources", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("-l", "--selector", default="")
    common.add_namespace_arg(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    parent = subparsers.add_parser(
        "rollout", help="manage the rollout of a resource",
        description="Manage the rollout of deployments, daemon sets and stateful sets, like "
                    "kubectl rollout.")
    commands = parent.add_subparsers(dest="rollout_command", metavar="COMMAND")

    def usage(_args: argparse.Namespace) -> int:
        parent.print_help(sys.stderr)
        return 1
    parent.set_defaults(func=usage)

    p = commands.add_parser("status", help="show the status of the rollout",
                            description="Watch the rollout until it is done.")
    _common_args(p)
    p.add_argument("-w", "--watch", action="store_true", default=True,
                   help="watch until the rollout is done (default true)")
    p.add_argument("--revision", type=int, default=0,
                   help="pin to a revision (Deployments; 0: the latest)")
    p.add_argument("--timeout", type=common.parse_duration_s, default=0.0, dest="timeout_s",
                   help="give up after this long (0: never)")
    p.set_defaults(func=run_status)

    p = commands.add_parser("history", help="view rollout history",
                            description="Revisions and their change causes.")
    _common_args(p)
    p.add_argument("--revision", type=int, default=0, help="show this revision's pod template")
    p.add_argument("-o", "--output", default="")
    p.set_defaults(func=run_history)

    p = commands.add_parser("undo", help="undo a previous rollout",
                            description="Roll back to the previous (or a given) revision.")
    _common_args(p)
    p.add_argument("--to-revision", type=int, default=0, help="0: the previous revision")
    p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                   nargs="?", const="client")
    p.set_defaults(func=run_undo)

    for verb, what, func in (("pause", "mark the resource as paused", run_pause),
                             ("resume", "resume a paused resource", run_resume),
                             ("restart", "restart a resource", run_restart)):
        p = commands.add_parser(verb, help=what, description=what[0].upper() + what[1:] + ".")
        _common_args(p)
        p.set_defaults(func=func)
    for p in set(commands.choices.values()):
        p.add_argument("--home", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
