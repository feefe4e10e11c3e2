"""The ConfigMap configs of deploy/k8s (base and every overlay) are valid for
the real binary: `chat-tokend --check-config` accepts each, with the secret
files the manifests mount (/run/secrets/...) replaced by temporary files of
the right shape, and prints no secret back.

Usage: check_configs.py --k8s-dir deploy/k8s --tokend build/bin/chat-tokend"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

CERTIFICATE = "5CFd2fd1755d40ecb72977518be15d3b"
API_KEY = "deploy-check-api-key-7c1e"


def configs(k8s_dir):
    for root, _dirs, files in sorted(os.walk(k8s_dir)):
        if "config.yaml" in files:
            yield os.path.join(root, "config.yaml")


def check(path, tokend, tmp):
    text = open(path).read()
    secrets = {}

    def stand_in(match):
        mounted = match.group(0)
        if mounted not in secrets:
            local = os.path.join(tmp, "secret%d" % len(secrets))
            # an app certificate is 32 hex characters; API keys and TLS files
            # are only read at start (the TLS ones by the gRPC listener)
            content = CERTIFICATE if "certificate" in mounted else API_KEY
            with open(local, "w") as f:
                f.write(content + "\n")
            secrets[mounted] = local
        return secrets[mounted]

    text = re.sub(r"/run/secrets/[A-Za-z0-9_./-]+", stand_in, text)
    local_config = os.path.join(tmp, "config.yaml")
    with open(local_config, "w") as f:
        f.write(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_TOKEN_")}
    proc = subprocess.run([tokend, "--config", local_config, "--check-config"],
                          capture_output=True, text=True, env=env)
    problems = []
    if proc.returncode != 0:
        problems.append("exit %d: %s" % (proc.returncode, proc.stderr.strip()))
    for secret in (CERTIFICATE, API_KEY):
        if secret in proc.stdout or secret in proc.stderr:
            problems.append("printed a secret")
    if not secrets:
        problems.append("mounts no secret file: where do the certificate and keys come from?")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k8s-dir", required=True)
    ap.add_argument("--tokend", required=True)
    args = ap.parse_args()
    failed = 0
    found = list(configs(args.k8s_dir))
    if not found:
        print("FAIL: no config.yaml under %s" % args.k8s_dir)
        return 1
    for path in found:
        with tempfile.TemporaryDirectory(prefix="ct-deploy-cfg-") as tmp:
            problems = check(path, args.tokend, tmp)
        rel = os.path.relpath(path, args.k8s_dir)
        if problems:
            failed += 1
            for p in problems:
                print("FAIL %s: %s" % (rel, p))
        else:
            print("ok   %s: chat-tokend --check-config accepts it" % rel)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
