"""Caller authentication with API keys: by hash or key file, through
`authorization: Bearer` or `x-api-key`, each with its method allow-list;
and allow_unauthenticated on loopback and unix listeners."""
import os
import unittest

import grpc

import harness as h

Code = grpc.StatusCode
FILE_KEY = "file-key-9d8c7b6a5f4e"


class ApiKeyTest(h.ServerCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = h.temp_dir()
        workdir = cls.dir.__enter__()
        key_file = os.path.join(workdir, "ops.key")
        with open(key_file, "w") as f:
            f.write(FILE_KEY + "\n")
        os.chmod(key_file, 0o600)
        cfg = h.base_config()
        cfg["auth"]["api_keys"].append(
            {"name": "ops", "key_file": key_file, "methods": ["GetAppToken"]})
        cls.server = h.Server(cfg, workdir=workdir).start()
        cls.server.add_secret(FILE_KEY)
        cls.client = h.Client(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        h.stop_in_dir(cls.server, cls.dir)

    def caller_logged(self, name):
        return self.server.wait_event("rpc", 5, lambda e: e.get("caller") == name)

    def test_no_credentials_is_unauthenticated(self):
        for call in (lambda: self.client.get_user_token("alice"),
                     lambda: self.client.get_app_token(),
                     lambda: self.client.renew_token("007abc")):
            self.assertCode(call(), Code.UNAUTHENTICATED)

    def test_unknown_api_key_is_unauthenticated(self):
        r = self.client.get_user_token("alice", key="no-such-key-0000")
        self.server.add_secret("no-such-key-0000")
        self.assertCode(r, Code.UNAUTHENTICATED)

    def test_authorization_without_bearer_scheme_is_unauthenticated(self):
        md = [("authorization", "Basic " + h.BACKEND_KEY)]
        self.assertCode(self.client.get_user_token("alice", metadata=md), Code.UNAUTHENTICATED)

    def test_bearer_key_is_accepted(self):
        self.assertCode(self.client.get_user_token("alice", key=h.BACKEND_KEY), Code.OK)
        self.assertIsNotNone(self.caller_logged("backend"))

    def test_x_api_key_header_is_accepted(self):
        md = h.metadata_for(h.BACKEND_KEY, header="x-api-key")
        self.assertCode(self.client.get_user_token("alice", metadata=md), Code.OK)

    def test_more_than_one_credential_is_unauthenticated(self):
        bearer = [("authorization", "Bearer " + h.ADMIN_KEY)]
        for md in (bearer + [("authorization", "Bearer " + h.BACKEND_KEY)],
                   [("authorization", "Bearer not-a-key")] + bearer,
                   bearer + [("x-api-key", h.ADMIN_KEY)],
                   [("x-api-key", h.BACKEND_KEY), ("x-api-key", h.ADMIN_KEY)]):
            r = self.client.get_app_token(metadata=md)
            self.assertCode(r, Code.UNAUTHENTICATED)
            self.assertIn("more than one credential", r.details)
        self.server.add_secret("not-a-key")

    def test_method_not_in_allow_list_is_permission_denied(self):
        self.assertCode(self.client.get_app_token(key=h.BACKEND_KEY), Code.PERMISSION_DENIED)

    def test_key_from_key_file_is_accepted_for_its_methods_only(self):
        r = self.client.get_app_token(key=FILE_KEY)
        self.assertCode(r, Code.OK)
        h.verify_tokens([{"token": r.response.token, "kind": "app"}])
        self.assertIsNotNone(self.caller_logged("ops"))
        self.assertCode(self.client.get_user_token("alice", key=FILE_KEY), Code.PERMISSION_DENIED)

    def test_admin_key_may_call_every_method(self):
        app = self.client.get_app_token(key=h.ADMIN_KEY)
        self.assertCode(app, Code.OK)
        self.assertCode(self.client.get_user_token("alice", key=h.ADMIN_KEY), Code.OK)
        self.assertCode(self.client.renew_token(app.response.token, key=h.ADMIN_KEY), Code.OK)

    def test_unauthenticated_call_is_refused_before_decoding(self):
        r = self.client.raw("/chattoken.v1.TokenService/GetUserToken", b"\xff\xff\xff")
        self.assertCode(r, Code.UNAUTHENTICATED)


class AllowUnauthenticatedTest(unittest.TestCase):
    """allow_unauthenticated on a loopback TCP and a unix socket listener."""

    @classmethod
    def setUpClass(cls):
        cls.dir = h.temp_dir()
        workdir = cls.dir.__enter__()
        cls.socket_path = os.path.join(workdir, "grpc.sock")
        cfg = h.base_config(listen=["127.0.0.1:0", "unix:" + cls.socket_path])
        cfg["auth"] = {"allow_unauthenticated": True}
        cls.server = h.Server(cfg, workdir=workdir).start()

    @classmethod
    def tearDownClass(cls):
        h.stop_in_dir(cls.server, cls.dir)

    def test_call_without_credentials_is_served_as_anonymous(self):
        with h.Client(self.server) as c:
            r = c.get_app_token()
            self.assertEqual(r.code, Code.OK, r.details)
        self.assertIsNotNone(self.server.wait_event("rpc", 5, lambda e: e.get("caller") == "anonymous"))

    def test_unix_socket_listener_serves_token_calls(self):
        self.assertEqual(self.server.main_addresses[1], "unix:" + self.socket_path)
        with h.Client(self.server, target="unix:" + self.socket_path) as c:
            r = c.get_user_token("Unix.User")
            self.assertEqual(r.code, Code.OK, r.details)
            self.assertEqual(r.response.user_id, "unix.user")
            h.verify_tokens([{"token": r.response.token, "kind": "user", "user_id": "unix.user"}])
        event = self.server.wait_event("rpc", 5, lambda e: e.get("method") == "GetUserToken")
        self.assertIsNotNone(event)
        self.assertTrue(event["peer"].startswith("unix:"), event)


if __name__ == "__main__":
    h.main()
