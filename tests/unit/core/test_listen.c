/* Unit tests for core/listen.c: listen addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "listen.h"

static void tells_local_listeners_from_public_ones(void **state)
{
    static const char *const local[] = {"unix:/run/x.sock", "127.0.0.1:1", "127.8.9.10:1",
                                        "localhost:1", "[::1]:1"};
    static const char *const public[] = {"0.0.0.0:1", "[::]:1", "10.0.0.1:1",
                                         "localhost.evil.example:1", "128.0.0.1:1"};
    (void)state;
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        assert_true(ct_listen_is_local(local[i]));
        assert_false(ct_listen_is_local(public[i]));
    }
    assert_false(ct_listen_is_local(NULL));
}

static void parses_each_address_form(void **state)
{
    ct_listen_addr a;
    const char *why = NULL;
    char text[64];
    (void)state;
    assert_int_equal(ct_listen_parse("[::1]:0", &a, &why), 0);
    assert_true(a.is_v6);
    assert_string_equal(a.host, "::1");
    ct_listen_format(&a, 50051, text, sizeof(text));
    assert_string_equal(text, "[::1]:50051");
    assert_int_equal(ct_listen_parse("unix:/run/x.sock", &a, &why), 0);
    assert_true(a.is_unix);
    assert_string_equal(a.path, "/run/x.sock");
    assert_int_equal(ct_listen_parse("unix:relative", &a, &why), -1);
    assert_int_equal(ct_listen_parse("host:65536", &a, &why), -1);
    assert_string_equal(why, "the port must be a decimal number 0..65535");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tells_local_listeners_from_public_ones),
        cmocka_unit_test(parses_each_address_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
