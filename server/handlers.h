/* The TokenService methods as plain functions: a decoded request and a
 * caller identity in, a token reply or a status out. The gRPC side and the
 * HTTP side both call these, so every rule lives here once; unit tests call
 * them without a network. */
#ifndef SRV_HANDLERS_H
#define SRV_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "directory/directory.h"
#include "token.h"
#include "username.h"

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

#define SRV_MESSAGE_MAX 256

typedef struct srv_status {
    enum srv_code code;
    char message[SRV_MESSAGE_MAX];
} srv_status;

/* Who is calling, as auth established it. */
typedef struct srv_caller {
    char name[CT_CONFIG_ID_MAX]; /* api key name, client certificate id, or "anonymous" */
    unsigned methods;            /* enum ct_method bits this caller may call */
} srv_caller;

enum srv_token_kind { SRV_KIND_UNSPECIFIED = 0, SRV_KIND_APP = 1, SRV_KIND_USER = 2 };

typedef struct srv_token_reply {
    char token[CT_BUILD_MAX_CHARS];
    int64_t expire_time; /* unix seconds */
    enum srv_token_kind kind;
    char user_id[CT_USER_ID_MAX + 1]; /* "" for app tokens */
    int registered;                   /* GetUserToken: this call registered the user */
} srv_token_reply;

/* What the handlers need; shared read-only by all threads. */
typedef struct srv_context {
    const ct_config *config;
    ud_directory *directory; /* set in uuid identity mode, else NULL */
    int64_t (*now)(void);    /* unix seconds; NULL = time() (tests fix the clock) */
} srv_context;

/* Checks that caller may call method (enum ct_method bit): SRV_OK or
 * PERMISSION_DENIED naming the method. Handlers call it first. */
int srv_authorize(const srv_caller *caller, unsigned method, srv_status *status);

int srv_get_app_token(const srv_context *ctx, const srv_caller *caller, uint32_t ttl_seconds,
                      srv_token_reply *reply, srv_status *status);

int srv_renew_token(const srv_context *ctx, const srv_caller *caller, const char *token,
                    size_t token_len, uint32_t ttl_seconds, srv_token_reply *reply,
                    srv_status *status);

/* GetUserToken may wait for the user directory, so it finishes through a
 * callback that runs exactly once: on the calling thread when the answer is
 * at hand, else later on the directory's thread. The state (owned by the
 * caller, alive until done runs) carries the request and receives the
 * reply and status that done is given. */
typedef struct srv_user_request srv_user_request;
typedef void (*srv_done_fn)(srv_user_request *request);

struct srv_user_request {
    const srv_context *ctx;
    char username[CT_USERNAME_MAX + 1];
    uint32_t ttl;
    srv_token_reply reply;
    srv_status status;
    srv_done_fn done;
    void *arg; /* the caller's */
};

/* deadline_ms: the caller's deadline on CLOCK_MONOTONIC (ud_monotonic_ms),
 * INT64_MAX for none. */
void srv_get_user_token(const srv_context *ctx, const srv_caller *caller, const char *username,
                        size_t username_len, uint32_t ttl_seconds, int64_t deadline_ms,
                        srv_user_request *request, srv_done_fn done, void *arg);

/* Short names for logs and metrics ("OK", "INVALID_ARGUMENT", ...). */
const char *srv_code_name(enum srv_code code);

/* Sets status (code + printf-style message); returns code. */
int srv_fail(srv_status *status, enum srv_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
