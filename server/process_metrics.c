/* The process collector that every Prometheus client library exports, with
 * the same names and meanings (client_golang's procfs collector): CPU time,
 * resident and virtual memory, open and maximum file descriptors, start
 * time; read from /proc/self at each scrape. Plus chat_tokend_grpc_connections
 * through a counter the gRPC side registers (the C core has no public
 * connection count; it comes from channelz). */
#include "process_metrics.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static _Atomic(srv_connection_counter) connection_counter;

void srv_process_metrics_set_connection_counter(srv_connection_counter count)
{
    atomic_store(&connection_counter, count);
}

static void gauge(ct_buf *t, const char *name, const char *type, const char *help, double value)
{
    ct_buf_printf(t, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name, value);
}

/* The fields of /proc/self/stat this collector needs. */
typedef struct proc_stat {
    unsigned long long utime, stime, starttime, vsize;
    long long rss_pages;
} proc_stat;

static int read_proc_stat(proc_stat *st)
{
    char line[1024];
    const char *after_comm;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n;

    if (f == NULL) {
        return -1;
    }
    n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    /* the command name (field 2) is in parentheses and may hold spaces */
    after_comm = strrchr(line, ')');
    if (after_comm == NULL) {
        return -1;
    }
    /* fields 3.. : state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15) cutime cstime priority nice
     * num_threads itrealvalue starttime(22) vsize(23) rss(24) */
    if (sscanf(after_comm + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%llu %llu %lld",
               &st->utime, &st->stime, &st->starttime, &st->vsize, &st->rss_pages) != 5) {
        return -1;
    }
    return 0;
}

/* The boot time in seconds since the epoch (/proc/stat btime); -1. */
static long long boot_time(void)
{
    char line[256];
    long long btime = -1;
    FILE *f = fopen("/proc/stat", "r");

    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "btime %lld", &btime) == 1) {
            break;
        }
    }
    fclose(f);
    return btime;
}

/* Open descriptors, not counting the one that reads the directory; -1. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long count = 0;

    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            count++;
        }
    }
    closedir(d);
    return count - 1;
}

void srv_process_metrics_render(ct_buf *t)
{
    proc_stat st;
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    long long btime = boot_time();
    long fds = open_fds();
    struct rlimit nofile;
    srv_connection_counter count = atomic_load(&connection_counter);

    if (read_proc_stat(&st) == 0 && ticks > 0 && page > 0) {
        gauge(t, "process_cpu_seconds_total", "counter",
              "Total user and system CPU time spent in seconds.",
              (double)(st.utime + st.stime) / (double)ticks);
        gauge(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
              (double)st.rss_pages * (double)page);
        gauge(t, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
              (double)st.vsize);
        if (btime >= 0) {
            gauge(t, "process_start_time_seconds", "gauge",
                  "Start time of the process since unix epoch in seconds.",
                  (double)btime + (double)st.starttime / (double)ticks);
        }
    }
    if (fds >= 0) {
        gauge(t, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
    }
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        gauge(t, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
              nofile.rlim_cur == RLIM_INFINITY ? -1.0 : (double)nofile.rlim_cur);
    }
    if (count != NULL) {
        long connections = count();
        if (connections >= 0) {
            gauge(t, "chat_tokend_grpc_connections", "gauge",
                  "Open gRPC connections (HTTP/2 transports) on every gRPC listener.",
                  (double)connections);
        }
    }
}
