"""kubemu's kube-controller-manager: the workload controllers in one process."""
