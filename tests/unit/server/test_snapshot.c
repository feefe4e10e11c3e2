/* Unit tests for server/snapshot.c: a snapshot copies and hashes its
 * config, reads and checks the TLS files, lives while a call holds it after
 * a swap, and readers racing swaps never see a mix of two configs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>

#include "snapshot.h"

static char tmpdir[64];
static char err[1024];

static void config_with_ttl(ct_config *cfg, uint32_t ttl)
{
    ct_config_defaults(cfg);
    cfg->default_ttl_seconds = ttl;
    cfg->max_ttl_seconds = 2 * ttl;
}

/* A self-signed P-256 certificate and its key, PEM, at tmpdir/NAME.crt and
 * tmpdir/NAME.key. */
static void make_pair(const char *name, char *cert_path, char *key_path, size_t len)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f;

    assert_non_null(key);
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    snprintf(cert_path, len, "%s/%s.crt", tmpdir, name);
    snprintf(key_path, len, "%s/%s.key", tmpdir, name);
    f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void hashes_the_effective_config(void **state)
{
    static ct_config a, b;
    srv_snapshot *one, *same, *other;
    (void)state;
    config_with_ttl(&a, 60);
    config_with_ttl(&b, 60);
    one = srv_snapshot_create(&a, err, sizeof(err));
    same = srv_snapshot_create(&b, err, sizeof(err));
    snprintf(b.app_certificate, sizeof(b.app_certificate), "%s",
             "ffeeddccbbaa99887766554433221100");
    other = srv_snapshot_create(&b, err, sizeof(err));
    assert_non_null(one);
    assert_non_null(same);
    assert_non_null(other);
    assert_int_equal(strlen(one->sha256), 64);
    assert_string_equal(one->sha256, same->sha256);
    /* a secret changes the hash, and the hash is all that shows of it */
    assert_string_not_equal(one->sha256, other->sha256);
    assert_null(one->tls_cert); /* tls off */
    srv_snapshot_release(one);
    srv_snapshot_release(same);
    srv_snapshot_release(other);
}

static void reads_and_checks_the_tls_files(void **state)
{
    static ct_config cfg;
    char cert[256], key[256], cert2[256], key2[256];
    srv_snapshot *s, *renewed;
    (void)state;
    make_pair("one", cert, key, sizeof(cert));
    make_pair("two", cert2, key2, sizeof(cert2));
    config_with_ttl(&cfg, 60);
    snprintf(cfg.tls_cert_file, sizeof(cfg.tls_cert_file), "%s", cert);
    snprintf(cfg.tls_key_file, sizeof(cfg.tls_key_file), "%s", key);
    s = srv_snapshot_create(&cfg, err, sizeof(err));
    assert_non_null(s);
    assert_non_null(strstr(s->tls_cert, "BEGIN CERTIFICATE"));
    assert_null(s->tls_client_ca);

    /* another certificate: another TLS hash (new connections get it) */
    snprintf(cfg.tls_cert_file, sizeof(cfg.tls_cert_file), "%s", cert2);
    snprintf(cfg.tls_key_file, sizeof(cfg.tls_key_file), "%s", key2);
    snprintf(cfg.tls_client_ca_file, sizeof(cfg.tls_client_ca_file), "%s", cert);
    renewed = srv_snapshot_create(&cfg, err, sizeof(err));
    assert_non_null(renewed);
    assert_non_null(renewed->tls_client_ca);
    assert_memory_not_equal(s->tls_sha256, renewed->tls_sha256, 32);
    srv_snapshot_release(s);
    srv_snapshot_release(renewed);

    /* a key that is not the certificate's, a missing file, a CA that is none */
    snprintf(cfg.tls_key_file, sizeof(cfg.tls_key_file), "%s", key);
    assert_null(srv_snapshot_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "is not the key of the certificate"));
    snprintf(cfg.tls_key_file, sizeof(cfg.tls_key_file), "%s/none.key", tmpdir);
    assert_null(srv_snapshot_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "tls.key_file: cannot open"));
    snprintf(cfg.tls_key_file, sizeof(cfg.tls_key_file), "%s", key2);
    snprintf(cfg.tls_client_ca_file, sizeof(cfg.tls_client_ca_file), "%s", key2);
    assert_null(srv_snapshot_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "tls.client_ca_file:"));
    /* never the key in a message */
    assert_null(strstr(err, "PRIVATE KEY"));
}

/* A call keeps the snapshot it entered with across a swap; the next call
 * gets the new one; without a store the context's own config is used. */
static void a_call_keeps_its_snapshot_across_a_swap(void **state)
{
    static ct_config first, second;
    srv_context base = {.config = &first};
    srv_context call, later;
    srv_snapshot *held;
    srv_snapshots *store;
    (void)state;
    config_with_ttl(&first, 60);
    config_with_ttl(&second, 90);
    assert_null(srv_snapshot_enter(&base, &call));
    assert_ptr_equal(call.config, &first);

    store = srv_snapshots_create(srv_snapshot_create(&first, err, sizeof(err)));
    assert_non_null(store);
    base.snapshots = store;
    held = srv_snapshot_enter(&base, &call);
    assert_non_null(held);
    assert_int_equal(call.config->default_ttl_seconds, 60);
    srv_snapshots_swap(store, srv_snapshot_create(&second, err, sizeof(err)));
    /* still readable (ASan: not freed) and unchanged */
    assert_int_equal(call.config->default_ttl_seconds, 60);
    srv_snapshot_release(srv_snapshot_enter(&base, &later));
    assert_int_equal(later.config->default_ttl_seconds, 90);
    srv_snapshot_release(held);
    srv_snapshots_destroy(store);
}

/* Readers on four threads while the main thread swaps 500 times: each
 * snapshot's max is twice its default, so a mix would show. TSan checks
 * the swaps and the last releases. */
static srv_snapshots *race_store;
static atomic_int race_over;

static void *reader(void *arg)
{
    srv_context base = {.snapshots = race_store};
    long bad = 0;
    (void)arg;
    while (!atomic_load(&race_over)) {
        srv_context call;
        srv_snapshot *s = srv_snapshot_enter(&base, &call);
        if (call.config->max_ttl_seconds != 2 * call.config->default_ttl_seconds) {
            bad++;
        }
        srv_snapshot_release(s);
    }
    return (void *)bad;
}

static void readers_never_see_a_mix(void **state)
{
    static ct_config cfg;
    pthread_t threads[4];
    (void)state;
    config_with_ttl(&cfg, 1);
    race_store = srv_snapshots_create(srv_snapshot_create(&cfg, err, sizeof(err)));
    assert_non_null(race_store);
    atomic_store(&race_over, 0);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, reader, NULL), 0);
    }
    for (uint32_t n = 2; n < 502; n++) {
        config_with_ttl(&cfg, n);
        srv_snapshots_swap(race_store, srv_snapshot_create(&cfg, err, sizeof(err)));
    }
    atomic_store(&race_over, 1);
    for (size_t i = 0; i < 4; i++) {
        void *bad;
        pthread_join(threads[i], &bad);
        assert_int_equal((long)bad, 0);
    }
    srv_snapshots_destroy(race_store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hashes_the_effective_config),
        cmocka_unit_test(reads_and_checks_the_tls_files),
        cmocka_unit_test(a_call_keeps_its_snapshot_across_a_swap),
        cmocka_unit_test(readers_never_see_a_mix),
    };
    char cmd[128];
    int rc;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ct_snapshot_test.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return rc;
}
