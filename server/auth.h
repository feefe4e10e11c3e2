/* Caller authentication: API keys (metadata `authorization: Bearer KEY` or
 * `x-api-key: KEY`, checked against SHA-256 hashes in constant time) and
 * mTLS client identities (SAN / SPIFFE ID of a verified certificate). */
#ifndef SRV_AUTH_H
#define SRV_AUTH_H

#include <stddef.h>

#include "config.h"
#include "status.h"

#define SRV_AUTH_MAX_PEER_IDS 16

/* Who is calling, as auth established it. */
typedef struct srv_caller {
    char name[CT_CONFIG_ID_MAX]; /* api key name, client certificate id, or "anonymous" */
    unsigned methods;            /* CT_METHOD_BIT()s of the methods this caller may call */
} srv_caller;

/* What a request presented; any part may be absent (NULL / 0). */
typedef struct srv_credentials {
    const char *authorization; /* the header value, "Bearer KEY" */
    size_t authorization_len;
    const char *api_key; /* x-api-key */
    size_t api_key_len;
    const char *peer_ids[SRV_AUTH_MAX_PEER_IDS]; /* verified certificate SANs */
    size_t peer_id_count;
} srv_credentials;

/* Fills caller from the credentials: SRV_OK, or UNAUTHENTICATED when none
 * were presented (and unauthenticated calls are not allowed) or when those
 * presented are unknown. A key presented takes precedence over the
 * certificate; with allow_unauthenticated, a caller without credentials is
 * "anonymous" and may call every method. */
int srv_auth_identify(const ct_config *cfg, const srv_credentials *cred, srv_caller *caller,
                      srv_status *status);

#endif
