"""GetRtcToken and GetRtmToken over a real connection, and RenewToken of
the RTC and RTM tokens: every token checked with npm agora-token (which
rebuilds it byte for byte from the inputs), every INVALID_ARGUMENT with its
message, the methods' permissions, and the tokens counted in /metrics."""
import re
import time
import urllib.request

import grpc

import harness as h

Code = grpc.StatusCode
PUBLISHER, SUBSCRIBER = 1, 2
MEDIA_KEY = "media-key-2b7c9e4f1a"  # GetRtcToken, GetRtmToken, RenewToken


def rtc_config():
    cfg = h.base_config(http={"listen": "127.0.0.1:0"})
    cfg["auth"]["api_keys"].append(
        {"name": "media", "sha256": h.sha256_hex(MEDIA_KEY),
         "methods": ["GetRtcToken", "GetRtmToken", "RenewToken"]})
    return cfg


class RtcMethodsTest(h.ServerCase):
    @classmethod
    def setUpClass(cls):
        cls.server = h.Server(rtc_config()).start()
        cls.server.add_secret(MEDIA_KEY)
        cls.media = cls.client(key=MEDIA_KEY)
        cls.backend = cls.client(key=h.BACKEND_KEY)
        # the HTTP side port starts after the gRPC server says "started"
        http = cls.server.wait_event("listening", 10,
                                     lambda e: e.get("message", "").startswith("http://"))
        cls.metrics_url = http["message"] + "/metrics"


    def rtc_ok(self, check, **request):
        r = self.media.get_rtc_token(**request)
        self.assertCode(r, Code.OK)
        [view] = h.verify_rtc_tokens([dict(check, token=r.response.token, kind="rtc")])
        self.assertEqual(r.response.expire_time.seconds, view["issue_ts"] + check["ttl"])
        self.assertLessEqual(abs(view["issue_ts"] - time.time()), 5)
        return r.response.token

    # ---- GetRtcToken ----

    def test_publisher_with_a_uid(self):
        self.rtc_ok({"channel": "room 1", "account": "42", "role": "publisher", "ttl": 600,
                     "privilege_ttl": 600},
                    channel_name="room 1", uid=42, role=PUBLISHER, ttl=600)

    def test_uid_zero_lets_any_uid_join(self):
        self.rtc_ok({"channel": "lobby", "account": "", "role": "subscriber", "ttl": 3600,
                     "privilege_ttl": 3600},
                    channel_name="lobby", uid=0, role=SUBSCRIBER)

    def test_subscriber_with_an_account_and_a_shorter_privilege(self):
        self.rtc_ok({"channel": "stage", "account": "alice@example", "role": "subscriber",
                     "ttl": 1800, "privilege_ttl": 300},
                    channel_name="stage", account="alice@example", role=SUBSCRIBER, ttl=1800,
                    privilege_ttl=300)

    def test_with_rtm_adds_the_rtm_login(self):
        self.rtc_ok({"channel": "call", "account": "bob", "role": "publisher", "ttl": 900,
                     "privilege_ttl": 900, "with_rtm": True},
                    channel_name="call", account="bob", role=PUBLISHER, ttl=900, with_rtm=True)
        self.rtc_ok({"channel": "call", "account": "77", "role": "subscriber", "ttl": 900,
                     "privilege_ttl": 450, "with_rtm": True},
                    channel_name="call", uid=77, role=SUBSCRIBER, ttl=900, privilege_ttl=450,
                    with_rtm=True)

    def test_every_invalid_argument_names_the_rule(self):
        cases = [
            (dict(channel_name="room", uid=1, role=0),
             "role must be RTC_ROLE_PUBLISHER (1) or RTC_ROLE_SUBSCRIBER (2), got 0"),
            (dict(channel_name="room", role=PUBLISHER),
             "set uid (0 lets any uid join) or account (\"\" lets any user join)"),
            (dict(channel_name="", uid=1, role=PUBLISHER), "channel_name must not be empty"),
            (dict(channel_name="c" * 65, uid=1, role=PUBLISHER),
             "channel_name must be at most 64 bytes"),
            (dict(channel_name="room/1", uid=1, role=PUBLISHER),
             "channel_name may hold only a-z A-Z 0-9, space and "
             "!#$%&()+-:;<=.>?@[]^_{|}~, (byte 4 is not allowed)"),
            (dict(channel_name="room", account="a" * 256, role=PUBLISHER),
             "account must be at most 255 bytes"),
            (dict(channel_name="room", uid=1, role=PUBLISHER, ttl=7201),
             "ttl_seconds must be at most 7200 (the configured maximum), got 7201"),
            (dict(channel_name="room", uid=1, role=PUBLISHER, ttl=600, privilege_ttl=601),
             "privilege_ttl_seconds must be at most the token's ttl (600 s), got 601"),
            (dict(channel_name="room", uid=0, role=PUBLISHER, with_rtm=True),
             "with_rtm needs a non-zero uid or a non-empty account: it is the RTM user id"),
            (dict(channel_name="room", account="two words", role=PUBLISHER, with_rtm=True),
             "with_rtm: the account is the RTM user id, and user_id may hold only printable "
             "ASCII without space (byte 3)"),
        ]
        for request, message in cases:
            with self.subTest(message=message):
                r = self.media.get_rtc_token(**request)
                self.assertCode(r, Code.INVALID_ARGUMENT)
                self.assertEqual(r.details, message)

    def test_callers_without_the_methods_are_denied(self):
        r = self.backend.get_rtc_token("room", PUBLISHER, uid=1)
        self.assertCode(r, Code.PERMISSION_DENIED)
        self.assertEqual(r.details, "caller 'backend' may not call GetRtcToken")
        r = self.backend.get_rtm_token("alice")
        self.assertCode(r, Code.PERMISSION_DENIED)
        self.assertEqual(r.details, "caller 'backend' may not call GetRtmToken")
        r = self.media.get_rtc_token("room", PUBLISHER, uid=1, key="not-a-key")
        self.assertCode(r, Code.UNAUTHENTICATED)

    # ---- GetRtmToken ----

    def test_rtm_token(self):
        r = self.media.get_rtm_token("carol", ttl=1200)
        self.assertCode(r, Code.OK)
        [view] = h.verify_rtc_tokens([{"token": r.response.token, "kind": "rtm",
                                       "user_id": "carol", "ttl": 1200}])
        self.assertEqual(r.response.expire_time.seconds, view["issue_ts"] + 1200)

    def test_invalid_rtm_user_ids(self):
        for user_id, message in [("", "user_id must be 1..64 bytes"),
                                 ("u" * 65, "user_id must be 1..64 bytes"),
                                 ("null", "user_id must not be \"null\""),
                                 ("a b", "user_id may hold only printable ASCII without space "
                                         "(byte 1)")]:
            with self.subTest(user_id=user_id):
                r = self.media.get_rtm_token(user_id)
                self.assertCode(r, Code.INVALID_ARGUMENT)
                self.assertEqual(r.details, message)

    # ---- RenewToken ----

    def test_renew_keeps_identity_role_rtm_and_the_privilege_ratio(self):
        old = self.rtc_ok({"channel": "room", "account": "dave", "role": "publisher",
                           "ttl": 1000, "privilege_ttl": 250, "with_rtm": True},
                          channel_name="room", account="dave", role=PUBLISHER, ttl=1000,
                          privilege_ttl=250, with_rtm=True)
        r = self.media.renew_token(old, ttl=2000)
        self.assertCode(r, Code.OK)
        self.assertEqual(r.response.kind, 3)  # TOKEN_KIND_RTC
        self.assertEqual(r.response.user_id, "dave")
        h.verify_rtc_tokens([{"token": r.response.token, "kind": "rtc", "channel": "room",
                              "account": "dave", "role": "publisher", "ttl": 2000,
                              "privilege_ttl": 500, "with_rtm": True}])

    def test_renew_of_a_subscriber_uid_token(self):
        old = self.rtc_ok({"channel": "room", "account": "9", "role": "subscriber", "ttl": 600,
                           "privilege_ttl": 600},
                          channel_name="room", uid=9, role=SUBSCRIBER, ttl=600)
        r = self.backend.renew_token(old)  # RenewToken alone is enough
        self.assertCode(r, Code.OK)
        self.assertEqual(r.response.user_id, "9")
        h.verify_rtc_tokens([{"token": r.response.token, "kind": "rtc", "channel": "room",
                              "account": "9", "role": "subscriber", "ttl": 3600,
                              "privilege_ttl": 3600}])

    def test_renew_of_an_rtm_token(self):
        old = self.media.get_rtm_token("erin", ttl=300).response.token
        r = self.media.renew_token(old, ttl=900)
        self.assertCode(r, Code.OK)
        self.assertEqual(r.response.kind, 4)  # TOKEN_KIND_RTM
        self.assertEqual(r.response.user_id, "erin")
        h.verify_rtc_tokens([{"token": r.response.token, "kind": "rtm", "user_id": "erin",
                              "ttl": 900}])

    def test_renew_refuses_an_rtc_token_of_another_shape(self):
        # agora-token's buildTokenWithUidAndPrivilege: join and audio only
        token = h.foreign_token("rtc_join_and_audio")
        self.server.add_secret(token)
        r = self.media.renew_token(token)
        self.assertCode(r, Code.INVALID_ARGUMENT)
        self.assertEqual(r.details, "token holds RTC privileges of neither a publisher nor a "
                                    "subscriber: not a token this service issues, so it is not "
                                    "renewed")

    # ---- metrics ----

    def test_tokens_are_counted_by_kind(self):
        def issued(kind):
            text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
            m = re.search(r'^chat_tokend_tokens_issued_total\{kind="%s"\} (\d+)$' % kind, text,
                          re.M)
            return int(m.group(1))

        def rpcs(method):
            text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
            m = re.search(r'^chat_tokend_rpcs_total\{transport="grpc",method="%s",code="OK"\} '
                          r'(\d+)$' % method, text, re.M)
            return int(m.group(1))

        rtc, rtm = issued("rtc"), issued("rtm")
        rtc_calls = rpcs("GetRtcToken")
        self.assertCode(self.media.get_rtc_token("room", PUBLISHER, uid=3), Code.OK)
        self.assertCode(self.media.get_rtm_token("frank"), Code.OK)
        self.assertCode(self.media.get_rtm_token("frank"), Code.OK)
        self.assertEqual(issued("rtc"), rtc + 1)
        self.assertEqual(issued("rtm"), rtm + 2)
        self.assertEqual(rpcs("GetRtcToken"), rtc_calls + 1)


if __name__ == "__main__":
    h.main()
