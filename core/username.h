/* Agora Chat usernames: 1..64 characters of a-z A-Z 0-9 _ - . , not only
 * dots, compared case-insensitively. Validated and normalised once, where they enter. */
#ifndef CT_USERNAME_H
#define CT_USERNAME_H

#include <stddef.h>

#define CT_USERNAME_MAX 64

/* Writes the lower-case form of name[0..len) to out (NUL-terminated).
 * 0 on success; -1 when the name is empty, longer than 64 characters, has a
 * character outside the allowed set or is only dots (err says which). */
int ct_username_normalize(const char *name, size_t len, char out[CT_USERNAME_MAX + 1], char *err,
                          size_t errlen);

/* 1 when s is a name as ct_username_normalize writes it (valid, lower
 * case): for code past the entry point that relies on the rule. */
int ct_username_is_normal(const char *s);

#endif
