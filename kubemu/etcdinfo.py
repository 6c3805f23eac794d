"""What an etcd cluster says about itself: its members and each one's status.

Shared by `kubemu etcd members|status` and the supervisor (Cluster.etcd_leader).
Every call is one gRPC request to one client endpoint ("host:port", or
"http://host:port") with a deadline; an endpoint that does not answer raises
EtcdQueryError naming it. aetcd's generated stubs are used directly (its
Client wraps every error into its own types and asks MemberList again for
every Status), on a blocking channel in a thread: an asyncio channel's set-up
and close wait on gRPC's threads on the caller's loop.
"""
from __future__ import annotations

import asyncio
import dataclasses

# grpc and aetcd are imported where used: the CLI imports this module at start.

QUERY_TIMEOUT_S = 2.0


class EtcdQueryError(Exception):
    """An endpoint did not answer; the message names it and the reason."""


@dataclasses.dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    id: int              # the answering member
    version: str
    db_size_bytes: int
    leader_id: int       # 0: no leader known
    raft_term: int
    raft_index: int
    revision: int
    leader_name: str = ""   # from the member list, "" when unknown


def _target(endpoint: str) -> str:
    return endpoint.removeprefix("http://").removeprefix("https://")


async def members(endpoint: str, timeout_s: float = QUERY_TIMEOUT_S) -> list[Member]:
    """The cluster's member list as `endpoint` knows it."""
    return await asyncio.to_thread(members_sync, endpoint, timeout_s)


async def status(endpoint: str, timeout_s: float = QUERY_TIMEOUT_S) -> EndpointStatus:
    """One endpoint's status (etcdctl endpoint status), with the leader's name."""
    return await asyncio.to_thread(status_sync, endpoint, timeout_s)


def members_sync(endpoint: str, timeout_s: float = QUERY_TIMEOUT_S) -> list[Member]:
    import grpc
    from aetcd import rpc

    try:
        with grpc.insecure_channel(_target(endpoint)) as channel:
            answer = rpc.ClusterStub(channel).MemberList(rpc.MemberListRequest(),
                                                         timeout=timeout_s)
    except grpc.RpcError as exc:
        raise EtcdQueryError(f"{endpoint}: member list: {exc.code().name}: "
                             f"{exc.details() or ''}".rstrip(": ")) from None
    return [Member(id=m.ID, name=m.name, peer_urls=tuple(m.peerURLs),
                   client_urls=tuple(m.clientURLs)) for m in answer.members]


def status_sync(endpoint: str, timeout_s: float = QUERY_TIMEOUT_S) -> EndpointStatus:
    import grpc
    from aetcd import rpc

    try:
        with grpc.insecure_channel(_target(endpoint)) as channel:
            answer = rpc.MaintenanceStub(channel).Status(rpc.StatusRequest(), timeout=timeout_s)
            listed = rpc.ClusterStub(channel).MemberList(rpc.MemberListRequest(),
                                                         timeout=timeout_s)
    except grpc.RpcError as exc:
        raise EtcdQueryError(f"{endpoint}: status: {exc.code().name}: "
                             f"{exc.details() or ''}".rstrip(": ")) from None
    names = {m.ID: m.name for m in listed.members}
    return EndpointStatus(
        endpoint=endpoint, id=answer.header.member_id, version=answer.version,
        db_size_bytes=answer.dbSize, leader_id=answer.leader, raft_term=answer.raftTerm,
        raft_index=answer.raftIndex, revision=answer.header.revision,
        leader_name=names.get(answer.leader, "") if answer.leader else "")
