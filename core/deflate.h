/* Deflate for token payloads: writes the very zlib stream that
 * deflate(Z_DEFAULT_COMPRESSION) writes (header 78 9c), for inputs of at most
 * CT_DEFLATE_INPUT_MAX bytes, without zlib's per-stream set-up cost (a 64 KiB
 * hash clear and full tree scans). Tokens must be byte-identical to Agora's
 * C++/Java/Python builders, which use zlib at the default level. */
#ifndef CT_DEFLATE_H
#define CT_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

/* pack_string(signature) + the largest signing_info the builder writes */
#define CT_DEFLATE_INPUT_MAX (2 + 32 + 1024)

typedef struct ct_deflater ct_deflater;

/* One per thread: not thread-safe. NULL when out of memory. */
ct_deflater *ct_deflater_new(void);
void ct_deflater_free(ct_deflater *d);

/* Compresses in[0..n) (n <= CT_DEFLATE_INPUT_MAX) into out; 0, or -1 when
 * the input is too long or out too small. */
int ct_deflate(ct_deflater *d, const uint8_t *in, size_t n, uint8_t *out, size_t outcap,
               size_t *outlen);

/* Inflates the zlib stream in[0..n) into out[0..outcap) when it is the
 * common case of a token: stored and fixed-Huffman blocks only, complete,
 * ending exactly at in + n, with the right Adler-32 (Agora's builders and
 * ours write one such block for a token-sized payload). CT_INFLATE_OK and
 * *outlen then, with exactly the bytes zlib's inflate gives for it. Anything
 * else (a dynamic block, a damaged, truncated or longer stream, output over
 * outcap) is CT_INFLATE_ASK_ZLIB: not decided here, the caller runs zlib's
 * inflate, whose answer stands. */
#define CT_INFLATE_OK 0
#define CT_INFLATE_ASK_ZLIB 1
int ct_inflate(const uint8_t *in, size_t n, uint8_t *out, size_t outcap, size_t *outlen);

#endif
