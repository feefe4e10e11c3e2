/* Unit tests for core/directory/cache.c: the sharded UUID cache with CLOCK
 * eviction. The clock is the now_ms argument, so expiry needs no sleeping.
 * Eviction is checked against CLOCK's guarantee, not an exact LRU order: an
 * entry used (hit, inserted or replaced) since the hand last passed it
 * survives, and an entry the hand passed and nobody used since is the one to
 * go. Slots are in hash order, so the tests find out which entry the first
 * sweep took with ud_cache_peek, which does not mark entries used. */
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

/* What the last ud_cache_get or ud_cache_peek of a test found. */
static char uuid[UD_CACHE_VALUE_MAX + 1];

static ud_cache *make(size_t capacity, size_t shards)
{
    char err[128];
    ud_cache *c = ud_cache_create(capacity, shards, err, sizeof(err));
    assert_non_null(c);
    return c;
}

/* A get of key at now (which marks the entry used) finds want. */
static void expect_hit(ud_cache *c, const char *key, int64_t now, const char *want)
{
    assert_int_equal(ud_cache_get(c, key, now, uuid), UD_CACHE_HIT);
    assert_string_equal(uuid, want);
}

/* Each key of the NULL-ended list peeks (which marks nothing used) as
 * answer at now. */
static void expect_peek(ud_cache *c, int64_t now, enum ud_cache_answer answer, ...)
{
    va_list keys;
    const char *key;

    va_start(keys, answer);
    while ((key = va_arg(keys, const char *)) != NULL) {
        if (ud_cache_peek(c, key, now, uuid) != answer) {
            fail_msg("peek of \"%s\" did not answer %d", key, (int)answer);
        }
    }
    va_end(keys);
}

/* The cache holds size entries and has evicted evictions. */
static void expect_counts(ud_cache *c, size_t size, uint64_t evictions)
{
    ud_cache_counters k;
    ud_cache_stats(c, &k);
    assert_int_equal(k.size, size);
    assert_int_equal(k.evictions, evictions);
}

static void put_then_get_returns_the_uuid(void **state)
{
    ud_cache *c = make(16, 1);
    (void)state;
    assert_int_equal(ud_cache_put(c, "alice", "a2e433a0-ab1a-11e2-a134-85fca932f094", T0, T0 + 10),
                     0);
    expect_hit(c, "alice", T0, "a2e433a0-ab1a-11e2-a134-85fca932f094");
    assert_int_equal(ud_cache_get(c, "bob", T0, uuid), UD_CACHE_MISS);
    ud_cache_destroy(c);
}

/* Canonical UUIDs are stored as 16 bytes: every value must still come back
 * exactly as it was put, whatever its form, and with a key long enough to
 * push the strings out of line. */
static void every_value_comes_back_exactly(void **state)
{
    static const char *const values[] = {
        "a2e433a0-ab1a-11e2-a134-85fca932f094", /* canonical: packed */
        "A2E433A0-AB1A-11E2-A134-85FCA932F094", /* upper case: kept as text */
        "a2e433a0-ab1a-11e2-a134-85fca932f09",  /* one short */
        "a2e433a0ab1a-11e2-a134-85fca932f094-", /* dash misplaced */
        "g2e433a0-ab1a-11e2-a134-85fca932f094", /* not hex */
        "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
    };
    static const char *const keys[] = {"u", "user-with-a-32-character-name-xx",
                                       "user-with-a-33-character-name-xyz"};
    ud_cache *c = make(64, 1);
    char key[UD_CACHE_KEY_MAX + 1];
    size_t v;
    size_t k;
    (void)state;
    for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        for (v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            snprintf(key, sizeof(key), "%s", keys[k]);
            key[0] = (char)('a' + v);
            assert_int_equal(ud_cache_put(c, key, values[v], T0, FAR_EXPIRY), 0);
            expect_hit(c, key, T0, values[v]);
        }
    }
    ud_cache_destroy(c);
}

static void put_replaces_an_existing_entry(void **state)
{
    ud_cache *c = make(2, 1);
    (void)state;
    assert_int_equal(ud_cache_put(c, "alice", "one", T0, FAR_EXPIRY), 0);
    assert_int_equal(ud_cache_put(c, "alice", "two", T0, FAR_EXPIRY), 0);
    expect_hit(c, "alice", T0, "two");
    expect_counts(c, 1, 0);
    ud_cache_destroy(c);
}

/* A one-shard cache of capacity 3 filled with a, b, c, then d put: the hand
 * cleared the three flags and took one of them; kept are the other two. */
typedef struct swept {
    ud_cache *c;
    const char *kept[2];
} swept;

static swept sweep_once(void)
{
    static const char *const old[] = {"a", "b", "c"};
    swept s = {make(3, 1), {NULL, NULL}};
    int kept = 0;

    ud_cache_put(s.c, "a", "ua", T0, FAR_EXPIRY);
    ud_cache_put(s.c, "b", "ub", T0, FAR_EXPIRY);
    ud_cache_put(s.c, "c", "uc", T0, FAR_EXPIRY);
    ud_cache_put(s.c, "d", "ud", T0, FAR_EXPIRY);
    expect_counts(s.c, 3, 1);
    expect_peek(s.c, T0, UD_CACHE_HIT, "d", NULL);
    for (int i = 0; i < 3; i++) {
        if (ud_cache_peek(s.c, old[i], T0, uuid) == UD_CACHE_HIT) {
            s.kept[kept++] = old[i];
        }
    }
    assert_int_equal(kept, 2);
    return s;
}

/* kept[0] is hit, d was inserted after the sweep, kept[1] was neither (peek
 * does not count as a use): the next put must take kept[1] */
static void an_entry_hit_since_the_last_sweep_survives_eviction(void **state)
{
    swept s = sweep_once();
    (void)state;
    assert_int_equal(ud_cache_get(s.c, s.kept[0], T0, uuid), UD_CACHE_HIT);
    ud_cache_put(s.c, "e", "ue", T0, FAR_EXPIRY);
    expect_peek(s.c, T0, UD_CACHE_MISS, s.kept[1], NULL);
    expect_peek(s.c, T0, UD_CACHE_HIT, s.kept[0], "d", "e", NULL);
    expect_counts(s.c, 3, 2);
    ud_cache_destroy(s.c);
}

/* kept[0] is replaced: the next put takes kept[1] */
static void replacing_an_entry_counts_as_a_use(void **state)
{
    swept s = sweep_once();
    (void)state;
    ud_cache_put(s.c, s.kept[0], "new", T0, FAR_EXPIRY);
    ud_cache_put(s.c, "e", "ue", T0, FAR_EXPIRY);
    expect_peek(s.c, T0, UD_CACHE_MISS, s.kept[1], NULL);
    expect_peek(s.c, T0, UD_CACHE_HIT, s.kept[0], NULL);
    assert_string_equal(uuid, "new");
    ud_cache_destroy(s.c);
}

static void every_entry_used_means_the_hand_still_evicts_one(void **state)
{
    swept s = sweep_once();
    (void)state;
    ud_cache_get(s.c, s.kept[0], T0, uuid);
    ud_cache_get(s.c, s.kept[1], T0, uuid);
    ud_cache_put(s.c, "e", "ue", T0, FAR_EXPIRY);
    expect_counts(s.c, 3, 2);
    expect_peek(s.c, T0, UD_CACHE_HIT, "e", NULL);
    ud_cache_destroy(s.c);
}

static void the_hand_takes_an_expired_entry_without_counting_an_eviction(void **state)
{
    ud_cache *c = make(2, 1);
    (void)state;
    ud_cache_put(c, "fresh", "u1", T0, FAR_EXPIRY);
    ud_cache_put(c, "stale", "u2", T0, T0 + 10);
    ud_cache_get(c, "fresh", T0, uuid);
    ud_cache_put(c, "new", "u3", T0 + 10, FAR_EXPIRY);
    expect_counts(c, 2, 0);
    expect_peek(c, T0 + 10, UD_CACHE_HIT, "fresh", "new", NULL);
    ud_cache_destroy(c);
}

static void entries_expire_at_their_ttl(void **state)
{
    ud_cache *c = make(8, 1);
    (void)state;
    ud_cache_put(c, "short", "u1", T0, T0 + 1000);
    ud_cache_put(c, "long", "u2", T0, T0 + 5000);
    assert_int_equal(ud_cache_get(c, "short", T0 + 999, uuid), UD_CACHE_HIT);
    assert_int_equal(ud_cache_get(c, "short", T0 + 1000, uuid), UD_CACHE_MISS);
    assert_int_equal(ud_cache_get(c, "long", T0 + 4999, uuid), UD_CACHE_HIT);
    /* the expired entry is gone, not just hidden */
    expect_counts(c, 1, 0);
    assert_int_equal(ud_cache_get(c, "long", T0 + 5000, uuid), UD_CACHE_MISS);
    ud_cache_destroy(c);
}

static void negative_entries_answer_negative_until_they_expire(void **state)
{
    ud_cache *c = make(8, 1);
    (void)state;
    assert_int_equal(ud_cache_put(c, "ghost", NULL, T0, T0 + 30000), 0);
    assert_int_equal(ud_cache_get(c, "ghost", T0, uuid), UD_CACHE_NEGATIVE);
    assert_int_equal(ud_cache_get(c, "ghost", T0 + 30000, uuid), UD_CACHE_MISS);
    /* a registration later replaces a negative entry */
    ud_cache_put(c, "ghost", NULL, T0, T0 + 30000);
    ud_cache_put(c, "ghost", "now-real", T0, T0 + 60000);
    expect_hit(c, "ghost", T0, "now-real");
    ud_cache_destroy(c);
}

static void counts_hits_misses_and_peek_counts_nothing(void **state)
{
    ud_cache *c = make(8, 4);
    ud_cache_counters k;
    (void)state;
    ud_cache_put(c, "a", "ua", T0, FAR_EXPIRY);
    ud_cache_put(c, "n", NULL, T0, FAR_EXPIRY);
    ud_cache_get(c, "a", T0, uuid);
    ud_cache_get(c, "a", T0, uuid);
    ud_cache_get(c, "n", T0, uuid);
    ud_cache_get(c, "x", T0, uuid);
    expect_peek(c, T0, UD_CACHE_HIT, "a", NULL);
    expect_peek(c, T0, UD_CACHE_MISS, "y", NULL);
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

/* A 64-character key with a 64-character value is too long to keep inline
 * in a slot: stored, replaced, evicted and removed like any other entry
 * (the sanitizer builds check that nothing leaks). */
static void long_keys_with_long_values_are_kept_out_of_line(void **state)
{
    ud_cache *c = make(4, 1);
    char key[UD_CACHE_KEY_MAX + 1];
    char value[UD_CACHE_VALUE_MAX + 1];
    int i;
    (void)state;
    memset(value, 'v', UD_CACHE_VALUE_MAX);
    value[UD_CACHE_VALUE_MAX] = '\0';
    for (i = 0; i < 10; i++) {
        memset(key, 'k', UD_CACHE_KEY_MAX);
        key[UD_CACHE_KEY_MAX] = '\0';
        key[0] = (char)('0' + i);
        assert_int_equal(ud_cache_put(c, key, value, T0, FAR_EXPIRY), 0);
        expect_hit(c, key, T0, value);
    }
    expect_counts(c, 4, 6);
    /* key "9kkk...": out of line, then inline, then out of line again */
    assert_int_equal(ud_cache_put(c, key, "short", T0, FAR_EXPIRY), 0);
    expect_hit(c, key, T0, "short");
    assert_int_equal(ud_cache_put(c, key, value, T0, FAR_EXPIRY), 0);
    expect_hit(c, key, T0, value);
    assert_true(ud_cache_bytes(c) > 0);
    ud_cache_remove(c, key);
    assert_int_equal(ud_cache_get(c, key, T0, uuid), UD_CACHE_MISS);
    /* and one that expires is dropped on lookup */
    assert_int_equal(ud_cache_put(c, key, value, T0, T0 + 1), 0);
    assert_int_equal(ud_cache_get(c, key, T0 + 1, uuid), UD_CACHE_MISS);
    ud_cache_destroy(c);
}

/* Advances the LCG state *x and draws user<i> for an i below keys into key;
 * returns i. */
static int draw_key(unsigned *x, int keys, char key[32])
{
    int i;
    *x = *x * 1103515245u + 12345u;
    i = (int)((*x >> 8) % (unsigned)keys);
    snprintf(key, 32, "user%d", i);
    return i;
}

/* Open addressing: a removal or eviction shifts the entries after it, and
 * none may get lost. Random puts, removals and lookups on few slots against
 * a model: a key just put is found with its value, a removed key is gone, a
 * hit always has the value last put, and the size stays within capacity. */
static void removals_and_evictions_keep_every_other_key_findable(void **state)
{
    enum { KEYS = 48, OPS = 200000 };
    int version[KEYS] = {0}; /* 0: removed or never put */
    char key[32];
    char want[32];
    unsigned x = 12345;
    size_t capacity;
    (void)state;
    for (capacity = 64; capacity >= 16; capacity /= 4) {
        ud_cache *c = make(capacity, 1);
        ud_cache_counters k;
        int op;
        for (op = 0; op < OPS; op++) {
            int i = draw_key(&x, KEYS, key);
            snprintf(want, sizeof(want), "uuid-%d-%d", i, version[i]);
            switch ((x >> 20) % 4) {
            case 0:
                version[i]++;
                snprintf(want, sizeof(want), "uuid-%d-%d", i, version[i]);
                assert_int_equal(ud_cache_put(c, key, want, T0, FAR_EXPIRY), 0);
                assert_int_equal(ud_cache_peek(c, key, T0, uuid), UD_CACHE_HIT);
                assert_string_equal(uuid, want);
                break;
            case 1:
                ud_cache_remove(c, key);
                version[i] = 0;
                assert_int_equal(ud_cache_peek(c, key, T0, uuid), UD_CACHE_MISS);
                break;
            default:
                if (ud_cache_get(c, key, T0, uuid) == UD_CACHE_HIT) {
                    assert_int_not_equal(version[i], 0);
                    assert_string_equal(uuid, want);
                } else if (capacity >= KEYS) {
                    assert_int_equal(version[i], 0); /* no evictions: must be there */
                }
            }
        }
        ud_cache_stats(c, &k);
        assert_true(k.size <= capacity);
        if (capacity >= KEYS) {
            assert_int_equal(k.evictions, 0);
        } else {
            assert_true(k.evictions > 0);
        }
        ud_cache_destroy(c);
        memset(version, 0, sizeof(version));
    }
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
    assert_null(ud_cache_create(0, 0, err, sizeof(err)));
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
    char got[UD_CACHE_VALUE_MAX + 1];
    unsigned x = (unsigned)a->id * 2654435761u + 1;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        int k = draw_key(&x, KEYS, key);
        snprintf(want, sizeof(want), "uuid-%d", k);
        if ((x >> 4) % 4 == 0) {
            ud_cache_put(a->cache, key, want, T0, FAR_EXPIRY);
        } else if ((x >> 4) % 16 == 1) {
            ud_cache_remove(a->cache, key);
        } else if (ud_cache_get(a->cache, key, T0, got) == UD_CACHE_HIT && strcmp(got, want) != 0) {
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
        cmocka_unit_test(every_value_comes_back_exactly),
        cmocka_unit_test(put_replaces_an_existing_entry),
        cmocka_unit_test(an_entry_hit_since_the_last_sweep_survives_eviction),
        cmocka_unit_test(replacing_an_entry_counts_as_a_use),
        cmocka_unit_test(every_entry_used_means_the_hand_still_evicts_one),
        cmocka_unit_test(the_hand_takes_an_expired_entry_without_counting_an_eviction),
        cmocka_unit_test(entries_expire_at_their_ttl),
        cmocka_unit_test(negative_entries_answer_negative_until_they_expire),
        cmocka_unit_test(counts_hits_misses_and_peek_counts_nothing),
        cmocka_unit_test(refuses_empty_and_oversized_strings),
        cmocka_unit_test(long_keys_with_long_values_are_kept_out_of_line),
        cmocka_unit_test(removals_and_evictions_keep_every_other_key_findable),
        cmocka_unit_test(sharded_capacity_is_exact_in_total),
        cmocka_unit_test(refuses_zero_capacity),
        cmocka_unit_test(concurrent_use_keeps_entries_and_counters_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
