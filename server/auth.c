/* Caller authentication against the configured API keys and mTLS clients. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define API_KEY_MAX 4096

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

static const ct_mtls_client *find_peer(const ct_config *cfg, const srv_credentials *cred)
{
    for (size_t i = 0; i < cred->peer_id_count; i++) {
        for (size_t j = 0; j < cfg->mtls_client_count; j++) {
            if (strcmp(cred->peer_ids[i], cfg->mtls_clients[j].id) == 0) {
                return &cfg->mtls_clients[j];
            }
        }
    }
    return NULL;
}

int srv_auth_identify(const ct_config *cfg, const srv_credentials *cred, srv_caller *caller,
                      srv_status *status)
{
    const char *key = NULL;
    size_t key_len = 0;
    int has_key = presented_key(cred, &key, &key_len);

    if (has_key < 0) {
        return srv_fail(status, SRV_UNAUTHENTICATED,
                        "authorization metadata must be 'Bearer <api key>'");
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
    if (cred->peer_id_count > 0) {
        const ct_mtls_client *c = find_peer(cfg, cred);
        if (c != NULL) {
            snprintf(caller->name, sizeof(caller->name), "%s", c->id);
            caller->methods = c->methods;
            return srv_ok(status);
        }
        if (!cfg->allow_unauthenticated) {
            return srv_fail(status, SRV_UNAUTHENTICATED,
                            "client certificate identity is not in auth.mtls_clients");
        }
    }
    if (cfg->allow_unauthenticated) {
        return anonymous(caller, status);
    }
    return srv_fail(status, SRV_UNAUTHENTICATED,
                    "no credentials: send 'authorization: Bearer <api key>' or a client "
                    "certificate");
}
