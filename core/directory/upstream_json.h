/* The Agora Chat REST API's answer bodies, read apart from the transfers:
 * the UUID of a user (entities[0].uuid, when entities[0].username is the
 * user asked for) and the error code ("error"). The directory thread calls
 * this on every upstream answer; the fuzzer (tests/fuzz/fuzz_directory_json.c)
 * calls it on arbitrary bytes. */
#ifndef UD_UPSTREAM_JSON_H
#define UD_UPSTREAM_JSON_H

#include <stddef.h>

#define UD_UUID_MAX 64 /* a Chat user UUID; longer ones are refused */
#define UD_ERROR_CODE_MAX 64

enum ud_body_uuid {
    UD_BODY_UUID_OK = 0,
    UD_BODY_NOT_JSON,   /* no body, not JSON, or a key given twice */
    UD_BODY_NO_UUID,    /* JSON without a string at entities[0].uuid */
    UD_BODY_BAD_UUID,   /* empty, longer than UD_UUID_MAX, or not [A-Za-z0-9_-] */
    UD_BODY_OTHER_USER, /* entities[0].username is missing or not the username asked for:
                         * the users list or the app entity answered, not the user */
};

typedef struct ud_upstream_body {
    enum ud_body_uuid uuid_status;
    char uuid[UD_UUID_MAX + 1];         /* on UD_BODY_UUID_OK, else "" */
    char error_code[UD_ERROR_CODE_MAX]; /* "error", only [A-Za-z0-9_.-] kept; "" if none */
} ud_upstream_body;

/* Reads len bytes of body (NULL: no body); username is the normalised name
 * asked for, which entities[0].username must equal (case-insensitively).
 * Never fails: what the body lacks is said by out->uuid_status and an empty
 * out->error_code. */
void ud_upstream_parse(const char *body, size_t len, const char *username, ud_upstream_body *out);

#endif
