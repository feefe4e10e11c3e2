"""GET /metrics: the output passes a checker of the Prometheus text
exposition format 0.0.4 (written here: line grammar, names, label syntax,
HELP/TYPE before samples, counters end in _total, histogram buckets with
ascending le, cumulative counts, +Inf == _count), and the counters move as
calls come in over HTTP (curl) and over gRPC (python3-grpcio)."""
import math
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\["\\n])*"'
LABEL = LABEL_NAME + "=" + LABEL_VALUE
SAMPLE = re.compile(r"^(" + NAME + r")(\{(?:" + LABEL + r"(?:," + LABEL + r")*,?)?\})? "
                    r"(\S+)(?: (-?\d+))?$")
HELP = re.compile(r"^# HELP (" + NAME + r") (.*)$")
TYPE = re.compile(r"^# TYPE (" + NAME + r") (counter|gauge|histogram|summary|untyped)$")
LABEL_PAIR = re.compile("(" + LABEL_NAME + ")=(" + LABEL_VALUE + ")")


def parse_value(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    return float(text)  # raises on anything else


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return name


def check_exposition(text):
    """Validates text; returns {(name, frozenset(labels)): value}. Raises
    AssertionError naming the line."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, helps, samples = {}, {}, {}
    seen_samples = set()  # families that already had samples
    histograms = {}  # (family, labels without le) -> [(le, count)], sum, count
    for number, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (number, line)
        assert line != "", where + ": empty line"
        if line.startswith("#"):
            m = HELP.match(line)
            if m:
                assert m.group(1) not in helps, where + ": second HELP"
                assert m.group(1) not in seen_samples, where + ": HELP after samples"
                helps[m.group(1)] = m.group(2)
                continue
            m = TYPE.match(line)
            assert m, where + ": a comment that is neither # HELP nor # TYPE"
            assert m.group(1) not in types, where + ": second TYPE"
            assert m.group(1) not in seen_samples, where + ": TYPE after samples"
            types[m.group(1)] = m.group(2)
            if m.group(2) == "counter":
                assert m.group(1).endswith("_total"), where + ": a counter not named _total"
            continue
        m = SAMPLE.match(line)
        assert m, where + ": not 'name{labels} value'"
        name, labels_text, value_text = m.group(1), m.group(2) or "", m.group(3)
        value = parse_value(value_text)
        labels = dict((k, v[1:-1]) for k, v in LABEL_PAIR.findall(labels_text))
        assert len(labels) == len(LABEL_PAIR.findall(labels_text)), where + ": label twice"
        family = family_of(name, types)
        assert family in types, where + ": sample without # TYPE"
        seen_samples.add(family)
        key = (name, frozenset(labels.items()))
        assert key not in samples, where + ": the same series twice"
        samples[key] = value
        kind = types[family]
        if kind == "counter":
            assert value >= 0 and not math.isnan(value), where + ": negative counter"
        if kind == "histogram":
            assert name != family, where + ": a histogram sample without a suffix"
            rest = frozenset((k, v) for k, v in labels.items() if k != "le")
            entry = histograms.setdefault((family, rest), {"buckets": [], "sum": None,
                                                           "count": None})
            if name.endswith("_bucket"):
                assert "le" in labels, where + ": a bucket without le"
                entry["buckets"].append((parse_value(labels["le"]), value))
            elif name.endswith("_sum"):
                entry["sum"] = value
            else:
                entry["count"] = value
    for (family, rest), entry in histograms.items():
        where = "histogram %s%s" % (family, dict(rest))
        buckets = entry["buckets"]
        assert buckets, where + ": no buckets"
        les = [le for le, _ in buckets]
        assert les == sorted(les) and len(set(les)) == len(les), where + ": le not ascending"
        assert les[-1] == math.inf, where + ": no +Inf bucket"
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), where + ": buckets not cumulative"
        assert entry["count"] is not None and entry["sum"] is not None, where + ": no _sum/_count"
        assert entry["count"] == counts[-1], where + ": _count != +Inf bucket"
        assert entry["sum"] >= 0, where + ": negative _sum"
    for family in types:
        assert family in helps, "family %s has no # HELP" % family
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def grpc_get_user_token(port, username):
    """One GetUserToken over gRPC with raw protobuf bytes (field 1, username)."""
    import grpc  # Debian's python3-grpcio: run with /usr/bin/python3

    data = username.encode()
    request = b"\x0a" + bytes([len(data)]) + data
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        call = channel.unary_unary("/chattoken.v1.TokenService/GetUserToken",
                                   request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        reply = call(request, timeout=10,
                     metadata=[("authorization", "Bearer " + h.WEB_KEY)])
    assert reply[:1] == b"\x0a", "GetUserTokenResponse without a token"


class ExpositionChecker(unittest.TestCase):
    """The checker itself refuses what it must."""

    def test_refuses_bad_expositions(self):
        bad = [
            "foo 1\n",  # no TYPE
            "# TYPE foo counter\n# HELP foo x\nfoo 1\n",  # counter without _total
            "# HELP a_total x\n# TYPE a_total counter\na_total{x=\"1} 1\n",
            "# HELP a x\n# TYPE a gauge\n1a 1\n",
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
            "h_sum 1\nh_count 1\n",  # not cumulative
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
            "h_sum 1\nh_count 3\n",  # count != +Inf
            "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
            "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",  # le not ascending
            "# HELP a x\n# TYPE a gauge\na 1",  # no final newline
            "# a comment\n",
        ]
        for text in bad:
            with self.subTest(text=text):
                with self.assertRaises((AssertionError, ValueError)):
                    check_exposition(text)


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.launched = time.time()
        cls.server = h.Server(h.base_config())
        cls.web = ["Authorization: Bearer " + h.WEB_KEY]

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def metrics(self):
        resp = h.curl(self.server.base + "/metrics")
        self.assertEqual(resp.status, 200, resp)
        return check_exposition(resp.body)

    def test_build_info(self):
        self.assertEqual(value(self.metrics(), "chat_tokend_build_info", version="0.1.0"), 1.0)

    def test_http_calls_move_the_counters(self):
        before = self.metrics()
        base = self.server.base
        for name in ("m1", "m2"):
            self.assertEqual(h.curl(base + "/chat/user/%s/token" % name,
                                    headers=self.web).status, 200)
        self.assertEqual(h.curl(base + "/chat/app/token", headers=self.web).status, 403)
        token = h.curl(base + "/chat/user/m3/token", headers=self.web).body
        renew = h.curl(base + "/chat/token/renew", method="POST",
                       headers=self.web + ["Content-Type: application/json"],
                       data='{"token": "%s"}' % token)
        self.assertEqual(renew.status, 200, renew)
        after = self.metrics()

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        rpcs = "chat_tokend_rpcs_total"
        self.assertEqual(delta(rpcs, transport="http", method="GetUserToken", code="OK"), 3)
        self.assertEqual(delta(rpcs, transport="http", method="GetAppToken",
                               code="PERMISSION_DENIED"), 1)
        self.assertEqual(delta(rpcs, transport="http", method="RenewToken", code="OK"), 1)
        hist = "chat_tokend_rpc_duration_seconds_count"
        self.assertEqual(delta(hist, transport="http", method="GetUserToken"), 3)
        self.assertEqual(delta("chat_tokend_rpc_duration_seconds_bucket", transport="http",
                               method="RenewToken", le="+Inf"), 1)
        # 3 user tokens and 1 renewal; the refused app token is not counted
        self.assertEqual(delta("chat_tokend_tokens_issued_total", kind="user"), 4)
        self.assertEqual(delta("chat_tokend_tokens_issued_total", kind="app"), 0)

    def test_process_collector_matches_the_process(self):
        """The standard process_* families, checked against what /proc
        says about the server process itself."""
        pid = self.server.tokend.proc.pid
        m = self.metrics()
        with open("/proc/%d/limits" % pid) as f:
            soft = next(line.split()[3] for line in f if line.startswith("Max open files"))
        self.assertEqual(value(m, "process_max_fds"), float(soft))
        fds = len(os.listdir("/proc/%d/fd" % pid))
        self.assertLess(abs(value(m, "process_open_fds") - fds), 8, (value(m, "process_open_fds"), fds))
        with open("/proc/%d/status" % pid) as f:
            status = dict(line.split(":", 1) for line in f)
        rss = int(status["VmRSS"].split()[0]) * 1024
        vsz = int(status["VmSize"].split()[0]) * 1024
        self.assertLess(abs(value(m, "process_resident_memory_bytes") - rss), rss / 2)
        self.assertLess(abs(value(m, "process_virtual_memory_bytes") - vsz), vsz / 2)
        started = value(m, "process_start_time_seconds")
        # the process started between launching it and now (the kernel's
        # boot time in /proc/stat is whole seconds)
        self.assertGreater(started, self.launched - 1.5)
        self.assertLess(started, time.time())
        self.assertGreater(value(m, "process_cpu_seconds_total"), 0)
        cpu = value(m, "process_cpu_seconds_total")
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:  # some work for the server
            h.curl(self.server.base + "/healthz")
        self.assertGreaterEqual(value(self.metrics(), "process_cpu_seconds_total"), cpu)

    def test_grpc_connections_gauge_counts_open_connections(self):
        import grpc

        name = "chat_tokend_grpc_connections"
        before = value(self.metrics(), name)
        channels = [grpc.insecure_channel("127.0.0.1:%d" % self.server.grpc_port,
                                          options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(3)]
        try:
            for c in channels:
                grpc.channel_ready_future(c).result(timeout=10)
            self.assertEqual(value(self.metrics(), name), before + 3)
        finally:
            for c in channels:
                c.close()
        deadline = time.monotonic() + 10
        while value(self.metrics(), name) != before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(value(self.metrics(), name), before)

    def test_grpc_calls_move_the_counters(self):
        before = self.metrics()
        grpc_get_user_token(self.server.grpc_port, "g1")
        after = self.metrics()

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        self.assertEqual(delta("chat_tokend_rpcs_total", transport="grpc", method="GetUserToken",
                               code="OK"), 1)
        self.assertEqual(delta("chat_tokend_rpc_duration_seconds_count", transport="grpc",
                               method="GetUserToken"), 1)
        self.assertEqual(delta("chat_tokend_tokens_issued_total", kind="user"), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
