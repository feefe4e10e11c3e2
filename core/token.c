/* AccessToken2 ("007"): the wire format, signing, the strict parser and the
 * Chat builders. The hot path keeps one deflate/inflate stream and one HMAC
 * context per thread, so building a token allocates nothing once warm. */
#include "token.h"

#include "base64.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Largest signing_info the builder writes: far above any real token. */
#define BUILD_PAYLOAD_MAX 1024
#define COMPRESSED_MAX (CT_TOKEN_MAX_CHARS / 4 * 3)

/* ---- deflate ----
 *
 * A token payload is at most 34 + BUILD_PAYLOAD_MAX bytes, and stock zlib
 * spends far more on such an input than the work it needs: deflateReset
 * clears a 64 KiB hash table, and _tr_flush_block walks every tree slot. The
 * encoder below is zlib 1.2.13's level-6 path (deflate_slow, longest_match and
 * trees.c), transcribed for one input that fits the window and one block, so
 * it writes the very bytes deflate(Z_DEFAULT_COMPRESSION, windowBits 15,
 * memLevel 8) writes; tests/unit/core/test_token_deflate.c checks that against
 * the linked zlib for many thousands of payloads. What differs is bookkeeping
 * only, each with the reason it cannot change the output:
 *  - The hash table has zlib's 2^15 buckets and hash function, so every chain
 *    holds the same positions in the same order; only the buckets this input
 *    used are cleared afterwards, instead of the whole table.
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
 *    byte stream is the same however the bits are buffered. */

#define DZ_MIN_MATCH 3
#define DZ_MAX_MATCH 258
#define DZ_HASH_BITS 15 /* memLevel 8 + 7 */
#define DZ_HASH_SIZE (1u << DZ_HASH_BITS)
#define DZ_HASH_MASK (DZ_HASH_SIZE - 1)
#define DZ_HASH_SHIFT 5 /* (hash_bits + MIN_MATCH - 1) / MIN_MATCH */
#define DZ_INPUT_MAX (2 + CT_SIGNATURE_LEN + BUILD_PAYLOAD_MAX)
/* level 6 in zlib's configuration_table: good, lazy, nice, chain */
#define DZ_GOOD_LENGTH 8
#define DZ_MAX_LAZY 16
#define DZ_NICE_LENGTH 128
#define DZ_MAX_CHAIN 128
#define DZ_TOO_FAR 4096
#define DZ_LITERALS 256
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
    uint16_t head[DZ_HASH_SIZE]; /* 0 (NIL) everywhere between calls */
    uint16_t prev[DZ_INPUT_MAX];
    uint16_t sym_dist[DZ_INPUT_MAX];
    uint8_t sym_lc[DZ_INPUT_MAX];
    unsigned sym_count;
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
        bl_count[len[n]]++;
    }
    dz_gen_codes(dz_static_lcode, len, DZ_L_CODES + 1, bl_count);
    for (n = 0; n < DZ_D_CODES; n++) {
        dz_static_dlen[n] = 5;
        dz_static_dcode[n] = (uint16_t)dz_bi_reverse((unsigned)n, 5);
    }
}

static unsigned dz_d_code(unsigned dist)
{
    return dist < 256 ? dz_dist_code[dist] : dz_dist_code[256 + (dist >> 7)];
}

/* ---- bit writer (send_bits, bi_windup) ---- */

static void dz_send_bits(dz_state *s, unsigned value, unsigned length)
{
    s->bit_buf |= (uint64_t)value << s->bit_count;
    s->bit_count += length;
    while (s->bit_count >= 8) {
        if (s->out < s->out_end) {
            *s->out = (uint8_t)s->bit_buf;
        }
        s->out++; /* past out_end only counts; the caller checks */
        s->bit_buf >>= 8;
        s->bit_count -= 8;
    }
}

static void dz_windup(dz_state *s)
{
    if (s->bit_count > 0) {
        dz_send_bits(s, 0, 8 - s->bit_count);
    }
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

static void dz_scan_tree(dz_state *s, dz_tree *t, int max_code)
{
    int prevlen = -1;
    int nextlen = t->len[0];
    int count = 0;
    int max_count = 7;
    int min_count = 4;

    if (nextlen == 0) {
        max_count = 138;
        min_count = 3;
    }
    t->len[max_code + 1] = 0xffff; /* guard, as zlib sets it */
    for (int n = 0; n <= max_code; n++) {
        int curlen = nextlen;
        nextlen = t->len[n + 1];
        if (++count < max_count && curlen == nextlen) {
            continue;
        } else if (count < min_count) {
            s->bltree.freq[curlen] = (uint16_t)(s->bltree.freq[curlen] + count);
        } else if (curlen != 0) {
            if (curlen != prevlen) {
                s->bltree.freq[curlen]++;
            }
            s->bltree.freq[DZ_REP_3_6]++;
        } else if (count <= 10) {
            s->bltree.freq[DZ_REPZ_3_10]++;
        } else {
            s->bltree.freq[DZ_REPZ_11_138]++;
        }
        count = 0;
        prevlen = curlen;
        if (nextlen == 0) {
            max_count = 138;
            min_count = 3;
        } else if (curlen == nextlen) {
            max_count = 6;
            min_count = 3;
        } else {
            max_count = 7;
            min_count = 4;
        }
    }
}

static void dz_send_code(dz_state *s, const dz_tree *t, int c)
{
    dz_send_bits(s, t->code[c], t->len[c]);
}

static void dz_send_tree(dz_state *s, const dz_tree *t, int max_code)
{
    const dz_tree *bl = &s->bltree;
    int prevlen = -1;
    int nextlen = t->len[0];
    int count = 0;
    int max_count = 7;
    int min_count = 4;

    if (nextlen == 0) {
        max_count = 138;
        min_count = 3;
    }
    for (int n = 0; n <= max_code; n++) {
        int curlen = nextlen;
        nextlen = t->len[n + 1];
        if (++count < max_count && curlen == nextlen) {
            continue;
        } else if (count < min_count) {
            do {
                dz_send_code(s, bl, curlen);
            } while (--count != 0);
        } else if (curlen != 0) {
            if (curlen != prevlen) {
                dz_send_code(s, bl, curlen);
                count--;
            }
            dz_send_code(s, bl, DZ_REP_3_6);
            dz_send_bits(s, (unsigned)count - 3, 2);
        } else if (count <= 10) {
            dz_send_code(s, bl, DZ_REPZ_3_10);
            dz_send_bits(s, (unsigned)count - 3, 3);
        } else {
            dz_send_code(s, bl, DZ_REPZ_11_138);
            dz_send_bits(s, (unsigned)count - 11, 7);
        }
        count = 0;
        prevlen = curlen;
        if (nextlen == 0) {
            max_count = 138;
            min_count = 3;
        } else if (curlen == nextlen) {
            max_count = 6;
            min_count = 3;
        } else {
            max_count = 7;
            min_count = 4;
        }
    }
}

static int dz_build_bl_tree(dz_state *s)
{
    int max_blindex;

    dz_scan_tree(s, &s->ltree, s->ltree.max_code);
    dz_scan_tree(s, &s->dtree, s->dtree.max_code);
    dz_build_tree(s, &s->bltree);
    for (max_blindex = DZ_BL_CODES - 1; max_blindex >= 3; max_blindex--) {
        if (s->bltree.len[dz_bl_order[max_blindex]] != 0) {
            break;
        }
    }
    s->opt_len += 3 * ((unsigned long)max_blindex + 1) + 5 + 5 + 4;
    return max_blindex;
}

/* compress_block with the dynamic trees (dcode NULL) or the static ones */
static void dz_compress_block(dz_state *s, int fixed)
{
    for (unsigned i = 0; i < s->sym_count; i++) {
        unsigned dist = s->sym_dist[i];
        unsigned lc = s->sym_lc[i];
        unsigned code;
        unsigned extra;

        if (dist == 0) {
            if (fixed) {
                dz_send_bits(s, dz_static_lcode[lc], dz_static_llen[lc]);
            } else {
                dz_send_code(s, &s->ltree, (int)lc);
            }
            continue;
        }
        code = dz_length_code[lc];
        if (fixed) {
            dz_send_bits(s, dz_static_lcode[code + DZ_LITERALS + 1],
                         dz_static_llen[code + DZ_LITERALS + 1]);
        } else {
            dz_send_code(s, &s->ltree, (int)(code + DZ_LITERALS + 1));
        }
        extra = dz_extra_lbits[code];
        if (extra != 0) {
            dz_send_bits(s, lc - dz_base_length[code], extra);
        }
        dist--;
        code = dz_d_code(dist);
        if (fixed) {
            dz_send_bits(s, dz_static_dcode[code], dz_static_dlen[code]);
        } else {
            dz_send_code(s, &s->dtree, (int)code);
        }
        extra = dz_extra_dbits[code];
        if (extra != 0) {
            dz_send_bits(s, dist - dz_base_dist[code], extra);
        }
    }
    if (fixed) {
        dz_send_bits(s, dz_static_lcode[DZ_END_BLOCK], dz_static_llen[DZ_END_BLOCK]);
    } else {
        dz_send_code(s, &s->ltree, DZ_END_BLOCK);
    }
}

/* _tr_flush_block for the last (and only) block of the stream */
static void dz_flush_block(dz_state *s, const uint8_t *in, size_t len)
{
    unsigned long opt_lenb;
    unsigned long static_lenb;
    int max_blindex;

    dz_build_tree(s, &s->ltree);
    dz_build_tree(s, &s->dtree);
    max_blindex = dz_build_bl_tree(s);
    opt_lenb = (s->opt_len + 3 + 7) >> 3;
    static_lenb = (s->static_len + 3 + 7) >> 3;
    if (static_lenb <= opt_lenb) {
        opt_lenb = static_lenb;
    }
    if (len + 4 <= opt_lenb) {
        dz_send_bits(s, 0 + 1, 3); /* stored, last */
        dz_windup(s);
        dz_send_bits(s, (unsigned)len, 16);
        dz_send_bits(s, (unsigned)~len & 0xffff, 16);
        for (size_t i = 0; i < len; i++) {
            dz_send_bits(s, in[i], 8);
        }
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
        dz_send_tree(s, &s->ltree, s->ltree.max_code);
        dz_send_tree(s, &s->dtree, s->dtree.max_code);
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

static unsigned dz_insert(dz_state *s, const uint8_t *in, unsigned pos, unsigned *ins_h)
{
    unsigned head;

    *ins_h = ((*ins_h << DZ_HASH_SHIFT) ^ in[pos + DZ_MIN_MATCH - 1]) & DZ_HASH_MASK;
    head = s->head[*ins_h];
    s->prev[pos] = (uint16_t)head;
    s->head[*ins_h] = (uint16_t)pos;
    return head;
}

static void dz_tally_lit(dz_state *s, unsigned c)
{
    s->sym_dist[s->sym_count] = 0;
    s->sym_lc[s->sym_count++] = (uint8_t)c;
    s->ltree.freq[c]++;
}

static void dz_tally_dist(dz_state *s, unsigned dist, unsigned lc)
{
    s->sym_dist[s->sym_count] = (uint16_t)dist;
    s->sym_lc[s->sym_count++] = (uint8_t)lc;
    s->ltree.freq[dz_length_code[lc] + DZ_LITERALS + 1]++;
    s->dtree.freq[dz_d_code(dist - 1)]++;
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
        if (lookahead >= DZ_MIN_MATCH) {
            hash_head = dz_insert(s, in, strstart, &ins_h);
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
                    dz_insert(s, in, strstart, &ins_h);
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

/* The zlib stream of in[0..n): header 78 9c, one block, Adler-32. */
static int dz_compress(dz_state *s, const uint8_t *in, size_t n, uint8_t *out, size_t outcap,
                       size_t *outlen)
{
    unsigned long adler;

    if (n > DZ_INPUT_MAX || outcap < 6) {
        return CT_E_INTERNAL;
    }
    memset(s->ltree.freq, 0, DZ_L_CODES * sizeof(s->ltree.freq[0]));
    memset(s->dtree.freq, 0, DZ_D_CODES * sizeof(s->dtree.freq[0]));
    memset(s->bltree.freq, 0, DZ_BL_CODES * sizeof(s->bltree.freq[0]));
    s->ltree.freq[DZ_END_BLOCK] = 1;
    s->sym_count = 0;
    s->opt_len = 0;
    s->static_len = 0;
    s->out = out + 2;
    s->out_end = out + outcap - 4;
    s->bit_buf = 0;
    s->bit_count = 0;
    out[0] = 0x78; /* deflate, 32 KiB window */
    out[1] = 0x9c; /* level 6 ("default"), check bits */
    dz_deflate_block(s, in, (unsigned)n);
    /* the table is all NIL again for the next call: undo only what we set */
    for (size_t pos = 0; pos + DZ_MIN_MATCH <= n; pos++) {
        unsigned h = ((unsigned)in[pos] << 2 * DZ_HASH_SHIFT ^
                      (unsigned)in[pos + 1] << DZ_HASH_SHIFT ^ in[pos + 2]) &
                     DZ_HASH_MASK;
        s->head[h] = 0;
    }
    if (s->out > s->out_end) {
        return CT_E_INTERNAL;
    }
    adler = adler32(adler32(0L, Z_NULL, 0), in, (uInt)n);
    s->out[0] = (uint8_t)(adler >> 24);
    s->out[1] = (uint8_t)(adler >> 16);
    s->out[2] = (uint8_t)(adler >> 8);
    s->out[3] = (uint8_t)adler;
    *outlen = (size_t)(s->out + 4 - out);
    return CT_OK;
}

typedef struct codec_state {
    dz_state deflater; /* 74 KiB, mostly the hash heads */
    z_stream inflater;
    int inflater_ready;
    EVP_MAC_CTX *hmac;
    uint8_t compressed[COMPRESSED_MAX];
} codec_state;

static pthread_once_t state_once = PTHREAD_ONCE_INIT;
static pthread_key_t state_key;
static EVP_MAC *hmac_algorithm;
static _Thread_local codec_state *thread_state;

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void state_free(void *p)
{
    codec_state *st = p;

    if (st == NULL) {
        return;
    }
    if (st->inflater_ready) {
        inflateEnd(&st->inflater);
    }
    EVP_MAC_CTX_free(st->hmac);
    free(st);
}

static void state_init_once(void)
{
    pthread_key_create(&state_key, state_free);
    dz_static_init();
    hmac_algorithm = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* The calling thread's codec state, created on first use. */
static codec_state *state_get(void)
{
    codec_state *st = thread_state;
    OSSL_PARAM params[2];

    if (st != NULL) {
        return st;
    }
    pthread_once(&state_once, state_init_once);
    if (hmac_algorithm == NULL) {
        return NULL;
    }
    st = calloc(1, sizeof(*st)); /* zeroed: every hash head starts NIL */
    if (st == NULL) {
        return NULL;
    }
    dz_tree_setup(&st->deflater);
    st->hmac = EVP_MAC_CTX_new(hmac_algorithm);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (st->hmac == NULL || !EVP_MAC_CTX_set_params(st->hmac, params)) {
        state_free(st);
        return NULL;
    }
    pthread_setspecific(state_key, st);
    thread_state = st;
    return st;
}

static int hmac_sha256(codec_state *st, const uint8_t *key, size_t keylen, const uint8_t *msg,
                       size_t msglen, uint8_t out[CT_SIGNATURE_LEN])
{
    size_t outlen = 0;

    if (!EVP_MAC_init(st->hmac, key, keylen, NULL) || !EVP_MAC_update(st->hmac, msg, msglen) ||
        !EVP_MAC_final(st->hmac, out, &outlen, CT_SIGNATURE_LEN) || outlen != CT_SIGNATURE_LEN) {
        return CT_E_INTERNAL;
    }
    return CT_OK;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* signature = HMAC(HMAC(LE32(salt), HMAC(LE32(issue_ts), certificate)), info) */
static int sign(codec_state *st, const char *certificate, uint32_t issue_ts, uint32_t salt,
                const uint8_t *info, size_t infolen, uint8_t out[CT_SIGNATURE_LEN])
{
    uint8_t le[4];
    uint8_t k1[CT_SIGNATURE_LEN];
    uint8_t k[CT_SIGNATURE_LEN];
    int rc;

    put_le32(le, issue_ts);
    rc = hmac_sha256(st, le, 4, (const uint8_t *)certificate, CT_HEX_ID_LEN, k1);
    if (rc == CT_OK) {
        put_le32(le, salt);
        rc = hmac_sha256(st, le, 4, k1, sizeof(k1), k);
    }
    if (rc == CT_OK) {
        rc = hmac_sha256(st, k, sizeof(k), info, infolen, out);
    }
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k, sizeof(k));
    return rc;
}

int ct_is_hex_id(const char *s)
{
    size_t i;

    if (s == NULL) {
        return 0;
    }
    for (i = 0; i < CT_HEX_ID_LEN; i++) {
        char c = s[i];
        int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex) {
            return 0;
        }
    }
    return s[CT_HEX_ID_LEN] == '\0';
}

/* ---- writer ---- */

typedef struct writer {
    uint8_t *p;
    uint8_t *end;
    int overflow;
} writer;

static void w_bytes(writer *w, const void *data, size_t len)
{
    if (w->overflow || (size_t)(w->end - w->p) < len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p, data, len);
    w->p += len;
}

static void w_u16(writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    w_bytes(w, b, 2);
}

static void w_u32(writer *w, uint32_t v)
{
    uint8_t b[4];
    put_le32(b, v);
    w_bytes(w, b, 4);
}

static void w_string(writer *w, const void *data, size_t len)
{
    if (len > UINT16_MAX) {
        w->overflow = 1;
        return;
    }
    w_u16(w, (uint16_t)len);
    w_bytes(w, data, len);
}

static int pack_service(writer *w, const ct_service_spec *s, char *err, size_t errlen)
{
    const ct_privilege *sorted[CT_MAX_PRIVILEGES];
    uint16_t n = s->privilege_count;

    if (n > CT_MAX_PRIVILEGES || (n > 0 && s->privileges == NULL) ||
        (s->string_count > 0 && s->strings == NULL)) {
        set_error(err, errlen, "service %u: bad privilege or field list", s->type);
        return CT_E_ARGUMENT;
    }
    /* the references keep privileges in an ordered map: sorted, unique */
    for (uint16_t i = 0; i < n; i++) {
        uint16_t j = i;
        while (j > 0 && sorted[j - 1]->id > s->privileges[i].id) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = &s->privileges[i];
    }
    for (uint16_t i = 1; i < n; i++) {
        if (sorted[i]->id == sorted[i - 1]->id) {
            set_error(err, errlen, "service %u: privilege %u given twice", s->type, sorted[i]->id);
            return CT_E_ARGUMENT;
        }
    }
    w_u16(w, s->type);
    w_u16(w, n);
    for (uint16_t i = 0; i < n; i++) {
        w_u16(w, sorted[i]->id);
        w_u32(w, sorted[i]->value);
    }
    for (uint16_t i = 0; i < s->string_count; i++) {
        const char *str = s->strings[i] != NULL ? s->strings[i] : "";
        w_string(w, str, strlen(str));
    }
    return CT_OK;
}

static int deflate_payload(codec_state *st, const uint8_t *in, size_t inlen, uint8_t *out,
                           size_t outcap, size_t *outlen)
{
    return dz_compress(&st->deflater, in, inlen, out, outcap, outlen);
}

int ct_token_build(const ct_build_params *params, char *out, size_t outlen, size_t *written,
                   char *err, size_t errlen)
{
    /* content = pack_string(signature) + signing_info, built in one buffer */
    uint8_t content[2 + CT_SIGNATURE_LEN + BUILD_PAYLOAD_MAX];
    uint8_t compressed[BUILD_PAYLOAD_MAX + 128];
    const ct_service_spec *sorted[CT_MAX_SERVICES];
    uint8_t *info = content + 2 + CT_SIGNATURE_LEN;
    writer w = {info, content + sizeof(content), 0};
    size_t infolen;
    size_t clen;
    size_t blen;
    codec_state *st;
    uint16_t n;
    int rc;

    if (params == NULL || out == NULL) {
        set_error(err, errlen, "no parameters or output buffer");
        return CT_E_ARGUMENT;
    }
    if (!ct_is_hex_id(params->app_id)) {
        set_error(err, errlen, "app id must be 32 hex characters");
        return CT_E_APP_ID;
    }
    if (!ct_is_hex_id(params->app_certificate)) {
        set_error(err, errlen, "app certificate must be 32 hex characters");
        return CT_E_CERTIFICATE;
    }
    n = params->service_count;
    if (n == 0 || n > CT_MAX_SERVICES || params->services == NULL) {
        set_error(err, errlen, "a token needs 1..%d services", CT_MAX_SERVICES);
        return CT_E_ARGUMENT;
    }
    /* stable sort by type, as the references pack them */
    for (uint16_t i = 0; i < n; i++) {
        uint16_t j = i;
        while (j > 0 && sorted[j - 1]->type > params->services[i].type) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = &params->services[i];
    }
    st = state_get();
    if (st == NULL) {
        set_error(err, errlen, "cannot set up the codec (out of memory or no HMAC)");
        return CT_E_INTERNAL;
    }

    w_string(&w, params->app_id, CT_HEX_ID_LEN);
    w_u32(&w, params->issue_ts);
    w_u32(&w, params->expire);
    w_u32(&w, params->salt);
    w_u16(&w, n);
    for (uint16_t i = 0; i < n; i++) {
        rc = pack_service(&w, sorted[i], err, errlen);
        if (rc != CT_OK) {
            return rc;
        }
    }
    if (w.overflow) {
        set_error(err, errlen, "token payload over %d bytes", BUILD_PAYLOAD_MAX);
        return CT_E_ARGUMENT;
    }
    infolen = (size_t)(w.p - info);

    content[0] = CT_SIGNATURE_LEN;
    content[1] = 0;
    rc = sign(st, params->app_certificate, params->issue_ts, params->salt, info, infolen,
              content + 2);
    if (rc == CT_OK) {
        rc = deflate_payload(st, content, 2 + CT_SIGNATURE_LEN + infolen, compressed,
                             sizeof(compressed), &clen);
    }
    if (rc != CT_OK) {
        set_error(err, errlen, "signing or compression failed");
        return rc;
    }
    if (outlen < 3 + CT_BASE64_ENCODED_LEN(clen) + 1) {
        set_error(err, errlen, "output buffer too small");
        return CT_E_BUFFER;
    }
    memcpy(out, CT_VERSION, 3);
    blen = ct_base64_encode(compressed, clen, out + 3, outlen - 3);
    if (written != NULL) {
        *written = 3 + blen;
    }
    return CT_OK;
}

static int build_chat(const char *app_id, const char *app_certificate, const char *user_id,
                      uint16_t privilege, uint32_t issue_ts, uint32_t salt, uint32_t ttl, char *out,
                      size_t outlen, size_t *written, char *err, size_t errlen)
{
    ct_privilege priv = {privilege, ttl};
    const char *strings[1] = {user_id};
    ct_service_spec service = {CT_SERVICE_CHAT, 1, &priv, 1, strings};
    ct_build_params params = {app_id, app_certificate, issue_ts, salt, ttl, 1, &service};

    if (ttl < 1 || ttl > CT_CHAT_TTL_MAX) {
        set_error(err, errlen, "ttl must be 1..%u seconds, got %u", CT_CHAT_TTL_MAX, ttl);
        return CT_E_ARGUMENT;
    }
    return ct_token_build(&params, out, outlen, written, err, errlen);
}

int ct_chat_build_app_token(const char *app_id, const char *app_certificate, uint32_t issue_ts,
                            uint32_t salt, uint32_t ttl, char *out, size_t outlen, size_t *written,
                            char *err, size_t errlen)
{
    return build_chat(app_id, app_certificate, "", CT_CHAT_PRIVILEGE_APP, issue_ts, salt, ttl, out,
                      outlen, written, err, errlen);
}

int ct_chat_build_user_token(const char *app_id, const char *app_certificate, const char *user_id,
                             uint32_t issue_ts, uint32_t salt, uint32_t ttl, char *out,
                             size_t outlen, size_t *written, char *err, size_t errlen)
{
    size_t len = user_id != NULL ? strlen(user_id) : 0;

    if (len == 0 || len > CT_USER_ID_MAX) {
        set_error(err, errlen, "user id must be 1..%d bytes", CT_USER_ID_MAX);
        return CT_E_ARGUMENT;
    }
    return build_chat(app_id, app_certificate, user_id, CT_CHAT_PRIVILEGE_USER, issue_ts, salt, ttl,
                      out, outlen, written, err, errlen);
}

/* ---- reader ---- */

typedef struct reader {
    const uint8_t *p;
    const uint8_t *end;
} reader;

static int r_u16(reader *r, uint16_t *v)
{
    if (r->end - r->p < 2) {
        return CT_E_TRUNCATED;
    }
    *v = (uint16_t)(r->p[0] | r->p[1] << 8);
    r->p += 2;
    return CT_OK;
}

static int r_u32(reader *r, uint32_t *v)
{
    if (r->end - r->p < 4) {
        return CT_E_TRUNCATED;
    }
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
         (uint32_t)r->p[3] << 24;
    r->p += 4;
    return CT_OK;
}

static int r_string(reader *r, ct_view *v)
{
    uint16_t len;

    if (r_u16(r, &len) != CT_OK || r->end - r->p < len) {
        return CT_E_TRUNCATED;
    }
    v->data = r->p;
    v->len = len;
    r->p += len;
    return CT_OK;
}

static int add_string_field(reader *r, ct_service *s, const char *name)
{
    ct_field *f = &s->fields[s->field_count];

    f->name = name;
    f->kind = CT_FIELD_STRING;
    f->number = 0;
    s->field_count++;
    return r_string(r, &f->bytes);
}

static int add_int16_field(reader *r, ct_service *s, const char *name)
{
    ct_field *f = &s->fields[s->field_count];
    uint16_t v = 0;
    int rc = r_u16(r, &v);

    f->name = name;
    f->kind = CT_FIELD_INT;
    f->bytes.data = NULL;
    f->bytes.len = 0;
    f->number = (int16_t)v;
    s->field_count++;
    return rc;
}

static int skip_resource(void *ctx, uint16_t rt, uint16_t pt, ct_view resource)
{
    (void)ctx;
    (void)rt;
    (void)pt;
    (void)resource;
    return 0;
}

/* Walks the RTM2 permission tree; with fn == skip_resource it only measures. */
static int rtm2_walk(reader *r, ct_rtm2_resource_fn fn, void *ctx)
{
    uint16_t types;
    int rc = r_u16(r, &types);

    for (uint16_t i = 0; rc == CT_OK && i < types; i++) {
        uint16_t rt;
        uint16_t perms;
        rc = r_u16(r, &rt);
        if (rc == CT_OK) {
            rc = r_u16(r, &perms);
        }
        for (uint16_t j = 0; rc == CT_OK && j < perms; j++) {
            uint16_t pt;
            uint16_t count;
            rc = r_u16(r, &pt);
            if (rc == CT_OK) {
                rc = r_u16(r, &count);
            }
            for (uint16_t k = 0; rc == CT_OK && k < count; k++) {
                ct_view res;
                rc = r_string(r, &res);
                if (rc == CT_OK) {
                    rc = fn(ctx, rt, pt, res);
                }
            }
        }
    }
    return rc;
}

int ct_rtm2_permissions_walk(ct_view permissions, ct_rtm2_resource_fn fn, void *ctx)
{
    reader r = {permissions.data, permissions.data + permissions.len};
    return rtm2_walk(&r, fn != NULL ? fn : skip_resource, ctx);
}

static int parse_rtm2_permissions(reader *r, ct_service *s)
{
    ct_field *f = &s->fields[s->field_count];
    const uint8_t *start = r->p;
    int rc = rtm2_walk(r, skip_resource, NULL);

    f->name = "permissions";
    f->kind = CT_FIELD_RTM2_PERMISSIONS;
    f->bytes.data = start;
    f->bytes.len = (size_t)(r->p - start);
    f->number = 0;
    s->field_count++;
    return rc;
}

/* The fields each known service packs after its privileges. */
static int parse_service_fields(reader *r, ct_service *s)
{
    int rc = CT_OK;

    switch (s->type) {
    case CT_SERVICE_RTC:
        rc = add_string_field(r, s, "channel_name");
        return rc != CT_OK ? rc : add_string_field(r, s, "uid");
    case CT_SERVICE_RTM:
    case CT_SERVICE_CHAT:
        return add_string_field(r, s, "user_id");
    case CT_SERVICE_STREAMING:
    case CT_SERVICE_FCDN:
        rc = add_string_field(r, s, "channel_name");
        return rc != CT_OK ? rc : add_string_field(r, s, "account");
    case CT_SERVICE_APAAS:
        rc = add_string_field(r, s, "room_uuid");
        if (rc == CT_OK) {
            rc = add_string_field(r, s, "user_uuid");
        }
        return rc != CT_OK ? rc : add_int16_field(r, s, "role");
    case CT_SERVICE_RTM2:
        rc = add_string_field(r, s, "user_id");
        return rc != CT_OK ? rc : parse_rtm2_permissions(r, s);
    default: /* FPA, ConvoAI, STT: privileges only */
        return CT_OK;
    }
}

static int is_known_service(uint16_t type)
{
    return type >= CT_SERVICE_RTC && type <= CT_SERVICE_STT;
}

static int inflate_payload(codec_state *st, const uint8_t *in, size_t inlen, ct_token *tok)
{
    z_stream *z = &st->inflater;
    int zrc;

    if (!st->inflater_ready) {
        if (inflateInit(z) != Z_OK) {
            return CT_E_INTERNAL;
        }
        st->inflater_ready = 1;
    } else if (inflateReset(z) != Z_OK) {
        return CT_E_INTERNAL;
    }
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)inlen;
    z->next_out = tok->payload;
    z->avail_out = CT_PAYLOAD_MAX;
    zrc = inflate(z, Z_FINISH);
    if (zrc == Z_STREAM_END) {
        tok->payload_len = CT_PAYLOAD_MAX - z->avail_out;
        return z->avail_in == 0 ? CT_OK : CT_E_INFLATE;
    }
    if (zrc == Z_BUF_ERROR && z->avail_out == 0) {
        return CT_E_TOO_LARGE;
    }
    return CT_E_INFLATE;
}

static int parse_payload(ct_token *tok)
{
    reader r = {tok->payload, tok->payload + tok->payload_len};
    int rc = r_string(&r, &tok->signature);

    tok->signing_info.data = r.p;
    tok->signing_info.len = (size_t)(r.end - r.p);
    if (rc == CT_OK) {
        rc = r_string(&r, &tok->app_id);
    }
    if (rc == CT_OK) {
        rc = r_u32(&r, &tok->issue_ts);
    }
    if (rc == CT_OK) {
        rc = r_u32(&r, &tok->expire);
    }
    if (rc == CT_OK) {
        rc = r_u32(&r, &tok->salt);
    }
    if (rc == CT_OK) {
        rc = r_u16(&r, &tok->declared_service_count);
    }
    for (uint16_t i = 0; rc == CT_OK && i < tok->declared_service_count; i++) {
        ct_service *s;
        uint16_t type;

        rc = r_u16(&r, &type);
        if (rc != CT_OK) {
            break;
        }
        if (!is_known_service(type)) {
            /* as the references do: stop, keep what was parsed */
            tok->unknown_service_type = type;
            return CT_OK;
        }
        if (tok->service_count == CT_MAX_SERVICES) {
            return CT_E_LIMIT;
        }
        s = &tok->services[tok->service_count++];
        s->type = type;
        rc = r_u16(&r, &s->privilege_count);
        if (rc == CT_OK && s->privilege_count > CT_MAX_PRIVILEGES) {
            return CT_E_LIMIT;
        }
        for (uint16_t j = 0; rc == CT_OK && j < s->privilege_count; j++) {
            rc = r_u16(&r, &s->privileges[j].id);
            if (rc == CT_OK) {
                rc = r_u32(&r, &s->privileges[j].value);
            }
        }
        if (rc == CT_OK) {
            rc = parse_service_fields(&r, s);
        }
    }
    if (rc == CT_OK && r.p != r.end) {
        rc = CT_E_TRAILING;
    }
    return rc;
}

int ct_token_parse(const char *token, size_t len, ct_token *tok, char *err, size_t errlen)
{
    codec_state *st;
    size_t clen;
    int rc;

    if (token == NULL || tok == NULL) {
        set_error(err, errlen, "no token");
        return CT_E_ARGUMENT;
    }
    memset(tok, 0, offsetof(ct_token, payload));
    if (len > CT_TOKEN_MAX_CHARS) {
        set_error(err, errlen, "token is %zu characters, over the %d limit", len,
                  CT_TOKEN_MAX_CHARS);
        return CT_E_TOO_LARGE;
    }
    if (len < 3 || memcmp(token, CT_VERSION, 3) != 0) {
        set_error(err, errlen, "not an AccessToken2: it must start with \"007\"");
        return CT_E_PREFIX;
    }
    st = state_get();
    if (st == NULL) {
        set_error(err, errlen, "cannot set up the codec (out of memory)");
        return CT_E_INTERNAL;
    }
    clen = ct_base64_decode(token + 3, len - 3, st->compressed, sizeof(st->compressed));
    if (clen == (size_t)-1) {
        set_error(err, errlen, "token body is not valid base64");
        return CT_E_BASE64;
    }
    rc = inflate_payload(st, st->compressed, clen, tok);
    if (rc == CT_E_TOO_LARGE) {
        set_error(err, errlen, "token payload inflates past %d bytes", CT_PAYLOAD_MAX);
        return rc;
    }
    if (rc != CT_OK) {
        set_error(err, errlen, "token body is not a valid zlib stream");
        return rc;
    }
    rc = parse_payload(tok);
    if (rc == CT_E_TRUNCATED) {
        set_error(err, errlen, "token payload is truncated: a field runs past the end");
    } else if (rc == CT_E_TRAILING) {
        set_error(err, errlen, "token payload has bytes after the last service");
    } else if (rc == CT_E_LIMIT) {
        set_error(err, errlen, "token has more than %d services or %d privileges per service",
                  CT_MAX_SERVICES, CT_MAX_PRIVILEGES);
    }
    return rc;
}

int ct_token_verify(const ct_token *tok, const char *app_certificate)
{
    uint8_t expected[CT_SIGNATURE_LEN];
    codec_state *st;
    int rc;

    if (!ct_is_hex_id(app_certificate)) {
        return CT_E_CERTIFICATE;
    }
    if (tok == NULL || tok->signature.len != CT_SIGNATURE_LEN) {
        return CT_E_SIGNATURE;
    }
    st = state_get();
    if (st == NULL) {
        return CT_E_INTERNAL;
    }
    rc = sign(st, app_certificate, tok->issue_ts, tok->salt, tok->signing_info.data,
              tok->signing_info.len, expected);
    if (rc != CT_OK) {
        return rc;
    }
    return CRYPTO_memcmp(expected, tok->signature.data, CT_SIGNATURE_LEN) == 0 ? CT_OK
                                                                               : CT_E_SIGNATURE;
}

uint64_t ct_token_expire_at(const ct_token *tok)
{
    return (uint64_t)tok->issue_ts + tok->expire;
}

uint64_t ct_privilege_expire_at(const ct_token *tok, const ct_privilege *privilege)
{
    return (uint64_t)tok->issue_ts + privilege->value;
}

const char *ct_service_type_name(uint16_t type)
{
    static const char *const names[] = {NULL,   "rtc",   "rtm",  "streaming", "fpa", "chat",
                                        "fcdn", "apaas", "rtm2", "convoai",   "stt"};
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : NULL;
}

const char *ct_privilege_name(uint16_t service_type, uint16_t privilege)
{
    static const char *const rtc[] = {NULL, "join_channel", "publish_audio_stream",
                                      "publish_video_stream", "publish_data_stream"};
    static const char *const streaming[] = {NULL, "publish_mix_stream", "publish_raw_stream"};
    static const char *const chat[] = {NULL, "user", "app"};
    static const char *const fcdn[] = {NULL, "publish", "play"};
    static const char *const apaas[] = {NULL, "room_user", "user", "app"};
    static const char *const login[] = {NULL, "login"};
    const char *const *names = NULL;
    size_t count = 0;

#define PICK(table)                                                                                \
    do {                                                                                           \
        names = table;                                                                             \
        count = sizeof(table) / sizeof(table[0]);                                                  \
    } while (0)
    switch (service_type) {
    case CT_SERVICE_RTC:
        PICK(rtc);
        break;
    case CT_SERVICE_STREAMING:
        PICK(streaming);
        break;
    case CT_SERVICE_CHAT:
        PICK(chat);
        break;
    case CT_SERVICE_FCDN:
        PICK(fcdn);
        break;
    case CT_SERVICE_APAAS:
        PICK(apaas);
        break;
    case CT_SERVICE_RTM:
    case CT_SERVICE_FPA:
    case CT_SERVICE_RTM2:
        PICK(login);
        break;
    default:
        break;
    }
#undef PICK
    return privilege < count ? names[privilege] : NULL;
}

int ct_salt_random(uint32_t *salt)
{
    /* rejection sampling: a plain modulo would favour small salts */
    const uint32_t limit = UINT32_MAX - UINT32_MAX % CT_SALT_MAX;
    uint32_t v;

    do {
        if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1) {
            return CT_E_INTERNAL;
        }
    } while (v >= limit);
    *salt = v % CT_SALT_MAX + 1;
    return CT_OK;
}

const char *ct_result_name(int result)
{
    switch (result) {
    case CT_OK:
        return "ok";
    case CT_E_ARGUMENT:
        return "invalid_argument";
    case CT_E_APP_ID:
        return "invalid_app_id";
    case CT_E_CERTIFICATE:
        return "invalid_certificate";
    case CT_E_PREFIX:
        return "bad_prefix";
    case CT_E_BASE64:
        return "bad_base64";
    case CT_E_INFLATE:
        return "bad_deflate";
    case CT_E_TOO_LARGE:
        return "too_large";
    case CT_E_TRUNCATED:
        return "truncated";
    case CT_E_TRAILING:
        return "trailing_bytes";
    case CT_E_LIMIT:
        return "over_limit";
    case CT_E_SIGNATURE:
        return "bad_signature";
    case CT_E_BUFFER:
        return "buffer_too_small";
    case CT_E_INTERNAL:
        return "internal";
    default:
        return "unknown";
    }
}
