"""Valgrind memcheck on the real chat-tokend (ctest valgrind.memcheck, the
main gcc build): one short scenario per method, then SIGTERM. The server runs
under tests/integration/harness.py with CT_SERVER_WRAPPER set to valgrind;
valgrind exits 99 on any memory error or a leak "definitely lost" at exit,
and Server.stop() fails on any non-zero exit. Possibly/indirectly lost and
still-reachable blocks (gRPC's and OpenSSL's process-lifetime state) do not
count.

  username mode: GetAppToken, GetUserToken, RenewToken (user, app, RTC and
                 RTM token), GetRtcToken, GetRtmToken,
                 a refused key and a bad request, Health Check and Watch on the
                 main and the health-only listener, reflection v1 and v1alpha,
                 a Watch that sees NOT_SERVING when SIGTERM starts the drain
  uuid mode:     GetUserToken against the fake Agora Chat server
                 (tests/fakes): a new user (looked up, registered), the same
                 user again (cached), an existing user, an upstream 5xx

Run by hand (after a build): CT_BIN_DIR=build/bin CT_SOURCE_DIR=. \\
  /usr/bin/python3 tests/sanitize/test_memcheck.py
"""
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
LOG_DIR = tempfile.mkdtemp(prefix="ct-memcheck-")
VALGRIND = [
    "valgrind", "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite",
    "--errors-for-leak-kinds=definite", "--error-exitcode=99", "--num-callers=40",
    "--log-file=" + os.path.join(LOG_DIR, "memcheck.%p.log"),
]
# before the harness is imported: it reads the wrapper once
os.environ["CT_SERVER_WRAPPER"] = " ".join(shlex.quote(a) for a in VALGRIND)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import grpc  # noqa: E402

import harness as h  # noqa: E402

Code = grpc.StatusCode
STOP_TIMEOUT = 120.0  # shutdown plus valgrind's leak search
CALL_TIMEOUT = 60.0  # the first calls through each code path are slow under valgrind


def valgrind_logs():
    text = []
    for path in sorted(glob.glob(os.path.join(LOG_DIR, "memcheck.*.log"))):
        with open(path) as f:
            text.append(f.read())
    return "\n".join(text)


class MemcheckCase(unittest.TestCase):
    def setUp(self):
        for path in glob.glob(os.path.join(LOG_DIR, "memcheck.*.log")):
            os.unlink(path)

    def stop_clean(self, server):
        """SIGTERM; the exit code is valgrind's verdict (99: errors or leaks)."""
        try:
            rc = server.stop(timeout=STOP_TIMEOUT)
        except h.ServerError as e:
            self.fail("%s\n---- valgrind ----\n%s" % (e, valgrind_logs()))
        self.assertEqual(rc, 0)
        logs = valgrind_logs()
        self.assertIn("ERROR SUMMARY: 0 errors", logs, logs)
        # the verdict in the ctest log: the leak summary and the error count
        summary = [line.split("== ", 1)[-1] for line in logs.splitlines()
                   if any(k in line for k in ("lost:", "reachable:", "ERROR SUMMARY"))]
        sys.stderr.write("\n".join(summary) + "\n")


class UsernameModeTest(MemcheckCase):
    def test_every_method_then_sigterm(self):
        # a 1 s drain: a Watch stream sees SERVING turn NOT_SERVING at SIGTERM
        config = h.base_config(health_listen="127.0.0.1:0",
                               shutdown={"drain_seconds": 1, "grace_seconds": 5})
        config["auth"]["api_keys"][1]["methods"] += ["GetRtcToken", "GetRtmToken"]
        server = h.Server(config).start()
        self.addCleanup(server.cleanup)
        admin = h.Client(server, key=h.ADMIN_KEY)
        backend = h.Client(server, key=h.BACKEND_KEY)
        health = h.Client(server, target=server.health_address)
        try:
            app = admin.get_app_token(ttl=600, timeout=CALL_TIMEOUT)
            self.assertEqual(app.code, Code.OK, app.details)
            user = backend.get_user_token("alice", timeout=CALL_TIMEOUT)
            self.assertEqual(user.code, Code.OK, user.details)
            r = backend.renew_token(user.response.token, ttl=1800, timeout=CALL_TIMEOUT)
            self.assertEqual(r.code, Code.OK, r.details)
            r = admin.renew_token(app.response.token, timeout=CALL_TIMEOUT)
            self.assertEqual(r.code, Code.OK, r.details)
            rtc = admin.get_rtc_token("room", 1, account="alice", with_rtm=True,
                                      timeout=CALL_TIMEOUT)
            self.assertEqual(rtc.code, Code.OK, rtc.details)
            rtm = admin.get_rtm_token("alice", timeout=CALL_TIMEOUT)
            self.assertEqual(rtm.code, Code.OK, rtm.details)
            for token in (rtc.response.token, rtm.response.token):
                r = admin.renew_token(token, timeout=CALL_TIMEOUT)
                self.assertEqual(r.code, Code.OK, r.details)
            r = admin.get_rtc_token("room", 0, uid=1, timeout=CALL_TIMEOUT)
            self.assertEqual(r.code, Code.INVALID_ARGUMENT, r.details)
            # error paths allocate and free too
            r = backend.get_app_token(timeout=CALL_TIMEOUT)
            self.assertEqual(r.code, Code.PERMISSION_DENIED, r.details)
            r = backend.get_user_token("alice", key="not-a-key", timeout=CALL_TIMEOUT)
            self.assertEqual(r.code, Code.UNAUTHENTICATED, r.details)
            r = backend.renew_token("007garbage", timeout=CALL_TIMEOUT)
            self.assertEqual(r.code, Code.INVALID_ARGUMENT, r.details)

            for client in (admin, health):
                r = client.health_check("", timeout=CALL_TIMEOUT)
                self.assertEqual(r.code, Code.OK, r.details)
                stream = client.health_watch(h.SERVICE, timeout=CALL_TIMEOUT)
                self.assertEqual(h.health_status_name(next(stream)), "SERVING")
                stream.cancel()
            for version in ("v1", "v1alpha"):
                responses, result = admin.reflect(
                    [{"list_services": ""}, {"file_containing_symbol": h.SERVICE}],
                    version=version, timeout=CALL_TIMEOUT)
                self.assertEqual(result.code, Code.OK, result.details)
                self.assertEqual(len(responses), 2)

            watch = health.health_watch("", timeout=CALL_TIMEOUT)
            self.assertEqual(h.health_status_name(next(watch)), "SERVING")
            server.terminate()
            self.assertEqual(h.health_status_name(next(watch)), "NOT_SERVING")
            watch.cancel()
        finally:
            admin.close()
            backend.close()
            health.close()
        self.stop_clean(server)


class UuidModeTest(MemcheckCase):
    def test_get_user_token_against_the_fake_chat_server_then_sigterm(self):
        workdir = tempfile.mkdtemp(prefix="ct-memcheck-fake-")
        self.addCleanup(shutil.rmtree, workdir, True)
        fake = h.fake_chat(directory=workdir)
        self.addCleanup(fake.close)
        # generous upstream timeouts: the server is the slow side here
        config = h.base_config(user_tokens={"identity": "uuid"},
                               directory={"base_url": fake.url, "request_timeout_ms": 20000,
                                          "connect_timeout_ms": 20000, "retries": 1})
        server = h.Server(config).start()
        self.addCleanup(server.cleanup)
        client = h.Client(server, key=h.BACKEND_KEY)
        try:
            r = client.get_user_token("newuser", timeout=CALL_TIMEOUT)
            self.assertEqual(r.code, Code.OK, r.details)
            self.assertTrue(r.response.registered)
            r = client.get_user_token("newuser", timeout=CALL_TIMEOUT)  # cached
            self.assertEqual(r.code, Code.OK, r.details)
            fake.admin("/_admin/users", {"username": "old", "uuid": "uuid-of-old"})
            r = client.get_user_token("old", timeout=CALL_TIMEOUT)
            self.assertEqual((r.code, r.response.user_id if r.ok else None),
                             (Code.OK, "uuid-of-old"), r.details)
            fake.admin("/_admin/fault", {"status": 503, "count": 10})
            r = client.get_user_token("broken", timeout=CALL_TIMEOUT)
            self.assertEqual(r.code, Code.UNAVAILABLE, r.details)
        finally:
            client.close()
        self.stop_clean(server)


def tearDownModule():
    shutil.rmtree(LOG_DIR, ignore_errors=True)


if __name__ == "__main__":
    if shutil.which("valgrind") is None:
        print("test_memcheck: SKIPPED: valgrind is not installed (scripts/install-deps)")
        sys.exit(77)
    unittest.main(verbosity=2)
