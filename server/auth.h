/* Caller authentication: API keys (metadata `authorization: Bearer KEY` or
 * `x-api-key: KEY`, checked against SHA-256 hashes in constant time) and
 * mTLS client identities: an id with a URI scheme (a SPIFFE ID) matches a
 * URI SAN of the verified certificate, any other id a DNS SAN (core/peer_id.h);
 * whole values are compared, lengths included. */
#ifndef SRV_AUTH_H
#define SRV_AUTH_H

#include <stddef.h>

#include "config.h"
#include "jwks.h"
#include "peer_id.h"
#include "status.h"
#include "username.h"

#define SRV_AUTH_MAX_SANS 32

/* A URI or DNS SAN of the verified client certificate (email and IP SANs
 * are not collected: they never identify a client). value may hold NULs:
 * len is its length. */
typedef struct srv_san {
    enum ct_peer_id_kind type; /* CT_PEER_ID_URI or CT_PEER_ID_DNS */
    const char *value;
    size_t len;
} srv_san;

/* Who is calling, as auth established it. */
typedef struct srv_caller {
    char name[CT_CONFIG_ID_MAX];      /* api key name, client certificate id, auth.jwt name, or
                                       * "anonymous" */
    unsigned methods;                 /* CT_METHOD_BIT()s of the methods this caller may call */
    const char *san_type;             /* "URI" or "DNS" when a certificate SAN (equal to name)
                                       * identified the caller, else NULL */
    char subject[CT_JWT_SUB_MAX + 1]; /* a JWT's sub claim (logged with name); "" otherwise */
    /* An end user (auth.jwt role end_user) may act only as user; the
     * handlers check it (srv_authorize_user). */
    int end_user;
    char user[CT_USERNAME_MAX + 1]; /* the normalised username claim; "" when it is none */
    char user_problem[320];         /* why the claim is not a username, when user is "" */
    const char *rtc_channel_prefix; /* end user: RTC channels must start with it ("" any) */
} srv_caller;

/* What a request presented; any part may be absent (NULL / 0). */
typedef struct srv_credentials {
    const char *authorization; /* the header value, "Bearer KEY" */
    size_t authorization_len;
    const char *api_key; /* x-api-key */
    size_t api_key_len;
    unsigned authorization_count;    /* how many authorization headers came */
    unsigned api_key_count;          /* how many x-api-key headers came */
    int certificate;                 /* a verified client certificate was presented */
    srv_san sans[SRV_AUTH_MAX_SANS]; /* its URI and DNS SANs */
    size_t san_count;
    int san_overflow; /* the certificate holds more than SRV_AUTH_MAX_SANS of them */
} srv_credentials;

/* Takes one request header (HTTP) or metadata entry (gRPC), its name in any
 * case: authorization and x-api-key are counted and the first of each kept;
 * anything else is ignored. */
void srv_credentials_add_header(srv_credentials *cred, const char *name, size_t name_len,
                                const char *value, size_t value_len);

/* Adds a SAN of the verified certificate to cred (or sets san_overflow
 * when full); sets cred->certificate. */
void srv_credentials_add_san(srv_credentials *cred, enum ct_peer_id_kind type, const char *value,
                             size_t len);

/* Fills caller from the credentials: SRV_OK, or UNAUTHENTICATED when none
 * were presented (and unauthenticated calls are not allowed) or when those
 * presented are unknown, or when more than one credential came (two
 * authorization headers, or authorization and x-api-key: a proxy or an
 * authorizer that read the other copy would be bypassed). A key presented
 * takes precedence over the
 * certificate; with allow_unauthenticated, a caller without credentials is
 * "anonymous" and may call every method. A certificate with a URI or DNS
 * SAN holding a NUL, or with more than SRV_AUTH_MAX_SANS of them, is
 * refused; a SPIFFE ID matches only a certificate with exactly one URI SAN
 * (an X.509-SVID). caller->san_type says which SAN type identified it. */
/* A Bearer value that is a compact JWS (ct_jwt_is_jws) is a JWT, verified
 * against the auth.jwt issuer its iss names with that issuer's keys in jwks
 * (NULL: no keys, every JWT refused); every refusal is UNAUTHENTICATED
 * naming the reason. */
int srv_auth_identify(const ct_config *cfg, srv_jwks_set *jwks, const srv_credentials *cred,
                      srv_caller *caller, srv_status *status);

#endif
