/* JSON-lines logging to stderr, one write(2) per line so that lines from
 * different threads never interleave. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = CT_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void srv_log_set_level(enum ct_log_level level)
{
    atomic_store(&log_level, (int)level);
}

static void iso_now(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    char base[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", base, (int)(ts.tv_nsec / 1000000) % 1000);
}

static void emit(json_t *obj)
{
    char *line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    size_t len;
    ssize_t n;

    json_decref(obj);
    if (line == NULL) {
        return;
    }
    len = strlen(line);
    line[len] = '\n'; /* json_dumps leaves the NUL: overwrite it, write len + 1 */
    n = write(STDERR_FILENO, line, len + 1);
    (void)n;
    free(line);
}

static json_t *header(enum ct_log_level level)
{
    char now[40];

    iso_now(now, sizeof(now));
    return json_pack("{s:s,s:s}", "time", now, "level", level_names[level]);
}

static void log_event(enum ct_log_level level, const char *event, const char *fmt, va_list ap)
{
    char message[1024];
    json_t *obj = header(level);

    json_object_set_new(obj, "event", json_string(event));
    if (fmt != NULL) {
        vsnprintf(message, sizeof(message), fmt, ap);
        json_object_set_new(obj, "message", json_string(message));
    }
    emit(obj);
}

void srv_log_event(enum ct_log_level level, const char *event, const char *fmt, ...)
{
    va_list ap;

    if ((int)level < atomic_load(&log_level)) {
        return;
    }
    va_start(ap, fmt);
    log_event(level, event, fmt, ap);
    va_end(ap);
}

void srv_log_lifecycle(const char *event, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_event(CT_LOG_INFO, event, fmt, ap);
    va_end(ap);
}

void srv_log_rpc(const srv_rpc_log *e)
{
    json_t *obj;

    if (CT_LOG_INFO < atomic_load(&log_level)) {
        return;
    }
    obj = header(CT_LOG_INFO);
    json_object_set_new(obj, "event", json_string("rpc"));
    json_object_set_new(obj, "transport", json_string(e->transport));
    json_object_set_new(obj, "method", json_string(e->method));
    json_object_set_new(obj, "status", json_string(e->code));
    if (e->message != NULL && e->message[0] != '\0') {
        json_object_set_new(obj, "message", json_string(e->message));
    }
    json_object_set_new(obj, "duration_ms", json_real(e->duration_ms));
    json_object_set_new(obj, "caller", json_string(e->caller != NULL ? e->caller : ""));
    json_object_set_new(obj, "peer", json_string(e->peer != NULL ? e->peer : ""));
    emit(obj);
}
