"""uuid identity mode end to end: the real chat-tokend against the fake Agora
Chat REST server (tests/fakes/fake_chat_server.c) over real HTTP. Users are
looked up and registered once, cached, shared by concurrent callers, and
every upstream fault maps to its status without slowing down what does not
need the upstream."""
import concurrent.futures
import json
import os
import shutil
import subprocess
import threading
import time
import unittest

import grpc

import harness as h

Code = grpc.StatusCode


def uuid_config(fake, **directory):
    d = {"base_url": fake.url, "request_timeout_ms": 3000, "connect_timeout_ms": 1000,
         "retries": 2, "rate_limit_per_second": 100}
    d.update(directory)
    return h.base_config(user_tokens={"identity": "uuid"}, directory=d)


class DirectoryCase(unittest.TestCase):
    directory = {}

    def setUp(self):
        self.fake = h.fake_chat()
        self.addCleanup(self.fake.close)
        self.server = h.Server(uuid_config(self.fake, **self.directory)).start()
        self.addCleanup(self.server.cleanup)
        self.client = h.Client(self.server, key=h.BACKEND_KEY)
        self.addCleanup(self.client.close)

    def stop(self):
        self.client.close()
        self.assertEqual(self.server.stop(), 0)

    def user_token(self, name, timeout=h.CALL_TIMEOUT):
        return self.client.get_user_token(name, timeout=timeout)


class RegistrationTest(DirectoryCase):
    def test_new_user_is_looked_up_registered_once_and_carries_its_uuid(self):
        r = self.user_token("NewUser")
        self.assertEqual(r.code, Code.OK, r.details)
        uuid = self.fake.user("newuser")["uuid"]
        self.assertEqual(r.response.user_id, uuid)
        self.assertTrue(r.response.registered)
        stats = self.fake.stats()
        self.assertEqual((stats["gets"], stats["posts"]), (1, 1))
        # the registration password is random and long, never the seed's "123"
        self.assertGreaterEqual(self.fake.user("newuser")["password_length"], 16)
        h.verify_tokens([{"token": r.response.token, "kind": "user", "user_id": uuid}])

        again = self.user_token("newuser")
        self.assertEqual(again.code, Code.OK, again.details)
        self.assertEqual(again.response.user_id, uuid)
        self.assertFalse(again.response.registered)
        self.assertEqual(self.fake.stats()["gets"], 1, "the second call went upstream")
        self.stop()

    def test_existing_user_is_not_registered_again(self):
        self.fake.admin("/_admin/users", {"username": "old", "uuid": "uuid-of-old"})
        r = self.user_token("old")
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertEqual(r.response.user_id, "uuid-of-old")
        self.assertFalse(r.response.registered)
        self.assertEqual(self.fake.stats()["posts"], 0)
        self.stop()

    def test_hundred_concurrent_first_calls_share_one_lookup_and_one_registration(self):
        with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
            results = list(pool.map(lambda _: self.user_token("crowd"), range(100)))
        self.assertEqual([r.code for r in results], [Code.OK] * 100,
                         [r.details for r in results if r.code != Code.OK][:3])
        self.assertEqual(len({r.response.user_id for r in results}), 1)
        self.assertEqual(sum(r.response.registered for r in results), 1)
        stats = self.fake.stats()
        self.assertEqual((stats["gets"], stats["posts"]), (1, 1))
        self.stop()

    def test_duplicate_registration_race_resolves_to_the_existing_uuid(self):
        self.fake.fault(duplicate_on_register=True, method="POST")
        r = self.user_token("racer")
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertEqual(r.response.user_id, self.fake.user("racer")["uuid"])
        self.assertFalse(r.response.registered)
        self.stop()


class FaultTest(DirectoryCase):
    def test_illegal_argument_upstream_is_invalid_argument(self):
        self.fake.fault(status=400, error="illegal_argument", method="POST")
        r = self.user_token("refused")
        self.assertEqual(r.code, Code.INVALID_ARGUMENT, r.details)
        self.stop()

    def test_persistent_5xx_is_unavailable_naming_the_upstream(self):
        self.fake.fault(status=503, count=10)
        r = self.user_token("unlucky")
        self.assertEqual(r.code, Code.UNAVAILABLE)
        self.assertIn("503", r.details)
        self.assertEqual(self.fake.stats()["gets"], 3, "expected 1 attempt + 2 retries")
        self.stop()

    def test_transient_5xx_and_reset_are_retried(self):
        self.fake.fault(status=502)
        self.fake.fault(reset=True)
        r = self.user_token("lucky")
        self.assertEqual(r.code, Code.OK, r.details)
        self.stop()

    def test_malformed_answer_is_unavailable(self):
        self.fake.fault(body="malformed", count=10)
        r = self.user_token("garbled")
        self.assertEqual(r.code, Code.UNAVAILABLE)
        self.assertIn("JSON", r.details)
        self.stop()

    def test_rejected_app_token_is_rebuilt_once(self):
        self.fake.fault(status=401)
        r = self.user_token("authz")
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertGreaterEqual(self.fake.stats()["tokens_seen"], 2)
        self.stop()

    def test_retries_stop_at_the_callers_deadline(self):
        self.fake.fault(delay_ms=2000, count=5)
        started = time.monotonic()
        r = self.user_token("slowpoke", timeout=0.5)
        elapsed = time.monotonic() - started
        self.assertEqual(r.code, Code.DEADLINE_EXCEEDED)
        self.assertLess(elapsed, 1.5)
        time.sleep(2.2)  # let the slow answer arrive: no retry may follow it
        self.assertEqual(len(self.fake.requests()), 1)
        self.stop()


class OtherUsersUuidTest(DirectoryCase):
    """A caller may only ever get a token for the username it named: "."
    and ".." must not reach the users list or the app entity (whose first
    entity the directory used to take), and an answer for somebody else is
    never a token."""

    def setUp(self):
        super().setUp()
        self.victim = self.fake.admin("/_admin/users", {"username": "victim"})["uuid"]

    def fake_get(self, path):
        """GET on the fake with a valid app token, through curl as the old
        directory sent it (dot segments folded): what such a request reads."""
        admin = h.Client(self.server, key=h.ADMIN_KEY)
        self.addCleanup(admin.close)
        token = admin.get_app_token().response.token
        out = subprocess.run([shutil.which("curl"), "-sS", "--max-time", "10", "-H",
                              "Authorization: Bearer " + token, self.fake.url + path],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        return json.loads(out)

    def test_the_folded_paths_answer_the_users_list_and_the_app(self):
        # what "users/." and "users/.." became before the fix: entities[0]
        # is another user, or the app itself
        listed = self.fake_get("/org/app/users/.")
        self.assertEqual(listed["entities"][0]["uuid"], self.victim)
        app = self.fake_get("/org/app/users/..")
        self.assertEqual(app["entities"][0]["type"], "application")
        self.assertEqual(app["entities"][0]["uuid"], self.fake.stats()["app_uuid"])

    def test_dot_only_usernames_are_invalid_and_never_go_upstream(self):
        for name in (".", "..", "..."):
            r = self.user_token(name)
            self.assertEqual(r.code, Code.INVALID_ARGUMENT, (name, r.details))
            self.assertIn("only of dots", r.details)
        self.assertEqual(self.fake.stats()["requests"], 0, self.fake.requests())
        # dots inside a name are still fine, and sent as they are
        r = self.user_token("a..b")
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertEqual(r.response.user_id, self.fake.user("a..b")["uuid"])
        self.assertIn("/org/app/users/a..b", [q["path"] for q in self.fake.requests()])
        self.stop()

    def test_an_answer_for_another_user_is_unavailable_and_not_cached(self):
        self.fake.fault(body="other_user")
        r = self.user_token("victim")
        self.assertEqual(r.code, Code.UNAVAILABLE, r.details)
        self.assertIn("username is not victim", r.details)
        self.assertEqual(r.response, None)
        # not cached: the next call asks again and gets the right UUID
        r = self.user_token("victim")
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertEqual(r.response.user_id, self.victim)
        self.assertEqual(self.fake.stats()["gets"], 2)
        self.stop()

    def test_a_registration_answered_for_another_user_is_unavailable(self):
        self.fake.fault(body="other_user", method="POST")
        r = self.user_token("newcomer")
        self.assertEqual(r.code, Code.UNAVAILABLE, r.details)
        self.assertIn("username is not newcomer", r.details)
        self.stop()

    def test_the_username_is_compared_without_case(self):
        self.fake.fault(body="upper_username")
        r = self.user_token("Victim")
        self.assertEqual(r.code, Code.OK, r.details)
        self.assertEqual(r.response.user_id, self.victim)
        self.stop()


class NotFoundTest(DirectoryCase):
    directory = {"auto_register": False, "cache": {"capacity": 100, "ttl_seconds": 60,
                                                   "negative_ttl_seconds": 30}}

    def test_unknown_user_without_auto_register_is_not_found_and_cached(self):
        r = self.user_token("ghost")
        self.assertEqual(r.code, Code.NOT_FOUND, r.details)
        r = self.user_token("ghost")
        self.assertEqual(r.code, Code.NOT_FOUND, r.details)
        stats = self.fake.stats()
        self.assertEqual((stats["gets"], stats["posts"]), (1, 0))
        self.stop()


class CacheTest(DirectoryCase):
    directory = {"cache": {"capacity": 2, "ttl_seconds": 1, "negative_ttl_seconds": 1}}

    def test_entries_expire_after_their_ttl(self):
        self.assertEqual(self.user_token("fleeting").code, Code.OK)
        self.assertEqual(self.user_token("fleeting").code, Code.OK)
        self.assertEqual(self.fake.stats()["gets"], 1)
        time.sleep(1.3)
        self.assertEqual(self.user_token("fleeting").code, Code.OK)
        self.assertEqual(self.fake.stats()["gets"], 2)
        self.stop()

    def test_capacity_bounds_the_cache(self):
        # LRU order is per shard (tests/unit/core/directory/test_cache.c);
        # end to end, the bound itself: of ten users at most two stay cached
        names = ["cap%d" % i for i in range(10)]
        for name in names:
            self.assertEqual(self.user_token(name).code, Code.OK)
        gets = self.fake.stats()["gets"]
        self.assertEqual(gets, 10)
        for name in names:
            self.assertEqual(self.user_token(name).code, Code.OK)
        self.assertGreaterEqual(self.fake.stats()["gets"] - gets, 8)
        self.stop()


class RateLimitTest(DirectoryCase):
    directory = {"rate_limit_per_second": 5, "auto_register": False}

    def test_upstream_requests_stay_within_the_rate_limit(self):
        names = ["rl%02d" % i for i in range(15)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=15) as pool:
            results = list(pool.map(lambda n: self.user_token(n, timeout=20), names))
        self.assertEqual({r.code for r in results}, {Code.NOT_FOUND})
        times = sorted(r["t_ms"] for r in self.fake.requests())
        self.assertEqual(len(times), 15)
        # 5/s with a burst of one: 15 requests need at least ~2.8 s, and no
        # one-second window holds more than rate + burst of them
        self.assertGreaterEqual(times[-1] - times[0], 2500)
        for i, t in enumerate(times):
            in_window = sum(1 for u in times[i:] if u < t + 1000)
            self.assertLessEqual(in_window, 6, "window at %d ms" % t)
        self.stop()


class SlowUpstreamIsolationTest(DirectoryCase):
    def test_slow_upstream_does_not_slow_app_or_cached_user_tokens(self):
        admin = h.Client(self.server, key=h.ADMIN_KEY)
        self.addCleanup(admin.close)
        self.assertEqual(self.user_token("cached").code, Code.OK)
        self.fake.fault(delay_ms=2000, count=1000)
        stop = threading.Event()

        def slow_lookups(i):
            n = 0
            while not stop.is_set():
                self.user_token("slow%d_%d" % (i, n), timeout=3)
                n += 1

        slow = [threading.Thread(target=slow_lookups, args=(i,)) for i in range(8)]
        for t in slow:
            t.start()
        time.sleep(0.3)  # the slow lookups are now waiting upstream
        latencies = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for call in (lambda: admin.get_app_token(), lambda: self.user_token("cached")):
                start = time.monotonic()
                r = call()
                latencies.append(time.monotonic() - start)
                self.assertEqual(r.code, Code.OK, r.details)
        stop.set()
        for t in slow:
            t.join()
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        self.assertGreater(len(latencies), 100)
        # What a user notices: no call waits for the 2 s upstream. The p99
        # bound is loose on purpose (the 10 ms figure of issue 4 is measured,
        # not asserted: a timed test flakes on a loaded 2-core machine and
        # under the sanitizers, which the suite runs in parallel with it).
        sanitized = "ASAN_OPTIONS" in os.environ or "TSAN_OPTIONS" in os.environ
        self.assertLess(latencies[-1], 0.5, "slowest call %.1f ms" % (latencies[-1] * 1e3))
        bound = 0.150 if sanitized else 0.050
        self.assertLess(p99, bound, "p99 %.1f ms with the upstream delaying 2 s" % (p99 * 1e3))
        print("directory_fake: isolation: %d calls, p99 %.1f ms, slowest %.1f ms"
              % (len(latencies), p99 * 1e3, latencies[-1] * 1e3))
        self.stop()


if __name__ == "__main__":
    unittest.main()
