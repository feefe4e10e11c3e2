#!/usr/bin/python3
"""Checks the Kubernetes manifests in deploy/k8s (the kustomize base and each
overlay) for the rules an operator relies on: hardened security contexts,
native gRPC probes on the plaintext health port, a termination budget above
the server's drain + grace, a Service with appProtocol grpc, HPA, PDB and
NetworkPolicy, a native sidecar with no network listener and exec probes
running `chat-tokend probe` over its unix socket, an mTLS overlay with a
client CA and SPIFFE IDs, and a ConfigMap config.yaml that is valid YAML with
the documented keys.

Rendering: `kubectl kustomize` when kubectl is there (--renderer kubectl or
auto), else a small built-in renderer that reads the same YAML files and
applies the subset of kustomize these manifests use (resources,
configMapGenerator, strategic-merge patches, images). --compare renders with
both and checks they agree, so the fallback cannot drift from kustomize.
--self-test breaks rendered manifests on purpose and checks that each
mistake is caught.

Run with /usr/bin/python3 (Debian's python3-yaml, from scripts/install-deps).
Exit 0: all checks pass; 1: a check failed; 77: skipped (--compare without
kubectl)."""

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:
    sys.exit("check_manifests: PyYAML is missing; run scripts/install-deps "
             "(Debian python3-yaml) and use /usr/bin/python3")

SKIP = 77
OVERLAYS = {"base": "base", "sidecar": "overlays/sidecar", "mtls": "overlays/mtls"}
CONTAINER = "chat-tokend"
RUN_AS = 65532
SECRET_MOUNT = "/run/secrets/chat-tokend"
CONFIG_DIR = "/etc/chat-tokend"
METHODS = {"GetAppToken", "GetUserToken", "RenewToken"}

# The config keys the server documents (issues 3, 4 and 5). None: a scalar or
# a list of scalars; a dict: a mapping with these keys; ("list", dict): a list
# of such mappings. Unknown keys are errors in the server, so here too.
CONFIG_SCHEMA = {
    "listen": None,
    "health_listen": None,
    "app": {"id": None, "certificate": None, "certificate_file": None,
            "previous_certificates": None, "previous_certificate_files": None,
            "key": None},
    "tokens": {"default_ttl_seconds": None, "max_ttl_seconds": None,
               "renew_grace_seconds": None},
    "user_tokens": {"identity": None},
    "auth": {
        "allow_unauthenticated": None,
        "api_keys": ("list", {"name": None, "sha256": None, "key_file": None,
                              "methods": None}),
        "mtls_clients": ("list", {"id": None, "methods": None}),
    },
    "tls": {"cert_file": None, "key_file": None, "client_ca_file": None},
    "workers": None,
    "log": {"level": None},
    "reflection": None,
    "shutdown": {"drain_seconds": None, "grace_seconds": None},
    "directory": {
        "base_url": None, "auto_register": None, "connect_timeout_ms": None,
        "request_timeout_ms": None, "retries": None,
        "rate_limit_per_second": None,
        "cache": {"capacity": None, "ttl_seconds": None,
                  "negative_ttl_seconds": None},
    },
    "http": {"listen": None, "compat_routes": None,
             "cors": {"allowed_origins": None}, "max_connections": None,
             "request_timeout_seconds": None, "max_connections_per_ip": None},
}


class CheckFailed(Exception):
    pass


class Checker:
    """Collects failures so that one run reports every broken rule."""

    def __init__(self, label):
        self.label = label
        self.failures = []
        self.passed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
        return bool(cond)


# ---------------------------------------------------------------- rendering

def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def render_kubectl(kubectl, directory):
    out = subprocess.run([kubectl, "kustomize", directory], check=True,
                         capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d is not None]


# Strategic-merge list keys for the fields these manifests patch.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name",
              "env": "name", "volumeMounts": "mountPath"}


def merge_key(field, items):
    if field in MERGE_KEYS:
        return MERGE_KEYS[field]
    if field == "ports" and items and all(isinstance(i, dict) for i in items):
        return "containerPort" if "containerPort" in items[0] else "port"
    return None


def strip_directives(value):
    if isinstance(value, dict):
        return {k: strip_directives(v) for k, v in value.items()
                if k != "$patch" and v is not None}
    if isinstance(value, list):
        return [strip_directives(v) for v in value]
    return value


def strategic_merge(base, patch):
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return strip_directives(patch)
    if patch.get("$patch") == "replace":
        return strip_directives(patch)
    out = dict(base)
    for key, value in patch.items():
        if key == "$patch":
            continue
        if value is None:
            out.pop(key, None)
        elif key not in out:
            out[key] = strip_directives(value)
        elif isinstance(value, dict):
            out[key] = strategic_merge(out[key], value)
        elif isinstance(value, list) and isinstance(out[key], list) \
                and merge_key(key, value + out[key]):
            out[key] = merge_list(out[key], value, merge_key(key, value + out[key]))
        else:
            out[key] = strip_directives(value)
    return out


def merge_list(base, patch, key):
    out = [dict(i) for i in base]
    added = []
    for item in patch:
        idx = next((n for n, b in enumerate(out) if b.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
        elif idx is not None:
            out[idx] = strategic_merge(out[idx], item)
        else:
            added.append(strip_directives(item))
    return added + out  # kustomize puts new elements first


def resource_id(doc):
    return (doc.get("kind"), doc.get("metadata", {}).get("name"))


def render_builtin(directory):
    with open(os.path.join(directory, "kustomization.yaml"), encoding="utf-8") as f:
        kust = yaml.safe_load(f)
    supported = {"apiVersion", "kind", "resources", "patches", "configMapGenerator", "images"}
    unsupported = set(kust) - supported
    if unsupported:
        raise CheckFailed("built-in renderer: %s uses %s; extend render_builtin() "
                          "or install kubectl" % (directory, sorted(unsupported)))
    docs = []
    for res in kust.get("resources", []):
        path = os.path.join(directory, res)
        docs += render_builtin(path) if os.path.isdir(path) else load_yaml_docs(path)
    for gen in kust.get("configMapGenerator", []):
        data = {}
        for entry in gen.get("files", []):
            key, _, rel = entry.partition("=") if "=" in entry else (os.path.basename(entry), "", entry)
            with open(os.path.join(directory, rel), encoding="utf-8") as f:
                data[key] = f.read()
        behavior = gen.get("behavior", "create")
        existing = next((d for d in docs if resource_id(d) == ("ConfigMap", gen["name"])), None)
        if behavior == "create":
            if existing is not None:
                raise CheckFailed("configMapGenerator %s: already exists" % gen["name"])
            docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": gen["name"]}, "data": data})
        elif existing is None:
            raise CheckFailed("configMapGenerator %s: behavior %s but no such ConfigMap"
                              % (gen["name"], behavior))
        elif behavior == "replace":
            existing["data"] = data
        else:
            existing.setdefault("data", {}).update(data)
    for p in kust.get("patches", []):
        if set(p) != {"path"}:
            raise CheckFailed("built-in renderer: only `patches: - path:` is supported (%s)" % p)
        for patch in load_yaml_docs(os.path.join(directory, p["path"])):
            rid = resource_id(patch)
            idx = next((n for n, d in enumerate(docs) if resource_id(d) == rid), None)
            if idx is None:
                raise CheckFailed("patch %s: no resource %s/%s" % (p["path"], *rid))
            if patch.get("$patch") == "delete":
                del docs[idx]
            else:
                docs[idx] = strategic_merge(docs[idx], patch)
    for img in kust.get("images", []):
        for doc in docs:
            for c in pod_containers(doc):
                name, _, _ = c.get("image", "").partition(":")
                if name == img["name"]:
                    c["image"] = img.get("newName", name) + ":" + str(img.get("newTag", "latest"))
    return docs


def pod_containers(doc):
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def normalise(docs):
    """Drops kustomize's ConfigMap hash suffixes and orders resources and named
    lists, so the two renderers' outputs compare equal when they agree."""
    text = json.dumps(docs, sort_keys=True)
    for d in docs:
        if d.get("kind") == "ConfigMap":
            name = d["metadata"]["name"]
            base = re.sub(r"-[a-z0-9]{10}$", "", name)
            text = text.replace('"%s"' % name, '"%s"' % base)
    docs = json.loads(text)

    def order(value):
        if isinstance(value, dict):
            return {k: order(v) for k, v in value.items()}
        if isinstance(value, list):
            items = [order(v) for v in value]
            if items and all(isinstance(i, dict) for i in items):
                for key in ("name", "mountPath", "containerPort", "port"):
                    if all(key in i for i in items):
                        return sorted(items, key=lambda i: str(i[key]))
            return items
        return value

    return sorted((order(d) for d in docs), key=lambda d: (d["kind"], d["metadata"]["name"]))


# ---------------------------------------------------------------- helpers

def find(docs, kind, name=None):
    return [d for d in docs if d.get("kind") == kind
            and (name is None or d.get("metadata", {}).get("name") == name)]


def port_of(addr):
    m = re.match(r"^(?:\[[^\]]+\]|[^:\[\]]+):(\d+)$", addr or "")
    return int(m.group(1)) if m else None


def is_local(addr):
    if addr.startswith("unix:"):
        return True
    host = addr.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def schema_errors(value, schema, path=""):
    errors = []
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return ["%s: expected a mapping" % (path or "config")]
        for key, sub in value.items():
            where = "%s.%s" % (path, key) if path else key
            if key not in schema:
                errors.append("%s: not a documented key" % where)
            elif sub is not None:
                errors += schema_errors(sub, schema[key], where)
    elif isinstance(schema, tuple):
        if not isinstance(value, list):
            return ["%s: expected a list" % path]
        for n, item in enumerate(value):
            errors += schema_errors(item, schema[1], "%s[%d]" % (path, n))
    elif isinstance(value, dict):
        errors.append("%s: expected a scalar or a list" % path)
    return errors


def effective(container, pod, key):
    """securityContext field as the kubelet resolves it: container over pod."""
    c = container.get("securityContext", {})
    return c[key] if key in c else pod.get("securityContext", {}).get(key)


def mounts_by_path(container):
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def volume_for_file(path, container, volumes):
    """The (mount, volume) that holds file `path`, by the longest mountPath."""
    best = None
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path.startswith(mp + "/") and (best is None or len(mp) > len(best["mountPath"])):
            best = m
    if best is None:
        return None, None
    return best, volumes.get(best["name"])


# ---------------------------------------------------------------- checks

def check_config(ck, config, name):
    ck.check(isinstance(config, dict), "%s: config.yaml is not a YAML mapping" % name)
    if not isinstance(config, dict):
        return
    for err in schema_errors(config, CONFIG_SCHEMA):
        ck.check(False, "%s: config.yaml: %s" % (name, err))
    for key in ("listen", "app", "tokens", "user_tokens", "auth", "shutdown", "log"):
        ck.check(key in config, "%s: config.yaml lacks `%s`" % (name, key))
    listen = config.get("listen")
    ck.check(isinstance(listen, list) and listen, "%s: listen must be a non-empty list" % name)
    listen = listen if isinstance(listen, list) else []
    for addr in listen:
        ck.check(isinstance(addr, str) and (port_of(addr) or re.match(r"^unix:/\S+$", addr)),
                 "%s: listen %r is neither host:port nor unix:/path" % (name, addr))
    app = config.get("app") or {}
    ck.check(re.fullmatch(r"[0-9a-fA-F]{32}", str(app.get("id", ""))),
             "%s: app.id must be 32 hex characters" % name)
    ck.check("certificate" not in app,
             "%s: app.certificate is inline; a ConfigMap is no place for a secret, "
             "use certificate_file" % name)
    ck.check(str(app.get("certificate_file", "")).startswith("/"),
             "%s: app.certificate_file must be an absolute path" % name)
    ck.check(isinstance(app.get("previous_certificates", []), list),
             "%s: app.previous_certificates must be a list" % name)
    ck.check(re.fullmatch(r"[^#\s]+#[^#\s]+", str(app.get("key", ""))),
             "%s: app.key must be org#app" % name)
    tokens = config.get("tokens") or {}
    for k in ("default_ttl_seconds", "max_ttl_seconds", "renew_grace_seconds"):
        ck.check(isinstance(tokens.get(k), int) and tokens[k] >= 0,
                 "%s: tokens.%s must be a non-negative integer" % (name, k))
    if isinstance(tokens.get("max_ttl_seconds"), int):
        ck.check(0 < tokens["max_ttl_seconds"] <= 86400, "%s: tokens.max_ttl_seconds > 86400" % name)
        ck.check(tokens.get("default_ttl_seconds", 0) <= tokens["max_ttl_seconds"],
                 "%s: tokens.default_ttl_seconds above max" % name)
    ck.check((config.get("user_tokens") or {}).get("identity") in ("username", "uuid"),
             "%s: user_tokens.identity must be username or uuid" % name)
    ck.check((config.get("log") or {}).get("level") in ("debug", "info", "warn", "error"),
             "%s: log.level" % name)
    shutdown = config.get("shutdown") or {}
    for k in ("drain_seconds", "grace_seconds"):
        ck.check(isinstance(shutdown.get(k), int) and shutdown[k] >= 0,
                 "%s: shutdown.%s must be a non-negative integer" % (name, k))
    ck.check(isinstance(config.get("workers", 0), int) and config.get("workers", 0) >= 0,
             "%s: workers must be a non-negative integer" % name)

    auth = config.get("auth") or {}
    listeners = list(listen)
    if config.get("health_listen"):
        listeners.append(config["health_listen"])
    if (config.get("http") or {}).get("listen"):
        listeners.append(config["http"]["listen"])
    if auth.get("allow_unauthenticated"):
        ck.check(all(is_local(a) for a in listeners),
                 "%s: allow_unauthenticated with a network listener (%s); the server "
                 "refuses it" % (name, ", ".join(a for a in listeners if not is_local(a))))
    else:
        ck.check(auth.get("api_keys") or auth.get("mtls_clients"),
                 "%s: authentication on but no api_keys and no mtls_clients: "
                 "nobody could call" % name)
    for key in auth.get("api_keys") or []:
        ck.check(key.get("name"), "%s: an api key has no name" % name)
        ck.check("key_file" in key or "sha256" in key,
                 "%s: api key %s needs key_file or sha256" % (name, key.get("name")))
        ck.check(set(key.get("methods") or []) <= METHODS and key.get("methods"),
                 "%s: api key %s: methods must be a non-empty subset of %s"
                 % (name, key.get("name"), sorted(METHODS)))
    for client in auth.get("mtls_clients") or []:
        ck.check(set(client.get("methods") or []) <= METHODS and client.get("methods"),
                 "%s: mtls client %s: bad methods" % (name, client.get("id")))
    tls = config.get("tls") or {}
    ck.check(bool(tls.get("cert_file")) == bool(tls.get("key_file")),
             "%s: tls.cert_file and tls.key_file go together" % name)
    ck.check(not tls.get("client_ca_file") or tls.get("cert_file"),
             "%s: tls.client_ca_file without a server certificate" % name)
    ck.check(not auth.get("mtls_clients") or tls.get("client_ca_file"),
             "%s: mtls_clients without tls.client_ca_file: no client certificate "
             "would ever be verified" % name)
    directory = config.get("directory") or {}
    if directory.get("base_url"):
        ck.check(str(directory["base_url"]).startswith("https://"),
                 "%s: directory.base_url must be https in a deployment" % name)


def check_overlay(ck, name, docs, k8s_dir):
    deps = find(docs, "Deployment")
    ck.check(len(deps) == 1, "%s: expected one Deployment, found %d" % (name, len(deps)))
    if not deps:
        return
    dep = deps[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels", {})
    # regular containers and native sidecars (init containers that keep
    # running: restartPolicy Always); both are checked alike
    containers = {c["name"]: c for c in pod.get("initContainers", []) + pod.get("containers", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    ck.check(CONTAINER in containers, "%s: no container named %s" % (name, CONTAINER))
    if CONTAINER not in containers:
        return
    tokend = containers[CONTAINER]

    ck.check(spec.get("replicas") == 2, "%s: replicas must be 2 (got %r)" % (name, spec.get("replicas")))
    ck.check(all(pod_labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()),
             "%s: Deployment selector does not match its pod labels" % name)

    # Security contexts: the pod's and every container's.
    psc = pod.get("securityContext", {})
    ck.check(psc.get("runAsNonRoot") is True, "%s: pod securityContext.runAsNonRoot" % name)
    ck.check(psc.get("runAsUser") == RUN_AS, "%s: pod securityContext.runAsUser %d" % (name, RUN_AS))
    ck.check((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
             "%s: pod seccompProfile RuntimeDefault" % name)
    ck.check(pod.get("automountServiceAccountToken") is False,
             "%s: the pod needs no Kubernetes API token" % name)
    for cname, c in containers.items():
        sc = c.get("securityContext", {})
        ck.check(effective(c, pod, "runAsNonRoot") is True, "%s/%s: runAsNonRoot" % (name, cname))
        uid = effective(c, pod, "runAsUser")
        ck.check(isinstance(uid, int) and uid > 0, "%s/%s: runAsUser must be a non-zero UID" % (name, cname))
        ck.check(sc.get("readOnlyRootFilesystem") is True, "%s/%s: readOnlyRootFilesystem" % (name, cname))
        ck.check(sc.get("allowPrivilegeEscalation") is False,
                 "%s/%s: allowPrivilegeEscalation false" % (name, cname))
        ck.check(sc.get("privileged") in (None, False), "%s/%s: privileged" % (name, cname))
        ck.check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
                 "%s/%s: capabilities.drop ALL" % (name, cname))
        ck.check(not (sc.get("capabilities") or {}).get("add"), "%s/%s: capabilities.add" % (name, cname))
        ck.check((effective(c, pod, "seccompProfile") or {}).get("type") == "RuntimeDefault",
                 "%s/%s: seccompProfile RuntimeDefault" % (name, cname))
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            ck.check({"cpu", "memory"} <= set(res.get(kind) or {}),
                     "%s/%s: resources.%s cpu and memory" % (name, cname, kind))
        for env in c.get("env", []):
            if re.search(r"CERT|KEY|SECRET|PASSWORD|PASSWD", env["name"], re.I) \
                    and not env["name"].endswith("_FILE"):
                ck.check("value" not in env, "%s/%s: env %s holds a secret inline; use "
                         "valueFrom or a mounted file" % (name, cname, env["name"]))
    tsc = tokend.get("securityContext", {})
    ck.check(tsc.get("runAsUser") == RUN_AS and tsc.get("runAsNonRoot") is True,
             "%s: chat-tokend container runAsUser %d, runAsNonRoot" % (name, RUN_AS))
    ck.check(re.match(r"^(.*/)?chat-tokend(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$", tokend.get("image", "")),
             "%s: chat-tokend image %r" % (name, tokend.get("image")))

    # The config: args -> ConfigMap mounted at /etc/chat-tokend -> config.yaml.
    args = tokend.get("args", [])
    ck.check(args[:1] == ["--config"] and len(args) == 2,
             "%s: args must be [--config, FILE] (the image's ENTRYPOINT is chat-tokend)" % name)
    config_path = args[1] if len(args) == 2 else CONFIG_DIR + "/config.yaml"
    mount, vol = volume_for_file(config_path, tokend, volumes)
    ck.check(mount is not None and mount["mountPath"] == CONFIG_DIR and mount.get("readOnly") is True,
             "%s: the config must be mounted read-only at %s" % (name, CONFIG_DIR))
    config = None
    if vol and "configMap" in vol:
        cms = find(docs, "ConfigMap", vol["configMap"]["name"])
        ck.check(len(cms) == 1, "%s: ConfigMap %s not rendered" % (name, vol["configMap"]["name"]))
        key = os.path.basename(config_path)
        if cms and ck.check(key in cms[0].get("data", {}), "%s: ConfigMap has no %s" % (name, key)):
            try:
                config = yaml.safe_load(cms[0]["data"][key])
            except yaml.YAMLError as e:
                ck.check(False, "%s: config.yaml is not valid YAML: %s" % (name, e))
    else:
        ck.check(False, "%s: the config volume is not a ConfigMap" % name)
    if not isinstance(config, dict):
        ck.check(False, "%s: no config to check" % name)
        return
    check_config(ck, config, name)

    # Every file the config names lives in a read-only Secret mount.
    app = config.get("app") or {}
    files = [app.get("certificate_file")]
    files += [k.get("key_file") for k in (config.get("auth") or {}).get("api_keys") or []]
    files += list((config.get("tls") or {}).values())
    secret_keys = secret_example_keys(k8s_dir)
    for path in filter(None, files):
        m, v = volume_for_file(path, tokend, volumes)
        if not ck.check(m is not None and v is not None and "secret" in v,
                        "%s: %s is not in a mounted Secret" % (name, path)):
            continue
        ck.check(m.get("readOnly") is True, "%s: Secret mount %s must be readOnly" % (name, m["mountPath"]))
        if m["mountPath"] == SECRET_MOUNT:
            ck.check(v["secret"]["secretName"] == "chat-tokend-secrets",
                     "%s: %s must come from Secret chat-tokend-secrets" % (name, SECRET_MOUNT))
            ck.check(os.path.basename(path) in secret_keys,
                     "%s: %s is not a key of base/secret.example.yaml" % (name, os.path.basename(path)))
        # Kubernetes mounts Secret files 0644 (owner root) unless told
        # otherwise: 0440 and the pod's fsGroup make them readable by the
        # server's group only (chat-tokend warns about anything wider)
        mode = v["secret"].get("defaultMode", 0o644)
        ck.check(mode == 0o440, "%s: Secret %s must have defaultMode 0440, got %o"
                 % (name, v["secret"]["secretName"], mode))
        ck.check(psc.get("fsGroup") == RUN_AS,
                 "%s: pod securityContext.fsGroup must be %d, the group that reads Secret %s"
                 % (name, RUN_AS, v["secret"]["secretName"]))

    # Shutdown: preStop vs drain, the grace period vs drain + grace.
    drain = config["shutdown"]["drain_seconds"]
    grace = config["shutdown"]["grace_seconds"]
    pre_stop = (tokend.get("lifecycle") or {}).get("preStop")
    pre_stop_wait = 0
    if pre_stop is not None:
        # No shell in the image: an exec hook cannot sleep; only the kubelet's
        # own sleep action can, and then it must match the server's drain.
        ck.check(set(pre_stop) == {"sleep"},
                 "%s: preStop must be a sleep action (the image has no shell): %s" % (name, pre_stop))
        pre_stop_wait = (pre_stop.get("sleep") or {}).get("seconds", 0)
        ck.check(pre_stop_wait == drain,
                 "%s: preStop sleep %ss does not match shutdown.drain_seconds %s"
                 % (name, pre_stop_wait, drain))
    else:
        # The server drains by itself on SIGTERM: it must actually wait long
        # enough for the endpoint removal to propagate.
        ck.check(drain >= 3, "%s: no preStop, so shutdown.drain_seconds (%s) must give "
                 "endpoint removal time (>= 3 s)" % (name, drain))
    tgp = pod.get("terminationGracePeriodSeconds", 30)
    ck.check(tgp > pre_stop_wait + drain + grace,
             "%s: terminationGracePeriodSeconds %s must exceed preStop %s + drain %s + grace %s"
             % (name, tgp, pre_stop_wait, drain, grace))

    # HPA and PDB: present and aimed at this Deployment.
    hpas = find(docs, "HorizontalPodAutoscaler")
    if ck.check(len(hpas) == 1, "%s: expected one HorizontalPodAutoscaler" % name):
        hpa = hpas[0]
        ck.check(hpa["apiVersion"] == "autoscaling/v2", "%s: HPA apiVersion autoscaling/v2" % name)
        ref = hpa["spec"]["scaleTargetRef"]
        ck.check(ref.get("kind") == "Deployment" and ref.get("name") == dep["metadata"]["name"],
                 "%s: HPA must scale Deployment %s" % (name, dep["metadata"]["name"]))
        ck.check(any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu"
                     for m in hpa["spec"].get("metrics", [])), "%s: HPA on CPU" % name)
        ck.check(hpa["spec"].get("minReplicas", 1) >= 2 and
                 hpa["spec"]["maxReplicas"] >= hpa["spec"].get("minReplicas", 1),
                 "%s: HPA minReplicas >= 2 <= maxReplicas" % name)
    pdbs = find(docs, "PodDisruptionBudget")
    if ck.check(len(pdbs) == 1, "%s: expected one PodDisruptionBudget" % name):
        pdb = pdbs[0]["spec"]
        ck.check(pdb.get("minAvailable") == 1, "%s: PDB minAvailable 1" % name)
        ck.check(all(pod_labels.get(k) == v for k, v in pdb["selector"]["matchLabels"].items()),
                 "%s: PDB selector does not select the pods" % name)

    if name == "sidecar":
        check_sidecar(ck, name, docs, config, pod, containers, volumes)
    else:
        check_network_service(ck, name, docs, config, tokend, pod_labels)
    if name == "mtls":
        check_mtls(ck, name, config, tokend, volumes, k8s_dir)


def check_network_service(ck, name, docs, config, tokend, pod_labels):
    main_port = port_of(config["listen"][0])
    health_port = port_of(config.get("health_listen", ""))
    http_port = port_of((config.get("http") or {}).get("listen", ""))
    ck.check(health_port is not None, "%s: health_listen must be set (probes need plaintext)" % name)
    ck.check(health_port not in [port_of(a) for a in config["listen"]],
             "%s: health_listen must be its own port" % name)
    ports = {p.get("name"): p["containerPort"] for p in tokend.get("ports") or []}
    ck.check(ports.get("grpc") == main_port, "%s: containerPort grpc != listen port %s" % (name, main_port))
    if http_port:
        ck.check(ports.get("http") == http_port, "%s: containerPort http != http.listen port" % name)
    drain = config["shutdown"]["drain_seconds"]
    grace = config["shutdown"]["grace_seconds"]
    for probe_name in ("readinessProbe", "livenessProbe"):
        probe = tokend.get(probe_name)
        if not ck.check(probe, "%s: %s missing" % (name, probe_name)):
            continue
        ck.check("grpc" in probe and probe["grpc"].get("port") == health_port,
                 "%s: %s must be a native grpc probe on the health port %s (got %s)"
                 % (name, probe_name, health_port, probe))
    live = tokend.get("livenessProbe") or {}
    if live:
        window = (live.get("failureThreshold", 3) - 1) * live.get("periodSeconds", 10)
        ck.check(window >= drain + grace,
                 "%s: livenessProbe would restart a draining pod: (failureThreshold-1) * "
                 "periodSeconds = %ss < drain + grace = %ss" % (name, window, drain + grace))

    services = find(docs, "Service")
    if not ck.check(len(services) == 1, "%s: expected one Service" % name):
        return
    svc = services[0]["spec"]
    ck.check(all(pod_labels.get(k) == v for k, v in svc.get("selector", {}).items()) and svc.get("selector"),
             "%s: Service selector does not select the pods" % name)

    def target(p):
        t = p.get("targetPort", p["port"])
        return ports.get(t) if isinstance(t, str) else t

    by_name = {p.get("name"): p for p in svc.get("ports", [])}
    grpc = by_name.get("grpc")
    if ck.check(grpc, "%s: Service has no port named grpc" % name):
        ck.check(grpc.get("appProtocol") == "grpc", "%s: Service port grpc needs appProtocol: grpc" % name)
        ck.check(target(grpc) == main_port, "%s: Service grpc targets %s, not %s" % (name, target(grpc), main_port))
    targets = {target(p) for p in svc.get("ports", [])}
    ck.check(health_port not in targets, "%s: the health port is for the kubelet, not the Service" % name)
    ck.check(None not in targets, "%s: a Service targetPort names no container port" % name)

    nps = find(docs, "NetworkPolicy")
    if not ck.check(len(nps) == 1, "%s: expected one NetworkPolicy" % name):
        return
    np = nps[0]["spec"]
    ck.check(all(pod_labels.get(k) == v for k, v in np["podSelector"].get("matchLabels", {}).items())
             and np["podSelector"].get("matchLabels"),
             "%s: NetworkPolicy does not select the pods" % name)
    ck.check(set(np.get("policyTypes", [])) == {"Ingress", "Egress"},
             "%s: NetworkPolicy policyTypes Ingress and Egress" % name)
    ingress_ports = set()
    for rule in np.get("ingress", []):
        ck.check(rule.get("ports"), "%s: an ingress rule without ports opens every port" % name)
        for p in rule.get("ports") or []:
            ingress_ports.add(ports.get(p["port"]) if isinstance(p["port"], str) else p["port"])
    ck.check(ingress_ports == targets,
             "%s: NetworkPolicy ingress ports %s != Service ports %s"
             % (name, sorted(ingress_ports, key=str), sorted(targets, key=str)))
    egress = {(p.get("protocol", "TCP"), p["port"]) for rule in np.get("egress", [])
              for p in rule.get("ports") or []}
    ck.check(all(rule.get("ports") for rule in np.get("egress", [])),
             "%s: an egress rule without ports" % name)
    ck.check(egress == {("UDP", 53), ("TCP", 53), ("TCP", 443)},
             "%s: egress must be DNS (53 UDP/TCP) and 443 only, got %s" % (name, sorted(egress)))


def probe_command(probe):
    """The argv of an exec probe that runs `chat-tokend probe`, else None."""
    command = ((probe or {}).get("exec") or {}).get("command") or []
    if len(command) >= 2 and os.path.basename(command[0]) == CONTAINER and command[1] == "probe":
        return command
    return None


def option(command, name):
    return command[command.index(name) + 1] if name in command[:-1] else None


def check_sidecar(ck, name, docs, config, pod, containers, volumes):
    tokend = containers[CONTAINER]
    inits = {c["name"]: c for c in pod.get("initContainers", [])}
    regular = {c["name"]: c for c in pod.get("containers", [])}
    ck.check(CONTAINER in inits and CONTAINER not in regular,
             "%s: chat-tokend must be a native sidecar (in initContainers)" % name)
    ck.check(tokend.get("restartPolicy") == "Always",
             "%s: the sidecar init container needs restartPolicy: Always" % name)
    ck.check(not tokend.get("ports"), "%s: chat-tokend must publish no containerPort" % name)
    listen = config.get("listen") or []
    ck.check(listen and all(a.startswith("unix:/") for a in listen),
             "%s: chat-tokend must listen on unix sockets only, got %s" % (name, listen))
    # startup, readiness, liveness: `chat-tokend probe` over the unix socket
    drain = config["shutdown"]["drain_seconds"]
    grace = config["shutdown"]["grace_seconds"]
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = tokend.get(probe_name)
        command = probe_command(probe)
        if not ck.check(command, "%s: %s must be an exec probe running `chat-tokend probe` (got %s)"
                        % (name, probe_name, probe)):
            continue
        ck.check(option(command, "--addr") in listen,
                 "%s: %s --addr %s is not a listener of the config %s"
                 % (name, probe_name, option(command, "--addr"), listen))
        timeout_ms = option(command, "--timeout-ms") or "1000"
        ck.check(timeout_ms.isdigit() and int(timeout_ms) < probe.get("timeoutSeconds", 1) * 1000,
                 "%s: %s --timeout-ms %s must stay under timeoutSeconds %s"
                 % (name, probe_name, timeout_ms, probe.get("timeoutSeconds", 1)))
    live = tokend.get("livenessProbe") or {}
    window = (live.get("failureThreshold", 3) - 1) * live.get("periodSeconds", 10)
    ck.check(window >= drain + grace,
             "%s: livenessProbe would restart a draining sidecar: (failureThreshold-1) * "
             "periodSeconds = %ss < drain + grace = %ss" % (name, window, drain + grace))
    ck.check(not config.get("health_listen"), "%s: no health_listen in the sidecar" % name)
    ck.check(not (config.get("http") or {}).get("listen"), "%s: no http listener in the sidecar" % name)
    ck.check("tls" not in config, "%s: TLS on a unix socket" % name)
    others = [c for n, c in regular.items() if n != CONTAINER]
    ck.check(others, "%s: no application container next to chat-tokend" % name)
    for addr in listen:
        sock_dir = os.path.dirname(addr[len("unix:"):])
        m = mounts_by_path(tokend).get(sock_dir)
        if not ck.check(m, "%s: the socket directory %s is not a mount" % (name, sock_dir)):
            continue
        v = volumes.get(m["name"], {})
        ck.check("emptyDir" in v, "%s: the socket directory must be an emptyDir" % name)
        ck.check(not m.get("readOnly"), "%s: chat-tokend must be able to create the socket" % name)
        for c in others:
            ck.check(any(mm["name"] == m["name"] for mm in c.get("volumeMounts", [])),
                     "%s: container %s does not mount the socket directory" % (name, c["name"]))
    ck.check(not find(docs, "Service"), "%s: a Service for a pod-local socket" % name)
    for c in others:
        ck.check(c.get("image") and not c["image"].startswith("chat-tokend"),
                 "%s: the app container needs its own image" % name)


def check_mtls(ck, name, config, tokend, volumes, k8s_dir):
    tls = config.get("tls") or {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        ck.check(tls.get(key), "%s: tls.%s must be set" % (name, key))
    expected = {"cert_file": "tls.crt", "key_file": "tls.key", "client_ca_file": "ca.crt"}
    secret_names = set()
    for key, base in expected.items():
        path = tls.get(key) or ""
        ck.check(os.path.basename(path) == base, "%s: tls.%s should be cert-manager's %s" % (name, key, base))
        m, v = volume_for_file(path, tokend, volumes)
        if v and "secret" in v:
            secret_names.add(v["secret"]["secretName"])
    ck.check(len(secret_names) == 1, "%s: tls files must come from one Secret, got %s" % (name, secret_names))
    clients = (config.get("auth") or {}).get("mtls_clients") or []
    ck.check(clients, "%s: mtls_clients must list the callers" % name)
    for client in clients:
        ck.check(re.match(r"^spiffe://[^/]+/\S+$", str(client.get("id", ""))),
                 "%s: mtls client id %r is not a SPIFFE ID" % (name, client.get("id")))
    ck.check(not (config.get("auth") or {}).get("allow_unauthenticated"), "%s: unauthenticated" % name)
    cert_path = os.path.join(k8s_dir, "overlays", "mtls", "certificate.example.yaml")
    if ck.check(os.path.exists(cert_path), "%s: certificate.example.yaml missing" % name):
        cert = load_yaml_docs(cert_path)[0]
        ck.check(cert["kind"] == "Certificate" and cert["spec"]["secretName"] in secret_names,
                 "%s: certificate.example.yaml must write the mounted Secret %s" % (name, secret_names))
        ck.check(any(u.startswith("spiffe://") for u in cert["spec"].get("uris", [])),
                 "%s: the server certificate carries no SPIFFE ID" % name)


def secret_example_keys(k8s_dir):
    path = os.path.join(k8s_dir, "base", "secret.example.yaml")
    docs = load_yaml_docs(path)
    secret = docs[0]
    return set((secret.get("stringData") or {}).keys()) | set((secret.get("data") or {}).keys())


def check_secret_example(ck, k8s_dir):
    path = os.path.join(k8s_dir, "base", "secret.example.yaml")
    docs = load_yaml_docs(path)
    ck.check(len(docs) == 1 and docs[0].get("kind") == "Secret", "secret.example.yaml: one Secret")
    secret = docs[0]
    ck.check(secret["metadata"]["name"] == "chat-tokend-secrets", "secret.example.yaml: name chat-tokend-secrets")
    ck.check(not secret.get("data"), "secret.example.yaml: use stringData placeholders, not data")
    for key, value in (secret.get("stringData") or {}).items():
        ck.check(re.fullmatch(r"REPLACE_WITH_[A-Z0-9_]+", str(value)),
                 "secret.example.yaml: %s is not a REPLACE_WITH_... placeholder" % key)
    with open(os.path.join(k8s_dir, "base", "kustomization.yaml"), encoding="utf-8") as f:
        kust = yaml.safe_load(f)
    ck.check("secret.example.yaml" not in kust.get("resources", []),
             "base: secret.example.yaml must not be applied (it would overwrite the real Secret)")


# ---------------------------------------------------------------- driver

def render(renderer, kubectl, directory):
    if renderer == "kubectl":
        return render_kubectl(kubectl, directory)
    return render_builtin(directory)


def run_checks(name, docs, k8s_dir):
    ck = Checker(name)
    check_overlay(ck, name, docs, k8s_dir)
    if name == "base":
        check_secret_example(ck, k8s_dir)
    return ck


def self_test(k8s_dir):
    """Each mutation breaks one rule; the checks must notice every one."""
    base = render_builtin(os.path.join(k8s_dir, "base"))
    sidecar = render_builtin(os.path.join(k8s_dir, "overlays", "sidecar"))
    mtls = render_builtin(os.path.join(k8s_dir, "overlays", "mtls"))
    rendered = {"base": base, "sidecar": sidecar, "mtls": mtls}

    def dep(docs):
        return find(docs, "Deployment")[0]["spec"]["template"]["spec"]

    def tokend(docs):
        return next(c for c in dep(docs).get("initContainers", []) + dep(docs)["containers"]
                    if c["name"] == CONTAINER)

    def move_to_containers(docs):
        c = tokend(docs)
        dep(docs)["initContainers"].remove(c)
        c.pop("restartPolicy")
        dep(docs)["containers"].append(c)

    def probe_arg(docs, probe, flag, value):
        command = tokend(docs)[probe]["exec"]["command"]
        command[command.index(flag) + 1] = value

    def edit_config(docs, fn):
        cm = find(docs, "ConfigMap")[0]
        cfg = yaml.safe_load(cm["data"]["config.yaml"])
        fn(cfg)
        cm["data"]["config.yaml"] = yaml.safe_dump(cfg)

    mutations = [
        ("base", "readOnlyRootFilesystem off", lambda d: tokend(d)["securityContext"].update(readOnlyRootFilesystem=False)),
        ("base", "runs as root", lambda d: tokend(d)["securityContext"].update(runAsUser=0)),
        ("base", "capabilities kept", lambda d: tokend(d)["securityContext"].pop("capabilities")),
        ("base", "no seccomp", lambda d: [tokend(d)["securityContext"].pop("seccompProfile"),
                                          dep(d)["securityContext"].pop("seccompProfile")]),
        ("base", "probe on the main port", lambda d: tokend(d)["readinessProbe"].update(grpc={"port": 50051})),
        ("base", "tcp liveness probe", lambda d: tokend(d).update(livenessProbe={"tcpSocket": {"port": 50052}})),
        ("base", "grace period too short", lambda d: dep(d).update(terminationGracePeriodSeconds=25)),
        ("base", "exec preStop", lambda d: tokend(d).update(lifecycle={"preStop": {"exec": {"command": ["sleep", "5"]}}})),
        ("base", "preStop sleep != drain", lambda d: tokend(d).update(lifecycle={"preStop": {"sleep": {"seconds": 2}}})),
        ("base", "no appProtocol", lambda d: find(d, "Service")[0]["spec"]["ports"][0].pop("appProtocol")),
        ("base", "replicas 1", lambda d: find(d, "Deployment")[0]["spec"].update(replicas=1)),
        ("base", "no PDB", lambda d: d.remove(find(d, "PodDisruptionBudget")[0])),
        ("base", "no NetworkPolicy", lambda d: d.remove(find(d, "NetworkPolicy")[0])),
        ("base", "unauthenticated on 0.0.0.0", lambda d: edit_config(d, lambda c: c["auth"].update(allow_unauthenticated=True))),
        ("base", "unknown config key", lambda d: edit_config(d, lambda c: c.update(listen_port=1))),
        ("base", "inline certificate", lambda d: edit_config(d, lambda c: c["app"].update(certificate="0" * 32))),
        ("base", "drain longer than budget", lambda d: edit_config(d, lambda c: c["shutdown"].update(drain_seconds=15))),
        ("base", "secret files 0644", lambda d: dep(d)["volumes"][1]["secret"].pop("defaultMode")),
        ("base", "secret files 0444", lambda d: dep(d)["volumes"][1]["secret"].update(defaultMode=0o444)),
        ("base", "no fsGroup", lambda d: dep(d)["securityContext"].pop("fsGroup")),
        ("mtls", "tls secret files 0644", lambda d: [v["secret"].pop("defaultMode") for v in dep(d)["volumes"] if v.get("secret", {}).get("secretName") == "chat-tokend-tls"]),
        ("base", "secret env inline", lambda d: tokend(d).update(env=[{"name": "CHAT_TOKEN_APP_CERTIFICATE", "value": "x"}])),
        ("sidecar", "sidecar listens on tcp", lambda d: edit_config(d, lambda c: c["listen"].append("0.0.0.0:50051"))),
        ("sidecar", "sidecar publishes a port", lambda d: tokend(d).update(ports=[{"containerPort": 50051}])),
        ("sidecar", "native grpc probe", lambda d: tokend(d).update(livenessProbe={"grpc": {"port": 50052}})),
        ("sidecar", "not a native sidecar", lambda d: tokend(d).pop("restartPolicy")),
        ("sidecar", "sidecar in containers", move_to_containers),
        ("sidecar", "no startupProbe", lambda d: tokend(d).pop("startupProbe")),
        ("sidecar", "probe on another socket", lambda d: probe_arg(d, "readinessProbe", "--addr", "unix:/tmp/x.sock")),
        ("sidecar", "probe timeout too long", lambda d: probe_arg(d, "livenessProbe", "--timeout-ms", "5000")),
        ("sidecar", "liveness kills the drain", lambda d: tokend(d)["livenessProbe"].update(failureThreshold=2)),
        ("sidecar", "shell probe", lambda d: tokend(d)["startupProbe"]["exec"].update(command=["sh", "-c", "true"])),
        ("mtls", "no client CA", lambda d: edit_config(d, lambda c: c["tls"].pop("client_ca_file"))),
        ("mtls", "not a SPIFFE ID", lambda d: edit_config(d, lambda c: c["auth"]["mtls_clients"][0].update(id="backend"))),
        ("mtls", "no health_listen", lambda d: edit_config(d, lambda c: c.pop("health_listen"))),
    ]
    failed = 0
    for overlay, what, mutate in mutations:
        docs = copy.deepcopy(rendered[overlay])
        mutate(docs)
        try:
            ck = Checker(overlay)
            check_overlay(ck, overlay, docs, k8s_dir)
            caught = bool(ck.failures)
        except Exception as e:  # a crash on a broken manifest also counts as caught
            caught, ck = True, None
            print("  (%s raised %s)" % (what, type(e).__name__))
        print("%s mutation %-30s %s" % ("ok  " if caught else "FAIL", what,
                                         ck.failures[0] if ck and ck.failures else ""))
        failed += not caught
    for overlay, docs in rendered.items():
        ck = run_checks(overlay, copy.deepcopy(docs), k8s_dir)
        if ck.failures:
            print("FAIL unmutated %s: %s" % (overlay, ck.failures))
            failed += 1
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k8s-dir", required=True, help="deploy/k8s")
    ap.add_argument("--overlay", choices=sorted(OVERLAYS), action="append")
    ap.add_argument("--renderer", choices=("auto", "kubectl", "builtin"), default="auto")
    ap.add_argument("--kubectl", default=shutil.which("kubectl"))
    ap.add_argument("--compare", action="store_true", help="kubectl and built-in renders agree")
    ap.add_argument("--self-test", action="store_true", help="the checks catch broken manifests")
    args = ap.parse_args()
    overlays = args.overlay or sorted(OVERLAYS)

    if args.self_test:
        return self_test(args.k8s_dir)
    kubectl = args.kubectl if args.kubectl and os.access(args.kubectl, os.X_OK) else None
    if args.compare:
        if not kubectl:
            print("SKIP: kubectl not found; the built-in renderer cannot be compared "
                  "(the checks still run on its output in deploy.manifests_builtin.*)")
            return SKIP
        status = 0
        for name in overlays:
            directory = os.path.join(args.k8s_dir, OVERLAYS[name])
            a = normalise(render_kubectl(kubectl, directory))
            b = normalise(render_builtin(directory))
            if a == b:
                print("ok   %s: kubectl kustomize and the built-in renderer agree (%d resources)" % (name, len(a)))
            else:
                status = 1
                print("FAIL %s: renders differ" % name)
                import difflib
                sys.stdout.writelines(difflib.unified_diff(
                    yaml.safe_dump_all(a).splitlines(True), yaml.safe_dump_all(b).splitlines(True),
                    "kubectl", "builtin"))
        return status

    renderer = args.renderer
    if renderer == "auto":
        renderer = "kubectl" if kubectl else "builtin"
        if not kubectl:
            print("note: kubectl not found; rendering with the built-in renderer "
                  "(same YAML files, the kustomize subset these manifests use)")
    elif renderer == "kubectl" and not kubectl:
        print("SKIP: kubectl not found (deploy.manifests_builtin.* runs the same checks)")
        return SKIP
    status = 0
    for name in overlays:
        directory = os.path.join(args.k8s_dir, OVERLAYS[name])
        try:
            docs = render(renderer, kubectl, directory)
        except (subprocess.CalledProcessError, CheckFailed, yaml.YAMLError, OSError) as e:
            detail = getattr(e, "stderr", None) or str(e)
            print("FAIL %s: rendering with %s failed: %s" % (name, renderer, detail))
            status = 1
            continue
        ck = run_checks(name, docs, args.k8s_dir)
        kinds = ", ".join(sorted({d["kind"] for d in docs}))
        if ck.failures:
            status = 1
            print("FAIL %s (%s): %d of %d checks failed" % (name, renderer, len(ck.failures),
                                                          len(ck.failures) + ck.passed))
            for f in ck.failures:
                print("  - " + f)
        else:
            print("ok   %s (%s): %d checks on %s" % (name, renderer, ck.passed, kinds))
    return status


if __name__ == "__main__":
    sys.exit(main())
