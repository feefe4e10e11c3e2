"""Harness of the client-example tests: a live chat-tokend (the real binary,
on a free TCP port and a unix socket, API-key auth, run by
tests/common/tokend.py, the harness every suite shares) and the check of
tokens with the official npm builder agora-token
(tests/common/verify_tokens.js).

Standard library only; run with /usr/bin/python3.

Environment (set by tests/examples/CMakeLists.txt):
  CT_BIN_DIR     where chat-tokend and chat-token-client are
  CT_SOURCE_DIR  the repository (client-examples/, proto/, node_modules/)
"""
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import tokend  # noqa: E402  (tests/common/tokend.py)
from tokend import (APP_ID, BIN_DIR, CERTIFICATE, NODE, SOURCE_DIR,  # noqa: E402,F401
                    TOKEND, sha256_hex, verify_tokens)

EXAMPLES_DIR = os.path.join(SOURCE_DIR, "client-examples")
NODE_MODULES = tokend.NODE_PATH

APP_KEY = "demo#demo"
BACKEND_KEY = "example-backend-key-51c0ffee"
ADMIN_KEY = "example-admin-key-7ab1e5"

ServerError = tokend.TokendError


def node_env(extra=None):
    env = dict(os.environ)
    env["NODE_PATH"] = NODE_MODULES
    env.update(extra or {})
    return env


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
            "auth": {"api_keys": [tokend.api_key("backend", BACKEND_KEY, tokend.USER_METHODS),
                                  tokend.api_key("admin", ADMIN_KEY, tokend.ALL_METHODS)]},
            "shutdown": {"drain_seconds": 0, "grace_seconds": 2},
        }
        self.tokend = tokend.Tokend(config, workdir=self.dir, secrets=(BACKEND_KEY, ADMIN_KEY))
        self.address = None  # host:port of the TCP listener

    @property
    def unix_target(self):
        return "unix:" + self.socket_path

    def add_secret(self, value):
        self.tokend.add_secret(value)

    def __enter__(self):
        listening = self.tokend.start().listening
        tcp = [m for m in listening if not m.startswith("unix:")]
        if not tcp or self.unix_target not in listening:
            self.tokend.cleanup()
            raise ServerError("chat-tokend listens on %r, not TCP + %s"
                              % (listening, self.unix_target))
        self.address = tcp[0]
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.stop()
        finally:
            self.tokend.cleanup()
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def stderr_text(self):
        return self.tokend.stderr_text()

    def rpc_events(self, method=None):
        return self.tokend.rpc_events(method)

    def stop(self, timeout=15.0):
        self.tokend.stop(timeout)


class ServerTestCase(unittest.TestCase):
    """A test class sharing one Server: started before its first test,
    stopped (with the exit-code and secret checks) after its last."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)
