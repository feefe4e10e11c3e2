/* Byte-order conversions for the token codecs: big-endian for SHA-256 words
 * and base64 groups, little-endian for the inflater's bit reader; a byte
 * swap where the host's order differs, nothing where it is the same. */
#ifndef CT_BYTEORDER_H
#define CT_BYTEORDER_H

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define BIG_ENDIAN32(x) (x)
#define BIG_ENDIAN64(x) (x)
#define LITTLE_ENDIAN64(x) __builtin_bswap64(x)
#else
#define BIG_ENDIAN32(x) __builtin_bswap32(x)
#define BIG_ENDIAN64(x) __builtin_bswap64(x)
#define LITTLE_ENDIAN64(x) (x)
#endif

#endif
