/* Unit tests for core/token.c: the public vectors, round trips, and every way
 * a hostile token can be malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "token.h"

#define APP_ID "970CA35de60c44645bbae8a215061b33"
#define APP_CERT "5CFd2fd1755d40ecb72977518be15d3b"
#define OTHER_CERT "5CFd2fd1755d40ecb72977518be15d3c"
#define VECTOR_USER                                                                                \
    "007eJxTYNAIsnbS3v/A5t2TC6feR15r+6cq8bqAvfaW+tk/"                                              \
    "Vzz+"                                                                                         \
    "p6xTYLA0N3B2NDZNSTUzSDYxMTMxTUpKTLVINDI0NTAzTDI2dv8iwBDBxMDAyADCrEDMCOZzMRhZWBgZmxgamRsDAB+"  \
    "lHrg="
#define VECTOR_APP                                                                                 \
    "007eJxTYNDNaz3snC8huEfHWdz6s98qltq4zqy9fl99Uh0FDvy6F6DAYGlu4OxobJqSamaQbGJiZmKalJSYapFoZGhqY" \
    "GaYZGzs/kWAIYKJgYGRAYRZgZgJzGdgAACt8hhr"

static ct_token tok;

static void build_user(const char *user, uint32_t ts, uint32_t salt, uint32_t ttl, char *out,
                       size_t outlen)
{
    char err[128];
    assert_int_equal(ct_chat_build_user_token(APP_ID, APP_CERT, user, ts, salt, ttl, out, outlen,
                                              NULL, err, sizeof(err)),
                     CT_OK);
}

static void user_token_matches_public_vector(void **state)
{
    char out[CT_BUILD_MAX_CHARS];
    size_t n = 0;
    char err[128];
    (void)state;
    assert_int_equal(ct_chat_build_user_token(APP_ID, APP_CERT, "2882341273", 1111111, 1, 600, out,
                                              sizeof(out), &n, err, sizeof(err)),
                     CT_OK);
    assert_string_equal(out, VECTOR_USER);
    assert_int_equal(n, strlen(VECTOR_USER));
}

static void app_token_matches_public_vector(void **state)
{
    char out[CT_BUILD_MAX_CHARS];
    char err[128];
    (void)state;
    assert_int_equal(ct_chat_build_app_token(APP_ID, APP_CERT, 1111111, 1, 600, out, sizeof(out),
                                             NULL, err, sizeof(err)),
                     CT_OK);
    assert_string_equal(out, VECTOR_APP);
}

static void parse_reads_every_field_of_the_vector(void **state)
{
    char err[128];
    (void)state;
    assert_int_equal(ct_token_parse(VECTOR_USER, strlen(VECTOR_USER), &tok, err, sizeof(err)),
                     CT_OK);
    assert_int_equal(tok.app_id.len, 32);
    assert_memory_equal(tok.app_id.data, APP_ID, 32);
    assert_int_equal(tok.issue_ts, 1111111);
    assert_int_equal(tok.expire, 600);
    assert_int_equal(tok.salt, 1);
    assert_int_equal(tok.service_count, 1);
    assert_int_equal(tok.services[0].type, CT_SERVICE_CHAT);
    assert_int_equal(tok.services[0].privilege_count, 1);
    assert_int_equal(tok.services[0].privileges[0].id, CT_CHAT_PRIVILEGE_USER);
    assert_int_equal(tok.services[0].privileges[0].value, 600);
    assert_int_equal(tok.services[0].field_count, 1);
    assert_string_equal(tok.services[0].fields[0].name, "user_id");
    assert_int_equal(tok.services[0].fields[0].bytes.len, 10);
    assert_memory_equal(tok.services[0].fields[0].bytes.data, "2882341273", 10);
    assert_int_equal(ct_token_expire_at(&tok), 1111711);
    assert_int_equal(ct_privilege_expire_at(&tok, &tok.services[0].privileges[0]), 1111711);
}

static void verify_accepts_right_and_refuses_wrong_certificate(void **state)
{
    (void)state;
    assert_int_equal(ct_token_parse(VECTOR_APP, strlen(VECTOR_APP), &tok, NULL, 0), CT_OK);
    assert_int_equal(ct_token_verify(&tok, APP_CERT), CT_OK);
    assert_int_equal(ct_token_verify(&tok, OTHER_CERT), CT_E_SIGNATURE);
    assert_int_equal(ct_token_verify(&tok, "not-a-certificate"), CT_E_CERTIFICATE);
}

static void certificate_case_matters_for_the_signature(void **state)
{
    /* the certificate is signed as ASCII, as the references do */
    (void)state;
    assert_int_equal(ct_token_parse(VECTOR_APP, strlen(VECTOR_APP), &tok, NULL, 0), CT_OK);
    assert_int_equal(ct_token_verify(&tok, "5cfd2fd1755d40ecb72977518be15d3b"), CT_E_SIGNATURE);
}

static void build_refuses_bad_ids_and_ttls(void **state)
{
    char out[CT_BUILD_MAX_CHARS];
    char err[128];
    (void)state;
    assert_int_equal(ct_chat_build_app_token("970CA35de60c44645bbae8a215061b3", APP_CERT, 1, 1, 600,
                                             out, sizeof(out), NULL, err, sizeof(err)),
                     CT_E_APP_ID);
    assert_int_equal(ct_chat_build_app_token("970CA35de60c44645bbae8a215061b3g", APP_CERT, 1, 1,
                                             600, out, sizeof(out), NULL, err, sizeof(err)),
                     CT_E_APP_ID);
    assert_int_equal(ct_chat_build_app_token(APP_ID, APP_CERT "0", 1, 1, 600, out, sizeof(out),
                                             NULL, err, sizeof(err)),
                     CT_E_CERTIFICATE);
    assert_int_equal(ct_chat_build_app_token(APP_ID, APP_CERT, 1, 1, 0, out, sizeof(out), NULL, err,
                                             sizeof(err)),
                     CT_E_ARGUMENT);
    assert_int_equal(ct_chat_build_app_token(APP_ID, APP_CERT, 1, 1, 86401, out, sizeof(out), NULL,
                                             err, sizeof(err)),
                     CT_E_ARGUMENT);
    assert_non_null(strstr(err, "86400"));
    assert_int_equal(ct_chat_build_user_token(APP_ID, APP_CERT, "", 1, 1, 600, out, sizeof(out),
                                              NULL, err, sizeof(err)),
                     CT_E_ARGUMENT);
    assert_int_equal(
        ct_chat_build_app_token(APP_ID, APP_CERT, 1, 1, 600, out, 20, NULL, err, sizeof(err)),
        CT_E_BUFFER);
}

static void hex_ids_accept_either_case_only_32_chars(void **state)
{
    (void)state;
    assert_true(ct_is_hex_id("0123456789abcdefABCDEF0123456789"));
    assert_false(ct_is_hex_id("0123456789abcdefABCDEF012345678"));
    assert_false(ct_is_hex_id("0123456789abcdefABCDEF01234567890"));
    assert_false(ct_is_hex_id("0123456789abcdefABCDEF012345678z"));
    assert_false(ct_is_hex_id(NULL));
}

static void generic_build_sorts_services_and_privileges(void **state)
{
    ct_privilege rtc_privs[] = {{3, 100}, {1, 200}};
    const char *rtc_strings[] = {"room", "42"};
    ct_privilege chat_privs[] = {{1, 300}};
    const char *chat_strings[] = {"alice"};
    ct_service_spec services[] = {{CT_SERVICE_CHAT, 1, chat_privs, 1, chat_strings},
                                  {CT_SERVICE_RTC, 2, rtc_privs, 2, rtc_strings}};
    ct_build_params p = {APP_ID, APP_CERT, 1700000000, 77, 500, 2, services};
    char out[CT_BUILD_MAX_CHARS];
    char err[128];
    (void)state;
    assert_int_equal(ct_token_build(&p, out, sizeof(out), NULL, err, sizeof(err)), CT_OK);
    assert_int_equal(ct_token_parse(out, strlen(out), &tok, err, sizeof(err)), CT_OK);
    assert_int_equal(ct_token_verify(&tok, APP_CERT), CT_OK);
    assert_int_equal(tok.service_count, 2);
    assert_int_equal(tok.services[0].type, CT_SERVICE_RTC);
    assert_int_equal(tok.services[0].privileges[0].id, 1);
    assert_int_equal(tok.services[0].privileges[1].id, 3);
    assert_int_equal(tok.services[0].fields[0].bytes.len, 4);
    assert_int_equal(tok.services[1].type, CT_SERVICE_CHAT);
}

static void generic_build_refuses_duplicate_privileges(void **state)
{
    ct_privilege privs[] = {{1, 100}, {1, 200}};
    const char *strings[] = {"alice"};
    ct_service_spec services[] = {{CT_SERVICE_CHAT, 2, privs, 1, strings}};
    ct_build_params p = {APP_ID, APP_CERT, 1, 1, 1, 1, services};
    char out[CT_BUILD_MAX_CHARS];
    char err[128];
    (void)state;
    assert_int_equal(ct_token_build(&p, out, sizeof(out), NULL, err, sizeof(err)), CT_E_ARGUMENT);
    p.service_count = 0;
    assert_int_equal(ct_token_build(&p, out, sizeof(out), NULL, err, sizeof(err)), CT_E_ARGUMENT);
}

/* The result of parsing the public app-token vector with one character
 * changed. */
static int parse_vector_changed(size_t at, char c)
{
    char bad[sizeof(VECTOR_APP)];

    memcpy(bad, VECTOR_APP, sizeof(bad));
    bad[at] = c;
    return ct_token_parse(bad, strlen(bad), &tok, NULL, 0);
}

static void parse_refuses_wrong_prefix(void **state)
{
    (void)state;
    assert_int_equal(parse_vector_changed(2, '6'), CT_E_PREFIX);
    assert_int_equal(ct_token_parse("00", 2, &tok, NULL, 0), CT_E_PREFIX);
    assert_int_equal(ct_token_parse("", 0, &tok, NULL, 0), CT_E_PREFIX);
}

static void parse_refuses_bad_base64(void **state)
{
    (void)state;
    assert_int_equal(parse_vector_changed(10, '*'), CT_E_BASE64);
    assert_int_equal(ct_token_parse("007", 3, &tok, NULL, 0), CT_E_BASE64);
    assert_int_equal(ct_token_parse("007abc", 6, &tok, NULL, 0), CT_E_BASE64);
    /* url-safe alphabet and missing padding are not the format */
    assert_int_equal(ct_token_parse("007ab-_", 7, &tok, NULL, 0), CT_E_BASE64);
}

static void parse_refuses_overlong_token(void **state)
{
    size_t len = CT_TOKEN_MAX_CHARS + 1;
    char *big = malloc(len);
    (void)state;
    assert_non_null(big);
    memset(big, 'A', len);
    memcpy(big, "007", 3);
    assert_int_equal(ct_token_parse(big, len, &tok, NULL, 0), CT_E_TOO_LARGE);
    free(big);
}

static void every_truncation_of_a_valid_token_fails_cleanly(void **state)
{
    size_t len = strlen(VECTOR_USER);
    (void)state;
    for (size_t cut = 0; cut < len; cut++) {
        int rc = ct_token_parse(VECTOR_USER, cut, &tok, NULL, 0);
        assert_int_not_equal(rc, CT_OK);
    }
}

/* A flip must fail parse or verify, unless it only touched bits that deflate
 * ignores (the padding after the final block): then the payload, which is
 * what the signature covers, is unchanged. */
static void every_flipped_bit_is_caught_by_parse_or_verify(void **state)
{
    static uint8_t original[CT_PAYLOAD_MAX];
    size_t original_len;
    char buf[sizeof(VECTOR_USER)];
    size_t len = strlen(VECTOR_USER);
    (void)state;
    assert_int_equal(ct_token_parse(VECTOR_USER, len, &tok, NULL, 0), CT_OK);
    original_len = tok.payload_len;
    memcpy(original, tok.payload, original_len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, VECTOR_USER, sizeof(buf));
            buf[i] ^= (char)(1 << bit);
            if (ct_token_parse(buf, len, &tok, NULL, 0) != CT_OK ||
                ct_token_verify(&tok, APP_CERT) != CT_OK) {
                continue;
            }
            assert_int_equal(tok.payload_len, original_len);
            assert_memory_equal(tok.payload, original, original_len);
        }
    }
}

/* Wraps a raw payload as a 007 token: zlib + base64, as the format does. */
#include "base64.h"
#include <zlib.h>
static size_t wrap_payload(const uint8_t *payload, size_t len, char *out, size_t outlen)
{
    static uint8_t compressed[1 << 20];
    uLongf clen = sizeof(compressed);
    assert_int_equal(compress2(compressed, &clen, payload, len, Z_DEFAULT_COMPRESSION), Z_OK);
    memcpy(out, "007", 3);
    return 3 + ct_base64_encode(compressed, clen, out + 3, outlen - 3);
}

static void deflate_bomb_stops_at_the_bound(void **state)
{
    size_t len = 1 << 20; /* 1 MiB of zeros deflates to ~1 KiB */
    uint8_t *zeros = calloc(1, len);
    static char token[8192];
    size_t n;
    (void)state;
    assert_non_null(zeros);
    n = wrap_payload(zeros, len, token, sizeof(token));
    assert_int_equal(ct_token_parse(token, n, &tok, NULL, 0), CT_E_TOO_LARGE);
    free(zeros);
}

static void lengths_pointing_past_the_end_are_truncated(void **state)
{
    /* signature length says 300 bytes, 4 follow */
    uint8_t payload[] = {0x2c, 0x01, 1, 2, 3, 4};
    char token[256];
    size_t n = wrap_payload(payload, sizeof(payload), token, sizeof(token));
    char err[128];
    (void)state;
    assert_int_equal(ct_token_parse(token, n, &tok, err, sizeof(err)), CT_E_TRUNCATED);
    assert_non_null(strstr(err, "truncated"));
}

static void inflate_garbage_and_trailing_bytes_are_refused(void **state)
{
    uint8_t garbage[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    char token[256];
    size_t n;
    uint8_t payload[256];
    (void)state;
    memcpy(token, "007", 3);
    n = 3 + ct_base64_encode(garbage, sizeof(garbage), token + 3, sizeof(token) - 3);
    assert_int_equal(ct_token_parse(token, n, &tok, NULL, 0), CT_E_INFLATE);

    /* a valid token's payload with one extra byte after the last service */
    assert_int_equal(ct_token_parse(VECTOR_APP, strlen(VECTOR_APP), &tok, NULL, 0), CT_OK);
    memcpy(payload, tok.payload, tok.payload_len);
    payload[tok.payload_len] = 0;
    n = wrap_payload(payload, tok.payload_len + 1, token, sizeof(token));
    assert_int_equal(ct_token_parse(token, n, &tok, NULL, 0), CT_E_TRAILING);
}

static void unknown_service_type_stops_parsing_with_success(void **state)
{
    uint8_t payload[256];
    size_t len;
    char token[512];
    size_t n;
    (void)state;
    assert_int_equal(ct_token_parse(VECTOR_APP, strlen(VECTOR_APP), &tok, NULL, 0), CT_OK);
    len = tok.payload_len;
    memcpy(payload, tok.payload, len);
    /* service count is 2 bytes before the first service: bump it, append type 99 + junk */
    size_t count_at = 2 + 32 + 2 + 32 + 12;
    payload[count_at] = 2;
    payload[len++] = 99;
    payload[len++] = 0;
    payload[len++] = 0xff;
    n = wrap_payload(payload, len, token, sizeof(token));
    assert_int_equal(ct_token_parse(token, n, &tok, NULL, 0), CT_OK);
    assert_int_equal(tok.service_count, 1);
    assert_int_equal(tok.unknown_service_type, 99);
}

static void too_many_privileges_is_a_limit_error(void **state)
{
    uint8_t payload[512];
    size_t len = 0;
    char token[1024];
    size_t n;
    (void)state;
    payload[len++] = 32;
    payload[len++] = 0;
    memset(payload + len, 0, 32);
    len += 32;
    payload[len++] = 32;
    payload[len++] = 0;
    memcpy(payload + len, APP_ID, 32);
    len += 32;
    memset(payload + len, 0, 12);
    len += 12;
    payload[len++] = 1; /* one service */
    payload[len++] = 0;
    payload[len++] = CT_SERVICE_FPA;
    payload[len++] = 0;
    payload[len++] = CT_MAX_PRIVILEGES + 1;
    payload[len++] = 0;
    memset(payload + len, 0, 6 * (CT_MAX_PRIVILEGES + 1));
    len += 6 * (CT_MAX_PRIVILEGES + 1);
    n = wrap_payload(payload, len, token, sizeof(token));
    assert_int_equal(ct_token_parse(token, n, &tok, NULL, 0), CT_E_LIMIT);
}

static void random_salts_are_in_range_and_vary(void **state)
{
    uint32_t first = 0;
    int differs = 0;
    (void)state;
    for (int i = 0; i < 1000; i++) {
        uint32_t s = 0;
        assert_int_equal(ct_salt_random(&s), CT_OK);
        assert_in_range(s, 1, CT_SALT_MAX);
        if (i == 0) {
            first = s;
        } else if (s != first) {
            differs = 1;
        }
    }
    assert_true(differs);
}

static void tokens_round_trip_for_many_inputs(void **state)
{
    char out[CT_BUILD_MAX_CHARS];
    char user[64];
    (void)state;
    for (uint32_t i = 1; i <= 200; i++) {
        snprintf(user, sizeof(user), "user-%u", i * 7919);
        build_user(user, 1600000000 + i, i * 31, i * 400 % CT_CHAT_TTL_MAX + 1, out, sizeof(out));
        assert_int_equal(ct_token_parse(out, strlen(out), &tok, NULL, 0), CT_OK);
        assert_int_equal(ct_token_verify(&tok, APP_CERT), CT_OK);
        assert_int_equal(tok.issue_ts, 1600000000 + i);
        assert_int_equal(tok.salt, i * 31);
        assert_int_equal(tok.services[0].fields[0].bytes.len, strlen(user));
    }
}

static void names_cover_the_known_types(void **state)
{
    (void)state;
    assert_string_equal(ct_service_type_name(CT_SERVICE_CHAT), "chat");
    assert_string_equal(ct_service_type_name(CT_SERVICE_RTM2), "rtm2");
    assert_null(ct_service_type_name(99));
    assert_string_equal(ct_privilege_name(CT_SERVICE_CHAT, CT_CHAT_PRIVILEGE_APP), "app");
    assert_null(ct_privilege_name(CT_SERVICE_CHAT, 3));
    assert_string_equal(ct_result_name(CT_E_SIGNATURE), "bad_signature");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(user_token_matches_public_vector),
        cmocka_unit_test(app_token_matches_public_vector),
        cmocka_unit_test(parse_reads_every_field_of_the_vector),
        cmocka_unit_test(verify_accepts_right_and_refuses_wrong_certificate),
        cmocka_unit_test(certificate_case_matters_for_the_signature),
        cmocka_unit_test(build_refuses_bad_ids_and_ttls),
        cmocka_unit_test(hex_ids_accept_either_case_only_32_chars),
        cmocka_unit_test(generic_build_sorts_services_and_privileges),
        cmocka_unit_test(generic_build_refuses_duplicate_privileges),
        cmocka_unit_test(parse_refuses_wrong_prefix),
        cmocka_unit_test(parse_refuses_bad_base64),
        cmocka_unit_test(parse_refuses_overlong_token),
        cmocka_unit_test(every_truncation_of_a_valid_token_fails_cleanly),
        cmocka_unit_test(every_flipped_bit_is_caught_by_parse_or_verify),
        cmocka_unit_test(deflate_bomb_stops_at_the_bound),
        cmocka_unit_test(lengths_pointing_past_the_end_are_truncated),
        cmocka_unit_test(inflate_garbage_and_trailing_bytes_are_refused),
        cmocka_unit_test(unknown_service_type_stops_parsing_with_success),
        cmocka_unit_test(too_many_privileges_is_a_limit_error),
        cmocka_unit_test(random_salts_are_in_range_and_vary),
        cmocka_unit_test(tokens_round_trip_for_many_inputs),
        cmocka_unit_test(names_cover_the_known_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
