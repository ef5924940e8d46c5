#!/usr/bin/env bash
# Offline checks of the Kubernetes artefacts; exits non-zero on any problem.
#
#  1. Every YAML file under manifests/ plus examples/stats/pod.yaml: parsed
#     with duplicate keys rejected, every object validated with
#     kubernetes-validate in strict mode (unknown fields are errors, and so is
#     an apiVersion/kind with no schema) against each version in
#     $K8S_VERSIONS.
#  2. Rules the API server enforces that schemas cannot express, for every
#     pod template: volume mounts name existing volumes, Bidirectional
#     propagation only in privileged containers, DaemonSet selector matches
#     the template labels, container names unique, hostPath paths absolute.
#  3. manifests/kustomization.yaml: every listed resource exists, every
#     manifest file is listed, every `images:` entry matches a container
#     image. Then `kubectl kustomize manifests/` (kubectl's built-in
#     kustomize; scripts/install-deps.sh installs Debian's kubernetes-client
#     where no kubectl exists) builds it, and the built objects are validated
#     as in 1 and compared with what the files declare. Without kubectl this
#     step fails unless ALLOW_NO_KUBECTL=1.
#  4. Cross-file consistency: the pod's CSI driver is the CSIDriver object,
#     the registrar's registration path names it, and `make bpfman-logs`
#     (label app=bpfman, container bpfman) finds the DaemonSet.
#  5. deploy/kind-config.yaml: YAML syntax and its kind/apiVersion (kind's
#     own config is not a Kubernetes API object).
#  6. The metrics component (manifests/components/metrics, used by
#     deploy/metrics): the built overlay validated as in 1; the daemon gets
#     BPFMAN_METRICS_LISTEN and a `metrics` port, keeps its other settings;
#     the Service selects the pods and targets that port; the ServiceMonitor
#     example (a CRD, no schema here) selects the Service and names its port.
#
# Needs the venv made by scripts/install-deps.sh (BPFMAN_VENV).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BPFMAN_VENV:-$HOME/.cache/bpfman/venv}"
export K8S_VERSIONS="${K8S_VERSIONS:-1.31.0}"
KUBECTL="${KUBECTL:-kubectl}"

if ! "$VENV/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
  echo "check-manifests: kubernetes-validate not found in $VENV; run scripts/install-deps.sh" >&2
  exit 1
fi

BUILT=""
BUILT_METRICS=""
rc=0
if command -v "$KUBECTL" >/dev/null 2>&1; then
  BUILT="$(mktemp)"
  BUILT_METRICS="$(mktemp)"
  trap 'rm -f "$BUILT" "$BUILT_METRICS"' EXIT
  echo "check-manifests: building manifests/ with $KUBECTL kustomize ($("$KUBECTL" version --client 2>/dev/null | head -n1))"
  if ! "$KUBECTL" kustomize "$ROOT/manifests" >"$BUILT"; then
    echo "check-manifests: FAIL: kubectl kustomize manifests/ failed (see above)" >&2
    # Go on with the file checks: they usually say more precisely what is wrong.
    rc=1
    : >"$BUILT"
  fi
  if ! "$KUBECTL" kustomize "$ROOT/deploy/metrics" >"$BUILT_METRICS"; then
    echo "check-manifests: FAIL: kubectl kustomize deploy/metrics failed (see above)" >&2
    rc=1
    : >"$BUILT_METRICS"
  fi
elif [[ "${ALLOW_NO_KUBECTL:-0}" == 1 ]]; then
  echo "check-manifests: warning: no kubectl; kustomization checked by this script's resolver only" >&2
else
  echo "check-manifests: no kubectl on PATH (run scripts/install-deps.sh, or ALLOW_NO_KUBECTL=1)" >&2
  exit 1
fi

# Not exec: the EXIT trap must still remove the built output.
"$VENV/bin/python" - "$ROOT" "$BUILT" "$BUILT_METRICS" <<'EOF' || rc=1
import os
import sys

import yaml
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

root, built_path, built_metrics_path = sys.argv[1], sys.argv[2], sys.argv[3]
versions = os.environ["K8S_VERSIONS"].split()
errors = []


def fail(where, msg):
    errors.append(f"{where}: {msg}")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML keeps the last
    one silently; kubectl would too, hiding a mistake)."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(path, text=None):
    rel = os.path.relpath(path, root) if path else "kustomize output"
    try:
        if text is None:
            with open(path) as f:
                text = f.read()
        return rel, [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        fail(rel, f"cannot parse: {e}")
        return rel, []


def ident(obj):
    md = obj.get("metadata") or {}
    return (obj.get("kind"), md.get("namespace"), md.get("name"))


def validate(rel, obj):
    if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
        fail(rel, "document without apiVersion/kind")
        return
    name = f"{obj['kind']}/{(obj.get('metadata') or {}).get('name')}"
    if not (obj.get("metadata") or {}).get("name"):
        fail(rel, f"{obj['kind']} without metadata.name")
    for v in versions:
        try:
            kubernetes_validate.validate(obj, v, strict=True)
        except ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            fail(rel, f"{name} invalid for Kubernetes {v}: {path}: {e.message}")
        except SchemaNotFoundError:
            fail(rel, f"{name}: no schema for {obj['apiVersion']} {obj['kind']} "
                      f"in Kubernetes {v} (typo, or an API that does not exist)")
    check_pod_rules(rel, obj)


def pod_spec(obj):
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind in ("DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "Job"):
        return (spec.get("template") or {}).get("spec")
    return None


def check_pod_rules(rel, obj):
    spec = pod_spec(obj)
    if spec is None:
        return
    name = f"{obj['kind']}/{obj['metadata'].get('name')}"
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    if len(volumes) != len(spec.get("volumes") or []):
        fail(rel, f"{name}: duplicate volume names")
    for v in volumes.values():
        hp = v.get("hostPath")
        if hp and not str(hp.get("path", "")).startswith("/"):
            fail(rel, f"{name}: hostPath of volume {v['name']} is not absolute")
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    names = [c.get("name") for c in containers]
    if len(set(names)) != len(names):
        fail(rel, f"{name}: duplicate container names {names}")
    for c in containers:
        privileged = (c.get("securityContext") or {}).get("privileged") is True
        paths = set()
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                fail(rel, f"{name}: container {c['name']} mounts unknown volume {m.get('name')!r}")
            if m.get("mountPropagation") == "Bidirectional" and not privileged:
                fail(rel, f"{name}: container {c['name']}: Bidirectional propagation of {m.get('mountPath')} needs privileged")
            if m.get("mountPath") in paths:
                fail(rel, f"{name}: container {c['name']}: mountPath {m.get('mountPath')} used twice")
            paths.add(m.get("mountPath"))
    if obj["kind"] != "Pod":
        selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = ((obj["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            fail(rel, f"{name}: selector {selector} does not match template labels {labels}")


def images_of(objs):
    out = []
    for o in objs:
        spec = pod_spec(o) if isinstance(o, dict) else None
        for c in (spec or {}).get("containers", []) + (spec or {}).get("initContainers", []):
            out.append(c.get("image", ""))
    return out


def image_name(image):
    # registry/repo:tag or @digest -> registry/repo (a port in the registry
    # host is not a tag).
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


# 1 + 2: every manifest file and the example pod.
mdir = os.path.join(root, "manifests")
files = sorted(os.path.join(mdir, f) for f in os.listdir(mdir) if f.endswith((".yaml", ".yml")))
files.append(os.path.join(root, "examples", "stats", "pod.yaml"))
declared = {}
kustomization = None
for path in files:
    rel, docs = load(path)
    for d in docs:
        if isinstance(d, dict) and d.get("kind") == "Kustomization":
            kustomization = (rel, d)
            continue
        validate(rel, d)
        if isinstance(d, dict):
            declared.setdefault(path, []).append(d)
    print(f"checked {rel}: {len(docs)} document(s)")

# 3: the kustomization.
if kustomization is None:
    fail("manifests", "no kustomization.yaml")
else:
    rel, k = kustomization
    if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1":
        fail(rel, f"unexpected apiVersion {k.get('apiVersion')!r}")
    known = {"apiVersion", "kind", "resources", "images", "namespace", "labels",
             "commonLabels", "commonAnnotations", "patches", "configMapGenerator"}
    for key in k:
        if key not in known:
            fail(rel, f"unexpected field {key!r}")
    listed = [os.path.normpath(os.path.join(mdir, r)) for r in k.get("resources") or []]
    for r in listed:
        if not os.path.isfile(r):
            fail(rel, f"resource {os.path.relpath(r, root)} does not exist")
    for path in declared:
        if path.startswith(mdir + os.sep) and path not in listed:
            fail(rel, f"{os.path.relpath(path, root)} is not listed in resources")
    base_images = {image_name(i) for p in listed for i in images_of(declared.get(p, []))}
    for entry in k.get("images") or []:
        if entry.get("name") not in base_images:
            fail(rel, f"images entry {entry.get('name')!r} matches no container image {sorted(base_images)}")

    if built_path and os.path.getsize(built_path) > 0:
        _, built = load(None, open(built_path).read())
        for d in built:
            validate("kustomize output", d)
        want = sorted(ident(o) for p in listed for o in declared.get(p, []))
        got = sorted(ident(o) for o in built)
        if want != got:
            fail("kustomize output", f"objects {got} differ from the files' {want}")
        for image in images_of(built):
            if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
                fail("kustomize output", f"image {image!r} has no tag (would pull :latest)")
        print(f"checked kustomize output: {len(built)} object(s), images {images_of(built)}")

# 4: consistency across files.
objs = [o for docs in declared.values() for o in docs]
drivers = {o["metadata"]["name"] for o in objs if o.get("kind") == "CSIDriver"}
for o in objs:
    spec = pod_spec(o) or {}
    for v in spec.get("volumes") or []:
        csi = v.get("csi")
        if csi and csi.get("driver") not in drivers:
            fail("examples/stats/pod.yaml", f"CSI driver {csi.get('driver')!r} is not a CSIDriver in manifests/ {sorted(drivers)}")
daemonsets = [o for o in objs if o.get("kind") == "DaemonSet"]
logs_ok = False
for ds in daemonsets:
    tmpl = ds["spec"]["template"]
    cnames = [c["name"] for c in tmpl["spec"]["containers"]]
    if (tmpl.get("metadata") or {}).get("labels", {}).get("app") == "bpfman" and "bpfman" in cnames:
        logs_ok = True
    for c in tmpl["spec"]["containers"]:
        for a in c.get("args") or []:
            if a.startswith("--kubelet-registration-path="):
                if not any(f"/plugins/{d}/" in a for d in drivers):
                    fail("manifests/daemonset.yaml", f"{a} does not name the CSI driver {sorted(drivers)}")
if not logs_ok:
    fail("manifests/daemonset.yaml", "no DaemonSet with label app=bpfman and container 'bpfman' (make bpfman-logs relies on both)")

# 5: kind's config.
rel, docs = load(os.path.join(root, "deploy", "kind-config.yaml"))
if docs and not (docs[0].get("kind") == "Cluster" and docs[0].get("apiVersion") == "kind.x-k8s.io/v1alpha4"):
    fail(rel, "expected kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4")
print(f"checked {rel}: YAML syntax")

# 6: the metrics component.
mrel = "deploy/metrics"
if built_metrics_path and os.path.getsize(built_metrics_path) > 0:
    _, mbuilt = load(None, open(built_metrics_path).read())
    for d in mbuilt:
        validate(mrel, d)
    mds = [o for o in mbuilt if o.get("kind") == "DaemonSet"]
    svcs = [o for o in mbuilt if o.get("kind") == "Service" and o["metadata"]["name"] == "bpfman-metrics"]
    if len(mds) != 1 or len(svcs) != 1:
        fail(mrel, f"expected one DaemonSet and the bpfman-metrics Service, got {[ident(o) for o in mbuilt]}")
    else:
        tmpl = mds[0]["spec"]["template"]
        c = next((c for c in tmpl["spec"]["containers"] if c["name"] == "bpfman"), {})
        env = {e["name"]: e for e in c.get("env") or []}
        if "BPFMAN_METRICS_LISTEN" not in env or "NODE_NAME" not in env:
            fail(mrel, f"bpfman container env {sorted(env)} lacks BPFMAN_METRICS_LISTEN or lost NODE_NAME")
        if (c.get("args") or [])[:1] != ["serve"]:
            fail(mrel, f"bpfman container args changed: {c.get('args')}")
        ports = {p.get("name"): p for p in c.get("ports") or []}
        svc = svcs[0]
        labels = tmpl.get("metadata", {}).get("labels", {})
        sel = svc["spec"].get("selector") or {}
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            fail(mrel, f"Service selector {sel} does not select the pods {labels}")
        for sp in svc["spec"].get("ports") or []:
            if sp.get("targetPort") not in ports:
                fail(mrel, f"Service port {sp.get('name')} targets {sp.get('targetPort')!r}, not a container port {sorted(ports)}")
        smrel, smdocs = load(os.path.join(root, "manifests/components/metrics/servicemonitor.example.yaml"))
        for sm in smdocs:
            if (sm.get("apiVersion"), sm.get("kind")) != ("monitoring.coreos.com/v1", "ServiceMonitor"):
                fail(smrel, "expected monitoring.coreos.com/v1 ServiceMonitor")
                continue
            want = (sm["spec"].get("selector") or {}).get("matchLabels") or {}
            have = svc["metadata"].get("labels") or {}
            if not want or any(have.get(k) != v for k, v in want.items()):
                fail(smrel, f"selector {want} does not match the Service's labels {have}")
            if svc["metadata"].get("namespace") not in ((sm["spec"].get("namespaceSelector") or {}).get("matchNames") or []):
                fail(smrel, "namespaceSelector does not name the Service's namespace")
            names = {p.get("name") for p in svc["spec"].get("ports") or []}
            for ep in sm["spec"].get("endpoints") or []:
                if ep.get("port") not in names or ep.get("path") != "/metrics":
                    fail(smrel, f"endpoint {ep} does not name a Service port {sorted(names)} with path /metrics")
    print(f"checked {mrel}: {len(mbuilt)} object(s) with the metrics component")
elif built_path:
    fail(mrel, "kubectl kustomize built nothing")

if errors:
    for e in errors:
        print(f"FAIL {e}", file=sys.stderr)
    print(f"check-manifests: {len(errors)} problem(s)", file=sys.stderr)
    sys.exit(1)
print(f"check-manifests: OK (strict, Kubernetes {', '.join(versions)})")
EOF
exit "$rc"
