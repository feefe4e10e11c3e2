/* The JWKS sources of auth.jwt and the thread that keeps them fresh: files
 * are stat()ed every second (stat follows the path, so a Kubernetes
 * `..data` symlink swap shows as a new inode) and re-read when they change;
 * URLs are fetched with libcurl on this thread, never on a worker. Workers
 * verify under a read lock on their issuer's current key set; the thread
 * swaps in a new set under the write lock and frees the old one. */
#include "jwks.h"

#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define FETCH_TIMEOUT_MS 5000
#define CONNECT_TIMEOUT_MS 2000
#define DEFAULT_MAX_AGE 300  /* no Cache-Control max-age: 5 minutes */
#define MAX_RETRY_SECONDS 30 /* backoff cap while the URL fails */
#define EARLY_WAIT_SECONDS 5 /* how long a call waits for an early fetch */

typedef struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} file_id;

typedef struct source {
    const ct_jwt_issuer *issuer;
    pthread_rwlock_t lock;     /* guards keys */
    ct_jwt_keyset *keys;       /* NULL until loaded, or once stale */
    _Atomic int64_t loaded_at; /* unix seconds of the current keys; 0 none */
    /* the set's thread only: */
    file_id seen;
    int seen_valid;
    int64_t next_fetch;
    unsigned failures;
    /* under the set's mutex: */
    int64_t last_early;
    int early_requested;
    unsigned long generation; /* checks or fetches completed */
    unsigned long early_done; /* of them, the ones asked for early */
    atomic_uint_fast64_t counts[CT_JWT_OUTCOME_COUNT];
} source;

struct srv_jwks_set {
    size_t count;
    source *sources;
    atomic_uint_fast64_t unmatched[CT_JWT_OUTCOME_COUNT];
    pthread_mutex_t mutex;
    pthread_cond_t wake;    /* the thread: stop, or an early fetch */
    pthread_cond_t checked; /* callers waiting for an early fetch */
    int stopping;
    int has_thread;
    pthread_t thread;
};

static int64_t now_seconds(void)
{
    return (int64_t)time(NULL);
}

/* Puts keys in place of the current ones (NULL: drops them). */
static void swap_keys(source *s, ct_jwt_keyset *keys, int64_t now)
{
    ct_jwt_keyset *old;

    pthread_rwlock_wrlock(&s->lock);
    old = s->keys;
    s->keys = keys;
    atomic_store(&s->loaded_at, keys != NULL ? now : 0);
    pthread_rwlock_unlock(&s->lock);
    ct_jwt_keyset_free(old);
}

static int install(source *s, const char *text, size_t len, const char *from, int64_t now)
{
    char why[256];
    size_t ignored = 0;
    size_t count;
    ct_jwt_keyset *keys = ct_jwt_keyset_parse(text, len, &ignored, why, sizeof(why));

    if (keys == NULL) {
        srv_log_event(CT_LOG_WARN, "jwks_failed", "auth.jwt %s: %s: %s", s->issuer->name, from,
                      why);
        return -1;
    }
    count = ct_jwt_keyset_count(keys);
    swap_keys(s, keys, now);
    srv_log_event(CT_LOG_INFO, "jwks_loaded", "auth.jwt %s: %zu keys from %s (%zu ignored)",
                  s->issuer->name, count, from, ignored);
    return 0;
}

/* ---- files ---- */

static int same_file(const file_id *a, const file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void check_file(source *s, int64_t now)
{
    const char *path = s->issuer->jwks_file;
    struct stat st;
    file_id id;
    char *text;
    size_t n;
    FILE *f;

    if (stat(path, &st) != 0) {
        if (s->seen_valid || s->generation == 0) {
            srv_log_event(CT_LOG_WARN, "jwks_failed",
                          "auth.jwt %s: %s: %s (keeping the keys "
                          "loaded before, if any)",
                          s->issuer->name, path, strerror(errno));
        }
        s->seen_valid = 0;
        return;
    }
    memset(&id, 0, sizeof(id));
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.size = st.st_size;
    id.mtime = st.st_mtim;
    id.ctime = st.st_ctim;
    if (s->seen_valid && same_file(&id, &s->seen)) {
        return;
    }
    s->seen = id;
    s->seen_valid = 1;
    text = malloc(CT_JWT_JWKS_MAX_BYTES + 1);
    f = text != NULL ? fopen(path, "rb") : NULL;
    if (f == NULL) {
        srv_log_event(CT_LOG_WARN, "jwks_failed", "auth.jwt %s: %s: cannot read", s->issuer->name,
                      path);
        free(text);
        return;
    }
    n = fread(text, 1, CT_JWT_JWKS_MAX_BYTES + 1, f);
    fclose(f);
    install(s, text, n, path, now);
    free(text);
}

/* ---- URLs ---- */

typedef struct fetch {
    char *body;
    size_t len;
    int too_large;
    long max_age; /* -1: none given */
} fetch;

static size_t on_body(char *data, size_t size, size_t count, void *arg)
{
    fetch *f = arg;
    size_t n = size * count;

    if (f->len + n > CT_JWT_JWKS_MAX_BYTES) {
        f->too_large = 1;
        return 0;
    }
    memcpy(f->body + f->len, data, n);
    f->len += n;
    return n;
}

long srv_jwks_max_age(const char *line, size_t len)
{
    char lower[512];
    const char *at;
    char *end;
    long v;

    if (len >= sizeof(lower) || len < 14 || strncasecmp(line, "cache-control:", 14) != 0) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = line[i];
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    lower[len] = '\0';
    at = strstr(lower, "max-age=");
    if (at == NULL) {
        return -1;
    }
    v = strtol(at + 8, &end, 10);
    return end != at + 8 && v >= 0 ? v : -1;
}

static size_t on_header(char *data, size_t size, size_t count, void *arg)
{
    fetch *f = arg;
    size_t n = size * count;
    long max_age = srv_jwks_max_age(data, n);

    if (max_age >= 0) {
        f->max_age = max_age;
    }
    return n;
}

long srv_jwks_cache_seconds(long max_age)
{
    if (max_age < 0) {
        return DEFAULT_MAX_AGE;
    }
    if (max_age < SRV_JWKS_MIN_MAX_AGE) {
        return SRV_JWKS_MIN_MAX_AGE;
    }
    return max_age > SRV_JWKS_MAX_MAX_AGE ? SRV_JWKS_MAX_MAX_AGE : max_age;
}

int srv_jwks_stale(int64_t loaded_at, int64_t now)
{
    return loaded_at != 0 && now - loaded_at > SRV_JWKS_STALE_FOR;
}

/* One GET; 0 with the body in f, or -1 with the reason in why. */
static int get(const char *url, fetch *f, char *why, size_t whylen)
{
    CURL *h = curl_easy_init();
    CURLcode rc;
    long code = 0;

    if (h == NULL) {
        snprintf(why, whylen, "curl_easy_init failed");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)FETCH_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "chat-tokend");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (f->too_large) {
        snprintf(why, whylen, "larger than %d bytes", CT_JWT_JWKS_MAX_BYTES);
        return -1;
    }
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
        return -1;
    }
    if (code != 200) {
        snprintf(why, whylen, "HTTP status %ld", code);
        return -1;
    }
    return 0;
}

static void fetch_url(source *s, int64_t now)
{
    fetch f = {malloc(CT_JWT_JWKS_MAX_BYTES), 0, 0, -1};
    char why[256];
    unsigned backoff;

    if (f.body != NULL && get(s->issuer->jwks_url, &f, why, sizeof(why)) == 0 &&
        install(s, f.body, f.len, s->issuer->jwks_url, now) == 0) {
        s->failures = 0;
        s->next_fetch = now + srv_jwks_cache_seconds(f.max_age);
        free(f.body);
        return;
    }
    if (f.body == NULL) {
        snprintf(why, sizeof(why), "out of memory");
    }
    if (f.body == NULL || f.len == 0 || f.too_large) {
        srv_log_event(CT_LOG_WARN, "jwks_failed", "auth.jwt %s: %s: %s", s->issuer->name,
                      s->issuer->jwks_url, why);
    }
    free(f.body);
    s->failures++;
    backoff = s->failures >= 6 ? MAX_RETRY_SECONDS : 1u << (s->failures - 1);
    s->next_fetch = now + (backoff > MAX_RETRY_SECONDS ? MAX_RETRY_SECONDS : backoff);
}

/* Keys not confirmed by the URL for SRV_JWKS_STALE_FOR are dropped. */
static void drop_stale(source *s, int64_t now)
{
    int64_t loaded = atomic_load(&s->loaded_at);

    if (srv_jwks_stale(loaded, now)) {
        srv_log_event(CT_LOG_WARN, "jwks_stale",
                      "auth.jwt %s: no fresh keys for %d s: dropping them", s->issuer->name,
                      SRV_JWKS_STALE_FOR);
        swap_keys(s, NULL, now);
    }
}

/* ---- the thread ---- */

static void check_source(source *s, int early, int64_t now)
{
    if (s->issuer->jwks_file[0] != '\0') {
        check_file(s, now);
        return;
    }
    if (early || now >= s->next_fetch) {
        fetch_url(s, now);
    }
    drop_stale(s, now);
}

static void *run(void *arg)
{
    srv_jwks_set *set = arg;

    pthread_mutex_lock(&set->mutex);
    while (!set->stopping) {
        struct timespec until;
        int any_early = 0;

        for (size_t i = 0; i < set->count; i++) {
            source *s = &set->sources[i];
            int early = s->early_requested;
            s->early_requested = 0;
            pthread_mutex_unlock(&set->mutex);
            check_source(s, early, now_seconds());
            pthread_mutex_lock(&set->mutex);
            s->generation++;
            s->early_done += (unsigned long)early;
        }
        pthread_cond_broadcast(&set->checked);
        for (size_t i = 0; i < set->count; i++) {
            any_early |= set->sources[i].early_requested;
        }
        if (set->stopping || any_early) {
            continue;
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&set->wake, &set->mutex, &until);
    }
    pthread_mutex_unlock(&set->mutex);
    return NULL;
}

srv_jwks_set *srv_jwks_set_create(const ct_config *cfg, char *err, size_t errlen)
{
    srv_jwks_set *set = calloc(1, sizeof(*set));

    if (set == NULL ||
        (cfg->jwt_count > 0 && (set->sources = calloc(cfg->jwt_count, sizeof(source))) == NULL)) {
        free(set);
        snprintf(err, errlen, "auth.jwt: out of memory");
        return NULL;
    }
    set->count = cfg->jwt_count;
    pthread_mutex_init(&set->mutex, NULL);
    pthread_cond_init(&set->wake, NULL);
    pthread_cond_init(&set->checked, NULL);
    for (size_t i = 0; i < set->count; i++) {
        set->sources[i].issuer = &cfg->jwt[i];
        pthread_rwlock_init(&set->sources[i].lock, NULL);
    }
    if (set->count == 0) {
        return set;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (pthread_create(&set->thread, NULL, run, set) != 0) {
        snprintf(err, errlen, "auth.jwt: cannot start the JWKS thread");
        srv_jwks_set_destroy(set);
        return NULL;
    }
    set->has_thread = 1;
    return set;
}

void srv_jwks_set_destroy(srv_jwks_set *set)
{
    if (set == NULL) {
        return;
    }
    if (set->has_thread) {
        pthread_mutex_lock(&set->mutex);
        set->stopping = 1;
        pthread_cond_broadcast(&set->wake);
        pthread_mutex_unlock(&set->mutex);
        pthread_join(set->thread, NULL);
        curl_global_cleanup();
    }
    for (size_t i = 0; i < set->count; i++) {
        ct_jwt_keyset_free(set->sources[i].keys);
        pthread_rwlock_destroy(&set->sources[i].lock);
    }
    pthread_cond_destroy(&set->checked);
    pthread_cond_destroy(&set->wake);
    pthread_mutex_destroy(&set->mutex);
    free(set->sources);
    free(set);
}

static source *source_of(srv_jwks_set *set, const ct_jwt_issuer *issuer)
{
    for (size_t i = 0; i < set->count; i++) {
        if (set->sources[i].issuer == issuer) {
            return &set->sources[i];
        }
    }
    return NULL;
}

/* Asks the thread for an early check of s, at most once per
 * SRV_JWKS_UNKNOWN_KID_INTERVAL, and waits for it; 1 when it ran. */
static int check_early(srv_jwks_set *set, source *s)
{
    int64_t now = now_seconds();
    unsigned long done;
    struct timespec until;
    int ran = 0;

    pthread_mutex_lock(&set->mutex);
    if (s->last_early != 0 && now - s->last_early < SRV_JWKS_UNKNOWN_KID_INTERVAL) {
        pthread_mutex_unlock(&set->mutex);
        return 0;
    }
    s->last_early = now;
    s->early_requested = 1;
    done = s->early_done;
    pthread_cond_signal(&set->wake);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += EARLY_WAIT_SECONDS;
    while (!set->stopping && s->early_done == done) {
        if (pthread_cond_timedwait(&set->checked, &set->mutex, &until) != 0) {
            break;
        }
    }
    ran = s->early_done != done;
    pthread_mutex_unlock(&set->mutex);
    return ran;
}

static enum ct_jwt_outcome verify_once(source *s, const ct_jwt *jwt, int64_t now,
                                       ct_jwt_claims *claims, char *err, size_t errlen)
{
    enum ct_jwt_outcome rc;

    pthread_rwlock_rdlock(&s->lock);
    rc = ct_jwt_verify(jwt, s->keys, s->issuer, now, claims, err, errlen);
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

enum ct_jwt_outcome srv_jwks_verify(srv_jwks_set *set, const ct_jwt *jwt,
                                    const ct_jwt_issuer *issuer, int64_t now, ct_jwt_claims *claims,
                                    char *err, size_t errlen)
{
    source *s = set != NULL ? source_of(set, issuer) : NULL;
    enum ct_jwt_outcome rc;

    if (s == NULL) {
        return ct_jwt_verify(jwt, NULL, issuer, now, claims, err, errlen);
    }
    rc = verify_once(s, jwt, now, claims, err, errlen);
    /* keys not loaded yet are retried on the thread's backoff, not here */
    if (rc == CT_JWT_UNKNOWN_KID && check_early(set, s)) {
        rc = verify_once(s, jwt, now, claims, err, errlen);
    }
    atomic_fetch_add(&s->counts[rc], 1);
    return rc;
}

void srv_jwks_count_unmatched(srv_jwks_set *set, enum ct_jwt_outcome outcome)
{
    if (set != NULL && (unsigned)outcome < CT_JWT_OUTCOME_COUNT) {
        atomic_fetch_add(&set->unmatched[outcome], 1);
    }
}

int srv_jwks_ready(srv_jwks_set *set, char *why, size_t whylen)
{
    for (size_t i = 0; set != NULL && i < set->count; i++) {
        if (atomic_load(&set->sources[i].loaded_at) == 0) {
            snprintf(why, whylen, "no JWKS keys yet for auth.jwt %s", set->sources[i].issuer->name);
            return 0;
        }
    }
    return 1;
}

/* A label value: backslash, quote and newline escaped. */
static void label(ct_buf *out, const char *value)
{
    for (; *value != '\0'; value++) {
        if (*value == '"' || *value == '\\') {
            ct_buf_printf(out, "\\%c", *value);
        } else if (*value == '\n') {
            ct_buf_printf(out, "\\n");
        } else {
            ct_buf_printf(out, "%c", *value);
        }
    }
}

void srv_jwks_metrics_render(srv_jwks_set *set, ct_buf *out)
{
    int64_t now = now_seconds();

    if (set == NULL || set->count == 0) {
        return;
    }
    ct_buf_printf(out, "# HELP chat_tokend_jwt_verifications_total JWTs checked, by auth.jwt name "
                       "(\"\": no issuer matched) and result.\n"
                       "# TYPE chat_tokend_jwt_verifications_total counter\n");
    for (size_t i = 0; i <= set->count; i++) {
        const char *name = i < set->count ? set->sources[i].issuer->name : "";
        for (unsigned r = 0; r < CT_JWT_OUTCOME_COUNT; r++) {
            uint64_t v = i < set->count ? atomic_load(&set->sources[i].counts[r])
                                        : atomic_load(&set->unmatched[r]);
            ct_buf_printf(out, "chat_tokend_jwt_verifications_total{name=\"");
            label(out, name);
            ct_buf_printf(out, "\",result=\"%s\"} %llu\n",
                          ct_jwt_outcome_name((enum ct_jwt_outcome)r), (unsigned long long)v);
        }
    }
    ct_buf_printf(out, "# HELP chat_tokend_jwks_age_seconds Seconds since the issuer's keys were "
                       "loaded (-1: none loaded).\n# TYPE chat_tokend_jwks_age_seconds gauge\n");
    for (size_t i = 0; i < set->count; i++) {
        int64_t loaded = atomic_load(&set->sources[i].loaded_at);
        ct_buf_printf(out, "chat_tokend_jwks_age_seconds{name=\"");
        label(out, set->sources[i].issuer->name);
        ct_buf_printf(out, "\"} %lld\n", loaded != 0 ? (long long)(now - loaded) : -1LL);
    }
}
