"""Malformed bytes on both ports, sent over raw sockets: garbage, an invalid
HTTP/2 preface, HTTP/1.1 and truncated frames on the gRPC port; HTTP/2
prior knowledge, garbage and truncated requests on the HTTP port. Each
connection is closed or answered with an error (the gRPC port closes every
one of them within milliseconds), never hangs the server, and afterwards the server answers normal calls on both ports
with its fds back where they were."""
import os
import random
import socket
import struct
import subprocess
import time
import unittest

import grpc

from common import h, http_get, http_port, open_fds, report

Code = grpc.StatusCode
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CLOSE_BOUND_S = 3.0


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


SETTINGS = frame(4, 0, 0, b"")


def exchange(port, data, close_write=False, wait=CLOSE_BOUND_S):
    """Sends data, then reads until the server closes or `wait` passes.
    Returns (bytes received, closed by the server, seconds)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    start = time.monotonic()
    got = b""
    closed = False
    try:
        try:
            s.sendall(data)
            if close_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return got, True, time.monotonic() - start
        s.settimeout(0.2)
        while time.monotonic() - start < wait:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += chunk
    finally:
        s.close()
    return got, closed, time.monotonic() - start


class MalformedInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cfg = h.base_config(http={"listen": "127.0.0.1:0", "max_connections": 64})
        cls.server = h.Server(cfg).start()
        cls.grpc_port = int(cls.server.address.rsplit(":", 1)[1])
        cls.http_port = http_port(cls.server)
        cls.client = h.Client(cls.server, key=h.ADMIN_KEY)
        assert cls.client.get_app_token().ok
        time.sleep(0.2)
        cls.base_fds = open_fds(cls.server.proc.pid)
        cls.timings = {}

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        try:
            rc = cls.server.stop()
        finally:
            cls.server.cleanup()
        assert rc == 0, rc
        report("malformed", **{k: round(v, 3) for k, v in sorted(cls.timings.items())})

    def still_serving(self):
        self.assertIsNone(self.server.proc.poll(), "chat-tokend died")
        r = self.client.get_app_token()
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertEqual(http_get(self.http_port, "/healthz")[0], 200)
        back = h.poll(lambda: open_fds(self.server.proc.pid) <= self.base_fds + 2, 5)
        self.assertTrue(back, "fds %d, base %d" % (open_fds(self.server.proc.pid),
                                                    self.base_fds))

    def closed(self, name, port, data, **kw):
        got, closed, elapsed = exchange(port, data, **kw)
        self.assertTrue(closed, "%s: the server kept the connection open (got %r)"
                        % (name, got[:80]))
        self.timings[name + "_s"] = elapsed
        return got

    # -- the gRPC port --

    def test_grpc_port_random_garbage(self):
        rng = random.Random(7)
        for size in (1, 24, 1000, 64 * 1024):
            self.closed("grpc_garbage_%d" % size, self.grpc_port, rng.randbytes(size))
        self.still_serving()

    def test_grpc_port_invalid_preface(self):
        self.closed("grpc_bad_preface", self.grpc_port, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        self.still_serving()

    def test_grpc_port_http1_request(self):
        self.closed("grpc_http1", self.grpc_port,
                    b"GET /chattoken.v1.TokenService/GetAppToken HTTP/1.1\r\n"
                    b"Host: 127.0.0.1\r\n\r\n")
        self.still_serving()

    def test_grpc_port_truncated_preface_and_frames(self):
        # the client goes away half way: the server must free the connection
        for name, data in (("grpc_half_preface", PREFACE[:10]),
                           ("grpc_truncated_frame", PREFACE + SETTINGS + frame(1, 4, 1, b"")[:5]),
                           ("grpc_frame_longer_than_sent",
                            PREFACE + SETTINGS + struct.pack(">I", 16000)[1:] + b"\x00\x00"
                            + struct.pack(">I", 0) + b"x" * 100)):
            self.closed(name, self.grpc_port, data, close_write=True)
        self.still_serving()

    def test_grpc_port_bad_frames_after_a_valid_preface(self):
        bad_hpack = frame(1, 4 | 1, 1, b"\xff" * 32)  # HEADERS, END_HEADERS|END_STREAM
        oversized = frame(0, 0, 1, b"x" * 20000)  # DATA larger than the max frame size
        settings_bad_len = frame(4, 0, 0, b"\x00\x04\x00")  # not a multiple of 6
        for name, data in (("grpc_bad_hpack", bad_hpack), ("grpc_oversized_frame", oversized),
                           ("grpc_bad_settings", settings_bad_len)):
            self.closed(name, self.grpc_port, PREFACE + SETTINGS + data)
        self.still_serving()

    # -- the HTTP port --

    def test_http_port_http2_prior_knowledge(self):
        got = self.closed("http_h2_prior_knowledge", self.http_port,
                          PREFACE + SETTINGS + frame(1, 5, 1, b"\x82\x86\x84"))
        # libmicrohttpd answers 505 HTTP Version Not Supported
        self.assertTrue(got == b"" or got.startswith((b"HTTP/1.1 4", b"HTTP/1.1 505")), got[:80])
        # and a real client asking for HTTP/2 with prior knowledge
        proc = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "5",
                               "-o", os.devnull, "-w", "%{http_code}",
                               "http://127.0.0.1:%d/healthz" % self.http_port],
                              capture_output=True, text=True, timeout=10)
        self.assertNotEqual(proc.stdout.strip(), "200")
        self.assertNotIn("timed out", proc.stderr)
        self.still_serving()

    def test_http_port_garbage(self):
        rng = random.Random(11)
        for size in (16, 4096):
            got = self.closed("http_garbage_%d" % size, self.http_port,
                              rng.randbytes(size) + b"\r\n\r\n")
            self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 400"), got[:80])
        self.still_serving()

    def test_http_port_truncated_requests(self):
        # the client sends part of a request and goes away: no answer is
        # owed, and the connection must be freed once the client closes
        # (still_serving checks the fds); libmicrohttpd keeps a half-closed
        # connection until its timeout, so the server may not close first
        for name, data in (
                ("http_truncated_headers", b"GET /healthz HTTP/1.1\r\nHost: 127.0"),
                ("http_truncated_body",
                 b"POST /chat/token/renew HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nContent-Length: 100\r\n\r\n{\"token\":"),
                ("http_truncated_chunk",
                 b"POST /chat/token/renew HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                 b"\r\n\r\nfff\r\nabc")):
            got, _, _ = exchange(self.http_port, data, close_write=True, wait=0.5)
            self.assertFalse(got.startswith(b"HTTP/1.1 2"), "%s: %r" % (name, got[:80]))
        self.still_serving()

    def test_http_port_bad_request_lines(self):
        for name, data in (
                ("http_no_version", b"GET /healthz\r\n\r\n"),
                ("http_bad_version", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n"),
                ("http_nul_in_path", b"GET /chat/user/a\x00b/token HTTP/1.1\r\nHost: x\r\n\r\n"),
                ("http_bad_content_length",
                 b"POST /chat/token/renew HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")):
            got, closed, elapsed = exchange(self.http_port, data)
            self.assertTrue(closed or got.startswith(b"HTTP/1.1 4"), "%s: %r" % (name, got[:80]))
            self.assertFalse(got.startswith(b"HTTP/1.1 2"), "%s: %r" % (name, got[:80]))
            self.timings[name + "_s"] = elapsed
        self.still_serving()


if __name__ == "__main__":
    unittest.main(verbosity=2)
