/* Unit tests for core/username.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "username.h"

static void normalises_to_lower_case(void **state)
{
    char out[CT_USERNAME_MAX + 1];
    char err[128];
    (void)state;
    assert_int_equal(ct_username_normalize("Alice_01-x.Y", 12, out, err, sizeof(err)), 0);
    assert_string_equal(out, "alice_01-x.y");
}

static void accepts_64_characters_refuses_65(void **state)
{
    char name[66];
    char out[CT_USERNAME_MAX + 1];
    char err[128];
    (void)state;
    memset(name, 'a', sizeof(name));
    assert_int_equal(ct_username_normalize(name, 64, out, err, sizeof(err)), 0);
    assert_int_equal(strlen(out), 64);
    assert_int_equal(ct_username_normalize(name, 65, out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "1..64"));
}

static void refuses_empty_and_forbidden_characters(void **state)
{
    static const char *const bad[] = {"a b", "a/b", "a@b", "a%2f", "ü", "a\nb", "a:b", "a#b"};
    char out[CT_USERNAME_MAX + 1];
    char err[128];
    (void)state;
    assert_int_equal(ct_username_normalize("", 0, out, err, sizeof(err)), -1);
    assert_int_equal(ct_username_normalize(NULL, 3, out, err, sizeof(err)), -1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ct_username_normalize(bad[i], strlen(bad[i]), out, err, sizeof(err)), -1);
    }
    /* an embedded NUL is a character like any other: refused */
    assert_int_equal(ct_username_normalize("ab\0c", 4, out, err, sizeof(err)), -1);
}

/* "." and ".." are URL path segments: as a username they would name the
 * users list or the app in the Chat REST API (issue 10, item 1) */
static void refuses_names_of_only_dots(void **state)
{
    static const char *const bad[] = {".", "..", "...", "................"};
    char out[CT_USERNAME_MAX + 1];
    char err[128];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ct_username_normalize(bad[i], strlen(bad[i]), out, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "only of dots"));
    }
    assert_int_equal(ct_username_normalize(".a", 2, out, err, sizeof(err)), 0);
    assert_int_equal(ct_username_normalize("a..", 3, out, err, sizeof(err)), 0);
    assert_string_equal(out, "a..");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(normalises_to_lower_case),
        cmocka_unit_test(accepts_64_characters_refuses_65),
        cmocka_unit_test(refuses_empty_and_forbidden_characters),
        cmocka_unit_test(refuses_names_of_only_dots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
