/* Big-endian conversions for the token codecs (SHA-256 words, base64
 * groups): a byte swap on little-endian hosts, nothing on big-endian ones. */
#ifndef CT_BYTEORDER_H
#define CT_BYTEORDER_H

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define BIG_ENDIAN32(x) (x)
#define BIG_ENDIAN64(x) (x)
#else
#define BIG_ENDIAN32(x) __builtin_bswap32(x)
#define BIG_ENDIAN64(x) __builtin_bswap64(x)
#endif

#endif
