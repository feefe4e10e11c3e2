/* The key sets of auth.jwt's issuers and where they come from: a JWKS file
 * (re-read when it changes, a Kubernetes `..data` symlink swap included) or
 * a JWKS URL (fetched with libcurl on the set's own thread, cached for its
 * Cache-Control max-age within [60 s, 24 h], fetched early for an unknown
 * kid at most once per 30 s, served stale up to 24 h). One set per config:
 * a reload builds a new set from the new config and destroys the old one. */
#ifndef SRV_JWKS_H
#define SRV_JWKS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "jwt.h"
#include "text.h"

#define SRV_JWKS_MIN_MAX_AGE 60          /* seconds */
#define SRV_JWKS_MAX_MAX_AGE 86400       /* seconds */
#define SRV_JWKS_STALE_FOR 86400         /* seconds served after the last fetch */
#define SRV_JWKS_UNKNOWN_KID_INTERVAL 30 /* seconds between early fetches */

typedef struct srv_jwks_set srv_jwks_set;

/* The max-age of a Cache-Control response header line ("Cache-Control:
 * public, max-age=600", any case), or -1 when line is another header or
 * names none. */
long srv_jwks_max_age(const char *line, size_t len);

/* How long keys fetched from a URL are used before the next fetch: the
 * response's max-age (-1: none, then 300 s) within
 * [SRV_JWKS_MIN_MAX_AGE, SRV_JWKS_MAX_MAX_AGE]. */
long srv_jwks_cache_seconds(long max_age);

/* Keys last fetched at loaded_at (unix seconds, 0 = never) are dropped at
 * now: served stale for SRV_JWKS_STALE_FOR, not longer. */
int srv_jwks_stale(int64_t loaded_at, int64_t now);

/* One source per cfg->jwt entry; starts the thread when there is any. A
 * file that cannot be read or a URL that cannot be fetched is not an error
 * here (calls fail UNAUTHENTICATED until keys arrive; srv_jwks_ready says
 * so); NULL with err only when the set cannot be made. cfg must outlive it. */
srv_jwks_set *srv_jwks_set_create(const ct_config *cfg, char *err, size_t errlen);

/* Stops the thread and frees everything (NULL is fine). */
void srv_jwks_set_destroy(srv_jwks_set *set);

/* Verifies a parsed JWT for issuer (one of cfg->jwt) with its current keys;
 * on an unknown kid, asks for one early fetch (at most once per 30 s per
 * URL; waits for it up to a few seconds) and tries again. Counts the
 * outcome in the metrics. */
enum ct_jwt_outcome srv_jwks_verify(srv_jwks_set *set, const ct_jwt *jwt,
                                    const ct_jwt_issuer *issuer, int64_t now, ct_jwt_claims *claims,
                                    char *err, size_t errlen);

/* Counts a JWT refused before an issuer was known (malformed, unknown
 * issuer) under the label name "" . */
void srv_jwks_count_unmatched(srv_jwks_set *set, enum ct_jwt_outcome outcome);

/* 1 when every issuer has keys; else 0 and the first without in why. */
int srv_jwks_ready(srv_jwks_set *set, char *why, size_t whylen);

/* Appends chat_tokend_jwt_verifications_total{name,result} and
 * chat_tokend_jwks_age_seconds{name} to out, in the text exposition
 * format (nothing when no issuer is configured). */
void srv_jwks_metrics_render(srv_jwks_set *set, ct_buf *out);

#endif
