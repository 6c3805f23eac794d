"""The chaos runner: `python -m deploy.chaos run SCENARIO.yaml` (`kubemu chaos run`).

scenario (the YAML, parsed and checked), schedule (the seeded fault timeline),
workloads (writer, churners, watcher), invariants (the checks), runner (the run
and its report). See each module's docstring for its contract.
"""
