/* Standard base64 with a strict decoder: tokens are signed, so there is one
 * valid spelling of each; anything else is refused rather than repaired. */
#include "base64.h"
#include "byteorder.h"

#include <pthread.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Tables built once from the alphabet (the one place that spells it):
 * pairs holds the two characters of every 12-bit value, so encoding looks up
 * two characters at a time; decode[k][c] is the 6-bit value of character c
 * already shifted to its place k in a group of four, or INVALID, so decoding
 * a group is four look-ups and three ORs (every token is decoded or encoded
 * here on the hot path). */
#define INVALID 0x80000000u
static char pairs[4096][2];
static uint32_t decode[4][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void)
{
    for (unsigned v = 0; v < 4096; v++) {
        pairs[v][0] = alphabet[v >> 6];
        pairs[v][1] = alphabet[v & 63];
    }
    for (unsigned k = 0; k < 4; k++) {
        for (unsigned c = 0; c < 256; c++) {
            decode[k][c] = INVALID;
        }
        for (uint32_t v = 0; v < 64; v++) {
            decode[k][(uint8_t)alphabet[v]] = v << (18 - 6 * k);
        }
    }
}

size_t ct_base64_encode(const uint8_t *in, size_t len, char *out, size_t outlen)
{
    size_t need = CT_BASE64_ENCODED_LEN(len);
    size_t i = 0;
    char *p = out;

    if (outlen < need + 1) {
        return (size_t)-1;
    }
    pthread_once(&tables_once, tables_init);
    /* eight bytes read, six used, while the last two are there to read */
    for (; i + 8 <= len; i += 6) {
        uint64_t v;
        memcpy(&v, in + i, 8);
        v = BIG_ENDIAN64(v) >> 16;
        memcpy(p, pairs[v >> 36], 2);
        memcpy(p + 2, pairs[(v >> 24) & 4095], 2);
        memcpy(p + 4, pairs[(v >> 12) & 4095], 2);
        memcpy(p + 6, pairs[v & 4095], 2);
        p += 8;
    }
    for (; i + 4 <= len; i += 3) {
        uint32_t v;
        memcpy(&v, in + i, 4);
        v = BIG_ENDIAN32(v) >> 8;
        memcpy(p, pairs[v >> 12], 2);
        memcpy(p + 2, pairs[v & 4095], 2);
        p += 4;
    }
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        memcpy(p, pairs[v >> 12], 2);
        memcpy(p + 2, pairs[v & 4095], 2);
        p += 4;
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[(v >> 12) & 63];
        *p++ = '=';
        *p++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = alphabet[v >> 18];
        *p++ = alphabet[(v >> 12) & 63];
        *p++ = alphabet[(v >> 6) & 63];
        *p++ = '=';
    }
    *p = '\0';
    return need;
}

size_t ct_base64_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
    const uint8_t *s = (const uint8_t *)in;
    size_t pad = 0;
    size_t full;
    size_t o = 0;
    uint32_t v;

    if (len == 0 || len % 4 != 0) {
        return (size_t)-1;
    }
    if (in[len - 1] == '=') {
        pad = in[len - 2] == '=' ? 2 : 1;
    }
    if (len / 4 * 3 - pad > outlen) {
        return (size_t)-1;
    }
    pthread_once(&tables_once, tables_init);
    /* every group but a padded last one: 24 bits, or INVALID among them */
    full = pad == 0 ? len : len - 4;
    for (size_t i = 0; i < full; i += 4) {
        v = decode[0][s[i]] | decode[1][s[i + 1]] | decode[2][s[i + 2]] | decode[3][s[i + 3]];
        if (v & INVALID) {
            return (size_t)-1;
        }
        out[o] = (uint8_t)(v >> 16);
        out[o + 1] = (uint8_t)(v >> 8);
        out[o + 2] = (uint8_t)v;
        o += 3;
    }
    if (pad == 0) {
        return o;
    }
    /* "xy==" or "xyz=": the bits past the last byte must be zero (canonical) */
    v = decode[0][s[full]] | decode[1][s[full + 1]] | (pad == 1 ? decode[2][s[full + 2]] : 0);
    if ((v & INVALID) || (v & (pad == 1 ? 0xffu : 0xffffu)) != 0) {
        return (size_t)-1;
    }
    out[o++] = (uint8_t)(v >> 16);
    if (pad == 1) {
        out[o++] = (uint8_t)(v >> 8);
    }
    return o;
}
