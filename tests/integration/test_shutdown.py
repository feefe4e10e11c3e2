"""SIGTERM: health goes NOT_SERVING for shutdown.drain_seconds while calls
are still served, in-flight calls finish, calls under load all get an
answer, and the process exits 0 within the grace period."""
import datetime
import http.server
import json
import threading
import time
import unittest

import grpc

import harness as h

Code = grpc.StatusCode
USER_UUID = "4d0e5a9c-1b2f-11ef-9c3a-0242ac120002"


def shutdown_config(drain, grace, **overrides):
    return h.base_config(shutdown={"drain_seconds": drain, "grace_seconds": grace}, **overrides)


class DrainTest(unittest.TestCase):
    def test_health_is_not_serving_during_drain_while_calls_still_succeed(self):
        server = h.Server(shutdown_config(2, 5, health_listen="127.0.0.1:0")).start()
        main = h.Client(server, key=h.BACKEND_KEY)
        health = h.Client(server, target=server.health_address)
        try:
            watch = health.health_watch(h.SERVICE, timeout=20)
            self.assertEqual(h.health_status_name(next(watch)), "SERVING")
            self.assertEqual(h.health_status_name(main.health_check().response), "SERVING")

            server.terminate()
            for client in (main, health):
                for service in ("", h.SERVICE):
                    status = h.poll(lambda: h.health_status_name(
                        client.health_check(service).response) == "NOT_SERVING", 1.5)
                    self.assertTrue(status, "%s %r still SERVING after SIGTERM"
                                    % (client.target, service))
            self.assertEqual(h.health_status_name(next(watch)), "NOT_SERVING")
            # still draining: the server answers token calls
            self.assertIsNone(server.wait_event("stopping", 0))
            r = main.get_user_token("alice")
            self.assertEqual(r.code, Code.OK, r.details)
            self.assertIsNone(server.wait_event("stopping", 0), "drain ended before the call")
        finally:
            main.close()
            health.close()
        self.assertEqual(server.stop(timeout=10), 0)
        events = [e["event"] for e in server.events]
        self.assertLess(events.index("draining"), events.index("stopping"))
        self.assertLess(events.index("stopping"), events.index("stopped"))

    def test_second_signal_cuts_the_drain_short(self):
        server = h.Server(shutdown_config(30, 5)).start()
        start = time.monotonic()
        server.terminate()
        self.assertIsNotNone(server.wait_event("draining", 5))
        server.terminate()
        self.assertEqual(server.stop(timeout=10), 0)
        self.assertLess(time.monotonic() - start, 10)


class SlowDirectory:
    """A fake Chat REST API whose user lookups answer after a delay."""

    def __init__(self, delay):
        self.requested = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requested.set()
                time.sleep(delay)
                body = json.dumps({"entities": [{"uuid": USER_UUID, "username": "slow"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class InFlightTest(unittest.TestCase):
    def test_call_in_flight_at_sigterm_finishes_ok(self):
        directory = SlowDirectory(delay=1.5)
        cfg = shutdown_config(0, 5, user_tokens={"identity": "uuid"},
                              directory={"base_url": directory.url, "retries": 0})
        server = h.Server(cfg).start()
        client = h.Client(server, key=h.BACKEND_KEY)
        results = []
        try:
            caller = threading.Thread(
                target=lambda: results.append(client.get_user_token("slow", timeout=10)))
            caller.start()
            self.assertTrue(directory.requested.wait(5), "the lookup never reached the directory")
            server.terminate()
            self.assertIsNotNone(server.wait_event("stopping", 5))
            caller.join(10)
            [r] = results
            self.assertEqual(r.code, Code.OK, r.details)
            self.assertEqual(r.response.user_id, USER_UUID)
            h.verify_tokens([{"token": r.response.token, "kind": "user", "user_id": USER_UUID}])
            # shutdown has begun: a new call is refused, not served
            late = client.get_user_token("late", timeout=3)
            self.assertEqual(late.code, Code.UNAVAILABLE, late.details)
        finally:
            client.close()
            try:
                self.assertEqual(server.stop(timeout=10), 0)
            finally:
                directory.close()
        self.assertIsNone(server.wait_event("shutdown_grace_over", 0))


def log_time(event):
    """A log line's "time" as seconds since the epoch."""
    stamp = datetime.datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


class LoadTest(unittest.TestCase):
    THREADS = 4
    DRAIN = 1
    GRACE = 5
    # a call sent this shortly before shutdown began may reach the server
    # after it: such a call was never accepted
    IN_TRANSIT = 0.2

    def test_sigterm_under_load_answers_every_accepted_call_and_exits_0(self):
        server = h.Server(shutdown_config(self.DRAIN, self.GRACE)).start()
        stop = threading.Event()
        records = []  # (monotonic start, wall-clock start, code, details) per call
        lock = threading.Lock()

        def load(n):
            with h.Client(server, key=h.BACKEND_KEY) as client:
                i = 0
                while not stop.is_set():
                    started, wall = time.monotonic(), time.time()
                    r = client.get_user_token("load-%d-%d" % (n, i), timeout=5)
                    with lock:
                        records.append((started, wall, r.code, r.details))
                    i += 1
                    if not r.ok:
                        time.sleep(0.01)

        threads = [threading.Thread(target=load, args=(n,)) for n in range(self.THREADS)]
        for t in threads:
            t.start()
        try:
            self.assertTrue(h.poll(lambda: sum(1 for r in records if r[2] == Code.OK) >= 100, 10),
                            "no load reached the server")
            sigterm_at = time.monotonic()
            server.terminate()
            exit_code = server.wait_exit(self.DRAIN + self.GRACE + 5)
            exited_after = time.monotonic() - sigterm_at
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            server.cleanup()

        self.assertEqual(exit_code, 0, server.stderr_text()[-3000:])
        self.assertLessEqual(exited_after, self.DRAIN + self.GRACE + 2)
        self.assertEqual(server.leaked_secrets(), [])
        self.assertIsNone(server.wait_event("shutdown_grace_over", 0))
        stopping = server.wait_event("stopping", 0)
        self.assertIsNotNone(stopping)
        shutdown_began = log_time(stopping) - self.IN_TRANSIT

        # calls sent during the drain all reached the server and were served
        drained = [r for r in records if sigterm_at <= r[0] and r[1] < shutdown_began]
        self.assertGreater(len(drained), 0, "no call during the drain")
        # every call sent before shutdown began got OK: none reset or refused
        early = [(round(r[1] - shutdown_began, 3), r[2].name, r[3]) for r in records
                 if r[1] < shutdown_began and r[2] != Code.OK]
        self.assertEqual(early, [], "calls sent before shutdown began that failed, as "
                         "(seconds before shutdown, code, details)")
        # later calls are served or refused, nothing else
        late = [(round(r[1] - shutdown_began, 3), r[2].name, r[3]) for r in records
                if r[2] not in (Code.OK, Code.UNAVAILABLE, Code.CANCELLED)]
        self.assertEqual(late, [])
        # every call the server accepted was answered OK, and the client got it
        served = server.rpc_events("GetUserToken")
        self.assertEqual({e["status"] for e in served}, {"OK"})
        self.assertEqual(len(served), sum(1 for r in records if r[2] == Code.OK))

if __name__ == "__main__":
    h.main()
