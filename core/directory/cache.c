/* The sharded LRU UUID cache. Memory per entry beyond the strings: one node
 * header (46 bytes, with the key and value stored in the same allocation
 * right after it), the allocator's header and rounding, and one bucket slot
 * (8 bytes; the table's load factor stays within 2/3..4/3). Counters are atomics
 * written only under their shard's lock, so a writer can use a plain
 * load+store (no locked instruction) and stats readers need no lock. */
#include "cache.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LRU list links, first in a node so that a node and its links share an
 * address; the shard's sentinel is links alone (a node ends in a flexible
 * array and cannot be embedded). */
typedef struct links {
    struct links *prev; /* toward the most recently used */
    struct links *next; /* toward the least recently used */
} links;

typedef struct node {
    links lru;
    struct node *chain; /* next in the bucket */
    int64_t expires_at_ms;
    int64_t promoted_ms; /* when it last became the most recently used */
    uint32_t hash;       /* low bits of the full hash: cheap reject before memcmp */
    uint8_t key_len;
    uint8_t value_len; /* 0 for a negative entry */
    char data[];       /* key NUL value NUL */
} node;

typedef struct shard {
    /* Aligned so that two shards never share a cache line: the two threads
     * of the benchmark (and the gRPC workers) would otherwise fight over
     * lines they do not logically share. */
    _Alignas(64) pthread_mutex_t lock;
    node **buckets;
    size_t mask;
    links lru; /* sentinel: lru.next is the most recently used */
    size_t capacity;
    size_t count;
    _Atomic uint64_t hits;
    _Atomic uint64_t misses;
    _Atomic uint64_t evictions;
    _Atomic uint64_t size;
} shard;

struct ud_cache {
    size_t shard_count;
    int64_t promote_interval_ms;
    uint64_t seed; /* random per cache: chains do not depend on a fixed hash */
    shard *shards;
};

static void set_error(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", msg);
    }
}

/* Written only under the shard lock, so load+store cannot lose an update. */
static void counter_add(_Atomic uint64_t *c, int64_t delta)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)delta,
                          memory_order_relaxed);
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

static size_t next_pow2(size_t n)
{
    size_t p = 1;

    while (p < n) {
        p <<= 1;
    }
    return p;
}

ud_cache *ud_cache_create(size_t capacity, size_t shards, int64_t promote_interval_ms, char *err,
                          size_t errlen)
{
    ud_cache *cache;
    size_t i;

    if (capacity < 1) {
        set_error(err, errlen, "cache capacity must be at least 1");
        return NULL;
    }
    if (shards == 0) {
        shards = UD_CACHE_DEFAULT_SHARDS;
    }
    if (shards > capacity) {
        shards = capacity;
    }
    cache = calloc(1, sizeof(*cache));
    if (cache == NULL) {
        set_error(err, errlen, "out of memory");
        return NULL;
    }
    cache->shard_count = shards;
    cache->promote_interval_ms = promote_interval_ms > 0 ? promote_interval_ms : 0;
    if (RAND_bytes((unsigned char *)&cache->seed, sizeof(cache->seed)) != 1) {
        cache->seed = 0x243f6a8885a308d3ull;
    }
    cache->shards = aligned_alloc(_Alignof(shard), shards * sizeof(shard));
    if (cache->shards == NULL) {
        free(cache);
        set_error(err, errlen, "out of memory");
        return NULL;
    }
    memset(cache->shards, 0, shards * sizeof(shard));
    for (i = 0; i < shards; i++) {
        shard *s = &cache->shards[i];
        size_t nbuckets;

        /* spread capacity exactly: the first capacity % shards get one more */
        s->capacity = capacity / shards + (i < capacity % shards ? 1 : 0);
        /* load factor at most 4/3 when full: short chains, and no doubling
         * of the table for a capacity just past a power of two */
        nbuckets = next_pow2(s->capacity - s->capacity / 4);
        s->buckets = calloc(nbuckets, sizeof(node *));
        s->mask = nbuckets - 1;
        s->lru.next = &s->lru;
        s->lru.prev = &s->lru;
        pthread_mutex_init(&s->lock, NULL);
        if (s->buckets == NULL) {
            cache->shard_count = i + 1;
            ud_cache_destroy(cache);
            set_error(err, errlen, "out of memory");
            return NULL;
        }
    }
    return cache;
}

void ud_cache_destroy(ud_cache *cache)
{
    size_t i;

    if (cache == NULL) {
        return;
    }
    for (i = 0; i < cache->shard_count; i++) {
        shard *s = &cache->shards[i];
        links *l = s->lru.next;

        while (l != NULL && l != &s->lru) {
            links *next = l->next;
            free(l); /* the links are the node's first member */
            l = next;
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(cache->shards);
    free(cache);
}

static shard *shard_for(ud_cache *cache, uint64_t h)
{
    return &cache->shards[(h >> 40) % cache->shard_count];
}

/* Returns the link that points at the matching node (or at NULL). */
static node **find_link(shard *s, const char *key, size_t len, uint64_t h)
{
    node **link = &s->buckets[h & s->mask];

    while (*link != NULL) {
        node *n = *link;
        if (n->hash == (uint32_t)h && n->key_len == len && memcmp(n->data, key, len) == 0) {
            return link;
        }
        link = &n->chain;
    }
    return link;
}

static void lru_unlink(node *n)
{
    n->lru.prev->next = n->lru.next;
    n->lru.next->prev = n->lru.prev;
}

static void lru_push_front(shard *s, node *n)
{
    n->lru.next = s->lru.next;
    n->lru.prev = &s->lru;
    s->lru.next->prev = &n->lru;
    s->lru.next = &n->lru;
}

/* Unlinks n from its bucket chain and the LRU list; the caller frees it. */
static void drop(shard *s, node *n)
{
    node **link = &s->buckets[n->hash & s->mask];

    while (*link != n) {
        link = &(*link)->chain;
    }
    *link = n->chain;
    lru_unlink(n);
    s->count--;
    counter_add(&s->size, -1);
}

static enum ud_cache_answer lookup(ud_cache *cache, const char *key, int64_t now_ms, char *uuid,
                                   int count)
{
    size_t len = strlen(key);
    uint64_t h = hash_key(key, len, cache->seed);
    shard *s = shard_for(cache, h);
    node **link;
    node *n;
    node *expired = NULL;
    enum ud_cache_answer answer = UD_CACHE_MISS;

    pthread_mutex_lock(&s->lock);
    link = find_link(s, key, len, h);
    n = *link;
    if (n != NULL && n->expires_at_ms <= now_ms) {
        *link = n->chain;
        lru_unlink(n);
        s->count--;
        counter_add(&s->size, -1);
        expired = n;
    } else if (n != NULL) {
        if (s->lru.next != &n->lru && now_ms - n->promoted_ms >= cache->promote_interval_ms) {
            lru_unlink(n);
            lru_push_front(s, n);
            n->promoted_ms = now_ms;
        }
        if (n->value_len > 0) {
            memcpy(uuid, n->data + n->key_len + 1, (size_t)n->value_len + 1);
            answer = UD_CACHE_HIT;
        } else {
            answer = UD_CACHE_NEGATIVE;
        }
    }
    if (count) {
        counter_add(answer == UD_CACHE_MISS ? &s->misses : &s->hits, 1);
    }
    pthread_mutex_unlock(&s->lock);
    free(expired);
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

int ud_cache_put(ud_cache *cache, const char *key, const char *uuid, int64_t now_ms,
                 int64_t expires_at_ms)
{
    size_t klen = strlen(key);
    size_t vlen = uuid != NULL ? strlen(uuid) : 0;
    uint64_t h;
    shard *s;
    node *n;
    node **link;
    node *old;
    node *evicted = NULL;

    if (klen == 0 || klen > UD_CACHE_KEY_MAX || (uuid != NULL && vlen == 0) ||
        vlen > UD_CACHE_VALUE_MAX) {
        return -1;
    }
    /* allocate outside the lock: the shard is held only for pointer work */
    n = malloc(offsetof(node, data) + klen + 1 + vlen + 1);
    if (n == NULL) {
        return -1;
    }
    h = hash_key(key, klen, cache->seed);
    n->expires_at_ms = expires_at_ms;
    n->promoted_ms = now_ms;
    n->hash = (uint32_t)h;
    n->key_len = (uint8_t)klen;
    n->value_len = (uint8_t)vlen;
    memcpy(n->data, key, klen + 1);
    if (uuid != NULL) {
        memcpy(n->data + klen + 1, uuid, vlen + 1);
    } else {
        n->data[klen + 1] = '\0';
    }
    s = shard_for(cache, h);

    pthread_mutex_lock(&s->lock);
    link = find_link(s, key, klen, h);
    old = *link;
    if (old != NULL) {
        /* replace in place in the chain: the link stays valid */
        n->chain = old->chain;
        *link = n;
        lru_unlink(old);
        lru_push_front(s, n);
    } else {
        if (s->count >= s->capacity) {
            evicted = (node *)s->lru.prev;
            counter_add(&s->evictions, 1);
            drop(s, evicted);
        }
        /* at the bucket head: link may have pointed into the evicted node */
        link = &s->buckets[h & s->mask];
        n->chain = *link;
        *link = n;
        lru_push_front(s, n);
        s->count++;
        counter_add(&s->size, 1);
    }
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
    node *n;

    pthread_mutex_lock(&s->lock);
    n = *find_link(s, key, len, h);
    if (n != NULL) {
        drop(s, n);
    }
    pthread_mutex_unlock(&s->lock);
    free(n);
}

void ud_cache_stats(ud_cache *cache, ud_cache_counters *out)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < cache->shard_count; i++) {
        shard *s = &cache->shards[i];
        out->hits += atomic_load_explicit(&s->hits, memory_order_relaxed);
        out->misses += atomic_load_explicit(&s->misses, memory_order_relaxed);
        out->evictions += atomic_load_explicit(&s->evictions, memory_order_relaxed);
        out->size += atomic_load_explicit(&s->size, memory_order_relaxed);
    }
}

size_t ud_cache_overhead_per_entry(void)
{
    return offsetof(node, data) + sizeof(node *);
}
