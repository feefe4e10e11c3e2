/* Standard base64 (RFC 4648 section 4, '=' padding): encoding and a strict,
 * bounded decoder that refuses anything but the canonical form. */
#ifndef CT_BASE64_H
#define CT_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters needed for n bytes, without the NUL. */
#define CT_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/* Writes the encoding of in[0..len) and a NUL to out; returns the length, or
 * (size_t)-1 when outlen cannot hold it. */
size_t ct_base64_encode(const uint8_t *in, size_t len, char *out, size_t outlen);

/* Decodes in[0..len) into out; returns the decoded length, or (size_t)-1 on
 * any non-canonical input (bad character, bad length, bad padding, non-zero
 * pad bits) or when outlen is too small. */
size_t ct_base64_decode(const char *in, size_t len, uint8_t *out, size_t outlen);

#endif
