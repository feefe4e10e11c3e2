/* The running configuration as immutable, reference-counted snapshots: one
 * validated ct_config plus the objects derived from it (the TLS files'
 * contents, the JWT issuers' key sets). A reload builds a complete new snapshot and swaps it in;
 * each call acquires the current one once at its start and releases it at
 * its end, so it never sees a mix of two configs. */
#ifndef SRV_SNAPSHOT_H
#define SRV_SNAPSHOT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "handlers.h"

typedef struct srv_snapshot {
    ct_config config;
    /* hex SHA-256 over the effective config (secrets included) and the
     * derived files' contents: equal hashes, same behaviour */
    char sha256[65];
    /* derived: the TLS files (PEM) as read and checked when the snapshot
     * was made; NULL when tls.* is off (client_ca: no client certificates) */
    char *tls_cert;
    char *tls_key;
    char *tls_client_ca;
    uint8_t tls_sha256[32]; /* of the three, to tell a changed certificate */
    /* derived: the keys of config's auth.jwt issuers, with their own
     * watcher and fetch thread (server/jwks.h); a new set per snapshot */
    srv_jwks_set *jwks;
    size_t derived_made; /* how many rows of snapshot.c's derived[] are made */
    atomic_uint refs;
} srv_snapshot;

/* Copies cfg (already loaded and validated) and creates the derived
 * objects that do not start work of their own (reads and checks the TLS
 * files: the key must match the certificate); srv_snapshot_start makes the
 * others. One reference, the caller's. NULL with a message in err. */
srv_snapshot *srv_snapshot_create(const ct_config *cfg, char *err, size_t errlen);

/* Creates the derived objects that work on their own (the JWT key sets'
 * threads and fetches): once s is going to be used (at start, or by a
 * reload that swaps it in), not for a snapshot made only to be compared.
 * 0, or -1 with a message in err after destroying s. */
int srv_snapshot_start(srv_snapshot *s, char *err, size_t errlen);

/* Another reference to s. */
srv_snapshot *srv_snapshot_ref(srv_snapshot *s);

/* Drops a reference (NULL: nothing); the last one destroys the derived
 * objects and wipes the secrets. */
void srv_snapshot_release(srv_snapshot *s);

/* The current snapshot: a mutex-guarded pointer. */
typedef struct srv_snapshots srv_snapshots;

/* Takes the caller's reference to first. NULL when out of memory. */
srv_snapshots *srv_snapshots_create(srv_snapshot *first);
void srv_snapshots_destroy(srv_snapshots *store);

/* A reference to the current snapshot (release it when done). */
srv_snapshot *srv_snapshots_acquire(srv_snapshots *store);

/* Makes next current, taking the caller's reference to it; the previous
 * one goes when the calls that hold it have released it. */
void srv_snapshots_swap(srv_snapshots *store, srv_snapshot *next);

/* A call's context: base with the config of the current snapshot, which
 * the call holds until it releases the returned snapshot. Without a store
 * (base->snapshots NULL: unit tests) the call uses base->config and NULL
 * is returned. */
srv_snapshot *srv_snapshot_enter(const srv_context *base, srv_context *call);

#endif
