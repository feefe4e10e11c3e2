"""The one harness that runs chat-tokend for every test suite (integration,
http, examples, faults, sanitize): standard library only, like
tests/fakes/fake_chat.py.

- Config: written as JSON (JSON is YAML), or a raw text.
- Start: the real binary (optionally under a wrapper such as valgrind), its
  JSON log read from stderr on a thread; the "listening" lines give the
  bound addresses (port 0 picks a free port).
- wait_event: the first log event of a name, or None after a timeout.
- Stop: SIGTERM, then the exit code and a check that the log never held a
  secret (keys, certificates, tokens the tests received).
- verify_tokens: tokens checked by the official npm agora-token
  (verify_tokens.js, next to this file).

Environment (set by each suite's CMakeLists.txt):
  CT_BIN_DIR     where chat-tokend, chat-token and fake-chat-server are
  CT_SOURCE_DIR  the repository (proto/, node_modules/)
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
NODE = shutil.which("node") or "node"
NODE_PATH = os.path.join(SOURCE_DIR, "node_modules")

# The test app: a public demo app ID and certificate (worthless tokens).
APP_ID = "970CA35de60c44645bbae8a215061b33"
CERTIFICATE = "5CFd2fd1755d40ecb72977518be15d3b"
OTHER_CERTIFICATE = "ffeeddccbbaa99887766554433221100"

START_TIMEOUT = 15.0


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


# What a backend key may call, and what an admin key may call.
USER_METHODS = ("GetUserToken", "RenewToken")
ALL_METHODS = ("GetAppToken", "GetUserToken", "RenewToken")


def api_key(name, key, methods):
    """An auth.api_keys entry for key (given by its SHA-256)."""
    return {"name": name, "sha256": sha256_hex(key), "methods": list(methods)}


def clean_env(extra=None):
    """os.environ without CHAT_TOKEN_* (the app section comes from the
    config), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_TOKEN_")}
    env.update(extra or {})
    return env


class TokendError(Exception):
    pass


class Tokend:
    """One chat-tokend process on a written config."""

    def __init__(self, config=None, text=None, env=None, workdir=None, secrets=(), wrapper=(),
                 start_timeout=START_TIMEOUT, prefix="ct-"):
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix=prefix)
        self.config = config
        self.config_path = os.path.join(self.dir, "chat-tokend.yaml")
        with open(self.config_path, "w") as f:
            f.write(text if text is not None else json.dumps(config, indent=1) + "\n")
        self.env = clean_env(env)
        self.wrapper = list(wrapper)
        self.start_timeout = start_timeout
        self.secrets = set(s for s in secrets if s)
        if config is not None:
            app = config.get("app", {})
            for s in [app.get("certificate")] + list(app.get("previous_certificates", [])):
                self.add_secret(s)
        self.proc = None
        self.lines = []  # raw stderr lines
        self.events = []  # parsed JSON log lines
        self.listening = []  # the "listening" messages, in order
        self.returncode = None
        self._cond = threading.Condition()
        self._reader = None

    def add_secret(self, value):
        if value:
            self.secrets.add(value)

    # -- start --

    def start(self):
        """Starts the process and waits for its "started" event."""
        self.proc = subprocess.Popen(self.wrapper + [TOKEND, "--config", self.config_path],
                                     env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if self.wait_event("started", self.start_timeout) is None:
            self.kill()
            raise TokendError("chat-tokend did not start:\n" + self.stderr_text())
        self.listening = [e["message"] for e in self.find_events("listening")]
        return self

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
        with self._cond:
            self._cond.notify_all()

    # -- the log --

    def wait_event(self, name, timeout, predicate=None):
        """The first log event called name (and matching predicate), or
        None when it does not come within timeout or the process ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if e.get("event") == name and (predicate is None or predicate(e)):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cond.wait(min(left, 0.2))

    def find_events(self, name=None):
        with self._cond:
            return [e for e in self.events if name is None or e.get("event") == name]

    def rpc_events(self, method=None):
        return [e for e in self.find_events("rpc") if method is None or e.get("method") == method]

    def stderr_text(self):
        with self._cond:
            return "\n".join(self.lines)

    def leaked_secrets(self):
        text = self.stderr_text().lower()
        return sorted(s for s in self.secrets if s and s.lower() in text)

    # -- reloads --

    def write_config(self, config=None, text=None):
        """Replaces the config file's content (a rename, as an editor or
        kubectl does): the server's watcher may see it and reload."""
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text if text is not None else json.dumps(config, indent=1) + "\n")
        os.replace(tmp, self.config_path)
        if config is not None:
            self.config = config

    def reload_outcomes(self):
        """The config_reloaded and config_reload_failed events so far."""
        return [e for e in self.find_events()
                if e.get("event") in ("config_reloaded", "config_reload_failed")]

    def reload(self, timeout=10.0):
        """SIGHUP, then the outcome event it caused (config_reloaded or
        config_reload_failed, "on SIGHUP": a file change may cause outcomes
        of its own); TokendError when none comes."""
        seen = len(self.reload_outcomes())
        self.signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            outcomes = [e for e in self.reload_outcomes()[seen:]
                        if "(on SIGHUP)" in e.get("message", "")]
            if outcomes:
                return outcomes[0]
            time.sleep(0.02)
        raise TokendError("no reload outcome within %.1f s:\n%s" % (timeout, self.stderr_text()))

    # -- stop --

    def signal(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def terminate(self):
        self.signal(signal.SIGTERM)

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TokendError("chat-tokend did not exit within %.1f s:\n%s"
                              % (timeout, self.stderr_text()))
        self._reader.join(5)
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)

    def stop(self, timeout=15.0, check=True):
        """SIGTERM; returns the exit code. With check, raises when it does
        not exit 0 or logged a secret. Cleans up either way."""
        try:
            self.terminate()
            rc = self.wait_exit(timeout)
            if check and rc != 0:
                raise TokendError("chat-tokend exited %d:\n%s" % (rc, self.stderr_text()))
            leaked = self.leaked_secrets() if check else []
            if leaked:
                raise TokendError("chat-tokend logged secrets (%d of them, e.g. %.12s...)"
                                  % (len(leaked), leaked[0]))
            return rc
        finally:
            self.cleanup()

    def cleanup(self):
        self.kill()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def verify_tokens(checks, app_id=APP_ID, certificate=CERTIFICATE):
    """Checks tokens with npm agora-token (verify_tokens.js): parse,
    signature (with certificate, and not with any of not_certificates), app
    id, one Chat service with the privilege of kind ("app" or "user"), user
    id, expire. Each check: {token, kind, user_id?, ttl?, app_id?,
    certificate?, not_certificates?}. Returns agora-token's view of each
    token ({issue_ts, expire, salt, user_id, privileges}); raises
    AssertionError naming the failing check."""
    payload = {"app_id": app_id, "certificate": certificate, "checks": checks}
    proc = subprocess.run([NODE, os.path.join(HERE, "verify_tokens.js")],
                          input=json.dumps(payload), capture_output=True, text=True,
                          env=dict(os.environ, NODE_PATH=NODE_PATH), timeout=60)
    if proc.returncode != 0:
        raise AssertionError("agora-token: " + (proc.stdout + proc.stderr).strip())
    return json.loads(proc.stdout)
