/* Reading secrets from files, the way Kubernetes mounts them. */
#include "secret.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GROUPS_MAX 256

int ct_secret_read_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    FILE *f;
    size_t n;
    int too_long;

    if (path == NULL || out == NULL || outlen < 2) {
        snprintf(err, errlen, "no secret file given");
        return -1;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    n = fread(out, 1, outlen - 1, f);
    too_long = n == outlen - 1 && fgetc(f) != EOF;
    fclose(f);
    if (too_long) {
        ct_secret_wipe(out, outlen);
        snprintf(err, errlen, "%s is larger than %zu bytes", path, outlen - 1);
        return -1;
    }
    while (n > 0 &&
           (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ' || out[n - 1] == '\t')) {
        n--;
    }
    out[n] = '\0';
    if (n == 0) {
        snprintf(err, errlen, "%s is empty", path);
        return -1;
    }
    return 0;
}

void ct_secret_wipe(void *p, size_t len)
{
    OPENSSL_cleanse(p, len);
}

static int in_my_groups(gid_t gid)
{
    gid_t groups[GROUPS_MAX];
    int n = getgroups(GROUPS_MAX, groups);

    if (gid == getegid()) {
        return 1;
    }
    for (int i = 0; i < n; i++) {
        if (groups[i] == gid) {
            return 1;
        }
    }
    return 0;
}

int ct_secret_file_exposed(const char *path, int *others, unsigned *mode)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        return 0;
    }
    *mode = (unsigned)(st.st_mode & 07777);
    *others = (st.st_mode & S_IROTH) != 0;
    return *others || ((st.st_mode & S_IRGRP) != 0 && !in_my_groups(st.st_gid));
}

void ct_secret_scrub_env(const char *name)
{
    char *value = getenv(name);

    if (value != NULL) {
        ct_secret_wipe(value, strlen(value));
        unsetenv(name);
    }
}
