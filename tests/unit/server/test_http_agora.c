/* Unit tests for server/http_agora.c: agora-token-service's paths (with
 * gin's trailing-slash redirects), its parameters and its POST body, as
 * requests of our handlers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http_agora.h"

static srv_agora_match m;
static srv_agora_ask ask;
static srv_status status;

static void match(const char *path, enum srv_agora_route route, int redirect)
{
    assert_int_equal(srv_agora_match_path(path, &m, &status), SRV_OK);
    assert_int_equal(m.route, route);
    assert_int_equal(m.redirect, redirect);
}

static void matches_the_routes_with_their_trailing_slashes(void **state)
{
    (void)state;
    match("/rtc/room%201/publisher/uid/42/", SRV_AGORA_RTC, 0);
    assert_string_equal(m.segments[0], "room 1");
    assert_string_equal(m.segments[1], "publisher");
    assert_string_equal(m.segments[2], "uid");
    assert_string_equal(m.segments[3], "42");
    match("/rtc/room/publisher/uid//", SRV_AGORA_RTC, 0);
    assert_string_equal(m.segments[3], "");
    match("/rtm/alice/", SRV_AGORA_RTM, 0);
    assert_string_equal(m.segments[0], "alice");
    match("/chat/app/", SRV_AGORA_CHAT_APP, 0);
    match("/chat/account/bob/", SRV_AGORA_CHAT_ACCOUNT, 0);
    match("/getToken", SRV_AGORA_GET_TOKEN, 0);
    match("/ping", SRV_AGORA_PING, 0);
}

static void redirects_like_gin_and_leaves_the_rest_alone(void **state)
{
    (void)state;
    match("/rtc/room/publisher/uid/42", SRV_AGORA_RTC, 1);
    assert_string_equal(m.location, "/rtc/room/publisher/uid/42/");
    match("/chat/app", SRV_AGORA_CHAT_APP, 1);
    assert_string_equal(m.location, "/chat/app/");
    match("/ping/", SRV_AGORA_PING, 1);
    assert_string_equal(m.location, "/ping");
    match("/getToken/", SRV_AGORA_GET_TOKEN, 1);
    assert_string_equal(m.location, "/getToken");
    /* no such routes (agora-token-service answers 404) */
    match("/chat/account/", SRV_AGORA_NONE, 0);
    match("/chat/invalid/", SRV_AGORA_NONE, 0);
    match("/rtm/", SRV_AGORA_NONE, 0);
    match("/rtc/room/publisher/uid/", SRV_AGORA_NONE, 0);
    match("/rtc/a/b/c/d/e/", SRV_AGORA_NONE, 0);
    match("/chat/app/token", SRV_AGORA_NONE, 0); /* our own route */
    match("/healthz", SRV_AGORA_NONE, 0);
    match("/", SRV_AGORA_NONE, 0);
    assert_int_equal(srv_agora_match_path("/rtm/a%2/", &m, &status), SRV_INVALID_ARGUMENT);
    assert_int_equal(m.route, SRV_AGORA_NONE);
}

static void ask_from(const char *path, const char *expiry, int code)
{
    assert_int_equal(srv_agora_match_path(path, &m, &status), SRV_OK);
    assert_int_equal(srv_agora_ask_from_path(&m, expiry, &ask, &status), code);
}

static void rtc_parameters_become_a_get_rtc_token_request(void **state)
{
    (void)state;
    ask_from("/rtc/room/publisher/uid/42/", "600", SRV_OK);
    assert_int_equal(ask.kind, SRV_AGORA_RTC);
    assert_string_equal(ask.token_key, "rtcToken");
    assert_string_equal(ask.rtc.channel_name, "room");
    assert_int_equal(ask.rtc.role, CT_RTC_ROLE_PUBLISHER);
    assert_int_equal(ask.rtc.user, SRV_RTC_USER_UID);
    assert_int_equal(ask.rtc.uid, 42);
    assert_int_equal(ask.rtc.ttl_seconds, 600);
    ask_from("/rtc/room/audience/uid//", NULL, SRV_OK);
    assert_int_equal(ask.rtc.role, CT_RTC_ROLE_SUBSCRIBER); /* not "publisher" */
    assert_int_equal(ask.rtc.uid, 0);
    assert_int_equal(ask.rtc.ttl_seconds, 0);
    ask_from("/rtc/room/subscriber/userAccount/al%40ce/", NULL, SRV_OK);
    assert_int_equal(ask.rtc.user, SRV_RTC_USER_ACCOUNT);
    assert_string_equal(ask.rtc.account, "al@ce");
    ask_from("/rtc/room/publisher/userAccount//", NULL, SRV_OK);
    assert_string_equal(ask.rtc.account, "0");
    ask_from("/rtc/room/publisher/uid/test/", NULL, SRV_INVALID_ARGUMENT);
    assert_string_equal(status.message, "uid must be a number 0..4294967295");
    ask_from("/rtc/room/publisher/uid/4294967296/", NULL, SRV_INVALID_ARGUMENT);
    ask_from("/rtc/room/publisher/nonsense/0/", NULL, SRV_INVALID_ARGUMENT);
    assert_string_equal(status.message, "tokenType must be uid or userAccount, got \"nonsense\"");
    ask_from("/rtc/room/publisher/uid/0/", "failing", SRV_INVALID_ARGUMENT);
    assert_string_equal(status.message, "expiry must be a number of seconds (digits only)");
}

static void rtm_and_chat_parameters(void **state)
{
    (void)state;
    ask_from("/rtm/username/", "600", SRV_OK);
    assert_int_equal(ask.kind, SRV_AGORA_RTM);
    assert_string_equal(ask.user, "username");
    assert_string_equal(ask.token_key, "rtmToken");
    ask_from("/rtm/0/", NULL, SRV_INVALID_ARGUMENT);
    ask_from("/chat/account/Bob/", NULL, SRV_OK);
    assert_int_equal(ask.kind, SRV_AGORA_CHAT_ACCOUNT);
    assert_string_equal(ask.user, "Bob");
    assert_string_equal(ask.token_key, "chatToken");
    ask_from("/chat/app/", "60", SRV_OK);
    assert_int_equal(ask.kind, SRV_AGORA_CHAT_APP);
    assert_int_equal(ask.ttl, 60);
    assert_int_equal(srv_agora_method(SRV_AGORA_CHAT_APP), CT_METHOD_GET_APP_TOKEN);
    assert_int_equal(srv_agora_method(SRV_AGORA_RTC), CT_METHOD_GET_RTC_TOKEN);
    assert_int_equal(srv_agora_method(SRV_AGORA_GET_TOKEN), CT_METHOD_UNKNOWN);
}

static int body(const char *json)
{
    return srv_agora_ask_from_body(json, strlen(json), &ask, &status);
}

static void the_post_body_becomes_a_request(void **state)
{
    (void)state;
    assert_int_equal(body("{\"tokenType\": \"rtc\", \"channel\": \"c1\", \"role\": \"publisher\", "
                          "\"uid\": \"user123\", \"expire\": 3600}"),
                     SRV_OK);
    assert_int_equal(ask.kind, SRV_AGORA_RTC);
    assert_int_equal(ask.rtc.user, SRV_RTC_USER_ACCOUNT);
    assert_string_equal(ask.rtc.account, "user123");
    assert_int_equal(ask.rtc.ttl_seconds, 3600);
    assert_string_equal(ask.token_key, "token");
    assert_int_equal(body("{\"tokenType\": \"rtc\", \"channel\": \"c1\", \"uid\": \"7\"}"), SRV_OK);
    assert_int_equal(ask.rtc.user, SRV_RTC_USER_UID);
    assert_int_equal(ask.rtc.uid, 7);
    assert_int_equal(ask.rtc.role, CT_RTC_ROLE_SUBSCRIBER);
    assert_int_equal(body("{\"tokenType\": \"rtm\", \"uid\": \"u\", \"expire\": 1800}"), SRV_OK);
    assert_int_equal(ask.kind, SRV_AGORA_RTM);
    assert_int_equal(ask.ttl, 1800);
    assert_int_equal(body("{\"tokenType\": \"chat\"}"), SRV_OK);
    assert_int_equal(ask.kind, SRV_AGORA_CHAT_APP);
    assert_int_equal(body("{\"tokenType\": \"chat\", \"uid\": \"u1\", \"other\": [1]}"), SRV_OK);
    assert_int_equal(ask.kind, SRV_AGORA_CHAT_ACCOUNT);
}

static void bad_bodies_are_invalid_argument(void **state)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{\"channel\": \"c\", \"role\": \"subscriber\", \"expire\": 1800}",
        "{\"tokenType\": \"invalid_type\", \"channel\": \"c\", \"uid\": \"u\"}",
        "{\"tokenType\": \"rtc\", \"role\": \"publisher\", \"uid\": \"u\"}",
        "{\"tokenType\": \"rtc\", \"channel\": \"c\"}",
        "{\"tokenType\": \"rtm\", \"expire\": 1800}",
        "{\"tokenType\": \"rtm\", \"uid\": \"u\", \"channel\": \"test\"}",
        "{\"tokenType\": \"chat\", \"uid\": 5}",
        "{\"tokenType\": \"chat\", \"expire\": -1}",
        "{\"tokenType\": \"chat\", \"expire\": 1.5}",
        "{\"tokenType\": \"chat\", \"tokenType\": \"rtm\"}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(body(bad[i]), SRV_INVALID_ARGUMENT);
        assert_true(status.message[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_the_routes_with_their_trailing_slashes),
        cmocka_unit_test(redirects_like_gin_and_leaves_the_rest_alone),
        cmocka_unit_test(rtc_parameters_become_a_get_rtc_token_request),
        cmocka_unit_test(rtm_and_chat_parameters),
        cmocka_unit_test(the_post_body_becomes_a_request),
        cmocka_unit_test(bad_bodies_are_invalid_argument),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
