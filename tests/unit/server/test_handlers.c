/* Unit tests for server/handlers.c: the TokenService rules, called as plain
 * functions with a fixed clock, no network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "expect_status.h"
#include "handler_fixture.h"
#include "handlers.h"

#define OTHER_CERT "fedcba9876543210fedcba9876543210"

static ct_config cfg;
static ct_token tok;
static srv_context ctx;
static const srv_caller admin = {.name = "admin", .methods = CT_METHOD_ALL};
static const srv_caller backend = {.name = "backend",
                                   .methods = CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN) |
                                              CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN)};

static int setup(void **state)
{
    (void)state;
    fixture_context(&cfg, &ctx);
    cfg.identity = CT_IDENTITY_USERNAME;
    return 0;
}

static srv_token_reply app_reply;
static srv_status app_status;

/* GetAppToken as who, into app_reply and app_status. */
static int app_token(const srv_caller *who, uint32_t ttl)
{
    return srv_get_app_token(&ctx, who, ttl, &app_reply, &app_status);
}

static void app_token_uses_default_ttl_and_app_privilege(void **state)
{
    (void)state;
    assert_int_equal(app_token(&admin, 0), SRV_OK);
    fixture_parse_ok(app_reply.token, &tok);
    assert_int_equal(tok.issue_ts, NOW);
    assert_int_equal(tok.expire, 3600);
    assert_int_equal(tok.services[0].privileges[0].id, CT_CHAT_PRIVILEGE_APP);
    assert_int_equal(app_reply.expire_time, NOW + 3600);
    assert_int_equal(app_reply.kind, SRV_KIND_APP);
}

static void app_token_needs_its_permission(void **state)
{
    (void)state;
    expect_status(app_token(&backend, 0), &app_status, SRV_PERMISSION_DENIED, "GetAppToken");
}

static void ttl_above_the_maximum_names_the_limit(void **state)
{
    (void)state;
    expect_status(app_token(&admin, 7201), &app_status, SRV_INVALID_ARGUMENT, "7200");
    assert_int_equal(app_token(&admin, 7200), SRV_OK);
    fixture_parse_ok(app_reply.token, &tok);
    assert_int_equal(tok.expire, 7200);
}

static srv_user_request finished;
static int done_calls;

static void record_done(srv_user_request *req)
{
    finished = *req;
    done_calls++;
}

static void user_token(const srv_caller *caller, const char *name, uint32_t ttl)
{
    static srv_user_request req;
    done_calls = 0;
    srv_get_user_token(&ctx, caller, name, strlen(name), ttl, INT64_MAX, &req, record_done, NULL);
    assert_int_equal(done_calls, 1);
}

static void user_token_carries_the_normalised_username(void **state)
{
    (void)state;
    user_token(&backend, "Alice.Smith_01", 600);
    assert_int_equal(finished.status.code, SRV_OK);
    assert_string_equal(finished.reply.user_id, "alice.smith_01");
    assert_int_equal(finished.reply.registered, 0);
    fixture_parse_ok(finished.reply.token, &tok);
    assert_int_equal(tok.services[0].privileges[0].id, CT_CHAT_PRIVILEGE_USER);
    assert_memory_equal(tok.services[0].fields[0].bytes.data, "alice.smith_01", 14);
    assert_int_equal(tok.expire, 600);
}

static void invalid_usernames_are_refused_before_any_work(void **state)
{
    (void)state;
    user_token(&backend, "bad name", 0);
    assert_int_equal(finished.status.code, SRV_INVALID_ARGUMENT);
    user_token(&backend, "", 0);
    assert_int_equal(finished.status.code, SRV_INVALID_ARGUMENT);
    user_token(&backend, "a234567890123456789012345678901234567890123456789012345678901234X", 0);
    assert_int_equal(finished.status.code, SRV_INVALID_ARGUMENT);
}

static void user_token_needs_its_permission(void **state)
{
    static const srv_caller app_only = {.name = "app-only",
                                        .methods = CT_METHOD_BIT(CT_METHOD_GET_APP_TOKEN)};
    (void)state;
    user_token(&app_only, "alice", 0);
    assert_int_equal(finished.status.code, SRV_PERMISSION_DENIED);
}

static void uuid_mode_without_directory_is_unavailable(void **state)
{
    (void)state;
    cfg.identity = CT_IDENTITY_UUID;
    user_token(&backend, "alice", 0);
    assert_int_equal(finished.status.code, SRV_UNAVAILABLE);
    assert_non_null(strstr(finished.status.message, "directory"));
}

static void build(const char *cert, const char *user, uint32_t issue_ts, uint32_t ttl, char *out)
{
    char err[128];
    int rc = user == NULL ? ct_chat_build_app_token(APP_ID, cert, issue_ts, 7, ttl, out,
                                                    CT_BUILD_MAX_CHARS, NULL, err, sizeof(err))
                          : ct_chat_build_user_token(APP_ID, cert, user, issue_ts, 7, ttl, out,
                                                     CT_BUILD_MAX_CHARS, NULL, err, sizeof(err));
    assert_int_equal(rc, CT_OK);
}

static int renew(const srv_caller *caller, const char *token, uint32_t ttl, srv_token_reply *reply,
                 srv_status *status)
{
    return srv_renew_token(&ctx, caller, token, strlen(token), ttl, reply, status);
}

static void renew_keeps_the_identity_and_signs_with_the_current_certificate(void **state)
{
    char old[CT_BUILD_MAX_CHARS];
    srv_token_reply reply;
    srv_status status;
    (void)state;
    build(OLD_CERT, "bob", NOW - 100, 600, old);
    assert_int_equal(renew(&backend, old, 0, &reply, &status), SRV_OK);
    assert_int_equal(reply.kind, SRV_KIND_USER);
    assert_string_equal(reply.user_id, "bob");
    fixture_parse_ok(reply.token, &tok);
    assert_int_equal(tok.issue_ts, NOW);
    assert_int_equal(tok.expire, 3600);
}

static void renew_refuses_other_certificates_and_apps(void **state)
{
    char token[CT_BUILD_MAX_CHARS];
    char err[128];
    srv_token_reply reply;
    srv_status status;
    (void)state;
    build(OTHER_CERT, "bob", NOW, 600, token);
    assert_int_equal(renew(&backend, token, 0, &reply, &status), SRV_PERMISSION_DENIED);
    assert_int_equal(ct_chat_build_user_token("00000000000000000000000000000000", CERT, "bob", NOW,
                                              1, 600, token, sizeof(token), NULL, err, sizeof(err)),
                     CT_OK);
    expect_status(renew(&backend, token, 0, &reply, &status), &status, SRV_PERMISSION_DENIED,
                  "another app");
}

static void renew_of_an_app_token_needs_get_app_token(void **state)
{
    char token[CT_BUILD_MAX_CHARS];
    srv_token_reply reply;
    srv_status status;
    (void)state;
    build(CERT, NULL, NOW, 600, token);
    assert_int_equal(renew(&backend, token, 0, &reply, &status), SRV_PERMISSION_DENIED);
    assert_int_equal(renew(&admin, token, 0, &reply, &status), SRV_OK);
    assert_int_equal(reply.kind, SRV_KIND_APP);
    assert_string_equal(reply.user_id, "");
}

/* Renews carol's 600 s token issued at issue_ts, as backend. */
static int renew_issued_at(uint32_t issue_ts, srv_status *status)
{
    char token[CT_BUILD_MAX_CHARS];
    srv_token_reply reply;

    build(CERT, "carol", issue_ts, 600, token);
    return renew(&backend, token, 0, &reply, status);
}

static void renew_honours_the_grace_period(void **state)
{
    srv_status status;
    (void)state;
    /* expired 60 s ago: exactly at the grace limit, still renewable */
    assert_int_equal(renew_issued_at(NOW - 660, &status), SRV_OK);
    /* expired 61 s ago: the client must log in again */
    expect_status(renew_issued_at(NOW - 661, &status), &status, SRV_FAILED_PRECONDITION,
                  "log in again");
}

static void renew_refuses_malformed_and_foreign_shapes(void **state)
{
    ct_privilege rtc_priv = {1, 600};
    ct_privilege chat_priv = {CT_CHAT_PRIVILEGE_USER, 600};
    const char *rtc_strings[] = {"room", "1"};
    const char *chat_strings[] = {"dave"};
    ct_service_spec two[] = {{CT_SERVICE_RTC, 1, &rtc_priv, 2, rtc_strings},
                             {CT_SERVICE_CHAT, 1, &chat_priv, 1, chat_strings}};
    ct_build_params p = {APP_ID, CERT, NOW, 3, 600, 2, two};
    char token[CT_BUILD_MAX_CHARS];
    srv_token_reply reply;
    srv_status status;
    (void)state;
    assert_int_equal(renew(&backend, "007garbage", 0, &reply, &status), SRV_INVALID_ARGUMENT);
    assert_int_equal(renew(&backend, "not a token", 0, &reply, &status), SRV_INVALID_ARGUMENT);
    assert_int_equal(ct_token_build(&p, token, sizeof(token), NULL, NULL, 0), CT_OK);
    assert_int_equal(renew(&backend, token, 0, &reply, &status), SRV_INVALID_ARGUMENT);
    assert_string_equal(status.message, "token holds services besides RTC and RTM: not a token "
                                        "this service issues, so it is not renewed");
}

/* the renewed user id goes into a token and a proto string: only ids this
 * service issues (issue 10, item 5) */
static void renew_refuses_user_ids_it_does_not_issue(void **state)
{
    static const char *const not_usernames[] = {"Bob", "a b", "caf\xc3\xa9", "\xff\xfe", ".", ".."};
    char token[CT_BUILD_MAX_CHARS];
    srv_token_reply reply;
    srv_status status;
    (void)state;
    for (size_t i = 0; i < sizeof(not_usernames) / sizeof(not_usernames[0]); i++) {
        build(CERT, not_usernames[i], NOW, 600, token);
        expect_status(renew(&backend, token, 0, &reply, &status), &status, SRV_INVALID_ARGUMENT,
                      "user id is not a");
    }
    cfg.identity = CT_IDENTITY_UUID;
    build(CERT, "4759aa70-eba5-11e8-925f-6fa0510823ba", NOW, 600, token);
    assert_int_equal(renew(&backend, token, 0, &reply, &status), SRV_OK);
    assert_string_equal(reply.user_id, "4759aa70-eba5-11e8-925f-6fa0510823ba");
    build(CERT, "not/a uuid", NOW, 600, token);
    expect_status(renew(&backend, token, 0, &reply, &status), &status, SRV_INVALID_ARGUMENT,
                  "not a Chat UUID");
}

static void renew_needs_its_permission(void **state)
{
    static const srv_caller user_only = {.name = "user-only",
                                         .methods = CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN)};
    char token[CT_BUILD_MAX_CHARS];
    srv_token_reply reply;
    srv_status status;
    (void)state;
    build(CERT, "erin", NOW, 600, token);
    assert_int_equal(renew(&user_only, token, 0, &reply, &status), SRV_PERMISSION_DENIED);
}

static void code_names_match_grpc(void **state)
{
    (void)state;
    assert_string_equal(srv_code_name(SRV_OK), "OK");
    assert_string_equal(srv_code_name(SRV_FAILED_PRECONDITION), "FAILED_PRECONDITION");
    assert_string_equal(srv_code_name(SRV_UNAUTHENTICATED), "UNAUTHENTICATED");
}

/* An end user (auth.jwt role end_user) whose username claim said alice. */
static const srv_caller alice = {.name = "app-users",
                                 .methods = CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN) |
                                            CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN),
                                 .subject = "user-1",
                                 .end_user = 1,
                                 .user = "alice"};

static void end_user_gets_and_renews_only_its_own_user_token(void **state)
{
    srv_caller nameless = alice;
    srv_token_reply reply;
    srv_status status;
    char own[CT_BUILD_MAX_CHARS];
    (void)state;

    user_token(&alice, "ALICE", 0);
    assert_int_equal(finished.status.code, SRV_OK);
    memcpy(own, finished.reply.token, sizeof(own));
    user_token(&alice, "bob", 0);
    assert_int_equal(finished.status.code, SRV_PERMISSION_DENIED);
    assert_string_equal(finished.status.message,
                        "end user 'alice' may get tokens only for itself, not for username 'bob'");
    assert_int_equal(srv_renew_token(&ctx, &alice, own, strlen(own), 0, &reply, &status), SRV_OK);
    user_token(&backend, "bob", 0);
    assert_int_equal(srv_renew_token(&ctx, &alice, finished.reply.token,
                                     strlen(finished.reply.token), 0, &reply, &status),
                     SRV_PERMISSION_DENIED);
    /* a claim that is no username: refused, saying why */
    nameless.user[0] = '\0';
    snprintf(nameless.user_problem, sizeof(nameless.user_problem), "the claim is no username");
    user_token(&nameless, "alice", 0);
    assert_int_equal(finished.status.code, SRV_PERMISSION_DENIED);
    assert_string_equal(finished.status.message, "the claim is no username");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(end_user_gets_and_renews_only_its_own_user_token, setup),
        cmocka_unit_test_setup(app_token_uses_default_ttl_and_app_privilege, setup),
        cmocka_unit_test_setup(app_token_needs_its_permission, setup),
        cmocka_unit_test_setup(ttl_above_the_maximum_names_the_limit, setup),
        cmocka_unit_test_setup(user_token_carries_the_normalised_username, setup),
        cmocka_unit_test_setup(invalid_usernames_are_refused_before_any_work, setup),
        cmocka_unit_test_setup(user_token_needs_its_permission, setup),
        cmocka_unit_test_setup(uuid_mode_without_directory_is_unavailable, setup),
        cmocka_unit_test_setup(renew_keeps_the_identity_and_signs_with_the_current_certificate,
                               setup),
        cmocka_unit_test_setup(renew_refuses_other_certificates_and_apps, setup),
        cmocka_unit_test_setup(renew_of_an_app_token_needs_get_app_token, setup),
        cmocka_unit_test_setup(renew_honours_the_grace_period, setup),
        cmocka_unit_test_setup(renew_refuses_malformed_and_foreign_shapes, setup),
        cmocka_unit_test_setup(renew_refuses_user_ids_it_does_not_issue, setup),
        cmocka_unit_test_setup(renew_needs_its_permission, setup),
        cmocka_unit_test_setup(code_names_match_grpc, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
