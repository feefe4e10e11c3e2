/* Small text helpers shared by core/ and server/: the caller-supplied error
 * buffer every module fills, and hex digits. */
#ifndef CT_TEXT_H
#define CT_TEXT_H

#include <stddef.h>

/* printf into err[0..errlen) when err is not NULL: the error buffer of the
 * redis-style `int f(..., char *err, size_t errlen)` functions. */
void ct_set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 0..15 for a hex digit (either case), -1 for anything else. */
int ct_hex_digit(char c);

#endif
