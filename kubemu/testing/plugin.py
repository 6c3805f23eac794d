"""The pytest plugin of kubemu.testing: fixtures that give tests a cluster.

Opt in with `-p kubemu.testing` (or `pytest_plugins = ["kubemu.testing"]` in a
conftest.py, or `--kubemu` once kubemu is installed); it changes nothing in a
run that does not.

Fixtures:
- `kubemu_cluster`: a kubemu.testing.Cluster, up. One cluster is shared by
  every test of a session (of each xdist worker) by default;
  `--kubemu-scope` (ini `kubemu_scope`) shares it per package, module or
  class instead, or gives each test its own ("function"). Its shape comes from
  `--kubemu-nodes` / `--kubemu-components` / `--kubemu-profile` (ini
  `kubemu_nodes`, `kubemu_components`, `kubemu_profile`).
- `@pytest.mark.kubemu(nodes=2, components=[...], profile=...)`: that test gets
  a cluster of its own, of that shape (the Cluster's arguments), and stops it
  after.
- `kubemu_client` (async): a kubemu.client Client for the test's event loop.
- `kubemu_namespace` (async): a new namespace for the test, named after it,
  deleted when the test ends, so tests share a cluster without seeing each
  other's objects.

When a test that used a kubemu fixture fails, its report gets sections with
`kubemu status`, the last lines of each component's log and the events of the
test's namespace. A cluster's home (under pytest's tmp_path_factory: logs,
state, etcd data) is removed when its cluster stops, unless a test that used it
failed.

The async fixtures need pytest-asyncio (`pip install 'kubemu[testing]'`).
"""
from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import threading
from typing import Any

import pytest

from kubemu.pytest_options import DEFAULTS, SCOPES, add_options
from kubemu.testing.cluster import Cluster

NAMESPACE_PREFIX_CHARS = 40
REPORT_TIMEOUT_S = 10.0
EVENTS_MAX = 200

CLUSTER_KEY = pytest.StashKey["Cluster"]()
NAMESPACE_KEY = pytest.StashKey[str]()
# id() of every cluster a failing test used: its home is kept for a look.
FAILED_KEY = pytest.StashKey["set[int]"]()

try:
    import pytest_asyncio
except ImportError:  # the plugin says so when it is loaded (pytest_configure)
    pytest_asyncio = None  # type: ignore[assignment]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    if pytest_asyncio is None:
        raise pytest.UsageError("kubemu.testing's fixtures need pytest-asyncio: "
                                "pip install 'kubemu[testing]'")
    config.addinivalue_line(
        "markers", "kubemu(nodes=0, components=None, profile='fast'): the test gets a kubemu "
                   "cluster of its own, of this shape (kubemu.testing.Cluster's arguments)")


def setting(config: pytest.Config, name: str) -> str:
    """A setting: its command-line option, else its ini value, else the default."""
    value = config.getoption(f"kubemu_{name}", default=None)
    if value is None:
        value = config.getini(f"kubemu_{name}") or DEFAULTS[name]
    return str(value)


def shared_shape(config: pytest.Config) -> dict[str, Any]:
    components = [c.strip() for c in setting(config, "components").split(",") if c.strip()]
    try:
        nodes = int(setting(config, "nodes"))
    except ValueError:
        raise pytest.UsageError(f"kubemu_nodes: not a number: {setting(config, 'nodes')!r}")
    profile = setting(config, "profile")
    return {"nodes": nodes, "components": components or None,
            "profile": profile}


def _scope(fixture_name: str, config: pytest.Config) -> str:
    scope = setting(config, "scope")
    if scope not in SCOPES:
        raise pytest.UsageError(f"kubemu_scope: must be one of {', '.join(SCOPES)}, got {scope!r}")
    return scope


def _start(shape: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
           label: str) -> Cluster:
    try:
        cluster = Cluster(**shape, home=tmp_path_factory.mktemp(label))
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"kubemu cluster {shape}: {exc}") from None
    return cluster.up()


def _stop(cluster: Cluster, config: pytest.Config) -> None:
    """down(), then remove the home (logs, etcd data: an etcd WAL alone is 62 MiB)
    unless a test that used the cluster failed, or processes were left."""
    cluster.down()
    if id(cluster) not in config.stash.get(FAILED_KEY, set()):
        shutil.rmtree(cluster.home, ignore_errors=True)


@pytest.fixture(scope=_scope)
def kubemu_shared_cluster(request: pytest.FixtureRequest,
                          tmp_path_factory: pytest.TempPathFactory):
    """The cluster that tests without a kubemu marker share (see --kubemu-scope)."""
    cluster = _start(shared_shape(request.config), tmp_path_factory, "kubemu")
    try:
        yield cluster
    finally:
        _stop(cluster, request.config)


@pytest.fixture
def kubemu_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The test's cluster: its own when marked `@pytest.mark.kubemu(...)`, else the shared one."""
    marker = request.node.get_closest_marker("kubemu")
    if marker is None:
        cluster = request.getfixturevalue("kubemu_shared_cluster")
        request.node.stash[CLUSTER_KEY] = cluster
        yield cluster
        return
    if marker.args:
        raise pytest.UsageError(f"{request.node.nodeid}: @pytest.mark.kubemu takes keyword "
                                f"arguments only (nodes=, components=, profile=)")
    shape = {"profile": setting(request.config, "profile"), **marker.kwargs}
    cluster = _start(shape, tmp_path_factory, "kubemu-own")
    request.node.stash[CLUSTER_KEY] = cluster
    try:
        yield cluster
    finally:
        _stop(cluster, request.config)


def _fixture(func):  # pytest-asyncio's decorator, or a stub that fails in pytest_configure
    return pytest_asyncio.fixture(func) if pytest_asyncio is not None else pytest.fixture(func)


@_fixture
async def kubemu_client(kubemu_cluster: Cluster):
    """A Client of the test's cluster, on the test's event loop; closed after the test."""
    async with kubemu_cluster.new_client() as client:
        yield client


def namespace_name(test_name: str) -> str:
    """`<the test's name as a DNS label, cut>-<6 hex>`: unique, and telling whose it is."""
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")
    base = base.removeprefix("test-")[:NAMESPACE_PREFIX_CHARS].strip("-") or "test"
    return f"{base}-{secrets.token_hex(3)}"


async def create_namespace(client: Any, test_name: str) -> str:
    """A new namespace named after the test (namespace_name); its name."""
    from kubemu.api import codec
    from kubemu.api.kinds import REGISTRY

    name = namespace_name(test_name)
    kind = REGISTRY.by_gvk("v1", "Namespace")
    await client.create(codec.from_dict(
        kind.message, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    return name


async def delete_namespace(client: Any, name: str) -> None:
    """Ask for the namespace's deletion (the namespace controller empties it, when the
    cluster runs one); not waited for. Gone already is fine."""
    from kubemu.api import errors

    try:
        await client.delete("namespaces", name)
    except errors.NotFound:
        pass


@_fixture
async def kubemu_namespace(request: pytest.FixtureRequest, kubemu_client):
    """A namespace of the test's own, deleted (with what is in it) when the test ends."""
    name = await create_namespace(kubemu_client, request.node.name)
    request.node.stash[NAMESPACE_KEY] = name
    try:
        yield name
    finally:
        await delete_namespace(kubemu_client, name)


# --- the failure report -------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    cluster = item.stash.get(CLUSTER_KEY, None)
    if report.failed and cluster is not None:
        item.config.stash.setdefault(FAILED_KEY, set()).add(id(cluster))
    if report.failed and cluster is not None and report.when in ("setup", "call"):
        lines = int(setting(item.config, "log_lines"))
        for title, text in failure_sections(cluster, item.stash.get(NAMESPACE_KEY, None), lines):
            report.sections.append((title, text))
    return report


def failure_sections(cluster: Cluster, namespace: str | None,
                     log_lines: int) -> list[tuple[str, str]]:
    """(title, text) for a failing test: status, each log's tail, the namespace's events."""
    if not cluster.running:
        return [("kubemu", f"the cluster in {cluster._home} is not running (its supervisor "
                           "exited); its logs are in its home")]
    sections: list[tuple[str, str]] = []
    try:
        processes = cluster.status()
    except Exception as exc:  # the report says what it could not get, and goes on
        sections.append(("kubemu status", f"(not available: {exc})"))
        processes = []
    else:
        sections.append(("kubemu status", format_status(processes)))
    names = [p.name for p in processes] or ["supervisor"]
    for name in names:
        try:
            text = cluster.logs(name, lines=log_lines)
        except (KeyError, OSError):
            continue
        sections.append((f"kubemu log {name} (last {log_lines} lines)", text or "(empty)"))
    if namespace:
        sections.append((f"kubemu events in namespace {namespace}",
                         events_text(cluster, namespace)))
    return sections


def format_status(processes: list[Any]) -> str:
    rows = [("NAME", "STATE", "PID", "RESTARTS", "LAST-EXIT", "ADDRESS")]
    rows += [(p.name, p.state, str(p.pid or "-"), str(p.restarts), p.last_exit or "-",
              p.address or "-") for p in processes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def events_text(cluster: Cluster, namespace: str) -> str:
    """`kubemu get events -n NS`, oldest first, read on a loop of its own (the hook is sync)."""
    async def read() -> list[Any]:
        async with cluster.new_client(timeout_s=REPORT_TIMEOUT_S / 2) as client:
            return list((await client.list("events", namespace)).items)

    found: list[Any] = []
    problem: list[str] = []

    def run() -> None:
        try:
            found.extend(asyncio.run(asyncio.wait_for(read(), REPORT_TIMEOUT_S)))
        except Exception as exc:  # the report says it, and goes on
            problem.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, name="kubemu-report-events", daemon=True)
    thread.start()
    thread.join(REPORT_TIMEOUT_S + 2.0)
    if problem or thread.is_alive():
        return f"(events not available: {problem[0] if problem else 'no answer in time'})"
    if not found:
        return "No resources found in namespace " + namespace + "."

    def when(e: Any) -> str:  # RFC 3339 strings: they sort as times
        return e.last_timestamp or e.event_time or e.metadata.creation_timestamp

    found.sort(key=when)
    rows = [("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE")]
    for e in found[-EVENTS_MAX:]:
        ref = e.involved_object
        rows.append((when(e), e.type, e.reason, f"{ref.kind.lower()}/{ref.name}",
                     " ".join(e.message.split())))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "   " + r[4]
                     for r in rows)
