/* libFuzzer target for the token parser: ct_token_parse of arbitrary bytes,
 * then, on success, everything a caller does with a parsed token (verify with
 * a fixed certificate, the RTM2 permission walk, the expiry helpers), so that
 * ASan and UBSan see every view the parser hands out being read. */
#include "token.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 64 KiB of payload: one per process, as the header asks */
    static ct_token tok;
    unsigned long sum = 0;
    char err[256];
    int rc;

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
