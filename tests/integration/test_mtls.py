"""mTLS: client certificates required and verified, callers identified by
the SPIFFE ID in their certificate's URI SAN; the plaintext health-only
listener next to an mTLS main port (Kubernetes' gRPC probes)."""
import unittest

import grpc

import harness as h

Code = grpc.StatusCode


class MutualTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = h.temp_dir()
        workdir = cls.dir.__enter__()
        cls.certs = h.Certificates(workdir)
        server_crt, server_key = cls.certs.server
        cfg = h.base_config(
            health_listen="127.0.0.1:0",
            tls={"cert_file": server_crt, "key_file": server_key,
                 "client_ca_file": cls.certs.ca_file})
        cfg["auth"]["mtls_clients"] = [
            {"id": h.SPIFFE_BACKEND, "methods": ["GetUserToken", "RenewToken"]}]
        cls.server = h.Server(cfg, workdir=workdir).start()

    @classmethod
    def tearDownClass(cls):
        h.stop_in_dir(cls.server, cls.dir)

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


if __name__ == "__main__":
    h.main()
