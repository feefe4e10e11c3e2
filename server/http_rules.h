/* The pure part of the HTTP side port (routing, parsing, status mapping,
 * CORS): what http.c decides without a socket, exposed for the unit tests
 * and the fuzzer. */
#ifndef SRV_HTTP_RULES_H
#define SRV_HTTP_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "method.h"
#include "status.h"
#include "username.h"

#define SRV_HTTP_URL_MAX 2048             /* longer request paths: 414 */
#define SRV_HTTP_BODY_MAX (64 * 1024)     /* longer POST bodies: 413 */
#define SRV_HTTP_MEMORY_LIMIT (32 * 1024) /* per connection: request line and headers */
#define SRV_HTTP_CONNECTION_TIMEOUT 30    /* seconds of inactivity before a connection closes */
#define SRV_HTTP_LOOKUP_TIMEOUT_MS 10000  /* deadline of a directory lookup (no client deadline) */
#define SRV_HTTP_MAX_THREADS 16
/* Connections past http.max_connections that get a 503 (further ones are
 * closed at accept), and the seconds they may wait before their request.
 * Must be at least SRV_HTTP_MAX_THREADS (see srv_http_start). */
#define SRV_HTTP_OVER_LIMIT_SLOTS 64
#define SRV_HTTP_OVER_LIMIT_TIMEOUT 2
#define SRV_HTTP_CORS_MAX_AGE 600 /* seconds a browser may cache a preflight answer */

enum srv_http_route {
    SRV_HTTP_ROUTE_NONE = 0, /* unknown: 404 */
    SRV_HTTP_ROUTE_APP_TOKEN,
    SRV_HTTP_ROUTE_USER_TOKEN,
    SRV_HTTP_ROUTE_RENEW,
    SRV_HTTP_ROUTE_HEALTHZ,
    SRV_HTTP_ROUTE_READYZ,
    SRV_HTTP_ROUTE_METRICS,
    /* agora-token-service's routes (http_agora.h): its GET token routes and
     * /ping, and POST /getToken */
    SRV_HTTP_ROUTE_AGORA_GET,
    SRV_HTTP_ROUTE_AGORA_POST,
};

/* Matches a raw request path (as received: still percent-encoded, no query)
 * to a route. The compat routes exist only when compat_routes is set. For
 * the user route, the {username} segment is percent-decoded into username
 * (size bytes, NUL-terminated, *username_len without the NUL); the handler
 * then validates the name as on gRPC. Decoding is strict: "%" must be
 * followed by two hex digits and may not encode NUL; a segment that decodes
 * to more than size - 1 bytes is refused. Returns SRV_OK (route NONE when
 * nothing matches) or INVALID_ARGUMENT with a message. */
int srv_http_match(const char *path, int compat_routes, enum srv_http_route *route, char *username,
                   size_t size, size_t *username_len, srv_status *status);

/* Percent-decodes one path segment (segment[0..len)) into out (size bytes
 * with the NUL): "%" must be followed by two hex digits and may not encode
 * NUL; more than size - 1 bytes is refused. Messages start with what.
 * SRV_OK or INVALID_ARGUMENT. */
int srv_http_decode_segment(const char *what, const char *segment, size_t len, char *out,
                            size_t size, size_t *outlen, srv_status *status);

/* The RPC method a route calls; CT_METHOD_UNKNOWN for the routes that are
 * not RPCs (health, readiness, metrics). */
enum ct_method srv_http_route_method(enum srv_http_route route);

/* The methods a route answers, for the Allow header ("GET, OPTIONS"). HEAD
 * only on /healthz, /readyz and /metrics. */
const char *srv_http_allow(enum srv_http_route route);

/* 1 when the route answers method (OPTIONS always: CORS preflight). */
int srv_http_method_allowed(enum srv_http_route route, const char *method);

/* ?ttl=SECONDS: NULL means absent (0, the configured default); else 1 to 10
 * decimal digits that fit in uint32. SRV_OK or INVALID_ARGUMENT. */
int srv_http_parse_ttl(const char *value, uint32_t *ttl, srv_status *status);
/* The same for a parameter called name (messages start with it). */
int srv_http_parse_seconds(const char *name, const char *value, uint32_t *seconds,
                           srv_status *status);

/* A request body that must be a JSON object (duplicate keys refused):
 * jansson's json_t (the caller json_decref's it), or NULL with
 * INVALID_ARGUMENT in status. */
struct json_t *srv_http_load_object(const char *body, size_t len, srv_status *status);

/* The RenewToken body: a JSON object {"token": "...", "ttl_seconds": N}
 * (ttlSeconds accepted too, as in proto3 JSON; ttl optional, other keys
 * refused). *token is malloc'd (caller frees). SRV_OK or INVALID_ARGUMENT. */
int srv_http_parse_renew(const char *body, size_t len, char **token, size_t *token_len,
                         uint32_t *ttl, srv_status *status);

/* The HTTP status for a gRPC status code: the one table of the mapping. */
unsigned srv_http_status_for(enum srv_code code);

/* 1 when origin is one of http.cors.allowed_origins (exact, case-sensitive
 * match, as browsers send it), or the list holds "*". */
int srv_http_origin_allowed(const ct_config *cfg, const char *origin);

/* RFC 3339 UTC ("2024-05-01T12:00:00Z"); 0, or -1 when it does not fit. */
int srv_http_format_time(int64_t unix_seconds, char *out, size_t outlen);

#endif
