/* Unit tests for server/jwks.c's freshness rules: the max-age a JWKS
 * response's Cache-Control header gives, its clamp to [60 s, 24 h] (300 s
 * without one), and keys served stale for 24 h, not longer. The fetching
 * itself runs against the test identity provider in integration.jwt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "jwks.h"

static long max_age_of(const char *line)
{
    return srv_jwks_max_age(line, strlen(line));
}

static void reads_max_age_from_cache_control_only(void **state)
{
    (void)state;
    assert_int_equal(max_age_of("Cache-Control: max-age=600\r\n"), 600);
    assert_int_equal(max_age_of("cache-control: public, MAX-AGE=90, must-revalidate\r\n"), 90);
    assert_int_equal(max_age_of("Cache-Control: max-age=0\r\n"), 0);
    assert_int_equal(max_age_of("Cache-Control: no-cache\r\n"), -1);
    assert_int_equal(max_age_of("Cache-Control: max-age=\r\n"), -1);
    assert_int_equal(max_age_of("Cache-Control: max-age=-5\r\n"), -1);
    assert_int_equal(max_age_of("Expires: max-age=600\r\n"), -1);
    assert_int_equal(max_age_of("X-Cache-Control: max-age=600\r\n"), -1);
}

static void clamps_the_cache_time_to_a_minute_and_a_day(void **state)
{
    (void)state;
    assert_int_equal(SRV_JWKS_MIN_MAX_AGE, 60);
    assert_int_equal(SRV_JWKS_MAX_MAX_AGE, 86400);
    assert_int_equal(srv_jwks_cache_seconds(-1), 300); /* none given */
    assert_int_equal(srv_jwks_cache_seconds(0), 60);
    assert_int_equal(srv_jwks_cache_seconds(1), 60);
    assert_int_equal(srv_jwks_cache_seconds(60), 60);
    assert_int_equal(srv_jwks_cache_seconds(3600), 3600);
    assert_int_equal(srv_jwks_cache_seconds(86400), 86400);
    assert_int_equal(srv_jwks_cache_seconds(86401), 86400);
    assert_int_equal(srv_jwks_cache_seconds(31536000), 86400);
}

static void serves_stale_keys_for_a_day_then_drops_them(void **state)
{
    const int64_t loaded = 1700000000;
    (void)state;
    assert_int_equal(SRV_JWKS_STALE_FOR, 86400);
    assert_false(srv_jwks_stale(0, loaded)); /* nothing loaded: nothing to drop */
    assert_false(srv_jwks_stale(loaded, loaded));
    assert_false(srv_jwks_stale(loaded, loaded + 86400));
    assert_true(srv_jwks_stale(loaded, loaded + 86401));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_max_age_from_cache_control_only),
        cmocka_unit_test(clamps_the_cache_time_to_a_minute_and_a_day),
        cmocka_unit_test(serves_stale_keys_for_a_day_then_drops_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
