/* mTLS client identities (auth.mtls_clients[].id): which certificate SAN
 * type an id is compared with, and what a well-formed id looks like. An id
 * with a URI scheme (spiffe://..., https://...) names a URI SAN, any other
 * id a DNS SAN; email and IP SANs and the subject CN never identify a
 * client. SPIFFE IDs follow the SPIFFE ID and X.509-SVID standards. */
#ifndef CT_PEER_ID_H
#define CT_PEER_ID_H

#include <stddef.h>

enum ct_peer_id_kind {
    CT_PEER_ID_DNS = 0, /* compared with DNS SANs, case-insensitively */
    CT_PEER_ID_URI,     /* compared with URI SANs, byte for byte */
};

/* CT_PEER_ID_URI when id[0..len) starts with a URI scheme and ':' (RFC 3986:
 * a letter, then letters, digits, '+', '-', '.'), else CT_PEER_ID_DNS. */
enum ct_peer_id_kind ct_peer_id_kind(const char *id, size_t len);

/* 1 when s[0..len) starts with "spiffe:" (any case: the scheme is what
 * decides whether the SPIFFE rules apply). */
int ct_peer_id_is_spiffe(const char *s, size_t len);

/* 1 when s[0..len) is a SPIFFE ID: "spiffe://", a trust domain of 1..255
 * characters [a-z0-9._-], then zero or more "/segment" with segments of
 * [A-Za-z0-9._-] that are not empty, "." or ".."; 2048 bytes at most; no
 * port, user info, query, fragment or percent-encoding. */
int ct_spiffe_id_valid(const char *s, size_t len);

/* Checks a configured id: a SPIFFE ID by the rules above, another URI of
 * printable ASCII without spaces, or a DNS name (labels of [A-Za-z0-9_-]
 * and '.', at most 253 characters; not an email address or an IP address,
 * whose SANs never match). 0, or -1 with err saying why. */
int ct_peer_id_check(const char *id, char *err, size_t errlen);

#endif
