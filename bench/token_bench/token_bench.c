/* token_bench: tokens per second on one thread for the Chat app token build,
 * the user token build, parse+verify of a user token and an RTC token build
 * (publisher, uid: RtcTokenBuilder2.buildTokenWithUid), as medians of fixed
 * time windows; then the same four for npm agora-token in the same run (when
 * node is present) and the ratios. `--count N --op OP` runs a fixed number of
 * operations instead, for instruction counts under callgrind. */
#include "rtc.h"
#include "token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef CT_SOURCE_DIR
#define CT_SOURCE_DIR "."
#endif

#define APP_ID "970CA35de60c44645bbae8a215061b33"
#define APP_CERT "5CFd2fd1755d40ecb72977518be15d3b"
#define ISSUE_TS 1700000000u
#define TTL 3600u
#define USER_COUNT 1024 /* distinct user ids cycled through, like real traffic */
#define RUNS_MAX 99

enum op { OP_NONE, OP_APP, OP_USER, OP_PARSE, OP_RTC };

typedef struct bench {
    char users[USER_COUNT][24];
    char tokens[USER_COUNT][CT_BUILD_MAX_CHARS]; /* user tokens to parse */
    size_t token_len[USER_COUNT];
    ct_token *parsed;
    unsigned long sink; /* keeps the compiler from dropping the work */
} bench;

typedef struct figures {
    double app;
    double user;
    double parse;
    double rtc;
} figures;

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc, const char *err)
{
    fprintf(stderr, "token_bench: %s failed: %s (%s)\n", what, ct_result_name(rc), err);
    exit(1);
}

/* One operation on item i. Salts vary so that no two builds are alike. */
static void run_one(bench *b, enum op op, unsigned long i)
{
    char out[CT_BUILD_MAX_CHARS];
    char err[128];
    size_t n = 0;
    size_t k = i % USER_COUNT;
    uint32_t salt = (uint32_t)(i % CT_SALT_MAX) + 1;
    int rc;

    if (op == OP_APP) {
        rc = ct_chat_build_app_token(APP_ID, APP_CERT, ISSUE_TS, salt, TTL, out, sizeof(out), &n,
                                     err, sizeof(err));
        if (rc != CT_OK) {
            die("app build", rc, err);
        }
    } else if (op == OP_USER) {
        rc = ct_chat_build_user_token(APP_ID, APP_CERT, b->users[k], ISSUE_TS, salt, TTL, out,
                                      sizeof(out), &n, err, sizeof(err));
        if (rc != CT_OK) {
            die("user build", rc, err);
        }
    } else if (op == OP_RTC) {
        /* channel: the user id; uid k + 1, written in decimal as Agora does */
        char uid[11];
        ct_rtc_spec spec = {b->users[k], uid, CT_RTC_ROLE_PUBLISHER, TTL, 0};
        ct_rtc_uid_account((uint32_t)k + 1, uid);
        rc = ct_rtc_build_token(APP_ID, APP_CERT, &spec, ISSUE_TS, salt, TTL, out, sizeof(out), &n,
                                err, sizeof(err));
        if (rc != CT_OK) {
            die("rtc build", rc, err);
        }
    } else {
        rc = ct_token_parse(b->tokens[k], b->token_len[k], b->parsed, err, sizeof(err));
        if (rc != CT_OK) {
            die("parse", rc, err);
        }
        rc = ct_token_verify(b->parsed, APP_CERT);
        if (rc != CT_OK) {
            die("verify", rc, "signature");
        }
        n = b->parsed->payload_len;
    }
    b->sink += n;
}

/* Operations per second over one window; the clock is read every 64 ops so
 * that reading it costs nothing measurable. */
static double measure(bench *b, enum op op, double window)
{
    unsigned long done = 0;
    double start = now_seconds();
    double elapsed;

    do {
        for (int j = 0; j < 64; j++) {
            run_one(b, op, done++);
        }
        elapsed = now_seconds() - start;
    } while (elapsed < window);
    return (double)done / elapsed;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median_rate(bench *b, enum op op, int runs, double window)
{
    double rates[RUNS_MAX];

    measure(b, op, window / 4); /* warm caches and the per-thread codec state */
    for (int r = 0; r < runs; r++) {
        rates[r] = measure(b, op, window);
    }
    qsort(rates, (size_t)runs, sizeof(rates[0]), compare_double);
    return rates[runs / 2];
}

static void bench_setup(bench *b)
{
    char err[128];

    b->parsed = malloc(sizeof(*b->parsed));
    if (b->parsed == NULL) {
        fprintf(stderr, "token_bench: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < USER_COUNT; i++) {
        int rc;
        snprintf(b->users[i], sizeof(b->users[i]), "user-%07d", i * 7919);
        rc = ct_chat_build_user_token(APP_ID, APP_CERT, b->users[i], ISSUE_TS, (uint32_t)i + 1, TTL,
                                      b->tokens[i], sizeof(b->tokens[i]), &b->token_len[i], err,
                                      sizeof(err));
        if (rc != CT_OK) {
            die("setup build", rc, err);
        }
    }
}

/* Runs the Node peer in the same run and reads its one line of figures.
 * Returns 0 when node or agora-token is missing (the peer says so). */
static int run_agora(int runs, double window, figures *f)
{
    char cmd[1024];
    char line[512];
    FILE *p;
    int found = 0;

    if (system("command -v node >/dev/null 2>&1") != 0) {
        printf("agora-token: skipped (node not found)\n");
        return 0;
    }
    snprintf(cmd, sizeof(cmd),
             "NODE_PATH='%s/node_modules' node '%s/bench/token_bench/agora_token_bench.js' "
             "--runs %d --window-ms %d",
             CT_SOURCE_DIR, CT_SOURCE_DIR, runs, (int)(window * 1000));
    fflush(stdout);
    p = popen(cmd, "r");
    if (p == NULL) {
        printf("agora-token: skipped (cannot run node: %s)\n", strerror(errno));
        return 0;
    }
    while (fgets(line, sizeof(line), p) != NULL) {
        if (sscanf(line,
                   "agora_token app_build_per_s=%lf user_build_per_s=%lf parse_verify_per_s=%lf "
                   "rtc_build_per_s=%lf",
                   &f->app, &f->user, &f->parse, &f->rtc) == 4) {
            found = 1;
        } else {
            fputs(line, stdout); /* the peer's own messages */
        }
    }
    if (pclose(p) != 0 || !found) {
        printf("agora-token: skipped (the Node peer did not report figures)\n");
        return 0;
    }
    return 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: token_bench [--runs N] [--window-ms MS] [--no-agora]\n"
                    "       token_bench --count N --op app|user|parse|rtc|none\n");
}

int main(int argc, char **argv)
{
    static bench b;
    int runs = 5;
    int window_ms = 300;
    int agora = 1;
    long count = -1;
    enum op op = OP_USER;
    figures ours;
    figures theirs;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--runs") == 0 && v != NULL) {
            runs = atoi(v);
            i++;
        } else if (strcmp(a, "--window-ms") == 0 && v != NULL) {
            window_ms = atoi(v);
            i++;
        } else if (strcmp(a, "--count") == 0 && v != NULL) {
            count = atol(v);
            count = count < 0 ? -2 : count;
            i++;
        } else if (strcmp(a, "--op") == 0 && v != NULL) {
            op = strcmp(v, "app") == 0     ? OP_APP
                 : strcmp(v, "user") == 0  ? OP_USER
                 : strcmp(v, "parse") == 0 ? OP_PARSE
                 : strcmp(v, "rtc") == 0   ? OP_RTC
                                           : OP_NONE;
            i++;
        } else if (strcmp(a, "--no-agora") == 0) {
            agora = 0;
        } else {
            usage();
            return 2;
        }
    }
    if (runs < 1 || runs > RUNS_MAX || window_ms < 10 || count < -1) {
        usage();
        return 2;
    }
    bench_setup(&b);

    if (count >= 0) {
        /* fixed work for callgrind: the "none" op measures setup alone, so
         * (Ir(op, N) - Ir(none)) / N is the cost of one operation */
        if (op != OP_NONE) {
            for (long i = 0; i < count; i++) {
                run_one(&b, op, (unsigned long)i);
            }
        }
        printf("op_count=%ld sink=%lu\n", op == OP_NONE ? 0 : count, b.sink);
        return 0;
    }

    printf("token_bench: one thread, %d runs of %d ms each, medians\n", runs, window_ms);
    ours.app = median_rate(&b, OP_APP, runs, window_ms / 1000.0);
    ours.user = median_rate(&b, OP_USER, runs, window_ms / 1000.0);
    ours.parse = median_rate(&b, OP_PARSE, runs, window_ms / 1000.0);
    ours.rtc = median_rate(&b, OP_RTC, runs, window_ms / 1000.0);
    printf("chat-tokend  app_build_per_s=%.0f user_build_per_s=%.0f parse_verify_per_s=%.0f "
           "rtc_build_per_s=%.0f\n",
           ours.app, ours.user, ours.parse, ours.rtc);

    if (agora && run_agora(runs, window_ms / 1000.0, &theirs)) {
        printf("agora-token  app_build_per_s=%.0f user_build_per_s=%.0f parse_verify_per_s=%.0f "
               "rtc_build_per_s=%.0f\n",
               theirs.app, theirs.user, theirs.parse, theirs.rtc);
        printf("ratio        app_build=%.1fx user_build=%.1fx parse_verify=%.1fx rtc_build=%.1fx\n",
               ours.app / theirs.app, ours.user / theirs.user, ours.parse / theirs.parse,
               ours.rtc / theirs.rtc);
        printf("user_build_per_s=%.0f agora_token_user_build_per_s=%.0f ratio=%.1f\n", ours.user,
               theirs.user, ours.user / theirs.user);
    } else {
        printf("user_build_per_s=%.0f agora_token_user_build_per_s=0 ratio=0\n", ours.user);
    }
    return 0;
}
