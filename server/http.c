/* The HTTP side port: libmicrohttpd with its own thread pool, the seed's
 * token routes, RenewToken as JSON, /healthz, /readyz, /metrics, CORS.
 * Every token rule is the handlers' (handlers.c) and every key check is
 * auth.c's; this file only turns HTTP into their calls and back. A
 * GetUserToken that waits for the directory suspends its connection, and
 * the handler's done callback resumes it. */
#include "http.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "auth.h"
#include "http_agora.h"
#include "log.h"
#include "metrics.h"
#include "rpc.h"
#include "snapshot.h"

#define LISTEN_BACKLOG 128
#define STRINGIFY(x) #x
#define SRV_HTTP_STR(x) STRINGIFY(x)

/* ---- the server ---------------------------------------------------------- */

/* The connection limit. libmicrohttpd's own MHD_OPTION_CONNECTION_LIMIT
 * does not refuse anything: at the limit it stops accepting, and further
 * clients wait in the kernel's listen backlog (then time out in connect)
 * without learning why. So libmicrohttpd's limit is set above ours, we
 * count connections ourselves (MHD_OPTION_NOTIFY_CONNECTION), and:
 * - up to http.max_connections: served as usual;
 * - the next SRV_HTTP_OVER_LIMIT_SLOTS: answered at once, on their first
 *   request, with 503 UNAVAILABLE, Retry-After: 1 and Connection: close,
 *   no handler called; they may idle SRV_HTTP_OVER_LIMIT_TIMEOUT seconds
 *   before the request, not the usual 30. A browser's fetch can read that
 *   answer (CORS headers included) and retry, where a bare close is only a
 *   "network error";
 * - beyond: refused at accept time by the accept policy callback, which
 *   closes the socket at once. An idle flood (connections that never send
 *   a request) fills the 503 slots, so this is what keeps it from backing
 *   up into the listen backlog.
 * The accept policy alone would have been simpler, but tells a client
 * nothing. UNAVAILABLE rather than RESOURCE_EXHAUSTED: it is the code for
 * "transient, retry with backoff" (gRPC clients retry it; they do not
 * retry RESOURCE_EXHAUSTED, a quota), and it maps to 503 in our one table
 * (RESOURCE_EXHAUSTED is 429, a per-client rate limit). */

/* The request deadline. libmicrohttpd's connection timeout counts
 * inactivity only: a client that sends a header line every few seconds
 * would hold its connection forever, and http.max_connections of them
 * would lock every real client out. So each connection must deliver a
 * complete request (headers and body) within http.request_timeout_seconds
 * of connecting or of its previous answer; a watchdog thread shuts down
 * the socket of one that does not, and libmicrohttpd then closes it. The
 * socket is shut down under conns_lock, and a connection leaves the list
 * (MHD_CONNECTION_NOTIFY_CLOSED) under it before libmicrohttpd closes its
 * descriptor, so a descriptor number reused by a new connection is never
 * hit. A request being answered (a lookup under way, an answer being
 * sent) has no deadline. http.max_connections_per_ip is libmicrohttpd's
 * MHD_OPTION_PER_IP_CONNECTION_LIMIT: past it a connection is closed at
 * accept. */
#define WATCHDOG_PERIOD_MS 200

/* The socket context of every connection (MHD_OPTION_NOTIFY_CONNECTION). */
typedef struct conn {
    struct conn *prev, *next; /* srv_http.conns, under conns_lock */
    MHD_socket fd;
    atomic_llong deadline_ms; /* CLOCK_MONOTONIC; 0 while a request is answered */
    int over_limit;           /* past http.max_connections: answered 503 */
} conn;

struct srv_http {
    struct MHD_Daemon *daemon;
    const ct_config *cfg;
    const srv_context *ctx;
    int (*serving)(void *);
    void *serving_arg;
    atomic_int draining;
    atomic_int lookups;            /* GetUserToken calls whose done callback has not run */
    unsigned limit;                /* http.max_connections */
    atomic_uint served;            /* connections within the limit */
    atomic_uint over;              /* connections past it, answered 503 */
    atomic_llong limit_logged;     /* monotonic second of the last over-limit log line */
    atomic_llong mhd_limit_logged; /* same, for libmicrohttpd's per-address refusals */
    atomic_llong deadline_logged;  /* same, for connections closed at the deadline */
    int64_t request_timeout_ms;    /* http.request_timeout_seconds */
    pthread_mutex_t conns_lock;
    pthread_cond_t watchdog_wake;
    conn *conns;
    int watchdog_stop; /* under conns_lock */
    pthread_t watchdog;
    int listen_fd;
    ct_listen_addr addr; /* http.listen, parsed */
    int unix_bound;      /* we made the socket file: remove it at the stop */
};

enum lookup_state { LOOKUP_RUNNING = 0, LOOKUP_SUSPENDED, LOOKUP_DONE };

/* One request's state (MHD's con_cls), freed when MHD completes it. */
typedef struct request {
    srv_http *http;
    struct MHD_Connection *connection;
    enum srv_http_route route;
    enum ct_method method; /* for logs and metrics; UNKNOWN = not an RPC */
    struct timespec started;
    int begun;
    int answered;
    int over_limit; /* past http.max_connections: 503, and close */
    int origin_allowed;
    const char *origin; /* MHD's copy, alive as long as the request */
    srv_caller caller;
    /* the config snapshot the request holds until MHD completes it, and the
     * handlers' context with its config */
    srv_snapshot *snapshot;
    srv_context ctx;
    char username[CT_USERNAME_MAX * 3 + 1]; /* decoded; the handler validates it */
    size_t username_len;
    uint32_t ttl;
    char *body;
    size_t body_len, body_cap;
    int lookup_started;
    atomic_int lookup_state;
    srv_user_request user;
    int agora;         /* an agora-token-service route (http_agora.c) */
    srv_agora_ask ask; /* its parameters, once parsed */
} request;

static double elapsed_seconds(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void format_peer(struct MHD_Connection *c, char *out, size_t outlen)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[NI_MAXHOST], port[NI_MAXSERV];
    const struct sockaddr *sa = info != NULL ? info->client_addr : NULL;
    socklen_t salen;

    if (sa == NULL || sa->sa_family == AF_UNIX) {
        snprintf(out, outlen, "unix:");
        return;
    }
    salen = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (getnameinfo(sa, salen, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, outlen, "unknown");
        return;
    }
    snprintf(out, outlen, sa->sa_family == AF_INET6 ? "ipv6:[%s]:%s" : "ipv4:%s:%s", host, port);
}

static void request_peer(void *arg, char *out, size_t outlen)
{
    format_peer(((request *)arg)->connection, out, outlen);
}

/* Counts, times and logs one token call (anything the route table calls an
 * RPC), as the gRPC side does. Issued tokens are counted by the handlers. */
static void finish_rpc(request *r, const srv_status *status)
{
    if (r->method != CT_METHOD_UNKNOWN) {
        srv_rpc_finished(SRV_TRANSPORT_HTTP, r->method, status, elapsed_seconds(&r->started),
                         &r->caller, request_peer, r);
    }
}

/* Headers every answer carries: CORS for allowed origins, and Vary so that
 * a cache never hands one origin's answer to another. */
static void common_headers(request *r, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->ctx.config->http_cors_origin_count > 0) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
    }
    if (r->origin_allowed) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, r->origin);
    }
    if (atomic_load(&r->http->draining) || r->over_limit) {
        /* keep-alive clients reconnect, and find a pod that is not going */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
}

/* Queues an answer; body is copied (or taken, when owned is set). */
static enum MHD_Result respond(request *r, unsigned status, const char *content_type, char *body,
                               size_t len, int owned)
{
    struct MHD_Response *resp;
    enum MHD_Result rc;

    resp = MHD_create_response_from_buffer(len, body,
                                           owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        if (owned) {
            free(body);
        }
        return MHD_NO;
    }
    common_headers(r, resp);
    if (content_type != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    }
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, srv_http_allow(r->route));
    }
    if (status == MHD_HTTP_UNAUTHORIZED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"chat-tokend\"");
    }
    if (r->over_limit) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    r->answered = 1;
    rc = MHD_queue_response(r->connection, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* {"code": "...", "message": "..."} with the status the code maps to, or
 * with http_status when it is not 0 (404, 405, 413, 414, 415: HTTP-level
 * errors that have no gRPC call behind them). */
static enum MHD_Result respond_error(request *r, const srv_status *status, unsigned http_status)
{
    unsigned code = http_status != 0 ? http_status : srv_http_status_for(status->code);
    /* agora-token-service's errors carry "status" (and "message"): so do
     * ours on its routes */
    json_t *obj = r->agora ? json_pack("{s:s,s:s,s:i}", "code", srv_code_name(status->code),
                                       "message", status->message, "status", (int)code)
                           : json_pack("{s:s,s:s}", "code", srv_code_name(status->code), "message",
                                       status->message);
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(obj);
    if (text == NULL) {
        return MHD_NO;
    }
    return respond(r, code, "application/json", text, strlen(text), 1);
}

/* {"key": "value"}, 200 */
static enum MHD_Result respond_json_pair(request *r, const char *key, const char *value)
{
    json_t *obj = json_pack("{s:s}", key, value);
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);
    if (text == NULL) {
        return MHD_NO;
    }
    return respond(r, MHD_HTTP_OK, "application/json", text, strlen(text), 1);
}

static enum MHD_Result respond_text(request *r, unsigned status, const char *text)
{
    return respond(r, status, "text/plain; charset=utf-8", (char *)text, strlen(text), 0);
}

/* The proto3 JSON name of a TokenKind. */
static const char *token_kind_name(enum srv_token_kind kind)
{
    static const char *const names[SRV_KIND_COUNT] = {"TOKEN_KIND_UNSPECIFIED", "TOKEN_KIND_APP",
                                                      "TOKEN_KIND_USER", "TOKEN_KIND_RTC",
                                                      "TOKEN_KIND_RTM"};

    return (unsigned)kind < SRV_KIND_COUNT ? names[kind] : names[0];
}

/* The answer to a token call: the token as text/plain for the compat
 * routes (what the seed's web client reads with res.text()), JSON for
 * RenewToken. */
static enum MHD_Result answer_token(request *r, const srv_token_reply *reply,
                                    const srv_status *status)
{
    char expire[32];
    json_t *obj;
    char *text;

    finish_rpc(r, status);
    if (status->code != SRV_OK) {
        return respond_error(r, status, 0);
    }
    if (r->agora) {
        return respond_json_pair(r, r->ask.token_key, reply->token);
    }
    if (r->route != SRV_HTTP_ROUTE_RENEW) {
        return respond(r, MHD_HTTP_OK, "text/plain; charset=utf-8", (char *)reply->token,
                       strlen(reply->token), 0);
    }
    if (srv_http_format_time(reply->expire_time, expire, sizeof(expire)) != 0) {
        expire[0] = '\0';
    }
    obj = json_pack("{s:s,s:s,s:s,s:s}", "token", reply->token, "expire_time", expire, "kind",
                    token_kind_name(reply->kind), "user_id", reply->user_id);
    text = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    if (text == NULL) {
        return MHD_NO;
    }
    return respond(r, MHD_HTTP_OK, "application/json", text, strlen(text), 1);
}

static enum MHD_Result answer_preflight(request *r)
{
    srv_status status;
    struct MHD_Response *resp;
    enum MHD_Result rc;

    if (r->origin == NULL) {
        /* a plain OPTIONS, not a browser's preflight: say what is allowed */
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (resp == NULL) {
            return MHD_NO;
        }
        common_headers(r, resp);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, srv_http_allow(r->route));
        r->answered = 1;
        rc = MHD_queue_response(r->connection, MHD_HTTP_NO_CONTENT, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    if (!r->origin_allowed) {
        srv_fail(&status, SRV_PERMISSION_DENIED, "origin is not in http.cors.allowed_origins");
        return respond_error(r, &status, 0);
    }
    resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        return MHD_NO;
    }
    common_headers(r, resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, X-Api-Key");
    MHD_add_response_header(resp, "Access-Control-Max-Age", SRV_HTTP_STR(SRV_HTTP_CORS_MAX_AGE));
    r->answered = 1;
    rc = MHD_queue_response(r->connection, MHD_HTTP_NO_CONTENT, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result answer_metrics(request *r)
{
    size_t len = 0;
    char *text = srv_metrics_render(r->ctx.directory, r->ctx.jwks, &len);

    if (text == NULL) {
        return respond_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    return respond(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len, 1);
}

static enum MHD_Result answer_readyz(request *r)
{
    srv_http *h = r->http;
    int ready = !atomic_load(&h->draining) && (h->serving == NULL || h->serving(h->serving_arg));
    char why[CT_CONFIG_NAME_MAX + 64];

    if (!ready) {
        return respond_text(r, MHD_HTTP_SERVICE_UNAVAILABLE, "draining\n");
    }
    /* JWT callers would be refused until their issuer's keys arrive */
    if (!srv_jwks_ready(r->ctx.jwks, why, sizeof(why) - 1)) {
        strcat(why, "\n");
        return respond_text(r, MHD_HTTP_SERVICE_UNAVAILABLE, why);
    }
    return respond_text(r, MHD_HTTP_OK, "ready\n");
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    srv_credentials_add_header(cls, key, key_size, value != NULL ? value : "", value_size);
    return MHD_YES;
}

/* The key from Authorization: Bearer or X-Api-Key, through auth.c. Every
 * header goes there, not the first of each name: auth refuses a request
 * that carries more than one credential. */
static int authenticate(request *r, srv_status *status)
{
    srv_credentials cred;

    memset(&cred, 0, sizeof(cred));
    MHD_get_connection_values_n(r->connection, MHD_HEADER_KIND, add_header, &cred);
    return srv_auth_identify(r->ctx.config, r->ctx.jwks, &cred, &r->caller, status);
}

/* Runs once, on this thread or the directory's. Whoever comes second of
 * this callback and the request thread's suspend resumes the connection;
 * after the exchange, r may be answered and freed at any moment. */
static void on_user_done(srv_user_request *user)
{
    request *r = user->arg;
    struct MHD_Connection *connection = r->connection;
    srv_http *h = r->http;

    if (atomic_exchange(&r->lookup_state, LOOKUP_DONE) == LOOKUP_SUSPENDED) {
        MHD_resume_connection(connection);
    }
    atomic_fetch_sub(&h->lookups, 1);
}

/* GetUserToken (renew 0: text is the username) or RenewToken (renew 1:
 * text is the token), which may wait for the directory. */
static enum MHD_Result start_lookup(request *r, int renew, const char *text, size_t text_len)
{
    srv_http *h = r->http;
    int64_t deadline = ud_monotonic_ms() + SRV_HTTP_LOOKUP_TIMEOUT_MS;

    r->lookup_started = 1;
    atomic_store(&r->lookup_state, LOOKUP_RUNNING);
    atomic_fetch_add(&h->lookups, 1);
    if (renew) {
        srv_renew_token_async(&r->ctx, &r->caller, text, text_len, r->ttl, deadline, &r->user,
                              on_user_done, r);
    } else {
        srv_get_user_token(&r->ctx, &r->caller, text, text_len, r->ttl, deadline, &r->user,
                           on_user_done, r);
    }
    if (atomic_load(&r->lookup_state) == LOOKUP_DONE) {
        return answer_token(r, &r->user.reply, &r->user.status);
    }
    MHD_suspend_connection(r->connection);
    if (atomic_exchange(&r->lookup_state, LOOKUP_SUSPENDED) == LOOKUP_DONE) {
        /* done came between the check and the suspend: MHD calls us again */
        MHD_resume_connection(r->connection);
    }
    return MHD_YES;
}

static enum MHD_Result answer_renew(request *r)
{
    srv_status status;
    char *token = NULL;
    size_t token_len = 0;
    enum MHD_Result rc;

    if (srv_http_parse_renew(r->body != NULL ? r->body : "", r->body_len, &token, &token_len,
                             &r->ttl, &status) != SRV_OK) {
        finish_rpc(r, &status);
        return respond_error(r, &status, 0);
    }
    rc = start_lookup(r, 1, token, token_len);
    free(token);
    return rc;
}

/* A Content-Length over SRV_HTTP_BODY_MAX is answered 413 at once (1). */
static int refuse_large_body(request *r, enum MHD_Result *rc)
{
    const char *value =
        MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    srv_status status;

    if (value == NULL || strtoull(value, NULL, 10) <= SRV_HTTP_BODY_MAX) {
        return 0;
    }
    srv_fail(&status, SRV_INVALID_ARGUMENT, "body is larger than %d bytes", SRV_HTTP_BODY_MAX);
    finish_rpc(r, &status);
    *rc = respond_error(r, &status, MHD_HTTP_CONTENT_TOO_LARGE);
    return 1;
}

/* A query argument as received (no unescaping, see on_unescape): NULL when
 * absent, "" for "?name" without a value. */
static const char *query_value(request *r, const char *name)
{
    const char *value = NULL;
    size_t len = 0;

    if (MHD_lookup_connection_value_n(r->connection, MHD_GET_ARGUMENT_KIND, name, strlen(name),
                                      &value, &len) == MHD_YES &&
        value == NULL) {
        return "";
    }
    return value;
}

/* Content-Type: application/json, optionally with parameters. */
static int is_json(const char *content_type)
{
    static const char json_type[] = "application/json";
    size_t n = sizeof(json_type) - 1;

    return content_type != NULL && strncasecmp(content_type, json_type, n) == 0 &&
           (content_type[n] == '\0' || content_type[n] == ';' || content_type[n] == ' ');
}

/* A token call: authenticate, read the inputs, call the handler. */
static enum MHD_Result begin_rpc(request *r)
{
    srv_status status;
    srv_token_reply reply;
    enum MHD_Result rc = MHD_YES;

    if (authenticate(r, &status) != SRV_OK) {
        snprintf(r->caller.name, sizeof(r->caller.name), "%s", "");
        finish_rpc(r, &status);
        return respond_error(r, &status, 0);
    }
    if (r->route == SRV_HTTP_ROUTE_RENEW) {
        if (!is_json(MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE))) {
            srv_fail(&status, SRV_INVALID_ARGUMENT, "Content-Type must be application/json");
            finish_rpc(r, &status);
            return respond_error(r, &status, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE);
        }
        return refuse_large_body(r, &rc) ? rc : MHD_YES; /* the body comes next */
    }
    /* the query is raw: ttl is digits only */
    if (srv_http_parse_ttl(query_value(r, "ttl"), &r->ttl, &status) != SRV_OK) {
        finish_rpc(r, &status);
        return respond_error(r, &status, 0);
    }
    if (r->route == SRV_HTTP_ROUTE_USER_TOKEN) {
        return start_lookup(r, 0, r->username, r->username_len);
    }
    srv_get_app_token(&r->ctx, &r->caller, r->ttl, &reply, &status);
    rc = answer_token(r, &reply, &status);
    memset(&reply, 0, sizeof(reply));
    return rc;
}

/* A method the route does not answer is 405 with Allow; OPTIONS is a
 * (CORS preflight) answer of its own. 1 when answered, with *rc set. */
static int answered_by_method(request *r, const char *method, enum MHD_Result *rc)
{
    srv_status status;

    if (!srv_http_method_allowed(r->route, method)) {
        srv_fail(&status, SRV_UNIMPLEMENTED, "method %s is not allowed here (allowed: %s)", method,
                 srv_http_allow(r->route));
        *rc = respond_error(r, &status, MHD_HTTP_METHOD_NOT_ALLOWED);
        return 1;
    }
    if (strcmp(method, "OPTIONS") == 0) {
        *rc = answer_preflight(r);
        return 1;
    }
    return 0;
}

/* ---- agora-token-service's routes (http_agora.c has the rules) ---- */

/* Appends one query argument, as received, to the location being built. */
static enum MHD_Result append_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    char *location = cls;
    size_t n = strlen(location);

    (void)kind;
    snprintf(location + n, SRV_HTTP_URL_MAX * 2 - n, "%s%s%s%s", strchr(location, '?') ? "&" : "?",
             key, value != NULL ? "=" : "", value != NULL ? value : "");
    return MHD_YES;
}

/* gin's trailing-slash redirect: 301 for GET, 307 otherwise, query kept. */
static enum MHD_Result respond_redirect(request *r, unsigned status, const char *path)
{
    char location[SRV_HTTP_URL_MAX * 2];
    struct MHD_Response *resp;
    enum MHD_Result rc;

    snprintf(location, sizeof(location), "%s", path);
    MHD_get_connection_values(r->connection, MHD_GET_ARGUMENT_KIND, append_query, location);
    resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        return MHD_NO;
    }
    common_headers(r, resp);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    r->answered = 1;
    rc = MHD_queue_response(r->connection, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Calls the handler of r->ask (parsed) and answers. */
static enum MHD_Result answer_agora(request *r)
{
    const srv_context *ctx = &r->ctx;
    srv_token_reply reply;
    srv_status status;
    enum MHD_Result rc;

    r->method = srv_agora_method(r->ask.kind);
    switch (r->ask.kind) {
    case SRV_AGORA_CHAT_ACCOUNT:
        r->ttl = r->ask.ttl;
        return start_lookup(r, 0, r->ask.user, strlen(r->ask.user));
    case SRV_AGORA_CHAT_APP:
        srv_get_app_token(ctx, &r->caller, r->ask.ttl, &reply, &status);
        break;
    case SRV_AGORA_RTM:
        srv_get_rtm_token(ctx, &r->caller, r->ask.user, r->ask.ttl, &reply, &status);
        break;
    default:
        srv_get_rtc_token(ctx, &r->caller, &r->ask.rtc, &reply, &status);
        break;
    }
    rc = answer_token(r, &reply, &status);
    memset(&reply, 0, sizeof(reply));
    return rc;
}

/* POST /getToken, its body read: a body that does not parse is an HTTP
 * error, not an RPC (which one the body would have said). */
static enum MHD_Result answer_agora_body(request *r)
{
    srv_status status;

    if (srv_agora_ask_from_body(r->body != NULL ? r->body : "", r->body_len, &r->ask, &status) !=
        SRV_OK) {
        return respond_error(r, &status, 0);
    }
    return answer_agora(r);
}

static enum MHD_Result begin_agora(request *r, const srv_agora_match *m, const char *method)
{
    int post = m->route == SRV_AGORA_GET_TOKEN;
    enum MHD_Result rc = MHD_YES;
    srv_status status;

    r->agora = 1;
    r->route = post ? SRV_HTTP_ROUTE_AGORA_POST : SRV_HTTP_ROUTE_AGORA_GET;
    if (answered_by_method(r, method, &rc)) {
        return rc;
    }
    if (m->redirect) {
        return respond_redirect(r, post ? MHD_HTTP_TEMPORARY_REDIRECT : MHD_HTTP_MOVED_PERMANENTLY,
                                m->location);
    }
    if (m->route == SRV_AGORA_PING) {
        return respond_json_pair(r, "message", "pong");
    }
    /* for POST, the body says which method: until then not an RPC */
    r->method = srv_agora_method(m->route);
    if (authenticate(r, &status) != SRV_OK) {
        snprintf(r->caller.name, sizeof(r->caller.name), "%s", "");
        finish_rpc(r, &status);
        return respond_error(r, &status, 0);
    }
    if (post) {
        return refuse_large_body(r, &rc) ? rc : MHD_YES; /* the body comes next */
    }
    /* raw, as ?ttl= is: digits only */
    if (srv_agora_ask_from_path(m, query_value(r, "expiry"), &r->ask, &status) != SRV_OK) {
        finish_rpc(r, &status);
        return respond_error(r, &status, 0);
    }
    return answer_agora(r);
}

/* The first call for a request: headers are in, the body (if any) is not. */
static enum MHD_Result begin(request *r, const char *url, const char *method)
{
    enum MHD_Result rc = MHD_YES;
    srv_status status;

    r->origin = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, "Origin");
    r->origin_allowed = srv_http_origin_allowed(r->ctx.config, r->origin);
    if (strlen(url) > SRV_HTTP_URL_MAX) {
        srv_fail(&status, SRV_INVALID_ARGUMENT, "request path is longer than %d bytes",
                 SRV_HTTP_URL_MAX);
        return respond_error(r, &status, MHD_HTTP_URI_TOO_LONG);
    }
    if (r->ctx.config->http_agora_token_service_routes) {
        srv_agora_match m;
        if (srv_agora_match_path(url, &m, &status) != SRV_OK) {
            r->agora = 1;
            return respond_error(r, &status, 0);
        }
        if (m.route != SRV_AGORA_NONE) {
            return begin_agora(r, &m, method);
        }
    }
    if (srv_http_match(url, r->ctx.config->http_compat_routes, &r->route, r->username,
                       sizeof(r->username), &r->username_len, &status) != SRV_OK) {
        return respond_error(r, &status, 0);
    }
    if (r->route == SRV_HTTP_ROUTE_NONE) {
        srv_fail(&status, SRV_NOT_FOUND, "no route for this path");
        return respond_error(r, &status, MHD_HTTP_NOT_FOUND);
    }
    if (answered_by_method(r, method, &rc)) {
        return rc;
    }
    switch (r->route) {
    case SRV_HTTP_ROUTE_HEALTHZ:
        return respond_text(r, MHD_HTTP_OK, "ok\n");
    case SRV_HTTP_ROUTE_READYZ:
        return answer_readyz(r);
    case SRV_HTTP_ROUTE_METRICS:
        return answer_metrics(r);
    default:
        r->method = srv_http_route_method(r->route);
        return begin_rpc(r);
    }
}

/* Appends an upload chunk; 0, or -1 once the body is over the bound. */
static int append_body(request *r, const char *data, size_t len)
{
    if (len > SRV_HTTP_BODY_MAX - r->body_len) {
        return -1;
    }
    if (r->body_len + len > r->body_cap) {
        size_t cap = r->body_cap == 0 ? 4096 : r->body_cap * 2;
        while (cap < r->body_len + len) {
            cap *= 2;
        }
        char *grown = realloc(r->body, cap);
        if (grown == NULL) {
            return -1;
        }
        r->body = grown;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    return 0;
}

/* 1 for the first caller in each monotonic second, through *last: one
 * warning a second at most while connections are refused or closed, so a
 * flood does not become a flood of log lines. */
static int first_this_second(atomic_llong *last_second)
{
    struct timespec now;
    long long second, last;

    clock_gettime(CLOCK_MONOTONIC, &now);
    second = (long long)now.tv_sec;
    last = atomic_load(last_second);
    return second != last && atomic_compare_exchange_strong(last_second, &last, second);
}

static void log_over_limit(srv_http *h, const char *what)
{
    if (!first_this_second(&h->limit_logged)) {
        return;
    }
    srv_log_event(CT_LOG_WARN, "http_connection_limit",
                  "http.max_connections (%u) reached: %u connections over it; %s", h->limit,
                  atomic_load(&h->over), what);
}

static conn *conn_of(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info != NULL ? info->socket_context : NULL;
}

static int is_over_limit(struct MHD_Connection *connection)
{
    conn *c = conn_of(connection);

    return c != NULL && c->over_limit;
}

static int64_t monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* The connection has until now + http.request_timeout_seconds to deliver
 * its next complete request. */
static void start_deadline(srv_http *h, struct MHD_Connection *connection)
{
    conn *c = conn_of(connection);

    if (c != NULL) {
        atomic_store(&c->deadline_ms, monotonic_ms() + h->request_timeout_ms);
    }
}

/* Its request is complete: no deadline while it is answered. */
static void stop_deadline(struct MHD_Connection *connection)
{
    conn *c = conn_of(connection);

    if (c != NULL) {
        atomic_store(&c->deadline_ms, 0);
    }
}

/* Shuts down the sockets of connections past their deadline. */
static void *watchdog(void *arg)
{
    srv_http *h = arg;
    struct timespec wake;

    pthread_mutex_lock(&h->conns_lock);
    while (!h->watchdog_stop) {
        int64_t now = monotonic_ms();
        unsigned closed = 0;

        for (conn *c = h->conns; c != NULL; c = c->next) {
            int64_t deadline = atomic_load(&c->deadline_ms);
            if (deadline != 0 && now >= deadline) {
                atomic_store(&c->deadline_ms, 0);
                shutdown(c->fd, SHUT_RDWR);
                closed++;
            }
        }
        if (closed > 0 && first_this_second(&h->deadline_logged)) {
            srv_log_event(CT_LOG_WARN, "http_request_timeout",
                          "closed %u connections that sent no complete request within %u s "
                          "(http.request_timeout_seconds)",
                          closed, (unsigned)(h->request_timeout_ms / 1000));
        }
        clock_gettime(CLOCK_MONOTONIC, &wake);
        wake.tv_nsec += WATCHDOG_PERIOD_MS * 1000000L;
        if (wake.tv_nsec >= 1000000000L) {
            wake.tv_sec++;
            wake.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->watchdog_wake, &h->conns_lock, &wake);
    }
    pthread_mutex_unlock(&h->conns_lock);
    return NULL;
}

static void stop_watchdog(srv_http *h)
{
    pthread_mutex_lock(&h->conns_lock);
    h->watchdog_stop = 1;
    pthread_cond_signal(&h->watchdog_wake);
    pthread_mutex_unlock(&h->conns_lock);
    pthread_join(h->watchdog, NULL);
}

/* The answer on a connection past the limit, whatever it asked. */
static enum MHD_Result refuse_over_limit(request *r)
{
    srv_status status;

    r->begun = 1;
    r->over_limit = 1;
    r->origin = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, "Origin");
    r->origin_allowed = srv_http_origin_allowed(r->ctx.config, r->origin);
    srv_fail(&status, SRV_UNAVAILABLE, "too many connections: limit %u", r->http->limit);
    return respond_error(r, &status, 0);
}

/* Counts connections, marks those past the limit (see above) and keeps
 * every connection in the watchdog's list (its deadline starts now). */
static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    srv_http *h = cls;
    conn *c = *socket_context;
    const union MHD_ConnectionInfo *info;
    unsigned served;

    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (c == NULL) {
            return; /* never counted (below) */
        }
        atomic_fetch_sub(c->over_limit ? &h->over : &h->served, 1);
        /* out of the list before libmicrohttpd closes the descriptor */
        pthread_mutex_lock(&h->conns_lock);
        if (c->prev != NULL) {
            c->prev->next = c->next;
        } else {
            h->conns = c->next;
        }
        if (c->next != NULL) {
            c->next->prev = c->prev;
        }
        pthread_mutex_unlock(&h->conns_lock);
        free(c);
        *socket_context = NULL;
        return;
    }
    info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    c = calloc(1, sizeof(*c));
    if (c == NULL || info == NULL) {
        /* without a deadline it could be held forever: not served at all */
        free(c);
        *socket_context = NULL;
        if (info != NULL) {
            shutdown(info->connect_fd, SHUT_RDWR);
        }
        return;
    }
    c->fd = info->connect_fd;
    atomic_store(&c->deadline_ms, monotonic_ms() + h->request_timeout_ms);
    pthread_mutex_lock(&h->conns_lock);
    c->next = h->conns;
    if (h->conns != NULL) {
        h->conns->prev = c;
    }
    h->conns = c;
    pthread_mutex_unlock(&h->conns_lock);
    *socket_context = c;
    served = atomic_load(&h->served);
    while (served < h->limit) {
        if (atomic_compare_exchange_weak(&h->served, &served, served + 1)) {
            return;
        }
    }
    c->over_limit = 1;
    atomic_fetch_add(&h->over, 1);
    /* it only waits for its first request: a slow one frees the slot soon */
    MHD_set_connection_option(connection, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned)SRV_HTTP_OVER_LIMIT_TIMEOUT);
    log_over_limit(h, "answering 503");
}

/* Runs on accept, before libmicrohttpd takes the connection: past the 503
 * slots, MHD_NO closes the socket at once. Connections that pass here at
 * the same moment on different threads may overshoot by a few; MHD's own
 * limit leaves room for that (srv_http_start). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    srv_http *h = cls;

    (void)addr;
    (void)addrlen;
    if (atomic_load(&h->served) < h->limit || atomic_load(&h->over) < SRV_HTTP_OVER_LIMIT_SLOTS) {
        return MHD_YES;
    }
    log_over_limit(h, "closing new connections at accept");
    return MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    request *r = *con_cls;
    srv_status status;

    (void)version;
    /* headers in (a request without a body), or the body's last call */
    if (*upload_data_size == 0 && (r != NULL || strcmp(method, "POST") != 0)) {
        stop_deadline(connection);
    }
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL) {
            return MHD_NO;
        }
        r->http = cls;
        r->snapshot = srv_snapshot_enter(r->http->ctx, &r->ctx);
        r->connection = connection;
        r->method = CT_METHOD_UNKNOWN;
        clock_gettime(CLOCK_MONOTONIC, &r->started);
        *con_cls = r;
        if (is_over_limit(connection)) {
            /* answered now: MHD then closes the connection, as it should */
            return refuse_over_limit(r);
        }
        /* MHD closes the connection after an answer queued in this first
         * call (it cannot know the body is empty): answer GETs in the next
         * one; a POST is checked now, so a refusal skips its body */
        if (strcmp(method, "POST") != 0) {
            return MHD_YES;
        }
        r->begun = 1;
        return begin(r, url, method);
    }
    if (!r->begun) {
        r->begun = 1;
        return begin(r, url, method);
    }
    if (r->answered) {
        /* a body nobody asked for (or past a refusal): drop it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->lookup_started) {
        /* resumed: the directory answered */
        return answer_token(r, &r->user.reply, &r->user.status);
    }
    if (*upload_data_size > 0) {
        if (append_body(r, upload_data, *upload_data_size) != 0) {
            /* a chunked body past the bound (a Content-Length one was
             * refused with 413 before): MHD cannot answer in the middle of
             * a body, and reading the rest is what the bound is against */
            srv_fail(&status, SRV_INVALID_ARGUMENT, "body is larger than %d bytes",
                     SRV_HTTP_BODY_MAX);
            finish_rpc(r, &status);
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return r->route == SRV_HTTP_ROUTE_AGORA_POST ? answer_agora_body(r) : answer_renew(r);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    request *r = *con_cls;

    (void)toe;
    /* a kept-alive connection: the next request has its own deadline */
    start_deadline(cls, connection);
    if (r == NULL) {
        return;
    }
    if (r->body != NULL) {
        /* a renew body holds a token */
        memset(r->body, 0, r->body_cap);
        free(r->body);
    }
    memset(&r->user.reply, 0, sizeof(r->user.reply));
    srv_snapshot_release(r->snapshot);
    free(r);
    *con_cls = NULL;
}

/* Leaves the path and query exactly as received: the username segment is
 * decoded by srv_http_match, strictly, and ttl is digits only. MHD's own
 * unescaping would turn %2F into '/' before routing. */
static size_t on_unescape(void *cls, struct MHD_Connection *connection, char *s)
{
    (void)cls;
    (void)connection;
    return strlen(s);
}

/* libmicrohttpd's messages, as our JSON log lines. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char message[512];
    size_t n;

    vsnprintf(message, sizeof(message), fmt, ap);
    n = strlen(message);
    while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r')) {
        message[--n] = '\0';
    }
    /* said for every connection refused by http.max_connections_per_ip */
    if (strstr(message, "connection limit") != NULL &&
        !first_this_second(&((srv_http *)cls)->mhd_limit_logged)) {
        return;
    }
    srv_log_event(CT_LOG_WARN, "http_server", "%s", message);
}

static int listen_unix(srv_http *h, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    const char *path = h->addr.path;
    int fd;

    ct_listen_remove_stale_socket(&h->addr);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    h->unix_bound = 1;
    h->listen_fd = fd;
    return 0;
}

static int listen_tcp(srv_http *h, const char *addr, char *err, size_t errlen)
{
    char port[16];
    struct addrinfo hints, *list = NULL;
    int one = 1, rc, fd = -1, saved = 0;

    snprintf(port, sizeof(port), "%u", h->addr.port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(h->addr.host, port, &hints, &list);
    if (rc != 0) {
        snprintf(err, errlen, "http.listen \"%s\": %s", addr, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0) {
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s (http.listen): %s", addr, strerror(saved));
        return -1;
    }
    h->listen_fd = fd;
    return 0;
}

/* Logs the address as the gRPC side does; port 0 becomes the one we got. */
static void log_listening(srv_http *h)
{
    const union MHD_DaemonInfo *info;
    char bound_addr[CT_LISTEN_HOST_MAX + 16];
    unsigned bound = 0;

    if (h->addr.is_unix) {
        srv_log_lifecycle("listening", "http+unix:%s", h->addr.path);
        return;
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info != NULL) {
        bound = info->port;
    }
    if (bound == 0) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(h->listen_fd, (struct sockaddr *)&ss, &len) == 0) {
            bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    ct_listen_format(&h->addr, bound, bound_addr, sizeof(bound_addr));
    srv_log_lifecycle("listening", "http://%s", bound_addr);
}

static unsigned thread_count(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (cores < 1) {
        return 1;
    }
    return cores > SRV_HTTP_MAX_THREADS ? SRV_HTTP_MAX_THREADS : (unsigned)cores;
}

/* A monotonic condition variable: the watchdog's waits ignore clock jumps. */
static srv_http *new_server(void)
{
    srv_http *h = calloc(1, sizeof(*h));
    pthread_condattr_t attr;

    if (h == NULL) {
        return NULL;
    }
    pthread_mutex_init(&h->conns_lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->watchdog_wake, &attr);
    pthread_condattr_destroy(&attr);
    return h;
}

static void free_server(srv_http *h)
{
    pthread_cond_destroy(&h->watchdog_wake);
    pthread_mutex_destroy(&h->conns_lock);
    free(h);
}

srv_http *srv_http_start(const ct_config *cfg, const srv_context *ctx, int (*serving)(void *),
                         void *serving_arg, char *err, size_t errlen)
{
    srv_http *h = new_server();
    const char *addr = cfg->http_listen;
    unsigned threads = thread_count();
    unsigned limit = cfg->http_max_connections;
    unsigned mhd_limit;
    const char *why = NULL;
    int rc;

    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->ctx = ctx;
    h->serving = serving;
    h->serving_arg = serving_arg;
    h->listen_fd = -1;
    h->limit = limit;
    h->request_timeout_ms = (int64_t)cfg->http_request_timeout_seconds * 1000;
    if (ct_listen_parse(addr, &h->addr, &why) != 0) {
        snprintf(err, errlen, "http.listen \"%s\": %s", addr, why);
        rc = -1;
    } else if (h->addr.is_unix) {
        rc = listen_unix(h, err, errlen);
    } else {
        rc = listen_tcp(h, addr, err, errlen);
    }
    if (rc != 0) {
        free_server(h);
        return NULL;
    }
    /* Ours, the 503 slots, and as many again: MHD splits its limit evenly
     * between its threads and a thread at its share stops accepting, so the
     * shares must add up to more than we ever hold (plus what passes
     * on_accept at the same moment, under one a thread), or connections
     * would wait in the backlog again. */
    mhd_limit = limit <= UINT32_MAX - 2 * SRV_HTTP_OVER_LIMIT_SLOTS
                    ? limit + 2 * SRV_HTTP_OVER_LIMIT_SLOTS
                    : UINT32_MAX;
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG,
        0, on_accept, h, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
        MHD_OPTION_LISTEN_SOCKET, h->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, mhd_limit, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SRV_HTTP_CONNECTION_TIMEOUT,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SRV_HTTP_MEMORY_LIMIT,
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, NULL,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections_per_ip,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (h->daemon == NULL) {
        snprintf(err, errlen, "cannot start the HTTP server on %s", addr);
        close(h->listen_fd);
        free_server(h);
        return NULL;
    }
    if (pthread_create(&h->watchdog, NULL, watchdog, h) != 0) {
        snprintf(err, errlen, "cannot start the HTTP request deadline thread");
        MHD_stop_daemon(h->daemon);
        free_server(h);
        return NULL;
    }
    log_listening(h);
    return h;
}

void srv_http_drain(srv_http *http)
{
    atomic_store(&http->draining, 1);
}

void srv_http_stop(srv_http *http)
{
    struct timespec pause = {0, 10 * 1000 * 1000};
    /* the directory honours each lookup's deadline; give it some slack */
    long waits = (SRV_HTTP_LOOKUP_TIMEOUT_MS + 5000) / 10;
    MHD_socket fd = MHD_quiesce_daemon(http->daemon);

    stop_watchdog(http);

    while (atomic_load(&http->lookups) > 0 && waits-- > 0) {
        nanosleep(&pause, NULL);
    }
    if (atomic_load(&http->lookups) > 0) {
        /* stopping MHD with a suspended connection is undefined: the
         * process is about to exit, so leave the daemon be */
        srv_log_event(CT_LOG_ERROR, "http_stop_incomplete", "%d directory lookups did not finish",
                      atomic_load(&http->lookups));
        return;
    }
    MHD_stop_daemon(http->daemon);
    if (fd != MHD_INVALID_SOCKET) {
        /* quiesced: the socket is ours again (else MHD closed it) */
        close(fd);
    }
    if (http->unix_bound) {
        unlink(http->addr.path);
    }
    free_server(http);
}
