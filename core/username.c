/* Username validation and normalisation (Agora Chat user ID rules). */
#include "username.h"

#include <stdio.h>
#include <string.h>

int ct_username_normalize(const char *name, size_t len, char out[CT_USERNAME_MAX + 1], char *err,
                          size_t errlen)
{
    size_t dots = 0;

    if (name == NULL || len == 0 || len > CT_USERNAME_MAX) {
        snprintf(err, errlen, "username must be 1..%d characters, got %zu", CT_USERNAME_MAX,
                 name == NULL ? (size_t)0 : len);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        dots += c == '.';
        if (c >= 'A' && c <= 'Z') {
            out[i] = (char)(c - 'A' + 'a');
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                   c == '.') {
            out[i] = (char)c;
        } else {
            snprintf(err, errlen,
                     "username may hold only a-z A-Z 0-9 _ - . (character %zu is not allowed)",
                     i + 1);
            return -1;
        }
    }
    /* "." and ".." are path segments: in a URL they would name the users
     * list or the app, not a user */
    if (dots == len) {
        snprintf(err, errlen, "username may not consist only of dots");
        return -1;
    }
    out[len] = '\0';
    return 0;
}

int ct_username_is_normal(const char *s)
{
    char normal[CT_USERNAME_MAX + 1];
    char err[128];
    size_t len = strnlen(s, CT_USERNAME_MAX + 1);

    return ct_username_normalize(s, len, normal, err, sizeof(err)) == 0 && strcmp(normal, s) == 0;
}
