/* Unit tests for core/method.c: the one table of method names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "method.h"

static void maps_method_names_both_ways(void **state)
{
    /* the names of the proto's rpcs, as the config and the logs spell them */
    static const struct {
        const char *name;
        enum ct_method method;
    } names[] = {
        {"GetAppToken", CT_METHOD_GET_APP_TOKEN}, {"GetUserToken", CT_METHOD_GET_USER_TOKEN},
        {"RenewToken", CT_METHOD_RENEW_TOKEN},    {"GetRtcToken", CT_METHOD_GET_RTC_TOKEN},
        {"GetRtmToken", CT_METHOD_GET_RTM_TOKEN},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_int_equal(ct_method_from_name(names[i].name), names[i].method);
        assert_string_equal(ct_method_name(names[i].method), names[i].name);
    }
    assert_int_equal(ct_method_from_name("renewtoken"), CT_METHOD_UNKNOWN);
    assert_string_equal(ct_method_name(CT_METHOD_COUNT), "unknown");
}

static void grants_only_token_service_methods(void **state)
{
    (void)state;
    /* the standard services are open to all: the config cannot name them */
    assert_int_equal(ct_method_from_name("Health/Check"), CT_METHOD_UNKNOWN);
    assert_int_equal(ct_method_from_name("ServerReflectionInfo"), CT_METHOD_UNKNOWN);
    assert_int_equal(CT_METHOD_ALL, CT_METHOD_BIT(CT_METHOD_GET_APP_TOKEN) |
                                        CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN) |
                                        CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN) |
                                        CT_METHOD_BIT(CT_METHOD_GET_RTC_TOKEN) |
                                        CT_METHOD_BIT(CT_METHOD_GET_RTM_TOKEN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(maps_method_names_both_ways),
        cmocka_unit_test(grants_only_token_service_methods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
