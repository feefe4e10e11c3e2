"""Slow clients on the HTTP port: a connection that sends a header line (or
a body byte) every half second never goes inactive, so the 30 s inactivity
timeout alone would let http.max_connections of them lock every real client
out. Each connection must deliver a complete request within
http.request_timeout_seconds (of connecting, or of its previous answer), and
one client address may hold at most http.max_connections_per_ip
connections."""
import socket
import threading
import time
import unittest

from common import h, healthz_status, http_port, report

LIMIT = 8
TIMEOUT_S = 2  # http.request_timeout_seconds in these tests (default 10)
DRIP_S = 0.5  # a slow client sends something this often: never inactive
SLACK_S = 1.5  # the watchdog runs every 0.2 s; a busy machine adds the rest


class SlowClient:
    """Opens a connection and drips a request into it, a few bytes every
    DRIP_S, until the server closes it; records when that happened."""

    def __init__(self, port, head, drip=b"X-Slow: 1\r\n", source="127.0.0.1"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5,
                                             source_address=(source, 0))
        self.opened = time.monotonic()
        self.closed_after = None
        self._head = head
        self._drip = drip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            self.sock.sendall(self._head)
            while not self._stop.wait(DRIP_S):
                self.sock.sendall(self._drip)
                self.sock.settimeout(0.01)
                try:
                    if self.sock.recv(4096) == b"":
                        break
                except socket.timeout:
                    pass
        except OSError:
            pass  # reset or broken pipe: closed by the server
        if not self._stop.is_set():
            self.closed_after = time.monotonic() - self.opened

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def raw_get(port, path, keep=False, source="127.0.0.1"):
    """A quick complete GET; (status line, socket left open when keep)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    if not keep:
        s.close()
        s = None
    return data.split(b"\r\n", 1)[0].decode("latin-1"), s


def closed_within(sock, seconds):
    """The seconds until the server closed sock, or None if it did not."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while True:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
    except socket.timeout:
        return None
    except OSError:
        return time.monotonic() - start


class SlowHeaders(unittest.TestCase):
    def start(self, **http):
        cfg = h.base_config(http=dict({"listen": "127.0.0.1:0", "max_connections": LIMIT,
                                       "request_timeout_seconds": TIMEOUT_S}, **http))
        server = h.Server(cfg).start()
        self.addCleanup(server.cleanup)
        return server, http_port(server)

    def test_slow_header_clients_are_closed_at_the_deadline_and_real_clients_get_through(self):
        server, port = self.start()
        slow = [SlowClient(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n") for _ in range(LIMIT)]
        self.addCleanup(lambda: [c.close() for c in slow])
        time.sleep(0.3)
        # they hold every slot: a real client is turned away for now
        self.assertEqual(raw_get(port, "/healthz")[0][:12], "HTTP/1.1 503")
        # at the deadline they are closed, although they never went quiet
        done = h.poll(lambda: all(c.closed_after is not None for c in slow),
                      TIMEOUT_S + SLACK_S + 1)
        self.assertTrue(done, [c.closed_after for c in slow])
        closed = sorted(c.closed_after for c in slow)
        self.assertGreaterEqual(closed[0], TIMEOUT_S - 0.1, closed)
        self.assertLess(closed[-1], TIMEOUT_S + SLACK_S, closed)
        # and real clients are served again
        status = h.poll(lambda: healthz_status(port) == 200, 2)
        self.assertTrue(status)
        event = server.wait_event("http_request_timeout", 2)
        self.assertIsNotNone(event, server.stderr_text())
        self.assertIn("http.request_timeout_seconds", event["message"])
        report("slow_headers", slow_clients=LIMIT, request_timeout_s=TIMEOUT_S,
               closed_after_s_min=closed[0], closed_after_s_max=closed[-1])
        self.assertEqual(server.stop(), 0)

    def test_a_slow_body_is_closed_at_the_deadline_too(self):
        server, port = self.start()
        head = (b"POST /chat/token/renew HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b"\r\nAuthorization: Bearer " + h.BACKEND_KEY.encode() +
                b"\r\nContent-Length: 1000\r\n\r\n{")
        client = SlowClient(port, head, drip=b" ")
        self.addCleanup(client.close)
        done = h.poll(lambda: client.closed_after is not None, TIMEOUT_S + SLACK_S + 1)
        self.assertTrue(done, "a body sent a byte at a time held the connection")
        self.assertGreaterEqual(client.closed_after, TIMEOUT_S - 0.1)
        self.assertEqual(server.stop(), 0)

    def test_a_quick_client_keeps_its_connection_between_requests_up_to_the_deadline(self):
        server, port = self.start()
        status, sock = raw_get(port, "/healthz", keep=True)
        self.addCleanup(sock.close)
        self.assertEqual(status, "HTTP/1.1 200 OK")
        # a second request on the same connection, after a pause, is served
        time.sleep(TIMEOUT_S / 2)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(sock.recv(4096).startswith(b"HTTP/1.1 200 OK"))
        # the deadline for the next one starts with each answer: idle past
        # it, the connection is closed
        after = closed_within(sock, TIMEOUT_S + SLACK_S)
        self.assertIsNotNone(after, "an idle kept-alive connection outlived the deadline")
        self.assertGreaterEqual(after, TIMEOUT_S - 0.3)
        self.assertEqual(server.stop(), 0)

    def test_one_client_address_holds_at_most_max_connections_per_ip(self):
        server, port = self.start(max_connections=64, max_connections_per_ip=4)
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
        self.addCleanup(lambda: [s.close() for s in held])
        time.sleep(0.2)
        # the fifth from the same address is closed at accept
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(extra.close)
        after = closed_within(extra, 1.5)
        self.assertIsNotNone(after, "a fifth connection from one address was kept")
        # another address is served (every 127/8 address is loopback)
        self.assertEqual(raw_get(port, "/healthz", source="127.0.0.2")[0], "HTTP/1.1 200 OK")
        # the held ones are untouched
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(held[0].recv(4096).startswith(b"HTTP/1.1 200 OK"))
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
