/* Caller authentication against the configured API keys, mTLS clients and
 * JWT issuers. */
#include "auth.h"

#include "jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define API_KEY_MAX 4096

static void clear(srv_caller *caller)
{
    caller->san_type = NULL;
    caller->subject[0] = '\0';
    caller->end_user = 0;
    caller->user[0] = '\0';
    caller->user_problem[0] = '\0';
    caller->rtc_channel_prefix = NULL;
}

static int anonymous(srv_caller *caller, srv_status *status)
{
    snprintf(caller->name, sizeof(caller->name), "anonymous");
    caller->methods = CT_METHOD_ALL;
    return srv_ok(status);
}

/* Compares the key's hash with every configured hash, always all of them,
 * so that the time taken says nothing about which (if any) matched. */
static const ct_api_key *find_key(const ct_config *cfg, const char *key, size_t len)
{
    unsigned char digest[32];
    unsigned int digest_len = 0;
    const ct_api_key *found = NULL;

    if (EVP_Digest(key, len, digest, &digest_len, EVP_sha256(), NULL) != 1) {
        return NULL;
    }
    for (size_t i = 0; i < cfg->api_key_count; i++) {
        int same = CRYPTO_memcmp(digest, cfg->api_keys[i].sha256, sizeof(digest)) == 0;
        if (same && found == NULL) {
            found = &cfg->api_keys[i];
        }
    }
    OPENSSL_cleanse(digest, sizeof(digest));
    return found;
}

/* The key from "Bearer KEY" (scheme case-insensitive) or x-api-key. */
static int presented_key(const srv_credentials *cred, const char **key, size_t *len)
{
    static const char scheme[] = "Bearer ";
    const size_t scheme_len = sizeof(scheme) - 1;

    if (cred->authorization != NULL && cred->authorization_len > 0) {
        if (cred->authorization_len <= scheme_len ||
            strncasecmp(cred->authorization, scheme, scheme_len) != 0) {
            return -1;
        }
        *key = cred->authorization + scheme_len;
        *len = cred->authorization_len - scheme_len;
        return 1;
    }
    if (cred->api_key != NULL && cred->api_key_len > 0) {
        *key = cred->api_key;
        *len = cred->api_key_len;
        return 1;
    }
    return 0;
}

static int name_is(const char *name, size_t name_len, const char *want)
{
    return name_len == strlen(want) && strncasecmp(name, want, name_len) == 0;
}

void srv_credentials_add_header(srv_credentials *cred, const char *name, size_t name_len,
                                const char *value, size_t value_len)
{
    if (name_is(name, name_len, "authorization")) {
        if (cred->authorization_count++ == 0) {
            cred->authorization = value;
            cred->authorization_len = value_len;
        }
    } else if (name_is(name, name_len, "x-api-key")) {
        if (cred->api_key_count++ == 0) {
            cred->api_key = value;
            cred->api_key_len = value_len;
        }
    }
}

void srv_credentials_add_san(srv_credentials *cred, enum ct_peer_id_kind type, const char *value,
                             size_t len)
{
    cred->certificate = 1;
    if (cred->san_count >= SRV_AUTH_MAX_SANS) {
        cred->san_overflow = 1;
        return;
    }
    cred->sans[cred->san_count].type = type;
    cred->sans[cred->san_count].value = value;
    cred->sans[cred->san_count].len = len;
    cred->san_count++;
}

/* DNS names compare case-insensitively (ASCII), URIs byte for byte; both
 * over their whole length. */
static int san_equals(const srv_san *san, const char *id, size_t id_len)
{
    if (san->len != id_len) {
        return 0;
    }
    if (san->type == CT_PEER_ID_URI) {
        return memcmp(san->value, id, id_len) == 0;
    }
    for (size_t i = 0; i < id_len; i++) {
        char a = san->value[i] >= 'A' && san->value[i] <= 'Z' ? (char)(san->value[i] + 32)
                                                              : san->value[i];
        char b = id[i] >= 'A' && id[i] <= 'Z' ? (char)(id[i] + 32) : id[i];
        if (a != b) {
            return 0;
        }
    }
    return 1;
}

/* The configured client one of the certificate's SANs names, or NULL (then
 * why, in status). */
static const ct_mtls_client *find_peer(const ct_config *cfg, const srv_credentials *cred,
                                       srv_caller *caller, srv_status *status)
{
    size_t uri_sans = 0;

    if (cred->san_overflow) {
        srv_fail(status, SRV_UNAUTHENTICATED,
                 "client certificate holds more than %d URI and DNS SANs", SRV_AUTH_MAX_SANS);
        return NULL;
    }
    for (size_t i = 0; i < cred->san_count; i++) {
        if (memchr(cred->sans[i].value, '\0', cred->sans[i].len) != NULL) {
            srv_fail(status, SRV_UNAUTHENTICATED,
                     "client certificate has a %s SAN holding a NUL byte",
                     cred->sans[i].type == CT_PEER_ID_URI ? "URI" : "DNS");
            return NULL;
        }
        uri_sans += cred->sans[i].type == CT_PEER_ID_URI;
    }
    for (size_t j = 0; j < cfg->mtls_client_count; j++) {
        const char *id = cfg->mtls_clients[j].id;
        size_t id_len = strlen(id);
        enum ct_peer_id_kind kind = ct_peer_id_kind(id, id_len);

        for (size_t i = 0; i < cred->san_count; i++) {
            if (cred->sans[i].type != kind || !san_equals(&cred->sans[i], id, id_len)) {
                continue;
            }
            /* an X.509-SVID holds exactly one URI SAN, its SPIFFE ID */
            if (ct_peer_id_is_spiffe(id, id_len) && uri_sans != 1) {
                srv_fail(status, SRV_UNAUTHENTICATED,
                         "client certificate holds %zu URI SANs: an X.509-SVID holds exactly one",
                         uri_sans);
                return NULL;
            }
            caller->san_type = kind == CT_PEER_ID_URI ? "URI" : "DNS";
            return &cfg->mtls_clients[j];
        }
    }
    srv_fail(status, SRV_UNAUTHENTICATED,
             "client certificate identity is not in auth.mtls_clients (ids with a scheme match "
             "URI SANs, others DNS SANs)");
    return NULL;
}

/* The caller a verified JWT names: an end user (the username claim,
 * normalised; a claim that is no username leaves user "" and says why) or
 * a workload subject. */
static int jwt_caller(const ct_jwt_issuer *issuer, const ct_jwt_claims *claims, srv_caller *caller,
                      srv_status *status)
{
    char why[SRV_MESSAGE_MAX];

    snprintf(caller->name, sizeof(caller->name), "%s", issuer->name);
    snprintf(caller->subject, sizeof(caller->subject), "%s", claims->sub);
    if (issuer->role == CT_JWT_ROLE_WORKLOAD) {
        for (size_t i = 0; i < issuer->subject_count; i++) {
            if (strcmp(issuer->subjects[i].id, claims->sub) == 0) {
                caller->methods = issuer->subjects[i].methods;
                return srv_ok(status);
            }
        }
        return srv_fail(status, SRV_UNAUTHENTICATED,
                        "JWT sub is not one of the subjects of auth.jwt %s", issuer->name);
    }
    caller->end_user = 1;
    caller->methods = issuer->methods;
    caller->rtc_channel_prefix = issuer->rtc_channel_prefix;
    if (!claims->has_username) {
        snprintf(caller->user_problem, sizeof(caller->user_problem),
                 "the JWT's %s claim is not a string", issuer->username_claim);
    } else if (ct_username_normalize(claims->username, strlen(claims->username), caller->user, why,
                                     sizeof(why)) != 0) {
        caller->user[0] = '\0';
        snprintf(caller->user_problem, sizeof(caller->user_problem),
                 "the JWT's %s claim is not a valid Chat username: %.120s", issuer->username_claim,
                 why);
    }
    return srv_ok(status);
}

static int identify_jwt(const ct_config *cfg, srv_jwks_set *jwks, const char *token, size_t len,
                        srv_caller *caller, srv_status *status)
{
    char why[SRV_MESSAGE_MAX - 32];
    const ct_jwt_issuer *issuer;
    enum ct_jwt_outcome rc;
    ct_jwt_claims claims;
    ct_jwt jwt;

    rc = ct_jwt_parse(token, len, &jwt, why, sizeof(why));
    if (rc != CT_JWT_OK) {
        ct_jwt_release(&jwt);
        srv_jwks_count_unmatched(jwks, rc);
        return srv_fail(status, SRV_UNAUTHENTICATED, "%s", why);
    }
    issuer = ct_jwt_find_issuer(cfg, &jwt);
    if (issuer == NULL) {
        ct_jwt_release(&jwt);
        srv_jwks_count_unmatched(jwks, CT_JWT_CLAIMS);
        return srv_fail(status, SRV_UNAUTHENTICATED, "%s",
                        jwt.iss[0] != '\0' ? "JWT iss is not a configured issuer (auth.jwt)"
                                           : "JWT has no iss claim");
    }
    rc = srv_jwks_verify(jwks, &jwt, issuer, (int64_t)time(NULL), &claims, why, sizeof(why));
    ct_jwt_release(&jwt);
    if (rc != CT_JWT_OK) {
        return srv_fail(status, SRV_UNAUTHENTICATED, "%s", why);
    }
    return jwt_caller(issuer, &claims, caller, status);
}

int srv_auth_identify(const ct_config *cfg, srv_jwks_set *jwks, const srv_credentials *cred,
                      srv_caller *caller, srv_status *status)
{
    const char *key = NULL;
    size_t key_len = 0;
    int has_key = presented_key(cred, &key, &key_len);

    clear(caller);
    if (cred->authorization_count + cred->api_key_count > 1) {
        return srv_fail(status, SRV_UNAUTHENTICATED,
                        "more than one credential (%u authorization, %u x-api-key): send "
                        "exactly one",
                        cred->authorization_count, cred->api_key_count);
    }
    if (has_key < 0) {
        return srv_fail(status, SRV_UNAUTHENTICATED,
                        "authorization metadata must be 'Bearer <api key>'");
    }
    if (has_key > 0 && cfg->jwt_count > 0 && cred->authorization != NULL &&
        ct_jwt_is_jws(key, key_len)) {
        return identify_jwt(cfg, jwks, key, key_len, caller, status);
    }
    if (has_key > 0) {
        const ct_api_key *k = key_len <= API_KEY_MAX ? find_key(cfg, key, key_len) : NULL;
        if (k == NULL) {
            return srv_fail(status, SRV_UNAUTHENTICATED, "unknown API key");
        }
        snprintf(caller->name, sizeof(caller->name), "%s", k->name);
        caller->methods = k->methods;
        return srv_ok(status);
    }
    if (cred->certificate) {
        const ct_mtls_client *c = find_peer(cfg, cred, caller, status);
        if (c != NULL) {
            snprintf(caller->name, sizeof(caller->name), "%s", c->id);
            caller->methods = c->methods;
            return srv_ok(status);
        }
        if (!cfg->allow_unauthenticated) {
            return status->code;
        }
    }
    if (cfg->allow_unauthenticated) {
        return anonymous(caller, status);
    }
    return srv_fail(status, SRV_UNAUTHENTICATED,
                    "no credentials: send 'authorization: Bearer <api key>' or a client "
                    "certificate");
}
