/* Unit tests for server/http_rules.c, the pure part of the HTTP side port:
 * routing and username decoding, methods, ?ttl, the RenewToken body, the
 * status table, CORS origins and RFC 3339 times. The server itself is
 * tested over real HTTP in tests/http/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "expect_status.h"
#include "http_rules.h"

typedef struct match {
    int rc;
    enum srv_http_route route;
    char username[CT_USERNAME_MAX * 3 + 1];
    size_t len;
    srv_status status;
} match;

static match route_of(const char *path, int compat)
{
    match m;

    memset(&m, 0, sizeof(m));
    m.rc =
        srv_http_match(path, compat, &m.route, m.username, sizeof(m.username), &m.len, &m.status);
    return m;
}

/* Each path's route with compat_routes on and off: paths match exactly
 * (no trailing slash, no case folding, one username segment), and
 * compat_routes off hides only the seed routes. */
static void test_routes_match_exactly_and_compat_off_hides_only_the_seed_routes(void **state)
{
    static const struct {
        const char *path;
        enum srv_http_route compat_on;
        enum srv_http_route compat_off;
    } cases[] = {
        {"/chat/app/token", SRV_HTTP_ROUTE_APP_TOKEN, SRV_HTTP_ROUTE_NONE},
        {"/chat/user/alice/token", SRV_HTTP_ROUTE_USER_TOKEN, SRV_HTTP_ROUTE_NONE},
        {"/chat/token/renew", SRV_HTTP_ROUTE_RENEW, SRV_HTTP_ROUTE_RENEW},
        {"/healthz", SRV_HTTP_ROUTE_HEALTHZ, SRV_HTTP_ROUTE_HEALTHZ},
        {"/readyz", SRV_HTTP_ROUTE_READYZ, SRV_HTTP_ROUTE_READYZ},
        {"/metrics", SRV_HTTP_ROUTE_METRICS, SRV_HTTP_ROUTE_METRICS},
        {"/chat/app/token/", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
        {"/chat/app/token2", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
        {"/CHAT/app/token", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
        {"//chat/app/token", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
        {"/", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
        {"", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
        {"/metrics/", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
        {"/chat/user/a/b/token", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
        {"/chat/user/alice/token/", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
        {"/chat/user/token", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
        {"/chat/user/alice", SRV_HTTP_ROUTE_NONE, SRV_HTTP_ROUTE_NONE},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum srv_http_route on = route_of(cases[i].path, 1).route;
        enum srv_http_route off = route_of(cases[i].path, 0).route;
        if (on != cases[i].compat_on || off != cases[i].compat_off) {
            fail_msg("%s: routes %d (compat on), %d (off); expected %d, %d", cases[i].path, on, off,
                     cases[i].compat_on, cases[i].compat_off);
        }
    }
}

static void test_user_route_takes_the_username_segment(void **state)
{
    match m = route_of("/chat/user/Alice_1.x-y/token", 1);

    (void)state;
    assert_int_equal(m.rc, SRV_OK);
    assert_int_equal(m.route, SRV_HTTP_ROUTE_USER_TOKEN);
    assert_string_equal(m.username, "Alice_1.x-y");
    assert_int_equal(m.len, strlen("Alice_1.x-y"));
}

static void test_empty_username_goes_to_the_handler(void **state)
{
    match m = route_of("/chat/user//token", 1);

    (void)state;
    /* the handler says what is wrong with the name, as on gRPC */
    assert_int_equal(m.route, SRV_HTTP_ROUTE_USER_TOKEN);
    assert_int_equal(m.len, 0);
}

static void test_username_is_percent_decoded(void **state)
{
    match m = route_of("/chat/user/%41lice%2e%5f/token", 1);

    (void)state;
    assert_string_equal(m.username, "Alice._");
    /* decoded '/' stays inside the name, where the handler refuses it */
    m = route_of("/chat/user/a%2Fb/token", 1);
    assert_int_equal(m.route, SRV_HTTP_ROUTE_USER_TOKEN);
    assert_string_equal(m.username, "a/b");
}

static void test_bad_percent_encoding_is_invalid_argument(void **state)
{
    static const char *const bad[] = {"/chat/user/a%/token", "/chat/user/a%4/token",
                                      "/chat/user/a%zz/token", "/chat/user/%00a/token",
                                      "/chat/user/%g1/token"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        match m = route_of(bad[i], 1);
        assert_int_equal(m.rc, SRV_INVALID_ARGUMENT);
        assert_int_equal(m.status.code, SRV_INVALID_ARGUMENT);
        assert_non_null(strstr(m.status.message, "username"));
    }
}

static void test_username_longer_than_the_buffer_is_refused(void **state)
{
    char path[512];
    char name[300];
    match m;

    (void)state;
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    snprintf(path, sizeof(path), "/chat/user/%s/token", name);
    m = route_of(path, 1);
    assert_int_equal(m.rc, SRV_INVALID_ARGUMENT);
    assert_non_null(strstr(m.status.message, "longer"));
}

static void test_methods_per_route(void **state)
{
    (void)state;
    assert_true(srv_http_method_allowed(SRV_HTTP_ROUTE_APP_TOKEN, "GET"));
    assert_false(srv_http_method_allowed(SRV_HTTP_ROUTE_APP_TOKEN, "HEAD"));
    assert_true(srv_http_method_allowed(SRV_HTTP_ROUTE_HEALTHZ, "HEAD"));
    assert_true(srv_http_method_allowed(SRV_HTTP_ROUTE_APP_TOKEN, "OPTIONS"));
    assert_false(srv_http_method_allowed(SRV_HTTP_ROUTE_APP_TOKEN, "POST"));
    assert_true(srv_http_method_allowed(SRV_HTTP_ROUTE_RENEW, "POST"));
    assert_true(srv_http_method_allowed(SRV_HTTP_ROUTE_RENEW, "OPTIONS"));
    assert_false(srv_http_method_allowed(SRV_HTTP_ROUTE_RENEW, "GET"));
    assert_false(srv_http_method_allowed(SRV_HTTP_ROUTE_METRICS, "DELETE"));
    assert_false(srv_http_method_allowed(SRV_HTTP_ROUTE_NONE, "GET"));
    assert_string_equal(srv_http_allow(SRV_HTTP_ROUTE_RENEW), "POST, OPTIONS");
    assert_string_equal(srv_http_allow(SRV_HTTP_ROUTE_USER_TOKEN), "GET, OPTIONS");
    assert_string_equal(srv_http_allow(SRV_HTTP_ROUTE_METRICS), "GET, HEAD, OPTIONS");
}

static void test_ttl_parsing(void **state)
{
    srv_status status;
    uint32_t ttl = 99;
    static const char *const bad[] = {"",   "-1",   "+5",          "1.5",       "12a",
                                      " 1", "0x10", "99999999999", "4294967296"};

    (void)state;
    assert_int_equal(srv_http_parse_ttl(NULL, &ttl, &status), SRV_OK);
    assert_int_equal(ttl, 0);
    assert_int_equal(srv_http_parse_ttl("600", &ttl, &status), SRV_OK);
    assert_int_equal(ttl, 600);
    assert_int_equal(srv_http_parse_ttl("4294967295", &ttl, &status), SRV_OK);
    assert_int_equal(ttl, UINT32_MAX);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_status(srv_http_parse_ttl(bad[i], &ttl, &status), &status, SRV_INVALID_ARGUMENT,
                      "ttl");
    }
}

static int renew(const char *body, char **token, uint32_t *ttl, srv_status *status)
{
    size_t len = 0;

    return srv_http_parse_renew(body, strlen(body), token, &len, ttl, status);
}

static void test_renew_body_parsing(void **state)
{
    srv_status status;
    char *token = NULL;
    uint32_t ttl = 0;

    (void)state;
    assert_int_equal(renew("{\"token\":\"007abc\",\"ttl_seconds\":60}", &token, &ttl, &status),
                     SRV_OK);
    assert_string_equal(token, "007abc");
    assert_int_equal(ttl, 60);
    free(token);
    assert_int_equal(renew("{\"ttlSeconds\":7,\"token\":\"x\"}", &token, &ttl, &status), SRV_OK);
    assert_int_equal(ttl, 7);
    free(token);
    assert_int_equal(renew("{\"token\":\"x\"}", &token, &ttl, &status), SRV_OK);
    assert_int_equal(ttl, 0);
    free(token);
}

static void test_renew_body_refusals(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{}",
        "{\"token\":\"\"}",
        "{\"token\":5}",
        "{\"token\":\"x\",\"ttl_seconds\":\"60\"}",
        "{\"token\":\"x\",\"ttl_seconds\":-1}",
        "{\"token\":\"x\",\"ttl_seconds\":4294967296}",
        "{\"token\":\"x\",\"ttl_seconds\":1.5}",
        "{\"token\":\"x\",\"extra\":1}",
        "{\"token\":\"x\",\"token\":\"y\"}",
    };
    srv_status status;
    char *token = NULL;
    uint32_t ttl = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(renew(bad[i], &token, &ttl, &status), SRV_INVALID_ARGUMENT);
        assert_null(token);
        assert_true(status.message[0] != '\0');
    }
}

static void test_status_table(void **state)
{
    (void)state;
    assert_int_equal(srv_http_status_for(SRV_OK), 200);
    assert_int_equal(srv_http_status_for(SRV_INVALID_ARGUMENT), 400);
    assert_int_equal(srv_http_status_for(SRV_UNAUTHENTICATED), 401);
    assert_int_equal(srv_http_status_for(SRV_PERMISSION_DENIED), 403);
    assert_int_equal(srv_http_status_for(SRV_NOT_FOUND), 404);
    assert_int_equal(srv_http_status_for(SRV_FAILED_PRECONDITION), 412);
    assert_int_equal(srv_http_status_for(SRV_RESOURCE_EXHAUSTED), 429);
    assert_int_equal(srv_http_status_for(SRV_INTERNAL), 500);
    assert_int_equal(srv_http_status_for(SRV_UNIMPLEMENTED), 501);
    assert_int_equal(srv_http_status_for(SRV_UNAVAILABLE), 503);
    assert_int_equal(srv_http_status_for(SRV_DEADLINE_EXCEEDED), 504);
    assert_int_equal(srv_http_status_for((enum srv_code)99), 500);
    /* never a success for an error */
    for (int c = SRV_CANCELLED; c <= SRV_UNAUTHENTICATED; c++) {
        assert_true(srv_http_status_for((enum srv_code)c) >= 400);
    }
}

static void test_cors_origins_match_exactly(void **state)
{
    static ct_config cfg;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.http_cors_origins[0], sizeof(cfg.http_cors_origins[0]), "http://localhost:8080");
    snprintf(cfg.http_cors_origins[1], sizeof(cfg.http_cors_origins[1]), "https://app.example");
    cfg.http_cors_origin_count = 2;
    assert_true(srv_http_origin_allowed(&cfg, "http://localhost:8080"));
    assert_true(srv_http_origin_allowed(&cfg, "https://app.example"));
    assert_false(srv_http_origin_allowed(&cfg, "http://localhost:8081"));
    assert_false(srv_http_origin_allowed(&cfg, "http://localhost:8080/"));
    assert_false(srv_http_origin_allowed(&cfg, "HTTPS://APP.EXAMPLE"));
    assert_false(srv_http_origin_allowed(&cfg, "https://app.example.evil"));
    assert_false(srv_http_origin_allowed(&cfg, "null"));
    assert_false(srv_http_origin_allowed(&cfg, ""));
    assert_false(srv_http_origin_allowed(&cfg, NULL));
    snprintf(cfg.http_cors_origins[2], sizeof(cfg.http_cors_origins[2]), "*");
    cfg.http_cors_origin_count = 3;
    assert_true(srv_http_origin_allowed(&cfg, "http://anything"));
    cfg.http_cors_origin_count = 0;
    assert_false(srv_http_origin_allowed(&cfg, "http://localhost:8080"));
}

static void test_rfc3339_times(void **state)
{
    char out[32];

    (void)state;
    assert_int_equal(srv_http_format_time(0, out, sizeof(out)), 0);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    assert_int_equal(srv_http_format_time(1714564800, out, sizeof(out)), 0);
    assert_string_equal(out, "2024-05-01T12:00:00Z");
    assert_int_equal(srv_http_format_time(0, out, 5), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_match_exactly_and_compat_off_hides_only_the_seed_routes),
        cmocka_unit_test(test_user_route_takes_the_username_segment),
        cmocka_unit_test(test_empty_username_goes_to_the_handler),
        cmocka_unit_test(test_username_is_percent_decoded),
        cmocka_unit_test(test_bad_percent_encoding_is_invalid_argument),
        cmocka_unit_test(test_username_longer_than_the_buffer_is_refused),
        cmocka_unit_test(test_methods_per_route),
        cmocka_unit_test(test_ttl_parsing),
        cmocka_unit_test(test_renew_body_parsing),
        cmocka_unit_test(test_renew_body_refusals),
        cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_cors_origins_match_exactly),
        cmocka_unit_test(test_rfc3339_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
