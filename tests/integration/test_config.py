"""The command line and the config file as operators meet them:
--check-config (secrets masked), errors naming file:line:column and key,
allow_unauthenticated refused on a non-local listener, environment and
file overrides of the certificate, start-up failures."""
import json
import os
import re
import socket
import subprocess
import unittest

import grpc

import harness as h

CONFIG_ERROR = 2


def run_tokend(args, env=None, timeout=15):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_TOKEN_")}
    full_env.update(env or {})
    return subprocess.run([h.TOKEND] + args, capture_output=True, text=True, env=full_env,
                          timeout=timeout)


class ConfigFileTest(unittest.TestCase):
    def setUp(self):
        self._dir = h.temp_dir()
        self.dir = self._dir.__enter__()
        self.addCleanup(self._dir.__exit__, None, None, None)

    def write(self, text, name="chat-tokend.yaml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def write_config(self, cfg):
        return self.write(json.dumps(cfg, indent=1) + "\n")

    def check(self, path, env=None):
        return run_tokend(["--config", path, "--check-config"], env=env)

    def assertNamesPlace(self, output, path, line, key=None):
        m = re.search(re.escape(path) + r":(\d+):(\d+): (\S*)", output)
        self.assertIsNotNone(m, "no FILE:LINE:COLUMN in %r" % output)
        self.assertEqual(int(m.group(1)), line, output)
        self.assertGreaterEqual(int(m.group(2)), 1, output)
        if key is not None:
            self.assertIn(key, output)

    def test_version_prints_the_version(self):
        p = run_tokend(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^chat-tokend \d+\.\d+\.\d+")

    def test_check_config_prints_effective_config_with_secrets_masked(self):
        path = self.write_config(h.base_config())
        p = self.check(path)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout + p.stderr
        self.assertIn(h.APP_ID, out)
        self.assertIn("max_ttl_seconds: 7200", out)
        for secret in (h.CERTIFICATE, h.PREVIOUS_CERTIFICATE, h.sha256_hex(h.BACKEND_KEY),
                       h.sha256_hex(h.ADMIN_KEY), h.BACKEND_KEY, h.ADMIN_KEY):
            self.assertNotIn(secret, out)
            self.assertNotIn(secret.lower(), out.lower())
        self.assertIn("***", out)

    def test_check_config_masks_certificate_from_environment(self):
        cfg = h.base_config()
        del cfg["app"]["certificate"]
        path = self.write_config(cfg)
        p = self.check(path, env={"CHAT_TOKEN_APP_CERTIFICATE": h.OTHER_CERTIFICATE})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(h.OTHER_CERTIFICATE.lower(), (p.stdout + p.stderr).lower())

    def test_allow_unauthenticated_on_wildcard_listener_is_refused(self):
        cfg = h.base_config(listen=["0.0.0.0:0"])
        cfg["auth"]["allow_unauthenticated"] = True
        path = self.write_config(cfg)
        p = self.check(path)
        self.assertEqual(p.returncode, CONFIG_ERROR, p.stdout)
        self.assertIn("allow_unauthenticated", p.stderr)
        self.assertIn("0.0.0.0", p.stderr)
        self.assertIn(path, p.stderr)
        # and the server itself refuses to start, before listening
        started = run_tokend(["--config", path])
        self.assertEqual(started.returncode, CONFIG_ERROR)
        self.assertNotIn('"listening"', started.stderr)

    def test_unknown_key_names_file_line_column_and_key(self):
        path = self.write('listen: ["127.0.0.1:0"]\n'
                          'app: {id: "%s", certificate: "%s", key: "a#b"}\n'
                          'auth:\n'
                          '  allow_unauthenticated: true\n'
                          '  colour: blue\n' % (h.APP_ID, h.CERTIFICATE))
        p = self.check(path)
        self.assertEqual(p.returncode, CONFIG_ERROR, p.stdout)
        self.assertNamesPlace(p.stderr, path, 5, "colour")
        self.assertNotIn(h.CERTIFICATE, p.stderr + p.stdout)

    def test_bad_yaml_names_file_line_column(self):
        path = self.write('listen: ["127.0.0.1:0"\napp: {id: x\n')
        p = self.check(path)
        self.assertEqual(p.returncode, CONFIG_ERROR, p.stdout)
        self.assertRegex(p.stderr, re.escape(path) + r":\d+:\d+: ")

    def test_invalid_values_are_config_errors_naming_the_key(self):
        cases = [
            ("tokens", {"default_ttl_seconds": 3600, "max_ttl_seconds": 90000},
             "max_ttl_seconds"),
            ("user_tokens", {"identity": "email"}, "identity"),
            ("app", {"id": "not-hex", "certificate": h.CERTIFICATE, "key": "a#b"}, "app.id"),
        ]
        for section, value, key in cases:
            with self.subTest(key=key):
                path = self.write_config(h.base_config(**{section: value}))
                p = self.check(path)
                self.assertEqual(p.returncode, CONFIG_ERROR, p.stdout)
                self.assertIn(key, p.stderr)
                self.assertRegex(p.stderr, re.escape(path) + r":\d+:\d+: ")

    def test_missing_config_file_is_a_config_error(self):
        p = self.check(os.path.join(self.dir, "nope.yaml"))
        self.assertEqual(p.returncode, CONFIG_ERROR)
        self.assertIn("nope.yaml", p.stderr)

    def test_listen_address_in_use_fails_start_with_a_message(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            path = self.write_config(h.base_config(listen=["127.0.0.1:%d" % port]))
            p = run_tokend(["--config", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("start_failed", p.stderr)
        self.assertIn(str(port), p.stderr)


class CertificateOverrideTest(unittest.TestCase):
    def assert_signs_with_the_other_certificate(self, server):
        """Starts server, gets a user token, stops it; the token verifies
        with OTHER_CERTIFICATE, which its environment does not show.
        Returns that environment (/proc/PID/environ)."""
        server.add_secret(h.OTHER_CERTIFICATE)
        server.start()
        with h.Client(server, key=h.BACKEND_KEY) as c:
            r = c.get_user_token("alice")
        # read, then overwritten in place: /proc/PID/environ shows the
        # initial environment block, which unsetenv alone leaves as it was
        with open("/proc/%d/environ" % server.proc.pid, "rb") as f:
            environ = f.read()
        server.stop()
        self.assertNotIn(h.OTHER_CERTIFICATE.encode(), environ)
        self.assertEqual(r.code, grpc.StatusCode.OK, r.details)
        h.verify_tokens([{"token": r.response.token, "kind": "user", "user_id": "alice",
                          "certificate": h.OTHER_CERTIFICATE}])
        return environ

    def test_environment_certificate_signs_the_tokens(self):
        cfg = h.base_config()
        del cfg["app"]["certificate"]
        environ = self.assert_signs_with_the_other_certificate(
            h.Server(cfg, env={"CHAT_TOKEN_APP_CERTIFICATE": h.OTHER_CERTIFICATE}))
        self.assertIn(b"CHAT_TOKEN_APP_CERTIFICATE=\0", environ)

    def test_certificate_file_signs_the_tokens(self):
        with h.temp_dir() as d:
            cert_file = os.path.join(d, "app_certificate")
            with open(cert_file, "w") as f:
                f.write(h.OTHER_CERTIFICATE + "\n")
            os.chmod(cert_file, 0o600)
            cfg = h.base_config()
            del cfg["app"]["certificate"]
            cfg["app"]["certificate_file"] = cert_file
            self.assert_signs_with_the_other_certificate(h.Server(cfg, workdir=d))


class SecretFileModeTest(unittest.TestCase):
    """Secret files readable beyond the server: one warning per file, naming
    it; the server still starts (Kubernetes mounts Secrets 0644 unless the
    manifest says otherwise)."""

    def test_one_warning_per_exposed_secret_file(self):
        with h.temp_dir() as d:
            cert_file = os.path.join(d, "app_certificate")
            key_file = os.path.join(d, "ops.key")
            private_file = os.path.join(d, "private.key")
            for path, content, mode in ((cert_file, h.OTHER_CERTIFICATE, 0o644),
                                        (key_file, "ops-key-0123456789", 0o604),
                                        (private_file, "private-key-0123456789", 0o600)):
                with open(path, "w") as f:
                    f.write(content + "\n")
                os.chmod(path, mode)
            cfg = h.base_config()
            del cfg["app"]["certificate"]
            cfg["app"]["certificate_file"] = cert_file
            cfg["auth"]["api_keys"] += [
                {"name": "ops", "key_file": key_file, "methods": ["GetAppToken"]},
                {"name": "ops2", "key_file": key_file, "methods": ["GetUserToken"]},
                {"name": "private", "key_file": private_file, "methods": ["GetAppToken"]}]
            server = h.Server(cfg, workdir=d)
            for s in (h.OTHER_CERTIFICATE, "ops-key-0123456789", "private-key-0123456789"):
                server.add_secret(s)
            server.start()
            warnings = [e for e in server.events if e.get("event") == "secret_file_readable"]
            self.assertEqual(server.stop(), 0)
        self.assertEqual(sorted(w["message"].split(" ")[0] for w in warnings),
                         sorted([cert_file, key_file]), warnings)
        for w in warnings:
            self.assertEqual(w["level"], "warn")
            self.assertIn("readable by others", w["message"])
            self.assertIn("defaultMode: 0440", w["message"])
        self.assertIn("mode 0644", " ".join(w["message"] for w in warnings))


if __name__ == "__main__":
    h.main()
