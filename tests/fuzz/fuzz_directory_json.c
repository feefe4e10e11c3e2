/* libFuzzer target for the user directory's reading of upstream answer
 * bodies (core/directory/upstream_json.c): arbitrary bytes as the body of an
 * Agora Chat REST API answer. Whatever the body, the UUID handed on must be
 * a short [A-Za-z0-9_-] string and the error code a short [A-Za-z0-9_.-]
 * one: both end up in tokens, statuses and logs. */
#include "upstream_json.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_charset(const char *s, size_t max, const char *extra)
{
    size_t n = strnlen(s, max + 1);

    if (n > max) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(extra, c) != NULL)) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ud_upstream_body body;
    /* an exact-size copy, so ASan sees a read past the body's end */
    char *copy = malloc(size > 0 ? size : 1);

    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    /* the seeds answer for alice, or for somebody else (list-users, app-entity) */
    ud_upstream_parse(copy, size, "alice", &body);
    check_charset(body.error_code, UD_ERROR_CODE_MAX - 1, "_.-");
    if (body.uuid_status == UD_BODY_UUID_OK) {
        if (body.uuid[0] == '\0') {
            abort();
        }
        check_charset(body.uuid, UD_UUID_MAX, "_-");
    } else if (body.uuid[0] != '\0') {
        abort(); /* no UUID is handed on with a failure */
    }
    free(copy);
    return 0;
}
