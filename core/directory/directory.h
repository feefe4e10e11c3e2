/* The user directory: maps a normalised Agora Chat username to the user's
 * Chat UUID, through an LRU cache in front of the Agora Chat REST API
 * (lookup, and registration when configured). Lookups never block the
 * caller: a cached answer comes back at once, anything else finishes on the
 * directory's own thread, which runs the callback. No gRPC here. */
#ifndef UD_DIRECTORY_H
#define UD_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "upstream_json.h"

#define UD_MESSAGE_MAX 256

/* Outcomes, each with the gRPC status a handler maps it to. */
enum ud_status {
    UD_OK = 0,
    UD_NOT_FOUND,         /* no such user and auto_register off: NOT_FOUND */
    UD_INVALID_ARGUMENT,  /* username invalid, or upstream illegal_argument: INVALID_ARGUMENT */
    UD_UNAVAILABLE,       /* upstream failing after retries, unreachable, malformed: UNAVAILABLE */
    UD_DEADLINE_EXCEEDED, /* the caller's deadline passed: DEADLINE_EXCEEDED */
    UD_INTERNAL,          /* a bug or out of memory: INTERNAL */
};

/* registered: of lookups that shared one upstream flight, only the one that
 * started it sees 1 (see directory.c), and none if it left before the end. */
typedef struct ud_result {
    enum ud_status status;
    char uuid[UD_UUID_MAX + 1];   /* on UD_OK */
    int registered;               /* this lookup registered the user with Agora Chat */
    char message[UD_MESSAGE_MAX]; /* on failure: names the upstream condition; no secrets */
} ud_result;

/* 1 when s[0..len) is a UUID as the directory hands them out: 1..UD_UUID_MAX
 * characters of [A-Za-z0-9_-] (it ends up in tokens and messages). */
int ud_uuid_valid(const char *s, size_t len);

/* Runs exactly once per ud_directory_lookup call. */
typedef void (*ud_callback)(void *arg, const ud_result *result);

typedef struct ud_directory ud_directory;

/* Upper bounds in seconds of the upstream latency histogram's buckets. */
#define UD_LATENCY_BUCKETS 10
extern const double ud_latency_bounds[UD_LATENCY_BUCKETS];

typedef struct ud_stats {
    uint64_t cache_hits;
    uint64_t cache_misses;
    uint64_t cache_evictions;
    uint64_t cache_size;
    uint64_t upstream_requests_ok;     /* HTTP 2xx */
    uint64_t upstream_requests_error;  /* HTTP 4xx/5xx */
    uint64_t upstream_requests_failed; /* no HTTP answer (connect, timeout, reset) */
    uint64_t singleflight_waits;       /* lookups that joined one already under way */
    uint64_t registrations;
    /* upstream request latency (every attempt, answered or not): counts per
     * bucket, not cumulative; bucket i holds latencies <= ud_latency_bounds[i]
     * and above the bound before it, the last one those above every bound */
    uint64_t upstream_latency_buckets[UD_LATENCY_BUCKETS + 1];
    double upstream_latency_seconds_sum;
} ud_stats;

/* What the directory needs, as the config validated it: nothing here is
 * checked again (the config owns those rules and their messages). The
 * strings are copied by ud_directory_create. */
typedef struct ud_options {
    const char *base_url;        /* http(s)://host[:port][/path], no trailing '/' */
    const char *app_key;         /* "org#app" */
    const char *app_id;          /* 32 hex characters */
    const char *app_certificate; /* 32 hex characters */
    int auto_register;
    uint32_t connect_timeout_ms; /* >= 1 */
    uint32_t request_timeout_ms; /* >= 1 */
    uint32_t retries;
    uint32_t rate_limit_per_second; /* >= 1 */
    uint32_t cache_capacity;        /* >= 1 */
    uint32_t cache_ttl_seconds;
    uint32_t cache_negative_ttl_seconds;
} ud_options;

/* The options of a loaded config (its directory.* and app.* keys). */
void ud_options_from_config(const ct_config *cfg, ud_options *opt);

/* Creates the directory and starts its thread. NULL with a message in err
 * when out of resources or when the app credentials cannot sign a token. */
ud_directory *ud_directory_create(const ud_options *opt, char *err, size_t errlen);

/* A reload: takes the options a running directory can change (the app
 * certificate, auto_register, timeouts, retries, rate limit, cache TTLs);
 * base_url, app_key, app_id and cache_capacity stay as created (the config
 * marks them restart-only). Thread-safe; the directory's thread applies
 * them before its next request. */
void ud_directory_update(ud_directory *dir, const ud_options *opt);

/* Fails every lookup still waiting with UD_UNAVAILABLE ("shutting down"),
 * runs their callbacks and stops the thread. Lookups after it answer
 * UNAVAILABLE (or from the cache, which stays readable until destroy).
 * Separate from destroy so that a server can flush the callbacks while its
 * own threads still run, and free the cache once they have stopped. */
void ud_directory_stop(ud_directory *dir);

/* ud_directory_stop if not done yet, then frees everything. */
void ud_directory_destroy(ud_directory *dir);

/* username must already be normalised (ct_username_normalize).
 * deadline_ms is the caller's deadline on CLOCK_MONOTONIC in milliseconds
 * (INT64_MAX for none). When the cache answers, cb runs before this returns,
 * on the caller's thread; otherwise it runs later on the directory thread. */
void ud_directory_lookup(ud_directory *dir, const char *username, int64_t deadline_ms,
                         ud_callback cb, void *arg);

void ud_directory_stats(ud_directory *dir, ud_stats *out);

/* Now on CLOCK_MONOTONIC in milliseconds: the clock of deadline_ms. */
int64_t ud_monotonic_ms(void);

#endif
