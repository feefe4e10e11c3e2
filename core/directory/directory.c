/* The user directory: cache in front, then single-flight lookups that one
 * directory thread drives through the Agora Chat REST API with a libcurl
 * multi handle (keep-alive connections shared by all transfers, TLS
 * verified). Every upstream request takes a token from a token bucket, and
 * failures are retried with backoff, never past the latest deadline of the
 * lookups waiting on them.
 *
 * Threads: ud_directory_lookup runs on callers' threads; it answers from the
 * cache inline, or joins/creates a flight under dir->lock and wakes the
 * directory thread. Everything else in a flight (its request, step, backoff)
 * belongs to the directory thread alone; only the flight table, the incoming
 * list and each flight's waiter list and deadline are shared, under
 * dir->lock. Callbacks never run under dir->lock, so a callback may call
 * ud_directory_lookup again.
 *
 * Who gets registered=true: only the lookup that started the flight (the
 * leader). Exactly one caller caused the registration; the others joined an
 * answer already under way and would have seen an existing user a moment
 * later, so reporting true to them too would count one registration many
 * times. If the leader gave up (deadline) before the answer, nobody gets it. */
#include "directory.h"

#include "cache.h"
#include "secret.h"
#include "text.h"
#include "token.h"
#include "upstream_json.h"
#include "username.h"

#include <curl/curl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODY_MAX (1024 * 1024)                    /* upstream answers are far smaller */
#define FLIGHT_BUCKETS 1024                       /* flights are few: the misses in progress */
#define APP_TOKEN_TTL_S 86400u                    /* the longest a Chat token may live */
#define APP_TOKEN_REBUILD_MS (12 * 3600 * 1000LL) /* half-life: never near expiry */
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 2000
#define RETRY_AFTER_CAP_S 60 /* an upstream asking for longer is treated as 60 s */
#define PASSWORD_BYTES 24
#define EASY_POOL_MAX 16
#define CONDITION_MAX 160

enum step {
    STEP_GET,                 /* look the user up */
    STEP_POST,                /* register them */
    STEP_GET_AFTER_DUPLICATE, /* registration raced another client: look up again */
};

enum phase {
    PHASE_QUEUED,  /* waiting in the rate-limit queue for a token */
    PHASE_BACKOFF, /* waiting before a retry */
    PHASE_RUNNING, /* a transfer is in the multi handle */
};

typedef struct waiter {
    struct waiter *next;
    ud_callback cb;
    void *arg;
    int64_t deadline_ms;
    int leader;
} waiter;

typedef struct flight {
    /* shared, under dir->lock */
    struct flight *chain; /* flight table */
    struct flight *incoming_next;
    waiter *waiters;
    waiter **waiters_tail;
    int64_t deadline_ms; /* the latest deadline among the waiters */
    int in_table;

    /* directory thread only */
    struct flight *prev; /* active list */
    struct flight *next;
    struct flight *queue_prev; /* rate-limit queue */
    struct flight *queue_next;
    int in_queue;
    struct flight *dead_next; /* abandoned by all waiters, to free */
    enum step step;
    enum phase phase;
    unsigned attempts; /* attempts of the current step */
    int token_rebuilt; /* a 401 already rebuilt the app token for this flight */
    int64_t backoff_until_ms;
    CURL *easy;
    struct curl_slist *headers;
    char *post_body;
    size_t post_len;
    char *body;
    size_t body_len;
    size_t body_cap;
    int body_too_large;
    int capped_by_deadline; /* the transfer timeout is the time left, not request_timeout */
    uint64_t token_generation;
    char username[CT_USERNAME_MAX + 1];
} flight;

struct ud_directory {
    pthread_mutex_t lock;
    flight *table[FLIGHT_BUCKETS];
    flight *incoming;
    flight **incoming_tail;
    int stopping;
    int64_t earliest_deadline_ms; /* lower bound of all waiters' deadlines */
    atomic_int stop_requested;

    pthread_t thread;
    CURLM *multi;
    ud_cache *cache;

    /* configuration, copied at create: cfg may be wiped after */
    char *users_url; /* {base_url}/{org}/{app}/users */
    char app_id[CT_HEX_ID_LEN + 1];
    char app_certificate[CT_HEX_ID_LEN + 1];
    int auto_register;
    uint32_t connect_timeout_ms;
    uint32_t request_timeout_ms;
    uint32_t retries;
    uint32_t rate_per_second; /* 0: no limit */
    int64_t ttl_ms;
    int64_t negative_ttl_ms;
    /* ud_directory_update's options, under lock until the thread takes them */
    int update_pending;
    char update_certificate[CT_HEX_ID_LEN + 1];
    ud_options update;

    /* directory thread only */
    int64_t next_backoff_ms; /* earliest end of a backoff, for the poll timeout */
    flight *active;
    flight *queue_head;
    flight *queue_tail;
    double bucket_tokens;
    double bucket_burst;
    int64_t bucket_at_ms;
    char app_token[CT_BUILD_MAX_CHARS];
    int app_token_valid;
    int64_t app_token_built_ms;
    uint64_t app_token_generation;
    CURL *easy_pool[EASY_POOL_MAX];
    int easy_pool_count;
    uint64_t rng;

    atomic_uint_fast64_t upstream_ok;
    atomic_uint_fast64_t upstream_error;
    atomic_uint_fast64_t upstream_failed;
    atomic_uint_fast64_t latency_buckets[UD_LATENCY_BUCKETS + 1];
    atomic_uint_fast64_t latency_sum_us;
    atomic_uint_fast64_t singleflight_waits;
    atomic_uint_fast64_t registrations;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int64_t ud_monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void answer(ud_callback cb, void *arg, enum ud_status status, const char *uuid,
                   int registered, const char *message)
{
    ud_result r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.registered = registered;
    if (uuid != NULL) {
        snprintf(r.uuid, sizeof(r.uuid), "%s", uuid);
    }
    if (message != NULL) {
        snprintf(r.message, sizeof(r.message), "%s", message);
    }
    cb(arg, &r);
}

/* ---- configuration ---- */

/* Percent-encodes everything but RFC 3986 unreserved characters. */
static int url_encode(const char *in, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        if (o + (plain ? 1 : 3) >= outlen) {
            return -1;
        }
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

/* {base_url}/{org}/{app}/users, from a key the config checked ("org#app"). */
static int build_users_url(ud_directory *dir, const ud_options *opt, char *err, size_t errlen)
{
    const char *key = opt->app_key;
    const char *hash = strchr(key, '#');
    size_t org_len = hash != NULL ? (size_t)(hash - key) : strlen(key);
    const char *app_name = hash != NULL ? hash + 1 : "";
    char org[3 * CT_CONFIG_APP_KEY_MAX + 1];
    char app[3 * CT_CONFIG_APP_KEY_MAX + 1];
    size_t need;

    if (url_encode(key, org_len, org, sizeof(org)) != 0 ||
        url_encode(app_name, strlen(app_name), app, sizeof(app)) != 0) {
        ct_set_error(err, errlen, "app.key is too long");
        return -1;
    }
    need = strlen(opt->base_url) + 1 + strlen(org) + 1 + strlen(app) + sizeof("/users");
    dir->users_url = malloc(need);
    if (dir->users_url == NULL) {
        ct_set_error(err, errlen, "out of memory");
        return -1;
    }
    snprintf(dir->users_url, need, "%s/%s/%s/users", opt->base_url, org, app);
    return 0;
}

/* ---- app token ---- */

/* The token for upstream calls: built here, kept, rebuilt after half its
 * life so that it never expires in flight, and at once after a 401. */
static int refresh_app_token(ud_directory *dir, int64_t now, int force)
{
    uint32_t salt;
    size_t written;
    char err[128];

    if (dir->app_token_valid && !force && now - dir->app_token_built_ms < APP_TOKEN_REBUILD_MS) {
        return 0;
    }
    if (ct_salt_random(&salt) != CT_OK) {
        return -1;
    }
    ct_secret_wipe(dir->app_token, sizeof(dir->app_token));
    dir->app_token_valid = 0;
    if (ct_chat_build_app_token(dir->app_id, dir->app_certificate, (uint32_t)time(NULL), salt,
                                APP_TOKEN_TTL_S, dir->app_token, sizeof(dir->app_token), &written,
                                err, sizeof(err)) != CT_OK) {
        return -1;
    }
    dir->app_token_valid = 1;
    dir->app_token_built_ms = now;
    dir->app_token_generation++;
    return 0;
}

/* ---- flights: table and lifecycle ---- */

static size_t flight_bucket(const char *username)
{
    uint64_t h = 1469598103934665603ull;

    while (*username != '\0') {
        h = (h ^ (unsigned char)*username++) * 1099511628211ull;
    }
    return (size_t)(h % FLIGHT_BUCKETS);
}

/* Under dir->lock. */
static flight *table_find(ud_directory *dir, const char *username)
{
    flight *f = dir->table[flight_bucket(username)];

    while (f != NULL && strcmp(f->username, username) != 0) {
        f = f->chain;
    }
    return f;
}

/* Under dir->lock. */
static void table_remove(ud_directory *dir, flight *f)
{
    flight **link = &dir->table[flight_bucket(f->username)];

    if (!f->in_table) {
        return;
    }
    while (*link != f) {
        link = &(*link)->chain;
    }
    *link = f->chain;
    f->in_table = 0;
}

static void queue_push(ud_directory *dir, flight *f)
{
    f->phase = PHASE_QUEUED;
    f->in_queue = 1;
    f->queue_next = NULL;
    f->queue_prev = dir->queue_tail;
    if (dir->queue_tail != NULL) {
        dir->queue_tail->queue_next = f;
    } else {
        dir->queue_head = f;
    }
    dir->queue_tail = f;
}

static void queue_remove(ud_directory *dir, flight *f)
{
    if (!f->in_queue) {
        return;
    }
    if (f->queue_prev != NULL) {
        f->queue_prev->queue_next = f->queue_next;
    } else {
        dir->queue_head = f->queue_next;
    }
    if (f->queue_next != NULL) {
        f->queue_next->queue_prev = f->queue_prev;
    } else {
        dir->queue_tail = f->queue_prev;
    }
    f->in_queue = 0;
    f->queue_prev = NULL;
    f->queue_next = NULL;
}

static void wipe_headers(struct curl_slist *headers)
{
    struct curl_slist *h;

    for (h = headers; h != NULL; h = h->next) {
        ct_secret_wipe(h->data, strlen(h->data));
    }
    curl_slist_free_all(headers);
}

/* Ends the flight's transfer, if any, and gives the easy handle back to the
 * pool (its connection stays in the multi handle's cache for reuse). */
static void request_release(ud_directory *dir, flight *f)
{
    if (f->easy != NULL) {
        curl_multi_remove_handle(dir->multi, f->easy);
        if (dir->easy_pool_count < EASY_POOL_MAX) {
            curl_easy_reset(f->easy);
            dir->easy_pool[dir->easy_pool_count++] = f->easy;
        } else {
            curl_easy_cleanup(f->easy);
        }
        f->easy = NULL;
    }
    wipe_headers(f->headers);
    f->headers = NULL;
    if (f->post_body != NULL) {
        ct_secret_wipe(f->post_body, f->post_len);
        free(f->post_body);
        f->post_body = NULL;
        f->post_len = 0;
    }
    free(f->body);
    f->body = NULL;
    f->body_len = 0;
    f->body_cap = 0;
    f->body_too_large = 0;
}

/* Directory thread: frees a flight that is out of the table. */
static void flight_free(ud_directory *dir, flight *f)
{
    request_release(dir, f);
    queue_remove(dir, f);
    if (f->prev != NULL) {
        f->prev->next = f->next;
    } else if (dir->active == f) {
        dir->active = f->next;
    }
    if (f->next != NULL) {
        f->next->prev = f->prev;
    }
    free(f);
}

static int64_t flight_deadline(ud_directory *dir, flight *f)
{
    int64_t d;

    pthread_mutex_lock(&dir->lock);
    d = f->deadline_ms;
    pthread_mutex_unlock(&dir->lock);
    return d;
}

/* Detaches f's waiters (lock held), in front of rest. */
static waiter *take_waiters(flight *f, waiter *rest)
{
    waiter *w = f->waiters;

    if (w == NULL) {
        return rest;
    }
    *f->waiters_tail = rest;
    f->waiters = NULL;
    f->waiters_tail = &f->waiters;
    return w;
}

/* Answers and frees a detached list of waiters (lock not held); only the
 * leader learns that its lookup registered the user. */
static void answer_all(waiter *w, enum ud_status status, const char *uuid, int registered,
                       const char *message)
{
    while (w != NULL) {
        waiter *next = w->next;
        answer(w->cb, w->arg, status, uuid, registered && w->leader, message);
        free(w);
        w = next;
    }
}

/* Directory thread: answers every waiter, caches what is worth caching and
 * frees the flight. The cache is filled before the flight leaves the table,
 * so a lookup that finds no flight under the lock finds the cache entry. */
static void finish(ud_directory *dir, flight *f, enum ud_status status, const char *uuid,
                   int registered, const char *message)
{
    int64_t now = ud_monotonic_ms();
    waiter *w;

    if (status == UD_OK) {
        ud_cache_put(dir->cache, f->username, uuid, now, now + dir->ttl_ms);
    } else if (status == UD_NOT_FOUND && dir->negative_ttl_ms > 0) {
        ud_cache_put(dir->cache, f->username, NULL, now, now + dir->negative_ttl_ms);
    }
    pthread_mutex_lock(&dir->lock);
    table_remove(dir, f);
    w = take_waiters(f, NULL);
    pthread_mutex_unlock(&dir->lock);
    answer_all(w, status, uuid, registered, message);
    flight_free(dir, f);
}

static void finishf(ud_directory *dir, flight *f, enum ud_status status, const char *fmt, ...)
{
    char message[UD_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    finish(dir, f, status, NULL, 0, message);
}

/* ---- requests ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    flight *f = userdata;
    size_t n = size * nmemb;

    if (n > BODY_MAX - f->body_len) {
        f->body_too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (f->body_len + n + 1 > f->body_cap) {
        size_t cap = f->body_cap != 0 ? f->body_cap : 4096;
        char *p;

        while (cap < f->body_len + n + 1) {
            cap *= 2;
        }
        p = realloc(f->body, cap);
        if (p == NULL) {
            return 0;
        }
        f->body = p;
        f->body_cap = cap;
    }
    memcpy(f->body + f->body_len, data, n);
    f->body_len += n;
    f->body[f->body_len] = '\0';
    return n;
}

static CURL *easy_get(ud_directory *dir)
{
    if (dir->easy_pool_count > 0) {
        return dir->easy_pool[--dir->easy_pool_count];
    }
    return curl_easy_init();
}

/* A registration password: CSPRNG bytes as hex. Never logged or kept. */
static int random_password(char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char bytes[PASSWORD_BYTES];
    size_t i;

    if (outlen < 2 * PASSWORD_BYTES + 1 || RAND_bytes(bytes, sizeof(bytes)) != 1) {
        return -1;
    }
    for (i = 0; i < PASSWORD_BYTES; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * PASSWORD_BYTES] = '\0';
    ct_secret_wipe(bytes, sizeof(bytes));
    return 0;
}

static int add_header(flight *f, const char *line)
{
    struct curl_slist *h = curl_slist_append(f->headers, line);

    if (h == NULL) {
        return -1;
    }
    f->headers = h;
    return 0;
}

static int prepare_post(flight *f)
{
    char password[2 * PASSWORD_BYTES + 1];
    int n;

    if (random_password(password, sizeof(password)) != 0) {
        return -1;
    }
    /* Both strings need no JSON escaping: the username is normalised
     * ([a-z0-9_.-]) and the password is hex. snprintf rather than jansson
     * so that no copy of the password is left unwiped in freed memory. */
    f->post_len = strlen(f->username) + sizeof(password) + 32;
    f->post_body = malloc(f->post_len);
    if (f->post_body == NULL) {
        ct_secret_wipe(password, sizeof(password));
        return -1;
    }
    n = snprintf(f->post_body, f->post_len, "{\"username\":\"%s\",\"password\":\"%s\"}",
                 f->username, password);
    ct_secret_wipe(password, sizeof(password));
    if (n < 0 || (size_t)n >= f->post_len) {
        return -1;
    }
    curl_easy_setopt(f->easy, CURLOPT_POSTFIELDS, f->post_body);
    curl_easy_setopt(f->easy, CURLOPT_POSTFIELDSIZE, (long)n);
    return add_header(f, "Content-Type: application/json");
}

/* Starts the flight's current step. Returns 0, or -1 after finishing the
 * flight (the caller must not touch it again). */
static int start_request(ud_directory *dir, flight *f, int64_t now)
{
    int64_t left = flight_deadline(dir, f) - now;
    int64_t timeout;
    char auth[CT_BUILD_MAX_CHARS + 32];
    char name[3 * CT_USERNAME_MAX + 1];
    char *url;
    size_t url_len;
    int failed = 0;

    if (left <= 0) {
        finishf(dir, f, UD_DEADLINE_EXCEEDED, "deadline passed waiting to call the upstream");
        return -1;
    }
    if (refresh_app_token(dir, now, 0) != 0) {
        finishf(dir, f, UD_INTERNAL, "cannot build the app token for the upstream");
        return -1;
    }
    f->easy = easy_get(dir);
    if (f->easy == NULL || url_encode(f->username, strlen(f->username), name, sizeof(name)) != 0) {
        finishf(dir, f, UD_INTERNAL, "cannot start an upstream request");
        return -1;
    }
    url_len = strlen(dir->users_url) + 1 + strlen(name) + 1;
    url = malloc(url_len);
    if (url == NULL) {
        finishf(dir, f, UD_INTERNAL, "out of memory");
        return -1;
    }
    if (f->step == STEP_POST) {
        snprintf(url, url_len, "%s", dir->users_url);
    } else {
        snprintf(url, url_len, "%s/%s", dir->users_url, name);
    }
    timeout = dir->request_timeout_ms;
    f->capped_by_deadline = left < timeout;
    if (f->capped_by_deadline) {
        timeout = left;
    }

    curl_easy_setopt(f->easy, CURLOPT_URL, url); /* curl copies the string */
    /* the path goes out as built: curl must not fold dot segments */
    curl_easy_setopt(f->easy, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(f->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(f->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(f->easy, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(f->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(f->easy, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(f->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(timeout < dir->connect_timeout_ms ? timeout : dir->connect_timeout_ms));
    curl_easy_setopt(f->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)BODY_MAX);
    curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->easy, CURLOPT_PRIVATE, f);
    curl_easy_setopt(f->easy, CURLOPT_USERAGENT, "chat-tokend");
    free(url);

    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", dir->app_token);
    failed |= add_header(f, auth);
    ct_secret_wipe(auth, sizeof(auth));
    failed |= add_header(f, "Accept: application/json");
    if (f->step == STEP_POST) {
        failed |= prepare_post(f);
    } else {
        curl_easy_setopt(f->easy, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(f->easy, CURLOPT_HTTPHEADER, f->headers);
    if (failed != 0) {
        finishf(dir, f, UD_INTERNAL, "cannot prepare an upstream request");
        return -1;
    }
    f->token_generation = dir->app_token_generation;
    f->attempts++;
    f->phase = PHASE_RUNNING;
    if (curl_multi_add_handle(dir->multi, f->easy) != CURLM_OK) {
        finishf(dir, f, UD_INTERNAL, "cannot start an upstream request");
        return -1;
    }
    return 0;
}

static uint64_t next_random(ud_directory *dir)
{
    /* xorshift64*: jitter needs spread, not secrecy */
    dir->rng ^= dir->rng >> 12;
    dir->rng ^= dir->rng << 25;
    dir->rng ^= dir->rng >> 27;
    return dir->rng * 2685821657736338717ull;
}

/* Schedules another attempt of the current step after a backoff, or ends
 * the flight when attempts or time run out. condition names what failed. */
static void retry_or_fail(ud_directory *dir, flight *f, int64_t now, const char *condition,
                          int64_t retry_after_s)
{
    int64_t delay = BACKOFF_BASE_MS;
    unsigned i;

    if (f->attempts > dir->retries) {
        finishf(dir, f, UD_UNAVAILABLE, "%s after %u attempts", condition, f->attempts);
        return;
    }
    for (i = 1; i < f->attempts && delay < BACKOFF_CAP_MS; i++) {
        delay *= 2;
    }
    if (delay > BACKOFF_CAP_MS) {
        delay = BACKOFF_CAP_MS;
    }
    /* "equal jitter": half fixed, half random, so that flights that failed
     * together do not come back together */
    delay = delay / 2 + (int64_t)(next_random(dir) % (uint64_t)(delay / 2 + 1));
    if (retry_after_s > 0) {
        if (retry_after_s > RETRY_AFTER_CAP_S) {
            retry_after_s = RETRY_AFTER_CAP_S;
        }
        if (delay < retry_after_s * 1000) {
            delay = retry_after_s * 1000;
        }
    }
    /* An attempt that would start at or after the deadline cannot answer
     * anyone: say what the upstream did now instead of waiting it out. */
    if (now + delay >= flight_deadline(dir, f)) {
        finishf(dir, f, UD_UNAVAILABLE, "%s (attempt %u; no time left for a retry)", condition,
                f->attempts);
        return;
    }
    f->phase = PHASE_BACKOFF;
    f->backoff_until_ms = now + delay;
    if (f->backoff_until_ms < dir->next_backoff_ms) {
        dir->next_backoff_ms = f->backoff_until_ms;
    }
}

/* HTTP 200: entities[0].uuid, or UNAVAILABLE naming what is wrong. */
static void on_success(ud_directory *dir, flight *f, const ud_upstream_body *body)
{
    int registered = f->step == STEP_POST;

    if (body->uuid_status == UD_BODY_NOT_JSON) {
        finishf(dir, f, UD_UNAVAILABLE, "upstream body is not JSON");
        return;
    }
    if (body->uuid_status == UD_BODY_NO_UUID) {
        finishf(dir, f, UD_UNAVAILABLE, "upstream answer has no entities[0].uuid");
        return;
    }
    if (body->uuid_status == UD_BODY_BAD_UUID) {
        finishf(dir, f, UD_UNAVAILABLE, "upstream uuid is empty, too long or not a UUID");
        return;
    }
    if (body->uuid_status != UD_BODY_UUID_OK) {
        /* never a token for whoever the upstream named instead, never cached */
        finishf(dir, f, UD_UNAVAILABLE, "upstream answered with an entity whose username is not %s",
                f->username);
        return;
    }
    if (registered) {
        atomic_fetch_add(&dir->registrations, 1);
    }
    finish(dir, f, UD_OK, body->uuid, registered, NULL);
}

static void next_step(ud_directory *dir, flight *f, enum step step)
{
    request_release(dir, f);
    f->step = step;
    f->attempts = 0;
    queue_push(dir, f);
}

const double ud_latency_bounds[UD_LATENCY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,  1,     2.5,  5};

/* Counts one attempt's duration (curl's total time) in the histogram. */
static void record_latency(ud_directory *dir, CURL *easy)
{
    curl_off_t us = 0;
    size_t b = 0;

    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &us);
    while (b < UD_LATENCY_BUCKETS && (double)us / 1e6 > ud_latency_bounds[b]) {
        b++;
    }
    atomic_fetch_add(&dir->latency_buckets[b], 1);
    atomic_fetch_add(&dir->latency_sum_us, (uint_fast64_t)us);
}

static void on_done(ud_directory *dir, flight *f, CURLcode rc)
{
    int64_t now = ud_monotonic_ms();
    long status = 0;
    curl_off_t retry_after = 0;
    ud_upstream_body body;
    const char *code = body.error_code;
    char condition[CONDITION_MAX];

    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(f->easy, CURLINFO_RETRY_AFTER, &retry_after);
    record_latency(dir, f->easy);
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        atomic_fetch_add(&dir->upstream_ok, 1);
    } else if (status >= 400) {
        atomic_fetch_add(&dir->upstream_error, 1);
    } else {
        atomic_fetch_add(&dir->upstream_failed, 1);
    }
    if (f->body_too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        finishf(dir, f, UD_UNAVAILABLE, "upstream body exceeds 1 MiB");
        return;
    }
    if (rc != CURLE_OK) {
        if (rc == CURLE_OPERATION_TIMEDOUT && f->capped_by_deadline) {
            if (now + 1 >= flight_deadline(dir, f)) {
                finishf(dir, f, UD_DEADLINE_EXCEEDED, "deadline passed waiting for the upstream");
                return;
            }
            /* The transfer was cut at the deadline of a waiter that has since
             * left, and the ones still waiting have more time: not an
             * upstream fault, so try again without counting an attempt. */
            request_release(dir, f);
            f->attempts--;
            queue_push(dir, f);
            return;
        }
        snprintf(condition, sizeof(condition), "upstream request failed (%s)",
                 curl_easy_strerror(rc));
        request_release(dir, f);
        retry_or_fail(dir, f, now, condition, 0);
        return;
    }
    ud_upstream_parse(f->body, f->body_len, f->username, &body);
    request_release(dir, f);

    if (status == 200) {
        on_success(dir, f, &body);
    } else if (status == 401 && !f->token_rebuilt) {
        /* Rebuild once, unless a concurrent flight already did. */
        f->token_rebuilt = 1;
        if (f->token_generation == dir->app_token_generation) {
            dir->app_token_valid = 0;
        }
        f->attempts--; /* the rebuild is not a retry of the upstream fault */
        queue_push(dir, f);
    } else if (status == 401) {
        finishf(dir, f, UD_UNAVAILABLE,
                "upstream answered 401%s%s after rebuilding the app token (check app.id, "
                "app.certificate)",
                code[0] != '\0' ? " " : "", code);
    } else if (status == 429 || status >= 500) {
        snprintf(condition, sizeof(condition), "upstream answered %ld%s%s", status,
                 code[0] != '\0' ? " " : "", code);
        retry_or_fail(dir, f, now, condition, (int64_t)retry_after);
    } else if (status == 404 && strcmp(code, "service_resource_not_found") == 0 &&
               f->step == STEP_GET) {
        if (dir->auto_register) {
            next_step(dir, f, STEP_POST);
        } else {
            finishf(dir, f, UD_NOT_FOUND, "user %s does not exist in Agora Chat", f->username);
        }
    } else if (status == 400 && strcmp(code, "duplicate_unique_property_exists") == 0 &&
               f->step == STEP_POST) {
        /* another client registered the user first: theirs is the UUID */
        next_step(dir, f, STEP_GET_AFTER_DUPLICATE);
    } else if (status == 400 && strcmp(code, "illegal_argument") == 0) {
        finishf(dir, f, UD_INVALID_ARGUMENT, "upstream answered 400 illegal_argument");
    } else if (status == 404 && strcmp(code, "organization_application_not_found") == 0) {
        finishf(dir, f, UD_UNAVAILABLE,
                "upstream answered 404 organization_application_not_found (check app.key)");
    } else if (f->step == STEP_GET_AFTER_DUPLICATE && status == 404) {
        finishf(dir, f, UD_UNAVAILABLE,
                "upstream said the user exists, then answered 404 %s looking it up", code);
    } else {
        finishf(dir, f, UD_UNAVAILABLE, "upstream answered %ld%s%s", status,
                code[0] != '\0' ? " " : "", code);
    }
}

/* ---- the directory thread ---- */

/* Under dir->lock: moves the flights callers created into the active list,
 * and into the request queue when they are to be started. */
static void adopt_incoming_locked(ud_directory *dir, int start)
{
    flight *incoming = dir->incoming;

    dir->incoming = NULL;
    dir->incoming_tail = &dir->incoming;
    while (incoming != NULL) {
        flight *f = incoming;
        incoming = f->incoming_next;
        f->prev = NULL;
        f->next = dir->active;
        if (dir->active != NULL) {
            dir->active->prev = f;
        }
        dir->active = f;
        if (start) {
            queue_push(dir, f);
        }
    }
}

static void apply_update_locked(ud_directory *dir);

/* Takes new flights and drops waiters whose deadline passed; flights that
 * nobody waits for any more leave the table and are freed. */
static void sync_with_callers(ud_directory *dir, int64_t now)
{
    flight *f;
    flight *dead = NULL;
    waiter *expired = NULL;
    int64_t earliest = INT64_MAX;

    pthread_mutex_lock(&dir->lock);
    apply_update_locked(dir);
    adopt_incoming_locked(dir, 1);
    if (now >= dir->earliest_deadline_ms) {
        for (f = dir->active; f != NULL; f = f->next) {
            waiter **link = &f->waiters;
            int64_t latest = INT64_MIN;

            while (*link != NULL) {
                waiter *w = *link;
                if (w->deadline_ms <= now) {
                    *link = w->next;
                    w->next = expired;
                    expired = w;
                } else {
                    latest = w->deadline_ms > latest ? w->deadline_ms : latest;
                    earliest = w->deadline_ms < earliest ? w->deadline_ms : earliest;
                    link = &w->next;
                }
            }
            f->waiters_tail = link;
            if (f->waiters == NULL) {
                table_remove(dir, f);
                f->dead_next = dead;
                dead = f;
            } else {
                f->deadline_ms = latest;
            }
        }
        dir->earliest_deadline_ms = earliest;
    }
    pthread_mutex_unlock(&dir->lock);

    while (expired != NULL) {
        waiter *next = expired->next;
        answer(expired->cb, expired->arg, UD_DEADLINE_EXCEEDED, NULL, 0,
               "deadline passed waiting for the upstream");
        free(expired);
        expired = next;
    }
    while (dead != NULL) {
        f = dead->dead_next;
        flight_free(dir, dead);
        dead = f;
    }
}

/* Options from ud_directory_update, applied between two passes of the
 * thread: the only reader of them. Caller holds dir->lock. */
static void apply_update_locked(ud_directory *dir)
{
    const ud_options *opt = &dir->update;

    if (!dir->update_pending) {
        return;
    }
    dir->update_pending = 0;
    if (strcmp(dir->app_certificate, dir->update_certificate) != 0) {
        memcpy(dir->app_certificate, dir->update_certificate, sizeof(dir->app_certificate));
        dir->app_token_valid = 0; /* the next request signs with the new certificate */
    }
    ct_secret_wipe(dir->update_certificate, sizeof(dir->update_certificate));
    dir->auto_register = opt->auto_register;
    dir->connect_timeout_ms = opt->connect_timeout_ms;
    dir->request_timeout_ms = opt->request_timeout_ms;
    dir->retries = opt->retries;
    if (dir->rate_per_second != opt->rate_limit_per_second) {
        dir->rate_per_second = opt->rate_limit_per_second;
        dir->bucket_burst = dir->rate_per_second >= 10 ? dir->rate_per_second / 10.0 : 1.0;
        if (dir->bucket_tokens > dir->bucket_burst) {
            dir->bucket_tokens = dir->bucket_burst;
        }
    }
    dir->ttl_ms = (int64_t)opt->cache_ttl_seconds * 1000;
    dir->negative_ttl_ms = (int64_t)opt->cache_negative_ttl_seconds * 1000;
}

void ud_directory_update(ud_directory *dir, const ud_options *opt)
{
    pthread_mutex_lock(&dir->lock);
    dir->update = *opt;
    snprintf(dir->update_certificate, sizeof(dir->update_certificate), "%s", opt->app_certificate);
    dir->update.app_certificate = NULL; /* copied above; opt's may be wiped */
    dir->update.base_url = dir->update.app_key = dir->update.app_id = NULL;
    dir->update_pending = 1;
    pthread_mutex_unlock(&dir->lock);
    curl_multi_wakeup(dir->multi);
}

static void refill_bucket(ud_directory *dir, int64_t now)
{
    if (dir->rate_per_second == 0) {
        return;
    }
    dir->bucket_tokens += (double)(now - dir->bucket_at_ms) * dir->rate_per_second / 1000.0;
    if (dir->bucket_tokens > dir->bucket_burst) {
        dir->bucket_tokens = dir->bucket_burst;
    }
    dir->bucket_at_ms = now;
}

/* Starts queued requests while the bucket has tokens, in arrival order. */
static void dispatch(ud_directory *dir, int64_t now)
{
    refill_bucket(dir, now);
    while (dir->queue_head != NULL && (dir->rate_per_second == 0 || dir->bucket_tokens >= 1.0)) {
        flight *f = dir->queue_head;

        queue_remove(dir, f);
        if (dir->rate_per_second != 0) {
            dir->bucket_tokens -= 1.0;
        }
        start_request(dir, f, now);
    }
}

/* Moves flights whose backoff ended into the queue; returns the next end. */
static int64_t wake_backoffs(ud_directory *dir, int64_t now)
{
    int64_t next = INT64_MAX;
    flight *f;

    for (f = dir->active; f != NULL; f = f->next) {
        if (f->phase != PHASE_BACKOFF) {
            continue;
        }
        if (f->backoff_until_ms <= now) {
            queue_push(dir, f);
        } else if (f->backoff_until_ms < next) {
            next = f->backoff_until_ms;
        }
    }
    return next;
}

static void drain_done(ud_directory *dir)
{
    CURLMsg *msg;
    int left;

    for (;;) {
        msg = curl_multi_info_read(dir->multi, &left);
        if (msg == NULL) {
            break;
        }
        if (msg->msg == CURLMSG_DONE) {
            char *private = NULL;
            CURLcode rc = msg->data.result;

            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &private);
            if (private != NULL) {
                on_done(dir, (flight *)private, rc);
            }
        }
    }
}

static void fail_everything(ud_directory *dir)
{
    flight *f;
    waiter *all = NULL;

    pthread_mutex_lock(&dir->lock);
    adopt_incoming_locked(dir, 0);
    for (f = dir->active; f != NULL; f = f->next) {
        table_remove(dir, f);
        all = take_waiters(f, all);
    }
    pthread_mutex_unlock(&dir->lock);
    answer_all(all, UD_UNAVAILABLE, NULL, 0, "shutting down");
    while (dir->active != NULL) {
        flight_free(dir, dir->active);
    }
}

static void *directory_thread(void *arg)
{
    ud_directory *dir = arg;

    while (!atomic_load(&dir->stop_requested)) {
        int64_t now = ud_monotonic_ms();
        int64_t wake = now + 1000;
        int64_t t;
        int running;

        sync_with_callers(dir, now);
        dir->next_backoff_ms = wake_backoffs(dir, now);
        dispatch(dir, now);
        curl_multi_perform(dir->multi, &running);
        drain_done(dir); /* may start backoffs: they lower next_backoff_ms */

        now = ud_monotonic_ms();
        wake = dir->next_backoff_ms < wake ? dir->next_backoff_ms : wake;
        if (dir->queue_head != NULL) {
            refill_bucket(dir, now);
            if (dir->rate_per_second == 0 || dir->bucket_tokens >= 1.0) {
                wake = now;
            } else {
                t = now + (int64_t)((1.0 - dir->bucket_tokens) * 1000.0 / dir->rate_per_second) + 1;
                wake = t < wake ? t : wake;
            }
        }
        pthread_mutex_lock(&dir->lock);
        t = dir->earliest_deadline_ms;
        pthread_mutex_unlock(&dir->lock);
        wake = t < wake ? t : wake;
        if (wake > now) {
            /* also returns on curl's own timers and on curl_multi_wakeup */
            curl_multi_poll(dir->multi, NULL, 0, (int)(wake - now), NULL);
        }
    }
    fail_everything(dir);
    return NULL;
}

/* ---- public API ---- */

void ud_options_from_config(const ct_config *cfg, ud_options *opt)
{
    opt->base_url = cfg->directory_base_url;
    opt->app_key = cfg->app_key;
    opt->app_id = cfg->app_id;
    opt->app_certificate = cfg->app_certificate;
    opt->auto_register = cfg->directory_auto_register;
    opt->connect_timeout_ms = cfg->directory_connect_timeout_ms;
    opt->request_timeout_ms = cfg->directory_request_timeout_ms;
    opt->retries = cfg->directory_retries;
    opt->rate_limit_per_second = cfg->directory_rate_limit_per_second;
    opt->cache_capacity = cfg->directory_cache_capacity;
    opt->cache_ttl_seconds = cfg->directory_cache_ttl_seconds;
    opt->cache_negative_ttl_seconds = cfg->directory_cache_negative_ttl_seconds;
}

ud_directory *ud_directory_create(const ud_options *opt, char *err, size_t errlen)
{
    ud_directory *dir;

    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK) {
        ct_set_error(err, errlen, "libcurl failed to initialise");
        return NULL;
    }
    dir = calloc(1, sizeof(*dir));
    if (dir == NULL) {
        ct_set_error(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&dir->lock, NULL);
    dir->incoming_tail = &dir->incoming;
    dir->earliest_deadline_ms = INT64_MAX;
    snprintf(dir->app_id, sizeof(dir->app_id), "%s", opt->app_id);
    snprintf(dir->app_certificate, sizeof(dir->app_certificate), "%s", opt->app_certificate);
    dir->auto_register = opt->auto_register;
    dir->connect_timeout_ms = opt->connect_timeout_ms;
    dir->request_timeout_ms = opt->request_timeout_ms;
    dir->retries = opt->retries;
    dir->rate_per_second = opt->rate_limit_per_second;
    /* A burst of a tenth of a second's worth: any one-second window then sees
     * at most 1.1 x the rate, which stays near Agora's per-second limit. */
    dir->bucket_burst = dir->rate_per_second >= 10 ? dir->rate_per_second / 10.0 : 1.0;
    dir->bucket_tokens = dir->bucket_burst;
    dir->bucket_at_ms = ud_monotonic_ms();
    dir->ttl_ms = (int64_t)opt->cache_ttl_seconds * 1000;
    dir->negative_ttl_ms = (int64_t)opt->cache_negative_ttl_seconds * 1000;
    if (RAND_bytes((unsigned char *)&dir->rng, sizeof(dir->rng)) != 1 || dir->rng == 0) {
        dir->rng = 0x9e3779b97f4a7c15ull;
    }

    if (build_users_url(dir, opt, err, errlen) != 0) {
        ud_directory_destroy(dir);
        return NULL;
    }
    dir->cache = ud_cache_create(opt->cache_capacity, 0, err, errlen);
    if (dir->cache == NULL) {
        ud_directory_destroy(dir);
        return NULL;
    }
    /* fail now, not at the first lookup, when the credentials cannot sign */
    if (refresh_app_token(dir, ud_monotonic_ms(), 1) != 0) {
        ct_set_error(err, errlen, "cannot build a Chat app token from app.id and app.certificate");
        ud_directory_destroy(dir);
        return NULL;
    }
    dir->multi = curl_multi_init();
    if (dir->multi == NULL) {
        ct_set_error(err, errlen, "libcurl: cannot create a multi handle");
        ud_directory_destroy(dir);
        return NULL;
    }
    curl_multi_setopt(dir->multi, CURLMOPT_MAXCONNECTS, 64L);
    if (pthread_create(&dir->thread, NULL, directory_thread, dir) != 0) {
        ct_set_error(err, errlen, "cannot start the directory thread");
        curl_multi_cleanup(dir->multi);
        dir->multi = NULL;
        ud_directory_destroy(dir);
        return NULL;
    }
    return dir;
}

void ud_directory_stop(ud_directory *dir)
{
    int i;

    if (dir == NULL || dir->multi == NULL) {
        return;
    }
    pthread_mutex_lock(&dir->lock);
    dir->stopping = 1;
    pthread_mutex_unlock(&dir->lock);
    atomic_store(&dir->stop_requested, 1);
    curl_multi_wakeup(dir->multi);
    pthread_join(dir->thread, NULL);
    for (i = 0; i < dir->easy_pool_count; i++) {
        curl_easy_cleanup(dir->easy_pool[i]);
    }
    curl_multi_cleanup(dir->multi);
    dir->multi = NULL;
}

void ud_directory_destroy(ud_directory *dir)
{
    if (dir == NULL) {
        return;
    }
    ud_directory_stop(dir);
    ud_cache_destroy(dir->cache);
    free(dir->users_url);
    ct_secret_wipe(dir->app_certificate, sizeof(dir->app_certificate));
    ct_secret_wipe(dir->update_certificate, sizeof(dir->update_certificate));
    ct_secret_wipe(dir->app_token, sizeof(dir->app_token));
    pthread_mutex_destroy(&dir->lock);
    free(dir);
}

void ud_directory_lookup(ud_directory *dir, const char *username, int64_t deadline_ms,
                         ud_callback cb, void *arg)
{
    char uuid[UD_UUID_MAX + 1];
    int64_t now = ud_monotonic_ms();
    enum ud_cache_answer cached;
    waiter *w;
    flight *f;
    int wake;

    /* the URL path and the JSON body rely on this; callers normalise first */
    if (username == NULL || !ct_username_is_normal(username)) {
        answer(cb, arg, UD_INVALID_ARGUMENT, NULL, 0, "username is not normalised");
        return;
    }
    cached = ud_cache_get(dir->cache, username, now, uuid);
    if (cached == UD_CACHE_HIT) {
        answer(cb, arg, UD_OK, uuid, 0, NULL);
        return;
    }
    if (cached == UD_CACHE_NEGATIVE) {
        answer(cb, arg, UD_NOT_FOUND, NULL, 0, "user does not exist in Agora Chat");
        return;
    }
    if (deadline_ms <= now) {
        answer(cb, arg, UD_DEADLINE_EXCEEDED, NULL, 0, "deadline passed before the lookup");
        return;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        answer(cb, arg, UD_INTERNAL, NULL, 0, "out of memory");
        return;
    }
    w->cb = cb;
    w->arg = arg;
    w->deadline_ms = deadline_ms;

    pthread_mutex_lock(&dir->lock);
    if (dir->stopping) {
        pthread_mutex_unlock(&dir->lock);
        free(w);
        answer(cb, arg, UD_UNAVAILABLE, NULL, 0, "shutting down");
        return;
    }
    f = table_find(dir, username);
    if (f == NULL) {
        /* A flight may have ended between the cache miss and the lock; it
         * filled the cache before leaving the table, so look once more. */
        cached = ud_cache_peek(dir->cache, username, now, uuid);
        if (cached != UD_CACHE_MISS) {
            pthread_mutex_unlock(&dir->lock);
            free(w);
            if (cached == UD_CACHE_HIT) {
                answer(cb, arg, UD_OK, uuid, 0, NULL);
            } else {
                answer(cb, arg, UD_NOT_FOUND, NULL, 0, "user does not exist in Agora Chat");
            }
            return;
        }
        f = calloc(1, sizeof(*f));
        if (f == NULL) {
            pthread_mutex_unlock(&dir->lock);
            free(w);
            answer(cb, arg, UD_INTERNAL, NULL, 0, "out of memory");
            return;
        }
        snprintf(f->username, sizeof(f->username), "%s", username);
        f->step = STEP_GET;
        f->waiters_tail = &f->waiters;
        f->deadline_ms = deadline_ms;
        f->chain = dir->table[flight_bucket(username)];
        dir->table[flight_bucket(username)] = f;
        f->in_table = 1;
        *dir->incoming_tail = f;
        dir->incoming_tail = &f->incoming_next;
        w->leader = 1;
        wake = 1;
    } else {
        atomic_fetch_add(&dir->singleflight_waits, 1);
        if (deadline_ms > f->deadline_ms) {
            f->deadline_ms = deadline_ms;
        }
        wake = deadline_ms < dir->earliest_deadline_ms;
    }
    *f->waiters_tail = w;
    f->waiters_tail = &w->next;
    if (deadline_ms < dir->earliest_deadline_ms) {
        dir->earliest_deadline_ms = deadline_ms;
    }
    pthread_mutex_unlock(&dir->lock);
    if (wake) {
        curl_multi_wakeup(dir->multi);
    }
}

void ud_directory_stats(ud_directory *dir, ud_stats *out)
{
    ud_cache_counters cs;

    ud_cache_stats(dir->cache, &cs);
    memset(out, 0, sizeof(*out));
    out->cache_hits = cs.hits;
    out->cache_misses = cs.misses;
    out->cache_evictions = cs.evictions;
    out->cache_size = cs.size;
    out->upstream_requests_ok = atomic_load(&dir->upstream_ok);
    out->upstream_requests_error = atomic_load(&dir->upstream_error);
    out->upstream_requests_failed = atomic_load(&dir->upstream_failed);
    for (size_t b = 0; b <= UD_LATENCY_BUCKETS; b++) {
        out->upstream_latency_buckets[b] = atomic_load(&dir->latency_buckets[b]);
    }
    out->upstream_latency_seconds_sum = (double)atomic_load(&dir->latency_sum_us) / 1e6;
    out->singleflight_waits = atomic_load(&dir->singleflight_waits);
    out->registrations = atomic_load(&dir->registrations);
}
