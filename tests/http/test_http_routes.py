"""The HTTP side with a real client (curl) against the real chat-tokend:
every route, the error statuses and their JSON, CORS (simple requests and
preflights from an allowed and a refused origin), the size and connection
limits, readiness while draining, and no secret in the logs. Tokens are
checked with the npm agora-token package."""
import calendar
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

BEARER_WEB = "Authorization: Bearer " + h.WEB_KEY
BEARER_ADMIN = "Authorization: Bearer " + h.ADMIN_KEY
JSON = "Content-Type: application/json"


def cli_token(kind, issue_ts, ttl, user=None, certificate=h.CERTIFICATE):
    """A token built by our CLI at a chosen time (expired ones, for 412)."""
    with tempfile.NamedTemporaryFile("w", prefix="ct-http-cert-") as f:
        f.write(certificate + "\n")
        f.flush()
        args = [os.path.join(h.BIN_DIR, "chat-token"), "build", kind, "--app-id", h.APP_ID,
                "--app-cert-file", f.name, "--ttl", str(ttl), "--salt", "7",
                "--issue-ts", str(issue_ts)]
        if user is not None:
            args += ["--user", user]
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


class HttpRoutes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = h.Server(h.base_config())
        cls.base = cls.server.base

    @classmethod
    def tearDownClass(cls):
        # nothing secret in the logs: keys, tokens
        cls.server.stop_clean(h.WEB_KEY, h.ADMIN_KEY, h.CERTIFICATE)

    def get(self, path, *headers, **kw):
        return h.curl(self.base + path, headers=headers, **kw)

    def assert_error(self, resp, status, code):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.header("content-type"), "application/json")
        body = resp.json()
        self.assertEqual(body["code"], code, body)
        self.assertTrue(body["message"], body)
        self.assertEqual(sorted(body), ["code", "message"])
        return body

    # ---- routes ----

    def test_app_token_is_the_whole_text_body(self):
        resp = self.get("/chat/app/token", BEARER_ADMIN)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(resp.header("cache-control"), "no-store")
        h.verify_tokens([{"token": resp.body, "app_id": h.APP_ID, "certificate": h.CERTIFICATE,
                          "kind": "app", "user_id": "",
                          "not_certificate": h.OTHER_CERTIFICATE}])

    def test_user_token_with_bearer_and_with_x_api_key(self):
        a = self.get("/chat/user/Alice/token", BEARER_WEB)
        b = self.get("/chat/user/bob_2.x-y/token", "X-Api-Key: " + h.WEB_KEY)
        self.assertEqual((a.status, b.status), (200, 200), (a, b))
        facts = h.verify_tokens([
            {"token": a.body, "app_id": h.APP_ID, "certificate": h.CERTIFICATE, "kind": "user",
             "user_id": "alice"},  # usernames are case-insensitive: normalised
            {"token": b.body, "app_id": h.APP_ID, "certificate": h.CERTIFICATE, "kind": "user",
             "user_id": "bob_2.x-y"}])
        self.assertEqual(facts[0]["expire"], 3600)  # the configured default

    def test_ttl_query(self):
        resp = self.get("/chat/user/carol/token?ttl=600", BEARER_WEB)
        self.assertEqual(resp.status, 200, resp)
        facts = h.verify_tokens([{"token": resp.body, "app_id": h.APP_ID,
                                  "certificate": h.CERTIFICATE, "kind": "user",
                                  "user_id": "carol"}])
        self.assertEqual(facts[0]["expire"], 600)

    def test_head_sends_no_body(self):
        resp = h.curl(self.base + "/healthz", extra=["-I"])
        self.assertEqual(resp.status, 200, resp)
        # with -I curl prints the headers as its output: nothing may follow
        self.assertTrue(resp.body.endswith("\r\n\r\n"), resp)
        self.assertEqual(resp.header("content-length"), "3")

    def test_renew_answers_json(self):
        token = self.get("/chat/user/dave/token", BEARER_WEB).body
        before = int(time.time())
        resp = self.get("/chat/token/renew", BEARER_WEB, JSON, method="POST",
                        data='{"token": "%s", "ttl_seconds": 1200}' % token)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("content-type"), "application/json")
        body = resp.json()
        self.assertEqual(sorted(body), ["expire_time", "kind", "token", "user_id"])
        self.assertEqual(body["kind"], "TOKEN_KIND_USER")
        self.assertEqual(body["user_id"], "dave")
        self.assertNotEqual(body["token"], token)
        expire = calendar.timegm(time.strptime(body["expire_time"], "%Y-%m-%dT%H:%M:%SZ"))
        self.assertTrue(before + 1200 - 5 <= expire <= int(time.time()) + 1200 + 5, body)
        facts = h.verify_tokens([{"token": body["token"], "app_id": h.APP_ID,
                                  "certificate": h.CERTIFICATE, "kind": "user",
                                  "user_id": "dave"}])
        self.assertEqual(facts[0]["expire"], 1200)

    def test_renew_of_an_app_token_needs_get_app_token(self):
        app = self.get("/chat/app/token", BEARER_ADMIN).body
        body = '{"token": "%s"}' % app
        denied = self.get("/chat/token/renew", BEARER_WEB, JSON, method="POST", data=body)
        self.assert_error(denied, 403, "PERMISSION_DENIED")
        ok = self.get("/chat/token/renew", BEARER_ADMIN, JSON, method="POST", data=body)
        self.assertEqual(ok.status, 200, ok)
        self.assertEqual(ok.json()["kind"], "TOKEN_KIND_APP")
        self.assertEqual(ok.json()["user_id"], "")

    def test_health_readiness_and_metrics_are_open(self):
        self.assertEqual((self.get("/healthz").status, self.get("/healthz").body), (200, "ok\n"))
        self.assertEqual((self.get("/readyz").status, self.get("/readyz").body),
                         (200, "ready\n"))
        metrics = self.get("/metrics")
        self.assertEqual(metrics.status, 200, metrics)
        self.assertEqual(metrics.header("content-type"),
                         "text/plain; version=0.0.4; charset=utf-8")
        self.assertIn("chat_tokend_build_info{version=", metrics.body)

    # ---- errors: JSON with the status of the gRPC code, never 200 ----

    def test_no_credentials_is_401_with_a_challenge(self):
        resp = self.get("/chat/user/alice/token")
        self.assert_error(resp, 401, "UNAUTHENTICATED")
        self.assertEqual(resp.header("www-authenticate"), 'Bearer realm="chat-tokend"')

    def test_unknown_key_is_401(self):
        self.assert_error(self.get("/chat/user/alice/token", "Authorization: Bearer nope"), 401,
                          "UNAUTHENTICATED")
        self.assert_error(self.get("/chat/user/alice/token", "Authorization: Basic eDp5"), 401,
                          "UNAUTHENTICATED")

    def test_more_than_one_credential_is_401(self):
        # a proxy or an authorizer that read the other copy would be bypassed:
        # two keys, in any combination, are refused even when both are valid
        for headers in ((BEARER_WEB, BEARER_ADMIN),
                        (BEARER_ADMIN, "authorization: Bearer nope"),
                        (BEARER_WEB, "X-Api-Key: " + h.WEB_KEY),
                        ("X-Api-Key: " + h.ADMIN_KEY, "x-api-key: " + h.ADMIN_KEY)):
            body = self.assert_error(self.get("/chat/app/token", *headers), 401,
                                     "UNAUTHENTICATED")
            self.assertIn("more than one credential", body["message"])

    def test_method_not_in_the_keys_allow_list_is_403(self):
        body = self.assert_error(self.get("/chat/app/token", BEARER_WEB), 403,
                                 "PERMISSION_DENIED")
        self.assertIn("GetAppToken", body["message"])

    def test_invalid_username_is_400(self):
        for path in ("/chat/user/bad%20name/token", "/chat/user/a%2Fb/token",
                     "/chat/user//token", "/chat/user/%zz/token", "/chat/user/%00/token",
                     "/chat/user/" + "a" * 65 + "/token"):
            with self.subTest(path=path):
                self.assert_error(self.get(path, BEARER_WEB), 400, "INVALID_ARGUMENT")

    def test_bad_ttl_is_400(self):
        for query in ("ttl=abc", "ttl=-5", "ttl=", "ttl", "ttl=99999999999", "ttl=7201"):
            with self.subTest(query=query):
                body = self.assert_error(self.get("/chat/user/alice/token?" + query, BEARER_WEB),
                                         400, "INVALID_ARGUMENT")
                self.assertIn("ttl", body["message"])

    def test_unknown_route_is_404(self):
        for path in ("/", "/chat/app/token/", "/chat/user/a/b/token", "/nope", "/METRICS"):
            with self.subTest(path=path):
                self.assert_error(self.get(path, BEARER_ADMIN), 404, "NOT_FOUND")

    def test_wrong_method_is_405_with_allow(self):
        resp = self.get("/chat/token/renew", BEARER_WEB)
        self.assertEqual(resp.status, 405, resp)
        self.assertEqual(resp.header("allow"), "POST, OPTIONS")
        resp = self.get("/chat/user/alice/token", BEARER_WEB, method="DELETE")
        self.assertEqual(resp.status, 405, resp)
        self.assertEqual(resp.header("allow"), "GET, OPTIONS")
        self.assertEqual(resp.json()["code"], "UNIMPLEMENTED")

    def test_renew_errors(self):
        def renew(data, *headers):
            return self.get("/chat/token/renew", BEARER_WEB, *(headers or (JSON,)),
                            method="POST", data=data)

        self.assert_error(renew("not json"), 400, "INVALID_ARGUMENT")
        self.assert_error(renew('{"ttl_seconds": 60}'), 400, "INVALID_ARGUMENT")
        self.assert_error(renew('{"token": "x", "extra": 1}'), 400, "INVALID_ARGUMENT")
        self.assert_error(renew('{"token": "007garbage"}'), 400, "INVALID_ARGUMENT")
        self.assert_error(renew('{"token": "x"}', "Content-Type: text/plain"), 415,
                          "INVALID_ARGUMENT")
        now = int(time.time())
        foreign = cli_token("user", now, 600, "eve", certificate=h.OTHER_CERTIFICATE)
        self.assert_error(renew('{"token": "%s"}' % foreign), 403, "PERMISSION_DENIED")
        # expired 10000 s ago, far past renew_grace_seconds (60): log in again
        expired = cli_token("user", now - 10600, 600, "eve")
        self.assert_error(renew('{"token": "%s"}' % expired), 412, "FAILED_PRECONDITION")
        # within the grace: renewed
        recent = cli_token("user", now - 630, 600, "eve")
        self.assertEqual(renew('{"token": "%s"}' % recent).status, 200)
        self.assert_error(renew('{"token": "%s", "ttl_seconds": 7201}' % recent), 400,
                          "INVALID_ARGUMENT")

    # ---- limits ----

    def test_body_over_64_kib_is_413(self):
        with tempfile.NamedTemporaryFile("w", prefix="ct-http-body-") as f:
            f.write('{"token": "' + "a" * (70 * 1024) + '"}')
            f.flush()
            resp = self.get("/chat/token/renew", BEARER_WEB, JSON, method="POST",
                            data_file=f.name)
            self.assert_error(resp, 413, "INVALID_ARGUMENT")
            # chunked: no Content-Length to refuse up front; the connection is
            # closed once the body passes the bound, and nothing is issued
            chunked = self.get("/chat/token/renew", BEARER_WEB, JSON,
                               "Transfer-Encoding: chunked", method="POST", data_file=f.name)
            self.assertNotEqual(chunked.status, 200, chunked)

    def test_long_url_is_414_and_huge_headers_are_refused(self):
        resp = self.get("/chat/user/" + "a" * 3000 + "/token", BEARER_WEB)
        self.assert_error(resp, 414, "INVALID_ARGUMENT")
        resp = self.get("/healthz", "X-Filler: " + "b" * (40 * 1024))
        self.assertIn(resp.status, (0, 413, 431), resp)

    # ---- CORS ----

    def test_allowed_origin_gets_cors_headers(self):
        resp = self.get("/chat/user/alice/token", BEARER_WEB, "Origin: " + h.ORIGIN)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("access-control-allow-origin"), h.ORIGIN)
        self.assertIn("Origin", resp.header("vary"))
        # errors too, so that the page can read the JSON
        err = self.get("/chat/user/alice/token", "Origin: " + h.ORIGIN)
        self.assertEqual(err.status, 401)
        self.assertEqual(err.header("access-control-allow-origin"), h.ORIGIN)

    def test_refused_origin_gets_no_cors_headers(self):
        for origin in ("http://evil.example", "http://localhost:8081", h.ORIGIN + "/", "null"):
            with self.subTest(origin=origin):
                resp = self.get("/chat/user/alice/token", BEARER_WEB, "Origin: " + origin)
                self.assertIsNone(resp.header("access-control-allow-origin"), resp)
                self.assertIn("Origin", resp.header("vary"))

    def test_preflight_from_allowed_origin(self):
        resp = self.get("/chat/token/renew", "Origin: " + h.ORIGIN,
                        "Access-Control-Request-Method: POST",
                        "Access-Control-Request-Headers: authorization, content-type",
                        method="OPTIONS")
        self.assertEqual(resp.status, 204, resp)
        self.assertEqual(resp.header("access-control-allow-origin"), h.ORIGIN)
        self.assertEqual(resp.header("access-control-allow-methods"), "GET, POST, OPTIONS")
        self.assertEqual(resp.header("access-control-allow-headers"),
                         "Authorization, Content-Type, X-Api-Key")
        self.assertEqual(resp.header("access-control-max-age"), "600")
        self.assertIn("Origin", resp.header("vary"))
        self.assertEqual(resp.body, "")

    def test_preflight_from_refused_origin_is_403(self):
        resp = self.get("/chat/user/alice/token", "Origin: http://evil.example",
                        "Access-Control-Request-Method: GET", method="OPTIONS")
        self.assert_error(resp, 403, "PERMISSION_DENIED")
        self.assertIsNone(resp.header("access-control-allow-origin"))
        self.assertIsNone(resp.header("access-control-allow-methods"))

    def test_options_without_origin_says_allow(self):
        resp = self.get("/chat/app/token", method="OPTIONS")
        self.assertEqual(resp.status, 204, resp)
        self.assertEqual(resp.header("allow"), "GET, OPTIONS")
        resp = self.get("/metrics", method="OPTIONS")
        self.assertEqual(resp.header("allow"), "GET, HEAD, OPTIONS")

    def test_rpc_lines_are_logged_with_transport_http(self):
        self.get("/chat/user/loggy/token", BEARER_WEB)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rpcs = [e for e in self.server.events("rpc") if e.get("transport") == "http"]
            if any(e.get("method") == "GetUserToken" and e.get("caller") == "web" for e in rpcs):
                return
            time.sleep(0.05)
        self.fail("no rpc log line with transport http:\n" + self.server.log_text())


class HttpCompatRoutesOff(unittest.TestCase):
    def test_compat_routes_off_leaves_renew_and_health(self):
        cfg = h.base_config()
        cfg["http"]["compat_routes"] = False
        server = h.Server(cfg)
        try:
            self.assertEqual(h.curl(server.base + "/chat/app/token",
                                    headers=[BEARER_ADMIN]).status, 404)
            self.assertEqual(h.curl(server.base + "/chat/user/a/token",
                                    headers=[BEARER_ADMIN]).status, 404)
            renew = h.curl(server.base + "/chat/token/renew", method="POST",
                           headers=[BEARER_ADMIN, JSON], data='{"token": "x"}')
            self.assertEqual(renew.status, 400)
            self.assertEqual(h.curl(server.base + "/healthz").status, 200)
        finally:
            self.assertEqual(server.stop(), 0)


class HttpConnectionsAndDrain(unittest.TestCase):
    def test_connection_over_the_limit_is_refused_at_once_with_503(self):
        cfg = h.base_config()
        cfg["http"]["max_connections"] = 1
        server = h.Server(cfg)
        try:
            idle = socket.create_connection(("127.0.0.1", server.http_port))
            time.sleep(0.3)  # accepted by the server: it holds the only slot
            start = time.monotonic()
            refused = h.curl(server.base + "/chat/user/alice/token", extra=["--max-time", "3"],
                             headers=[BEARER_WEB, "Origin: " + h.ORIGIN])
            refused_in = time.monotonic() - start
            self.assertEqual(refused.status, 503, refused)
            self.assertEqual(refused.header("content-type"), "application/json")
            self.assertEqual(refused.json(), {"code": "UNAVAILABLE",
                                              "message": "too many connections: limit 1"})
            self.assertEqual(refused.header("retry-after"), "1")
            self.assertEqual(refused.header("connection"), "close")
            # the page can read why, and retry
            self.assertEqual(refused.header("access-control-allow-origin"), h.ORIGIN)
            self.assertLess(refused_in, 1.0)  # no waiting for the slot (curl start included)
            # operators are told (one warning a second at most), and no
            # handler ran: no call was logged
            deadline = time.monotonic() + 2
            while not server.events("http_connection_limit") and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertIn("http.max_connections (1) reached",
                          server.events("http_connection_limit")[0]["message"])
            self.assertFalse([e for e in server.events("rpc") if e.get("transport") == "http"])
            # the connection within the limit is still served
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            idle.settimeout(5)
            self.assertTrue(idle.recv(4096).startswith(b"HTTP/1.1 200"))
            idle.close()
            time.sleep(0.3)
            self.assertEqual(h.curl(server.base + "/healthz").status, 200)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_readyz_is_503_while_draining_and_calls_still_work(self):
        cfg = h.base_config(shutdown={"drain_seconds": 3, "grace_seconds": 2})
        server = h.Server(cfg)
        try:
            self.assertEqual(h.curl(server.base + "/readyz").status, 200)
            server.signal(signal.SIGTERM)
            deadline = time.monotonic() + 2
            status = 200
            while status == 200 and time.monotonic() < deadline:
                status = h.curl(server.base + "/readyz").status
                time.sleep(0.05)
            self.assertEqual(status, 503)
            self.assertEqual(h.curl(server.base + "/readyz").body, "draining\n")
            healthz = h.curl(server.base + "/healthz")
            self.assertEqual(healthz.status, 200)
            # keep-alive clients are told to go elsewhere
            self.assertEqual(healthz.header("connection"), "close")
            self.assertEqual(h.curl(server.base + "/chat/user/alice/token",
                                    headers=[BEARER_WEB]).status, 200)
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
