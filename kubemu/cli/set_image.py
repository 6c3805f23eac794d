"""`kubemu set image`: change container images in place, as `kubectl set image`.

`kubemu set image (TYPE NAME... | TYPE/NAME... | TYPE -l SEL | TYPE --all)
CONTAINER=IMAGE...` sets the image of the named containers (init containers
included; `*` for every container) in a pod, or in the pod template of a
workload (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job; CronJob's job
template). Every resource comes before the first change. Each object that
changes is patched and printed as kubectl prints it (`pod/web image
updated`, `deployment.apps/web image updated`); one whose images are already
as asked is left alone and not printed. A container name found nowhere in an
object is an error (`unable to find container named "x"`), reported at the
end with a non-zero exit; the other changes are still made, as kubectl does.

The patch is a merge patch of the whole containers list, conditioned on the
resourceVersion the images were read at, so a concurrent change of the
object is never overwritten: a Conflict (for a pod, most often the
kubelet's status write) reads the object again and retries, a bounded
number of times.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

CONFLICT_RETRIES_MAX = 5

# Where each workload kind keeps its pod spec, in the Kubernetes JSON.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_FIELDS = ("initContainers", "containers")


def parse_args(words: list[str]) -> tuple[list[str], dict[str, str]]:
    """(resource words, container name -> image) from kubectl-style arguments
    (cmdutil.GetResourcesAndPairs, then ParsePairs)."""
    resources: list[str] = []
    images: dict[str, str] = {}
    for word in words:
        if "=" in word:
            name, _, image = word.partition("=")
            if not name or not image:
                raise CliError(f"invalid image format: {word}")
            images[name] = image
        elif images:
            raise CliError(f"all resources must be specified before image changes: {word}")
        else:
            resources.append(word)
    if not resources:
        raise CliError("one or more resources must be specified as <resource> <name> or "
                       "<resource>/<name>")
    if not images:
        raise CliError("at least one image update is required")
    if len(images) > 1 and "*" in images:
        raise CliError("all containers are already specified by *, but saw more than one "
                       "container_name=container_image pairs")
    return resources, images


def set_images(doc: dict[str, Any], kind: str, images: dict[str, str]
               ) -> tuple[dict[str, Any] | None, list[str]]:
    """The merge patch that gives `doc` (an object's Kubernetes JSON) the
    images asked for (None when nothing changes), and the container names
    found nowhere in it. Pure: `doc` is not changed."""
    path = POD_SPEC_PATHS.get(kind)
    if path is None:
        raise CliError(f"the object is not a pod or does not have a pod template: *v1.{kind}")
    spec: Any = doc
    for key in path:
        spec = spec.get(key) or {}
    changed: dict[str, list[dict[str, Any]]] = {}
    found: set[str] = set()
    for field in CONTAINER_FIELDS:
        containers = [dict(c) for c in spec.get(field) or []]
        touched = False
        for ctr in containers:
            for name, image in images.items():
                if name == "*" or ctr.get("name") == name:
                    found.add(name)
                    if ctr.get("image") != image:
                        ctr["image"] = image
                        touched = True
        if touched:
            changed[field] = containers
    missing = [name for name in images if name not in found]
    if not changed:
        return None, missing
    patch: dict[str, Any] = changed
    for key in reversed(path):
        patch = {key: patch}
    return patch, missing


async def run_set_image(args: argparse.Namespace) -> int:
    from kubemu.api import errors

    if args.all and args.selector:
        raise CliError("cannot set --all and --selector at the same time")
    resources, images = parse_args(args.args)
    targets = common.parse_targets(resources)
    namespace = common.namespace_of(args)
    cause = common.change_cause(args)
    failed: list[str] = []
    async with common.client_for(args) as client:
        found: list[tuple[Any, str, str]] = []   # (kind, namespace, name)
        for target in targets:
            ns = namespace if target.kind.namespaced else ""
            if target.names:
                found.extend((target.kind, ns, name) for name in target.names)
            elif args.selector or args.all:
                listed = await client.list_all(target.kind.resource, ns,
                                               label_selector=args.selector or "")
                found.extend((target.kind, ns, o.metadata.name) for o in listed.items)
            else:
                raise CliError("resource(s) were provided, but no name was specified")
        for kind, ns, name in found:
            label = f"{common.kind_label(kind)}/{name}"
            for _ in range(CONFLICT_RETRIES_MAX):
                try:
                    live = common.to_json(await client.get(kind.resource, name, ns), kind)
                except errors.NotFound as exc:
                    common.print_error(exc)
                    failed.append(label)
                    break
                try:
                    patch, missing = set_images(live, kind.kind, images)
                except CliError as exc:
                    common.write_error(f"error: {kind.resource}/{name} {exc}")
                    failed.append(label)
                    break
                for container in missing:
                    common.write_error(f'error: unable to find container named "{container}"')
                if missing:
                    failed.append(label)
                if patch is None:
                    break
                patch["metadata"] = {"resourceVersion": live["metadata"]["resourceVersion"]}
                if cause is not None:   # kubectl records into the same change
                    patch["metadata"]["annotations"] = {common.CHANGE_CAUSE: cause}
                try:
                    await client.patch(kind.resource, name, ns, patch=patch,
                                       dry_run=args.dry_run == "server")
                except errors.Conflict:
                    continue  # changed meanwhile (a status write): read it again
                except errors.ApiError as exc:
                    # kubectl wraps the server's message (so no "The " before an Invalid one).
                    common.write_error("error: failed to patch image update to pod template: "
                                       + exc.message)
                    failed.append(label)
                    break
                suffix = " (server dry run)" if args.dry_run == "server" else ""
                print(f"{label} image updated{suffix}", flush=True)
                break
            else:
                common.write_error(f"error: {label}: the object kept changing; "
                                   f"gave up after {CONFLICT_RETRIES_MAX} tries")
                failed.append(label)
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parent = subparsers.add_parser(
        "set", help="set specific features on objects",
        description="Configure application resources, like kubectl set.")
    commands = parent.add_subparsers(dest="set_command", metavar="COMMAND")

    def usage(_args: argparse.Namespace) -> int:
        parent.print_help(sys.stderr)  # kubectl set alone: its help, exit 1
        return 1
    parent.set_defaults(func=usage)
    p = commands.add_parser(
        "image", help="update the image of a pod template",
        description="Update existing container image(s) of resources, like kubectl set image: "
                    "TYPE NAME CONTAINER=IMAGE... ('*' for every container).")
    p.add_argument("args", nargs="*", metavar="TYPE NAME|TYPE/NAME CONTAINER=IMAGE...")
    common.add_namespace_arg(p)
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--all", action="store_true",
                   help="every object of the type in the namespace")
    p.add_argument("--dry-run", choices=("none", "server"), default="none")
    common.add_record_arg(p)
    # `kubemu set image ... --home H` too (main adds --home to top-level commands only).
    p.add_argument("--home", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=run_set_image)
