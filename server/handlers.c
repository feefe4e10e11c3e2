/* TokenService rules: TTL bounds, username validation, identity modes,
 * renewal checks, and which caller may do what. */
#include "handlers.h"

#include "metrics.h"
#include "rtc_handlers.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Builds a Chat token for user_id ("" = app token) and fills reply. */
static int issue(const srv_context *ctx, const char *user_id, uint32_t ttl, srv_token_reply *reply,
                 srv_status *status)
{
    const ct_config *cfg = ctx->config;
    int64_t now = srv_now(ctx);
    uint32_t salt;
    char err[128];
    int rc;

    if (ct_salt_random(&salt) != CT_OK) {
        return srv_fail(status, SRV_INTERNAL, "the CSPRNG failed");
    }
    if (user_id[0] == '\0') {
        rc = ct_chat_build_app_token(cfg->app_id, cfg->app_certificate, (uint32_t)now, salt, ttl,
                                     reply->token, sizeof(reply->token), NULL, err, sizeof(err));
        reply->kind = SRV_KIND_APP;
    } else {
        rc = ct_chat_build_user_token(cfg->app_id, cfg->app_certificate, user_id, (uint32_t)now,
                                      salt, ttl, reply->token, sizeof(reply->token), NULL, err,
                                      sizeof(err));
        reply->kind = SRV_KIND_USER;
    }
    if (rc != CT_OK) {
        /* config validation makes this unreachable for app/cert; a user id
         * from the directory could still be refused */
        return srv_fail(status, SRV_INTERNAL, "cannot build the token: %s", err);
    }
    reply->expire_time = now + ttl;
    snprintf(reply->user_id, sizeof(reply->user_id), "%s", user_id);
    srv_metrics_token_issued(reply->kind);
    return srv_ok(status);
}

int srv_get_app_token(const srv_context *ctx, const srv_caller *caller, uint32_t ttl_seconds,
                      srv_token_reply *reply, srv_status *status)
{
    uint32_t ttl = 0;

    reply->token[0] = '\0';
    if (srv_authorize(caller, CT_METHOD_GET_APP_TOKEN, status) != SRV_OK ||
        srv_resolve_ttl(ctx->config, ttl_seconds, &ttl, status) != SRV_OK) {
        return status->code;
    }
    reply->registered = 0;
    return issue(ctx, "", ttl, reply, status);
}

/* The status a directory outcome answers (directory.h says which). */
static enum srv_code directory_code(enum ud_status status)
{
    static const enum srv_code codes[] = {
        [UD_OK] = SRV_OK,
        [UD_NOT_FOUND] = SRV_NOT_FOUND,
        [UD_INVALID_ARGUMENT] = SRV_INVALID_ARGUMENT,
        [UD_UNAVAILABLE] = SRV_UNAVAILABLE,
        [UD_DEADLINE_EXCEEDED] = SRV_DEADLINE_EXCEEDED,
        [UD_INTERNAL] = SRV_INTERNAL,
    };
    return (unsigned)status < sizeof(codes) / sizeof(codes[0]) ? codes[status] : SRV_INTERNAL;
}

static void finish_with_directory(void *arg, const ud_result *result)
{
    srv_user_request *req = arg;

    if (result->status == UD_OK) {
        issue(req->ctx, result->uuid, req->ttl, &req->reply, &req->status);
        req->reply.registered = result->registered;
    } else {
        srv_fail(&req->status, directory_code(result->status), "%s", result->message);
    }
    req->done(req);
}

/* The start of a request that may wait for the directory. */
static void begin(const srv_context *ctx, srv_user_request *req, srv_done_fn done, void *arg)
{
    req->ctx = ctx;
    req->done = done;
    req->arg = arg;
    req->reply.registered = 0;
    req->reply.token[0] = '\0';
}

/* Asks the directory for req->username; cb finishes the request. */
static void look_up(const srv_context *ctx, srv_user_request *req, int64_t deadline_ms,
                    ud_callback cb)
{
    if (ctx->directory == NULL) {
        srv_fail(&req->status, SRV_UNAVAILABLE,
                 "uuid identity mode needs the user directory, which is not running");
        req->done(req);
        return;
    }
    ud_directory_lookup(ctx->directory, req->username, deadline_ms, cb, req);
}

void srv_get_user_token(const srv_context *ctx, const srv_caller *caller, const char *username,
                        size_t username_len, uint32_t ttl_seconds, int64_t deadline_ms,
                        srv_user_request *req, srv_done_fn done, void *arg)
{
    char err[SRV_MESSAGE_MAX];

    begin(ctx, req, done, arg);
    if (srv_authorize(caller, CT_METHOD_GET_USER_TOKEN, &req->status) != SRV_OK ||
        srv_resolve_ttl(ctx->config, ttl_seconds, &req->ttl, &req->status) != SRV_OK) {
        done(req);
        return;
    }
    /* validated before any other work, above all before any upstream call */
    if (ct_username_normalize(username, username_len, req->username, err, sizeof(err)) != 0) {
        srv_fail(&req->status, SRV_INVALID_ARGUMENT, "%s", err);
        done(req);
        return;
    }
    if (srv_authorize_user(caller, "username", req->username, &req->status) != SRV_OK) {
        done(req);
        return;
    }
    if (ctx->config->identity == CT_IDENTITY_USERNAME) {
        issue(ctx, req->username, req->ttl, &req->reply, &req->status);
        done(req);
        return;
    }
    look_up(ctx, req, deadline_ms, finish_with_directory);
}

/* The token's one Chat service and privilege, or INVALID_ARGUMENT. Every
 * service must be one we issue: the parser stops at a service type it does
 * not know (type 0 too) without looking at what follows, so the declared
 * count must be the parsed one; then the parser has also refused trailing
 * bytes. */
static int chat_privilege(const ct_token *tok, const ct_privilege **privilege, ct_view *user_id,
                          srv_status *status)
{
    const ct_service *s = &tok->services[0];

    if (tok->declared_service_count != 1 || tok->service_count != 1 || s->type != CT_SERVICE_CHAT) {
        return srv_fail(status, SRV_INVALID_ARGUMENT,
                        "token must hold one Chat service, an RTC service (with or without RTM) "
                        "or one RTM service; it holds %u services",
                        tok->declared_service_count);
    }
    if (s->privilege_count != 1 || (s->privileges[0].id != CT_CHAT_PRIVILEGE_USER &&
                                    s->privileges[0].id != CT_CHAT_PRIVILEGE_APP)) {
        return srv_fail(status, SRV_INVALID_ARGUMENT,
                        "token's Chat service must hold exactly one privilege, user or app");
    }
    *privilege = &s->privileges[0];
    *user_id = s->fields[0].bytes;
    if (s->privileges[0].id == CT_CHAT_PRIVILEGE_USER &&
        (user_id->len == 0 || user_id->len > CT_USER_ID_MAX)) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "user token has no valid user id");
    }
    if (s->privileges[0].id == CT_CHAT_PRIVILEGE_APP && user_id->len != 0) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "app token carries a user id");
    }
    return srv_ok(status);
}

/* A user token's user id is one this service issues: a normalised username
 * in username mode, a UUID in uuid mode. It goes into the new token and into
 * the reply's proto string, so nothing else (no NUL, no bytes that are not
 * UTF-8) may pass. */
static int issued_user_id(const ct_config *cfg, ct_view user_id, srv_status *status)
{
    const char *id = (const char *)user_id.data;
    char normalised[CT_USERNAME_MAX + 1];
    char err[SRV_MESSAGE_MAX];

    if (cfg->identity == CT_IDENTITY_UUID) {
        if (!ud_uuid_valid(id, user_id.len)) {
            return srv_fail(status, SRV_INVALID_ARGUMENT,
                            "token's user id is not a Chat UUID (1..%d of A-Z a-z 0-9 _ -)",
                            UD_UUID_MAX);
        }
        return srv_ok(status);
    }
    if (ct_username_normalize(id, user_id.len, normalised, err, sizeof(err)) != 0) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "token's user id is not a username: %s", err);
    }
    if (memcmp(normalised, id, user_id.len) != 0) {
        return srv_fail(status, SRV_INVALID_ARGUMENT,
                        "token's user id is not a normalised (lower-case) username");
    }
    return srv_ok(status);
}

/* Signed by this app with the current or a previous certificate? */
static int signed_by_us(const ct_config *cfg, const ct_token *tok, srv_status *status)
{
    if (tok->app_id.len != CT_HEX_ID_LEN ||
        strncasecmp((const char *)tok->app_id.data, cfg->app_id, CT_HEX_ID_LEN) != 0) {
        return srv_fail(status, SRV_PERMISSION_DENIED, "token was issued for another app");
    }
    if (ct_token_verify(tok, cfg->app_certificate) == CT_OK) {
        return srv_ok(status);
    }
    for (size_t i = 0; i < cfg->previous_certificate_count; i++) {
        if (ct_token_verify(tok, cfg->previous_certificates[i]) == CT_OK) {
            return srv_ok(status);
        }
    }
    return srv_fail(status, SRV_PERMISSION_DENIED,
                    "token signature does not verify with this app's certificates");
}

/* One parsed token per thread: it is 64 KiB, too large for every call. */
static _Thread_local ct_token renew_token;

/* What renew answers when an end user's user token (uuid mode) must wait
 * for the directory: pending holds the token's UUID and the TTL. */
#define RENEW_NEEDS_LOOKUP (-1)

static int renew(const srv_context *ctx, const srv_caller *caller, const char *token,
                 size_t token_len, uint32_t ttl_seconds, srv_token_reply *reply, srv_status *status,
                 srv_user_request *pending)
{
    const ct_config *cfg = ctx->config;
    ct_token *tok = &renew_token;
    const ct_privilege *privilege = NULL;
    ct_view user_id = {NULL, 0};
    char identity[CT_USER_ID_MAX + 1];
    char err[SRV_MESSAGE_MAX];
    uint64_t expired_at;
    uint32_t ttl = 0;
    int rc;

    reply->registered = 0;
    if (srv_authorize(caller, CT_METHOD_RENEW_TOKEN, status) != SRV_OK ||
        srv_resolve_ttl(cfg, ttl_seconds, &ttl, status) != SRV_OK) {
        return status->code;
    }
    rc = ct_token_parse(token, token_len, tok, err, sizeof(err));
    if (rc != CT_OK) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "token does not parse (%s): %s",
                        ct_result_name(rc), err);
    }
    if (signed_by_us(cfg, tok, status) != SRV_OK) {
        return status->code;
    }
    if (srv_rtc_token_holds_rtc_or_rtm(tok)) {
        return srv_renew_rtc_or_rtm(ctx, caller, tok, ttl, reply, status);
    }
    if (chat_privilege(tok, &privilege, &user_id, status) != SRV_OK) {
        return status->code;
    }
    /* an app token is worth as much as GetAppToken: same permission */
    if (privilege->id == CT_CHAT_PRIVILEGE_APP &&
        srv_authorize(caller, CT_METHOD_GET_APP_TOKEN, status) != SRV_OK) {
        return srv_fail(status, SRV_PERMISSION_DENIED,
                        "caller '%s' may not renew app tokens: that needs GetAppToken",
                        caller->name);
    }
    if (privilege->id == CT_CHAT_PRIVILEGE_USER && issued_user_id(cfg, user_id, status) != SRV_OK) {
        return status->code;
    }
    memcpy(identity, user_id.data, user_id.len);
    identity[user_id.len] = '\0';
    expired_at = ct_privilege_expire_at(tok, privilege);
    if (ct_token_expire_at(tok) < expired_at) {
        expired_at = ct_token_expire_at(tok);
    }
    if (srv_check_renew_grace(ctx, expired_at, status) != SRV_OK) {
        return status->code;
    }
    if (caller->end_user && cfg->identity == CT_IDENTITY_UUID && identity[0] != '\0') {
        /* which UUID the user's name maps to, only the directory knows */
        if (caller->user[0] == '\0') {
            return srv_fail(status, SRV_PERMISSION_DENIED, "%s", caller->user_problem);
        }
        if (pending == NULL) {
            return srv_fail(status, SRV_PERMISSION_DENIED,
                            "an end user's renewal in uuid mode needs the directory");
        }
        snprintf(pending->renew_user_id, sizeof(pending->renew_user_id), "%s", identity);
        snprintf(pending->username, sizeof(pending->username), "%s", caller->user);
        pending->ttl = ttl;
        return RENEW_NEEDS_LOOKUP;
    }
    if (srv_authorize_user(caller, "the token's user", identity, status) != SRV_OK) {
        return status->code;
    }
    return issue(ctx, identity, ttl, reply, status);
}

int srv_renew_token(const srv_context *ctx, const srv_caller *caller, const char *token,
                    size_t token_len, uint32_t ttl_seconds, srv_token_reply *reply,
                    srv_status *status)
{
    return renew(ctx, caller, token, token_len, ttl_seconds, reply, status, NULL);
}

/* The directory's answer to an end user's renewal: the token's UUID must be
 * the one of the user's name. */
static void finish_renew_with_directory(void *arg, const ud_result *result)
{
    srv_user_request *req = arg;

    if (result->status != UD_OK) {
        srv_fail(&req->status, directory_code(result->status), "%s", result->message);
    } else if (strcmp(result->uuid, req->renew_user_id) != 0) {
        srv_fail(&req->status, SRV_PERMISSION_DENIED,
                 "end user '%s' may renew only its own tokens: this one is another user's",
                 req->username);
    } else {
        issue(req->ctx, req->renew_user_id, req->ttl, &req->reply, &req->status);
    }
    req->done(req);
}

void srv_renew_token_async(const srv_context *ctx, const srv_caller *caller, const char *token,
                           size_t token_len, uint32_t ttl_seconds, int64_t deadline_ms,
                           srv_user_request *req, srv_done_fn done, void *arg)
{
    begin(ctx, req, done, arg);
    if (renew(ctx, caller, token, token_len, ttl_seconds, &req->reply, &req->status, req) !=
        RENEW_NEEDS_LOOKUP) {
        done(req);
        return;
    }
    look_up(ctx, req, deadline_ms, finish_renew_with_directory);
}
