/* libFuzzer target for the pure parsers of the HTTP side port
 * (server/http.c): the route match with its percent-decoding of
 * {username} (and the username rules the handler then applies), the ?ttl=
 * value, the RenewToken JSON body, the CORS origin check, agora-token-service's
 * routes and POST body (http_agora.c), and the request's headers as
 * "name: value" lines collected into credentials and identified as
 * authenticate() does (one credential at most). The first input byte picks
 * the options (compat routes, the CORS list); the rest goes to every parser,
 * as a NUL-terminated string to those that take one and as exact-size bytes
 * to the others. */
#include "credential_lines.h"
#include "http_agora.h"
#include "http_rules.h"
#include "username.h"

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static ct_config cfg_list;     /* two exact origins */
static ct_config cfg_wildcard; /* "*" */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unsigned int len = 0;

    (void)argc;
    (void)argv;
    ct_config_defaults(&cfg_list);
    cfg_list.api_key_count = 1;
    strcpy(cfg_list.api_keys[0].name, "web");
    EVP_Digest("web-key", 7, cfg_list.api_keys[0].sha256, &len, EVP_sha256(), NULL);
    cfg_list.api_keys[0].methods = CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN);
    cfg_list.http_cors_origin_count = 2;
    strcpy(cfg_list.http_cors_origins[0], "https://chat.example.com");
    strcpy(cfg_list.http_cors_origins[1], "http://localhost:8080");
    ct_config_defaults(&cfg_wildcard);
    cfg_wildcard.http_cors_origin_count = 1;
    strcpy(cfg_wildcard.http_cors_origins[0], "*");
    return 0;
}

/* What the handler does next with a decoded {username}. */
static void fuzz_username(const char *name, size_t len)
{
    char normalised[CT_USERNAME_MAX + 1];
    char err[256];

    if (ct_username_normalize(name, len, normalised, err, sizeof(err)) == 0) {
        if (strlen(normalised) != len || strspn(normalised, ".") == len ||
            strspn(normalised, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != len) {
            abort(); /* same length, lower case, never only dots ("." "..") */
        }
    } else if (err[0] == '\0') {
        abort();
    }
}

static void fuzz_match(const char *path, size_t path_len, int compat)
{
    enum srv_http_route route = SRV_HTTP_ROUTE_NONE;
    char username[CT_USERNAME_MAX + 1];
    size_t username_len = 0;
    srv_status status;

    if (srv_http_match(path, compat, &route, username, sizeof(username), &username_len, &status) ==
        SRV_OK) {
        if (route == SRV_HTTP_ROUTE_USER_TOKEN &&
            (username_len >= sizeof(username) || username[username_len] != '\0' ||
             memchr(username, '\0', username_len) != NULL)) {
            abort(); /* decoded name: bounded, NUL-terminated, no NUL inside */
        }
        if (username_len > path_len) {
            abort(); /* percent-decoding never lengthens */
        }
        if (route == SRV_HTTP_ROUTE_USER_TOKEN) {
            fuzz_username(username, username_len);
        }
        (void)srv_http_allow(route);
        (void)srv_http_method_allowed(route, "GET");
    } else if (status.code != SRV_INVALID_ARGUMENT || status.message[0] == '\0') {
        abort();
    }
}

static void fuzz_renew(const uint8_t *data, size_t size)
{
    char *body = malloc(size > 0 ? size : 1); /* exact size: over-reads are reports */
    char *token = NULL;
    size_t token_len = 0;
    uint32_t ttl = 0;
    srv_status status;

    if (body == NULL) {
        return;
    }
    memcpy(body, data, size);
    if (srv_http_parse_renew(body, size, &token, &token_len, &ttl, &status) == SRV_OK) {
        if (token == NULL || token_len == 0 || token[token_len] != '\0') {
            abort();
        }
    } else if (token != NULL || status.message[0] == '\0') {
        abort();
    }
    free(token);
    free(body);
}

/* agora-token-service's routes: path matching, then the parameters (the
 * text is also the ?expiry= value), and the POST /getToken body. */
static void fuzz_agora(const char *text, const uint8_t *data, size_t size)
{
    static srv_agora_match m;
    static srv_agora_ask ask;
    char *body = malloc(size > 0 ? size : 1); /* exact size: over-reads are reports */
    srv_status status;

    if (srv_agora_match_path(text, &m, &status) == SRV_OK) {
        if (m.redirect && m.location[0] != '/') {
            abort();
        }
        if (m.route != SRV_AGORA_NONE && !m.redirect && m.route != SRV_AGORA_GET_TOKEN &&
            m.route != SRV_AGORA_PING &&
            srv_agora_ask_from_path(&m, text, &ask, &status) != SRV_OK &&
            status.message[0] == '\0') {
            abort();
        }
    } else if (m.route != SRV_AGORA_NONE || status.message[0] == '\0') {
        abort();
    }
    if (body == NULL) {
        return;
    }
    memcpy(body, data, size);
    if (srv_agora_ask_from_body(body, size, &ask, &status) == SRV_OK) {
        if (ask.token_key == NULL || ask.kind == SRV_AGORA_NONE ||
            (ask.kind == SRV_AGORA_RTC && ask.rtc.channel_name != ask.channel)) {
            abort();
        }
    } else if (status.message[0] == '\0') {
        abort();
    }
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t ttl = 0;
    srv_status status;
    char *text;
    uint8_t options;

    if (size == 0) {
        return 0;
    }
    options = data[0];
    data++;
    size--;
    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    fuzz_match(text, strlen(text), options & 1);
    if (srv_http_parse_ttl(text, &ttl, &status) != SRV_OK && status.message[0] == '\0') {
        abort();
    }
    (void)srv_http_origin_allowed((options & 2) ? &cfg_wildcard : &cfg_list, text);
    fuzz_renew(data, size);
    fuzz_agora(text, data, size);
    fuzz_credential_lines(&cfg_list, (const char *)data, size, "web");
    free(text);
    return 0;
}
