/* Unit tests for core/base64.c: RFC 4648 vectors and the strict decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"

static void encodes_rfc4648_vectors(void **state)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char out[16];
    (void)state;
    for (size_t i = 0; i < 7; i++) {
        size_t n = ct_base64_encode((const uint8_t *)plain[i], strlen(plain[i]), out, sizeof(out));
        assert_int_equal(n, strlen(coded[i]));
        assert_string_equal(out, coded[i]);
    }
}

static void decodes_what_it_encodes(void **state)
{
    uint8_t in[256];
    char enc[400];
    uint8_t dec[256];
    (void)state;
    for (size_t i = 0; i < sizeof(in); i++) {
        in[i] = (uint8_t)(i * 37 + 11);
    }
    for (size_t len = 1; len <= sizeof(in); len++) {
        size_t n = ct_base64_encode(in, len, enc, sizeof(enc));
        assert_int_equal(ct_base64_decode(enc, n, dec, sizeof(dec)), len);
        assert_memory_equal(in, dec, len);
    }
}

static void refuses_non_canonical_input(void **state)
{
    uint8_t out[16];
    (void)state;
    assert_int_equal(ct_base64_decode("Zg=", 3, out, sizeof(out)), (size_t)-1);  /* length */
    assert_int_equal(ct_base64_decode("Zh==", 4, out, sizeof(out)), (size_t)-1); /* pad bits */
    assert_int_equal(ct_base64_decode("Zm9=", 4, out, sizeof(out)), (size_t)-1); /* pad bits */
    assert_int_equal(ct_base64_decode("Z===", 4, out, sizeof(out)), (size_t)-1);
    assert_int_equal(ct_base64_decode("Zg==Zg==", 8, out, sizeof(out)), (size_t)-1);
    assert_int_equal(ct_base64_decode("Zm 9", 4, out, sizeof(out)), (size_t)-1);
    assert_int_equal(ct_base64_decode("Zm-_", 4, out, sizeof(out)), (size_t)-1);
    assert_int_equal(ct_base64_decode("", 0, out, sizeof(out)), (size_t)-1);
}

static void refuses_output_that_does_not_fit(void **state)
{
    uint8_t out[2];
    char small[4];
    (void)state;
    assert_int_equal(ct_base64_decode("Zm9v", 4, out, sizeof(out)), (size_t)-1);
    assert_int_equal(ct_base64_encode((const uint8_t *)"foo", 3, small, sizeof(small)), (size_t)-1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encodes_rfc4648_vectors),
        cmocka_unit_test(decodes_what_it_encodes),
        cmocka_unit_test(refuses_non_canonical_input),
        cmocka_unit_test(refuses_output_that_does_not_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
