"""auth.jwt: end users and workloads authenticated by JWTs from a test
identity provider (tests/fakes/idp.py: keys made by openssl, JWKS over
HTTP and in a file), over gRPC and the HTTP side port: what each role may
do, every rejection with its message, algorithm confusion, kid rotation,
the identity provider down at start and later, the JWKS file swapped as
Kubernetes swaps a mounted secret, metrics and logs."""
import contextlib
import json
import os
import time
import unittest
import urllib.error
import urllib.request

import grpc

import harness as h
from idp import IdentityProvider, b64url  # tests/fakes/idp.py

Code = grpc.StatusCode
CLUSTER_ISSUER = "https://kubernetes.default.svc.cluster.local"
BACKEND_SA = "system:serviceaccount:chat:backend"


def end_user_issuer(idp, **overrides):
    entry = {"name": "app-users", "issuer": idp.issuer, "audiences": ["chat-tokend"],
             "jwks_url": idp.jwks_url, "role": "end_user",
             "username_claim": "preferred_username",
             "methods": ["GetUserToken", "RenewToken", "GetRtcToken", "GetRtmToken"],
             "rtc_channel_prefix": "room-"}
    entry.update(overrides)
    return entry


def swap_data_dir(directory, idp, generation):
    """Writes the JWKS as the kubelet updates a mounted secret: a new
    timestamped directory, then the ..data symlink swapped atomically."""
    new = os.path.join(directory, "..%d" % generation)
    os.mkdir(new)
    idp.write_jwks(os.path.join(new, "jwks.json"))
    link = os.path.join(directory, "..data_tmp")
    os.symlink(os.path.basename(new), link)
    os.replace(link, os.path.join(directory, "..data"))
    path = os.path.join(directory, "jwks.json")
    if not os.path.islink(path):
        os.symlink("..data/jwks.json", path)
    return path


def http_get(base, path, token=None, method="GET", body=None, headers=()):
    req = urllib.request.Request(base + path, method=method, data=body)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    for name, value in headers:
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def http_port(server):
    event = server.wait_event("listening", 5, lambda e: e["message"].startswith("http://"))
    return "http://127.0.0.1:%s" % event["message"].rsplit(":", 1)[1]


class JwtTest(unittest.TestCase):
    """One server with an end-user issuer (JWKS URL) and a workload issuer
    (JWKS file behind a ..data symlink)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = h.temp_dir()
        workdir = cls.dir.__enter__()
        os.mkdir(os.path.join(workdir, "idp"))
        cls.idp = IdentityProvider(os.path.join(workdir, "idp"))
        cls.rsa = cls.idp.add_key("RS256")
        cls.ec = cls.idp.add_key("ES256")
        cls.idp.serve(max_age=3600)
        cls.cluster = IdentityProvider(os.path.join(workdir, "idp"), issuer=CLUSTER_ISSUER)
        cls.cluster.add_key("RS256", kid="cluster-1")
        cls.secret_dir = os.path.join(workdir, "secret")
        os.mkdir(cls.secret_dir)
        jwks_file = swap_data_dir(cls.secret_dir, cls.cluster, 1)
        cfg = h.base_config(http={"listen": "127.0.0.1:0",
                                  "cors": {"allowed_origins": ["http://localhost:8080"]}})
        cfg["auth"]["jwt"] = [
            end_user_issuer(cls.idp),
            {"name": "cluster", "issuer": CLUSTER_ISSUER, "audiences": ["chat-tokend"],
             "jwks_file": jwks_file, "role": "workload",
             "subjects": [{"id": BACKEND_SA, "methods": ["GetUserToken", "RenewToken"]}]},
        ]
        cls.server = h.Server(cfg, workdir=workdir).start()
        cls.client = h.Client(cls.server)
        cls.base = http_port(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        try:
            h.stop_in_dir(cls.server, cls.dir)
        finally:
            cls.idp.close()

    def jwt(self, sub="alice", kid=None, **claims):
        claims.setdefault("preferred_username", sub)
        token = self.idp.mint(self.idp.claims(sub=sub, **claims), kid=kid)
        self.server.add_secret(token)
        return token

    def call(self, token, method="get_user_token", *args, **kw):
        md = [("authorization", "Bearer " + token)]
        return getattr(self.client, method)(*args, metadata=md, **kw)

    def assertRefused(self, token, code, message):
        r = self.call(token, "get_user_token", "alice")
        self.assertEqual(r.code, code, r.details)
        self.assertIn(message, r.details)
        return r

    # -- end users --

    def test_end_user_gets_its_own_token_and_the_log_names_issuer_and_sub(self):
        r = self.call(self.jwt("alice"), "get_user_token", "Alice")
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertEqual(r.response.user_id, "alice")
        event = self.server.wait_event("rpc", 5, lambda e: e.get("sub") == "alice")
        self.assertEqual(event["caller"], "app-users")
        h.tokend.verify_tokens([{"token": r.response.token, "kind": "user", "user_id": "alice"}])

    def test_es256_token_is_accepted(self):
        r = self.call(self.jwt("erin", kid=self.ec), "get_user_token", "erin")
        self.assertEqual(r.code, Code.OK, r.details)

    def test_end_user_is_refused_another_users_token(self):
        r = self.call(self.jwt("alice"), "get_user_token", "bob")
        self.assertEqual(r.code, Code.PERMISSION_DENIED)
        self.assertIn("only for itself", r.details)

    def test_end_user_is_refused_the_app_token(self):
        r = self.call(self.jwt("alice"), "get_app_token")
        self.assertEqual(r.code, Code.PERMISSION_DENIED)

    def test_username_claim_that_is_no_username_is_permission_denied_naming_it(self):
        token = self.idp.mint(self.idp.claims(sub="x", preferred_username="not a name!"))
        r = self.call(token, "get_user_token", "x")
        self.assertEqual(r.code, Code.PERMISSION_DENIED)
        self.assertIn("preferred_username claim is not a valid Chat username", r.details)

    def test_end_user_renews_only_its_own_token(self):
        token = self.jwt("alice")
        own = self.call(token, "get_user_token", "alice").response.token
        renewed = self.call(token, "renew_token", own)
        self.assertEqual(renewed.code, Code.OK, renewed.details)
        self.assertEqual(renewed.response.user_id, "alice")
        bobs = self.client.get_user_token("bob", key=h.BACKEND_KEY).response.token
        r = self.call(token, "renew_token", bobs)
        self.assertEqual(r.code, Code.PERMISSION_DENIED)
        app = self.client.get_app_token(key=h.ADMIN_KEY).response.token
        self.assertEqual(self.call(token, "renew_token", app).code, Code.PERMISSION_DENIED)

    def test_rtc_only_with_own_account_and_the_channel_prefix(self):
        token = self.jwt("alice")
        ok = self.call(token, "get_rtc_token", "room-1", 1, account="alice")
        self.assertEqual(ok.code, Code.OK, ok.details)
        for args, kw, why in [(("room-1", 1), {"account": "bob"}, "only for itself"),
                              (("room-1", 1), {"uid": 42}, "account set to its username"),
                              (("lobby", 1), {"account": "alice"}, "starting with 'room-'")]:
            r = self.call(token, "get_rtc_token", *args, **kw)
            self.assertEqual(r.code, Code.PERMISSION_DENIED, args)
            self.assertIn(why, r.details)
        renewed = self.call(token, "renew_token", ok.response.token)
        self.assertEqual(renewed.code, Code.OK, renewed.details)

    def test_rtm_only_for_itself(self):
        token = self.jwt("alice")
        self.assertEqual(self.call(token, "get_rtm_token", "alice").code, Code.OK)
        r = self.call(token, "get_rtm_token", "bob")
        self.assertEqual(r.code, Code.PERMISSION_DENIED)

    # -- workloads --

    def test_workload_subject_may_call_its_methods_for_any_user(self):
        token = self.cluster.mint(self.cluster.claims(sub=BACKEND_SA))
        self.server.add_secret(token)
        r = self.call(token, "get_user_token", "bob")
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertIsNotNone(self.server.wait_event("rpc", 5,
                                                    lambda e: e.get("sub") == BACKEND_SA))
        self.assertEqual(self.call(token, "get_app_token").code, Code.PERMISSION_DENIED)

    def test_workload_with_unknown_subject_is_unauthenticated(self):
        token = self.cluster.mint(self.cluster.claims(sub="system:serviceaccount:x:y"))
        self.assertRefused(token, Code.UNAUTHENTICATED, "not one of the subjects")

    # -- rejections --

    def test_every_rejection_names_its_reason(self):
        idp = self.idp
        rsa = idp.key(self.rsa)
        good = idp.mint()
        head, payload, sig = good.split(".")
        cases = [
            ("bad signature", head + "." + b64url(json.dumps(idp.claims(sub="mallory"))) + "."
             + sig, "signature does not verify"),
            ("alg none", idp.mint(alg="none", signature=b""), "JWT signature is not base64url"),
            ("alg none signed", idp.mint(alg="none", signature=b"x"), "alg none is not allowed"),
            ("HS256 with the public key", idp.mint(alg="HS256", secret=rsa.public_pem),
             "alg HS256 is not allowed"),
            ("PS256", idp.mint(alg="PS256"), "alg PS256 is not allowed"),
            ("unknown kid", idp.mint(header={"kid": "nobody"}), "kid \"nobody\" is not a known"),
            ("expired", idp.mint(idp.claims(exp=int(time.time()) - 100)), "JWT expired"),
            ("not yet valid", idp.mint(idp.claims(nbf=int(time.time()) + 100)),
             "not valid yet"),
            ("issued in the future", idp.mint(idp.claims(iat=int(time.time()) + 100)),
             "issued in the future"),
            ("wrong iss", idp.mint(idp.claims(iss="https://evil.example/")),
             "not a configured issuer"),
            ("wrong aud", idp.mint(idp.claims(aud=["other"])), "aud holds none"),
            ("no aud", idp.mint(idp.claims(aud=None)), "no aud claim"),
            ("no exp", idp.mint(idp.claims(exp=None)), "no exp claim"),
            ("no sub", idp.mint(idp.claims(sub=None)), "no sub claim"),
            ("no username claim", idp.mint(idp.claims()), "no preferred_username claim"),
            ("crit", idp.mint(header={"crit": ["exp"]}), "crit"),
            ("payload not base64url", head + ".***." + sig, "payload is not base64url"),
            ("payload not JSON", head + "." + b64url("{nope") + "." + sig,
             "payload is not base64url of a JSON object"),
            ("over 8 KiB", idp.mint(idp.claims(pad="x" * 9000)), "over the 8192-byte limit"),
        ]
        for name, token, message in cases:
            with self.subTest(name):
                self.server.add_secret(token)
                r = self.call(token, "get_user_token", "alice")
                self.assertEqual(r.code, Code.UNAUTHENTICATED, (name, r.details))
                self.assertIn(message, r.details, name)

    def test_expiry_within_the_leeway_is_accepted(self):
        token = self.jwt("alice", exp=int(time.time()) - 5)
        self.assertEqual(self.call(token, "get_user_token", "alice").code, Code.OK)

    def test_garbage_after_bearer_is_still_an_api_key(self):
        r = self.client.get_user_token("alice", metadata=[("authorization", "Bearer a.b.c")])
        self.assertEqual(r.code, Code.UNAUTHENTICATED)
        self.assertIn("unknown API key", r.details)

    # -- HTTP --

    def test_http_routes_with_cors(self):
        token = self.jwt("carol")
        origin = ("Origin", "http://localhost:8080")
        status, body, headers = http_get(self.base, "/chat/user/carol/token", token,
                                         headers=[origin])
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Access-Control-Allow-Origin"), "http://localhost:8080")
        self.server.add_secret(body)
        status, _, _ = http_get(self.base, "/chat/user/dave/token", token)
        self.assertEqual(status, 403)
        status, renewed, _ = http_get(self.base, "/chat/token/renew", token, "POST",
                                      json.dumps({"token": body}).encode(),
                                      [("Content-Type", "application/json")])
        self.assertEqual(status, 200, renewed)
        self.server.add_secret(json.loads(renewed)["token"])
        status, _, _ = http_get(self.base, "/chat/app/token", token)
        self.assertEqual(status, 403)
        status, body, _ = http_get(self.base, "/chat/user/carol/token", token + "x")
        self.assertEqual(status, 401, body)

    def test_metrics_count_verifications_and_jwks_age(self):
        self.call(self.jwt("alice"), "get_user_token", "alice")
        status, text, _ = http_get(self.base, "/metrics")
        self.assertEqual(status, 200)
        self.assertRegex(text, r'chat_tokend_jwt_verifications_total\{name="app-users",'
                               r'result="ok"\} [1-9]')
        self.assertRegex(text, r'chat_tokend_jwks_age_seconds\{name="cluster"\} \d+')
        status, _, _ = http_get(self.base, "/readyz")
        self.assertEqual(status, 200)

    # -- the JWKS file --

    def test_file_swap_through_the_data_symlink_is_picked_up(self):
        loads = len([e for e in self.server.find_events("jwks_loaded") if "cluster" in
                     e.get("message", "")])
        self.cluster.add_key("ES256", kid="cluster-2")
        self.cluster.remove_key("cluster-1")
        swap_data_dir(self.secret_dir, self.cluster, 2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = len([e for e in self.server.find_events("jwks_loaded") if "cluster" in
                       e.get("message", "")])
            if now > loads:
                break
            time.sleep(0.2)
        new = self.cluster.mint(self.cluster.claims(sub=BACKEND_SA), kid="cluster-2")
        old = self.cluster.mint(self.cluster.claims(sub=BACKEND_SA), kid="cluster-1")
        self.server.add_secret(new)
        self.server.add_secret(old)
        self.assertEqual(self.call(new, "get_user_token", "bob").code, Code.OK)
        r = self.call(old, "get_user_token", "bob")
        self.assertEqual(r.code, Code.UNAUTHENTICATED)
        self.assertIn("not a known", r.details)


class JwtUuidModeTest(unittest.TestCase):
    """uuid identity mode (the fake Agora Chat server): an end user renews
    only tokens of the UUID the directory maps its username to."""

    def test_end_user_renews_only_the_uuid_of_its_name(self):
        fake = h.fake_chat()
        self.addCleanup(fake.close)
        idp = IdentityProvider()
        self.addCleanup(idp.close)
        idp.add_key("RS256")
        idp.serve()
        cfg = h.base_config(user_tokens={"identity": "uuid"},
                            directory={"base_url": fake.url, "retries": 0})
        cfg["auth"]["jwt"] = [end_user_issuer(idp)]
        server = h.Server(cfg).start()
        client = h.Client(server)
        try:
            jwt = idp.mint(idp.claims(sub="alice", preferred_username="alice"))
            server.add_secret(jwt)
            md = [("authorization", "Bearer " + jwt)]
            own = client.get_user_token("alice", metadata=md)
            self.assertEqual(own.code, Code.OK, own.details)
            self.assertEqual(own.response.user_id, fake.user("alice")["uuid"])
            renewed = client.renew_token(own.response.token, metadata=md)
            self.assertEqual(renewed.code, Code.OK, renewed.details)
            self.assertEqual(renewed.response.user_id, own.response.user_id)
            bobs = client.get_user_token("bob", key=h.BACKEND_KEY).response.token
            r = client.renew_token(bobs, metadata=md)
            self.assertEqual(r.code, Code.PERMISSION_DENIED)
            self.assertIn("only its own tokens", r.details)
        finally:
            client.close()
            server.stop()


class JwksUrlTest(unittest.TestCase):
    """The identity provider's lifecycle: down at start, up, rotation,
    down again (stale keys served)."""

    def test_down_at_start_then_up_then_rotation_then_down(self):
        with h.temp_dir() as workdir:
            idp = IdentityProvider(workdir)
            try:
                old = idp.add_key("RS256")
                idp.serve(max_age=3600)
                idp.down()
                cfg = h.base_config(http={"listen": "127.0.0.1:0"})
                cfg["auth"]["jwt"] = [end_user_issuer(idp)]
                server = h.Server(cfg, workdir=workdir).start()
                try:
                    self.run_lifecycle(server, idp, old)
                finally:
                    server.stop()
            finally:
                idp.close()

    def call(self, server, client, token):
        server.add_secret(token)
        return client.get_user_token("alice", metadata=[("authorization", "Bearer " + token)])

    def run_lifecycle(self, server, idp, old):
        base = http_port(server)
        client = h.Client(server)
        claims = idp.claims(preferred_username="alice")
        # down at start: the server runs, says why it is not ready, refuses JWTs
        status, body, _ = http_get(base, "/readyz")
        self.assertEqual(status, 503)
        self.assertIn("no JWKS keys yet for auth.jwt app-users", body)
        r = self.call(server, client, idp.mint(claims))
        self.assertEqual(r.code, Code.UNAUTHENTICATED)
        self.assertIn("not loaded yet", r.details)
        self.assertEqual(client.get_user_token("alice", key=h.BACKEND_KEY).code, Code.OK)
        # up: the retries (backoff at most 30 s) find it
        idp.up()
        self.assertIsNotNone(server.wait_event("jwks_loaded", 40))
        self.assertEqual(http_get(base, "/readyz")[0], 200)
        self.assertEqual(self.call(server, client, idp.mint(claims)).code, Code.OK)
        # rotation: a new key published, the old one removed; the unknown kid
        # makes one early fetch
        fetches = idp.fetches
        new = idp.add_key("ES256")
        idp.remove_key(old)
        r = self.call(server, client, idp.mint(claims, kid=new))
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertEqual(idp.fetches, fetches + 1)
        r = self.call(server, client, idp.mint(claims, kid=old))
        self.assertEqual(r.code, Code.UNAUTHENTICATED)
        self.assertIn("not a known", r.details)
        # at most one early fetch per 30 s, however many unknown kids come
        for _ in range(5):
            self.call(server, client, idp.mint(claims, header={"kid": "made-up"}))
        self.assertEqual(idp.fetches, fetches + 1)
        # down later: the keys it had are still served
        idp.down()
        self.assertEqual(self.call(server, client, idp.mint(claims, kid=new)).code, Code.OK)
        client.close()


@contextlib.contextmanager
def idp_and_server(max_age, trusted, http=None):
    """A test identity provider serving one RS256 key with this max-age, and
    a server (with its client) whose config trusts it as app-users when
    trusted; yields (idp, server, client, config)."""
    with h.temp_dir() as workdir:
        idp = IdentityProvider(workdir)
        try:
            idp.add_key("RS256")
            idp.serve(max_age=max_age)
            cfg = h.base_config(http=http) if http else h.base_config()
            if trusted:
                cfg["auth"]["jwt"] = [end_user_issuer(idp)]
            server = h.Server(cfg, workdir=workdir).start()
            client = h.Client(server)
            try:
                yield idp, server, client, cfg
            finally:
                client.close()
                server.stop()
        finally:
            idp.close()


def alice_metadata(idp, server):
    token = idp.mint(idp.claims(preferred_username="alice"))
    server.add_secret(token)
    return [("authorization", "Bearer " + token)]


class JwtReloadTest(unittest.TestCase):
    """auth.jwt reloads with the rest of auth (issue 14): an issuer added
    by a reload is trusted at once, one removed is not; a file event that
    changes nothing starts no JWKS fetch of its own."""

    def test_issuer_added_and_removed_by_reloads(self):
        with idp_and_server(3600, False, http={"listen": "127.0.0.1:0"}) as (idp, server, client,
                                                                           cfg):
            md = alice_metadata(idp, server)
            self.assertEqual(client.get_user_token("alice", metadata=md).code,
                             Code.UNAUTHENTICATED)
            with_jwt = json.loads(json.dumps(cfg))
            with_jwt["auth"]["jwt"] = [end_user_issuer(idp)]
            server.write_config(with_jwt)
            self.assertEqual(server.reload()["event"], "config_reloaded")
            self.assertIsNotNone(server.wait_event("jwks_loaded", 10))
            self.assertEqual(client.get_user_token("alice", metadata=md).code, Code.OK)
            # the same config written again: the watcher sees the event,
            # finds nothing changed and fetches nothing
            fetches = idp.fetches
            server.write_config(with_jwt)
            time.sleep(1.0)
            self.assertEqual(idp.fetches, fetches)
            self.assertEqual(http_get(http_port(server), "/readyz")[0], 200)
            server.write_config(cfg)
            self.assertEqual(server.reload()["event"], "config_reloaded")
            self.assertEqual(client.get_user_token("alice", metadata=md).code,
                             Code.UNAUTHENTICATED)
            self.assertEqual(server.leaked_secrets(), [])


class JwksCacheTest(unittest.TestCase):
    """A max-age under a minute is raised to 60 s: an identity provider that
    says max-age=1 is not fetched again every second (the clamp itself is
    unit.test_jwks)."""

    def test_short_max_age_is_raised_to_a_minute(self):
        with idp_and_server(1, True) as (idp, server, client, _):
            self.assertIsNotNone(server.wait_event("jwks_loaded", 10))
            fetches = idp.fetches
            time.sleep(3.0)
            r = client.get_user_token("alice", metadata=alice_metadata(idp, server))
            self.assertEqual(r.code, Code.OK, r.details)
            self.assertEqual(idp.fetches, fetches)

if __name__ == "__main__":
    unittest.main()
