"""Integration-test harness: runs the real chat-tokend binary on ephemeral
ports and talks to it with real gRPC clients (Debian's python3-grpcio).

- Server: tests/common/tokend.py (the harness every suite shares) with this
  suite's keys: writes a config, starts the binary, learns its ports from
  the "listening" log lines, stops it with SIGTERM and checks the exit code
  and that stderr never held a secret (certificates, API keys, tokens).
- Protos: message classes built at test time from the .proto files by
  protoc (no generated code is committed).
- Client: generic unary/stream calls that return (response, status).
- Certificates: a test CA, server and client certificates made by openssl.
- Tokens: checked by the npm agora-token package (tests/common/verify_tokens.js).

Environment (set by tests/integration/CMakeLists.txt):
  CT_BIN_DIR     where chat-tokend and chat-token are
  CT_SOURCE_DIR  the repository (proto/, node_modules/)
Optional:
  CT_SERVER_WRAPPER  a command that chat-tokend runs under, split as a shell
                 would (tests/sanitize: "valgrind --error-exitcode=99 ...");
                 the start timeout is then 120 s. Unset: the binary itself.
"""
import base64
import contextlib
import hashlib
import hmac
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fakes"))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from fake_chat import FakeChat  # noqa: E402  (tests/fakes/fake_chat.py)
import tokend  # noqa: E402  (tests/common/tokend.py)
from tokend import (APP_ID, BIN_DIR, CERTIFICATE, NODE_PATH, OTHER_CERTIFICATE,  # noqa: E402,F401
                    SOURCE_DIR, TOKEND, sha256_hex)

CLI = os.path.join(BIN_DIR, "chat-token")
NODE = shutil.which("node")
GRPC_PROTO_DIR = "/usr/share/grpc-proto"
WKT_PROTO_DIR = "/usr/include"

PREVIOUS_CERTIFICATE = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
OTHER_APP_ID = "11112222333344445555666677778888"
APP_KEY = "org#app"
BACKEND_KEY = "backend-key-6f1d2c9e8a7b"
ADMIN_KEY = "admin-key-3c4e5f6a7b8c"
SPIFFE_BACKEND = "spiffe://cluster.local/ns/chat/sa/backend"
SPIFFE_UNKNOWN = "spiffe://cluster.local/ns/other/sa/stranger"
SERVICE = "chattoken.v1.TokenService"

SERVER_WRAPPER = shlex.split(os.environ.get("CT_SERVER_WRAPPER", ""))
# a wrapper such as valgrind slows the start-up by an order of magnitude
START_TIMEOUT = 120.0 if SERVER_WRAPPER else 15.0
CALL_TIMEOUT = 10.0


# ---- protos ----

_PROTO_FILES = [
    "chattoken/v1/token_service.proto",
    "grpc/health/v1/health.proto",
    "grpc/reflection/v1/reflection.proto",
    "grpc/reflection/v1alpha/reflection.proto",
]


class Protos:
    """Message classes by full name, built from a protoc descriptor set."""

    def __init__(self):
        with tempfile.TemporaryDirectory(prefix="ct-it-proto-") as tmp:
            out = os.path.join(tmp, "set.desc")
            subprocess.run(
                ["protoc", "-I" + os.path.join(SOURCE_DIR, "proto"), "-I" + GRPC_PROTO_DIR,
                 "-I" + WKT_PROTO_DIR, "--include_imports", "--descriptor_set_out=" + out]
                + _PROTO_FILES, check=True)
            with open(out, "rb") as f:
                fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        self.pool = descriptor_pool.DescriptorPool()
        for fd in fds.file:
            self.pool.Add(fd)
        self._factory = message_factory.MessageFactory(self.pool)
        self._classes = {}

    def __getattr__(self, short):
        # protos.GetUserTokenRequest -> chattoken.v1.GetUserTokenRequest
        if short.startswith("_"):
            raise AttributeError(short)
        return self.cls("chattoken.v1." + short)

    def cls(self, full_name):
        if full_name not in self._classes:
            desc = self.pool.FindMessageTypeByName(full_name)
            if hasattr(message_factory, "GetMessageClass"):
                self._classes[full_name] = message_factory.GetMessageClass(desc)
            else:
                self._classes[full_name] = self._factory.GetPrototype(desc)
        return self._classes[full_name]


_protos = None


def protos():
    global _protos
    if _protos is None:
        _protos = Protos()
    return _protos


# ---- certificates ----

def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _der(tag, body):
    n = len(body)
    length = bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8,
                                                                                n & 255])
    return bytes([tag]) + length + body


def _der_general_names(names):
    """GeneralNames (RFC 5280): a SEQUENCE of [tag] IMPLICIT primitive values."""
    return _der(0x30, b"".join(_der(0x80 | tag, value) for tag, value in names))


class Certificates:
    """A test CA; a server certificate for 127.0.0.1/localhost; client
    certificates with the known and an unknown SPIFFE ID; and a client
    certificate from a CA the server does not trust."""

    def __init__(self, directory):
        self.dir = directory
        self._ca("ca")
        self._ca("rogue-ca")
        self.server = self._leaf("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                                 "serverAuth")
        self.backend = self._leaf("backend", "ca", "subjectAltName=URI:" + SPIFFE_BACKEND,
                                  "clientAuth")
        self.stranger = self._leaf("stranger", "ca", "subjectAltName=URI:" + SPIFFE_UNKNOWN,
                                   "clientAuth")
        self.rogue = self._leaf("rogue", "rogue-ca", "subjectAltName=URI:" + SPIFFE_BACKEND,
                                "clientAuth")
        self.ca_file = self.path("ca.crt")

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def _ca(self, name):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-days", "2", "-subj", "/CN=chat-tokend test " + name,
                 "-keyout", name + ".key", "-out", name + ".crt", cwd=self.dir)

    def _leaf(self, name, ca, san, usage, cn=None):
        ext = name + ".ext"
        with open(self.path(ext), "w") as f:
            f.write(san + "\nextendedKeyUsage=" + usage + "\nbasicConstraints=CA:FALSE\n")
        subject = "/CN=" + (cn or name).replace("/", "\\/")  # '/' separates RDNs in -subj
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-subj", subject, "-keyout", name + ".key", "-out", name + ".csr",
                 cwd=self.dir)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", name + ".crt",
                 cwd=self.dir)
        return (self.path(name + ".crt"), self.path(name + ".key"))

    def client_leaf(self, name, san, cn=None):
        """One more client certificate from the test CA: san is an openssl
        subjectAltName value ("URI:...,DNS:...") or a list of (tag, bytes)
        GeneralNames (tag 1 email, 2 DNS, 6 URI, 7 IP), encoded as DER, so
        that a SAN may hold any byte, NUL included."""
        if not isinstance(san, str):
            san = "DER:" + _der_general_names(san).hex(":")
        return self._leaf(name, "ca", "subjectAltName=" + san, "clientAuth", cn=cn)

    def channel_credentials(self, client=None):
        """TLS credentials trusting the test CA; client = "backend",
        "stranger", "rogue" or None (no client certificate)."""
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=self.read("ca.crt"))
        return grpc.ssl_channel_credentials(root_certificates=self.read("ca.crt"),
                                            private_key=self.read(client + ".key"),
                                            certificate_chain=self.read(client + ".crt"))


# ---- the server ----

def base_config(**overrides):
    """A plaintext, loopback, API-key-authenticated config; overrides
    replace top-level keys."""
    cfg = {
        "listen": ["127.0.0.1:0"],
        "app": {"id": APP_ID, "certificate": CERTIFICATE,
                "previous_certificates": [PREVIOUS_CERTIFICATE], "key": APP_KEY},
        "tokens": {"default_ttl_seconds": 3600, "max_ttl_seconds": 7200,
                   "renew_grace_seconds": 60},
        "user_tokens": {"identity": "username"},
        "auth": {
            "allow_unauthenticated": False,
            "api_keys": [tokend.api_key("backend", BACKEND_KEY, tokend.USER_METHODS),
                         tokend.api_key("admin", ADMIN_KEY, tokend.ALL_METHODS)],
        },
        "workers": 2,
        "shutdown": {"drain_seconds": 0, "grace_seconds": 5},
    }
    cfg.update(overrides)
    return cfg


ServerError = tokend.TokendError


class Server(tokend.Tokend):
    """One chat-tokend process (tests/common/tokend.py) with this suite's
    keys as secrets, run under CT_SERVER_WRAPPER when set. JSON is YAML, so
    the config is written as JSON; `text` writes a raw config instead."""

    def __init__(self, config=None, text=None, env=None, workdir=None):
        super().__init__(config, text=text, env=env, workdir=workdir,
                         secrets=(BACKEND_KEY, ADMIN_KEY), wrapper=SERVER_WRAPPER,
                         start_timeout=START_TIMEOUT, prefix="ct-it-")

    def _main_count(self):
        return len(self.config["listen"]) if self.config else len(self.listening)

    @property
    def address(self):
        """The first main listener, as a gRPC target."""
        return self.listening[0]

    @property
    def main_addresses(self):
        return self.listening[:self._main_count()]

    @property
    def health_address(self):
        return self.listening[self._main_count()]


# ---- the client ----

def _identity(b):
    return b


class Result:
    """A call's outcome: code (grpc.StatusCode), details, response (the
    decoded message when OK), elapsed seconds."""

    def __init__(self, code, details, response, elapsed):
        self.code = code
        self.details = details or ""
        self.response = response
        self.elapsed = elapsed

    @property
    def ok(self):
        return self.code == grpc.StatusCode.OK

    def __repr__(self):
        return "Result(%s, %r)" % (self.code, self.details)


def metadata_for(key=None, header="authorization"):
    if key is None:
        return None
    if header == "authorization":
        return [("authorization", "Bearer " + key)]
    return [(header, key)]


class Client:
    """A channel to one server address; tokens it receives are recorded as
    secrets of the server, so that stop() checks the logs never held them."""

    def __init__(self, server, target=None, credentials=None, key=None, options=None):
        self.server = server
        self.target = target or server.address
        self.key = key
        opts = list(options or [])
        if credentials is None:
            self.channel = grpc.insecure_channel(self.target, options=opts)
        else:
            self.channel = grpc.secure_channel(self.target, credentials, options=opts)
        if server is not None and key:
            server.add_secret(key)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def raw(self, path, payload, key=None, metadata=None, timeout=CALL_TIMEOUT,
            response_class=None):
        """Unary call with request bytes as they are."""
        key = key or self.key
        md = metadata if metadata is not None else metadata_for(key)
        if key and self.server is not None:
            self.server.add_secret(key)
        deserialize = response_class.FromString if response_class is not None else _identity
        stub = self.channel.unary_unary(path, request_serializer=_identity,
                                        response_deserializer=deserialize)
        start = time.monotonic()
        try:
            response = stub(payload, metadata=md, timeout=timeout)
            result = Result(grpc.StatusCode.OK, "", response, time.monotonic() - start)
        except grpc.RpcError as e:
            result = Result(e.code(), e.details(), None, time.monotonic() - start)
        self._remember(result.response)
        return result

    def _remember(self, response):
        token = getattr(response, "token", None) if response is not None else None
        if token and self.server is not None:
            self.server.add_secret(token)

    def token_call(self, method, request, key=None, metadata=None, timeout=CALL_TIMEOUT):
        p = protos()
        return self.raw("/%s/%s" % (SERVICE, method), request.SerializeToString(), key=key,
                        metadata=metadata, timeout=timeout,
                        response_class=getattr(p, method + "Response"))

    def get_app_token(self, ttl=0, **kw):
        return self.token_call("GetAppToken", protos().GetAppTokenRequest(ttl_seconds=ttl), **kw)

    def get_user_token(self, username, ttl=0, **kw):
        req = protos().GetUserTokenRequest(username=username, ttl_seconds=ttl)
        return self.token_call("GetUserToken", req, **kw)

    def renew_token(self, token, ttl=0, **kw):
        return self.token_call("RenewToken", protos().RenewTokenRequest(token=token, ttl_seconds=ttl),
                               **kw)

    def get_rtc_token(self, channel_name, role, uid=None, account=None, ttl=0, privilege_ttl=0,
                      with_rtm=False, **kw):
        """GetRtcToken; uid and account are the oneof (neither: unset)."""
        req = protos().GetRtcTokenRequest(channel_name=channel_name, role=role, ttl_seconds=ttl,
                                          privilege_ttl_seconds=privilege_ttl, with_rtm=with_rtm)
        if uid is not None:
            req.uid = uid
        if account is not None:
            req.account = account
        return self.token_call("GetRtcToken", req, **kw)

    def get_rtm_token(self, user_id, ttl=0, **kw):
        req = protos().GetRtmTokenRequest(user_id=user_id, ttl_seconds=ttl)
        return self.token_call("GetRtmToken", req, **kw)

    def health_check(self, service="", timeout=CALL_TIMEOUT):
        p = protos()
        req = p.cls("grpc.health.v1.HealthCheckRequest")(service=service)
        return self.raw("/grpc.health.v1.Health/Check", req.SerializeToString(), metadata=[],
                        timeout=timeout, response_class=p.cls("grpc.health.v1.HealthCheckResponse"))

    def health_watch(self, service="", timeout=CALL_TIMEOUT):
        """The Watch stream: an iterator of HealthCheckResponse (cancel()
        ends it)."""
        p = protos()
        req = p.cls("grpc.health.v1.HealthCheckRequest")(service=service)
        stub = self.channel.unary_stream(
            "/grpc.health.v1.Health/Watch", request_serializer=_identity,
            response_deserializer=p.cls("grpc.health.v1.HealthCheckResponse").FromString)
        return stub(req.SerializeToString(), timeout=timeout)

    def reflect(self, requests, version="v1", timeout=CALL_TIMEOUT, key=None):
        """Sends ServerReflectionRequests on one stream (with key's
        credentials, if given); returns (responses, Result)."""
        p = protos()
        pkg = "grpc.reflection.%s" % version
        req_cls = p.cls(pkg + ".ServerReflectionRequest")
        resp_cls = p.cls(pkg + ".ServerReflectionResponse")
        stub = self.channel.stream_stream("/%s.ServerReflection/ServerReflectionInfo" % pkg,
                                          request_serializer=_identity,
                                          response_deserializer=resp_cls.FromString)
        msgs = [req_cls(**r).SerializeToString() for r in requests]
        start = time.monotonic()
        try:
            responses = list(stub(iter(msgs), timeout=timeout, metadata=metadata_for(key)))
            return responses, Result(grpc.StatusCode.OK, "", None, time.monotonic() - start)
        except grpc.RpcError as e:
            return [], Result(e.code(), e.details(), None, time.monotonic() - start)


class ServerCase(unittest.TestCase):
    """One server for the whole class (setUpClass sets cls.server) and the
    clients opened with cls.client(...): tearDownClass closes them and stops
    the server (exit code and leaked-secret checks)."""
    _clients = None

    @classmethod
    def client(cls, **kw):
        if cls._clients is None:
            cls._clients = []
        c = Client(cls.server, **kw)
        cls._clients.append(c)
        return c

    @classmethod
    def tearDownClass(cls):
        for c in cls._clients or ():
            c.close()
        cls.server.stop()

    def assertCode(self, result, code, says=None):
        """result has code, and its details hold says (when given)."""
        self.assertEqual(result.code, code, result.details)
        if says is not None:
            self.assertIn(says, result.details)


def health_status_name(response):
    enum = response.DESCRIPTOR.fields_by_name["status"].enum_type
    return enum.values_by_number[response.status].name


# ---- tokens ----

def cli_build(kind, app_id=APP_ID, certificate=CERTIFICATE, user=None, ttl=3600, issue_ts=None,
              salt=None):
    """A token from our CLI (chat-token build), for renewal tests."""
    with tempfile.TemporaryDirectory(prefix="ct-it-cli-") as tmp:
        cert_file = os.path.join(tmp, "cert")
        with open(cert_file, "w") as f:
            f.write(certificate + "\n")
        args = [CLI, "build", kind, "--app-id", app_id, "--app-cert-file", cert_file,
                "--ttl", str(ttl)]
        if user is not None:
            args += ["--user", user]
        if issue_ts is not None:
            args += ["--salt", str(salt or 4242), "--issue-ts", str(int(issue_ts))]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_TOKEN_")}
        out = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
        return out.stdout.strip()


def _u16(n):
    return n.to_bytes(2, "little")


def _u32(n):
    return n.to_bytes(4, "little")


def _pstring(b):
    return _u16(len(b)) + b


def chat_service(user_id=b"", privilege=1, value=3600):
    """A packed Chat service (type 5): one privilege, then the user id."""
    return _u16(5) + _u16(1) + _u16(privilege) + _u32(value) + _pstring(user_id)


def craft_token(services, declared=None, trailing=b"", certificate=CERTIFICATE, app_id=APP_ID,
                issue_ts=None, expire=3600, salt=4242):
    """An AccessToken2 put together byte by byte and signed with certificate
    as the reference builders sign: for shapes no builder makes. services is
    a list of packed services; declared (default: their number) is the
    count written into the token; trailing is appended after them."""
    issue_ts = int(time.time()) if issue_ts is None else int(issue_ts)
    count = len(services) if declared is None else declared
    signing_info = (_pstring(app_id.encode()) + _u32(issue_ts) + _u32(expire) + _u32(salt) +
                    _u16(count) + b"".join(services) + trailing)
    key = hmac.new(_u32(issue_ts), certificate.encode(), hashlib.sha256).digest()
    key = hmac.new(_u32(salt), key, hashlib.sha256).digest()
    signature = hmac.new(key, signing_info, hashlib.sha256).digest()
    payload = zlib.compress(_pstring(signature) + signing_info)
    return "007" + base64.b64encode(payload).decode()


def verify_tokens(checks):
    """Checks tokens with npm agora-token (tests/common/verify_tokens.js):
    parse, verifySignature, app id, one Chat service with the expected
    privilege, user id, expire. Each check: {token, kind: "app"|"user",
    user_id?, ttl?, certificate?, app_id?, not_certificates?}. Returns
    agora-token's view of each token ({issue_ts, expire, salt, user_id,
    privileges})."""
    require_node()
    return tokend.verify_tokens(checks)


def _node(script, payload):
    """Runs a node script of this directory on payload (JSON on stdin);
    its JSON answer."""
    require_node()
    env = dict(os.environ, NODE_PATH=NODE_PATH)
    proc = subprocess.run([NODE, os.path.join(HERE, script)], input=json.dumps(payload),
                          capture_output=True, text=True, env=env, timeout=60)
    if proc.returncode != 0:
        raise AssertionError("%s failed:\n%s%s" % (script, proc.stdout, proc.stderr))
    return json.loads(proc.stdout)


def verify_rtc_tokens(checks):
    """Checks RTC/RTM tokens with npm agora-token: parse, verify, and its
    AccessToken2 rebuilds each byte for byte from the expected inputs. Each
    check: {token, kind: "rtc"|"rtm", ttl, channel, account, role
    ("publisher"|"subscriber"), privilege_ttl, with_rtm | user_id}.
    Returns [{issue_ts, expire, salt}]."""
    full = []
    for c in checks:
        d = {"app_id": APP_ID, "certificate": CERTIFICATE}
        d.update(c)
        full.append(d)
    return _node("verify_rtc_token.js", {"checks": full})


def foreign_token(shape, app_id=APP_ID, certificate=CERTIFICATE):
    """A token built by agora-token with another service shape
    (rtc_join_and_audio, chat_and_rtm, chat_two_privileges), signed by this
    app."""
    return _node("foreign_token.js", {"shape": shape, "app_id": app_id,
                                      "certificate": certificate})["token"]


# ---- misc ----

def fake_chat(port=0, directory=None):
    """The fake Agora Chat server for this app (tests/fakes/fake_chat.py)."""
    return FakeChat(os.path.join(BIN_DIR, "fake-chat-server"), APP_ID, CERTIFICATE, APP_KEY,
                    port=port, directory=directory)


def free_closed_port():
    """A local TCP port nobody listens on (bound then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def temp_dir(prefix="ct-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def stop_in_dir(server, directory):
    """Stops a class's server, then leaves its temp_dir() (tearDownClass)."""
    try:
        server.stop()
    finally:
        directory.__exit__(None, None, None)


def require_node():
    if NODE is None or not os.path.isdir(os.path.join(NODE_PATH, "agora-token")):
        raise unittest.SkipTest("node or npm agora-token missing (scripts/install-node-deps)")


def poll(predicate, timeout, interval=0.02):
    """Calls predicate until it returns something truthy; returns it, or
    the last falsy value after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def main():
    unittest.main(verbosity=2)
