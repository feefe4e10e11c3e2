/* JSON-lines logging to stderr, one write(2) per line so that lines from
 * different threads never interleave. Lines are formatted into a stack
 * buffer without allocation: the RPC line is written for every call. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048

static atomic_int log_level = CT_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
} line;

void srv_log_set_level(enum ct_log_level level)
{
    atomic_store(&log_level, (int)level);
}

int srv_log_enabled(enum ct_log_level level)
{
    return (int)level >= atomic_load(&log_level);
}

static void put_raw(line *l, const char *s, size_t n)
{
    /* keep room for the closing "}\n" */
    if (n > sizeof(l->buf) - 2 - l->len) {
        n = sizeof(l->buf) - 2 - l->len;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* Appends s as a JSON string body. Bytes outside printable ASCII are
 * escaped (\u00XX), so a line stays valid JSON whatever a client sent. */
static void put_escaped(line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
        if (*p == '"' || *p == '\\') {
            char pair[2] = {'\\', (char)*p};
            put_raw(l, pair, 2);
        } else if (*p < 0x20 || *p >= 0x7f) {
            put_raw(l, esc, sizeof(esc));
        } else {
            put_raw(l, (const char *)p, 1);
        }
    }
}

static void put_string(line *l, const char *key, const char *value)
{
    put_raw(l, ",\"", 2);
    put_raw(l, key, strlen(key));
    put_raw(l, "\":\"", 3);
    put_escaped(l, value != NULL ? value : "");
    put_raw(l, "\"", 1);
}

static void put_number(line *l, const char *key, double value)
{
    char num[64];
    int n = snprintf(num, sizeof(num), ",\"%s\":%.3f", key, value);

    put_raw(l, num, (size_t)n < sizeof(num) ? (size_t)n : sizeof(num) - 1);
}

/* {"time":"...","level":"..." */
static void begin(line *l, enum ct_log_level level)
{
    struct timespec ts;
    struct tm tm;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(l->buf, sizeof(l->buf),
                 "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"level\":\"%s\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ts.tv_nsec / 1000000) % 1000, level_names[level]);
    l->len = (size_t)n;
}

static void finish(line *l)
{
    ssize_t n;

    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    n = write(STDERR_FILENO, l->buf, l->len);
    (void)n;
}

static void log_event(enum ct_log_level level, const char *event, const char *fmt, va_list ap)
{
    char message[1024];
    line l;

    begin(&l, level);
    put_string(&l, "event", event);
    if (fmt != NULL) {
        vsnprintf(message, sizeof(message), fmt, ap);
        put_string(&l, "message", message);
    }
    finish(&l);
}

void srv_log_event(enum ct_log_level level, const char *event, const char *fmt, ...)
{
    va_list ap;

    if (!srv_log_enabled(level)) {
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
    line l;

    if (!srv_log_enabled(CT_LOG_INFO)) {
        return;
    }
    begin(&l, CT_LOG_INFO);
    put_string(&l, "event", "rpc");
    put_string(&l, "transport", e->transport);
    put_string(&l, "method", e->method);
    put_string(&l, "status", e->code);
    if (e->message != NULL && e->message[0] != '\0') {
        put_string(&l, "message", e->message);
    }
    put_number(&l, "duration_ms", e->duration_ms);
    put_string(&l, "caller", e->caller);
    if (e->caller_san != NULL) {
        /* the SAN that matched, with its type: "URI:spiffe://..." */
        put_raw(&l, ",\"san\":\"", 8);
        put_escaped(&l, e->caller_san);
        put_raw(&l, ":", 1);
        put_escaped(&l, e->caller);
        put_raw(&l, "\"", 1);
    }
    if (e->caller_sub != NULL) {
        put_string(&l, "sub", e->caller_sub);
    }
    put_string(&l, "peer", e->peer);
    finish(&l);
}
