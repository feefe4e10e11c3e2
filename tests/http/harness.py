"""Harness for the HTTP side tests: runs the real chat-tokend on ports 0,
learns the gRPC and HTTP ports from its "listening" log lines, calls it with
the real curl, and checks tokens with the npm agora-token package.

Environment (set by tests/http/CMakeLists.txt):
  CT_BIN_DIR     where chat-tokend (and fake-chat-server) are
  CT_SOURCE_DIR  the repository (node_modules/)
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CT_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
BIN_DIR = os.environ.get("CT_BIN_DIR", os.path.join(SOURCE_DIR, "build-http", "bin"))
TOKEND = os.path.join(BIN_DIR, "chat-tokend")
NODE = shutil.which("node") or "node"
CURL = shutil.which("curl") or "/usr/bin/curl"
NODE_PATH = os.path.join(SOURCE_DIR, "node_modules")

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERTIFICATE = "5CFd2fd1755d40ecb72977518be15d3b"
OTHER_CERTIFICATE = "ffeeddccbbaa99887766554433221100"
APP_KEY = "org#app"
WEB_KEY = "web-key-5b1e0c7d9a"  # GetUserToken + RenewToken
ADMIN_KEY = "admin-key-8d2f4a6c1e"  # every method
ORIGIN = "http://localhost:8080"

START_TIMEOUT = 15.0


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


def base_config(**overrides):
    """Loopback listeners on port 0, API keys, username identity, HTTP on."""
    cfg = {
        "listen": ["127.0.0.1:0"],
        "app": {"id": APP_ID, "certificate": CERTIFICATE, "key": APP_KEY},
        "tokens": {"default_ttl_seconds": 3600, "max_ttl_seconds": 7200,
                   "renew_grace_seconds": 60},
        "user_tokens": {"identity": "username"},
        "auth": {"api_keys": [
            {"name": "web", "sha256": sha256_hex(WEB_KEY),
             "methods": ["GetUserToken", "RenewToken"]},
            {"name": "admin", "sha256": sha256_hex(ADMIN_KEY),
             "methods": ["GetAppToken", "GetUserToken", "RenewToken"]},
        ]},
        "workers": 2,
        "shutdown": {"drain_seconds": 0, "grace_seconds": 2},
        "http": {"listen": "127.0.0.1:0", "compat_routes": True,
                 "cors": {"allowed_origins": [ORIGIN]}, "max_connections": 64},
    }
    cfg.update(overrides)
    return cfg


class Server:
    """chat-tokend on a temporary config (JSON is YAML); stderr collected."""

    def __init__(self, config):
        self.dir = tempfile.mkdtemp(prefix="ct-http-")
        self.config_path = os.path.join(self.dir, "config.yaml")
        with open(self.config_path, "w") as f:
            json.dump(config, f)
        self.lines = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([TOKEND, "--config", self.config_path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.grpc_port = None
        self.http_port = None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for event in self.events("listening"):
                msg = event.get("message", "")
                if msg.startswith("http://"):
                    self.http_port = int(msg.rsplit(":", 1)[1])
                elif msg.startswith("127.0.0.1:"):
                    self.grpc_port = int(msg.rsplit(":", 1)[1])
            if self.http_port and self.grpc_port:
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not (self.http_port and self.grpc_port):
            self.stop()
            raise RuntimeError("chat-tokend did not start:\n" + "\n".join(self.lines))
        self.base = "http://127.0.0.1:%d" % self.http_port

    def _read(self):
        for line in self.proc.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def events(self, name=None):
        with self._lock:
            lines = list(self.lines)
        out = []
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if name is None or obj.get("event") == name:
                out.append(obj)
        return out

    def signal(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self):
        """SIGTERM, wait; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(timeout=5)
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    def log_text(self):
        with self._lock:
            return "\n".join(self.lines)


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
    """Checks tokens with npm agora-token (verify_tokens.js); returns its
    per-token facts or raises AssertionError with its message."""
    proc = subprocess.run([NODE, os.path.join(HERE, "verify_tokens.js")],
                          input=json.dumps({"checks": checks}), capture_output=True, text=True,
                          env=dict(os.environ, NODE_PATH=NODE_PATH), timeout=60)
    if proc.returncode != 0:
        raise AssertionError("agora-token: " + proc.stderr.strip())
    return json.loads(proc.stdout)
