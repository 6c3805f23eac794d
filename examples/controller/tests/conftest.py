"""One line gives these tests a cluster: kubemu's pytest plugin.

It brings the fixtures kubemu_cluster (one cluster shared by the session,
shaped by the kubemu_* settings in pyproject.toml), kubemu_client and
kubemu_namespace, and the `kubemu` marker for a test that needs a cluster of
its own.
"""
pytest_plugins = ["kubemu.testing"]
