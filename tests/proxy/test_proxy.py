"""chat-tokend behind real HTTP/2 proxies from Debian, as a mesh would put
it: HAProxy (mode http, proto h2 to two replicas, health checks on /readyz
of each replica's HTTP side port), and nghttpx for plain gRPC pass-through,
reflection included (`buf curl --list-services` through it).

The rolling restart: under continuous GetUserToken load through HAProxy,
SIGTERM replica 1 (its /readyz turns 503 and HAProxy takes it out before it
stops accepting), start a new replica 1 on the same ports, wait until HAProxy
has it back, then the same for replica 2. Zero failed calls, and every
sampled token is valid (npm agora-token). Prints calls, failures and the
longest call (docs/RELIABILITY.md quotes them).

Environment: CT_SOURCE_DIR, CT_BIN_DIR (the integration harness). Run with
/usr/bin/python3 (python3-grpcio)."""
import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
NGHTTPX = shutil.which("nghttpx") or "/usr/sbin/nghttpx"
BUF = os.path.join(h.SOURCE_DIR, "node_modules", ".bin", "buf")
# HAProxy checks /readyz every 200 ms and takes a replica out after 2
# failures (~0.4 s); the replicas drain 2 s, well above that.
CHECK_INTER_MS, CHECK_FALL, CHECK_RISE = 200, 2, 2
DRAIN, GRACE = 2, 5
LOAD_THREADS = 4
SAMPLE_EVERY = 50


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


class Replica:
    """One chat-tokend on fixed gRPC and HTTP ports, so that a replacement
    takes the same place behind the proxy."""

    def __init__(self, workdir, name):
        self.dir = os.path.join(workdir, name)
        os.mkdir(self.dir)
        self.grpc_port, self.http_port = free_port(), free_port()
        self.server = None

    def start(self):
        cfg = h.base_config(listen=["127.0.0.1:%d" % self.grpc_port],
                            http={"listen": "127.0.0.1:%d" % self.http_port},
                            shutdown={"drain_seconds": DRAIN, "grace_seconds": GRACE})
        self.server = h.Server(cfg, workdir=self.dir).start()
        return self

    def wait_exit(self):
        """Waits for the exit that a SIGTERM started (one signal: a second
        one would cut the drain short); returns the exit code."""
        server, self.server = self.server, None
        try:
            rc = server.wait_exit(DRAIN + GRACE + 10)
            assert not server.leaked_secrets(), "secrets in the log"
            return rc
        finally:
            server.cleanup()


class HAProxy:
    def __init__(self, workdir, replicas):
        self.port = free_port()
        self.stats = os.path.join(workdir, "haproxy.sock")
        self.config = os.path.join(workdir, "haproxy.cfg")
        servers = "".join(
            "  server r%d 127.0.0.1:%d proto h2 check port %d check-proto h1\n"
            % (n, r.grpc_port, r.http_port) for n, r in enumerate(replicas, 1))
        with open(self.config, "w") as f:
            f.write("""\
global
  stats socket %(stats)s level admin
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout check 1s
frontend grpc
  bind 127.0.0.1:%(port)d proto h2
  default_backend tokend
backend tokend
  balance roundrobin
  option httpchk
  http-check send meth GET uri /readyz
  http-check expect status 200
  default-server inter %(inter)dms fastinter %(inter)dms downinter %(inter)dms fall %(fall)d rise %(rise)d
%(servers)s""" % {"stats": self.stats, "port": self.port, "inter": CHECK_INTER_MS,
                  "fall": CHECK_FALL, "rise": CHECK_RISE, "servers": servers})
        self.log = open(os.path.join(workdir, "haproxy.log"), "w+")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.config],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if not wait_port(self.port):
            raise AssertionError("haproxy did not start:\n" + self.output())

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def status(self):
        """{server name: status} from the stats socket ("UP", "DOWN", ...)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.stats)
            s.sendall(b"show stat\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {r["svname"]: r["status"].split()[0] for r in rows
                if r["pxname"] == "tokend" and r["svname"] not in ("BACKEND", "FRONTEND")}

    def wait_status(self, server, wanted, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status().get(server) == wanted:
                return True
            time.sleep(0.02)
        return False

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


class Load:
    """GetUserToken calls in a loop on LOAD_THREADS channels to target."""

    def __init__(self, target):
        self.target = target
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.calls = 0
        self.failures = []
        self.longest = 0.0
        self.samples = []
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True)
                        for n in range(LOAD_THREADS)]

    def run(self, n):
        with h.Client(None, target=self.target, key=h.BACKEND_KEY) as c:
            i = 0
            while not self.stop_flag.is_set():
                user = "load%d.%d" % (n, i)
                r = c.get_user_token(user, ttl=600, timeout=10)
                i += 1
                with self.lock:
                    self.calls += 1
                    self.longest = max(self.longest, r.elapsed)
                    if not r.ok:
                        self.failures.append("%s: %s %s" % (user, r.code, r.details))
                    elif self.calls % SAMPLE_EVERY == 0:
                        self.samples.append({"token": r.response.token, "kind": "user",
                                             "user_id": user, "ttl": 600})

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)


class ProxyTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ct-proxy-")
        self.replicas = [Replica(self.dir, "r1").start(), Replica(self.dir, "r2").start()]
        self.cleanups = []

    def tearDown(self):
        for fn in reversed(self.cleanups):
            fn()
        for r in self.replicas:
            if r.server is not None:
                r.server.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_rolling_restart_behind_haproxy_fails_no_call(self):
        proxy = HAProxy(self.dir, self.replicas)
        self.cleanups.append(proxy.stop)
        for name in ("r1", "r2"):
            self.assertTrue(proxy.wait_status(name, "UP", 10), proxy.status())
        target = "127.0.0.1:%d" % proxy.port
        started = time.monotonic()
        with Load(target) as load:
            time.sleep(1)
            for n, replica in enumerate(self.replicas, 1):
                name = "r%d" % n
                calls_before = load.calls
                replica.server.terminate()
                # HAProxy must see /readyz 503 and take the replica out while
                # it still serves: before its drain ends
                self.assertTrue(proxy.wait_status(name, "DOWN", DRAIN - 0.5),
                                "%s not DOWN in HAProxy during the drain" % name)
                self.assertIsNone(replica.server.wait_event("stopping", 0),
                                  "%s stopped before HAProxy took it out" % name)
                self.assertEqual(replica.wait_exit(), 0)
                replica.start()
                self.assertTrue(proxy.wait_status(name, "UP", 10),
                                "%s not back UP: %s" % (name, proxy.status()))
                time.sleep(0.5)
                self.assertGreater(load.calls, calls_before, "the load stalled")
            time.sleep(1)
        seconds = time.monotonic() - started
        print("rolling restart through HAProxy: %d calls in %.1f s, %d failed, longest %.1f ms, "
              "%d sampled tokens" % (load.calls, seconds, len(load.failures),
                                     load.longest * 1000, len(load.samples)))
        self.assertEqual(load.failures, [], "%d of %d calls failed, e.g. %s"
                         % (len(load.failures), load.calls, load.failures[:3]))
        self.assertGreater(load.calls, 200)
        self.assertGreater(len(load.samples), 3)
        h.verify_tokens(load.samples)
        # both new replicas took calls after the restart
        for r in self.replicas:
            self.assertTrue(r.server.rpc_events("GetUserToken"), "a new replica got no calls")

    def test_nghttpx_passes_grpc_and_reflection_through(self):
        port = free_port()
        backends = ["--backend=127.0.0.1,%d;;proto=h2" % r.grpc_port for r in self.replicas]
        log = open(os.path.join(self.dir, "nghttpx.log"), "w+")
        proc = subprocess.Popen([NGHTTPX, "--conf=/dev/null", "--workers=1", "--no-ocsp",
                                 "--frontend=127.0.0.1,%d;no-tls" % port] + backends,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def stop():
            proc.terminate()
            proc.wait(10)
            log.close()
        self.cleanups.append(stop)
        self.assertTrue(wait_port(port), "nghttpx did not start")

        def nghttpx_log():
            log.seek(0)
            return "\nnghttpx log:\n" + log.read()
        # ready when a call passes through to a backend, not when the port
        # accepts: nghttpx binds before its worker serves
        with h.Client(None, target="127.0.0.1:%d" % port) as c:
            self.assertTrue(h.poll(lambda: c.health_check(timeout=2).ok, 10),
                            "no health check through nghttpx" + nghttpx_log())
        self.assertIsNone(proc.poll(), "nghttpx exited" + nghttpx_log())
        url = "http://127.0.0.1:%d" % port
        cache = os.path.join(self.dir, "buf")
        env = dict(os.environ, BUF_CACHE_DIR=cache, HOME=cache)
        p = subprocess.run([BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge",
                            "--list-services", url], capture_output=True, text=True, env=env,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr + nghttpx_log())
        services = p.stdout.split()
        for service in (h.SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"):
            self.assertIn(service, services)
        with h.Client(None, target="127.0.0.1:%d" % port, key=h.BACKEND_KEY) as c:
            results = [c.get_user_token("via.nghttpx%d" % i, ttl=300) for i in range(20)]
            bad_key = c.get_user_token("x", key="wrong-key")
        for r in results:
            self.assertTrue(r.ok, r)
        # the status of a failed call passes through too
        self.assertEqual(bad_key.code, grpc.StatusCode.UNAUTHENTICATED)
        h.verify_tokens([{"token": r.response.token, "kind": "user",
                          "user_id": "via.nghttpx%d" % i, "ttl": 300}
                         for i, r in enumerate(results)])
        # the two backends shared the calls
        for r in self.replicas:
            self.assertTrue(r.server.rpc_events("GetUserToken"), "a backend got no calls")


if __name__ == "__main__":
    unittest.main(verbosity=2)
