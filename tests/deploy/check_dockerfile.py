#!/usr/bin/python3
"""Checks the Dockerfile (and .dockerignore) for the image's rules, without a
Docker engine: two or more stages on Debian bookworm; the build stage
installs its packages with scripts/install-deps (the script CI runs) and
builds chat-tokend and chat-token; the runtime stage installs no -dev
package or toolchain, runs as a numeric non-root USER, starts with an
exec-form ENTRYPOINT ["chat-tokend"] and CMD ["--config", FILE] that the
image ships, exposes the ports of the default config, carries the OCI
labels, and bakes in no secret (no ARG or ENV named like one, no key or
certificate files copied).

--runtime-libs BINARY...: also checks that every shared library the built
binaries load comes from a package the runtime stage installs (or one of
their dependencies, or a package every Debian image has); exit 77 when the
binaries are not built.

Run with /usr/bin/python3 (PyYAML from Debian's python3-yaml). Exit 0 pass,
1 fail, 77 skipped."""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_manifests import Checker  # noqa: E402  (one Checker for the deploy checks)

try:
    import yaml
except ImportError:
    sys.exit("check_dockerfile: PyYAML is missing; run scripts/install-deps "
             "(Debian python3-yaml) and use /usr/bin/python3")

SKIP = 77
SECRET_NAME = re.compile(r"CERT|KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE", re.I)
OCI_LABELS = ("title", "description", "source", "licenses", "version")
TOOLCHAIN = {"build-essential", "gcc", "g++", "clang", "cmake", "make", "pkg-config",
             "protobuf-compiler", "protobuf-c-compiler"}


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
        words = shlex.split(cmd.replace("\\", " "))
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
    for s in froms:
        ck.check(re.fullmatch(r"(docker\.io/)?(library/)?debian:bookworm(-slim)?(@sha256:[0-9a-f]{64})?",
                              s["image"]), "FROM %s: not debian:bookworm(-slim)" % s["image"])
    if len(froms) < 2:
        return
    build, final = froms[0], froms[-1]
    ck.check(final["image"].split("@")[0].endswith("bookworm-slim"),
             "the runtime stage should start from debian:bookworm-slim")

    # ---- build stage: the CI script, then the two targets.
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
    ck.check(re.search(r"cmake --build \S+ --target chat-tokend chat-token\b", build_run),
             "build stage: cmake --build ... --target chat-tokend chat-token")

    # ---- runtime stage.
    body = final["body"]
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
    cm = exec_form(cmd[-1]) if cmd else None
    ck.check(cm is not None and len(cm) == 2 and cm[0] == "--config",
             'CMD must be exec form ["--config", FILE]')
    config_path = cm[1] if cm and len(cm) == 2 else None

    pkgs = [p for kw, arg in body if kw == "RUN" for p in apt_packages(arg)]
    ck.check(pkgs, "runtime stage: installs no runtime libraries")
    for p in pkgs:
        ck.check(not p.endswith("-dev") and p not in TOOLCHAIN,
                 "runtime stage installs %s: build-time only" % p)
    ck.check(all("--no-install-recommends" in arg for kw, arg in body
                 if kw == "RUN" and apt_packages(arg)),
             "runtime stage: apt-get install without --no-install-recommends")
    ck.check(all("rm -rf /var/lib/apt/lists" in arg for kw, arg in body
                 if kw == "RUN" and apt_packages(arg)),
             "runtime stage: apt lists left in the image")

    # What the runtime stage copies: the two binaries from the build stage,
    # the default config from the repo, and nothing secret.
    copies = [shlex.split(arg) for kw, arg in body if kw in ("COPY", "ADD")]
    from_build = [c for c in copies if any(w.startswith("--from=") for w in c)]
    copied = " ".join(" ".join(c) for c in from_build)
    ck.check("bin/chat-tokend" in copied and "bin/chat-token " in copied + " ",
             "runtime stage: copy chat-tokend and chat-token from the build stage")
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
    for p in ("valgrind", "clang-format", "nghttp2-client"):
        ck.check(p not in lists["build"], "install-deps --build-only installs test tool %s" % p)
    rc = subprocess.run(["bash", script, "--no-such-option"], capture_output=True).returncode
    ck.check(rc == 2, "install-deps: an unknown option must fail (exit 2), got %d" % rc)


def runtime_packages(text):
    final = [s for s in stages(parse_dockerfile(text)) if s["image"]][-1]
    return [p for kw, arg in final["body"] if kw == "RUN" for p in apt_packages(arg)]


def check_runtime_libs(ck, text, binaries):
    if not shutil.which("dpkg") or not shutil.which("apt-cache"):
        print("SKIP: dpkg/apt-cache not found")
        return SKIP
    present = [b for b in binaries if os.path.isfile(b)]
    if not present:
        print("SKIP: binaries not built yet: %s" % ", ".join(binaries))
        return SKIP
    pkgs = runtime_packages(text)
    for p in pkgs:
        ok = subprocess.run(["apt-cache", "show", p], capture_output=True).returncode == 0
        ck.check(ok, "runtime package %s is not known to apt (exact bookworm name?)" % p)
    deps = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                           "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                           "--no-pre-depends"] + pkgs, capture_output=True, text=True).stdout
    closure = {l.strip().split(":")[0] for l in deps.splitlines() if l and not l.startswith(" ")}
    closure |= set(pkgs)
    libs = {}  # binary -> shared libraries it loads
    for binary in present:
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        libs[binary] = []
        for line in ldd.splitlines():
            m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)", line)
            if m:
                libs[binary].append(m.group(1))
    # one dpkg -S for every path a library may be registered under (merged
    # /usr: either spelling, or the link's target); dpkg -S per library took
    # most of a minute for chat-tokend's ~70 libraries
    def candidates(lib):
        return [lib, re.sub(r"^/usr", "", lib), "/usr" + lib, os.path.realpath(lib)]
    paths = sorted({c for ls in libs.values() for lib in ls for c in candidates(lib)})
    owners = {}
    out = subprocess.run(["dpkg", "-S"] + paths, capture_output=True, text=True).stdout
    for line in out.splitlines():
        pkg, _, path = line.partition(": ")
        owners.setdefault(path.strip(), pkg.split(",")[0].split(":")[0].strip())
    priorities = {}
    for binary, ls in libs.items():
        for lib in ls:
            owner = next((owners[c] for c in candidates(lib) if c in owners), None)
            if not ck.check(owner, "%s: %s belongs to no Debian package" % (os.path.basename(binary), lib)):
                continue
            if owner in closure:
                ck.passed += 1
                continue
            if owner not in priorities:
                priorities[owner] = subprocess.run(
                    ["dpkg-query", "-W", "-f=${Priority} ${Essential}", owner],
                    capture_output=True, text=True).stdout
            prio = priorities[owner]
            ck.check(prio.startswith("required") or prio.endswith("yes"),
                     "%s needs %s (package %s), which the runtime stage does not install"
                     % (os.path.basename(binary), lib, owner))
    return 0


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
        ("-dev package at run time", sub("libjansson4", "libjansson-dev")),
        ("compiler at run time", sub("libjansson4", "libjansson4 build-essential")),
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
    ap.add_argument("--runtime-libs", nargs="+", metavar="BINARY")
    ap.add_argument("--self-test", action="store_true", help="the checks catch a broken Dockerfile")
    args = ap.parse_args()
    with open(os.path.join(args.repo, "Dockerfile"), encoding="utf-8") as f:
        text = f.read()
    if args.self_test:
        return self_test(args.repo, text)
    ck = Checker("Dockerfile")
    if args.runtime_libs:
        if check_runtime_libs(ck, text, args.runtime_libs) == SKIP:
            return SKIP
    else:
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
