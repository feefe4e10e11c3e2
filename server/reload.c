/* The reloader: a thread that waits on a signalfd (SIGHUP), an inotify
 * descriptor (the directories of the config and of the files it names) and
 * an eventfd (stop), and swaps in a new config snapshot when asked and
 * when the new one is valid and differs. */
#include "reload.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "secret.h"

/* The config file, the app certificate file, previous certificate files,
 * API key files and three TLS files: each one's directory, at most. */
#define MAX_WATCHES (4 + CT_CONFIG_MAX_PREVIOUS_CERTS + CT_CONFIG_MAX_API_KEYS)
/* Events that never pause still reload after this long. */
#define MAX_DELAY_MS 2000

struct srv_reload {
    char config_path[CT_CONFIG_PATH_MAX];
    srv_snapshots *snapshots;
    ud_directory *directory;
    int signal_fd;
    int inotify_fd;
    int stop_fd;
    int watches[MAX_WATCHES];
    size_t watch_count;
    pthread_t thread;
};

/* The files a config names, the config itself first. */
static size_t named_files(const char *config_path, const ct_config *cfg, const char **files,
                          size_t max)
{
    size_t n = 0;

#define ADD(path)                                                                                  \
    do {                                                                                           \
        if ((path)[0] != '\0' && n < max) {                                                        \
            files[n++] = (path);                                                                   \
        }                                                                                          \
    } while (0)
    ADD(config_path);
    ADD(cfg->app_certificate_file);
    for (size_t i = 0; i < cfg->previous_certificate_file_count; i++) {
        ADD(cfg->previous_certificate_files[i]);
    }
    for (size_t i = 0; i < cfg->api_key_count; i++) {
        ADD(cfg->api_keys[i].key_file);
    }
    ADD(cfg->tls_cert_file);
    ADD(cfg->tls_key_file);
    ADD(cfg->tls_client_ca_file);
#undef ADD
    return n;
}

void srv_warn_exposed_secret_files(const ct_config *cfg)
{
    const char *files[MAX_WATCHES];
    size_t n = named_files("", cfg, files, MAX_WATCHES);

    for (size_t i = 0; i < n; i++) {
        int others = 0;
        unsigned mode = 0;
        size_t j = 0;

        while (j < i && strcmp(files[j], files[i]) != 0) {
            j++;
        }
        if (j < i || files[i] == cfg->tls_cert_file || files[i] == cfg->tls_client_ca_file ||
            !ct_secret_file_exposed(files[i], &others, &mode)) {
            continue; /* a duplicate, or public by nature (certificates), or private */
        }
        srv_log_event(CT_LOG_WARN, "secret_file_readable",
                      "%s is readable by %s (mode %04o): make it 0400, or 0440 with a group "
                      "of the server's (Kubernetes: defaultMode: 0440 and the pod's fsGroup)",
                      files[i], others ? "others" : "a group the server is not in", mode);
    }
}

/* Watches the directory of each file the running config names: a file
 * replaced by a rename, and Kubernetes' `..data` symlink swap, show as
 * events of the directory, not of the file. */
static void rewatch(srv_reload *r, const ct_config *cfg)
{
    const char *files[MAX_WATCHES];
    size_t n = named_files(r->config_path, cfg, files, MAX_WATCHES);
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                          IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

    for (size_t i = 0; i < r->watch_count; i++) {
        inotify_rm_watch(r->inotify_fd, r->watches[i]);
    }
    r->watch_count = 0;
    for (size_t i = 0; i < n; i++) {
        char dir[CT_CONFIG_PATH_MAX];
        const char *slash = strrchr(files[i], '/');
        int wd;

        if (slash == NULL) {
            snprintf(dir, sizeof(dir), ".");
        } else {
            snprintf(dir, sizeof(dir), "%.*s", slash == files[i] ? 1 : (int)(slash - files[i]),
                     files[i]);
        }
        wd = inotify_add_watch(r->inotify_fd, dir, mask);
        if (wd < 0) {
            srv_log_event(CT_LOG_WARN, "config_watch_failed",
                          "cannot watch %s (%s): changes there need SIGHUP", dir, strerror(errno));
            continue;
        }
        r->watches[r->watch_count++] = wd; /* the same directory twice: the same wd, harmless */
    }
}

/* What asked for a reload, for its log lines. */
static const char *trigger_name(int forced)
{
    return forced ? "on SIGHUP" : "on a file change";
}

static void refuse(const char *why, int forced)
{
    srv_metrics_config_reload(0);
    srv_log_event(CT_LOG_ERROR, "config_reload_failed", "%s; the running config stays (%s)", why,
                  trigger_name(forced));
}

/* One reload. forced (SIGHUP): swap in and count even an unchanged config;
 * a file event reloads only when the effective config or a file changed. */
static void reload(srv_reload *r, int forced)
{
    ct_config *next = malloc(sizeof(*next));
    srv_snapshot *running = srv_snapshots_acquire(r->snapshots);
    srv_snapshot *fresh = NULL;
    char err[1024];
    char why[CT_CONFIG_PATH_MAX + 1024 + 256];
    char key[160];

    if (next == NULL) {
        refuse("out of memory", forced);
    } else if (ct_config_load(next, r->config_path, NULL, err, sizeof(err)) != 0) {
        refuse(err, forced);
    } else if (ct_config_restart_needed(&running->config, next, key, sizeof(key))) {
        snprintf(why, sizeof(why), "%s: %s changed: a restart is needed to change it",
                 r->config_path, key);
        refuse(why, forced);
    } else if ((fresh = srv_snapshot_create(next, err, sizeof(err))) == NULL) {
        snprintf(why, sizeof(why), "%s: %s", r->config_path, err);
        refuse(why, forced);
    } else if (!forced && strcmp(fresh->sha256, running->sha256) == 0) {
        srv_log_event(CT_LOG_DEBUG, "config_unchanged", "sha256 %s", fresh->sha256);
        srv_snapshot_release(fresh);
        fresh = NULL;
    } else if (srv_snapshot_start(fresh, err, sizeof(err)) != 0) {
        fresh = NULL; /* destroyed */
        snprintf(why, sizeof(why), "%s: %s", r->config_path, err);
        refuse(why, forced);
    } else {
        ud_options directory_options;

        /* in effect first: once "config_reloaded" is logged or counted,
         * every call that starts gets the new snapshot */
        srv_snapshots_swap(r->snapshots, srv_snapshot_ref(fresh));
        srv_log_set_level(fresh->config.log_level);
        if (r->directory != NULL) {
            ud_options_from_config(&fresh->config, &directory_options);
            ud_directory_update(r->directory, &directory_options);
        }
        srv_warn_exposed_secret_files(&fresh->config);
        srv_metrics_config_reload(1);
        srv_metrics_config_running(fresh->sha256);
        srv_log_lifecycle("config_reloaded", "%s: sha256 %s (%s)", r->config_path, fresh->sha256,
                          trigger_name(forced));
        rewatch(r, &fresh->config);
        srv_snapshot_release(fresh);
    }
    if (next != NULL) {
        ct_config_wipe(next);
        free(next);
    }
    srv_snapshot_release(running);
}

static int64_t monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Reads whatever the descriptor holds; the events only say "look again". */
static void drain(int fd)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static void *reload_thread(void *arg)
{
    srv_reload *r = arg;
    int64_t quiet_until = -1; /* file events seen: reload once they pause */
    int64_t latest = -1;      /* ... or at the latest then */

    for (;;) {
        struct pollfd fds[3] = {
            {r->stop_fd, POLLIN, 0}, {r->signal_fd, POLLIN, 0}, {r->inotify_fd, POLLIN, 0}};
        int timeout = -1;
        int64_t now = monotonic_ms();

        if (quiet_until >= 0) {
            int64_t due = quiet_until < latest ? quiet_until : latest;
            timeout = due > now ? (int)(due - now) : 0;
        }
        if (poll(fds, 3, timeout) < 0 && errno != EINTR) {
            srv_log_event(CT_LOG_ERROR, "config_watch_failed", "poll: %s", strerror(errno));
            break;
        }
        if (fds[0].revents != 0) {
            break;
        }
        now = monotonic_ms();
        if (fds[1].revents != 0) {
            struct signalfd_siginfo info;
            while (read(r->signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
            }
            reload(r, 1);
            quiet_until = latest = -1;
            continue;
        }
        if (fds[2].revents != 0) {
            drain(r->inotify_fd);
            if (quiet_until < 0) {
                latest = now + MAX_DELAY_MS;
            }
            quiet_until = now + SRV_RELOAD_QUIET_MS;
            continue;
        }
        if (quiet_until >= 0 && (now >= quiet_until || now >= latest)) {
            quiet_until = latest = -1;
            reload(r, 0);
        }
    }
    return NULL;
}

static void close_fds(srv_reload *r)
{
    int *fds[] = {&r->signal_fd, &r->inotify_fd, &r->stop_fd};

    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0) {
            close(*fds[i]);
        }
    }
}

srv_reload *srv_reload_start(const char *config_path, srv_snapshots *snapshots,
                             ud_directory *directory, char *err, size_t errlen)
{
    srv_reload *r = calloc(1, sizeof(*r));
    srv_snapshot *running;
    sigset_t hup;

    if (r == NULL) {
        snprintf(err, errlen, "config reloader: out of memory");
        return NULL;
    }
    snprintf(r->config_path, sizeof(r->config_path), "%s", config_path);
    r->snapshots = snapshots;
    r->directory = directory;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    r->signal_fd = signalfd(-1, &hup, SFD_NONBLOCK | SFD_CLOEXEC);
    r->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    r->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (r->signal_fd < 0 || r->inotify_fd < 0 || r->stop_fd < 0) {
        snprintf(err, errlen, "config reloader: %s", strerror(errno));
        close_fds(r);
        free(r);
        return NULL;
    }
    running = srv_snapshots_acquire(snapshots);
    rewatch(r, &running->config);
    srv_snapshot_release(running);
    if (pthread_create(&r->thread, NULL, reload_thread, r) != 0) {
        snprintf(err, errlen, "config reloader: cannot start its thread");
        close_fds(r);
        free(r);
        return NULL;
    }
    return r;
}

void srv_reload_stop(srv_reload *r)
{
    uint64_t one = 1;

    if (r == NULL) {
        return;
    }
    if (write(r->stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one)) {
        srv_log_event(CT_LOG_ERROR, "config_watch_failed", "cannot stop the reloader");
    }
    pthread_join(r->thread, NULL);
    close_fds(r);
    free(r);
}
