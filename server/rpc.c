/* Finishing an RPC on either transport (see rpc.h). */
#include "rpc.h"

#include "log.h"

void srv_rpc_finished(enum srv_transport transport, enum ct_method method, const srv_status *status,
                      double seconds, const srv_caller *caller, srv_peer_fn peer, void *peer_arg)
{
    static const char *const transport_names[] = {"grpc", "http"};
    char peer_text[SRV_PEER_MAX];
    srv_rpc_log entry;

    srv_metrics_rpc(transport, method, status->code, seconds);
    if (!srv_log_enabled(CT_LOG_INFO)) {
        return;
    }
    peer(peer_arg, peer_text, sizeof(peer_text));
    entry.transport = transport_names[transport == SRV_TRANSPORT_HTTP];
    entry.method = ct_method_name(method);
    entry.code = srv_code_name(status->code);
    entry.message = status->message;
    entry.duration_ms = seconds * 1000.0;
    entry.caller = caller->name;
    entry.caller_san = caller->san_type;
    entry.caller_sub = caller->subject[0] != '\0' ? caller->subject : NULL;
    entry.peer = peer_text;
    srv_log_rpc(&entry);
}
