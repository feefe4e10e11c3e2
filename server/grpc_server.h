/* The gRPC side of chat-tokend on the gRPC C core: listeners, one
 * completion queue and thread per worker, TokenService calls dispatched to
 * the handlers, grpc.health.v1, reflection, and graceful shutdown. */
#ifndef SRV_GRPC_SERVER_H
#define SRV_GRPC_SERVER_H

#include <stddef.h>

#include "config.h"
#include "handlers.h"

typedef struct srv_grpc srv_grpc;

/* Binds every listener and starts the workers. ctx must outlive the server.
 * NULL with a message in err when a listener cannot be bound or the TLS
 * files cannot be read. */
srv_grpc *srv_grpc_start(const ct_config *cfg, const srv_context *ctx, char *err, size_t errlen);

/* Health turns NOT_SERVING (Check and Watch); calls are still served. */
void srv_grpc_drain(srv_grpc *server);

/* 1 while serving, 0 once draining. */
int srv_grpc_serving(const srv_grpc *server);

/* Stops accepting calls, lets in-flight calls finish for up to
 * grace_seconds, then cancels what is left, and waits until every call is
 * done. Call once, after srv_grpc_drain. */
void srv_grpc_shutdown(srv_grpc *server, unsigned grace_seconds);

/* Makes /metrics carry chat_tokend_grpc_connections (grpc_connections.c). */
void srv_grpc_count_connections_in_metrics(void);

/* Stops the workers and frees everything (after srv_grpc_shutdown). */
void srv_grpc_destroy(srv_grpc *server);

#endif
