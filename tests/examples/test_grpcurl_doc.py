"""examples.grpcurl_doc: client-examples/grpcurl.md works as written.

Every ```sh buf block of the document is extracted and run, in document
order, in one bash (so `TOKEN=$(...)` in one block serves the next) against a
live chat-tokend, with the placeholders the document's setup block defines
($ADDR, $SOCK, $KEY, $ADMIN_KEY) set to that server. A block that fails
fails the test; each block's output is checked for what the document says it
does (services listed, schema described, tokens that agora-token verifies,
SERVING), and the document must keep covering list, describe, each method,
the unix socket and health. The ```sh grpcurl blocks are run the same way
(exit status and tokens checked) when grpcurl is on PATH.
"""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DOC = os.path.join(harness.EXAMPLES_DIR, "grpcurl.md")
PLACEHOLDERS = {"ADDR", "SOCK", "KEY", "ADMIN_KEY"}
SET_BY_DOC = {"TOKEN"}  # assigned by a block, used by a later one
SERVICES = ["chattoken.v1.TokenService", "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]
SCRIPT_TIMEOUT = 45
# what the document must show at least once, as buf curl commands
REQUIRED = {"list_services", "list_methods", "describe", "get_user_token", "token_capture",
            "renew_token", "get_app_token", "unix_socket", "health"}

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
TOKEN_FIELD = re.compile(r'"token": "([^"]+)"')
USER_FIELD = re.compile(r'"userId": "([^"]+)"')


def fenced_blocks(text):
    """[(info string, body)] in document order."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


def run_blocks(bodies, env, cwd):
    """Runs the blocks in one `bash` with -euo pipefail, stderr merged into
    stdout. Returns (exit code, [output of block i], [$TOKEN after block i],
    index of the block that failed or None)."""
    lines = ["set -euo pipefail"]
    for i, body in enumerate(bodies):
        lines.append("printf '\\n@@@begin %d\\n'" % i)
        lines.append(body.rstrip("\n"))
        lines.append("printf '\\n@@@end %d token=%%s\\n' \"${TOKEN:-}\"" % i)
    script = os.path.join(cwd, "blocks.sh")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    proc = subprocess.run(["bash", "--noprofile", "--norc", script], env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=SCRIPT_TIMEOUT)
    out = proc.stdout.decode("utf-8", "replace")
    outputs = [""] * len(bodies)
    tokens = [""] * len(bodies)
    failed = None
    current = None
    for line in out.split("\n"):
        begin = re.match(r"^@@@begin (\d+)$", line)
        end = re.match(r"^@@@end (\d+) token=(.*)$", line)
        if begin:
            current = int(begin.group(1))
        elif end:
            tokens[int(end.group(1))] = end.group(2)
            current = None
        elif current is not None:
            outputs[current] += line + "\n"
    if proc.returncode != 0:
        failed = current
    return proc.returncode, outputs, tokens, failed


def count_commands(body, program):
    return len(re.findall(r"(?:^|\$\()\s*" + re.escape(program) + r"\b", body, re.M))


class GrpcurlDocTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DOC) as f:
            cls.blocks = fenced_blocks(f.read())
        cls.buf_blocks = [b for info, b in cls.blocks if info == "sh buf"]
        cls.grpcurl_blocks = [b for info, b in cls.blocks if info == "sh grpcurl"]

    def env_for(self, server, workdir):
        env = dict(os.environ)
        env.update({
            "ADDR": server.address,
            "SOCK": server.socket_path,
            "KEY": harness.BACKEND_KEY,
            "ADMIN_KEY": harness.ADMIN_KEY,
            "PATH": os.path.join(harness.NODE_MODULES, ".bin") + os.pathsep
            + env.get("PATH", ""),
            "HOME": workdir,  # buf keeps a cache there
            "BUF_CACHE_DIR": os.path.join(workdir, "buf-cache"),
        })
        env.pop("TOKEN", None)
        return env

    # ---- the document's shape ----

    def test_setup_block_defines_the_placeholders(self):
        setup = [b for info, b in self.blocks if info == "sh"]
        self.assertTrue(setup, "grpcurl.md: no ```sh setup block")
        exported = set(re.findall(r"^export ([A-Z_]+)=", setup[0], re.M))
        self.assertEqual(exported - {"PATH"}, PLACEHOLDERS,
                         "the setup block must export exactly the placeholders the test sets")

    def test_blocks_use_only_known_placeholders(self):
        for body in self.buf_blocks + self.grpcurl_blocks:
            unknown = set(VARIABLE.findall(body)) - PLACEHOLDERS - SET_BY_DOC
            self.assertFalse(unknown, "unknown variable(s) %s in block:\n%s"
                             % (sorted(unknown), body))

    def test_each_command_is_given_for_grpcurl_and_buf(self):
        kinds = [info for info, _ in self.blocks if info in ("sh grpcurl", "sh buf")]
        self.assertGreater(len(kinds), 0)
        self.assertEqual(kinds, ["sh grpcurl", "sh buf"] * (len(kinds) // 2),
                         "blocks must come in pairs: grpcurl, then the same with buf curl")

    # ---- running them ----

    def run_doc_blocks(self, server, blocks, what):
        """Runs the blocks in one shell against server; their tokens become
        the server's secrets. (outputs, tokens) of each block; fails the
        test naming the block that failed."""
        workdir = os.path.join(server.dir, "shell")
        os.mkdir(workdir)
        rc, outputs, tokens, failed = run_blocks(blocks, self.env_for(server, workdir), workdir)
        for out in outputs:
            for t in TOKEN_FIELD.findall(out):
                server.add_secret(t)
        if rc != 0:
            self.fail("%s block failed (bash exit %d):\n%s\n--- output:\n%s"
                      % (what, rc, blocks[failed] if failed is not None else "?",
                         outputs[failed] if failed is not None else ""))
        return outputs, tokens

    def test_buf_blocks_run_and_do_what_the_document_says(self):
        covered = set()
        with harness.Server() as server:
            outputs, tokens = self.run_doc_blocks(server, self.buf_blocks, "grpcurl.md: a buf")
            for i, body in enumerate(self.buf_blocks):
                with self.subTest(block=i):
                    kinds = self.check_block(body, outputs[i], tokens[i])
                    self.assertTrue(kinds, "no check knows this block; teach "
                                    "test_grpcurl_doc.py what it must print:\n" + body)
                    covered |= kinds
            if "unix_socket" in covered:
                unix_calls = [e for e in server.rpc_events("GetUserToken")
                              if e.get("peer", "").startswith("unix:")]
                self.assertTrue(unix_calls, "no GetUserToken call reached the unix socket")
        self.assertEqual(REQUIRED - covered, set(),
                         "grpcurl.md no longer shows these with buf curl")

    def check_block(self, body, out, token_after):
        """Checks one buf block's output; returns what the block showed."""
        kinds = set()
        n_commands = count_commands(body, "buf")
        if "--unix-socket" in body:
            kinds.add("unix_socket")
        if "--list-services" in body:
            kinds.add("list_services")
            for service in SERVICES:
                self.assertIn(service + "\n", out)
        if "--list-methods" in body:
            kinds.add("list_methods")
            for method in ["chattoken.v1.TokenService/GetAppToken",
                           "chattoken.v1.TokenService/GetUserToken",
                           "chattoken.v1.TokenService/RenewToken",
                           "grpc.health.v1.Health/Check"]:
                self.assertIn(method + "\n", out)
        if "ServerReflectionInfo" in body:
            kinds.add("describe")
            for name in ["GetUserTokenRequest", "username", "ttl_seconds", "TokenService",
                         "RenewToken"]:
                self.assertIn('name: "%s"' % name, out)
        if "Health/Check" in body:
            kinds.add("health")
            self.assertEqual(out.count('"status": "SERVING"'), n_commands, out)
        if body.lstrip().startswith("TOKEN=$("):
            kinds.add("token_capture")
            self.assertEqual(out.strip(), "")
            usernames = re.findall(r'"username": "([^"]+)"', body)
            harness.verify_tokens([{"token": token_after, "kind": "user",
                                    "user_id": usernames[0].lower()}])
            return kinds
        if "TokenService/GetUserToken" in body:
            kinds.add("get_user_token")
            usernames = [u.lower() for u in re.findall(r'"username": "([^"]+)"', body)]
            self.check_tokens(out, "user", usernames)
        if "TokenService/RenewToken" in body:
            kinds.add("renew_token")
            self.assertIn('"kind": "TOKEN_KIND_USER"', out)
            self.check_tokens(out, "user", ["alice"] * n_commands)
        if "TokenService/GetAppToken" in body:
            kinds.add("get_app_token")
            self.check_tokens(out, "app", [None] * n_commands)
        return kinds

    def check_tokens(self, out, kind, user_ids):
        tokens = TOKEN_FIELD.findall(out)
        self.assertEqual(len(tokens), len(user_ids), "tokens printed:\n" + out)
        checks = [{"token": t, "kind": kind} for t in tokens]
        if kind == "user":
            self.assertEqual(USER_FIELD.findall(out), user_ids)
            for c, user_id in zip(checks, user_ids):
                c["user_id"] = user_id
        harness.verify_tokens(checks)

    @unittest.skipUnless(shutil.which("grpcurl"), "grpcurl is not installed (not in Debian "
                         "bookworm); its blocks run where it is")
    def test_grpcurl_blocks_run(self):
        with harness.Server() as server:
            outputs, _ = self.run_doc_blocks(server, self.grpcurl_blocks, "a grpcurl")
            for i, body in enumerate(self.grpcurl_blocks):
                tokens = TOKEN_FIELD.findall(outputs[i])
                kind = "app" if "GetAppToken" in body else "user"
                if tokens:
                    harness.verify_tokens([{"token": t, "kind": kind} for t in tokens])
                if "Health/Check" in body:
                    self.assertEqual(outputs[i].count('"status": "SERVING"'),
                                     count_commands(body, "grpcurl"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
