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
#include "expect_status.h"

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
        srv_credentials_add_san(&cred, CT_PEER_ID_URI, peer, strlen(peer));
    }
    return srv_auth_identify(&cfg, NULL, &cred, caller, status);
}

/* A certificate with these SANs ({type, value, length}), no key. */
static int identify_sans(const srv_san *sans, size_t count, srv_caller *caller, srv_status *status)
{
    srv_credentials cred;
    memset(&cred, 0, sizeof(cred));
    for (size_t i = 0; i < count; i++) {
        srv_credentials_add_san(&cred, sans[i].type, sans[i].value, sans[i].len);
    }
    return srv_auth_identify(&cfg, NULL, &cred, caller, status);
}

#define BACKEND "spiffe://cluster.local/ns/chat/sa/backend"
#define SAN(type, literal)                                                                         \
    {                                                                                              \
        type, literal, sizeof(literal) - 1                                                         \
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

static void a_spiffe_id_matches_a_uri_san_only(void **state)
{
    static const srv_san dns[] = {SAN(CT_PEER_ID_DNS, BACKEND)};
    static const srv_san uri[] = {SAN(CT_PEER_ID_DNS, "backend.chat.svc"),
                                  SAN(CT_PEER_ID_URI, BACKEND)};
    srv_caller caller;
    srv_status status;
    (void)state;
    /* email and IP SANs never reach auth (server/grpc_server.c collects URI
     * and DNS SANs only); a DNS SAN spelling the SPIFFE ID is not it */
    expect_status(identify_sans(dns, 1, &caller, &status), &status, SRV_UNAUTHENTICATED,
                  "not in auth.mtls_clients");
    assert_int_equal(identify_sans(uri, 2, &caller, &status), SRV_OK);
    assert_string_equal(caller.name, BACKEND);
    assert_string_equal(caller.san_type, "URI");
}

static void a_dns_id_matches_a_dns_san_only_without_case(void **state)
{
    static const srv_san uri[] = {SAN(CT_PEER_ID_URI, "backend.chat.svc")};
    static const srv_san dns[] = {SAN(CT_PEER_ID_DNS, "Backend.Chat.SVC")};
    srv_caller caller;
    srv_status status;
    (void)state;
    snprintf(cfg.mtls_clients[1].id, sizeof(cfg.mtls_clients[1].id), "backend.chat.svc");
    cfg.mtls_clients[1].methods = CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN);
    cfg.mtls_client_count = 2;
    assert_int_equal(identify_sans(uri, 1, &caller, &status), SRV_UNAUTHENTICATED);
    assert_int_equal(identify_sans(dns, 1, &caller, &status), SRV_OK);
    assert_string_equal(caller.name, "backend.chat.svc");
    assert_string_equal(caller.san_type, "DNS");
    assert_int_equal(caller.methods, CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN));
}

static void whole_values_are_compared_and_a_nul_is_refused(void **state)
{
    static const srv_san nul[] = {SAN(CT_PEER_ID_URI, BACKEND "\0.attacker.example")};
    static const srv_san longer[] = {SAN(CT_PEER_ID_URI, BACKEND "x")};
    static const srv_san shorter[] = {{CT_PEER_ID_URI, BACKEND, sizeof(BACKEND) - 2}};
    static const srv_san dns_nul[] = {SAN(CT_PEER_ID_URI, BACKEND), SAN(CT_PEER_ID_DNS, "a\0b")};
    srv_caller caller;
    srv_status status;
    (void)state;
    expect_status(identify_sans(nul, 1, &caller, &status), &status, SRV_UNAUTHENTICATED,
                  "URI SAN holding a NUL byte");
    expect_status(identify_sans(dns_nul, 2, &caller, &status), &status, SRV_UNAUTHENTICATED,
                  "DNS SAN holding a NUL byte");
    assert_int_equal(identify_sans(longer, 1, &caller, &status), SRV_UNAUTHENTICATED);
    assert_int_equal(identify_sans(shorter, 1, &caller, &status), SRV_UNAUTHENTICATED);
}

static void a_spiffe_id_needs_exactly_one_uri_san(void **state)
{
    static const srv_san two[] = {SAN(CT_PEER_ID_URI, BACKEND),
                                  SAN(CT_PEER_ID_URI, "https://example.com/other")};
    srv_credentials cred;
    srv_caller caller;
    srv_status status;
    (void)state;
    expect_status(identify_sans(two, 2, &caller, &status), &status, SRV_UNAUTHENTICATED,
                  "holds 2 URI SANs");
    /* more SANs than are looked at: refused, not judged on the first ones */
    memset(&cred, 0, sizeof(cred));
    srv_credentials_add_san(&cred, CT_PEER_ID_URI, BACKEND, strlen(BACKEND));
    for (int i = 0; i < SRV_AUTH_MAX_SANS; i++) {
        srv_credentials_add_san(&cred, CT_PEER_ID_DNS, "x.example", 9);
    }
    expect_status(srv_auth_identify(&cfg, NULL, &cred, &caller, &status), &status,
                  SRV_UNAUTHENTICATED, "more than");
}

/* two authorization headers, or authorization and x-api-key, on either
 * transport: whichever copy a proxy or an authorizer read, ours may differ */
static void more_than_one_credential_is_unauthenticated(void **state)
{
    static const char *const pairs[][4] = {
        {"authorization", "Bearer admin-secret", "Authorization", "Bearer backend-secret"},
        {"Authorization", "Bearer admin-secret", "X-Api-Key", "admin-secret"},
        {"x-api-key", "backend-secret", "X-API-KEY", "backend-secret"},
        {"authorization", "", "x-api-key", "admin-secret"},
    };
    srv_credentials cred;
    srv_caller caller;
    srv_status status;
    (void)state;
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        memset(&cred, 0, sizeof(cred));
        for (size_t j = 0; j < 4; j += 2) {
            srv_credentials_add_header(&cred, pairs[i][j], strlen(pairs[i][j]), pairs[i][j + 1],
                                       strlen(pairs[i][j + 1]));
        }
        expect_status(srv_auth_identify(&cfg, NULL, &cred, &caller, &status), &status,
                      SRV_UNAUTHENTICATED, "more than one credential");
    }
    /* one of each name is counted whatever the case; others are ignored */
    memset(&cred, 0, sizeof(cred));
    srv_credentials_add_header(&cred, "AUTHORIZATION", 13, "Bearer admin-secret", 19);
    srv_credentials_add_header(&cred, "x-api-keys", 10, "backend-secret", 14);
    srv_credentials_add_header(&cred, "x-authorization", 15, "Bearer backend-secret", 21);
    assert_int_equal(srv_auth_identify(&cfg, NULL, &cred, &caller, &status), SRV_OK);
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
        cmocka_unit_test_setup(a_spiffe_id_matches_a_uri_san_only, setup),
        cmocka_unit_test_setup(a_dns_id_matches_a_dns_san_only_without_case, setup),
        cmocka_unit_test_setup(whole_values_are_compared_and_a_nul_is_refused, setup),
        cmocka_unit_test_setup(a_spiffe_id_needs_exactly_one_uri_san, setup),
        cmocka_unit_test_setup(more_than_one_credential_is_unauthenticated, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
