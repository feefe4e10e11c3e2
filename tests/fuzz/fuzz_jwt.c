/* libFuzzer target over the JWT path (core/jwt.c): the Bearer value as it
 * comes (ct_jwt_is_jws), split and decoded (header, payload, signature,
 * sizes), the issuer picked by iss and aud, then verified against a fixed
 * JWKS (an RSA 2048 and an EC P-256 key) at a fixed clock; an input that
 * starts with 'K' is a JWKS document for ct_jwt_keyset_parse instead.
 *
 * The seeds in corpus/jwt/ were signed once by the private halves of the
 * keys below (made by tests/fakes/idp.py, then discarded), so the fuzzer
 * starts from tokens that verify; corpus/jwt/jwks is this JWKS. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jwt.h"

#define FUZZ_NOW 1800000000

static const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":"
    "\"6KrPSNeoD6JGHAYndxJYWpu"
    "DsIR1B-VEE4x1NEvYtYmc1fNw6gzvlfYBmIFueILevIEpx7iy9pr1MO96MKIb3V9mJvkuO0Ys1wde29kxmjpt1LO"
    "z12ckUnJHJsuhkbA5cGLhnM-UhcwV-n-eSTcWPihDx7PSyy_ff6kVSUQmy7uwX-hmzAM9ywKjBO0qUhS4lEXYI0x"
    "WA4qIM2sg9zm3RmEun9OTM_83PCHSqFbpvycVpLIjBwB0xBc3Z02gdtECOeC237Xj10uRpFBJrKIoLENmBn2M6e3"
    "680QtWd0jF4MZDDzZD7iGowBnvoYv8cuhPquu5xBnxiY-ER_nysUlWQ\",\"e\":\"AQAB\"},{\"kty\":\"EC\","
    "\"kid\":\""
    "ec\",\"use\":\"sig\",\"alg\":\"ES256\",\"crv\":\"P-256\",\"x\":"
    "\"kiwqtL2pVudoVYxFDjEgKvtp7hzuN2JJNfumgrY"
    "jgz4\",\"y\":\"NXABXHprWAdahkmfKUp7VLOvhsvYF80cKU_q8FBSLzw\"}]}";

static ct_jwt_keyset *keys;
static ct_config cfg;

static void setup(void)
{
    char err[256];
    ct_jwt_issuer *j = &cfg.jwt[0];

    keys = ct_jwt_keyset_parse(jwks, sizeof(jwks) - 1, NULL, err, sizeof(err));
    if (keys == NULL || ct_jwt_keyset_count(keys) != 2) {
        fprintf(stderr, "fuzz_jwt: the JWKS does not load\n");
        __builtin_trap();
    }
    cfg.jwt_count = 1;
    snprintf(j->name, sizeof(j->name), "app-users");
    snprintf(j->issuer, sizeof(j->issuer), "https://idp.test/");
    j->audience_count = 1;
    snprintf(j->audiences[0], sizeof(j->audiences[0]), "chat-tokend");
    j->leeway_seconds = 30;
    snprintf(j->username_claim, sizeof(j->username_claim), "preferred_username");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const ct_jwt_issuer *issuer;
    ct_jwt_claims claims;
    char err[256];
    ct_jwt jwt;

    if (keys == NULL) {
        setup();
    }
    if (size > 0 && data[0] == 'K') {
        ct_jwt_keyset_free(ct_jwt_keyset_parse(text + 1, size - 1, NULL, err, sizeof(err)));
        return 0;
    }
    (void)ct_jwt_is_jws(text, size);
    if (ct_jwt_parse(text, size, &jwt, err, sizeof(err)) == CT_JWT_OK) {
        issuer = ct_jwt_find_issuer(&cfg, &jwt);
        if (issuer != NULL) {
            (void)ct_jwt_verify(&jwt, keys, issuer, FUZZ_NOW, &claims, err, sizeof(err));
        }
        /* the same token when no keys are loaded yet */
        (void)ct_jwt_verify(&jwt, NULL, &cfg.jwt[0], FUZZ_NOW, &claims, err, sizeof(err));
    }
    ct_jwt_release(&jwt);
    return 0;
}
