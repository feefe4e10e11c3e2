/* chat-token: build (Chat, RTC, RTM), inspect and verify AccessToken2 tokens
 * from the shell. The certificate comes from a file or the environment, never from
 * argv (argv is visible to every user through ps and /proc). */
#include "../rtc.h"
#include "../secret.h"
#include "../token.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2
#define SECRET_MAX 256

static const char *const usage_main =
    "usage: chat-token <command> [options]\n"
    "\n"
    "commands:\n"
    "  build KIND       build a Chat app or user token, an RTC or RTM token; print it\n"
    "  inspect TOKEN|-  print the fields of any 007 token as JSON\n"
    "  verify TOKEN|-   check a token's signature (exit 0 when it holds)\n"
    "\n"
    "'chat-token <command> --help' shows the options of a command.\n";

static const char *const usage_build =
    "usage: chat-token build app|user|rtc|rtm --app-id ID [--app-cert-file FILE]\n"
    "                        [--ttl SECONDS] [--salt N --issue-ts T] [kind options]\n"
    "\n"
    "  --app-id ID          32 hex characters (or env CHAT_TOKEN_APP_ID)\n"
    "  --app-cert-file F    file holding the app certificate; without it the\n"
    "                       certificate comes from env CHAT_TOKEN_APP_CERTIFICATE_FILE\n"
    "                       or CHAT_TOKEN_APP_CERTIFICATE\n"
    "  --ttl SECONDS        1..86400, default 3600\n"
    "  --salt N, --issue-ts T\n"
    "                       fix the salt (1..99999999) and issue time (unix seconds)\n"
    "                       for reproducible tokens; default: CSPRNG salt, now\n"
    "\n"
    "  user:  --user USER_ID      the Chat user id\n"
    "  rtm:   --user USER_ID      the RTM user id\n"
    "  rtc:   --channel NAME      the channel (1..64 bytes)\n"
    "         --uid N | --account NAME\n"
    "                             the user: a uid (0 = any uid) or an account\n"
    "         --role publisher|subscriber\n"
    "         --privilege-ttl S   join/publish privileges, 1..86400 (default --ttl)\n"
    "         --with-rtm          also the RTM login privilege for the account\n";

static const char *const usage_inspect =
    "usage: chat-token inspect TOKEN|-\n"
    "\n"
    "Prints version, app_id, issue_ts, expire, expire_at (unix and ISO-8601), salt\n"
    "and every service with its privileges and fields, as JSON. '-' reads the\n"
    "token from standard input. No certificate needed: nothing is verified.\n";

static const char *const usage_verify =
    "usage: chat-token verify TOKEN|- [--app-cert-file FILE]\n"
    "\n"
    "Exits 0 when the signature holds with the certificate (from --app-cert-file,\n"
    "env CHAT_TOKEN_APP_CERTIFICATE_FILE or CHAT_TOKEN_APP_CERTIFICATE), 1 when\n"
    "it does not (saying why), 2 on usage errors. Expiry is reported on its own\n"
    "line and does not change the exit status.\n";

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "chat-token: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return EXIT_USAGE;
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end = NULL;
    unsigned long long v;

    if (s == NULL || *s == '\0' || *s == '-') {
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > UINT32_MAX) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* The certificate from --app-cert-file, else the environment. */
static int load_certificate(const char *file, char *cert, size_t certlen)
{
    char err[256];
    const char *env_value;

    if (file == NULL) {
        file = getenv("CHAT_TOKEN_APP_CERTIFICATE_FILE");
    }
    if (file != NULL) {
        if (ct_secret_read_file(file, cert, certlen, err, sizeof(err)) != 0) {
            fprintf(stderr, "chat-token: %s\n", err);
            return -1;
        }
    } else {
        env_value = getenv("CHAT_TOKEN_APP_CERTIFICATE");
        if (env_value == NULL || strlen(env_value) >= certlen) {
            fprintf(stderr, "chat-token: no certificate: give --app-cert-file FILE or set "
                            "CHAT_TOKEN_APP_CERTIFICATE_FILE or CHAT_TOKEN_APP_CERTIFICATE\n");
            return -1;
        }
        strcpy(cert, env_value);
        ct_secret_scrub_env("CHAT_TOKEN_APP_CERTIFICATE");
    }
    if (!ct_is_hex_id(cert)) {
        fprintf(stderr, "chat-token: the app certificate must be 32 hex characters\n");
        ct_secret_wipe(cert, certlen);
        return -1;
    }
    return 0;
}

/* What `build` was asked for, as parsed from argv. */
typedef struct build_request {
    const char *kind;
    const char *app_id;
    const char *cert_file;
    const char *user;
    const char *channel;
    const char *account;
    const char *role;
    uint32_t uid;
    int have_uid;
    int with_rtm;
    uint32_t ttl;
    uint32_t privilege_ttl;
    uint32_t salt;
    uint32_t issue_ts;
    int have_salt;
    int have_ts;
} build_request;

/* Reads one "--name value" option of `build`; 0, or the usage exit code. */
static int build_option(build_request *req, const char *a, const char *v)
{
    /* the options that take a string */
    const struct {
        const char *name;
        const char **target;
    } strings[] = {
        {"--app-id", &req->app_id},   {"--app-cert-file", &req->cert_file}, {"--user", &req->user},
        {"--channel", &req->channel}, {"--account", &req->account},         {"--role", &req->role},
    };

    for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++) {
        if (strcmp(a, strings[k].name) == 0) {
            *strings[k].target = v;
            return 0;
        }
    }
    if (strcmp(a, "--uid") == 0) {
        if (parse_u32(v, &req->uid) != 0) {
            return usage_error(usage_build, "--uid must be 0..4294967295, got '%s'", v);
        }
        req->have_uid = 1;
    } else if (strcmp(a, "--ttl") == 0) {
        if (parse_u32(v, &req->ttl) != 0 || req->ttl < 1 || req->ttl > CT_CHAT_TTL_MAX) {
            return usage_error(usage_build, "--ttl must be 1..86400, got '%s'", v);
        }
    } else if (strcmp(a, "--privilege-ttl") == 0) {
        if (parse_u32(v, &req->privilege_ttl) != 0 || req->privilege_ttl < 1 ||
            req->privilege_ttl > CT_RTC_TTL_MAX) {
            return usage_error(usage_build, "--privilege-ttl must be 1..86400, got '%s'", v);
        }
    } else if (strcmp(a, "--salt") == 0) {
        if (parse_u32(v, &req->salt) != 0 || req->salt < 1 || req->salt > CT_SALT_MAX) {
            return usage_error(usage_build, "--salt must be 1..99999999, got '%s'", v);
        }
        req->have_salt = 1;
    } else if (strcmp(a, "--issue-ts") == 0) {
        if (parse_u32(v, &req->issue_ts) != 0) {
            return usage_error(usage_build, "--issue-ts must be unix seconds, got '%s'", v);
        }
        req->have_ts = 1;
    } else {
        return usage_error(usage_build, "unknown option '%s'", a);
    }
    return 0;
}

/* The options each kind needs and refuses; 0, or the usage exit code. */
static int build_check(const build_request *req)
{
    const char *k = req->kind;
    int rtc = k != NULL && strcmp(k, "rtc") == 0;

    if (k == NULL ||
        (strcmp(k, "app") != 0 && strcmp(k, "user") != 0 && !rtc && strcmp(k, "rtm") != 0)) {
        return usage_error(usage_build, "say what to build: 'app', 'user', 'rtc' or 'rtm'%s", "");
    }
    if ((strcmp(k, "user") == 0 || strcmp(k, "rtm") == 0) && req->user == NULL) {
        return usage_error(usage_build, "a %s token needs --user USER_ID", k);
    }
    if ((strcmp(k, "app") == 0 || rtc) && req->user != NULL) {
        return usage_error(usage_build, "an %s token has no --user", k);
    }
    if (!rtc && (req->channel != NULL || req->account != NULL || req->have_uid ||
                 req->role != NULL || req->with_rtm || req->privilege_ttl != 0)) {
        return usage_error(usage_build,
                           "--channel, --uid, --account, --role, --privilege-ttl and --with-rtm "
                           "are for rtc tokens, not %s",
                           k);
    }
    if (rtc &&
        (req->channel == NULL || req->role == NULL || req->have_uid == (req->account != NULL))) {
        return usage_error(usage_build,
                           "an rtc token needs --channel, --role and one of --uid or --account%s",
                           "");
    }
    if (rtc && strcmp(req->role, "publisher") != 0 && strcmp(req->role, "subscriber") != 0) {
        return usage_error(usage_build, "--role must be publisher or subscriber, got '%s'",
                           req->role);
    }
    if (req->app_id == NULL) {
        return usage_error(usage_build, "no app id: give --app-id or set CHAT_TOKEN_APP_ID%s", "");
    }
    return 0;
}

static int build_token(const build_request *req, const char *cert, char *token, size_t tokenlen,
                       char *err, size_t errlen)
{
    char uid_account[11];
    ct_rtc_spec rtc;

    if (strcmp(req->kind, "app") == 0) {
        return ct_chat_build_app_token(req->app_id, cert, req->issue_ts, req->salt, req->ttl, token,
                                       tokenlen, NULL, err, errlen);
    }
    if (strcmp(req->kind, "user") == 0) {
        return ct_chat_build_user_token(req->app_id, cert, req->user, req->issue_ts, req->salt,
                                        req->ttl, token, tokenlen, NULL, err, errlen);
    }
    if (strcmp(req->kind, "rtm") == 0) {
        return ct_rtm_build_token(req->app_id, cert, req->user, req->issue_ts, req->salt, req->ttl,
                                  token, tokenlen, NULL, err, errlen);
    }
    ct_rtc_uid_account(req->uid, uid_account);
    rtc.channel_name = req->channel;
    rtc.account = req->have_uid ? uid_account : req->account;
    rtc.role = strcmp(req->role, "publisher") == 0 ? CT_RTC_ROLE_PUBLISHER : CT_RTC_ROLE_SUBSCRIBER;
    rtc.privilege_ttl = req->privilege_ttl != 0 ? req->privilege_ttl : req->ttl;
    rtc.with_rtm = req->with_rtm;
    return ct_rtc_build_token(req->app_id, cert, &rtc, req->issue_ts, req->salt, req->ttl, token,
                              tokenlen, NULL, err, errlen);
}

static int cmd_build(int argc, char **argv)
{
    build_request req = {.app_id = getenv("CHAT_TOKEN_APP_ID"), .ttl = 3600};
    char cert[SECRET_MAX];
    char token[CT_BUILD_MAX_CHARS];
    char err[256];
    int rc;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_build, stdout);
            return 0;
        }
        if (strcmp(a, "--with-rtm") == 0) {
            req.with_rtm = 1;
            continue;
        }
        if (a[0] != '-') {
            if (req.kind != NULL) {
                return usage_error(usage_build, "unexpected argument '%s'", a);
            }
            req.kind = a;
            continue;
        }
        if (v == NULL) {
            return usage_error(usage_build, "%s needs a value", a);
        }
        i++;
        rc = build_option(&req, a, v);
        if (rc != 0) {
            return rc;
        }
    }
    rc = build_check(&req);
    if (rc != 0) {
        return rc;
    }
    if (load_certificate(req.cert_file, cert, sizeof(cert)) != 0) {
        return EXIT_USAGE;
    }
    if (!req.have_ts) {
        req.issue_ts = (uint32_t)time(NULL);
    }
    if (!req.have_salt && ct_salt_random(&req.salt) != CT_OK) {
        fprintf(stderr, "chat-token: the CSPRNG failed\n");
        ct_secret_wipe(cert, sizeof(cert));
        return 1;
    }
    rc = build_token(&req, cert, token, sizeof(token), err, sizeof(err));
    ct_secret_wipe(cert, sizeof(cert));
    if (rc != CT_OK) {
        fprintf(stderr, "chat-token: %s\n", err);
        return EXIT_USAGE;
    }
    printf("%s\n", token);
    return 0;
}

/* The token from argv, or a line of standard input for "-". */
static char *read_token_arg(const char *arg, size_t *len)
{
    static char line[CT_TOKEN_MAX_CHARS + 2];
    size_t n;

    if (strcmp(arg, "-") != 0) {
        *len = strlen(arg);
        return (char *)arg;
    }
    if (fgets(line, sizeof(line), stdin) == NULL) {
        return NULL;
    }
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) {
        line[--n] = '\0';
    }
    *len = n;
    return line;
}

static void iso8601(uint64_t t, char *out, size_t outlen)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *json_view(ct_view v)
{
    json_t *s = json_stringn((const char *)v.data, v.len);
    /* not UTF-8: show the bytes in hex rather than fail */
    if (s == NULL) {
        char hex[2 * 512 + 1];
        size_t n = v.len < 512 ? v.len : 512;
        for (size_t i = 0; i < n; i++) {
            snprintf(hex + 2 * i, 3, "%02x", v.data[i]);
        }
        hex[2 * n] = '\0';
        s = json_pack("{s:s}", "hex", hex);
    }
    return s;
}

static int add_resource(void *ctx, uint16_t rt, uint16_t pt, ct_view resource)
{
    json_t *list = ctx;
    json_array_append_new(list, json_pack("{s:i,s:i,s:o}", "resource_type", rt, "permission_type",
                                          pt, "resource", json_view(resource)));
    return 0;
}

static json_t *service_json(const ct_token *tok, const ct_service *s)
{
    const char *name = ct_service_type_name(s->type);
    json_t *privs = json_array();
    json_t *fields = json_object();
    char iso[32];

    for (uint16_t i = 0; i < s->privilege_count; i++) {
        const ct_privilege *p = &s->privileges[i];
        const char *pname = ct_privilege_name(s->type, p->id);
        uint64_t at = ct_privilege_expire_at(tok, p);
        iso8601(at, iso, sizeof(iso));
        json_array_append_new(privs, json_pack("{s:i,s:s?,s:I,s:I,s:s}", "privilege", p->id, "name",
                                               pname, "expire", (json_int_t)p->value, "expire_at",
                                               (json_int_t)at, "expire_at_iso", iso));
    }
    for (uint16_t i = 0; i < s->field_count; i++) {
        const ct_field *f = &s->fields[i];
        if (f->kind == CT_FIELD_INT) {
            json_object_set_new(fields, f->name, json_integer(f->number));
        } else if (f->kind == CT_FIELD_STRING) {
            json_object_set_new(fields, f->name, json_view(f->bytes));
        } else {
            json_t *list = json_array();
            ct_rtm2_permissions_walk(f->bytes, add_resource, list);
            json_object_set_new(fields, f->name, list);
        }
    }
    return json_pack("{s:i,s:s?,s:o,s:o}", "type", s->type, "name", name, "privileges", privs,
                     "fields", fields);
}

static int cmd_inspect(int argc, char **argv)
{
    static ct_token tok;
    char err[256];
    char iso[32];
    size_t len;
    const char *token;
    json_t *services;
    json_t *out;
    int rc;

    if (argc != 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        fputs(usage_inspect, argc == 1 ? stdout : stderr);
        return argc == 1 ? 0 : EXIT_USAGE;
    }
    token = read_token_arg(argv[0], &len);
    if (token == NULL) {
        fprintf(stderr, "chat-token: no token on standard input\n");
        return EXIT_USAGE;
    }
    rc = ct_token_parse(token, len, &tok, err, sizeof(err));
    if (rc != CT_OK) {
        fprintf(stderr, "chat-token: cannot parse the token (%s): %s\n", ct_result_name(rc), err);
        return 1;
    }
    services = json_array();
    for (uint16_t i = 0; i < tok.service_count; i++) {
        json_array_append_new(services, service_json(&tok, &tok.services[i]));
    }
    iso8601(ct_token_expire_at(&tok), iso, sizeof(iso));
    out = json_pack("{s:s,s:o,s:I,s:I,s:I,s:s,s:I,s:o}", "version", CT_VERSION, "app_id",
                    json_view(tok.app_id), "issue_ts", (json_int_t)tok.issue_ts, "expire",
                    (json_int_t)tok.expire, "expire_at", (json_int_t)ct_token_expire_at(&tok),
                    "expire_at_iso", iso, "salt", (json_int_t)tok.salt, "services", services);
    if (tok.unknown_service_type != 0) {
        json_object_set_new(out, "unknown_service_type", json_integer(tok.unknown_service_type));
    }
    json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(out);
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    static ct_token tok;
    const char *token_arg = NULL;
    const char *cert_file = NULL;
    const char *token;
    char cert[SECRET_MAX];
    char err[256];
    char iso[32];
    size_t len;
    int rc;
    int64_t left;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_verify, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--app-cert-file") == 0) {
            if (i + 1 == argc) {
                return usage_error(usage_verify, "%s needs a value", argv[i]);
            }
            cert_file = argv[++i];
        } else if (token_arg == NULL && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)) {
            token_arg = argv[i];
        } else {
            return usage_error(usage_verify, "unexpected argument '%s'", argv[i]);
        }
    }
    if (token_arg == NULL) {
        return usage_error(usage_verify, "give the token, or '-' to read it from stdin%s", "");
    }
    if (load_certificate(cert_file, cert, sizeof(cert)) != 0) {
        return EXIT_USAGE;
    }
    token = read_token_arg(token_arg, &len);
    if (token == NULL) {
        fprintf(stderr, "chat-token: no token on standard input\n");
        return EXIT_USAGE;
    }
    rc = ct_token_parse(token, len, &tok, err, sizeof(err));
    if (rc != CT_OK) {
        ct_secret_wipe(cert, sizeof(cert));
        printf("signature: not checked: the token is malformed (%s): %s\n", ct_result_name(rc),
               err);
        return 1;
    }
    rc = ct_token_verify(&tok, cert);
    ct_secret_wipe(cert, sizeof(cert));
    if (rc != CT_OK) {
        printf("signature: invalid (%s): the token was not signed with this certificate, "
               "or was altered\n",
               ct_result_name(rc));
        return 1;
    }
    printf("signature: ok\n");
    iso8601(ct_token_expire_at(&tok), iso, sizeof(iso));
    left = (int64_t)ct_token_expire_at(&tok) - (int64_t)time(NULL);
    if (left > 0) {
        printf("expiry: valid for %lld s more (until %s)\n", (long long)left, iso);
    } else {
        printf("expiry: expired %lld s ago (at %s)\n", (long long)-left, iso);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "build") == 0) {
        return cmd_build(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "inspect") == 0) {
        return cmd_inspect(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "verify") == 0) {
        return cmd_verify(argc - 2, argv + 2);
    }
    fprintf(stderr, "chat-token: unknown command '%s'\n\n%s", argv[1], usage_main);
    return EXIT_USAGE;
}
