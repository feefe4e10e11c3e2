"""`chat-tokend probe`, the built-in health client that exec probes run: exit
0 SERVING, 1 NOT_SERVING (while draining), 2 when the check cannot be made
(no server, a server that never answers, an unknown service, TLS trouble,
bad arguments), over a unix socket, TCP and mTLS, with exactly one line on
stderr each time."""
import os
import socket
import subprocess
import time
import unittest

import harness as h


def probe(*args, timeout=20):
    """(exit code, stderr lines, seconds) of one `chat-tokend probe` run.
    Without --timeout-ms, 10 s: the default 1 s is for the kubelet, not for
    a TLS handshake under ASan on a busy machine."""
    args = list(args)
    if "--timeout-ms" not in args and "--help" not in args:
        args += ["--timeout-ms", "10000"]
    start = time.monotonic()
    p = subprocess.run([h.TOKEND, "probe"] + args, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    lines = p.stderr.decode("utf-8", "replace").splitlines()
    return p.returncode, lines, time.monotonic() - start


class ProbeTest(unittest.TestCase):
    def assertProbe(self, args, code, text):
        rc, lines, _ = probe(*args)
        self.assertEqual(rc, code, lines)
        self.assertEqual(len(lines), 1, "exactly one line on stderr: %r" % lines)
        self.assertIn(text, lines[0])
        return lines[0]


class ServerProbeTest(ProbeTest):
    """One server for the class, made by config(workdir)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = h.temp_dir()
        workdir = cls.dir.__enter__()
        cls.server = h.Server(cls.config(workdir), workdir=workdir).start()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server.proc.poll() is None:
                cls.server.stop()
        finally:
            cls.dir.__exit__(None, None, None)


class ServingTest(ServerProbeTest):
    @classmethod
    def config(cls, workdir):
        cls.socket_path = os.path.join(workdir, "grpc.sock")
        return h.base_config(listen=["127.0.0.1:0", "unix:" + cls.socket_path],
                             health_listen="127.0.0.1:0",
                             shutdown={"drain_seconds": 30, "grace_seconds": 5})

    def test_1_serving_over_unix_socket_tcp_and_the_health_port(self):
        for addr in ("unix:" + self.socket_path, self.server.address, self.server.health_address):
            self.assertProbe(["--addr", addr], 0, "SERVING")
        self.assertProbe(["--addr", "unix:" + self.socket_path, "--service", h.SERVICE], 0,
                         "SERVING")

    def test_2_an_unknown_service_is_a_failed_check(self):
        self.assertProbe(["--addr", self.server.address, "--service", "no.such.Service"], 2,
                         "status 5")

    def test_3_not_serving_while_draining(self):
        self.server.terminate()
        self.assertIsNotNone(self.server.wait_event("draining", 5), self.server.stderr_text())
        for addr in ("unix:" + self.socket_path, self.server.address):
            for service in ("", h.SERVICE):
                self.assertProbe(["--addr", addr, "--service", service], 1, "NOT_SERVING")
        # a second signal cuts the 30 s drain short
        self.server.terminate()
        self.assertEqual(self.server.wait_exit(10), 0, self.server.stderr_text())


class NoServerTest(ProbeTest):
    def test_nothing_listening_is_a_connection_error(self):
        with h.temp_dir() as d:
            self.assertProbe(["--addr", "unix:" + os.path.join(d, "none.sock")], 2,
                             "cannot connect")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.assertProbe(["--addr", "127.0.0.1:%d" % port], 2, "cannot connect")

    def test_a_server_that_never_answers_times_out(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(4)  # accepted by the kernel, never answered
            rc, lines, seconds = probe("--addr", "127.0.0.1:%d" % s.getsockname()[1],
                                       "--timeout-ms", "300")
        self.assertEqual(rc, 2, lines)
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], "timed out|cannot connect")
        self.assertLess(seconds, 5)

    def test_bad_arguments_exit_2_with_one_line(self):
        for args, text in ((["--timeout-ms", "0"], "--timeout-ms"),
                           (["--bogus"], "unknown argument"),
                           (["--addr"], "--addr expects a value"),
                           (["--cert-file", "x"], "go together"),
                           (["--ca-file", "x"], "need --tls")):
            self.assertProbe(args, 2, text)

    def test_help_exits_0(self):
        rc, _, _ = probe("--help")
        self.assertEqual(rc, 0)


class MutualTlsTest(ServerProbeTest):
    @classmethod
    def config(cls, workdir):
        cls.certs = h.Certificates(workdir)
        crt, key = cls.certs.server
        return h.base_config(tls={"cert_file": crt, "key_file": key,
                                  "client_ca_file": cls.certs.ca_file})

    def test_serving_with_a_client_certificate(self):
        crt, key = self.certs.backend
        self.assertProbe(["--addr", self.server.address, "--tls", "--ca-file", self.certs.ca_file,
                          "--cert-file", crt, "--key-file", key], 0, "SERVING")

    def test_without_a_client_certificate_the_check_fails(self):
        self.assertProbe(["--addr", self.server.address, "--tls", "--ca-file",
                          self.certs.ca_file], 2, self.server.address)

    def test_plaintext_against_tls_fails(self):
        self.assertProbe(["--addr", self.server.address, "--timeout-ms", "2000"], 2,
                         self.server.address)

    def test_unreadable_ca_file(self):
        self.assertProbe(["--addr", self.server.address, "--tls", "--ca-file", "/nonexistent"],
                         2, "cannot open /nonexistent")


if __name__ == "__main__":
    unittest.main()
