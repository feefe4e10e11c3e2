"""Reloading the config without a restart (SIGHUP, a changed file): app
certificate rotation with previous_certificate_files, API keys added and
removed, TLS certificate and client CA replaced for new connections, invalid
configs that change nothing, the Kubernetes `..data` symlink swap, and 20
reloads under continuous gRPC and HTTP load with no call lost."""
import http.client
import os
import re
import subprocess
import threading
import time
import unittest
import urllib.request

import grpc

import harness as h

Code = grpc.StatusCode
CERT_A = h.CERTIFICATE
CERT_B = h.OTHER_CERTIFICATE
STEADY_KEY = "steady-key-5e6f7a8b9c0d"  # in every config of the load test
KEY_ONE = "key-one-1a2b3c4d5e6f"
KEY_TWO = "key-two-6f5e4d3c2b1a"


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, mode)


def metric(server_http, name):
    """The value of one sample of GET /metrics ('name{labels}' as printed)."""
    with urllib.request.urlopen(server_http + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def config_sha(server_http):
    with urllib.request.urlopen(server_http + "/metrics", timeout=10) as resp:
        found = re.search(r'chat_tokend_config_info\{sha256="([0-9a-f]{64})"\} 1', resp.read().decode())
    return found.group(1) if found else None


def http_base(server):
    e = server.wait_event("listening", 10, lambda e: e.get("message", "").startswith("http://"))
    return e["message"]


def app_config(certificate_file, previous_files=(), keys=((h.ADMIN_KEY, h.tokend.ALL_METHODS),),
               **overrides):
    cfg = h.base_config(**overrides)
    del cfg["app"]["certificate"]
    cfg["app"]["previous_certificates"] = []
    cfg["app"]["certificate_file"] = certificate_file
    cfg["app"]["previous_certificate_files"] = list(previous_files)
    cfg["auth"]["api_keys"] = [h.tokend.api_key("k%d" % i, key, methods)
                               for i, (key, methods) in enumerate(keys)]
    return cfg


class CertificateRotationTest(unittest.TestCase):
    """The runbook of the README: A; then B with A in
    previous_certificate_files; then A removed."""

    def test_rotation_end_to_end(self):
        with h.temp_dir() as d:
            cert = os.path.join(d, "certificate")
            previous = os.path.join(d, "previous-certificate")
            write(cert, CERT_A)
            server = h.Server(app_config(cert), workdir=d)
            server.add_secret(CERT_B)
            server.start()
            client = h.Client(server, key=h.ADMIN_KEY)
            try:
                old = client.get_app_token()
                self.assertTrue(old.ok, old.details)
                h.verify_tokens([{"token": old.response.token, "kind": "app",
                                  "certificate": CERT_A}])

                # step 2: B is the certificate, A a previous one (both files)
                write(previous, CERT_A)
                write(cert, CERT_B)
                server.write_config(app_config(cert, [previous]))
                self.assertEqual(server.reload()["event"], "config_reloaded")
                new = client.get_app_token()
                self.assertTrue(new.ok, new.details)
                h.verify_tokens([{"token": new.response.token, "kind": "app",
                                  "certificate": CERT_B, "not_certificates": [CERT_A]}])
                renewed = client.renew_token(old.response.token)
                self.assertTrue(renewed.ok, renewed.details)
                h.verify_tokens([{"token": renewed.response.token, "kind": "app",
                                  "certificate": CERT_B, "not_certificates": [CERT_A]}])

                # step 3: A removed: its tokens no longer renew
                server.write_config(app_config(cert))
                self.assertEqual(server.reload()["event"], "config_reloaded")
                refused = client.renew_token(old.response.token)
                self.assertEqual(refused.code, Code.PERMISSION_DENIED, refused.details)
                self.assertIn("does not verify", refused.details)
                self.assertTrue(client.renew_token(new.response.token).ok)
            finally:
                client.close()
                server.stop()


class ApiKeyReloadTest(unittest.TestCase):
    def test_key_added_works_and_key_removed_is_refused(self):
        with h.temp_dir() as d:
            cert = os.path.join(d, "certificate")
            write(cert, CERT_A)
            both = ((h.ADMIN_KEY, h.tokend.ALL_METHODS), (KEY_ONE, h.tokend.ALL_METHODS))
            server = h.Server(app_config(cert), workdir=d)
            server.add_secret(KEY_ONE)
            server.start()
            admin = h.Client(server, key=h.ADMIN_KEY)
            one = h.Client(server, key=KEY_ONE)
            try:
                self.assertEqual(one.get_app_token().code, Code.UNAUTHENTICATED)
                server.write_config(app_config(cert, keys=both))
                self.assertEqual(server.reload()["event"], "config_reloaded")
                self.assertTrue(one.get_app_token().ok)
                # the same channel: no reconnect needed for either change
                server.write_config(app_config(cert, keys=both[1:]))
                self.assertEqual(server.reload()["event"], "config_reloaded")
                self.assertEqual(admin.get_app_token().code, Code.UNAUTHENTICATED)
                self.assertTrue(one.get_app_token().ok)
            finally:
                admin.close()
                one.close()
                server.stop()


class EnvironmentReloadTest(unittest.TestCase):
    """CHAT_TOKEN_APP_CERTIFICATE is scrubbed from the environment at start
    and still applies on every reload."""

    def test_the_environment_certificate_applies_on_reload(self):
        cfg = h.base_config()
        del cfg["app"]["certificate"]
        server = h.Server(cfg, env={"CHAT_TOKEN_APP_CERTIFICATE": CERT_B})
        server.add_secret(CERT_B)
        server.start()
        client = h.Client(server, key=h.ADMIN_KEY)
        try:
            server.write_config(dict(cfg, tokens=dict(cfg["tokens"], default_ttl_seconds=600)))
            self.assertEqual(server.reload()["event"], "config_reloaded")
            r = client.get_app_token()
            self.assertTrue(r.ok, r.details)
            h.verify_tokens([{"token": r.response.token, "kind": "app", "certificate": CERT_B,
                              "ttl": 600}])
            with open("/proc/%d/environ" % server.proc.pid, "rb") as f:
                self.assertNotIn(CERT_B.encode(), f.read())
        finally:
            client.close()
            server.stop()


class InvalidReloadTest(unittest.TestCase):
    """Each bad config is refused as a whole: the old one keeps serving, the
    log says where, the error counter counts it, the config hash stays."""

    def test_invalid_configs_change_nothing(self):
        with h.temp_dir() as d:
            cert = os.path.join(d, "certificate")
            write(cert, CERT_A)
            good = app_config(cert, http={"listen": "127.0.0.1:0"})
            server = h.Server(good, workdir=d)
            server.start()
            base = http_base(server)
            client = h.Client(server, key=h.ADMIN_KEY)
            sha = config_sha(base)
            self.assertIsNotNone(sha)
            ok_before = metric(base, 'chat_tokend_config_reloads_total{result="ok"}')
            unknown_key = dict(good, surprise=1)
            moved = dict(good, listen=["127.0.0.1:1"])
            unreadable = app_config(os.path.join(d, "missing"), http={"listen": "127.0.0.1:0"})
            cases = [
                ("syntax", {"text": "listen: [\"127.0.0.1:0\"\napp: {"},
                 r"chat-tokend\.yaml:\d+:\d+: "),
                ("unknown key", {"config": unknown_key}, r"chat-tokend\.yaml:\d+:\d+: surprise"),
                ("restart-only key", {"config": moved}, r"listen changed: a restart is needed"),
                ("unreadable certificate", {"config": unreadable},
                 r"chat-tokend\.yaml:\d+:\d+: app\.certificate_file: cannot open .*missing"),
            ]
            try:
                for name, content, where in cases:
                    with self.subTest(name):
                        errors = metric(base, 'chat_tokend_config_reloads_total{result="error"}')
                        server.write_config(**content)
                        outcome = server.reload()
                        self.assertEqual(outcome["event"], "config_reload_failed")
                        self.assertEqual(outcome["level"], "error")
                        self.assertRegex(outcome["message"], where)
                        self.assertGreater(
                            metric(base, 'chat_tokend_config_reloads_total{result="error"}'),
                            errors)
                        self.assertEqual(config_sha(base), sha)
                        r = client.get_app_token()
                        self.assertTrue(r.ok, r.details)
                        h.verify_tokens([{"token": r.response.token, "kind": "app",
                                          "certificate": CERT_A}])
                self.assertEqual(metric(base, 'chat_tokend_config_reloads_total{result="ok"}'),
                                 ok_before)
                # and a good one again
                server.write_config(dict(good, tokens=dict(good["tokens"], default_ttl_seconds=1800)))
                self.assertEqual(server.reload()["event"], "config_reloaded")
                self.assertNotEqual(config_sha(base), sha)
                self.assertGreater(metric(base, "chat_tokend_config_last_reload_success_timestamp_"
                                                "seconds"), time.time() - 60)
            finally:
                client.close()
                server.stop()


class SymlinkSwapTest(unittest.TestCase):
    """A Kubernetes Secret volume: files are symlinks through `..data`, which
    the kubelet swaps atomically; no SIGHUP is sent."""

    def test_data_symlink_swap_is_picked_up_within_2_s(self):
        with h.temp_dir() as d:
            mount = os.path.join(d, "secret")
            os.mkdir(mount)
            for version, value in (("..v1", CERT_A), ("..v2", CERT_B)):
                os.mkdir(os.path.join(mount, version))
                write(os.path.join(mount, version, "certificate"), value, 0o400)
            os.symlink("..v1", os.path.join(mount, "..data"))
            os.symlink("..data/certificate", os.path.join(mount, "certificate"))
            server = h.Server(app_config(os.path.join(mount, "certificate")), workdir=d)
            server.add_secret(CERT_B)
            server.start()
            client = h.Client(server, key=h.ADMIN_KEY)
            try:
                # what the kubelet does: a new symlink renamed over ..data
                os.symlink("..v2", os.path.join(mount, "..data_tmp"))
                os.rename(os.path.join(mount, "..data_tmp"), os.path.join(mount, "..data"))
                swapped = time.monotonic()
                event = server.wait_event("config_reloaded", 2.0)
                self.assertIsNotNone(event, server.stderr_text())
                self.assertIn("(on a file change)", event["message"])
                self.assertLess(time.monotonic() - swapped, 2.0)
                r = client.get_app_token()
                h.verify_tokens([{"token": r.response.token, "kind": "app",
                                  "certificate": CERT_B, "not_certificates": [CERT_A]}])
            finally:
                client.close()
                server.stop()


def fingerprint(address, ca=None, cert=None, key=None):
    """The SHA-256 fingerprint of the certificate a new TLS connection to
    address gets, with openssl s_client."""
    args = ["openssl", "s_client", "-connect", address, "-servername", "localhost"]
    if cert:
        args += ["-cert", cert, "-key", key]
    s_client = subprocess.run(args, input=b"", capture_output=True, timeout=30)
    pem = re.search(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                    s_client.stdout, re.S)
    if pem is None:
        return None
    x509 = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                          input=pem.group(0), capture_output=True, timeout=30, check=True)
    return x509.stdout.decode().strip().split("=", 1)[1]


def file_fingerprint(path):
    x509 = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", path],
                          capture_output=True, timeout=30, check=True)
    return x509.stdout.decode().strip().split("=", 1)[1]


class TlsReloadTest(unittest.TestCase):
    def test_new_certificate_for_new_connections_and_established_channel_continues(self):
        with h.temp_dir() as d:
            certs = h.Certificates(d)
            second = certs._leaf("server2", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                                 "serverAuth")
            live_cert, live_key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
            for src, dst in zip(certs.server, (live_cert, live_key)):
                with open(src, "rb") as f, open(dst, "wb") as g:
                    g.write(f.read())
            os.chmod(live_key, 0o600)
            cfg = h.base_config(tls={"cert_file": live_cert, "key_file": live_key})
            server = h.Server(cfg, workdir=d).start()
            established = h.Client(server, key=h.ADMIN_KEY,
                                   credentials=certs.channel_credentials())
            try:
                self.assertTrue(established.get_app_token().ok)
                self.assertEqual(fingerprint(server.address), file_fingerprint(certs.server[0]))

                # a key that is not the certificate's: refused, the old pair stays
                with open(second[0], "rb") as f, open(live_cert, "wb") as g:
                    g.write(f.read())
                outcome = server.reload()
                self.assertEqual(outcome["event"], "config_reload_failed")
                self.assertIn("is not the key of the certificate", outcome["message"])
                self.assertEqual(fingerprint(server.address), file_fingerprint(certs.server[0]))

                with open(second[1], "rb") as f, open(live_key, "wb") as g:
                    g.write(f.read())
                self.assertEqual(server.reload()["event"], "config_reloaded")
                self.assertEqual(fingerprint(server.address), file_fingerprint(second[0]))
                self.assertTrue(established.get_app_token().ok)
                with h.Client(server, key=h.ADMIN_KEY,
                              credentials=certs.channel_credentials()) as fresh:
                    self.assertTrue(fresh.get_app_token().ok)
            finally:
                established.close()
                server.stop()

    def test_new_client_ca_for_new_connections(self):
        with h.temp_dir() as d:
            certs = h.Certificates(d)
            ca_file = os.path.join(d, "clients-ca.crt")
            with open(certs.path("ca.crt"), "rb") as f, open(ca_file, "wb") as g:
                g.write(f.read())
            cfg = h.base_config(
                tls={"cert_file": certs.server[0], "key_file": certs.server[1],
                     "client_ca_file": ca_file},
                auth={"allow_unauthenticated": False,
                      "mtls_clients": [{"id": h.SPIFFE_BACKEND, "methods": ["GetAppToken"]}]})
            server = h.Server(cfg, workdir=d).start()
            backend = h.Client(server, credentials=certs.channel_credentials("backend"))
            try:
                self.assertTrue(backend.get_app_token().ok)
                with h.Client(server, credentials=certs.channel_credentials("rogue")) as rogue:
                    self.assertNotEqual(rogue.get_app_token().code, Code.OK)
                # clients now come from the rogue CA
                with open(certs.path("rogue-ca.crt"), "rb") as f, open(ca_file, "wb") as g:
                    g.write(f.read())
                self.assertEqual(server.reload()["event"], "config_reloaded")
                with h.Client(server, credentials=certs.channel_credentials("rogue")) as rogue:
                    r = rogue.get_app_token()
                    self.assertTrue(r.ok, r.details)
                with h.Client(server, credentials=certs.channel_credentials("backend")) as fresh:
                    self.assertNotEqual(fresh.get_app_token().code, Code.OK)
                # the established channel keeps its connection and identity
                self.assertTrue(backend.get_app_token().ok)
            finally:
                backend.close()
                server.stop()


class ReloadUnderLoadTest(unittest.TestCase):
    """20 reloads alternating two app certificates and two API key sets
    while gRPC and HTTP callers never stop: no call fails but those the
    new key set refuses, and every token verifies with the certificate of
    the config it was issued under."""

    RELOADS = 20

    def config(self, d, phase):
        cert = os.path.join(d, "cert-%d" % phase)
        keys = ((STEADY_KEY, h.tokend.ALL_METHODS),
                ((KEY_ONE, KEY_TWO)[phase], h.tokend.ALL_METHODS))
        return app_config(cert, keys=keys, http={"listen": "127.0.0.1:0"})

    def test_twenty_reloads_under_load(self):
        with h.temp_dir() as d:
            write(os.path.join(d, "cert-0"), CERT_A)
            write(os.path.join(d, "cert-1"), CERT_B)
            server = h.Server(self.config(d, 0), workdir=d)
            for s in (CERT_B, STEADY_KEY, KEY_ONE, KEY_TWO):
                server.add_secret(s)
            server.start()
            host, port = http_base(server)[len("http://"):].rsplit(":", 1)
            stop = threading.Event()
            phase_lock = threading.Lock()
            state = {"phase": 0, "epoch": 0}  # epoch: reloads done
            results = []  # (transport, key, epoch_before, epoch_after, ok/code, token)

            def snapshot():
                with phase_lock:
                    return state["epoch"]

            def grpc_caller(key):
                with h.Client(server, key=key) as c:
                    while not stop.is_set():
                        before = snapshot()
                        r = c.get_app_token()
                        results.append(("grpc", key, before, snapshot(), r.code,
                                        r.response.token if r.ok else None))

            def http_caller(key):
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                while not stop.is_set():
                    before = snapshot()
                    try:
                        conn.request("GET", "/chat/app/token",
                                     headers={"Authorization": "Bearer " + key})
                        resp = conn.getresponse()
                        body = resp.read().decode()
                        status = resp.status
                    except (OSError, http.client.HTTPException) as e:
                        conn.close()
                        conn = http.client.HTTPConnection(host, int(port), timeout=10)
                        body, status = str(e), 0
                    if status == 200:
                        server.add_secret(body)
                    results.append(("http", key, before, snapshot(), status,
                                    body if status == 200 else None))
                conn.close()

            threads = [threading.Thread(target=grpc_caller, args=(STEADY_KEY,)),
                       threading.Thread(target=grpc_caller, args=(KEY_ONE,)),
                       threading.Thread(target=http_caller, args=(STEADY_KEY,)),
                       threading.Thread(target=http_caller, args=(KEY_TWO,))]
            for t in threads:
                t.start()
            try:
                for i in range(1, self.RELOADS + 1):
                    time.sleep(0.05)
                    phase = i % 2
                    server.write_config(self.config(d, phase))
                    with phase_lock:
                        state["epoch"] = -i  # a reload under way: tokens may be either
                    outcome = server.reload()
                    self.assertEqual(outcome["event"], "config_reloaded", outcome)
                    with phase_lock:
                        state["epoch"] = i
                time.sleep(0.2)
            finally:
                stop.set()
                for t in threads:
                    t.join(30)
            server.stop()

        self.assertGreater(len(results), 100)
        by_cert = {CERT_A: [], CERT_B: []}
        either = []
        for transport, key, before, after, code, token in results:
            ok = code in (Code.OK, 200)
            where = "%s %s epoch %s..%s: %s" % (transport, key[:8], before, after, code)
            if key == STEADY_KEY:
                self.assertTrue(ok, where)
            elif not ok:
                # refused by a key set without this key: never any other failure
                self.assertIn(code, (Code.UNAUTHENTICATED, 401), where)
            if not ok:
                continue
            if before == after and before >= 0:
                by_cert[(CERT_A, CERT_B)[before % 2]].append(token)
            else:
                either.append(token)
        checks = []
        for cert, tokens in by_cert.items():
            other = CERT_B if cert == CERT_A else CERT_A
            checks += [{"token": t, "kind": "app", "certificate": cert, "not_certificates": [other]}
                       for t in tokens]
        self.assertGreater(len(checks), 50)
        checks += [{"token": t, "kind": "app", "one_of": [CERT_A, CERT_B]} for t in either]
        h.verify_tokens(checks)


if __name__ == "__main__":
    h.main()
