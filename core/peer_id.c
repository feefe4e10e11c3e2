/* mTLS client identities: SAN type of an id, SPIFFE ID syntax, id checks. */
#include "peer_id.h"

#include <arpa/inet.h>
#include <string.h>

#include "text.h"

#define SPIFFE_ID_MAX 2048
#define SPIFFE_TRUST_DOMAIN_MAX 255
#define DNS_NAME_MAX 253

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

enum ct_peer_id_kind ct_peer_id_kind(const char *id, size_t len)
{
    size_t i = 1;

    if (len == 0 || !is_alpha(id[0])) {
        return CT_PEER_ID_DNS;
    }
    while (i < len &&
           (is_alpha(id[i]) || is_digit(id[i]) || id[i] == '+' || id[i] == '-' || id[i] == '.')) {
        i++;
    }
    return i < len && id[i] == ':' ? CT_PEER_ID_URI : CT_PEER_ID_DNS;
}

int ct_peer_id_is_spiffe(const char *s, size_t len)
{
    static const char scheme[] = "spiffe:";

    if (len < sizeof(scheme) - 1) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(scheme) - 1; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (c != scheme[i]) {
            return 0;
        }
    }
    return 1;
}

int ct_spiffe_id_valid(const char *s, size_t len)
{
    static const char prefix[] = "spiffe://";
    const size_t prefix_len = sizeof(prefix) - 1;
    size_t i = prefix_len;
    size_t start;

    if (len <= prefix_len || len > SPIFFE_ID_MAX || memcmp(s, prefix, prefix_len) != 0) {
        return 0;
    }
    /* trust domain: lower case only, no port or user info */
    start = i;
    while (i < len && s[i] != '/') {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '.' || c == '-' || c == '_')) {
            return 0;
        }
        i++;
    }
    if (i == start || i - start > SPIFFE_TRUST_DOMAIN_MAX) {
        return 0;
    }
    /* path: "/segment"..., no empty, "." or ".." segment, no trailing '/' */
    while (i < len) {
        size_t seg_len;

        i++; /* the '/' */
        start = i;
        while (i < len && s[i] != '/') {
            char c = s[i];
            if (!(is_alpha(c) || is_digit(c) || c == '.' || c == '-' || c == '_')) {
                return 0;
            }
            i++;
        }
        seg_len = i - start;
        if (seg_len == 0 || (seg_len == 1 && s[start] == '.') ||
            (seg_len == 2 && s[start] == '.' && s[start + 1] == '.')) {
            return 0;
        }
    }
    return 1;
}

static int dns_name_valid(const char *s, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > DNS_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0) {
                return 0;
            }
            label = 0;
        } else if (is_alpha(c) || is_digit(c) || c == '-' || c == '_') {
            if (++label > 63) {
                return 0;
            }
        } else {
            return 0;
        }
    }
    return label > 0;
}

int ct_peer_id_check(const char *id, char *err, size_t errlen)
{
    size_t len = strlen(id);
    unsigned char addr[16];

    /* before the scheme test: "fe80::1" would pass for scheme "fe80" */
    if (inet_pton(AF_INET, id, addr) == 1 || inet_pton(AF_INET6, id, addr) == 1) {
        ct_set_error(err, errlen,
                     "\"%s\" is an IP address: IP SANs never identify a client (use a URI SAN "
                     "such as a SPIFFE ID, or a DNS SAN)",
                     id);
        return -1;
    }
    if (ct_peer_id_kind(id, len) == CT_PEER_ID_URI) {
        if (ct_peer_id_is_spiffe(id, len) && !ct_spiffe_id_valid(id, len)) {
            ct_set_error(err, errlen,
                         "\"%s\" is not a SPIFFE ID (spiffe://trust-domain/path: lower-case "
                         "trust domain, path segments of A-Z a-z 0-9 . - _, not . or .., no "
                         "trailing /)",
                         id);
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            if ((unsigned char)id[i] <= ' ' || (unsigned char)id[i] >= 0x7f) {
                ct_set_error(err, errlen, "a URI id may hold only printable ASCII, no spaces");
                return -1;
            }
        }
        return 0;
    }
    if (strchr(id, '@') != NULL) {
        ct_set_error(err, errlen,
                     "\"%s\" looks like an email address: email SANs never identify a client "
                     "(use a URI SAN such as a SPIFFE ID, or a DNS SAN)",
                     id);
        return -1;
    }
    if (!dns_name_valid(id, len)) {
        ct_set_error(err, errlen,
                     "\"%s\" is neither a URI (scheme:...) nor a DNS name (labels of A-Z a-z "
                     "0-9 - _ separated by dots)",
                     id);
        return -1;
    }
    return 0;
}
