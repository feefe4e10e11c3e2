/* Finishing an RPC, the same on both transports: count it in the metrics
 * and write its log line. */
#ifndef SRV_RPC_H
#define SRV_RPC_H

#include <stddef.h>

#include "auth.h"
#include "method.h"
#include "metrics.h"
#include "status.h"

/* Writes the caller's peer address ("ipv4:127.0.0.1:5000", ...) into out;
 * called only when the line is logged, so that a transport whose peer
 * string costs an allocation pays it only then. */
typedef void (*srv_peer_fn)(void *arg, char *out, size_t outlen);

#define SRV_PEER_MAX 1088

/* One finished call: metrics by transport, method and code, and the "rpc"
 * log line (info level) with the status message, caller name and peer, the
 * certificate SAN type when a SAN identified it, and the JWT's sub. */
void srv_rpc_finished(enum srv_transport transport, enum ct_method method, const srv_status *status,
                      double seconds, const srv_caller *caller, srv_peer_fn peer, void *peer_arg);

#endif
