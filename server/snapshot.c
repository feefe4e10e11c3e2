/* Config snapshots: creation with the derived objects, reference counting,
 * and the current-snapshot pointer that reloads swap. A new derived object
 * (one built from the config and used by calls, like the TLS files) is one
 * row in `derived`: its create runs after the config is validated and may
 * refuse the snapshot; its destroy runs when the last reference goes. */
#include "snapshot.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

#define PEM_MAX (256 * 1024)

struct srv_snapshots {
    pthread_mutex_t lock;
    srv_snapshot *current;
};

/* ---- derived: the TLS files ---- */

static char *read_pem(const char *path, const char *key, char *err, size_t errlen)
{
    char *pem = malloc(PEM_MAX);
    char why[512];

    if (pem == NULL) {
        snprintf(err, errlen, "%s: out of memory", key);
        return NULL;
    }
    if (ct_secret_read_file(path, pem, PEM_MAX, why, sizeof(why)) != 0) {
        free(pem);
        snprintf(err, errlen, "%s: %s", key, why);
        return NULL;
    }
    return pem;
}

/* The key must be the certificate's, and the CA file must hold at least
 * one certificate: checked here so that a bad pair is refused by the
 * reload, not by every new connection's handshake. */
static int check_tls(const srv_snapshot *s, char *err, size_t errlen)
{
    BIO *cert_bio = BIO_new_mem_buf(s->tls_cert, -1);
    BIO *key_bio = BIO_new_mem_buf(s->tls_key, -1);
    X509 *cert = cert_bio != NULL ? PEM_read_bio_X509(cert_bio, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = key_bio != NULL ? PEM_read_bio_PrivateKey(key_bio, NULL, NULL, NULL) : NULL;
    int rc = -1;

    if (cert == NULL) {
        snprintf(err, errlen, "tls.cert_file: %s holds no PEM certificate",
                 s->config.tls_cert_file);
    } else if (key == NULL) {
        snprintf(err, errlen, "tls.key_file: %s holds no PEM private key", s->config.tls_key_file);
    } else if (X509_check_private_key(cert, key) != 1) {
        snprintf(err, errlen, "tls.key_file: %s is not the key of the certificate in %s",
                 s->config.tls_key_file, s->config.tls_cert_file);
    } else {
        rc = 0;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cert_bio);
    BIO_free(key_bio);
    if (rc == 0 && s->tls_client_ca != NULL) {
        BIO *ca_bio = BIO_new_mem_buf(s->tls_client_ca, -1);
        X509 *ca = ca_bio != NULL ? PEM_read_bio_X509(ca_bio, NULL, NULL, NULL) : NULL;
        if (ca == NULL) {
            snprintf(err, errlen, "tls.client_ca_file: %s holds no PEM certificate",
                     s->config.tls_client_ca_file);
            rc = -1;
        }
        X509_free(ca);
        BIO_free(ca_bio);
    }
    return rc;
}

static void free_secret(char *p)
{
    if (p != NULL) {
        ct_secret_wipe(p, strlen(p));
        free(p);
    }
}

static void tls_destroy(srv_snapshot *s)
{
    free_secret(s->tls_cert);
    free_secret(s->tls_key);
    free_secret(s->tls_client_ca);
    s->tls_cert = s->tls_key = s->tls_client_ca = NULL;
}

static int tls_create(srv_snapshot *s, char *err, size_t errlen)
{
    const ct_config *cfg = &s->config;
    EVP_MD_CTX *md;
    int ok;

    if (cfg->tls_cert_file[0] == '\0') {
        return 0;
    }
    s->tls_cert = read_pem(cfg->tls_cert_file, "tls.cert_file", err, errlen);
    s->tls_key =
        s->tls_cert != NULL ? read_pem(cfg->tls_key_file, "tls.key_file", err, errlen) : NULL;
    if (s->tls_key != NULL && cfg->tls_client_ca_file[0] != '\0') {
        s->tls_client_ca = read_pem(cfg->tls_client_ca_file, "tls.client_ca_file", err, errlen);
        if (s->tls_client_ca == NULL) {
            return -1;
        }
    }
    if (s->tls_key == NULL || check_tls(s, err, errlen) != 0) {
        return -1;
    }
    md = EVP_MD_CTX_new();
    ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(md, s->tls_cert, strlen(s->tls_cert) + 1) == 1 &&
         EVP_DigestUpdate(md, s->tls_key, strlen(s->tls_key) + 1) == 1 &&
         (s->tls_client_ca == NULL ||
          EVP_DigestUpdate(md, s->tls_client_ca, strlen(s->tls_client_ca) + 1) == 1) &&
         EVP_DigestFinal_ex(md, s->tls_sha256, NULL) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) {
        snprintf(err, errlen, "tls: cannot hash the files (OpenSSL SHA-256 failed)");
        return -1;
    }
    return 0;
}

/* ---- derived: the JWT issuers' key sets ---- */

static int jwks_create(srv_snapshot *s, char *err, size_t errlen)
{
    s->jwks = srv_jwks_set_create(&s->config, err, errlen);
    return s->jwks != NULL ? 0 : -1;
}

static void jwks_destroy(srv_snapshot *s)
{
    srv_jwks_set_destroy(s->jwks);
    s->jwks = NULL;
}

/* The derived objects, created in this order and destroyed in reverse.
 * Those that work on their own (threads, fetches: started) come last and
 * are made only by srv_snapshot_start, once the snapshot is to be used, so
 * that a reload that finds nothing changed starts nothing. */
static const struct derived {
    int (*create)(srv_snapshot *s, char *err, size_t errlen);
    void (*destroy)(srv_snapshot *s);
    int started;
} derived[] = {
    {tls_create, tls_destroy, 0},
    {jwks_create, jwks_destroy, 1},
};
#define DERIVED_COUNT (sizeof(derived) / sizeof(derived[0]))

/* ---- snapshots ---- */

static void destroy(srv_snapshot *s)
{
    while (s->derived_made > 0) {
        derived[--s->derived_made].destroy(s);
    }
    ct_config_wipe(&s->config);
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

/* The config's bytes (the loader zeroes the struct first, so equal configs
 * are equal bytes) and the derived files' hash. */
static int hash_snapshot(srv_snapshot *s)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t digest[32];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, &s->config, sizeof(s->config)) == 1 &&
             EVP_DigestUpdate(md, s->tls_sha256, sizeof(s->tls_sha256)) == 1 &&
             EVP_DigestFinal_ex(md, digest, NULL) == 1;

    EVP_MD_CTX_free(md);
    for (size_t i = 0; ok && i < sizeof(digest); i++) {
        s->sha256[2 * i] = hex[digest[i] >> 4];
        s->sha256[2 * i + 1] = hex[digest[i] & 15];
    }
    s->sha256[64] = '\0';
    return ok ? 0 : -1;
}

/* Makes the derived objects of one kind (started or not) that are not made
 * yet; on failure destroys s (a failed create may have made part of its
 * object) and returns -1. */
static int make_derived(srv_snapshot *s, int started, char *err, size_t errlen)
{
    while (s->derived_made < DERIVED_COUNT && derived[s->derived_made].started == started) {
        if (derived[s->derived_made++].create(s, err, errlen) != 0) {
            destroy(s);
            return -1;
        }
    }
    return 0;
}

srv_snapshot *srv_snapshot_create(const ct_config *cfg, char *err, size_t errlen)
{
    srv_snapshot *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(&s->config, cfg, sizeof(s->config)); /* bytes, padding too: they are hashed */
    atomic_init(&s->refs, 1);
    if (make_derived(s, 0, err, errlen) != 0) {
        return NULL;
    }
    if (hash_snapshot(s) != 0) {
        snprintf(err, errlen, "cannot hash the config (OpenSSL SHA-256 failed)");
        destroy(s);
        return NULL;
    }
    return s;
}

int srv_snapshot_start(srv_snapshot *s, char *err, size_t errlen)
{
    return make_derived(s, 1, err, errlen);
}

srv_snapshot *srv_snapshot_ref(srv_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void srv_snapshot_release(srv_snapshot *s)
{
    /* acq_rel: the last releaser sees every other holder's reads done */
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        destroy(s);
    }
}

srv_snapshots *srv_snapshots_create(srv_snapshot *first)
{
    srv_snapshots *store = calloc(1, sizeof(*store));

    if (store == NULL) {
        return NULL;
    }
    pthread_mutex_init(&store->lock, NULL);
    store->current = first;
    return store;
}

void srv_snapshots_destroy(srv_snapshots *store)
{
    if (store == NULL) {
        return;
    }
    srv_snapshot_release(store->current);
    pthread_mutex_destroy(&store->lock);
    free(store);
}

srv_snapshot *srv_snapshots_acquire(srv_snapshots *store)
{
    srv_snapshot *s;

    pthread_mutex_lock(&store->lock);
    s = srv_snapshot_ref(store->current);
    pthread_mutex_unlock(&store->lock);
    return s;
}

void srv_snapshots_swap(srv_snapshots *store, srv_snapshot *next)
{
    srv_snapshot *previous;

    pthread_mutex_lock(&store->lock);
    previous = store->current;
    store->current = next;
    pthread_mutex_unlock(&store->lock);
    srv_snapshot_release(previous);
}

srv_snapshot *srv_snapshot_enter(const srv_context *base, srv_context *call)
{
    srv_snapshot *s = base->snapshots != NULL ? srv_snapshots_acquire(base->snapshots) : NULL;

    *call = *base;
    if (s != NULL) {
        call->config = &s->config;
        call->jwks = s->jwks;
    }
    return s;
}
