#!/usr/bin/env bash
# `make cluster-up`: a one-node Kubernetes on this machine, as host processes (not kind: the same
# API server, kubelet and CloudNativePG operator, without Docker), for pgdrill's kube backend:
#
#   containerd (Debian's, its own socket and root) + runc + the CNI bridge on pgdrill0
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#   volumes (a hostPath provisioner, the default StorageClass), CoreDNS for cluster.local
#   pgdrill serve-s3 on the bridge address (object storage the pods reach), and Azurite's blob
#   service there too when `make setup` installed it (object_store: azure drills)
#   the CloudNativePG operator and the barman-cloud plugin, from their release manifests
#
# Built by cluster/build.sh (cached). Certificates are made here with openssl. Every process is
# started in the cgroup pgdrill-cluster with its PID in $RUN/pids; `make cluster-down` stops
# them by PID and removes $RUN. If the cluster is already up and healthy this says so and
# exits; if a phase fails, everything started so far is stopped again. Every wait polls a
# named condition against a deadline. Root only.
#
# Environment: PGDRILL (the pgdrill binary, for the S3 endpoint), CLUSTER_SKIP_BUILD=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root "make cluster-up"

PGDRILL_BIN="${PGDRILL:-$REPO_ROOT/target/debug/pgdrill}"
[[ -x $PGDRILL_BIN ]] || die "pgdrill binary $PGDRILL_BIN not found (cargo build first)"
total=$SECONDS

# ---- already up? -------------------------------------------------------------------------------
if [[ -f $RUN/ready ]]; then
  if bash "$CLUSTER_SRC/status.sh" >/dev/null 2>&1; then
    echo "==> cluster already up ($(cat "$RUN/ready")); make cluster-down stops it"
    echo "    KUBECONFIG=$KUBECONFIG_ADMIN"
    exit 0
  fi
  echo "==> a cluster was up but is not healthy now: stopping it first"
  bash "$CLUSTER_SRC/down.sh"
elif [[ -d $RUN ]]; then
  echo "==> leftovers of a cluster that never came up: stopping them first"
  bash "$CLUSTER_SRC/down.sh"
fi

# ---- prerequisites -----------------------------------------------------------------------------
phase "prerequisites"
missing=""
for tool in containerd containerd-shim-runc-v2 runc ctr iptables conntrack openssl ip debootstrap curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=" $tool"
done
for plugin in bridge host-local portmap loopback; do
  [[ -x /usr/lib/cni/$plugin ]] || missing+=" cni/$plugin"
done
[[ -z $missing ]] || die "missing:$missing (make cluster-deps installs them with apt)"
[[ -d /sys/fs/cgroup/memory ]] || die "this script expects cgroup v1 (found no /sys/fs/cgroup/memory)"
done_phase "containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), $(iptables --version)"

[[ ${CLUSTER_SKIP_BUILD:-0} == 1 ]] || bash "$CLUSTER_SRC/build.sh"
[[ -f $IMAGES/index ]] || die "no images under $CACHE (make cluster-build)"

# Anything that fails from here on stops what was started.
mkdir -p "$RUN"/{pids,logs,pki} "$STATE"
failed() {
  local rc=$?
  trap - EXIT
  if ((rc != 0)); then
    echo "cluster-up failed (exit $rc); logs in $RUN/logs; stopping what was started" >&2
    cp -r "$RUN/logs" "$CLUSTER_HOME/last-failed-logs" 2>/dev/null || true
    [[ ${PGDRILL_KEEP:-0} == 1 ]] || bash "$CLUSTER_SRC/down.sh" >&2 || true
    echo "logs of the failed start kept in $CLUSTER_HOME/last-failed-logs" >&2
  fi
  exit "$rc"
}
trap failed EXIT

# ---- cgroups -----------------------------------------------------------------------------------
# Every started process joins $CG_HOST in each v1 hierarchy; pods go under $CG_PODS.
hierarchies=()
for d in /sys/fs/cgroup/*/; do
  [[ -f $d/cgroup.procs && $(basename "$d") != unified ]] && hierarchies+=("${d%/}")
done
for h in "${hierarchies[@]}"; do
  mkdir -p "$h/$CG_HOST" "$h/$CG_PODS"
done
# cpuset cgroups start empty; give them the parent's CPUs and memory nodes.
for g in "$CG_HOST" "$CG_PODS"; do
  cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$g/cpuset.cpus"
  cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$g/cpuset.mems"
done

# start NAME CMD...: run CMD in the background, in its own session, in $CG_HOST, logging to
# $RUN/logs/NAME.log; its PID goes to $RUN/pids/NAME.
start() {
  local name=$1
  shift
  local cgs="${hierarchies[*]}"
  setsid bash -c 'for h in '"$cgs"'; do echo $$ >"$h/'"$CG_HOST"'/cgroup.procs"; done; exec "$@"' \
    "$name" "$@" </dev/null >"$RUN/logs/$name.log" 2>&1 &
  echo $! >"$RUN/pids/$name"
}
alive() { kill -0 "$(cat "$RUN/pids/$1")" 2>/dev/null; }
# wait_for NAME SECONDS WHAT CMD...: poll CMD, failing early if process NAME died.
wait_for() {
  local name=$1 timeout=$2 what=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      echo "cluster: $name exited; last lines of $RUN/logs/$name.log:" >&2
      tail -20 "$RUN/logs/$name.log" >&2
      return 1
    fi
    ((SECONDS < deadline)) || {
      echo "cluster: $what: not within ${timeout}s; last lines of $RUN/logs/$name.log:" >&2
      tail -20 "$RUN/logs/$name.log" >&2
      return 1
    }
    sleep 1
  done
}

# ---- network -----------------------------------------------------------------------------------
phase "network: bridge $CLUSTER_BRIDGE $CLUSTER_NODE_IP, pods $CLUSTER_POD_CIDR, services $CLUSTER_SERVICE_CIDR"
modprobe br_netfilter 2>/dev/null || true
modprobe overlay 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
prefix=${CLUSTER_POD_CIDR#*/}
if ! ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1; then
  ip link add "$CLUSTER_BRIDGE" type bridge
fi
ip addr replace "$CLUSTER_NODE_IP/$prefix" dev "$CLUSTER_BRIDGE"
ip link set "$CLUSTER_BRIDGE" up
mkdir -p "$RUN/cni/net.d" "$RUN/cni/ipam"
cat >"$RUN/cni/net.d/10-pgdrill.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "pgdrill",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CLUSTER_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$RUN/cni/ipam",
        "ranges": [[{"subnet": "$CLUSTER_POD_CIDR", "gateway": "$CLUSTER_NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
done_phase "ready"

# ---- certificates and kubeconfigs --------------------------------------------------------------
phase "certificates (openssl, ECDSA P-256) and kubeconfigs"
PKI="$RUN/pki"
openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=pgdrill-cluster-ca" -days 3650 -out "$PKI/ca.crt"
# cert NAME SUBJECT USAGE [SANS]: a key and a certificate signed by the cluster CA.
cert() {
  local name=$1 subject=$2 usage=$3 sans=${4:-}
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -z $sans ]] || echo "subjectAltName=$sans"
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}
api_sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
api_sans+=",DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
api_sans+=",IP:$CLUSTER_API_SERVICE_IP,IP:$CLUSTER_NODE_IP,IP:127.0.0.1"
cert apiserver "/CN=kube-apiserver" serverAuth "$api_sans"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert admin "/O=system:masters/CN=pgdrill-admin" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
cert kubelet "/O=system:nodes/CN=system:node:$CLUSTER_NODE_NAME" clientAuth
cert kubelet-serving "/CN=$CLUSTER_NODE_NAME" serverAuth "DNS:$CLUSTER_NODE_NAME,IP:$CLUSTER_NODE_IP"
cert kube-proxy "/CN=system:kube-proxy" clientAuth
cert coredns "/CN=system:coredns" clientAuth
openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>/dev/null
openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
chmod 0600 "$PKI"/*.key
API_URL="https://$CLUSTER_NODE_IP:$CLUSTER_API_PORT"
kubeconfig() {
  cat >"$RUN/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: pgdrill
  cluster: {server: "$API_URL", certificate-authority: "$PKI/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$PKI/$1.crt", client-key: "$PKI/$1.key"}
contexts:
- name: pgdrill
  context: {cluster: pgdrill, user: $1}
current-context: pgdrill
EOF
  chmod 0600 "$RUN/$1.kubeconfig"
}
for who in admin controller-manager scheduler kubelet kube-proxy coredns; do kubeconfig "$who"; done
done_phase "CA $PKI/ca.crt; admin kubeconfig $KUBECONFIG_ADMIN"

# ---- containerd --------------------------------------------------------------------------------
phase "containerd (socket $CONTAINERD_SOCK, root $CONTAINERD_ROOT)"
mkdir -p "$CONTAINERD_ROOT"
cat >"$RUN/containerd.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$STATE/containerd"
oom_score = 0
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$STATE/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # root here cannot set a negative oom_score_adj; without this runc fails to create pods.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
EOF
start containerd containerd --config "$RUN/containerd.toml"
ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
wait_for containerd 30 "containerd answering on $CONTAINERD_SOCK" ctr_ version
done_phase "up"

phase "images (import into containerd, those not there yet)"
imported=0 present=0
while read -r file tags; do
  mark=$(sha256sum "$IMAGES/$file" | cut -c1-16)
  first=${tags%% *}
  if [[ $(ctr_ images ls "name==$first" 2>/dev/null | grep -c "pgdrill.image=$mark") == 1 ]]; then
    present=$((present + 1))
    continue
  fi
  ctr_ images import --no-unpack=false "$IMAGES/$file" >/dev/null
  for t in $tags; do
    ctr_ images label "$t" "pgdrill.image=$mark" >/dev/null
  done
  imported=$((imported + 1))
done <"$IMAGES/index"
done_phase "$imported imported, $present already there"

# ---- control plane -----------------------------------------------------------------------------
phase "etcd (127.0.0.1:$CLUSTER_ETCD_PORT)"
start etcd "$K8S_BIN/etcd" --name pgdrill --data-dir "$RUN/etcd" \
  --listen-client-urls "http://127.0.0.1:$CLUSTER_ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$CLUSTER_ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((CLUSTER_ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((CLUSTER_ETCD_PORT + 1))" \
  --initial-cluster "pgdrill=http://127.0.0.1:$((CLUSTER_ETCD_PORT + 1))" \
  --listen-metrics-urls "" --log-level warn --quota-backend-bytes 2147483648
wait_for etcd 60 "etcd healthy" curl -fsS "http://127.0.0.1:$CLUSTER_ETCD_PORT/health"
done_phase "healthy"

phase "kube-apiserver ($API_URL)"
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$CLUSTER_ETCD_PORT" \
  --bind-address "$CLUSTER_NODE_IP" --advertise-address "$CLUSTER_NODE_IP" \
  --secure-port "$CLUSTER_API_PORT" \
  --service-cluster-ip-range "$CLUSTER_SERVICE_CIDR" \
  --client-ca-file "$PKI/ca.crt" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --kubelet-preferred-address-types InternalIP \
  --allow-privileged=true --enable-aggregator-routing=true --profiling=false \
  --v=1
curl_api() { curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$API_URL$1"; }
wait_for kube-apiserver 120 "kube-apiserver /readyz" curl_api /readyz
done_phase "ready"

phase "kube-controller-manager, kube-scheduler"
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$RUN/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$RUN/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$RUN/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --use-service-account-credentials=true --service-cluster-ip-range "$CLUSTER_SERVICE_CIDR" \
  --profiling=false --v=1
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$RUN/scheduler.kubeconfig" \
  --authentication-kubeconfig "$RUN/scheduler.kubeconfig" \
  --authorization-kubeconfig "$RUN/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1
wait_for kube-controller-manager 60 "kube-controller-manager /healthz" curl -kfsS https://127.0.0.1:10257/healthz
wait_for kube-scheduler 60 "kube-scheduler /healthz" curl -kfsS https://127.0.0.1:10259/healthz
done_phase "healthy"

# ---- node --------------------------------------------------------------------------------------
phase "kubelet (node $CLUSTER_NODE_NAME)"
cat >"$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $CLUSTER_NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
cgroupDriver: cgroupfs
cgroupRoot: /$CG_PODS
# cgroup v1 is in maintenance mode; Kubernetes 1.35+ refuses it without this.
failCgroupV1: false
failSwapOn: false
# Root cannot set a negative oom_score_adj on this kind of machine.
oomScoreAdj: 0
clusterDomain: cluster.local
clusterDNS: ["$CLUSTER_NODE_IP"]
resolvConf: /etc/resolv.conf
# The images were imported, not pulled: nothing could pull them again, so never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
serializeImagePulls: false
EOF
start kubelet "$K8S_BIN/kubelet" --config "$RUN/kubelet.yaml" --kubeconfig "$RUN/kubelet.kubeconfig" \
  --root-dir "$RUN/kubelet" --node-ip "$CLUSTER_NODE_IP" --hostname-override "$CLUSTER_NODE_NAME" --v=1
node_ready() {
  [[ $(kubectl_ get node "$CLUSTER_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}
wait_for kubelet 120 "node $CLUSTER_NODE_NAME Ready" node_ready
done_phase "Ready"

phase "kube-proxy (iptables)"
cat >"$RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$RUN/kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: $CLUSTER_POD_CIDR
hostnameOverride: $CLUSTER_NODE_NAME
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
nodePortAddresses: ["$CLUSTER_NODE_IP/32"]
# 0: leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0}
EOF
start kube-proxy "$K8S_BIN/kube-proxy" --config "$RUN/kube-proxy.yaml" --v=1
# The API server through its Service address proves the Service rules are in place.
wait_for kube-proxy 60 "https://$CLUSTER_API_SERVICE_IP/readyz through the kubernetes Service" \
  curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
  "https://$CLUSTER_API_SERVICE_IP/readyz"
done_phase "Service rules in place"

phase "cluster add-ons: volumes (default StorageClass), CoreDNS"
start volumes "$TOOLS_BIN/volumes" -kubeconfig "$KUBECONFIG_ADMIN" -root "$RUN/volumes"
kubectl_ apply --server-side -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: pgdrill-hostpath
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: pgdrill.local/hostpath
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
kubectl_ apply --server-side -f "$CLUSTER_SRC/manifests/coredns-rbac.yaml" >/dev/null
cat >"$RUN/Corefile" <<EOF
.:53 {
    bind $CLUSTER_NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa {
        kubeconfig $RUN/coredns.kubeconfig
        pods insecure
        fallthrough in-addr.arpa
    }
    forward . /etc/resolv.conf
    cache 30
    ready 127.0.0.1:8181
}
EOF
start coredns "$COREDNS_BIN/coredns" -conf "$RUN/Corefile"
wait_for coredns 60 "CoreDNS ready (its kubernetes plugin synced)" curl -fsS http://127.0.0.1:8181/ready
done_phase "StorageClass pgdrill-hostpath (default); CoreDNS on $CLUSTER_NODE_IP:53"

# ---- object storage for the pods ---------------------------------------------------------------
phase "S3 endpoint for the pods (pgdrill serve-s3 on $CLUSTER_NODE_IP:$CLUSTER_S3_PORT)"
S3_ENV="$RUN/s3.env"
umask 077
cat >"$S3_ENV" <<EOF
AWS_ACCESS_KEY_ID=pgdrill$(openssl rand -hex 8)
AWS_SECRET_ACCESS_KEY=$(openssl rand -hex 20)
AWS_DEFAULT_REGION=us-east-1
PGDRILL_CLUSTER_S3_ENDPOINT=http://$CLUSTER_NODE_IP:$CLUSTER_S3_PORT
PGDRILL_CLUSTER_S3_BUCKET=$CLUSTER_S3_BUCKET
EOF
umask 022
(
  set -a
  source "$S3_ENV"
  start s3 "$PGDRILL_BIN" serve-s3 --dir "$RUN/s3" --address "$CLUSTER_NODE_IP" \
    --port "$CLUSTER_S3_PORT" --bucket "$CLUSTER_S3_BUCKET"
)
s3_up() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$CLUSTER_NODE_IP:$CLUSTER_S3_PORT/") =~ ^[2-4] ]]; }
wait_for s3 30 "S3 endpoint answering" s3_up
done_phase "bucket $CLUSTER_S3_BUCKET; credentials in $S3_ENV"

# ---- Azure Blob Storage for the pods (Azurite, installed by `make setup`) ------------------------
# barman-cloud reaches an emulator with a connection string only; pgdrill renders one for every
# credential flavour there (README, "Azure Blob"). The development account's well-known key.
AZURE_ENV="$RUN/azure.env"
azurite_main=$(ls -d "$HOME_DIR"/azurite-*/node_modules/azurite/dist/src/blob/main.js 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -n $azurite_main ]]; then
  phase "Azure blob endpoint for the pods (Azurite on $CLUSTER_NODE_IP:$CLUSTER_AZURE_PORT)"
  mkdir -p "$RUN/azurite"
  start azurite node "$azurite_main" --blobHost "$CLUSTER_NODE_IP" --blobPort "$CLUSTER_AZURE_PORT" \
    --skipApiVersionCheck --silent --location "$RUN/azurite"
  umask 077
  cat >"$AZURE_ENV" <<EOF
AZURE_STORAGE_ACCOUNT=devstoreaccount1
AZURE_STORAGE_KEY=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
PGDRILL_CLUSTER_AZURE_ENDPOINT=http://$CLUSTER_NODE_IP:$CLUSTER_AZURE_PORT/devstoreaccount1
EOF
  umask 022
  azurite_up() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$CLUSTER_NODE_IP:$CLUSTER_AZURE_PORT/devstoreaccount1?comp=list") =~ ^[2-4] ]]; }
  wait_for azurite 60 "Azurite answering" azurite_up
  done_phase "account devstoreaccount1; settings in $AZURE_ENV"
else
  info "no Azurite under $HOME_DIR (make setup installs it): no Azure endpoint, Azure drills refused"
fi

# ---- CloudNativePG -----------------------------------------------------------------------------
phase "CloudNativePG operator $CNPG_VERSION (releases/cnpg-$CNPG_VERSION.yaml)"
# The release manifest asks for imagePullPolicy: Always; this node has no registry to ask.
sed 's/imagePullPolicy: Always/imagePullPolicy: IfNotPresent/' "$CNPG_BIN/operator.yaml" >"$RUN/cnpg-operator.yaml"
kubectl_ apply --server-side --force-conflicts -f "$RUN/cnpg-operator.yaml" >/dev/null
kubectl_ wait --for=condition=Established --timeout=60s crd/clusters.postgresql.cnpg.io crd/backups.postgresql.cnpg.io >/dev/null
kubectl_ -n cnpg-system rollout status deployment/cnpg-controller-manager --timeout=180s >/dev/null ||
  die "the CNPG operator did not roll out (kubectl -n cnpg-system describe pods)"
# The operator makes its webhook certificate itself after starting: wait until the webhook
# admits a Cluster (server-side dry run).
probe_cluster() {
  kubectl_ apply --dry-run=server -f - <<EOF
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: webhook-probe, namespace: default}
spec: {instances: 1, storage: {size: 1Gi}}
EOF
}
poll 120 "the CNPG webhook admitting a Cluster" probe_cluster
done_phase "operator running, webhook answering"

phase "barman-cloud plugin $PLUGIN_VERSION (manifest.yaml, TLS made here instead of cert-manager)"
bash "$CLUSTER_SRC/plugin.sh"
done_phase "plugin running"

echo "$KUBERNETES_VERSION, CNPG $CNPG_VERSION, plugin $PLUGIN_VERSION, up since $(date -u +%FT%TZ)" >"$RUN/ready"
trap - EXIT
printf '==> cluster up in %ss\n' "$((SECONDS - total))"
info "KUBECONFIG=$KUBECONFIG_ADMIN"
info "S3 for pods and pgdrill: http://$CLUSTER_NODE_IP:$CLUSTER_S3_PORT (bucket $CLUSTER_S3_BUCKET, credentials in $S3_ENV)"
info "make drill-cluster runs every scenario the kube backend supports; make cluster-down stops it"
