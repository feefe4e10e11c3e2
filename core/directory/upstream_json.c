/* The Agora Chat REST API's answer bodies (jansson): the UUID and the error
 * code that the directory acts on. Both end up in tokens and messages and
 * come from outside, so both are checked character by character here, and
 * a UUID counts only when its entity is the user asked for. */
#include "upstream_json.h"

#include <jansson.h>
#include <string.h>

/* Copies the upstream's "error" code, keeping only [A-Za-z0-9_.-]: it ends
 * up in messages, and the upstream is outside input. */
static void error_code(json_t *root, char *out, size_t outlen)
{
    const char *s = NULL;
    size_t o = 0;

    out[0] = '\0';
    if (json_is_object(root)) {
        s = json_string_value(json_object_get(root, "error"));
    }
    if (s == NULL) {
        return;
    }
    for (; *s != '\0' && o + 1 < outlen; s++) {
        char c = *s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '.' || c == '-') {
            out[o++] = c;
        }
    }
    out[o] = '\0';
}

int ud_uuid_valid(const char *s, size_t len)
{
    if (len == 0 || len > UD_UUID_MAX) {
        return 0;
    }
    for (size_t n = 0; n < len; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            return 0;
        }
    }
    return 1;
}

/* The entity's username is the one asked for, compared case-insensitively
 * and over its whole length (a JSON string may hold a NUL). */
static int same_user(json_t *name, const char *username)
{
    const char *s = json_string_value(name);
    size_t n = json_string_length(name);

    if (s == NULL || username == NULL || n != strlen(username)) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        char u = username[i] >= 'A' && username[i] <= 'Z' ? (char)(username[i] - 'A' + 'a')
                                                          : username[i];
        if (c != u) {
            return 0;
        }
    }
    return 1;
}

void ud_upstream_parse(const char *body, size_t len, const char *username, ud_upstream_body *out)
{
    json_t *root = NULL;
    json_t *entities;
    json_t *first;
    const char *uuid;

    out->uuid[0] = '\0';
    if (body != NULL) {
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    }
    error_code(root, out->error_code, sizeof(out->error_code));
    entities = json_object_get(root, "entities");
    first = json_array_get(entities, 0);
    uuid = json_string_value(json_object_get(first, "uuid"));
    if (root == NULL) {
        out->uuid_status = UD_BODY_NOT_JSON;
    } else if (!json_is_array(entities) || !json_is_object(first) || uuid == NULL) {
        out->uuid_status = UD_BODY_NO_UUID;
    } else if (!ud_uuid_valid(uuid, json_string_length(json_object_get(first, "uuid")))) {
        out->uuid_status = UD_BODY_BAD_UUID;
    } else if (!same_user(json_object_get(first, "username"), username)) {
        out->uuid_status = UD_BODY_OTHER_USER;
    } else {
        out->uuid_status = UD_BODY_UUID_OK;
        memcpy(out->uuid, uuid, strlen(uuid) + 1); /* ud_uuid_valid bounded it */
    }
    json_decref(root);
}
