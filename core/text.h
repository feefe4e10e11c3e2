/* Small text helpers shared by core/ and server/: the caller-supplied error
 * buffer every module fills, a growing text buffer, and hex digits. */
#ifndef CT_TEXT_H
#define CT_TEXT_H

#include <stddef.h>

/* printf into err[0..errlen) when err is not NULL: the error buffer of the
 * redis-style `int f(..., char *err, size_t errlen)` functions. */
void ct_set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A growing text buffer (buf NUL-terminated, len bytes of text, cap
 * allocated): the first failed allocation or format error sticks in failed,
 * so the writer checks once at the end. Start from {malloc(cap), 0, cap, 0}
 * with buf[0] = '\0'. */
typedef struct ct_buf {
    char *buf;
    size_t len, cap;
    int failed;
} ct_buf;

/* Appends printf-style output to b, growing it as needed. */
void ct_buf_printf(ct_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 0..15 for a hex digit (either case), -1 for anything else. */
int ct_hex_digit(char c);

#endif
