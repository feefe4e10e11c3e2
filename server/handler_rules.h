/* What every handler checks and shares, whatever the token kind: the call's
 * context (srv_context) and reply (srv_token_reply), who may call what, the
 * clock, the TTL bounds and the renewal grace. Below handlers.h (Chat) and
 * rtc_handlers.h (RTC, RTM), so neither includes the other's rules. */
#ifndef SRV_HANDLER_RULES_H
#define SRV_HANDLER_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "directory/directory.h"
#include "status.h"
#include "token.h"

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

/* the clock of ctx, unix seconds */
int64_t srv_now(const srv_context *ctx);
/* ttl_seconds: 0 = tokens.default_ttl_seconds, above tokens.max_ttl_seconds
 * INVALID_ARGUMENT naming the limit */
int srv_resolve_ttl(const ct_config *cfg, uint32_t requested, uint32_t *ttl, srv_status *status);
/* RenewToken: FAILED_PRECONDITION when expired_at (unix seconds) is more
 * than tokens.renew_grace_seconds ago */
int srv_check_renew_grace(const srv_context *ctx, uint64_t expired_at, srv_status *status);

#endif
