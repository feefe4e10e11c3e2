/* Unit tests for core/directory/cache.c: the sharded LRU UUID cache. The
 * clock is the now_ms argument, so expiry needs no sleeping; most tests use
 * one shard and promotion interval 0, where the cache is an exact LRU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "cache.h"

#define T0 1000000
#define FAR_EXPIRY (T0 + 3600000)

static ud_cache *make(size_t capacity, size_t shards)
{
    char err[128];
    ud_cache *c = ud_cache_create(capacity, shards, 0, err, sizeof(err));
    assert_non_null(c);
    return c;
}

static void put_then_get_returns_the_uuid(void **state)
{
    ud_cache *c = make(16, 1);
    char uuid[UD_CACHE_VALUE_MAX + 1];
    (void)state;
    assert_int_equal(ud_cache_put(c, "alice", "a2e433a0-ab1a-11e2-a134-85fca932f094", T0, T0 + 10),
                     0);
    assert_int_equal(ud_cache_get(c, "alice", T0, uuid), UD_CACHE_HIT);
    assert_string_equal(uuid, "a2e433a0-ab1a-11e2-a134-85fca932f094");
    assert_int_equal(ud_cache_get(c, "bob", T0, uuid), UD_CACHE_MISS);
    ud_cache_destroy(c);
}

static void put_replaces_an_existing_entry(void **state)
{
    ud_cache *c = make(2, 1);
    char uuid[UD_CACHE_VALUE_MAX + 1];
    ud_cache_counters k;
    (void)state;
    assert_int_equal(ud_cache_put(c, "alice", "one", T0, FAR_EXPIRY), 0);
    assert_int_equal(ud_cache_put(c, "alice", "two", T0, FAR_EXPIRY), 0);
    assert_int_equal(ud_cache_get(c, "alice", T0, uuid), UD_CACHE_HIT);
    assert_string_equal(uuid, "two");
    ud_cache_stats(c, &k);
    assert_int_equal(k.size, 1);
    assert_int_equal(k.evictions, 0);
    ud_cache_destroy(c);
}

static void evicts_the_least_recently_used_at_capacity(void **state)
{
    ud_cache *c = make(3, 1);
    char uuid[UD_CACHE_VALUE_MAX + 1];
    ud_cache_counters k;
    (void)state;
    ud_cache_put(c, "a", "ua", T0, FAR_EXPIRY);
    ud_cache_put(c, "b", "ub", T0, FAR_EXPIRY);
    ud_cache_put(c, "c", "uc", T0, FAR_EXPIRY);
    /* touching "a" makes "b" the least recently used */
    assert_int_equal(ud_cache_get(c, "a", T0, uuid), UD_CACHE_HIT);
    ud_cache_put(c, "d", "ud", T0, FAR_EXPIRY);
    assert_int_equal(ud_cache_get(c, "b", T0, uuid), UD_CACHE_MISS);
    assert_int_equal(ud_cache_get(c, "a", T0, uuid), UD_CACHE_HIT);
    assert_int_equal(ud_cache_get(c, "c", T0, uuid), UD_CACHE_HIT);
    assert_int_equal(ud_cache_get(c, "d", T0, uuid), UD_CACHE_HIT);
    /* now "a" is the oldest touch */
    ud_cache_put(c, "e", "ue", T0, FAR_EXPIRY);
    assert_int_equal(ud_cache_get(c, "a", T0, uuid), UD_CACHE_MISS);
    ud_cache_stats(c, &k);
    assert_int_equal(k.evictions, 2);
    assert_int_equal(k.size, 3);
    ud_cache_destroy(c);
}

static void a_replaced_entry_becomes_most_recent(void **state)
{
    ud_cache *c = make(2, 1);
    char uuid[UD_CACHE_VALUE_MAX + 1];
    (void)state;
    ud_cache_put(c, "a", "ua", T0, FAR_EXPIRY);
    ud_cache_put(c, "b", "ub", T0, FAR_EXPIRY);
    ud_cache_put(c, "a", "ua2", T0, FAR_EXPIRY);
    ud_cache_put(c, "c", "uc", T0, FAR_EXPIRY);
    assert_int_equal(ud_cache_get(c, "b", T0, uuid), UD_CACHE_MISS);
    assert_int_equal(ud_cache_get(c, "a", T0, uuid), UD_CACHE_HIT);
    assert_string_equal(uuid, "ua2");
    ud_cache_destroy(c);
}

static void hits_promote_at_most_once_per_interval(void **state)
{
    char err[128];
    ud_cache *c = ud_cache_create(2, 1, 1000, err, sizeof(err));
    char uuid[UD_CACHE_VALUE_MAX + 1];
    (void)state;
    assert_non_null(c);
    ud_cache_put(c, "a", "ua", T0, FAR_EXPIRY);
    ud_cache_put(c, "b", "ub", T0, FAR_EXPIRY);
    /* too soon after its insertion: "a" stays the least recently used */
    assert_int_equal(ud_cache_get(c, "a", T0 + 999, uuid), UD_CACHE_HIT);
    ud_cache_put(c, "c", "uc", T0 + 999, FAR_EXPIRY);
    assert_int_equal(ud_cache_peek(c, "a", T0 + 999, uuid), UD_CACHE_MISS);
    /* a full interval later a hit promotes "b" past "c" */
    assert_int_equal(ud_cache_get(c, "b", T0 + 1000, uuid), UD_CACHE_HIT);
    ud_cache_put(c, "d", "ud", T0 + 1000, FAR_EXPIRY);
    assert_int_equal(ud_cache_peek(c, "c", T0 + 1000, uuid), UD_CACHE_MISS);
    assert_int_equal(ud_cache_peek(c, "b", T0 + 1000, uuid), UD_CACHE_HIT);
    ud_cache_destroy(c);
}

static void entries_expire_at_their_ttl(void **state)
{
    ud_cache *c = make(8, 1);
    char uuid[UD_CACHE_VALUE_MAX + 1];
    ud_cache_counters k;
    (void)state;
    ud_cache_put(c, "short", "u1", T0, T0 + 1000);
    ud_cache_put(c, "long", "u2", T0, T0 + 5000);
    assert_int_equal(ud_cache_get(c, "short", T0 + 999, uuid), UD_CACHE_HIT);
    assert_int_equal(ud_cache_get(c, "short", T0 + 1000, uuid), UD_CACHE_MISS);
    assert_int_equal(ud_cache_get(c, "long", T0 + 4999, uuid), UD_CACHE_HIT);
    ud_cache_stats(c, &k);
    /* the expired entry is gone, not just hidden */
    assert_int_equal(k.size, 1);
    assert_int_equal(k.evictions, 0);
    assert_int_equal(ud_cache_get(c, "long", T0 + 5000, uuid), UD_CACHE_MISS);
    ud_cache_destroy(c);
}

static void negative_entries_answer_negative_until_they_expire(void **state)
{
    ud_cache *c = make(8, 1);
    char uuid[UD_CACHE_VALUE_MAX + 1];
    (void)state;
    assert_int_equal(ud_cache_put(c, "ghost", NULL, T0, T0 + 30000), 0);
    assert_int_equal(ud_cache_get(c, "ghost", T0, uuid), UD_CACHE_NEGATIVE);
    assert_int_equal(ud_cache_get(c, "ghost", T0 + 30000, uuid), UD_CACHE_MISS);
    /* a registration later replaces a negative entry */
    ud_cache_put(c, "ghost", NULL, T0, T0 + 30000);
    ud_cache_put(c, "ghost", "now-real", T0, T0 + 60000);
    assert_int_equal(ud_cache_get(c, "ghost", T0, uuid), UD_CACHE_HIT);
    assert_string_equal(uuid, "now-real");
    ud_cache_destroy(c);
}

static void counts_hits_misses_and_peek_counts_nothing(void **state)
{
    ud_cache *c = make(8, 4);
    char uuid[UD_CACHE_VALUE_MAX + 1];
    ud_cache_counters k;
    (void)state;
    ud_cache_put(c, "a", "ua", T0, FAR_EXPIRY);
    ud_cache_put(c, "n", NULL, T0, FAR_EXPIRY);
    ud_cache_get(c, "a", T0, uuid);
    ud_cache_get(c, "a", T0, uuid);
    ud_cache_get(c, "n", T0, uuid);
    ud_cache_get(c, "x", T0, uuid);
    assert_int_equal(ud_cache_peek(c, "a", T0, uuid), UD_CACHE_HIT);
    assert_int_equal(ud_cache_peek(c, "y", T0, uuid), UD_CACHE_MISS);
    ud_cache_stats(c, &k);
    assert_int_equal(k.hits, 3);
    assert_int_equal(k.misses, 1);
    assert_int_equal(k.size, 2);
    ud_cache_remove(c, "a");
    ud_cache_stats(c, &k);
    assert_int_equal(k.size, 1);
    assert_int_equal(ud_cache_get(c, "a", T0, uuid), UD_CACHE_MISS);
    ud_cache_destroy(c);
}

static void refuses_empty_and_oversized_strings(void **state)
{
    ud_cache *c = make(8, 1);
    char long_key[UD_CACHE_KEY_MAX + 2];
    char long_value[UD_CACHE_VALUE_MAX + 2];
    char uuid[UD_CACHE_VALUE_MAX + 1];
    (void)state;
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    memset(long_value, 'v', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    assert_int_equal(ud_cache_put(c, "", "u", T0, FAR_EXPIRY), -1);
    assert_int_equal(ud_cache_put(c, "a", "", T0, FAR_EXPIRY), -1);
    assert_int_equal(ud_cache_put(c, long_key, "u", T0, FAR_EXPIRY), -1);
    assert_int_equal(ud_cache_put(c, "a", long_value, T0, FAR_EXPIRY), -1);
    long_value[UD_CACHE_VALUE_MAX] = '\0'; /* exactly the maximum fits */
    assert_int_equal(ud_cache_put(c, "a", long_value, T0, FAR_EXPIRY), 0);
    assert_int_equal(ud_cache_get(c, "a", T0, uuid), UD_CACHE_HIT);
    assert_int_equal(strlen(uuid), UD_CACHE_VALUE_MAX);
    ud_cache_destroy(c);
}

static void sharded_capacity_is_exact_in_total(void **state)
{
    ud_cache *c = make(100, 8);
    ud_cache_counters k;
    char key[32];
    int i;
    (void)state;
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "user%d", i);
        ud_cache_put(c, key, "u", T0, FAR_EXPIRY);
    }
    ud_cache_stats(c, &k);
    assert_true(k.size <= 100);
    assert_true(k.size >= 90); /* shards fill unevenly, but each fills */
    assert_int_equal(k.size + k.evictions, 1000);
    ud_cache_destroy(c);
    /* fewer entries than shards: one entry per shard still works */
    c = make(3, 64);
    ud_cache_put(c, "a", "u", T0, FAR_EXPIRY);
    ud_cache_destroy(c);
}

static void refuses_zero_capacity(void **state)
{
    char err[128];
    (void)state;
    assert_null(ud_cache_create(0, 0, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "capacity"));
}

#define THREADS 4
#define KEYS 2000
#define ROUNDS 20000

typedef struct worker_arg {
    ud_cache *cache;
    int id;
    int wrong;
} worker_arg;

/* Each key's value is derived from the key, so any torn or mixed-up entry
 * shows as a wrong value. */
static void *worker(void *p)
{
    worker_arg *a = p;
    char key[32];
    char want[32];
    char uuid[UD_CACHE_VALUE_MAX + 1];
    unsigned x = (unsigned)a->id * 2654435761u + 1;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        int k;
        x = x * 1103515245u + 12345u;
        k = (int)((x >> 8) % KEYS);
        snprintf(key, sizeof(key), "user%d", k);
        snprintf(want, sizeof(want), "uuid-%d", k);
        if ((x >> 4) % 4 == 0) {
            ud_cache_put(a->cache, key, want, T0, FAR_EXPIRY);
        } else if ((x >> 4) % 16 == 1) {
            ud_cache_remove(a->cache, key);
        } else if (ud_cache_get(a->cache, key, T0, uuid) == UD_CACHE_HIT &&
                   strcmp(uuid, want) != 0) {
            a->wrong++;
        }
    }
    return NULL;
}

static void concurrent_use_keeps_entries_and_counters_consistent(void **state)
{
    ud_cache *c = make(KEYS / 2, 16);
    pthread_t t[THREADS];
    worker_arg args[THREADS];
    ud_cache_counters k;
    int i;
    (void)state;
    for (i = 0; i < THREADS; i++) {
        args[i].cache = c;
        args[i].id = i;
        args[i].wrong = 0;
        assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].wrong, 0);
    }
    ud_cache_stats(c, &k);
    assert_true(k.size <= KEYS / 2);
    assert_true(k.hits + k.misses > 0);
    assert_true(k.evictions > 0);
    ud_cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_then_get_returns_the_uuid),
        cmocka_unit_test(put_replaces_an_existing_entry),
        cmocka_unit_test(evicts_the_least_recently_used_at_capacity),
        cmocka_unit_test(a_replaced_entry_becomes_most_recent),
        cmocka_unit_test(hits_promote_at_most_once_per_interval),
        cmocka_unit_test(entries_expire_at_their_ttl),
        cmocka_unit_test(negative_entries_answer_negative_until_they_expire),
        cmocka_unit_test(counts_hits_misses_and_peek_counts_nothing),
        cmocka_unit_test(refuses_empty_and_oversized_strings),
        cmocka_unit_test(sharded_capacity_is_exact_in_total),
        cmocka_unit_test(refuses_zero_capacity),
        cmocka_unit_test(concurrent_use_keeps_entries_and_counters_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
