/* agora-token-service's routes: matching its paths (gin's trailing-slash
 * redirects included) and turning its parameters and POST body into the
 * requests of our handlers. The serving is http.c's. */
#include "http_agora.h"

#include "http_rules.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* The route table: fixed words, then params, then whether the route's
 * path ends with '/' (as agora-token-service registers it with gin), then
 * the method whose permission and handler serve it (getToken's comes from
 * its body: the route of its tokenType). */
static const struct {
    enum srv_agora_route route;
    const char *words[2];
    size_t word_count;
    size_t params;
    int trailing_slash;
    enum ct_method method;
} routes[] = {
    {SRV_AGORA_RTC, {"rtc", NULL}, 1, 4, 1, CT_METHOD_GET_RTC_TOKEN},
    {SRV_AGORA_RTM, {"rtm", NULL}, 1, 1, 1, CT_METHOD_GET_RTM_TOKEN},
    {SRV_AGORA_CHAT_APP, {"chat", "app"}, 2, 0, 1, CT_METHOD_GET_APP_TOKEN},
    {SRV_AGORA_CHAT_ACCOUNT, {"chat", "account"}, 2, 1, 1, CT_METHOD_GET_USER_TOKEN},
    {SRV_AGORA_GET_TOKEN, {"getToken", NULL}, 1, 0, 0, CT_METHOD_UNKNOWN},
    {SRV_AGORA_PING, {"ping", NULL}, 1, 0, 0, CT_METHOD_UNKNOWN},
};

#define MAX_SEGMENTS 6 /* "rtc" and 4 params, and one more to see a longer path */

int srv_agora_match_path(const char *path, srv_agora_match *m, srv_status *status)
{
    const char *start[MAX_SEGMENTS];
    size_t len[MAX_SEGMENTS];
    size_t count = 0, path_len = strlen(path);
    int trailing;

    memset(m, 0, sizeof(*m));
    srv_ok(status);
    if (path[0] != '/' || path_len < 2 || path_len >= sizeof(m->location) - 1) {
        return SRV_OK;
    }
    trailing = path[path_len - 1] == '/';
    /* the segments between the slashes, the one after a trailing '/' left out */
    for (const char *p = path + 1; count < MAX_SEGMENTS;) {
        const char *slash = strchr(p, '/');
        size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (slash == NULL && trailing) {
            break;
        }
        start[count] = p;
        len[count++] = n;
        if (slash == NULL) {
            break;
        }
        p = slash + 1;
        if (*p == '\0' && trailing) {
            break;
        }
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        size_t want = routes[i].word_count + routes[i].params;
        size_t w;
        if (count != want) {
            continue;
        }
        for (w = 0; w < routes[i].word_count; w++) {
            if (len[w] != strlen(routes[i].words[w]) ||
                memcmp(start[w], routes[i].words[w], len[w]) != 0) {
                break;
            }
        }
        if (w < routes[i].word_count) {
            continue;
        }
        m->route = routes[i].route;
        if (trailing != routes[i].trailing_slash) {
            /* gin's RedirectTrailingSlash: the same path with or without it */
            m->redirect = 1;
            memcpy(m->location, path, path_len - (size_t)trailing);
            if (!trailing) {
                m->location[path_len] = '/';
            }
            return SRV_OK;
        }
        for (size_t k = 0; k < routes[i].params; k++) {
            size_t n;
            if (srv_http_decode_segment("path parameter", start[w + k], len[w + k], m->segments[k],
                                        sizeof(m->segments[k]), &n, status) != SRV_OK) {
                m->route = SRV_AGORA_NONE;
                return status->code;
            }
        }
        m->segment_count = routes[i].params;
        return SRV_OK;
    }
    return SRV_OK;
}

enum ct_method srv_agora_method(enum srv_agora_route kind)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (routes[i].route == kind) {
            return routes[i].method;
        }
    }
    return CT_METHOD_UNKNOWN;
}

/* A uid as agora-token-service takes it: decimal digits; it truncates
 * anything above 32 bits, we refuse it. */
static int parse_uid(const char *text, uint32_t *uid, srv_status *status)
{
    uint64_t v = 0;
    size_t n = strlen(text);

    if (n == 0 || n > 10) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "uid must be a number 0..4294967295");
    }
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return srv_fail(status, SRV_INVALID_ARGUMENT, "uid must be a number 0..4294967295");
        }
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (v > UINT32_MAX) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "uid must be a number 0..4294967295");
    }
    *uid = (uint32_t)v;
    return srv_ok(status);
}

static int is_uid(const char *text)
{
    size_t n = strlen(text);

    return n > 0 && strspn(text, "0123456789") == n;
}

static void set_user(srv_agora_ask *ask, const char *user)
{
    snprintf(ask->user, sizeof(ask->user), "%s", user);
}

/* The RTC part both forms share; channel and user are already in ask. */
static void rtc_ask(srv_agora_ask *ask, const char *role)
{
    ask->kind = SRV_AGORA_RTC;
    ask->rtc.channel_name = ask->channel;
    ask->rtc.role = strcmp(role, "publisher") == 0 ? CT_RTC_ROLE_PUBLISHER : CT_RTC_ROLE_SUBSCRIBER;
    ask->rtc.account = ask->user;
}

int srv_agora_ask_from_path(const srv_agora_match *m, const char *expiry, srv_agora_ask *ask,
                            srv_status *status)
{
    memset(ask, 0, sizeof(*ask));
    if (srv_http_parse_seconds("expiry", expiry, &ask->ttl, status) != SRV_OK) {
        return status->code;
    }
    ask->kind = m->route;
    ask->rtc.ttl_seconds = ask->ttl;
    switch (m->route) {
    case SRV_AGORA_RTC: {
        const char *type = m->segments[2];
        snprintf(ask->channel, sizeof(ask->channel), "%s", m->segments[0]);
        set_user(ask, m->segments[3]);
        rtc_ask(ask, m->segments[1]);
        ask->token_key = "rtcToken";
        if (strcmp(type, "uid") == 0) {
            ask->rtc.user = SRV_RTC_USER_UID;
            /* an empty uid is 0: any uid */
            return ask->user[0] == '\0' ? srv_ok(status)
                                        : parse_uid(ask->user, &ask->rtc.uid, status);
        }
        if (strcmp(type, "userAccount") == 0) {
            ask->rtc.user = SRV_RTC_USER_ACCOUNT;
            if (ask->user[0] == '\0') {
                set_user(ask, "0"); /* agora-token-service's default */
            }
            return srv_ok(status);
        }
        return srv_fail(status, SRV_INVALID_ARGUMENT,
                        "tokenType must be uid or userAccount, got \"%.40s\"", type);
    }
    case SRV_AGORA_RTM:
        set_user(ask, m->segments[0]);
        ask->token_key = "rtmToken";
        if (strcmp(ask->user, "0") == 0) {
            return srv_fail(status, SRV_INVALID_ARGUMENT, "the RTM user id must not be \"0\"");
        }
        return srv_ok(status);
    case SRV_AGORA_CHAT_ACCOUNT:
        set_user(ask, m->segments[0]);
        ask->token_key = "chatToken";
        return srv_ok(status);
    case SRV_AGORA_CHAT_APP:
        ask->token_key = "chatToken";
        return srv_ok(status);
    default:
        return srv_fail(status, SRV_INVALID_ARGUMENT, "not a token route");
    }
}

/* A string member of the body: "" when absent, INVALID_ARGUMENT when not
 * a string or longer than the buffer. */
static int body_string(json_t *root, const char *key, char *out, size_t size, srv_status *status)
{
    json_t *v = json_object_get(root, key);

    out[0] = '\0';
    if (v == NULL || json_is_null(v)) {
        return srv_ok(status);
    }
    if (!json_is_string(v)) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "%s must be a string", key);
    }
    if (json_string_length(v) >= size || strlen(json_string_value(v)) != json_string_length(v)) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "%s is longer than %zu bytes or holds NUL",
                        key, size - 1);
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return srv_ok(status);
}

static int body_ask(json_t *root, srv_agora_ask *ask, srv_status *status)
{
    char type[16], role[16];
    json_t *expire = json_object_get(root, "expire");

    if (body_string(root, "tokenType", type, sizeof(type), status) != SRV_OK ||
        body_string(root, "role", role, sizeof(role), status) != SRV_OK ||
        body_string(root, "channel", ask->channel, sizeof(ask->channel), status) != SRV_OK ||
        body_string(root, "uid", ask->user, sizeof(ask->user), status) != SRV_OK) {
        return status->code;
    }
    if (expire != NULL && !json_is_null(expire)) {
        if (!json_is_integer(expire) || json_integer_value(expire) < 0 ||
            (uint64_t)json_integer_value(expire) > UINT32_MAX) {
            return srv_fail(status, SRV_INVALID_ARGUMENT,
                            "expire must be a number of seconds 0..4294967295");
        }
        ask->ttl = (uint32_t)json_integer_value(expire);
    }
    ask->token_key = "token";
    ask->rtc.ttl_seconds = ask->ttl;
    if (strcmp(type, "rtc") == 0) {
        if (ask->channel[0] == '\0') {
            return srv_fail(status, SRV_INVALID_ARGUMENT, "invalid: missing channel name");
        }
        if (ask->user[0] == '\0') {
            return srv_fail(status, SRV_INVALID_ARGUMENT, "invalid: missing user ID or account");
        }
        rtc_ask(ask, role);
        if (is_uid(ask->user)) {
            ask->rtc.user = SRV_RTC_USER_UID;
            return parse_uid(ask->user, &ask->rtc.uid, status);
        }
        ask->rtc.user = SRV_RTC_USER_ACCOUNT;
        return srv_ok(status);
    }
    if (strcmp(type, "rtm") == 0) {
        ask->kind = SRV_AGORA_RTM;
        if (ask->user[0] == '\0') {
            return srv_fail(status, SRV_INVALID_ARGUMENT, "invalid: missing user ID or account");
        }
        if (ask->channel[0] != '\0') {
            return srv_fail(status, SRV_INVALID_ARGUMENT,
                            "an RTM token with a channel (RTC stream-data privileges) is not "
                            "issued here: leave channel out, or ask for an RTC token with_rtm");
        }
        return srv_ok(status);
    }
    if (strcmp(type, "chat") == 0) {
        ask->kind = ask->user[0] == '\0' ? SRV_AGORA_CHAT_APP : SRV_AGORA_CHAT_ACCOUNT;
        return srv_ok(status);
    }
    return srv_fail(status, SRV_INVALID_ARGUMENT,
                    "Unsupported tokenType: it must be rtc, rtm or chat");
}

int srv_agora_ask_from_body(const char *body, size_t len, srv_agora_ask *ask, srv_status *status)
{
    json_t *root;
    int rc;

    memset(ask, 0, sizeof(*ask));
    root = srv_http_load_object(body, len, status);
    if (root == NULL) {
        return status->code;
    }
    rc = body_ask(root, ask, status);
    json_decref(root);
    return rc;
}
