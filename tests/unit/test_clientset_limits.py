"""The clientset's errors for oversized requests and its unsafe-delete option."""
from __future__ import annotations

import grpc
import grpc.aio
import pytest

from kubemu import server as grpc_server
from kubemu.api import errors, limits
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2, resources_pb2, resources_pb2_grpc
from kubemu.client.clientset import Client


class Resources(resources_pb2_grpc.ResourcesServicer):
    def __init__(self) -> None:
        self.deletes: list[resources_pb2.DeleteRequest] = []

    async def Create(self, request, context):
        obj = REGISTRY.unpack(request.object)
        if obj.metadata.name == "refused-by-the-apiserver":
            await grpc_server.abort(context, errors.request_entity_too_large(
                'configmaps "refused-by-the-apiserver" is 2000000 bytes when stored',
                limits.STORE_REQUEST_BYTES_MAX))
        return resources_pb2.ObjectResponse(object=REGISTRY.pack(obj))

    async def Delete(self, request, context):
        self.deletes.append(request)
        return resources_pb2.DeleteResponse(deleted=True)


@pytest.fixture
async def fake():
    servicer = Resources()
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", limits.REQUEST_BYTES_MAX)])
    resources_pb2_grpc.add_ResourcesServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = Client(f"127.0.0.1:{port}", timeout_s=10)
    yield servicer, client
    await client.close()
    await server.stop(grace=None)


def configmap(name: str, size_b: int = 0) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name, cm.metadata.namespace = name, "default"
    if size_b:
        cm.data["blob"] = "x" * size_b
    return cm


async def test_a_request_grpc_refuses_as_too_large_names_the_object_and_the_limit(fake):
    _, client = fake
    with pytest.raises(errors.RequestEntityTooLarge) as caught:
        await client.create(configmap("big", 4 * 1024 * 1024))
    message = str(caught.value)
    assert message.startswith('Request entity too large: configmaps "big" is ')
    assert message.endswith(f" bytes: limit is {limits.REQUEST_BYTES_MAX}")
    assert "Received message" not in message and "grpc" not in message.lower()


async def test_the_apiservers_own_too_large_error_passes_through(fake):
    _, client = fake
    with pytest.raises(errors.RequestEntityTooLarge) as caught:
        await client.create(configmap("refused-by-the-apiserver"))
    assert str(caught.value) == (
        'Request entity too large: configmaps "refused-by-the-apiserver" is 2000000 bytes '
        f"when stored: limit is {limits.STORE_REQUEST_BYTES_MAX}")


@pytest.mark.parametrize("unsafe", [False, True])
async def test_delete_sends_the_unsafe_delete_option_only_when_asked(fake, unsafe):
    servicer, client = fake
    result = await client.delete(
        "configmaps", "bad", "default",
        ignore_store_read_error_with_cluster_breaking_potential=unsafe)
    assert result.deleted and result.object is None
    request = servicer.deletes[-1]
    assert request.HasField("ignore_store_read_error_with_cluster_breaking_potential") is unsafe
