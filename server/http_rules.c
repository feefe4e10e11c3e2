/* The pure part of the HTTP side port: routing and path-segment decoding, the
 * methods each route answers, ?ttl and the RenewToken body, the one table
 * from gRPC codes to HTTP statuses, CORS origins and RFC 3339 times. No
 * sockets here: http.c calls these, and so do the unit tests and the fuzzer,
 * linking the server library. */
#include "http_rules.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "text.h"

int srv_http_decode_segment(const char *what, const char *segment, size_t len, char *out,
                            size_t size, size_t *outlen, srv_status *status)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char c = segment[i];
        if (c == '%') {
            int h = len - i >= 3 ? ct_hex_digit(segment[i + 1]) : -1;
            int l = len - i >= 3 ? ct_hex_digit(segment[i + 2]) : -1;
            if (h < 0 || l < 0) {
                return srv_fail(status, SRV_INVALID_ARGUMENT,
                                "%s: '%%' must be followed by two hex digits", what);
            }
            c = (char)(h * 16 + l);
            if (c == '\0') {
                return srv_fail(status, SRV_INVALID_ARGUMENT, "%s: %%00 is not allowed", what);
            }
            i += 2;
        }
        if (n + 1 >= size) {
            return srv_fail(status, SRV_INVALID_ARGUMENT, "%s is longer than %zu characters", what,
                            size - 1);
        }
        out[n++] = c;
    }
    out[n] = '\0';
    *outlen = n;
    return srv_ok(status);
}

int srv_http_match(const char *path, int compat_routes, enum srv_http_route *route, char *username,
                   size_t size, size_t *username_len, srv_status *status)
{
    static const char user_prefix[] = "/chat/user/";
    static const char user_suffix[] = "/token";
    static const struct {
        const char *path;
        enum srv_http_route route;
        int compat;
    } fixed[] = {
        {"/chat/app/token", SRV_HTTP_ROUTE_APP_TOKEN, 1},
        {"/chat/token/renew", SRV_HTTP_ROUTE_RENEW, 0},
        {"/healthz", SRV_HTTP_ROUTE_HEALTHZ, 0},
        {"/readyz", SRV_HTTP_ROUTE_READYZ, 0},
        {"/metrics", SRV_HTTP_ROUTE_METRICS, 0},
    };
    size_t len = strlen(path);

    *route = SRV_HTTP_ROUTE_NONE;
    srv_ok(status);
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(path, fixed[i].path) == 0) {
            if (!fixed[i].compat || compat_routes) {
                *route = fixed[i].route;
            }
            return SRV_OK;
        }
    }
    /* /chat/user/{username}/token: exactly one segment between the two */
    size_t pre = sizeof(user_prefix) - 1, suf = sizeof(user_suffix) - 1;
    if (!compat_routes || len < pre + suf || strncmp(path, user_prefix, pre) != 0 ||
        strcmp(path + len - suf, user_suffix) != 0) {
        return SRV_OK;
    }
    const char *segment = path + pre;
    size_t segment_len = len - pre - suf;
    if (memchr(segment, '/', segment_len) != NULL) {
        return SRV_OK;
    }
    if (srv_http_decode_segment("username", segment, segment_len, username, size, username_len,
                                status) != SRV_OK) {
        return status->code;
    }
    *route = SRV_HTTP_ROUTE_USER_TOKEN;
    return SRV_OK;
}

enum ct_method srv_http_route_method(enum srv_http_route route)
{
    switch (route) {
    case SRV_HTTP_ROUTE_APP_TOKEN:
        return CT_METHOD_GET_APP_TOKEN;
    case SRV_HTTP_ROUTE_USER_TOKEN:
        return CT_METHOD_GET_USER_TOKEN;
    case SRV_HTTP_ROUTE_RENEW:
        return CT_METHOD_RENEW_TOKEN;
    default:
        return CT_METHOD_UNKNOWN;
    }
}

const char *srv_http_allow(enum srv_http_route route)
{
    switch (route) {
    case SRV_HTTP_ROUTE_RENEW:
    case SRV_HTTP_ROUTE_AGORA_POST:
        return "POST, OPTIONS";
    case SRV_HTTP_ROUTE_APP_TOKEN:
    case SRV_HTTP_ROUTE_USER_TOKEN:
    case SRV_HTTP_ROUTE_AGORA_GET:
        return "GET, OPTIONS";
    case SRV_HTTP_ROUTE_NONE:
        return "";
    default:
        return "GET, HEAD, OPTIONS";
    }
}

int srv_http_method_allowed(enum srv_http_route route, const char *method)
{
    if (route == SRV_HTTP_ROUTE_NONE) {
        return 0;
    }
    if (strcmp(method, "OPTIONS") == 0) {
        return 1;
    }
    if (route == SRV_HTTP_ROUTE_RENEW || route == SRV_HTTP_ROUTE_AGORA_POST) {
        return strcmp(method, "POST") == 0;
    }
    /* HEAD only where it costs nothing: a HEAD that issued a token would
     * count one that nobody receives */
    if (route == SRV_HTTP_ROUTE_APP_TOKEN || route == SRV_HTTP_ROUTE_USER_TOKEN ||
        route == SRV_HTTP_ROUTE_AGORA_GET) {
        return strcmp(method, "GET") == 0;
    }
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

int srv_http_parse_seconds(const char *name, const char *value, uint32_t *seconds,
                           srv_status *status)
{
    uint64_t v = 0;
    size_t len;

    *seconds = 0;
    srv_ok(status);
    if (value == NULL) {
        return SRV_OK;
    }
    len = strlen(value);
    if (len == 0 || len > 10) {
        return srv_fail(status, SRV_INVALID_ARGUMENT,
                        "%s must be a number of seconds (1 to 10 digits)", name);
    }
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9') {
            return srv_fail(status, SRV_INVALID_ARGUMENT,
                            "%s must be a number of seconds (digits only)", name);
        }
        v = v * 10 + (uint64_t)(value[i] - '0');
    }
    if (v > UINT32_MAX) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "%s is out of range", name);
    }
    *seconds = (uint32_t)v;
    return SRV_OK;
}

int srv_http_parse_ttl(const char *value, uint32_t *ttl, srv_status *status)
{
    return srv_http_parse_seconds("ttl", value, ttl, status);
}

/* ttl_seconds: a JSON integer 0..UINT32_MAX. */
static int renew_ttl(json_t *value, uint32_t *ttl, srv_status *status)
{
    json_int_t v;

    if (!json_is_integer(value)) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "ttl_seconds must be an integer");
    }
    v = json_integer_value(value);
    if (v < 0 || (uint64_t)v > UINT32_MAX) {
        return srv_fail(status, SRV_INVALID_ARGUMENT, "ttl_seconds is out of range");
    }
    *ttl = (uint32_t)v;
    return SRV_OK;
}

json_t *srv_http_load_object(const char *body, size_t len, srv_status *status)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);

    srv_ok(status);
    if (root == NULL) {
        /* jansson's text names a position, never the content */
        srv_fail(status, SRV_INVALID_ARGUMENT, "body is not JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        srv_fail(status, SRV_INVALID_ARGUMENT, "body must be a JSON object");
        return NULL;
    }
    return root;
}

int srv_http_parse_renew(const char *body, size_t len, char **token, size_t *token_len,
                         uint32_t *ttl, srv_status *status)
{
    json_t *root, *value;
    const char *key;
    const char *text = NULL;
    size_t text_len = 0;
    int rc = SRV_OK;

    *token = NULL;
    *token_len = 0;
    *ttl = 0;
    root = srv_http_load_object(body, len, status);
    if (root == NULL) {
        return status->code;
    }
    json_object_foreach(root, key, value)
    {
        if (strcmp(key, "token") == 0) {
            if (!json_is_string(value)) {
                rc = srv_fail(status, SRV_INVALID_ARGUMENT, "token must be a string");
                break;
            }
            text = json_string_value(value);
            text_len = json_string_length(value);
        } else if (strcmp(key, "ttl_seconds") == 0 || strcmp(key, "ttlSeconds") == 0) {
            rc = renew_ttl(value, ttl, status);
            if (rc != SRV_OK) {
                break;
            }
        } else {
            rc = srv_fail(status, SRV_INVALID_ARGUMENT,
                          "unknown field in the body (expected token, ttl_seconds)");
            break;
        }
    }
    if (rc == SRV_OK && (text == NULL || text_len == 0)) {
        rc = srv_fail(status, SRV_INVALID_ARGUMENT, "token is required");
    }
    if (rc == SRV_OK) {
        *token = malloc(text_len + 1);
        if (*token == NULL) {
            rc = srv_fail(status, SRV_INTERNAL, "out of memory");
        } else {
            memcpy(*token, text, text_len + 1);
            *token_len = text_len;
        }
    }
    json_decref(root);
    return rc;
}

unsigned srv_http_status_for(enum srv_code code)
{
    /* One table, indexed by gRPC code; FAILED_PRECONDITION is 412 (the
     * token expired too long ago: log in again), not grpc-gateway's 400. */
    static const unsigned statuses[] = {
        [SRV_OK] = 200,
        [SRV_CANCELLED] = 499, /* client closed the request (nginx's code) */
        [SRV_UNKNOWN] = 500,
        [SRV_INVALID_ARGUMENT] = 400,
        [SRV_DEADLINE_EXCEEDED] = 504,
        [SRV_NOT_FOUND] = 404,
        [SRV_ALREADY_EXISTS] = 409,
        [SRV_PERMISSION_DENIED] = 403,
        [SRV_RESOURCE_EXHAUSTED] = 429,
        [SRV_FAILED_PRECONDITION] = 412,
        [SRV_ABORTED] = 409,
        [SRV_OUT_OF_RANGE] = 400,
        [SRV_UNIMPLEMENTED] = 501,
        [SRV_INTERNAL] = 500,
        [SRV_UNAVAILABLE] = 503,
        [SRV_DATA_LOSS] = 500,
        [SRV_UNAUTHENTICATED] = 401,
    };
    return (unsigned)code < sizeof(statuses) / sizeof(statuses[0]) ? statuses[code] : 500;
}

int srv_http_origin_allowed(const ct_config *cfg, const char *origin)
{
    if (origin == NULL || origin[0] == '\0') {
        return 0;
    }
    for (size_t i = 0; i < cfg->http_cors_origin_count; i++) {
        if (strcmp(cfg->http_cors_origins[i], "*") == 0 ||
            strcmp(cfg->http_cors_origins[i], origin) == 0) {
            return 1;
        }
    }
    return 0;
}

int srv_http_format_time(int64_t unix_seconds, char *out, size_t outlen)
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        return -1;
    }
    return 0;
}
