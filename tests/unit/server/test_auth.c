/* Unit tests for server/auth.c: API keys, client certificate identities,
 * and unauthenticated callers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "auth.h"

static ct_config cfg;

static void add_key(const char *name, const char *key, unsigned methods)
{
    ct_api_key *k = &cfg.api_keys[cfg.api_key_count++];
    unsigned int len = 0;
    snprintf(k->name, sizeof(k->name), "%s", name);
    EVP_Digest(key, strlen(key), k->sha256, &len, EVP_sha256(), NULL);
    k->methods = methods;
}

static int setup(void **state)
{
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    add_key("backend", "backend-secret",
            CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN) | CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN));
    add_key("admin", "admin-secret", CT_METHOD_ALL);
    snprintf(cfg.mtls_clients[0].id, sizeof(cfg.mtls_clients[0].id), "%s",
             "spiffe://cluster.local/ns/chat/sa/backend");
    cfg.mtls_clients[0].methods = CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN);
    cfg.mtls_client_count = 1;
    return 0;
}

static int identify(const char *authorization, const char *api_key, const char *peer,
                    srv_caller *caller, srv_status *status)
{
    srv_credentials cred;
    memset(&cred, 0, sizeof(cred));
    if (authorization != NULL) {
        cred.authorization = authorization;
        cred.authorization_len = strlen(authorization);
    }
    if (api_key != NULL) {
        cred.api_key = api_key;
        cred.api_key_len = strlen(api_key);
    }
    if (peer != NULL) {
        cred.peer_ids[0] = peer;
        cred.peer_id_count = 1;
    }
    return srv_auth_identify(&cfg, &cred, caller, status);
}

static void bearer_key_identifies_its_caller_and_methods(void **state)
{
    srv_caller caller;
    srv_status status;
    (void)state;
    assert_int_equal(identify("Bearer backend-secret", NULL, NULL, &caller, &status), SRV_OK);
    assert_string_equal(caller.name, "backend");
    assert_int_equal(caller.methods, CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN) |
                                         CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN));
    assert_int_equal(identify("bearer admin-secret", NULL, NULL, &caller, &status), SRV_OK);
    assert_string_equal(caller.name, "admin");
}

static void x_api_key_works_like_bearer(void **state)
{
    srv_caller caller;
    srv_status status;
    (void)state;
    assert_int_equal(identify(NULL, "admin-secret", NULL, &caller, &status), SRV_OK);
    assert_int_equal(caller.methods, CT_METHOD_ALL);
}

static void unknown_or_malformed_keys_are_unauthenticated(void **state)
{
    srv_caller caller;
    srv_status status;
    (void)state;
    assert_int_equal(identify("Bearer nope", NULL, NULL, &caller, &status), SRV_UNAUTHENTICATED);
    assert_int_equal(identify("Basic YWRtaW4=", NULL, NULL, &caller, &status), SRV_UNAUTHENTICATED);
    assert_int_equal(identify("Bearer ", NULL, NULL, &caller, &status), SRV_UNAUTHENTICATED);
    assert_int_equal(identify(NULL, "backend-secre", NULL, &caller, &status), SRV_UNAUTHENTICATED);
    /* the message never echoes what was sent */
    assert_null(strstr(status.message, "backend-secre"));
}

static void no_credentials_are_unauthenticated_unless_allowed(void **state)
{
    srv_caller caller;
    srv_status status;
    (void)state;
    assert_int_equal(identify(NULL, NULL, NULL, &caller, &status), SRV_UNAUTHENTICATED);
    cfg.allow_unauthenticated = 1;
    assert_int_equal(identify(NULL, NULL, NULL, &caller, &status), SRV_OK);
    assert_string_equal(caller.name, "anonymous");
    assert_int_equal(caller.methods, CT_METHOD_ALL);
    /* a wrong key is still refused: it is a mistake, not an anonymous call */
    assert_int_equal(identify("Bearer nope", NULL, NULL, &caller, &status), SRV_UNAUTHENTICATED);
}

static void client_certificate_identity_maps_to_its_methods(void **state)
{
    srv_caller caller;
    srv_status status;
    (void)state;
    assert_int_equal(
        identify(NULL, NULL, "spiffe://cluster.local/ns/chat/sa/backend", &caller, &status),
        SRV_OK);
    assert_string_equal(caller.name, "spiffe://cluster.local/ns/chat/sa/backend");
    assert_int_equal(caller.methods, CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN));
    assert_int_equal(
        identify(NULL, NULL, "spiffe://cluster.local/ns/chat/sa/other", &caller, &status),
        SRV_UNAUTHENTICATED);
}

static void key_takes_precedence_over_certificate(void **state)
{
    srv_caller caller;
    srv_status status;
    (void)state;
    assert_int_equal(identify("Bearer admin-secret", NULL,
                              "spiffe://cluster.local/ns/chat/sa/backend", &caller, &status),
                     SRV_OK);
    assert_string_equal(caller.name, "admin");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(bearer_key_identifies_its_caller_and_methods, setup),
        cmocka_unit_test_setup(x_api_key_works_like_bearer, setup),
        cmocka_unit_test_setup(unknown_or_malformed_keys_are_unauthenticated, setup),
        cmocka_unit_test_setup(no_credentials_are_unauthenticated_unless_allowed, setup),
        cmocka_unit_test_setup(client_certificate_identity_maps_to_its_methods, setup),
        cmocka_unit_test_setup(key_takes_precedence_over_certificate, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
