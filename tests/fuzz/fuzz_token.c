/* libFuzzer target for the token parser: ct_token_parse of arbitrary bytes,
 * then, on success, everything a caller does with a parsed token (verify with
 * a fixed certificate, the RTM2 permission walk, the expiry helpers), so that
 * ASan and UBSan see every view the parser hands out being read. And the
 * parser's own inflater against zlib's, on the input itself and on the
 * base64-decoded body of a "007" input: whenever ct_inflate answers, zlib's
 * inflate must give the same bytes. */
#include "base64.h"
#include "deflate.h"
#include "token.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FUZZ_CERT "5CFd2fd1755d40ecb72977518be15d3b"

/* where the sums go, so that the reads above cannot be optimised away */
static volatile unsigned long fuzz_sink;

/* Touches every byte of each resource: a view past the payload would be an
 * ASan report here rather than a silent over-read somewhere later. */
static int sum_resource(void *ctx, uint16_t resource_type, uint16_t permission_type,
                        ct_view resource)
{
    unsigned long *sum = ctx;

    *sum += resource_type + permission_type;
    for (size_t i = 0; i < resource.len; i++) {
        *sum += resource.data[i];
    }
    return 0;
}

static unsigned long check_service(const ct_token *tok, const ct_service *s)
{
    unsigned long sum = 0;

    if (s->privilege_count > CT_MAX_PRIVILEGES || s->field_count > CT_MAX_FIELDS) {
        abort(); /* the parser must never report more than it keeps */
    }
    for (uint16_t j = 0; j < s->privilege_count; j++) {
        if (ct_privilege_expire_at(tok, &s->privileges[j]) < tok->issue_ts) {
            abort(); /* 64-bit sum of two u32: cannot wrap */
        }
        sum += ct_privilege_name(s->type, s->privileges[j].id) != NULL;
    }
    for (uint16_t j = 0; j < s->field_count; j++) {
        const ct_field *f = &s->fields[j];
        for (size_t k = 0; k < f->bytes.len; k++) {
            sum += f->bytes.data[k];
        }
        if (f->kind == CT_FIELD_RTM2_PERMISSIONS &&
            ct_rtm2_permissions_walk(f->bytes, sum_resource, &sum) != CT_OK) {
            abort(); /* the parser already walked these bytes successfully */
        }
    }
    return sum;
}

/* ct_inflate answers only for streams zlib decodes to the same bytes, ending
 * exactly at the end of the input. */
static void check_inflate(const uint8_t *in, size_t n)
{
    static uint8_t ours[CT_PAYLOAD_MAX];
    static uint8_t theirs[CT_PAYLOAD_MAX];
    z_stream z;
    size_t len = 0;
    int zrc;

    if (ct_inflate(in, n, ours, sizeof(ours), &len) != CT_INFLATE_OK) {
        return;
    }
    memset(&z, 0, sizeof(z));
    if (inflateInit(&z) != Z_OK) {
        abort();
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = theirs;
    z.avail_out = sizeof(theirs);
    zrc = inflate(&z, Z_FINISH);
    if (zrc != Z_STREAM_END || z.avail_in != 0 || sizeof(theirs) - z.avail_out != len ||
        memcmp(ours, theirs, len) != 0) {
        abort();
    }
    inflateEnd(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t body[CT_TOKEN_MAX_CHARS];
    /* 64 KiB of payload: one per process, as the header asks */
    static ct_token tok;
    unsigned long sum = 0;
    char err[256];
    int rc;

    check_inflate(data, size);
    if (size > 3 && memcmp(data, "007", 3) == 0) {
        size_t n = ct_base64_decode((const char *)data + 3, size - 3, body, sizeof(body));
        if (n != (size_t)-1) {
            check_inflate(body, n);
        }
    }
    rc = ct_token_parse((const char *)data, size, &tok, err, sizeof(err));
    if (rc != CT_OK) {
        return 0;
    }
    if (tok.service_count > CT_MAX_SERVICES || tok.payload_len > CT_PAYLOAD_MAX) {
        abort();
    }
    rc = ct_token_verify(&tok, FUZZ_CERT);
    if (rc != CT_OK && rc != CT_E_SIGNATURE) {
        abort(); /* a parsed token is never "malformed" to verify */
    }
    sum += ct_token_expire_at(&tok) >= tok.issue_ts;
    for (uint16_t i = 0; i < tok.service_count; i++) {
        sum += check_service(&tok, &tok.services[i]);
    }
    /* the signature and signing_info views must lie inside the payload */
    for (size_t k = 0; k < tok.signature.len; k++) {
        sum += tok.signature.data[k];
    }
    for (size_t k = 0; k < tok.app_id.len; k++) {
        sum += tok.app_id.data[k];
    }
    fuzz_sink = sum;
    return 0;
}
