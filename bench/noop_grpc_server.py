"""A gRPC aio server that does nothing (Discovery returns an empty answer).

apiserver_bench.py runs it as a separate process to measure the ceiling that
Python gRPC alone puts on any unary-call server on this machine.
"""
import asyncio
import sys

import grpc

from kubemu.api.v1 import resources_pb2 as pb
from kubemu.api.v1 import resources_pb2_grpc as pb_grpc


class Noop(pb_grpc.ResourcesServicer):
    async def Discovery(self, request, context):
        return pb.DiscoveryResponse()


async def serve(address: str) -> None:
    server = grpc.aio.server()
    pb_grpc.add_ResourcesServicer_to_server(Noop(), server)
    server.add_insecure_port(address)
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
