"""agora-token-service's routes (http.agora_token_service_routes: true):
the requests recorded in agora_token_service_fixture.json, sent with curl to
the real chat-tokend, answer with the status, JSON keys and redirects
agora-token-service answers (or what the fixture says we answer instead,
and why); every token is checked with npm agora-token (RTC/RTM tokens are
rebuilt byte for byte from the request's inputs). Then our auth on those
routes: no key 401, a key without the route's method 403, /ping open; our
limits; their RTC token renewed through our renew route; the calls counted
in /metrics; the routes are off by default."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

FIXTURE = os.path.join(h.HERE, "agora_token_service_fixture.json")
VERIFY_RTC = os.path.join(h.SOURCE_DIR, "tests", "integration", "verify_rtc_token.js")
ALL_KEY = "all-key-7e1f3a5c9b"
ALL_METHODS = ["GetAppToken", "GetUserToken", "RenewToken", "GetRtcToken", "GetRtmToken"]


def config(routes=True):
    cfg = h.base_config(tokens={"default_ttl_seconds": 3600, "max_ttl_seconds": 86400,
                                "renew_grace_seconds": 60})
    cfg["http"]["agora_token_service_routes"] = routes
    cfg["auth"]["api_keys"].append({"name": "all", "sha256": h.sha256_hex(ALL_KEY),
                                    "methods": ALL_METHODS})
    return cfg


def verify_rtc(checks):
    proc = subprocess.run([h.NODE, VERIFY_RTC], input=json.dumps({"checks": checks}),
                          capture_output=True, text=True,
                          env=dict(os.environ, NODE_PATH=h.NODE_PATH), timeout=60)
    if proc.returncode != 0:
        raise AssertionError("agora-token: " + proc.stderr.strip())
    return json.loads(proc.stdout)


class AgoraTokenServiceRoutes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(FIXTURE) as f:
            cls.fixture = json.load(f)["requests"]
        cls.server = h.Server(config())
        cls.base = cls.server.base

    @classmethod
    def tearDownClass(cls):
        cls.server.stop_clean(ALL_KEY, h.WEB_KEY, h.CERTIFICATE)

    def send(self, entry, *headers):
        data = entry.get("body") if entry["method"] == "POST" else None
        return h.curl(self.base + entry["path"], method=entry["method"], headers=headers,
                      data=data)

    def check_answer(self, entry, resp):
        want = entry.get("ours", entry["theirs"])
        self.assertEqual(resp.status, want["status"], resp)
        if "location" in want:
            self.assertEqual(resp.header("location"), want["location"])
            return None
        body = resp.json()
        if want["status"] >= 400 and "ours" not in entry:
            # their error shapes vary ("message" or "error", or text); ours
            # always carry "status" and "message", and our code
            self.assertEqual(sorted(body), ["code", "message", "status"], body)
            self.assertEqual(body["status"], want["status"])
            self.assertEqual(body["code"], {400: "INVALID_ARGUMENT"}[want["status"]])
            return None
        self.assertEqual(sorted(body), sorted(want["keys"]), body)
        if "body" in want:
            self.assertEqual(body, want["body"])
        return body

    def test_every_recorded_request_answers_as_recorded(self):
        rtc_checks, chat_checks = [], []
        for entry in self.fixture:
            with self.subTest(method=entry["method"], path=entry["path"],
                              body=entry.get("body")):
                body = self.check_answer(entry, self.send(entry, "X-Api-Key: " + ALL_KEY))
                expected = entry.get("our_token", entry.get("token"))
                if body is None or expected is None or entry.get("ours", {}).get("status",
                                                                                 200) != 200:
                    continue
                [token] = body.values()
                if expected["kind"] in ("rtc", "rtm"):
                    check = dict(expected, token=token, app_id=h.APP_ID,
                                 certificate=h.CERTIFICATE)
                    check.setdefault("privilege_ttl", expected["ttl"])
                    rtc_checks.append(check)
                else:
                    chat_checks.append(({"token": token, "kind": expected["kind"],
                                         "app_id": h.APP_ID, "certificate": h.CERTIFICATE,
                                         "not_certificate": h.OTHER_CERTIFICATE,
                                         "user_id": expected.get("user_id", "")},
                                        expected["ttl"]))
        self.assertEqual(len(rtc_checks), 10)
        self.assertEqual(len(chat_checks), 6)
        verify_rtc(rtc_checks)
        views = h.verify_tokens([c for c, _ in chat_checks])
        for view, (_, ttl) in zip(views, chat_checks):
            self.assertEqual(view["expire"], ttl)

    def test_our_auth_guards_the_routes(self):
        rtc = {"method": "GET", "path": "/rtc/room/publisher/uid/1/"}
        resp = self.send(rtc)
        self.assertEqual(resp.status, 401, resp)
        self.assertEqual(resp.json()["status"], 401)
        # the web key has GetUserToken and RenewToken only
        resp = self.send(rtc, "Authorization: Bearer " + h.WEB_KEY)
        self.assertEqual(resp.status, 403, resp)
        self.assertEqual(resp.json()["message"], "caller 'web' may not call GetRtcToken")
        resp = self.send({"method": "GET", "path": "/chat/app/"}, "X-Api-Key: " + h.WEB_KEY)
        self.assertEqual(resp.status, 403, resp)
        resp = self.send({"method": "POST", "path": "/getToken",
                          "body": '{"tokenType": "rtm", "uid": "u1"}'},
                         "X-Api-Key: " + h.WEB_KEY)
        self.assertEqual(resp.status, 403, resp)
        self.assertEqual(resp.json()["message"], "caller 'web' may not call GetRtmToken")
        resp = self.send({"method": "GET", "path": "/chat/account/alice/"},
                         "X-Api-Key: " + h.WEB_KEY)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.send({"method": "GET", "path": "/ping"}).status, 200)

    def test_our_limits_and_methods(self):
        long_channel = "/rtc/" + "c" * 65 + "/publisher/uid/1/"
        resp = self.send({"method": "GET", "path": long_channel}, "X-Api-Key: " + ALL_KEY)
        self.assertEqual(resp.status, 400, resp)
        self.assertEqual(resp.json()["message"], "channel_name must be at most 64 bytes")
        resp = self.send({"method": "GET", "path": "/rtc/room/publisher/uid/1/?expiry=86401"},
                         "X-Api-Key: " + ALL_KEY)
        self.assertEqual(resp.status, 400, resp)
        self.assertIn("86400", resp.json()["message"])
        resp = self.send({"method": "POST", "path": "/ping", "body": "{}"})
        self.assertEqual(resp.status, 405, resp)
        self.assertEqual(resp.header("allow"), "GET, OPTIONS")

    def test_our_renew_route_renews_their_rtc_token(self):
        token = self.send({"method": "GET", "path": "/rtc/room/publisher/userAccount/zoe/"},
                          "X-Api-Key: " + ALL_KEY).json()["rtcToken"]
        resp = h.curl(self.base + "/chat/token/renew", method="POST",
                      headers=["X-Api-Key: " + ALL_KEY, "Content-Type: application/json"],
                      data=json.dumps({"token": token, "ttl_seconds": 600}))
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        self.assertEqual(body["kind"], "TOKEN_KIND_RTC")
        self.assertEqual(body["user_id"], "zoe")
        verify_rtc([{"token": body["token"], "kind": "rtc", "channel": "room", "account": "zoe",
                     "role": "publisher", "ttl": 600, "privilege_ttl": 600,
                     "app_id": h.APP_ID, "certificate": h.CERTIFICATE}])

    def test_the_tokens_are_counted_in_metrics(self):
        before = h.curl(self.base + "/metrics").body
        self.send({"method": "GET", "path": "/rtm/metrics-user/"}, "X-Api-Key: " + ALL_KEY)
        after = h.curl(self.base + "/metrics").body

        def count(text):
            for line in text.splitlines():
                if line.startswith('chat_tokend_rpcs_total{transport="http",method="GetRtmToken",'
                                   'code="OK"}'):
                    return int(line.split()[-1])
            return 0
        self.assertEqual(count(after), count(before) + 1)


class RoutesOffByDefault(unittest.TestCase):
    def test_off_unless_configured(self):
        server = h.Server(config(routes=False))
        try:
            self.assertEqual(h.curl(server.base + "/ping").status, 404)
            resp = h.curl(server.base + "/rtm/alice/", headers=["X-Api-Key: " + ALL_KEY])
            self.assertEqual(resp.status, 404)
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
