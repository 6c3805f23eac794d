"""A pod's DNS configuration (its /etc/resolv.conf), as the kubelet's
pkg/kubelet/network/dns Configurer.GetPodDNS forms it (pure).

- The base is the host's resolv.conf (the kubelet's --resolv-conf, read once
  at start): its nameservers, search domains (a trailing dot dropped, "."
  skipped) and options.
- dnsPolicy None: an empty base (only the pod's dnsConfig counts).
- ClusterFirst (and ClusterFirstWithHostNet; ClusterFirst on a hostNetwork
  pod means Default): nameservers = --cluster-dns, search =
  `<ns>.svc.<domain> svc.<domain> <domain>` then the host's (duplicates
  dropped), options = `ndots:5`. Without --cluster-dns: a Warning event
  MissingClusterDNS and the Default policy.
- Default: the host's. With --resolv-conf "" the kubelet points the pod at
  127.0.0.1 with search "." (DNS effectively off), as Kubernetes does.
- dnsConfig is merged last: nameservers and searches appended (duplicates
  dropped), options merged by name (the pod's value wins).
- Limits as the kubelet's formDNSConfigFitsLimits: 3 nameservers, 32 search
  domains, none longer than 253 characters, 2048 characters on the line;
  what is cut is said in a DNSConfigForming Warning event.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

from google.protobuf.message import Message

from kubemu.runtime.v1 import runtime_pb2 as rpb

DEFAULT_RESOLV_CONF = "/etc/resolv.conf"
RESOLV_CONF_BYTES_MAX = 1 << 16
DEFAULT_OPTIONS = ("ndots:5",)
NAMESERVERS_MAX = 3           # validation.MaxDNSNameservers
SEARCH_PATHS_MAX = 32         # validation.MaxDNSSearchPaths
SEARCH_LINE_CHARS_MAX = 2048  # validation.MaxDNSSearchListChars
SEARCH_PATH_CHARS_MAX = 253   # DNS1123SubdomainMaxLength

MISSING_CLUSTER_DNS = "MissingClusterDNS"
DNS_CONFIG_FORMING = "DNSConfigForming"


@dataclasses.dataclass(frozen=True)
class HostDNS:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def parse_resolv_conf(text: str) -> HostDNS:
    """The kubelet's parseResolvConf: nameserver lines, the last search line, every option."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [s.removesuffix(".") for s in fields[1:] if s != "."]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return HostDNS(tuple(servers), tuple(searches), tuple(options))


def read_host(path: str) -> HostDNS:
    """The host's resolv.conf (blocking); empty when `path` is "" or unreadable."""
    if not path:
        return HostDNS()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_resolv_conf(f.read(RESOLV_CONF_BYTES_MAX))
    except OSError:
        return HostDNS()


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def merge_options(existing: Iterable[str], pod_options: Iterable[Message]) -> list[str]:
    """mergeDNSOptions: by name, the pod's value wins; first-seen order kept."""
    merged: dict[str, str] = {}
    for op in existing:
        name, _, value = op.partition(":")
        merged[name] = value
    for op in pod_options:
        merged[op.name] = op.value if op.HasField("value") else ""
    return [f"{name}:{value}" if value else name for name, value in merged.items()]


def pod_label(pod: Message) -> str:
    """format.Pod: name_namespace(uid)."""
    m = pod.metadata
    return f"{m.name}_{m.namespace}({m.uid})"


@dataclasses.dataclass(frozen=True)
class DnsWarning:
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Configurer:
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    resolv_conf: str = DEFAULT_RESOLV_CONF
    host: HostDNS = HostDNS()

    def policy_type(self, spec: Message) -> str:
        """getPodDNSType: "None", "Cluster" or "Host"."""
        policy = spec.dns_policy or "ClusterFirst"
        if policy == "None":
            return "None"
        if policy == "ClusterFirstWithHostNet":
            return "Cluster"
        if policy == "ClusterFirst":
            return "Host" if spec.host_network else "Cluster"
        if policy == "Default":
            return "Host"
        return "Cluster"  # validation rejects others; the kubelet falls back so

    def searches_for_cluster_first(self, host_searches: Iterable[str], namespace: str
                                   ) -> list[str]:
        if not self.cluster_domain:
            return list(host_searches)
        d = self.cluster_domain
        return _unique([f"{namespace}.svc.{d}", f"svc.{d}", d, *host_searches])

    def pod_dns(self, pod: Message) -> tuple[rpb.DNSConfig, list[DnsWarning]]:
        spec = pod.spec
        warnings: list[DnsWarning] = []
        host = self.host if self.resolv_conf else HostDNS()  # --resolv-conf "": no base
        servers, searches, options = list(host.servers), list(host.searches), list(host.options)
        kind = self.policy_type(spec)
        if kind == "None":
            servers, searches, options = [], [], []
        elif kind == "Cluster" and self.cluster_dns:
            servers = list(self.cluster_dns)
            searches = self.searches_for_cluster_first(searches, pod.metadata.namespace)
            options = list(DEFAULT_OPTIONS)
        else:
            if kind == "Cluster":
                warnings.append(DnsWarning(MISSING_CLUSTER_DNS, (
                    f'pod: "{pod_label(pod)}". kubelet does not have ClusterDNS IP configured '
                    f'and cannot create Pod using "ClusterFirst" policy. Falling back to '
                    f'"Default" policy.')))
            if not self.resolv_conf:
                servers, searches = ["127.0.0.1"], ["."]
        if spec.HasField("dns_config"):
            dc = spec.dns_config
            servers = _unique([*servers, *dc.nameservers])
            searches = _unique([*searches, *dc.searches])
            options = merge_options(options, dc.options)
        if len(servers) > NAMESERVERS_MAX:
            servers = servers[:NAMESERVERS_MAX]
            warnings.append(DnsWarning(DNS_CONFIG_FORMING, (
                "Nameserver limits were exceeded, some nameservers have been omitted, the "
                f"applied nameserver line is: {' '.join(servers)}")))
        searches, cut = fit_searches(searches)
        if cut:
            warnings.append(DnsWarning(DNS_CONFIG_FORMING, (
                "Search Line limits were exceeded, some search paths have been omitted, the "
                f"applied search line is: {' '.join(searches)}")))
        return rpb.DNSConfig(servers=servers, searches=searches, options=options), warnings


def fit_searches(searches: list[str]) -> tuple[list[str], bool]:
    """formDNSSearchFitsLimits: (the search list within the limits, whether any was cut)."""
    cut = False
    if len(searches) > SEARCH_PATHS_MAX:
        searches, cut = searches[:SEARCH_PATHS_MAX], True
    kept = [s for s in searches if len(s) <= SEARCH_PATH_CHARS_MAX]
    cut = cut or len(kept) != len(searches)
    line = len(" ".join(kept))
    if line > SEARCH_LINE_CHARS_MAX:
        cut = True
        while kept and line > SEARCH_LINE_CHARS_MAX:
            line -= len(kept.pop()) + 1
    return kept, cut
