/* cache_bench: the UUID cache's hit rate on several threads and its memory
 * per entry, the figures docs/PERFORMANCE.md quotes.
 *
 *   cache_bench [--entries N] [--threads T] [--seconds S] [--rounds R]
 *
 * Fills a cache of N entries (default 1,000,000) with "user0000042" ->
 * 36-character UUID (64 shards, the real clock), measures the memory it took
 * three ways (the cache's own count, the heap by mallinfo2 including
 * malloc's mmapped chunks, and RSS), then has T threads (default 2) look up
 * uniformly random present keys for S seconds per round (default 1) and
 * reports the median of R rounds (default 5). Uniform keys over 1M entries
 * are the worst case for the CPU caches (each lookup waits on main memory
 * for its slot); real traffic is skewed, so another run draws from 10,000
 * active users only. Then the other paths: lookups of absent keys, and puts
 * of new keys into the full cache, each evicting an entry. Rates come in two
 * forms: per second of wall time, and per second of each thread's CPU time
 * (times threads), which is what dedicated cores would give when the machine
 * is shared; the load average is printed before and after. The last line is
 * machine-readable:
 *   cache_hits_per_s=N bytes_per_entry=M */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"

#define KEY_LEN 11  /* "user" + 7 digits */
#define UUID_LEN 36 /* 8-4-4-4-12 */
#define MAX_THREADS 64
#define MAX_ROUNDS 99

enum { MODE_HIT, MODE_MISS, MODE_PUT };

static size_t entries = 1000000;
static size_t key_space; /* lookups draw keys from 0..key_space-1 */
static int threads = 2;
static double seconds = 1.0;
static int rounds = 5;

typedef struct worker {
    ud_cache *cache;
    uint64_t seed;
    uint64_t hits;
    double cpu_s; /* the thread's own CPU time: what it got of a core */
    int mode;     /* MODE_HIT, MODE_MISS or MODE_PUT */
    uint64_t wrong;
    atomic_int *stop;
} worker;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The key of entry i, written without snprintf so that formatting does not
 * dominate the lookup being measured. */
static void make_key(size_t i, char out[KEY_LEN + 1])
{
    int d;

    memcpy(out, "user", 4);
    for (d = 10; d >= 4; d--) {
        out[d] = (char)('0' + i % 10);
        i /= 10;
    }
    out[KEY_LEN] = '\0';
}

static void make_uuid(size_t i, char out[UUID_LEN + 1])
{
    snprintf(out, UUID_LEN + 1, "%08zx-%04zx-4%03zx-a%03zx-%012zx", i * 2654435761u % 0xffffffffu,
             i & 0xffff, i & 0xfff, (i >> 12) & 0xfff,
             (size_t)(i * 0x9e3779b97f4aull & 0xffffffffffffull));
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static double thread_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *run(void *p)
{
    worker *w = p;
    double cpu0 = thread_cpu_s();
    char key[KEY_LEN + 1];
    char uuid[UD_CACHE_VALUE_MAX + 1];
    uint64_t hits = 0;
    uint64_t wrong = 0;

    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        /* the real clock, as the directory passes it, read once a batch */
        int64_t now = now_ms();
        int i;
        for (i = 0; i < 1024; i++) {
            uint64_t r = next(&w->seed);
            if (w->mode == MODE_HIT) {
                make_key(r % key_space, key);
                if (ud_cache_get(w->cache, key, now, uuid) == UD_CACHE_HIT) {
                    hits++;
                } else {
                    wrong++;
                }
            } else if (w->mode == MODE_MISS) {
                /* keys past the filled range: absent */
                make_key(entries + r % (9999999 - entries + 1), key);
                if (ud_cache_get(w->cache, key, now, uuid) == UD_CACHE_MISS) {
                    hits++; /* counts operations */
                } else {
                    wrong++;
                }
            } else {
                make_key(entries + r % (9999999 - entries + 1), key);
                if (ud_cache_put(w->cache, key, "00000000-0000-4000-a000-000000000000", now,
                                 INT64_MAX) == 0) {
                    hits++;
                } else {
                    wrong++;
                }
            }
        }
    }
    w->hits = hits;
    w->wrong = wrong;
    w->cpu_s = thread_cpu_s() - cpu0;
    return NULL;
}

static long rss_kib(void)
{
    long pages = 0;
    long resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        resident = 0;
    }
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct rate {
    double wall; /* hits per second of wall time: what this machine gave */
    double cpu;  /* hits per CPU second of each thread, times threads: what as
                  * many dedicated cores give, on a machine shared with others */
} rate;

static rate measure(ud_cache *cache, int nthreads, int mode)
{
    pthread_t t[MAX_THREADS];
    worker w[MAX_THREADS];
    atomic_int stop = 0;
    double t0;
    double elapsed;
    double per_cpu = 0;
    uint64_t hits = 0;
    rate r;
    int i;

    for (i = 0; i < nthreads; i++) {
        w[i].cache = cache;
        w[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        w[i].stop = &stop;
        w[i].mode = mode;
        pthread_create(&t[i], NULL, run, &w[i]);
    }
    t0 = now_s();
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, 1);
    for (i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        hits += w[i].hits;
        per_cpu += w[i].cpu_s > 0 ? (double)w[i].hits / w[i].cpu_s : 0;
        if (w[i].wrong != 0) {
            fprintf(stderr, "cache_bench: %llu operations answered wrong (mode %d)\n",
                    (unsigned long long)w[i].wrong, mode);
            exit(1);
        }
    }
    elapsed = now_s() - t0;
    r.wall = (double)hits / elapsed;
    r.cpu = per_cpu;
    return r;
}

static rate median_rate(ud_cache *cache, int nthreads, int mode)
{
    double wall[MAX_ROUNDS];
    double cpu[MAX_ROUNDS];
    rate r;
    int i;

    for (i = 0; i < rounds; i++) {
        r = measure(cache, nthreads, mode);
        wall[i] = r.wall;
        cpu[i] = r.cpu;
    }
    qsort(wall, (size_t)rounds, sizeof(wall[0]), cmp_double);
    qsort(cpu, (size_t)rounds, sizeof(cpu[0]), cmp_double);
    r.wall = wall[rounds / 2];
    r.cpu = cpu[rounds / 2];
    return r;
}

static void print_load(const char *when)
{
    char line[128] = "";
    FILE *f = fopen("/proc/loadavg", "r");

    if (f != NULL) {
        if (fgets(line, sizeof(line), f) == NULL) {
            line[0] = '\0';
        }
        fclose(f);
    }
    line[strcspn(line, "\n")] = '\0';
    printf("load average %s: %s\n", when, line);
}

int main(int argc, char **argv)
{
    char err[128];
    char key[KEY_LEN + 1];
    char uuid[UUID_LEN + 1];
    struct mallinfo2 before;
    struct mallinfo2 after;
    long rss_before;
    long rss_after;
    ud_cache *cache;
    ud_cache_counters k;
    ud_cache_counters k2;
    double own_per_entry;
    double heap_per_entry;
    double beyond_strings;
    rate one;
    rate many;
    rate hot;
    rate miss;
    rate put;
    size_t root;
    size_t i;
    int a;

    for (a = 1; a + 1 < argc; a += 2) {
        if (strcmp(argv[a], "--entries") == 0) {
            entries = strtoul(argv[a + 1], NULL, 10);
        } else if (strcmp(argv[a], "--threads") == 0) {
            threads = atoi(argv[a + 1]);
        } else if (strcmp(argv[a], "--seconds") == 0) {
            seconds = atof(argv[a + 1]);
        } else if (strcmp(argv[a], "--rounds") == 0) {
            rounds = atoi(argv[a + 1]);
        } else {
            break;
        }
    }
    if (a != argc || entries < 1 || entries > 9999999 || threads < 1 || threads > MAX_THREADS ||
        seconds <= 0 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: cache_bench [--entries N<=9999999] [--threads T] [--seconds S] "
                        "[--rounds R]\n");
        return 2;
    }
    print_load("before");

    before = mallinfo2();
    rss_before = rss_kib();
    /* Capacity is split evenly over the shards but keys hash unevenly, so a
     * cache holds all N entries only with headroom: 5 standard deviations of
     * a shard's share, 40 sqrt(N) in all (4% at 1M). */
    for (root = 1; root * root < entries; root++) {
    }
    cache = ud_cache_create(entries + 40 * root + 64, 0, err, sizeof(err));
    if (cache == NULL) {
        fprintf(stderr, "cache_bench: %s\n", err);
        return 1;
    }
    for (i = 0; i < entries; i++) {
        make_key(i, key);
        make_uuid(i, uuid);
        if (ud_cache_put(cache, key, uuid, now_ms(), INT64_MAX) != 0) {
            fprintf(stderr, "cache_bench: put failed at %zu\n", i);
            return 1;
        }
    }
    after = mallinfo2();
    rss_after = rss_kib();
    ud_cache_stats(cache, &k);
    if (k.size != entries) {
        fprintf(stderr, "cache_bench: %llu entries kept of %zu\n", (unsigned long long)k.size,
                entries);
        return 1;
    }
    own_per_entry = (double)ud_cache_bytes(cache) / (double)entries;
    /* uordblks misses chunks malloc serves by mmap (large tables): add hblkhd */
    heap_per_entry =
        ((double)(after.uordblks - before.uordblks) + (double)(after.hblkhd - before.hblkhd)) /
        (double)entries;
    /* the strings are the key and UUID characters; everything else (slot
     * header, unused inline space, empty slots, tags, allocator rounding)
     * counts as overhead. The larger of the two counts is the figure. */
    beyond_strings =
        (heap_per_entry > own_per_entry ? heap_per_entry : own_per_entry) - (KEY_LEN + UUID_LEN);

    printf("entries: %zu (key %d chars, uuid %d chars), shards %d\n", entries, KEY_LEN, UUID_LEN,
           UD_CACHE_DEFAULT_SHARDS);
    printf("memory: %.1f bytes/entry by the cache's count, %.1f by the heap; %.1f beyond the "
           "strings\n",
           own_per_entry, heap_per_entry, beyond_strings);
    printf("rss: +%.1f bytes/entry\n", (double)(rss_after - rss_before) * 1024.0 / (double)entries);

    /* the figure the target is about: every entry equally likely */
    key_space = entries;
    one = median_rate(cache, 1, MODE_HIT);
    many = median_rate(cache, threads, MODE_HIT);
    printf("hits, wall clock: %.2f M/s on 1 thread, %.2f M/s on %d threads (median of %d x %.1f "
           "s, uniform random keys)\n",
           one.wall / 1e6, many.wall / 1e6, threads, rounds, seconds);
    printf("hits per CPU second x threads: %.2f M/s on 1 thread, %.2f M/s on %d threads (the "
           "rate of dedicated cores; differs from the wall clock when the machine is busy)\n",
           one.cpu / 1e6, many.cpu / 1e6, threads);
    /* for context: traffic where a small set of users is active */
    key_space = entries < 10000 ? entries : 10000;
    hot = median_rate(cache, threads, MODE_HIT);
    printf("hits, %zu active users of the %zu: %.2f M/s on %d threads (wall), %.2f M/s (per CPU "
           "second x threads)\n",
           key_space, entries, hot.wall / 1e6, threads, hot.cpu / 1e6);
    /* the other paths stay O(1): misses probe to an empty slot, and a put
     * into the full cache sweeps the hand to an entry to evict */
    miss = median_rate(cache, threads, MODE_MISS);
    printf("misses (absent keys): %.2f M/s on %d threads (wall), %.2f M/s (per CPU second x "
           "threads)\n",
           miss.wall / 1e6, threads, miss.cpu / 1e6);
    ud_cache_stats(cache, &k);
    put = median_rate(cache, threads, MODE_PUT);
    ud_cache_stats(cache, &k2);
    printf("puts of new keys into the full cache: %.2f M/s on %d threads (wall), %.2f M/s (per "
           "CPU second x threads); %llu evictions, size %llu\n",
           put.wall / 1e6, threads, put.cpu / 1e6, (unsigned long long)(k2.evictions - k.evictions),
           (unsigned long long)k2.size);
    print_load("after");
    printf("cache_hits_per_s=%.0f bytes_per_entry=%.1f\n", many.wall, beyond_strings);
    ud_cache_destroy(cache);
    return 0;
}
