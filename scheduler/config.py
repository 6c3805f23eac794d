"""The scheduler's profile: kube-scheduler's default, or one read from --config.

The file (YAML) is either a KubeSchedulerConfiguration
(`apiVersion: kubescheduler.config.k8s.io/v1`, `kind: KubeSchedulerConfiguration`,
`profiles: [...]`, optional top-level `percentageOfNodesToScore`) or one bare
profile (`schedulerName`, `plugins`, `pluginConfig`, `percentageOfNodesToScore`).
The profile whose schedulerName is --scheduler-name is used (a profile without
one is "default-scheduler"); kubemu runs one profile per process.

Merging with the default profile is simpler than kube's enabled/disabled sets:
`plugins.filter` / `plugins.score`, when given, list every enabled plugin of
that extension point (with score weights); `pluginConfig` entries replace the
default args of the plugins they name; anything not given stays default.
Errors are ConfigError with the file and the field.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import yaml

from scheduler.default_config import default_config
from scheduler.framework import DEFAULT_SCHEDULER_NAME, ConfigError, Framework
from scheduler.plugins import default_registry

CONFIG_API_VERSIONS = ("kubescheduler.config.k8s.io/v1", "kubescheduler.config.k8s.io/v1beta3")
CONFIG_KIND = "KubeSchedulerConfiguration"
CONFIG_BYTES_MAX = 1 << 20
_CONFIG_FIELDS = {"apiVersion", "kind", "profiles", "percentageOfNodesToScore"}
_PROFILE_FIELDS = {"schedulerName", "plugins", "pluginConfig", "percentageOfNodesToScore"}


def read_file(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            raw = f.read(CONFIG_BYTES_MAX + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    if len(raw) > CONFIG_BYTES_MAX:
        raise ConfigError(f"{path}: larger than {CONFIG_BYTES_MAX} bytes")
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def select_profile(doc: Any, scheduler_name: str, *, source: str = "config") -> dict[str, Any]:
    """The profile for `scheduler_name` from a parsed config document."""
    if doc is None:
        return {"schedulerName": scheduler_name}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: expected a mapping, got {type(doc).__name__}")
    if "profiles" not in doc and doc.get("kind") != CONFIG_KIND:
        _check_fields(doc, _PROFILE_FIELDS, source)
        profile = dict(doc)
        name = profile.get("schedulerName") or scheduler_name
        if name != scheduler_name:
            raise ConfigError(f"{source}: schedulerName: Invalid value: {name!r}: this "
                              f"scheduler runs as {scheduler_name!r} (--scheduler-name)")
        profile["schedulerName"] = name
        return profile
    _check_fields(doc, _CONFIG_FIELDS, source)
    api_version = doc.get("apiVersion")
    if api_version is not None and api_version not in CONFIG_API_VERSIONS:
        raise ConfigError(f"{source}: apiVersion: Unsupported value: {api_version!r}: "
                          f"supported values: {', '.join(map(repr, CONFIG_API_VERSIONS))}")
    profiles = doc.get("profiles") or [{}]
    if not isinstance(profiles, list):
        raise ConfigError(f"{source}: profiles: Invalid value: expected a list")
    matching = []
    for i, profile in enumerate(profiles):
        if not isinstance(profile, Mapping):
            raise ConfigError(f"{source}: profiles[{i}]: Invalid value: expected a mapping")
        _check_fields(profile, _PROFILE_FIELDS, f"{source}: profiles[{i}]")
        if (profile.get("schedulerName") or DEFAULT_SCHEDULER_NAME) == scheduler_name:
            matching.append(dict(profile))
    if len(matching) != 1:
        names = [p.get("schedulerName") or DEFAULT_SCHEDULER_NAME for p in profiles
                 if isinstance(p, Mapping)]
        raise ConfigError(f"{source}: profiles: want exactly one profile with schedulerName "
                          f"{scheduler_name!r} (--scheduler-name), found {names}")
    profile = matching[0]
    profile["schedulerName"] = scheduler_name
    if "percentageOfNodesToScore" not in profile and "percentageOfNodesToScore" in doc:
        profile["percentageOfNodesToScore"] = doc["percentageOfNodesToScore"]
    return profile


def _check_fields(doc: Mapping[str, Any], known: set[str], source: str) -> None:
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field {unknown[0]!r} (known: "
                          f"{', '.join(sorted(known))})")


def merge_with_default(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The default profile with `profile`'s fields laid over it (see the module doc)."""
    merged = default_config()
    if profile.get("schedulerName"):
        merged["schedulerName"] = profile["schedulerName"]
    if profile.get("percentageOfNodesToScore") is not None:
        merged["percentageOfNodesToScore"] = profile["percentageOfNodesToScore"]
    plugins = profile.get("plugins")
    if plugins is not None:
        if not isinstance(plugins, Mapping):
            raise ConfigError("plugins: Invalid value: expected a mapping")
        for point, entries in plugins.items():
            merged["plugins"][point] = copy.deepcopy(entries)
    plugin_config = profile.get("pluginConfig")
    if plugin_config is not None:
        if not isinstance(plugin_config, list):
            raise ConfigError("pluginConfig: Invalid value: expected a list")
        given = {e.get("name") for e in plugin_config if isinstance(e, Mapping)}
        merged["pluginConfig"] = ([e for e in merged["pluginConfig"] if e["name"] not in given]
                                  + copy.deepcopy(plugin_config))
    return merged


def load_framework(path: str | None, scheduler_name: str) -> Framework:
    """The Framework for --config (None: the default profile) and --scheduler-name."""
    source = path or "default profile"
    doc = read_file(path) if path else None
    profile = merge_with_default(select_profile(doc, scheduler_name, source=source))
    try:
        return Framework.from_config(profile, default_registry())
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
