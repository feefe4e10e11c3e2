/* JWT verification for auth.jwt: a compact JWS checked against a key set
 * (JWKS) and one issuer's config. Signatures and JWK import are libcjose's
 * (OpenSSL underneath); which algorithms and keys are acceptable, and every
 * claim check, are ours. Pure: no I/O, no clock (the caller passes now). */
#ifndef CT_JWT_H
#define CT_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CT_JWT_MAX_BYTES 8192      /* a larger Bearer JWT is refused unread */
#define CT_JWT_MAX_KEYS 32         /* keys kept from one JWKS */
#define CT_JWT_KID_MAX 128         /* bytes of a kid */
#define CT_JWT_SUB_MAX 255         /* bytes of the sub claim */
#define CT_JWT_CLAIM_VALUE_MAX 255 /* bytes of iss and the username claim */
#define CT_JWT_JWKS_MAX_BYTES (1024 * 1024)

/* Why a JWT was refused; each has a metrics label (ct_jwt_outcome_name). */
enum ct_jwt_outcome {
    CT_JWT_OK = 0,
    CT_JWT_MALFORMED,   /* size, base64url, JSON, header */
    CT_JWT_ALGORITHM,   /* alg not in the issuer's algorithms */
    CT_JWT_NO_KEYS,     /* the issuer's key set is not loaded (yet) */
    CT_JWT_UNKNOWN_KID, /* no key with that kid and a type fit for alg */
    CT_JWT_SIGNATURE,   /* no fitting key verifies it */
    CT_JWT_CLAIMS,      /* iss, aud, exp, nbf, iat, sub, a missing claim */
    CT_JWT_OUTCOME_COUNT
};

const char *ct_jwt_outcome_name(enum ct_jwt_outcome outcome);

/* The keys of a JWKS fit for signatures: RSA of 2048+ bits (RS256) and EC
 * P-256 (ES256). Immutable once parsed; share it read-only. */
typedef struct ct_jwt_keyset ct_jwt_keyset;

/* Parses a JWKS document ({"keys": [...]}). Keys with `use` other than
 * "sig", an `alg` other than RS256/ES256 or not fitting their kty, another
 * kty or curve, or RSA under 2048 bits are skipped (*ignored counts them).
 * NULL with the reason in err when the document is not a JWKS. A JWKS
 * without a usable key is an empty set, not an error. */
ct_jwt_keyset *ct_jwt_keyset_parse(const char *json, size_t len, size_t *ignored, char *err,
                                   size_t errlen);
size_t ct_jwt_keyset_count(const ct_jwt_keyset *keys);
void ct_jwt_keyset_free(ct_jwt_keyset *keys);

/* A JWT split and decoded, not yet trusted: ct_jwt_parse fills it,
 * ct_jwt_verify checks it, ct_jwt_release frees it. */
typedef struct ct_jwt {
    const char *token; /* the caller's, not copied */
    size_t len;
    char alg[16];
    char kid[CT_JWT_KID_MAX + 1]; /* "" = none */
    char iss[CT_JWT_CLAIM_VALUE_MAX + 1];
    void *header;  /* json_t * */
    void *payload; /* json_t * */
} ct_jwt;

/* 1 when value looks like a compact JWS: three parts separated by '.', the
 * first of them base64url that decodes to a JSON object with a string
 * "alg". Anything else is not a JWT (an API key, say). */
int ct_jwt_is_jws(const char *value, size_t len);

/* Splits and decodes (size, base64url, JSON objects, alg, kid, crit, iss
 * when present). CT_JWT_OK or CT_JWT_MALFORMED with the reason in err. jwt
 * must be released either way. */
enum ct_jwt_outcome ct_jwt_parse(const char *token, size_t len, ct_jwt *jwt, char *err,
                                 size_t errlen);
void ct_jwt_release(ct_jwt *jwt);

/* The issuer of cfg->jwt whose issuer equals jwt's iss claim and whose
 * audiences meet its aud (the first such); or, when only the audience
 * fails, the first with that issuer; NULL when none has that issuer. */
const ct_jwt_issuer *ct_jwt_find_issuer(const ct_config *cfg, const ct_jwt *jwt);

/* What a verified JWT says. */
typedef struct ct_jwt_claims {
    char sub[CT_JWT_SUB_MAX + 1];
    /* end_user: the username claim as given (not yet a valid username) */
    char username[CT_JWT_CLAIM_VALUE_MAX + 1];
    int has_username;
    int64_t exp;
} ct_jwt_claims;

/* Verifies jwt against keys (NULL: not loaded) for issuer at now (unix
 * seconds): alg allowed, a key of the kid (or any fitting key without a
 * kid) verifies the signature, then iss, aud, exp, nbf, iat (with
 * issuer->leeway_seconds), sub and, for end users, the username claim.
 * CT_JWT_OK fills claims; else the outcome and the reason in err. */
enum ct_jwt_outcome ct_jwt_verify(const ct_jwt *jwt, const ct_jwt_keyset *keys,
                                  const ct_jwt_issuer *issuer, int64_t now, ct_jwt_claims *claims,
                                  char *err, size_t errlen);

#endif
