"""A flood of connections: thousands of idle TCP connections on the gRPC
port, and more than http.max_connections on the HTTP port. The HTTP side
refuses what is over its limit at once: a request on one of the next 64
connections is answered 503 UNAVAILABLE (JSON, Retry-After, Connection:
close), connections beyond those are closed as they are accepted, and idle
ones over the limit are dropped after 2 s; nobody waits in the listen
backlog. The server keeps answering normal calls during the flood, its
open fds come back to where they were once the flood closes, and its RSS
stops growing from one flood to the next."""
import json
import select
import socket
import time
import unittest

import grpc

from common import (h, healthz_status, http_get, http_port, open_fds, report, rss_kb,
                    serve, stop_clean, tcp_connections)

Code = grpc.StatusCode
GRPC_FLOOD = 2000
FLOODS = 5
RSS_KEPT_MAX_KB = 100 * 1024
HTTP_LIMIT = 64
HTTP_OVER_SLOTS = 64  # SRV_HTTP_OVER_LIMIT_SLOTS: answered 503, beyond them closed at accept
HTTP_OVER_TIMEOUT = 2  # SRV_HTTP_OVER_LIMIT_TIMEOUT: idle seconds allowed over the limit
HTTP_EXTRA = 300  # more than the listen backlog (128): with a backlog, connects would time out
REFUSED_WITHIN = 1.0  # seconds; the refusal is immediate, this only bounds a busy machine
# HTTP/2 client preface and an empty SETTINGS frame
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def connect_many(port, count, first_bytes=None):
    socks = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first_bytes is not None and i % 2 == 0:
            s.sendall(first_bytes)  # half of them start an HTTP/2 connection
        socks.append(s)
    return socks


def closed_by_peer(sock):
    """1 when the peer closed (EOF or reset), 0 when it still holds it."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return 0
    try:
        sock.setblocking(False)
        return 1 if sock.recv(4096) == b"" else 0
    except (ConnectionResetError, BrokenPipeError):
        return 1
    except BlockingIOError:
        return 0


def request_over_limit(port):
    """A GET /healthz on a new connection; ("503", body, headers) or
    ("closed", b"", {}), and the seconds until the server was done with it."""
    start = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    data = b""
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass  # closed at accept, before or while we wrote
    finally:
        s.close()
    seconds = time.monotonic() - start
    if not data:
        return "closed", b"", {}, seconds
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:] if ":" in line)}
    return lines[0], body, headers, seconds


class ConnectionFlood(unittest.TestCase):
    def assert_503_over_limit(self, status, body, headers):
        self.assertTrue(status.startswith("HTTP/1.1 503"), status)
        self.assertEqual(json.loads(body), {"code": "UNAVAILABLE",
                                            "message": "too many connections: limit %d"
                                            % HTTP_LIMIT})
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertEqual(headers.get("retry-after"), "1")
        self.assertEqual(headers.get("connection"), "close")

    def served_healthz(self, sock):
        """GET /healthz on an open keep-alive connection; the status line."""
        sock.setblocking(True)
        sock.settimeout(5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while b"\r\n\r\nok\n" not in data and not data.startswith(b"HTTP/1.1 5"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode("latin-1")

    def test_flood_is_refused_over_the_limit_and_the_server_survives(self):
        # one client address and idle connections: the per-address cap and
        # the request deadline (tests/faults/test_slow_headers.py) are set
        # out of the way of what this measures
        cfg = h.base_config(http={"listen": "127.0.0.1:0", "max_connections": HTTP_LIMIT,
                                  "max_connections_per_ip": 10000,
                                  "request_timeout_seconds": 120})
        server, client = serve(self, cfg, h.ADMIN_KEY)
        pid = server.proc.pid
        port = int(server.address.rsplit(":", 1)[1])
        hport = http_port(server)
        self.assertEqual(client.get_app_token().code, Code.OK)
        self.assertEqual(http_get(hport, "/healthz")[0], 200)
        time.sleep(0.2)
        base_fds, base_rss = open_fds(pid), rss_kb(pid)

        # gRPC: no connection limit in gRPC C-core 1.51; every connection is
        # accepted and the server must simply cope. Three floods in a row:
        # glibc keeps what the first ones freed (malloc_trim(0) gives about
        # half back), so RSS does not return to its start, but a flood that
        # leaked would raise it again every time.
        peak_fds = []
        rss_after = []
        peak_rss = 0
        for round_ in range(FLOODS):
            flood = connect_many(port, GRPC_FLOOD, PREFACE)
            try:
                h.poll(lambda: open_fds(pid) >= base_fds + GRPC_FLOOD * 0.95, 10)
                peak_fds.append(open_fds(pid))
                # a normal call on a new connection during the flood
                with h.Client(server, key=h.ADMIN_KEY) as during:
                    r = during.get_app_token()
                self.assertEqual(r.code, Code.OK, r.details)
                grpc_call_during = r.elapsed
                peak_rss = max(peak_rss, rss_kb(pid))
            finally:
                for s in flood:
                    s.close()
            self.assertGreaterEqual(peak_fds[-1], base_fds + GRPC_FLOOD * 0.95,
                                    "the server did not take the connections")
            # all closed: fds back to where they were
            back = h.poll(lambda: open_fds(pid) <= base_fds + 2, 10)
            self.assertTrue(back, "fds stay at %d (base %d) after flood %d"
                            % (open_fds(pid), base_fds, round_ + 1))
            time.sleep(0.3)
            rss_after.append(rss_kb(pid))
        # RSS does not return to base (glibc and gRPC keep grown pools) and
        # steps up by ~30 MB at a flood that varies from run to run (seven
        # floods, RSS after each: 54.9/84.6/85.0/85.8/86.0/86.1/86.1 MB from 21.4;
        # another run 55.6/56.0/56.4/56.5/86.2), so flood-to-flood ratios
        # flake. The bound: after five floods of 2,000 connections at most
        # 100 MB more than at rest (runs keep ~65 MB); a leak of 10 KiB per
        # connection would cross it. Exact leak checks are valgrind.memcheck's
        # and LeakSanitizer's (sanitize.asan_ubsan), which run this binary too.
        growth = rss_after[-1] - base_rss
        self.assertLess(growth, RSS_KEPT_MAX_KB,
                        "RSS after each flood: %r kB (base %d): still growing"
                        % (rss_after, base_rss))

        # HTTP: the limit is full of idle connections (held for their 30 s).
        # Each is answered once first: a connection the server has not yet
        # accepted when the next one comes is not counted, and that one
        # would be served instead of refused.
        hold = connect_many(hport, HTTP_LIMIT)
        flood = []
        try:
            self.assertEqual([self.served_healthz(s) for s in hold],
                             ["HTTP/1.1 200 OK"] * HTTP_LIMIT)
            # a request over the limit: 503 at once, no waiting for a slot
            status, body, headers, refused_503_s = request_over_limit(hport)
            self.assert_503_over_limit(status, body, headers)
            self.assertLess(refused_503_s, REFUSED_WITHIN)
            # an idle flood over the limit, past the listen backlog: every
            # connect succeeds (none waits in the backlog), the 503 slots
            # take the first ones and the rest are closed at accept
            flood_start = time.monotonic()
            flood = connect_many(hport, HTTP_EXTRA)
            flood_connect_s = time.monotonic() - flood_start
            closed_at_accept = h.poll(
                lambda: sum(closed_by_peer(s) for s in flood) >= HTTP_EXTRA - HTTP_OVER_SLOTS, 5)
            self.assertTrue(closed_at_accept, "connections past the 503 slots were not closed")
            # a request now: refused fast (closed at accept; a 503 if an idle
            # slot has timed out meanwhile on a slow machine)
            kind, body, headers, refused_full_s = request_over_limit(hport)
            if kind != "closed":
                self.assert_503_over_limit(kind, body, headers)
            self.assertLess(refused_full_s, REFUSED_WITHIN)
            # the limit holds: what the server keeps is the limit and the 503 slots
            http_fds = open_fds(pid)
            self.assertLessEqual(http_fds, base_fds + HTTP_LIMIT + HTTP_OVER_SLOTS + 4,
                                 "more HTTP connections held than the limit and the 503 slots")
            # connections within the limit are untouched and still served
            self.assertEqual(sum(closed_by_peer(s) for s in hold), 0, "a held connection dropped")
            self.assertEqual(self.served_healthz(hold[0]), "HTTP/1.1 200 OK")
            # the gRPC side is not affected by a full HTTP side
            r = client.get_app_token()
            self.assertEqual(r.code, Code.OK, r.details)
            grpc_call_http_full = r.elapsed
            # idle connections over the limit do not keep their slot
            all_closed = h.poll(lambda: all(closed_by_peer(s) for s in flood),
                                HTTP_OVER_TIMEOUT + 8)
            self.assertTrue(all_closed, "idle connections over the limit are still held")
            status, body, headers, _ = request_over_limit(hport)
            self.assert_503_over_limit(status, body, headers)
        finally:
            for s in hold + flood:
                s.close()
        status = h.poll(lambda: healthz_status(hport), 5)
        self.assertEqual(status, 200, "HTTP side does not answer after the flood")
        back = h.poll(lambda: open_fds(pid) <= base_fds + 2, 10)
        self.assertTrue(back, "fds stay at %d (base %d) after the HTTP flood"
                        % (open_fds(pid), base_fds))
        # the server has closed every HTTP connection (the fds above allow
        # for two that are not: they would still hold a slot)
        self.assertTrue(h.poll(lambda: tcp_connections(pid, hport) == 0, 10),
                        "%d HTTP connections still held" % tcp_connections(pid, hport))
        # back to normal: the whole limit is served again (no slot leaked)
        again = connect_many(hport, HTTP_LIMIT)
        try:
            statuses = [self.served_healthz(s) for s in again]
        finally:
            for s in again:
                s.close()
        self.assertEqual(statuses, ["HTTP/1.1 200 OK"] * HTTP_LIMIT)

        r = client.get_app_token()
        self.assertEqual(r.code, Code.OK, r.details)
        report("flood", grpc_connections=GRPC_FLOOD, floods=FLOODS, fds_base=base_fds,
               fds_peak=max(peak_fds), fds_after=open_fds(pid),
               grpc_call_during_flood_s=grpc_call_during, rss_base_kb=base_rss,
               rss_peak_kb=peak_rss, rss_after_each_flood_kb="/".join(map(str, rss_after)),
               rss_kept_kb=growth,
               http_limit=HTTP_LIMIT, http_flood=HTTP_EXTRA, http_fds_at_limit=http_fds,
               http_flood_connect_s=flood_connect_s, refused_503_s=refused_503_s,
               refused_closed_s=refused_full_s, grpc_call_http_full_s=grpc_call_http_full)
        stop_clean(server, client)


if __name__ == "__main__":
    unittest.main(verbosity=2)
