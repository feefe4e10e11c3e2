/* Standard base64 with a strict decoder: tokens are signed, so there is one
 * valid spelling of each; anything else is refused rather than repaired. */
#include "base64.h"

#include <pthread.h>
#include <string.h>

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define BIG_ENDIAN32(x) (x)
#else
#define BIG_ENDIAN32(x) __builtin_bswap32(x)
#endif

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for alphabet characters, 64 for '=', 255 for the rest. */
static const uint8_t decode_table[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 62,  255, 255, 255, 63,  52,  53,  54,  55,  56,  57,  58,  59,  60,
    61,  255, 255, 255, 64,  255, 255, 255, 0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,
    11,  12,  13,  14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  255, 255, 255, 255,
    255, 255, 26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,  41,  42,
    43,  44,  45,  46,  47,  48,  49,  50,  51,  255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255,
};

/* The two characters of every 12-bit value: half the look-ups per token
 * (every token the server answers is encoded here). */
static char pairs[4096][2];
static pthread_once_t pairs_once = PTHREAD_ONCE_INIT;

static void pairs_init(void)
{
    for (unsigned v = 0; v < 4096; v++) {
        pairs[v][0] = alphabet[v >> 6];
        pairs[v][1] = alphabet[v & 63];
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
    pthread_once(&pairs_once, pairs_init);
    /* four bytes read, three used, while a fourth is there to read */
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
    size_t pad = 0;
    size_t outlen_needed;
    size_t o = 0;

    if (len == 0 || len % 4 != 0) {
        return (size_t)-1;
    }
    if (in[len - 1] == '=') {
        pad = in[len - 2] == '=' ? 2 : 1;
    }
    outlen_needed = len / 4 * 3 - pad;
    if (outlen_needed > outlen) {
        return (size_t)-1;
    }
    for (size_t i = 0; i < len; i += 4) {
        uint8_t a = decode_table[(uint8_t)in[i]];
        uint8_t b = decode_table[(uint8_t)in[i + 1]];
        uint8_t c = decode_table[(uint8_t)in[i + 2]];
        uint8_t d = decode_table[(uint8_t)in[i + 3]];
        int last = i + 4 == len;

        if (a > 63 || b > 63) {
            return (size_t)-1;
        }
        if (!last || pad == 0) {
            if (c > 63 || d > 63) {
                return (size_t)-1;
            }
            uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
            out[o++] = (uint8_t)(v >> 16);
            out[o++] = (uint8_t)(v >> 8);
            out[o++] = (uint8_t)v;
        } else if (pad == 1) {
            /* "xyz=": the unused low 2 bits of z must be zero (canonical) */
            if (c > 63 || d != 64 || (c & 3) != 0) {
                return (size_t)-1;
            }
            uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
            out[o++] = (uint8_t)(v >> 16);
            out[o++] = (uint8_t)(v >> 8);
        } else {
            if (c != 64 || d != 64 || (b & 15) != 0) {
                return (size_t)-1;
            }
            out[o++] = (uint8_t)(((uint32_t)a << 2) | (b >> 4));
        }
    }
    return o;
}
