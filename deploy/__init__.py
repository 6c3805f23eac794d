"""The supervisor behind `kubemu up|down|status`.

`deploy.supervisor.Cluster` starts, watches, restarts and stops every process of
one cluster (home = KUBEMU_HOME); `deploy.components` is the table of process
kinds it knows; `python -m deploy up` runs it in the foreground. Production code
never imports this package: the `kubemu` CLI starts `python -m deploy` as a
child process and reads the files it writes into the home.
"""
