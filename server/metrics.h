/* Prometheus metrics: lock-free counters and latency histograms that the
 * gRPC and HTTP sides update, rendered in the text exposition format 0.0.4
 * for GET /metrics. */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stddef.h>

#include "directory/directory.h"
#include "method.h"
#include "status.h"

enum srv_transport { SRV_TRANSPORT_GRPC = 0, SRV_TRANSPORT_HTTP = 1 };

/* One finished RPC: counts it by transport, method and status code, and
 * observes its latency in the method's histogram. Thread-safe, no locks. */
void srv_metrics_rpc(enum srv_transport transport, enum ct_method method, enum srv_code code,
                     double seconds);

/* One token issued (by any method): a user token, or an app token. */
void srv_metrics_token_issued(int user_token);

/* Renders every metric, plus the directory's counters when dir is not NULL
 * and build info, into a malloc'd NUL-terminated buffer (caller frees).
 * NULL when out of memory. */
char *srv_metrics_render(ud_directory *dir, size_t *len);

#endif
