/* The UUID cache: username -> Agora Chat UUID (or "no such user"), a sharded
 * LRU with a TTL per entry and a fixed capacity. Each shard is a mutex, a
 * fixed bucket array and an intrusive LRU list, so get and put are O(1) and
 * threads only meet when their usernames hash to the same shard. The clock is
 * a parameter (now_ms) so that tests can drive expiry. */
#ifndef UD_CACHE_H
#define UD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define UD_CACHE_DEFAULT_SHARDS 64
/* A hit moves its entry to the front of the LRU list at most once per this
 * interval (memcached does the same with 60 s): relinking touches two other
 * random nodes, which on a large cache costs more than the lookup itself,
 * while entries that live for hours lose nothing by an order that is exact
 * to within seconds. 0 makes the cache an exact LRU (the tests use that). */
#define UD_CACHE_PROMOTE_INTERVAL_MS 10000
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
 * entry). LRU order and eviction are per shard: with one shard and
 * promote_interval_ms 0 the cache is an exact LRU, otherwise it approximates
 * one. NULL with err on failure. */
ud_cache *ud_cache_create(size_t capacity, size_t shards, int64_t promote_interval_ms, char *err,
                          size_t errlen);
void ud_cache_destroy(ud_cache *cache);

/* Looks key up at time now_ms. On UD_CACHE_HIT copies the UUID into uuid
 * (UD_CACHE_VALUE_MAX + 1 bytes) and makes the entry most recently used
 * (unless it was made so less than promote_interval_ms ago). Expired entries
 * are dropped and answer UD_CACHE_MISS. Counts a hit or miss. */
enum ud_cache_answer ud_cache_get(ud_cache *cache, const char *key, int64_t now_ms, char *uuid);

/* Same as ud_cache_get without touching the hit and miss counters: for a
 * second look after a first miss, so that one lookup counts once. */
enum ud_cache_answer ud_cache_peek(ud_cache *cache, const char *key, int64_t now_ms, char *uuid);

/* Inserts or replaces key at time now_ms. uuid NULL stores a negative entry.
 * The entry expires at expires_at_ms; inserting into a full shard evicts its least
 * recently used entry (counted as an eviction). 0 on success,
 * -1 when key or uuid is empty or too long, or memory runs out. */
int ud_cache_put(ud_cache *cache, const char *key, const char *uuid, int64_t now_ms,
                 int64_t expires_at_ms);

/* Drops key if present. */
void ud_cache_remove(ud_cache *cache, const char *key);

void ud_cache_stats(ud_cache *cache, ud_cache_counters *out);

/* Bytes the cache's own structures take per entry slot, not counting the
 * strings (node header and bucket slot): for the benchmark's report. */
size_t ud_cache_overhead_per_entry(void);

#endif
