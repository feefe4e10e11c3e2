/* The standard Prometheus process collector (process_cpu_seconds_total,
 * process_resident_memory_bytes, ...) read from /proc/self, and the open
 * gRPC connections gauge, for GET /metrics. */
#ifndef SRV_PROCESS_METRICS_H
#define SRV_PROCESS_METRICS_H

#include "text.h"

/* A function that returns the number of open gRPC connections, or -1 when
 * it cannot tell. The gRPC side registers it; without one the gauge is left
 * out. */
typedef long (*srv_connection_counter)(void);

void srv_process_metrics_set_connection_counter(srv_connection_counter count);

/* Appends the process families in the text exposition format to b.
 * Families whose source cannot be read are left out. */
void srv_process_metrics_render(ct_buf *b);

#endif
