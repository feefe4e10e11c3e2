/* Call outcomes: setting a status, and the names of the codes. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

int srv_fail(srv_status *status, enum srv_code code, const char *fmt, ...)
{
    va_list ap;

    status->code = code;
    va_start(ap, fmt);
    vsnprintf(status->message, sizeof(status->message), fmt, ap);
    va_end(ap);
    return code;
}

int srv_ok(srv_status *status)
{
    status->code = SRV_OK;
    status->message[0] = '\0';
    return SRV_OK;
}

const char *srv_code_name(enum srv_code code)
{
#define SRV_CODE_NAME(name, value) [value] = #name,
    static const char *const names[SRV_CODE_COUNT] = {SRV_CODES(SRV_CODE_NAME)};
#undef SRV_CODE_NAME
    return (unsigned)code < SRV_CODE_COUNT ? names[code] : "UNKNOWN";
}
