"""The HTTP user route in uuid identity mode, against the fake Agora Chat
server: a lookup that goes upstream suspends the HTTP connection and the
directory thread resumes it; a cached one answers at once; concurrent
requests all finish; upstream failures map to 503; the directory's
counters show in /metrics; SIGTERM with a lookup under way exits cleanly;
agora-token-service's Chat routes follow uuid mode too."""
import concurrent.futures
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes"))
import harness as h  # noqa: E402
from fake_chat import FakeChat  # noqa: E402

FAKE = os.path.join(h.BIN_DIR, "fake-chat-server")
BEARER_WEB = "Authorization: Bearer " + h.WEB_KEY


def fake_chat():
    """The fake Agora Chat server for this app (tests/fakes/fake_chat.py)."""
    return FakeChat(FAKE, h.APP_ID, h.CERTIFICATE, h.APP_KEY)


@unittest.skipUnless(os.path.exists(FAKE), "fake-chat-server is not built")
class HttpUuidMode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = fake_chat()
        cfg = h.base_config(user_tokens={"identity": "uuid"},
                            directory={"base_url": cls.fake.url, "retries": 0,
                                       "request_timeout_ms": 3000})
        cfg["http"]["agora_token_service_routes"] = True
        cls.server = h.Server(cfg)

    @classmethod
    def tearDownClass(cls):
        try:
            assert cls.server.stop() == 0
        finally:
            cls.fake.close()

    def user_token(self, name):
        return h.curl(self.server.base + "/chat/user/%s/token" % name, headers=[BEARER_WEB])

    def test_upstream_lookup_then_cache_hit(self):
        self.fake.admin("/_admin/fault", {"delay_ms": 300})  # the first lookup waits upstream
        first = self.user_token("Uma")
        self.assertEqual(first.status, 200, first)
        uuid = self.fake.admin("/_admin/users/uma")["uuid"]
        second = self.user_token("uma")
        self.assertEqual(second.status, 200, second)
        h.verify_tokens([{"token": t.body, "app_id": h.APP_ID, "certificate": h.CERTIFICATE,
                          "kind": "user", "user_id": uuid} for t in (first, second)])

    def test_agora_token_service_routes_carry_the_uuid(self):
        self.fake.admin("/_admin/fault", {"delay_ms": 200})  # the lookup waits upstream
        by_path = h.curl(self.server.base + "/chat/account/Vera/", headers=[BEARER_WEB])
        self.assertEqual(by_path.status, 200, by_path)
        by_post = h.curl(self.server.base + "/getToken", method="POST", headers=[BEARER_WEB],
                         data='{"tokenType": "chat", "uid": "vera"}')
        self.assertEqual(by_post.status, 200, by_post)
        uuid = self.fake.admin("/_admin/users/vera")["uuid"]
        h.verify_tokens([{"token": by_path.json()["chatToken"], "app_id": h.APP_ID,
                          "certificate": h.CERTIFICATE, "kind": "user", "user_id": uuid},
                         {"token": by_post.json()["token"], "app_id": h.APP_ID,
                          "certificate": h.CERTIFICATE, "kind": "user", "user_id": uuid}])

    def test_concurrent_lookups_all_finish(self):
        self.fake.admin("/_admin/fault", {"delay_ms": 200, "count": 8})
        names = ["c%02d" % i for i in range(16)]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(self.user_token, names))
        self.assertEqual([a.status for a in answers], [200] * 16, answers)
        uuids = [self.fake.admin("/_admin/users/" + n)["uuid"] for n in names]
        h.verify_tokens([{"token": a.body, "app_id": h.APP_ID, "certificate": h.CERTIFICATE,
                          "kind": "user", "user_id": u} for a, u in zip(answers, uuids)])

    def test_upstream_failure_is_503_json(self):
        self.fake.admin("/_admin/fault", {"status": 503, "count": 1})  # retries: 0
        resp = self.user_token("failing")
        self.assertEqual(resp.status, 503, resp)
        self.assertEqual(resp.json()["code"], "UNAVAILABLE")

    def test_dot_segment_usernames_are_400_and_never_go_upstream(self):
        self.fake.admin("/_admin/users", {"username": "victim"})
        before = self.fake.admin("/_admin/stats")["requests"]
        for name in (".", "..", "%2e", "%2E%2e"):
            # --path-as-is: the dots reach the server, as an attacker sends them
            resp = h.curl(self.server.base + "/chat/user/%s/token" % name, headers=[BEARER_WEB],
                          extra=["--path-as-is"])
            self.assertEqual(resp.status, 400, (name, resp))
            self.assertEqual(resp.json()["code"], "INVALID_ARGUMENT")
            self.assertIn("only of dots", resp.json()["message"])
        self.assertEqual(self.fake.admin("/_admin/stats")["requests"], before)

    def upstream_attempts(self, text):
        prefix = "chat_tokend_directory_upstream_duration_seconds_count "
        return [float(line.split()[1]) for line in text.split("\n") if line.startswith(prefix)][0]

    def test_directory_counters_in_metrics(self):
        before = self.upstream_attempts(h.curl(self.server.base + "/metrics").body)
        self.user_token("counted")
        self.user_token("counted")
        text = h.curl(self.server.base + "/metrics").body
        for name in ("chat_tokend_directory_cache_hits_total",
                     "chat_tokend_directory_cache_misses_total",
                     "chat_tokend_directory_cache_entries",
                     'chat_tokend_directory_upstream_requests_total{outcome="ok"}',
                     "chat_tokend_directory_registrations_total"):
            self.assertIn("\n" + name + " ", text)
        hits = [line for line in text.split("\n")
                if line.startswith("chat_tokend_directory_cache_hits_total ")]
        self.assertGreaterEqual(float(hits[0].split()[1]), 1)
        # a new user: one GET + one POST upstream, both in the latency histogram
        self.assertEqual(self.upstream_attempts(text) - before, 2)
        self.assertIn('chat_tokend_directory_upstream_duration_seconds_bucket{le="+Inf"} ', text)


@unittest.skipUnless(os.path.exists(FAKE), "fake-chat-server is not built")
class HttpUuidShutdown(unittest.TestCase):
    def test_sigterm_with_a_lookup_under_way(self):
        fake = fake_chat()
        try:
            cfg = h.base_config(user_tokens={"identity": "uuid"},
                                directory={"base_url": fake.url, "retries": 0,
                                           "request_timeout_ms": 3000},
                                shutdown={"drain_seconds": 0, "grace_seconds": 1})
            server = h.Server(cfg)
            fake.admin("/_admin/fault", {"delay_ms": 1500})
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = pool.submit(h.curl, server.base + "/chat/user/slow/token",
                                      headers=[BEARER_WEB])
                time.sleep(0.4)  # the request is suspended, waiting for upstream
                started = time.monotonic()
                self.assertEqual(server.stop(), 0)
                self.assertLess(time.monotonic() - started, 15)
                answer = pending.result(timeout=20)
            # answered before the server went, or cut off: never a hang
            self.assertIn(answer.status, (0, 200, 503), answer)
        finally:
            fake.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
