/* Finishing an RPC, the same on both transports: count it in the metrics
 * and write its log line. */
#ifndef SRV_RPC_H
#define SRV_RPC_H

#include <stddef.h>

#include "method.h"
#include "metrics.h"
#include "status.h"

/* Writes the caller's peer address ("ipv4:127.0.0.1:5000", ...) into out;
 * called only when the line is logged, so that a transport whose peer
 * string costs an allocation pays it only then. */
typedef void (*srv_peer_fn)(void *arg, char *out, size_t outlen);

#define SRV_PEER_MAX 1088

/* One finished call: metrics by transport, method and code, and the "rpc"
 * log line (info level) with the status message, caller name and peer.
 * caller_san ("URI", "DNS" or NULL): the caller is the certificate SAN of
 * that type (the line names it). */
void srv_rpc_finished(enum srv_transport transport, enum ct_method method, const srv_status *status,
                      double seconds, const char *caller, const char *caller_san, srv_peer_fn peer,
                      void *peer_arg);

#endif
