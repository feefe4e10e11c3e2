/* Structured logs: one JSON object per line on stderr. Never a token, a
 * certificate or a key: callers pass names and codes, not secrets. */
#ifndef SRV_LOG_H
#define SRV_LOG_H

#include <stdint.h>

#include "config.h"

void srv_log_set_level(enum ct_log_level level);

/* 1 when lines of this level are printed. */
int srv_log_enabled(enum ct_log_level level);

/* {"time":..,"level":..,"event":..,"message":..}; message may be NULL. */
void srv_log_event(enum ct_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Lifecycle events (listening, started, draining, stopping, stopped) at
 * info level but printed whatever log.level says: operators and scripts
 * need the bound addresses and the shutdown steps even with RPC logs off. */
void srv_log_lifecycle(const char *event, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One line per RPC (info level). */
typedef struct srv_rpc_log {
    const char *transport; /* "grpc" or "http" */
    const char *method;
    const char *code;    /* "OK", "INVALID_ARGUMENT", ... */
    const char *message; /* the status message, "" when OK */
    double duration_ms;
    const char *caller;     /* "" before authentication */
    const char *caller_san; /* "URI"/"DNS": the caller is this certificate SAN; else NULL */
    const char *caller_sub; /* the sub claim of the caller's JWT; else NULL */
    const char *peer;
} srv_rpc_log;

void srv_log_rpc(const srv_rpc_log *entry);

#endif
