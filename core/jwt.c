/* JWT verification: splitting and decoding a compact JWS, JWKS import,
 * signature checks through libcjose, and the claim checks (iss, aud, exp,
 * nbf, iat, sub, the username claim).
 *
 * libcjose verifies with whatever alg the header names and whatever key it
 * is given, so the choices that stop algorithm confusion are made here,
 * before it is called: alg must be one of the issuer's (RS256/ES256 only;
 * none and HS* never reach cjose) and the key's type must fit the alg (an
 * RSA key of 2048+ bits for RS256, EC P-256 for ES256). */
#include "jwt.h"

#include <cjose/cjose.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_type { KEY_RSA = 0, KEY_EC_P256 = 1 };

typedef struct key {
    char kid[CT_JWT_KID_MAX + 1];
    enum key_type type;
    cjose_jwk_t *jwk;
} key;

struct ct_jwt_keyset {
    size_t count;
    key keys[CT_JWT_MAX_KEYS];
};

const char *ct_jwt_outcome_name(enum ct_jwt_outcome outcome)
{
    static const char *const names[CT_JWT_OUTCOME_COUNT] = {
        [CT_JWT_OK] = "ok",
        [CT_JWT_MALFORMED] = "malformed",
        [CT_JWT_ALGORITHM] = "algorithm",
        [CT_JWT_NO_KEYS] = "no_keys",
        [CT_JWT_UNKNOWN_KID] = "unknown_kid",
        [CT_JWT_SIGNATURE] = "bad_signature",
        [CT_JWT_CLAIMS] = "claims",
    };
    return (unsigned)outcome < CT_JWT_OUTCOME_COUNT ? names[outcome] : "unknown";
}

__attribute__((format(printf, 4, 5))) static enum ct_jwt_outcome
fail(enum ct_jwt_outcome outcome, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return outcome;
}

/* The key type an alg needs; -1 for any alg we never accept. */
static int key_type_for(const char *alg)
{
    if (strcmp(alg, "RS256") == 0) {
        return KEY_RSA;
    }
    if (strcmp(alg, "ES256") == 0) {
        return KEY_EC_P256;
    }
    return -1;
}

/* ---- JWKS ---- */

/* The type of a usable signature key, or -1 (then it is skipped). */
static int usable_key(json_t *jwk_json, cjose_jwk_t *jwk)
{
    const char *use = json_string_value(json_object_get(jwk_json, "use"));
    const char *alg = json_string_value(json_object_get(jwk_json, "alg"));
    cjose_err e;
    int type;

    if (json_object_get(jwk_json, "use") != NULL && (use == NULL || strcmp(use, "sig") != 0)) {
        return -1;
    }
    switch (cjose_jwk_get_kty(jwk, &e)) {
    case CJOSE_JWK_KTY_RSA:
        type = cjose_jwk_get_keysize(jwk, &e) >= 2048 ? KEY_RSA : -1;
        break;
    case CJOSE_JWK_KTY_EC:
        type = cjose_jwk_EC_get_curve(jwk, &e) == CJOSE_JWK_EC_P_256 ? KEY_EC_P256 : -1;
        break;
    default:
        return -1;
    }
    /* a key that names its alg is only for that alg */
    if (json_object_get(jwk_json, "alg") != NULL && (alg == NULL || key_type_for(alg) != type)) {
        return -1;
    }
    return type;
}

static int is_base64url(const char *s, size_t len);

/* Only the public parts are imported: a JWKS that carries a private key by
 * mistake must not make us hold it. The base64url members are checked
 * first: libcjose 0.6.2 aborts (an assert) on a length that is 1 mod 4. */
static cjose_jwk_t *import_public(json_t *jwk_json)
{
    static const char *const public_members[] = {"kty", "kid", "n", "e", "crv", "x", "y"};
    static const char *const encoded[] = {"n", "e", "x", "y"};
    json_t *copy;
    cjose_jwk_t *jwk;
    cjose_err e;

    for (size_t i = 0; i < sizeof(encoded) / sizeof(encoded[0]); i++) {
        json_t *v = json_object_get(jwk_json, encoded[i]);
        if (v != NULL &&
            (!json_is_string(v) || !is_base64url(json_string_value(v), json_string_length(v)))) {
            return NULL;
        }
    }
    copy = json_object();
    if (copy == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(public_members) / sizeof(public_members[0]); i++) {
        json_t *v = json_object_get(jwk_json, public_members[i]);
        if (v != NULL) {
            json_object_set(copy, public_members[i], v);
        }
    }
    jwk = cjose_jwk_import_json((cjose_header_t *)copy, &e);
    json_decref(copy);
    return jwk;
}

ct_jwt_keyset *ct_jwt_keyset_parse(const char *json, size_t len, size_t *ignored, char *err,
                                   size_t errlen)
{
    json_error_t jerr;
    json_t *doc;
    json_t *keys;
    ct_jwt_keyset *set;
    size_t skipped = 0;

    if (len > CT_JWT_JWKS_MAX_BYTES) {
        snprintf(err, errlen, "JWKS larger than %d bytes", CT_JWT_JWKS_MAX_BYTES);
        return NULL;
    }
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        snprintf(err, errlen, "JWKS is not JSON: %s (line %d)", jerr.text, jerr.line);
        return NULL;
    }
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        snprintf(err, errlen, "JWKS has no \"keys\" array");
        return NULL;
    }
    set = calloc(1, sizeof(*set));
    if (set == NULL) {
        json_decref(doc);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(keys); i++) {
        json_t *k = json_array_get(keys, i);
        const char *kid = json_string_value(json_object_get(k, "kid"));
        cjose_jwk_t *jwk = json_is_object(k) ? import_public(k) : NULL;
        int type = jwk != NULL ? usable_key(k, jwk) : -1;

        if (type < 0 || set->count == CT_JWT_MAX_KEYS ||
            (kid != NULL && strlen(kid) > CT_JWT_KID_MAX)) {
            cjose_jwk_release(jwk);
            skipped++;
            continue;
        }
        snprintf(set->keys[set->count].kid, sizeof(set->keys[0].kid), "%s", kid != NULL ? kid : "");
        set->keys[set->count].type = (enum key_type)type;
        set->keys[set->count].jwk = jwk;
        set->count++;
    }
    json_decref(doc);
    if (ignored != NULL) {
        *ignored = skipped;
    }
    return set;
}

size_t ct_jwt_keyset_count(const ct_jwt_keyset *keys)
{
    return keys != NULL ? keys->count : 0;
}

void ct_jwt_keyset_free(ct_jwt_keyset *keys)
{
    if (keys == NULL) {
        return;
    }
    for (size_t i = 0; i < keys->count; i++) {
        cjose_jwk_release(keys->keys[i].jwk);
    }
    free(keys);
}

/* ---- Splitting and decoding ---- */

static int is_base64url(const char *s, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    if (len % 4 == 1) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0' || strchr(alphabet, s[i]) == NULL) {
            return 0;
        }
    }
    return 1;
}

/* Decodes one base64url part into a JSON object; NULL when it is not one. */
static json_t *decode_object(const char *part, size_t len)
{
    uint8_t *bytes = NULL;
    size_t n = 0;
    cjose_err e;
    json_t *obj;

    if (len == 0 || !is_base64url(part, len) ||
        !cjose_base64url_decode(part, len, &bytes, &n, &e)) {
        return NULL;
    }
    obj = json_loadb((const char *)bytes, n, JSON_REJECT_DUPLICATES, NULL);
    cjose_get_dealloc()(bytes);
    if (obj != NULL && !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* The lengths of the three parts; 0 when there are not exactly three. */
static int split(const char *s, size_t len, size_t part[3])
{
    size_t n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (n == 3) {
                return 0;
            }
            part[n++] = i - start;
            start = i + 1;
        }
    }
    return n == 3;
}

int ct_jwt_is_jws(const char *value, size_t len)
{
    size_t part[3];
    json_t *header;
    int yes;

    if (!split(value, len, part) || part[0] > CT_JWT_MAX_BYTES) {
        return 0;
    }
    header = decode_object(value, part[0]);
    yes = header != NULL && json_is_string(json_object_get(header, "alg"));
    json_decref(header);
    return yes;
}

/* A string claim or header member of at most max bytes without NUL, into
 * out; 0 absent, 1 copied, -1 present but not such a string. */
static int get_string(json_t *obj, const char *name, char *out, size_t max)
{
    json_t *v = json_object_get(obj, name);
    size_t len;

    if (v == NULL) {
        return 0;
    }
    if (!json_is_string(v)) {
        return -1;
    }
    len = json_string_length(v);
    if (len > max || memchr(json_string_value(v), '\0', len) != NULL) {
        return -1;
    }
    memcpy(out, json_string_value(v), len + 1);
    return 1;
}

enum ct_jwt_outcome ct_jwt_parse(const char *token, size_t len, ct_jwt *jwt, char *err,
                                 size_t errlen)
{
    size_t part[3];
    json_t *header;

    memset(jwt, 0, sizeof(*jwt));
    jwt->token = token;
    jwt->len = len;
    if (len > CT_JWT_MAX_BYTES) {
        return fail(CT_JWT_MALFORMED, err, errlen, "JWT is %zu bytes, over the %d-byte limit", len,
                    CT_JWT_MAX_BYTES);
    }
    if (!split(token, len, part)) {
        return fail(CT_JWT_MALFORMED, err, errlen, "JWT must be three base64url parts");
    }
    header = decode_object(token, part[0]);
    if (header == NULL) {
        return fail(CT_JWT_MALFORMED, err, errlen, "JWT header is not base64url of a JSON object");
    }
    jwt->header = header;
    jwt->payload = decode_object(token + part[0] + 1, part[1]);
    if (jwt->payload == NULL) {
        return fail(CT_JWT_MALFORMED, err, errlen, "JWT payload is not base64url of a JSON object");
    }
    if (part[2] == 0 || !is_base64url(token + part[0] + part[1] + 2, part[2])) {
        return fail(CT_JWT_MALFORMED, err, errlen, "JWT signature is not base64url");
    }
    if (get_string(header, "alg", jwt->alg, sizeof(jwt->alg) - 1) != 1) {
        return fail(CT_JWT_MALFORMED, err, errlen, "JWT header has no valid alg");
    }
    if (get_string(header, "kid", jwt->kid, CT_JWT_KID_MAX) < 0) {
        return fail(CT_JWT_MALFORMED, err, errlen,
                    "JWT header kid is not a string of at most %d bytes", CT_JWT_KID_MAX);
    }
    /* RFC 7515 4.1.11: extensions we do not understand must not be ignored */
    if (json_object_get(header, "crit") != NULL) {
        return fail(CT_JWT_MALFORMED, err, errlen,
                    "JWT header has crit: no critical extension is supported");
    }
    if (get_string(jwt->payload, "iss", jwt->iss, CT_JWT_CLAIM_VALUE_MAX) < 0) {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT iss claim is not a string of at most %d bytes",
                    CT_JWT_CLAIM_VALUE_MAX);
    }
    return CT_JWT_OK;
}

void ct_jwt_release(ct_jwt *jwt)
{
    json_decref(jwt->header);
    json_decref(jwt->payload);
    jwt->header = NULL;
    jwt->payload = NULL;
}

/* ---- Claims ---- */

static int audience_matches(const ct_jwt_issuer *issuer, json_t *aud)
{
    size_t count = json_is_array(aud) ? json_array_size(aud) : 1;

    for (size_t i = 0; i < count; i++) {
        json_t *one = json_is_array(aud) ? json_array_get(aud, i) : aud;
        if (!json_is_string(one)) {
            continue;
        }
        for (size_t a = 0; a < issuer->audience_count; a++) {
            if (strlen(issuer->audiences[a]) == json_string_length(one) &&
                strcmp(issuer->audiences[a], json_string_value(one)) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

const ct_jwt_issuer *ct_jwt_find_issuer(const ct_config *cfg, const ct_jwt *jwt)
{
    const ct_jwt_issuer *first = NULL;
    json_t *aud = json_object_get(jwt->payload, "aud");

    if (jwt->iss[0] == '\0') {
        return NULL;
    }
    for (size_t i = 0; i < cfg->jwt_count; i++) {
        if (strcmp(cfg->jwt[i].issuer, jwt->iss) != 0) {
            continue;
        }
        if (aud != NULL && audience_matches(&cfg->jwt[i], aud)) {
            return &cfg->jwt[i];
        }
        if (first == NULL) {
            first = &cfg->jwt[i];
        }
    }
    return first;
}

/* A NumericDate claim: 0 absent, 1 read, -1 not a number in range. */
static int get_time(json_t *payload, const char *name, int64_t *out)
{
    json_t *v = json_object_get(payload, name);
    double d;

    if (v == NULL) {
        return 0;
    }
    if (!json_is_number(v)) {
        return -1;
    }
    d = json_number_value(v);
    if (!(d >= 0 && d < 1e15)) {
        return -1;
    }
    *out = (int64_t)d;
    return 1;
}

static enum ct_jwt_outcome check_times(const ct_jwt *jwt, const ct_jwt_issuer *issuer, int64_t now,
                                       ct_jwt_claims *claims, char *err, size_t errlen)
{
    int64_t leeway = issuer->leeway_seconds;
    int64_t exp = 0, nbf = 0, iat = 0;
    int rc;

    rc = get_time(jwt->payload, "exp", &exp);
    if (rc == 0) {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT has no exp claim");
    }
    if (rc < 0 || get_time(jwt->payload, "nbf", &nbf) < 0 ||
        get_time(jwt->payload, "iat", &iat) < 0) {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT exp, nbf or iat is not a NumericDate");
    }
    if (exp + leeway <= now) {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT expired %lld s ago (leeway %lld s)",
                    (long long)(now - exp), (long long)leeway);
    }
    if (nbf > now + leeway) {
        return fail(CT_JWT_CLAIMS, err, errlen,
                    "JWT is not valid yet (nbf in %lld s, leeway %lld s)", (long long)(nbf - now),
                    (long long)leeway);
    }
    if (iat > now + leeway) {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT was issued in the future (iat in %lld s)",
                    (long long)(iat - now));
    }
    claims->exp = exp;
    return CT_JWT_OK;
}

static enum ct_jwt_outcome check_claims(const ct_jwt *jwt, const ct_jwt_issuer *issuer, int64_t now,
                                        ct_jwt_claims *claims, char *err, size_t errlen)
{
    json_t *aud = json_object_get(jwt->payload, "aud");
    int rc;

    if (jwt->iss[0] == '\0') {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT has no iss claim");
    }
    if (strcmp(jwt->iss, issuer->issuer) != 0) {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT iss is not %s", issuer->issuer);
    }
    if (aud == NULL) {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT has no aud claim");
    }
    if (!audience_matches(issuer, aud)) {
        return fail(CT_JWT_CLAIMS, err, errlen,
                    "JWT aud holds none of the audiences configured for %s", issuer->name);
    }
    if (check_times(jwt, issuer, now, claims, err, errlen) != CT_JWT_OK) {
        return CT_JWT_CLAIMS;
    }
    rc = get_string(jwt->payload, "sub", claims->sub, CT_JWT_SUB_MAX);
    if (rc == 0 || (rc == 1 && claims->sub[0] == '\0')) {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT has no sub claim");
    }
    if (rc < 0) {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT sub is not a string of at most %d bytes",
                    CT_JWT_SUB_MAX);
    }
    if (issuer->role != CT_JWT_ROLE_END_USER) {
        return CT_JWT_OK;
    }
    rc = get_string(jwt->payload, issuer->username_claim, claims->username, CT_JWT_CLAIM_VALUE_MAX);
    if (rc == 0) {
        return fail(CT_JWT_CLAIMS, err, errlen, "JWT has no %s claim", issuer->username_claim);
    }
    /* not a string, too long: a username it is not (PERMISSION_DENIED later) */
    claims->has_username = rc == 1;
    return CT_JWT_OK;
}

static int algorithm_allowed(const ct_jwt_issuer *issuer, const char *alg)
{
    if (issuer->algorithm_count == 0) {
        return key_type_for(alg) >= 0;
    }
    for (size_t i = 0; i < issuer->algorithm_count; i++) {
        if (strcmp(issuer->algorithms[i], alg) == 0) {
            return key_type_for(alg) >= 0;
        }
    }
    return 0;
}

/* Tries the keys of the alg's type (the kid's, when the JWT names one). */
static enum ct_jwt_outcome check_signature(const ct_jwt *jwt, const ct_jwt_keyset *keys, char *err,
                                           size_t errlen)
{
    int type = key_type_for(jwt->alg);
    int candidates = 0;
    cjose_jws_t *jws;
    cjose_err e;

    jws = cjose_jws_import(jwt->token, jwt->len, &e);
    if (jws == NULL) {
        return fail(CT_JWT_MALFORMED, err, errlen, "JWT does not decode as a JWS: %s",
                    e.message != NULL ? e.message : "cjose");
    }
    for (size_t i = 0; i < keys->count; i++) {
        const key *k = &keys->keys[i];
        if ((int)k->type != type || (jwt->kid[0] != '\0' && strcmp(k->kid, jwt->kid) != 0)) {
            continue;
        }
        candidates++;
        if (cjose_jws_verify(jws, k->jwk, &e)) {
            cjose_jws_release(jws);
            return CT_JWT_OK;
        }
    }
    cjose_jws_release(jws);
    if (candidates == 0 && jwt->kid[0] != '\0') {
        return fail(CT_JWT_UNKNOWN_KID, err, errlen, "JWT kid \"%s\" is not a known %s key",
                    jwt->kid, jwt->alg);
    }
    if (candidates == 0) {
        return fail(CT_JWT_UNKNOWN_KID, err, errlen, "no %s key is known", jwt->alg);
    }
    return fail(CT_JWT_SIGNATURE, err, errlen, "JWT signature does not verify");
}

enum ct_jwt_outcome ct_jwt_verify(const ct_jwt *jwt, const ct_jwt_keyset *keys,
                                  const ct_jwt_issuer *issuer, int64_t now, ct_jwt_claims *claims,
                                  char *err, size_t errlen)
{
    enum ct_jwt_outcome rc;

    memset(claims, 0, sizeof(*claims));
    if (!algorithm_allowed(issuer, jwt->alg)) {
        return fail(CT_JWT_ALGORITHM, err, errlen, "JWT alg %s is not allowed for %s", jwt->alg,
                    issuer->name);
    }
    if (keys == NULL) {
        return fail(CT_JWT_NO_KEYS, err, errlen, "the keys of %s are not loaded yet", issuer->name);
    }
    rc = check_signature(jwt, keys, err, errlen);
    if (rc != CT_JWT_OK) {
        return rc;
    }
    return check_claims(jwt, issuer, now, claims, err, errlen);
}
