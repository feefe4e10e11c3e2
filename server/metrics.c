/* Prometheus metrics: relaxed atomic counters and fixed-bucket latency
 * histograms, updated by the gRPC and HTTP sides without locks, and the
 * text exposition format 0.0.4 rendered from them for GET /metrics. */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "process_metrics.h"
#include "text.h"

#ifndef CT_VERSION_STRING
#define CT_VERSION_STRING "0.0.0"
#endif

#define TRANSPORT_COUNT 2
#define CODE_COUNT SRV_CODE_COUNT

/* Upper bounds in seconds: token issue takes microseconds, a directory
 * lookup that reaches upstream takes up to the request timeout (seconds). */
static const double bucket_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define BUCKET_COUNT (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

/* Buckets hold plain (not cumulative) counts plus one overflow slot, so an
 * observation is one increment; the render sums them, which also makes
 * _count equal the +Inf bucket even while observations race the render. */
typedef struct histogram {
    atomic_uint_fast64_t buckets[BUCKET_COUNT + 1];
    atomic_uint_fast64_t sum_ns; /* integer nanoseconds: there is no atomic double add */
} histogram;

static atomic_uint_fast64_t rpc_counts[TRANSPORT_COUNT][CT_METHOD_COUNT][CODE_COUNT];
static histogram rpc_latency[TRANSPORT_COUNT][CT_METHOD_COUNT];
/* by enum srv_metrics_token_kind; [0] unused */
static atomic_uint_fast64_t tokens_issued[SRV_METRICS_TOKEN_RTM + 1];

/* config reloads: [0] error, [1] ok; the running config's hash and since when */
static atomic_uint_fast64_t config_reloads[2];
static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static char config_sha256[65];
static double config_success_time;

static const char *const transport_names[TRANSPORT_COUNT] = {"grpc", "http"};
static const char *const kind_names[SRV_METRICS_TOKEN_RTM + 1] = {NULL, "app", "user", "rtc",
                                                                  "rtm"};

/* The method label: its name, but "other" for paths nobody serves. */
static const char *method_label(unsigned m)
{
    return m == CT_METHOD_UNKNOWN ? "other" : ct_method_name((enum ct_method)m);
}

void srv_metrics_rpc(enum srv_transport transport, enum ct_method method, enum srv_code code,
                     double seconds)
{
    unsigned t = (unsigned)transport < TRANSPORT_COUNT ? (unsigned)transport : 0;
    unsigned m = (unsigned)method < CT_METHOD_COUNT ? (unsigned)method : CT_METHOD_UNKNOWN;
    unsigned c = (unsigned)code < CODE_COUNT ? (unsigned)code : SRV_UNKNOWN;
    histogram *h = &rpc_latency[t][m];
    size_t b = 0;

    if (!(seconds >= 0)) { /* also catches NaN */
        seconds = 0;
    }
    while (b < BUCKET_COUNT && seconds > bucket_bounds[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&rpc_counts[t][m][c], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint_fast64_t)(seconds * 1e9), memory_order_relaxed);
}

void srv_metrics_token_issued(unsigned kind)
{
    if (kind < SRV_METRICS_TOKEN_APP || kind > SRV_METRICS_TOKEN_RTM) {
        return;
    }
    atomic_fetch_add_explicit(&tokens_issued[kind], 1, memory_order_relaxed);
}

void srv_metrics_config_reload(int ok)
{
    atomic_fetch_add_explicit(&config_reloads[ok ? 1 : 0], 1, memory_order_relaxed);
}

void srv_metrics_config_running(const char *sha256_hex)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    pthread_mutex_lock(&config_lock);
    snprintf(config_sha256, sizeof(config_sha256), "%s", sha256_hex);
    config_success_time = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    pthread_mutex_unlock(&config_lock);
}

static uint64_t load(atomic_uint_fast64_t *v)
{
    return (uint64_t)atomic_load_explicit(v, memory_order_relaxed);
}

static void family(ct_buf *o, const char *name, const char *type, const char *help)
{
    ct_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_rpcs(ct_buf *o)
{
    family(o, "chat_tokend_rpcs_total", "counter",
           "Finished RPCs by transport, method and status code.");
    for (unsigned t = 0; t < TRANSPORT_COUNT; t++) {
        for (unsigned m = 0; m < CT_METHOD_COUNT; m++) {
            for (unsigned c = 0; c < CODE_COUNT; c++) {
                uint64_t v = load(&rpc_counts[t][m][c]);
                /* only series that happened: 2*7*17 zero lines help nobody */
                if (v != 0) {
                    ct_buf_printf(
                        o,
                        "chat_tokend_rpcs_total{transport=\"%s\",method=\"%s\",code=\"%s\"} "
                        "%llu\n",
                        transport_names[t], method_label(m), srv_code_name((enum srv_code)c),
                        (unsigned long long)v);
                }
            }
        }
    }
}

static void render_histogram(ct_buf *o, unsigned t, unsigned m)
{
    histogram *h = &rpc_latency[t][m];
    uint64_t counts[BUCKET_COUNT + 1];
    uint64_t total = 0, cumulative = 0;

    for (size_t b = 0; b <= BUCKET_COUNT; b++) {
        counts[b] = load(&h->buckets[b]);
        total += counts[b];
    }
    if (total == 0) {
        return;
    }
    for (size_t b = 0; b < BUCKET_COUNT; b++) {
        cumulative += counts[b];
        ct_buf_printf(o,
                      "chat_tokend_rpc_duration_seconds_bucket{transport=\"%s\",method=\"%s\","
                      "le=\"%g\"} %llu\n",
                      transport_names[t], method_label(m), bucket_bounds[b],
                      (unsigned long long)cumulative);
    }
    ct_buf_printf(
        o,
        "chat_tokend_rpc_duration_seconds_bucket{transport=\"%s\",method=\"%s\",le=\"+Inf\"} "
        "%llu\n",
        transport_names[t], method_label(m), (unsigned long long)total);
    ct_buf_printf(o, "chat_tokend_rpc_duration_seconds_sum{transport=\"%s\",method=\"%s\"} %.9f\n",
                  transport_names[t], method_label(m), (double)load(&h->sum_ns) / 1e9);
    ct_buf_printf(o,
                  "chat_tokend_rpc_duration_seconds_count{transport=\"%s\",method=\"%s\"} %llu\n",
                  transport_names[t], method_label(m), (unsigned long long)total);
}

static void render_latency(ct_buf *o)
{
    family(o, "chat_tokend_rpc_duration_seconds", "histogram",
           "Time from a call's arrival to its status, by transport and method.");
    for (unsigned t = 0; t < TRANSPORT_COUNT; t++) {
        for (unsigned m = 0; m < CT_METHOD_COUNT; m++) {
            render_histogram(o, t, m);
        }
    }
}

static void render_tokens(ct_buf *o)
{
    family(o, "chat_tokend_tokens_issued_total", "counter", "Tokens issued, by kind.");
    for (unsigned k = SRV_METRICS_TOKEN_APP; k <= SRV_METRICS_TOKEN_RTM; k++) {
        ct_buf_printf(o, "chat_tokend_tokens_issued_total{kind=\"%s\"} %llu\n", kind_names[k],
                      (unsigned long long)load(&tokens_issued[k]));
    }
}

static void counter(ct_buf *o, const char *name, const char *help, uint64_t value)
{
    family(o, name, "counter", help);
    ct_buf_printf(o, "%s %llu\n", name, (unsigned long long)value);
}

static void render_upstream_latency(ct_buf *o, const ud_stats *s)
{
    uint64_t cumulative = 0;

    family(o, "chat_tokend_directory_upstream_duration_seconds", "histogram",
           "Agora Chat REST request latency, every attempt (answered or not).");
    for (size_t b = 0; b < UD_LATENCY_BUCKETS; b++) {
        cumulative += s->upstream_latency_buckets[b];
        ct_buf_printf(o, "chat_tokend_directory_upstream_duration_seconds_bucket{le=\"%g\"} %llu\n",
                      ud_latency_bounds[b], (unsigned long long)cumulative);
    }
    cumulative += s->upstream_latency_buckets[UD_LATENCY_BUCKETS];
    ct_buf_printf(o, "chat_tokend_directory_upstream_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                  (unsigned long long)cumulative);
    ct_buf_printf(o, "chat_tokend_directory_upstream_duration_seconds_sum %.6f\n",
                  s->upstream_latency_seconds_sum);
    ct_buf_printf(o, "chat_tokend_directory_upstream_duration_seconds_count %llu\n",
                  (unsigned long long)cumulative);
}

static void render_directory(ct_buf *o, ud_directory *dir)
{
    ud_stats s;

    ud_directory_stats(dir, &s);
    counter(o, "chat_tokend_directory_cache_hits_total", "UUID cache lookups answered.",
            s.cache_hits);
    counter(o, "chat_tokend_directory_cache_misses_total", "UUID cache lookups not answered.",
            s.cache_misses);
    counter(o, "chat_tokend_directory_cache_evictions_total",
            "UUID cache entries evicted to make room.", s.cache_evictions);
    family(o, "chat_tokend_directory_cache_entries", "gauge", "UUID cache entries held now.");
    ct_buf_printf(o, "chat_tokend_directory_cache_entries %llu\n",
                  (unsigned long long)s.cache_size);
    family(o, "chat_tokend_directory_upstream_requests_total", "counter",
           "Agora Chat REST requests by outcome: ok (2xx), error (4xx/5xx), failed (no "
           "answer).");
    ct_buf_printf(o, "chat_tokend_directory_upstream_requests_total{outcome=\"ok\"} %llu\n",
                  (unsigned long long)s.upstream_requests_ok);
    ct_buf_printf(o, "chat_tokend_directory_upstream_requests_total{outcome=\"error\"} %llu\n",
                  (unsigned long long)s.upstream_requests_error);
    ct_buf_printf(o, "chat_tokend_directory_upstream_requests_total{outcome=\"failed\"} %llu\n",
                  (unsigned long long)s.upstream_requests_failed);
    render_upstream_latency(o, &s);
    counter(o, "chat_tokend_directory_singleflight_waits_total",
            "Lookups that joined one already under way for the same user.", s.singleflight_waits);
    counter(o, "chat_tokend_directory_registrations_total",
            "Users registered with Agora Chat by lookups.", s.registrations);
}

static void render_config(ct_buf *o)
{
    char sha256[65];
    double when;

    pthread_mutex_lock(&config_lock);
    memcpy(sha256, config_sha256, sizeof(sha256));
    when = config_success_time;
    pthread_mutex_unlock(&config_lock);
    family(o, "chat_tokend_config_reloads_total", "counter",
           "Config reloads (SIGHUP or a file change) by result; error: the old config kept "
           "serving.");
    ct_buf_printf(o, "chat_tokend_config_reloads_total{result=\"ok\"} %llu\n",
                  (unsigned long long)load(&config_reloads[1]));
    ct_buf_printf(o, "chat_tokend_config_reloads_total{result=\"error\"} %llu\n",
                  (unsigned long long)load(&config_reloads[0]));
    family(o, "chat_tokend_config_last_reload_success_timestamp_seconds", "gauge",
           "When the running config was loaded (start or last successful reload), unix seconds.");
    ct_buf_printf(o, "chat_tokend_config_last_reload_success_timestamp_seconds %.3f\n", when);
    if (sha256[0] != '\0') {
        family(o, "chat_tokend_config_info", "gauge",
               "Always 1; sha256 identifies the effective config (secrets hashed, never shown).");
        ct_buf_printf(o, "chat_tokend_config_info{sha256=\"%s\"} 1\n", sha256);
    }
}

char *srv_metrics_render(ud_directory *dir, srv_jwks_set *jwks, size_t *len)
{
    ct_buf o = {malloc(8192), 0, 8192, 0};

    if (o.buf == NULL) {
        return NULL;
    }
    o.buf[0] = '\0';
    family(&o, "chat_tokend_build_info", "gauge", "Always 1; the version is in the labels.");
    ct_buf_printf(&o, "chat_tokend_build_info{version=\"%s\"} 1\n", CT_VERSION_STRING);
    render_rpcs(&o);
    render_latency(&o);
    render_tokens(&o);
    render_config(&o);
    if (dir != NULL) {
        render_directory(&o, dir);
    }
    if (jwks != NULL) {
        srv_jwks_metrics_render(jwks, &o);
    }
    srv_process_metrics_render(&o);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    if (len != NULL) {
        *len = o.len;
    }
    return o.buf;
}
