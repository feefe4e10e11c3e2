"""grpc.health.v1 (Check, Watch) on the main and the health-only listener,
and server reflection v1 / v1alpha on the main listener."""
import unittest

import grpc
from google.protobuf import descriptor_pb2

import harness as h

Code = grpc.StatusCode
NOT_FOUND = 5


class HealthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = h.Server(h.base_config(health_listen="127.0.0.1:0")).start()
        cls.main = h.Client(cls.server)
        cls.health = h.Client(cls.server, target=cls.server.health_address)

    @classmethod
    def tearDownClass(cls):
        cls.main.close()
        cls.health.close()
        cls.server.stop()

    def test_check_is_serving_for_empty_and_token_service_on_both_listeners(self):
        for client in (self.main, self.health):
            for service in ("", h.SERVICE):
                with self.subTest(target=client.target, service=service):
                    r = client.health_check(service)
                    self.assertEqual(r.code, Code.OK, r.details)
                    self.assertEqual(h.health_status_name(r.response), "SERVING")

    def test_check_of_unknown_service_is_not_found(self):
        for client in (self.main, self.health):
            with self.subTest(target=client.target):
                self.assertEqual(client.health_check("no.such.Service").code, Code.NOT_FOUND)

    def test_watch_sends_serving_first(self):
        for client in (self.main, self.health):
            for service in ("", h.SERVICE):
                with self.subTest(target=client.target, service=service):
                    stream = client.health_watch(service)
                    first = next(stream)
                    self.assertEqual(h.health_status_name(first), "SERVING")
                    stream.cancel()

    def test_watch_of_unknown_service_sends_service_unknown(self):
        stream = self.main.health_watch("no.such.Service")
        self.assertEqual(h.health_status_name(next(stream)), "SERVICE_UNKNOWN")
        stream.cancel()

    def test_health_listener_does_not_serve_token_service(self):
        r = self.health.get_app_token(key=h.ADMIN_KEY)
        self.assertEqual(r.code, Code.UNIMPLEMENTED, r.details)
        r = self.health.get_user_token("alice", key=h.ADMIN_KEY)
        self.assertEqual(r.code, Code.UNIMPLEMENTED, r.details)

    def test_health_listener_does_not_serve_reflection(self):
        _, result = self.health.reflect([{"list_services": ""}])
        self.assertEqual(result.code, Code.UNIMPLEMENTED, result.details)


class ReflectionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = h.Server(h.base_config()).start()
        cls.client = h.Client(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def reflect(self, requests, version):
        responses, result = self.client.reflect(requests, version=version)
        self.assertEqual(result.code, Code.OK, result.details)
        self.assertEqual(len(responses), len(requests))
        return responses

    def files(self, response):
        return [descriptor_pb2.FileDescriptorProto.FromString(b)
                for b in response.file_descriptor_response.file_descriptor_proto]

    def test_list_services_v1_and_v1alpha(self):
        for version in ("v1", "v1alpha"):
            with self.subTest(version=version):
                [r] = self.reflect([{"list_services": ""}], version)
                names = {s.name for s in r.list_services_response.service}
                self.assertIn(h.SERVICE, names)
                self.assertIn("grpc.health.v1.Health", names)
                self.assertIn("grpc.reflection.v1.ServerReflection", names)
                self.assertIn("grpc.reflection.v1alpha.ServerReflection", names)

    def test_file_containing_symbol_describes_token_service_with_comments(self):
        for version in ("v1", "v1alpha"):
            with self.subTest(version=version):
                [r] = self.reflect([{"file_containing_symbol": h.SERVICE}], version)
                files = {f.name: f for f in self.files(r)}
                fd = files["chattoken/v1/token_service.proto"]
                [service] = [s for s in fd.service if s.name == "TokenService"]
                self.assertEqual([m.name for m in service.method],
                                 ["GetAppToken", "GetUserToken", "RenewToken", "GetRtcToken",
                                  "GetRtmToken"])
                comments = " ".join(loc.leading_comments for loc in fd.source_code_info.location)
                self.assertIn("Issues a Chat app token", comments)

    def test_file_containing_symbol_finds_messages_and_methods(self):
        for symbol in ("chattoken.v1.GetUserTokenRequest", "chattoken.v1.TokenKind",
                       "chattoken.v1.TokenService.RenewToken", "chattoken.v1.RtcRole",
                       "chattoken.v1.GetRtcTokenRequest", "chattoken.v1.GetRtmTokenResponse",
                       "chattoken.v1.TokenService.GetRtcToken", "chattoken.v1.TOKEN_KIND_RTM"):
            with self.subTest(symbol=symbol):
                [r] = self.reflect([{"file_containing_symbol": symbol}], "v1")
                names = [f.name for f in self.files(r)]
                self.assertIn("chattoken/v1/token_service.proto", names)

    def test_file_by_filename_serves_the_proto_and_its_imports(self):
        [r1, r2] = self.reflect([{"file_by_filename": "chattoken/v1/token_service.proto"},
                                 {"file_by_filename": "google/protobuf/timestamp.proto"}], "v1")
        self.assertIn("chattoken/v1/token_service.proto", [f.name for f in self.files(r1)])
        self.assertIn("google/protobuf/timestamp.proto", [f.name for f in self.files(r2)])

    def test_unknown_symbol_and_file_are_not_found_error_responses(self):
        responses = self.reflect([{"file_containing_symbol": "no.such.Symbol"},
                                  {"file_by_filename": "no/such.proto"},
                                  {"all_extension_numbers_of_type": "chattoken.v1.TokenKind"}],
                                 "v1")
        for r in responses:
            with self.subTest(request=str(r.original_request)):
                self.assertEqual(r.WhichOneof("message_response"), "error_response")
                self.assertEqual(r.error_response.error_code, NOT_FOUND)

    def test_names_are_echoed_back_up_to_a_bound(self):
        # every response carries the request (original_request), to callers
        # that need no credentials: a name may not be a payload
        [r] = self.reflect([{"file_containing_symbol": "x" * 1024}], "v1")
        self.assertEqual(r.error_response.error_code, NOT_FOUND)
        self.assertEqual(len(r.original_request.file_containing_symbol), 1024)
        for request in ({"file_containing_symbol": "x" * 1025}, {"host": "h" * 5000,
                                                                 "list_services": ""}):
            with self.subTest(request=list(request)):
                _, result = self.client.reflect([request])
                self.assertEqual(result.code, Code.INVALID_ARGUMENT, result.details)
                self.assertIn("over the 1024 limit", result.details)


class ReflectionModesTest(unittest.TestCase):
    """reflection: public (above), authenticated or off."""

    def serve(self, mode):
        cfg = h.base_config(reflection=mode)
        server = h.Server(cfg).start()
        self.addCleanup(server.cleanup)
        client = h.Client(server)
        self.addCleanup(client.close)
        return server, client

    def test_authenticated_answers_callers_with_credentials_only(self):
        server, client = self.serve("authenticated")
        _, result = client.reflect([{"list_services": ""}])
        self.assertEqual(result.code, Code.UNAUTHENTICATED, result.details)
        _, result = client.reflect([{"list_services": ""}], key="no-such-key-0000")
        server.add_secret("no-such-key-0000")
        self.assertEqual(result.code, Code.UNAUTHENTICATED, result.details)
        # any known key, whatever methods it may call
        responses, result = client.reflect([{"list_services": ""}], key=h.BACKEND_KEY)
        self.assertEqual(result.code, Code.OK, result.details)
        self.assertIn(h.SERVICE, {s.name for s in responses[0].list_services_response.service})
        self.assertEqual(server.stop(), 0)

    def test_off_answers_nobody(self):
        server, client = self.serve("off")
        for key in (None, h.ADMIN_KEY):
            _, result = client.reflect([{"list_services": ""}], key=key)
            self.assertEqual(result.code, Code.UNIMPLEMENTED, result.details)
            self.assertIn("reflection: off", result.details)
        # the token service is unaffected
        self.assertEqual(client.get_app_token(key=h.ADMIN_KEY).code, Code.OK)
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    h.main()
