/* The config loader: YAML (libyaml events) into struct ct_config, driven by
 * a table of the keys each section allows; environment overrides for the
 * app credentials; the cross-field rules (ct_config_validate); and the
 * masked YAML printer behind `chat-tokend --check-config`.
 *
 * The loader walks libyaml's event stream instead of building a document
 * tree: every key is checked against the schema as it arrives, so an
 * unknown key or a wrong type stops the parse at once and nothing
 * unbounded is ever held in memory. Where each value came from (file mark
 * or environment variable) is remembered by key path, so that rules checked
 * after parsing still point at the right line. */
#include "config.h"
#include "text.h"

#include "peer_id.h"
#include "rtc.h"
#include "secret.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define KEY_PATH_MAX 160     /* "auth.api_keys[63].methods" and the like */
#define MESSAGE_MAX 512      /* one error message before the location prefix */
#define SECRET_READ_MAX 4096 /* a key or certificate file, with room for newlines */
#define DIRECTORY_MAX_RETRIES 10

/* ------------------------------------------------------------------ */
/* Wiping                                                               */

void ct_config_wipe(ct_config *cfg)
{
    OPENSSL_cleanse(cfg->app_certificate, sizeof(cfg->app_certificate));
    OPENSSL_cleanse(cfg->previous_certificates, sizeof(cfg->previous_certificates));
    for (size_t i = 0; i < CT_CONFIG_MAX_API_KEYS; i++) {
        OPENSSL_cleanse(cfg->api_keys[i].sha256, sizeof(cfg->api_keys[i].sha256));
    }
}

/* ------------------------------------------------------------------ */
/* Validation: the rules that span fields. Each failure names a key path;
 * ct_config_load turns the path into the file position of that key. */

struct problem {
    char path[KEY_PATH_MAX];
    char message[MESSAGE_MAX];
};

__attribute__((format(printf, 2, 3))) static void set_path(struct problem *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->path, sizeof(p->path), fmt, ap);
    va_end(ap);
}

/* Records the message for the path set before; always -1. */
__attribute__((format(printf, 2, 3))) static int report(struct problem *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof(p->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int is_hex(const char *s, size_t len)
{
    return strlen(s) == len && strspn(s, "0123456789abcdefABCDEF") == len;
}

static int check_one_listen(struct problem *p, const char *addr)
{
    const char *why = NULL;
    ct_listen_addr parsed;
    if (addr[0] == '\0') {
        return report(p, "must not be empty");
    }
    if (ct_listen_parse(addr, &parsed, &why) != 0) {
        return report(p, "\"%s\": %s", addr, why);
    }
    return 0;
}

/* Two listeners on the same fixed address would fail at bind time with a
 * less helpful message; port 0 (a free port each time) may repeat. */
static int is_fixed_duplicate(const char *a, const char *b)
{
    size_t len = strlen(a);
    if (a[0] == '\0' || strcmp(a, b) != 0) {
        return 0;
    }
    return !(len >= 2 && a[len - 2] == ':' && a[len - 1] == '0');
}

static int validate_listeners(const ct_config *cfg, struct problem *p)
{
    set_path(p, "listen");
    if (cfg->listen_count == 0) {
        return report(p, "at least one address is required");
    }
    for (size_t i = 0; i < cfg->listen_count; i++) {
        set_path(p, "listen[%zu]", i);
        if (check_one_listen(p, cfg->listen[i]) != 0) {
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (is_fixed_duplicate(cfg->listen[i], cfg->listen[j])) {
                return report(p, "\"%s\" is already listen[%zu]", cfg->listen[i], j);
            }
        }
    }
    set_path(p, "health_listen");
    if (cfg->health_listen[0] != '\0' && check_one_listen(p, cfg->health_listen) != 0) {
        return -1;
    }
    set_path(p, "http.listen");
    if (cfg->http_listen[0] != '\0' && check_one_listen(p, cfg->http_listen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < cfg->listen_count; i++) {
        set_path(p, "health_listen");
        if (is_fixed_duplicate(cfg->health_listen, cfg->listen[i])) {
            return report(p, "\"%s\" is already listen[%zu]", cfg->health_listen, i);
        }
        set_path(p, "http.listen");
        if (is_fixed_duplicate(cfg->http_listen, cfg->listen[i])) {
            return report(p, "\"%s\" is already listen[%zu]", cfg->http_listen, i);
        }
    }
    set_path(p, "http.listen");
    if (is_fixed_duplicate(cfg->http_listen, cfg->health_listen)) {
        return report(p, "\"%s\" is already health_listen", cfg->http_listen);
    }
    return 0;
}

/* "org#app": both parts non-empty, [A-Za-z0-9_-]. */
static int check_app_key(struct problem *p, const char *key)
{
    static const char allowed[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
    size_t org = strspn(key, allowed);
    size_t app;

    if (key[org] != '#') {
        return report(p, "must be \"org#app\" (letters, digits, '_' and '-' around one '#')");
    }
    app = strspn(key + org + 1, allowed);
    if (org == 0 || app == 0 || key[org + 1 + app] != '\0') {
        return report(p, "must be \"org#app\" (letters, digits, '_' and '-' around one '#')");
    }
    return 0;
}

/* Messages about the id and certificates give lengths, never the value:
 * a certificate pasted into the wrong key must not end up in a log. */
static int validate_app(const ct_config *cfg, struct problem *p)
{
    set_path(p, "app.id");
    if (!is_hex(cfg->app_id, 32)) {
        return report(p, "must be 32 hex characters (got %zu characters%s)", strlen(cfg->app_id),
                      strlen(cfg->app_id) == 32 ? ", not all hex" : "");
    }
    set_path(p, "app.certificate");
    if (cfg->app_certificate[0] == '\0') {
        return report(p, "required: give app.certificate, app.certificate_file, "
                         "CHAT_TOKEN_APP_CERTIFICATE or CHAT_TOKEN_APP_CERTIFICATE_FILE");
    }
    if (!is_hex(cfg->app_certificate, 32)) {
        return report(p, "must be 32 hex characters (got %zu characters%s)",
                      strlen(cfg->app_certificate),
                      strlen(cfg->app_certificate) == 32 ? ", not all hex" : "");
    }
    for (size_t i = 0; i < cfg->previous_certificate_count; i++) {
        set_path(p, "app.previous_certificates[%zu]", i);
        if (!is_hex(cfg->previous_certificates[i], 32)) {
            return report(p, "must be 32 hex characters (got %zu characters)",
                          strlen(cfg->previous_certificates[i]));
        }
    }
    set_path(p, "app.key");
    if (cfg->app_key[0] == '\0' && cfg->identity == CT_IDENTITY_UUID) {
        return report(p, "required when user_tokens.identity is uuid (the Chat REST API needs it)");
    }
    if (cfg->app_key[0] != '\0') {
        return check_app_key(p, cfg->app_key);
    }
    return 0;
}

/* The default within the maximum (whose own bounds the table checked). */
static int validate_tokens(const ct_config *cfg, struct problem *p)
{
    set_path(p, "tokens.default_ttl_seconds");
    if (cfg->default_ttl_seconds < 1 || cfg->default_ttl_seconds > cfg->max_ttl_seconds) {
        return report(p, "must be 1..%u (tokens.max_ttl_seconds), got %u",
                      (unsigned)cfg->max_ttl_seconds, (unsigned)cfg->default_ttl_seconds);
    }
    return 0;
}

static int validate_tls(const ct_config *cfg, struct problem *p)
{
    int has_cert = cfg->tls_cert_file[0] != '\0';
    int has_key = cfg->tls_key_file[0] != '\0';

    set_path(p, has_cert ? "tls.key_file" : "tls.cert_file");
    if (has_cert != has_key) {
        return report(p, "tls.cert_file and tls.key_file go together");
    }
    set_path(p, "tls.client_ca_file");
    if (cfg->tls_client_ca_file[0] != '\0' && !has_cert) {
        return report(p, "client certificates need TLS: set tls.cert_file and tls.key_file");
    }
    return 0;
}

static int check_methods(struct problem *p, unsigned methods)
{
    if (methods == 0) {
        return report(
            p, "name at least one method (GetAppToken, GetUserToken, RenewToken, GetRtcToken, "
               "GetRtmToken)");
    }
    if ((methods & ~(unsigned)CT_METHOD_ALL) != 0) {
        return report(p, "unknown method bits 0x%x", methods & ~(unsigned)CT_METHOD_ALL);
    }
    return 0;
}

/* The two lists of callers follow the same rules: an identity that is
 * present and unique, and at least one method. */
struct caller_list {
    const char *path;     /* "auth.api_keys" */
    const char *id_key;   /* "name" */
    const char *required; /* the message when the identity is missing */
    const char *taken;    /* the message when it repeats, with %s and %zu */
    size_t first, count;  /* offsets in ct_config: the array, its length */
    size_t stride, id_offset, methods_offset;
    /* the identity's own syntax, or NULL; writes its message into err */
    int (*check_id)(const char *id, char *err, size_t err_len);
};

#define CALLER_LIST_IN(container, path, id, type, array, count, required, taken, check_id)         \
    {                                                                                              \
        path, #id, required, taken, offsetof(container, array), offsetof(container, count),        \
            sizeof(type), offsetof(type, id), offsetof(type, methods), check_id                    \
    }
#define CALLER_LIST(...) CALLER_LIST_IN(ct_config, __VA_ARGS__)

static const struct caller_list caller_lists[] = {
    CALLER_LIST("auth.api_keys", name, ct_api_key, api_keys, api_key_count,
                "required (it names the caller in logs)",
                "\"%s\" is already the name of auth.api_keys[%zu]", NULL),
    CALLER_LIST("auth.mtls_clients", id, ct_mtls_client, mtls_clients, mtls_client_count,
                "required (the SAN or SPIFFE ID of the client certificate)",
                "\"%s\" is already auth.mtls_clients[%zu]", ct_peer_id_check),
};

/* base: the struct holding the list (the config, or an auth.jwt entry whose
 * path is prefix). */
static int validate_callers(const void *base, const char *prefix, const struct caller_list *l,
                            struct problem *p)
{
    const char *first = (const char *)base + l->first;
    size_t count = *(const size_t *)(const void *)((const char *)base + l->count);

    for (size_t i = 0; i < count; i++) {
        const char *item = first + i * l->stride;
        const char *id = item + l->id_offset;
        unsigned methods;

        set_path(p, "%s%s[%zu].%s", prefix, l->path, i, l->id_key);
        if (id[0] == '\0') {
            return report(p, "%s", l->required);
        }
        if (l->check_id != NULL && l->check_id(id, p->message, sizeof(p->message)) != 0) {
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(id, first + j * l->stride + l->id_offset) == 0) {
                return report(p, l->taken, id, j);
            }
        }
        set_path(p, "%s%s[%zu].methods", prefix, l->path, i);
        memcpy(&methods, item + l->methods_offset, sizeof(methods));
        if (check_methods(p, methods) != 0) {
            return -1;
        }
    }
    return 0;
}

static int validate_api_keys_and_clients(const ct_config *cfg, struct problem *p)
{
    for (size_t i = 0; i < sizeof(caller_lists) / sizeof(caller_lists[0]); i++) {
        if (validate_callers(cfg, "", &caller_lists[i], p) != 0) {
            return -1;
        }
    }
    set_path(p, "auth.mtls_clients");
    if (cfg->mtls_client_count > 0 && cfg->tls_client_ca_file[0] == '\0') {
        return report(p, "need tls.client_ca_file to verify client certificates");
    }
    return 0;
}

static const struct caller_list jwt_subjects = CALLER_LIST_IN(
    ct_jwt_issuer, "subjects", id, ct_jwt_subject, subjects, subject_count,
    "required (the sub claim of the workload's tokens)", "\"%s\" is already subjects[%zu]", NULL);

/* What an end user may be granted: tokens for itself, never the app token. */
#define END_USER_METHODS                                                                           \
    (CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN) | CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN) |              \
     CT_METHOD_BIT(CT_METHOD_GET_RTC_TOKEN) | CT_METHOD_BIT(CT_METHOD_GET_RTM_TOKEN))

/* https://, or http:// to a loopback host (a test identity provider): the
 * host is compared whole, as listen addresses are (127.x.y.z, ::1,
 * localhost), so http://127.0.0.1.example.com/ or http://127.0.0.1@host/
 * are not loopback. */
static int check_jwks_url(struct problem *p, const char *url)
{
    char authority[CT_CONFIG_ADDR_MAX];
    size_t len;

    if (strncmp(url, "https://", 8) == 0 && url[8] != '\0' && url[8] != '/') {
        return 0;
    }
    if (strncmp(url, "http://", 7) == 0) {
        len = strcspn(url + 7, "/?#");
        if (len > 0 && len + 4 < sizeof(authority) && memchr(url + 7, '@', len) == NULL) {
            memcpy(authority, url + 7, len);
            authority[len] = '\0';
            /* no port: the default one, so that it reads as host:port */
            if (authority[len - 1] == ']' || strchr(authority, ':') == NULL) {
                memcpy(authority + len, ":80", 4);
            }
            if (ct_listen_is_local(authority)) {
                return 0;
            }
        }
    }
    return report(p, "\"%s\" must be https:// (http:// only to a loopback host)", url);
}

static int validate_jwt_algorithms(const ct_jwt_issuer *j, struct problem *p, size_t i)
{
    for (size_t a = 0; a < j->algorithm_count; a++) {
        const char *alg = j->algorithms[a];
        set_path(p, "auth.jwt[%zu].algorithms[%zu]", i, a);
        if (strcmp(alg, "RS256") == 0 || strcmp(alg, "ES256") == 0) {
            continue;
        }
        if (strcasecmp(alg, "none") == 0 || strncmp(alg, "HS", 2) == 0) {
            return report(p,
                          "%s is refused: unsigned or HMAC tokens cannot be checked against a "
                          "public key set (allowed: RS256, ES256)",
                          alg);
        }
        return report(p, "unknown algorithm \"%s\" (allowed: RS256, ES256)", alg);
    }
    return 0;
}

static int validate_jwt_role(const ct_jwt_issuer *j, struct problem *p, size_t i)
{
    char prefix[KEY_PATH_MAX];

    if (j->role == CT_JWT_ROLE_WORKLOAD) {
        set_path(p, "auth.jwt[%zu].subjects", i);
        if (j->subject_count == 0) {
            return report(p, "a workload issuer needs subjects: [{id, methods}]");
        }
        set_path(p, "auth.jwt[%zu].methods", i);
        if (j->methods != 0) {
            return report(p, "a workload's methods are given per subject (subjects[].methods)");
        }
        snprintf(prefix, sizeof(prefix), "auth.jwt[%zu].", i);
        return validate_callers(j, prefix, &jwt_subjects, p);
    }
    set_path(p, "auth.jwt[%zu].subjects", i);
    if (j->subject_count != 0) {
        return report(p, "only for role: workload");
    }
    set_path(p, "auth.jwt[%zu].methods", i);
    if (j->methods == 0 || (j->methods & ~(unsigned)END_USER_METHODS) != 0) {
        return report(p, "an end user may be granted GetUserToken, RenewToken, GetRtcToken and "
                         "GetRtmToken (for itself), nothing else");
    }
    set_path(p, "auth.jwt[%zu].rtc_channel_prefix", i);
    if (j->rtc_channel_prefix[0] != '\0' &&
        ct_rtc_check_channel(j->rtc_channel_prefix, p->message, sizeof(p->message)) != 0) {
        return -1;
    }
    return 0;
}

static int validate_one_jwt(const ct_config *cfg, struct problem *p, size_t i)
{
    const ct_jwt_issuer *j = &cfg->jwt[i];

    set_path(p, "auth.jwt[%zu].name", i);
    if (j->name[0] == '\0') {
        return report(p, "required (it names the caller in logs and metrics)");
    }
    for (size_t k = 0; k < i; k++) {
        if (strcmp(j->name, cfg->jwt[k].name) == 0) {
            return report(p, "\"%s\" is already the name of auth.jwt[%zu]", j->name, k);
        }
    }
    set_path(p, "auth.jwt[%zu].issuer", i);
    if (j->issuer[0] == '\0') {
        return report(p, "required (the iss claim of its tokens)");
    }
    set_path(p, "auth.jwt[%zu].audiences", i);
    if (j->audience_count == 0) {
        return report(p, "name at least one audience (the aud claim must hold one of them)");
    }
    set_path(p, "auth.jwt[%zu].jwks_file", i);
    if ((j->jwks_file[0] != '\0') == (j->jwks_url[0] != '\0')) {
        return report(p, "give exactly one of jwks_file and jwks_url");
    }
    set_path(p, "auth.jwt[%zu].jwks_url", i);
    if (j->jwks_url[0] != '\0' && check_jwks_url(p, j->jwks_url) != 0) {
        return -1;
    }
    set_path(p, "auth.jwt[%zu].leeway_seconds", i);
    if (j->leeway_seconds > CT_CONFIG_MAX_JWT_LEEWAY) {
        return report(p, "must be 0..%d, got %u", CT_CONFIG_MAX_JWT_LEEWAY,
                      (unsigned)j->leeway_seconds);
    }
    if (validate_jwt_algorithms(j, p, i) != 0) {
        return -1;
    }
    return validate_jwt_role(j, p, i);
}

/* Without authentication anyone who can reach a listener can mint tokens,
 * so it is only allowed where the reach is this host (or its pod). */
static int check_unauthenticated_reach(const ct_config *cfg, struct problem *p)
{
    for (size_t i = 0; i < cfg->listen_count; i++) {
        if (!ct_listen_is_local(cfg->listen[i])) {
            return report(p, "refused: listen[%zu] \"%s\" is not loopback or unix", i,
                          cfg->listen[i]);
        }
    }
    if (cfg->health_listen[0] != '\0' && !ct_listen_is_local(cfg->health_listen)) {
        return report(p, "refused: health_listen \"%s\" is not loopback or unix",
                      cfg->health_listen);
    }
    if (cfg->http_listen[0] != '\0' && !ct_listen_is_local(cfg->http_listen)) {
        return report(p, "refused: http.listen \"%s\" is not loopback or unix", cfg->http_listen);
    }
    return 0;
}

static int validate_auth(const ct_config *cfg, struct problem *p)
{
    if (validate_api_keys_and_clients(cfg, p) != 0) {
        return -1;
    }
    for (size_t i = 0; i < cfg->jwt_count; i++) {
        if (validate_one_jwt(cfg, p, i) != 0) {
            return -1;
        }
    }
    set_path(p, "auth.allow_unauthenticated");
    if (cfg->allow_unauthenticated) {
        return check_unauthenticated_reach(cfg, p);
    }
    set_path(p, "auth");
    if (cfg->api_key_count == 0 && cfg->mtls_client_count == 0 && cfg->jwt_count == 0) {
        return report(p, "no api_keys, mtls_clients or jwt: nobody could call the service "
                         "(allow_unauthenticated is only for loopback and unix listeners)");
    }
    return 0;
}

/* Choices a loaded config cannot get wrong, but a struct filled by hand can. */
static int validate_choices(const ct_config *cfg, struct problem *p)
{
    set_path(p, "log.level");
    if ((unsigned)cfg->log_level > CT_LOG_ERROR) {
        return report(p, "must be debug, info, warn or error");
    }
    set_path(p, "reflection");
    if ((unsigned)cfg->reflection > CT_REFLECTION_OFF) {
        return report(p, "must be public, authenticated or off");
    }
    set_path(p, "user_tokens.identity");
    if (cfg->identity != CT_IDENTITY_USERNAME && cfg->identity != CT_IDENTITY_UUID) {
        return report(p, "must be username or uuid");
    }
    return 0;
}

static int validate_directory(const ct_config *cfg, struct problem *p)
{
    const char *url = cfg->directory_base_url;

    set_path(p, "directory.base_url");
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
        return report(p, "must start with https:// (or http:// for tests)");
    }
    if (url[strcspn(url, ":") + 3] == '\0') {
        return report(p, "names no host");
    }
    return 0;
}

/* A browser sends Origin as scheme://host[:port], never with a path; an
 * entry with a trailing slash would silently never match. */
static int check_origin(struct problem *p, const char *origin)
{
    const char *rest;

    if (strcmp(origin, "*") == 0) {
        return 0;
    }
    if (strncmp(origin, "https://", 8) == 0) {
        rest = origin + 8;
    } else if (strncmp(origin, "http://", 7) == 0) {
        rest = origin + 7;
    } else {
        return report(p, "\"%s\" must be \"*\" or scheme://host[:port]", origin);
    }
    if (rest[0] == '\0' || strchr(rest, '/') != NULL) {
        return report(p, "\"%s\" must be scheme://host[:port], without a path or trailing '/'",
                      origin);
    }
    return 0;
}

static int validate_http(const ct_config *cfg, struct problem *p)
{
    for (size_t i = 0; i < cfg->http_cors_origin_count; i++) {
        set_path(p, "http.cors.allowed_origins[%zu]", i);
        if (check_origin(p, cfg->http_cors_origins[i]) != 0) {
            return -1;
        }
        if (strcmp(cfg->http_cors_origins[i], "*") == 0 && !cfg->allow_unauthenticated) {
            return report(p, "\"*\" is refused while authentication is on: "
                             "list the origins of your web app");
        }
    }
    return 0;
}

static int check_bounds(const ct_config *cfg, struct problem *p);

static int validate_into(const ct_config *cfg, struct problem *p)
{
    if (validate_listeners(cfg, p) != 0 || validate_app(cfg, p) != 0 || check_bounds(cfg, p) != 0 ||
        validate_tokens(cfg, p) != 0 || validate_tls(cfg, p) != 0 || validate_auth(cfg, p) != 0 ||
        validate_choices(cfg, p) != 0 || validate_directory(cfg, p) != 0 ||
        validate_http(cfg, p) != 0) {
        return -1;
    }
    return 0;
}

int ct_config_validate(const ct_config *cfg, char *err, size_t errlen)
{
    struct problem p;

    memset(&p, 0, sizeof(p));
    if (validate_into(cfg, &p) != 0) {
        snprintf(err, errlen, "%s: %s", p.path, p.message);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The loader: state, positions, errors                                 */

/* Where the value at a key path came from. */
struct origin {
    char path[KEY_PATH_MAX];
    size_t line, column; /* 1-based, in the file */
    const char *env;     /* the environment variable, when it came from there */
};

struct loader {
    yaml_parser_t parser;
    yaml_event_t event; /* the current event */
    int has_event;
    int depth;
    const char *file;
    const char *text;
    size_t text_len;
    ct_config *cfg;
    char path[KEY_PATH_MAX]; /* of the value being parsed: "auth.api_keys[2].methods" */
    size_t path_len;
    struct origin *origins;
    size_t origin_count;
    size_t origin_cap;
    char *err;
    size_t errlen;
};

/* Writes "FILE:LINE:COLUMN: KEY.PATH: message" (no path at the top). */
static int put_error(struct loader *ld, size_t line, size_t column, const char *path,
                     const char *message)
{
    if (path[0] != '\0') {
        snprintf(ld->err, ld->errlen, "%s:%zu:%zu: %s: %s", ld->file, line, column, path, message);
    } else {
        snprintf(ld->err, ld->errlen, "%s:%zu:%zu: %s", ld->file, line, column, message);
    }
    return -1;
}

__attribute__((format(printf, 5, 0))) static int vfail_at(struct loader *ld, size_t line,
                                                          size_t column, const char *path,
                                                          const char *fmt, va_list ap)
{
    char message[MESSAGE_MAX];

    vsnprintf(message, sizeof(message), fmt, ap);
    return put_error(ld, line, column, path, message);
}

/* An error at a libyaml mark (0-based) about the current key path. */
__attribute__((format(printf, 3, 4))) static int fail_at(struct loader *ld, yaml_mark_t mark,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail_at(ld, mark.line + 1, mark.column + 1, ld->path, fmt, ap);
    va_end(ap);
    return -1;
}

/* An error about the current event's value. */
__attribute__((format(printf, 2, 3))) static int fail(struct loader *ld, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail_at(ld, ld->event.start_mark.line + 1, ld->event.start_mark.column + 1, ld->path, fmt, ap);
    va_end(ap);
    return -1;
}

static const struct origin *find_origin(const struct loader *ld, const char *path, size_t len)
{
    for (size_t i = ld->origin_count; i > 0; i--) {
        const struct origin *o = &ld->origins[i - 1];
        if (strlen(o->path) == len && strncmp(o->path, path, len) == 0) {
            return o;
        }
    }
    return NULL;
}

/* An error about a key path found after parsing: located at that key, or at
 * the nearest enclosing key present in the file (a required key that is
 * missing is reported where its section starts). */
__attribute__((format(printf, 3, 4))) static int fail_at_path(struct loader *ld, const char *path,
                                                              const char *fmt, ...)
{
    const struct origin *o = NULL;
    size_t len = strlen(path);
    char message[MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    for (;;) {
        o = find_origin(ld, path, len);
        if (o != NULL || len == 0) {
            break;
        }
        while (len > 0 && path[len - 1] != '.' && path[len - 1] != '[') {
            len--;
        }
        if (len > 0) {
            len--;
        }
    }
    if (o != NULL && o->env != NULL) {
        snprintf(ld->err, ld->errlen, "%s: %s: %s", o->env, path, message);
        return -1;
    }
    if (o != NULL) {
        return put_error(ld, o->line, o->column, path, message);
    }
    return put_error(ld, 1, 1, path, message);
}

static int remember_at(struct loader *ld, const char *path, size_t line, size_t column,
                       const char *env)
{
    struct origin *o;

    if (ld->origin_count == ld->origin_cap) {
        size_t cap = ld->origin_cap == 0 ? 64 : ld->origin_cap * 2;
        struct origin *grown = realloc(ld->origins, cap * sizeof(*grown));
        if (grown == NULL) {
            snprintf(ld->err, ld->errlen, "%s: out of memory", ld->file);
            return -1;
        }
        ld->origins = grown;
        ld->origin_cap = cap;
    }
    o = &ld->origins[ld->origin_count++];
    snprintf(o->path, sizeof(o->path), "%s", path);
    o->line = line;
    o->column = column;
    o->env = env;
    return 0;
}

/* Remembers that the value at the current path starts at the current event. */
static int remember(struct loader *ld)
{
    return remember_at(ld, ld->path, ld->event.start_mark.line + 1, ld->event.start_mark.column + 1,
                       NULL);
}

/* Keys are echoed into messages, so an absurdly long one is cut short. */
static void push_key(struct loader *ld, const char *key, size_t *saved)
{
    *saved = ld->path_len;
    snprintf(ld->path + ld->path_len, sizeof(ld->path) - ld->path_len, "%s%.64s",
             ld->path_len > 0 ? "." : "", key);
    ld->path_len = strlen(ld->path);
}

static void push_index(struct loader *ld, size_t index, size_t *saved)
{
    *saved = ld->path_len;
    snprintf(ld->path + ld->path_len, sizeof(ld->path) - ld->path_len, "[%zu]", index);
    ld->path_len = strlen(ld->path);
}

static void pop_path(struct loader *ld, size_t saved)
{
    ld->path_len = saved;
    ld->path[saved] = '\0';
}

/* ------------------------------------------------------------------ */
/* The event stream                                                     */

/* Scalars may be secrets: wipe each one before libyaml frees it. */
static void release_event(struct loader *ld)
{
    if (!ld->has_event) {
        return;
    }
    if (ld->event.type == YAML_SCALAR_EVENT && ld->event.data.scalar.value != NULL) {
        OPENSSL_cleanse(ld->event.data.scalar.value, ld->event.data.scalar.length);
    }
    yaml_event_delete(&ld->event);
    ld->has_event = 0;
}

/* libyaml's reader reports a byte offset, not a mark: count it out. */
static yaml_mark_t mark_of_offset(const struct loader *ld, size_t offset)
{
    yaml_mark_t mark = {0, 0, 0};

    for (size_t i = 0; i < offset && i < ld->text_len; i++) {
        if (ld->text[i] == '\n') {
            mark.line++;
            mark.column = 0;
        } else {
            mark.column++;
        }
    }
    mark.index = offset;
    return mark;
}

static int fail_syntax(struct loader *ld)
{
    const yaml_parser_t *p = &ld->parser;
    const char *problem = p->problem != NULL ? p->problem : "cannot parse";

    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(ld->err, ld->errlen, "%s: out of memory", ld->file);
        return -1;
    }
    if (p->error == YAML_READER_ERROR) {
        return fail_at(ld, mark_of_offset(ld, p->problem_offset), "YAML: %s", problem);
    }
    if (p->context != NULL) {
        return fail_at(ld, p->problem_mark, "YAML syntax error: %s (%s at line %zu, column %zu)",
                       problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    }
    return fail_at(ld, p->problem_mark, "YAML syntax error: %s", problem);
}

/* The config is small and flat: anchors, aliases and tags only add ways
 * to blow up or obscure it (alias bombs), so they are refused. */
static int check_event(struct loader *ld)
{
    const yaml_event_t *e = &ld->event;
    const yaml_char_t *anchor = NULL;
    const yaml_char_t *tag = NULL;

    switch (e->type) {
    case YAML_ALIAS_EVENT:
        return fail(ld, "aliases (*%.40s) are not allowed: write the value out",
                    (const char *)e->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        anchor = e->data.scalar.anchor;
        tag = e->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = e->data.sequence_start.anchor;
        tag = e->data.sequence_start.tag;
        ld->depth++;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = e->data.mapping_start.anchor;
        tag = e->data.mapping_start.tag;
        ld->depth++;
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        ld->depth--;
        break;
    default:
        break;
    }
    if (anchor != NULL) {
        return fail(ld, "anchors (&%.40s) are not allowed: write each value out",
                    (const char *)anchor);
    }
    if (tag != NULL) {
        return fail(ld, "tags (%.40s) are not allowed", (const char *)tag);
    }
    if (ld->depth > CT_CONFIG_MAX_DEPTH) {
        return fail(ld, "nested deeper than %d levels", CT_CONFIG_MAX_DEPTH);
    }
    return 0;
}

static int next_event(struct loader *ld)
{
    release_event(ld);
    if (!yaml_parser_parse(&ld->parser, &ld->event)) {
        return fail_syntax(ld);
    }
    ld->has_event = 1;
    return check_event(ld);
}

/* ------------------------------------------------------------------ */
/* Scalars                                                              */

static const char *describe(const yaml_event_t *e)
{
    switch (e->type) {
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_SCALAR_EVENT:
        return "a single value";
    default:
        return "nothing";
    }
}

static const char *scalar_text(const struct loader *ld)
{
    return (const char *)ld->event.data.scalar.value;
}

static int is_plain(const yaml_event_t *e)
{
    return e->type == YAML_SCALAR_EVENT && e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A key written with no value (or ~, null) keeps its default. */
static int is_null(const yaml_event_t *e)
{
    const char *s = (const char *)e->data.scalar.value;
    return is_plain(e) && (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
                           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0);
}

/* 1 when the current scalar holds no NUL byte before its end. */
static int has_no_nul(const struct loader *ld)
{
    return strlen(scalar_text(ld)) == ld->event.data.scalar.length;
}

/* Lengths only in the messages: the string may be a secret. */
static int parse_string(struct loader *ld, char *out, size_t size)
{
    size_t len;

    if (ld->event.type != YAML_SCALAR_EVENT) {
        return fail(ld, "expected a string, got %s", describe(&ld->event));
    }
    if (is_null(&ld->event)) {
        return fail(ld, "expected a string, got nothing");
    }
    len = ld->event.data.scalar.length;
    if (!has_no_nul(ld)) {
        return fail(ld, "must not contain a NUL character");
    }
    if (len >= size) {
        return fail(ld, "must be at most %zu characters, got %zu", size - 1, len);
    }
    memcpy(out, scalar_text(ld), len + 1);
    return 0;
}

/* Decimal only, as written: no sign, no leading zeros (YAML 1.1 would read
 * 010 as octal), no 0x, no 1_000, no quotes. */
static int parse_u32(struct loader *ld, uint32_t *out)
{
    const char *s;
    size_t len;
    uint64_t value = 0;

    if (ld->event.type != YAML_SCALAR_EVENT) {
        return fail(ld, "expected an integer, got %s", describe(&ld->event));
    }
    s = scalar_text(ld);
    if (!is_plain(&ld->event)) {
        return fail(ld, "expected an integer, got a quoted string");
    }
    len = ld->event.data.scalar.length;
    if (s[0] == '-') {
        return fail(ld, "must not be negative, got %.40s", s);
    }
    if (len == 0 || strspn(s, "0123456789") != len || (len > 1 && s[0] == '0')) {
        return fail(ld, "expected a decimal integer, got \"%.40s\"", s);
    }
    for (size_t i = 0; i < len; i++) {
        value = value * 10 + (uint64_t)(s[i] - '0');
        if (value > UINT32_MAX) {
            return fail(ld, "must be at most %u, got %.40s", (unsigned)UINT32_MAX, s);
        }
    }
    *out = (uint32_t)value;
    return 0;
}

static int parse_bool(struct loader *ld, int *out)
{
    if (ld->event.type != YAML_SCALAR_EVENT) {
        return fail(ld, "expected true or false, got %s", describe(&ld->event));
    }
    if (is_plain(&ld->event) && strcmp(scalar_text(ld), "true") == 0) {
        *out = 1;
        return 0;
    }
    if (is_plain(&ld->event) && strcmp(scalar_text(ld), "false") == 0) {
        *out = 0;
        return 0;
    }
    return fail(ld, "expected true or false, got \"%.40s\"", scalar_text(ld));
}

/* Picks one of names[] (plain scalar); its index goes to out. */
static int parse_choice(struct loader *ld, const char *const *names, size_t count,
                        const char *valid, size_t *out)
{
    if (ld->event.type != YAML_SCALAR_EVENT) {
        return fail(ld, "expected one of %s, got %s", valid, describe(&ld->event));
    }
    for (size_t i = 0; i < count && has_no_nul(ld); i++) {
        if (strcmp(scalar_text(ld), names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return fail(ld, "expected one of %s, got \"%.40s\"", valid, scalar_text(ld));
}

static int parse_methods(struct loader *ld, unsigned *out)
{
    unsigned methods = 0;
    size_t index = 0;
    size_t saved;

    if (ld->event.type != YAML_SEQUENCE_START_EVENT) {
        return fail(ld, "expected a list of methods, got %s", describe(&ld->event));
    }
    for (;;) {
        enum ct_method method;
        unsigned bit;
        if (next_event(ld) != 0) {
            return -1;
        }
        if (ld->event.type == YAML_SEQUENCE_END_EVENT) {
            break;
        }
        push_index(ld, index++, &saved);
        if (ld->event.type != YAML_SCALAR_EVENT) {
            return fail(ld, "expected a method name, got %s", describe(&ld->event));
        }
        method = has_no_nul(ld) ? ct_method_from_name(scalar_text(ld)) : CT_METHOD_UNKNOWN;
        if (method == CT_METHOD_UNKNOWN) {
            return fail(ld,
                        "unknown method \"%.40s\" (valid: GetAppToken, GetUserToken, RenewToken, "
                        "GetRtcToken, GetRtmToken)",
                        scalar_text(ld));
        }
        bit = CT_METHOD_BIT(method);
        if ((methods & bit) != 0) {
            return fail(ld, "%s is listed twice", ct_method_name(method));
        }
        methods |= bit;
        pop_path(ld, saved);
    }
    *out = methods;
    return 0;
}

/* ------------------------------------------------------------------ */
/* The schema: one table of keys per section                            */

enum field_kind {
    FIELD_STRING,
    FIELD_U32,
    FIELD_UNSIGNED,
    FIELD_BOOL,
    FIELD_CHOICE,
    FIELD_METHODS,
    FIELD_STRING_LIST,
    FIELD_SECTION,
    FIELD_CUSTOM,
};

struct section;

/* Whether a reload (SIGHUP, a file change) may change a key. */
enum field_reload {
    RELOADS = 0,
    RESTART,        /* any change needs a restart */
    RESTART_ON_OFF, /* the value may change, but not from empty to set or back (tls.*) */
};

/* One key: how it parses, its default, its bounds, whether it is secret
 * (masked by the printer) and its line in the README's reference. The
 * defaults, the per-key range checks, the --check-config printer and the
 * reference are all walks over these rows. */
struct field {
    const char *key;
    enum field_kind kind;
    size_t offset;                 /* in the struct the section fills */
    size_t size;                   /* FIELD_STRING: the buffer; FIELD_STRING_LIST: one slot */
    const struct section *section; /* FIELD_SECTION, or a custom one's keys */
    int (*parse)(struct loader *ld, void *base);                        /* FIELD_CUSTOM */
    void (*print)(const ct_config *cfg, FILE *out, const char *indent); /* NULL: by kind */
    const char *const *names;                                           /* FIELD_CHOICE */
    size_t name_count;
    size_t count_offset; /* FIELD_STRING_LIST: the size_t count */
    size_t max_count;
    int single_ok;        /* FIELD_STRING_LIST: a single string is a list of one */
    uint32_t def;         /* numbers, bools, choices */
    const char *def_text; /* strings */
    uint32_t min, max;    /* numbers, checked after loading when max > 0 */
    const char *range_note;
    int secret;
    enum field_reload restart; /* what a reload may do with it (ct_config_restart_needed) */
    const char *def_doc;       /* the reference's default column; NULL: from def / def_text */
    const char *doc;           /* the reference's meaning column; NULL: not listed */
};

struct section {
    const struct field *fields;
    size_t count;
};

#define SECTION_OF(fields)                                                                         \
    {                                                                                              \
        fields, sizeof(fields) / sizeof(fields[0])                                                 \
    }
#define MEMBER(type, member) .offset = offsetof(type, member)
#define STRING_FIELD(k, type, member, ...)                                                         \
    {                                                                                              \
        .key = k, .kind = FIELD_STRING, MEMBER(type, member), .size = sizeof(((type *)0)->member), \
        __VA_ARGS__                                                                                \
    }
#define U32_FIELD(k, member, ...)                                                                  \
    {                                                                                              \
        .key = k, .kind = FIELD_U32, MEMBER(ct_config, member), __VA_ARGS__                        \
    }
#define BOOL_FIELD(k, member, ...)                                                                 \
    {                                                                                              \
        .key = k, .kind = FIELD_BOOL, MEMBER(ct_config, member), __VA_ARGS__                       \
    }
#define CHOICE_FIELD(k, member, choices, ...)                                                      \
    {                                                                                              \
        .key = k, .kind = FIELD_CHOICE, MEMBER(ct_config, member), .names = choices,               \
        .name_count = sizeof(choices) / sizeof(choices[0]), __VA_ARGS__                            \
    }
#define METHODS_FIELD(k, type, member)                                                             \
    {                                                                                              \
        .key = k, .kind = FIELD_METHODS, MEMBER(type, member)                                      \
    }
/* a list of strings in a struct of type (the config, or an auth.jwt entry) */
#define LIST_FIELD_IN(type, k, member, count, ...)                                                 \
    {                                                                                              \
        .key = k, .kind = FIELD_STRING_LIST, MEMBER(type, member),                                 \
        .size = sizeof(((type *)0)->member[0]), .count_offset = offsetof(type, count),             \
        .max_count = sizeof(((type *)0)->member) / sizeof(((type *)0)->member[0]), __VA_ARGS__     \
    }
#define LIST_FIELD(...) LIST_FIELD_IN(ct_config, __VA_ARGS__)
#define SECTION_FIELD(k, sec)                                                                      \
    {                                                                                              \
        .key = k, .kind = FIELD_SECTION, .section = &sec                                           \
    }
#define CUSTOM_FIELD(k, fn, ...)                                                                   \
    {                                                                                              \
        .key = k, .kind = FIELD_CUSTOM, .parse = fn, __VA_ARGS__                                   \
    }

static int parse_mapping(struct loader *ld, const struct section *sec, void *base, unsigned *given);
static int parse_string_list(struct loader *ld, char *first, size_t slot, size_t max, size_t *count,
                             int single_ok);

static size_t find_field(const struct section *sec, const struct loader *ld)
{
    for (size_t i = 0; i < sec->count; i++) {
        if (has_no_nul(ld) && strcmp(scalar_text(ld), sec->fields[i].key) == 0) {
            return i;
        }
    }
    return sec->count;
}

static unsigned field_bit(const struct section *sec, const char *key)
{
    for (size_t i = 0; i < sec->count; i++) {
        if (strcmp(sec->fields[i].key, key) == 0) {
            return 1u << i;
        }
    }
    return 0;
}

static int fail_unknown_key(struct loader *ld, const struct section *sec)
{
    char valid[MESSAGE_MAX / 2] = "";
    size_t used = 0;

    for (size_t i = 0; i < sec->count && used < sizeof(valid); i++) {
        int n = snprintf(valid + used, sizeof(valid) - used, "%s%s", i > 0 ? ", " : "",
                         sec->fields[i].key);
        used += n > 0 ? (size_t)n : 0;
    }
    return fail(ld, "unknown key (valid here: %s)", valid);
}

/* "a, b, c" of a choice's names, for messages. */
static void join_names(const struct field *field, char *out, size_t outlen)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < field->name_count && used < outlen; i++) {
        int n = snprintf(out + used, outlen - used, "%s%s", i > 0 ? ", " : "", field->names[i]);
        used += n > 0 ? (size_t)n : 0;
    }
}

static int parse_value(struct loader *ld, const struct field *field, void *base)
{
    char *target = (char *)base + field->offset;
    uint32_t value;

    switch (field->kind) {
    case FIELD_STRING:
        return parse_string(ld, target, field->size);
    case FIELD_U32:
        return parse_u32(ld, (uint32_t *)(void *)target);
    case FIELD_UNSIGNED:
        if (parse_u32(ld, &value) != 0) {
            return -1;
        }
        *(unsigned *)(void *)target = value;
        return 0;
    case FIELD_BOOL:
        return parse_bool(ld, (int *)(void *)target);
    case FIELD_CHOICE: {
        char valid[128];
        size_t index = 0;
        join_names(field, valid, sizeof(valid));
        if (parse_choice(ld, field->names, field->name_count, valid, &index) != 0) {
            return -1;
        }
        *(unsigned *)(void *)target = (unsigned)index;
        return 0;
    }
    case FIELD_STRING_LIST:
        return parse_string_list(ld, target, field->size, field->max_count,
                                 (size_t *)(void *)((char *)base + field->count_offset),
                                 field->single_ok);
    case FIELD_METHODS:
        return parse_methods(ld, (unsigned *)(void *)target);
    case FIELD_SECTION:
        return parse_mapping(ld, field->section, base, NULL);
    case FIELD_CUSTOM:
        return field->parse(ld, base);
    }
    return fail(ld, "internal error: unknown field kind");
}

/* One "key: value" of a mapping; the current event is the key. seen and
 * set collect field bits: seen for duplicates, set for keys given a value
 * (a key with a null value keeps its default). */
static int parse_entry(struct loader *ld, const struct section *sec, void *base, unsigned *seen,
                       unsigned *set, size_t *first_line)
{
    size_t index;
    size_t saved;

    if (ld->event.type != YAML_SCALAR_EVENT) {
        return fail(ld, "keys must be plain names, got %s", describe(&ld->event));
    }
    index = find_field(sec, ld);
    push_key(ld, scalar_text(ld), &saved);
    if (index == sec->count) {
        return fail_unknown_key(ld, sec);
    }
    if ((*seen & (1u << index)) != 0) {
        return fail(ld, "duplicate key (first given at line %zu)", first_line[index]);
    }
    *seen |= 1u << index;
    first_line[index] = ld->event.start_mark.line + 1;
    if (next_event(ld) != 0 || remember(ld) != 0) {
        return -1;
    }
    if (ld->event.type != YAML_SCALAR_EVENT || !is_null(&ld->event)) {
        if (parse_value(ld, &sec->fields[index], base) != 0) {
            return -1;
        }
        *set |= 1u << index;
    }
    pop_path(ld, saved);
    return 0;
}

static int parse_mapping(struct loader *ld, const struct section *sec, void *base, unsigned *given)
{
    size_t first_line[32] = {0};
    unsigned seen = 0;
    unsigned set = 0;

    if (ld->event.type != YAML_MAPPING_START_EVENT) {
        return fail(ld, "expected a mapping of keys, got %s", describe(&ld->event));
    }
    for (;;) {
        if (next_event(ld) != 0) {
            return -1;
        }
        if (ld->event.type == YAML_MAPPING_END_EVENT) {
            break;
        }
        if (parse_entry(ld, sec, base, &seen, &set, first_line) != 0) {
            return -1;
        }
    }
    if (given != NULL) {
        *given = set;
    }
    return 0;
}

/* Moves to the next item of a list: 1 with its index pushed on the path, 0
 * at the end of the list, -1 on an error (also: more than max items). */
static int next_item(struct loader *ld, size_t index, size_t max, size_t *saved)
{
    if (next_event(ld) != 0) {
        return -1;
    }
    if (ld->event.type == YAML_SEQUENCE_END_EVENT) {
        return 0;
    }
    if (index == max) {
        return fail(ld, "at most %zu entries are allowed", max);
    }
    push_index(ld, index, saved);
    return 1;
}

/* One item of a list, at item (slot bytes); the path points at it. */
typedef int (*item_parser)(struct loader *ld, char *item, size_t slot, const void *arg);

/* The items of a list (the current event starts it) into fixed slots. */
static int parse_list(struct loader *ld, char *first, size_t slot, size_t max, size_t *count,
                      item_parser parse_item, const void *arg)
{
    size_t index = 0;
    size_t saved = 0;
    int rc;

    for (rc = next_item(ld, index, max, &saved); rc == 1; rc = next_item(ld, index, max, &saved)) {
        if (remember(ld) != 0 || parse_item(ld, first + index * slot, slot, arg) != 0) {
            return -1;
        }
        pop_path(ld, saved);
        index++;
    }
    if (rc != 0) {
        return -1;
    }
    *count = index;
    return 0;
}

static int parse_string_item(struct loader *ld, char *item, size_t slot, const void *arg)
{
    (void)arg;
    return parse_string(ld, item, slot);
}

/* A list of strings into fixed slots; listen also takes a single string.
 * Too many entries is an error, never a silent cut. */
static int parse_string_list(struct loader *ld, char *first, size_t slot, size_t max, size_t *count,
                             int single_ok)
{
    if (single_ok && ld->event.type == YAML_SCALAR_EVENT) {
        *count = 1;
        return parse_string(ld, first, slot);
    }
    if (ld->event.type != YAML_SEQUENCE_START_EVENT) {
        return fail(ld, "expected a list%s, got %s", single_ok ? " or a string" : "",
                    describe(&ld->event));
    }
    return parse_list(ld, first, slot, max, count, parse_string_item, NULL);
}

/* A list of mappings into fixed slots; check (may be NULL) sees each item
 * with the bits of the keys it set, the path pointing at the item. */
typedef int (*item_check)(struct loader *ld, void *item, unsigned set, yaml_mark_t mark);

struct item_rules {
    const struct section *sec;
    item_check check;
};

static int parse_mapping_item(struct loader *ld, char *item, size_t slot, const void *arg)
{
    const struct item_rules *rules = arg;
    unsigned set = 0;
    yaml_mark_t mark = ld->event.start_mark;

    memset(item, 0, slot);
    if (parse_mapping(ld, rules->sec, item, &set) != 0) {
        return -1;
    }
    return rules->check != NULL ? rules->check(ld, item, set, mark) : 0;
}

static int parse_item_list(struct loader *ld, const struct section *sec, char *first, size_t slot,
                           size_t max, size_t *count, item_check check)
{
    const struct item_rules rules = {sec, check};

    if (ld->event.type != YAML_SEQUENCE_START_EVENT) {
        return fail(ld, "expected a list, got %s", describe(&ld->event));
    }
    return parse_list(ld, first, slot, max, count, parse_mapping_item, &rules);
}

/* ------------------------------------------------------------------ */
/* Custom keys                                                          */

static const char *const identity_names[] = {"username", "uuid"};
static const char *const log_level_names[] = {"debug", "info", "warn", "error"};
static const char *const reflection_names[] = {"public", "authenticated", "off"};

static int parse_sha256(struct loader *ld, void *base)
{
    ct_api_key *key = base;
    const char *s;

    if (ld->event.type != YAML_SCALAR_EVENT) {
        return fail(ld, "expected a string, got %s", describe(&ld->event));
    }
    s = scalar_text(ld);
    if (ld->event.data.scalar.length != 64 || !is_hex(s, 64)) {
        return fail(ld, "must be 64 hex characters (the SHA-256 of the key), got %zu characters%s",
                    ld->event.data.scalar.length,
                    ld->event.data.scalar.length == 64 ? ", not all hex" : "");
    }
    for (size_t i = 0; i < 32; i++) {
        key->sha256[i] = (uint8_t)(ct_hex_digit(s[2 * i]) << 4 | ct_hex_digit(s[2 * i + 1]));
    }
    return 0;
}

/* The key itself never stays in memory: it is hashed and wiped at once. */
static int parse_key_file(struct loader *ld, void *base)
{
    ct_api_key *key = base;
    char secret[SECRET_READ_MAX];
    char why[MESSAGE_MAX];
    int ok;

    if (parse_string(ld, key->key_file, sizeof(key->key_file)) != 0) {
        return -1;
    }
    if (ct_secret_read_file(key->key_file, secret, sizeof(secret), why, sizeof(why)) != 0) {
        return fail(ld, "%s", why);
    }
    ok = EVP_Digest(secret, strlen(secret), key->sha256, NULL, EVP_sha256(), NULL);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (ok != 1) {
        return fail(ld, "cannot hash the key (OpenSSL SHA-256 failed)");
    }
    return 0;
}

static const struct field api_key_fields[] = {
    STRING_FIELD("name", ct_api_key, name),
    CUSTOM_FIELD("sha256", parse_sha256),
    CUSTOM_FIELD("key_file", parse_key_file),
    METHODS_FIELD("methods", ct_api_key, methods),
};
static const struct section api_key_section = SECTION_OF(api_key_fields);

static int check_api_key(struct loader *ld, void *item, unsigned set, yaml_mark_t mark)
{
    unsigned sha256 = field_bit(&api_key_section, "sha256");
    unsigned key_file = field_bit(&api_key_section, "key_file");

    (void)item;
    if ((set & sha256) != 0 && (set & key_file) != 0) {
        return fail_at(ld, mark, "give sha256 or key_file, not both");
    }
    if ((set & (sha256 | key_file)) == 0) {
        return fail_at(ld, mark, "give sha256 (hex SHA-256 of the key) or key_file");
    }
    return 0;
}

static int parse_api_keys(struct loader *ld, void *base)
{
    ct_config *cfg = base;
    return parse_item_list(ld, &api_key_section, (char *)cfg->api_keys, sizeof(cfg->api_keys[0]),
                           CT_CONFIG_MAX_API_KEYS, &cfg->api_key_count, check_api_key);
}

static const struct field mtls_client_fields[] = {
    STRING_FIELD("id", ct_mtls_client, id),
    METHODS_FIELD("methods", ct_mtls_client, methods),
};
static const struct section mtls_client_section = SECTION_OF(mtls_client_fields);

static int parse_mtls_clients(struct loader *ld, void *base)
{
    ct_config *cfg = base;
    return parse_item_list(ld, &mtls_client_section, (char *)cfg->mtls_clients,
                           sizeof(cfg->mtls_clients[0]), CT_CONFIG_MAX_MTLS_CLIENTS,
                           &cfg->mtls_client_count, NULL);
}

/* subjects: {id, methods}, the keys of an mTLS client */
static int parse_jwt_subjects(struct loader *ld, void *base)
{
    ct_jwt_issuer *j = base;
    return parse_item_list(ld, &mtls_client_section, (char *)j->subjects, sizeof(j->subjects[0]),
                           CT_CONFIG_MAX_JWT_SUBJECTS, &j->subject_count, NULL);
}

static const char *const jwt_role_names[] = {"end_user", "workload"};

#define JWT_LIST_FIELD(...) LIST_FIELD_IN(ct_jwt_issuer, __VA_ARGS__)

/* The rows of one auth.jwt entry; their docs are the reference's
 * auth.jwt[].KEY lines. Defaults are set by check_jwt (an item starts
 * zeroed). */
static const struct field jwt_fields[] = {
    STRING_FIELD("name", ct_jwt_issuer, name, .def_doc = "(required)",
                 .doc = "the caller's name in logs and metrics"),
    STRING_FIELD("issuer", ct_jwt_issuer, issuer, .def_doc = "(required)",
                 .doc = "must equal the `iss` claim"),
    JWT_LIST_FIELD("audiences", audiences, audience_count, .def_doc = "(required)",
                   .doc = "the `aud` claim must hold one of them"),
    STRING_FIELD("jwks_file", ct_jwt_issuer, jwks_file, .def_doc = "(this or the URL)",
                 .doc = "a JWKS file, re-read when it changes (a Kubernetes volume's `..data` "
                        "symlink swap too)"),
    STRING_FIELD("jwks_url", ct_jwt_issuer, jwks_url, .def_doc = "(or this)",
                 .doc = "a JWKS URL (`https://`; `http://` only to loopback), cached for its "
                        "`Cache-Control: max-age` within 60 s..24 h, fetched again at most every "
                        "30 s for an unknown `kid`, served stale up to 24 h"),
    JWT_LIST_FIELD("algorithms", algorithms, algorithm_count, .def_doc = "`[RS256, ES256]`",
                   .doc = "the `alg`s accepted: `RS256` (RSA keys of 2048+ bits), `ES256` (P-256); "
                          "`none` and `HS*` are refused"),
    {.key = "leeway_seconds",
     .kind = FIELD_U32,
     MEMBER(ct_jwt_issuer, leeway_seconds),
     .def = 30,
     .doc = "clock skew allowed on `exp`, `nbf` and `iat` (0..300)"},
    {.key = "role",
     .kind = FIELD_CHOICE,
     MEMBER(ct_jwt_issuer, role),
     .names = jwt_role_names,
     .name_count = 2,
     .def = CT_JWT_ROLE_END_USER,
     .doc = "`end_user`: tokens only for the user the token names; `workload`: a backend, "
            "methods per subject"},
    STRING_FIELD("username_claim", ct_jwt_issuer, username_claim, .def_text = "sub",
                 .doc = "end_user: the claim holding the Chat username"),
    {.key = "methods",
     .kind = FIELD_METHODS,
     MEMBER(ct_jwt_issuer, methods),
     .def_doc = "(required for end_user)",
     .doc = "end_user: a subset of `GetUserToken`, `RenewToken`, `GetRtcToken`, `GetRtmToken`"},
    STRING_FIELD("rtc_channel_prefix", ct_jwt_issuer, rtc_channel_prefix, .def_doc = "`\"\"` (any)",
                 .doc = "end_user: RTC tokens only for channels starting with it"),
    CUSTOM_FIELD("subjects", parse_jwt_subjects, .section = &mtls_client_section, .def_doc = "`[]`",
                 .doc = "workload: `{id, methods}`; `id` must equal the `sub` claim"),
};
static const struct section jwt_section = SECTION_OF(jwt_fields);

/* An item starts zeroed: the rows' defaults for the keys not given. */
static int check_jwt(struct loader *ld, void *item, unsigned set, yaml_mark_t mark)
{
    ct_jwt_issuer *j = item;

    (void)ld;
    (void)mark;
    if ((set & field_bit(&jwt_section, "leeway_seconds")) == 0) {
        j->leeway_seconds = 30;
    }
    if ((set & field_bit(&jwt_section, "username_claim")) == 0) {
        snprintf(j->username_claim, sizeof(j->username_claim), "sub");
    }
    return 0;
}

static int parse_jwt(struct loader *ld, void *base)
{
    ct_config *cfg = base;
    return parse_item_list(ld, &jwt_section, (char *)cfg->jwt, sizeof(cfg->jwt[0]),
                           CT_CONFIG_MAX_JWT, &cfg->jwt_count, check_jwt);
}

static void print_certificate(const ct_config *cfg, FILE *out, const char *indent);
static void print_jwt(const ct_config *cfg, FILE *out, const char *indent);
static void print_nothing(const ct_config *cfg, FILE *out, const char *indent);
static void print_api_keys(const ct_config *cfg, FILE *out, const char *indent);
static void print_mtls_clients(const ct_config *cfg, FILE *out, const char *indent);

static const struct field app_fields[] = {
    STRING_FIELD("id", ct_config, app_id, .def_doc = "(required)", .restart = RESTART,
                 .doc = "the Agora app ID, 32 hex characters; env `CHAT_TOKEN_APP_ID` overrides"),
    STRING_FIELD("certificate", ct_config, app_certificate, .secret = 1, .print = print_certificate,
                 .def_doc = "(this or the file)",
                 .doc = "the app certificate (32 hex characters), inline; env "
                        "`CHAT_TOKEN_APP_CERTIFICATE` overrides"),
    STRING_FIELD("certificate_file", ct_config, app_certificate_file, .print = print_nothing,
                 .def_doc = "(or this)",
                 .doc = "a file holding the app certificate; env "
                        "`CHAT_TOKEN_APP_CERTIFICATE_FILE` overrides"),
    LIST_FIELD("previous_certificates", previous_certificates, previous_certificate_count,
               .secret = 1, .doc = "older certificates that RenewToken still accepts"),
    LIST_FIELD("previous_certificate_files", previous_certificate_files,
               previous_certificate_file_count,
               .doc = "files each holding an older certificate that RenewToken still accepts (with "
                      "`previous_certificates`, at most 8 in all)"),
    STRING_FIELD("key", ct_config, app_key, .restart = RESTART,
                 .doc = "the Chat app key `org#app`; required with `user_tokens.identity: uuid`"),
};
static const struct section app_section = SECTION_OF(app_fields);

static int parse_app(struct loader *ld, void *base)
{
    unsigned set = 0;
    unsigned both =
        field_bit(&app_section, "certificate") | field_bit(&app_section, "certificate_file");

    if (parse_mapping(ld, &app_section, base, &set) != 0) {
        return -1;
    }
    if ((set & both) == both) {
        return fail_at_path(ld, "app.certificate_file",
                            "give app.certificate or app.certificate_file, not both");
    }
    return 0;
}

static const struct field tokens_fields[] = {
    U32_FIELD("default_ttl_seconds", default_ttl_seconds, .def = 3600,
              .doc = "TTL when a request says 0"),
    U32_FIELD("max_ttl_seconds", max_ttl_seconds, .def = CT_CONFIG_MAX_TTL_SECONDS, .min = 1,
              .max = CT_CONFIG_MAX_TTL_SECONDS,
              .doc = "the largest TTL a request may ask for (at most 86400: Chat tokens live at "
                     "most 24 h)"),
    U32_FIELD("renew_grace_seconds", renew_grace_seconds, .def = 3600,
              .max = CT_CONFIG_MAX_TTL_SECONDS,
              .doc = "how long after expiry a token may still be renewed"),
};
static const struct section tokens_section = SECTION_OF(tokens_fields);

static const struct field user_tokens_fields[] = {
    CHOICE_FIELD("identity", identity, identity_names, .def = CT_IDENTITY_USERNAME,
                 .restart = RESTART,
                 .doc = "what user tokens carry: the normalised username, or the user's Chat UUID "
                        "(`uuid`, looked up through the directory)"),
};
static const struct section user_tokens_section = SECTION_OF(user_tokens_fields);

static const struct field auth_fields[] = {
    BOOL_FIELD("allow_unauthenticated", allow_unauthenticated,
               .doc = "callers without credentials may call everything; refused at start unless "
                      "every listener is loopback or a unix socket"),
    CUSTOM_FIELD("api_keys", parse_api_keys, .section = &api_key_section, .print = print_api_keys,
                 .secret = 1, .def_doc = "`[]`",
                 .doc = "`name`, `sha256` (hex SHA-256 of the key) or `key_file`, `methods`"),
    CUSTOM_FIELD("mtls_clients", parse_mtls_clients, .section = &mtls_client_section,
                 .print = print_mtls_clients, .def_doc = "`[]`",
                 .doc = "`id`, `methods`: an `id` with a URI scheme (a SPIFFE ID, `https://...`) "
                        "matches a URI SAN of the verified client certificate, any other `id` a "
                        "DNS SAN; email and IP addresses are refused (see the security model)"),
    CUSTOM_FIELD("jwt", parse_jwt, .section = &jwt_section, .print = print_jwt, .def_doc = "`[]`",
                 .doc = "issuers of JWTs accepted as `Authorization: Bearer` (see [Authenticating "
                        "end users](#authenticating-end-users)); each entry's keys below"),
};
static const struct section auth_section = SECTION_OF(auth_fields);

static const struct field tls_fields[] = {
    STRING_FIELD("cert_file", ct_config, tls_cert_file, .restart = RESTART_ON_OFF,
                 .doc = "TLS for the `listen` addresses: the certificate chain (PEM)"),
    STRING_FIELD("key_file", ct_config, tls_key_file, .restart = RESTART_ON_OFF,
                 .doc = "its private key (PEM); goes with `tls.cert_file`"),
    STRING_FIELD("client_ca_file", ct_config, tls_client_ca_file, .restart = RESTART_ON_OFF,
                 .doc = "require and verify client certificates (mTLS)"),
};
static const struct section tls_section = SECTION_OF(tls_fields);

static const struct field log_fields[] = {
    CHOICE_FIELD("level", log_level, log_level_names, .def = CT_LOG_INFO,
                 .doc = "`debug`, `info` (one line per RPC), `warn`, `error`"),
};
static const struct section log_section = SECTION_OF(log_fields);

static const struct field shutdown_fields[] = {
    U32_FIELD("drain_seconds", drain_seconds, .def = 5,
              .doc = "after SIGTERM, how long health says NOT_SERVING while calls are still "
                     "served"),
    U32_FIELD("grace_seconds", grace_seconds, .def = 20, .min = 1, .max = UINT32_MAX,
              .doc = "then, how long in-flight calls may take before they are cancelled"),
};
static const struct section shutdown_section = SECTION_OF(shutdown_fields);

static const struct field cache_fields[] = {
    U32_FIELD("capacity", directory_cache_capacity, .def = 100000, .min = 1, .max = UINT32_MAX,
              .restart = RESTART, .doc = "UUIDs kept per pod"),
    U32_FIELD("ttl_seconds", directory_cache_ttl_seconds, .def = 86400, .min = 1, .max = UINT32_MAX,
              .doc = "how long a UUID is kept"),
    U32_FIELD("negative_ttl_seconds", directory_cache_negative_ttl_seconds, .def = 30,
              .doc = "how long \"no such user\" is kept (auto_register off)"),
};
static const struct section cache_section = SECTION_OF(cache_fields);

static const struct field directory_fields[] = {
    STRING_FIELD("base_url", ct_config, directory_base_url, .def_text = "https://a41.chat.agora.io",
                 .restart = RESTART,
                 .doc = "the Agora Chat REST API (uuid mode); `https://` in production, `http://` "
                        "allowed for tests"),
    BOOL_FIELD("auto_register", directory_auto_register, .def = 1,
               .doc = "register users the API does not know (with a random password), else "
                      "answer NOT_FOUND"),
    U32_FIELD("connect_timeout_ms", directory_connect_timeout_ms, .def = 1000, .min = 1,
              .max = UINT32_MAX, .doc = "TCP + TLS connect timeout per upstream request"),
    U32_FIELD("request_timeout_ms", directory_request_timeout_ms, .def = 3000, .min = 1,
              .max = UINT32_MAX,
              .doc = "whole-request timeout per attempt (never past the caller's deadline)"),
    U32_FIELD("retries", directory_retries, .def = 2, .max = DIRECTORY_MAX_RETRIES,
              .doc = "extra attempts on network errors, 5xx and 429 (exponential backoff with "
                     "jitter, `Retry-After` honoured); at most 10"),
    U32_FIELD("rate_limit_per_second", directory_rate_limit_per_second, .def = 100, .min = 1,
              .max = UINT32_MAX,
              .doc = "token bucket towards the API; requests beyond it wait, they do not fail"),
    SECTION_FIELD("cache", cache_section),
};
static const struct section directory_section = SECTION_OF(directory_fields);

static const struct field cors_fields[] = {
    LIST_FIELD("allowed_origins", http_cors_origins, http_cors_origin_count,
               .doc = "exact origins allowed cross-origin (`scheme://host[:port]`); `*` is refused "
                      "unless `auth.allow_unauthenticated`"),
};
static const struct section cors_section = SECTION_OF(cors_fields);

static const struct field http_fields[] = {
    STRING_FIELD("listen", ct_config, http_listen, .def_doc = "none (off)", .restart = RESTART,
                 .doc = "the HTTP side port: `host:port`"),
    BOOL_FIELD("compat_routes", http_compat_routes, .def = 1,
               .doc = "serve the seed's `GET /chat/app/token` and `GET /chat/user/{name}/token`"),
    BOOL_FIELD("agora_token_service_routes", http_agora_token_service_routes, .def = 0,
               .doc = "serve the routes and JSON shapes of agora-token-service, under the same "
                      "auth"),
    SECTION_FIELD("cors", cors_section),
    U32_FIELD("max_connections", http_max_connections, .def = 1024, .min = 1, .max = UINT32_MAX,
              .restart = RESTART, .doc = "concurrent HTTP connections"),
    U32_FIELD("request_timeout_seconds", http_request_timeout_seconds, .def = 10, .min = 1,
              .max = 3600, .restart = RESTART,
              .doc = "the time (1..3600 s) a connection has to deliver a complete request, from "
                     "connecting or from its previous answer; slower ones (slow headers or body, "
                     "idle keep-alive) are closed"),
    U32_FIELD("max_connections_per_ip", http_max_connections_per_ip, .def = 64, .min = 1,
              .max = UINT32_MAX, .restart = RESTART,
              .doc = "connections one client address may hold (unix sockets: no cap); behind a "
                     "proxy, ingress or mesh sidecar every connection has the proxy's address: set "
                     "it to `http.max_connections`"),
};
static const struct section http_section = SECTION_OF(http_fields);

static const struct field root_fields[] = {
    LIST_FIELD("listen", listen, listen_count, .single_ok = 1, .def_doc = "(required)",
               .restart = RESTART,
               .doc = "gRPC listeners: `host:port`, `[v6]:port` or `unix:/absolute/path`"),
    STRING_FIELD("health_listen", ct_config, health_listen, .restart = RESTART,
                 .doc = "a plaintext listener that serves only `grpc.health.v1` (Kubernetes "
                        "probes when the main port is mTLS)"),
    CUSTOM_FIELD("app", parse_app, .section = &app_section),
    SECTION_FIELD("tokens", tokens_section),
    SECTION_FIELD("user_tokens", user_tokens_section),
    SECTION_FIELD("auth", auth_section),
    SECTION_FIELD("tls", tls_section),
    {.key = "workers",
     .kind = FIELD_UNSIGNED,
     MEMBER(ct_config, workers),
     .max = CT_CONFIG_MAX_WORKERS,
     .range_note = " (0 = one per core)",
     .restart = RESTART,
     .doc = "worker threads (one completion queue each); 0 = one per core"},
    SECTION_FIELD("log", log_section),
    SECTION_FIELD("shutdown", shutdown_section),
    SECTION_FIELD("directory", directory_section),
    SECTION_FIELD("http", http_section),
    CHOICE_FIELD("reflection", reflection, reflection_names, .def = CT_REFLECTION_PUBLIC,
                 .doc = "who may call `grpc.reflection`: `public` (anyone, as grpcurl expects), "
                        "`authenticated` (callers with a known API key or client certificate, "
                        "whatever their `methods`; else UNAUTHENTICATED), `off` (UNIMPLEMENTED)"),
};
static const struct section root_section = SECTION_OF(root_fields);

/* ------------------------------------------------------------------ */
/* Walks over the table: defaults, bounds                               */

static void set_defaults(const struct section *sec, void *base)
{
    for (size_t i = 0; i < sec->count; i++) {
        const struct field *f = &sec->fields[i];
        char *target = (char *)base + f->offset;

        switch (f->kind) {
        case FIELD_U32:
            *(uint32_t *)(void *)target = f->def;
            break;
        case FIELD_UNSIGNED:
        case FIELD_CHOICE:
            *(unsigned *)(void *)target = f->def;
            break;
        case FIELD_BOOL:
            *(int *)(void *)target = (int)f->def;
            break;
        case FIELD_STRING:
            snprintf(target, f->size, "%s", f->def_text != NULL ? f->def_text : "");
            break;
        case FIELD_SECTION:
            set_defaults(f->section, base);
            break;
        case FIELD_CUSTOM:
            if (f->section != NULL && f->print == NULL) { /* a mapping parsed by hand (app) */
                set_defaults(f->section, base);
            }
            break;
        default:
            break;
        }
    }
}

void ct_config_defaults(ct_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    set_defaults(&root_section, cfg);
}

/* The bounds of every number that has them, in table order. */
static int check_section_bounds(const struct section *sec, const ct_config *cfg, const char *prefix,
                                struct problem *p)
{
    for (size_t i = 0; i < sec->count; i++) {
        const struct field *f = &sec->fields[i];
        const struct section *inner = f->kind == FIELD_SECTION ? f->section : NULL;
        uint32_t value;

        if (f->kind == FIELD_CUSTOM && f->print == NULL) {
            inner = f->section;
        }
        set_path(p, "%s%s%s", prefix, prefix[0] != '\0' ? "." : "", f->key);
        if (inner != NULL) {
            char path[KEY_PATH_MAX];
            snprintf(path, sizeof(path), "%s", p->path);
            if (check_section_bounds(inner, cfg, path, p) != 0) {
                return -1;
            }
            continue;
        }
        if (f->max == 0 || (f->kind != FIELD_U32 && f->kind != FIELD_UNSIGNED)) {
            continue;
        }
        memcpy(&value, (const char *)cfg + f->offset, sizeof(value));
        if (value >= f->min && value <= f->max) {
            continue;
        }
        if (f->max == UINT32_MAX) {
            return report(p, "must be at least %u, got %u", (unsigned)f->min, (unsigned)value);
        }
        return report(p, "must be %u..%u%s, got %u", (unsigned)f->min, (unsigned)f->max,
                      f->range_note != NULL ? f->range_note : "", (unsigned)value);
    }
    return 0;
}

static int check_bounds(const ct_config *cfg, struct problem *p)
{
    return check_section_bounds(&root_section, cfg, "", p);
}

static int parse_document(struct loader *ld)
{
    if (next_event(ld) != 0 || next_event(ld) != 0) { /* stream start, document start */
        return -1;
    }
    if (ld->event.type == YAML_STREAM_END_EVENT) {
        return fail(ld, "the document is empty");
    }
    if (next_event(ld) != 0) {
        return -1;
    }
    if (ld->event.type == YAML_SCALAR_EVENT && is_null(&ld->event)) {
        return fail(ld, "the document is empty");
    }
    if (ld->event.type != YAML_MAPPING_START_EVENT) {
        return fail(ld, "the document must be a mapping of keys (listen, app, auth, ...), got %s",
                    describe(&ld->event));
    }
    if (remember(ld) != 0 || parse_mapping(ld, &root_section, ld->cfg, NULL) != 0) {
        return -1;
    }
    if (next_event(ld) != 0 || next_event(ld) != 0) { /* document end, stream end */
        return -1;
    }
    if (ld->event.type != YAML_STREAM_END_EVENT) {
        return fail(ld, "only one YAML document is allowed");
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Environment overrides and certificate files                          */

/* Copies an environment value into a config field; errors name the
 * variable and give lengths only. */
static int take_env(struct loader *ld, const char *name, const char *path, const char *value,
                    char *out, size_t size)
{
    size_t len = strlen(value);

    if (remember_at(ld, path, 0, 0, name) != 0) {
        return -1;
    }
    if (len == 0) {
        return fail_at_path(ld, path, "%s is set but empty", name);
    }
    if (len >= size) {
        return fail_at_path(ld, path, "must be at most %zu characters, got %zu", size - 1, len);
    }
    memcpy(out, value, len + 1);
    return 0;
}

/* Reads cfg->app_certificate_file; errors are reported at path. */
static int read_certificate(struct loader *ld, const char *path)
{
    ct_config *cfg = ld->cfg;
    char secret[SECRET_READ_MAX];
    char why[MESSAGE_MAX];
    size_t len;

    if (ct_secret_read_file(cfg->app_certificate_file, secret, sizeof(secret), why, sizeof(why)) !=
        0) {
        return fail_at_path(ld, path, "%s", why);
    }
    len = strlen(secret);
    if (len >= sizeof(cfg->app_certificate)) {
        OPENSSL_cleanse(secret, sizeof(secret));
        return fail_at_path(ld, path, "%s holds %zu characters; a certificate is 32 hex characters",
                            cfg->app_certificate_file, len);
    }
    memcpy(cfg->app_certificate, secret, len + 1);
    OPENSSL_cleanse(secret, sizeof(secret));
    return 0;
}

/* The certificate's file position, for later rules about app.certificate. */
static int point_certificate_at_file(struct loader *ld)
{
    const char *path = "app.certificate_file";
    const struct origin *o = find_origin(ld, path, strlen(path));
    size_t line = o != NULL ? o->line : 1;
    size_t column = o != NULL ? o->column : 1;
    return remember_at(ld, "app.certificate", line, column, NULL);
}

/* The overrides as ct_config_capture_env took them: the certificate is
 * scrubbed from the environment at start, and a reload must still see it. */
enum { ENV_APP_ID, ENV_APP_CERTIFICATE, ENV_APP_CERTIFICATE_FILE, ENV_COUNT };
static const char *const env_names[ENV_COUNT] = {"CHAT_TOKEN_APP_ID", "CHAT_TOKEN_APP_CERTIFICATE",
                                                 "CHAT_TOKEN_APP_CERTIFICATE_FILE"};
static struct {
    int captured;
    char *values[ENV_COUNT]; /* NULL: not set */
} env_capture;

void ct_config_capture_env(void)
{
    ct_config_release_env();
    for (size_t i = 0; i < ENV_COUNT; i++) {
        const char *value = getenv(env_names[i]);
        /* out of memory: as if unset, and the load then says what is missing */
        env_capture.values[i] = value != NULL ? strdup(value) : NULL;
    }
    env_capture.captured = 1;
    ct_secret_scrub_env("CHAT_TOKEN_APP_CERTIFICATE");
}

void ct_config_release_env(void)
{
    for (size_t i = 0; i < ENV_COUNT; i++) {
        if (env_capture.values[i] != NULL) {
            OPENSSL_cleanse(env_capture.values[i], strlen(env_capture.values[i]));
            free(env_capture.values[i]);
            env_capture.values[i] = NULL;
        }
    }
    env_capture.captured = 0;
}

static const char *env_value(size_t which)
{
    return env_capture.captured ? env_capture.values[which] : getenv(env_names[which]);
}

/* app.previous_certificate_files, appended to the inline ones; read on
 * every load, so a reload picks up their new content. */
static int read_previous_certificates(struct loader *ld)
{
    ct_config *cfg = ld->cfg;
    char path[KEY_PATH_MAX];
    char secret[SECRET_READ_MAX];
    char why[MESSAGE_MAX];

    for (size_t i = 0; i < cfg->previous_certificate_file_count; i++) {
        const char *file = cfg->previous_certificate_files[i];
        size_t len;

        snprintf(path, sizeof(path), "app.previous_certificate_files[%zu]", i);
        if (cfg->previous_certificate_count >= CT_CONFIG_MAX_PREVIOUS_CERTS) {
            return fail_at_path(ld, path,
                                "at most %d previous certificates in all (inline and "
                                "from files)",
                                CT_CONFIG_MAX_PREVIOUS_CERTS);
        }
        if (ct_secret_read_file(file, secret, sizeof(secret), why, sizeof(why)) != 0) {
            return fail_at_path(ld, path, "%s", why);
        }
        len = strlen(secret);
        if (len != 32 || !is_hex(secret, 32)) {
            OPENSSL_cleanse(secret, sizeof(secret));
            return fail_at_path(ld, path,
                                "%s holds %zu characters; a certificate is 32 hex "
                                "characters",
                                file, len);
        }
        memcpy(cfg->previous_certificates[cfg->previous_certificate_count++], secret, len + 1);
        OPENSSL_cleanse(secret, sizeof(secret));
    }
    return 0;
}

static int apply_env(struct loader *ld)
{
    ct_config *cfg = ld->cfg;
    const char *id = env_value(ENV_APP_ID);
    const char *cert = env_value(ENV_APP_CERTIFICATE);
    const char *cert_file = env_value(ENV_APP_CERTIFICATE_FILE);

    if (id != NULL &&
        take_env(ld, "CHAT_TOKEN_APP_ID", "app.id", id, cfg->app_id, sizeof(cfg->app_id)) != 0) {
        return -1;
    }
    if (cert != NULL && cert_file != NULL) {
        snprintf(ld->err, ld->errlen,
                 "CHAT_TOKEN_APP_CERTIFICATE, CHAT_TOKEN_APP_CERTIFICATE_FILE: app.certificate: "
                 "set only one of them");
        return -1;
    }
    if (cert != NULL) {
        cfg->app_certificate_file[0] = '\0';
        return take_env(ld, "CHAT_TOKEN_APP_CERTIFICATE", "app.certificate", cert,
                        cfg->app_certificate, sizeof(cfg->app_certificate));
    }
    if (cert_file != NULL) {
        if (take_env(ld, "CHAT_TOKEN_APP_CERTIFICATE_FILE", "app.certificate", cert_file,
                     cfg->app_certificate_file, sizeof(cfg->app_certificate_file)) != 0) {
            return -1;
        }
        return read_certificate(ld, "app.certificate");
    }
    if (cfg->app_certificate_file[0] != '\0') {
        if (read_certificate(ld, "app.certificate_file") != 0) {
            return -1;
        }
        return point_certificate_at_file(ld);
    }
    return 0;
}

/* "https://host/" and "https://host" mean the same; paths are appended. */
static void trim_base_url(ct_config *cfg)
{
    char *url = cfg->directory_base_url;
    size_t len = strlen(url);

    while (len > 1 && url[len - 1] == '/' && url[len - 2] != '/') {
        url[--len] = '\0';
    }
}

/* ------------------------------------------------------------------ */
/* Loading                                                              */

static int read_config_file(struct loader *ld, char **out, size_t *len)
{
    FILE *f = fopen(ld->file, "rb");
    char *buf;
    size_t n;
    int failed;

    if (f == NULL) {
        snprintf(ld->err, ld->errlen, "%s: cannot open: %s", ld->file, strerror(errno));
        return -1;
    }
    buf = malloc(CT_CONFIG_MAX_FILE_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(ld->err, ld->errlen, "%s: out of memory", ld->file);
        return -1;
    }
    n = fread(buf, 1, CT_CONFIG_MAX_FILE_BYTES + 1, f);
    failed = ferror(f);
    fclose(f);
    if (failed || n > CT_CONFIG_MAX_FILE_BYTES) {
        OPENSSL_cleanse(buf, n);
        free(buf);
        if (failed) {
            snprintf(ld->err, ld->errlen, "%s: cannot read", ld->file);
        } else {
            snprintf(ld->err, ld->errlen, "%s:1:1: larger than %d bytes (1 MiB): refused", ld->file,
                     CT_CONFIG_MAX_FILE_BYTES);
        }
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int load_text(struct loader *ld)
{
    struct problem p;

    yaml_parser_set_input_string(&ld->parser, (const unsigned char *)ld->text, ld->text_len);
    if (parse_document(ld) != 0) {
        return -1;
    }
    release_event(ld);
    trim_base_url(ld->cfg);
    if (apply_env(ld) != 0 || read_previous_certificates(ld) != 0) {
        return -1;
    }
    memset(&p, 0, sizeof(p));
    if (validate_into(ld->cfg, &p) != 0) {
        return fail_at_path(ld, p.path, "%s", p.message);
    }
    return 0;
}

/* libyaml keeps the decoded input in its own buffers: wipe them too. */
static void wipe_parser(yaml_parser_t *parser)
{
    if (parser->raw_buffer.start != NULL) {
        OPENSSL_cleanse(parser->raw_buffer.start,
                        (size_t)(parser->raw_buffer.end - parser->raw_buffer.start));
    }
    if (parser->buffer.start != NULL) {
        OPENSSL_cleanse(parser->buffer.start, (size_t)(parser->buffer.end - parser->buffer.start));
    }
    yaml_parser_delete(parser);
}

int ct_config_load(ct_config *cfg, const char *path, const char *text, char *err, size_t errlen)
{
    struct loader ld;
    char *owned = NULL;
    int rc;

    ct_config_defaults(cfg);
    memset(&ld, 0, sizeof(ld));
    ld.file = path != NULL ? path : "<config>";
    ld.cfg = cfg;
    ld.err = err;
    ld.errlen = errlen;
    if (text == NULL) {
        if (path == NULL || read_config_file(&ld, &owned, &ld.text_len) != 0) {
            if (path == NULL) {
                snprintf(err, errlen, "no config file or text given");
            }
            return -1;
        }
        text = owned;
    } else {
        ld.text_len = strnlen(text, CT_CONFIG_MAX_FILE_BYTES + 1);
        if (ld.text_len > CT_CONFIG_MAX_FILE_BYTES) {
            snprintf(err, errlen, "%s:1:1: larger than %d bytes (1 MiB): refused", ld.file,
                     CT_CONFIG_MAX_FILE_BYTES);
            return -1;
        }
    }
    ld.text = text;
    if (!yaml_parser_initialize(&ld.parser)) {
        snprintf(err, errlen, "%s: out of memory", ld.file);
        rc = -1;
    } else {
        rc = load_text(&ld);
        release_event(&ld);
        wipe_parser(&ld.parser);
    }
    free(ld.origins);
    if (owned != NULL) {
        OPENSSL_cleanse(owned, ld.text_len);
        free(owned);
    }
    if (rc != 0) {
        ct_config_wipe(cfg);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Printing                                                             */

static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fprintf(out, "\\%c", c);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\x%02x", c);
        } else {
            fputc(c, out);
        }
    }
    fputc('"', out);
}

static void print_string_key(FILE *out, const char *indent, const char *key, const char *value)
{
    fprintf(out, "%s%s: ", indent, key);
    print_quoted(out, value);
    fputc('\n', out);
}

static void print_string_list(FILE *out, const char *first, size_t slot, size_t count, int mask)
{
    fputc('[', out);
    for (size_t i = 0; i < count; i++) {
        if (i > 0) {
            fputs(", ", out);
        }
        print_quoted(out, mask ? "***" : first + i * slot);
    }
    fputc(']', out);
}

static void print_methods(FILE *out, unsigned methods)
{
    int first = 1;
    fputs("methods: [", out);
    for (unsigned m = 0; m < CT_METHOD_TOKEN_COUNT; m++) {
        if ((methods & CT_METHOD_BIT(m)) != 0) {
            fprintf(out, "%s%s", first ? "" : ", ", ct_method_name((enum ct_method)m));
            first = 0;
        }
    }
    fputc(']', out);
}

static const char *yaml_bool(int value)
{
    return value ? "true" : "false";
}

static void print_certificate(const ct_config *cfg, FILE *out, const char *indent)
{
    /* where the certificate came from, or that it was given inline */
    if (cfg->app_certificate_file[0] != '\0') {
        print_string_key(out, indent, "certificate_file", cfg->app_certificate_file);
    } else if (cfg->app_certificate[0] != '\0') {
        print_string_key(out, indent, "certificate", "***");
    }
}

static void print_nothing(const ct_config *cfg, FILE *out, const char *indent)
{
    (void)cfg;
    (void)out;
    (void)indent;
}

static void print_api_keys(const ct_config *cfg, FILE *out, const char *indent)
{
    fprintf(out, "%sapi_keys:%s\n", indent, cfg->api_key_count == 0 ? " []" : "");
    for (size_t i = 0; i < cfg->api_key_count; i++) {
        const ct_api_key *key = &cfg->api_keys[i];
        fprintf(out, "%s  - {name: ", indent);
        print_quoted(out, key->name);
        if (key->key_file[0] != '\0') {
            fputs(", key_file: ", out);
            print_quoted(out, key->key_file);
        } else {
            fputs(", sha256: \"***\"", out);
        }
        fputs(", ", out);
        print_methods(out, key->methods);
        fputs("}\n", out);
    }
}

/* key: [{id, methods}, ...]: mtls_clients, and a workload's subjects */
static void print_id_list(FILE *out, const char *indent, const char *key,
                          const ct_mtls_client *list, size_t count)
{
    fprintf(out, "%s%s:%s\n", indent, key, count == 0 ? " []" : "");
    for (size_t i = 0; i < count; i++) {
        fprintf(out, "%s  - {id: ", indent);
        print_quoted(out, list[i].id);
        fputs(", ", out);
        print_methods(out, list[i].methods);
        fputs("}\n", out);
    }
}

static void print_mtls_clients(const ct_config *cfg, FILE *out, const char *indent)
{
    print_id_list(out, indent, "mtls_clients", cfg->mtls_clients, cfg->mtls_client_count);
}

static void print_jwt(const ct_config *cfg, FILE *out, const char *indent)
{
    fprintf(out, "%sjwt:%s\n", indent, cfg->jwt_count == 0 ? " []" : "");
    for (size_t i = 0; i < cfg->jwt_count; i++) {
        const ct_jwt_issuer *j = &cfg->jwt[i];
        fprintf(out, "%s  - name: ", indent);
        print_quoted(out, j->name);
        fprintf(out, "\n%s    issuer: ", indent);
        print_quoted(out, j->issuer);
        fprintf(out, "\n%s    audiences: ", indent);
        print_string_list(out, j->audiences[0], sizeof(j->audiences[0]), j->audience_count, 0);
        fprintf(out, "\n%s    %s: ", indent, j->jwks_file[0] != '\0' ? "jwks_file" : "jwks_url");
        print_quoted(out, j->jwks_file[0] != '\0' ? j->jwks_file : j->jwks_url);
        fprintf(out, "\n%s    algorithms: ", indent);
        if (j->algorithm_count == 0) {
            fputs("[\"RS256\", \"ES256\"]", out);
        } else {
            print_string_list(out, j->algorithms[0], sizeof(j->algorithms[0]), j->algorithm_count,
                              0);
        }
        fprintf(out, "\n%s    leeway_seconds: %u\n%s    role: %s\n", indent,
                (unsigned)j->leeway_seconds, indent, jwt_role_names[j->role == 1]);
        if (j->role == CT_JWT_ROLE_WORKLOAD) {
            char inner[32];
            snprintf(inner, sizeof(inner), "%s    ", indent);
            print_id_list(out, inner, "subjects", j->subjects, j->subject_count);
            continue;
        }
        fprintf(out, "%s    username_claim: ", indent);
        print_quoted(out, j->username_claim);
        fprintf(out, "\n%s    ", indent);
        print_methods(out, j->methods);
        fprintf(out, "\n%s    rtc_channel_prefix: ", indent);
        print_quoted(out, j->rtc_channel_prefix);
        fputc('\n', out);
    }
}

static void print_section(const struct section *sec, const ct_config *cfg, FILE *out,
                          const char *indent)
{
    char inner[16];

    snprintf(inner, sizeof(inner), "%s  ", indent);
    for (size_t i = 0; i < sec->count; i++) {
        const struct field *f = &sec->fields[i];
        const char *at = (const char *)cfg + f->offset;
        unsigned value;

        if (f->print != NULL) {
            f->print(cfg, out, indent);
            continue;
        }
        switch (f->kind) {
        case FIELD_STRING:
            print_string_key(out, indent, f->key, f->secret && at[0] != '\0' ? "***" : at);
            break;
        case FIELD_U32:
        case FIELD_UNSIGNED:
        case FIELD_CHOICE:
            memcpy(&value, at, sizeof(value));
            if (f->kind == FIELD_CHOICE) {
                fprintf(out, "%s%s: %s\n", indent, f->key,
                        f->names[value < f->name_count ? value : f->def]);
            } else {
                fprintf(out, "%s%s: %u\n", indent, f->key, value);
            }
            break;
        case FIELD_BOOL:
            fprintf(out, "%s%s: %s\n", indent, f->key, yaml_bool(*(const int *)(const void *)at));
            break;
        case FIELD_STRING_LIST:
            fprintf(out, "%s%s: ", indent, f->key);
            print_string_list(out, at, f->size,
                              *(const size_t *)(const void *)((const char *)cfg + f->count_offset),
                              f->secret);
            fputc('\n', out);
            break;
        case FIELD_SECTION:
        case FIELD_CUSTOM:
            fprintf(out, "%s%s:\n", indent, f->key);
            print_section(f->section, cfg, out, inner);
            break;
        case FIELD_METHODS:
            break;
        }
    }
}

void ct_config_print(const ct_config *cfg, FILE *out)
{
    fputs("# chat-tokend effective configuration; secrets are shown as \"***\"\n", out);
    print_section(&root_section, cfg, out, "");
}

/* ------------------------------------------------------------------ */
/* The README's configuration reference                                 */

static void reference_default(const struct field *f, FILE *out)
{
    if (f->def_doc != NULL) {
        fputs(f->def_doc, out);
        return;
    }
    switch (f->kind) {
    case FIELD_U32:
    case FIELD_UNSIGNED:
        fprintf(out, "%u", (unsigned)f->def);
        break;
    case FIELD_BOOL:
        fputs(yaml_bool((int)f->def), out);
        break;
    case FIELD_CHOICE:
        fprintf(out, "`%s`", f->names[f->def]);
        break;
    case FIELD_STRING:
        if (f->def_text != NULL) {
            fprintf(out, "`%s`", f->def_text);
        } else {
            fputs("none", out);
        }
        break;
    default:
        fputs("`[]`", out);
        break;
    }
}

static void reference_section(const struct section *sec, const char *prefix, FILE *out)
{
    for (size_t i = 0; i < sec->count; i++) {
        const struct field *f = &sec->fields[i];
        char path[KEY_PATH_MAX];

        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] != '\0' ? "." : "", f->key);
        if (f->doc == NULL && f->section != NULL) {
            reference_section(f->section, path, out);
            continue;
        }
        if (f->doc == NULL) {
            continue;
        }
        /* a list of mappings is documented as one row: key[], then a row
         * for each of its entries' keys that has a doc (auth.jwt[].issuer) */
        fprintf(out, "| `%s%s` | ", path, f->kind == FIELD_CUSTOM ? "[]" : "");
        reference_default(f, out);
        fprintf(out, " | %s%s |\n", f->doc,
                f->restart == RESTART          ? " (restart to change)"
                : f->restart == RESTART_ON_OFF ? " (reloads; restart to turn on or off)"
                                               : "");
        if (f->kind == FIELD_CUSTOM && f->section != NULL) {
            char list[KEY_PATH_MAX + 2];
            snprintf(list, sizeof(list), "%s[]", path);
            reference_section(f->section, list, out);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Reloads: which changes need a restart                                */

static int field_differs(const struct field *f, const ct_config *a, const ct_config *b)
{
    const char *x = (const char *)a + f->offset;
    const char *y = (const char *)b + f->offset;

    switch (f->kind) {
    case FIELD_STRING:
        if (f->restart == RESTART_ON_OFF) {
            return (x[0] != '\0') != (y[0] != '\0');
        }
        return strcmp(x, y) != 0;
    case FIELD_STRING_LIST: {
        size_t count = *(const size_t *)(const void *)((const char *)a + f->count_offset);
        if (count != *(const size_t *)(const void *)((const char *)b + f->count_offset)) {
            return 1;
        }
        for (size_t i = 0; i < count; i++) {
            if (strcmp(x + i * f->size, y + i * f->size) != 0) {
                return 1;
            }
        }
        return 0;
    }
    case FIELD_U32:
        return *(const uint32_t *)(const void *)x != *(const uint32_t *)(const void *)y;
    case FIELD_UNSIGNED:
    case FIELD_CHOICE:
        return *(const unsigned *)(const void *)x != *(const unsigned *)(const void *)y;
    case FIELD_BOOL:
        return *(const int *)(const void *)x != *(const int *)(const void *)y;
    default:
        return 0;
    }
}

static int section_restart_key(const struct section *sec, const char *prefix, const ct_config *a,
                               const ct_config *b, char *key, size_t keylen)
{
    for (size_t i = 0; i < sec->count; i++) {
        const struct field *f = &sec->fields[i];
        char path[KEY_PATH_MAX];

        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] != '\0' ? "." : "", f->key);
        if (f->kind == FIELD_SECTION || (f->kind == FIELD_CUSTOM && f->print == NULL)) {
            if (f->section != NULL && section_restart_key(f->section, path, a, b, key, keylen)) {
                return 1;
            }
        } else if (f->restart != RELOADS && field_differs(f, a, b)) {
            snprintf(key, keylen, "%s", path);
            return 1;
        }
    }
    return 0;
}

int ct_config_restart_needed(const ct_config *running, const ct_config *next, char *key,
                             size_t keylen)
{
    return section_restart_key(&root_section, "", running, next, key, keylen);
}

void ct_config_reference(FILE *out)
{
    fputs("| key | default | meaning |\n| --- | --- | --- |\n", out);
    reference_section(&root_section, "", out);
}
