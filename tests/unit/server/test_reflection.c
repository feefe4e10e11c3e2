/* Unit tests for server/reflection.c: what grpcurl and buf curl would see
 * from each kind of reflection request, decoded with the generated types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "reflection.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest request_t;
typedef Grpc__Reflection__V1__ServerReflectionResponse response_t;

#define REQ(kind) GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##kind
#define RESP(kind) GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##kind

static request_t new_request(void)
{
    request_t req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    return req;
}

/* Answers the request bytes; fails the test on -1. The caller frees the
 * answer. */
static uint8_t *answer(const uint8_t *bytes, size_t len, size_t *out_len)
{
    uint8_t *out = NULL;
    char err[256] = "";

    *out_len = 0;
    if (srv_reflection_answer(bytes, len, &out, out_len, err, sizeof(err)) != 0) {
        fail_msg("srv_reflection_answer: %s", err);
    }
    return out;
}

/* Answers the request bytes and decodes the answer as v1. */
static response_t *ask_bytes(const uint8_t *bytes, size_t len)
{
    size_t out_len;
    uint8_t *out = answer(bytes, len, &out_len);
    response_t *resp = grpc__reflection__v1__server_reflection_response__unpack(NULL, out_len, out);

    assert_non_null(resp);
    free(out);
    return resp;
}

/* Packs req, answers it, and decodes the answer. */
static response_t *ask(const request_t *req)
{
    size_t len = grpc__reflection__v1__server_reflection_request__get_packed_size(req);
    uint8_t *bytes = malloc(len + 1);
    response_t *resp;

    assert_non_null(bytes);
    grpc__reflection__v1__server_reflection_request__pack(req, bytes);
    resp = ask_bytes(bytes, len);
    free(bytes);
    return resp;
}

/* The request bytes are refused (-1, no answer) with a message holding says. */
static void expect_refused(const uint8_t *bytes, size_t len, const char *says)
{
    uint8_t *out = (uint8_t *)"untouched";
    size_t out_len = 7;
    char err[256] = "";

    assert_int_equal(srv_reflection_answer(bytes, len, &out, &out_len, err, sizeof(err)), -1);
    assert_null(out);
    assert_int_equal(out_len, 0);
    assert_true(strlen(err) > 0);
    if (strstr(err, says) == NULL) {
        fail_msg("refused with \"%s\", not \"%s\"", err, says);
    }
}

/* Asks a request of one of the kinds that carry one name. */
static response_t *ask_name(int kind, const char *name)
{
    request_t req = new_request();
    req.message_request_case = kind;
    if (kind == REQ(FILE_CONTAINING_SYMBOL)) {
        req.file_containing_symbol = (char *)name;
    } else if (kind == REQ(FILE_BY_FILENAME)) {
        req.file_by_filename = (char *)name;
    } else {
        assert_int_equal(kind, REQ(ALL_EXTENSION_NUMBERS_OF_TYPE));
        req.all_extension_numbers_of_type = (char *)name;
    }
    return ask(&req);
}

static response_t *ask_symbol(const char *symbol)
{
    return ask_name(REQ(FILE_CONTAINING_SYMBOL), symbol);
}

static response_t *ask_file(const char *name)
{
    return ask_name(REQ(FILE_BY_FILENAME), name);
}

static void release(response_t *resp)
{
    grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);
}

/* Name of the i-th FileDescriptorProto of a file_descriptor_response. */
static char *file_name_at(const response_t *resp, size_t i, char *buf, size_t buflen)
{
    const ProtobufCBinaryData *blob = &resp->file_descriptor_response->file_descriptor_proto[i];
    Google__Protobuf__FileDescriptorProto *fd =
        google__protobuf__file_descriptor_proto__unpack(NULL, blob->len, blob->data);

    assert_non_null(fd);
    assert_non_null(fd->name);
    snprintf(buf, buflen, "%s", fd->name);
    google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
    return buf;
}

/* Asserts a file_descriptor_response listing exactly the names given, in
 * order (NULL-terminated); frees resp. */
static void expect_files(response_t *resp, const char *const *names)
{
    size_t n = 0;
    char buf[256];

    assert_int_equal(resp->message_response_case, RESP(FILE_DESCRIPTOR_RESPONSE));
    while (names[n] != NULL) {
        n++;
    }
    assert_int_equal(resp->file_descriptor_response->n_file_descriptor_proto, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(file_name_at(resp, i, buf, sizeof(buf)), names[i]);
    }
    release(resp);
}

/* Asserts an error_response with code and message; frees resp. */
static void expect_error(response_t *resp, int code, const char *message)
{
    assert_int_equal(resp->message_response_case, RESP(ERROR_RESPONSE));
    assert_int_equal(resp->error_response->error_code, code);
    assert_string_equal(resp->error_response->error_message, message);
    release(resp);
}

static int set_up(void **state)
{
    char err[256] = "";
    (void)state;
    if (srv_reflection_init(err, sizeof(err)) != 0) {
        fail_msg("srv_reflection_init: %s", err);
    }
    return 0;
}

static int tear_down(void **state)
{
    (void)state;
    srv_reflection_free();
    return 0;
}

static void list_services_names_the_four_services(void **state)
{
    request_t req = new_request();
    response_t *resp;
    (void)state;
    req.message_request_case = REQ(LIST_SERVICES);
    req.list_services = "*";
    resp = ask(&req);
    assert_int_equal(resp->message_response_case, RESP(LIST_SERVICES_RESPONSE));
    assert_int_equal(resp->list_services_response->n_service, 4);
    assert_string_equal(resp->list_services_response->service[0]->name,
                        "chattoken.v1.TokenService");
    assert_string_equal(resp->list_services_response->service[1]->name, "grpc.health.v1.Health");
    assert_string_equal(resp->list_services_response->service[2]->name,
                        "grpc.reflection.v1.ServerReflection");
    assert_string_equal(resp->list_services_response->service[3]->name,
                        "grpc.reflection.v1alpha.ServerReflection");
    release(resp);
}

static void symbols_resolve_to_their_file_and_its_imports(void **state)
{
    static const char *const token_files[] = {"chattoken/v1/token_service.proto",
                                              "google/protobuf/timestamp.proto", NULL};
    static const char *const health_files[] = {"grpc/health/v1/health.proto", NULL};
    static const char *const alpha_files[] = {"grpc/reflection/v1alpha/reflection.proto", NULL};
    static const struct {
        const char *symbol;
        const char *const *files;
    } cases[] = {
        {"chattoken.v1.TokenService", token_files},
        {"chattoken.v1.GetUserTokenRequest", token_files},
        {"chattoken.v1.TokenService.RenewToken", token_files},
        {"chattoken.v1.TokenKind", token_files},
        {"chattoken.v1.RtcRole", token_files},
        {"chattoken.v1.GetRtcTokenRequest", token_files},
        {"chattoken.v1.TokenService.GetRtmToken", token_files},
        {"grpc.health.v1.Health", health_files},
        {"grpc.reflection.v1alpha.ServerReflection", alpha_files},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_files(ask_symbol(cases[i].symbol), cases[i].files);
    }
}

static void fields_enum_values_and_nested_types_are_symbols(void **state)
{
    static const char *const symbols[] = {
        "chattoken.v1.GetUserTokenRequest.username",
        "chattoken.v1.TOKEN_KIND_APP", /* enum values sit beside their enum */
        "chattoken.v1.TOKEN_KIND_RTC",
        "chattoken.v1.RTC_ROLE_SUBSCRIBER",
        "chattoken.v1.GetRtcTokenRequest.user", /* a oneof */
        "chattoken.v1.GetRtcTokenRequest.privilege_ttl_seconds",
        "grpc.health.v1.HealthCheckResponse.ServingStatus",
        "grpc.health.v1.HealthCheckResponse.SERVING",
        "google.protobuf.Timestamp",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++) {
        response_t *resp = ask_symbol(symbols[i]);
        assert_int_equal(resp->message_response_case, RESP(FILE_DESCRIPTOR_RESPONSE));
        release(resp);
    }
}

static void a_leading_dot_is_accepted(void **state)
{
    static const char *const token_files[] = {"chattoken/v1/token_service.proto",
                                              "google/protobuf/timestamp.proto", NULL};
    (void)state;
    expect_files(ask_symbol(".chattoken.v1.TokenService"), token_files);
}

static void descriptors_carry_the_proto_comments(void **state)
{
    const char *wanted = "TokenService issues and renews Agora Chat, RTC and RTM tokens.";
    response_t *resp;
    const ProtobufCBinaryData *blob;
    Google__Protobuf__FileDescriptorProto *fd;
    int found = 0;
    (void)state;
    resp = ask_symbol("chattoken.v1.TokenService");
    assert_int_equal(resp->message_response_case, RESP(FILE_DESCRIPTOR_RESPONSE));
    blob = &resp->file_descriptor_response->file_descriptor_proto[0];
    fd = google__protobuf__file_descriptor_proto__unpack(NULL, blob->len, blob->data);
    assert_non_null(fd);
    assert_non_null(fd->source_code_info);
    for (size_t i = 0; i < fd->source_code_info->n_location; i++) {
        const char *comment = fd->source_code_info->location[i]->leading_comments;
        if (comment != NULL && strstr(comment, wanted) != NULL) {
            found = 1;
        }
    }
    assert_true(found);
    google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
    release(resp);
}

static void file_by_filename_answers_the_file_and_its_imports(void **state)
{
    static const char *const token_files[] = {"chattoken/v1/token_service.proto",
                                              "google/protobuf/timestamp.proto", NULL};
    static const char *const timestamp_only[] = {"google/protobuf/timestamp.proto", NULL};
    (void)state;
    expect_files(ask_file("chattoken/v1/token_service.proto"), token_files);
    expect_files(ask_file("google/protobuf/timestamp.proto"), timestamp_only);
}

static void unknown_file_is_not_found(void **state)
{
    (void)state;
    expect_error(ask_file("chattoken/v1/nope.proto"), SRV_REFLECTION_NOT_FOUND, "File not found.");
}

static void unknown_symbol_is_not_found(void **state)
{
    (void)state;
    expect_error(ask_symbol("chattoken.v1.NoSuchService"), SRV_REFLECTION_NOT_FOUND,
                 "Symbol not found.");
    /* packages are not symbols here */
    expect_error(ask_symbol("chattoken.v1"), SRV_REFLECTION_NOT_FOUND, "Symbol not found.");
}

static void file_containing_extension_is_not_found(void **state)
{
    Grpc__Reflection__V1__ExtensionRequest ext = GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
    request_t req = new_request();
    (void)state;
    req.message_request_case = REQ(FILE_CONTAINING_EXTENSION);
    req.file_containing_extension = &ext;
    ext.containing_type = "chattoken.v1.GetUserTokenRequest";
    ext.extension_number = 100;
    expect_error(ask(&req), SRV_REFLECTION_NOT_FOUND, "Extension not found.");
    ext.containing_type = "chattoken.v1.NoSuchMessage";
    expect_error(ask(&req), SRV_REFLECTION_NOT_FOUND, "Type not found.");
}

static void extension_numbers_of_a_known_message_are_an_empty_list(void **state)
{
    response_t *resp;
    (void)state;
    resp = ask_name(REQ(ALL_EXTENSION_NUMBERS_OF_TYPE), "chattoken.v1.GetUserTokenRequest");
    assert_int_equal(resp->message_response_case, RESP(ALL_EXTENSION_NUMBERS_RESPONSE));
    assert_string_equal(resp->all_extension_numbers_response->base_type_name,
                        "chattoken.v1.GetUserTokenRequest");
    assert_int_equal(resp->all_extension_numbers_response->n_extension_number, 0);
    release(resp);
}

static void extension_numbers_of_an_unknown_or_non_message_type_are_not_found(void **state)
{
    (void)state;
    expect_error(ask_name(REQ(ALL_EXTENSION_NUMBERS_OF_TYPE), "chattoken.v1.NoSuchMessage"),
                 SRV_REFLECTION_NOT_FOUND, "Type not found.");
    expect_error(ask_name(REQ(ALL_EXTENSION_NUMBERS_OF_TYPE), "chattoken.v1.TokenService"),
                 SRV_REFLECTION_NOT_FOUND, "Type not found.");
}

static void host_and_original_request_are_echoed(void **state)
{
    request_t req = new_request();
    response_t *resp;
    (void)state;
    req.host = "tokend.example:443";
    req.message_request_case = REQ(FILE_CONTAINING_SYMBOL);
    req.file_containing_symbol = "chattoken.v1.NoSuchService";
    resp = ask(&req);
    assert_string_equal(resp->valid_host, "tokend.example:443");
    assert_non_null(resp->original_request);
    assert_string_equal(resp->original_request->host, "tokend.example:443");
    assert_int_equal(resp->original_request->message_request_case, REQ(FILE_CONTAINING_SYMBOL));
    assert_string_equal(resp->original_request->file_containing_symbol,
                        "chattoken.v1.NoSuchService");
    release(resp);
}

/* v1alpha clients (older grpcurl) send and read the v1alpha types: the same
 * wire format, so a v1alpha request gets an answer v1alpha decodes. */
static void v1alpha_requests_get_v1alpha_readable_answers(void **state)
{
    Grpc__Reflection__V1alpha__ServerReflectionRequest req =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
    Grpc__Reflection__V1alpha__ServerReflectionResponse *resp;
    uint8_t bytes[128];
    uint8_t *out;
    size_t out_len;
    (void)state;
    req.host = "h";
    req.message_request_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    req.list_services = "";
    out = answer(bytes, grpc__reflection__v1alpha__server_reflection_request__pack(&req, bytes),
                 &out_len);
    resp = grpc__reflection__v1alpha__server_reflection_response__unpack(NULL, out_len, out);
    assert_non_null(resp);
    assert_string_equal(resp->valid_host, "h");
    assert_int_equal(
        resp->message_response_case,
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
    assert_int_equal(resp->list_services_response->n_service, 4);
    grpc__reflection__v1alpha__server_reflection_response__free_unpacked(resp, NULL);
    free(out);
}

static void a_request_without_a_kind_is_unimplemented(void **state)
{
    response_t *resp;
    (void)state;
    /* the empty message: valid protobuf, nothing asked */
    resp = ask_bytes(NULL, 0);
    assert_int_equal(resp->error_response->error_code, SRV_REFLECTION_UNIMPLEMENTED);
    assert_int_equal(resp->message_response_case, RESP(ERROR_RESPONSE));
    release(resp);
}

static void garbage_is_refused(void **state)
{
    /* a length running past the end; wire type 7; a truncated varint */
    static const uint8_t past_end[] = {0x22, 0x10, 'a', 'b'};
    static const uint8_t bad_wire_type[] = {0x0f, 0x00};
    static const uint8_t truncated[] = {0x08, 0xff};
    (void)state;
    expect_refused(past_end, sizeof(past_end), "");
    expect_refused(bad_wire_type, sizeof(bad_wire_type), "");
    expect_refused(truncated, sizeof(truncated), "");
}

static void strings_that_are_not_utf8_or_hold_a_nul_are_refused(void **state)
{
    /* file_containing_symbol (field 4) = "ab\xff" and "ab\0cd" */
    static const uint8_t bad_utf8[] = {0x22, 0x03, 'a', 'b', 0xff};
    static const uint8_t with_nul[] = {0x22, 0x05, 'a', 'b', 0x00, 'c', 'd'};
    (void)state;
    expect_refused(bad_utf8, sizeof(bad_utf8), "");
    expect_refused(with_nul, sizeof(with_nul), "");
}

static void requests_over_64_kib_are_refused(void **state)
{
    size_t len = SRV_REFLECTION_MAX_REQUEST + 1;
    uint8_t *big = calloc(1, len);
    (void)state;
    assert_non_null(big);
    expect_refused(big, len, "limit");
    free(big);
}

/* Names are echoed back (original_request) to callers that may have no
 * credentials: one over SRV_REFLECTION_MAX_NAME bytes is refused, whichever
 * field it is in. */
static void names_over_the_bound_are_refused(void **state)
{
    char name[SRV_REFLECTION_MAX_NAME + 2];
    request_t req;
    response_t *resp;
    uint8_t bytes[4 * SRV_REFLECTION_MAX_NAME];
    (void)state;
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    name[SRV_REFLECTION_MAX_NAME] = '\0';
    resp = ask_symbol(name); /* at the bound: answered (not found) */
    assert_int_equal(resp->message_response_case, RESP(ERROR_RESPONSE));
    grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);
    name[SRV_REFLECTION_MAX_NAME] = 'x';
    for (int field = 0; field < 3; field++) {
        req = new_request();
        req.host = "";
        if (field == 0) { /* the kinds share a union: set one */
            req.message_request_case = REQ(FILE_CONTAINING_SYMBOL);
            req.file_containing_symbol = name;
        } else if (field == 1) {
            req.message_request_case = REQ(FILE_BY_FILENAME);
            req.file_by_filename = name;
        } else {
            req.message_request_case = REQ(LIST_SERVICES);
            req.list_services = "";
            req.host = name;
        }
        expect_refused(bytes, grpc__reflection__v1__server_reflection_request__pack(&req, bytes),
                       "over the 1024 limit");
    }
}

static void init_twice_is_harmless_and_free_allows_init_again(void **state)
{
    char err[256] = "";
    response_t *resp;
    (void)state;
    assert_int_equal(srv_reflection_init(err, sizeof(err)), 0);
    srv_reflection_free();
    assert_int_equal(srv_reflection_init(err, sizeof(err)), 0);
    resp = ask_symbol("grpc.health.v1.Health");
    assert_int_equal(resp->message_response_case, RESP(FILE_DESCRIPTOR_RESPONSE));
    release(resp);
}

static void answering_before_init_fails(void **state)
{
    char err[256] = "";
    (void)state;
    srv_reflection_free();
    expect_refused(NULL, 0, "not initialised");
    assert_int_equal(srv_reflection_init(err, sizeof(err)), 0);
}

/* Many threads answering at once see the same bytes as one thread does
 * (meaningful under -DCT_SANITIZE=thread). */
struct worker {
    const uint8_t *request;
    size_t len;
    const uint8_t *expected;
    size_t expected_len;
    int mismatches;
};

static void *answer_repeatedly(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 200; i++) {
        uint8_t *out = NULL;
        size_t out_len = 0;
        if (srv_reflection_answer(w->request, w->len, &out, &out_len, NULL, 0) != 0 ||
            out_len != w->expected_len || memcmp(out, w->expected, out_len) != 0) {
            w->mismatches++;
        }
        free(out);
    }
    return NULL;
}

static void concurrent_answers_agree(void **state)
{
    request_t req = new_request();
    uint8_t bytes[128];
    size_t len;
    uint8_t *expected = NULL;
    size_t expected_len = 0;
    pthread_t threads[4];
    struct worker workers[4];
    (void)state;
    req.message_request_case = REQ(FILE_CONTAINING_SYMBOL);
    req.file_containing_symbol = "chattoken.v1.TokenService";
    len = grpc__reflection__v1__server_reflection_request__pack(&req, bytes);
    assert_int_equal(srv_reflection_answer(bytes, len, &expected, &expected_len, NULL, 0), 0);
    for (int i = 0; i < 4; i++) {
        workers[i] = (struct worker){bytes, len, expected, expected_len, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, answer_repeatedly, &workers[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(workers[i].mismatches, 0);
    }
    free(expected);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(list_services_names_the_four_services),
        cmocka_unit_test(symbols_resolve_to_their_file_and_its_imports),
        cmocka_unit_test(fields_enum_values_and_nested_types_are_symbols),
        cmocka_unit_test(a_leading_dot_is_accepted),
        cmocka_unit_test(descriptors_carry_the_proto_comments),
        cmocka_unit_test(file_by_filename_answers_the_file_and_its_imports),
        cmocka_unit_test(unknown_file_is_not_found),
        cmocka_unit_test(unknown_symbol_is_not_found),
        cmocka_unit_test(file_containing_extension_is_not_found),
        cmocka_unit_test(extension_numbers_of_a_known_message_are_an_empty_list),
        cmocka_unit_test(extension_numbers_of_an_unknown_or_non_message_type_are_not_found),
        cmocka_unit_test(host_and_original_request_are_echoed),
        cmocka_unit_test(v1alpha_requests_get_v1alpha_readable_answers),
        cmocka_unit_test(a_request_without_a_kind_is_unimplemented),
        cmocka_unit_test(garbage_is_refused),
        cmocka_unit_test(strings_that_are_not_utf8_or_hold_a_nul_are_refused),
        cmocka_unit_test(requests_over_64_kib_are_refused),
        cmocka_unit_test(names_over_the_bound_are_refused),
        cmocka_unit_test(init_twice_is_harmless_and_free_allows_init_again),
        cmocka_unit_test(answering_before_init_fails),
        cmocka_unit_test(concurrent_answers_agree),
    };
    return cmocka_run_group_tests(tests, set_up, tear_down);
}
