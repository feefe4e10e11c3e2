#!/usr/bin/python3
"""Checks the Dockerfile (and .dockerignore) for the image's rules, without a
Docker engine (tests/container builds and runs the image for real): a build
stage on Debian bookworm that installs its packages with scripts/install-deps
(the script CI runs), configures without the tests (-DCT_BUILD_TESTS=OFF) and
builds chat-tokend and chat-token, then assembles the runtime root: the
binaries, their shared-library closure computed with ldd, the CA bundle, and
passwd/group lines for 65532. The runtime stage is FROM scratch: it runs
nothing (no RUN: there is no shell), copies that root, runs as a numeric
non-root USER, starts with an exec-form ENTRYPOINT ["chat-tokend"] (PATH set)
and CMD ["--config", FILE] that the image ships, exposes the ports of the
default config, carries the OCI labels, and bakes in no secret (no ARG or ENV
named like one, no key or certificate files copied).

Run with /usr/bin/python3 (PyYAML from Debian's python3-yaml). Exit 0 pass,
1 fail."""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_manifests import Checker  # noqa: E402  (one Checker for the deploy checks)

try:
    import yaml
except ImportError:
    sys.exit("check_dockerfile: PyYAML is missing; run scripts/install-deps "
             "(Debian python3-yaml) and use /usr/bin/python3")

SECRET_NAME = re.compile(r"CERT|KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE", re.I)
OCI_LABELS = ("title", "description", "source", "licenses", "version")


def parse_dockerfile(text):
    """Instructions as (KEYWORD, argument text), line continuations joined,
    comments and parser directives dropped."""
    instructions = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    if current:
        keyword, _, rest = current.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def stages(instructions):
    out = []
    for kw, arg in instructions:
        if kw == "FROM":
            words = arg.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            out.append({"image": words[0], "name": name, "body": []})
        elif out:
            out[-1]["body"].append((kw, arg))
        elif kw not in ("ARG",):
            out.append({"image": None, "name": None, "body": [(kw, arg)]})
    return out


def key_values(arg):
    """LABEL/ENV/ARG arguments: k=v pairs (shell-quoted), or the legacy
    `ENV key value` form."""
    words = shlex.split(arg)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:]) if len(words) > 1 else None}
    pairs = {}
    for w in words:
        k, eq, v = w.partition("=")
        pairs[k] = v if eq else None
    return pairs


def apt_packages(run_arg):
    """Package names an `apt-get install` in a RUN line installs."""
    pkgs = []
    for cmd in re.split(r"&&|;|\|\|", run_arg):
        try:
            words = shlex.split(cmd.replace("\\", " "))
        except ValueError:  # split inside a quoted script (awk '... && ...')
            words = cmd.split()
        words = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
        if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
            after = words[words.index("install") + 1:]
            pkgs += [w for w in after if not w.startswith("-")]
    return pkgs


def exec_form(arg):
    try:
        value = json.loads(arg)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def install_deps_lists(script):
    """The build_packages and packages arrays of scripts/install-deps, as bash
    expands them (so the checks read the script, not a copy of it)."""
    code = ('set -e; src=$(sed -n "/^build_packages=(/,/^)/p; /^packages=(/,/^)/p" "$1"); '
            'eval "$src"; printf "%s\\n" "${build_packages[@]}"; echo --; '
            'printf "%s\\n" "${packages[@]}"')
    out = subprocess.run(["bash", "-c", code, "x", script], check=True,
                         capture_output=True, text=True).stdout
    build, _, full = out.partition("--\n")
    return {"build": build.split(), "full": full.split()}


def check_dockerfile(ck, repo, text):
    ins = parse_dockerfile(text)
    st = stages(ins)
    froms = [s for s in st if s["image"]]
    ck.check(len(froms) >= 2, "multi-stage: expected >= 2 FROM, found %d" % len(froms))
    if len(froms) < 2:
        return
    build, final = froms[0], froms[-1]
    for s in froms[:-1]:
        ck.check(re.fullmatch(r"(docker\.io/)?(library/)?debian:bookworm(-slim)?(@sha256:[0-9a-f]{64})?",
                              s["image"]), "FROM %s: not debian:bookworm(-slim)" % s["image"])
    ck.check(final["image"] == "scratch",
             "the runtime stage should start FROM scratch (got %s): no shell, no package "
             "manager" % final["image"])

    # ---- build stage: the CI script, then the two targets, then the root.
    runs = [arg for kw, arg in build["body"] if kw == "RUN"]
    copies = [arg for kw, arg in build["body"] if kw == "COPY"]
    dep_runs = [n for n, r in enumerate(runs) if re.search(r"(^|[\s/])scripts/install-deps\b", r)]
    ck.check(dep_runs, "build stage: no RUN of scripts/install-deps (the script CI runs)")
    ck.check(not any(apt_packages(r) for r in runs),
             "build stage: apt-get install outside scripts/install-deps would drift from CI")
    ck.check(any("scripts/install-deps" in c or re.match(r"^(--\S+\s+)*\.\s", c) for c in copies),
             "build stage: scripts/install-deps is not copied in")
    build_run = " ".join(runs)
    ck.check(re.search(r"cmake -S \S+ -B \S+.*-DCMAKE_BUILD_TYPE=Release", build_run),
             "build stage: cmake configure with -DCMAKE_BUILD_TYPE=Release")
    ck.check(re.search(r"cmake -S \S+ -B \S+.*-DCT_BUILD_TESTS=OFF", build_run),
             "build stage: configure with -DCT_BUILD_TESTS=OFF (install-deps --build-only "
             "has no test tools)")
    ck.check(re.search(r"cmake --build \S+ --target chat-tokend chat-token\b", build_run),
             "build stage: cmake --build ... --target chat-tokend chat-token")
    ck.check(re.search(r"\bldd\s+\S*bin/chat-tokend\s+\S*bin/chat-token\b", build_run),
             "build stage: the library closure must be computed with ldd on both binaries")
    ck.check(re.search(r"bin/chat-tokend\s+\S*bin/chat-token\s", build_run),
             "build stage: both binaries must be installed into the runtime root")
    ck.check("ca-certificates.crt" in build_run, "build stage: no CA bundle for the runtime root")
    ck.check(re.search(r":x:65532:65532:[^']*' *\\?\s*> *\S*/etc/passwd", build_run)
             and re.search(r":x:65532:[^']*' *> *\S*/etc/group", build_run),
             "build stage: /etc/passwd and /etc/group need lines for 65532")

    # ---- runtime stage.
    body = final["body"]
    ck.check(not [arg for kw, arg in body if kw == "RUN"],
             "runtime stage: RUN needs a shell, and the runtime image has none")
    users = [arg for kw, arg in body if kw == "USER"]
    ck.check(users, "runtime stage: no USER (it would run as root)")
    if users:
        m = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
        ck.check(m and int(m.group(1)) != 0 and (m.group(2) is None or int(m.group(2)) != 0),
                 "runtime stage: USER %r must be numeric and non-root (uid[:gid] > 0)" % users[-1])
    entry = [arg for kw, arg in body if kw == "ENTRYPOINT"]
    cmd = [arg for kw, arg in body if kw == "CMD"]
    ep = exec_form(entry[-1]) if entry else None
    ck.check(ep is not None, "ENTRYPOINT must be exec form (a JSON array): no shell at run time")
    ck.check(ep and ep[0] == "chat-tokend", 'ENTRYPOINT must start ["chat-tokend"', )
    env = {}
    for kw, arg in body:
        if kw == "ENV":
            env.update(key_values(arg))
    ck.check("/usr/local/bin" in (env.get("PATH") or "").split(":"),
             "runtime stage: ENV PATH must hold /usr/local/bin (FROM scratch has no PATH; "
             "exec probes run `chat-tokend probe`)")
    cm = exec_form(cmd[-1]) if cmd else None
    ck.check(cm is not None and len(cm) == 2 and cm[0] == "--config",
             'CMD must be exec form ["--config", FILE]')
    config_path = cm[1] if cm and len(cm) == 2 else None

    # What the runtime stage copies: the two binaries from the build stage,
    # the default config from the repo, and nothing secret.
    copies = [shlex.split(arg) for kw, arg in body if kw in ("COPY", "ADD")]
    from_build = [c for c in copies if any(w.startswith("--from=") for w in c)]
    ck.check(from_build, "runtime stage: copy the runtime root from the build stage")
    local = [[w for w in c if not w.startswith("--")] for c in copies if c not in from_build]
    for c in local:
        for src in c[:-1]:
            ck.check(not re.search(r"\.(pem|key|crt|p12)$|secret|certificate", src, re.I),
                     "runtime stage copies %s: secrets are mounted at run time, never baked in" % src)
    if config_path:
        dest = [c for c in local if c[-1] in (config_path, os.path.dirname(config_path) + "/")]
        ck.check(dest, "the image does not ship the default config %s" % config_path)
        for c in dest:
            src = os.path.join(repo, c[0])
            if ck.check(os.path.isfile(src), "default config source %s missing" % c[0]):
                with open(src, encoding="utf-8") as f:
                    config = yaml.safe_load(f)
                ports = [config.get("health_listen"), (config.get("http") or {}).get("listen")]
                ports += config.get("listen") or []
                wanted = {a.rsplit(":", 1)[1] for a in ports if a and not a.startswith("unix:")}
                exposed = {p.split("/")[0] for kw, arg in body if kw == "EXPOSE" for p in arg.split()}
                ck.check(wanted <= exposed, "EXPOSE %s does not cover the default config's ports %s"
                         % (sorted(exposed), sorted(wanted)))

    labels = {}
    for kw, arg in body:
        if kw == "LABEL":
            labels.update(key_values(arg))
    for name in OCI_LABELS:
        ck.check(labels.get("org.opencontainers.image." + name),
                 "LABEL org.opencontainers.image.%s missing or empty" % name)

    # No secrets in ARG or ENV, in any stage: build args and ENV values are
    # readable by anyone with the image (docker history / inspect).
    for s in st:
        for kw, arg in s["body"]:
            if kw in ("ARG", "ENV"):
                for name, value in key_values(arg).items():
                    ck.check(not SECRET_NAME.search(name),
                             "%s %s: names a secret; secrets are mounted at run time" % (kw, name))
    for kw, arg in ins:
        if kw == "RUN":
            ck.check(not re.search(r"(CHAT_TOKEN_APP_CERTIFICATE|app_certificate)\s*=", arg),
                     "RUN sets a certificate")


def check_dockerignore(ck, repo):
    path = os.path.join(repo, ".dockerignore")
    if not ck.check(os.path.isfile(path), ".dockerignore missing"):
        return
    with open(path, encoding="utf-8") as f:
        rules = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    for pattern, why in ((r"^\.git/?$", ".git"), (r"^build\*?/?$|^build\*/$", "build trees"),
                         (r"node_modules", "node_modules")):
        ck.check(any(re.search(pattern, r) for r in rules), ".dockerignore must exclude %s" % why)
    for needed in ("scripts/install-deps", "deploy/k8s/base/config.yaml", "CMakeLists.txt"):
        ck.check(not any(r.rstrip("/") in (needed, needed.split("/")[0]) for r in rules),
                 ".dockerignore excludes %s, which the build needs" % needed)


def check_install_deps(ck, repo):
    script = os.path.join(repo, "scripts", "install-deps")
    lists = install_deps_lists(script)
    ck.check(lists["build"], "install-deps: build_packages is empty")
    missing = set(lists["build"]) - set(lists["full"])
    ck.check(not missing, "install-deps: --build-only installs %s, which the default does not"
             % sorted(missing))
    ck.check(any(p.endswith("-dev") for p in lists["build"]) and "cmake" in lists["build"],
             "install-deps: build_packages lacks the toolchain or -dev packages")
    for p in ("valgrind", "clang-format", "nghttp2-client", "libcmocka-dev", "python3",
              "python3-yaml", "podman"):
        ck.check(p not in lists["build"], "install-deps --build-only installs test tool %s" % p)
    rc = subprocess.run(["bash", script, "--no-such-option"], capture_output=True).returncode
    ck.check(rc == 2, "install-deps: an unknown option must fail (exit 2), got %d" % rc)


def self_test(repo, text):
    """Each mutation of the Dockerfile breaks one rule; all must be caught."""
    def sub(old, new):
        def mutate(t):
            assert old in t, "self-test: %r not in the Dockerfile" % old
            return t.replace(old, new, 1)
        return mutate

    final_from = [arg for kw, arg in parse_dockerfile(text) if kw == "FROM"][-1]
    mutations = [
        ("USER root", sub("USER 65532:65532", "USER root")),
        ("USER 0", sub("USER 65532:65532", "USER 0:0")),
        ("named USER", sub("USER 65532:65532", "USER nonroot")),
        ("no USER", sub("USER 65532:65532", "")),
        ("shell-form ENTRYPOINT", sub('ENTRYPOINT ["chat-tokend"]', "ENTRYPOINT chat-tokend")),
        ("ENTRYPOINT via a shell", sub('ENTRYPOINT ["chat-tokend"]', 'ENTRYPOINT ["/bin/sh", "-c", "chat-tokend"]')),
        ("ARG with a certificate", sub("ARG VERSION=0.1.0", "ARG VERSION=0.1.0\nARG APP_CERTIFICATE=abc")),
        ("ENV with an API key", sub("ARG VERSION=0.1.0", "ARG VERSION=0.1.0\nENV BACKEND_API_KEY=abc")),
        ("legacy ENV form", sub("ARG VERSION=0.1.0", "ARG VERSION=0.1.0\nENV CHAT_TOKEN_APP_CERTIFICATE abc")),
        ("runtime on debian", sub("FROM scratch AS runtime", "FROM debian:bookworm-slim AS runtime")),
        ("RUN at run time", sub("USER 65532:65532", "RUN apt-get update\nUSER 65532:65532")),
        ("tests configured", sub(" -DCT_BUILD_TESTS=OFF", "")),
        ("libraries listed by hand", sub("ldd build/bin/chat-tokend build/bin/chat-token",
                                         "echo /lib/x86_64-linux-gnu/libc.so.6")),
        ("no CA bundle", sub("cp -L /etc/ssl/certs/ca-certificates.crt", "true")),
        ("no passwd line for 65532", sub("nonroot:x:65532:65532:", "nonroot:x:1000:1000:")),
        ("no PATH", sub("ENV PATH=/usr/local/bin", "ENV LANG=C")),
        ("one stage", lambda t: t.replace("FROM " + final_from, "# removed", 1)),
        ("not bookworm", sub("FROM debian:bookworm AS build", "FROM ubuntu:24.04 AS build")),
        ("no licenses label", sub("org.opencontainers.image.licenses=", "org.opencontainers.image.license=")),
        ("packages outside install-deps", sub("RUN bash /src/scripts/install-deps --build-only",
                                              "RUN apt-get update && apt-get install -y libgrpc-dev")),
        ("key file baked in", sub("COPY deploy/k8s/base/config.yaml",
                                  "COPY deploy/app_certificate /run/secrets/x\nCOPY deploy/k8s/base/config.yaml")),
        ("port not exposed", sub("EXPOSE 50051 50052 8090", "EXPOSE 50051")),
    ]
    failed = 0
    for what, mutate in mutations:
        ck = Checker("Dockerfile")
        check_dockerfile(ck, repo, mutate(text))
        print("%s mutation %-30s %s" % ("ok  " if ck.failures else "FAIL", what,
                                         ck.failures[0] if ck.failures else "not caught"))
        failed += not ck.failures
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--self-test", action="store_true", help="the checks catch a broken Dockerfile")
    args = ap.parse_args()
    with open(os.path.join(args.repo, "Dockerfile"), encoding="utf-8") as f:
        text = f.read()
    if args.self_test:
        return self_test(args.repo, text)
    ck = Checker("Dockerfile")
    check_dockerfile(ck, args.repo, text)
    check_dockerignore(ck, args.repo)
    check_install_deps(ck, args.repo)
    for f in ck.failures:
        print("FAIL " + f)
    print("%s: %d checks, %d failed" % ("ok" if not ck.failures else "FAIL",
                                       ck.passed + len(ck.failures), len(ck.failures)))
    return 1 if ck.failures else 0


if __name__ == "__main__":
    sys.exit(main())
