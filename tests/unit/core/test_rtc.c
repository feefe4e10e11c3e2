/* Unit tests for core/rtc.c: the RTC/RTM public vectors of Agora's
 * AccessToken2 tests, role privileges, and Agora's input limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rtc.h"
#include "token.h"

#define APP_ID "970CA35de60c44645bbae8a215061b33"
#define APP_CERT "5CFd2fd1755d40ecb72977518be15d3b"
#define CHANNEL "7d72365eb983485397e3e3f9d460bdda"
/* AccessToken_Test / AccessToken_Test2 of agora-token and AgoraIO/Tools:
 * ts 1111111, salt 1, expire 600, join privilege 600 */
#define VECTOR_RTC_UID                                                                             \
    "007eJxTYBBbsMMnKq7p9Hf/"                                                                      \
    "HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk"                    \
    "4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj"
#define VECTOR_RTC_UID0                                                                            \
    "007eJxTYLhzZP08Lxa1Pg57+TcXb/"                                                                \
    "3cZ3wi4V6kbpbOog0G2dOYk20UGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk"                          \
    "4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiQwMADacImo="
/* AccessToken_Test4 as AgoraIO/Tools publishes it (Python, Go, Ruby, PHP, zlib
 * level 6): RTC uid 2882341273 with all four privileges, RTM "test_user" with
 * login, everything 600. (agora-token's own test now holds the same payload
 * compressed by another zlib build; both parse to the same fields.) */
#define VECTOR_RTC_RTM                                                                             \
    "007eJxTYOAQsrQ5s3TfH+"                                                                        \
    "1tvy8zZZ46EpCc0V43JXdGd2jS8porKo4KDJbmBs6OxqYpqWYGySYmZiamSUmJqRaJRoamBmaG"                   \
    "ScbG7l8EGCKYGBgYGRgYmIAkCxCD+ExgkhlMsoBJBQbzFHMjYzPT1CRLC2MTC1NjS/"                           \
    "NU41TjNMsUEzODpJSURC4GIwsLI2MT"                                                               \
    "QyNzY5BZEJM4GUpSi0viS4tTiwAipyp4"

static ct_token tok;

static int build_rtc(const char *account, enum ct_rtc_role role, uint32_t pttl, int with_rtm,
                     char *out, size_t outlen)
{
    char err[160];
    ct_rtc_spec spec = {CHANNEL, account, role, pttl, with_rtm};
    return ct_rtc_build_token(APP_ID, APP_CERT, &spec, 1111111, 1, 600, out, outlen, NULL, err,
                              sizeof(err));
}

/* Builds like build_rtc and parses the token into tok. */
static void build_rtc_into_tok(const char *account, enum ct_rtc_role role, uint32_t pttl,
                               int with_rtm)
{
    char out[CT_BUILD_MAX_CHARS];
    char err[160];
    assert_int_equal(build_rtc(account, role, pttl, with_rtm, out, sizeof(out)), CT_OK);
    assert_int_equal(ct_token_parse(out, strlen(out), &tok, err, sizeof(err)), CT_OK);
}

static void rtc_uid_token_matches_public_vector(void **state)
{
    char out[CT_BUILD_MAX_CHARS];
    char uid[11];
    (void)state;
    ct_rtc_uid_account(2882341273u, uid);
    assert_string_equal(uid, "2882341273");
    assert_int_equal(build_rtc(uid, CT_RTC_ROLE_SUBSCRIBER, 600, 0, out, sizeof(out)), CT_OK);
    assert_string_equal(out, VECTOR_RTC_UID);
}

static void rtc_uid_zero_is_the_empty_account(void **state)
{
    char out[CT_BUILD_MAX_CHARS];
    char uid[11];
    (void)state;
    ct_rtc_uid_account(0, uid);
    assert_string_equal(uid, "");
    assert_int_equal(build_rtc(uid, CT_RTC_ROLE_SUBSCRIBER, 600, 0, out, sizeof(out)), CT_OK);
    assert_string_equal(out, VECTOR_RTC_UID0);
}

static void rtc_and_rtm_services_match_public_vector(void **state)
{
    const ct_privilege rtc_privileges[4] = {{1, 600}, {2, 600}, {3, 600}, {4, 600}};
    const ct_privilege login = {CT_RTM_PRIVILEGE_LOGIN, 600};
    const char *rtc_strings[2] = {CHANNEL, "2882341273"};
    const char *rtm_strings[1] = {"test_user"};
    const ct_service_spec services[2] = {{CT_SERVICE_RTC, 4, rtc_privileges, 2, rtc_strings},
                                         {CT_SERVICE_RTM, 1, &login, 1, rtm_strings}};
    const ct_build_params params = {APP_ID, APP_CERT, 1111111, 1, 600, 2, services};
    char out[CT_BUILD_MAX_CHARS];
    char err[160];
    (void)state;
    assert_int_equal(ct_token_build(&params, out, sizeof(out), NULL, err, sizeof(err)), CT_OK);
    assert_string_equal(out, VECTOR_RTC_RTM);
}

static void publisher_gets_join_and_three_publish_privileges(void **state)
{
    (void)state;
    build_rtc_into_tok("alice", CT_RTC_ROLE_PUBLISHER, 300, 0);
    assert_int_equal(ct_token_verify(&tok, APP_CERT), CT_OK);
    assert_int_equal(tok.expire, 600);
    assert_int_equal(tok.service_count, 1);
    assert_int_equal(tok.services[0].type, CT_SERVICE_RTC);
    assert_int_equal(tok.services[0].privilege_count, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tok.services[0].privileges[i].id, i + 1);
        assert_int_equal(tok.services[0].privileges[i].value, 300);
    }
    assert_int_equal(tok.services[0].fields[1].bytes.len, 5);
    assert_memory_equal(tok.services[0].fields[1].bytes.data, "alice", 5);
}

static void with_rtm_adds_login_for_the_account_for_the_token_lifetime(void **state)
{
    char out[CT_BUILD_MAX_CHARS];
    (void)state;
    build_rtc_into_tok("alice", CT_RTC_ROLE_SUBSCRIBER, 120, 1);
    assert_int_equal(tok.service_count, 2);
    assert_int_equal(tok.services[0].privilege_count, 1);
    assert_int_equal(tok.services[0].privileges[0].value, 120);
    assert_int_equal(tok.services[1].type, CT_SERVICE_RTM);
    assert_int_equal(tok.services[1].privileges[0].id, CT_RTM_PRIVILEGE_LOGIN);
    assert_int_equal(tok.services[1].privileges[0].value, 600);
    assert_memory_equal(tok.services[1].fields[0].bytes.data, "alice", 5);
    /* RTM needs a user id: uid 0 ("") cannot log in */
    assert_int_equal(build_rtc("", CT_RTC_ROLE_SUBSCRIBER, 120, 1, out, sizeof(out)),
                     CT_E_ARGUMENT);
}

static void rtm_token_holds_login_for_the_user(void **state)
{
    char out[CT_BUILD_MAX_CHARS];
    char err[160];
    (void)state;
    assert_int_equal(ct_rtm_build_token(APP_ID, APP_CERT, "test_user", 1111111, 1, 600, out,
                                        sizeof(out), NULL, err, sizeof(err)),
                     CT_OK);
    assert_int_equal(ct_token_parse(out, strlen(out), &tok, err, sizeof(err)), CT_OK);
    assert_int_equal(ct_token_verify(&tok, APP_CERT), CT_OK);
    assert_int_equal(tok.service_count, 1);
    assert_int_equal(tok.services[0].type, CT_SERVICE_RTM);
    assert_int_equal(tok.services[0].privileges[0].value, 600);
    assert_memory_equal(tok.services[0].fields[0].bytes.data, "test_user", 9);
}

/* check accepts max bytes of fill and refuses max + 1, saying says. */
static void expect_length_limit(int (*check)(const char *, char *, size_t), size_t max, char fill,
                                const char *says)
{
    char s[CT_RTC_ACCOUNT_MAX + 2];
    char err[160];
    assert_true(max + 2 <= sizeof(s));
    memset(s, fill, max + 1);
    s[max] = '\0';
    assert_int_equal(check(s, err, sizeof(err)), CT_OK);
    s[max] = fill;
    s[max + 1] = '\0';
    assert_int_equal(check(s, err, sizeof(err)), CT_E_ARGUMENT);
    assert_non_null(strstr(err, says));
}

static void channel_names_follow_agoras_limits(void **state)
{
    char err[160];
    (void)state;
    expect_length_limit(ct_rtc_check_channel, CT_RTC_CHANNEL_MAX, 'c', "at most 64 bytes");
    assert_int_equal(ct_rtc_check_channel("", err, sizeof(err)), CT_E_ARGUMENT);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(ct_rtc_check_channel("a b!#$%&()+-:;<=.>?@[]^_{|}~,Z9", err, sizeof(err)),
                     CT_OK);
    assert_int_equal(ct_rtc_check_channel("a/b", err, sizeof(err)), CT_E_ARGUMENT);
    assert_non_null(strstr(err, "byte 1"));
    assert_int_equal(ct_rtc_check_channel("caf\xc3\xa9", err, sizeof(err)), CT_E_ARGUMENT);
    assert_int_equal(ct_rtc_check_channel("a\"b", err, sizeof(err)), CT_E_ARGUMENT);
}

static void accounts_and_rtm_user_ids_follow_agoras_limits(void **state)
{
    char err[160];
    char user_id[66];
    (void)state;
    expect_length_limit(ct_rtc_check_account, CT_RTC_ACCOUNT_MAX, 'a', "at most 255 bytes");
    assert_int_equal(ct_rtc_check_account("", err, sizeof(err)), CT_OK);
    assert_int_equal(ct_rtc_check_account("tab\there", err, sizeof(err)), CT_E_ARGUMENT);

    assert_int_equal(ct_rtm_check_user_id("user-1@x", err, sizeof(err)), CT_OK);
    assert_int_equal(ct_rtm_check_user_id("", err, sizeof(err)), CT_E_ARGUMENT);
    assert_int_equal(ct_rtm_check_user_id("null", err, sizeof(err)), CT_E_ARGUMENT);
    assert_int_equal(ct_rtm_check_user_id("two words", err, sizeof(err)), CT_E_ARGUMENT);
    memset(user_id, 'u', 65);
    user_id[65] = '\0';
    assert_int_equal(ct_rtm_check_user_id(user_id, err, sizeof(err)), CT_E_ARGUMENT);
    assert_non_null(strstr(err, "1..64 bytes"));
}

static void builders_refuse_bad_roles_and_ttls(void **state)
{
    char out[CT_BUILD_MAX_CHARS];
    char err[160];
    ct_rtc_spec spec = {CHANNEL, "a", CT_RTC_ROLE_PUBLISHER, 600, 0};
    (void)state;
    spec.role = (enum ct_rtc_role)0;
    assert_int_equal(ct_rtc_build_token(APP_ID, APP_CERT, &spec, 1, 1, 600, out, sizeof(out), NULL,
                                        err, sizeof(err)),
                     CT_E_ARGUMENT);
    assert_non_null(strstr(err, "role"));
    spec.role = CT_RTC_ROLE_PUBLISHER;
    assert_int_equal(ct_rtc_build_token(APP_ID, APP_CERT, &spec, 1, 1, 0, out, sizeof(out), NULL,
                                        err, sizeof(err)),
                     CT_E_ARGUMENT);
    assert_int_equal(ct_rtc_build_token(APP_ID, APP_CERT, &spec, 1, 1, CT_RTC_TTL_MAX + 1, out,
                                        sizeof(out), NULL, err, sizeof(err)),
                     CT_E_ARGUMENT);
    spec.privilege_ttl = 0;
    assert_int_equal(ct_rtc_build_token(APP_ID, APP_CERT, &spec, 1, 1, 600, out, sizeof(out), NULL,
                                        err, sizeof(err)),
                     CT_E_ARGUMENT);
    assert_non_null(strstr(err, "privilege ttl"));
    assert_int_equal(ct_rtm_build_token(APP_ID, APP_CERT, "u", 1, 1, 0, out, sizeof(out), NULL, err,
                                        sizeof(err)),
                     CT_E_ARGUMENT);
    assert_int_equal(ct_rtm_build_token(APP_ID, "nothex", "u", 1, 1, 60, out, sizeof(out), NULL,
                                        err, sizeof(err)),
                     CT_E_CERTIFICATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rtc_uid_token_matches_public_vector),
        cmocka_unit_test(rtc_uid_zero_is_the_empty_account),
        cmocka_unit_test(rtc_and_rtm_services_match_public_vector),
        cmocka_unit_test(publisher_gets_join_and_three_publish_privileges),
        cmocka_unit_test(with_rtm_adds_login_for_the_account_for_the_token_lifetime),
        cmocka_unit_test(rtm_token_holds_login_for_the_user),
        cmocka_unit_test(channel_names_follow_agoras_limits),
        cmocka_unit_test(accounts_and_rtm_user_ids_follow_agoras_limits),
        cmocka_unit_test(builders_refuse_bad_roles_and_ttls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
