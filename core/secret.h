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

#endif
