/* Unit tests for core/peer_id.c: which SAN type an mTLS id names, the
 * SPIFFE ID rules, and the checks on configured ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "peer_id.h"

#define KIND(s) ct_peer_id_kind(s, strlen(s))
#define SPIFFE(s) ct_spiffe_id_valid(s, strlen(s))

static void ids_with_a_scheme_name_uri_sans_others_dns_sans(void **state)
{
    (void)state;
    assert_int_equal(KIND("spiffe://cluster.local/ns/chat/sa/backend"), CT_PEER_ID_URI);
    assert_int_equal(KIND("https://backend.example.com/"), CT_PEER_ID_URI);
    assert_int_equal(KIND("urn:example:backend"), CT_PEER_ID_URI);
    assert_int_equal(KIND("backend.chat.svc"), CT_PEER_ID_DNS);
    assert_int_equal(KIND("1ab:x"), CT_PEER_ID_DNS); /* a scheme starts with a letter */
    assert_int_equal(KIND(""), CT_PEER_ID_DNS);
}

static void spiffe_ids_follow_the_standard(void **state)
{
    static const char *const good[] = {
        "spiffe://cluster.local/ns/chat/sa/backend",
        "spiffe://example.org",
        "spiffe://a_b-c.9/Path.With_Mixed-Case",
    };
    static const char *const bad[] = {
        "spiffe://",                   /* no trust domain */
        "spiffe:///path",              /* empty trust domain */
        "SPIFFE://example.org/a",      /* the scheme is lower case */
        "spiffe://Example.org/a",      /* so is the trust domain */
        "spiffe://example.org:8080/a", /* no port */
        "spiffe://user@example.org/a", /* no user info */
        "spiffe://example.org/",       /* no trailing slash */
        "spiffe://example.org//a",     /* no empty segment */
        "spiffe://example.org/a/./b",  /* no dot segments */
        "spiffe://example.org/a/..",   /* no dot segments */
        "spiffe://example.org/a%2fb",  /* no percent-encoding */
        "spiffe://example.org/a?x=1",  /* no query */
        "spiffe://example.org/a#f",    /* no fragment */
        "https://example.org/a",       /* another scheme */
    };
    char long_id[2100];
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(SPIFFE(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (SPIFFE(bad[i])) {
            fail_msg("accepted %s", bad[i]);
        }
    }
    /* a NUL cuts nothing: the whole length is checked */
    assert_false(ct_spiffe_id_valid("spiffe://example.org/a\0b", 24));
    /* 2048 bytes at most, trust domain 255 at most */
    memcpy(long_id, "spiffe://example.org/", 21);
    memset(long_id + 21, 'a', sizeof(long_id) - 21);
    assert_true(ct_spiffe_id_valid(long_id, 2048));
    assert_false(ct_spiffe_id_valid(long_id, 2049));
    memset(long_id + 9, 'a', 256);
    long_id[9 + 256] = '/';
    assert_false(ct_spiffe_id_valid(long_id, 9 + 256 + 2));
    assert_true(ct_spiffe_id_valid(long_id, 9 + 255));
}

static void configured_ids_are_checked(void **state)
{
    static const char *const good[] = {"spiffe://cluster.local/ns/chat/sa/backend",
                                       "https://backend.example.com/client", "backend.chat.svc",
                                       "backend"};
    static const char *const bad[] = {"spiffe://cluster.local/ns/chat/sa/backend/",
                                      "backend@example.com",
                                      "10.0.0.1",
                                      "::1",
                                      "fe80::1",
                                      "back end",
                                      "https://a b",
                                      "bad..dns",
                                      ".leading"};
    char err[256];
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (ct_peer_id_check(good[i], err, sizeof(err)) != 0) {
            fail_msg("refused %s: %s", good[i], err);
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ct_peer_id_check(bad[i], err, sizeof(err)) == 0) {
            fail_msg("accepted %s", bad[i]);
        }
    }
    assert_int_equal(ct_peer_id_check("ops@example.com", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "email SANs never identify a client"));
    assert_int_equal(ct_peer_id_check("192.168.1.3", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "IP SANs never identify a client"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_with_a_scheme_name_uri_sans_others_dns_sans),
        cmocka_unit_test(spiffe_ids_follow_the_standard),
        cmocka_unit_test(configured_ids_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
