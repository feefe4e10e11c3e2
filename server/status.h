/* Call outcomes: the gRPC status codes, a status (code + message) and the
 * helpers that set one. A leaf: it includes nothing of the server, so every
 * module (handlers, auth, metrics, the transports) can use it without
 * including the others. */
#ifndef SRV_STATUS_H
#define SRV_STATUS_H

/* The gRPC status codes, so handlers need no gRPC header: one list, from
 * which the enum and the names (srv_code_name) are both made. */
#define SRV_CODES(X)                                                                               \
    X(OK, 0)                                                                                       \
    X(CANCELLED, 1)                                                                                \
    X(UNKNOWN, 2)                                                                                  \
    X(INVALID_ARGUMENT, 3)                                                                         \
    X(DEADLINE_EXCEEDED, 4)                                                                        \
    X(NOT_FOUND, 5)                                                                                \
    X(ALREADY_EXISTS, 6)                                                                           \
    X(PERMISSION_DENIED, 7)                                                                        \
    X(RESOURCE_EXHAUSTED, 8)                                                                       \
    X(FAILED_PRECONDITION, 9)                                                                      \
    X(ABORTED, 10)                                                                                 \
    X(OUT_OF_RANGE, 11)                                                                            \
    X(UNIMPLEMENTED, 12)                                                                           \
    X(INTERNAL, 13)                                                                                \
    X(UNAVAILABLE, 14)                                                                             \
    X(DATA_LOSS, 15)                                                                               \
    X(UNAUTHENTICATED, 16)

#define SRV_CODE_ENUM(name, value) SRV_##name = value,
enum srv_code { SRV_CODES(SRV_CODE_ENUM) };
#undef SRV_CODE_ENUM
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
