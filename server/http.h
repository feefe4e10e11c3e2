/* The HTTP side port of chat-tokend (libmicrohttpd, its own thread pool):
 * the seed-compatible token routes, RenewToken as JSON, health, readiness
 * and Prometheus metrics, with CORS. It calls the same handlers and auth as
 * the gRPC side; the pure parts (routing, parsing, status mapping, CORS)
 * are in http_rules.h. */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "handlers.h"
#include "http_rules.h"

typedef struct srv_http srv_http;

/* Binds http_listen ("host:port", "[v6]:port" or "unix:/path"; port 0 picks
 * a free port, logged as an "listening" event) and starts the thread pool.
 * ctx must outlive the server. serving (may be NULL) is asked by /readyz
 * whether the rest of the process is up. NULL with a message in err. */
srv_http *srv_http_start(const ct_config *cfg, const srv_context *ctx, int (*serving)(void *),
                         void *serving_arg, char *err, size_t errlen);

/* /readyz answers 503 from now on; every other route is still served. */
void srv_http_drain(srv_http *http);

/* Stops accepting connections, waits for the directory lookups under way,
 * stops the threads and frees everything. Call before the directory goes. */
void srv_http_stop(srv_http *http);

#endif
