/* The RPC methods of chat-tokend: one enum and one name table, shared by
 * the config (which methods a caller may call), auth, the gRPC dispatcher,
 * the HTTP router, logs and metrics. Adding a method is one row here. */
#ifndef CT_METHOD_H
#define CT_METHOD_H

enum ct_method {
    /* TokenService: the methods a caller may be granted */
    CT_METHOD_GET_APP_TOKEN = 0,
    CT_METHOD_GET_USER_TOKEN,
    CT_METHOD_RENEW_TOKEN,
    CT_METHOD_GET_RTC_TOKEN,
    CT_METHOD_GET_RTM_TOKEN,
    /* the standard services, open to every caller */
    CT_METHOD_HEALTH_CHECK,
    CT_METHOD_HEALTH_WATCH,
    CT_METHOD_REFLECTION,
    CT_METHOD_UNKNOWN, /* a path nobody serves */
    CT_METHOD_COUNT
};
#define CT_METHOD_TOKEN_COUNT (CT_METHOD_GET_RTM_TOKEN + 1)

/* Callers are granted methods as a bit set of TokenService methods. */
#define CT_METHOD_BIT(method) (1u << (unsigned)(method))
#define CT_METHOD_ALL ((1u << CT_METHOD_TOKEN_COUNT) - 1u)

/* The method's name in logs, metrics and the config ("GetAppToken",
 * "Health/Check", ...; "unknown" for CT_METHOD_UNKNOWN and out of range). */
const char *ct_method_name(enum ct_method method);

/* The TokenService method called name; CT_METHOD_UNKNOWN for anything else
 * (the config grants only TokenService methods). */
enum ct_method ct_method_from_name(const char *name);

#endif
