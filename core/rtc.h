/* RTC and RTM tokens: Agora's RtcTokenBuilder2 and RtmTokenBuilder2 on top of
 * the AccessToken2 codec (core/token.h), and Agora's documented limits on
 * channel names and user accounts. Pure functions, like the Chat builders. */
#ifndef CT_RTC_H
#define CT_RTC_H

#include <stddef.h>
#include <stdint.h>

#define CT_RTC_CHANNEL_MAX 64  /* bytes, Agora's limit on channel names */
#define CT_RTC_ACCOUNT_MAX 255 /* bytes, Agora's limit on user accounts */
#define CT_RTM_USER_ID_MAX 64  /* bytes, RtmTokenBuilder2's limit on user ids */
#define CT_RTC_TTL_MAX 86400u  /* RTC and RTM tokens live at most 24 h */

enum ct_rtc_privilege {
    CT_RTC_PRIVILEGE_JOIN_CHANNEL = 1,
    CT_RTC_PRIVILEGE_PUBLISH_AUDIO = 2,
    CT_RTC_PRIVILEGE_PUBLISH_VIDEO = 3,
    CT_RTC_PRIVILEGE_PUBLISH_DATA = 4,
};

enum ct_rtm_privilege { CT_RTM_PRIVILEGE_LOGIN = 1 };

/* The roles of RtcTokenBuilder2: a publisher may also publish audio, video
 * and data streams; a subscriber may only join. */
enum ct_rtc_role { CT_RTC_ROLE_PUBLISHER = 1, CT_RTC_ROLE_SUBSCRIBER = 2 };

typedef struct ct_rtc_spec {
    const char *channel_name;
    /* the user: an account, or a uid written in decimal; "" (uid 0) lets any
     * uid join, as Agora's builders do */
    const char *account;
    enum ct_rtc_role role;
    uint32_t privilege_ttl; /* 1..CT_RTC_TTL_MAX: the join/publish privileges */
    /* buildTokenWithRtm: also the RTM login privilege for the account, for
     * the token's whole lifetime */
    int with_rtm;
} ct_rtc_spec;

/* Checks against Agora's limits, with a message naming the limit:
 * channel names 1..64 bytes, accounts 0..255 bytes, both of a-z A-Z 0-9,
 * space and !#$%&()+-:;<=.>?@[]^_{|}~, */
int ct_rtc_check_channel(const char *channel_name, char *err, size_t errlen);
int ct_rtc_check_account(const char *account, char *err, size_t errlen);
/* RTM user ids: 1..64 bytes of printable ASCII without space, not "null". */
int ct_rtm_check_user_id(const char *user_id, char *err, size_t errlen);

/* The uid as Agora's builders write it: "" for 0, else the decimal digits. */
void ct_rtc_uid_account(uint32_t uid, char out[11]);

/* RtcTokenBuilder2 buildTokenWithUid / buildTokenWithUserAccount /
 * buildTokenWithRtm, byte for byte. ttl 1..CT_RTC_TTL_MAX. */
int ct_rtc_build_token(const char *app_id, const char *app_certificate, const ct_rtc_spec *spec,
                       uint32_t issue_ts, uint32_t salt, uint32_t ttl, char *out, size_t outlen,
                       size_t *written, char *err, size_t errlen);

/* RtmTokenBuilder2 buildToken: the RTM login privilege for user_id. */
int ct_rtm_build_token(const char *app_id, const char *app_certificate, const char *user_id,
                       uint32_t issue_ts, uint32_t salt, uint32_t ttl, char *out, size_t outlen,
                       size_t *written, char *err, size_t errlen);

#endif
