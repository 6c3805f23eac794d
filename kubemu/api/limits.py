"""Size limits shared by every component: the one place they are defined.

- MESSAGE_BYTES_MAX: the largest gRPC message a kubemu channel or server
  accepts in general (watch batches, logs, lists of many objects).
- REQUEST_BYTES_MAX: the largest write request the apiserver receives, as
  kube-apiserver's MaxRequestBodyBytes (3 MiB: twice etcd's limit, because a
  request may be larger than the object it stores). Larger requests are
  refused by gRPC before they are buffered; clients get RequestEntityTooLarge.
- STORE_REQUEST_BYTES_MAX: etcd's default `--max-request-bytes` (1.5 MiB),
  the largest transaction etcd accepts. The apiserver refuses an object whose
  stored form would not fit before sending it.
"""
from __future__ import annotations

MESSAGE_BYTES_MAX = 64 * 1024 * 1024
REQUEST_BYTES_MAX = 3 * 1024 * 1024
STORE_REQUEST_BYTES_MAX = 3 * 512 * 1024
# What one conditional put adds to its key and value in an etcd request
# (compare, request op, raft header), with room to spare.
STORE_TXN_OVERHEAD_BYTES = 1024
