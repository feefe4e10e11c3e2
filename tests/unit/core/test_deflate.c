/* Differential test of the token builder's deflate (core/deflate.c): for many
 * thousands of payloads the builder can produce, the compressed bytes inside
 * the token must equal what the linked zlib writes for the same payload with
 * deflateInit(Z_DEFAULT_COMPRESSION): windowBits 15, memLevel 8, header 78 9c.
 *
 * Why equality holds is argued at the top of core/deflate.c (it is zlib
 * 1.2.13's level-6 path transcribed for one small block). The inputs here aim
 * at each place where a transcription could go wrong: hash chains longer than
 * max_chain (128) and than max_chain / 4 after a good_match (8) — payloads
 * from a one- or two-letter alphabet; lazy matches; matches of 258 bytes and
 * matches that run into the end of the input; the three block types (stored,
 * fixed, dynamic), each of which must be seen; user ids of every length
 * 1..255; generic tokens up to the 1024-byte payload bound. A fixed seed keeps
 * a failure reproducible; one more pass takes a new seed on every run.
 *
 * The same file tests the decoder, ct_inflate: every stream above inflates
 * back to its payload (or, for a dynamic block, is left to zlib), and on
 * zlib's stored and fixed streams, whole and damaged, it never answers
 * otherwise than zlib's inflate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <zlib.h>

#include "base64.h"
#include "deflate.h"
#include "token.h"

#define APP_ID "970CA35de60c44645bbae8a215061b33"
#define APP_CERT "5CFd2fd1755d40ecb72977518be15d3b"
#define PAYLOAD_MAX 2048

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static unsigned block_types_seen[4];

static uint32_t rng(void)
{
    /* xorshift64*: fixed seed, reproducible */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1du) >> 32);
}

static uint32_t rng_range(uint32_t lo, uint32_t hi)
{
    return lo + rng() % (hi - lo + 1);
}

/* NUL-free bytes from an alphabet of the given size (1..255): small ones give
 * long hash chains and long matches, 255 gives incompressible binary. */
static void random_string(char *s, size_t len, unsigned alphabet)
{
    static const char text[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.@";
    int binary = alphabet > sizeof(text) - 1;

    for (size_t i = 0; i < len; i++) {
        unsigned k = rng() % alphabet;
        s[i] = binary ? (char)(1 + k % 255) : text[k];
    }
    s[len] = '\0';
}

static unsigned random_alphabet(void)
{
    static const unsigned sizes[] = {1, 2, 3, 4, 10, 26, 64, 255};
    return sizes[rng() % (sizeof(sizes) / sizeof(sizes[0]))];
}

/* The reference: a fresh zlib stream at the default level. */
static size_t reference_deflate(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream z;
    size_t n;

    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit(&z, Z_DEFAULT_COMPRESSION), Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

/* The stream inflates back to payload with ct_inflate, which leaves only a
 * dynamic block (all our streams are one block) to zlib. */
static void assert_inflates_back(const uint8_t *stream, size_t n, const uint8_t *payload,
                                 size_t len)
{
    uint8_t back[PAYLOAD_MAX];
    size_t back_len = 0;
    int rc = ct_inflate(stream, n, back, sizeof(back), &back_len);

    if (((stream[2] >> 1) & 3) == 2) {
        assert_int_equal(rc, CT_INFLATE_ASK_ZLIB);
        return;
    }
    assert_int_equal(rc, CT_INFLATE_OK);
    assert_int_equal(back_len, len);
    assert_memory_equal(back, payload, len);
}

/* Takes the token apart and compares its deflate stream with zlib's. */
static void assert_deflate_matches_zlib(const char *token, size_t token_len)
{
    uint8_t ours[PAYLOAD_MAX];
    uint8_t payload[PAYLOAD_MAX];
    uint8_t theirs[PAYLOAD_MAX];
    uLongf payload_len = sizeof(payload);
    size_t ours_len;
    size_t theirs_len;

    assert_true(token_len > 3);
    ours_len = ct_base64_decode(token + 3, token_len - 3, ours, sizeof(ours));
    assert_true(ours_len != (size_t)-1 && ours_len > 2);
    assert_int_equal(uncompress(payload, &payload_len, ours, (uLong)ours_len), Z_OK);
    theirs_len = reference_deflate(payload, payload_len, theirs, sizeof(theirs));
    if (ours_len != theirs_len || memcmp(ours, theirs, ours_len) != 0) {
        fail_msg("deflate differs from zlib for a %lu-byte payload (token %s)",
                 (unsigned long)payload_len, token);
    }
    block_types_seen[(ours[2] >> 1) & 3]++;
    assert_inflates_back(ours, ours_len, payload, payload_len);
}

static void chat_tokens_for_every_user_length(void **state)
{
    char user[CT_USER_ID_MAX + 1];
    char token[CT_BUILD_MAX_CHARS];
    char err[128];
    size_t n;

    (void)state;
    for (int round = 0; round < 12000; round++) {
        size_t len = round < 255 ? (size_t)round + 1 : rng_range(1, CT_USER_ID_MAX);
        uint32_t ts = rng();
        uint32_t salt = rng_range(1, CT_SALT_MAX);
        uint32_t ttl = rng_range(1, CT_CHAT_TTL_MAX);
        random_string(user, len, random_alphabet());
        assert_int_equal(ct_chat_build_user_token(APP_ID, APP_CERT, user, ts, salt, ttl, token,
                                                  sizeof(token), &n, err, sizeof(err)),
                         CT_OK);
        assert_deflate_matches_zlib(token, n);
        if (round % 8 == 0) {
            assert_int_equal(ct_chat_build_app_token(APP_ID, APP_CERT, ts, salt, ttl, token,
                                                     sizeof(token), &n, err, sizeof(err)),
                             CT_OK);
            assert_deflate_matches_zlib(token, n);
        }
    }
}

/* Generic tokens: up to 16 services with privileges and string fields, up to
 * the builder's 1024-byte payload bound (larger ones are refused, skipped). */
static void generic_tokens_up_to_the_payload_bound(void **state)
{
    static char strings[CT_MAX_SERVICES][CT_MAX_FIELDS][1100];
    const char *field_ptrs[CT_MAX_SERVICES][CT_MAX_FIELDS];
    ct_privilege privileges[CT_MAX_SERVICES][CT_MAX_PRIVILEGES];
    ct_service_spec services[CT_MAX_SERVICES];
    char token[CT_BUILD_MAX_CHARS];
    char err[128];
    int built = 0;
    int near_bound = 0;

    (void)state;
    for (int round = 0; round < 6000; round++) {
        uint16_t count = (uint16_t)rng_range(1, CT_MAX_SERVICES);
        unsigned alphabet = random_alphabet();
        /* spread the string budget so that many payloads land near 1024 */
        size_t budget = rng_range(0, 1000) / count;
        ct_build_params params = {APP_ID, APP_CERT, rng(),   rng_range(1, CT_SALT_MAX),
                                  rng(),  count,    services};
        size_t n;
        int rc;

        for (uint16_t i = 0; i < count; i++) {
            uint16_t pcount = (uint16_t)rng_range(0, rng() % 4 == 0 ? CT_MAX_PRIVILEGES : 3);
            uint16_t scount = (uint16_t)rng_range(0, CT_MAX_FIELDS);
            for (uint16_t j = 0; j < pcount; j++) {
                privileges[i][j].id = (uint16_t)(j * 3 + rng_range(1, 3)); /* unique */
                privileges[i][j].value = rng() % 3 == 0 ? 86400 : rng();
            }
            for (uint16_t j = 0; j < scount; j++) {
                random_string(strings[i][j], rng_range(0, (uint32_t)budget), alphabet);
                field_ptrs[i][j] = strings[i][j];
            }
            services[i].type = (uint16_t)rng_range(1, 10);
            services[i].privilege_count = pcount;
            services[i].privileges = privileges[i];
            services[i].string_count = scount;
            services[i].strings = field_ptrs[i];
        }
        rc = ct_token_build(&params, token, sizeof(token), &n, err, sizeof(err));
        if (rc == CT_E_ARGUMENT) {
            continue; /* over the payload bound */
        }
        assert_int_equal(rc, CT_OK);
        assert_deflate_matches_zlib(token, n);
        built++;
        near_bound += n > 1000;
    }
    assert_true(built > 4000);
    assert_true(near_bound > 100);
}

/* Payloads whose hash chains exceed max_chain: the most repetitive inputs
 * the generic builder accepts, including exact periods 1..64. */
static void long_chains_and_long_matches(void **state)
{
    static char text[1100];
    const char *fields[4] = {text, text, text, text};
    ct_service_spec service = {CT_SERVICE_RTC, 0, NULL, 1, fields};
    ct_build_params params = {APP_ID, APP_CERT, 1111111, 1, 600, 1, &service};
    char token[CT_BUILD_MAX_CHARS];
    char err[128];

    (void)state;
    for (size_t period = 1; period <= 64; period++) {
        for (size_t len = 200; len <= 960; len += 190) {
            for (size_t i = 0; i < len; i++) {
                text[i] = (char)('a' + (i % period) % 26 + (i / 26 % 2));
            }
            text[len] = '\0';
            for (uint16_t k = 1; k <= 2; k++) {
                size_t n;
                service.string_count = k;
                if (ct_token_build(&params, token, sizeof(token), &n, err, sizeof(err)) == CT_OK) {
                    assert_deflate_matches_zlib(token, n);
                }
            }
        }
    }
}

/* Fresh payloads of every size 0..CT_DEFLATE_INPUT_MAX straight into
 * ct_deflate, from a seed that changes with every run (printed; set
 * CT_DEFLATE_SEED to replay one): byte soup over alphabets of 1..256 symbols,
 * token-shaped payloads (length-prefixed random signature, hex app id,
 * little-endian integers, text) and runs of one byte with noise, so that the
 * dynamic-block bound in core/deflate.c meets inputs nobody chose. */
static void fresh_payloads_of_every_size(void **state)
{
    static const char hex[] = "0123456789abcdefABCDEF";
    uint8_t payload[CT_DEFLATE_INPUT_MAX];
    uint8_t ours[PAYLOAD_MAX];
    uint8_t theirs[PAYLOAD_MAX];
    const char *env = getenv("CT_DEFLATE_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
    ct_deflater *d = ct_deflater_new();
    unsigned seen[4] = {0, 0, 0, 0};

    (void)state;
    assert_non_null(d);
    print_message("fresh_payloads_of_every_size: CT_DEFLATE_SEED=%llu\n", (unsigned long long)seed);
    rng_state = seed | 1;
    for (size_t len = 0; len <= CT_DEFLATE_INPUT_MAX; len++) {
        for (int kind = 0; kind < 3; kind++) {
            size_t ours_len = 0;
            size_t theirs_len;
            unsigned alphabet = 1 + rng() % 256;
            for (size_t i = 0; i < len; i++) {
                if (kind == 0) {
                    payload[i] = (uint8_t)(rng() % alphabet);
                } else if (kind == 1) {
                    /* 2 + 32 signature, 2 + 32 hex id, then integers and text */
                    payload[i] = i < 2       ? (uint8_t)(i == 0 ? 32 : 0)
                                 : i < 34    ? (uint8_t)rng()
                                 : i < 36    ? (uint8_t)(i == 34 ? 32 : 0)
                                 : i < 68    ? (uint8_t)hex[rng() % 22]
                                 : i % 7 < 3 ? (uint8_t)(rng() % 4)
                                             : (uint8_t)('a' + rng() % 26);
                } else {
                    payload[i] = rng() % 8 == 0 ? (uint8_t)rng() : (uint8_t)alphabet;
                }
            }
            assert_int_equal(ct_deflate(d, payload, len, ours, sizeof(ours), &ours_len), 0);
            theirs_len = reference_deflate(payload, len, theirs, sizeof(theirs));
            if (ours_len != theirs_len || memcmp(ours, theirs, ours_len) != 0) {
                fail_msg(
                    "deflate differs from zlib: %zu-byte payload, kind %d, CT_DEFLATE_SEED=%llu",
                    len, kind, (unsigned long long)seed);
            }
            seen[(ours[2] >> 1) & 3]++;
            assert_inflates_back(ours, ours_len, payload, len);
        }
    }
    ct_deflater_free(d);
    assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
}

/* zlib's stream of in[0..len) at a level and strategy, with a full flush
 * after the first `split` bytes when split < len (an extra block boundary:
 * an empty stored block between two blocks). */
static size_t zlib_stream(const uint8_t *in, size_t len, int level, int strategy, size_t split,
                          uint8_t *out, size_t cap)
{
    z_stream z;
    size_t n;

    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, 15, 8, strategy), Z_OK);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    z.next_in = (Bytef *)in;
    if (split < len) {
        z.avail_in = (uInt)split;
        assert_int_equal(deflate(&z, Z_FULL_FLUSH), Z_OK);
        z.avail_in = (uInt)(len - split);
    } else {
        z.avail_in = (uInt)len;
    }
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

/* What zlib's inflate makes of in[0..n) as the token parser calls it: the
 * length of the payload when the stream ends exactly at in + n, else -1. */
static long zlib_inflate(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream z;
    int rc;
    long len = -1;

    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit(&z), Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    rc = inflate(&z, Z_FINISH);
    if (rc == Z_STREAM_END && z.avail_in == 0) {
        len = (long)(cap - z.avail_out);
    }
    inflateEnd(&z);
    return len;
}

/* ct_inflate against zlib on stored and fixed-Huffman streams of fresh
 * payloads (one block, or two around a full flush), whole and then damaged
 * (a bit flipped, a byte changed, cut short, one byte longer, an output
 * buffer one byte short): whole ones it must decode itself; whenever it
 * answers, zlib must give the same bytes. CT_DEFLATE_SEED replays a run. */
static void inflate_agrees_with_zlib(void **state)
{
    uint8_t payload[1200];
    uint8_t stream[PAYLOAD_MAX + 1];
    uint8_t ours[PAYLOAD_MAX];
    uint8_t theirs[PAYLOAD_MAX];
    const char *env = getenv("CT_DEFLATE_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
    unsigned answered_damaged = 0;

    (void)state;
    print_message("inflate_agrees_with_zlib: CT_DEFLATE_SEED=%llu\n", (unsigned long long)seed);
    rng_state = seed | 1;
    for (int round = 0; round < 3000; round++) {
        size_t len = rng() % 4 == 0 ? rng_range(0, sizeof(payload)) : rng_range(0, 200);
        unsigned alphabet = 1 + rng() % 256;
        int stored = round % 3 == 0;
        size_t split = rng() % 2 == 0 ? len : rng_range(0, (uint32_t)len);
        size_t n;
        size_t out_len = 0;

        for (size_t i = 0; i < len; i++) {
            payload[i] = (uint8_t)(rng() % alphabet);
        }
        n = zlib_stream(payload, len, stored ? 0 : 6, stored ? Z_DEFAULT_STRATEGY : Z_FIXED, split,
                        stream, sizeof(stream) - 1);
        assert_int_equal(ct_inflate(stream, n, ours, sizeof(ours), &out_len), CT_INFLATE_OK);
        assert_int_equal(out_len, len);
        assert_memory_equal(ours, payload, len);
        if (len > 0) {
            assert_int_equal(ct_inflate(stream, n, ours, len - 1, &out_len), CT_INFLATE_ASK_ZLIB);
        }
        for (int damage = 0; damage < 40; damage++) {
            uint8_t copy[PAYLOAD_MAX + 1];
            size_t m = n;
            size_t at = rng() % n;

            memcpy(copy, stream, n);
            switch (damage % 4) {
            case 0:
                copy[at] ^= (uint8_t)(1u << (rng() % 8));
                break;
            case 1:
                copy[at] = (uint8_t)rng();
                break;
            case 2:
                m = at;
                break;
            default:
                copy[m++] = (uint8_t)rng();
                break;
            }
            if (ct_inflate(copy, m, ours, sizeof(ours), &out_len) == CT_INFLATE_OK) {
                answered_damaged++;
                assert_int_equal(zlib_inflate(copy, m, theirs, sizeof(theirs)), (long)out_len);
                assert_memory_equal(ours, theirs, out_len);
            }
        }
    }
    /* some damage leaves a valid stream: a bit flipped among the padding
     * bits after a fixed block's end code, which both decoders skip */
    assert_true(answered_damaged > 0);
}

static void every_block_type_was_exercised(void **state)
{
    (void)state;
    /* 0 stored, 1 fixed Huffman, 2 dynamic Huffman: all three paths ran */
    assert_true(block_types_seen[0] > 0);
    assert_true(block_types_seen[1] > 0);
    assert_true(block_types_seen[2] > 0);
    assert_int_equal(block_types_seen[3], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_tokens_for_every_user_length),
        cmocka_unit_test(generic_tokens_up_to_the_payload_bound),
        cmocka_unit_test(long_chains_and_long_matches),
        cmocka_unit_test(fresh_payloads_of_every_size),
        cmocka_unit_test(every_block_type_was_exercised),
        cmocka_unit_test(inflate_agrees_with_zlib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
