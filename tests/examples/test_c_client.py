"""examples.c_client: client-examples/c (chat-token-client, gRPC C core +
protobuf-c) against a live chat-tokend, over TCP and over the unix socket.

Checks what a user of the example relies on: the printed token verifies
with agora-token for the right user and TTL, the printed expire_time is the
token's, the key is taken from CHAT_TOKEND_API_KEY (and reaches the server as
the 'backend' caller), and a failed call prints the status and exits with
its code, printing no token.
"""
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CLIENT = os.path.join(harness.BIN_DIR, "chat-token-client")
KEY_ENV = "CHAT_TOKEND_API_KEY"


def run_client(args, key=None, timeout=20):
    env = dict(os.environ)
    env.pop(KEY_ENV, None)
    if key is not None:
        env[KEY_ENV] = key
    proc = subprocess.run([CLIENT] + args, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def parse_output(out):
    fields = dict(re.findall(r"^(token|expire_time|user_id): (.*)$", out, re.M))
    when = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \((\d+)\)$", fields.get("expire_time", ""))
    return fields, when


class CClientTest(harness.ServerTestCase):
    def get_token(self, target, username, expected_user, ttl):
        before = int(time.time())
        rc, out, err = run_client(["--target", target, "--ttl", str(ttl), username],
                                  key=harness.BACKEND_KEY)
        self.assertEqual(rc, 0, err)
        fields, when = parse_output(out)
        self.server.add_secret(fields.get("token"))
        self.assertNotIn(harness.BACKEND_KEY, out + err)
        self.assertEqual(fields.get("user_id"), expected_user)
        self.assertIsNotNone(when, out)
        [info] = harness.verify_tokens([{"token": fields["token"], "kind": "user",
                                        "user_id": expected_user, "ttl": ttl}])
        expire = int(when.group(2))
        self.assertEqual(expire, info["issue_ts"] + ttl)
        self.assertEqual(when.group(1), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expire)))
        self.assertGreaterEqual(info["issue_ts"], before - 1)
        return info

    def test_tcp_prints_a_token_that_agora_token_verifies(self):
        self.get_token(self.server.address, "alice", "alice", 600)
        callers = {e.get("caller") for e in self.server.rpc_events("GetUserToken")}
        self.assertIn("backend", callers)

    def test_unix_socket_prints_a_token_for_the_normalised_user(self):
        n_unix = len([e for e in self.server.rpc_events("GetUserToken")
                      if e.get("peer", "").startswith("unix:")])
        self.get_token(self.server.unix_target, "Bob.Smith", "bob.smith", 3600)
        unix = [e for e in self.server.rpc_events("GetUserToken")
                if e.get("peer", "").startswith("unix:")]
        self.assertEqual(len(unix), n_unix + 1)
        self.assertEqual(unix[-1].get("caller"), "backend")

    def test_without_key_exits_with_unauthenticated(self):
        rc, out, err = run_client(["--target", self.server.address, "alice"])
        self.assertEqual(rc, 16, err)
        self.assertEqual(out, "")
        self.assertIn("UNAUTHENTICATED (16)", err)

    def test_wrong_key_exits_with_unauthenticated(self):
        rc, out, err = run_client(["--target", self.server.address, "alice"], key="not-a-key")
        self.assertEqual(rc, 16, err)
        self.assertEqual(out, "")

    def test_bad_username_exits_with_invalid_argument(self):
        rc, out, err = run_client(["--target", self.server.address, "no spaces"],
                                  key=harness.BACKEND_KEY)
        self.assertEqual(rc, 3, err)
        self.assertEqual(out, "")
        self.assertIn("INVALID_ARGUMENT (3)", err)

    def test_unreachable_server_exits_with_unavailable(self):
        missing = "unix:" + os.path.join(self.server.dir, "nobody-here.sock")
        rc, out, err = run_client(["--target", missing, "--timeout", "5", "alice"],
                                  key=harness.BACKEND_KEY)
        self.assertEqual(rc, 14, err)
        self.assertEqual(out, "")
        self.assertIn("UNAVAILABLE (14)", err)

    def test_key_with_a_newline_is_refused_before_any_call(self):
        rc, out, err = run_client(["--target", self.server.address, "alice"],
                                  key=harness.BACKEND_KEY + "\n")
        self.assertEqual(rc, 64, err)
        self.assertEqual(out, "")
        self.assertNotIn(harness.BACKEND_KEY, err)

    def test_usage_errors_exit_64(self):
        for args in ([], ["a", "b"], ["--ttl", "-1", "alice"], ["--ttl", "86401", "alice"],
                     ["--timeout", "0", "alice"], ["--bogus", "alice"]):
            with self.subTest(args=args):
                rc, out, err = run_client(args, key=harness.BACKEND_KEY)
                self.assertEqual(rc, 64, err)
                self.assertEqual(out, "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
