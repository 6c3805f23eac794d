"""What our DNS server takes from a CoreDNS Corefile (pure).

kubeadm's ConfigMap `coredns` holds one server block:

    .:53 {
        errors
        health { lameduck 5s }
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
           pods insecure
           fallthrough in-addr.arpa ip6.arpa
           ttl 30
        }
        prometheus :9153
        forward . /etc/resolv.conf { max_concurrent 1000 }
        cache 30
        loop
        reload
        loadbalance
    }

Read: the first server block's port (`.:53`), the `kubernetes` plugin's
cluster zone (its first zone outside the reverse trees) and `ttl`, `health`
(default :8080), `ready` (:8181), `prometheus` (:9153) and `forward .`'s
upstreams (addresses, or a resolv.conf file to take nameservers from).
Every other plugin is accepted and ignored (errors, cache, loop, reload,
loadbalance, log: their effect is not emulated). A Corefile this cannot
read gives CorefileError naming the line.
"""
from __future__ import annotations

import dataclasses
import re

DEFAULT_PORT = 53
DEFAULT_HEALTH = ":8080"
DEFAULT_READY = ":8181"
CORE_FILE_BYTES_MAX = 1 << 16


class CorefileError(ValueError):
    pass


@dataclasses.dataclass
class Directive:
    line: int
    name: str
    args: list[str]
    block: list[Directive] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Config:
    port: int = DEFAULT_PORT
    cluster_domain: str = "cluster.local"
    ttl_s: int = 30
    health: str = ""         # "" = the plugin is not in the Corefile
    ready: str = ""
    prometheus: str = ""
    forward: list[str] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)


_TOKEN = re.compile(r'"[^"]*"|\{|\}|[^\s{}"]+')


def parse_blocks(text: str) -> list[Directive]:
    """Directives with their `{ ... }` blocks, nested; comments (#) dropped."""
    if len(text) > CORE_FILE_BYTES_MAX:
        raise CorefileError(f"Corefile: larger than {CORE_FILE_BYTES_MAX} bytes")
    root: list[Directive] = []
    stack: list[list[Directive]] = [root]
    current: Directive | None = None  # the directive whose arguments this line is adding
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0]
        current = None
        for token in _TOKEN.findall(line):
            if token == "{":
                if current is None:
                    raise CorefileError(f"Corefile:{number}: '{{' without a directive")
                stack.append(current.block)
                current = None
            elif token == "}":
                if len(stack) == 1:
                    raise CorefileError(f"Corefile:{number}: unexpected '}}'")
                stack.pop()
                current = None
            elif current is None:
                current = Directive(number, token.strip('"'), [])
                stack[-1].append(current)
            else:
                current.args.append(token.strip('"'))
    if len(stack) != 1:
        raise CorefileError("Corefile: unexpected end of file: a '{' is not closed")
    return root


def _port_of(key: str, line: int) -> int:
    # `.:53`, `cluster.local:53`, `dns://.:53`, `.` (CoreDNS's default 53)
    key = key.split("://", 1)[-1]
    if ":" not in key:
        return DEFAULT_PORT
    text = key.rsplit(":", 1)[1]
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CorefileError(f"Corefile:{line}: invalid port in server block {key!r}")
    return int(text)


def parse(text: str) -> Config:
    blocks = parse_blocks(text)
    if not blocks:
        raise CorefileError("Corefile: no server block")
    server = blocks[0]
    cfg = Config(port=_port_of(server.name, server.line))
    for d in server.block:
        if d.name == "kubernetes":
            zones = [z.strip(".") for z in d.args if not z.strip(".").endswith("arpa")]
            if zones:
                cfg.cluster_domain = zones[0]
            for sub in d.block:
                if sub.name == "ttl":
                    if len(sub.args) != 1 or not sub.args[0].isdigit():
                        raise CorefileError(f"Corefile:{sub.line}: ttl: expected seconds")
                    cfg.ttl_s = int(sub.args[0])
        elif d.name == "health":
            cfg.health = d.args[0] if d.args else DEFAULT_HEALTH
        elif d.name == "ready":
            cfg.ready = d.args[0] if d.args else DEFAULT_READY
        elif d.name == "prometheus":
            cfg.prometheus = d.args[0] if d.args else ":9153"
        elif d.name == "forward":
            if len(d.args) < 2:
                raise CorefileError(f"Corefile:{d.line}: forward: expected FROM TO...")
            cfg.forward = list(d.args[1:])
        else:
            cfg.ignored.append(d.name)
    return cfg


def resolv_conf_nameservers(text: str) -> list[str]:
    """The `nameserver` lines of a resolv.conf, in order."""
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            found.append(words[1])
    return found
