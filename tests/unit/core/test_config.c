/* Unit tests for core/config.c: the YAML loader, its error positions, the
 * environment overrides, secret files, validation rules and masked print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "config.h"

#define APP_ID "970CA35de60c44645bbae8a215061b33"
#define CERT "5CFd2fd1755d40ecb72977518be15d3b"
#define OLD_CERT "0123456789abcdef0123456789ABCDEF"
/* SHA-256 of "test" */
#define KEY_HASH "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

/* Seven lines that load: the errors below are in the lines after them. */
#define MINIMAL                                                                                    \
    "listen: \"127.0.0.1:50051\"\n"                                                                \
    "app:\n"                                                                                       \
    "  id: \"" APP_ID "\"\n"                                                                       \
    "  certificate: \"" CERT "\"\n"                                                                \
    "auth:\n"                                                                                      \
    "  api_keys:\n"                                                                                \
    "    - {name: backend, sha256: \"" KEY_HASH "\", methods: [GetUserToken]}\n"

static char tmpdir[64];
static ct_config cfg;
static char err[1024];

static void clear_env(void)
{
    unsetenv("CHAT_TOKEN_APP_ID");
    unsetenv("CHAT_TOKEN_APP_CERTIFICATE");
    unsetenv("CHAT_TOKEN_APP_CERTIFICATE_FILE");
}

static int setup(void **state)
{
    (void)state;
    clear_env();
    memset(err, 0, sizeof(err));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clear_env();
    ct_config_wipe(&cfg);
    return 0;
}

/* Writes content to tmpdir/name; returns the path, written into path. */
static const char *write_file(const char *name, const char *content, char *path, size_t pathlen)
{
    FILE *f;
    snprintf(path, pathlen, "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    assert_int_equal(fclose(f), 0);
    return path;
}

static int load(const char *yaml)
{
    return ct_config_load(&cfg, "cfg.yaml", yaml, err, sizeof(err));
}

/* Loads yaml, expects failure with exactly this message. */
static void expect_error(const char *yaml, const char *message)
{
    assert_int_equal(load(yaml), -1);
    assert_string_equal(err, message);
}

/* Loads yaml, expects failure with a message starting with prefix. */
static void expect_error_prefix(const char *yaml, const char *prefix)
{
    assert_int_equal(load(yaml), -1);
    if (strncmp(err, prefix, strlen(prefix)) != 0) {
        fail_msg("got \"%s\", expected it to start with \"%s\"", err, prefix);
    }
}

/* sha256 is the SHA-256 of key. */
static void expect_sha256_of(const uint8_t *sha256, const char *key)
{
    uint8_t want[32];
    unsigned len = 0;
    assert_int_equal(EVP_Digest(key, strlen(key), want, &len, EVP_sha256(), NULL), 1);
    assert_int_equal(len, 32);
    assert_memory_equal(sha256, want, 32);
}

/* What --check-config prints for c (the caller frees it). */
static char *print_config(const ct_config *c)
{
    char *printed = NULL;
    size_t printed_len = 0;
    FILE *out = open_memstream(&printed, &printed_len);

    assert_non_null(out);
    ct_config_print(c, out);
    assert_int_equal(fclose(out), 0);
    return printed;
}

/* --check-config prints exactly expected for cfg. */
static void expect_printed(const char *expected)
{
    char *printed = print_config(&cfg);

    if (strcmp(printed, expected) != 0) {
        fail_msg("printed:\n%s\nexpected:\n%s", printed, expected);
    }
    free(printed);
}

/* Every key set, written as --check-config prints it, with the
 * certificate, the previous certificate, the backend key's hash and the
 * admin key's file as %s. */
#define FULL_EXAMPLE                                                                               \
    "# chat-tokend effective configuration; secrets are shown as \"***\"\n"                        \
    "listen: [\"127.0.0.1:50051\", \"unix:/run/chat-tokend/grpc.sock\"]\n"                         \
    "health_listen: \"0.0.0.0:50052\"\n"                                                           \
    "app:\n"                                                                                       \
    "  id: \"" APP_ID "\"\n"                                                                       \
    "  certificate: \"%s\"\n"                                                                      \
    "  previous_certificates: [\"%s\"]\n"                                                          \
    "  previous_certificate_files: []\n"                                                           \
    "  key: \"org#app\"\n"                                                                         \
    "tokens:\n"                                                                                    \
    "  default_ttl_seconds: 600\n"                                                                 \
    "  max_ttl_seconds: 7200\n"                                                                    \
    "  renew_grace_seconds: 60\n"                                                                  \
    "user_tokens:\n"                                                                               \
    "  identity: uuid\n"                                                                           \
    "auth:\n"                                                                                      \
    "  allow_unauthenticated: false\n"                                                             \
    "  api_keys:\n"                                                                                \
    "    - {name: \"backend\", sha256: \"%s\", methods: [GetUserToken, RenewToken]}\n"             \
    "    - {name: \"admin\", key_file: \"%s\", methods: [GetAppToken, GetUserToken, "              \
    "RenewToken]}\n"                                                                               \
    "  mtls_clients:\n"                                                                            \
    "    - {id: \"spiffe://cluster.local/ns/chat/sa/backend\", methods: [GetUserToken]}\n"         \
    "  jwt:\n"                                                                                     \
    "    - name: \"app-users\"\n"                                                                  \
    "      issuer: \"https://login.example.com/\"\n"                                               \
    "      audiences: [\"chat-tokend\"]\n"                                                         \
    "      jwks_url: \"https://login.example.com/jwks.json\"\n"                                    \
    "      algorithms: [\"RS256\"]\n"                                                              \
    "      leeway_seconds: 60\n"                                                                   \
    "      role: end_user\n"                                                                       \
    "      username_claim: \"preferred_username\"\n"                                               \
    "      methods: [GetUserToken, RenewToken]\n"                                                  \
    "      rtc_channel_prefix: \"room-\"\n"                                                        \
    "tls:\n"                                                                                       \
    "  cert_file: \"/tls/crt\"\n"                                                                  \
    "  key_file: \"/tls/key\"\n"                                                                   \
    "  client_ca_file: \"/tls/ca\"\n"                                                              \
    "workers: 4\n"                                                                                 \
    "log:\n"                                                                                       \
    "  level: debug\n"                                                                             \
    "shutdown:\n"                                                                                  \
    "  drain_seconds: 2\n"                                                                         \
    "  grace_seconds: 9\n"                                                                         \
    "directory:\n"                                                                                 \
    "  base_url: \"http://127.0.0.1:9999\"\n"                                                      \
    "  auto_register: false\n"                                                                     \
    "  connect_timeout_ms: 500\n"                                                                  \
    "  request_timeout_ms: 1500\n"                                                                 \
    "  retries: 3\n"                                                                               \
    "  rate_limit_per_second: 50\n"                                                                \
    "  cache:\n"                                                                                   \
    "    capacity: 1000\n"                                                                         \
    "    ttl_seconds: 3600\n"                                                                      \
    "    negative_ttl_seconds: 10\n"                                                               \
    "http:\n"                                                                                      \
    "  listen: \"0.0.0.0:8090\"\n"                                                                 \
    "  compat_routes: false\n"                                                                     \
    "  agora_token_service_routes: true\n"                                                         \
    "  cors:\n"                                                                                    \
    "    allowed_origins: [\"http://localhost:8080\"]\n"                                           \
    "  max_connections: 64\n"                                                                      \
    "  request_timeout_seconds: 5\n"                                                               \
    "  max_connections_per_ip: 8\n"                                                                \
    "reflection: public\n"

/* Loads every key, and --check-config prints it back as it was written,
 * the secrets masked. */
static void loads_the_full_example_with_every_field(void **state)
{
    char key_path[256];
    char yaml[4096];
    char printed[4096];
    (void)state;

    write_file("admin_key", "admin-secret-key\n", key_path, sizeof(key_path));
    snprintf(yaml, sizeof(yaml), FULL_EXAMPLE, CERT, OLD_CERT, KEY_HASH, key_path);
    assert_int_equal(load(yaml), 0);
    /* the secrets, which the print masks */
    assert_string_equal(cfg.app_certificate, CERT);
    assert_string_equal(cfg.app_certificate_file, "");
    assert_string_equal(cfg.previous_certificates[0], OLD_CERT);
    expect_sha256_of(cfg.api_keys[0].sha256, "test");
    assert_string_equal(cfg.api_keys[0].key_file, "");
    expect_sha256_of(cfg.api_keys[1].sha256, "admin-secret-key");
    snprintf(printed, sizeof(printed), FULL_EXAMPLE, "***", "***", "***", key_path);
    expect_printed(printed);
}

static void loads_a_file_from_disk(void **state)
{
    char path[256];
    (void)state;
    write_file("disk.yaml", MINIMAL, path, sizeof(path));
    assert_int_equal(ct_config_load(&cfg, path, NULL, err, sizeof(err)), 0);
    assert_string_equal(cfg.app_id, APP_ID);
}

/* The documented defaults, as --check-config shows them. */
static void fills_defaults_for_keys_not_given(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL), 0);
    expect_printed("# chat-tokend effective configuration; secrets are shown as \"***\"\n"
                   "listen: [\"127.0.0.1:50051\"]\n"
                   "health_listen: \"\"\n"
                   "app:\n"
                   "  id: \"" APP_ID "\"\n"
                   "  certificate: \"***\"\n"
                   "  previous_certificates: []\n"
                   "  previous_certificate_files: []\n"
                   "  key: \"\"\n"
                   "tokens:\n"
                   "  default_ttl_seconds: 3600\n"
                   "  max_ttl_seconds: 86400\n"
                   "  renew_grace_seconds: 3600\n"
                   "user_tokens:\n"
                   "  identity: username\n"
                   "auth:\n"
                   "  allow_unauthenticated: false\n"
                   "  api_keys:\n"
                   "    - {name: \"backend\", sha256: \"***\", methods: [GetUserToken]}\n"
                   "  mtls_clients: []\n"
                   "  jwt: []\n"
                   "tls:\n"
                   "  cert_file: \"\"\n"
                   "  key_file: \"\"\n"
                   "  client_ca_file: \"\"\n"
                   "workers: 0\n"
                   "log:\n"
                   "  level: info\n"
                   "shutdown:\n"
                   "  drain_seconds: 5\n"
                   "  grace_seconds: 20\n"
                   "directory:\n"
                   "  base_url: \"https://a41.chat.agora.io\"\n"
                   "  auto_register: true\n"
                   "  connect_timeout_ms: 1000\n"
                   "  request_timeout_ms: 3000\n"
                   "  retries: 2\n"
                   "  rate_limit_per_second: 100\n"
                   "  cache:\n"
                   "    capacity: 100000\n"
                   "    ttl_seconds: 86400\n"
                   "    negative_ttl_seconds: 30\n"
                   "http:\n"
                   "  listen: \"\"\n"
                   "  compat_routes: true\n"
                   "  agora_token_service_routes: false\n"
                   "  cors:\n"
                   "    allowed_origins: []\n"
                   "  max_connections: 1024\n"
                   "  request_timeout_seconds: 10\n"
                   "  max_connections_per_ip: 64\n"
                   "reflection: public\n");
}

static void keeps_the_default_for_a_key_without_value(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "tokens:\n  max_ttl_seconds:\nhealth_listen: ~\n"), 0);
    assert_int_equal(cfg.max_ttl_seconds, 86400);
    assert_string_equal(cfg.health_listen, "");
}

static void reports_out_of_range_value_at_its_position(void **state)
{
    (void)state;
    expect_error(MINIMAL "tokens:\n  max_ttl_seconds: 90000\n",
                 "cfg.yaml:9:20: tokens.max_ttl_seconds: must be 1..86400, got 90000");
    expect_error(MINIMAL "tokens: {default_ttl_seconds: 7200, max_ttl_seconds: 3600}\n",
                 "cfg.yaml:8:31: tokens.default_ttl_seconds: must be 1..3600 "
                 "(tokens.max_ttl_seconds), got 7200");
    expect_error(MINIMAL "tokens: {default_ttl_seconds: 0}\n",
                 "cfg.yaml:8:31: tokens.default_ttl_seconds: must be 1..86400 "
                 "(tokens.max_ttl_seconds), got 0");
}

static void reports_unknown_key_with_the_valid_ones(void **state)
{
    (void)state;
    expect_error(MINIMAL "tokens:\n  default_ttl: 60\n",
                 "cfg.yaml:9:3: tokens.default_ttl: unknown key (valid here: default_ttl_seconds, "
                 "max_ttl_seconds, renew_grace_seconds)");
    expect_error_prefix(
        MINIMAL "listn: x\n",
        "cfg.yaml:8:1: listn: unknown key (valid here: listen, health_listen, app, ");
}

static void reports_duplicate_key(void **state)
{
    (void)state;
    expect_error(MINIMAL "workers: 1\nworkers: 2\n",
                 "cfg.yaml:9:1: workers: duplicate key (first given at line 8)");
}

static void reports_yaml_syntax_error_with_position(void **state)
{
    (void)state;
    expect_error(MINIMAL "tokens: {max_ttl_seconds: 1\n",
                 "cfg.yaml:9:1: tokens: YAML syntax error: did not find expected "
                 "',' or '}' (while parsing a flow mapping at line 8, column 9)");
    expect_error_prefix("listen: \"a\n", "cfg.yaml:2:1: listen: YAML syntax error: ");
}

static void reports_wrong_types(void **state)
{
    (void)state;
    expect_error(MINIMAL "health_listen: [a, b]\n",
                 "cfg.yaml:8:16: health_listen: expected a string, got a list");
    expect_error(MINIMAL "tokens: 5\n", "cfg.yaml:8:9: tokens: expected a mapping of keys, got a "
                                        "single value");
    expect_error(MINIMAL "workers: {a: 1}\n",
                 "cfg.yaml:8:10: workers: expected an integer, got a mapping");
    expect_error(MINIMAL "http: {cors: {allowed_origins: \"http://a\"}}\n",
                 "cfg.yaml:8:32: http.cors.allowed_origins: expected a list, got a single value");
}

static void refuses_integers_that_are_not_plain_decimal_uint32(void **state)
{
    (void)state;
    expect_error(MINIMAL "workers: abc\n",
                 "cfg.yaml:8:10: workers: expected a decimal integer, got \"abc\"");
    expect_error(MINIMAL "workers: -1\n", "cfg.yaml:8:10: workers: must not be negative, got -1");
    expect_error(MINIMAL "workers: 4294967296\n",
                 "cfg.yaml:8:10: workers: must be at most 4294967295, got 4294967296");
    expect_error(MINIMAL "workers: 010\n",
                 "cfg.yaml:8:10: workers: expected a decimal integer, got \"010\"");
    expect_error(MINIMAL "workers: 0x10\n",
                 "cfg.yaml:8:10: workers: expected a decimal integer, got \"0x10\"");
    expect_error(MINIMAL "workers: 1.5\n",
                 "cfg.yaml:8:10: workers: expected a decimal integer, got \"1.5\"");
    expect_error(MINIMAL "workers: \"4\"\n",
                 "cfg.yaml:8:10: workers: expected an integer, got a quoted string");
}

static void accepts_only_true_and_false_as_booleans(void **state)
{
    (void)state;
    expect_error(MINIMAL "http: {compat_routes: yes}\n",
                 "cfg.yaml:8:23: http.compat_routes: expected true or false, got \"yes\"");
    expect_error(MINIMAL "http: {compat_routes: \"true\"}\n",
                 "cfg.yaml:8:23: http.compat_routes: expected true or false, got \"true\"");
}

static void refuses_empty_documents(void **state)
{
    (void)state;
    expect_error("", "cfg.yaml:1:1: the document is empty");
    expect_error("# only a comment\n", "cfg.yaml:2:1: the document is empty");
    expect_error("---\n", "cfg.yaml:2:1: the document is empty");
    expect_error("just text\n", "cfg.yaml:1:1: the document must be a mapping of keys (listen, "
                                "app, auth, ...), got a single value");
    expect_error(MINIMAL "---\nworkers: 1\n", "cfg.yaml:8:1: only one YAML document is allowed");
}

static void refuses_anchors_aliases_and_tags(void **state)
{
    (void)state;
    expect_error(MINIMAL "health_listen: &a \"127.0.0.1:1\"\n",
                 "cfg.yaml:8:16: health_listen: anchors (&a) are not allowed: write each value "
                 "out");
    expect_error(MINIMAL "health_listen: *a\n",
                 "cfg.yaml:8:16: health_listen: aliases (*a) are not allowed: write the value out");
    expect_error(MINIMAL "workers: !!int 3\n",
                 "cfg.yaml:8:10: workers: tags (tag:yaml.org,2002:int) are not allowed");
}

static void refuses_deep_nesting_cleanly(void **state)
{
    char *yaml = malloc(200010);
    (void)state;
    assert_non_null(yaml);
    memcpy(yaml, "listen: ", 8);
    memset(yaml + 8, '[', 200000);
    yaml[200008] = '\0';
    expect_error(yaml, "cfg.yaml:1:10: listen[0]: expected a string, got a list");
    free(yaml);
}

static void refuses_lists_longer_than_the_bound(void **state)
{
    (void)state;
    expect_error("listen: [\"a:1\", \"a:2\", \"a:3\", \"a:4\", \"a:5\", \"a:6\", \"a:7\", \"a:8\", "
                 "\"a:9\"]\n",
                 "cfg.yaml:1:66: listen: at most 8 entries are allowed");
}

static void refuses_strings_longer_than_their_field(void **state)
{
    char yaml[1024];
    char name[200];
    (void)state;
    memset(name, 'n', 150);
    name[150] = '\0';
    snprintf(yaml, sizeof(yaml), MINIMAL "    - {name: %s, sha256: \"" KEY_HASH "\"}\n", name);
    expect_error(yaml, "cfg.yaml:8:14: auth.api_keys[1].name: must be at most 127 characters, "
                       "got 150");
}

static void refuses_bad_listen_addresses(void **state)
{
    (void)state;
    expect_error(MINIMAL "health_listen: \"127.0.0.1\"\n",
                 "cfg.yaml:8:16: health_listen: \"127.0.0.1\": must be host:port, [v6]:port or "
                 "unix:/absolute/path");
    expect_error(MINIMAL "health_listen: \"127.0.0.1:65536\"\n",
                 "cfg.yaml:8:16: health_listen: \"127.0.0.1:65536\": the port must be a decimal "
                 "number 0..65535");
    expect_error(MINIMAL "health_listen: \"::1:80\"\n",
                 "cfg.yaml:8:16: health_listen: \"::1:80\": an IPv6 address must be written "
                 "[address]:port");
    expect_error(MINIMAL "health_listen: \"unix:relative.sock\"\n",
                 "cfg.yaml:8:16: health_listen: \"unix:relative.sock\": a unix socket path must be "
                 "absolute (unix:/path)");
    expect_error("listen: []\napp: {id: \"" APP_ID "\", certificate: \"" CERT "\"}\n",
                 "cfg.yaml:1:9: listen: at least one address is required");
    expect_error("app: {id: \"" APP_ID "\", certificate: \"" CERT "\"}\n",
                 "cfg.yaml:1:1: listen: at least one address is required");
}

static void accepts_port_zero_ipv6_and_unix_listeners(void **state)
{
    (void)state;
    assert_int_equal(load(MINIMAL "health_listen: \"[::1]:0\"\n"
                                  "http: {listen: \"unix:/tmp/ct.sock\"}\n"),
                     0);
    assert_int_equal(load("listen: [\"127.0.0.1:0\", \"127.0.0.1:0\", \"[::]:50051\"]\n"
                          "app: {id: \"" APP_ID "\", certificate: \"" CERT "\"}\n"
                          "auth: {api_keys: [{name: a, sha256: \"" KEY_HASH
                          "\", methods: [GetAppToken]}]}\n"),
                     0);
    expect_error(MINIMAL "health_listen: \"127.0.0.1:50051\"\n",
                 "cfg.yaml:8:16: health_listen: \"127.0.0.1:50051\" is already listen[0]");
}

static void refuses_bad_app_id_and_certificate_without_echoing_them(void **state)
{
    (void)state;
    expect_error("listen: \"127.0.0.1:1\"\napp:\n  id: \"xyz\"\n",
                 "cfg.yaml:3:7: app.id: must be 32 hex characters (got 3 characters)");
    expect_error("listen: \"127.0.0.1:1\"\napp:\n  id: \"" APP_ID "\"\n",
                 "cfg.yaml:3:3: app.certificate: required: give app.certificate, "
                 "app.certificate_file, CHAT_TOKEN_APP_CERTIFICATE or "
                 "CHAT_TOKEN_APP_CERTIFICATE_FILE");
    expect_error("listen: \"127.0.0.1:1\"\napp:\n  id: \"" APP_ID "\"\n"
                 "  certificate: \"5CFd2fd1755d40ecb72977518be15d3Z\"\n",
                 "cfg.yaml:4:16: app.certificate: must be 32 hex characters (got 32 characters, "
                 "not all hex)");
    assert_null(strstr(err, "5CFd2fd1"));
    expect_error("listen: \"127.0.0.1:1\"\napp:\n  id: \"" APP_ID "\"\n"
                 "  certificate: \"5CFd2fd1755d40ecb72977518be15d3b00\"\n",
                 "cfg.yaml:4:16: app.certificate: must be at most 32 characters, got 34");
    expect_error(MINIMAL "    - {name: b, sha256: \"9f86d081\", methods: [GetAppToken]}\n",
                 "cfg.yaml:8:25: auth.api_keys[1].sha256: must be 64 hex characters (the SHA-256 "
                 "of the key), got 8 characters");
}

static void requires_app_key_for_uuid_identity(void **state)
{
    (void)state;
    expect_error(MINIMAL "user_tokens: {identity: uuid}\n",
                 "cfg.yaml:3:3: app.key: required when user_tokens.identity is uuid (the Chat REST "
                 "API needs it)");
    expect_error(MINIMAL "reflection: maybe\n",
                 "cfg.yaml:8:13: reflection: expected one of public, authenticated, off, got "
                 "\"maybe\"");
    assert_int_equal(load(MINIMAL "reflection: authenticated\n"), 0);
    assert_int_equal(cfg.reflection, CT_REFLECTION_AUTHENTICATED);
    assert_int_equal(load(MINIMAL), 0);
    assert_int_equal(cfg.reflection, CT_REFLECTION_PUBLIC);
    expect_error(MINIMAL "user_tokens: {identity: name}\n",
                 "cfg.yaml:8:25: user_tokens.identity: expected one of username, uuid, got "
                 "\"name\"");
    expect_error("listen: \"127.0.0.1:1\"\n"
                 "app: {id: \"" APP_ID "\", certificate: \"" CERT "\", key: \"org#\"}\n",
                 "cfg.yaml:2:101: app.key: must be \"org#app\" (letters, digits, '_' and '-' "
                 "around one '#')");
}

static void checks_tls_files_go_together(void **state)
{
    (void)state;
    expect_error(MINIMAL "tls: {cert_file: /a}\n",
                 "cfg.yaml:8:6: tls.key_file: tls.cert_file and tls.key_file go together");
    expect_error(MINIMAL "tls: {client_ca_file: /ca}\n",
                 "cfg.yaml:8:23: tls.client_ca_file: client certificates need TLS: set "
                 "tls.cert_file and tls.key_file");
    expect_error(MINIMAL "  mtls_clients: [{id: \"spiffe://x\", methods: [GetAppToken]}]\n",
                 "cfg.yaml:8:17: auth.mtls_clients: need tls.client_ca_file to verify client "
                 "certificates");
}

/* an id names a URI SAN (with a scheme; SPIFFE IDs by the standard) or a
 * DNS SAN; email and IP SANs never match, so such ids are mistakes */
static void checks_mtls_client_ids(void **state)
{
    (void)state;
    expect_error(MINIMAL "  mtls_clients: [{id: \"spiffe://Cluster.local/ns/\", methods: "
                         "[GetAppToken]}]\n",
                 "cfg.yaml:8:23: auth.mtls_clients[0].id: \"spiffe://Cluster.local/ns/\" is not "
                 "a SPIFFE ID (spiffe://trust-domain/path: lower-case trust domain, path "
                 "segments of A-Z a-z 0-9 . - _, not . or .., no trailing /)");
    expect_error(MINIMAL "  mtls_clients: [{id: ops@example.com, methods: [GetAppToken]}]\n",
                 "cfg.yaml:8:23: auth.mtls_clients[0].id: \"ops@example.com\" looks like an "
                 "email address: email SANs never identify a client (use a URI SAN such as a "
                 "SPIFFE ID, or a DNS SAN)");
    expect_error(MINIMAL "  mtls_clients: [{id: \"10.0.0.7\", methods: [GetAppToken]}]\n",
                 "cfg.yaml:8:23: auth.mtls_clients[0].id: \"10.0.0.7\" is an IP address: IP "
                 "SANs never identify a client (use a URI SAN such as a SPIFFE ID, or a DNS "
                 "SAN)");
}

static void checks_api_key_entries(void **state)
{
    (void)state;
    expect_error(MINIMAL "    - {name: b, sha256: \"" KEY_HASH "\", methods: [GetToken]}\n",
                 "cfg.yaml:8:103: auth.api_keys[1].methods[0]: unknown method \"GetToken\" "
                 "(valid: GetAppToken, GetUserToken, RenewToken, GetRtcToken, GetRtmToken)");
    expect_error(MINIMAL "    - {name: b, sha256: \"" KEY_HASH "\", methods: []}\n",
                 "cfg.yaml:8:102: auth.api_keys[1].methods: name at least one method "
                 "(GetAppToken, GetUserToken, RenewToken, GetRtcToken, GetRtmToken)");
    expect_error(MINIMAL "    - {name: backend, sha256: \"" KEY_HASH "\", methods: [RenewToken]}\n",
                 "cfg.yaml:8:14: auth.api_keys[1].name: \"backend\" is already the name of "
                 "auth.api_keys[0]");
    expect_error(MINIMAL "    - {name: b, methods: [RenewToken]}\n",
                 "cfg.yaml:8:7: auth.api_keys[1]: give sha256 (hex SHA-256 of the key) or "
                 "key_file");
    expect_error(MINIMAL "    - {name: b, sha256: \"" KEY_HASH "\", sha256: \"" KEY_HASH "\"}\n",
                 "cfg.yaml:8:93: auth.api_keys[1].sha256: duplicate key (first given at line 8)");
}

static void refuses_a_config_nobody_can_call(void **state)
{
    (void)state;
    expect_error("listen: \"0.0.0.0:50051\"\n"
                 "app: {id: \"" APP_ID "\", certificate: \"" CERT "\"}\n"
                 "auth: {api_keys: [], mtls_clients: []}\n",
                 "cfg.yaml:3:7: auth: no api_keys, mtls_clients or jwt: nobody could call the "
                 "service (allow_unauthenticated is only for loopback and unix listeners)");
}

static void refuses_allow_unauthenticated_on_a_public_listener(void **state)
{
    (void)state;
    expect_error("listen: \"0.0.0.0:50051\"\n"
                 "app: {id: \"" APP_ID "\", certificate: \"" CERT "\"}\n"
                 "auth: {allow_unauthenticated: true}\n",
                 "cfg.yaml:3:31: auth.allow_unauthenticated: refused: listen[0] \"0.0.0.0:50051\" "
                 "is not loopback or unix");
    expect_error("listen: \"127.0.0.1:50051\"\n"
                 "http: {listen: \"0.0.0.0:8090\"}\n"
                 "app: {id: \"" APP_ID "\", certificate: \"" CERT "\"}\n"
                 "auth: {allow_unauthenticated: true}\n",
                 "cfg.yaml:4:31: auth.allow_unauthenticated: refused: http.listen \"0.0.0.0:8090\" "
                 "is not loopback or unix");
}

static void accepts_allow_unauthenticated_on_loopback_and_unix(void **state)
{
    (void)state;
    assert_int_equal(load("listen: [\"127.0.0.1:50051\", \"unix:/run/ct.sock\"]\n"
                          "health_listen: \"localhost:50052\"\n"
                          "app: {id: \"" APP_ID "\", certificate: \"" CERT "\"}\n"
                          "auth: {allow_unauthenticated: true}\n"
                          "http: {listen: \"[::1]:8090\", cors: {allowed_origins: [\"*\"]}}\n"),
                     0);
    assert_int_equal(cfg.allow_unauthenticated, 1);
}

static void refuses_cors_wildcard_with_authentication(void **state)
{
    (void)state;
    expect_error(MINIMAL "http: {cors: {allowed_origins: [\"http://a.example\", \"*\"]}}\n",
                 "cfg.yaml:8:53: http.cors.allowed_origins[1]: \"*\" is refused while "
                 "authentication is on: list the origins of your web app");
    expect_error(MINIMAL "http: {cors: {allowed_origins: [\"http://a.example/\"]}}\n",
                 "cfg.yaml:8:33: http.cors.allowed_origins[0]: \"http://a.example/\" must be "
                 "scheme://host[:port], without a path or trailing '/'");
}

static void checks_directory_and_shutdown_bounds(void **state)
{
    (void)state;
    expect_error(MINIMAL "directory: {base_url: \"ftp://x\"}\n",
                 "cfg.yaml:8:23: directory.base_url: must start with https:// (or http:// for "
                 "tests)");
    expect_error(MINIMAL "directory: {cache: {capacity: 0}}\n",
                 "cfg.yaml:8:31: directory.cache.capacity: must be at least 1, got 0");
    expect_error(MINIMAL "shutdown: {grace_seconds: 0}\n",
                 "cfg.yaml:8:27: shutdown.grace_seconds: must be at least 1, got 0");
    expect_error(MINIMAL "http: {request_timeout_seconds: 0}\n",
                 "cfg.yaml:8:33: http.request_timeout_seconds: must be 1..3600, got 0");
    expect_error(MINIMAL "http: {max_connections_per_ip: 0}\n",
                 "cfg.yaml:8:32: http.max_connections_per_ip: must be at least 1, got 0");
    expect_error(MINIMAL "workers: 65\n",
                 "cfg.yaml:8:10: workers: must be 0..64 (0 = one per core), got 65");
    assert_int_equal(load(MINIMAL "directory: {base_url: \"https://a1.example/\"}\n"), 0);
    assert_string_equal(cfg.directory_base_url, "https://a1.example");
}

static void applies_environment_overrides(void **state)
{
    (void)state;
    setenv("CHAT_TOKEN_APP_ID", "00000000000000000000000000000001", 1);
    setenv("CHAT_TOKEN_APP_CERTIFICATE", OLD_CERT, 1);
    assert_int_equal(load(MINIMAL), 0);
    assert_string_equal(cfg.app_id, "00000000000000000000000000000001");
    assert_string_equal(cfg.app_certificate, OLD_CERT);

    /* the file may leave the certificate out when the environment gives it */
    assert_int_equal(load("listen: \"127.0.0.1:1\"\nauth: {allow_unauthenticated: true}\n"), 0);
    assert_string_equal(cfg.app_certificate, OLD_CERT);
}

static void names_the_variable_in_environment_errors(void **state)
{
    (void)state;
    setenv("CHAT_TOKEN_APP_ID", "nothex", 1);
    expect_error(MINIMAL,
                 "CHAT_TOKEN_APP_ID: app.id: must be 32 hex characters (got 6 characters)");
    clear_env();
    setenv("CHAT_TOKEN_APP_CERTIFICATE", "secretsecretsecretsecretsecretZZ", 1);
    expect_error(MINIMAL, "CHAT_TOKEN_APP_CERTIFICATE: app.certificate: must be 32 hex characters "
                          "(got 32 characters, not all hex)");
    setenv("CHAT_TOKEN_APP_CERTIFICATE", "", 1);
    expect_error(MINIMAL, "CHAT_TOKEN_APP_CERTIFICATE: app.certificate: CHAT_TOKEN_APP_CERTIFICATE "
                          "is set but empty");
    setenv("CHAT_TOKEN_APP_CERTIFICATE_FILE", "/nonexistent", 1);
    expect_error(MINIMAL, "CHAT_TOKEN_APP_CERTIFICATE, CHAT_TOKEN_APP_CERTIFICATE_FILE: "
                          "app.certificate: set only one of them");
    unsetenv("CHAT_TOKEN_APP_CERTIFICATE");
    expect_error(MINIMAL, "CHAT_TOKEN_APP_CERTIFICATE_FILE: app.certificate: cannot open "
                          "/nonexistent: No such file or directory");
}

static void reads_the_certificate_from_a_file(void **state)
{
    char cert_path[256];
    char yaml[1024];
    (void)state;
    write_file("cert", CERT "\n", cert_path, sizeof(cert_path));
    snprintf(yaml, sizeof(yaml),
             "listen: \"127.0.0.1:1\"\napp:\n  id: \"" APP_ID "\"\n  certificate_file: %s\n"
             "auth: {allow_unauthenticated: true}\n",
             cert_path);
    assert_int_equal(load(yaml), 0);
    assert_string_equal(cfg.app_certificate, CERT);
    assert_string_equal(cfg.app_certificate_file, cert_path);

    write_file("cert", "short\n", cert_path, sizeof(cert_path));
    expect_error(yaml, "cfg.yaml:4:21: app.certificate: must be 32 hex characters (got 5 "
                       "characters)");
    assert_null(strstr(err, "short"));

    snprintf(yaml, sizeof(yaml),
             "listen: \"127.0.0.1:1\"\napp:\n  id: \"" APP_ID "\"\n  certificate_file: %s/none\n",
             tmpdir);
    assert_int_equal(load(yaml), -1);
    assert_non_null(strstr(err, "cfg.yaml:4:21: app.certificate_file: cannot open "));

    expect_error_prefix("app:\n  certificate: \"" CERT "\"\n  certificate_file: /x\n",
                        "cfg.yaml:3:21: app.certificate_file: give app.certificate or "
                        "app.certificate_file, not both");

    /* CHAT_TOKEN_APP_CERTIFICATE_FILE takes the place of the file's certificate */
    write_file("cert2", OLD_CERT, cert_path, sizeof(cert_path));
    setenv("CHAT_TOKEN_APP_CERTIFICATE_FILE", cert_path, 1);
    assert_int_equal(load(MINIMAL), 0);
    assert_string_equal(cfg.app_certificate, OLD_CERT);
    assert_string_equal(cfg.app_certificate_file, cert_path);
    clear_env();

    /* app.previous_certificate_files: read at each load, appended to the
     * inline ones, their errors at the list item */
    write_file("previous", OLD_CERT "\n", cert_path, sizeof(cert_path));
    snprintf(yaml, sizeof(yaml),
             "listen: \"127.0.0.1:1\"\napp:\n  id: \"" APP_ID "\"\n  certificate: \"" CERT
             "\"\n  previous_certificates: [\"" CERT "\"]\n"
             "  previous_certificate_files: [%s]\nauth: {allow_unauthenticated: true}\n",
             cert_path);
    assert_int_equal(load(yaml), 0);
    assert_int_equal(cfg.previous_certificate_count, 2);
    assert_string_equal(cfg.previous_certificates[1], OLD_CERT);

    write_file("previous", "not-a-certificate\n", cert_path, sizeof(cert_path));
    assert_int_equal(load(yaml), -1);
    assert_non_null(strstr(err, "cfg.yaml:6:32: app.previous_certificate_files[0]: "));
    assert_non_null(strstr(err, "holds 17 characters"));
    assert_null(strstr(err, "not-a-certificate"));
}

static void hashes_the_key_file_with_sha256(void **state)
{
    char key_path[256];
    char yaml[1024];
    (void)state;
    write_file("key", "s3cr3t-api-key\n", key_path, sizeof(key_path));
    snprintf(yaml, sizeof(yaml),
             "listen: \"0.0.0.0:1\"\napp: {id: \"" APP_ID "\", certificate: \"" CERT "\"}\n"
             "auth:\n  api_keys:\n    - name: ops\n      key_file: %s\n"
             "      methods: [GetAppToken]\n",
             key_path);
    assert_int_equal(load(yaml), 0);
    /* the trailing newline an editor adds is not part of the key */
    expect_sha256_of(cfg.api_keys[0].sha256, "s3cr3t-api-key");

    snprintf(yaml, sizeof(yaml),
             "listen: \"0.0.0.0:1\"\napp: {id: \"" APP_ID "\", certificate: \"" CERT "\"}\n"
             "auth:\n  api_keys:\n    - name: ops\n      key_file: %s/missing\n",
             tmpdir);
    assert_int_equal(load(yaml), -1);
    assert_non_null(strstr(err, "cfg.yaml:6:17: auth.api_keys[0].key_file: cannot open "));
}

static void prints_yaml_with_every_secret_masked(void **state)
{
    char key_path[256];
    char yaml[2048];
    char *printed;
    (void)state;
    write_file("key", "s3cr3t-api-key\n", key_path, sizeof(key_path));
    snprintf(yaml, sizeof(yaml),
             "listen: \"127.0.0.1:50051\"\napp:\n  id: \"" APP_ID "\"\n  certificate: \"" CERT
             "\"\n  previous_certificates: [\"" OLD_CERT "\"]\n"
             "auth:\n  api_keys:\n    - {name: backend, sha256: \"" KEY_HASH
             "\", methods: [GetUserToken]}\n"
             "    - {name: ops, key_file: %s, methods: [GetAppToken]}\n",
             key_path);
    assert_int_equal(load(yaml), 0);

    printed = print_config(&cfg);
    assert_null(strstr(printed, CERT));
    assert_null(strstr(printed, OLD_CERT));
    assert_null(strstr(printed, KEY_HASH));
    assert_null(strstr(printed, "s3cr3t"));
    assert_non_null(strstr(printed, "certificate: \"***\""));
    assert_non_null(strstr(printed, "previous_certificates: [\"***\"]"));
    assert_non_null(strstr(printed, "sha256: \"***\""));
    assert_non_null(strstr(printed, APP_ID));
    free(printed);
}

static void prints_yaml_that_loads_again_with_secrets_from_env(void **state)
{
    char key_path[256];
    char yaml[2048];
    char *printed;
    ct_config first;
    (void)state;
    write_file("key", "s3cr3t-api-key\n", key_path, sizeof(key_path));
    setenv("CHAT_TOKEN_APP_CERTIFICATE", CERT, 1);
    snprintf(yaml, sizeof(yaml),
             "listen: [\"127.0.0.1:50051\", \"unix:/run/x.sock\"]\n"
             "app: {id: \"" APP_ID "\", key: \"o#a\"}\n"
             "user_tokens: {identity: uuid}\n"
             "auth:\n  api_keys:\n    - {name: ops, key_file: %s, methods: [GetAppToken]}\n"
             "http: {listen: \"127.0.0.1:8090\", cors: {allowed_origins: [\"https://x.io\"]}}\n"
             "log: {level: warn}\n",
             key_path);
    assert_int_equal(load(yaml), 0);
    memcpy(&first, &cfg, sizeof(first));
    printed = print_config(&first);
    assert_null(strstr(printed, CERT));
    if (load(printed) != 0) {
        fail_msg("printed config does not load: %s\n%s", err, printed);
    }
    assert_memory_equal(&first, &cfg, sizeof(cfg));
    free(printed);
    ct_config_wipe(&first);
}

static void refuses_input_over_one_mebibyte(void **state)
{
    char path[256];
    size_t size = CT_CONFIG_MAX_FILE_BYTES + 1;
    char *big = malloc(size + 1);
    (void)state;
    assert_non_null(big);
    memset(big, '#', size);
    big[size] = '\0';
    expect_error(big, "cfg.yaml:1:1: larger than 1048576 bytes (1 MiB): refused");
    write_file("big.yaml", big, path, sizeof(path));
    assert_int_equal(ct_config_load(&cfg, path, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":1:1: larger than 1048576 bytes (1 MiB): refused"));
    free(big);
}

static void wipes_the_secrets(void **state)
{
    static const uint8_t zero[sizeof(cfg.app_certificate)];
    (void)state;
    assert_int_equal(load(MINIMAL), 0);
    ct_config_wipe(&cfg);
    assert_memory_equal(cfg.app_certificate, zero, sizeof(cfg.app_certificate));
    assert_memory_equal(cfg.api_keys[0].sha256, zero, 32);
}

/* The README's configuration reference is the table's: regenerate it with
 * ct_config_reference when a key changes. */
static void the_readme_holds_the_reference_of_the_key_table(void **state)
{
    char *reference = NULL;
    size_t reference_len = 0;
    FILE *out = open_memstream(&reference, &reference_len);
    FILE *readme = fopen(CT_README, "r");
    static char text[256 * 1024];
    size_t len;
    (void)state;

    assert_non_null(out);
    assert_non_null(readme);
    ct_config_reference(out);
    fclose(out);
    len = fread(text, 1, sizeof(text) - 1, readme);
    fclose(readme);
    text[len] = '\0';
    if (strstr(text, reference) == NULL) {
        fail_msg("README.md's configuration reference differs from the key table; it should "
                 "read:\n%s",
                 reference);
    }
    free(reference);
}

static void load_ok(ct_config *out, const char *yaml)
{
    assert_int_equal(ct_config_load(out, "cfg.yaml", yaml, err, sizeof(err)), 0);
}

/* Reloads: restart-only keys (marked in the key table) are named; the
 * others may change; tls.* may change files but not turn on or off. */
static void names_the_keys_a_reload_cannot_change(void **state)
{
    static ct_config running, next;
    char key[160];
    const struct {
        const char *yaml;
        const char *key; /* NULL: reloadable */
    } cases[] = {
        {MINIMAL, NULL},
        {MINIMAL "tokens: {default_ttl_seconds: 60}\nlog: {level: debug}\n", NULL},
        {MINIMAL "directory: {retries: 5, rate_limit_per_second: 7}\n", NULL},
        {MINIMAL "http: {cors: {allowed_origins: [\"https://a.example\"]}}\n", NULL},
        {MINIMAL "workers: 3\n", "workers"},
        {MINIMAL "health_listen: \"127.0.0.1:2\"\n", "health_listen"},
        {MINIMAL "http: {listen: \"127.0.0.1:3\"}\n", "http.listen"},
        {MINIMAL "directory: {cache: {capacity: 5}}\n", "directory.cache.capacity"},
        {MINIMAL "tls: {cert_file: /c, key_file: /k}\n", "tls.cert_file"},
    };
    (void)state;
    load_ok(&running, MINIMAL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        load_ok(&next, cases[i].yaml);
        key[0] = '\0';
        if (cases[i].key == NULL) {
            assert_int_equal(ct_config_restart_needed(&running, &next, key, sizeof(key)), 0);
        } else {
            assert_int_equal(ct_config_restart_needed(&running, &next, key, sizeof(key)), 1);
            assert_string_equal(key, cases[i].key);
        }
    }
    /* listen, app.id and app.key, with the rest the same */
    load_ok(&next, "listen: \"127.0.0.1:9\"\napp:\n  id: \"" APP_ID "\"\n  certificate: \"" CERT
                   "\"\nauth:\n  api_keys:\n    - {name: backend, sha256: \"" KEY_HASH
                   "\", methods: [GetUserToken]}\n");
    assert_int_equal(ct_config_restart_needed(&running, &next, key, sizeof(key)), 1);
    assert_string_equal(key, "listen");
    load_ok(&next, "listen: \"127.0.0.1:50051\"\napp:\n  id: \"11112222333344445555666677778888\"\n"
                   "  certificate: \"" CERT "\"\n  key: \"o#a\"\nauth:\n  api_keys:\n"
                   "    - {name: backend, sha256: \"" KEY_HASH "\", methods: [GetUserToken]}\n");
    assert_int_equal(ct_config_restart_needed(&running, &next, key, sizeof(key)), 1);
    assert_string_equal(key, "app.id");
    /* the certificate and the keys reload */
    load_ok(&next,
            "listen: \"127.0.0.1:50051\"\napp:\n  id: \"" APP_ID "\"\n  certificate: \"" OLD_CERT
            "\"\nauth:\n  api_keys:\n    - {name: other, sha256: \"" KEY_HASH
            "\", methods: [GetAppToken]}\n");
    assert_int_equal(ct_config_restart_needed(&running, &next, key, sizeof(key)), 0);
    /* tls: other files reload, off -> on above, on -> off here */
    load_ok(&running, MINIMAL "tls: {cert_file: /c, key_file: /k}\n");
    load_ok(&next, MINIMAL "tls: {cert_file: /c2, key_file: /k2}\n");
    assert_int_equal(ct_config_restart_needed(&running, &next, key, sizeof(key)), 0);
    load_ok(&next, MINIMAL "tls: {cert_file: /c, key_file: /k, client_ca_file: /ca}\n");
    assert_int_equal(ct_config_restart_needed(&running, &next, key, sizeof(key)), 1);
    assert_string_equal(key, "tls.client_ca_file");
    ct_config_wipe(&running);
    ct_config_wipe(&next);
}

/* The environment as captured at start applies to every later load, even
 * after the variable is gone from the environment (scrubbed). */
static void applies_the_captured_environment_on_later_loads(void **state)
{
    (void)state;
    setenv("CHAT_TOKEN_APP_CERTIFICATE", OLD_CERT, 1);
    ct_config_capture_env();
    assert_null(getenv("CHAT_TOKEN_APP_CERTIFICATE"));
    assert_int_equal(load(MINIMAL), 0);
    assert_string_equal(cfg.app_certificate, OLD_CERT);
    assert_int_equal(load(MINIMAL), 0); /* a reload */
    assert_string_equal(cfg.app_certificate, OLD_CERT);
    ct_config_release_env();
    assert_int_equal(load(MINIMAL), 0);
    assert_string_equal(cfg.app_certificate, CERT);
}

/* auth.jwt: the example (an end-user OIDC issuer and a cluster's
 * service accounts), continuing MINIMAL's auth section. */
#define JWT_EXAMPLE                                                                                \
    "  jwt:\n"                                                                                     \
    "    - name: app-users\n"                                                                      \
    "      issuer: \"https://login.example.com/\"\n"                                               \
    "      audiences: [\"chat-tokend\"]\n"                                                         \
    "      jwks_url: https://login.example.com/.well-known/jwks.json\n"                            \
    "      algorithms: [RS256, ES256]\n"                                                           \
    "      leeway_seconds: 30\n"                                                                   \
    "      role: end_user\n"                                                                       \
    "      username_claim: preferred_username\n"                                                   \
    "      methods: [GetUserToken, RenewToken]\n"                                                  \
    "      rtc_channel_prefix: \"room-\"\n"                                                        \
    "    - name: cluster\n"                                                                        \
    "      issuer: \"https://kubernetes.default.svc.cluster.local\"\n"                             \
    "      audiences: [\"chat-tokend\"]\n"                                                         \
    "      jwks_file: /var/run/cluster-jwks.json\n"                                                \
    "      role: workload\n"                                                                       \
    "      subjects:\n"                                                                            \
    "        - {id: \"system:serviceaccount:chat:backend\", methods: [GetUserToken, "              \
    "RenewToken]}\n"

static void loads_jwt_issuers_with_their_defaults_and_prints_them(void **state)
{
    char *printed = NULL;
    size_t printed_len = 0;
    static char again[4096];
    char *jwt;
    FILE *out;
    (void)state;

    assert_int_equal(load(MINIMAL JWT_EXAMPLE), 0);
    assert_int_equal(cfg.jwt_count, 2);
    assert_string_equal(cfg.jwt[0].username_claim, "preferred_username");
    assert_int_equal(cfg.jwt[0].role, CT_JWT_ROLE_END_USER);
    assert_int_equal(cfg.jwt[0].methods, CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN) |
                                             CT_METHOD_BIT(CT_METHOD_RENEW_TOKEN));
    assert_int_equal(cfg.jwt[0].algorithm_count, 2);
    assert_string_equal(cfg.jwt[0].rtc_channel_prefix, "room-");
    assert_int_equal(cfg.jwt[1].role, CT_JWT_ROLE_WORKLOAD);
    assert_string_equal(cfg.jwt[1].subjects[0].id, "system:serviceaccount:chat:backend");
    /* the defaults of keys not given */
    assert_int_equal(cfg.jwt[1].leeway_seconds, 30);
    assert_string_equal(cfg.jwt[1].username_claim, "sub");
    assert_int_equal(cfg.jwt[1].algorithm_count, 0);
    /* --check-config prints what loads again to the same issuers */
    out = open_memstream(&printed, &printed_len);
    assert_non_null(out);
    ct_config_print(&cfg, out);
    fclose(out);
    /* the printed jwt section (api key hashes are masked: left out) */
    jwt = strstr(printed, "  jwt:\n");
    assert_non_null(jwt);
    *strstr(jwt, "\ntls:") = '\0';
    snprintf(again, sizeof(again),
             "listen: \"127.0.0.1:1\"\napp: {id: \"" APP_ID "\", certificate: \"" CERT
             "\"}\nauth:\n%s\n",
             jwt);
    assert_int_equal(load(again), 0);
    assert_int_equal(cfg.jwt_count, 2);
    assert_int_equal(cfg.jwt[1].subjects[0].methods, cfg.jwt[0].methods);
    free(printed);
}

/* MINIMAL plus one auth.jwt entry of these keys. */
static void expect_jwt_error(const char *entry, const char *message)
{
    char yaml[2048];

    snprintf(yaml, sizeof(yaml), "%s  jwt:\n    - {%s}\n", MINIMAL, entry);
    assert_int_equal(load(yaml), -1);
    if (strstr(err, message) == NULL) {
        fail_msg("error \"%s\" does not hold \"%s\"", err, message);
    }
}

#define JWT_BASE "name: u, issuer: \"https://i/\", audiences: [a], jwks_file: /k.json, "

static void refuses_jwt_issuers_that_would_be_unsafe_or_ambiguous(void **state)
{
    (void)state;
    expect_jwt_error(JWT_BASE "methods: [GetUserToken], algorithms: [none]",
                     "auth.jwt[0].algorithms[0]: none is refused");
    expect_jwt_error(JWT_BASE "methods: [GetUserToken], algorithms: [RS256, HS256]",
                     "auth.jwt[0].algorithms[1]: HS256 is refused");
    expect_jwt_error(JWT_BASE "methods: [GetUserToken], algorithms: [PS512]",
                     "unknown algorithm \"PS512\"");
    expect_jwt_error(JWT_BASE "methods: [GetUserToken, GetAppToken]",
                     "auth.jwt[0].methods: an end user may be granted GetUserToken");
    expect_jwt_error(JWT_BASE "role: end_user", "auth.jwt[0].methods");
    expect_jwt_error(JWT_BASE "methods: [GetUserToken], jwks_url: \"https://i/k\"",
                     "give exactly one of jwks_file and jwks_url");
    expect_jwt_error("name: u, issuer: i, audiences: [a], methods: [GetUserToken]",
                     "give exactly one of jwks_file and jwks_url");
    expect_jwt_error("name: u, issuer: i, audiences: [a], methods: [GetUserToken], "
                     "jwks_url: \"http://idp.example/k\"",
                     "must be https:// (http:// only to a loopback host)");
    expect_jwt_error(JWT_BASE "methods: [GetUserToken], leeway_seconds: 301",
                     "leeway_seconds: must be 0..300, got 301");
    expect_jwt_error(JWT_BASE "role: workload", "a workload issuer needs subjects");
    expect_jwt_error(JWT_BASE "role: workload, methods: [GetUserToken], subjects: [{id: s, "
                              "methods: [GetUserToken]}]",
                     "given per subject");
    expect_jwt_error(JWT_BASE "role: workload, subjects: [{id: s, methods: [GetUserToken]}, "
                              "{id: s, methods: [RenewToken]}]",
                     "auth.jwt[0].subjects[1].id: \"s\" is already subjects[0]");
    expect_jwt_error(JWT_BASE "methods: [GetUserToken], subjects: [{id: s, methods: "
                              "[GetUserToken]}]",
                     "subjects: only for role: workload");
    expect_jwt_error(JWT_BASE "methods: [GetRtcToken], rtc_channel_prefix: \"a/b\"",
                     "rtc_channel_prefix");
    expect_jwt_error("issuer: i, audiences: [a], jwks_file: /k, methods: [GetUserToken]",
                     "auth.jwt[0].name: required");
    expect_jwt_error("name: u, audiences: [a], jwks_file: /k, methods: [GetUserToken]",
                     "auth.jwt[0].issuer: required");
    expect_jwt_error("name: u, issuer: i, jwks_file: /k, methods: [GetUserToken]",
                     "auth.jwt[0].audiences: name at least one audience");
    assert_int_equal(load(MINIMAL "  jwt:\n    - {" JWT_BASE "methods: [GetUserToken]}\n"
                                  "    - {" JWT_BASE "methods: [GetUserToken]}\n"),
                     -1);
    assert_non_null(strstr(err, "auth.jwt[1].name: \"u\" is already the name of auth.jwt[0]"));
}

static void jwks_url_is_https_or_http_to_a_loopback_host(void **state)
{
    static const char *const refused[] = {"http://127.0.0.1.evil.example/k",
                                          "http://127.0.0.1@evil.example/k", "http://10.0.0.1/k",
                                          "http:///k", "ftp://127.0.0.1/k"};
    static const char *const accepted[] = {"https://login.example.com/jwks", "http://127.0.0.1/k",
                                           "http://127.1.2.3:8080/k", "http://[::1]:9/k",
                                           "http://localhost/k"};
    char entry[256];
    char yaml[2048];
    (void)state;

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        snprintf(entry, sizeof(entry),
                 "name: u, issuer: i, audiences: [a], methods: [GetUserToken], jwks_url: \"%s\"",
                 refused[i]);
        expect_jwt_error(entry, "must be https:// (http:// only to a loopback host)");
    }
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        snprintf(yaml, sizeof(yaml),
                 "%s  jwt:\n    - {name: u, issuer: i, audiences: [a], methods: [GetUserToken], "
                 "jwks_url: \"%s\"}\n",
                 MINIMAL, accepted[i]);
        if (load(yaml) != 0) {
            fail_msg("%s refused: %s", accepted[i], err);
        }
    }
}

static void a_jwt_issuer_alone_is_enough_to_call_the_service(void **state)
{
    (void)state;
    assert_int_equal(load("listen: \"0.0.0.0:50051\"\n"
                          "app: {id: \"" APP_ID "\", certificate: \"" CERT "\"}\n"
                          "auth:\n"
                          "  jwt:\n    - {" JWT_BASE "methods: [GetUserToken]}\n"),
                     0);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(loads_the_full_example_with_every_field),
        TEST(loads_a_file_from_disk),
        TEST(fills_defaults_for_keys_not_given),
        TEST(keeps_the_default_for_a_key_without_value),
        TEST(reports_out_of_range_value_at_its_position),
        TEST(reports_unknown_key_with_the_valid_ones),
        TEST(reports_duplicate_key),
        TEST(reports_yaml_syntax_error_with_position),
        TEST(reports_wrong_types),
        TEST(refuses_integers_that_are_not_plain_decimal_uint32),
        TEST(accepts_only_true_and_false_as_booleans),
        TEST(refuses_empty_documents),
        TEST(refuses_anchors_aliases_and_tags),
        TEST(refuses_deep_nesting_cleanly),
        TEST(refuses_lists_longer_than_the_bound),
        TEST(refuses_strings_longer_than_their_field),
        TEST(refuses_bad_listen_addresses),
        TEST(accepts_port_zero_ipv6_and_unix_listeners),
        TEST(refuses_bad_app_id_and_certificate_without_echoing_them),
        TEST(requires_app_key_for_uuid_identity),
        TEST(checks_tls_files_go_together),
        TEST(checks_mtls_client_ids),
        TEST(checks_api_key_entries),
        TEST(refuses_a_config_nobody_can_call),
        TEST(refuses_allow_unauthenticated_on_a_public_listener),
        TEST(accepts_allow_unauthenticated_on_loopback_and_unix),
        TEST(refuses_cors_wildcard_with_authentication),
        TEST(checks_directory_and_shutdown_bounds),
        TEST(applies_environment_overrides),
        TEST(names_the_variable_in_environment_errors),
        TEST(reads_the_certificate_from_a_file),
        TEST(hashes_the_key_file_with_sha256),
        TEST(prints_yaml_with_every_secret_masked),
        TEST(prints_yaml_that_loads_again_with_secrets_from_env),
        TEST(refuses_input_over_one_mebibyte),
        TEST(wipes_the_secrets),
        TEST(loads_jwt_issuers_with_their_defaults_and_prints_them),
        TEST(refuses_jwt_issuers_that_would_be_unsafe_or_ambiguous),
        TEST(jwks_url_is_https_or_http_to_a_loopback_host),
        TEST(a_jwt_issuer_alone_is_enough_to_call_the_service),
        TEST(the_readme_holds_the_reference_of_the_key_table),
        TEST(names_the_keys_a_reload_cannot_change),
        TEST(applies_the_captured_environment_on_later_loads),
    };
    int rc;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ct_config_test.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    /* the few files the tests wrote */
    {
        static const char *const names[] = {"admin_key", "disk.yaml", "cert",
                                            "cert2",     "key",       "big.yaml"};
        char path[256];
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
            unlink(path);
        }
        rmdir(tmpdir);
    }
    return rc;
}
