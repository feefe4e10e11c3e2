/* The sharded UUID cache: per shard an open-addressing table (linear probing)
 * of 64-byte slots, one cache line each.
 *
 * Layout. A slot holds the key's 32-bit hash, the lengths and flags, the
 * expiry and 48 bytes for the key and value inline. A canonical UUID (36
 * lowercase hex characters and dashes, which is what Agora Chat returns) is
 * kept as its 16 bytes, so a username of up to 32 characters and its UUID
 * fit in the slot's one line; anything longer keeps its strings out of line
 * (and is read under the shard's mutex, see below). Probing compares the
 * hash in the slot, so a hit reads the shard header (hot in the CPU cache)
 * and usually one slot line, where a chained table waits on bucket, node and
 * strings in turn. Tables are at most 4/7 full (capacity + capacity * 3 / 4
 * + 1 slots), which keeps the mean distance from a key's home slot near half
 * a slot: 112 bytes per entry at capacity, 65 beyond a typical 47 characters
 * of strings. Large tables sit on huge pages, so a lookup does not also miss
 * the TLB. Deletion shifts the following entries of the cluster back (no
 * tombstones), so probe lengths do not grow with churn.
 *
 * Reads. A lookup reads slot words with relaxed atomic loads between two
 * reads of the shard's sequence number (a seqlock); writers hold the shard's
 * mutex and make the number odd while they change the table. A read that saw
 * it change retries, and after a few tries (or for an out-of-line entry,
 * whose strings a writer may free, or to drop an expired entry) takes the
 * mutex. So a hit writes no line another thread reads: no lock word, no LRU
 * list, and its hit counter lives in a per-thread stripe.
 *
 * Eviction is CLOCK: each slot has a referenced bit, set by a hit (only when
 * clear, so a hot entry's line is written once per revolution) and by put.
 * Putting a new key into a full shard moves the shard's hand along the slots,
 * clearing bits, until it finds an entry whose bit is clear (or that has
 * expired), and drops it. An evicted entry is thus one not used during a
 * whole revolution of the hand, while every entry used since the hand last
 * passed survives: exact LRU would pick the one entry with the oldest use,
 * CLOCK one of those whose last use is older than a revolution, the standard
 * trade (operating-system page caches, many key-value stores) for not
 * relinking a list on every hit. Slot order is hash order, not insertion
 * order, so which of several idle entries goes first is arbitrary. The hand
 * moves at most two revolutions per put (after one, every bit is clear unless
 * hits keep setting them; then it evicts where it stands), and on average
 * about one slot per bit set, so put is O(1) amortised. */
#define _DEFAULT_SOURCE /* madvise */

#include "cache.h"

#include "text.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLOT_WORDS 6
#define INLINE_MAX (SLOT_WORDS * 8)
#define UUID_TEXT 36
#define UUID_BYTES 16
#define FLAG_OUT_OF_LINE 1u
#define FLAG_UUID_BYTES 2u /* the value is a canonical UUID kept as 16 bytes */
/* in meta, outside what the seqlock validates: readers set it with an atomic
 * or, the hand clears it with an atomic and */
#define REFERENCED (1ull << 56)
#define OPTIMISTIC_TRIES 4
#define STRIPES 64 /* threads with their own counter line; more share one */
#define HUGE_PAGE ((size_t)2 << 20)

typedef struct slot {
    /* hash32 | key_len << 32 | value_len << 40 | flags << 48 | REFERENCED;
     * key_len 0 is an empty slot; value_len (of the text) 0 is a negative
     * entry */
    _Alignas(64) _Atomic uint64_t meta;
    _Atomic int64_t expires_at_ms;
    /* key then value, no NULs; or, out of line, a pointer to them */
    _Atomic uint64_t data[SLOT_WORDS];
} slot;

_Static_assert(sizeof(slot) == 64, "a slot is one cache line");

typedef struct shard {
    /* read by every lookup, written only by puts and removals */
    _Alignas(64) _Atomic uint32_t seq;
    uint32_t nslots;
    slot *slots;
    /* writers only, on its own line */
    _Alignas(64) pthread_mutex_t lock;
    uint32_t capacity;
    uint32_t count;
    uint32_t hand;
    /* written under the lock (plain load+store), read by stats */
    _Atomic uint64_t evictions;
    _Atomic uint64_t size;
    _Atomic uint64_t out_of_line_bytes;
} shard;

/* Hit and miss counters, one line per stripe. The first STRIPES threads of
 * the process each own one stripe (in every cache) and count with a plain
 * load and store: a locked add would also stop the CPU from starting the
 * next lookup's memory access early. Later threads share the last stripe
 * with locked adds. */
typedef struct stripe {
    _Alignas(64) _Atomic uint64_t hits;
    _Atomic uint64_t misses;
} stripe;

struct ud_cache {
    stripe stripes[STRIPES + 1];
    size_t shard_count;
    uint64_t seed; /* random per cache: clusters do not depend on a fixed hash */
    shard *shards;
    slot *slot_memory;
    size_t slot_bytes;
};

enum probe {
    PROBE_MISS,
    PROBE_HIT,
    PROBE_NEGATIVE,
    PROBE_EXPIRED, /* dropping it needs the lock */
    PROBE_LOCK,    /* out-of-line strings: read them under the lock */
    PROBE_RETRY,   /* a writer was at work */
};

static _Atomic unsigned stripe_counter;
static _Thread_local unsigned thread_stripe; /* 1 + index; 0 until first use */

/* For counters with a single writer at a time (a shard's under its lock, a
 * thread's own stripe), so load+store cannot lose an update. */
static void counter_add(_Atomic uint64_t *c, int64_t delta)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)delta,
                          memory_order_relaxed);
}

static void count_lookup(ud_cache *cache, int miss)
{
    stripe *st;
    _Atomic uint64_t *c;

    if (thread_stripe == 0) {
        unsigned n = atomic_fetch_add_explicit(&stripe_counter, 1, memory_order_relaxed);
        thread_stripe = 1 + (n < STRIPES ? n : STRIPES);
    }
    st = &cache->stripes[thread_stripe - 1];
    c = miss ? &st->misses : &st->hits;
    if (thread_stripe <= STRIPES) {
        counter_add(c, 1); /* the only writer of this line */
    } else {
        atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
    }
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Keys are at most 64 bytes: eight words through a multiply-xorshift mix. */
static uint64_t hash_key(const char *key, size_t len, uint64_t seed)
{
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ull);
    uint64_t w;

    while (len >= 8) {
        memcpy(&w, key, 8);
        h = mix64(h ^ w);
        key += 8;
        len -= 8;
    }
    if (len > 0) {
        w = 0;
        memcpy(&w, key, len);
        h = mix64(h ^ w ^ 0x8000000000000000ull);
    }
    return h;
}

/* The hash's low half picks the home slot, its high half the shard. */
static uint32_t range(uint32_t x, uint32_t n)
{
    return (uint32_t)(((uint64_t)x * n) >> 32);
}

static shard *shard_for(ud_cache *cache, uint64_t h)
{
    return &cache->shards[range((uint32_t)(h >> 32), (uint32_t)cache->shard_count)];
}

static uint32_t next_index(uint32_t i, uint32_t n)
{
    return i + 1 == n ? 0 : i + 1;
}

static uint64_t load(_Atomic uint64_t *w)
{
    return atomic_load_explicit(w, memory_order_relaxed);
}

static void store(_Atomic uint64_t *w, uint64_t v)
{
    atomic_store_explicit(w, v, memory_order_relaxed);
}

static size_t meta_key_len(uint64_t meta)
{
    return (size_t)((meta >> 32) & 0xff);
}

static size_t meta_value_len(uint64_t meta)
{
    return (size_t)((meta >> 40) & 0xff);
}

static unsigned meta_flags(uint64_t meta)
{
    return (unsigned)((meta >> 48) & 0xff);
}

/* Bytes the value takes in the slot (or out of line). */
static size_t stored_value_len(uint64_t meta)
{
    return (meta_flags(meta) & FLAG_UUID_BYTES) ? UUID_BYTES : meta_value_len(meta);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* 1 and the 16 bytes when text is a canonical lowercase UUID (decoding
 * gives back exactly the same text), else 0. */
static int uuid_to_bytes(const char *text, size_t len, unsigned char out[UUID_BYTES])
{
    size_t i;
    size_t b = 0;

    if (len != UUID_TEXT) {
        return 0;
    }
    for (i = 0; i < UUID_TEXT; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-') {
                return 0;
            }
        } else {
            int hi = hex_digit(text[i]);
            int lo = hex_digit(text[i + 1]);
            if (hi < 0 || lo < 0) {
                return 0;
            }
            out[b++] = (unsigned char)(hi << 4 | lo);
            i++;
        }
    }
    return 1;
}

static void uuid_from_bytes(const unsigned char in[UUID_BYTES], char *text)
{
    static const char digits[] = "0123456789abcdef";
    size_t b;
    char *o = text;

    for (b = 0; b < UUID_BYTES; b++) {
        if (b == 4 || b == 6 || b == 8 || b == 10) {
            *o++ = '-';
        }
        *o++ = digits[in[b] >> 4];
        *o++ = digits[in[b] & 15];
    }
    *o = '\0';
}

/* Copies the value stored after the key in bytes to uuid as text. */
static void value_out(uint64_t meta, const char *bytes, char *uuid)
{
    const char *v = bytes + meta_key_len(meta);

    if (meta_flags(meta) & FLAG_UUID_BYTES) {
        uuid_from_bytes((const unsigned char *)v, uuid);
    } else {
        memcpy(uuid, v, meta_value_len(meta));
        uuid[meta_value_len(meta)] = '\0';
    }
}

/* Large tables on huge pages: with a million entries every lookup would
 * otherwise also miss the TLB. Small ones (tests, tiny capacities) stay in
 * the heap. Zeroed. */
static void *table_alloc(size_t bytes, size_t align)
{
    void *p;

    if (bytes >= 4 * HUGE_PAGE) {
        align = HUGE_PAGE;
    }
    bytes = (bytes + align - 1) / align * align;
    p = aligned_alloc(align, bytes);
    if (p == NULL) {
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (align == HUGE_PAGE) {
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: fine if refused */
    }
#endif
    memset(p, 0, bytes);
    return p;
}

ud_cache *ud_cache_create(size_t capacity, size_t shards, char *err, size_t errlen)
{
    ud_cache *cache;
    size_t total = 0;
    size_t i;

    if (capacity < 1) {
        ct_set_error(err, errlen, "cache capacity must be at least 1");
        return NULL;
    }
    if (shards == 0) {
        shards = UD_CACHE_DEFAULT_SHARDS;
    }
    if (shards > capacity) {
        shards = capacity;
    }
    /* a shard's slot index and counts are 32-bit */
    if (capacity / shards > UINT32_MAX / 4) {
        ct_set_error(err, errlen, "cache capacity too large");
        return NULL;
    }
    cache = aligned_alloc(_Alignof(ud_cache), sizeof(ud_cache));
    if (cache == NULL) {
        ct_set_error(err, errlen, "out of memory");
        return NULL;
    }
    memset(cache, 0, sizeof(*cache));
    if (RAND_bytes((unsigned char *)&cache->seed, sizeof(cache->seed)) != 1) {
        cache->seed = 0x243f6a8885a308d3ull;
    }
    cache->shards = aligned_alloc(_Alignof(shard), shards * sizeof(shard));
    if (cache->shards == NULL) {
        free(cache);
        ct_set_error(err, errlen, "out of memory");
        return NULL;
    }
    memset(cache->shards, 0, shards * sizeof(shard));
    for (i = 0; i < shards; i++) {
        shard *s = &cache->shards[i];

        /* spread capacity exactly: the first capacity % shards get one more */
        s->capacity = (uint32_t)(capacity / shards + (i < capacity % shards ? 1 : 0));
        /* at most 4/7 full; always one empty slot, which ends every probe */
        s->nslots = s->capacity + s->capacity * 3 / 4 + 1;
        total += s->nslots;
    }
    cache->slot_bytes = total * sizeof(slot);
    cache->slot_memory = table_alloc(cache->slot_bytes, _Alignof(slot));
    if (cache->slot_memory == NULL) {
        free(cache->shards);
        free(cache);
        ct_set_error(err, errlen, "out of memory");
        return NULL;
    }
    total = 0;
    for (i = 0; i < shards; i++) {
        shard *s = &cache->shards[i];

        s->slots = cache->slot_memory + total;
        total += s->nslots;
        pthread_mutex_init(&s->lock, NULL);
    }
    cache->shard_count = shards;
    return cache;
}

static void *out_of_line(slot *sl)
{
    uint64_t meta = load(&sl->meta);

    if (meta_key_len(meta) == 0 || (meta_flags(meta) & FLAG_OUT_OF_LINE) == 0) {
        return NULL;
    }
    return (void *)(uintptr_t)load(&sl->data[0]);
}

void ud_cache_destroy(ud_cache *cache)
{
    size_t i;
    uint32_t j;

    if (cache == NULL) {
        return;
    }
    for (i = 0; i < cache->shard_count; i++) {
        shard *s = &cache->shards[i];

        for (j = 0; j < s->nslots; j++) {
            free(out_of_line(&s->slots[j]));
        }
        pthread_mutex_destroy(&s->lock);
    }
    free(cache->slot_memory);
    free(cache->shards);
    free(cache);
}

/* Copies a slot's key and value bytes (inline) into buf; 0 when the lengths
 * cannot be an inline entry (a torn read). */
static int copy_inline(slot *sl, uint64_t meta, uint64_t buf[SLOT_WORDS])
{
    size_t bytes = meta_key_len(meta) + stored_value_len(meta);
    size_t words = (bytes + 7) / 8;
    size_t w;

    if (bytes > INLINE_MAX || meta_value_len(meta) > UD_CACHE_VALUE_MAX) {
        return 0;
    }
    for (w = 0; w < words; w++) {
        buf[w] = load(&sl->data[w]);
    }
    return 1;
}

/* Compares a slot with the key and, when it is the key, copies the answer.
 * Runs without the lock: everything read may be torn, so the caller
 * validates the sequence number before trusting the result. */
static enum probe read_slot(slot *sl, uint64_t meta, const char *key, size_t klen, int64_t now_ms,
                            char *uuid)
{
    uint64_t buf[SLOT_WORDS];

    if (meta_flags(meta) & FLAG_OUT_OF_LINE) {
        return PROBE_LOCK;
    }
    if (!copy_inline(sl, meta, buf)) {
        return PROBE_RETRY;
    }
    if (memcmp(buf, key, klen) != 0) {
        return PROBE_MISS;
    }
    if (atomic_load_explicit(&sl->expires_at_ms, memory_order_relaxed) <= now_ms) {
        return PROBE_EXPIRED;
    }
    if (meta_value_len(meta) == 0) {
        return PROBE_NEGATIVE;
    }
    value_out(meta, (const char *)buf, uuid);
    return PROBE_HIT;
}

static enum probe read_optimistic(shard *s, const char *key, size_t klen, uint64_t h,
                                  int64_t now_ms, char *uuid, uint32_t *where)
{
    uint32_t before = atomic_load_explicit(&s->seq, memory_order_acquire);
    uint32_t n = s->nslots;
    uint32_t i = range((uint32_t)h, n);
    enum probe result = PROBE_RETRY;
    uint32_t steps;

    if (before & 1) {
        return PROBE_RETRY;
    }
    /* a consistent table always has an empty slot; the bound only guards
     * against a torn view */
    for (steps = 0; steps < n; steps++) {
        slot *sl = &s->slots[i];
        uint64_t meta = load(&sl->meta);
        size_t len = meta_key_len(meta);
        if (len == 0) {
            result = PROBE_MISS;
            break;
        }
        if ((uint32_t)meta == (uint32_t)h && len == klen) {
            result = read_slot(sl, meta, key, klen, now_ms, uuid);
            if (result != PROBE_MISS) {
                break;
            }
        }
        i = next_index(i, n);
    }
    *where = i;
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->seq, memory_order_relaxed) != before) {
        return PROBE_RETRY;
    }
    return result;
}

/* Under the lock: the slot holding key, or -1. */
static int64_t find_locked(shard *s, const char *key, size_t klen, uint64_t h)
{
    uint32_t n = s->nslots;
    uint32_t i = range((uint32_t)h, n);
    uint64_t buf[SLOT_WORDS];

    for (;;) {
        slot *sl = &s->slots[i];
        uint64_t meta = load(&sl->meta);
        if (meta_key_len(meta) == 0) {
            return -1;
        }
        if ((uint32_t)meta == (uint32_t)h && meta_key_len(meta) == klen) {
            const char *k = (const char *)buf;
            if (meta_flags(meta) & FLAG_OUT_OF_LINE) {
                k = out_of_line(sl);
            } else {
                copy_inline(sl, meta, buf);
            }
            if (memcmp(k, key, klen) == 0) {
                return i;
            }
        }
        i = next_index(i, n);
    }
}

static void write_begin(shard *s)
{
    uint32_t v = atomic_load_explicit(&s->seq, memory_order_relaxed);

    atomic_store_explicit(&s->seq, v + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(shard *s)
{
    uint32_t v = atomic_load_explicit(&s->seq, memory_order_relaxed);

    atomic_store_explicit(&s->seq, v + 1, memory_order_release);
}

static uint32_t distance(uint32_t from, uint32_t to, uint32_t n)
{
    return to >= from ? to - from : to + n - from;
}

static void move_slot(shard *s, uint32_t to, uint32_t from)
{
    slot *d = &s->slots[to];
    slot *f = &s->slots[from];
    int w;

    store(&d->meta, load(&f->meta));
    atomic_store_explicit(&d->expires_at_ms,
                          atomic_load_explicit(&f->expires_at_ms, memory_order_relaxed),
                          memory_order_relaxed);
    for (w = 0; w < SLOT_WORDS; w++) {
        store(&d->data[w], load(&f->data[w]));
    }
}

static void count_out_of_line(shard *s, uint64_t meta, int sign)
{
    if (meta_flags(meta) & FLAG_OUT_OF_LINE) {
        counter_add(&s->out_of_line_bytes,
                    sign * (int64_t)(meta_key_len(meta) + stored_value_len(meta)));
    }
}

/* Under the lock, between write_begin and write_end: empties slot i and
 * shifts back the entries after it whose probe path crosses it, so that no
 * probe meets a hole before its key. Returns the entry's out-of-line strings
 * for the caller to free after unlocking. */
static void *drop_at(shard *s, uint32_t i)
{
    uint32_t n = s->nslots;
    uint32_t j = i;
    void *strings = out_of_line(&s->slots[i]);

    count_out_of_line(s, load(&s->slots[i].meta), -1);
    for (;;) {
        uint64_t meta;
        uint32_t home;
        j = next_index(j, n);
        meta = load(&s->slots[j].meta);
        if (meta_key_len(meta) == 0) {
            break;
        }
        home = range((uint32_t)meta, n);
        if (distance(home, j, n) >= distance(i, j, n)) {
            move_slot(s, i, j);
            i = j;
        }
    }
    store(&s->slots[i].meta, 0);
    s->count--;
    counter_add(&s->size, -1);
    return strings;
}

/* Under the lock, in a write: the hand drops one entry to make room. */
static void *make_room(shard *s, int64_t now_ms)
{
    uint32_t n = s->nslots;
    uint32_t steps;

    for (steps = 0;; steps++) {
        uint32_t i = s->hand;
        slot *sl = &s->slots[i];
        uint64_t meta = load(&sl->meta);
        if (meta_key_len(meta) != 0) {
            int expired = atomic_load_explicit(&sl->expires_at_ms, memory_order_relaxed) <= now_ms;
            if (expired || steps >= 2 * n || (meta & REFERENCED) == 0) {
                if (!expired) {
                    counter_add(&s->evictions, 1);
                }
                /* the hand stays: an entry shifted back into i is next */
                return drop_at(s, i);
            }
            atomic_fetch_and_explicit(&sl->meta, ~REFERENCED, memory_order_relaxed);
        }
        s->hand = next_index(i, n);
    }
}

static void mark_used(slot *sl)
{
    if ((load(&sl->meta) & REFERENCED) == 0) {
        atomic_fetch_or_explicit(&sl->meta, REFERENCED, memory_order_relaxed);
    }
}

/* Under the lock: answers from slot i, dropping it when expired. */
static enum ud_cache_answer answer_locked(shard *s, int64_t i, int64_t now_ms, char *uuid, int mark,
                                          void **to_free)
{
    slot *sl;
    uint64_t meta;
    uint64_t buf[SLOT_WORDS];
    const char *strings = (const char *)buf;

    if (i < 0) {
        return UD_CACHE_MISS;
    }
    sl = &s->slots[i];
    if (atomic_load_explicit(&sl->expires_at_ms, memory_order_relaxed) <= now_ms) {
        write_begin(s);
        *to_free = drop_at(s, (uint32_t)i);
        write_end(s);
        return UD_CACHE_MISS;
    }
    if (mark) {
        mark_used(sl);
    }
    meta = load(&sl->meta);
    if (meta_value_len(meta) == 0) {
        return UD_CACHE_NEGATIVE;
    }
    if (meta_flags(meta) & FLAG_OUT_OF_LINE) {
        strings = out_of_line(sl);
    } else {
        copy_inline(sl, meta, buf);
    }
    value_out(meta, strings, uuid);
    return UD_CACHE_HIT;
}

static enum ud_cache_answer lookup(ud_cache *cache, const char *key, int64_t now_ms, char *uuid,
                                   int count)
{
    size_t len = strlen(key);
    uint64_t h = hash_key(key, len, cache->seed);
    shard *s = shard_for(cache, h);
    enum probe p = PROBE_RETRY;
    enum ud_cache_answer answer;
    void *to_free = NULL;
    uint32_t where = 0;
    int tries;

    if (len == 0 || len > UD_CACHE_KEY_MAX) {
        p = PROBE_MISS;
    }
    for (tries = 0; tries < OPTIMISTIC_TRIES && p == PROBE_RETRY; tries++) {
        p = read_optimistic(s, key, len, h, now_ms, uuid, &where);
    }
    if (p == PROBE_HIT || p == PROBE_NEGATIVE) {
        /* a hint: if a writer reused the slot meanwhile, another entry gets
         * a second chance it did not earn, which is harmless */
        if (count) {
            mark_used(&s->slots[where]);
        }
        answer = p == PROBE_HIT ? UD_CACHE_HIT : UD_CACHE_NEGATIVE;
    } else if (p == PROBE_MISS) {
        answer = UD_CACHE_MISS;
    } else {
        pthread_mutex_lock(&s->lock);
        answer = answer_locked(s, find_locked(s, key, len, h), now_ms, uuid, count, &to_free);
        pthread_mutex_unlock(&s->lock);
        free(to_free);
    }
    if (count) {
        count_lookup(cache, answer == UD_CACHE_MISS);
    }
    return answer;
}

enum ud_cache_answer ud_cache_get(ud_cache *cache, const char *key, int64_t now_ms, char *uuid)
{
    return lookup(cache, key, now_ms, uuid, 1);
}

enum ud_cache_answer ud_cache_peek(ud_cache *cache, const char *key, int64_t now_ms, char *uuid)
{
    return lookup(cache, key, now_ms, uuid, 0);
}

/* The slot's contents for key and uuid, built outside the lock. */
typedef struct image {
    uint64_t meta;
    uint64_t data[SLOT_WORDS];
    char *strings; /* out of line, or NULL */
} image;

static int build_image(image *im, const char *key, size_t klen, const char *uuid, size_t vlen,
                       uint64_t h)
{
    unsigned char packed[UUID_BYTES];
    unsigned flags = 0;
    char *bytes = (char *)im->data;
    const char *value = uuid;
    size_t stored = vlen;

    memset(im->data, 0, sizeof(im->data));
    im->strings = NULL;
    if (uuid != NULL && uuid_to_bytes(uuid, vlen, packed)) {
        flags |= FLAG_UUID_BYTES;
        value = (const char *)packed;
        stored = UUID_BYTES;
    }
    if (klen + stored > INLINE_MAX) {
        im->strings = malloc(klen + stored);
        if (im->strings == NULL) {
            return -1;
        }
        bytes = im->strings;
        im->data[0] = (uint64_t)(uintptr_t)im->strings;
        flags |= FLAG_OUT_OF_LINE;
    }
    memcpy(bytes, key, klen);
    if (stored > 0) {
        memcpy(bytes + klen, value, stored);
    }
    im->meta = (uint64_t)(uint32_t)h | (uint64_t)klen << 32 | (uint64_t)vlen << 40 |
               (uint64_t)flags << 48 | REFERENCED;
    return 0;
}

static void write_image(shard *s, uint32_t i, const image *im, int64_t expires_at_ms)
{
    slot *sl = &s->slots[i];
    int w;

    store(&sl->meta, im->meta);
    atomic_store_explicit(&sl->expires_at_ms, expires_at_ms, memory_order_relaxed);
    for (w = 0; w < SLOT_WORDS; w++) {
        store(&sl->data[w], im->data[w]);
    }
    count_out_of_line(s, im->meta, 1);
}

int ud_cache_put(ud_cache *cache, const char *key, const char *uuid, int64_t now_ms,
                 int64_t expires_at_ms)
{
    size_t klen = strlen(key);
    size_t vlen = uuid != NULL ? strlen(uuid) : 0;
    uint64_t h;
    shard *s;
    image im;
    int64_t found;
    void *old = NULL;
    void *evicted = NULL;

    if (klen == 0 || klen > UD_CACHE_KEY_MAX || (uuid != NULL && vlen == 0) ||
        vlen > UD_CACHE_VALUE_MAX) {
        return -1;
    }
    h = hash_key(key, klen, cache->seed);
    if (build_image(&im, key, klen, uuid, vlen, h) != 0) {
        return -1;
    }
    s = shard_for(cache, h);

    pthread_mutex_lock(&s->lock);
    found = find_locked(s, key, klen, h);
    write_begin(s);
    if (found >= 0) {
        old = out_of_line(&s->slots[found]);
        count_out_of_line(s, load(&s->slots[found].meta), -1);
        write_image(s, (uint32_t)found, &im, expires_at_ms);
    } else {
        uint32_t i;
        if (s->count >= s->capacity) {
            evicted = make_room(s, now_ms);
        }
        /* after make_room: dropping shifts entries, so probe afresh */
        i = range((uint32_t)h, s->nslots);
        while (meta_key_len(load(&s->slots[i].meta)) != 0) {
            i = next_index(i, s->nslots);
        }
        write_image(s, i, &im, expires_at_ms);
        s->count++;
        counter_add(&s->size, 1);
    }
    write_end(s);
    pthread_mutex_unlock(&s->lock);
    free(old);
    free(evicted);
    return 0;
}

void ud_cache_remove(ud_cache *cache, const char *key)
{
    size_t len = strlen(key);
    uint64_t h = hash_key(key, len, cache->seed);
    shard *s = shard_for(cache, h);
    void *strings = NULL;
    int64_t i;

    pthread_mutex_lock(&s->lock);
    i = find_locked(s, key, len, h);
    if (i >= 0) {
        write_begin(s);
        strings = drop_at(s, (uint32_t)i);
        write_end(s);
    }
    pthread_mutex_unlock(&s->lock);
    free(strings);
}

void ud_cache_stats(ud_cache *cache, ud_cache_counters *out)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i <= STRIPES; i++) {
        out->hits += atomic_load_explicit(&cache->stripes[i].hits, memory_order_relaxed);
        out->misses += atomic_load_explicit(&cache->stripes[i].misses, memory_order_relaxed);
    }
    for (i = 0; i < cache->shard_count; i++) {
        shard *s = &cache->shards[i];
        out->evictions += atomic_load_explicit(&s->evictions, memory_order_relaxed);
        out->size += atomic_load_explicit(&s->size, memory_order_relaxed);
    }
}

size_t ud_cache_bytes(ud_cache *cache)
{
    size_t bytes = sizeof(*cache) + cache->shard_count * sizeof(shard) + cache->slot_bytes;
    size_t i;

    for (i = 0; i < cache->shard_count; i++) {
        bytes += atomic_load_explicit(&cache->shards[i].out_of_line_bytes, memory_order_relaxed);
    }
    return bytes;
}
