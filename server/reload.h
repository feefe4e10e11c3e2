/* Reloading the config without a restart: on SIGHUP, and when something
 * changes in the directory of the config file or of a file it names
 * (inotify; Kubernetes swaps a `..data` symlink there), bursts coalesced.
 * A reload loads and validates the whole file with the loader of the start,
 * refuses changes of restart-only keys, builds a new snapshot and swaps it
 * in; on any error the running config stays. The work runs on one thread of
 * the reloader's own, never in a signal handler or on a call's thread. */
#ifndef SRV_RELOAD_H
#define SRV_RELOAD_H

#include <stddef.h>

#include "config.h"
#include "directory/directory.h"
#include "snapshot.h"

/* How long file events must pause before the reload runs. */
#define SRV_RELOAD_QUIET_MS 200

typedef struct srv_reload srv_reload;

/* Starts the reloader's thread for the config at config_path. SIGHUP must
 * be blocked in every thread of the process before (the thread takes it
 * from a signalfd). directory (NULL: none) gets the new directory.* options
 * and certificate. NULL with a message in err. */
srv_reload *srv_reload_start(const char *config_path, srv_snapshots *snapshots,
                             ud_directory *directory, char *err, size_t errlen);

/* Stops and joins the thread (NULL: nothing). */
void srv_reload_stop(srv_reload *r);

/* Logs a warning per secret file (app certificate, previous certificates,
 * TLS key, API key files) that others may read; at start and each reload. */
void srv_warn_exposed_secret_files(const ct_config *cfg);

#endif
