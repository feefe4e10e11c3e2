"""`buf curl` (npm @bufbuild/buf), a grpcurl-compatible client, lists the
services and methods through reflection (v1 and v1alpha) and calls every
method with no .proto files at hand."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import harness as h

BUF = os.path.join(h.SOURCE_DIR, "node_modules", ".bin", "buf")
METHODS = ["GetAppToken", "GetUserToken", "RenewToken", "GetRtcToken", "GetRtmToken"]
MEDIA_KEY = "media-key-0c3d5e7f9a"  # GetRtcToken, GetRtmToken, RenewToken


class BufCurlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(BUF, os.X_OK):
            raise unittest.SkipTest("npm @bufbuild/buf missing (scripts/install-node-deps)")
        cls.cache = tempfile.mkdtemp(prefix="ct-it-buf-")
        cfg = h.base_config()
        cfg["auth"]["api_keys"].append(
            {"name": "media", "sha256": h.sha256_hex(MEDIA_KEY),
             "methods": ["GetRtcToken", "GetRtmToken", "RenewToken"]})
        cls.server = h.Server(cfg).start()
        cls.url = "http://" + cls.server.address

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            shutil.rmtree(cls.cache, ignore_errors=True)

    def buf_curl(self, *args, key=None, data=None):
        cmd = [BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
        if key is not None:
            self.server.add_secret(key)
            cmd += ["-H", "authorization: Bearer " + key]
        if data is not None:
            cmd += ["-d", json.dumps(data)]
        env = dict(os.environ, BUF_CACHE_DIR=self.cache, HOME=self.cache)
        return subprocess.run(cmd + list(args), capture_output=True, text=True, env=env,
                              timeout=60)

    def call(self, method, data, key):
        p = self.buf_curl("%s/%s/%s" % (self.url, h.SERVICE, method), key=key, data=data)
        self.assertEqual(p.returncode, 0, p.stderr)
        response = json.loads(p.stdout)
        self.server.add_secret(response.get("token"))
        return response

    def test_lists_services_through_reflection_v1_and_v1alpha(self):
        for protocol in ("grpc-v1", "grpc-v1alpha"):
            with self.subTest(protocol=protocol):
                p = self.buf_curl("--reflect-protocol", protocol, "--list-services", self.url)
                self.assertEqual(p.returncode, 0, p.stderr)
                services = p.stdout.split()
                self.assertIn(h.SERVICE, services)
                self.assertIn("grpc.health.v1.Health", services)

    def test_lists_every_token_service_method(self):
        p = self.buf_curl("--list-methods", self.url)
        self.assertEqual(p.returncode, 0, p.stderr)
        methods = p.stdout.split()
        for m in METHODS:
            self.assertIn("%s/%s" % (h.SERVICE, m), methods)

    def test_calls_every_method_with_json_from_reflection(self):
        app = self.call("GetAppToken", {"ttlSeconds": 600}, h.ADMIN_KEY)
        self.assertIn("expireTime", app)
        user = self.call("GetUserToken", {"username": "Alice"}, h.BACKEND_KEY)
        self.assertEqual(user["userId"], "alice")
        renewed = self.call("RenewToken", {"token": user["token"], "ttlSeconds": 1200},
                            h.BACKEND_KEY)
        self.assertEqual(renewed["kind"], "TOKEN_KIND_USER")
        self.assertEqual(renewed["userId"], "alice")
        h.verify_tokens([
            {"token": app["token"], "kind": "app", "ttl": 600},
            {"token": user["token"], "kind": "user", "user_id": "alice", "ttl": 3600},
            {"token": renewed["token"], "kind": "user", "user_id": "alice", "ttl": 1200},
        ])

    def test_calls_the_rtc_and_rtm_methods_with_enum_names_from_reflection(self):
        rtc = self.call("GetRtcToken", {"channelName": "room", "account": "alice",
                                        "role": "RTC_ROLE_PUBLISHER", "ttlSeconds": 600,
                                        "privilegeTtlSeconds": 300, "withRtm": True}, MEDIA_KEY)
        self.assertIn("expireTime", rtc)
        rtm = self.call("GetRtmToken", {"userId": "alice"}, MEDIA_KEY)
        renewed = self.call("RenewToken", {"token": rtc["token"], "ttlSeconds": 1200}, MEDIA_KEY)
        self.assertEqual(renewed["kind"], "TOKEN_KIND_RTC")
        self.assertEqual(renewed["userId"], "alice")
        h.verify_rtc_tokens([
            {"token": rtc["token"], "kind": "rtc", "channel": "room", "account": "alice",
             "role": "publisher", "ttl": 600, "privilege_ttl": 300, "with_rtm": True},
            {"token": rtm["token"], "kind": "rtm", "user_id": "alice", "ttl": 3600},
            {"token": renewed["token"], "kind": "rtc", "channel": "room", "account": "alice",
             "role": "publisher", "ttl": 1200, "privilege_ttl": 600, "with_rtm": True},
        ])

    def test_health_check_through_reflection(self):
        p = self.buf_curl("%s/grpc.health.v1.Health/Check" % self.url, data={"service": h.SERVICE})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["status"], "SERVING")

    def test_error_status_reaches_buf_curl(self):
        p = self.buf_curl("%s/%s/GetAppToken" % (self.url, h.SERVICE), key=h.BACKEND_KEY,
                          data={})
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(json.loads(p.stderr)["code"], "permission_denied")


if __name__ == "__main__":
    h.main()
