"""mTLS: client certificates required and verified, callers identified by
the SPIFFE ID in their certificate's URI SAN; the plaintext health-only
listener next to an mTLS main port (Kubernetes' gRPC probes)."""
import time
import unittest

import grpc

import harness as h

Code = grpc.StatusCode


class MtlsCase(unittest.TestCase):
    """A server on the test CA's certificates: mTLS on the main port, the
    clients of MTLS_CLIENTS, and the client certificates make_leaves adds."""

    MTLS_CLIENTS = [{"id": h.SPIFFE_BACKEND, "methods": ["GetUserToken", "RenewToken"]}]

    @classmethod
    def make_leaves(cls):
        pass

    @classmethod
    def setUpClass(cls):
        cls.dir = h.temp_dir()
        workdir = cls.dir.__enter__()
        cls.certs = h.Certificates(workdir)
        cls.make_leaves()
        server_crt, server_key = cls.certs.server
        cfg = h.base_config(
            health_listen="127.0.0.1:0",
            tls={"cert_file": server_crt, "key_file": server_key,
                 "client_ca_file": cls.certs.ca_file})
        cfg["auth"]["mtls_clients"] = cls.MTLS_CLIENTS
        cls.server = h.Server(cfg, workdir=workdir).start()

    @classmethod
    def tearDownClass(cls):
        h.stop_in_dir(cls.server, cls.dir)


class MutualTlsTest(MtlsCase):
    def client(self, who):
        return h.Client(self.server, credentials=self.certs.channel_credentials(who))

    def test_known_spiffe_id_gets_a_user_token(self):
        with self.client("backend") as c:
            r = c.get_user_token("Alice")
            self.assertEqual(r.code, Code.OK, r.details)
            self.assertEqual(r.response.user_id, "alice")
            h.verify_tokens([{"token": r.response.token, "kind": "user", "user_id": "alice"}])
            renewed = c.renew_token(r.response.token)
            self.assertEqual(renewed.code, Code.OK, renewed.details)
        event = self.server.wait_event("rpc", 5, lambda e: e.get("caller") == h.SPIFFE_BACKEND)
        self.assertIsNotNone(event, self.server.stderr_text())

    def test_known_spiffe_id_is_limited_to_its_methods(self):
        with self.client("backend") as c:
            r = c.get_app_token()
            self.assertEqual(r.code, Code.PERMISSION_DENIED, r.details)

    def test_unknown_spiffe_id_is_unauthenticated(self):
        with self.client("stranger") as c:
            r = c.get_user_token("alice")
            self.assertEqual(r.code, Code.UNAUTHENTICATED, r.details)

    def test_api_key_works_over_mtls(self):
        with self.client("stranger") as c:
            r = c.get_app_token(key=h.ADMIN_KEY)
            self.assertEqual(r.code, Code.OK, r.details)

    def test_no_client_certificate_is_refused_in_the_handshake(self):
        with self.client(None) as c:
            r = c.get_user_token("alice", key=h.ADMIN_KEY, timeout=5)
            self.assertEqual(r.code, Code.UNAVAILABLE, r.details)
        # refused before any call: no GetUserToken by the admin key reached the server
        admin_calls = [e for e in self.server.rpc_events("GetUserToken")
                       if e.get("caller") == "admin"]
        self.assertEqual(admin_calls, [])

    def test_client_certificate_from_untrusted_ca_is_refused(self):
        with self.client("rogue") as c:
            r = c.get_user_token("alice", timeout=5)
            self.assertEqual(r.code, Code.UNAVAILABLE, r.details)

    def test_plaintext_to_the_tls_port_fails(self):
        with h.Client(self.server) as c:
            r = c.get_user_token("alice", key=h.ADMIN_KEY, timeout=5)
            self.assertEqual(r.code, Code.UNAVAILABLE, r.details)

    def test_plaintext_health_listener_answers_next_to_mtls_port(self):
        with h.Client(self.server, target=self.server.health_address) as c:
            r = c.health_check(h.SERVICE)
            self.assertEqual(r.code, Code.OK, r.details)
            self.assertEqual(h.health_status_name(r.response), "SERVING")


class SanTypesTest(MtlsCase):
    """What an mtls_clients id matches: an id with a scheme (a SPIFFE ID) a
    URI SAN, any other id a DNS SAN, whole values only; never an email or IP
    SAN or the subject CN. The certificates are made here, some with DER
    SANs so that a value may hold a NUL."""

    DNS_ID = "backend.chat.svc"
    MTLS_CLIENTS = MtlsCase.MTLS_CLIENTS + [{"id": DNS_ID, "methods": ["GetUserToken"]}]

    @classmethod
    def make_leaves(cls):
        spiffe = h.SPIFFE_BACKEND.encode()
        leaves = {
            "dns-spelling-spiffe": [(2, spiffe)],
            "email-spelling-spiffe": [(1, spiffe)],
            "ip-with-spiffe-cn": [(7, bytes([127, 0, 0, 1]))],
            "uri-with-nul": [(6, spiffe + b"\0.attacker.example")],
            "uri-longer": [(6, spiffe + b".attacker.example")],
            "two-uris": [(6, spiffe), (6, b"https://other.example/client")],
            "dns-backend": [(2, b"Backend.Chat.Svc")],
            "uri-and-dns": [(2, b"unrelated.example"), (6, spiffe)],
        }
        for name, sans in leaves.items():
            cls.certs.client_leaf(name, sans,
                                  cn=h.SPIFFE_BACKEND if name == "ip-with-spiffe-cn" else None)

    def call(self, who):
        with h.Client(self.server, credentials=self.certs.channel_credentials(who)) as c:
            return c.get_user_token(who.replace(".", "-"))

    def rpc_lines(self, predicate, at_least=1):
        """The GetUserToken log lines matching predicate, once there are
        at_least of them (the line may come just after the answer)."""
        deadline = time.monotonic() + 5
        while True:
            lines = [e for e in self.server.rpc_events("GetUserToken") if predicate(e)]
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def test_other_san_types_never_pass_for_a_spiffe_id(self):
        for who in ("dns-spelling-spiffe", "email-spelling-spiffe", "ip-with-spiffe-cn",
                    "uri-longer"):
            r = self.call(who)
            self.assertEqual(r.code, Code.UNAUTHENTICATED, (who, r.details))
            self.assertIn("not in auth.mtls_clients", r.details)

    def test_a_nul_in_a_uri_san_is_refused(self):
        r = self.call("uri-with-nul")
        self.assertEqual(r.code, Code.UNAUTHENTICATED, r.details)
        self.assertIn("URI SAN holding a NUL byte", r.details)
        # and the log never shows the clean ID for it
        refused = self.rpc_lines(lambda e: "NUL" in e.get("message", ""))
        self.assertTrue(refused, self.server.stderr_text())
        self.assertEqual({e["caller"] for e in refused}, {""})
        self.assertNotIn("san", refused[0])

    def test_a_spiffe_id_needs_a_certificate_with_one_uri_san(self):
        r = self.call("two-uris")
        self.assertEqual(r.code, Code.UNAUTHENTICATED, r.details)
        self.assertIn("holds 2 URI SANs", r.details)

    def test_the_matching_san_is_named_in_the_log(self):
        for who, san in (("backend", "URI:" + h.SPIFFE_BACKEND),
                         ("uri-and-dns", "URI:" + h.SPIFFE_BACKEND),
                         ("dns-backend", "DNS:" + self.DNS_ID)):
            def matching(e):
                return e.get("san") == san and e["caller"] == san.split(":", 1)[1]
            before = len(self.rpc_lines(matching, at_least=0))
            r = self.call(who)
            self.assertEqual(r.code, Code.OK, (who, r.details))
            self.assertEqual(len(self.rpc_lines(matching, at_least=before + 1)), before + 1,
                             self.server.stderr_text())

if __name__ == "__main__":
    h.main()
