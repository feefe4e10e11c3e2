/* Tests for core/directory/directory.c against the real fake Agora Chat
 * server (tests/fakes/fake_chat_server.c) over real HTTP on loopback: no
 * mocks. The fake's path comes from $FAKE_CHAT_SERVER or argv[1]; it is
 * started once for the file and reset before each test through its admin
 * API, which also injects the faults and reports what it received. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "directory.h"

#define APP_ID "970ca35de60c44645bbae8a215061b33"
#define APP_CERT "5cfd2fd1755d40ecb72977518be15d3b"
#define OTHER_CERT "0123456789abcdef0123456789abcdef"
#define WAIT_MAX_MS 20000

static const char *fake_path;
static pid_t fake_pid;
static int fake_port;
static char cert_path[] = "/tmp/test_directory_cert_XXXXXX";

/* ---- the fake server ---- */

static int start_fake(void **state)
{
    int fds[2];
    int cert_fd;
    FILE *out;
    char line[64];
    char port_arg[16];

    (void)state;
    cert_fd = mkstemp(cert_path);
    if (cert_fd < 0 || write(cert_fd, APP_CERT "\n", 33) != 33 || pipe(fds) != 0) {
        return -1;
    }
    close(cert_fd);
    fake_pid = fork();
    if (fake_pid < 0) {
        return -1;
    }
    if (fake_pid == 0) {
        /* the fake dies with the test, even when the test crashes */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        snprintf(port_arg, sizeof(port_arg), "0");
        execl(fake_path, fake_path, "--port", port_arg, "--app-id", APP_ID, "--app-cert-file",
              cert_path, "--app-key", "org#app", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    out = fdopen(fds[0], "r");
    if (out == NULL || fgets(line, sizeof(line), out) == NULL ||
        sscanf(line, "port=%d", &fake_port) != 1) {
        fprintf(stderr, "fake-chat-server (%s) did not start\n", fake_path);
        return -1;
    }
    fclose(out);
    return 0;
}

static int stop_fake(void **state)
{
    (void)state;
    kill(fake_pid, SIGTERM);
    waitpid(fake_pid, NULL, 0);
    unlink(cert_path);
    return 0;
}

typedef struct buffer {
    char data[1 << 20];
    size_t len;
} buffer;

static size_t collect(char *p, size_t size, size_t n, void *userdata)
{
    buffer *b = userdata;
    size_t len = size * n;
    if (len > sizeof(b->data) - 1 - b->len) {
        return 0;
    }
    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';
    return len;
}

/* One admin call; returns the parsed JSON answer (caller decrefs). */
static json_t *admin(const char *method, const char *path, const char *body)
{
    static buffer b;
    CURL *c = curl_easy_init();
    char url[256];
    long status = 0;
    json_t *j;

    assert_non_null(c);
    b.len = 0;
    b.data[0] = '\0';
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fake_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "{}");
    }
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    j = json_loads(b.data, 0, NULL);
    if (status != 200) {
        json_decref(j);
        return NULL;
    }
    assert_non_null(j);
    return j;
}

static void fault(const char *json)
{
    json_t *j = admin("POST", "/_admin/fault", json);
    assert_non_null(j);
    json_decref(j);
}

static long long fake_stat(const char *name)
{
    json_t *j = admin("GET", "/_admin/stats", NULL);
    long long v;
    assert_non_null(j);
    v = json_integer_value(json_object_get(j, name));
    json_decref(j);
    return v;
}

static void fake_user_uuid(const char *name, char *uuid, size_t len)
{
    char path[128];
    json_t *j;

    snprintf(path, sizeof(path), "/_admin/users/%s", name);
    j = admin("GET", path, NULL);
    assert_non_null(j);
    snprintf(uuid, len, "%s", json_string_value(json_object_get(j, "uuid")));
    json_decref(j);
}

static int reset_fake(void **state)
{
    json_t *j = admin("POST", "/_admin/reset", NULL);
    (void)state;
    json_decref(j);
    return 0;
}

/* ---- the directory ---- */

static ct_config *config(void)
{
    ct_config *cfg = calloc(1, sizeof(*cfg));

    assert_non_null(cfg);
    /* the documented defaults (timeouts 1000/3000 ms, 2 retries, TTLs
     * 86400/30 s, auto_register on), then what these tests need */
    ct_config_defaults(cfg);
    snprintf(cfg->app_id, sizeof(cfg->app_id), "%s", APP_ID);
    snprintf(cfg->app_certificate, sizeof(cfg->app_certificate), "%s", APP_CERT);
    snprintf(cfg->app_key, sizeof(cfg->app_key), "org#app");
    snprintf(cfg->directory_base_url, sizeof(cfg->directory_base_url), "http://127.0.0.1:%d",
             fake_port);
    cfg->directory_rate_limit_per_second = 1000;
    cfg->directory_cache_capacity = 1000;
    return cfg;
}

static ud_directory *create(ct_config *cfg)
{
    char err[256] = "";
    ud_options opt;
    ud_directory *dir;

    ud_options_from_config(cfg, &opt);
    dir = ud_directory_create(&opt, err, sizeof(err));
    if (dir == NULL) {
        fail_msg("ud_directory_create: %s", err);
    }
    free(cfg);
    return dir;
}

typedef struct call {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int calls;
    ud_result result;
    int inline_answer; /* the callback ran on the caller's thread (the cache answered) */
    pthread_t caller;
    pthread_t thread;
    int64_t done_ms;
} call;

static void call_init(call *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
}

static void on_result(void *arg, const ud_result *r)
{
    call *c = arg;

    pthread_mutex_lock(&c->lock);
    c->result = *r;
    c->calls++;
    c->done = 1;
    /* by thread, not by "still inside lookup": the directory thread can
     * answer before ud_directory_lookup has returned on a busy machine */
    c->inline_answer = pthread_equal(pthread_self(), c->caller) != 0;
    c->thread = pthread_self();
    c->done_ms = ud_monotonic_ms();
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void start(ud_directory *dir, const char *name, int64_t deadline_ms, call *c)
{
    pthread_mutex_lock(&c->lock);
    c->caller = pthread_self();
    pthread_mutex_unlock(&c->lock);
    ud_directory_lookup(dir, name, deadline_ms, on_result, c);
}

static void wait_call(call *c)
{
    int64_t until = ud_monotonic_ms() + WAIT_MAX_MS;

    pthread_mutex_lock(&c->lock);
    while (!c->done && ud_monotonic_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
    }
    pthread_mutex_unlock(&c->lock);
    assert_true(c->done);
}

static ud_result lookup(ud_directory *dir, const char *name, int64_t deadline_ms, call *c)
{
    call_init(c);
    start(dir, name, deadline_ms, c);
    wait_call(c);
    return c->result;
}

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

/* ---- tests ---- */

/* The directory under test: made by the with_directory setup from config(),
 * or by the test itself from its own config; the teardown destroys it. */
static ud_directory *dir;
/* The call of the lookups a test makes one at a time. */
static call c;

static int with_directory(void **state)
{
    reset_fake(state);
    dir = create(config());
    return 0;
}

static int destroy_directory(void **state)
{
    (void)state;
    if (dir != NULL) {
        ud_directory_destroy(dir);
        dir = NULL;
    }
    return 0;
}

/* A lookup of name without a deadline answers status, with a message
 * holding says (when not NULL). */
static ud_result expect_lookup(const char *name, enum ud_status status, const char *says)
{
    ud_result r = lookup(dir, name, INT64_MAX, &c);

    assert_int_equal(r.status, status);
    if (says != NULL && strstr(r.message, says) == NULL) {
        fail_msg("lookup of %s: message \"%s\" does not say \"%s\"", name, r.message, says);
    }
    return r;
}

/* The fake received gets GETs and posts POSTs of users (-1: not checked). */
static void expect_fake_requests(long long gets, long long posts)
{
    if (gets >= 0) {
        assert_int_equal(fake_stat("gets"), gets);
    }
    if (posts >= 0) {
        assert_int_equal(fake_stat("posts"), posts);
    }
}

/* The request times the fake logged, the first n of them, in ms. */
static size_t fake_request_times(long long *t, size_t n)
{
    json_t *log = admin("GET", "/_admin/requests", NULL);
    json_t *reqs = json_object_get(log, "requests");
    size_t count = json_array_size(reqs);

    for (size_t i = 0; i < n && i < count; i++) {
        t[i] = json_integer_value(json_object_get(json_array_get(reqs, i), "t_ms"));
    }
    json_decref(log);
    return count;
}

/* Injects fault_json, then a lookup of name succeeds: the fake's first n
 * request times into t; returns how many requests it logged. */
static size_t times_of_a_recovered_lookup(const char *fault_json, const char *name, long long *t,
                                          size_t n)
{
    fault(fault_json);
    expect_lookup(name, UD_OK, NULL);
    return fake_request_times(t, n);
}

static void new_user_is_looked_up_then_registered(void **state)
{
    char uuid[80];
    ud_result r = expect_lookup("alice", UD_OK, NULL);
    ud_stats s;
    json_t *u;
    (void)state;

    assert_int_equal(r.registered, 1);
    fake_user_uuid("alice", uuid, sizeof(uuid));
    assert_string_equal(r.uuid, uuid);
    expect_fake_requests(1, 1);
    assert_int_equal(fake_stat("unauthorized"), 0);
    /* answered later, on the directory thread */
    assert_int_equal(c.inline_answer, 0);
    assert_false(pthread_equal(c.thread, pthread_self()));
    /* the password is from the CSPRNG: long, and not the seed's "123" */
    u = admin("GET", "/_admin/users/alice", NULL);
    assert_int_equal(json_integer_value(json_object_get(u, "password_length")), 48);
    json_decref(u);
    ud_directory_stats(dir, &s);
    assert_int_equal(s.registrations, 1);
    assert_int_equal(s.upstream_requests_ok, 1);
    assert_int_equal(s.upstream_requests_error, 1); /* the 404 before registering */
    assert_int_equal(s.cache_misses, 1);
    assert_int_equal(s.cache_size, 1);
}

static void passwords_differ_between_registrations(void **state)
{
    json_t *a;
    json_t *b;
    (void)state;

    expect_lookup("pw-one", UD_OK, NULL);
    expect_lookup("pw-two", UD_OK, NULL);
    a = admin("GET", "/_admin/users/pw-one", NULL);
    b = admin("GET", "/_admin/users/pw-two", NULL);
    assert_int_not_equal(json_integer_value(json_object_get(a, "password_hash")),
                         json_integer_value(json_object_get(b, "password_hash")));
    json_decref(a);
    json_decref(b);
}

static void existing_user_is_found_without_registering(void **state)
{
    ud_result r;
    json_t *j = admin("POST", "/_admin/users", "{\"username\":\"Bob\",\"uuid\":\"uuid-of-bob\"}");
    (void)state;

    json_decref(j);
    r = expect_lookup("bob", UD_OK, NULL);
    assert_string_equal(r.uuid, "uuid-of-bob");
    assert_int_equal(r.registered, 0);
    expect_fake_requests(1, 0);
}

static void second_lookup_is_answered_inline_from_the_cache(void **state)
{
    ud_result first = expect_lookup("carol", UD_OK, NULL);
    ud_result second;
    ud_stats s;
    (void)state;

    second = expect_lookup("carol", UD_OK, NULL);
    assert_string_equal(second.uuid, first.uuid);
    assert_int_equal(second.registered, 0);
    assert_int_equal(c.inline_answer, 1);
    assert_true(pthread_equal(c.thread, pthread_self()));
    assert_int_equal(c.calls, 1);
    expect_fake_requests(1, 1);
    ud_directory_stats(dir, &s);
    assert_int_equal(s.cache_hits, 1);
}

#define CROWD 100
#define CROWD_THREADS 4

typedef struct crowd_arg {
    ud_directory *dir;
    call *calls;
} crowd_arg;

static void *crowd_thread(void *p)
{
    crowd_arg *a = p;
    int i;

    for (i = 0; i < CROWD / CROWD_THREADS; i++) {
        start(a->dir, "crowd", INT64_MAX, &a->calls[i]);
    }
    return NULL;
}

static void concurrent_lookups_of_a_new_user_share_one_get_and_one_post(void **state)
{
    static call calls[CROWD];
    pthread_t t[CROWD_THREADS];
    crowd_arg args[CROWD_THREADS];
    char uuid[80];
    int registered = 0;
    ud_stats s;
    int i;
    (void)state;

    /* a slow first answer keeps the flight open while the crowd arrives */
    fault("{\"delay_ms\":300,\"count\":1}");
    for (i = 0; i < CROWD; i++) {
        call_init(&calls[i]);
    }
    for (i = 0; i < CROWD_THREADS; i++) {
        args[i].dir = dir;
        args[i].calls = &calls[i * (CROWD / CROWD_THREADS)];
        assert_int_equal(pthread_create(&t[i], NULL, crowd_thread, &args[i]), 0);
    }
    for (i = 0; i < CROWD_THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    for (i = 0; i < CROWD; i++) {
        wait_call(&calls[i]);
    }
    fake_user_uuid("crowd", uuid, sizeof(uuid));
    for (i = 0; i < CROWD; i++) {
        assert_int_equal(calls[i].calls, 1);
        assert_int_equal(calls[i].result.status, UD_OK);
        assert_string_equal(calls[i].result.uuid, uuid);
        registered += calls[i].result.registered;
    }
    /* only the lookup that started the flight registered the user */
    assert_int_equal(registered, 1);
    expect_fake_requests(1, 1);
    ud_directory_stats(dir, &s);
    assert_int_equal(s.singleflight_waits + s.cache_hits, CROWD - 1);
    assert_true(s.singleflight_waits > 0);
}

static void registration_race_resolves_to_the_existing_uuid(void **state)
{
    char uuid[80];
    ud_result r;
    (void)state;

    fault("{\"duplicate_on_register\":true,\"method\":\"POST\"}");
    r = expect_lookup("racer", UD_OK, NULL);
    assert_int_equal(r.registered, 0);
    fake_user_uuid("racer", uuid, sizeof(uuid));
    assert_string_equal(r.uuid, uuid);
    expect_fake_requests(2, 1);
}

static void without_auto_register_a_missing_user_is_not_found_and_cached(void **state)
{
    ct_config *cfg = config();
    (void)state;

    cfg->directory_auto_register = 0;
    dir = create(cfg);
    expect_lookup("ghost", UD_NOT_FOUND, "does not exist");
    expect_fake_requests(-1, 0);
    /* the negative entry answers the second lookup inline */
    expect_lookup("ghost", UD_NOT_FOUND, NULL);
    assert_int_equal(c.inline_answer, 1);
    expect_fake_requests(1, -1);
}

static void recovers_when_503_stops_within_the_retries(void **state)
{
    long long t[3] = {0};
    (void)state;

    times_of_a_recovered_lookup("{\"status\":503,\"count\":2}", "patient", t, 3);
    expect_fake_requests(3, 1);
    /* exponential backoff with equal jitter: 50..100 ms, then 100..200 ms,
     * and no more (a retry waits for its backoff, not for some other event) */
    assert_true(t[1] - t[0] >= 45);
    assert_true(t[2] - t[1] >= 95);
    assert_true(t[2] - t[0] < 800);
}

static void persistent_503_is_unavailable_naming_it(void **state)
{
    ud_result r;
    (void)state;

    fault("{\"status\":503,\"count\":10}");
    r = expect_lookup("unlucky", UD_UNAVAILABLE, "upstream answered 503");
    assert_non_null(strstr(r.message, "after 3 attempts"));
    expect_fake_requests(3, -1);
}

static void retry_after_of_429_is_honoured(void **state)
{
    long long t[2] = {0};
    (void)state;

    assert_true(times_of_a_recovered_lookup("{\"status\":429,\"count\":1,\"retry_after\":1}",
                                            "limited", t, 2) >= 2);
    assert_true(t[1] - t[0] >= 990);
}

static void malformed_answers_are_unavailable(void **state)
{
    static const struct {
        const char *fault;
        const char *message;
    } cases[] = {
        {"{\"body\":\"malformed\"}", "not JSON"},
        {"{\"body\":\"no_uuid\"}", "entities[0].uuid"},
        {"{\"body\":\"huge\"}", "1 MiB"},
    };
    char name[32];
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fault(cases[i].fault);
        snprintf(name, sizeof(name), "garbled%zu", i);
        expect_lookup(name, UD_UNAVAILABLE, cases[i].message);
    }
}

static void connection_reset_is_retried(void **state)
{
    (void)state;
    fault("{\"reset\":true,\"count\":1}");
    expect_lookup("reset", UD_OK, NULL);
    assert_true(fake_stat("gets") >= 2);
}

static void unreachable_upstream_is_unavailable(void **state)
{
    ct_config *cfg = config();
    ud_result r;
    (void)state;

    /* port 9 on loopback (discard) is closed on a test machine: refused */
    snprintf(cfg->directory_base_url, sizeof(cfg->directory_base_url), "http://127.0.0.1:9");
    dir = create(cfg);
    r = expect_lookup("nobody-home", UD_UNAVAILABLE, "upstream request failed");
    assert_non_null(strstr(r.message, "after 3 attempts"));
}

static void illegal_argument_is_invalid_argument(void **state)
{
    (void)state;
    fault("{\"status\":400,\"error\":\"illegal_argument\",\"method\":\"POST\"}");
    expect_lookup("refused", UD_INVALID_ARGUMENT, "illegal_argument");
}

static void one_401_rebuilds_the_app_token_and_retries(void **state)
{
    (void)state;
    fault("{\"status\":401,\"count\":1}");
    expect_lookup("reauth", UD_OK, NULL);
    assert_int_equal(fake_stat("unauthorized"), 1);
    expect_fake_requests(2, -1);
    /* the retry carried a new token, which the fake accepted */
    assert_int_equal(fake_stat("tokens_seen"), 2);
    expect_lookup("reauth-later", UD_OK, NULL);
    assert_int_equal(fake_stat("tokens_seen"), 2); /* and it is kept */
}

static void wrong_certificate_is_unavailable_after_one_rebuild(void **state)
{
    ct_config *cfg = config();
    (void)state;

    snprintf(cfg->app_certificate, sizeof(cfg->app_certificate), "%s", OTHER_CERT);
    dir = create(cfg);
    expect_lookup("locked-out", UD_UNAVAILABLE, "401 unauthorized after rebuilding the app token");
    assert_int_equal(fake_stat("unauthorized"), 2);
    expect_fake_requests(2, -1);
}

/* A reload: the new certificate signs the next app token, and options
 * such as auto_register apply to the next lookups, without a restart. */
static void an_update_takes_a_new_certificate_and_options(void **state)
{
    ct_config *cfg = config();
    ud_options opt;
    (void)state;

    snprintf(cfg->app_certificate, sizeof(cfg->app_certificate), "%s", OTHER_CERT);
    dir = create(cfg);
    expect_lookup("before-rotation", UD_UNAVAILABLE, "401 unauthorized");

    cfg = config(); /* the right certificate, and auto_register off */
    cfg->directory_auto_register = 0;
    ud_options_from_config(cfg, &opt);
    ud_directory_update(dir, &opt);
    ct_config_wipe(cfg);
    free(cfg);
    /* signed right (found out), and not registered */
    expect_lookup("after-rotation", UD_NOT_FOUND, NULL);
    expect_fake_requests(-1, 0);
}

static void unknown_org_or_app_is_unavailable(void **state)
{
    ct_config *cfg = config();
    (void)state;

    snprintf(cfg->app_key, sizeof(cfg->app_key), "org#another-app");
    dir = create(cfg);
    expect_lookup("lost", UD_UNAVAILABLE, "organization_application_not_found");
    expect_fake_requests(1, -1);
}

static void a_slow_upstream_meets_the_deadline_without_retrying_past_it(void **state)
{
    ud_result r;
    int64_t t0 = ud_monotonic_ms();
    (void)state;

    fault("{\"delay_ms\":2000,\"count\":5}");
    r = lookup(dir, "slowpoke", t0 + 300, &c);
    assert_int_equal(r.status, UD_DEADLINE_EXCEEDED);
    assert_true(c.done_ms - t0 >= 290);
    assert_true(c.done_ms - t0 < 1000);
    sleep_ms(300);
    expect_fake_requests(1, -1);
}

static void each_waiter_keeps_its_own_deadline(void **state)
{
    call hasty;
    call patient;
    int64_t t0 = ud_monotonic_ms();
    (void)state;

    fault("{\"delay_ms\":600,\"count\":1}");
    call_init(&hasty);
    call_init(&patient);
    start(dir, "shared", t0 + 150, &hasty);
    start(dir, "shared", INT64_MAX, &patient);
    wait_call(&hasty);
    assert_int_equal(hasty.result.status, UD_DEADLINE_EXCEEDED);
    assert_true(hasty.done_ms - t0 < 500);
    wait_call(&patient);
    assert_int_equal(patient.result.status, UD_OK);
    /* the leader left before the answer: nobody is told it registered */
    assert_int_equal(patient.result.registered, 0);
}

static void the_rate_limit_holds_towards_the_upstream(void **state)
{
    ct_config *cfg = config();
    static call calls[30];
    char name[32];
    long long t[30];
    size_t n;
    size_t i;
    size_t k;
    (void)state;

    cfg->directory_auto_register = 0;
    cfg->directory_rate_limit_per_second = 10;
    dir = create(cfg);
    for (i = 0; i < 30; i++) {
        call_init(&calls[i]);
        snprintf(name, sizeof(name), "queued%zu", i);
        start(dir, name, INT64_MAX, &calls[i]);
    }
    for (i = 0; i < 30; i++) {
        wait_call(&calls[i]);
        /* requests wait for a token: none fails */
        assert_int_equal(calls[i].result.status, UD_NOT_FOUND);
    }
    n = fake_request_times(t, 30);
    assert_int_equal(n, 30);
    /* at 10/s with a burst of 1, no second holds more than 11 (12 allows
     * for the fake's arrival stamps), and 30 requests span about 2.9 s */
    for (i = 0; i < n; i++) {
        size_t in_window = 0;
        for (k = 0; k < n; k++) {
            if (t[k] >= t[i] && t[k] < t[i] + 1000) {
                in_window++;
            }
        }
        assert_true(in_window <= 12);
    }
    assert_true(t[n - 1] - t[0] >= 2500);
}

static void entries_expire_after_the_ttl_and_capacity_evicts(void **state)
{
    ct_config *cfg = config();
    ud_stats s;
    (void)state;

    cfg->directory_cache_ttl_seconds = 1;
    cfg->directory_cache_capacity = 1;
    dir = create(cfg);
    expect_lookup("brief", UD_OK, NULL);
    expect_lookup("brief", UD_OK, NULL);
    expect_fake_requests(1, -1);
    sleep_ms(1100);
    expect_lookup("brief", UD_OK, NULL);
    assert_int_equal(c.inline_answer, 0);
    expect_fake_requests(2, 1);
    /* capacity 1: a second user pushes the first out */
    expect_lookup("other", UD_OK, NULL);
    expect_lookup("brief", UD_OK, NULL);
    assert_int_equal(c.inline_answer, 0);
    expect_fake_requests(4, -1);
    ud_directory_stats(dir, &s);
    assert_true(s.cache_evictions >= 2);
    assert_int_equal(s.cache_size, 1);
}

static void destroy_fails_pending_lookups(void **state)
{
    call calls[3];
    int64_t t0;
    int i;
    (void)state;

    fault("{\"delay_ms\":1500,\"count\":3}");
    for (i = 0; i < 3; i++) {
        char name[16];
        call_init(&calls[i]);
        snprintf(name, sizeof(name), "pending%d", i);
        start(dir, name, INT64_MAX, &calls[i]);
    }
    sleep_ms(100);
    t0 = ud_monotonic_ms();
    destroy_directory(state);
    assert_true(ud_monotonic_ms() - t0 < 1000);
    for (i = 0; i < 3; i++) {
        assert_int_equal(calls[i].done, 1);
        assert_int_equal(calls[i].calls, 1);
        assert_int_equal(calls[i].result.status, UD_UNAVAILABLE);
        assert_string_equal(calls[i].result.message, "shutting down");
    }
}

/* A bad app.key or directory.base_url is the config's to refuse
 * (test_config); the directory does not check them again. */
static void refuses_bad_input_at_once(void **state)
{
    ud_result r;
    (void)state;

    expect_lookup("Not Normalised", UD_INVALID_ARGUMENT, NULL);
    assert_int_equal(c.inline_answer, 1);
    r = lookup(dir, "late", ud_monotonic_ms() - 1, &c);
    assert_int_equal(r.status, UD_DEADLINE_EXCEEDED);
    assert_int_equal(fake_stat("requests"), 0);
}

/* each test from a reset fake; with_directory: and the default directory */
#define TEST(name, setup) cmocka_unit_test_setup_teardown(name, setup, destroy_directory)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        TEST(new_user_is_looked_up_then_registered, with_directory),
        TEST(passwords_differ_between_registrations, with_directory),
        TEST(existing_user_is_found_without_registering, with_directory),
        TEST(second_lookup_is_answered_inline_from_the_cache, with_directory),
        TEST(concurrent_lookups_of_a_new_user_share_one_get_and_one_post, with_directory),
        TEST(registration_race_resolves_to_the_existing_uuid, with_directory),
        TEST(without_auto_register_a_missing_user_is_not_found_and_cached, reset_fake),
        TEST(recovers_when_503_stops_within_the_retries, with_directory),
        TEST(persistent_503_is_unavailable_naming_it, with_directory),
        TEST(retry_after_of_429_is_honoured, with_directory),
        TEST(malformed_answers_are_unavailable, with_directory),
        TEST(connection_reset_is_retried, with_directory),
        TEST(unreachable_upstream_is_unavailable, reset_fake),
        TEST(illegal_argument_is_invalid_argument, with_directory),
        TEST(one_401_rebuilds_the_app_token_and_retries, with_directory),
        TEST(wrong_certificate_is_unavailable_after_one_rebuild, reset_fake),
        TEST(an_update_takes_a_new_certificate_and_options, reset_fake),
        TEST(unknown_org_or_app_is_unavailable, reset_fake),
        TEST(a_slow_upstream_meets_the_deadline_without_retrying_past_it, with_directory),
        TEST(each_waiter_keeps_its_own_deadline, with_directory),
        TEST(the_rate_limit_holds_towards_the_upstream, reset_fake),
        TEST(entries_expire_after_the_ttl_and_capacity_evicts, reset_fake),
        TEST(destroy_fails_pending_lookups, with_directory),
        TEST(refuses_bad_input_at_once, with_directory),
    };

    fake_path = getenv("FAKE_CHAT_SERVER");
    if (fake_path == NULL && argc > 1) {
        fake_path = argv[1];
    }
    if (fake_path == NULL) {
        fprintf(stderr, "usage: %s FAKE_CHAT_SERVER_PATH (or set FAKE_CHAT_SERVER)\n", argv[0]);
        return 2;
    }
    /* loopback must not go through a proxy from the environment */
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, start_fake, stop_fake);
}
