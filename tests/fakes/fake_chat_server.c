/* fake-chat-server: a fake Agora Chat REST API for the tests, speaking real
 * HTTP/1.1 on 127.0.0.1 (libmicrohttpd, one thread per connection so that an
 * injected delay stalls only its own connection).
 *
 * Usage:
 *   fake-chat-server --port N --app-id HEX32 --app-cert-file PATH [--app-key org#app]
 * --port 0 picks a free port. The first line on stdout is "port=N" (flushed);
 * nothing else is printed there. With --app-key, requests for another org or
 * app answer 404 organization_application_not_found. SIGTERM/SIGINT exit.
 *
 * Upstream routes, as Agora documents them (bodies follow Agora's examples):
 *   GET  /{org}/{app}/users/{username}  200 {"action":"get","entities":[{"uuid":..,
 *                                       "username":..}],..}
 *                                       404 service_resource_not_found
 *   POST /{org}/{app}/users             body {"username":..,"password":..} (or a
 *                                       one-element array); 200 {"action":"post",..},
 *                                       400 duplicate_unique_property_exists,
 *                                       400 illegal_argument
 *   GET  /{org}/{app}/users[/]          the users list: 200 with the entities of
 *                                       the first 10 users (creation order)
 *   GET  /{org}/{app}[/]                the app: 200 with one entity of type
 *                                       "application" (its own uuid, no username)
 * The path is taken as it arrives (no dot segments folded), so a client that
 * folds "users/." or "users/.." itself reaches the list or the app, as it
 * would on the real API. All require "Authorization: Bearer <token>" where the token is a Chat app
 * token for --app-id signed with the certificate (ct_token_parse +
 * ct_token_verify, not expired, Chat service with the app privilege); any
 * other answer is 401 unauthorized. Usernames are case-insensitive.
 *
 * Admin routes (same port, no auth, not counted as upstream requests):
 *   POST /_admin/reset           forget users, faults, counters and the log
 *   POST /_admin/fault  {...}    queue a fault; it applies to the next `count`
 *        (default 1) upstream requests (of `method` "GET"/"POST" if given):
 *          "status": N          answer N with {"error": "error"} (defaults by
 *                               status: 400 illegal_argument, 401 unauthorized,
 *                               404 organization_application_not_found,
 *                               429 reach_limit, 5xx service_unavailable)
 *          "error": "code"      the error code for "status"
 *          "retry_after": S     add "Retry-After: S"
 *          "delay_ms": N        sleep before answering (alone: then answer normally)
 *          "reset": true        close the connection without an answer
 *          "body": "malformed"  200 with a body that is not JSON
 *                  "no_uuid"    200 with entities[0] lacking "uuid"
 *                  "huge"       200 with a 2 MiB chunked body
 *                  "other_user" 200 with the entity of another user
 *                               ("someone-else", a fresh uuid)
 *                  "upper_username"  200 with the user's entity, its
 *                               username in upper case
 *          "duplicate_on_register": true   a POST registers the user (as a
 *                               racing client would) and answers 400
 *                               duplicate_unique_property_exists
 *        Faults queue in order; a request takes the first one that matches.
 *   POST /_admin/users {"username": .., "uuid": ..?}   pre-create a user
 *   GET  /_admin/users/{username}   {"uuid", "password_length", "password_hash"}
 *   GET  /_admin/stats   {"gets","posts","unauthorized","tokens_seen","users","requests",
 *                         "app_uuid"}
 *        tokens_seen counts distinct bearer tokens sent to the upstream
 *        routes, valid or not (a rebuilt app token is a new one)
 *   GET  /_admin/requests  {"requests":[{"method","path","t_ms","status"}]}: the
 *        last 8192 upstream requests; t_ms is CLOCK_MONOTONIC in ms at arrival
 *        (the clock of ud_monotonic_ms), status 0 for a reset. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "secret.h"
#include "token.h"

#define BODY_LIMIT (64 * 1024)
#define MAX_USERS 100000
#define MAX_FAULTS 64
#define MAX_TOKENS_SEEN 256
#define LOG_MAX 8192
#define HUGE_BODY (2 * 1024 * 1024)
#define NAME_MAX_LEN 64
#define LIST_LIMIT 10 /* the real API's default page size */

enum route {
    ROUTE_NONE = 0,
    ROUTE_USERS, /* /{org}/{app}/users: POST registers, GET lists */
    ROUTE_USER,  /* /{org}/{app}/users/{name} */
    ROUTE_APP,   /* /{org}/{app} */
};

typedef struct user {
    char username[NAME_MAX_LEN + 1];
    char uuid[65];
    long long created_ms;
    size_t password_length;
    uint32_t password_hash;
} user;

typedef struct fault {
    char method[8]; /* "" = any */
    int count;
    int status;
    char error[64];
    int retry_after;
    int delay_ms;
    int reset;
    char body[16];
    int duplicate_on_register;
} fault;

typedef struct log_entry {
    char method[8];
    char path[160];
    long long t_ms;
    int status;
} log_entry;

typedef struct request_ctx {
    char *body;
    size_t len;
    int too_large;
    long long arrived_ms;
} request_ctx;

static struct {
    pthread_mutex_t lock;
    char app_id[CT_HEX_ID_LEN + 1];
    char app_certificate[CT_HEX_ID_LEN + 1];
    char org[128];
    char app[128];
    char app_uuid[37];
    user *users;
    size_t user_count;
    fault faults[MAX_FAULTS];
    size_t fault_count;
    unsigned long long gets;
    unsigned long long posts;
    unsigned long long unauthorized;
    char *tokens_seen[MAX_TOKENS_SEEN];
    size_t tokens_seen_count;
    log_entry *log;
    size_t log_count; /* total ever; the ring holds the last LOG_MAX */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

static long long monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void random_uuid(char out[37])
{
    unsigned char b[16];

    if (RAND_bytes(b, sizeof(b)) != 1) {
        memset(b, 0x5a, sizeof(b));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static int valid_username(const char *s)
{
    size_t n = strlen(s);
    size_t i;

    if (n == 0 || n > NAME_MAX_LEN) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.') {
            return 0;
        }
    }
    return 1;
}

static void lower(char *s)
{
    for (; *s != '\0'; s++) {
        *s = (char)tolower((unsigned char)*s);
    }
}

/* Under g.lock. */
static user *find_user(const char *lowered)
{
    size_t i;

    for (i = 0; i < g.user_count; i++) {
        if (strcmp(g.users[i].username, lowered) == 0) {
            return &g.users[i];
        }
    }
    return NULL;
}

/* Under g.lock. NULL when full. */
static user *add_user(const char *lowered, const char *uuid, const char *password)
{
    user *u;
    uint32_t h = 2166136261u;
    const char *p;

    if (g.user_count >= MAX_USERS) {
        return NULL;
    }
    u = &g.users[g.user_count++];
    memset(u, 0, sizeof(*u));
    snprintf(u->username, sizeof(u->username), "%s", lowered);
    if (uuid != NULL) {
        snprintf(u->uuid, sizeof(u->uuid), "%s", uuid);
    } else {
        random_uuid(u->uuid);
    }
    u->created_ms = wall_ms();
    if (password != NULL) {
        u->password_length = strlen(password);
        for (p = password; *p != '\0'; p++) {
            h = (h ^ (unsigned char)*p) * 16777619u;
        }
        u->password_hash = h;
    }
    return u;
}

/* ---- responses ---- */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *text,
                                 int retry_after)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    char ra[16];

    r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json;charset=UTF-8");
    if (retry_after > 0) {
        snprintf(ra, sizeof(ra), "%d", retry_after);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j,
                                 int retry_after)
{
    char *text = json_dumps(j, JSON_COMPACT);
    enum MHD_Result ret;

    json_decref(j);
    if (text == NULL) {
        return MHD_NO;
    }
    ret = send_text(c, status, text, retry_after);
    free(text);
    return ret;
}

static const char *default_error(int status)
{
    switch (status) {
    case 400:
        return "illegal_argument";
    case 401:
        return "unauthorized";
    case 404:
        return "organization_application_not_found";
    case 429:
        return "reach_limit";
    default:
        return status >= 500 ? "service_unavailable" : "bad_request";
    }
}

static const char *exception_for(const char *error)
{
    if (strcmp(error, "service_resource_not_found") == 0) {
        return "org.apache.usergrid.services.exceptions.ServiceResourceNotFoundException";
    }
    if (strcmp(error, "duplicate_unique_property_exists") == 0) {
        return "org.apache.usergrid.persistence.exceptions.DuplicateUniquePropertyExistsException";
    }
    if (strcmp(error, "unauthorized") == 0) {
        return "org.apache.usergrid.rest.exceptions.SecurityException";
    }
    if (strcmp(error, "illegal_argument") == 0) {
        return "java.lang.IllegalArgumentException";
    }
    return "com.easemob.FakeException";
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *error,
                                  const char *description, int retry_after)
{
    json_t *j = json_pack("{s:s,s:s,s:I,s:i,s:s}", "error", error, "exception",
                          exception_for(error), "timestamp", (json_int_t)wall_ms(), "duration", 0,
                          "error_description", description);
    return send_json(c, status, j, retry_after);
}

static json_t *user_entity(const user *u)
{
    return json_pack("{s:s,s:s,s:I,s:I,s:s,s:b}", "uuid", u->uuid, "type", "user", "created",
                     (json_int_t)u->created_ms, "modified", (json_int_t)u->created_ms, "username",
                     u->username, "activated", 1);
}

static enum MHD_Result send_entities(struct MHD_Connection *c, const char *action, const char *path,
                                     json_t *entities)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:o,s:i,s:s}", "action", action, "path", path,
                          "organization", g.org, "application", g.app_uuid, "timestamp",
                          (json_int_t)wall_ms(), "count", (json_int_t)json_array_size(entities),
                          "entities", entities, "duration", 0, "applicationName", g.app);
    return send_json(c, 200, j, 0);
}

static enum MHD_Result send_user(struct MHD_Connection *c, const char *action, const user *u)
{
    return send_entities(c, action, "/users", json_pack("[o]", user_entity(u)));
}

/* GET /{org}/{app}/users: the first page of users, as the real API lists them. */
static enum MHD_Result send_user_list(struct MHD_Connection *c)
{
    json_t *entities = json_array();
    size_t i;

    pthread_mutex_lock(&g.lock);
    for (i = 0; i < g.user_count && i < LIST_LIMIT; i++) {
        json_array_append_new(entities, user_entity(&g.users[i]));
    }
    pthread_mutex_unlock(&g.lock);
    return send_entities(c, "get", "/users", entities);
}

/* GET /{org}/{app}: the app's own entity, which has a uuid and no username. */
static enum MHD_Result send_app(struct MHD_Connection *c)
{
    char name[260];

    snprintf(name, sizeof(name), "%s#%s", g.org, g.app);
    return send_entities(c, "get", "/",
                         json_pack("[{s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:b}]", "uuid", g.app_uuid,
                                   "type", "application", "created", (json_int_t)wall_ms(),
                                   "modified", (json_int_t)wall_ms(), "name", name,
                                   "organizationName", g.org, "applicationName", g.app,
                                   "allow_open_registration", 1));
}

static ssize_t huge_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    if (pos >= HUGE_BODY) {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (max > HUGE_BODY - pos) {
        max = (size_t)(HUGE_BODY - pos);
    }
    memset(buf, pos == 0 ? '[' : ' ', max);
    if (pos == 0) {
        memset(buf + 1, ' ', max - 1);
    }
    return (ssize_t)max;
}

static enum MHD_Result send_huge(struct MHD_Connection *c)
{
    /* unknown size: chunked, so the client cannot refuse it from a header
     * and must bound what it reads */
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, huge_reader, NULL, NULL);
    enum MHD_Result ret;

    if (r == NULL) {
        return MHD_NO;
    }
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- auth ---- */

/* 1 when the request carries a valid Chat app token for our app. */
static int authorized(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *token;
    size_t len;
    ct_token *tok;
    uint64_t now = (uint64_t)time(NULL);
    int ok = 0;
    size_t i;
    size_t k;

    if (h == NULL || strncmp(h, "Bearer ", 7) != 0) {
        return 0;
    }
    token = h + 7;
    len = strlen(token);
    if (len == 0 || len > 4096) {
        return 0;
    }
    tok = malloc(sizeof(*tok)); /* 64 KiB: not on a connection thread's stack */
    if (tok == NULL) {
        return 0;
    }
    if (ct_token_parse(token, len, tok, NULL, 0) == CT_OK && tok->app_id.len == CT_HEX_ID_LEN &&
        memcmp(tok->app_id.data, g.app_id, CT_HEX_ID_LEN) == 0 &&
        ct_token_verify(tok, g.app_certificate) == CT_OK && ct_token_expire_at(tok) > now) {
        for (i = 0; i < tok->service_count; i++) {
            const ct_service *s = &tok->services[i];
            if (s->type != CT_SERVICE_CHAT) {
                continue;
            }
            for (k = 0; k < s->privilege_count; k++) {
                if (s->privileges[k].id == CT_CHAT_PRIVILEGE_APP &&
                    ct_privilege_expire_at(tok, &s->privileges[k]) > now) {
                    ok = 1;
                }
            }
        }
    }
    free(tok);
    return ok;
}

/* Under g.lock: remembers each distinct bearer token, valid or not. */
static void note_token(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    size_t i;

    if (h == NULL || strncmp(h, "Bearer ", 7) != 0 || strlen(h) > 4096) {
        return;
    }
    for (i = 0; i < g.tokens_seen_count; i++) {
        if (strcmp(g.tokens_seen[i], h + 7) == 0) {
            return;
        }
    }
    if (g.tokens_seen_count < MAX_TOKENS_SEEN) {
        g.tokens_seen[g.tokens_seen_count] = strdup(h + 7);
        if (g.tokens_seen[g.tokens_seen_count] != NULL) {
            g.tokens_seen_count++;
        }
    }
}

/* ---- upstream routes ---- */

static void log_status(size_t index, int status)
{
    pthread_mutex_lock(&g.lock);
    if (g.log_count - index <= LOG_MAX) {
        g.log[index % LOG_MAX].status = status;
    }
    pthread_mutex_unlock(&g.lock);
}

/* Splits "/org/app[/]", "/org/app/users[/]" and "/org/app/users/name" into
 * their route and parts, taking the path as it came (no dot segments
 * folded); ROUTE_NONE for anything else. */
static enum route parse_upstream_path(const char *url, char *org, char *app, char *name)
{
    const char *p = url;
    const char *seg[4];
    size_t len[4];
    int n = 0;

    if (*p != '/') {
        return ROUTE_NONE;
    }
    while (*p == '/' && n < 4) {
        p++;
        seg[n] = p;
        while (*p != '\0' && *p != '/') {
            p++;
        }
        len[n] = (size_t)(p - seg[n]);
        n++;
    }
    /* a trailing slash names the same resource, as on the real API */
    if (n > 2 && len[n - 1] == 0) {
        n--;
    }
    if (*p != '\0' || n < 2 || len[0] == 0 || len[0] >= 128 || len[1] == 0 || len[1] >= 128 ||
        (n >= 3 && (len[2] != 5 || memcmp(seg[2], "users", 5) != 0)) ||
        (n == 4 && len[3] > NAME_MAX_LEN)) {
        return ROUTE_NONE;
    }
    memcpy(org, seg[0], len[0]);
    org[len[0]] = '\0';
    memcpy(app, seg[1], len[1]);
    app[len[1]] = '\0';
    name[0] = '\0';
    if (n == 4) {
        memcpy(name, seg[3], len[3]);
        name[len[3]] = '\0';
    }
    return n == 2 ? ROUTE_APP : n == 3 ? ROUTE_USERS : ROUTE_USER;
}

static enum MHD_Result register_user(struct MHD_Connection *c, request_ctx *ctx, int duplicate)
{
    json_t *root = ctx->body != NULL ? json_loadb(ctx->body, ctx->len, 0, NULL) : NULL;
    json_t *obj = json_is_array(root) ? json_array_get(root, 0) : root;
    const char *name = json_string_value(json_object_get(obj, "username"));
    const char *password = json_string_value(json_object_get(obj, "password"));
    char lowered[NAME_MAX_LEN + 1];
    user *u;
    user copy;
    enum MHD_Result ret;

    if (!json_is_object(obj) || name == NULL || !valid_username(name)) {
        json_decref(root);
        return send_error(c, 400, "illegal_argument", "username is invalid", 0);
    }
    if (password == NULL || password[0] == '\0' || strlen(password) > 64) {
        json_decref(root);
        return send_error(c, 400, "illegal_argument", "password or pin must provided", 0);
    }
    snprintf(lowered, sizeof(lowered), "%s", name);
    lower(lowered);
    pthread_mutex_lock(&g.lock);
    u = find_user(lowered);
    if (u == NULL && duplicate) {
        /* a racing client registered the user just before us */
        add_user(lowered, NULL, "racer-password");
        u = find_user(lowered);
    }
    if (u != NULL) {
        pthread_mutex_unlock(&g.lock);
        json_decref(root);
        return send_error(c, 400, "duplicate_unique_property_exists",
                          "Entity user requires that property named username be unique", 0);
    }
    u = add_user(lowered, NULL, password);
    if (u != NULL) {
        copy = *u;
    }
    pthread_mutex_unlock(&g.lock);
    json_decref(root);
    if (u == NULL) {
        return send_error(c, 503, "service_unavailable", "fake user store is full", 0);
    }
    ret = send_user(c, "post", &copy);
    return ret;
}

static enum MHD_Result upstream(struct MHD_Connection *c, const char *url, const char *method,
                                request_ctx *ctx)
{
    char org[128];
    char app[128];
    char name[NAME_MAX_LEN + 1];
    enum route route = parse_upstream_path(url, org, app, name);
    int is_get = strcmp(method, "GET") == 0;
    int is_post = strcmp(method, "POST") == 0;
    fault f;
    int have_fault = 0;
    size_t index;
    size_t i;
    log_entry *e;

    pthread_mutex_lock(&g.lock);
    index = g.log_count++;
    e = &g.log[index % LOG_MAX];
    snprintf(e->method, sizeof(e->method), "%s", method);
    snprintf(e->path, sizeof(e->path), "%s", url);
    e->t_ms = ctx->arrived_ms;
    e->status = 0;
    note_token(c);
    g.gets += is_get ? 1 : 0;
    g.posts += is_post ? 1 : 0;
    for (i = 0; i < g.fault_count; i++) {
        if (g.faults[i].method[0] == '\0' || strcmp(g.faults[i].method, method) == 0) {
            f = g.faults[i];
            have_fault = 1;
            if (--g.faults[i].count <= 0) {
                memmove(&g.faults[i], &g.faults[i + 1],
                        (g.fault_count - i - 1) * sizeof(g.faults[0]));
                g.fault_count--;
            }
            break;
        }
    }
    pthread_mutex_unlock(&g.lock);

    if (have_fault && f.delay_ms > 0) {
        usleep((useconds_t)f.delay_ms * 1000);
    }
    if (have_fault && f.reset) {
        return MHD_NO; /* MHD closes the connection without an answer */
    }
    if (have_fault && f.status > 0) {
        const char *error = f.error[0] != '\0' ? f.error : default_error(f.status);
        if (f.status == 401) {
            pthread_mutex_lock(&g.lock);
            g.unauthorized++;
            pthread_mutex_unlock(&g.lock);
        }
        log_status(index, f.status);
        return send_error(c, (unsigned)f.status, error, "injected fault", f.retry_after);
    }
    if (!authorized(c)) {
        pthread_mutex_lock(&g.lock);
        g.unauthorized++;
        pthread_mutex_unlock(&g.lock);
        log_status(index, 401);
        return send_error(c, 401, "unauthorized",
                          "Unable to authenticate due to corrupt access token", 0);
    }
    if (route == ROUTE_NONE || (route != ROUTE_USERS && !is_get) || (!is_get && !is_post)) {
        log_status(index, 404);
        return send_error(c, 404, "service_resource_not_found", "Service resource not found", 0);
    }
    if (g.org[0] != '\0' && (strcmp(org, g.org) != 0 || strcmp(app, g.app) != 0)) {
        log_status(index, 404);
        return send_error(c, 404, "organization_application_not_found",
                          "Could not find application for the organization", 0);
    }
    if (have_fault && strcmp(f.body, "malformed") == 0) {
        log_status(index, 200);
        return send_text(c, 200, "<html>this is not json {", 0);
    }
    if (have_fault && strcmp(f.body, "no_uuid") == 0) {
        log_status(index, 200);
        return send_text(c, 200, "{\"action\":\"get\",\"entities\":[{\"type\":\"user\"}]}", 0);
    }
    if (have_fault && strcmp(f.body, "huge") == 0) {
        log_status(index, 200);
        return send_huge(c);
    }
    if (have_fault && strcmp(f.body, "other_user") == 0) {
        user other;

        memset(&other, 0, sizeof(other));
        snprintf(other.username, sizeof(other.username), "someone-else");
        random_uuid(other.uuid);
        other.created_ms = wall_ms();
        log_status(index, 200);
        return send_user(c, is_post ? "post" : "get", &other);
    }
    if (route == ROUTE_APP) {
        log_status(index, 200);
        return send_app(c);
    }
    if (route == ROUTE_USERS && is_get) {
        log_status(index, 200);
        return send_user_list(c);
    }
    if (route == ROUTE_USERS) {
        /* status is logged as 200 or 400 by looking at the store afterwards
         * would be racy; log what register_user decides instead */
        enum MHD_Result r;
        size_t before;

        pthread_mutex_lock(&g.lock);
        before = g.user_count;
        pthread_mutex_unlock(&g.lock);
        r = register_user(c, ctx, have_fault && f.duplicate_on_register);
        pthread_mutex_lock(&g.lock);
        if (g.log_count - index <= LOG_MAX) {
            g.log[index % LOG_MAX].status = g.user_count > before ? 200 : 400;
        }
        pthread_mutex_unlock(&g.lock);
        return r;
    }
    {
        user copy;
        user *u;

        lower(name);
        pthread_mutex_lock(&g.lock);
        u = find_user(name);
        if (u != NULL) {
            copy = *u;
        }
        pthread_mutex_unlock(&g.lock);
        if (u == NULL) {
            log_status(index, 404);
            return send_error(c, 404, "service_resource_not_found", "Service resource not found",
                              0);
        }
        if (have_fault && strcmp(f.body, "upper_username") == 0) {
            for (char *p = copy.username; *p != '\0'; p++) {
                *p = (char)toupper((unsigned char)*p);
            }
        }
        log_status(index, 200);
        return send_user(c, "get", &copy);
    }
}

/* ---- admin routes ---- */

static void reset_all(void)
{
    size_t i;

    pthread_mutex_lock(&g.lock);
    g.user_count = 0;
    g.fault_count = 0;
    g.gets = 0;
    g.posts = 0;
    g.unauthorized = 0;
    for (i = 0; i < g.tokens_seen_count; i++) {
        free(g.tokens_seen[i]);
    }
    g.tokens_seen_count = 0;
    g.log_count = 0;
    pthread_mutex_unlock(&g.lock);
}

static enum MHD_Result admin_fault(struct MHD_Connection *c, json_t *root)
{
    fault f;
    const char *s;

    memset(&f, 0, sizeof(f));
    if (!json_is_object(root)) {
        return send_text(c, 400, "{\"error\":\"fault must be a JSON object\"}", 0);
    }
    f.count = json_is_integer(json_object_get(root, "count"))
                  ? (int)json_integer_value(json_object_get(root, "count"))
                  : 1;
    f.status = (int)json_integer_value(json_object_get(root, "status"));
    f.retry_after = (int)json_integer_value(json_object_get(root, "retry_after"));
    f.delay_ms = (int)json_integer_value(json_object_get(root, "delay_ms"));
    f.reset = json_is_true(json_object_get(root, "reset"));
    f.duplicate_on_register = json_is_true(json_object_get(root, "duplicate_on_register"));
    s = json_string_value(json_object_get(root, "error"));
    snprintf(f.error, sizeof(f.error), "%s", s != NULL ? s : "");
    s = json_string_value(json_object_get(root, "body"));
    snprintf(f.body, sizeof(f.body), "%s", s != NULL ? s : "");
    s = json_string_value(json_object_get(root, "method"));
    snprintf(f.method, sizeof(f.method), "%s", s != NULL ? s : "");
    if (f.count < 1 || f.delay_ms < 0 || f.delay_ms > 60000 ||
        (f.status != 0 && (f.status < 100 || f.status > 599))) {
        return send_text(c, 400, "{\"error\":\"bad fault\"}", 0);
    }
    pthread_mutex_lock(&g.lock);
    if (g.fault_count < MAX_FAULTS) {
        g.faults[g.fault_count++] = f;
    }
    pthread_mutex_unlock(&g.lock);
    return send_text(c, 200, "{}", 0);
}

static enum MHD_Result admin_add_user(struct MHD_Connection *c, json_t *root)
{
    const char *name = json_string_value(json_object_get(root, "username"));
    const char *uuid = json_string_value(json_object_get(root, "uuid"));
    char lowered[NAME_MAX_LEN + 1];
    user *u;
    json_t *j;

    if (name == NULL || !valid_username(name) || (uuid != NULL && strlen(uuid) > 64)) {
        return send_text(c, 400, "{\"error\":\"bad user\"}", 0);
    }
    snprintf(lowered, sizeof(lowered), "%s", name);
    lower(lowered);
    pthread_mutex_lock(&g.lock);
    u = find_user(lowered);
    if (u == NULL) {
        u = add_user(lowered, uuid, NULL);
    }
    j = u != NULL ? json_pack("{s:s}", "uuid", u->uuid) : NULL;
    pthread_mutex_unlock(&g.lock);
    if (j == NULL) {
        return send_text(c, 503, "{\"error\":\"store full\"}", 0);
    }
    return send_json(c, 200, j, 0);
}

static enum MHD_Result admin_get_user(struct MHD_Connection *c, const char *name)
{
    char lowered[NAME_MAX_LEN + 1];
    user *u;
    json_t *j = NULL;

    snprintf(lowered, sizeof(lowered), "%s", name);
    lower(lowered);
    pthread_mutex_lock(&g.lock);
    u = find_user(lowered);
    if (u != NULL) {
        j = json_pack("{s:s,s:I,s:I}", "uuid", u->uuid, "password_length",
                      (json_int_t)u->password_length, "password_hash",
                      (json_int_t)u->password_hash);
    }
    pthread_mutex_unlock(&g.lock);
    if (j == NULL) {
        return send_text(c, 404, "{\"error\":\"no such user\"}", 0);
    }
    return send_json(c, 200, j, 0);
}

static enum MHD_Result admin_stats(struct MHD_Connection *c)
{
    json_t *j;

    pthread_mutex_lock(&g.lock);
    j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "gets", (json_int_t)g.gets, "posts",
                  (json_int_t)g.posts, "unauthorized", (json_int_t)g.unauthorized, "tokens_seen",
                  (json_int_t)g.tokens_seen_count, "users", (json_int_t)g.user_count, "requests",
                  (json_int_t)g.log_count, "app_uuid", g.app_uuid);
    pthread_mutex_unlock(&g.lock);
    return send_json(c, 200, j, 0);
}

static enum MHD_Result admin_requests(struct MHD_Connection *c)
{
    json_t *list = json_array();
    size_t first;
    size_t i;

    pthread_mutex_lock(&g.lock);
    first = g.log_count > LOG_MAX ? g.log_count - LOG_MAX : 0;
    for (i = first; i < g.log_count; i++) {
        const log_entry *e = &g.log[i % LOG_MAX];
        json_array_append_new(list,
                              json_pack("{s:s,s:s,s:I,s:i}", "method", e->method, "path", e->path,
                                        "t_ms", (json_int_t)e->t_ms, "status", e->status));
    }
    pthread_mutex_unlock(&g.lock);
    return send_json(c, 200, json_pack("{s:o}", "requests", list), 0);
}

static enum MHD_Result admin(struct MHD_Connection *c, const char *url, const char *method,
                             request_ctx *ctx)
{
    int is_post = strcmp(method, "POST") == 0;
    json_t *root = NULL;
    enum MHD_Result ret;

    if (is_post && strcmp(url, "/_admin/reset") == 0) {
        reset_all();
        return send_text(c, 200, "{}", 0);
    }
    if (!is_post && strcmp(url, "/_admin/stats") == 0) {
        return admin_stats(c);
    }
    if (!is_post && strcmp(url, "/_admin/requests") == 0) {
        return admin_requests(c);
    }
    if (!is_post && strncmp(url, "/_admin/users/", 14) == 0) {
        return admin_get_user(c, url + 14);
    }
    if (is_post && ctx->body != NULL) {
        root = json_loadb(ctx->body, ctx->len, 0, NULL);
    }
    if (is_post && strcmp(url, "/_admin/fault") == 0) {
        ret = admin_fault(c, root);
    } else if (is_post && strcmp(url, "/_admin/users") == 0) {
        ret = admin_add_user(c, root);
    } else {
        ret = send_text(c, 404, "{\"error\":\"no such admin route\"}", 0);
    }
    json_decref(root);
    return ret;
}

/* ---- libmicrohttpd glue ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    request_ctx *ctx = *con_cls;

    (void)cls;
    (void)version;
    if (ctx == NULL) {
        ctx = calloc(1, sizeof(*ctx));
        if (ctx == NULL) {
            return MHD_NO;
        }
        ctx->arrived_ms = monotonic_ms();
        *con_cls = ctx;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!ctx->too_large && ctx->len + *upload_data_size <= BODY_LIMIT) {
            char *p = realloc(ctx->body, ctx->len + *upload_data_size + 1);
            if (p != NULL) {
                ctx->body = p;
                memcpy(ctx->body + ctx->len, upload_data, *upload_data_size);
                ctx->len += *upload_data_size;
                ctx->body[ctx->len] = '\0';
            }
        } else {
            ctx->too_large = 1;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ctx->too_large) {
        return send_text(c, 413, "{\"error\":\"request_entity_too_large\"}", 0);
    }
    if (strncmp(url, "/_admin/", 8) == 0) {
        return admin(c, url, method, ctx);
    }
    return upstream(c, url, method, ctx);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    request_ctx *ctx = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (ctx != NULL) {
        free(ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: fake-chat-server --port N --app-id HEX32 --app-cert-file PATH "
                    "[--app-key org#app]\n");
}

int main(int argc, char **argv)
{
    long port = -1;
    const char *cert_file = NULL;
    const char *app_key = NULL;
    char err[256];
    char cert[128];
    struct sockaddr_in addr;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    sigset_t set;
    int sig;
    int i;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) {
            port = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--app-id") == 0) {
            snprintf(g.app_id, sizeof(g.app_id), "%s", argv[i + 1]);
        } else if (strcmp(argv[i], "--app-cert-file") == 0) {
            cert_file = argv[i + 1];
        } else if (strcmp(argv[i], "--app-key") == 0) {
            app_key = argv[i + 1];
        } else {
            usage();
            return 2;
        }
    }
    if (i != argc || port < 0 || port > 65535 || !ct_is_hex_id(g.app_id) || cert_file == NULL) {
        usage();
        return 2;
    }
    /* read into a roomier buffer: the file may end with a newline */
    if (ct_secret_read_file(cert_file, cert, sizeof(cert), err, sizeof(err)) != 0 ||
        !ct_is_hex_id(cert)) {
        fprintf(stderr, "fake-chat-server: bad certificate file %s\n", cert_file);
        return 2;
    }
    memcpy(g.app_certificate, cert, sizeof(g.app_certificate));
    ct_secret_wipe(cert, sizeof(cert));
    if (app_key != NULL) {
        const char *hash = strchr(app_key, '#');
        if (hash == NULL || hash == app_key || (size_t)(hash - app_key) >= sizeof(g.org) ||
            strlen(hash + 1) >= sizeof(g.app) || hash[1] == '\0') {
            fprintf(stderr, "fake-chat-server: --app-key must be org#app\n");
            return 2;
        }
        memcpy(g.org, app_key, (size_t)(hash - app_key));
        snprintf(g.app, sizeof(g.app), "%s", hash + 1);
    }
    random_uuid(g.app_uuid);
    g.users = calloc(MAX_USERS, sizeof(user));
    g.log = calloc(LOG_MAX, sizeof(log_entry));
    if (g.users == NULL || g.log == NULL) {
        return 1;
    }

    /* signals are taken by sigwait below, not by MHD's threads */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                             MHD_USE_POLL,
                         (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "fake-chat-server: cannot listen on 127.0.0.1:%ld: %s\n", port,
                strerror(errno));
        return 1;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("port=%u\n", info != NULL ? (unsigned)info->port : (unsigned)port);
    fflush(stdout);

    sigwait(&set, &sig);
    /* exit without MHD_stop_daemon: it would wait for handlers sleeping in an
     * injected delay, and a test's teardown should not */
    ct_secret_wipe(g.app_certificate, sizeof(g.app_certificate));
    _exit(0);
}
