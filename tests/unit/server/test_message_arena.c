/* Unit tests for server/message_arena.c, and the claim it serves: the
 * GetUserToken path as the gRPC side runs it (decode the request into a stack
 * arena, the handler builds the token, the response is packed into a stack
 * buffer) makes no heap allocation once the thread is warm. malloc, calloc
 * and realloc are counted by wrappers over glibc's __libc_* functions; a
 * sanitizer build brings its own allocator, so there the counts are not
 * taken (the behaviour is still checked). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chattoken/v1/token_service.pb-c.h"
#include "handlers.h"
#include "message_arena.h"

#define APP_ID "970CA35de60c44645bbae8a215061b33"
#define CERT "5CFd2fd1755d40ecb72977518be15d3b"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define COUNTING 0
#endif
#endif
#ifndef COUNTING
#define COUNTING 1
#endif

static _Thread_local int counting;
static _Thread_local unsigned allocations;
static _Thread_local unsigned frees;

#if COUNTING
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

void *malloc(size_t size)
{
    allocations += counting;
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    allocations += counting;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    allocations += counting;
    return __libc_realloc(p, size);
}

void free(void *p)
{
    frees += counting && p != NULL;
    __libc_free(p);
}
#endif

static ct_config cfg;
static srv_context ctx;
static const srv_caller backend = {.name = "backend",
                                   .methods = CT_METHOD_BIT(CT_METHOD_GET_USER_TOKEN)};

typedef struct answer {
    uint8_t bytes[1024];
    size_t len;
    int code;
} answer;

/* user_done of server/grpc_server.c: pack the reply into a stack buffer */
static void user_done(srv_user_request *request)
{
    answer *a = request->arg;
    Chattoken__V1__GetUserTokenResponse resp = CHATTOKEN__V1__GET_USER_TOKEN_RESPONSE__INIT;
    Google__Protobuf__Timestamp expire = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

    a->code = request->status.code;
    if (a->code != SRV_OK) {
        return;
    }
    expire.seconds = request->reply.expire_time;
    resp.token = request->reply.token;
    resp.expire_time = &expire;
    resp.user_id = request->reply.user_id;
    a->len = protobuf_c_message_get_packed_size(&resp.base);
    assert_true(a->len <= sizeof(a->bytes));
    protobuf_c_message_pack(&resp.base, a->bytes);
}

/* answer_user of server/grpc_server.c, from request bytes to response bytes */
static void get_user_token(const uint8_t *request, size_t len, answer *a)
{
    uint8_t arena_buf[1024];
    srv_arena arena;
    srv_user_request req;
    Chattoken__V1__GetUserTokenRequest *msg;

    srv_arena_init(&arena, arena_buf, sizeof(arena_buf));
    msg = chattoken__v1__get_user_token_request__unpack(&arena.allocator, len, request);
    assert_non_null(msg);
    srv_get_user_token(&ctx, &backend, msg->username, strlen(msg->username), msg->ttl_seconds,
                       INT64_MAX, &req, user_done, a);
    chattoken__v1__get_user_token_request__free_unpacked(msg, &arena.allocator);
    assert_int_equal(arena.spilled, 0);
}

static size_t pack_request(const char *username, uint8_t *out, size_t cap)
{
    Chattoken__V1__GetUserTokenRequest req = CHATTOKEN__V1__GET_USER_TOKEN_REQUEST__INIT;
    size_t len;

    req.username = (char *)username;
    req.ttl_seconds = 600;
    len = protobuf_c_message_get_packed_size(&req.base);
    assert_true(len <= cap);
    return protobuf_c_message_pack(&req.base, out);
}

static int setup(void **state)
{
    (void)state;
    ct_config_defaults(&cfg);
    memcpy(cfg.app_id, APP_ID, 33);
    memcpy(cfg.app_certificate, CERT, 33);
    cfg.identity = CT_IDENTITY_USERNAME;
    ctx.config = &cfg;
    return 0;
}

static void get_user_token_allocates_nothing_when_warm(void **state)
{
    uint8_t request[128];
    size_t len = pack_request("Alice", request, sizeof(request));
    answer a;
    Chattoken__V1__GetUserTokenResponse *resp;

    (void)state;
    get_user_token(request, len, &a); /* the thread's codec state, once */
    counting = 1;
    allocations = 0;
    for (int i = 0; i < 100; i++) {
        get_user_token(request, len, &a);
    }
    counting = 0;
    if (COUNTING) {
        assert_int_equal(allocations, 0);
    }
    assert_int_equal(a.code, SRV_OK);
    resp = chattoken__v1__get_user_token_response__unpack(NULL, a.len, a.bytes);
    assert_non_null(resp);
    assert_string_equal(resp->user_id, "alice");
    assert_memory_equal(resp->token, "007", 3);
    chattoken__v1__get_user_token_response__free_unpacked(resp, NULL);
}

static void a_message_larger_than_the_arena_spills_and_is_freed(void **state)
{
    static char name[3000];
    static uint8_t request[3100];
    uint8_t arena_buf[256];
    srv_arena arena;
    Chattoken__V1__GetUserTokenRequest *msg;
    size_t len;

    (void)state;
    memset(name, 'x', sizeof(name) - 1);
    len = pack_request(name, request, sizeof(request));
    srv_arena_init(&arena, arena_buf, sizeof(arena_buf));
    counting = 1;
    allocations = 0;
    frees = 0;
    msg = chattoken__v1__get_user_token_request__unpack(&arena.allocator, len, request);
    assert_non_null(msg);
    assert_int_equal(strlen(msg->username), sizeof(name) - 1);
    chattoken__v1__get_user_token_request__free_unpacked(msg, &arena.allocator);
    counting = 0;
    assert_true(arena.spilled > 0);
    if (COUNTING) {
        assert_int_equal(allocations, arena.spilled);
        assert_int_equal(frees, arena.spilled);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(get_user_token_allocates_nothing_when_warm, setup),
        cmocka_unit_test_setup(a_message_larger_than_the_arena_spills_and_is_freed, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
