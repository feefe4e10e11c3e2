/* Shared by fuzz_requests.c and fuzz_http.c: "name: value" lines (gRPC
 * metadata, HTTP headers) collected into credentials as both transports do
 * (srv_credentials_add_header) and identified (srv_auth_identify), with the
 * rules every input must keep: more than one credential is never accepted,
 * whichever of them is valid, and a caller that passes is key_name (or
 * anonymous where cfg allows that). */
#ifndef FUZZ_CREDENTIAL_LINES_H
#define FUZZ_CREDENTIAL_LINES_H

#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fuzz_is_credential(const char *name, size_t len)
{
    return (len == 13 && strncasecmp(name, "authorization", 13) == 0) ||
           (len == 9 && strncasecmp(name, "x-api-key", 9) == 0);
}

static void fuzz_credential_lines(const ct_config *cfg, const char *p, size_t len,
                                  const char *key_name)
{
    const char *end = p + len;
    srv_credentials cred;
    srv_caller caller;
    srv_status status;
    unsigned credentials = 0;
    int rc;

    memset(&cred, 0, sizeof(cred));
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol != NULL ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));

        if (colon != NULL) {
            const char *value = colon + 1 < line_end && colon[1] == ' ' ? colon + 2 : colon + 1;
            srv_credentials_add_header(&cred, p, (size_t)(colon - p), value,
                                       (size_t)(line_end - value));
            credentials += fuzz_is_credential(p, (size_t)(colon - p));
        }
        p = line_end + 1;
    }
    rc = srv_auth_identify(cfg, NULL, &cred, &caller, &status);
    if (rc != (int)status.code || (rc != SRV_OK && status.message[0] == '\0')) {
        abort();
    }
    if (credentials > 1 &&
        (rc != SRV_UNAUTHENTICATED || strstr(status.message, "more than one credential") == NULL)) {
        abort();
    }
    if (rc == SRV_OK && strcmp(caller.name, key_name) != 0 &&
        !(cfg->allow_unauthenticated && strcmp(caller.name, "anonymous") == 0)) {
        abort();
    }
}

#endif
