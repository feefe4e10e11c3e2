/* What every handler checks and shares, whatever the token kind: the call's
 * context and reply, who may call what (method, user, RTC channel), the
 * clock, the TTL bounds and the renewal grace. handlers.c (Chat) and
 * rtc_handlers.c (RTC, RTM) both build on it; it knows neither. */
#include "handler_rules.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t srv_now(const srv_context *ctx)
{
    return ctx->now != NULL ? ctx->now() : (int64_t)time(NULL);
}

int srv_authorize(const srv_caller *caller, enum ct_method method, srv_status *status)
{
    if ((caller->methods & CT_METHOD_BIT(method)) == 0) {
        return srv_fail(status, SRV_PERMISSION_DENIED, "caller '%s' may not call %s", caller->name,
                        ct_method_name(method));
    }
    return srv_ok(status);
}

int srv_authorize_user(const srv_caller *caller, const char *what, const char *id,
                       srv_status *status)
{
    if (!caller->end_user) {
        return srv_ok(status);
    }
    if (caller->user[0] == '\0') {
        return srv_fail(status, SRV_PERMISSION_DENIED, "%s", caller->user_problem);
    }
    if (strcmp(caller->user, id) != 0) {
        return srv_fail(status, SRV_PERMISSION_DENIED,
                        "end user '%s' may get tokens only for itself, not for %s '%.64s'",
                        caller->user, what, id);
    }
    return srv_ok(status);
}

int srv_authorize_channel(const srv_caller *caller, const char *channel, srv_status *status)
{
    const char *prefix = caller->rtc_channel_prefix;

    if (caller->end_user && prefix != NULL && strncmp(channel, prefix, strlen(prefix)) != 0) {
        return srv_fail(status, SRV_PERMISSION_DENIED,
                        "end users of '%s' may get RTC tokens only for channels starting with "
                        "'%s'",
                        caller->name, prefix);
    }
    return srv_ok(status);
}

/* 0 means the configured default; above the maximum is the caller's error. */
int srv_resolve_ttl(const ct_config *cfg, uint32_t requested, uint32_t *ttl, srv_status *status)
{
    if (requested == 0) {
        *ttl = cfg->default_ttl_seconds;
        return srv_ok(status);
    }
    if (requested > cfg->max_ttl_seconds) {
        return srv_fail(status, SRV_INVALID_ARGUMENT,
                        "ttl_seconds must be at most %u (the configured maximum), got %u",
                        cfg->max_ttl_seconds, requested);
    }
    *ttl = requested;
    return srv_ok(status);
}

int srv_check_renew_grace(const srv_context *ctx, uint64_t expired_at, srv_status *status)
{
    if ((int64_t)expired_at + (int64_t)ctx->config->renew_grace_seconds < srv_now(ctx)) {
        return srv_fail(status, SRV_FAILED_PRECONDITION,
                        "token expired more than %u s ago: the client must log in again",
                        ctx->config->renew_grace_seconds);
    }
    return srv_ok(status);
}
