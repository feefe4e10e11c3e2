/* chat-tokend: command line, configuration, start-up, and the signal-driven
 * shutdown (drain, then graceful stop, then cancel). */
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include "config.h"
#include "directory/directory.h"
#include "grpc_server.h"
#include "handlers.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "probe.h"
#include "reload.h"
#include "snapshot.h"

#define EXIT_CONFIG 2

#ifndef CT_VERSION_STRING
#define CT_VERSION_STRING "0.0.0"
#endif

/* The quick start's configuration: loopback only, a public demo app ID and
 * certificate (their tokens are worthless for a real app), username
 * identity, no authentication (legal only because every listener is
 * loopback). */
static const char demo_config[] = "listen: [\"127.0.0.1:50051\"]\n"
                                  "health_listen: \"127.0.0.1:50052\"\n"
                                  "app:\n"
                                  "  id: \"970CA35de60c44645bbae8a215061b33\"\n"
                                  "  certificate: \"5CFd2fd1755d40ecb72977518be15d3b\"\n"
                                  "  key: \"demo#demo\"\n"
                                  "user_tokens: {identity: username}\n"
                                  "auth: {allow_unauthenticated: true}\n";

static const char usage[] =
    "usage: chat-tokend --config FILE [--check-config]\n"
    "       chat-tokend --demo         run on the embedded demo config (loopback only)\n"
    "       chat-tokend --version\n"
    "       chat-tokend probe [--addr ADDR] ...   a gRPC health check (probe --help)\n"
    "\n"
    "  --config FILE    the YAML configuration (see README: Configuration)\n"
    "  --check-config   validate, print the effective config with secrets masked,\n"
    "                   exit 0 when valid, 2 when not\n"
    "  --demo           the embedded demo configuration: 127.0.0.1:50051, health on\n"
    "                   127.0.0.1:50052, a public demo app, no authentication\n"
    "\n"
    "Environment: CHAT_TOKEN_APP_ID, CHAT_TOKEN_APP_CERTIFICATE,\n"
    "CHAT_TOKEN_APP_CERTIFICATE_FILE override the app section.\n"
    "SIGTERM or SIGINT: drain (health NOT_SERVING), then stop gracefully.\n"
    "SIGHUP, or a change of the config file or of a file it names: reload the config\n"
    "(README: Reloading).\n";

typedef struct options {
    const char *config_path;
    int check_config;
    int demo;
} options;

static int parse_args(int argc, char **argv, options *opt)
{
    memset(opt, 0, sizeof(*opt));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            opt->config_path = argv[++i];
        } else if (strcmp(argv[i], "--check-config") == 0) {
            opt->check_config = 1;
        } else if (strcmp(argv[i], "--demo") == 0) {
            opt->demo = 1;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("chat-tokend %s (gRPC core %s)\n", CT_VERSION_STRING, grpc_version_string());
            exit(0);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else {
            fprintf(stderr, "chat-tokend: unknown or incomplete argument '%s'\n\n%s", argv[i],
                    usage);
            return -1;
        }
    }
    if ((opt->config_path == NULL) == (opt->demo == 0)) {
        fprintf(stderr, "chat-tokend: give --config FILE or --demo\n\n%s", usage);
        return -1;
    }
    return 0;
}

/* Secrets live in this process's memory: keep them out of core files and
 * away from ptrace by other users. */
static void protect_memory(void)
{
    struct rlimit none = {0, 0};

    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Waits up to seconds for another signal; returns early when one comes. */
static void drain_wait(const sigset_t *signals, unsigned seconds)
{
    struct timespec timeout = {(time_t)seconds, 0};

    if (seconds > 0 && sigtimedwait(signals, NULL, &timeout) > 0) {
        srv_log_event(CT_LOG_WARN, "drain_cut_short", "second signal: stopping now");
    }
}

/* /readyz asks the gRPC side too: ready only while both serve. */
static int grpc_serving(void *server)
{
    return srv_grpc_serving(server);
}

/* The shutdown keys as the running snapshot has them (they reload). */
static void shutdown_times(srv_snapshots *snapshots, unsigned *drain, unsigned *grace)
{
    srv_snapshot *s = srv_snapshots_acquire(snapshots);

    *drain = s->config.drain_seconds;
    *grace = s->config.grace_seconds;
    srv_snapshot_release(s);
}

/* Starts the parts in order, waits for a signal, then takes them down in
 * the reverse order: one ladder for the normal stop and every failed start.
 * cfg is the start's config (listeners, workers); calls use the snapshot
 * current when they start. config_path NULL: no reloads (--demo). */
static int run(const ct_config *cfg, const char *config_path)
{
    srv_context ctx = {.config = cfg};
    srv_snapshot *first;
    srv_reload *reloader = NULL;
    srv_grpc *server = NULL;
    srv_http *http = NULL;
    unsigned drain = 0;
    unsigned grace = 0;
    sigset_t signals;
    sigset_t hup;
    char err[512];
    int sig = 0;
    int rc = 1; /* until a signal asks for the stop */

    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    /* every thread started from here on inherits the mask: only sigwait sees
     * TERM and INT, only the reloader's signalfd HUP */
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);
    signal(SIGPIPE, SIG_IGN);

    first = srv_snapshot_create(cfg, err, sizeof(err));
    /* keys that cannot be had yet do not stop the start (readiness says so) */
    if (first != NULL && srv_snapshot_start(first, err, sizeof(err)) != 0) {
        first = NULL; /* destroyed */
    }
    ctx.snapshots = first != NULL ? srv_snapshots_create(first) : NULL;
    if (ctx.snapshots == NULL) {
        srv_log_event(CT_LOG_ERROR, "start_failed", "%s", first != NULL ? "out of memory" : err);
        srv_snapshot_release(first);
        return 1;
    }
    srv_metrics_config_running(first->sha256);

    if (cfg->identity == CT_IDENTITY_UUID) {
        ud_options directory_options;
        ud_options_from_config(cfg, &directory_options);
        ctx.directory = ud_directory_create(&directory_options, err, sizeof(err));
        if (ctx.directory == NULL) {
            srv_log_event(CT_LOG_ERROR, "start_failed", "user directory: %s", err);
            srv_snapshots_destroy(ctx.snapshots);
            return 1;
        }
    }
    /* watching before "started": a change made right after it is seen */
    if (config_path != NULL) {
        reloader = srv_reload_start(config_path, ctx.snapshots, ctx.directory, err, sizeof(err));
        if (reloader == NULL) {
            srv_log_event(CT_LOG_WARN, "config_watch_failed", "%s: no reloads", err);
        }
    }
    grpc_init();
    server = srv_grpc_start(cfg, &ctx, err, sizeof(err));
    if (server == NULL) {
        srv_log_event(CT_LOG_ERROR, "start_failed", "%s", err);
        goto stop_grpc_core;
    }
    if (cfg->http_listen[0] != '\0') {
        http = srv_http_start(cfg, &ctx, grpc_serving, server, err, sizeof(err));
        if (http == NULL) {
            srv_log_event(CT_LOG_ERROR, "start_failed", "%s", err);
            srv_grpc_drain(server);
            goto stop_grpc;
        }
    }
    sigwait(&signals, &sig);
    srv_reload_stop(reloader); /* no reload while the directory goes */
    reloader = NULL;
    shutdown_times(ctx.snapshots, &drain, &grace);
    srv_log_lifecycle("draining", "signal %d: health is NOT_SERVING for %u s", sig, drain);
    srv_grpc_drain(server);
    if (http != NULL) {
        srv_http_drain(http);
    }
    drain_wait(&signals, drain);
    srv_log_lifecycle("stopping", "in-flight calls have %u s", grace);
    rc = 0;

stop_grpc:
    srv_reload_stop(reloader);
    reloader = NULL;
    srv_grpc_shutdown(server, grace);
    if (http != NULL) {
        /* before the directory goes: it waits for the lookups under way */
        srv_http_stop(http);
    }
    /* lookups still waiting (their callers may have gone) are failed while
     * the workers' queues still take the final batches; the cache is freed
     * only after the workers, which read it, have been joined */
    ud_directory_stop(ctx.directory);
    srv_grpc_destroy(server);
stop_grpc_core:
    srv_reload_stop(reloader);
    ud_directory_destroy(ctx.directory);
    grpc_shutdown();
    srv_snapshots_destroy(ctx.snapshots);
    if (rc == 0) {
        srv_log_lifecycle("stopped", NULL);
    }
    return rc;
}

int main(int argc, char **argv)
{
    static ct_config cfg;
    options opt;
    char err[1024];
    int rc;

    if (argc > 1 && strcmp(argv[1], "probe") == 0) {
        return srv_probe_main(argc - 1, argv + 1);
    }
    if (parse_args(argc, argv, &opt) != 0) {
        return EXIT_CONFIG;
    }
    protect_memory();
    /* kept in memory for reloads, scrubbed from /proc/PID/environ */
    ct_config_capture_env();
    ct_config_defaults(&cfg);
    rc = ct_config_load(&cfg, opt.demo ? "<demo config>" : opt.config_path,
                        opt.demo ? demo_config : NULL, err, sizeof(err));
    if (rc != 0) {
        ct_config_release_env();
        fprintf(stderr, "chat-tokend: %s\n", err);
        return EXIT_CONFIG;
    }
    if (opt.check_config) {
        ct_config_print(&cfg, stdout);
        ct_config_wipe(&cfg);
        ct_config_release_env();
        return 0;
    }
    srv_log_set_level(cfg.log_level);
    srv_warn_exposed_secret_files(&cfg);
    if (opt.demo) {
        srv_log_event(CT_LOG_WARN, "demo_config",
                      "running on the embedded demo config: demo app, no authentication, "
                      "loopback only; not for production");
    }
    rc = run(&cfg, opt.demo ? NULL : opt.config_path);
    ct_config_wipe(&cfg);
    ct_config_release_env();
    return rc;
}
