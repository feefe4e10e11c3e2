"""Harness for the HTTP side tests: runs the real chat-tokend on ports 0
through tests/common/tokend.py (the harness every suite shares), learns the
gRPC and HTTP ports from its "listening" log lines, calls it with the real
curl, and checks tokens with the npm agora-token package.

Environment (set by tests/http/CMakeLists.txt):
  CT_BIN_DIR     where chat-tokend (and fake-chat-server) are
  CT_SOURCE_DIR  the repository (node_modules/)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import tokend  # noqa: E402  (tests/common/tokend.py)
from tokend import (APP_ID, BIN_DIR, CERTIFICATE, NODE, NODE_PATH,  # noqa: E402,F401
                    OTHER_CERTIFICATE, SOURCE_DIR, TOKEND, sha256_hex)

CURL = shutil.which("curl") or "/usr/bin/curl"

APP_KEY = "org#app"
WEB_KEY = "web-key-5b1e0c7d9a"  # GetUserToken + RenewToken
ADMIN_KEY = "admin-key-8d2f4a6c1e"  # every method
ORIGIN = "http://localhost:8080"


def base_config(**overrides):
    """Loopback listeners on port 0, API keys, username identity, HTTP on."""
    cfg = {
        "listen": ["127.0.0.1:0"],
        "app": {"id": APP_ID, "certificate": CERTIFICATE, "key": APP_KEY},
        "tokens": {"default_ttl_seconds": 3600, "max_ttl_seconds": 7200,
                   "renew_grace_seconds": 60},
        "user_tokens": {"identity": "username"},
        "auth": {"api_keys": [tokend.api_key("web", WEB_KEY, tokend.USER_METHODS),
                              tokend.api_key("admin", ADMIN_KEY, tokend.ALL_METHODS)]},
        "workers": 2,
        "shutdown": {"drain_seconds": 0, "grace_seconds": 2},
        "http": {"listen": "127.0.0.1:0", "compat_routes": True,
                 "cors": {"allowed_origins": [ORIGIN]}, "max_connections": 64},
    }
    cfg.update(overrides)
    return cfg


class Server:
    """chat-tokend (tests/common/tokend.py) with its gRPC and HTTP ports."""

    def __init__(self, config):
        self.tokend = tokend.Tokend(config, secrets=(WEB_KEY, ADMIN_KEY), prefix="ct-http-")
        self.tokend.start()
        http = self.tokend.wait_event("listening", tokend.START_TIMEOUT,
                                      lambda e: e.get("message", "").startswith("http://"))
        grpc = [m for m in self.tokend.listening if m.startswith("127.0.0.1:")]
        if http is None or not grpc:
            self.tokend.cleanup()
            raise tokend.TokendError("chat-tokend did not start:\n" + self.log_text())
        self.http_port = int(http["message"].rsplit(":", 1)[1])
        self.grpc_port = int(grpc[0].rsplit(":", 1)[1])
        self.base = "http://127.0.0.1:%d" % self.http_port

    def events(self, name=None):
        return self.tokend.find_events(name)

    def signal(self, sig=signal.SIGTERM):
        self.tokend.signal(sig)

    def stop(self):
        """SIGTERM, wait; returns the exit code (raises when it logged a
        secret or did not exit 0)."""
        return self.tokend.stop(timeout=30)

    def log_text(self):
        return self.tokend.stderr_text()

    def stop_clean(self, *secrets):
        """stop(), asserting exit 0 and that the log holds none of secrets
        (raw, case-sensitive) nor any token ("007eJ")."""
        log = self.log_text()
        rc = self.stop()
        assert rc == 0, "chat-tokend exited %d" % rc
        for secret in secrets + ("007eJ",):
            assert secret not in log, "the log holds a secret (%s...)" % secret[:4]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> list of values
        self.body = body

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Response(%d, %r, %r)" % (self.status, self.headers, self.body[:200])


def curl(url, method=None, headers=(), data=None, data_file=None, extra=()):
    """One request with the real curl; the final response's status, headers
    and body (text)."""
    with tempfile.NamedTemporaryFile(prefix="ct-http-h-") as head:
        args = [CURL, "-sS", "--max-time", "20", "-D", head.name, "-o", "-"]
        if method:
            args += ["-X", method]
        for h in headers:
            args += ["-H", h]
        if data is not None:
            args += ["--data-binary", data]
        if data_file is not None:
            args += ["--data-binary", "@" + data_file]
        args += list(extra)
        args.append(url)
        proc = subprocess.run(args, capture_output=True, timeout=30)
        with open(head.name, "rb") as f:
            raw = f.read().decode("latin-1")
    if proc.returncode != 0:
        return Response(0, {}, proc.stderr.decode(errors="replace"))
    blocks = [b for b in raw.replace("\r\n", "\n").split("\n\n") if b.strip()]
    last = blocks[-1].split("\n")
    status = int(last[0].split()[1])
    headers = {}
    for line in last[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Response(status, headers, proc.stdout.decode(errors="replace"))


def verify_tokens(checks):
    """Checks tokens with npm agora-token (tests/common/verify_tokens.js);
    returns its per-token facts or raises AssertionError with its message.
    A check's not_certificate is one certificate that must not verify."""
    for c in checks:
        if "not_certificate" in c:
            c["not_certificates"] = [c.pop("not_certificate")]
    return tokend.verify_tokens(checks)
