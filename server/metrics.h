/* Prometheus metrics: lock-free counters and latency histograms that the
 * gRPC and HTTP sides update, rendered in the text exposition format 0.0.4
 * for GET /metrics. */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stddef.h>

#include "directory/directory.h"
#include "jwks.h"
#include "method.h"
#include "status.h"

enum srv_transport { SRV_TRANSPORT_GRPC = 0, SRV_TRANSPORT_HTTP = 1 };

/* One finished RPC: counts it by transport, method and status code, and
 * observes its latency in the method's histogram. Thread-safe, no locks. */
void srv_metrics_rpc(enum srv_transport transport, enum ct_method method, enum srv_code code,
                     double seconds);

/* The kinds tokens are counted by, as the proto's TokenKind numbers them
 * (and handlers.h's srv_token_kind). */
enum srv_metrics_token_kind {
    SRV_METRICS_TOKEN_APP = 1,
    SRV_METRICS_TOKEN_USER = 2,
    SRV_METRICS_TOKEN_RTC = 3,
    SRV_METRICS_TOKEN_RTM = 4,
};

/* One token issued (by any method), by kind; others are not counted. */
void srv_metrics_token_issued(unsigned kind);

/* A config reload attempt: counted by result (ok = 1, else error). */
void srv_metrics_config_reload(int ok);

/* The config now running (at start and after each reload that swapped one
 * in): its hex SHA-256 for chat_tokend_config_info, and now as the last
 * success's time. */
void srv_metrics_config_running(const char *sha256_hex);

/* Renders every metric, plus the directory's counters when dir is not NULL,
 * the JWT counters and JWKS ages when jwks is not NULL, and build info, into a malloc'd
 * NUL-terminated buffer (caller frees). NULL when out of memory. */
char *srv_metrics_render(ud_directory *dir, srv_jwks_set *jwks, size_t *len);

#endif
