/* The TokenService methods as plain functions: a decoded request and a
 * caller identity in, a token reply or a status out. The gRPC side and the
 * HTTP side both call these, so every rule lives here once; unit tests call
 * them without a network. */
#ifndef SRV_HANDLERS_H
#define SRV_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "directory/directory.h"
#include "status.h"
#include "token.h"
#include "username.h"

/* The numbers of the proto's TokenKind (and of srv_metrics_token_kind). */
enum srv_token_kind {
    SRV_KIND_UNSPECIFIED = 0,
    SRV_KIND_APP = 1,
    SRV_KIND_USER = 2,
    SRV_KIND_RTC = 3,
    SRV_KIND_RTM = 4,
};
#define SRV_KIND_COUNT 5

typedef struct srv_token_reply {
    char token[CT_BUILD_MAX_CHARS];
    int64_t expire_time; /* unix seconds */
    enum srv_token_kind kind;
    /* "" for app tokens; the RTC account (uid in decimal) or RTM user id */
    char user_id[CT_USER_ID_MAX + 1];
    int registered; /* GetUserToken: this call registered the user */
} srv_token_reply;

/* What the handlers need; shared read-only by all threads. */
typedef struct srv_context {
    const ct_config *config;
    ud_directory *directory; /* set in uuid identity mode, else NULL */
    int64_t (*now)(void);    /* unix seconds; NULL = time() (tests fix the clock) */
    /* the current config (snapshot.h): the transports give each call a copy
     * of this context with its snapshot's config; NULL = config is fixed */
    struct srv_snapshots *snapshots;
    /* the keys of config's auth.jwt issuers (a derived object of the
     * snapshot the call holds); NULL = none */
    srv_jwks_set *jwks;
} srv_context;

/* Checks that caller may call method: SRV_OK or PERMISSION_DENIED naming
 * the method. Handlers call it first. */
int srv_authorize(const srv_caller *caller, enum ct_method method, srv_status *status);

/* An end user (auth.jwt role end_user) acts only as itself: SRV_OK when
 * caller is not an end user or when id (what: "username", "RTC account",
 * "RTM user id") is its username; else PERMISSION_DENIED. */
int srv_authorize_user(const srv_caller *caller, const char *what, const char *id,
                       srv_status *status);

/* An end user's RTC channel must start with its issuer's rtc_channel_prefix. */
int srv_authorize_channel(const srv_caller *caller, const char *channel, srv_status *status);

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

/* For the handlers of other token kinds (rtc_handlers.c): */
/* the clock of ctx, unix seconds */
int64_t srv_now(const srv_context *ctx);
/* ttl_seconds: 0 = tokens.default_ttl_seconds, above tokens.max_ttl_seconds
 * INVALID_ARGUMENT naming the limit */
int srv_resolve_ttl(const ct_config *cfg, uint32_t requested, uint32_t *ttl, srv_status *status);
/* RenewToken: FAILED_PRECONDITION when expired_at (unix seconds) is more
 * than tokens.renew_grace_seconds ago */
int srv_check_renew_grace(const srv_context *ctx, uint64_t expired_at, srv_status *status);

#endif
