"""TokenService over a real connection: GetAppToken, GetUserToken and
RenewToken, their TTL rules, username rules, renewal rules, and the
request-level errors (undecodable, oversized, unknown method)."""
import time

import grpc

import harness as h

Code = grpc.StatusCode


class TokenMethodsTest(h.ServerCase):
    @classmethod
    def setUpClass(cls):
        cls.server = h.Server(h.base_config()).start()
        cls.admin = cls.client(key=h.ADMIN_KEY)
        cls.backend = cls.client(key=h.BACKEND_KEY)

    def assertIssued(self, r, kind, ttl, **check):
        """r is OK, its token verifies with agora-token as a kind token of
        ttl seconds, and expire_time is its issue time (now) + ttl."""
        self.assertCode(r, Code.OK)
        [view] = h.verify_tokens([dict(token=r.response.token, kind=kind, ttl=ttl, **check)])
        self.assertEqual(view["expire"], ttl)
        self.assertEqual(r.response.expire_time.seconds, view["issue_ts"] + ttl)
        self.assertLessEqual(abs(view["issue_ts"] - time.time()), 5)

    # ---- GetAppToken ----

    def test_app_token_default_ttl_verifies_with_agora_token(self):
        r = self.admin.get_app_token()
        self.assertIssued(r, "app", 3600)
        self.assertTrue(r.response.token.startswith("007"))

    def test_app_token_explicit_ttl(self):
        self.assertIssued(self.admin.get_app_token(ttl=600), "app", 600)

    def test_app_token_ttl_at_max_is_honoured(self):
        r = self.admin.get_app_token(ttl=7200)
        self.assertCode(r, Code.OK)
        h.verify_tokens([{"token": r.response.token, "kind": "app", "ttl": 7200}])

    def test_app_token_ttl_over_max_is_invalid_argument_naming_the_limit(self):
        self.assertCode(self.admin.get_app_token(ttl=7201), Code.INVALID_ARGUMENT, says="7200")

    # ---- GetUserToken ----

    def test_user_token_default_ttl_verifies_with_agora_token(self):
        r = self.backend.get_user_token("alice")
        self.assertIssued(r, "user", 3600, user_id="alice")
        self.assertEqual(r.response.user_id, "alice")
        self.assertFalse(r.response.registered)

    def test_user_token_explicit_ttl(self):
        self.assertIssued(self.backend.get_user_token("bob", ttl=90), "user", 90, user_id="bob")

    def test_user_token_ttl_over_max_is_invalid_argument(self):
        self.assertCode(self.backend.get_user_token("bob", ttl=86401), Code.INVALID_ARGUMENT,
                        says="7200")

    def test_username_is_normalised_to_lower_case(self):
        r = self.backend.get_user_token("Alice.Smith_01-X")
        self.assertCode(r, Code.OK)
        self.assertEqual(r.response.user_id, "alice.smith_01-x")
        h.verify_tokens([{"token": r.response.token, "kind": "user",
                          "user_id": "alice.smith_01-x"}])

    def test_username_of_64_characters_is_accepted(self):
        name = "a" * 64
        r = self.backend.get_user_token(name)
        self.assertCode(r, Code.OK)
        self.assertEqual(r.response.user_id, name)

    def test_invalid_usernames_are_invalid_argument(self):
        for name in ["", "a" * 65, "alice smith", "alice@example", "élodie", "a/b", "a\nb"]:
            with self.subTest(name=name):
                self.assertCode(self.backend.get_user_token(name), Code.INVALID_ARGUMENT)

    def test_username_with_nul_byte_is_invalid_argument_not_truncated(self):
        r = self.backend.get_user_token("alice\x00admin")
        self.assertCode(r, Code.INVALID_ARGUMENT)

    # ---- RenewToken ----

    def test_renew_user_token_keeps_identity_and_signs_with_current_certificate(self):
        old = self.backend.get_user_token("Carol", ttl=120).response.token
        r = self.backend.renew_token(old, ttl=1800)
        self.assertIssued(r, "user", 1800, user_id="carol")
        self.assertEqual(r.response.user_id, "carol")
        self.assertEqual(r.response.kind, 2)  # TOKEN_KIND_USER
        self.assertNotEqual(r.response.token, old)

    def test_renew_with_default_ttl(self):
        old = self.backend.get_user_token("dave", ttl=60).response.token
        r = self.backend.renew_token(old)
        self.assertCode(r, Code.OK)
        h.verify_tokens([{"token": r.response.token, "kind": "user", "user_id": "dave",
                          "ttl": 3600}])

    def test_renew_ttl_over_max_is_invalid_argument(self):
        old = self.backend.get_user_token("dave").response.token
        self.assertCode(self.backend.renew_token(old, ttl=7201), Code.INVALID_ARGUMENT)

    def test_renew_accepts_token_signed_with_previous_certificate(self):
        old = h.cli_build("user", certificate=h.PREVIOUS_CERTIFICATE, user="erin")
        self.server.add_secret(old)
        r = self.backend.renew_token(old)
        self.assertCode(r, Code.OK)
        self.assertEqual(r.response.user_id, "erin")
        h.verify_tokens([{"token": r.response.token, "kind": "user", "user_id": "erin",
                          "not_certificates": [h.PREVIOUS_CERTIFICATE]}])

    def test_renew_refuses_token_signed_with_unknown_certificate(self):
        old = h.cli_build("user", certificate=h.OTHER_CERTIFICATE, user="erin")
        self.server.add_secret(old)
        self.assertCode(self.backend.renew_token(old), Code.PERMISSION_DENIED)

    def test_renew_refuses_token_of_another_app(self):
        old = h.cli_build("user", app_id=h.OTHER_APP_ID, user="erin")
        self.server.add_secret(old)
        r = self.backend.renew_token(old)
        self.assertCode(r, Code.PERMISSION_DENIED)

    def test_renew_within_grace_after_expiry_succeeds(self):
        # expired 30 s ago; grace is 60 s
        old = h.cli_build("user", user="frank", ttl=60, issue_ts=time.time() - 90)
        self.server.add_secret(old)
        r = self.backend.renew_token(old)
        self.assertCode(r, Code.OK)
        self.assertEqual(r.response.user_id, "frank")

    def test_renew_after_grace_is_failed_precondition(self):
        # expired 120 s ago; grace is 60 s
        old = h.cli_build("user", user="frank", ttl=60, issue_ts=time.time() - 180)
        self.server.add_secret(old)
        self.assertCode(self.backend.renew_token(old), Code.FAILED_PRECONDITION)

    def test_renew_unparsable_token_is_invalid_argument(self):
        for token in ["", "not a token", "007" + "A" * 40, "006abc"]:
            with self.subTest(token=token):
                self.assertCode(self.backend.renew_token(token), Code.INVALID_ARGUMENT)

    def test_renew_token_with_nul_byte_and_trailing_junk_is_invalid_argument(self):
        token = self.backend.get_user_token("gina").response.token
        self.assertCode(self.backend.renew_token(token + "\x00junk"), Code.INVALID_ARGUMENT)

    def test_renew_token_of_wrong_service_shape_is_invalid_argument(self):
        for shape in ["rtc_join_and_audio", "chat_and_rtm", "chat_two_privileges"]:
            with self.subTest(shape=shape):
                token = h.foreign_token(shape)
                self.server.add_secret(token)
                self.assertCode(self.admin.renew_token(token), Code.INVALID_ARGUMENT)

    def test_renew_crafted_token_shapes_are_invalid_argument(self):
        # signed with this app's certificate, so only the shape is wrong
        chat = h.chat_service(b"gina")
        shapes = {
            # a Chat service, then a service of type 0 and bytes after it: the
            # parser stops at type 0 without reading on (issue 10, item 5)
            "chat + type 0 + trailing": ([chat, h._u16(0)], None, b"\x01\x02junk"),
            "chat + unknown type 99": ([chat, h._u16(99) + b"\x00\x00"], None, b""),
            "chat + trailing bytes": ([chat], None, b"junk"),
            "declares two, holds one": ([chat], 2, b""),
        }
        for name, (services, declared, trailing) in shapes.items():
            with self.subTest(shape=name):
                token = h.craft_token(services, declared=declared, trailing=trailing)
                self.server.add_secret(token)
                r = self.admin.renew_token(token)
                self.assertCode(r, Code.INVALID_ARGUMENT)
        # the same bytes without the extras renew: the crafting is right
        token = h.craft_token([chat])
        self.server.add_secret(token)
        r = self.backend.renew_token(token)
        self.assertCode(r, Code.OK)
        self.assertEqual(r.response.user_id, "gina")

    def test_renew_refuses_user_ids_it_does_not_issue(self):
        for user_id in (b"Gina", b"gi na", b"\xff\xfe", b"caf\xc3\xa9", b"..", b"a\x00b",
                        b"x" * 65):
            with self.subTest(user_id=user_id):
                token = h.craft_token([h.chat_service(user_id)])
                self.server.add_secret(token)
                r = self.backend.renew_token(token)
                self.assertCode(r, Code.INVALID_ARGUMENT)
                self.assertIn("user id is not a", r.details)

    def test_renew_app_token_with_get_app_token_permission(self):
        old = self.admin.get_app_token(ttl=300).response.token
        r = self.admin.renew_token(old)
        self.assertCode(r, Code.OK)
        self.assertEqual(r.response.kind, 1)  # TOKEN_KIND_APP
        self.assertEqual(r.response.user_id, "")
        h.verify_tokens([{"token": r.response.token, "kind": "app", "ttl": 3600}])

    def test_renew_app_token_without_get_app_token_permission_is_denied(self):
        old = self.admin.get_app_token().response.token
        self.assertCode(self.backend.renew_token(old), Code.PERMISSION_DENIED)

    # ---- request-level errors ----

    def test_garbage_request_bytes_are_invalid_argument(self):
        for method in ["GetAppToken", "GetUserToken", "RenewToken"]:
            with self.subTest(method=method):
                r = self.admin.raw("/chattoken.v1.TokenService/" + method, b"\xff\xff\xff\xff\x0f")
                self.assertCode(r, Code.INVALID_ARGUMENT)

    def test_empty_request_means_all_defaults(self):
        r = self.admin.raw("/chattoken.v1.TokenService/GetAppToken", b"",
                           response_class=h.protos().GetAppTokenResponse)
        self.assertCode(r, Code.OK)
        h.verify_tokens([{"token": r.response.token, "kind": "app", "ttl": 3600}])
        r = self.admin.raw("/chattoken.v1.TokenService/GetUserToken", b"")
        self.assertCode(r, Code.INVALID_ARGUMENT)  # no username

    def test_garbage_health_and_reflection_requests_are_invalid_argument(self):
        for path in ("/grpc.health.v1.Health/Check",
                     "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"):
            with self.subTest(path=path):
                self.assertCode(self.admin.raw(path, b"\xff\xff"), Code.INVALID_ARGUMENT)

    def test_message_over_64_kib_is_resource_exhausted(self):
        r = self.backend.get_user_token("a" * (65 * 1024))
        self.assertCode(r, Code.RESOURCE_EXHAUSTED)
        r = self.backend.renew_token("007" + "A" * (70 * 1024))
        self.assertCode(r, Code.RESOURCE_EXHAUSTED)

    def test_unknown_method_is_unimplemented_at_once(self):
        for path in ["/chattoken.v1.TokenService/DeleteEverything", "/no.such.Service/Call"]:
            with self.subTest(path=path):
                r = self.admin.raw(path, b"", timeout=10)
                self.assertCode(r, Code.UNIMPLEMENTED)
                self.assertLess(r.elapsed, 2.0, "UNIMPLEMENTED must not wait for the deadline")

    def test_rpc_log_line_names_method_status_caller_and_peer(self):
        self.backend.get_user_token("loggy")
        event = self.server.wait_event(
            "rpc", 5, lambda e: e.get("method") == "GetUserToken" and e.get("caller") == "backend")
        self.assertIsNotNone(event, self.server.stderr_text())
        self.assertEqual(event["transport"], "grpc")
        self.assertIn(event["status"], ["OK", "INVALID_ARGUMENT", "PERMISSION_DENIED",
                                         "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"])
        self.assertTrue(event["peer"].startswith("ipv4:127.0.0.1:"), event)
        self.assertIsInstance(event["duration_ms"], (int, float))
        self.assertIn("time", event)


if __name__ == "__main__":
    h.main()
