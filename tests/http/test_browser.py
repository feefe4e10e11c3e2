"""The real-browser test: Debian's chromium (headless, driven by
playwright-core) opens client-examples/web served from one localhost origin;
the page fetches a user token cross-origin from chat-tokend's HTTP port the
way the seed's index.js does, renews it (a JSON POST: a real CORS
preflight), and shows both; both are checked with npm agora-token. The same
page from an origin that is not allowed must fail in the browser. And with
auth.jwt: the page logs in at the test identity provider
(tests/fakes/idp.py), sends the ID token instead of an API key, gets and
renews its own user's token and is refused another user's with 403.
Exits 77 (ctest SKIP) only when /usr/bin/chromium is missing."""
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes"))
import harness as h  # noqa: E402
from idp import IdentityProvider  # noqa: E402  (tests/fakes/idp.py)

CHROMIUM = "/usr/bin/chromium"
WEB_DIR = os.path.join(h.SOURCE_DIR, "client-examples", "web")
SKIP = 77


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Browser(unittest.TestCase):
    @classmethod
    def serve_page(cls):
        """client-examples/web on a static server of its own origin."""
        handler = functools.partial(QuietHandler, directory=WEB_DIR)
        cls.static = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=cls.static.serve_forever, daemon=True).start()
        cls.page_origin = "http://127.0.0.1:%d" % cls.static.server_address[1]

    @classmethod
    def setUpClass(cls):
        cls.serve_page()
        # as the seed: no API key; legal because every listener is loopback
        cfg = h.base_config(auth={"allow_unauthenticated": True})
        cfg["http"]["cors"] = {"allowed_origins": [cls.page_origin]}
        cls.server = h.Server(cfg)

    @classmethod
    def tearDownClass(cls):
        cls.static.shutdown()
        cls.static.server_close()
        assert cls.server.stop() == 0

    def drive(self, origin, user, **params):
        query = urllib.parse.urlencode(dict(base=self.server.base, user=user, auto="1", **params))
        proc = subprocess.run([h.NODE, os.path.join(h.HERE, "browser_drive.js"),
                               origin + "/index.html?" + query],
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, NODE_PATH=h.NODE_PATH))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return json.loads(proc.stdout)

    def test_page_fetches_and_renews_cross_origin(self):
        page = self.drive(self.page_origin, "Browser_User")
        self.assertEqual(page["status"], "done", page)
        self.assertEqual(page["origin"], self.page_origin)
        self.assertNotEqual(page["user_token"], page["renewed_token"])
        self.assertEqual(page["user_id"], "browser_user")
        self.assertRegex(page["expire_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        facts = h.verify_tokens([
            {"token": page[k], "app_id": h.APP_ID, "certificate": h.CERTIFICATE,
             "kind": "user", "user_id": "browser_user", "not_certificate": h.OTHER_CERTIFICATE}
            for k in ("user_token", "renewed_token")])
        self.assertEqual(facts[1]["expire"], 600)  # the page asks ttl_seconds 600
        # the browser did preflight the JSON POST, from the page's origin
        rpcs = [e for e in self.server.events("rpc") if e.get("transport") == "http"]
        self.assertTrue(any(e.get("method") == "RenewToken" and e.get("status") == "OK"
                            for e in rpcs), self.server.log_text())

    def test_page_from_a_refused_origin_cannot_read_tokens(self):
        # localhost:PORT is another origin than 127.0.0.1:PORT, and not allowed
        other = self.page_origin.replace("127.0.0.1", "localhost")
        page = self.drive(other, "refused")
        self.assertTrue(page["status"].startswith("error"), page)
        self.assertEqual(page["user_token"], "")
        self.assertEqual(page["renewed_token"], "")


class BrowserWithIdToken(Browser):
    """The page's user logs in at the identity provider; chat-tokend has
    API keys, but the page carries none."""

    @classmethod
    def setUpClass(cls):
        cls.serve_page()
        cls.idp = IdentityProvider()
        cls.idp.add_key("ES256")
        cls.idp.serve()
        cfg = h.base_config()
        cfg["auth"]["jwt"] = [{
            "name": "app-users", "issuer": cls.idp.issuer, "audiences": ["chat-tokend"],
            "jwks_url": cls.idp.jwks_url, "role": "end_user",
            "username_claim": "preferred_username", "methods": ["GetUserToken", "RenewToken"]}]
        cfg["http"]["cors"] = {"allowed_origins": [cls.page_origin]}
        cls.server = h.Server(cfg)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.idp.close()

    def test_page_fetches_and_renews_cross_origin(self):
        page = self.drive(self.page_origin, "Browser_User", idp=self.idp_url(), other="mallory")
        self.assertEqual(page["status"], "done", page)
        self.assertEqual(page["user_id"], "browser_user")
        self.assertIn("HTTP 403 PERMISSION_DENIED", page["other_status"])
        h.verify_tokens([
            {"token": page[k], "app_id": h.APP_ID, "certificate": h.CERTIFICATE,
             "kind": "user", "user_id": "browser_user", "not_certificate": h.OTHER_CERTIFICATE}
            for k in ("user_token", "renewed_token")])
        rpcs = [e for e in self.server.events("rpc") if e.get("transport") == "http"]
        self.assertTrue(any(e.get("method") == "RenewToken" and e.get("status") == "OK"
                            and e.get("caller") == "app-users" for e in rpcs),
                        self.server.log_text())

    def test_page_without_an_id_token_is_refused(self):
        page = self.drive(self.page_origin, "browser_user")
        self.assertIn("HTTP 401", page["status"])
        self.assertEqual(page["user_token"], "")

    def test_page_from_a_refused_origin_cannot_read_tokens(self):
        other = self.page_origin.replace("127.0.0.1", "localhost")
        page = self.drive(other, "refused", idp=self.idp_url())
        self.assertTrue(page["status"].startswith("error"), page)
        self.assertEqual(page["user_token"], "")

    def idp_url(self):
        return "http://127.0.0.1:%d/token" % self.idp.port


if __name__ == "__main__":
    if not os.access(CHROMIUM, os.X_OK):
        print("SKIP: %s is missing (apt-get install chromium; scripts/install-deps "
              "installs it)" % CHROMIUM)
        sys.exit(SKIP)
    unittest.main(verbosity=2)
