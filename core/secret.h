/* Secrets read from files (certificates, API keys): bounded, trimmed, and
 * wiped from memory when no longer needed. */
#ifndef CT_SECRET_H
#define CT_SECRET_H

#include <stddef.h>

/* Reads the file at path into out (NUL-terminated), dropping trailing white
 * space (a newline from an editor or `echo`). The file must hold 1 byte and
 * less than outlen bytes. 0 on success, -1 with a message in err otherwise;
 * the message names the path, never the content. */
int ct_secret_read_file(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/* Overwrites len bytes at p in a way the compiler cannot drop. */
void ct_secret_wipe(void *p, size_t len);

/* 1 when the file at path may be read by others, or by a group the process
 * is not in: what it holds is not the server's alone (Kubernetes mounts
 * Secret files 0644 unless defaultMode says otherwise; 0440 with the pod's
 * fsGroup, a group of the process, is fine). *others says which; *mode gets
 * the permission bits. 0 otherwise, or when path cannot be stat'ed (reading
 * it reports that). */
int ct_secret_file_exposed(const char *path, int *others, unsigned *mode);

/* Overwrites the value of the environment variable name in place, then
 * removes the variable: unsetenv alone leaves the value in the process's
 * initial environment block, which /proc/PID/environ shows. */
void ct_secret_scrub_env(const char *name);

#endif
