"""The built image, run the way Kubernetes runs it: UID/GID 65532, read-only
root filesystem, every capability dropped, no privilege escalation; the
config mounted as a file, the app certificate and an API key as mounted
secret files, a writable in-memory directory for the unix socket (the
sidecar's emptyDir). Through the published ports: GetUserToken and
GetAppToken (tokens checked by npm agora-token), the HTTP side port; inside
the container: `chat-tokend probe`. Then SIGTERM: health NOT_SERVING during
the drain, exit 0 within drain + grace. And a wrong config: exit 2 with
file:line:column on stderr.

Environment: CT_SOURCE_DIR, CT_BIN_DIR (the integration harness),
CT_CONTAINER_STORAGE (scripts/podman), CT_IMAGE (the image the fixture built).
Run with /usr/bin/python3 (python3-grpcio)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402

PODMAN = os.path.join(h.SOURCE_DIR, "scripts", "podman")
IMAGE = os.environ.get("CT_IMAGE", "localhost/chat-tokend:ci")
ADMIN_KEY = "container-admin-key-5b7d"
# drain long enough for `podman exec` of the probe to land inside it on a
# busy machine
DRAIN, GRACE = 4, 5
SECRETS = "/run/secrets/chat-tokend"
CONFIG = """\
# mounted over the image's default config
listen: ["0.0.0.0:50051", "unix:/run/chat-tokend/grpc.sock"]
health_listen: "0.0.0.0:50052"
app:
  id: "%s"
  certificate_file: %s/app_certificate
auth:
  api_keys:
    - {name: admin, key_file: %s/admin_api_key, methods: [GetAppToken, GetUserToken, RenewToken]}
workers: 2
shutdown: {drain_seconds: %d, grace_seconds: %d}
http: {listen: "0.0.0.0:8090"}
""" % (h.APP_ID, SECRETS, SECRETS, DRAIN, GRACE)


def podman(*args, check=True, timeout=60):
    p = subprocess.run([PODMAN] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("podman %s: exit %d\n%s" % (" ".join(args), p.returncode, p.stderr))
    return p


def hardened_run(name, workdir, config_text, detach=True):
    """`podman run` with Kubernetes' restricted settings; returns the
    completed process (with detach, the container keeps running)."""
    config = os.path.join(workdir, name + ".yaml")
    with open(config, "w") as f:
        f.write(config_text)
    os.chmod(config, 0o444)
    args = ["run", "--name", name, "--user", "65532:65532", "--read-only", "--cap-drop=ALL",
            "--security-opt", "no-new-privileges",
            "--mount", "type=tmpfs,destination=/run/chat-tokend,tmpfs-mode=1777",
            "-v", config + ":/etc/chat-tokend/config.yaml:ro"]
    for secret in ("app_certificate", "admin_api_key"):
        args += ["-v", "%s:%s/%s:ro" % (os.path.join(workdir, secret), SECRETS, secret)]
    if detach:
        args += ["-d", "-p", "127.0.0.1::50051", "-p", "127.0.0.1::8090"]
    return podman(*(args + [IMAGE]), check=detach)


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class ContainerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ct-container-")
        os.chmod(cls.dir, 0o755)
        for name, value in (("app_certificate", h.CERTIFICATE), ("admin_api_key", ADMIN_KEY)):
            path = os.path.join(cls.dir, name)
            with open(path, "w") as f:
                f.write(value + "\n")
            os.chmod(path, 0o444)  # what a Secret volume with fsGroup gives the pod
        cls.name = "ct-test-%d" % os.getpid()
        podman("rm", "-f", cls.name, check=False)
        hardened_run(cls.name, cls.dir, CONFIG)
        cls.grpc = podman("port", cls.name, "50051/tcp").stdout.strip().splitlines()[0]
        cls.http = "http://" + podman("port", cls.name, "8090/tcp").stdout.strip().splitlines()[0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http_get(cls.http + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            logs = podman("logs", cls.name, check=False)
            raise AssertionError("the container never got ready:\n" + logs.stdout + logs.stderr)

    @classmethod
    def tearDownClass(cls):
        podman("rm", "-f", "-t", "0", cls.name, check=False)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def probe(self, *args):
        p = podman("exec", self.name, "chat-tokend", "probe", *args, check=False)
        return p.returncode, p.stderr.strip().splitlines()

    def test_1_runs_as_65532_with_no_capabilities_on_a_read_only_root(self):
        pid = podman("inspect", self.name, "--format", "{{.State.Pid}}").stdout.strip()
        with open("/proc/%s/status" % pid) as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        self.assertEqual(status["Uid"].split(), ["65532"] * 4)
        self.assertEqual(status["Gid"].split(), ["65532"] * 4)
        for caps in ("CapEff", "CapPrm", "CapBnd"):
            self.assertEqual(int(status[caps], 16), 0, caps)
        self.assertEqual(status["NoNewPrivs"], "1")
        with open("/proc/%s/mountinfo" % pid) as f:
            root = next(line.split() for line in f if line.split()[4] == "/")
        self.assertIn("ro", root[5].split(","), root)
        # nothing to run in the image but the two binaries: no shell
        p = podman("exec", self.name, "sh", "-c", "true", check=False)
        self.assertNotEqual(p.returncode, 0)

    def test_2_tokens_through_the_published_port(self):
        with h.Client(None, target=self.grpc, key=ADMIN_KEY) as c:
            user = c.get_user_token("Container.User", ttl=600)
            self.assertTrue(user.ok, user)
            app = c.get_app_token(ttl=600)
            self.assertTrue(app.ok, app)
            refused = c.get_user_token("x", key="not-the-key")
            self.assertEqual(refused.code.name, "UNAUTHENTICATED")
        self.assertEqual(user.response.user_id, "container.user")
        h.verify_tokens([
            {"token": user.response.token, "kind": "user", "user_id": "container.user",
             "ttl": 600},
            {"token": app.response.token, "kind": "app", "ttl": 600},
        ])

    def test_3_http_side_port(self):
        self.assertEqual(http_get(self.http + "/healthz")[0], 200)
        self.assertEqual(http_get(self.http + "/readyz")[0], 200)
        status, body = http_get(self.http + "/metrics")
        self.assertEqual(status, 200)
        for family in ("process_resident_memory_bytes", "process_open_fds",
                       "chat_tokend_grpc_connections", "chat_tokend_rpcs_total"):
            self.assertIn("\n" + family, body)

    def test_4_probe_inside_the_container(self):
        rc, lines = self.probe()  # the default: the unix socket of the sidecar
        self.assertEqual((rc, len(lines)), (0, 1), lines)
        self.assertIn("unix:/run/chat-tokend/grpc.sock: SERVING", lines[0])
        rc, lines = self.probe("--addr", "127.0.0.1:50052", "--service",
                               "chattoken.v1.TokenService")
        self.assertEqual(rc, 0, lines)
        rc, lines = self.probe("--addr", "127.0.0.1:1", "--timeout-ms", "500")
        self.assertEqual(rc, 2, lines)

    def test_9_sigterm_drains_then_exits_0(self):
        start = time.monotonic()
        podman("kill", "--signal", "TERM", self.name)
        rc, lines = self.probe("--addr", "127.0.0.1:50052")
        self.assertEqual(rc, 1, "not NOT_SERVING while draining: %s" % lines)
        waited = podman("wait", self.name, timeout=DRAIN + GRACE + 30)
        elapsed = time.monotonic() - start
        self.assertEqual(waited.stdout.strip(), "0", waited)
        self.assertLess(elapsed, DRAIN + GRACE, "exit took %.1f s" % elapsed)
        self.assertGreaterEqual(elapsed, DRAIN - 0.5)
        logs = podman("logs", self.name).stderr
        events = [json.loads(line).get("event") for line in logs.splitlines() if line.startswith("{")]
        lifecycle = [e for e in events if e != "rpc"]
        self.assertEqual(lifecycle[-3:], ["draining", "stopping", "stopped"])
        for secret in (h.CERTIFICATE, ADMIN_KEY):
            self.assertNotIn(secret, logs)


class WrongConfigTest(unittest.TestCase):
    def test_wrong_config_exits_2_with_file_line_column(self):
        with tempfile.TemporaryDirectory(prefix="ct-container-") as d:
            os.chmod(d, 0o755)
            for name in ("app_certificate", "admin_api_key"):
                with open(os.path.join(d, name), "w") as f:
                    f.write(h.CERTIFICATE + "\n")
            name = "ct-badconfig-%d" % os.getpid()
            bad = CONFIG.replace("workers: 2", "workers: 2\nworkerz: 3")
            try:
                p = hardened_run(name, d, bad, detach=False)
            finally:
                podman("rm", "-f", name, check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        line = bad.splitlines().index("workerz: 3") + 1
        self.assertIn("/etc/chat-tokend/config.yaml:%d:1: workerz: unknown key" % line, p.stderr)


if __name__ == "__main__":
    # the one allowed skip: podman itself cannot run here (the fixture,
    # tests/container/build_image, skipped for the same reason)
    info = podman("info", check=False)
    if info.returncode != 0:
        print("SKIP: podman cannot run here: " + info.stderr.strip())
        sys.exit(77)
    unittest.main(verbosity=2)
