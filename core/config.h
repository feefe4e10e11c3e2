/* The service configuration: the YAML file operators write, validated into
 * one struct. Loading names the file, line, column and key of any mistake;
 * unknown keys are errors; secrets come from the file, from files it names,
 * or from the environment, and are masked whenever the config is printed. */
#ifndef CT_CONFIG_H
#define CT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "listen.h"
#include "method.h"

#define CT_CONFIG_MAX_LISTEN 8
#define CT_CONFIG_MAX_PREVIOUS_CERTS 8
#define CT_CONFIG_MAX_API_KEYS 64
#define CT_CONFIG_MAX_MTLS_CLIENTS 64
#define CT_CONFIG_MAX_CORS_ORIGINS 16
#define CT_CONFIG_MAX_JWT 8            /* auth.jwt entries */
#define CT_CONFIG_MAX_JWT_AUDIENCES 8  /* auth.jwt[].audiences */
#define CT_CONFIG_MAX_JWT_ALGORITHMS 4 /* auth.jwt[].algorithms */
#define CT_CONFIG_MAX_JWT_SUBJECTS 16  /* auth.jwt[].subjects */
#define CT_CONFIG_CLAIM_MAX 64         /* auth.jwt[].username_claim */
#define CT_CONFIG_MAX_JWT_LEEWAY 300   /* seconds of clock skew at most */
#define CT_CONFIG_ADDR_MAX 256
#define CT_CONFIG_PATH_MAX 1024
#define CT_CONFIG_NAME_MAX 128
#define CT_CONFIG_ID_MAX 512
#define CT_CONFIG_URL_MAX 512
#define CT_CONFIG_APP_KEY_MAX 256
#define CT_CONFIG_MAX_FILE_BYTES (1024 * 1024) /* larger config files are refused */
#define CT_CONFIG_MAX_DEPTH 8                  /* YAML nesting bound; the schema needs 5 */
#define CT_CONFIG_MAX_TTL_SECONDS 86400
#define CT_CONFIG_MAX_WORKERS 64

enum ct_identity_mode { CT_IDENTITY_USERNAME = 0, CT_IDENTITY_UUID = 1 };

enum ct_log_level { CT_LOG_DEBUG = 0, CT_LOG_INFO = 1, CT_LOG_WARN = 2, CT_LOG_ERROR = 3 };
/* Who may call grpc.reflection: anyone, authenticated callers, nobody. */
enum ct_reflection_mode {
    CT_REFLECTION_PUBLIC = 0,
    CT_REFLECTION_AUTHENTICATED = 1,
    CT_REFLECTION_OFF = 2,
};

typedef struct ct_api_key {
    char name[CT_CONFIG_NAME_MAX];
    uint8_t sha256[32];                /* from `sha256:` hex, or hashed from `key_file:` content */
    unsigned methods;                  /* CT_METHOD_BIT()s of the methods granted */
    char key_file[CT_CONFIG_PATH_MAX]; /* where the key was read from; "" = given as sha256 */
} ct_api_key;

typedef struct ct_mtls_client {
    char id[CT_CONFIG_ID_MAX]; /* SAN (DNS, URI: SPIFFE ID, e-mail) of the client certificate */
    unsigned methods;
} ct_mtls_client;

/* Who a JWT identifies: a user who may act only as itself, or a backend
 * whose `sub` names it (methods per subject, like mtls_clients). */
enum ct_jwt_role { CT_JWT_ROLE_END_USER = 0, CT_JWT_ROLE_WORKLOAD = 1 };

/* A workload: its `sub` claim (system:serviceaccount:NS:NAME) as id and the
 * methods granted, the same two keys as an mTLS client. */
typedef ct_mtls_client ct_jwt_subject;

/* One trusted token issuer (auth.jwt[]): how its JWTs are checked and
 * what they let their bearer do (core/jwt.h verifies, server/jwks.c keeps
 * the keys). */
typedef struct ct_jwt_issuer {
    char name[CT_CONFIG_NAME_MAX];  /* the caller's name in logs and metrics */
    char issuer[CT_CONFIG_URL_MAX]; /* must equal the iss claim */
    size_t audience_count;
    char audiences[CT_CONFIG_MAX_JWT_AUDIENCES][CT_CONFIG_NAME_MAX];
    char jwks_file[CT_CONFIG_PATH_MAX]; /* exactly one of jwks_file and jwks_url */
    char jwks_url[CT_CONFIG_URL_MAX];
    size_t algorithm_count; /* 0 = RS256 and ES256 */
    char algorithms[CT_CONFIG_MAX_JWT_ALGORITHMS][16];
    uint32_t leeway_seconds;
    unsigned role;                               /* enum ct_jwt_role */
    char username_claim[CT_CONFIG_CLAIM_MAX];    /* end_user: the claim with the username */
    unsigned methods;                            /* end_user: what the user may call */
    char rtc_channel_prefix[CT_CONFIG_NAME_MAX]; /* end_user: RTC channels; "" = any */
    size_t subject_count;                        /* workload: who may call what */
    ct_jwt_subject subjects[CT_CONFIG_MAX_JWT_SUBJECTS];
} ct_jwt_issuer;

/* Defaults, bounds and the meaning of each key: the key table in config.c
 * (and the README's reference printed from it). */
typedef struct ct_config {
    /* listen: "host:port" or "unix:/path" */
    size_t listen_count;
    char listen[CT_CONFIG_MAX_LISTEN][CT_CONFIG_ADDR_MAX];
    char health_listen[CT_CONFIG_ADDR_MAX]; /* "" = none */

    /* app: id and certificate are 32 hex chars; key is "org#app" */
    char app_id[33];
    char app_certificate[33];
    size_t previous_certificate_count;
    char previous_certificates[CT_CONFIG_MAX_PREVIOUS_CERTS][33]; /* inline, then from files */
    size_t previous_certificate_file_count;
    char previous_certificate_files[CT_CONFIG_MAX_PREVIOUS_CERTS][CT_CONFIG_PATH_MAX];
    char app_key[CT_CONFIG_APP_KEY_MAX];

    /* tokens */
    uint32_t default_ttl_seconds;
    uint32_t max_ttl_seconds;
    uint32_t renew_grace_seconds;

    /* user_tokens */
    enum ct_identity_mode identity;

    /* auth */
    int allow_unauthenticated;
    size_t api_key_count;
    ct_api_key api_keys[CT_CONFIG_MAX_API_KEYS];
    size_t mtls_client_count;
    ct_mtls_client mtls_clients[CT_CONFIG_MAX_MTLS_CLIENTS];
    size_t jwt_count;
    ct_jwt_issuer jwt[CT_CONFIG_MAX_JWT];

    /* tls: all empty = plaintext; client_ca_file set = client certificates required */
    char tls_cert_file[CT_CONFIG_PATH_MAX];
    char tls_key_file[CT_CONFIG_PATH_MAX];
    char tls_client_ca_file[CT_CONFIG_PATH_MAX];

    unsigned workers; /* 0 = one per core */
    enum ct_log_level log_level;
    enum ct_reflection_mode reflection; /* default public */

    /* shutdown */
    uint32_t drain_seconds;
    uint32_t grace_seconds;

    /* directory: the Agora Chat REST API (uuid identity mode) */
    char directory_base_url[CT_CONFIG_URL_MAX];
    int directory_auto_register;
    uint32_t directory_connect_timeout_ms;
    uint32_t directory_request_timeout_ms;
    uint32_t directory_retries;
    uint32_t directory_rate_limit_per_second;
    uint32_t directory_cache_capacity;
    uint32_t directory_cache_ttl_seconds;
    uint32_t directory_cache_negative_ttl_seconds;

    /* http: the optional side port ("" listen = off) */
    char http_listen[CT_CONFIG_ADDR_MAX];
    int http_compat_routes;
    /* the routes and JSON shapes of AgoraIO-Community/agora-token-service
     * (server/http_agora.c) */
    int http_agora_token_service_routes;
    size_t http_cors_origin_count;
    char http_cors_origins[CT_CONFIG_MAX_CORS_ORIGINS][CT_CONFIG_ADDR_MAX];
    uint32_t http_max_connections;
    uint32_t http_request_timeout_seconds; /* to deliver a complete request */
    uint32_t http_max_connections_per_ip;

    /* Where app_certificate was read from (app.certificate_file or
     * CHAT_TOKEN_APP_CERTIFICATE_FILE); "" = given inline or by
     * CHAT_TOKEN_APP_CERTIFICATE. Printed instead of the masked value. */
    char app_certificate_file[CT_CONFIG_PATH_MAX];
} ct_config;

/* Fills cfg with the defaults (no listeners, no app): see the key table in
 * config.c and the README's reference generated from it. */
void ct_config_defaults(ct_config *cfg);

/* Loads and validates a YAML document (path is used in messages only; NULL
 * text means read the file at path). Applies the environment overrides
 * CHAT_TOKEN_APP_ID, CHAT_TOKEN_APP_CERTIFICATE and
 * CHAT_TOKEN_APP_CERTIFICATE_FILE. 0 on success; -1 with
 * "FILE:LINE:COLUMN: key: what is wrong" in err (errors about the
 * environment start with the variable's name instead). Input over
 * CT_CONFIG_MAX_FILE_BYTES is refused; a key written without a value (or ~)
 * keeps its default; trailing '/' of directory.base_url is dropped. On
 * failure the secrets already read into cfg are wiped. */
int ct_config_load(ct_config *cfg, const char *path, const char *text, char *err, size_t errlen);

/* Checks cross-field rules (listeners present, allow_unauthenticated only on
 * loopback/unix listeners, TLS files together, ttl bounds). Called by load. */
int ct_config_validate(const ct_config *cfg, char *err, size_t errlen);

/* Prints the effective configuration as YAML with every secret masked. */
void ct_config_print(const ct_config *cfg, FILE *out);

/* Prints the configuration reference (a markdown table: key, default,
 * meaning) from the same table the loader uses; the README holds it. */
void ct_config_reference(FILE *out);

/* Wipes the secrets in cfg (certificates, key hashes). */
void ct_config_wipe(ct_config *cfg);

/* Takes the environment overrides (CHAT_TOKEN_APP_ID,
 * CHAT_TOKEN_APP_CERTIFICATE, CHAT_TOKEN_APP_CERTIFICATE_FILE) into this
 * process's memory and scrubs CHAT_TOKEN_APP_CERTIFICATE from the
 * environment (not to be left in /proc/PID/environ). Every later
 * ct_config_load, a reload too, applies the captured values; before a
 * capture, loads read the environment. ct_config_release_env wipes them. */
void ct_config_capture_env(void);
void ct_config_release_env(void);

/* A reload may change most keys; those marked "restart" in the key table
 * (listeners, workers, app.id, ...) may not, and tls.* may change files but
 * not go on or off. 1 with the first such key's path in key when next
 * differs from running in one of them, else 0. */
int ct_config_restart_needed(const ct_config *running, const ct_config *next, char *key,
                             size_t keylen);

#endif
