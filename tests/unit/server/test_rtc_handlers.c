/* Unit tests for server/rtc_handlers.c: GetRtcToken, GetRtmToken and the
 * renewal of RTC and RTM tokens, as plain functions with a fixed clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "expect_status.h"
#include "handler_fixture.h"
#include "rtc_handlers.h"

static ct_config cfg;
static ct_token tok;
static srv_context ctx;
static const srv_caller media = {.name = "media",
                                 .methods = CT_METHOD_BIT(CT_METHOD_GET_RTC_TOKEN) |
                                            CT_METHOD_BIT(CT_METHOD_GET_RTM_TOKEN)};
static const srv_caller renewer = {.name = "renewer",
                                   .methods = CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN)};
static const srv_caller chat_only = {.name = "chat",
                                     .methods = CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN) |
                                                CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN)};
static srv_token_reply reply;
static srv_status status;

static int setup(void **state)
{
    (void)state;
    fixture_context(&cfg, &ctx);
    memset(&reply, 0, sizeof(reply));
    return 0;
}

static void assert_field(const ct_field *f, const char *want)
{
    assert_int_equal(f->bytes.len, strlen(want));
    assert_memory_equal(f->bytes.data, want, strlen(want));
}

static srv_rtc_request uid_request(const char *channel, uint32_t uid, int role)
{
    srv_rtc_request r;

    memset(&r, 0, sizeof(r));
    r.channel_name = channel;
    r.user = SRV_RTC_USER_UID;
    r.uid = uid;
    r.role = role;
    return r;
}

static srv_rtc_request account_request(const char *channel, const char *account, int role)
{
    srv_rtc_request r = uid_request(channel, 0, role);

    r.user = SRV_RTC_USER_ACCOUNT;
    r.account = account;
    return r;
}

static int rtc(const srv_caller *caller, const srv_rtc_request *r)
{
    return srv_get_rtc_token(&ctx, caller, r, &reply, &status);
}

/* Expects INVALID_ARGUMENT with exactly this message. */
static void expect_invalid(const srv_rtc_request *r, const char *message)
{
    assert_int_equal(rtc(&media, r), SRV_INVALID_ARGUMENT);
    assert_string_equal(status.message, message);
}

static void publisher_with_a_uid_gets_join_and_publish_for_the_token_lifetime(void **state)
{
    srv_rtc_request r = uid_request("room 1", 42, CT_RTC_ROLE_PUBLISHER);
    (void)state;
    r.ttl_seconds = 600;
    assert_int_equal(rtc(&media, &r), SRV_OK);
    assert_int_equal(reply.kind, SRV_KIND_RTC);
    assert_string_equal(reply.user_id, "42");
    assert_int_equal(reply.expire_time, NOW + 600);
    fixture_parse_ok(reply.token, &tok);
    assert_int_equal(tok.issue_ts, NOW);
    assert_int_equal(tok.expire, 600);
    assert_int_equal(tok.service_count, 1);
    assert_int_equal(tok.services[0].type, CT_SERVICE_RTC);
    assert_field(&tok.services[0].fields[0], "room 1");
    assert_field(&tok.services[0].fields[1], "42");
    assert_int_equal(tok.services[0].privilege_count, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tok.services[0].privileges[i].id, i + 1);
        assert_int_equal(tok.services[0].privileges[i].value, 600);
    }
}

static void subscriber_with_an_account_gets_join_for_the_privilege_ttl(void **state)
{
    srv_rtc_request r = account_request("room", "alice@example", CT_RTC_ROLE_SUBSCRIBER);
    (void)state;
    r.privilege_ttl_seconds = 300;
    assert_int_equal(rtc(&media, &r), SRV_OK);
    assert_string_equal(reply.user_id, "alice@example");
    fixture_parse_ok(reply.token, &tok);
    assert_int_equal(tok.expire, 3600); /* ttl 0: the default */
    assert_field(&tok.services[0].fields[1], "alice@example");
    assert_int_equal(tok.services[0].privilege_count, 1);
    assert_int_equal(tok.services[0].privileges[0].id, CT_RTC_PRIVILEGE_JOIN_CHANNEL);
    assert_int_equal(tok.services[0].privileges[0].value, 300);
}

static void uid_zero_and_the_empty_account_let_anyone_join(void **state)
{
    srv_rtc_request by_uid = uid_request("room", 0, CT_RTC_ROLE_PUBLISHER);
    srv_rtc_request by_account = account_request("room", "", CT_RTC_ROLE_PUBLISHER);
    (void)state;
    assert_int_equal(rtc(&media, &by_uid), SRV_OK);
    fixture_parse_ok(reply.token, &tok);
    assert_int_equal(tok.services[0].fields[1].bytes.len, 0);
    assert_int_equal(rtc(&media, &by_account), SRV_OK);
    fixture_parse_ok(reply.token, &tok);
    assert_int_equal(tok.services[0].fields[1].bytes.len, 0);
}

static void with_rtm_adds_the_login_privilege_for_the_same_user(void **state)
{
    srv_rtc_request r = uid_request("room", 7, CT_RTC_ROLE_SUBSCRIBER);
    (void)state;
    r.with_rtm = 1;
    r.ttl_seconds = 900;
    r.privilege_ttl_seconds = 600;
    assert_int_equal(rtc(&media, &r), SRV_OK);
    fixture_parse_ok(reply.token, &tok);
    assert_int_equal(tok.service_count, 2);
    assert_int_equal(tok.services[1].type, CT_SERVICE_RTM);
    assert_field(&tok.services[1].fields[0], "7");
    assert_int_equal(tok.services[1].privileges[0].id, CT_RTM_PRIVILEGE_LOGIN);
    assert_int_equal(tok.services[1].privileges[0].value, 900);
    assert_int_equal(tok.services[0].privileges[0].value, 600);
}

static void every_invalid_rtc_request_names_what_is_wrong(void **state)
{
    char long_channel[66], long_account[257];
    srv_rtc_request r = uid_request("room", 1, 0);
    (void)state;
    expect_invalid(&r, "role must be RTC_ROLE_PUBLISHER (1) or RTC_ROLE_SUBSCRIBER (2), got 0");
    r.role = 3;
    expect_invalid(&r, "role must be RTC_ROLE_PUBLISHER (1) or RTC_ROLE_SUBSCRIBER (2), got 3");
    r = uid_request("room", 1, CT_RTC_ROLE_PUBLISHER);
    r.user = SRV_RTC_USER_NONE;
    expect_invalid(&r, "set uid (0 lets any uid join) or account (\"\" lets any user join)");
    r = uid_request("", 1, CT_RTC_ROLE_PUBLISHER);
    expect_invalid(&r, "channel_name must not be empty");
    memset(long_channel, 'c', 65);
    long_channel[65] = '\0';
    r.channel_name = long_channel;
    expect_invalid(&r, "channel_name must be at most 64 bytes");
    r.channel_name = "room/1";
    expect_status(rtc(&media, &r), &status, SRV_INVALID_ARGUMENT,
                  "channel_name may hold only a-z A-Z 0-9");
    memset(long_account, 'a', 256);
    long_account[256] = '\0';
    r = account_request("room", long_account, CT_RTC_ROLE_PUBLISHER);
    expect_invalid(&r, "account must be at most 255 bytes");
    r = uid_request("room", 1, CT_RTC_ROLE_PUBLISHER);
    r.ttl_seconds = 7201;
    expect_invalid(&r, "ttl_seconds must be at most 7200 (the configured maximum), got 7201");
    r.ttl_seconds = 600;
    r.privilege_ttl_seconds = 601;
    expect_invalid(&r, "privilege_ttl_seconds must be at most the token's ttl (600 s), got 601");
    r = uid_request("room", 0, CT_RTC_ROLE_PUBLISHER);
    r.with_rtm = 1;
    expect_invalid(&r, "with_rtm needs a non-zero uid or a non-empty account: it is the RTM "
                       "user id");
    r = account_request("room", "two words", CT_RTC_ROLE_PUBLISHER);
    r.with_rtm = 1;
    expect_invalid(&r, "with_rtm: the account is the RTM user id, and user_id may hold only "
                       "printable ASCII without space (byte 3)");
}

static void rtc_and_rtm_need_their_permissions(void **state)
{
    srv_rtc_request r = uid_request("room", 1, CT_RTC_ROLE_PUBLISHER);
    (void)state;
    assert_int_equal(rtc(&chat_only, &r), SRV_PERMISSION_DENIED);
    assert_string_equal(status.message, "caller 'chat' may not call GetRtcToken");
    assert_int_equal(srv_get_rtm_token(&ctx, &chat_only, "alice", 0, &reply, &status),
                     SRV_PERMISSION_DENIED);
    assert_string_equal(status.message, "caller 'chat' may not call GetRtmToken");
}

static void rtm_token_holds_the_login_privilege_for_the_user(void **state)
{
    (void)state;
    assert_int_equal(srv_get_rtm_token(&ctx, &media, "alice", 1200, &reply, &status), SRV_OK);
    assert_int_equal(reply.kind, SRV_KIND_RTM);
    assert_string_equal(reply.user_id, "alice");
    assert_int_equal(reply.expire_time, NOW + 1200);
    fixture_parse_ok(reply.token, &tok);
    assert_int_equal(tok.service_count, 1);
    assert_int_equal(tok.services[0].type, CT_SERVICE_RTM);
    assert_field(&tok.services[0].fields[0], "alice");
    assert_int_equal(tok.services[0].privileges[0].value, 1200);
}

static void invalid_rtm_user_ids_are_refused(void **state)
{
    char long_id[66];
    (void)state;
    assert_int_equal(srv_get_rtm_token(&ctx, &media, "", 0, &reply, &status), SRV_INVALID_ARGUMENT);
    assert_string_equal(status.message, "user_id must be 1..64 bytes");
    memset(long_id, 'u', 65);
    long_id[65] = '\0';
    assert_int_equal(srv_get_rtm_token(&ctx, &media, long_id, 0, &reply, &status),
                     SRV_INVALID_ARGUMENT);
    assert_int_equal(srv_get_rtm_token(&ctx, &media, "null", 0, &reply, &status),
                     SRV_INVALID_ARGUMENT);
    assert_string_equal(status.message, "user_id must not be \"null\"");
    assert_int_equal(srv_get_rtm_token(&ctx, &media, "alice", 7201, &reply, &status),
                     SRV_INVALID_ARGUMENT);
}

static int renew(const char *token, uint32_t ttl)
{
    return srv_renew_token(&ctx, &renewer, token, strlen(token), ttl, &reply, &status);
}

static void renew_keeps_channel_user_role_rtm_and_the_privilege_ratio(void **state)
{
    char old[CT_BUILD_MAX_CHARS];
    srv_rtc_request r = account_request("room", "bob", CT_RTC_ROLE_PUBLISHER);
    (void)state;
    r.ttl_seconds = 1000;
    r.privilege_ttl_seconds = 250;
    r.with_rtm = 1;
    assert_int_equal(rtc(&media, &r), SRV_OK);
    memcpy(old, reply.token, sizeof(old));
    assert_int_equal(renew(old, 2000), SRV_OK);
    assert_int_equal(reply.kind, SRV_KIND_RTC);
    assert_string_equal(reply.user_id, "bob");
    assert_int_equal(reply.expire_time, NOW + 2000);
    fixture_parse_ok(reply.token, &tok);
    assert_int_equal(tok.expire, 2000);
    assert_int_equal(tok.service_count, 2);
    assert_field(&tok.services[0].fields[0], "room");
    assert_field(&tok.services[0].fields[1], "bob");
    assert_int_equal(tok.services[0].privilege_count, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tok.services[0].privileges[i].value, 500);
    }
    assert_field(&tok.services[1].fields[0], "bob");
    assert_int_equal(tok.services[1].privileges[0].value, 2000);
}

static void renew_of_a_subscriber_token_signed_with_the_previous_certificate(void **state)
{
    ct_rtc_spec spec = {"room", "5", CT_RTC_ROLE_SUBSCRIBER, 600, 0};
    char old[CT_BUILD_MAX_CHARS];
    (void)state;
    assert_int_equal(ct_rtc_build_token(APP_ID, OLD_CERT, &spec, NOW - 100, 9, 600, old,
                                        sizeof(old), NULL, NULL, 0),
                     CT_OK);
    assert_int_equal(renew(old, 0), SRV_OK);
    fixture_parse_ok(reply.token, &tok);
    assert_int_equal(tok.expire, 3600);
    assert_int_equal(tok.services[0].privilege_count, 1);
    assert_int_equal(tok.services[0].privileges[0].value, 3600);
    assert_string_equal(reply.user_id, "5");
}

static void renew_of_an_rtm_token_keeps_the_user_and_honours_the_grace(void **state)
{
    char old[CT_BUILD_MAX_CHARS];
    (void)state;
    assert_int_equal(ct_rtm_build_token(APP_ID, CERT, "carol", NOW - 660, 9, 600, old, sizeof(old),
                                        NULL, NULL, 0),
                     CT_OK);
    assert_int_equal(renew(old, 100), SRV_OK);
    assert_int_equal(reply.kind, SRV_KIND_RTM);
    assert_string_equal(reply.user_id, "carol");
    fixture_parse_ok(reply.token, &tok);
    assert_field(&tok.services[0].fields[0], "carol");
    assert_int_equal(tok.services[0].privileges[0].value, 100);
    assert_int_equal(ct_rtm_build_token(APP_ID, CERT, "carol", NOW - 661, 9, 600, old, sizeof(old),
                                        NULL, NULL, 0),
                     CT_OK);
    assert_int_equal(renew(old, 100), SRV_FAILED_PRECONDITION);
}

/* A token of the given services, signed with CERT. */
static void build(const ct_service_spec *services, uint16_t count, uint32_t expire, char *out)
{
    ct_build_params p = {APP_ID, CERT, NOW, 3, expire, count, services};

    assert_int_equal(ct_token_build(&p, out, CT_BUILD_MAX_CHARS, NULL, NULL, 0), CT_OK);
}

static void expect_not_renewed(const char *token, const char *what)
{
    char want[SRV_MESSAGE_MAX];

    snprintf(want, sizeof(want),
             "token holds %s: not a token this service issues, so it is not renewed", what);
    assert_int_equal(renew(token, 0), SRV_INVALID_ARGUMENT);
    assert_string_equal(status.message, want);
}

static void renew_refuses_what_we_do_not_issue(void **state)
{
    const char *rtc_strings[] = {"room", "dave"};
    const char *rtm_strings[] = {"dave"};
    const char *other_user[] = {"erin"};
    const ct_privilege uneven[] = {{1, 600}, {2, 500}};
    const ct_privilege audio_only[] = {{2, 600}};
    const ct_privilege join_data[] = {{1, 600}, {4, 600}};
    const ct_privilege join[] = {{1, 600}};
    const ct_privilege join_long[] = {{1, 900}};
    const ct_privilege join_zero[] = {{1, 0}};
    const ct_privilege login[] = {{1, 600}};
    const ct_privilege login_short[] = {{1, 300}};
    char token[CT_BUILD_MAX_CHARS];
    (void)state;
    build((ct_service_spec[]){{CT_SERVICE_RTC, 2, uneven, 2, rtc_strings}}, 1, 600, token);
    expect_not_renewed(token, "RTC privileges with different lifetimes");
    build((ct_service_spec[]){{CT_SERVICE_RTC, 1, audio_only, 2, rtc_strings}}, 1, 600, token);
    expect_not_renewed(token, "RTC privileges of neither a publisher nor a subscriber");
    build((ct_service_spec[]){{CT_SERVICE_RTC, 1, join_long, 2, rtc_strings}}, 1, 600, token);
    expect_not_renewed(token, "RTC privileges that outlive the token");
    build((ct_service_spec[]){{CT_SERVICE_RTC, 1, join_zero, 2, rtc_strings}}, 1, 600, token);
    expect_not_renewed(token, "RTC privileges without a lifetime");
    build((ct_service_spec[]){{CT_SERVICE_RTM, 1, login_short, 1, rtm_strings}}, 1, 600, token);
    expect_not_renewed(token, "RTM privileges other than login for the token's lifetime");
    build((ct_service_spec[]){{CT_SERVICE_RTC, 1, join, 2, rtc_strings},
                              {CT_SERVICE_RTM, 1, login, 1, other_user}},
          2, 600, token);
    expect_not_renewed(token, "an RTM user id that is not the RTC account");
    /* agora-token-service's RTM token with a channel (stream data) */
    build((ct_service_spec[]){{CT_SERVICE_RTC, 2, join_data, 2, rtc_strings},
                              {CT_SERVICE_RTM, 1, login, 1, rtm_strings}},
          2, 600, token);
    expect_not_renewed(token, "RTC privileges of neither a publisher nor a subscriber");
    build((ct_service_spec[]){{CT_SERVICE_RTC, 1, join, 2, rtc_strings},
                              {CT_SERVICE_STREAMING, 1, join, 2, rtc_strings}},
          2, 600, token);
    expect_not_renewed(token, "services besides RTC and RTM");
}

static void end_user_gets_rtc_and_rtm_tokens_only_as_itself_in_its_channels(void **state)
{
    static const srv_caller alice = {.name = "app-users",
                                     .methods = CT_METHOD_BIT(CT_METHOD_GET_RTC_TOKEN) |
                                                CT_METHOD_BIT(CT_METHOD_GET_RTM_TOKEN),
                                     .end_user = 1,
                                     .user = "alice",
                                     .rtc_channel_prefix = "room-"};
    srv_rtc_request own = account_request("room-1", "alice", CT_RTC_ROLE_PUBLISHER);
    srv_rtc_request other = account_request("room-1", "bob", CT_RTC_ROLE_PUBLISHER);
    srv_rtc_request by_uid = uid_request("room-1", 7, CT_RTC_ROLE_PUBLISHER);
    srv_rtc_request lobby = account_request("lobby", "alice", CT_RTC_ROLE_PUBLISHER);
    (void)state;

    assert_int_equal(rtc(&alice, &own), SRV_OK);
    assert_int_equal(rtc(&alice, &other), SRV_PERMISSION_DENIED);
    assert_int_equal(rtc(&alice, &by_uid), SRV_PERMISSION_DENIED);
    assert_string_equal(status.message,
                        "an end user gets RTC tokens only with account set to its username");
    assert_int_equal(rtc(&alice, &lobby), SRV_PERMISSION_DENIED);
    assert_string_equal(status.message, "end users of 'app-users' may get RTC tokens only for "
                                        "channels starting with 'room-'");
    assert_int_equal(srv_get_rtm_token(&ctx, &alice, "alice", 0, &reply, &status), SRV_OK);
    assert_int_equal(srv_get_rtm_token(&ctx, &alice, "bob", 0, &reply, &status),
                     SRV_PERMISSION_DENIED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(end_user_gets_rtc_and_rtm_tokens_only_as_itself_in_its_channels,
                               setup),
        cmocka_unit_test_setup(publisher_with_a_uid_gets_join_and_publish_for_the_token_lifetime,
                               setup),
        cmocka_unit_test_setup(subscriber_with_an_account_gets_join_for_the_privilege_ttl, setup),
        cmocka_unit_test_setup(uid_zero_and_the_empty_account_let_anyone_join, setup),
        cmocka_unit_test_setup(with_rtm_adds_the_login_privilege_for_the_same_user, setup),
        cmocka_unit_test_setup(every_invalid_rtc_request_names_what_is_wrong, setup),
        cmocka_unit_test_setup(rtc_and_rtm_need_their_permissions, setup),
        cmocka_unit_test_setup(rtm_token_holds_the_login_privilege_for_the_user, setup),
        cmocka_unit_test_setup(invalid_rtm_user_ids_are_refused, setup),
        cmocka_unit_test_setup(renew_keeps_channel_user_role_rtm_and_the_privilege_ratio, setup),
        cmocka_unit_test_setup(renew_of_a_subscriber_token_signed_with_the_previous_certificate,
                               setup),
        cmocka_unit_test_setup(renew_of_an_rtm_token_keeps_the_user_and_honours_the_grace, setup),
        cmocka_unit_test_setup(renew_refuses_what_we_do_not_issue, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
