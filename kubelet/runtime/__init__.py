"""The node's container runtime: a CRI-like gRPC service (kubemu.runtime.v1.Runtime
on a unix socket) that owns pod processes the way containerd owns containers.
`python -m kubelet.runtime --root DIR --socket PATH` runs it; the kubelet drives it.

Contract (what the kubelet and pod authors rely on):

- Isolation mode (kubelet/runtime/isolation.py), chosen at start with
  --isolation auto|namespaces|plain (default $KUBEMU_ISOLATION, else auto:
  `namespaces` when a trial container starts and behaves, else `plain`, the
  reason logged). Version reports it (isolation, isolation_reason) and
  <root>/state/isolation.json records it; the kubelet puts it on its Node
  (label and annotation kubemu.io/isolation, annotation
  kubemu.io/isolation-reason) and `kubemu status` prints it per node.
  CreateContainer answers, in `warnings`, what the mode cannot do for that
  container (the kubelet makes each a Warning event, IsolationNotEnforced).
- Sandbox: a directory per pod, <root>/pods/<namespace>_<name>_<uid>/, holding
  `hostname`, `hosts` (Kubernetes' managed hosts file: localhost, the pod IP
  with its hostname and <hostname>.<domain>, then hostAliases), `resolv.conf`
  (the pod's dnsConfig, else the host's) and, in the namespaces mode, `shm`
  (the pod's /dev/shm). There is no pause process. The pod IP is a loopback
  address the containers bind (env POD_IP): pods share the host's network
  namespace in every mode.
- Container: a real process tree. stdout and stderr are appended, raw, to
  log_path (the kubelet passes one per attempt, e.g. <pod log
  dir>/<container>/<attempt>.log, so the previous instance's log stays). The
  process writes the file itself, so output keeps flowing while the runtime
  restarts.
- The namespaces mode (nsinit.py builds it, before the command starts):
  user, mount, PID, UTS and IPC namespaces per container. Its root is a
  tmpfs with, per top-level host directory, an overlay (the host's directory
  below, a writable layer of the container's own above, removed with the
  container, so a restarted container starts clean); /proc of its PID
  namespace, a minimal /dev (null, zero, full, random, urandom, tty, the
  host's devpts, shm), a private /tmp and /run, /sys read-only. The cluster's
  home, the runtime's root and every ~/.kubemu are masked (empty,
  read-only); the interpreter and source tree the image stand-ins run from
  are bound read-only where they are when the view would hide them (under
  a mask, or under /tmp, /run, /root, which the container has its own of);
  elsewhere the overlays show them. Each mount is bound at its absolute
  container_path (read-only when `readonly`: writes fail with EROFS), in
  order of depth, idmapped through the container's user namespace when the
  kernel allows (the kubelet's files are the container root's), so the
  configMap/secret/downwardAPI `..data` layout is kept. /etc/hostname,
  /etc/hosts and /etc/resolv.conf are the sandbox's; the UTS hostname is
  the sandbox hostname. The first process is PID 1 of its namespace (SIGTERM
  without a handler does nothing: the kill after the grace period ends it,
  137), runs as security_context.run_as_user/run_as_group (0 by default)
  with supplemental_groups, with no_new_privs when asked, on a read-only
  root when readonly_rootfs. Identity: as root, container ids 0..65535 are
  host ids from a base derived from the runtime's root (container root is an
  unprivileged host user: it cannot read /etc/shadow); rootless (the
  runtime not root), the container's user namespace maps one uid and one
  gid, the process's own (runAsUser/runAsGroup, 0 by default), to the
  runtime's user: supplementalGroups/fsGroup are not applied (setgroups is
  denied; an isolation warning says so), files of other host owners show as
  nobody, and the directories the container's user must own in its layer
  (/etc, /var, /usr/share..., its mount points' parents, its working
  directory) are made in the layer before the overlay is mounted; with a
  shared PID namespace (the pause's user namespace) only id 0. Rootless,
  no cgroup is writable unless one is delegated, so limits are approximated
  (see Memory/CPU limit), and ports below ip_unprivileged_port_start cannot
  be bound (no low-ports supervisor: it needs root); Version's
  isolation_reason says so. The end of PID 1 ends its PID namespace:
  nothing a container started survives it. Ports below 1024 of the pod IP
  are bound for the container by the runtime (lowports.py). Exec, ExecSync,
  exec probes and streaming exec enter the namespaces (nsinit.py `exec`).
  shareProcessNamespace (pid mode POD): the sandbox starts a pause process
  (the pod's PID 1, in its own user, PID and IPC namespaces; recorded as
  pause_pid) whose namespaces the pod's containers join; a container's
  first process is then not PID 1, and the container is stopped and
  cleaned up as in the plain mode (its group, its tree); stopping the
  sandbox kills the pause process, which ends the pod's PID namespace.
  Gaps: without it the IPC namespace is per container, not per pod;
  hostPID/hostIPC share the host's.
- The plain mode: no namespaces. Each container gets a directory
  <root>/containers/<id>/rootfs, passed as env KUBEMU_ROOTFS; each mount is
  a symlink $KUBEMU_ROOTFS/<container_path> -> host_path, and etc/hostname,
  etc/hosts link to the pod's files. Nothing is created at the real
  container_path on the host. So: a mount's content is at
  $KUBEMU_ROOTFS/<mountPath>, and the process's working directory is
  $KUBEMU_ROOTFS when workingDir is unset ($KUBEMU_ROOTFS/<workingDir>,
  created if missing, otherwise) — relative paths like `etc/config/x` work.
  An absolute command path that exists in the root view (a script in a
  volume) runs from there. Not enforced, and warned about: `readonly`
  mounts, runAsUser/runAsGroup/fsGroup, readOnlyRootFilesystem,
  allowPrivilegeEscalation, shareProcessNamespace. A mount nested inside
  another mount is skipped (it would be written into that volume). The
  container is its own session and process group; the runtime is a child
  subreaper, so what a container's processes leave behind is re-parented to
  it and reaped.
- Environment: the image's env, then the container's envs (which win), then,
  when not set: PATH (standard; the image's program directory is put first:
  /.kubemu/bin in the namespaces mode, the host directory in the plain
  one), HOSTNAME (the sandbox hostname), POD_IP; HOME from the container's
  /etc/passwd (namespaces) or $KUBEMU_ROOTFS/root and KUBEMU_ROOTFS (plain).
  Nothing of the runtime's own environment leaks in (the kubelet's
  --pod-env variables are the kubelet's documented addition).
- Stop: SIGTERM (namespaces: to PID 1, as containerd; plain, or a shared
  PID namespace: to the process group), wait the timeout, SIGKILL, and
  everything in the container's cgroups (timeout 0: SIGKILL at once). When
  the main process ends, whatever is left of the container goes too: the
  kernel ends its PID namespace (namespaces); its group, processes seen in
  its tree, running execs and everything in its cgroups are SIGKILLed.
- Cgroups (kubelet/runtime/cgroups.py; flags `--cgroups auto|none`,
  `--cgroup-fs`): at start the runtime finds what it can write, v2 (unified) or v1 (per-controller
  hierarchies), makes a parent `kubemu/<hash of its root>` per hierarchy
  (recorded in <root>/cgroups.json for `kubemu down`) and one child per
  container. The container's first process and every exec'd command join
  them before they exec (a `/bin/sh` stub writes "0" into each cgroup.procs,
  then execs the command; StartContainer returns once the command runs; in
  the namespaces mode nsinit's launcher joins them, spec["cgroup_procs"],
  before it forks the container, and an exec's stub runs nsinit's `exec`), so
  nothing a container starts is ever outside, whatever it does with its
  session, group or environment. Cgroups of containers the runtime does not
  know are emptied and removed on start; a container's are removed with it;
  an idle runtime removes its parents when it stops. The runtime is a child
  subreaper: orphans come back to it and are reaped. Without a writable
  cgroup (or with `--cgroups none`) an orphan is put back with its
  container by its session or process group (the container's leader) or
  its KUBEMU_ROOTFS; one that left its session and dropped KUBEMU_ROOTFS
  from its environment (`setsid env -i ...`) before a sample saw it in the
  container's tree is not tracked (the plain mode's gap).
- Exit: exit code as a shell reports it (signal N -> 128+N: SIGTERM 143,
  SIGKILL 137); reason Completed (0), Error (other), OOMKilled (killed for
  memory: 137), StartError (could not exec: 128, as containerd).
- Memory limit: the memory cgroup's (v1 memory.limit_in_bytes; v2
  memory.max with swap.max 0 and oom.group 1). When the kernel OOM-kills a
  process of the container (v1 memory.oom_control oom_kill, v2
  memory.events), the whole container is killed (v1 has no oom.group: the
  runtime does it) and reported OOMKilled, 137. Without a memory cgroup, a
  monitor samples the RSS of each container's process tree every
  --monitor-period-s (psutil) and SIGKILLs the tree above the limit
  (OOMKilled, 137). Not RLIMIT_AS: it caps virtual address space, which
  runtimes reserve far beyond what they use (Go, the JVM, glibc malloc
  arenas, Python with many threads), so it breaks programs long before
  their real memory use approaches the limit.
- CPU limit: the cpu cgroup's CFS quota (v1 cpu.cfs_quota_us per 100 ms
  cpu.cfs_period_us; v2 cpu.max). Without one, a throttler
  (kubelet/runtime/throttle.py) stops and continues the container's group
  and known processes (SIGSTOP/SIGCONT) on a duty cycle driven by its
  measured CPU time, precise to the sampling period; it continues them when
  the container is being stopped, when the runtime stops, and when a runtime
  starts (one killed while a container was stopped). A limit only
  approximated is said in CreateContainerResponse.warnings (the kubelet
  makes a `LimitApproximated` Warning event of each).
- Usage (ContainerStats, the node's stats, `kubemu top`): from the cgroup
  where there is one (v1 cpuacct.usage, memory.usage_in_bytes minus
  total_inactive_file as working set, total_rss; v2 cpu.stat usage_usec,
  memory.current minus inactive_file, anon), else psutil sums over the
  process tree (RSS as both working set and rss).
- State: <root>/state/ holds one JSON record per sandbox and container,
  written atomically, including the pid and its start time. A restarted
  runtime re-adopts a container whose process is still alive (same pid, same
  start time) and keeps monitoring it; since it is no longer our child its
  exit status cannot be collected, so when it ends it is EXITED with exit code
  255 and reason "Unknown" (what containerd reports when it lost a task's
  exit status; 137 if the runtime itself SIGKILLed it). A container whose
  process died while the runtime was down is reported the same way.
- Restart of the runtime never touches container processes: SIGTERM stops
  only the gRPC server.
- Images resolve through kubelet/runtime/images.py (built-in entries plus
  --images-file); demo apps are in kubelet/runtime/demoapps/.
- Interactive exec (ExecStream) and attach (Attach), and containers created
  with `stdin`/`tty`: kubelet/runtime/stdio.py. A streaming exec's process
  enters its container through ContainerRuntime.spawn_in_container. A
  container's stdin pipe or terminal lives in the runtime: a restarted
  runtime cannot give it back (the container reads end of input, or its
  terminal hangs up).
"""
