"""The kubelet: `python -m kubelet --node-name N --apiserver ADDR --runtime-socket S --root DIR`.

It registers its Node (and renews its Lease), watches the pods bound to it and
makes them real through the node runtime (kubelet/runtime, a separate process
that owns the pod processes): one PodWorker per pod runs init containers,
app containers, probes, hooks, restarts with CrashLoopBackOff, volumes and
graceful deletion, and reports the pod's status as Kubernetes does. A
restarted kubelet adopts the running containers it finds in the runtime.

  app.py        wiring: informers, workers, PLEG, housekeeping, the API server
  worker.py     one pod's sync loop            status.py   PodStatus (pure)
  prober.py     probe workers                  actions.py  exec/http/tcp/grpc/sleep
  envvars.py    environment, $(VAR) (pure)     volumes.py  volume directories
  node.py       Node object and Lease          admission.py  resource fit (pure)
  backoff.py    CrashLoopBackOff (pure)        ipam.py     pod IPs from the pod CIDR
  events.py     Event recorder                 server.py   logs / exec / stats API
  logs.py       log file reading               cri.py      the runtime's client
"""
