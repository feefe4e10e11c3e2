/* Deflate for token payloads, byte-identical to zlib's
 * deflate(Z_DEFAULT_COMPRESSION, windowBits 15, memLevel 8).
 *
 * Why: tokens must equal Agora's C++/Java/Python builders byte for byte, and
 * those use zlib at the default level. A token payload is at most
 * CT_DEFLATE_INPUT_MAX bytes, and stock zlib
 * spends far more on such an input than the work it needs: deflateReset
 * clears a 64 KiB hash table, and _tr_flush_block walks every tree slot. The
 * encoder below is zlib 1.2.13's level-6 path (deflate_slow, longest_match and
 * trees.c), transcribed for one input that fits the window and one block, so
 * it writes the very bytes deflate(Z_DEFAULT_COMPRESSION, windowBits 15,
 * memLevel 8) writes; tests/unit/core/test_deflate.c checks that against
 * the linked zlib for many thousands of payloads. What differs is bookkeeping
 * only, each with the reason it cannot change the output:
 *  - The hash table has zlib's 2^15 buckets and hash function, so every chain
 *    holds the same positions in the same order; instead of clearing the
 *    table for each input, entries are stamped (base + position) and those
 *    of earlier inputs read as NIL.
 *  - Match lengths are counted up to the end of the input, not up to 258 bytes
 *    of window that may hold bytes of an earlier stream. zlib clamps its
 *    result to the lookahead and stops the chain at nice_match (itself clamped
 *    to the lookahead), so a match that reaches the end wins the same way in
 *    both; the one case where zlib records another match_start (prev_length
 *    already >= lookahead) is discarded by deflate_slow, which then emits the
 *    previous match.
 *  - One block: zlib flushes a block early only when its symbol buffer
 *    (lit_bufsize - 1 = 16383 symbols at memLevel 8) fills up, and an input
 *    shorter than that has fewer symbols; all of it stays in the window (32
 *    KiB), so the stored-block choice always has the input at hand.
 *  - Bits go out through a 64-bit accumulator, LSB first like send_bits: the
 *    byte stream is the same however the bits are buffered.
 *
 * Origin: the algorithm (match search, lazy evaluation, Huffman tree
 * construction and tie-breaking) follows zlib 1.2.13, (C) 1995-2022
 * Jean-loup Gailly and Mark Adler, under the zlib license; this is an
 * altered, reduced re-implementation of it, not the original software.
 *
 * At the end, ct_inflate: a decoder for the streams tokens nearly always are
 * (stored and fixed-Huffman blocks; RFC 1950 and 1951), which answers only
 * when the stream is complete and valid and otherwise hands it to the linked
 * zlib's inflate, so zlib still decides every other stream. */
#include "deflate.h"

#include "byteorder.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DZ_MIN_MATCH 3
#define DZ_MAX_MATCH 258
#define DZ_HASH_BITS 15 /* memLevel 8 + 7 */
#define DZ_HASH_SIZE (1u << DZ_HASH_BITS)
#define DZ_HASH_MASK (DZ_HASH_SIZE - 1)
#define DZ_HASH_SHIFT 5 /* (hash_bits + MIN_MATCH - 1) / MIN_MATCH */
#define DZ_INPUT_MAX CT_DEFLATE_INPUT_MAX
/* level 6 in zlib's configuration_table: good, lazy, nice, chain */
#define DZ_GOOD_LENGTH 8
#define DZ_MAX_LAZY 16
#define DZ_NICE_LENGTH 128
#define DZ_MAX_CHAIN 128
#define DZ_TOO_FAR 4096
#define DZ_LITERALS 256
#define DZ_MATCH 256 /* sym[] values from here on are matches */
#define DZ_END_BLOCK 256
#define DZ_LENGTH_CODES 29
#define DZ_L_CODES (DZ_LITERALS + 1 + DZ_LENGTH_CODES)
#define DZ_D_CODES 30
#define DZ_BL_CODES 19
#define DZ_HEAP_SIZE (2 * DZ_L_CODES + 1)
#define DZ_MAX_BITS 15
#define DZ_MAX_BL_BITS 7
#define DZ_REP_3_6 16
#define DZ_REPZ_3_10 17
#define DZ_REPZ_11_138 18

static const uint8_t dz_extra_lbits[DZ_LENGTH_CODES] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                        2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint8_t dz_extra_dbits[DZ_D_CODES] = {0, 0, 0,  0,  1,  1,  2,  2,  3,  3,
                                                   4, 4, 5,  5,  6,  6,  7,  7,  8,  8,
                                                   9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t dz_extra_blbits[DZ_BL_CODES] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                     0, 0, 0, 0, 0, 0, 2, 3, 7};
static const uint8_t dz_bl_order[DZ_BL_CODES] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                                 11, 4,  12, 3, 13, 2, 14, 1, 15};

/* trees.c's static tables, filled once by dz_static_init (tr_static_init) */
static uint8_t dz_length_code[DZ_MAX_MATCH - DZ_MIN_MATCH + 1];
static uint8_t dz_dist_code[512];
static uint16_t dz_base_length[DZ_LENGTH_CODES];
static uint16_t dz_base_dist[DZ_D_CODES];
static uint16_t dz_static_lcode[DZ_L_CODES + 2];
static uint8_t dz_static_llen[DZ_L_CODES + 2];
static uint16_t dz_static_dcode[DZ_D_CODES];
static uint8_t dz_static_dlen[DZ_D_CODES];
static uint16_t dz_static_llen16[DZ_L_CODES + 2]; /* the same, for dz_compress_block */
static uint16_t dz_static_dlen16[DZ_D_CODES];
/* The decoder's view of the fixed code: indexed by the next 9 (5) bits of
 * the stream, the symbol << 4 | its code length (the distance symbol). */
static uint16_t iz_fixed_lit[512];
static uint8_t iz_fixed_dist[32];

/* One Huffman tree: zlib's ct_data union split into arrays. zlib overlays
 * Freq/Code and Dad/Len, but never reads one after writing the other. */
typedef struct dz_tree {
    uint16_t freq[DZ_HEAP_SIZE];
    uint16_t code[DZ_HEAP_SIZE];
    uint16_t dad[DZ_HEAP_SIZE];
    uint16_t len[DZ_HEAP_SIZE];
    int max_code;
    int elems;
    int max_length;
    int extra_base;
    const uint8_t *extra;
    const uint8_t *static_len; /* NULL for the bit length tree */
} dz_tree;

typedef struct dz_state {
    /* base + position, for this call's positions; anything <= base is NIL
     * (zlib's head[] is per stream: no clearing between calls this way) */
    uint32_t head[DZ_HASH_SIZE];
    uint32_t base;
    uint16_t prev[DZ_INPUT_MAX];
    /* zlib's symbol buffer: a literal byte, or DZ_MATCH + i for the i-th
     * match (one 16-bit store per literal, the common symbol) */
    uint16_t sym[DZ_INPUT_MAX];
    unsigned sym_count;
    uint16_t match_dist[DZ_INPUT_MAX / DZ_MIN_MATCH + 1];
    uint8_t match_lc[DZ_INPUT_MAX / DZ_MIN_MATCH + 1]; /* length - DZ_MIN_MATCH */
    unsigned match_count;
    unsigned long extra_bits;                  /* of the matches' lengths and distances */
    uint64_t lit_used[(DZ_L_CODES + 63) / 64]; /* bit n: ltree.freq[n] != 0 */
    uint32_t dist_used;                        /* bit n: dtree.freq[n] != 0 */
    /* dz_huffman_cost's histogram: all 0 between calls; merged weights reach
     * the symbol count (+1 for END_BLOCK), bit-length symbols far fewer */
    uint16_t weights[DZ_INPUT_MAX + 2];
    dz_tree ltree;
    dz_tree dtree;
    dz_tree bltree;
    int heap[DZ_HEAP_SIZE];
    int heap_len;
    int heap_max;
    uint8_t depth[DZ_HEAP_SIZE];
    uint32_t key[DZ_HEAP_SIZE]; /* heap order: freq << 8 | depth */
    uint16_t bl_count[DZ_MAX_BITS + 1];
    unsigned long opt_len;
    unsigned long static_len;
    /* bit writer */
    uint8_t *out;
    uint8_t *out_end;
    uint64_t bit_buf;
    unsigned bit_count;
} dz_state;

/* The low len bits of code, reversed: the value bi_reverse loops for. */
static unsigned dz_bi_reverse(unsigned code, int len)
{
    static const uint8_t nibble[16] = {0x0, 0x8, 0x4, 0xc, 0x2, 0xa, 0x6, 0xe,
                                       0x1, 0x9, 0x5, 0xd, 0x3, 0xb, 0x7, 0xf};
    unsigned r = (unsigned)nibble[code & 0xf] << 12 | (unsigned)nibble[code >> 4 & 0xf] << 8 |
                 (unsigned)nibble[code >> 8 & 0xf] << 4 | nibble[code >> 12 & 0xf];

    return r >> (16 - len);
}

static void dz_gen_codes(uint16_t *code, const uint16_t *len, int max_code,
                         const uint16_t *bl_count)
{
    uint16_t next_code[DZ_MAX_BITS + 1];
    unsigned c = 0;

    next_code[0] = 0;
    for (int bits = 1; bits <= DZ_MAX_BITS; bits++) {
        c = (c + bl_count[bits - 1]) << 1;
        next_code[bits] = (uint16_t)c;
    }
    for (int n = 0; n <= max_code; n++) {
        int l = len[n];
        if (l != 0) {
            code[n] = (uint16_t)dz_bi_reverse(next_code[l]++, l);
        }
    }
}

static void dz_static_init(void)
{
    uint16_t bl_count[DZ_MAX_BITS + 1] = {0};
    uint16_t len[DZ_L_CODES + 2];
    int length = 0;
    int dist = 0;
    int code;
    int n;

    for (code = 0; code < DZ_LENGTH_CODES - 1; code++) {
        dz_base_length[code] = (uint16_t)length;
        for (n = 0; n < (1 << dz_extra_lbits[code]); n++) {
            dz_length_code[length++] = (uint8_t)code;
        }
    }
    /* length 258 has two encodings; zlib picks code 285 */
    dz_length_code[length - 1] = (uint8_t)code;
    for (code = 0; code < 16; code++) {
        dz_base_dist[code] = (uint16_t)dist;
        for (n = 0; n < (1 << dz_extra_dbits[code]); n++) {
            dz_dist_code[dist++] = (uint8_t)code;
        }
    }
    dist >>= 7;
    for (; code < DZ_D_CODES; code++) {
        dz_base_dist[code] = (uint16_t)(dist << 7);
        for (n = 0; n < (1 << (dz_extra_dbits[code] - 7)); n++) {
            dz_dist_code[256 + dist++] = (uint8_t)code;
        }
    }
    for (n = 0; n <= 287; n++) {
        len[n] = n <= 143 ? 8 : n <= 255 ? 9 : n <= 279 ? 7 : 8;
        dz_static_llen[n] = (uint8_t)len[n];
        dz_static_llen16[n] = len[n];
        bl_count[len[n]]++;
    }
    dz_gen_codes(dz_static_lcode, len, DZ_L_CODES + 1, bl_count);
    for (n = 0; n < DZ_D_CODES; n++) {
        dz_static_dlen[n] = 5;
        dz_static_dlen16[n] = 5;
        dz_static_dcode[n] = (uint16_t)dz_bi_reverse((unsigned)n, 5);
    }
    /* every 9-bit index whose low len bits are a symbol's code decodes to it */
    for (n = 0; n <= 287; n++) {
        for (unsigned i = dz_static_lcode[n]; i < 512; i += 1u << len[n]) {
            iz_fixed_lit[i] = (uint16_t)(n << 4 | len[n]);
        }
    }
    for (n = 0; n < 32; n++) {
        iz_fixed_dist[dz_bi_reverse((unsigned)n, 5)] = (uint8_t)n;
    }
}

static unsigned dz_d_code(unsigned dist)
{
    return dist < 256 ? dz_dist_code[dist] : dz_dist_code[256 + (dist >> 7)];
}

/* ---- bit writer (send_bits, bi_windup) ---- */

/* Moves the low 32 bits of the accumulator out, LSB first. Bytes past
 * out_end are only counted; the caller checks. */
static __attribute__((noinline)) void dz_put32(dz_state *s)
{
    if (s->out_end - s->out >= 4) {
        s->out[0] = (uint8_t)s->bit_buf;
        s->out[1] = (uint8_t)(s->bit_buf >> 8);
        s->out[2] = (uint8_t)(s->bit_buf >> 16);
        s->out[3] = (uint8_t)(s->bit_buf >> 24);
    } else {
        for (int i = 0; i < 4; i++) {
            if (s->out + i < s->out_end) {
                s->out[i] = (uint8_t)(s->bit_buf >> (8 * i));
            }
        }
    }
    s->out += 4;
    s->bit_buf >>= 32;
    s->bit_count -= 32;
}

/* length <= 16, and fewer than 32 bits wait in the accumulator: no overflow */
static inline void dz_send_bits(dz_state *s, unsigned value, unsigned length)
{
    s->bit_buf |= (uint64_t)value << s->bit_count;
    s->bit_count += length;
    if (s->bit_count >= 32) {
        dz_put32(s);
    }
}

/* Pads to a byte boundary with zero bits and writes every waiting byte. */
static void dz_windup(dz_state *s)
{
    unsigned bytes = (s->bit_count + 7) / 8;

    for (unsigned i = 0; i < bytes; i++) {
        if (s->out < s->out_end) {
            *s->out = (uint8_t)s->bit_buf;
        }
        s->out++;
        s->bit_buf >>= 8;
    }
    s->bit_buf = 0;
    s->bit_count = 0;
}

/* ---- Huffman trees (trees.c) ---- */

/* zlib's smaller(): by frequency, ties to the shallower subtree. key[] holds
 * freq << 8 | depth (depth < 256), so one comparison decides the same way. */
static int dz_smaller(const uint32_t *key, int n, int m)
{
    return key[n] <= key[m];
}

static void dz_pqdownheap(dz_state *s, int k)
{
    int v = s->heap[k];
    int j = k << 1;

    while (j <= s->heap_len) {
        if (j < s->heap_len && dz_smaller(s->key, s->heap[j + 1], s->heap[j])) {
            j++;
        }
        if (dz_smaller(s->key, v, s->heap[j])) {
            break;
        }
        s->heap[k] = s->heap[j];
        k = j;
        j <<= 1;
    }
    s->heap[k] = v;
}

static void dz_gen_bitlen(dz_state *s, dz_tree *t)
{
    int overflow = 0;
    int h;
    int bits;

    memset(s->bl_count, 0, sizeof(s->bl_count));
    t->len[s->heap[s->heap_max]] = 0; /* root */
    for (h = s->heap_max + 1; h < DZ_HEAP_SIZE; h++) {
        int n = s->heap[h];
        int xbits = 0;
        bits = t->len[t->dad[n]] + 1;
        if (bits > t->max_length) {
            bits = t->max_length;
            overflow++;
        }
        t->len[n] = (uint16_t)bits;
        if (n > t->max_code) {
            continue; /* not a leaf */
        }
        s->bl_count[bits]++;
        if (n >= t->extra_base) {
            xbits = t->extra[n - t->extra_base];
        }
        s->opt_len += (unsigned long)t->freq[n] * (unsigned)(bits + xbits);
        if (t->static_len != NULL) {
            s->static_len += (unsigned long)t->freq[n] * (unsigned)(t->static_len[n] + xbits);
        }
    }
    if (overflow == 0) {
        return;
    }
    do {
        bits = t->max_length - 1;
        while (s->bl_count[bits] == 0) {
            bits--;
        }
        s->bl_count[bits]--;
        s->bl_count[bits + 1] += 2;
        s->bl_count[t->max_length]--;
        overflow -= 2;
    } while (overflow > 0);
    for (bits = t->max_length; bits != 0; bits--) {
        int n = s->bl_count[bits];
        while (n != 0) {
            int m = s->heap[--h];
            if (m > t->max_code) {
                continue;
            }
            if (t->len[m] != (unsigned)bits) {
                s->opt_len += ((unsigned long)bits - t->len[m]) * t->freq[m];
                t->len[m] = (uint16_t)bits;
            }
            n--;
        }
    }
}

static void dz_build_tree(dz_state *s, dz_tree *t)
{
    int max_code = -1;
    int node;
    int n;

    s->heap_len = 0;
    s->heap_max = DZ_HEAP_SIZE;
    for (n = 0; n < t->elems; n++) {
        if (t->freq[n] != 0) {
            s->heap[++s->heap_len] = max_code = n;
            s->depth[n] = 0;
        } else {
            t->len[n] = 0;
        }
    }
    /* at least two codes, as zlib forces them */
    while (s->heap_len < 2) {
        node = s->heap[++s->heap_len] = max_code < 2 ? ++max_code : 0;
        t->freq[node] = 1;
        s->depth[node] = 0;
        s->opt_len--;
        if (t->static_len != NULL) {
            s->static_len -= t->static_len[node];
        }
    }
    t->max_code = max_code;
    for (n = 1; n <= s->heap_len; n++) {
        s->key[s->heap[n]] = (uint32_t)t->freq[s->heap[n]] << 8; /* leaves: depth 0 */
    }
    for (n = s->heap_len / 2; n >= 1; n--) {
        dz_pqdownheap(s, n);
    }
    node = t->elems;
    do {
        int m;
        n = s->heap[1];
        s->heap[1] = s->heap[s->heap_len--];
        dz_pqdownheap(s, 1);
        m = s->heap[1];
        s->heap[--s->heap_max] = n;
        s->heap[--s->heap_max] = m;
        t->freq[node] = (uint16_t)(t->freq[n] + t->freq[m]);
        s->depth[node] = (uint8_t)((s->depth[n] >= s->depth[m] ? s->depth[n] : s->depth[m]) + 1);
        t->dad[n] = t->dad[m] = (uint16_t)node;
        s->key[node] = (uint32_t)t->freq[node] << 8 | s->depth[node];
        s->heap[1] = node++;
        dz_pqdownheap(s, 1);
    } while (s->heap_len >= 2);
    s->heap[--s->heap_max] = s->heap[1];
    dz_gen_bitlen(s, t);
    dz_gen_codes(t->code, t->len, max_code, s->bl_count);
}

/* One bit-length symbol of a tree's description: counted into the
 * bit-length tree's frequencies (scan) or sent with its extra bits (send). */
static void dz_tree_symbol(dz_state *s, int send, int symbol, unsigned extra, int extra_bits)
{
    if (!send) {
        s->bltree.freq[symbol]++;
        return;
    }
    dz_send_bits(s, s->bltree.code[symbol], s->bltree.len[symbol]);
    if (extra_bits > 0) {
        dz_send_bits(s, extra, extra_bits);
    }
}

/* zlib's limits on the next run of equal code lengths, which depend on the
 * length just coded and the next one. */
static void dz_run_limits(int curlen, int nextlen, int *max_count, int *min_count)
{
    if (nextlen == 0) {
        *max_count = 138;
        *min_count = 3;
    } else if (curlen == nextlen) {
        *max_count = 6;
        *min_count = 3;
    } else {
        *max_count = 7;
        *min_count = 4;
    }
}

/* zlib's scan_tree (send == 0) and send_tree (send == 1) in one: the code
 * lengths of t as runs, coded with the bit-length symbols 0..15, 16 (repeat
 * the previous length 3..6 times), 17 (3..10 zeros), 18 (11..138 zeros). */
static void dz_tree_runs(dz_state *s, dz_tree *t, int max_code, int send)
{
    int prevlen = -1;
    int nextlen = t->len[0];
    int count = 0;
    int max_count;
    int min_count;

    dz_run_limits(prevlen, nextlen, &max_count, &min_count);
    t->len[max_code + 1] = 0xffff; /* guard, as zlib sets it */
    for (int n = 0; n <= max_code; n++) {
        int curlen = nextlen;
        nextlen = t->len[n + 1];
        if (++count < max_count && curlen == nextlen) {
            continue;
        } else if (count < min_count) {
            do {
                dz_tree_symbol(s, send, curlen, 0, 0);
            } while (--count != 0);
        } else if (curlen != 0) {
            if (curlen != prevlen) {
                dz_tree_symbol(s, send, curlen, 0, 0);
                count--;
            }
            dz_tree_symbol(s, send, DZ_REP_3_6, (unsigned)count - 3, 2);
        } else if (count <= 10) {
            dz_tree_symbol(s, send, DZ_REPZ_3_10, (unsigned)count - 3, 3);
        } else {
            dz_tree_symbol(s, send, DZ_REPZ_11_138, (unsigned)count - 11, 7);
        }
        count = 0;
        prevlen = curlen;
        dz_run_limits(curlen, nextlen, &max_count, &min_count);
    }
}

static int dz_build_bl_tree(dz_state *s)
{
    int max_blindex;

    dz_tree_runs(s, &s->ltree, s->ltree.max_code, 0);
    dz_tree_runs(s, &s->dtree, s->dtree.max_code, 0);
    dz_build_tree(s, &s->bltree);
    for (max_blindex = DZ_BL_CODES - 1; max_blindex >= 3; max_blindex--) {
        if (s->bltree.len[dz_bl_order[max_blindex]] != 0) {
            break;
        }
    }
    s->opt_len += 3 * ((unsigned long)max_blindex + 1) + 5 + 5 + 4;
    return max_blindex;
}

/* compress_block with the dynamic trees or the static ones (fixed). The bit
 * accumulator lives in locals here: stores through s->out (bytes) would
 * otherwise make the compiler reload s->bit_buf after every one. */
static void dz_compress_block(dz_state *s, int fixed)
{
    const uint16_t *lcode = fixed ? dz_static_lcode : s->ltree.code;
    const uint16_t *llen = fixed ? dz_static_llen16 : s->ltree.len;
    const uint16_t *dcode = fixed ? dz_static_dcode : s->dtree.code;
    const uint16_t *dlen = fixed ? dz_static_dlen16 : s->dtree.len;
    uint64_t buf = s->bit_buf;
    unsigned count = s->bit_count;
    uint8_t *out = s->out;

#define DZ_PUT(value, length)                                                                      \
    do {                                                                                           \
        buf |= (uint64_t)(value) << count;                                                         \
        count += (length);                                                                         \
    } while (0)
/* dz_put32 on the locals; bytes past out_end are only counted */
#define DZ_FLUSH32()                                                                               \
    do {                                                                                           \
        if (s->out_end - out >= 4) {                                                               \
            out[0] = (uint8_t)buf;                                                                 \
            out[1] = (uint8_t)(buf >> 8);                                                          \
            out[2] = (uint8_t)(buf >> 16);                                                         \
            out[3] = (uint8_t)(buf >> 24);                                                         \
        } else {                                                                                   \
            for (int byte = 0; out + byte < s->out_end; byte++) {                                  \
                out[byte] = (uint8_t)(buf >> (8 * byte));                                          \
            }                                                                                      \
        }                                                                                          \
        out += 4;                                                                                  \
        buf >>= 32;                                                                                \
        count -= 32;                                                                               \
    } while (0)
    for (unsigned i = 0; i < s->sym_count; i++) {
        unsigned sym = s->sym[i];
        unsigned dist;
        unsigned lc;
        unsigned code;

        if (sym < DZ_MATCH) {
            DZ_PUT(lcode[sym], llen[sym]);
        } else {
            dist = s->match_dist[sym - DZ_MATCH];
            lc = s->match_lc[sym - DZ_MATCH];
            /* at most 15 + 5 + 15 + 13 = 48 bits: one flush after them */
            code = dz_length_code[lc];
            DZ_PUT(lcode[code + DZ_LITERALS + 1], llen[code + DZ_LITERALS + 1]);
            if (dz_extra_lbits[code] != 0) { /* not for 258: code 28 has no base */
                DZ_PUT(lc - dz_base_length[code], dz_extra_lbits[code]);
            }
            dist--;
            code = dz_d_code(dist);
            if (count >= 32) {
                DZ_FLUSH32();
            }
            DZ_PUT(dcode[code], dlen[code]);
            DZ_PUT(dist - dz_base_dist[code], dz_extra_dbits[code]);
        }
        if (count >= 32) {
            DZ_FLUSH32();
        }
    }
#undef DZ_PUT
#undef DZ_FLUSH32
    s->out = out;
    s->bit_buf = buf;
    s->bit_count = count;
    dz_send_bits(s, lcode[DZ_END_BLOCK], llen[DZ_END_BLOCK]);
}

/* A stored block: after the 3 header bits, the byte-aligned LEN, NLEN and
 * the input itself. */
static void dz_send_stored(dz_state *s, const uint8_t *in, size_t len)
{
    dz_send_bits(s, 0 + 1, 3); /* stored, last */
    dz_windup(s);
    if ((size_t)(s->out_end - s->out) >= len + 4) {
        s->out[0] = (uint8_t)len;
        s->out[1] = (uint8_t)(len >> 8);
        s->out[2] = (uint8_t)~len;
        s->out[3] = (uint8_t)(~len >> 8);
        memcpy(s->out + 4, in, len);
    }
    s->out += len + 4; /* past out_end only counts; the caller checks */
}

/* sum f * len of an optimal prefix code (Huffman's, with no length limit)
 * for count leaves whose weights are counted in weights[] (weights[w]:
 * leaves of weight w, w <= total): the sum of the merged weights, the same
 * however ties are broken. Merging the two lightest items never creates one
 * lighter than the lightest left, so the histogram is walked upwards once,
 * merging pairs of equal weight in bulk. Leaves weights[] all zero again. */
static unsigned long dz_huffman_cost(uint16_t *weights, unsigned count, unsigned total)
{
    unsigned long cost = 0;
    unsigned v = 1;

    if (count == 1) {
        weights[total] = 0;
        return total; /* zlib adds a second code: this one has length 1 */
    }
    while (count > 1) {
        unsigned u;
        while (weights[v] == 0) {
            v++;
        }
        if (weights[v] >= 2) {
            unsigned pairs = weights[v] / 2u;
            weights[v] = (uint16_t)(weights[v] - 2 * pairs);
            weights[2 * v] = (uint16_t)(weights[2 * v] + pairs);
            cost += 2ul * v * pairs;
            count -= pairs;
            continue;
        }
        u = v + 1;
        while (weights[u] == 0) {
            u++;
        }
        weights[v] = 0;
        weights[u]--;
        weights[v + u]++;
        cost += v + u;
        count--;
    }
    weights[total] = 0; /* the root */
    return cost;
}

/* dz_huffman_cost for four weights (0 = absent), without the histogram. */
static unsigned long dz_huffman_cost4(const unsigned weight[4])
{
    unsigned w[4] = {weight[0], weight[1], weight[2], weight[3]};
    unsigned n = 0;
    unsigned long cost = 0;

    for (int i = 0; i < 4; i++) {
        if (w[i] != 0) {
            w[n++] = w[i];
        }
    }
    if (n == 1) {
        return w[0]; /* zlib adds a second code: this one has length 1 */
    }
    while (n > 1) {
        /* the two smallest to the front, merged into one */
        for (unsigned k = 0; k < 2; k++) {
            unsigned min = k;
            unsigned t;
            for (unsigned i = k + 1; i < n; i++) {
                if (w[i] < w[min]) {
                    min = i;
                }
            }
            t = w[k];
            w[k] = w[min];
            w[min] = t;
        }
        w[0] += w[1];
        cost += w[0];
        w[1] = w[--n];
    }
    return cost;
}

/* What a lower bound on the dynamic block needs to know about the symbols
 * zlib's send_tree writes for a tree's code lengths (the "bit length"
 * symbols 0..18), by class. */
enum { DZ_ZEROS, DZ_REP_3_10_CLASS, DZ_REP_11_138_CLASS, DZ_NON_ZERO, DZ_CLASSES };
typedef struct dz_bl_census {
    /* [DZ_ZEROS] symbol 0: zero runs under 3, one per length;
     * [DZ_REP_3_10_CLASS] symbol 17 (3 extra bits): zero runs of 3..10;
     * [DZ_REP_11_138_CLASS] symbol 18 (7 extra bits): zero runs of 11..138;
     * [DZ_NON_ZERO] symbols 1..16, at least */
    unsigned count[DZ_CLASSES];
} dz_bl_census;

/* A run of r zero lengths, as scan_tree splits it: chunks of at most 138. */
static void dz_census_zero_run(dz_bl_census *c, unsigned r)
{
    while (r > 138) {
        c->count[DZ_REP_11_138_CLASS]++;
        r -= 138;
    }
    if (r >= 11) {
        c->count[DZ_REP_11_138_CLASS]++;
    } else if (r >= 3) {
        c->count[DZ_REP_3_10_CLASS]++;
    } else {
        c->count[DZ_ZEROS] += r;
    }
}

/* A run of k non-zero lengths (k consecutive used symbols) takes at least:
 * k symbols when k < 4 (after a zero, scan_tree repeats a length only for 4
 * or more in a row); otherwise 2 (a length, then code 16 for up to 6 more),
 * and no symbol after that covers more than 6 lengths. */
static void dz_census_used_run(dz_bl_census *c, unsigned k)
{
    if (k < 4) {
        c->count[DZ_NON_ZERO] += k;
    } else {
        c->count[DZ_NON_ZERO] += k <= 12 ? 2 : (k + 5) / 6;
    }
}

/* Adds the used symbol at position n to the census of its tree's code
 * lengths (zlib gives every used symbol a non-zero length and no other);
 * *prev (-1 at first) and *run carry the state from symbol to symbol. */
static void dz_census_add(dz_bl_census *c, unsigned n, int *prev, unsigned *run)
{
    unsigned gap = (unsigned)((int)n - *prev - 1);

    if (gap == 0) {
        ++*run;
    } else {
        if (*run > 0) {
            dz_census_used_run(c, *run);
        }
        dz_census_zero_run(c, gap);
        *run = 1;
    }
    *prev = (int)n;
}

/* Whether zlib, at this point of _tr_flush_block, could choose the dynamic
 * block, decided from the symbol counts alone; sets *static_lenb as zlib
 * computes it. Each part of the dynamic block's opt_len is bounded below:
 *  - the data: sum f * len over the literal/length tree, and over the
 *    distance tree, is at least the cost of a Huffman code for the used
 *    symbols (optimal among all prefix codes, so no more than zlib's
 *    length-limited one; a code zlib forces for a tree with fewer than two
 *    symbols adds its length - 1 >= 0); the extra bits are the same for
 *    every code;
 *  - the bit-length symbols of both trees: the used symbols get non-zero
 *    lengths and the others zero, so the zero runs, hence the symbols 0, 17
 *    and 18, are known exactly, and the runs of used symbols need at least
 *    dz_census_used_run symbols among 1..16. They are coded with a prefix
 *    code too: at least the Huffman cost of these four classes (merging
 *    symbols into a class and dropping occurrences only lowers it), plus the
 *    extra bits of 17 and 18;
 *  - the header: 5 + 5 + 4 bits, and 3 bits for each bit-length code up to
 *    the last one used in zlib's order (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11,
 *    4, 12, 3, 13, 2, 14, 1, 15), at least 4. With K used literal/length
 *    symbols, some has a code of at most floor(log2 K) bits (Kraft, for the
 *    full tree Huffman builds: a tree of at most 1059 weight is at most 15
 *    deep, so zlib never shortens it), and a distance tree of at most two
 *    used codes has two codes of length 1.
 * When even that bound is not below both the fixed block and the stored one,
 * zlib picks one of those, and which one depends on static_len alone. */
static int dz_dynamic_possible(dz_state *s, size_t len, unsigned long *static_lenb)
{
    /* position of code length 1..7 in zlib's bit-length order */
    static const uint8_t rank_of_length[8] = {0, 17, 15, 13, 11, 9, 7, 5};
    const dz_tree *lt = &s->ltree;
    const dz_tree *dt = &s->dtree;
    uint16_t *weights = s->weights;
    dz_bl_census census = {{0, 0, 0, 0}};
    /* the extra bits of lengths and distances, the same in every block */
    unsigned long static_bits = s->extra_bits;
    unsigned long bound = 5 + 5 + 4 + s->extra_bits;
    unsigned used = 0;
    unsigned dist_used = 0;
    unsigned dist_total = 0;
    unsigned dist_pos[DZ_D_CODES];
    unsigned floor_log2;
    int max_blindex = 3;
    int prev = -1;
    unsigned run = 0;

    for (unsigned w = 0; w < sizeof(s->lit_used) / sizeof(s->lit_used[0]); w++) {
        for (uint64_t word = s->lit_used[w]; word != 0; word &= word - 1) {
            unsigned n = w * 64 + (unsigned)__builtin_ctzll(word);
            unsigned f = lt->freq[n];

            static_bits += (unsigned long)f * dz_static_llen[n];
            weights[f]++;
            used++;
            dz_census_add(&census, n, &prev, &run);
        }
    }
    dz_census_used_run(&census, run);
    bound += dz_huffman_cost(weights, used, s->sym_count + 1);
    floor_log2 = 31u - (unsigned)__builtin_clz(used);
    if (floor_log2 < 7 && rank_of_length[floor_log2] > max_blindex) {
        max_blindex = rank_of_length[floor_log2];
    }

    prev = -1;
    run = 0;
    dist_pos[0] = 0;
    for (uint32_t word = s->dist_used; word != 0; word &= word - 1) {
        unsigned n = (unsigned)__builtin_ctz(word);
        unsigned f = dt->freq[n];

        static_bits += (unsigned long)f * dz_static_dlen[n];
        weights[f]++;
        dist_total += f;
        dist_pos[dist_used++] = n;
    }
    if (dist_used > 0) {
        bound += dz_huffman_cost(weights, dist_used, dist_total);
    }
    if (dist_used <= 2) {
        /* two codes of length 1, with zlib's forced ones: none used gives
         * codes 0 and 1; one used, d, adds code 1 (d = 0), 2 (d = 1) or 0 */
        max_blindex = rank_of_length[1];
        if (dist_used == 0) {
            dist_pos[1] = 1;
        } else if (dist_used == 1) {
            dist_pos[1] = dist_pos[0] < 2 ? dist_pos[0] + 1 : dist_pos[0];
            dist_pos[0] = dist_pos[0] < 2 ? dist_pos[0] : 0;
        }
        dist_used = 2;
    }
    for (unsigned i = 0; i < dist_used; i++) {
        dz_census_add(&census, dist_pos[i], &prev, &run);
    }
    dz_census_used_run(&census, run);
    *static_lenb = (static_bits + 3 + 7) >> 3;

    bound += dz_huffman_cost4(census.count) + 3ul * census.count[DZ_REP_3_10_CLASS] +
             7ul * census.count[DZ_REP_11_138_CLASS];
    bound += 3ul * ((unsigned long)max_blindex + 1);
    return ((bound + 3 + 7) >> 3) < (*static_lenb < len + 4 ? *static_lenb : len + 4);
}

/* _tr_flush_block for the last (and only) block of the stream */
static void dz_flush_block(dz_state *s, const uint8_t *in, size_t len)
{
    unsigned long opt_lenb;
    unsigned long static_lenb;
    int max_blindex;

    if (!dz_dynamic_possible(s, len, &static_lenb)) {
        /* zlib's choice between the two with opt_lenb >= min(static, stored) */
        if (len + 4 <= static_lenb) {
            dz_send_stored(s, in, len);
        } else {
            dz_send_bits(s, (1 << 1) + 1, 3);
            dz_compress_block(s, 1);
        }
        dz_windup(s);
        return;
    }
    dz_build_tree(s, &s->ltree);
    dz_build_tree(s, &s->dtree);
    max_blindex = dz_build_bl_tree(s);
    opt_lenb = (s->opt_len + 3 + 7) >> 3;
    static_lenb = (s->static_len + 3 + 7) >> 3;
    if (static_lenb <= opt_lenb) {
        opt_lenb = static_lenb;
    }
    if (len + 4 <= opt_lenb) {
        dz_send_stored(s, in, len);
    } else if (static_lenb == opt_lenb) {
        dz_send_bits(s, (1 << 1) + 1, 3);
        dz_compress_block(s, 1);
    } else {
        dz_send_bits(s, (2 << 1) + 1, 3);
        dz_send_bits(s, (unsigned)(s->ltree.max_code + 1 - 257), 5);
        dz_send_bits(s, (unsigned)s->dtree.max_code, 5);
        dz_send_bits(s, (unsigned)(max_blindex + 1 - 4), 4);
        for (int rank = 0; rank <= max_blindex; rank++) {
            dz_send_bits(s, s->bltree.len[dz_bl_order[rank]], 3);
        }
        dz_tree_runs(s, &s->ltree, s->ltree.max_code, 1);
        dz_tree_runs(s, &s->dtree, s->dtree.max_code, 1);
        dz_compress_block(s, 0);
    }
    dz_windup(s);
}

/* ---- matching (deflate.c) ---- */

static unsigned dz_longest_match(const dz_state *s, const uint8_t *in, unsigned strstart,
                                 unsigned lookahead, unsigned cur, unsigned prev_length,
                                 unsigned *match_start)
{
    unsigned chain = DZ_MAX_CHAIN;
    unsigned nice = DZ_NICE_LENGTH;
    unsigned best = prev_length;
    unsigned max_len = lookahead < DZ_MAX_MATCH ? lookahead : DZ_MAX_MATCH;
    const uint8_t *scan = in + strstart;

    if (prev_length >= DZ_GOOD_LENGTH) {
        chain >>= 2;
    }
    if (nice > lookahead) {
        nice = lookahead;
    }
    do {
        const uint8_t *match = in + cur;
        unsigned len = 0;
        /* zlib first rejects candidates whose bytes at best_len or at 0..1
         * differ: a shortcut for "cannot be longer than best" */
        if (best < max_len && match[best] == scan[best] && match[0] == scan[0]) {
            while (len < max_len && match[len] == scan[len]) {
                len++;
            }
        }
        if (len > best) {
            *match_start = cur;
            best = len;
            if (len >= nice) {
                break;
            }
        }
        cur = s->prev[cur];
    } while (cur > 0 && --chain != 0);
    return best <= lookahead ? best : lookahead;
}

/* zlib's UPDATE_HASH: the hash of the 3 bytes ending with c */
static inline unsigned dz_hash(unsigned h, unsigned c)
{
    return ((h << DZ_HASH_SHIFT) ^ c) & DZ_HASH_MASK;
}

/* zlib's INSERT_STRING for position pos with hash h: the chain's head */
static inline unsigned dz_insert(dz_state *s, unsigned pos, unsigned h)
{
    unsigned head = s->head[h];

    head = head > s->base ? head - s->base : 0; /* older calls' entries are NIL */
    s->prev[pos] = (uint16_t)head;
    s->head[h] = s->base + pos;
    return head;
}

static void dz_tally_lit(dz_state *s, unsigned c)
{
    s->sym[s->sym_count++] = (uint16_t)c;
    s->ltree.freq[c]++;
    s->lit_used[c / 64] |= (uint64_t)1 << (c % 64);
}

static void dz_tally_dist(dz_state *s, unsigned dist, unsigned lc)
{
    unsigned lcode = dz_length_code[lc] + DZ_LITERALS + 1;
    unsigned dcode = dz_d_code(dist - 1);

    s->extra_bits += dz_extra_lbits[lcode - DZ_LITERALS - 1] + dz_extra_dbits[dcode];
    s->match_dist[s->match_count] = (uint16_t)dist;
    s->match_lc[s->match_count] = (uint8_t)lc;
    s->sym[s->sym_count++] = (uint16_t)(DZ_MATCH + s->match_count++);
    s->ltree.freq[lcode]++;
    s->lit_used[lcode / 64] |= (uint64_t)1 << (lcode % 64);
    s->dtree.freq[dcode]++;
    s->dist_used |= (uint32_t)1 << dcode;
}

/* deflate_slow over the whole input at once, then the block. */
static void dz_deflate_block(dz_state *s, const uint8_t *in, unsigned n)
{
    unsigned strstart = 0;
    unsigned lookahead = n;
    unsigned prev_length;
    unsigned match_length = DZ_MIN_MATCH - 1;
    unsigned match_start = 0;
    unsigned prev_match;
    unsigned ins_h = 0;
    int match_available = 0;

    if (n >= DZ_MIN_MATCH) {
        ins_h = ((unsigned)in[0] << DZ_HASH_SHIFT ^ in[1]) & DZ_HASH_MASK;
    }
    while (lookahead > 0) {
        unsigned hash_head = 0;
        if (match_available && match_length < DZ_MIN_MATCH) {
            /* the common case, as the general step below takes it: no match
             * pending and none starting here (empty chain), so the previous
             * byte goes out as a literal */
            while (lookahead >= DZ_MIN_MATCH &&
                   (ins_h = dz_hash(ins_h, in[strstart + DZ_MIN_MATCH - 1]),
                    hash_head = dz_insert(s, strstart, ins_h)) == 0) {
                dz_tally_lit(s, in[strstart - 1]);
                strstart++;
                lookahead--;
            }
        } else if (lookahead >= DZ_MIN_MATCH) {
            ins_h = dz_hash(ins_h, in[strstart + DZ_MIN_MATCH - 1]);
            hash_head = dz_insert(s, strstart, ins_h);
        }
        prev_length = match_length;
        prev_match = match_start;
        match_length = DZ_MIN_MATCH - 1;
        if (hash_head != 0 && prev_length < DZ_MAX_LAZY) {
            match_length =
                dz_longest_match(s, in, strstart, lookahead, hash_head, prev_length, &match_start);
            if (match_length == DZ_MIN_MATCH && strstart - match_start > DZ_TOO_FAR) {
                match_length = DZ_MIN_MATCH - 1;
            }
        }
        if (prev_length >= DZ_MIN_MATCH && match_length <= prev_length) {
            unsigned max_insert = strstart + lookahead - DZ_MIN_MATCH;
            dz_tally_dist(s, strstart - 1 - prev_match, prev_length - DZ_MIN_MATCH);
            lookahead -= prev_length - 1;
            prev_length -= 2;
            do {
                if (++strstart <= max_insert) {
                    ins_h = dz_hash(ins_h, in[strstart + DZ_MIN_MATCH - 1]);
                    dz_insert(s, strstart, ins_h);
                }
            } while (--prev_length != 0);
            match_available = 0;
            match_length = DZ_MIN_MATCH - 1;
            strstart++;
        } else if (match_available) {
            dz_tally_lit(s, in[strstart - 1]);
            strstart++;
            lookahead--;
        } else {
            match_available = 1;
            strstart++;
            lookahead--;
        }
    }
    if (match_available) {
        dz_tally_lit(s, in[strstart - 1]);
    }
    dz_flush_block(s, in, n);
}

/* zlib's static_l_desc, static_d_desc and static_bl_desc */
static void dz_tree_setup(dz_state *s)
{
    s->ltree.elems = DZ_L_CODES;
    s->ltree.max_length = DZ_MAX_BITS;
    s->ltree.extra_base = DZ_LITERALS + 1;
    s->ltree.extra = dz_extra_lbits;
    s->ltree.static_len = dz_static_llen;
    s->dtree.elems = DZ_D_CODES;
    s->dtree.max_length = DZ_MAX_BITS;
    s->dtree.extra_base = 0;
    s->dtree.extra = dz_extra_dbits;
    s->dtree.static_len = dz_static_dlen;
    s->bltree.elems = DZ_BL_CODES;
    s->bltree.max_length = DZ_MAX_BL_BITS;
    s->bltree.extra_base = 0;
    s->bltree.extra = dz_extra_blbits;
    s->bltree.static_len = NULL;
}

/* Adler-32 (RFC 1950) sums over in[0..n), continued from *a and *b, with
 * no modulo: the caller keeps the whole stream under zlib's NMAX (5552)
 * bytes, within which neither sum can overflow 32 bits. */
static void dz_adler_sums(uint32_t *a, uint32_t *b, const uint8_t *in, size_t n)
{
    uint32_t sa = *a;
    uint32_t sb = *b;
    size_t i = 0;

    /* 4 bytes a turn: b gains 4a + 4x0 + 3x1 + 2x2 + x3 */
    for (; i + 4 <= n; i += 4) {
        sb += 4 * sa + 4u * in[i] + 3u * in[i + 1] + 2u * in[i + 2] + in[i + 3];
        sa += (uint32_t)in[i] + in[i + 1] + in[i + 2] + in[i + 3];
    }
    for (; i < n; i++) {
        sa += in[i];
        sb += sa;
    }
    *a = sa;
    *b = sb;
}

static unsigned long dz_adler_value(uint32_t a, uint32_t b)
{
    return (unsigned long)(b % 65521u) << 16 | (a % 65521u);
}

/* The zlib stream of in[0..n): header 78 9c, one block, Adler-32. */
static int dz_compress(dz_state *s, const uint8_t *in, size_t n, uint8_t *out, size_t outcap,
                       size_t *outlen)
{
    unsigned long adler;
    uint32_t a = 1;
    uint32_t b = 0;

    if (n > DZ_INPUT_MAX || outcap < 6) {
        return -1;
    }
    if (s->base > UINT32_MAX - 2 * (DZ_INPUT_MAX + 1)) {
        /* once in 4 million tokens: start the stamps again */
        memset(s->head, 0, sizeof(s->head));
        s->base = 0;
    }
    memset(s->ltree.freq, 0, DZ_L_CODES * sizeof(s->ltree.freq[0]));
    memset(s->dtree.freq, 0, DZ_D_CODES * sizeof(s->dtree.freq[0]));
    memset(s->bltree.freq, 0, DZ_BL_CODES * sizeof(s->bltree.freq[0]));
    s->ltree.freq[DZ_END_BLOCK] = 1;
    memset(s->lit_used, 0, sizeof(s->lit_used));
    s->lit_used[DZ_END_BLOCK / 64] = (uint64_t)1 << (DZ_END_BLOCK % 64);
    s->dist_used = 0;
    s->sym_count = 0;
    s->match_count = 0;
    s->extra_bits = 0;
    s->opt_len = 0;
    s->static_len = 0;
    s->out = out + 2;
    s->out_end = out + outcap - 4;
    s->bit_buf = 0;
    s->bit_count = 0;
    out[0] = 0x78; /* deflate, 32 KiB window */
    out[1] = 0x9c; /* level 6 ("default"), check bits */
    dz_deflate_block(s, in, (unsigned)n);
    /* every entry of this call becomes NIL for the next one */
    s->base += (uint32_t)n + 1;
    if (s->out > s->out_end) {
        return -1;
    }
    dz_adler_sums(&a, &b, in, n); /* n <= DZ_INPUT_MAX, under NMAX */
    adler = dz_adler_value(a, b);
    s->out[0] = (uint8_t)(adler >> 24);
    s->out[1] = (uint8_t)(adler >> 16);
    s->out[2] = (uint8_t)(adler >> 8);
    s->out[3] = (uint8_t)adler;
    *outlen = (size_t)(s->out + 4 - out);
    return 0;
}

struct ct_deflater {
    dz_state state; /* 140 KiB, mostly the hash heads */
};

static pthread_once_t static_once = PTHREAD_ONCE_INIT;

ct_deflater *ct_deflater_new(void)
{
    ct_deflater *d;

    pthread_once(&static_once, dz_static_init);
    d = calloc(1, sizeof(*d)); /* zeroed: every hash head starts NIL, base 0 */
    if (d != NULL) {
        dz_tree_setup(&d->state);
    }
    return d;
}

void ct_deflater_free(ct_deflater *d)
{
    free(d);
}

int ct_deflate(ct_deflater *d, const uint8_t *in, size_t n, uint8_t *out, size_t outcap,
               size_t *outlen)
{
    return dz_compress(&d->state, in, n, out, outcap, outlen);
}

/* ---- inflate: stored and fixed-Huffman blocks ---- */

/* Output past this goes to zlib: the Adler-32 sums run without a modulo. A
 * token payload is a few hundred bytes. */
#define IZ_OUTPUT_MAX 5552

/* The decoder's input, output and Adler-32 sums. */
typedef struct iz_state {
    const uint8_t *p, *end; /* the next byte not yet in buf; the input's end */
    uint64_t buf;           /* bits of the stream, LSB first */
    unsigned count;         /* how many of them are valid */
    uint8_t *out;
    size_t pos, cap;
    uint32_t a, b;
} iz_state;

/* At least need (<= 56) bits in buf, or -1 when the input ends first. With
 * 8 bytes at hand they come in one load (the bits past count it also ORs in
 * are the very bits a later load puts there), else byte by byte. Inline
 * whole, so that the decoder's state stays in registers. */
static inline int iz_fill(iz_state *z, unsigned need)
{
    uint64_t v;

    if (z->count >= need) {
        return 0;
    }
    if (z->end - z->p >= 8) {
        memcpy(&v, z->p, 8);
        z->buf |= LITTLE_ENDIAN64(v) << z->count;
        z->p += (63 - z->count) >> 3;
        z->count |= 56;
        return 0;
    }
    while (z->count < need) {
        if (z->p == z->end) {
            return -1;
        }
        z->buf |= (uint64_t)*z->p++ << z->count;
        z->count += 8;
    }
    return 0;
}

static inline unsigned iz_take(iz_state *z, unsigned n)
{
    unsigned v = (unsigned)(z->buf & ((1u << n) - 1));

    z->buf >>= n;
    z->count -= n;
    return v;
}

/* Drops the bits up to the next byte boundary; the input then continues at
 * the returned byte (whole bytes already in buf are given back). */
static const uint8_t *iz_align(iz_state *z)
{
    z->p -= z->count / 8;
    z->buf = 0;
    z->count = 0;
    return z->p;
}

/* A stored block after its 3 header bits: LEN, NLEN, then LEN bytes. */
static int iz_stored(iz_state *z)
{
    const uint8_t *at = iz_align(z);
    unsigned len;

    if (z->end - at < 4) {
        return -1;
    }
    len = (unsigned)at[0] | (unsigned)at[1] << 8;
    if ((len ^ ((unsigned)at[2] | (unsigned)at[3] << 8)) != 0xffff ||
        (size_t)(z->end - at - 4) < len || z->cap - z->pos < len) {
        return -1;
    }
    memcpy(z->out + z->pos, at + 4, len);
    dz_adler_sums(&z->a, &z->b, at + 4, len);
    z->pos += len;
    z->p = at + 4 + len;
    return 0;
}

/* A fixed-Huffman block after its 3 header bits, on a copy of the state in
 * locals. Before each symbol 32 bits must be at hand (its code and extra
 * bits take at most 9 + 5 + 5 + 13): a valid stream always has them, since
 * the 32-bit Adler-32 follows its last block. */
static int iz_fixed(iz_state *state)
{
    iz_state z = *state;
    uint8_t *out = z.out;
    size_t o = z.pos;

    for (;;) {
        unsigned e;
        unsigned sym;
        unsigned len;
        unsigned dist;

        if (iz_fill(&z, 32) != 0) {
            return -1;
        }
        e = iz_fixed_lit[z.buf & 511];
        iz_take(&z, e & 15);
        sym = e >> 4;
        if (sym < DZ_LITERALS) {
            if (o == z.cap) {
                return -1;
            }
            out[o++] = (uint8_t)sym;
            z.a += sym;
            z.b += z.a;
            continue;
        }
        if (sym == DZ_END_BLOCK) {
            break;
        }
        sym -= DZ_LITERALS + 1;
        if (sym >= DZ_LENGTH_CODES) {
            return -1; /* 286 and 287: in the code, invalid in a stream */
        }
        len = sym == DZ_LENGTH_CODES - 1
                  ? DZ_MAX_MATCH
                  : DZ_MIN_MATCH + dz_base_length[sym] + iz_take(&z, dz_extra_lbits[sym]);
        sym = iz_fixed_dist[iz_take(&z, 5)];
        if (sym >= DZ_D_CODES) {
            return -1; /* 30 and 31 likewise */
        }
        dist = 1u + dz_base_dist[sym] + iz_take(&z, dz_extra_dbits[sym]);
        if (dist > o || z.cap - o < len) {
            return -1;
        }
        for (unsigned i = 0; i < len; i++, o++) {
            out[o] = out[o - dist];
            z.a += out[o];
            z.b += z.a;
        }
    }
    z.pos = o;
    *state = z;
    return 0;
}

int ct_inflate(const uint8_t *in, size_t n, uint8_t *out, size_t outcap, size_t *outlen)
{
    iz_state z = {in, in + n, 0, 0, out, 0, outcap < IZ_OUTPUT_MAX ? outcap : IZ_OUTPUT_MAX, 1, 0};
    const uint8_t *at;
    unsigned final;

    pthread_once(&static_once, dz_static_init);
    /* deflate with a 32 KiB window, no preset dictionary, check bits right */
    if (n < 2 + 4 || in[0] != 0x78 || (in[1] & 0x20) != 0 || (in[0] << 8 | in[1]) % 31 != 0) {
        return CT_INFLATE_ASK_ZLIB;
    }
    z.p = in + 2;
    do {
        unsigned type;
        int rc;

        if (iz_fill(&z, 3) != 0) {
            return CT_INFLATE_ASK_ZLIB;
        }
        final = iz_take(&z, 1);
        type = iz_take(&z, 2);
        if (type == 0) {
            rc = iz_stored(&z);
        } else if (type == 1) {
            rc = iz_fixed(&z);
        } else {
            rc = -1; /* dynamic (or the invalid type 3) */
        }
        if (rc != 0) {
            return CT_INFLATE_ASK_ZLIB;
        }
    } while (!final);
    at = iz_align(&z);
    if (z.end - at != 4 || ((unsigned long)at[0] << 24 | (unsigned long)at[1] << 16 |
                            (unsigned long)at[2] << 8 | at[3]) != dz_adler_value(z.a, z.b)) {
        return CT_INFLATE_ASK_ZLIB;
    }
    *outlen = z.pos;
    return CT_INFLATE_OK;
}
