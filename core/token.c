/* AccessToken2 ("007"): the wire format, signing, the strict parser and the
 * Chat builders. The hot path keeps a deflater (core/deflate.c), an inflate
 * stream and the HMAC key of the current second per thread, so building a
 * token allocates nothing once warm. */

/* HMAC-SHA256 runs on OpenSSL's low-level SHA256_Transform (the compression
 * function), deprecated in OpenSSL 3 but present in every build of it
 * (Debian's included): it hashes one block into the chaining words h of a
 * caller-owned SHA256_CTX, with no provider look-up and no allocation, so a
 * hash state is eight words that can be copied, which is what precomputed
 * HMAC keys need. The EVP equivalent (EVP_MD_CTX_copy_ex from a precomputed
 * context) allocates a new provider context on every copy. The block
 * function is OpenSSL's own (SHA extensions, AVX2, ..., picked at run
 * time). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "token.h"

#include "base64.h"
#include "byteorder.h"
#include "deflate.h"
#include "text.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Largest signing_info the builder writes: far above any real token. */
#define BUILD_PAYLOAD_MAX 1024
#define COMPRESSED_MAX (CT_TOKEN_MAX_CHARS / 4 * 3)
#define SHA256_BLOCK 64

/* An HMAC-SHA256 key as the hash states after its padded inner and outer
 * blocks (two compressions); a MAC with it then costs the message's blocks
 * plus one. */
typedef struct hmac_key {
    SHA256_CTX inner;
    SHA256_CTX outer;
} hmac_key;

/* SHA-256's initial hash value (FIPS 180-4, 5.3.3): all SHA256_Init sets
 * that SHA256_Transform reads. */
static const uint32_t sha256_initial[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                           0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
_Static_assert(sizeof(((SHA256_CTX *)0)->h) == sizeof(sha256_initial), "SHA256_CTX.h: 8 words");

typedef struct codec_state {
    ct_deflater *deflater;
    z_stream inflater;
    int inflater_ready;
    /* k1 = HMAC(LE32(issue_ts), certificate) depends on the second and the
     * certificate only: tokens built in the same second share it */
    int k1_valid;
    uint32_t k1_issue_ts;
    char k1_certificate[CT_HEX_ID_LEN];
    uint8_t k1[CT_SIGNATURE_LEN];
    uint8_t compressed[COMPRESSED_MAX];
} codec_state;

static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;
static _Thread_local codec_state *thread_state;

static void state_free(void *p)
{
    codec_state *st = p;

    if (st == NULL) {
        return;
    }
    if (st->inflater_ready) {
        inflateEnd(&st->inflater);
    }
    ct_deflater_free(st->deflater);
    OPENSSL_cleanse(st->k1, sizeof(st->k1));
    OPENSSL_cleanse(st->k1_certificate, sizeof(st->k1_certificate));
    free(st);
}

static void state_init_once(void)
{
    pthread_key_create(&state_key, state_free);
}

/* The calling thread's codec state, created on first use. */
static codec_state *state_get(void)
{
    codec_state *st = thread_state;

    if (st != NULL) {
        return st;
    }
    pthread_once(&state_once, state_init_once);
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    st->deflater = ct_deflater_new();
    if (st->deflater == NULL) {
        state_free(st);
        return NULL;
    }
    pthread_setspecific(state_key, st);
    thread_state = st;
    return st;
}

/* Everything secret that one signature computes on the way (key pads,
 * message tails, hash states, the intermediate key) lives here, in sign()'s
 * frame, which wipes it once at the end rather than each helper its own. */
typedef struct sign_scratch {
    hmac_key key;
    SHA256_CTX ctx;
    uint8_t block[2 * SHA256_BLOCK];
    uint64_t key_words[SHA256_BLOCK / 8];
    uint8_t k[CT_SIGNATURE_LEN];
} sign_scratch;

/* RFC 2104 with a key of 32 bytes, zero-padded when shorter (HMAC pads the
 * key with zeros to a block anyway: ours are 4 or 32 bytes), the pads
 * written a word at a time into scratch. */
static void hmac_key_init(hmac_key *hk, const uint8_t key[CT_SIGNATURE_LEN], sign_scratch *sc)
{
    const uint64_t ipad = 0x3636363636363636u;
    const uint64_t opad = 0x5c5c5c5c5c5c5c5cu;
    uint64_t *words = sc->key_words;
    uint8_t *pad = sc->block;

    memset(words, 0, sizeof(sc->key_words));
    memcpy(words, key, CT_SIGNATURE_LEN);
    for (size_t i = 0; i < SHA256_BLOCK / 8; i++) {
        uint64_t w = words[i] ^ ipad;
        memcpy(pad + 8 * i, &w, 8);
    }
    memcpy(hk->inner.h, sha256_initial, sizeof(hk->inner.h));
    SHA256_Transform(&hk->inner, pad);
    for (size_t i = 0; i < SHA256_BLOCK / 8; i++) {
        uint64_t w = words[i] ^ opad;
        memcpy(pad + 8 * i, &w, 8);
    }
    memcpy(hk->outer.h, sha256_initial, sizeof(hk->outer.h));
    SHA256_Transform(&hk->outer, pad);
}

/* Hashes msg into ctx, which has hashed one block already (the HMAC pad),
 * and pads the message (FIPS 180-4: 0x80, zeros, the length in bits,
 * big-endian) in tail (two blocks of scratch): ctx->h is then the digest, as
 * words. SHA256_Transform is the compression function alone; SHA256_Update
 * and SHA256_Final would do the same through their buffer at about twice the
 * bookkeeping, which for messages this short is most of the cost besides the
 * compressions. */
static void sha256_after_block(SHA256_CTX *ctx, const uint8_t *msg, size_t msglen, uint8_t *tail)
{
    uint64_t bits = ((uint64_t)SHA256_BLOCK + msglen) * 8;
    size_t full = msglen / SHA256_BLOCK * SHA256_BLOCK;
    size_t rest = msglen - full;
    size_t tail_len = rest + 9 <= SHA256_BLOCK ? SHA256_BLOCK : 2 * SHA256_BLOCK;

    for (size_t at = 0; at < full; at += SHA256_BLOCK) {
        SHA256_Transform(ctx, msg + at);
    }
    memcpy(tail, msg + full, rest);
    tail[rest] = 0x80;
    memset(tail + rest + 1, 0, tail_len - rest - 1 - 8);
    bits = BIG_ENDIAN64(bits);
    memcpy(tail + tail_len - 8, &bits, 8);
    SHA256_Transform(ctx, tail);
    if (tail_len > SHA256_BLOCK) {
        SHA256_Transform(ctx, tail + SHA256_BLOCK);
    }
}

/* Two digest words as eight bytes, big-endian. */
static void put_words_be(uint8_t *out, const SHA256_CTX *ctx, int i)
{
    uint64_t pair = BIG_ENDIAN64((uint64_t)(uint32_t)ctx->h[i] << 32 | (uint32_t)ctx->h[i + 1]);
    memcpy(out + 4 * i, &pair, 8);
}

/* The digest words of ctx as bytes, big-endian (written out: this runs four
 * times per token, and a loop costs twice as much). */
static void sha256_digest(const SHA256_CTX *ctx, uint8_t out[CT_SIGNATURE_LEN])
{
    put_words_be(out, ctx, 0);
    put_words_be(out, ctx, 2);
    put_words_be(out, ctx, 4);
    put_words_be(out, ctx, 6);
}

/* ctx continues from the state of from: SHA256_Transform reads and writes
 * the chaining words h alone, so only they are copied (not the 112-byte
 * context with its unused block buffer). */
static void sha256_resume(SHA256_CTX *ctx, const SHA256_CTX *from)
{
    memcpy(ctx->h, from->h, sizeof(ctx->h));
}

static void hmac_sha256(const hmac_key *hk, const uint8_t *msg, size_t msglen,
                        uint8_t out[CT_SIGNATURE_LEN], sign_scratch *sc)
{
    uint64_t bits = BIG_ENDIAN64((uint64_t)(SHA256_BLOCK + CT_SIGNATURE_LEN) * 8);
    uint8_t *outer = sc->block;

    sha256_resume(&sc->ctx, &hk->inner);
    sha256_after_block(&sc->ctx, msg, msglen, sc->block);
    /* the outer hash's one block: the inner digest, already padded */
    sha256_digest(&sc->ctx, outer);
    outer[CT_SIGNATURE_LEN] = 0x80;
    memset(outer + CT_SIGNATURE_LEN + 1, 0, SHA256_BLOCK - CT_SIGNATURE_LEN - 1 - 8);
    memcpy(outer + SHA256_BLOCK - 8, &bits, 8);
    sha256_resume(&sc->ctx, &hk->outer);
    SHA256_Transform(&sc->ctx, outer);
    sha256_digest(&sc->ctx, out);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Constant-time equality of n bytes, n a multiple of 8: no branch and no
 * early exit on the data (what CRYPTO_memcmp promises), inline because it
 * runs for every token built and verified. The empty asm keeps the compiler
 * from reasoning about diff and so from ending the loop early. */
static int same_bytes(const void *a, const void *b, size_t n)
{
    uint64_t diff = 0;

    for (size_t i = 0; i < n; i += 8) {
        uint64_t x;
        uint64_t y;
        memcpy(&x, (const uint8_t *)a + i, 8);
        memcpy(&y, (const uint8_t *)b + i, 8);
        diff |= x ^ y;
        __asm__("" : "+r"(diff));
    }
    return diff == 0;
}

/* signature = HMAC(HMAC(LE32(salt), HMAC(LE32(issue_ts), certificate)), info),
 * HMAC(key, message). k1 = HMAC(LE32(issue_ts), certificate) is cached for
 * the second; the salt is a fresh key for every token, so the other two
 * MACs cost 2 + 2 and 2 + 3 compressions (a 72-byte user token info). */
static int sign(codec_state *st, const char *certificate, uint32_t issue_ts, uint32_t salt,
                const uint8_t *info, size_t infolen, uint8_t out[CT_SIGNATURE_LEN])
{
    uint8_t le[CT_SIGNATURE_LEN] = {0}; /* a 4-byte key, zero-padded */
    sign_scratch sc;

    if (!st->k1_valid || st->k1_issue_ts != issue_ts ||
        !same_bytes(st->k1_certificate, certificate, CT_HEX_ID_LEN)) {
        put_le32(le, issue_ts);
        hmac_key_init(&sc.key, le, &sc);
        hmac_sha256(&sc.key, (const uint8_t *)certificate, CT_HEX_ID_LEN, st->k1, &sc);
        st->k1_valid = 1;
        st->k1_issue_ts = issue_ts;
        memcpy(st->k1_certificate, certificate, CT_HEX_ID_LEN);
    }
    put_le32(le, salt);
    hmac_key_init(&sc.key, le, &sc);
    hmac_sha256(&sc.key, st->k1, sizeof(st->k1), sc.k, &sc);
    hmac_key_init(&sc.key, sc.k, &sc);
    hmac_sha256(&sc.key, info, infolen, out, &sc);
    explicit_bzero(&sc, sizeof(sc));
    return CT_OK;
}

int ct_is_hex_id(const char *s)
{
    const uint64_t ones = 0x0101010101010101u;
    const uint64_t high = 0x8080808080808080u;

    if (s == NULL || strnlen(s, CT_HEX_ID_LEN + 1) != CT_HEX_ID_LEN) {
        return 0;
    }
    /* ct_hex_digit's set, 8 characters at a time (this runs twice for every
     * token built): with every byte under 0x80, adding 0x80 - k to a byte
     * sets its top bit exactly when the byte is >= k, without a carry into
     * the next byte; so a byte is a digit when it is >= '0' and not >= '9'
     * + 1, a letter when, lower-cased, it is >= 'a' and not >= 'f' + 1. */
    for (size_t i = 0; i < CT_HEX_ID_LEN; i += 8) {
        uint64_t x;
        uint64_t lower;
        uint64_t digit;
        uint64_t letter;

        memcpy(&x, s + i, 8);
        if ((x & high) != 0) {
            return 0;
        }
        digit = (x + (0x80 - '0') * ones) & ~(x + (0x80 - '9' - 1) * ones);
        lower = x | 0x20 * ones;
        letter = (lower + (0x80 - 'a') * ones) & ~(lower + (0x80 - 'f' - 1) * ones);
        if (((digit | letter) & high) != high) {
            return 0;
        }
    }
    return 1;
}

/* ---- writer ---- */

typedef struct writer {
    uint8_t *p;
    uint8_t *end;
    int overflow;
} writer;

static inline void w_bytes(writer *w, const void *data, size_t len)
{
    if (w->overflow || (size_t)(w->end - w->p) < len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p, data, len);
    w->p += len;
}

static inline void w_u16(writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    w_bytes(w, b, 2);
}

static inline void w_u32(writer *w, uint32_t v)
{
    uint8_t b[4];
    put_le32(b, v);
    w_bytes(w, b, 4);
}

static inline void w_string(writer *w, const void *data, size_t len)
{
    if (len > UINT16_MAX) {
        w->overflow = 1;
        return;
    }
    w_u16(w, (uint16_t)len);
    w_bytes(w, data, len);
}

/* order[0..n) = the indices of keys[0..n) in ascending key order, equal keys
 * in their given order (an insertion sort: n is at most a dozen). */
static inline void stable_order(const uint16_t *keys, uint16_t n, uint16_t *order)
{
    for (uint16_t i = 0; i < n; i++) {
        uint16_t j = i;
        while (j > 0 && keys[order[j - 1]] > keys[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

static int pack_service(writer *w, const ct_service_spec *s, char *err, size_t errlen)
{
    uint16_t keys[CT_MAX_PRIVILEGES];
    uint16_t order[CT_MAX_PRIVILEGES];
    uint16_t n = s->privilege_count;

    if (n > CT_MAX_PRIVILEGES || (n > 0 && s->privileges == NULL) ||
        (s->string_count > 0 && s->strings == NULL)) {
        ct_set_error(err, errlen, "service %u: bad privilege or field list", s->type);
        return CT_E_ARGUMENT;
    }
    /* the references keep privileges in an ordered map: sorted, unique */
    for (uint16_t i = 0; i < n; i++) {
        keys[i] = s->privileges[i].id;
    }
    stable_order(keys, n, order);
    for (uint16_t i = 1; i < n; i++) {
        if (keys[order[i]] == keys[order[i - 1]]) {
            ct_set_error(err, errlen, "service %u: privilege %u given twice", s->type,
                         keys[order[i]]);
            return CT_E_ARGUMENT;
        }
    }
    w_u16(w, s->type);
    w_u16(w, n);
    for (uint16_t i = 0; i < n; i++) {
        w_u16(w, s->privileges[order[i]].id);
        w_u32(w, s->privileges[order[i]].value);
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
    return ct_deflate(st->deflater, in, inlen, out, outcap, outlen) == 0 ? CT_OK : CT_E_INTERNAL;
}

int ct_token_build(const ct_build_params *params, char *out, size_t outlen, size_t *written,
                   char *err, size_t errlen)
{
    /* content = pack_string(signature) + signing_info, built in one buffer */
    uint8_t content[2 + CT_SIGNATURE_LEN + BUILD_PAYLOAD_MAX];
    uint8_t compressed[BUILD_PAYLOAD_MAX + 128];
    uint16_t types[CT_MAX_SERVICES];
    uint16_t order[CT_MAX_SERVICES];
    uint8_t *info = content + 2 + CT_SIGNATURE_LEN;
    writer w = {info, content + sizeof(content), 0};
    size_t infolen;
    size_t clen;
    size_t blen;
    codec_state *st;
    uint16_t n;
    int rc;

    if (params == NULL || out == NULL) {
        ct_set_error(err, errlen, "no parameters or output buffer");
        return CT_E_ARGUMENT;
    }
    if (!ct_is_hex_id(params->app_id)) {
        ct_set_error(err, errlen, "app id must be 32 hex characters");
        return CT_E_APP_ID;
    }
    if (!ct_is_hex_id(params->app_certificate)) {
        ct_set_error(err, errlen, "app certificate must be 32 hex characters");
        return CT_E_CERTIFICATE;
    }
    n = params->service_count;
    if (n == 0 || n > CT_MAX_SERVICES || params->services == NULL) {
        ct_set_error(err, errlen, "a token needs 1..%d services", CT_MAX_SERVICES);
        return CT_E_ARGUMENT;
    }
    /* stable sort by type, as the references pack them */
    for (uint16_t i = 0; i < n; i++) {
        types[i] = params->services[i].type;
    }
    stable_order(types, n, order);
    st = state_get();
    if (st == NULL) {
        ct_set_error(err, errlen, "cannot set up the codec (out of memory)");
        return CT_E_INTERNAL;
    }

    w_string(&w, params->app_id, CT_HEX_ID_LEN);
    w_u32(&w, params->issue_ts);
    w_u32(&w, params->expire);
    w_u32(&w, params->salt);
    w_u16(&w, n);
    for (uint16_t i = 0; i < n; i++) {
        rc = pack_service(&w, &params->services[order[i]], err, errlen);
        if (rc != CT_OK) {
            return rc;
        }
    }
    if (w.overflow) {
        ct_set_error(err, errlen, "token payload over %d bytes", BUILD_PAYLOAD_MAX);
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
        ct_set_error(err, errlen, "signing or compression failed");
        return rc;
    }
    if (outlen < 3 + CT_BASE64_ENCODED_LEN(clen) + 1) {
        ct_set_error(err, errlen, "output buffer too small");
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
        ct_set_error(err, errlen, "ttl must be 1..%u seconds, got %u", CT_CHAT_TTL_MAX, ttl);
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
        ct_set_error(err, errlen, "user id must be 1..%d bytes", CT_USER_ID_MAX);
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

/* ct_inflate answers for the usual token (stored and fixed-Huffman blocks,
 * valid); zlib decides every other stream, whose answer stands. */
static int inflate_payload(codec_state *st, const uint8_t *in, size_t inlen, ct_token *tok)
{
    z_stream *z = &st->inflater;
    size_t len;
    int zrc;

    if (ct_inflate(in, inlen, tok->payload, CT_PAYLOAD_MAX, &len) == CT_INFLATE_OK) {
        tok->payload_len = len;
        return CT_OK;
    }
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
        memset(s, 0, sizeof(*s));
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
        ct_set_error(err, errlen, "no token");
        return CT_E_ARGUMENT;
    }
    /* the fields and the first service; each further service is cleared
     * when the parser reaches it (16 of them are 4 KiB to clear) */
    memset(tok, 0, offsetof(ct_token, services) + sizeof(tok->services[0]));
    tok->payload_len = 0;
    if (len > CT_TOKEN_MAX_CHARS) {
        ct_set_error(err, errlen, "token is %zu characters, over the %d limit", len,
                     CT_TOKEN_MAX_CHARS);
        return CT_E_TOO_LARGE;
    }
    if (len < 3 || memcmp(token, CT_VERSION, 3) != 0) {
        ct_set_error(err, errlen, "not an AccessToken2: it must start with \"007\"");
        return CT_E_PREFIX;
    }
    st = state_get();
    if (st == NULL) {
        ct_set_error(err, errlen, "cannot set up the codec (out of memory)");
        return CT_E_INTERNAL;
    }
    clen = ct_base64_decode(token + 3, len - 3, st->compressed, sizeof(st->compressed));
    if (clen == (size_t)-1) {
        ct_set_error(err, errlen, "token body is not valid base64");
        return CT_E_BASE64;
    }
    rc = inflate_payload(st, st->compressed, clen, tok);
    if (rc == CT_E_TOO_LARGE) {
        ct_set_error(err, errlen, "token payload inflates past %d bytes", CT_PAYLOAD_MAX);
        return rc;
    }
    if (rc != CT_OK) {
        ct_set_error(err, errlen, "token body is not a valid zlib stream");
        return rc;
    }
    rc = parse_payload(tok);
    if (rc == CT_E_TRUNCATED) {
        ct_set_error(err, errlen, "token payload is truncated: a field runs past the end");
    } else if (rc == CT_E_TRAILING) {
        ct_set_error(err, errlen, "token payload has bytes after the last service");
    } else if (rc == CT_E_LIMIT) {
        ct_set_error(err, errlen, "token has more than %d services or %d privileges per service",
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
    return same_bytes(expected, tok->signature.data, CT_SIGNATURE_LEN) ? CT_OK : CT_E_SIGNATURE;
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

/* Random words for salts, drawn from the CSPRNG in batches: one RAND_bytes
 * call costs about as much as a third of a token, so it is amortised over
 * SALT_BATCH salts. Per thread, so nothing is shared or locked. */
#define SALT_BATCH 64
static _Thread_local uint32_t salt_words[SALT_BATCH];
static _Thread_local unsigned salt_left;

static int next_random_word(uint32_t *v)
{
    if (salt_left == 0) {
        if (RAND_bytes((unsigned char *)salt_words, sizeof(salt_words)) != 1) {
            return CT_E_INTERNAL;
        }
        salt_left = SALT_BATCH;
    }
    *v = salt_words[--salt_left];
    salt_words[salt_left] = 0;
    return CT_OK;
}

int ct_salt_random(uint32_t *salt)
{
    /* rejection sampling: a plain modulo would favour small salts */
    const uint32_t limit = UINT32_MAX - UINT32_MAX % CT_SALT_MAX;
    uint32_t v;

    do {
        if (next_random_word(&v) != CT_OK) {
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
