/* The method name table (see method.h). */
#include "method.h"

#include <string.h>

static const char *const names[CT_METHOD_COUNT] = {
    [CT_METHOD_GET_APP_TOKEN] = "GetAppToken", [CT_METHOD_GET_USER_TOKEN] = "GetUserToken",
    [CT_METHOD_RENEW_TOKEN] = "RenewToken",    [CT_METHOD_GET_RTC_TOKEN] = "GetRtcToken",
    [CT_METHOD_GET_RTM_TOKEN] = "GetRtmToken", [CT_METHOD_HEALTH_CHECK] = "Health/Check",
    [CT_METHOD_HEALTH_WATCH] = "Health/Watch", [CT_METHOD_REFLECTION] = "ServerReflectionInfo",
    [CT_METHOD_UNKNOWN] = "unknown",
};

const char *ct_method_name(enum ct_method method)
{
    return (unsigned)method < CT_METHOD_COUNT ? names[method] : names[CT_METHOD_UNKNOWN];
}

enum ct_method ct_method_from_name(const char *name)
{
    if (name == NULL) {
        return CT_METHOD_UNKNOWN;
    }
    for (unsigned m = 0; m < CT_METHOD_TOKEN_COUNT; m++) {
        if (strcmp(name, names[m]) == 0) {
            return (enum ct_method)m;
        }
    }
    return CT_METHOD_UNKNOWN;
}
