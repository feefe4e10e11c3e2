/* Open gRPC connections for chat_tokend_grpc_connections. The C core has no
 * public connection counter, but channelz (on by default) keeps one socket
 * node per live HTTP/2 transport of each server: count them through the
 * channelz JSON API at scrape time. */
#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <jansson.h>
#include <stdlib.h>

#include "grpc_server.h"
#include "process_metrics.h"

#define PAGE_LIMIT 64 /* pages per server; 500 sockets each */

/* The int64 ids of channelz JSON are strings. */
static long long json_id(json_t *ref, const char *key)
{
    const char *s = json_string_value(json_object_get(ref, key));

    return s != NULL ? strtoll(s, NULL, 10) : -1;
}

/* Live sockets of one server, or -1. */
static long server_sockets(long long server_id)
{
    long total = 0;
    long long start = 0;

    for (int page = 0; page < PAGE_LIMIT; page++) {
        char *text = grpc_channelz_get_server_sockets((intptr_t)server_id, (intptr_t)start, 0);
        json_t *doc = text != NULL ? json_loads(text, 0, NULL) : NULL;
        json_t *refs = json_object_get(doc, "socketRef");
        int end = json_is_true(json_object_get(doc, "end"));
        size_t i;
        json_t *ref;

        gpr_free(text);
        if (doc == NULL) {
            return -1;
        }
        json_array_foreach(refs, i, ref)
        {
            total++;
            start = json_id(ref, "socketId") + 1;
        }
        json_decref(doc);
        if (end || json_array_size(refs) == 0) {
            return total;
        }
    }
    return total;
}

static long count_connections(void)
{
    char *text = grpc_channelz_get_servers(0);
    json_t *doc = text != NULL ? json_loads(text, 0, NULL) : NULL;
    json_t *server;
    size_t i;
    long total = 0;

    gpr_free(text);
    if (doc == NULL) {
        return -1;
    }
    json_array_foreach(json_object_get(doc, "server"), i, server)
    {
        long n = server_sockets(json_id(json_object_get(server, "ref"), "serverId"));
        if (n < 0) {
            total = -1;
            break;
        }
        total += n;
    }
    json_decref(doc);
    return total;
}

void srv_grpc_count_connections_in_metrics(void)
{
    srv_process_metrics_set_connection_counter(count_connections);
}
