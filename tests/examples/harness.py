"""Harness of the client-example tests: a live chat-tokend (the real binary,
on a free TCP port and a unix socket, API-key auth) and the check of tokens
with the official npm builder agora-token (verify_tokens.js).

Standard library only; run with /usr/bin/python3.

Environment (set by tests/examples/CMakeLists.txt):
  CT_BIN_DIR     where chat-tokend and chat-token-client are
  CT_SOURCE_DIR  the repository (client-examples/, proto/, node_modules/)
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
BIN_DIR = os.environ.get("CT_BIN_DIR", os.path.join(SOURCE_DIR, "build", "bin"))
TOKEND = os.path.join(BIN_DIR, "chat-tokend")
EXAMPLES_DIR = os.path.join(SOURCE_DIR, "client-examples")
NODE_MODULES = os.path.join(SOURCE_DIR, "node_modules")
NODE = shutil.which("node") or "node"

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERTIFICATE = "5CFd2fd1755d40ecb72977518be15d3b"
APP_KEY = "demo#demo"
BACKEND_KEY = "example-backend-key-51c0ffee"
ADMIN_KEY = "example-admin-key-7ab1e5"

START_TIMEOUT = 15.0


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


def node_env(extra=None):
    env = dict(os.environ)
    env["NODE_PATH"] = NODE_MODULES
    env.update(extra or {})
    return env


class ServerError(Exception):
    pass


class Server:
    """One chat-tokend listening on 127.0.0.1:<free port> and on a unix
    socket, with two API keys: backend (GetUserToken, RenewToken) and admin
    (all three methods). Use as a context manager; leaving it stops the
    server with SIGTERM and raises when it did not exit 0 or logged a
    secret (keys, certificate, or a token added with add_secret)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ct-ex-")
        self.socket_path = os.path.join(self.dir, "grpc.sock")
        config = {
            "listen": ["127.0.0.1:0", "unix:" + self.socket_path],
            "app": {"id": APP_ID, "certificate": CERTIFICATE, "key": APP_KEY},
            "user_tokens": {"identity": "username"},
            "auth": {"api_keys": [
                {"name": "backend", "sha256": sha256_hex(BACKEND_KEY),
                 "methods": ["GetUserToken", "RenewToken"]},
                {"name": "admin", "sha256": sha256_hex(ADMIN_KEY),
                 "methods": ["GetAppToken", "GetUserToken", "RenewToken"]},
            ]},
            "shutdown": {"drain_seconds": 0, "grace_seconds": 2},
        }
        self.config_path = os.path.join(self.dir, "chat-tokend.yaml")
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=1)  # JSON is YAML
        self.secrets = {CERTIFICATE, BACKEND_KEY, ADMIN_KEY}
        self.proc = None
        self.lines = []
        self.events = []
        self._cond = threading.Condition()
        self._reader = None
        self.address = None  # host:port of the TCP listener

    @property
    def unix_target(self):
        return "unix:" + self.socket_path

    def add_secret(self, value):
        if value:
            self.secrets.add(value)

    def __enter__(self):
        self.proc = subprocess.Popen([TOKEND, "--config", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        with self._cond:
            while not any(e.get("event") == "started" for e in self.events):
                if time.monotonic() > deadline or not self._reader.is_alive():
                    self._kill()
                    raise ServerError("chat-tokend did not start:\n" + self.stderr_text())
                self._cond.wait(0.2)
            listening = [e["message"] for e in self.events if e.get("event") == "listening"]
        tcp = [m for m in listening if not m.startswith("unix:")]
        if not tcp or self.unix_target not in listening:
            self._kill()
            raise ServerError("chat-tokend listens on %r, not TCP + %s"
                              % (listening, self.unix_target))
        self.address = tcp[0]
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.stop()
        finally:
            self._kill()
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            with self._cond:
                self.lines.append(line)
                if isinstance(event, dict):
                    self.events.append(event)
                self._cond.notify_all()

    def stderr_text(self):
        with self._cond:
            return "\n".join(self.lines)

    def rpc_events(self, method=None):
        with self._cond:
            return [e for e in self.events if e.get("event") == "rpc"
                    and (method is None or e.get("method") == method)]

    def stop(self, timeout=15.0):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ServerError("chat-tokend did not exit after SIGTERM:\n" + self.stderr_text())
        self._reader.join(5)
        if rc != 0:
            raise ServerError("chat-tokend exited %d:\n%s" % (rc, self.stderr_text()))
        text = self.stderr_text()
        leaked = [s for s in self.secrets if s in text]
        if leaked:
            raise ServerError("chat-tokend logged %d secret(s), e.g. %.10s..."
                              % (len(leaked), leaked[0]))

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()


def verify_tokens(checks):
    """checks: [{token, kind: "user"|"app", user_id?, ttl?}]. Each token is
    parsed and its signature verified by npm agora-token with CERTIFICATE;
    app id, privilege, user id and TTL are compared. Returns
    [{issue_ts, expire, user_id}] in order; raises AssertionError naming the
    failing check otherwise."""
    payload = {"app_id": APP_ID, "certificate": CERTIFICATE, "checks": checks}
    proc = subprocess.run([NODE, os.path.join(HERE, "verify_tokens.js")],
                          input=json.dumps(payload).encode(), capture_output=True,
                          env=node_env(), timeout=30)
    if proc.returncode != 0:
        raise AssertionError("agora-token rejects a token: "
                             + proc.stderr.decode("utf-8", "replace").strip())
    return json.loads(proc.stdout)
