/* The UUID cache: username -> Agora Chat UUID (or "no such user"), sharded,
 * with a TTL per entry, a fixed capacity and CLOCK (second-chance) eviction,
 * an approximation of LRU. Each shard is an open-addressing table whose slots
 * hold the key and the UUID inline, read without a lock (a per-shard sequence
 * number validates the read) and written under the shard's mutex, so a hit
 * costs one slot's cache lines and writes nothing other threads read. The
 * clock is a parameter (now_ms) so that tests can drive expiry. */
#ifndef UD_CACHE_H
#define UD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define UD_CACHE_DEFAULT_SHARDS 64
#define UD_CACHE_KEY_MAX 64   /* CT_USERNAME_MAX */
#define UD_CACHE_VALUE_MAX 64 /* UD_UUID_MAX */

typedef struct ud_cache ud_cache;

enum ud_cache_answer {
    UD_CACHE_MISS = 0,     /* absent or expired */
    UD_CACHE_HIT = 1,      /* uuid filled */
    UD_CACHE_NEGATIVE = 2, /* a fresh "no such user" entry */
};

typedef struct ud_cache_counters {
    uint64_t hits; /* positive and negative */
    uint64_t misses;
    uint64_t evictions; /* entries pushed out by capacity (not expiry) */
    uint64_t size;
} ud_cache_counters;

/* capacity >= 1 entries in total; shards 0 means UD_CACHE_DEFAULT_SHARDS and
 * is lowered to capacity when capacity is smaller (a shard holds at least one
 * entry). Capacity and eviction are per shard. NULL with err on failure. */
ud_cache *ud_cache_create(size_t capacity, size_t shards, char *err, size_t errlen);
void ud_cache_destroy(ud_cache *cache);

/* Looks key up at time now_ms. On UD_CACHE_HIT copies the UUID into uuid
 * (UD_CACHE_VALUE_MAX + 1 bytes) and marks the entry used, which spares it
 * from the next pass of its shard's eviction hand. Expired entries are
 * dropped and answer UD_CACHE_MISS. Counts a hit or miss. */
enum ud_cache_answer ud_cache_get(ud_cache *cache, const char *key, int64_t now_ms, char *uuid);

/* Same as ud_cache_get without touching the hit and miss counters and without
 * marking the entry used: for a second look after a first miss, so that one
 * lookup counts once. */
enum ud_cache_answer ud_cache_peek(ud_cache *cache, const char *key, int64_t now_ms, char *uuid);

/* Inserts or replaces key at time now_ms; either marks the entry used. uuid
 * NULL stores a negative entry. The entry expires at expires_at_ms. Inserting
 * into a full shard first drops an entry the eviction hand finds expired or
 * not used since its previous pass (counted as an eviction unless expired).
 * 0 on success, -1 when key or uuid is empty or too long, or memory runs out. */
int ud_cache_put(ud_cache *cache, const char *key, const char *uuid, int64_t now_ms,
                 int64_t expires_at_ms);

/* Drops key if present. */
void ud_cache_remove(ud_cache *cache, const char *key);

void ud_cache_stats(ud_cache *cache, ud_cache_counters *out);

/* Bytes the cache has allocated in all (tables, shard headers, counters and
 * the out-of-line strings of rare long entries): for the benchmark's report. */
size_t ud_cache_bytes(ud_cache *cache);

#endif
