"""The API messages load real Kubernetes manifests unchanged and print them back.

Each case is a manifest as the Kubernetes documentation writes it (or as
`kubectl get -o yaml` prints it, status included): it must decode strictly
with codec.from_dict and encode back with codec.to_dict to the same dict. A
field with a wrong JSON name, a missing field or a lost `optional` shows up
as an unknown-field error or a dict that differs. Timestamps are quoted, as
kubectl prints them, so that YAML keeps them as strings.
"""
from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import policy_pb2

# ---------------------------------------------------------------- manifests

NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
  labels:
    kubernetes.io/metadata.name: team-a
spec:
  finalizers:
  - kubernetes
status:
  phase: Active
"""

CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: game-demo
data:
  player_initial_lives: "3"
  ui_properties_file_name: "user-interface.properties"
  game.properties: |
    enemy.types=aliens,monsters
    player.maximum-lives=5
immutable: false
"""

SECRET = """
apiVersion: v1
kind: Secret
metadata:
  name: mysecret
type: Opaque
data:
  username: YWRtaW4=
  password: MWYyZDFlMmU2N2Rm
"""

POD_LIVENESS_EXEC = """
apiVersion: v1
kind: Pod
metadata:
  labels:
    test: liveness
  name: liveness-exec
spec:
  containers:
  - name: liveness
    image: k8s.gcr.io/busybox
    args:
    - /bin/sh
    - -c
    - touch /tmp/healthy; sleep 30; rm -f /tmp/healthy; sleep 600
    livenessProbe:
      exec:
        command:
        - cat
        - /tmp/healthy
      initialDelaySeconds: 5
      periodSeconds: 5
"""

POD_LIVENESS_HTTP = """
apiVersion: v1
kind: Pod
metadata:
  labels:
    test: liveness
  name: liveness-http
spec:
  containers:
  - name: liveness
    image: registry.k8s.io/e2e-test-images/agnhost:2.40
    args:
    - liveness
    livenessProbe:
      httpGet:
        path: /healthz
        port: 8080
        httpHeaders:
        - name: Custom-Header
          value: Awesome
      initialDelaySeconds: 3
      periodSeconds: 3
"""

POD_KUARD = """
apiVersion: v1
kind: Pod
metadata:
  name: kuard
spec:
  volumes:
    - name: "kuard-data"
      hostPath:
        path: "/var/lib/kuard"
  containers:
    - image: gcr.io/kuar-demo/kuard-amd64:blue
      name: kuard
      resources:
        requests:
          cpu: "500m"
          memory: "128Mi"
        limits:
          cpu: "1000m"
          memory: "256Mi"
      volumeMounts:
        - mountPath: "/data"
          name: "kuard-data"
      livenessProbe:
        httpGet:
          path: /healthy
          port: 8080
        initialDelaySeconds: 5
        timeoutSeconds: 1
        periodSeconds: 10
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /ready
          port: 8080
        initialDelaySeconds: 30
        timeoutSeconds: 1
        periodSeconds: 10
        failureThreshold: 3
      ports:
        - containerPort: 8080
          name: http
          protocol: TCP
"""

# Probes by port name, tcpSocket, grpc and a startup probe; lifecycle hooks.
POD_PROBES_AND_HOOKS = """
apiVersion: v1
kind: Pod
metadata:
  name: goproxy
  labels:
    app: goproxy
spec:
  initContainers:
  - name: init-myservice
    image: busybox:1.28
    command: ['sh', '-c', "until nslookup myservice; do echo waiting; sleep 2; done"]
  - name: log-shipper
    image: alpine:latest
    restartPolicy: Always
    command: ['sh', '-c', 'tail -F /opt/logs.txt']
  containers:
  - name: goproxy
    image: registry.k8s.io/goproxy:0.1
    ports:
    - name: liveness-port
      containerPort: 8080
      hostPort: 8081
      hostIP: 127.0.0.1
    startupProbe:
      httpGet:
        path: /healthz
        port: liveness-port
        scheme: HTTP
      failureThreshold: 30
      periodSeconds: 10
    readinessProbe:
      tcpSocket:
        port: 8080
      initialDelaySeconds: 15
      periodSeconds: 10
      successThreshold: 1
    livenessProbe:
      grpc:
        port: 2379
        service: etcd
      initialDelaySeconds: 10
      terminationGracePeriodSeconds: 60
    lifecycle:
      postStart:
        exec:
          command: ["/bin/sh", "-c", "echo Hello from the postStart handler > /usr/share/message"]
      preStop:
        sleep:
          seconds: 5
  - name: sidecar
    image: nginx:1.25
    lifecycle:
      preStop:
        httpGet:
          path: /shutdown
          port: 80
          host: 127.0.0.1
      postStart:
        tcpSocket:
          port: 80
"""

# A Pod as `kubectl get pod -o yaml` prints it: defaults filled, every volume
# source, env sources, affinity, tolerations, security contexts and status.
POD_FULL = """
apiVersion: v1
kind: Pod
metadata:
  name: web-7d4b9c8f5-x2x9z
  generateName: web-7d4b9c8f5-
  namespace: default
  uid: 0b3c5d8e-1f2a-4b6c-9d7e-8f9a0b1c2d3e
  resourceVersion: "12345"
  creationTimestamp: "2024-03-01T10:00:00Z"
  labels:
    app: web
    pod-template-hash: 7d4b9c8f5
  annotations:
    kubectl.kubernetes.io/restartedAt: "2024-03-01T09:59:00Z"
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: web-7d4b9c8f5
    uid: 9a8b7c6d-5e4f-3a2b-1c0d-e9f8a7b6c5d4
    controller: true
    blockOwnerDeletion: true
spec:
  automountServiceAccountToken: false
  enableServiceLinks: true
  hostname: web-0
  subdomain: web
  nodeName: node-2
  nodeSelector:
    kubernetes.io/os: linux
  priority: 0
  preemptionPolicy: PreemptLowerPriority
  restartPolicy: Always
  schedulerName: default-scheduler
  serviceAccount: default
  serviceAccountName: default
  terminationGracePeriodSeconds: 30
  activeDeadlineSeconds: 3600
  dnsPolicy: ClusterFirst
  imagePullSecrets:
  - name: regcred
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    runAsNonRoot: true
    fsGroup: 2000
    supplementalGroups: [4000]
    seccompProfile:
      type: RuntimeDefault
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - key: topology.kubernetes.io/zone
            operator: In
            values:
            - antarctica-east1
            - antarctica-west1
          matchFields:
          - key: metadata.name
            operator: NotIn
            values: [node-9]
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 1
        preference:
          matchExpressions:
          - key: another-node-label-key
            operator: In
            values:
            - another-node-label-value
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector:
          matchExpressions:
          - key: security
            operator: In
            values:
            - S1
        topologyKey: topology.kubernetes.io/zone
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          labelSelector:
            matchLabels:
              app: web
          namespaces: [default, staging]
          topologyKey: kubernetes.io/hostname
  tolerations:
  - key: node.kubernetes.io/not-ready
    operator: Exists
    effect: NoExecute
    tolerationSeconds: 300
  - key: example-key
    operator: Equal
    value: "true"
    effect: NoSchedule
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: zone
    whenUnsatisfiable: DoNotSchedule
    labelSelector:
      matchLabels:
        app: web
  containers:
  - name: web
    image: nginx:1.14.2
    imagePullPolicy: IfNotPresent
    workingDir: /srv
    command: [nginx]
    args: ["-g", "daemon off;"]
    stdin: true
    tty: true
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    ports:
    - containerPort: 80
      name: http
      protocol: TCP
    env:
    - name: GREETING
      value: "Warm greetings to"
    - name: SPECIAL_LEVEL_KEY
      valueFrom:
        configMapKeyRef:
          name: special-config
          key: special.how
          optional: true
    - name: SECRET_USERNAME
      valueFrom:
        secretKeyRef:
          name: backend-user
          key: backend-username
    - name: MY_POD_IP
      valueFrom:
        fieldRef:
          apiVersion: v1
          fieldPath: status.podIP
    - name: MY_CPU_LIMIT
      valueFrom:
        resourceFieldRef:
          containerName: web
          resource: limits.cpu
          divisor: 1m
    envFrom:
    - configMapRef:
        name: special-config
    - prefix: DB_
      secretRef:
        name: db-secret
        optional: false
    resources:
      limits:
        memory: 512Mi
      requests:
        cpu: 250m
        memory: 64Mi
    securityContext:
      allowPrivilegeEscalation: false
      privileged: false
      readOnlyRootFilesystem: true
      runAsUser: 2000
      capabilities:
        add: ["NET_ADMIN", "SYS_TIME"]
        drop: [ALL]
    volumeMounts:
    - name: cache
      mountPath: /cache
    - name: config
      mountPath: /etc/config
      readOnly: true
    - name: secret
      mountPath: /etc/secret
      subPath: token
    - name: podinfo
      mountPath: /etc/podinfo
    - name: data
      mountPath: /data
    - name: logs
      mountPath: /var/log/nginx
    - name: kube-api-access
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
  volumes:
  - name: cache
    emptyDir: {}
  - name: logs
    emptyDir:
      medium: Memory
      sizeLimit: 500Mi
  - name: host
    hostPath:
      path: /var/log
      type: Directory
  - name: config
    configMap:
      name: log-config
      defaultMode: 420
      optional: true
      items:
      - key: log_level
        path: log_level
        mode: 256
  - name: secret
    secret:
      secretName: mysecret
      defaultMode: 256
      items:
      - key: username
        path: my-group/my-username
  - name: podinfo
    downwardAPI:
      items:
      - path: labels
        fieldRef:
          fieldPath: metadata.labels
      - path: cpu_limit
        resourceFieldRef:
          containerName: web
          resource: limits.cpu
          divisor: 1m
  - name: data
    persistentVolumeClaim:
      claimName: task-pv-claim
      readOnly: false
  - name: kube-api-access
    projected:
      defaultMode: 420
      sources:
      - serviceAccountToken:
          expirationSeconds: 3607
          path: token
      - configMap:
          name: kube-root-ca.crt
          items:
          - key: ca.crt
            path: ca.crt
      - downwardAPI:
          items:
          - path: namespace
            fieldRef:
              apiVersion: v1
              fieldPath: metadata.namespace
status:
  phase: Running
  qosClass: Burstable
  hostIP: 127.0.1.2
  hostIPs:
  - ip: 127.0.1.2
  podIP: 127.1.2.7
  podIPs:
  - ip: 127.1.2.7
  startTime: "2024-03-01T10:00:01Z"
  conditions:
  - type: Initialized
    status: "True"
    lastTransitionTime: "2024-03-01T10:00:01Z"
  - type: Ready
    status: "False"
    lastTransitionTime: "2024-03-01T10:00:05Z"
    reason: ContainersNotReady
    message: "containers with unready status: [web]"
  initContainerStatuses:
  - name: init
    image: docker.io/library/busybox:1.28
    imageID: docker.io/library/busybox@sha256:141c253bc4c3fd0a201d32dc1f493bcf3fff003b6df416dea4f41046e0f37d47
    containerID: kubemu://1f2e3d4c
    ready: true
    restartCount: 0
    started: false
    state:
      terminated:
        exitCode: 0
        reason: Completed
        startedAt: "2024-03-01T10:00:02Z"
        finishedAt: "2024-03-01T10:00:03Z"
        containerID: kubemu://1f2e3d4c
  containerStatuses:
  - name: web
    image: docker.io/library/nginx:1.14.2
    imageID: docker.io/library/nginx@sha256:f7988fb6c02e0ce69257d9bd9cf37ae20a60f1df7563c3a2a6abe24160306b8d
    containerID: kubemu://5a6b7c8d
    ready: false
    started: true
    restartCount: 3
    state:
      running:
        startedAt: "2024-03-01T10:05:00Z"
    lastState:
      terminated:
        exitCode: 137
        signal: 9
        reason: OOMKilled
        message: out of memory
        startedAt: "2024-03-01T10:03:00Z"
        finishedAt: "2024-03-01T10:04:59Z"
        containerID: kubemu://4a5b6c7d
  - name: waiting
    image: nosuch:latest
    ready: false
    restartCount: 0
    state:
      waiting:
        reason: ImagePullBackOff
        message: Back-off pulling image "nosuch:latest"
"""

POD_PENDING = """
apiVersion: v1
kind: Pod
metadata:
  name: big
  namespace: default
spec:
  hostNetwork: true
  containers:
  - name: main
    image: registry.k8s.io/pause:3.9
    resources:
      requests:
        cpu: "64"
status:
  phase: Pending
  nominatedNodeName: node-1
  reason: Unschedulable
  message: "0/3 nodes are available: 3 Insufficient cpu."
  conditions:
  - type: PodScheduled
    status: "False"
    lastProbeTime: "2024-03-01T10:00:00Z"
    lastTransitionTime: "2024-03-01T10:00:00Z"
    reason: Unschedulable
    message: "0/3 nodes are available: 3 Insufficient cpu."
"""

NODE = """
apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels:
    kubernetes.io/hostname: node-1
    kubernetes.io/os: linux
    node-role.kubernetes.io/control-plane: ""
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
spec:
  podCIDR: 127.1.1.0/24
  podCIDRs:
  - 127.1.1.0/24
  providerID: kubemu://node-1
  unschedulable: true
  taints:
  - key: node-role.kubernetes.io/control-plane
    effect: NoSchedule
  - key: node.kubernetes.io/unschedulable
    effect: NoSchedule
    timeAdded: "2024-03-01T10:00:00Z"
  - key: dedicated
    value: gpu
    effect: NoExecute
status:
  phase: Running
  capacity:
    cpu: "4"
    memory: 8Gi
    pods: "110"
    ephemeral-storage: 100Gi
  allocatable:
    cpu: 3800m
    memory: 7680Mi
    pods: "110"
  conditions:
  - type: MemoryPressure
    status: "False"
    lastHeartbeatTime: "2024-03-01T10:00:00Z"
    lastTransitionTime: "2024-03-01T09:00:00Z"
    reason: KubeletHasSufficientMemory
    message: kubelet has sufficient memory available
  - type: Ready
    status: "True"
    lastHeartbeatTime: "2024-03-01T10:00:00Z"
    lastTransitionTime: "2024-03-01T09:00:00Z"
    reason: KubeletReady
    message: kubelet is posting ready status
  addresses:
  - type: InternalIP
    address: 127.0.1.1
  - type: Hostname
    address: node-1
  daemonEndpoints:
    kubeletEndpoint:
      Port: 10250
  nodeInfo:
    machineID: 5a4c7e0ae7a94d8f8ce1b1ce5e0e7b0c
    systemUUID: 4c4c4544-0042-3510-8051-b3c04f4e3532
    bootID: 2f3c9f1e-3d5c-4b7a-9d8e-6f1a2b3c4d5e
    kernelVersion: 6.1.0-18-amd64
    osImage: Debian GNU/Linux 12 (bookworm)
    containerRuntimeVersion: kubemu://0.1.0
    kubeletVersion: v1.29.0-kubemu
    kubeProxyVersion: v1.29.0-kubemu
    operatingSystem: linux
    architecture: amd64
  images:
  - names:
    - docker.io/library/nginx:1.14.2
    sizeBytes: 44708492
"""

EVENT = """
apiVersion: v1
kind: Event
metadata:
  name: liveness-exec.17b8a4b9c7a2f3d1
  namespace: default
involvedObject:
  apiVersion: v1
  kind: Pod
  name: liveness-exec
  namespace: default
  uid: 0b3c5d8e-1f2a-4b6c-9d7e-8f9a0b1c2d3e
  resourceVersion: "4242"
  fieldPath: spec.containers{liveness}
reason: Unhealthy
message: "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory"
source:
  component: kubelet
  host: node-1
firstTimestamp: "2024-03-01T10:00:41Z"
lastTimestamp: "2024-03-01T10:01:01Z"
count: 3
type: Warning
eventTime: "2024-03-01T10:00:41.123456Z"
reportingComponent: kubelet
reportingInstance: node-1
action: Probe
"""

EVENT_SCHEDULED = """
apiVersion: v1
kind: Event
metadata:
  name: web-0.17b8a4b9c7a2f3d2
  namespace: default
involvedObject:
  kind: Pod
  name: web-0
  namespace: default
reason: Scheduled
message: Successfully assigned default/web-0 to node-2
source:
  component: default-scheduler
type: Normal
eventTime: "2024-03-01T10:00:00.000001Z"
action: Binding
reportingComponent: default-scheduler
reportingInstance: default-scheduler-node-0
series:
  count: 2
  lastObservedTime: "2024-03-01T10:00:30.000001Z"
related:
  kind: Node
  name: node-2
"""

SERVICE_TARGET_PORT_NUMBER = """
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
"""

SERVICE_TARGET_PORT_NAME = """
apiVersion: v1
kind: Service
metadata:
  name: nginx-service
spec:
  selector:
    app.kubernetes.io/name: proxy
  ports:
  - name: name-of-service-port
    protocol: TCP
    port: 80
    targetPort: http-web-svc
"""

SERVICE_NODEPORT_FULL = """
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: NodePort
  selector:
    app: web
  clusterIP: 127.96.0.12
  clusterIPs:
  - 127.96.0.12
  externalIPs:
  - 127.0.0.99
  ipFamilies:
  - IPv4
  ipFamilyPolicy: SingleStack
  sessionAffinity: ClientIP
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: 10800
  externalTrafficPolicy: Cluster
  internalTrafficPolicy: Cluster
  publishNotReadyAddresses: true
  ports:
  - name: http
    protocol: TCP
    appProtocol: http
    port: 80
    targetPort: 8080
    nodePort: 30007
status:
  loadBalancer: {}
"""

SERVICE_LOADBALANCER = """
apiVersion: v1
kind: Service
metadata:
  name: example-service
spec:
  type: LoadBalancer
  loadBalancerIP: 127.0.0.200
  selector:
    app: example
  ports:
    - port: 8765
      targetPort: 9376
status:
  loadBalancer:
    ingress:
    - ip: 127.0.0.200
    - hostname: lb.example.com
"""

ENDPOINTS = """
apiVersion: v1
kind: Endpoints
metadata:
  name: my-service
subsets:
  - addresses:
      - ip: 192.0.2.42
    ports:
      - port: 9376
"""

ENDPOINTS_FULL = """
apiVersion: v1
kind: Endpoints
metadata:
  name: web
  namespace: default
  labels:
    app: web
subsets:
- addresses:
  - ip: 127.1.2.7
    hostname: web-0
    nodeName: node-2
    targetRef:
      kind: Pod
      name: web-0
      namespace: default
      uid: 0b3c5d8e-1f2a-4b6c-9d7e-8f9a0b1c2d3e
  notReadyAddresses:
  - ip: 127.1.3.4
    nodeName: node-3
    targetRef:
      kind: Pod
      name: web-1
      namespace: default
  ports:
  - name: http
    port: 8080
    protocol: TCP
"""

PERSISTENT_VOLUME = """
apiVersion: v1
kind: PersistentVolume
metadata:
  name: task-pv-volume
  labels:
    type: local
spec:
  storageClassName: manual
  capacity:
    storage: 10Gi
  accessModes:
    - ReadWriteOnce
  hostPath:
    path: "/mnt/data"
"""

PERSISTENT_VOLUME_LOCAL_BOUND = """
apiVersion: v1
kind: PersistentVolume
metadata:
  name: example-pv
spec:
  capacity:
    storage: 100Gi
  volumeMode: Filesystem
  accessModes:
  - ReadWriteOnce
  persistentVolumeReclaimPolicy: Delete
  storageClassName: local-storage
  local:
    path: /mnt/disks/ssd1
  claimRef:
    apiVersion: v1
    kind: PersistentVolumeClaim
    name: task-pv-claim
    namespace: default
    uid: 7e6d5c4b-3a29-4181-9f0e-d1c2b3a49586
    resourceVersion: "977"
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - key: kubernetes.io/hostname
          operator: In
          values:
          - example-node
status:
  phase: Bound
"""

PERSISTENT_VOLUME_CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: task-pv-claim
spec:
  storageClassName: manual
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 3Gi
"""

PERSISTENT_VOLUME_CLAIM_BOUND = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: myclaim
  namespace: default
spec:
  accessModes:
    - ReadWriteOnce
  volumeMode: Filesystem
  volumeName: task-pv-volume
  storageClassName: ""
  resources:
    requests:
      storage: 8Gi
    limits:
      storage: 10Gi
  selector:
    matchLabels:
      release: "stable"
    matchExpressions:
      - {key: environment, operator: In, values: [dev]}
status:
  phase: Bound
  accessModes:
  - ReadWriteOnce
  capacity:
    storage: 10Gi
  conditions:
  - type: Resizing
    status: "True"
    lastProbeTime: "2024-03-01T10:00:00Z"
    lastTransitionTime: "2024-03-01T10:00:00Z"
"""

DEPLOYMENT_NGINX = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
"""

DEPLOYMENT_FULL = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kuard
  namespace: default
  generation: 2
  annotations:
    deployment.kubernetes.io/revision: "2"
spec:
  replicas: 0
  paused: false
  minReadySeconds: 5
  progressDeadlineSeconds: 600
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      run: kuard
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 1
  template:
    metadata:
      labels:
        run: kuard
    spec:
      containers:
      - image: gcr.io/kuar-demo/kuard-amd64:green
        imagePullPolicy: Always
        name: kuard
      restartPolicy: Always
      terminationGracePeriodSeconds: 30
status:
  observedGeneration: 2
  replicas: 3
  updatedReplicas: 1
  readyReplicas: 2
  availableReplicas: 2
  unavailableReplicas: 1
  collisionCount: 0
  conditions:
  - type: Available
    status: "True"
    lastUpdateTime: "2024-03-01T10:00:00Z"
    lastTransitionTime: "2024-03-01T10:00:00Z"
    reason: MinimumReplicasAvailable
    message: Deployment has minimum availability.
  - type: Progressing
    status: "True"
    lastUpdateTime: "2024-03-01T10:01:00Z"
    lastTransitionTime: "2024-03-01T10:00:00Z"
    reason: ReplicaSetUpdated
    message: ReplicaSet "kuard-6d9c8b7f5" is progressing.
"""

DEPLOYMENT_RECREATE = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
spec:
  selector:
    matchLabels:
      app: db
  strategy:
    type: Recreate
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: db
        image: python:3.12
"""

REPLICASET_FRONTEND = """
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: frontend
  labels:
    app: guestbook
    tier: frontend
spec:
  replicas: 3
  selector:
    matchLabels:
      tier: frontend
  template:
    metadata:
      labels:
        tier: frontend
    spec:
      containers:
      - name: php-redis
        image: us-docker.pkg.dev/google-samples/containers/gke/gb-frontend:v5
status:
  replicas: 0
  observedGeneration: 1
  conditions:
  - type: ReplicaFailure
    status: "True"
    lastTransitionTime: "2024-03-01T10:00:00Z"
    reason: FailedCreate
    message: 'pods "frontend-" is forbidden: exceeded quota'
"""

STATEFULSET_WEB = """
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: nginx
  serviceName: "nginx"
  replicas: 3
  minReadySeconds: 10
  template:
    metadata:
      labels:
        app: nginx
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.8
        ports:
        - containerPort: 80
          name: web
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ "ReadWriteOnce" ]
      storageClassName: "my-storage-class"
      resources:
        requests:
          storage: 1Gi
"""

STATEFULSET_FULL = """
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: default
spec:
  replicas: 2
  serviceName: db
  podManagementPolicy: Parallel
  revisionHistoryLimit: 10
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      partition: 0
      maxUnavailable: 50%
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Retain
    whenScaled: Delete
  ordinals:
    start: 1
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: db
        image: alpine:3.19
status:
  observedGeneration: 1
  replicas: 2
  readyReplicas: 1
  currentReplicas: 2
  updatedReplicas: 2
  availableReplicas: 1
  currentRevision: db-5b8c7d6f9
  updateRevision: db-5b8c7d6f9
  collisionCount: 0
"""

DAEMONSET_FLUENTD = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: fluentd-elasticsearch
  namespace: kube-system
  labels:
    k8s-app: fluentd-logging
spec:
  selector:
    matchLabels:
      name: fluentd-elasticsearch
  template:
    metadata:
      labels:
        name: fluentd-elasticsearch
    spec:
      tolerations:
      # these tolerations are to have the daemonset runnable on control plane nodes
      # remove them if your control plane nodes should not run pods
      - key: node-role.kubernetes.io/control-plane
        operator: Exists
        effect: NoSchedule
      - key: node-role.kubernetes.io/master
        operator: Exists
        effect: NoSchedule
      containers:
      - name: fluentd-elasticsearch
        image: quay.io/fluentd_elasticsearch/fluentd:v2.5.2
        resources:
          limits:
            memory: 200Mi
          requests:
            cpu: 100m
            memory: 200Mi
        volumeMounts:
        - name: varlog
          mountPath: /var/log
      # it may be desirable to set a high priority class to ensure that a DaemonSet Pod
      # preempts running Pods
      # priorityClassName: important
      terminationGracePeriodSeconds: 30
      volumes:
      - name: varlog
        hostPath:
          path: /var/log
"""

DAEMONSET_STATUS = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-proxy
  namespace: kube-system
spec:
  revisionHistoryLimit: 10
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 0
      maxUnavailable: 1
  selector:
    matchLabels:
      k8s-app: kube-proxy
  template:
    metadata:
      labels:
        k8s-app: kube-proxy
    spec:
      hostNetwork: true
      priorityClassName: system-node-critical
      containers:
      - name: kube-proxy
        image: registry.k8s.io/kube-proxy:v1.29.0
status:
  currentNumberScheduled: 3
  desiredNumberScheduled: 3
  numberMisscheduled: 0
  numberReady: 0
  numberAvailable: 2
  numberUnavailable: 1
  observedGeneration: 1
  updatedNumberScheduled: 3
"""

JOB_PI = """
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  template:
    spec:
      containers:
      - name: pi
        image: perl:5.34.0
        command: ["perl",  "-Mbignum=bpi", "-wle", "print bpi(2000)"]
      restartPolicy: Never
  backoffLimit: 4
"""

JOB_FULL = """
apiVersion: batch/v1
kind: Job
metadata:
  name: indexed
  namespace: default
  labels:
    batch.kubernetes.io/job-name: indexed
spec:
  parallelism: 3
  completions: 5
  completionMode: Indexed
  activeDeadlineSeconds: 100
  backoffLimit: 0
  suspend: false
  manualSelector: true
  ttlSecondsAfterFinished: 100
  selector:
    matchLabels:
      batch.kubernetes.io/controller-uid: 3d5f1c2a-4b6e-4f8a-9c0d-1e2f3a4b5c6d
  template:
    metadata:
      labels:
        batch.kubernetes.io/controller-uid: 3d5f1c2a-4b6e-4f8a-9c0d-1e2f3a4b5c6d
    spec:
      restartPolicy: Never
      containers:
      - name: worker
        image: busybox:1.36
        command: ["sh", "-c", "echo $JOB_COMPLETION_INDEX"]
status:
  startTime: "2024-03-01T10:00:00Z"
  completionTime: "2024-03-01T10:00:30Z"
  succeeded: 5
  failed: 1
  ready: 0
  completedIndexes: 0-4
  uncountedTerminatedPods: {}
  conditions:
  - type: Complete
    status: "True"
    lastProbeTime: "2024-03-01T10:00:30Z"
    lastTransitionTime: "2024-03-01T10:00:30Z"
"""

CRONJOB_HELLO = """
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: hello
            image: busybox:1.28
            imagePullPolicy: IfNotPresent
            command:
            - /bin/sh
            - -c
            - date; echo Hello from the Kubernetes cluster
          restartPolicy: OnFailure
"""

CRONJOB_FULL = """
apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
  namespace: default
spec:
  schedule: "0 3 * * *"
  timeZone: Etc/UTC
  startingDeadlineSeconds: 200
  concurrencyPolicy: Forbid
  suspend: false
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 1
  jobTemplate:
    metadata:
      labels:
        app: report
    spec:
      backoffLimit: 2
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: python:3.12
            command: ["python", "-c", "print('report')"]
status:
  active:
  - apiVersion: batch/v1
    kind: Job
    name: report-28491780
    namespace: default
    uid: 1a2b3c4d-5e6f-4a8b-9c0d-e1f2a3b4c5d6
    resourceVersion: "5150"
  lastScheduleTime: "2024-03-01T03:00:00Z"
  lastSuccessfulTime: "2024-02-29T03:00:42Z"
"""

LEASE_NODE = """
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: node-1
  namespace: kube-node-lease
  ownerReferences:
  - apiVersion: v1
    kind: Node
    name: node-1
    uid: 6f5e4d3c-2b1a-4098-8765-4321fedcba98
spec:
  holderIdentity: node-1
  leaseDurationSeconds: 40
  renewTime: "2024-03-01T10:00:00.123456Z"
"""

LEASE_LEADER = """
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: kube-scheduler
  namespace: kube-system
spec:
  holderIdentity: scheduler-0_6b1d4c2e
  leaseDurationSeconds: 15
  acquireTime: "2024-03-01T09:00:00.000000Z"
  renewTime: "2024-03-01T10:00:00.000000Z"
  leaseTransitions: 0
"""

# A StatefulSet's revision as `kubectl get controllerrevision -o yaml` prints
# it: `data` is free-form JSON, numbers included.
CONTROLLER_REVISION = """
apiVersion: apps/v1
kind: ControllerRevision
metadata:
  name: web-6d4b6b7f8c
  namespace: default
  labels:
    app: nginx
    controller.kubernetes.io/hash: 6d4b6b7f8c
  ownerReferences:
  - apiVersion: apps/v1
    blockOwnerDeletion: true
    controller: true
    kind: StatefulSet
    name: web
    uid: 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0
data:
  spec:
    template:
      $patch: replace
      metadata:
        labels:
          app: nginx
      spec:
        containers:
        - image: registry.k8s.io/nginx-slim:0.8
          imagePullPolicy: IfNotPresent
          name: nginx
          ports:
          - containerPort: 80
            name: web
            protocol: TCP
          volumeMounts:
          - mountPath: /usr/share/nginx/html
            name: www
        terminationGracePeriodSeconds: 10
        hostNetwork: false
        nodeSelector: null
revision: 1
"""

CONTROLLER_REVISION_ZERO = """
apiVersion: apps/v1
kind: ControllerRevision
metadata:
  name: fluentd-5f7d9c
data: {}
revision: 0
"""

STORAGE_CLASS_DEFAULT = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: rancher.io/local-path
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
"""

STORAGE_CLASS_FULL = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
provisioner: kubernetes.io/gce-pd
parameters:
  type: pd-ssd
  replication-type: none
reclaimPolicy: Retain
mountOptions:
- debug
allowVolumeExpansion: false
volumeBindingMode: Immediate
allowedTopologies:
- matchLabelExpressions:
  - key: topology.kubernetes.io/zone
    values:
    - us-central-1a
    - us-central-1b
"""

ENDPOINT_SLICE = """
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kuard-abc12
  namespace: default
  labels:
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
    kubernetes.io/service-name: kuard
  ownerReferences:
  - apiVersion: v1
    kind: Service
    name: kuard
    uid: 6b0c6e1c-0000-4000-8000-000000000001
    controller: true
    blockOwnerDeletion: true
addressType: IPv4
endpoints:
- addresses:
  - 127.5.1.3
  conditions:
    ready: true
    serving: true
    terminating: false
  hostname: web-0
  nodeName: node-1
  targetRef:
    kind: Pod
    namespace: default
    name: web-0
    uid: 6b0c6e1c-0000-4000-8000-000000000002
- addresses:
  - 127.5.2.4
  conditions:
    ready: false
    serving: false
    terminating: true
  nodeName: node-2
ports:
- name: http
  protocol: TCP
  port: 8080
  appProtocol: http
"""

ENDPOINT_SLICE_EMPTY = """
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: empty-xyz
  namespace: default
addressType: IPv4
"""

INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: hosts
  namespace: default
spec:
  ingressClassName: nginx
  defaultBackend:
    service:
      name: fallback
      port:
        number: 80
  tls:
  - hosts:
    - alpaca.example.com
    secretName: alpaca-tls
  rules:
  - host: alpaca.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: alpaca
            port:
              name: http
  - http:
      paths:
      - path: /exact
        pathType: Exact
        backend:
          resource:
            apiGroup: k8s.example.com
            kind: StorageBucket
            name: static-assets
status:
  loadBalancer:
    ingress:
    - ip: 127.255.5.1
"""

INGRESS_CLASS = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
spec:
  controller: k8s.io/ingress-nginx
  parameters:
    apiGroup: k8s.example.com
    kind: IngressParameters
    name: external-lb
    scope: Namespace
    namespace: ingress
"""

RESOURCE_QUOTA = """
apiVersion: v1
kind: ResourceQuota
metadata:
  name: compute
  namespace: team-a
spec:
  hard:
    count/deployments.apps: "5"
    limits.memory: 2Gi
    pods: "3"
    requests.cpu: "1"
  scopeSelector:
    matchExpressions:
    - operator: In
      scopeName: PriorityClass
      values:
      - high
  scopes:
  - NotTerminating
status:
  hard:
    pods: "3"
    requests.cpu: "1"
  used:
    pods: "1"
    requests.cpu: 250m
"""

LIMIT_RANGE = """
apiVersion: v1
kind: LimitRange
metadata:
  name: limits
  namespace: team-a
spec:
  limits:
  - default:
      cpu: 500m
      memory: 256Mi
    defaultRequest:
      cpu: 250m
      memory: 128Mi
    max:
      cpu: "1"
    maxLimitRequestRatio:
      cpu: "4"
    min:
      cpu: 100m
    type: Container
  - max:
      cpu: "2"
    type: Pod
  - max:
      storage: 2Gi
    min:
      storage: 1Gi
    type: PersistentVolumeClaim
"""


PDB_MIN_AVAILABLE = """
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: zk-pdb
  namespace: default
spec:
  minAvailable: 2
  selector:
    matchLabels:
      app: zookeeper
"""

PDB_FULL = """
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: default
  generation: 1
spec:
  selector:
    matchExpressions:
    - key: app
      operator: In
      values:
      - web
  maxUnavailable: 25%
  unhealthyPodEvictionPolicy: AlwaysAllow
status:
  observedGeneration: 1
  disruptedPods:
    web-7d4b9c-abcde: "2026-11-30T16:00:00Z"
  disruptionsAllowed: 0
  currentHealthy: 3
  desiredHealthy: 3
  expectedPods: 4
  conditions:
  - type: DisruptionAllowed
    status: "False"
    observedGeneration: 1
    lastTransitionTime: "2026-11-30T16:00:00Z"
    reason: InsufficientPods
"""

EVICTION = """
apiVersion: policy/v1
kind: Eviction
metadata:
  name: web-7d4b9c-abcde
  namespace: default
deleteOptions:
  gracePeriodSeconds: 0
  preconditions:
    resourceVersion: "42"
  dryRun:
  - All
"""


PRIORITY_CLASS = """
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high-priority
value: 1000000
globalDefault: true
description: This priority class should be used for XYZ service pods only.
preemptionPolicy: PreemptLowerPriority
"""

PRIORITY_CLASS_ZERO = """
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: zero
value: 0
preemptionPolicy: Never
"""


NODE_METRICS = """
apiVersion: metrics.k8s.io/v1beta1
kind: NodeMetrics
metadata:
  name: node-1
  creationTimestamp: "2026-11-30T16:00:00Z"
  labels:
    kubernetes.io/hostname: node-1
timestamp: "2026-11-30T16:00:00Z"
window: 15s
usage:
  cpu: 563456789n
  memory: 1572864Ki
"""

POD_METRICS = """
apiVersion: metrics.k8s.io/v1beta1
kind: PodMetrics
metadata:
  name: php-apache-5d54745f55-x2x8v
  namespace: default
  creationTimestamp: "2026-11-30T16:00:00Z"
  labels:
    run: php-apache
timestamp: "2026-11-30T16:00:00Z"
window: 15s
containers:
- name: php-apache
  usage:
    cpu: 250000000n
    memory: 65536Ki
"""

HPA_V2 = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: php-apache
  namespace: default
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: php-apache
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 50
  - type: Resource
    resource:
      name: memory
      target:
        type: AverageValue
        averageValue: 100Mi
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      selectPolicy: Max
      policies:
      - type: Percent
        value: 100
        periodSeconds: 15
    scaleUp:
      stabilizationWindowSeconds: 0
      selectPolicy: Max
      policies:
      - type: Percent
        value: 100
        periodSeconds: 15
      - type: Pods
        value: 4
        periodSeconds: 15
status:
  observedGeneration: 1
  lastScaleTime: "2026-11-30T16:01:00Z"
  currentReplicas: 1
  desiredReplicas: 4
  currentMetrics:
  - type: Resource
    resource:
      name: cpu
      current:
        averageValue: 250m
        averageUtilization: 250
  conditions:
  - type: AbleToScale
    status: "True"
    lastTransitionTime: "2026-11-30T16:01:00Z"
    reason: SucceededRescale
    message: the HPA controller was able to update the target scale to 4
"""

ROUND_TRIP_CASES = {
    "namespace": NAMESPACE,
    "configmap": CONFIGMAP,
    "secret-base64-data": SECRET,
    "pod-liveness-exec": POD_LIVENESS_EXEC,
    "pod-liveness-http": POD_LIVENESS_HTTP,
    "pod-kuard": POD_KUARD,
    "pod-probes-and-hooks": POD_PROBES_AND_HOOKS,
    "pod-full-with-status": POD_FULL,
    "pod-pending": POD_PENDING,
    "node": NODE,
    "event-probe": EVENT,
    "event-scheduled-series": EVENT_SCHEDULED,
    "service-target-port-number": SERVICE_TARGET_PORT_NUMBER,
    "service-target-port-name": SERVICE_TARGET_PORT_NAME,
    "service-nodeport-full": SERVICE_NODEPORT_FULL,
    "service-loadbalancer": SERVICE_LOADBALANCER,
    "endpoints": ENDPOINTS,
    "endpoints-full": ENDPOINTS_FULL,
    "pv-hostpath": PERSISTENT_VOLUME,
    "pv-local-bound": PERSISTENT_VOLUME_LOCAL_BOUND,
    "pvc": PERSISTENT_VOLUME_CLAIM,
    "pvc-bound": PERSISTENT_VOLUME_CLAIM_BOUND,
    "deployment-nginx": DEPLOYMENT_NGINX,
    "deployment-full": DEPLOYMENT_FULL,
    "deployment-recreate": DEPLOYMENT_RECREATE,
    "replicaset-frontend": REPLICASET_FRONTEND,
    "statefulset-web": STATEFULSET_WEB,
    "statefulset-full": STATEFULSET_FULL,
    "daemonset-fluentd": DAEMONSET_FLUENTD,
    "daemonset-status": DAEMONSET_STATUS,
    "job-pi": JOB_PI,
    "job-full": JOB_FULL,
    "cronjob-hello": CRONJOB_HELLO,
    "cronjob-full": CRONJOB_FULL,
    "lease-node": LEASE_NODE,
    "lease-leader": LEASE_LEADER,
    "controllerrevision-statefulset": CONTROLLER_REVISION,
    "controllerrevision-zero": CONTROLLER_REVISION_ZERO,
    "storageclass-default": STORAGE_CLASS_DEFAULT,
    "storageclass-full": STORAGE_CLASS_FULL,
    "endpointslice": ENDPOINT_SLICE,
    "endpointslice-empty": ENDPOINT_SLICE_EMPTY,
    "ingress": INGRESS,
    "ingressclass": INGRESS_CLASS,
    "resourcequota": RESOURCE_QUOTA,
    "limitrange": LIMIT_RANGE,
    "pdb-min-available": PDB_MIN_AVAILABLE,
    "pdb-full": PDB_FULL,
    "priorityclass": PRIORITY_CLASS,
    "priorityclass-zero": PRIORITY_CLASS_ZERO,
    "nodemetrics": NODE_METRICS,
    "podmetrics": POD_METRICS,
    "hpa-v2": HPA_V2,
}


def _load(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def _decode(doc: dict[str, Any]):
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    return codec.from_dict(kind.message, doc)


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("text", ROUND_TRIP_CASES.values(), ids=ROUND_TRIP_CASES.keys())
def test_manifest_round_trips_unchanged(text):
    doc = _load(text)
    msg = _decode(copy.deepcopy(doc))
    assert codec.to_dict(msg) == doc
    # And through the wire form, as objects travel between components.
    again = type(msg).FromString(msg.SerializeToString())
    assert codec.to_dict(again) == doc


def test_eviction_round_trips_unchanged():
    """Eviction is no stored kind (only the pods/eviction body), so no registry entry."""
    doc = _load(EVICTION)
    msg = codec.from_dict(policy_pb2.Eviction, copy.deepcopy(doc))
    assert codec.to_dict(msg) == doc
    assert msg.delete_options.grace_period_seconds == 0


def test_every_registered_kind_has_a_round_trip_case():
    covered = {(d["apiVersion"], d["kind"]) for d in map(_load, ROUND_TRIP_CASES.values())}
    missing = [k.kind for k in REGISTRY.kinds if (k.api_version, k.kind) not in covered]
    assert not missing, f"kinds without a manifest case: {missing}"


def test_decoded_values_land_in_the_python_fields():
    pod = _decode(_load(POD_FULL))
    ctr = pod.spec.containers[0]
    assert ctr.env[3].value_from.field_ref.field_path == "status.podIP"
    assert ctr.resources.requests["cpu"] == "250m"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.tolerations[0].toleration_seconds == 300
    assert pod.status.container_statuses[0].last_state.terminated.exit_code == 137
    assert pod.status.init_container_statuses[0].state.terminated.HasField("exit_code")
    assert pod.status.pod_ips[0].ip == "127.1.2.7"
    assert pod.spec.volumes[0].HasField("empty_dir")
    node = _decode(_load(NODE))
    assert node.status.daemon_endpoints.kubelet_endpoint.port == 10250
    assert node.spec.unschedulable is True
    secret = _decode(_load(SECRET))
    assert secret.data["username"] == b"admin"
    lease = _decode(_load(LEASE_LEADER)).spec
    assert (lease.holder_identity, lease.lease_duration_seconds) == ("scheduler-0_6b1d4c2e", 15)
    assert lease.HasField("lease_transitions") and lease.lease_transitions == 0
    assert lease.acquire_time and lease.renew_time


@pytest.mark.parametrize("text, path", [
    (DEPLOYMENT_FULL, ("spec", "replicas")),
    (DEPLOYMENT_FULL, ("spec", "paused")),
    (REPLICASET_FRONTEND, ("status", "replicas")),
    (DAEMONSET_STATUS, ("status", "numberMisscheduled")),
    (JOB_FULL, ("spec", "backoffLimit")),
    (JOB_FULL, ("spec", "suspend")),
    (LEASE_LEADER, ("spec", "leaseTransitions")),
    (PERSISTENT_VOLUME_CLAIM_BOUND, ("spec", "storageClassName")),
    (CONTROLLER_REVISION_ZERO, ("revision",)),
    (STORAGE_CLASS_FULL, ("allowVolumeExpansion",)),
], ids=["deploy-replicas-0", "deploy-paused-false", "rs-status-replicas-0",
        "ds-misscheduled-0", "job-backoff-0", "job-suspend-false", "lease-transitions-0",
        "pvc-storageclass-empty", "controllerrevision-revision-0",
        "storageclass-expansion-false"])
def test_zero_values_kubernetes_prints_are_kept(text, path):
    # Zero and unset differ for these fields (a 0 replica Deployment is not a
    # defaulted 1 replica one), so the zero must survive a round trip.
    doc = _load(text)
    out = codec.to_dict(_decode(doc))
    value = doc
    printed = out
    for step in path:
        value, printed = value[step], printed[step]
    assert printed == value and printed in (0, False, "")


# ---------------------------------------------------------------- int-or-string

_INT_OR_STRING_FIELDS = {
    "deployment-maxSurge": (DEPLOYMENT_NGINX, "spec.strategy.rollingUpdate.maxSurge"),
    "deployment-maxUnavailable": (DEPLOYMENT_NGINX, "spec.strategy.rollingUpdate.maxUnavailable"),
    "service-targetPort": (SERVICE_TARGET_PORT_NUMBER, "spec.ports[0].targetPort"),
    "probe-httpGet-port": (POD_LIVENESS_EXEC, "spec.containers[0].livenessProbe.httpGet.port"),
    "probe-tcpSocket-port": (POD_LIVENESS_EXEC, "spec.containers[0].readinessProbe.tcpSocket.port"),
    "daemonset-maxSurge": (DAEMONSET_FLUENTD, "spec.updateStrategy.rollingUpdate.maxSurge"),
}


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    steps = path.replace("[", ".[").split(".")
    node: Any = doc
    for step, nxt in zip(steps, steps[1:]):
        if step.startswith("["):
            node = node[int(step[1:-1])]
        else:
            node = node.setdefault(step, {} if not nxt.startswith("[") else [])
    last = steps[-1]
    node[int(last[1:-1]) if last.startswith("[") else last] = value


def _get_path(doc: Any, path: str) -> Any:
    for step in path.replace("[", ".[").split("."):
        doc = doc[int(step[1:-1])] if step.startswith("[") else doc[step]
    return doc


@pytest.mark.parametrize("value", [1, 0, 8080, "25%", "http"], ids=str)
@pytest.mark.parametrize("text, path", _INT_OR_STRING_FIELDS.values(),
                         ids=_INT_OR_STRING_FIELDS.keys())
def test_int_or_string_keeps_number_or_string(text, path, value):
    doc = _load(text)
    _set_path(doc, path, value)
    printed = _get_path(codec.to_dict(_decode(doc)), path)
    assert printed == value and type(printed) is type(value)


def test_int_or_string_lands_in_the_oneof():
    svc = _decode(_load(SERVICE_TARGET_PORT_NAME))
    assert svc.spec.ports[0].target_port.str_val == "http-web-svc"
    svc = _decode(_load(SERVICE_TARGET_PORT_NUMBER))
    assert svc.spec.ports[0].target_port.int_val == 9376


# ---------------------------------------------------------------- strictness

@pytest.mark.parametrize("text, path, value, expected", [
    (POD_KUARD, "spec.containers[0].imagee", "nginx",
     "spec.containers[0].imagee: unknown field"),
    (DEPLOYMENT_NGINX, "spec.template.spec.containers[0].ports[0].containerPortt", 80,
     "spec.template.spec.containers[0].ports[0].containerPortt: unknown field"),
    (NODE, "status.daemonEndpoints.kubeletEndpoint.port", 10250,
     "status.daemonEndpoints.kubeletEndpoint.port: unknown field"),
    (POD_FULL, "status.hostIp", "127.0.0.1", "status.hostIp: unknown field"),
    (CRONJOB_HELLO, "spec.jobTemplate.spec.template.spec.restartpolicy", "Never",
     "spec.jobTemplate.spec.template.spec.restartpolicy: unknown field"),
    (LEASE_NODE, "status", {}, "status: unknown field"),
    (ENDPOINTS, "spec", {}, "spec: unknown field"),
], ids=["pod-imagee", "deployment-containerPortt", "node-lowercase-port", "pod-hostIp",
        "cronjob-restartpolicy", "lease-has-no-status", "endpoints-has-no-spec"])
def test_unknown_field_is_rejected_with_its_path(text, path, value, expected):
    doc = _load(text)
    _set_path(doc, path, value)
    with pytest.raises(errors.Invalid) as caught:
        _decode(doc)
    assert expected in caught.value.message


@pytest.mark.parametrize("text, path, value", [
    (DEPLOYMENT_NGINX, "spec.replicas", "three"),
    (JOB_PI, "spec.backoffLimit", "4"),
    (POD_KUARD, "spec.containers[0].ports[0].containerPort", "8080"),
    (POD_KUARD, "spec.containers[0].livenessProbe.periodSeconds", 2.5),
    (POD_KUARD, "spec.containers[0].args", "sleep 10"),
    (POD_LIVENESS_EXEC, "spec.containers[0].stdin", "yes"),
    (NODE, "spec.taints[0]", "NoSchedule"),
    (SERVICE_TARGET_PORT_NUMBER, "spec.ports[0].targetPort", True),
], ids=["replicas-string", "backoffLimit-string", "containerPort-string",
        "periodSeconds-float", "args-not-a-list", "stdin-string", "taint-not-object",
        "targetPort-bool"])
def test_wrong_type_names_its_path(text, path, value):
    doc = _load(text)
    _set_path(doc, path, value)
    with pytest.raises(errors.Invalid) as caught:
        _decode(doc)
    paths = [e.path for e in caught.value.field_errors]
    assert paths == [path], caught.value.message
    assert f"{path}: Invalid value" in caught.value.message


def test_every_problem_is_reported_at_once():
    doc = _load(DEPLOYMENT_NGINX)
    doc["spec"]["replicas"] = "three"
    doc["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    with pytest.raises(errors.Invalid) as caught:
        _decode(doc)
    assert sorted(e.path for e in caught.value.field_errors) == [
        "spec.replicas", "spec.template.spec.containers[0].imagee"]
    assert caught.value.message.startswith('Deployment "nginx-deployment" is invalid: [')


# ---------------------------------------------------------------- registry

@pytest.mark.parametrize("kind", REGISTRY.kinds, ids=lambda k: k.kind)
def test_kind_message_has_the_object_envelope(kind):
    fields = kind.message.DESCRIPTOR.fields_by_name
    assert fields["api_version"].json_name == "apiVersion"
    assert fields["api_version"].number == 1
    assert fields["kind"].number == 2
    assert fields["metadata"].number == 3
    assert fields["metadata"].message_type.full_name == "kubemu.api.v1.ObjectMeta"
    assert ("spec" in fields) == kind.has_spec
    assert ("status" in fields) == kind.has_status


@pytest.mark.parametrize("name, expected", [
    ("po", "Pod"), ("pods", "Pod"), ("pod", "Pod"), ("Pod", "Pod"), ("PODS", "Pod"),
    ("no", "Node"), ("nodes", "Node"),
    ("ev", "Event"), ("events", "Event"),
    ("svc", "Service"), ("services", "Service"),
    ("ep", "Endpoints"), ("endpoints", "Endpoints"),
    ("pv", "PersistentVolume"), ("persistentvolumes", "PersistentVolume"),
    ("pvc", "PersistentVolumeClaim"), ("persistentvolumeclaim", "PersistentVolumeClaim"),
    ("deploy", "Deployment"), ("deployments", "Deployment"), ("Deployment", "Deployment"),
    ("deployments.apps", "Deployment"), ("deploy.apps", "Deployment"),
    ("rs", "ReplicaSet"), ("replicasets.apps", "ReplicaSet"),
    ("sts", "StatefulSet"), ("statefulset", "StatefulSet"),
    ("ds", "DaemonSet"), ("daemonsets", "DaemonSet"),
    ("job", "Job"), ("jobs.batch", "Job"),
    ("cj", "CronJob"), ("cronjobs", "CronJob"),
    ("lease", "Lease"), ("leases.coordination.k8s.io", "Lease"),
    ("controllerrevisions", "ControllerRevision"),
    ("controllerrevision.apps", "ControllerRevision"),
    ("sc", "StorageClass"), ("storageclasses.storage.k8s.io", "StorageClass"),
    ("storageclass", "StorageClass"),
    ("cm", "ConfigMap"), ("ns", "Namespace"), ("secret", "Secret"),
    ("pdb", "PodDisruptionBudget"), ("poddisruptionbudgets.policy", "PodDisruptionBudget"),
])
def test_resolve_accepts_what_kubectl_accepts(name, expected):
    assert REGISTRY.resolve(name).kind == expected


@pytest.mark.parametrize("name", ["pdo", "deployments.batch", "jobs.apps", ""])
def test_resolve_rejects_unknown_names(name):
    with pytest.raises(errors.NotFound):
        REGISTRY.resolve(name)


@pytest.mark.parametrize("kind, api_version, namespaced", [
    ("Pod", "v1", True), ("Node", "v1", False), ("PersistentVolume", "v1", False),
    ("PersistentVolumeClaim", "v1", True), ("Deployment", "apps/v1", True),
    ("Job", "batch/v1", True), ("CronJob", "batch/v1", True),
    ("Lease", "coordination.k8s.io/v1", True),
    ("ControllerRevision", "apps/v1", True), ("StorageClass", "storage.k8s.io/v1", False),
    ("PodDisruptionBudget", "policy/v1", True),
])
def test_kinds_have_kubernetes_groups_and_scope(kind, api_version, namespaced):
    entry = REGISTRY.by_gvk(api_version, kind)
    assert entry.namespaced == namespaced


def test_objects_pack_and_unpack_through_any():
    for text in (POD_FULL, DEPLOYMENT_FULL, LEASE_LEADER, CRONJOB_FULL):
        msg = _decode(_load(text))
        assert REGISTRY.unpack(REGISTRY.pack(msg)) == msg


# The docs' manifests write quantities as YAML numbers (`cpu: 1`, `cpu: 0.5`):
# taken as their decimal text wherever Kubernetes has a Quantity.
LIMIT_RANGE_NUMBERS = """
apiVersion: v1
kind: LimitRange
metadata:
  name: cpu-limit-range
spec:
  limits:
  - default:
      cpu: 1
    defaultRequest:
      cpu: 0.5
    max:
      memory: 1073741824
    type: Container
"""

HPA_NUMBERS = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: AverageValue, averageValue: 0.5}
"""


@pytest.mark.parametrize("text, path, printed", [
    (LIMIT_RANGE_NUMBERS, "spec.limits[0].default.cpu", "1"),
    (LIMIT_RANGE_NUMBERS, "spec.limits[0].defaultRequest.cpu", "0.5"),
    (LIMIT_RANGE_NUMBERS, "spec.limits[0].max.memory", "1073741824"),
    (HPA_NUMBERS, "spec.metrics[0].resource.target.averageValue", "0.5"),
], ids=["limitrange-default", "limitrange-default-request", "limitrange-max", "hpa-average"])
def test_quantities_written_as_numbers_load(text, path, printed):
    assert _get_path(codec.to_dict(_decode(_load(text))), path) == printed


def test_a_number_is_still_refused_where_a_plain_string_belongs():
    doc = _load(POD_KUARD)
    doc["spec"]["containers"][0]["env"] = [{"name": "N", "value": 1}]
    with pytest.raises(errors.Invalid):
        _decode(doc)
