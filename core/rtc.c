/* RTC and RTM token builders (Agora's RtcTokenBuilder2 / RtmTokenBuilder2)
 * on the generic AccessToken2 builder, and the input rules Agora documents
 * for channel names, accounts and RTM user ids. */
#include "rtc.h"

#include "text.h"
#include "token.h"

#include <stdio.h>
#include <string.h>

/* Agora's channel-name and user-account alphabet, besides letters/digits. */
static const char rtc_punctuation[] = " !#$%&()+-:;<=.>?@[]^_{|}~,";

static int rtc_char_allowed(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return 1;
    }
    return c != '\0' && strchr(rtc_punctuation, c) != NULL;
}

/* 1..max (or 0..max with allow_empty) bytes of the RTC alphabet. */
static int check_rtc_string(const char *what, const char *s, size_t max, int allow_empty, char *err,
                            size_t errlen)
{
    size_t n;

    if (s == NULL) {
        s = "";
    }
    n = strnlen(s, max + 1);
    if (n > max) {
        ct_set_error(err, errlen, "%s must be at most %zu bytes", what, max);
        return CT_E_ARGUMENT;
    }
    if (n == 0 && !allow_empty) {
        ct_set_error(err, errlen, "%s must not be empty", what);
        return CT_E_ARGUMENT;
    }
    for (size_t i = 0; i < n; i++) {
        if (!rtc_char_allowed((unsigned char)s[i])) {
            ct_set_error(err, errlen,
                         "%s may hold only a-z A-Z 0-9, space and %s (byte %zu is not allowed)",
                         what, rtc_punctuation + 1, i);
            return CT_E_ARGUMENT;
        }
    }
    return CT_OK;
}

int ct_rtc_check_channel(const char *channel_name, char *err, size_t errlen)
{
    return check_rtc_string("channel_name", channel_name, CT_RTC_CHANNEL_MAX, 0, err, errlen);
}

int ct_rtc_check_account(const char *account, char *err, size_t errlen)
{
    return check_rtc_string("account", account, CT_RTC_ACCOUNT_MAX, 1, err, errlen);
}

int ct_rtm_check_user_id(const char *user_id, char *err, size_t errlen)
{
    size_t n = user_id == NULL ? 0 : strnlen(user_id, CT_RTM_USER_ID_MAX + 1);

    if (n == 0 || n > CT_RTM_USER_ID_MAX) {
        ct_set_error(err, errlen, "user_id must be 1..%d bytes", CT_RTM_USER_ID_MAX);
        return CT_E_ARGUMENT;
    }
    if (strcmp(user_id, "null") == 0) {
        ct_set_error(err, errlen, "user_id must not be \"null\"");
        return CT_E_ARGUMENT;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)user_id[i];
        if (c <= ' ' || c > '~') {
            ct_set_error(err, errlen,
                         "user_id may hold only printable ASCII without space (byte %zu)", i);
            return CT_E_ARGUMENT;
        }
    }
    return CT_OK;
}

void ct_rtc_uid_account(uint32_t uid, char out[11])
{
    if (uid == 0) {
        out[0] = '\0';
        return;
    }
    snprintf(out, 11, "%u", uid);
}

static int check_ttl(const char *what, uint32_t ttl, char *err, size_t errlen)
{
    if (ttl < 1 || ttl > CT_RTC_TTL_MAX) {
        ct_set_error(err, errlen, "%s must be 1..%u seconds, got %u", what, CT_RTC_TTL_MAX, ttl);
        return CT_E_ARGUMENT;
    }
    return CT_OK;
}

int ct_rtc_build_token(const char *app_id, const char *app_certificate, const ct_rtc_spec *spec,
                       uint32_t issue_ts, uint32_t salt, uint32_t ttl, char *out, size_t outlen,
                       size_t *written, char *err, size_t errlen)
{
    const uint32_t pttl = spec->privilege_ttl;
    const ct_privilege rtc_privileges[4] = {
        {CT_RTC_PRIVILEGE_JOIN_CHANNEL, pttl},
        {CT_RTC_PRIVILEGE_PUBLISH_AUDIO, pttl},
        {CT_RTC_PRIVILEGE_PUBLISH_VIDEO, pttl},
        {CT_RTC_PRIVILEGE_PUBLISH_DATA, pttl},
    };
    const ct_privilege rtm_login = {CT_RTM_PRIVILEGE_LOGIN, ttl};
    const char *rtc_strings[2] = {spec->channel_name, spec->account};
    const char *rtm_strings[1] = {spec->account};
    ct_service_spec services[2] = {
        {CT_SERVICE_RTC, spec->role == CT_RTC_ROLE_PUBLISHER ? 4 : 1, rtc_privileges, 2,
         rtc_strings},
        {CT_SERVICE_RTM, 1, &rtm_login, 1, rtm_strings},
    };
    ct_build_params params = {app_id, app_certificate,        issue_ts, salt,
                              ttl,    spec->with_rtm ? 2 : 1, services};
    int rc;

    if (spec->role != CT_RTC_ROLE_PUBLISHER && spec->role != CT_RTC_ROLE_SUBSCRIBER) {
        ct_set_error(err, errlen, "role must be publisher (1) or subscriber (2)");
        return CT_E_ARGUMENT;
    }
    rc = check_ttl("ttl", ttl, err, errlen);
    if (rc == CT_OK) {
        rc = check_ttl("privilege ttl", pttl, err, errlen);
    }
    if (rc == CT_OK) {
        rc = ct_rtc_check_channel(spec->channel_name, err, errlen);
    }
    if (rc == CT_OK) {
        rc = ct_rtc_check_account(spec->account, err, errlen);
    }
    if (rc == CT_OK && spec->with_rtm) {
        rc = ct_rtm_check_user_id(spec->account, err, errlen);
    }
    return rc == CT_OK ? ct_token_build(&params, out, outlen, written, err, errlen) : rc;
}

int ct_rtm_build_token(const char *app_id, const char *app_certificate, const char *user_id,
                       uint32_t issue_ts, uint32_t salt, uint32_t ttl, char *out, size_t outlen,
                       size_t *written, char *err, size_t errlen)
{
    const ct_privilege login = {CT_RTM_PRIVILEGE_LOGIN, ttl};
    const char *strings[1] = {user_id};
    const ct_service_spec service = {CT_SERVICE_RTM, 1, &login, 1, strings};
    const ct_build_params params = {app_id, app_certificate, issue_ts, salt, ttl, 1, &service};
    int rc = check_ttl("ttl", ttl, err, errlen);

    if (rc == CT_OK) {
        rc = ct_rtm_check_user_id(user_id, err, errlen);
    }
    return rc == CT_OK ? ct_token_build(&params, out, outlen, written, err, errlen) : rc;
}
