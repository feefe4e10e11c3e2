/* GetRtcToken and GetRtmToken as plain functions (the handlers.c pattern:
 * a decoded request and a caller in, a token reply or a status out), and
 * RenewToken's part for RTC and RTM tokens. Shared by the gRPC side, the
 * HTTP side and the agora-token-service routes. */
#ifndef SRV_RTC_HANDLERS_H
#define SRV_RTC_HANDLERS_H

#include <stdint.h>

#include "handler_rules.h"
#include "rtc.h"

/* Which member of GetRtcTokenRequest's oneof user is set. */
enum srv_rtc_user { SRV_RTC_USER_NONE = 0, SRV_RTC_USER_UID = 1, SRV_RTC_USER_ACCOUNT = 2 };

/* The proto's RtcRole numbers: 1 publisher, 2 subscriber (ct_rtc_role);
 * anything else is INVALID_ARGUMENT. */
typedef struct srv_rtc_request {
    const char *channel_name; /* NUL-terminated; NULL = "" */
    enum srv_rtc_user user;
    uint32_t uid;        /* SRV_RTC_USER_UID: 0 = any uid */
    const char *account; /* SRV_RTC_USER_ACCOUNT: "" = any user */
    int role;
    uint32_t ttl_seconds;           /* 0 = tokens.default_ttl_seconds */
    uint32_t privilege_ttl_seconds; /* 0 = the token's ttl; above it INVALID_ARGUMENT */
    int with_rtm;
} srv_rtc_request;

/* GetRtcToken: authorizes, validates (Agora's limits, the messages naming
 * them) and builds; reply kind SRV_KIND_RTC, user_id the account. */
int srv_get_rtc_token(const srv_context *ctx, const srv_caller *caller,
                      const srv_rtc_request *request, srv_token_reply *reply, srv_status *status);

/* GetRtmToken: the RTM login privilege for user_id (NUL-terminated). */
int srv_get_rtm_token(const srv_context *ctx, const srv_caller *caller, const char *user_id,
                      uint32_t ttl_seconds, srv_token_reply *reply, srv_status *status);

/* 1 when a parsed token's first service is RTC or RTM: RenewToken then
 * hands it to srv_renew_rtc_or_rtm instead of the Chat rules. */
int srv_rtc_token_holds_rtc_or_rtm(const ct_token *tok);

/* RenewToken for a token signed by this app (the caller checked the
 * signature, the permission and resolved ttl): re-issues exactly what we
 * issue (an RTC token with or without RTM, or an RTM token) with the same
 * channel, user, role and the same ratio of privilege to token lifetime;
 * anything else is INVALID_ARGUMENT. */
int srv_renew_rtc_or_rtm(const srv_context *ctx, const srv_caller *caller, const ct_token *tok,
                         uint32_t ttl, srv_token_reply *reply, srv_status *status);

#endif
