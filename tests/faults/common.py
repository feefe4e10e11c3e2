"""Shared parts of the fault tests: the integration harness (imported from
tests/integration), the fake Agora Chat server on a chosen port, an upstream
that accepts connections and never answers, and /proc readings of the
server's RSS, open fds and TCP connections."""
import os
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness as h  # noqa: E402


FakeChat = h.fake_chat  # FakeChat(port=..., directory=...): tests/fakes/fake_chat.py


def serve(test, config, key):
    """Starts chat-tokend with config and a client calling with key; both
    are cleaned up when test ends."""
    server = h.Server(config).start()
    test.addCleanup(server.cleanup)
    client = h.Client(server, key=key)
    test.addCleanup(client.close)
    return server, client


def stop_clean(server, client):
    """Closes the client, then stops the server with SIGTERM: it must exit 0
    and must not have logged a secret (tokend.Tokend.stop raises)."""
    client.close()
    server.stop()


class HangingUpstream:
    """Listens on 127.0.0.1:port, accepts every connection, reads and
    discards what comes, never answers: an upstream that hangs."""

    def __init__(self, port=0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock.bind(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._conns = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.setblocking(False)
            self._conns.append(conn)
            self.accepted += 1
            for c in list(self._conns):
                try:
                    c.recv(65536)
                except (BlockingIOError, OSError):
                    pass

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for c in self._conns:
            c.close()
        self.sock.close()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def tcp_connections(pid, port):
    """How many connected TCP sockets process pid holds on its local port
    (its listening socket not counted): exact where open_fds also counts
    whatever else the process has open."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with open("/proc/%d/net/%s" % (pid, table)) as f:
            next(f)
            for line in f:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                listening = fields[3] == "0A"
                if local_port == port and not listening and fields[9] in inodes:
                    count += 1
    return count


def http_port(server):
    """The HTTP side port of a harness.Server (its "listening" event says
    "http://127.0.0.1:N")."""
    event = server.wait_event("listening", 5,
                              lambda e: str(e.get("message", "")).startswith("http://"))
    if event is None:
        raise AssertionError("no HTTP listener in:\n" + server.stderr_text())
    return int(event["message"].rsplit(":", 1)[1])


def http_get(port, path, timeout=5.0):
    """A plain HTTP/1.1 GET; (status, body)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def healthz_status(port):
    """GET /healthz's status, 0 when the connection fails."""
    try:
        return http_get(port, "/healthz", timeout=2)[0]
    except OSError:
        return 0


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q * len(values))) - 1))]


def report(name, **figures):
    """One line per measured figure on stderr, picked up by docs/RELIABILITY.md."""
    parts = ", ".join("%s=%s" % (k, ("%.3f" % v) if isinstance(v, float) else v)
                      for k, v in figures.items())
    sys.stderr.write("faults: %s: %s\n" % (name, parts))
    sys.stderr.flush()
