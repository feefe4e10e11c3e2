"""examples.node_client: client-examples/node (renewing_client.js on
@grpc/grpc-js) against a live chat-tokend.

With a 4 s TTL and --renewals 2 it must print three tokens (issued, renewed,
renewed) that agora-token verifies for the user and the TTL, each renewal
made before the previous token expired and not before most of its lifetime
had passed, and then exit 0 by itself. Over TCP and over the unix socket (the
sidecar's way). Without a key it exits with UNAUTHENTICATED.
"""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CLIENT = os.path.join(harness.EXAMPLES_DIR, "node", "renewing_client.js")
KEY_ENV = "CHAT_TOKEND_API_KEY"
TTL = 4


def run_client(args, key=None, timeout=30):
    env = harness.node_env()
    env.pop(KEY_ENV, None)
    if key is not None:
        env[KEY_ENV] = key
    proc = subprocess.run([harness.NODE, CLIENT] + args, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


class NodeClientTest(harness.ServerTestCase):
    def renew_twice(self, target, username, expected_user):
        rc, out, err = run_client(["--target", target, "--ttl", str(TTL), "--renewals", "2",
                                   username], key=harness.BACKEND_KEY)
        lines = [json.loads(line) for line in out.splitlines()]
        for line in lines:
            self.server.add_secret(line.get("token"))
        self.assertEqual(rc, 0, err)
        self.assertNotIn(harness.BACKEND_KEY, out + err)
        self.assertEqual([line["event"] for line in lines], ["issued", "renewed", "renewed"], out)
        self.assertEqual(len({line["token"] for line in lines}), 3, "a token printed twice")
        infos = harness.verify_tokens([{"token": line["token"], "kind": "user",
                                        "user_id": expected_user, "ttl": TTL}
                                       for line in lines])
        for line, info in zip(lines, infos):
            self.assertEqual(line["user_id"], expected_user)
            self.assertEqual(line["expire_time"],
                             self.iso(info["issue_ts"] + TTL), "printed expire_time")
        for before, after in zip(infos, infos[1:]):
            # renewed while the old token was still valid, at ~80% of its life
            self.assertLess(after["issue_ts"], before["issue_ts"] + TTL)
            self.assertGreaterEqual(after["issue_ts"], before["issue_ts"] + 2)
        return infos

    @staticmethod
    def iso(seconds):
        return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))

    def test_renews_before_expiry_over_tcp(self):
        self.renew_twice(self.server.address, "alice", "alice")
        renewals = [e for e in self.server.rpc_events("RenewToken") if e.get("status") == "OK"]
        self.assertGreaterEqual(len(renewals), 2)

    def test_renews_before_expiry_over_the_unix_socket(self):
        self.renew_twice(self.server.unix_target, "Carol", "carol")
        unix = [e for e in self.server.rpc_events("RenewToken")
                if e.get("peer", "").startswith("unix:")]
        self.assertGreaterEqual(len(unix), 2)

    def test_without_key_exits_with_unauthenticated(self):
        rc, out, err = run_client(["--target", self.server.address, "--renewals", "1", "alice"])
        self.assertEqual(rc, 16, err)
        self.assertEqual(out, "")
        self.assertIn("UNAUTHENTICATED", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
