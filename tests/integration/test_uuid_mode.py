"""uuid identity mode without a working Chat REST API: an unreachable
directory gives UNAVAILABLE (or the deadline), a directory that never
answers cannot hold a call past the caller's deadline, and bad usernames
are refused before any upstream request. (The fake Chat server covers the
working directory.)"""
import socket
import threading
import time
import unittest

import grpc

import harness as h

Code = grpc.StatusCode


class Blackhole:
    """A TCP listener that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for c in self.accepted:
            c.close()


def uuid_config(base_url):
    return h.base_config(user_tokens={"identity": "uuid"},
                         directory={"base_url": base_url, "request_timeout_ms": 5000,
                                    "connect_timeout_ms": 5000, "retries": 2})


class UnreachableDirectoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        port = h.free_closed_port()
        cls.server = h.Server(uuid_config("http://127.0.0.1:%d" % port)).start()
        cls.client = h.Client(cls.server, key=h.BACKEND_KEY)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def test_get_user_token_with_directory_down_is_unavailable_or_deadline(self):
        r = self.client.get_user_token("alice", timeout=2)
        self.assertIn(r.code, (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED), r.details)
        self.assertLess(r.elapsed, 3.0)

    def test_renew_takes_only_uuids_in_uuid_mode(self):
        uuid = b"4759aa70-eba5-11e8-925f-6fa0510823ba"
        good = h.craft_token([h.chat_service(uuid)])
        self.server.add_secret(good)
        r = self.client.renew_token(good)
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertEqual(r.response.user_id, uuid.decode())
        for user_id in (b"not a uuid", b"\xff" * 8, b"u" * 65):
            bad = h.craft_token([h.chat_service(user_id)])
            self.server.add_secret(bad)
            r = self.client.renew_token(bad)
            self.assertEqual(r.code, Code.INVALID_ARGUMENT, r.details)
            self.assertIn("not a Chat UUID", r.details)

    def test_get_app_token_needs_no_directory(self):
        r = h.Client(self.server, key=h.ADMIN_KEY)
        try:
            self.assertEqual(r.get_app_token().code, Code.OK)
        finally:
            r.close()


class SilentDirectoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.upstream = Blackhole()
        cls.server = h.Server(uuid_config("http://127.0.0.1:%d" % cls.upstream.port)).start()
        cls.client = h.Client(cls.server, key=h.BACKEND_KEY)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        cls.upstream.close()

    def test_deadline_is_honoured_when_the_directory_does_not_answer(self):
        r = self.client.get_user_token("slowpoke", timeout=1.0)
        self.assertEqual(r.code, Code.DEADLINE_EXCEEDED, r.details)
        # the server itself gives the call up at the deadline, not after the
        # upstream timeout (5 s) and its retries
        event = self.server.wait_event("rpc", 3.0, lambda e: e.get("method") == "GetUserToken")
        self.assertIsNotNone(event, "the server still works on a call whose deadline passed:\n"
                             + self.server.stderr_text())
        self.assertIn(event["status"], ("DEADLINE_EXCEEDED", "CANCELLED"))
        self.assertLess(event["duration_ms"], 2000)

    def test_invalid_username_is_refused_before_any_upstream_request(self):
        before = len(self.upstream.accepted)
        start = time.monotonic()
        r = self.client.get_user_token("not valid!", timeout=5)
        self.assertEqual(r.code, Code.INVALID_ARGUMENT, r.details)
        self.assertLess(time.monotonic() - start, 1.0)
        self.assertEqual(len(self.upstream.accepted), before)


if __name__ == "__main__":
    h.main()
