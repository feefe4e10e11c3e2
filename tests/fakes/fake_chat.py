"""Drives tests/fakes/fake_chat_server.c (the fake Agora Chat REST API) from
Python tests: starts it on a port (0: a free one), talks to its admin API,
kills it and brings it back on the same port. One copy for every suite that
needs an upstream (integration, http, faults, sanitize)."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request


class FakeChat:
    def __init__(self, binary, app_id, certificate, app_key, port=0, directory=None):
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="ct-fake-")
        cert_file = os.path.join(self.dir, "cert")
        with open(cert_file, "w") as f:
            f.write(certificate + "\n")
        deadline = time.monotonic() + 10
        while True:
            self.proc = subprocess.Popen(
                [binary, "--port", str(port), "--app-id", app_id, "--app-cert-file", cert_file,
                 "--app-key", app_key],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            line = self.proc.stdout.readline().strip()
            if line.startswith("port="):
                break
            self.proc.wait()
            self.proc.stdout.close()
            if port == 0 or time.monotonic() > deadline:
                raise RuntimeError("fake-chat-server did not start on port %d: %r" % (port, line))
            time.sleep(0.05)  # the old listener's port is not free yet
        self.port = int(line.split("=", 1)[1])
        self.url = "http://127.0.0.1:%d" % self.port

    def admin(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")

    def fault(self, **fault):
        """Queues a fault for the next upstream requests (see the C file)."""
        self.admin("/_admin/fault", fault)

    def stats(self):
        return self.admin("/_admin/stats")

    def requests(self):
        return self.admin("/_admin/requests")["requests"]

    def user(self, name):
        return self.admin("/_admin/users/" + name)

    def kill(self):
        """SIGKILL: the upstream dies without a goodbye."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.proc.stdout.closed:
            self.proc.stdout.close()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
