"""A gRPC aio server whose Create does only what a create must: one etcd
transaction (put if absent) of the object's bytes.

apiserver_bench.py runs it as a separate process against the same etcd, with
the same client and the same requests as the apiserver gets, so the
apiserver's create rate divided by this one's is what the apiserver's own work
(decoding, defaults, validation, encoding, the watch cache...) costs. It uses
the apiserver's etcd client (apiserver.storage.EtcdStore), so client overhead
is the same on both sides.

    python bench/passthrough_grpc_server.py ADDRESS ETCD_ENDPOINT
"""
import asyncio
import itertools
import os
import sys

import grpc

from apiserver.storage import EtcdStore
from kubemu.api.v1 import resources_pb2 as pb
from kubemu.api.v1 import resources_pb2_grpc as pb_grpc


class PassThrough(pb_grpc.ResourcesServicer):
    def __init__(self, store: EtcdStore):
        self.store = store
        self.keys = itertools.count()

    async def Create(self, request, context):
        key = f"/bench/passthrough/{os.getpid()}/{next(self.keys):08d}".encode()
        revision = await self.store.put_if(key, request.object.value, 0)
        if revision is None:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "exists")
        return pb.ObjectResponse(object=request.object)


async def serve(address: str, etcd: str) -> None:
    store = EtcdStore(etcd, timeout_s=30)
    await store.connect()
    server = grpc.aio.server()
    pb_grpc.add_ResourcesServicer_to_server(PassThrough(store), server)
    server.add_insecure_port(address)
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
