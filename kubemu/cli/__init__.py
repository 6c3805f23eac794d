"""The `kubemu` command: cluster commands (up/down/status) and kubectl-like object commands.

Layering: kubemu.cli -> kubemu.client -> kubemu.api. Command modules import only
the standard library at module level so that `kubemu --help` starts fast; the
client, codec and protobuf modules are imported inside the commands.
"""
