/* The TokenService methods as plain functions: a decoded request and a
 * caller identity in, a token reply or a status out. The gRPC side and the
 * HTTP side both call these, so every rule lives here once; unit tests call
 * them without a network. */
#ifndef SRV_HANDLERS_H
#define SRV_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "directory/directory.h"
#include "handler_rules.h"
#include "status.h"
#include "token.h"
#include "username.h"

int srv_get_app_token(const srv_context *ctx, const srv_caller *caller, uint32_t ttl_seconds,
                      srv_token_reply *reply, srv_status *status);

/* RenewToken without the directory: an end user's user token in uuid mode
 * is PERMISSION_DENIED (see srv_renew_token_async). */
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
    char renew_user_id[CT_USER_ID_MAX + 1]; /* srv_renew_token_async: the token's UUID */
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

/* RenewToken as the transports call it: srv_renew_token, except that an end
 * user's user token in uuid mode is renewed only once the directory maps
 * the user's name to the token's UUID, so done may run later, on the
 * directory's thread, as for srv_get_user_token. token is read before it
 * returns. */
void srv_renew_token_async(const srv_context *ctx, const srv_caller *caller, const char *token,
                           size_t token_len, uint32_t ttl_seconds, int64_t deadline_ms,
                           srv_user_request *req, srv_done_fn done, void *arg);

#endif
