/* Call outcomes: the gRPC status codes, a status (code + message) and the
 * helpers that set one. A leaf: it includes nothing of the server, so every
 * module (handlers, auth, metrics, the transports) can use it without
 * including the others. */
#ifndef SRV_STATUS_H
#define SRV_STATUS_H

/* The gRPC status codes, so handlers need no gRPC header. */
enum srv_code {
    SRV_OK = 0,
    SRV_CANCELLED = 1,
    SRV_UNKNOWN = 2,
    SRV_INVALID_ARGUMENT = 3,
    SRV_DEADLINE_EXCEEDED = 4,
    SRV_NOT_FOUND = 5,
    SRV_ALREADY_EXISTS = 6,
    SRV_PERMISSION_DENIED = 7,
    SRV_RESOURCE_EXHAUSTED = 8,
    SRV_FAILED_PRECONDITION = 9,
    SRV_ABORTED = 10,
    SRV_OUT_OF_RANGE = 11,
    SRV_UNIMPLEMENTED = 12,
    SRV_INTERNAL = 13,
    SRV_UNAVAILABLE = 14,
    SRV_DATA_LOSS = 15,
    SRV_UNAUTHENTICATED = 16,
};
#define SRV_CODE_COUNT (SRV_UNAUTHENTICATED + 1)

#define SRV_MESSAGE_MAX 256

typedef struct srv_status {
    enum srv_code code;
    char message[SRV_MESSAGE_MAX];
} srv_status;

/* Short names for logs and metrics ("OK", "INVALID_ARGUMENT", ...). */
const char *srv_code_name(enum srv_code code);

/* Sets status (code + printf-style message); returns code. */
int srv_fail(srv_status *status, enum srv_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets status to OK with an empty message; returns SRV_OK. */
int srv_ok(srv_status *status);

#endif
