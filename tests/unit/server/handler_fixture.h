/* The fixture the handler unit tests share (test_handlers.c,
 * test_rtc_handlers.c): one app with a current and a previous certificate,
 * fixed TTL bounds and a fixed clock, so both test files build tokens the
 * same way. Header-only: each test is its own executable. */
#ifndef TEST_HANDLER_FIXTURE_H
#define TEST_HANDLER_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "handlers.h"

#define APP_ID "970CA35de60c44645bbae8a215061b33"
#define CERT "5CFd2fd1755d40ecb72977518be15d3b"
#define OLD_CERT "0123456789abcdef0123456789abcdef"
#define NOW 1800000000

static inline int64_t fixture_now(void)
{
    return NOW;
}

/* cfg: defaults, APP_ID with CERT and OLD_CERT, TTLs 3600 default, 7200
 * max, 60 s renew grace; ctx: that config, no directory, the fixed clock. */
static inline void fixture_context(ct_config *cfg, srv_context *ctx)
{
    ct_config_defaults(cfg);
    memcpy(cfg->app_id, APP_ID, 33);
    memcpy(cfg->app_certificate, CERT, 33);
    memcpy(cfg->previous_certificates[0], OLD_CERT, 33);
    cfg->previous_certificate_count = 1;
    cfg->default_ttl_seconds = 3600;
    cfg->max_ttl_seconds = 7200;
    cfg->renew_grace_seconds = 60;
    ctx->config = cfg;
    ctx->directory = NULL;
    ctx->now = fixture_now;
}

/* token parses and verifies with CERT, into *tok. */
static inline void fixture_parse_ok(const char *token, ct_token *tok)
{
    assert_int_equal(ct_token_parse(token, strlen(token), tok, NULL, 0), CT_OK);
    assert_int_equal(ct_token_verify(tok, CERT), CT_OK);
}

#endif
