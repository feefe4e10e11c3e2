/* libFuzzer target for request messages as the gRPC side takes them in
 * (server/grpc_server.c): the first input byte picks the message, the rest
 * is its wire bytes. Like dispatch_token_call: the NUL check on string
 * fields, then protobuf-c's unpack, then the handler with its validation
 * (username, channel, account, roles, ttls, the renewed token's parse,
 * verify and shape), on a fixed config
 * in username identity mode and a fixed clock, so no directory and no
 * network. Health check requests are decoded as the health service does.
 * Selector 6 is the call's metadata instead: "name: value" lines, collected
 * and identified as authenticate() does (one credential at most). */
#include "chattoken/v1/token_service.pb-c.h"
#include "credential_lines.h"
#include "grpc/health/v1/health.pb-c.h"
#include "handlers.h"
#include "rtc_proto.h"
#include "wire.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NOW 1800000000 /* the clock of the seed tokens (tests/fuzz/corpus/requests) */

/* The integration tests' app (tests/integration/harness.py), with a
 * previous certificate so that renewals try both. */
static const char fuzz_config_yaml[] =
    "listen: [\"127.0.0.1:0\"]\n"
    "app:\n"
    "  id: 970CA35de60c44645bbae8a215061b33\n"
    "  certificate: 5CFd2fd1755d40ecb72977518be15d3b\n"
    "  previous_certificates: [0a1b2c3d4e5f60718293a4b5c6d7e8f9]\n"
    "  key: org#app\n"
    "tokens: {default_ttl_seconds: 3600, max_ttl_seconds: 7200, renew_grace_seconds: 60}\n"
    "user_tokens: {identity: username}\n"
    "auth:\n"
    "  allow_unauthenticated: true\n"
    "  api_keys:\n" /* the key is "fuzz-key" */
    "    - {name: fuzz, methods: [GetUserToken],\n"
    "       sha256: 231e9b2f757db8d48ecd0711b60135e1cc57a3a807be9dc12638856f17a7872c}\n";

static ct_config cfg;
static srv_context ctx;
static srv_caller caller;

static int64_t fixed_now(void)
{
    return FUZZ_NOW;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];

    (void)argc;
    (void)argv;
    unsetenv("CHAT_TOKEN_APP_ID");
    unsetenv("CHAT_TOKEN_APP_CERTIFICATE");
    unsetenv("CHAT_TOKEN_APP_CERTIFICATE_FILE");
    if (ct_config_load(&cfg, "fuzz_requests", fuzz_config_yaml, err, sizeof(err)) != 0) {
        abort();
    }
    ctx.config = &cfg;
    ctx.directory = NULL;
    ctx.now = fixed_now;
    strcpy(caller.name, "fuzz");
    caller.methods = CT_METHOD_ALL;
    return 0;
}

static void check_reply(const srv_token_reply *reply, const srv_status *status, int rc)
{
    if (rc != (int)status->code) {
        abort();
    }
    if (rc == SRV_OK) {
        if (reply->token[0] == '\0' ||
            strnlen(reply->token, sizeof(reply->token)) == sizeof(reply->token)) {
            abort();
        }
    } else if (status->message[0] == '\0') {
        abort(); /* every refusal says why */
    }
}

static void user_done(srv_user_request *request)
{
    *(int *)request->arg = 1;
}

/* A token call on a decoded request: the handler's return code. */
typedef int (*token_call)(const ProtobufCMessage *message, srv_token_reply *reply,
                          srv_status *status);

static int app_call(const ProtobufCMessage *message, srv_token_reply *reply, srv_status *status)
{
    const Chattoken__V1__GetAppTokenRequest *req = (const void *)message;
    return srv_get_app_token(&ctx, &caller, req->ttl_seconds, reply, status);
}

static int renew_call(const ProtobufCMessage *message, srv_token_reply *reply, srv_status *status)
{
    const Chattoken__V1__RenewTokenRequest *req = (const void *)message;
    return srv_renew_token(&ctx, &caller, req->token, strlen(req->token), req->ttl_seconds, reply,
                           status);
}

static int rtc_call(const ProtobufCMessage *message, srv_token_reply *reply, srv_status *status)
{
    srv_rtc_request r;
    srv_rtc_request_from_proto((const Chattoken__V1__GetRtcTokenRequest *)message, &r);
    return srv_get_rtc_token(&ctx, &caller, &r, reply, status);
}

static int rtm_call(const ProtobufCMessage *message, srv_token_reply *reply, srv_status *status)
{
    const Chattoken__V1__GetRtmTokenRequest *req = (const void *)message;
    return srv_get_rtm_token(&ctx, &caller, req->user_id, req->ttl_seconds, reply, status);
}

/* Unpacks a request of type descriptor and, when it decodes, checks what
 * call answers. */
static void fuzz_token_call(const ProtobufCMessageDescriptor *descriptor, token_call call,
                            const uint8_t *data, size_t len)
{
    ProtobufCMessage *req = protobuf_c_message_unpack(descriptor, NULL, len, data);
    static srv_token_reply reply;
    srv_status status;

    if (req == NULL) {
        return;
    }
    check_reply(&reply, &status, call(req, &reply, &status));
    protobuf_c_message_free_unpacked(req, NULL);
}

static void fuzz_user(const uint8_t *data, size_t len)
{
    Chattoken__V1__GetUserTokenRequest *req =
        chattoken__v1__get_user_token_request__unpack(NULL, len, data);
    static srv_user_request request;
    int done = 0;

    if (req == NULL) {
        return;
    }
    srv_get_user_token(&ctx, &caller, req->username, strlen(req->username), req->ttl_seconds,
                       INT64_MAX, &request, user_done, &done);
    if (!done) {
        abort(); /* username mode answers before returning */
    }
    if (request.status.code == SRV_OK &&
        strspn(request.reply.user_id, ".") == strlen(request.reply.user_id)) {
        abort(); /* "." and ".." are path segments, never usernames */
    }
    check_reply(&request.reply, &request.status, (int)request.status.code);
    chattoken__v1__get_user_token_request__free_unpacked(req, NULL);
}

static void fuzz_health(const uint8_t *data, size_t len)
{
    Grpc__Health__V1__HealthCheckRequest *req =
        grpc__health__v1__health_check_request__unpack(NULL, len, data);

    if (req != NULL) {
        if (req->service == NULL) {
            abort(); /* proto3 strings unpack as "" */
        }
        grpc__health__v1__health_check_request__free_unpacked(req, NULL);
    }
}

static void fuzz_credentials(const uint8_t *data, size_t len)
{
    fuzz_credential_lines(&cfg, (const char *)data, len, "fuzz");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *message;
    uint8_t which;

    if (size == 0) {
        return 0;
    }
    /* 0 app, 1 user, 2 renew, 3 health, 4 rtc, 5 rtm, 6 the call's metadata */
    which = data[0] % 7;
    size--;
    /* an exact-size copy: a read past the message is an ASan report */
    message = malloc(size > 0 ? size : 1);
    if (message == NULL) {
        return 0;
    }
    memcpy(message, data + 1, size);
    if (which == 6) {
        fuzz_credentials(message, size);
    } else if (which == 3) {
        fuzz_health(message, size);
    } else if (!srv_wire_has_nul_in_strings(message, size)) {
        if (which == 0) {
            fuzz_token_call(&chattoken__v1__get_app_token_request__descriptor, app_call, message,
                            size);
        } else if (which == 1) {
            fuzz_user(message, size);
        } else if (which == 2) {
            fuzz_token_call(&chattoken__v1__renew_token_request__descriptor, renew_call, message,
                            size);
        } else if (which == 4) {
            fuzz_token_call(&chattoken__v1__get_rtc_token_request__descriptor, rtc_call, message,
                            size);
        } else {
            fuzz_token_call(&chattoken__v1__get_rtm_token_request__descriptor, rtm_call, message,
                            size);
        }
    }
    free(message);
    return 0;
}
