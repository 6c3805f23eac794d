"""The node's container runtime: a CRI-like gRPC service (kubemu.runtime.v1.Runtime
on a unix socket) that owns pod processes the way containerd owns containers.
`python -m kubelet.runtime --root DIR --socket PATH` runs it; the kubelet drives it.

Contract (what the kubelet and pod authors rely on):

- Sandbox: a directory per pod, <root>/pods/<namespace>_<name>_<uid>/, holding
  `hostname` and `hosts` (with the pod IP). There is no pause process: with no
  namespaces to hold open, it would do nothing. The pod IP is a loopback
  address the containers bind (env POD_IP).
- Container: a real process tree in its own session and process group
  (start_new_session). stdout and stderr are appended, raw, to log_path (the
  kubelet passes one per attempt, e.g. <pod log dir>/<container>/<attempt>.log,
  so the previous instance's log stays). The process writes the file itself,
  so output keeps flowing while the runtime restarts.
- Root view and mounts: there are no mount namespaces. Each container gets a
  directory <root>/containers/<id>/rootfs, passed as env KUBEMU_ROOTFS; each
  mount is a symlink $KUBEMU_ROOTFS/<container_path> -> host_path, and
  etc/hostname, etc/hosts link to the pod's files. Nothing is created at the
  real container_path on the host. So: a mount's content is at
  $KUBEMU_ROOTFS/<mountPath>, and the process's working directory is
  $KUBEMU_ROOTFS when workingDir is unset ($KUBEMU_ROOTFS/<workingDir>,
  created if missing, otherwise) — relative paths like `etc/config/x` work.
  An absolute command path that exists in the root view (a script in a
  volume) runs from there. `readonly` is recorded, not enforced; a mount
  nested inside another mount is skipped (it would be written into that volume).
- Environment: the image's env, then the container's envs (which win), then,
  when not set: PATH (standard; the image's program directory is put first,
  e.g. `python` for python images), HOSTNAME (the sandbox hostname), POD_IP,
  HOME ($KUBEMU_ROOTFS/root); KUBEMU_ROOTFS always. Nothing of the runtime's
  own environment leaks in.
- Stop: SIGTERM to the process group, wait the timeout, SIGKILL the group
  (timeout 0: SIGKILL at once). When the main process ends, whatever is left
  of the container (its group, processes seen in its tree, running execs) is
  SIGKILLed, as when a pid namespace loses its init.
- Exit: exit code as a shell reports it (signal N -> 128+N: SIGTERM 143,
  SIGKILL 137); reason Completed (0), Error (other), OOMKilled (killed by the
  runtime for memory: 137), StartError (could not exec: 128, as containerd).
- Memory limit: no cgroups. A monitor samples the RSS of each container's
  process tree every --monitor-period-s (psutil) and SIGKILLs the tree above
  memory_limit_bytes (OOMKilled, 137). Not RLIMIT_AS: it caps virtual address
  space, which runtimes reserve far beyond what they use (Go, the JVM, glibc
  malloc arenas, Python with many threads), so it breaks programs long
  before their real memory use approaches the limit. CPU limits are
  recorded, not enforced; CPU usage is measured.
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
