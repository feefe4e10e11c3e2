/* GetRtcToken, GetRtmToken and the renewal of RTC and RTM tokens: the rules
 * of the request (oneof user, role, TTLs, with_rtm) on top of core/rtc.c's
 * builders and Agora's limits. */
#include "rtc_handlers.h"

#include "metrics.h"

#include <stdio.h>
#include <string.h>

/* An RTC token for spec, or an RTM token for rtm_user_id when spec is NULL:
 * salt, clock, build, reply, metrics. */
static int issue(const srv_context *ctx, const ct_rtc_spec *spec, const char *rtm_user_id,
                 uint32_t ttl, srv_token_reply *reply, srv_status *status)
{
    const ct_config *cfg = ctx->config;
    int64_t now = srv_now(ctx);
    uint32_t salt;
    char err[SRV_MESSAGE_MAX - 32];
    int rc;

    if (ct_salt_random(&salt) != CT_OK) {
        return srv_fail(status, SRV_INTERNAL, "the CSPRNG failed");
    }
    if (spec != NULL) {
        rc = ct_rtc_build_token(cfg->app_id, cfg->app_certificate, spec, (uint32_t)now, salt, ttl,
                                reply->token, sizeof(reply->token), NULL, err, sizeof(err));
        reply->kind = SRV_KIND_RTC;
    } else {
        rc = ct_rtm_build_token(cfg->app_id, cfg->app_certificate, rtm_user_id, (uint32_t)now, salt,
                                ttl, reply->token, sizeof(reply->token), NULL, err, sizeof(err));
        reply->kind = SRV_KIND_RTM;
    }
    if (rc == CT_E_ARGUMENT) {
        /* every input was checked before; a renewed token's strings are
         * checked here, against the same limits */
        return srv_fail(status, SRV_INVALID_ARGUMENT, "%s", err);
    }
    if (rc != CT_OK) {
        return srv_fail(status, SRV_INTERNAL, "cannot build the token: %s", err);
    }
    reply->expire_time = now + ttl;
    reply->registered = 0;
    snprintf(reply->user_id, sizeof(reply->user_id), "%s",
             spec != NULL ? spec->account : rtm_user_id);
    srv_metrics_token_issued(reply->kind);
    return srv_ok(status);
}

int srv_get_rtc_token(const srv_context *ctx, const srv_caller *caller, const srv_rtc_request *req,
                      srv_token_reply *reply, srv_status *status)
{
    char err[SRV_MESSAGE_MAX - 64];
    char uid_text[11];
    ct_rtc_spec spec;
    uint32_t ttl = 0;

    reply->token[0] = '\0';
    if (srv_authorize(caller, CT_METHOD_GET_RTC_TOKEN, status) != SRV_OK ||
        srv_resolve_ttl(ctx->config, req->ttl_seconds, &ttl, status) != SRV_OK) {
        return status->code;
    }
    if (req->role != CT_RTC_ROLE_PUBLISHER && req->role != CT_RTC_ROLE_SUBSCRIBER) {
        return srv_fail(status, SRV_INVALID_ARGUMENT,
                        "role must be RTC_ROLE_PUBLISHER (1) or RTC_ROLE_SUBSCRIBER (2), got %d",
                        req->role);
    }
    if (ct_rtc_check_channel(req->channel_name, err, sizeof(err)) != CT_OK) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "%s", err);
    }
    memset(&spec, 0, sizeof(spec));
    spec.channel_name = req->channel_name;
    spec.role = (enum ct_rtc_role)req->role;
    spec.with_rtm = req->with_rtm != 0;
    switch (req->user) {
    case SRV_RTC_USER_UID:
        if (caller->end_user) {
            return srv_fail(status, SRV_PERMISSION_DENIED,
                            "an end user gets RTC tokens only with account set to its username");
        }
        ct_rtc_uid_account(req->uid, uid_text);
        spec.account = uid_text;
        break;
    case SRV_RTC_USER_ACCOUNT:
        if (ct_rtc_check_account(req->account, err, sizeof(err)) != CT_OK) {
            return srv_fail(status, SRV_INVALID_ARGUMENT, "%s", err);
        }
        spec.account = req->account != NULL ? req->account : "";
        if (srv_authorize_user(caller, "RTC account", spec.account, status) != SRV_OK) {
            return status->code;
        }
        break;
    default:
        return srv_fail(status, SRV_INVALID_ARGUMENT,
                        "set uid (0 lets any uid join) or account (\"\" lets any user join)");
    }
    if (srv_authorize_channel(caller, req->channel_name, status) != SRV_OK) {
        return status->code;
    }
    if (req->privilege_ttl_seconds > ttl) {
        return srv_fail(status, SRV_INVALID_ARGUMENT,
                        "privilege_ttl_seconds must be at most the token's ttl (%u s), got %u", ttl,
                        req->privilege_ttl_seconds);
    }
    spec.privilege_ttl = req->privilege_ttl_seconds != 0 ? req->privilege_ttl_seconds : ttl;
    if (spec.with_rtm) {
        if (spec.account[0] == '\0') {
            return srv_fail(status, SRV_INVALID_ARGUMENT,
                            "with_rtm needs a non-zero uid or a non-empty account: it is the RTM "
                            "user id");
        }
        if (ct_rtm_check_user_id(spec.account, err, sizeof(err)) != CT_OK) {
            return srv_fail(status, SRV_INVALID_ARGUMENT,
                            "with_rtm: the account is the RTM user id, and %s", err);
        }
    }
    return issue(ctx, &spec, NULL, ttl, reply, status);
}

int srv_get_rtm_token(const srv_context *ctx, const srv_caller *caller, const char *user_id,
                      uint32_t ttl_seconds, srv_token_reply *reply, srv_status *status)
{
    char err[SRV_MESSAGE_MAX - 32];
    uint32_t ttl = 0;

    reply->token[0] = '\0';
    if (srv_authorize(caller, CT_METHOD_GET_RTM_TOKEN, status) != SRV_OK ||
        srv_resolve_ttl(ctx->config, ttl_seconds, &ttl, status) != SRV_OK) {
        return status->code;
    }
    if (ct_rtm_check_user_id(user_id, err, sizeof(err)) != CT_OK) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "%s", err);
    }
    if (srv_authorize_user(caller, "RTM user id", user_id, status) != SRV_OK) {
        return status->code;
    }
    return issue(ctx, NULL, user_id, ttl, reply, status);
}

/* ---- RenewToken ---- */

int srv_rtc_token_holds_rtc_or_rtm(const ct_token *tok)
{
    return tok->service_count > 0 &&
           (tok->services[0].type == CT_SERVICE_RTC || tok->services[0].type == CT_SERVICE_RTM);
}

/* A string field as a NUL-terminated copy: at most max bytes, no NUL. */
static int copy_field(const ct_view *v, size_t max, char *out, const char *what, srv_status *status)
{
    if (v->len > max || memchr(v->data, '\0', v->len) != NULL) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "token's %s is not a valid one", what);
    }
    memcpy(out, v->data, v->len);
    out[v->len] = '\0';
    return srv_ok(status);
}

static int not_issued(srv_status *status, const char *what)
{
    return srv_fail(status, SRV_INVALID_ARGUMENT,
                    "token holds %s: not a token this service issues, so it is not renewed", what);
}

/* The RTC service as RtcTokenBuilder2 writes it: join only (subscriber) or
 * join + publish audio, video and data (publisher), all with one value. */
static int rtc_role_of(const ct_service *s, enum ct_rtc_role *role, uint32_t *privilege,
                       srv_status *status)
{
    unsigned seen = 0;

    if (s->privilege_count == 0) {
        return not_issued(status, "an RTC service without privileges");
    }
    *privilege = s->privileges[0].value;
    for (uint16_t i = 0; i < s->privilege_count; i++) {
        uint16_t id = s->privileges[i].id;
        if (id < CT_RTC_PRIVILEGE_JOIN_CHANNEL || id > CT_RTC_PRIVILEGE_PUBLISH_DATA ||
            (seen & (1u << id)) != 0) {
            return not_issued(status, "RTC privileges other than join and publish");
        }
        if (s->privileges[i].value != *privilege) {
            return not_issued(status, "RTC privileges with different lifetimes");
        }
        seen |= 1u << id;
    }
    if (seen == (1u << CT_RTC_PRIVILEGE_JOIN_CHANNEL)) {
        *role = CT_RTC_ROLE_SUBSCRIBER;
    } else if (seen == 0x1eu) {
        *role = CT_RTC_ROLE_PUBLISHER;
    } else {
        return not_issued(status, "RTC privileges of neither a publisher nor a subscriber");
    }
    return srv_ok(status);
}

/* The RTM service as RtmTokenBuilder2 (and buildTokenWithRtm) writes it:
 * the login privilege for the token's whole lifetime. */
static int rtm_login_of(const ct_token *tok, const ct_service *s, srv_status *status)
{
    if (s->privilege_count != 1 || s->privileges[0].id != CT_RTM_PRIVILEGE_LOGIN ||
        s->privileges[0].value != tok->expire) {
        return not_issued(status, "RTM privileges other than login for the token's lifetime");
    }
    return srv_ok(status);
}

/* ttl * privilege / expire, rounded down, at least 1 second. */
static uint32_t scaled_privilege(uint32_t ttl, uint32_t privilege, uint32_t expire)
{
    uint64_t p = (uint64_t)ttl * privilege / expire;

    return p == 0 ? 1 : (uint32_t)p;
}

int srv_renew_rtc_or_rtm(const srv_context *ctx, const srv_caller *caller, const ct_token *tok,
                         uint32_t ttl, srv_token_reply *reply, srv_status *status)
{
    const ct_service *first = &tok->services[0];
    char channel[CT_RTC_CHANNEL_MAX + 1];
    char account[CT_RTC_ACCOUNT_MAX + 1];
    char rtm_user[CT_RTC_ACCOUNT_MAX + 1];
    ct_rtc_spec spec;
    uint32_t privilege = 0;
    uint64_t expired_at;

    reply->token[0] = '\0';
    if (tok->unknown_service_type != 0 || tok->service_count != tok->declared_service_count) {
        return not_issued(status, "a service of a type this service does not issue");
    }
    if (tok->expire == 0) {
        return not_issued(status, "no lifetime");
    }
    if (first->type == CT_SERVICE_RTM) {
        if (tok->service_count != 1) {
            return not_issued(status, "an RTM service with other services");
        }
        if (rtm_login_of(tok, first, status) != SRV_OK ||
            copy_field(&first->fields[0].bytes, CT_RTM_USER_ID_MAX, rtm_user, "RTM user id",
                       status) != SRV_OK ||
            srv_authorize_user(caller, "RTM user id", rtm_user, status) != SRV_OK ||
            srv_check_renew_grace(ctx, ct_token_expire_at(tok), status) != SRV_OK) {
            return status->code;
        }
        return issue(ctx, NULL, rtm_user, ttl, reply, status);
    }
    memset(&spec, 0, sizeof(spec));
    if (tok->service_count > 2 ||
        (tok->service_count == 2 && tok->services[1].type != CT_SERVICE_RTM)) {
        return not_issued(status, "services besides RTC and RTM");
    }
    if (rtc_role_of(first, &spec.role, &privilege, status) != SRV_OK ||
        copy_field(&first->fields[0].bytes, CT_RTC_CHANNEL_MAX, channel, "channel name", status) !=
            SRV_OK ||
        copy_field(&first->fields[1].bytes, CT_RTC_ACCOUNT_MAX, account, "RTC account", status) !=
            SRV_OK) {
        return status->code;
    }
    if (srv_authorize_user(caller, "RTC account", account, status) != SRV_OK ||
        srv_authorize_channel(caller, channel, status) != SRV_OK) {
        return status->code;
    }
    if (privilege == 0) {
        /* agora-token's default privilegeExpire; its ratio would be 0 */
        return not_issued(status, "RTC privileges without a lifetime");
    }
    if (privilege > tok->expire) {
        return not_issued(status, "RTC privileges that outlive the token");
    }
    if (tok->service_count == 2) {
        if (rtm_login_of(tok, &tok->services[1], status) != SRV_OK ||
            copy_field(&tok->services[1].fields[0].bytes, CT_RTC_ACCOUNT_MAX, rtm_user,
                       "RTM user id", status) != SRV_OK) {
            return status->code;
        }
        if (strcmp(rtm_user, account) != 0) {
            return not_issued(status, "an RTM user id that is not the RTC account");
        }
        spec.with_rtm = 1;
    }
    /* the earlier of the token and its join privilege: past it, the client
     * cannot join any more */
    expired_at = ct_token_expire_at(tok);
    if (ct_privilege_expire_at(tok, &first->privileges[0]) < expired_at) {
        expired_at = ct_privilege_expire_at(tok, &first->privileges[0]);
    }
    if (srv_check_renew_grace(ctx, expired_at, status) != SRV_OK) {
        return status->code;
    }
    spec.channel_name = channel;
    spec.account = account;
    spec.privilege_ttl = scaled_privilege(ttl, privilege, tok->expire);
    return issue(ctx, &spec, NULL, ttl, reply, status);
}
