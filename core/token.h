/* AccessToken2 ("007") codec: build, parse and verify Agora tokens, and the
 * Chat token builders on top. Pure functions of their inputs: the caller's
 * edge supplies the clock and the salt (ct_salt_random). No gRPC, no network. */
#ifndef CT_TOKEN_H
#define CT_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define CT_VERSION "007"
#define CT_HEX_ID_LEN 32         /* app id and app certificate: 32 hex chars */
#define CT_SIGNATURE_LEN 32      /* HMAC-SHA256 */
#define CT_PAYLOAD_MAX 65536     /* inflated token payload bound */
#define CT_TOKEN_MAX_CHARS 65536 /* token string bound, prefix included */
#define CT_MAX_SERVICES 16       /* services kept by the parser */
#define CT_MAX_PRIVILEGES 16     /* privileges per service */
#define CT_MAX_FIELDS 4          /* service fields (strings or integers) */
#define CT_SALT_MAX 99999999u    /* salts are uniform in 1..CT_SALT_MAX */
#define CT_CHAT_TTL_MAX 86400u   /* Chat tokens live at most 24 h */
#define CT_USER_ID_MAX 255       /* Chat user ids are far shorter */
/* A Chat token is under 200 characters; this bounds any token we build. */
#define CT_BUILD_MAX_CHARS 2048

/* Service types, as the reference implementations number them. */
enum ct_service_type {
    CT_SERVICE_RTC = 1,
    CT_SERVICE_RTM = 2,
    CT_SERVICE_STREAMING = 3,
    CT_SERVICE_FPA = 4,
    CT_SERVICE_CHAT = 5,
    CT_SERVICE_FCDN = 6,
    CT_SERVICE_APAAS = 7,
    CT_SERVICE_RTM2 = 8,
    CT_SERVICE_CONVOAI = 9,
    CT_SERVICE_STT = 10,
};

enum ct_chat_privilege {
    CT_CHAT_PRIVILEGE_USER = 1,
    CT_CHAT_PRIVILEGE_APP = 2,
};

/* Results. Every failure has its own code so callers can map it precisely. */
enum ct_result {
    CT_OK = 0,
    CT_E_ARGUMENT = -1,    /* a caller-side argument is out of range */
    CT_E_APP_ID = -2,      /* app id is not 32 hex characters */
    CT_E_CERTIFICATE = -3, /* app certificate is not 32 hex characters */
    CT_E_PREFIX = -4,      /* token does not start with "007" */
    CT_E_BASE64 = -5,      /* body is not canonical padded base64 */
    CT_E_INFLATE = -6,     /* body is not a valid zlib stream */
    CT_E_TOO_LARGE = -7,   /* token or inflated payload over the bounds */
    CT_E_TRUNCATED = -8,   /* a field or length points past the end */
    CT_E_TRAILING = -9,    /* bytes left over after the last service */
    CT_E_LIMIT = -10,      /* more services or privileges than we keep */
    CT_E_SIGNATURE = -11,  /* signature does not match */
    CT_E_BUFFER = -12,     /* output buffer too small */
    CT_E_INTERNAL = -13,   /* OpenSSL or zlib failed unexpectedly */
};

/* Short stable name for a result ("bad_signature", ...). */
const char *ct_result_name(int result);

/* A byte range inside a parsed token's payload (not NUL-terminated). */
typedef struct ct_view {
    const uint8_t *data;
    size_t len;
} ct_view;

typedef struct ct_privilege {
    uint16_t id;
    uint32_t value; /* seconds relative to issue_ts */
} ct_privilege;

enum ct_field_kind { CT_FIELD_STRING = 1, CT_FIELD_INT = 2, CT_FIELD_RTM2_PERMISSIONS = 3 };

typedef struct ct_field {
    const char *name;
    enum ct_field_kind kind;
    ct_view bytes;  /* CT_FIELD_STRING, and the raw encoding for RTM2 permissions */
    int64_t number; /* CT_FIELD_INT */
} ct_field;

typedef struct ct_service {
    uint16_t type;
    uint16_t privilege_count;
    ct_privilege privileges[CT_MAX_PRIVILEGES];
    uint16_t field_count;
    ct_field fields[CT_MAX_FIELDS];
} ct_service;

/* A parsed token. Views point into payload, so the struct owns its bytes;
 * it is large (64 KiB): keep one per thread or on the heap, not per call. */
typedef struct ct_token {
    ct_view signature;
    ct_view signing_info;
    ct_view app_id;
    uint32_t issue_ts;
    uint32_t expire;
    uint32_t salt;
    uint16_t declared_service_count; /* as written in the token */
    uint16_t service_count;          /* parsed (stops at an unknown type) */
    uint16_t unknown_service_type;   /* 0, or the type parsing stopped at */
    /* [0, service_count) parsed; [0] is all zero when none was, and those
     * past service_count (and past [0]) are not cleared between parses */
    ct_service services[CT_MAX_SERVICES];
    size_t payload_len;
    uint8_t payload[CT_PAYLOAD_MAX];
} ct_token;

/* Input to the generic builder: one service with privileges and string fields
 * in the order the service packs them. */
typedef struct ct_service_spec {
    uint16_t type;
    uint16_t privilege_count;
    const ct_privilege *privileges;
    uint16_t string_count;
    const char *const *strings;
} ct_service_spec;

typedef struct ct_build_params {
    const char *app_id;
    const char *app_certificate;
    uint32_t issue_ts;
    uint32_t salt;
    uint32_t expire; /* seconds relative to issue_ts */
    uint16_t service_count;
    const ct_service_spec *services; /* packed sorted by type (stable) */
} ct_build_params;

/* 1 when s is exactly 32 hex characters (either case). */
int ct_is_hex_id(const char *s);

/* Builds a token into out (NUL-terminated); *written gets its length.
 * Deterministic for given params. Never allocates in the steady state. */
int ct_token_build(const ct_build_params *params, char *out, size_t outlen, size_t *written,
                   char *err, size_t errlen);

/* Chat builders: user_id "" and privilege APP for the app token; ttl 1..86400
 * goes into the token's expire field and the privilege value. */
int ct_chat_build_app_token(const char *app_id, const char *app_certificate, uint32_t issue_ts,
                            uint32_t salt, uint32_t ttl, char *out, size_t outlen, size_t *written,
                            char *err, size_t errlen);
int ct_chat_build_user_token(const char *app_id, const char *app_certificate, const char *user_id,
                             uint32_t issue_ts, uint32_t salt, uint32_t ttl, char *out,
                             size_t outlen, size_t *written, char *err, size_t errlen);

/* Parses token (len bytes, need not be NUL-terminated) into *tok. Strict and
 * bounded: never reads past the input, never inflates past CT_PAYLOAD_MAX. */
int ct_token_parse(const char *token, size_t len, ct_token *tok, char *err, size_t errlen);

/* Recomputes the signature of a parsed token with app_certificate and
 * compares in constant time: CT_OK, CT_E_SIGNATURE or CT_E_CERTIFICATE. */
int ct_token_verify(const ct_token *tok, const char *app_certificate);

/* Absolute expiry: issue_ts + expire (or + a privilege value), in 64 bits so
 * that it cannot wrap. */
uint64_t ct_token_expire_at(const ct_token *tok);
uint64_t ct_privilege_expire_at(const ct_token *tok, const ct_privilege *privilege);

/* Names for display: "chat", "rtc", ...; privilege names per service type.
 * Unknown values give NULL. */
const char *ct_service_type_name(uint16_t type);
const char *ct_privilege_name(uint16_t service_type, uint16_t privilege);

/* A salt from the CSPRNG, uniform in 1..CT_SALT_MAX. CT_OK or CT_E_INTERNAL. */
int ct_salt_random(uint32_t *salt);

/* Walks the RTM2 permissions encoding of a parsed field: calls fn for each
 * resource. Returns CT_OK or the callback's non-zero value. */
typedef int (*ct_rtm2_resource_fn)(void *ctx, uint16_t resource_type, uint16_t permission_type,
                                   ct_view resource);
int ct_rtm2_permissions_walk(ct_view permissions, ct_rtm2_resource_fn fn, void *ctx);

#endif
