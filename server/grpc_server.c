/* gRPC C-core plumbing. Each worker thread owns one completion queue; every
 * call is requested on, bound to and completed on one queue, so all events
 * of a call run on one thread. The only other threads that touch a call
 * are the directory thread (finishing a GetUserToken that waited for a
 * lookup, while the worker leaves the call alone) and the main thread
 * (updating health Watch streams, under the call's lock). That keeps
 * grpc_call_start_batch serialised per call, as the core requires. */
#include "grpc_server.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "chattoken/v1/token_service.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "message_arena.h"
#include "reflection.h"
#include "rpc.h"
#include "rtc_proto.h"
#include "snapshot.h"
#include "wire.h"

#define MAX_WORKERS 64
#define MESSAGE_MAX (64 * 1024)
/* requests up to this size are read and decoded on the stack (a token
 * request is a few dozen bytes); larger ones, up to MESSAGE_MAX, on the heap */
#define STACK_MESSAGE 1024
/* Requests kept posted per method and queue: enough that a burst of new
 * calls rarely waits for a re-post. */
#define POSTED_PER_METHOD 16

#define METHOD_PREFIX "/chattoken.v1.TokenService/"
#define SERVICE_NAME "chattoken.v1.TokenService"

/* The paths of the standard services' methods; TokenService methods are
 * METHOD_PREFIX + their name (method.h). */
static const struct {
    enum ct_method method;
    const char *path;
    int main_only; /* not on the health-only listener */
} generic_paths[] = {
    {CT_METHOD_HEALTH_CHECK, "/grpc.health.v1.Health/Check", 0},
    {CT_METHOD_HEALTH_WATCH, "/grpc.health.v1.Health/Watch", 0},
    {CT_METHOD_REFLECTION, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", 1},
    {CT_METHOD_REFLECTION, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", 1},
};

/* Where a call is; the event that arrives next is for this step. */
enum call_step {
    STEP_REQUESTED,     /* waiting for a client to start a call */
    STEP_RECV_UNARY,    /* generic unary (health Check): reading its message */
    STEP_WATCH_RECV,    /* health Watch: reading its message */
    STEP_WATCH_SENDING, /* health Watch: a status message on its way */
    STEP_WATCH_IDLE,    /* health Watch: waiting for a change or the end */
    STEP_REFLECT_RECV,  /* reflection stream: reading the next request */
    STEP_REFLECT_SEND,  /* reflection stream: an answer on its way */
    STEP_FINISHING,     /* status sent; the last event of the call */
};

struct worker;

typedef struct call {
    struct srv_grpc *server;
    struct worker *worker;
    grpc_server *grpc_server; /* which server (main or health) requested it */
    enum ct_method kind;      /* a TokenService method, or UNKNOWN: a generic request */
    enum call_step step;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array metadata;
    grpc_call_details details;
    grpc_byte_buffer *payload;
    grpc_byte_buffer *response;
    int cancelled;
    int initial_metadata_sent;
    int streaming;   /* Watch and reflection send their messages before finish */
    int health_only; /* requested on the health-only server */
    struct timespec started;
    enum ct_method method; /* for logs and metrics */
    srv_caller caller;
    srv_status status;
    /* the config snapshot the call holds from its start to its end (NULL for
     * health calls), and the handlers' context with its config */
    srv_snapshot *snapshot;
    srv_context ctx;
    srv_user_request user; /* GetUserToken, possibly finished elsewhere */
    /* health Watch */
    pthread_mutex_t lock;
    int watch_known;         /* the watched service is ours ("" or TokenService) */
    int watch_sent_status;   /* the serving status last sent */
    int watch_closed;        /* client went away (recv close arrived) */
    int watch_finish;        /* the server is stopping: end the stream */
    int close_posted;        /* a recv-close batch of its own was started */
    int close_pending;       /* the recv-close event has not arrived yet */
    int finish_done;         /* the finishing batch's event has arrived */
    struct call *watch_next; /* in server->watchers */
} call;

/* ThreadSanitizer cannot see inside the uninstrumented libgrpc, so it does
 * not know that a completion queue hands a call from the thread that posted
 * a batch to the thread that takes its event. These annotations tell it:
 * release before every batch or request is posted, acquire when its event is
 * taken. Without TSan they compile to nothing. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CT_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CT_TSAN 1
#endif
#ifdef CT_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define HANDOFF_RELEASE(c) __tsan_release(c)
#define HANDOFF_ACQUIRE(c) __tsan_acquire(c)
#else
#define HANDOFF_RELEASE(c) ((void)(c))
#define HANDOFF_ACQUIRE(c) ((void)(c))
#endif

/* Starts a batch on c's call, after telling TSan about the handoff. */
static grpc_call_error start_batch(call *c, const grpc_op *ops, size_t n, void *tag)
{
    /* the last read of c: once the batch is started, its event may free c */
    grpc_call *gc = c->call;

    HANDOFF_RELEASE(c);
    return grpc_call_start_batch(gc, ops, n, tag, NULL);
}

/* A second tag for a call's recv-close batch: the low bit of the pointer. */
#define CLOSE_TAG(c) ((void *)((uintptr_t)(c) | 1u))

struct worker {
    struct srv_grpc *server;
    grpc_completion_queue *cq;
    pthread_t thread;
};

/* One per TLS listener: the TLS files its connections were last given
 * (gRPC core asks at each new connection; each listener asks for itself). */
typedef struct tls_fetcher {
    srv_snapshots *snapshots;
    pthread_mutex_t lock;
    uint8_t served_sha256[32];
    int served;
} tls_fetcher;

struct srv_grpc {
    const ct_config *config; /* the start's: listeners, workers */
    const srv_context *ctx;
    tls_fetcher *fetchers[CT_CONFIG_MAX_LISTEN];
    size_t fetcher_count;
    grpc_server *main;
    grpc_server *health;                  /* NULL without health_listen */
    void *methods[CT_METHOD_TOKEN_COUNT]; /* registered TokenService methods */
    size_t worker_count;
    struct worker workers[MAX_WORKERS];
    atomic_int serving;
    atomic_int stopping;
    pthread_mutex_t watchers_lock;
    call *watchers;
};

static void post_request(struct worker *w, grpc_server *gs, enum ct_method kind);
static void finish(call *c);

/* ---- helpers ---- */

static double elapsed_ms(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) * 1e3 +
           (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static void free_payload(const uint8_t *stack, uint8_t *data)
{
    if (data != stack) {
        free(data);
    }
}

/* Copies a byte buffer into *out (bounded): into stack[STACK_MESSAGE] when it
 * fits, else into a heap block the caller frees when *out != stack. Reads
 * slice by slice: grpc_byte_buffer_reader_readall would allocate a copy.
 * -1 when over MESSAGE_MAX or out of memory. */
static int read_payload(grpc_byte_buffer *bb, uint8_t *stack, uint8_t **out, size_t *len)
{
    grpc_byte_buffer_reader reader;
    grpc_slice slice;
    size_t total;
    size_t at = 0;

    *out = stack;
    *len = 0;
    if (bb == NULL) {
        return 0;
    }
    total = grpc_byte_buffer_length(bb);
    if (total > MESSAGE_MAX) {
        return -1;
    }
    if (total > STACK_MESSAGE) {
        *out = malloc(total);
        if (*out == NULL) {
            *out = stack;
            return -1;
        }
    }
    if (!grpc_byte_buffer_reader_init(&reader, bb)) {
        free_payload(stack, *out);
        *out = stack;
        return -1;
    }
    while (grpc_byte_buffer_reader_next(&reader, &slice)) {
        size_t n = GRPC_SLICE_LENGTH(slice);
        if (n > total - at) {
            n = total - at; /* cannot happen: the length was the sum */
        }
        memcpy(*out + at, GRPC_SLICE_START_PTR(slice), n);
        at += n;
        grpc_slice_unref(slice);
    }
    grpc_byte_buffer_reader_destroy(&reader);
    *len = at;
    return 0;
}

static grpc_byte_buffer *bytes_to_buffer(const uint8_t *data, size_t len)
{
    grpc_slice slice = grpc_slice_from_copied_buffer((const char *)data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);

    grpc_slice_unref(slice);
    return bb;
}

/* Serialises a protobuf-c message into c->response, packed straight into
 * the slice the response is sent from. */
static void set_response(call *c, const ProtobufCMessage *msg)
{
    grpc_slice slice = grpc_slice_malloc(protobuf_c_message_get_packed_size(msg));

    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    /* a Watch stream sends one message per status change: the previous one
     * has completed its send by now (sends are never posted concurrently) */
    if (c->response != NULL) {
        grpc_byte_buffer_destroy(c->response);
    }
    c->response = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
}

static int slice_equals(grpc_slice s, const char *str)
{
    size_t n = strlen(str);
    return GRPC_SLICE_LENGTH(s) == n && memcmp(GRPC_SLICE_START_PTR(s), str, n) == 0;
}

/* Time left before the call's deadline, as a CLOCK_MONOTONIC ms deadline. */
static int64_t deadline_ms(const call *c)
{
    gpr_timespec deadline = gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC);
    gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
    gpr_timespec left;
    int64_t left_ms;

    if (gpr_time_cmp(c->deadline, gpr_inf_future(c->deadline.clock_type)) == 0) {
        return INT64_MAX;
    }
    left = gpr_time_sub(deadline, now);
    left_ms = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
    return ud_monotonic_ms() + (left_ms > 0 ? left_ms : 0);
}

/* ---- authentication from metadata and the TLS peer ---- */

static void add_sans(srv_credentials *cred, const grpc_auth_context *auth, const char *property,
                     enum ct_peer_id_kind type)
{
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(auth, property);
    const grpc_auth_property *p;

    for (p = grpc_auth_property_iterator_next(&it); p != NULL;
         p = grpc_auth_property_iterator_next(&it)) {
        srv_credentials_add_san(cred, type, p->value, p->value_length);
    }
}

static void credentials_from_call(call *c, srv_credentials *cred, grpc_auth_context **auth)
{
    memset(cred, 0, sizeof(*cred));
    for (size_t i = 0; i < c->metadata.count; i++) {
        const grpc_metadata *m = &c->metadata.metadata[i];
        srv_credentials_add_header(
            cred, (const char *)GRPC_SLICE_START_PTR(m->key), GRPC_SLICE_LENGTH(m->key),
            (const char *)GRPC_SLICE_START_PTR(m->value), GRPC_SLICE_LENGTH(m->value));
    }
    *auth = NULL;
    if (c->ctx.config->mtls_client_count == 0) {
        return;
    }
    *auth = grpc_call_auth_context(c->call);
    if (*auth == NULL || !grpc_auth_context_peer_is_authenticated(*auth)) {
        return;
    }
    /* The URI and DNS SANs of the verified client certificate, each by its
     * type: GRPC_X509_SAN_PROPERTY_NAME mixes every type (email and IP too),
     * so a DNS SAN could pass for a SPIFFE ID. Values keep their length. */
    cred->certificate = 1;
    add_sans(cred, *auth, GRPC_PEER_URI_PROPERTY_NAME, CT_PEER_ID_URI);
    add_sans(cred, *auth, GRPC_PEER_DNS_PROPERTY_NAME, CT_PEER_ID_DNS);
}

/* Identifies the caller into c->caller; SRV_OK or a status in c->status. */
static int authenticate(call *c)
{
    srv_credentials cred;
    grpc_auth_context *auth;
    int rc;

    credentials_from_call(c, &cred, &auth);
    rc = srv_auth_identify(c->ctx.config, c->ctx.jwks, &cred, &c->caller, &c->status);
    if (auth != NULL) {
        grpc_auth_context_release(auth);
    }
    return rc;
}

/* ---- TokenService ---- */

static Google__Protobuf__Timestamp *timestamp(Google__Protobuf__Timestamp *ts, int64_t seconds)
{
    google__protobuf__timestamp__init(ts);
    ts->seconds = seconds;
    return ts;
}

/* Decodes a request into arena (no heap allocation unless it outgrows the
 * arena's buffer); NULL with INVALID_ARGUMENT in c->status. */
static void *unpack_request(call *c, const ProtobufCMessageDescriptor *type, srv_arena *arena,
                            const uint8_t *data, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(type, &arena->allocator, len, data);

    if (m == NULL) {
        srv_fail(&c->status, SRV_INVALID_ARGUMENT, "%s does not decode", type->short_name);
    }
    return m;
}

static void free_request(void *request, srv_arena *arena)
{
    if (request != NULL) {
        protobuf_c_message_free_unpacked(request, &arena->allocator);
    }
}

/* The response of c's method for a token reply: the one place that maps a
 * reply to each TokenService response. */
static void set_token_response(call *c, const srv_token_reply *reply)
{
    Google__Protobuf__Timestamp expire;

    timestamp(&expire, reply->expire_time);
    if (c->kind == CT_METHOD_GET_APP_TOKEN) {
        Chattoken__V1__GetAppTokenResponse resp = CHATTOKEN__V1__GET_APP_TOKEN_RESPONSE__INIT;
        resp.token = (char *)reply->token;
        resp.expire_time = &expire;
        set_response(c, &resp.base);
    } else if (c->kind == CT_METHOD_RENEW_TOKEN) {
        Chattoken__V1__RenewTokenResponse resp = CHATTOKEN__V1__RENEW_TOKEN_RESPONSE__INIT;
        resp.token = (char *)reply->token;
        resp.expire_time = &expire;
        /* srv_token_kind has the proto's numbers */
        resp.kind = (Chattoken__V1__TokenKind)reply->kind;
        resp.user_id = (char *)reply->user_id;
        set_response(c, &resp.base);
    } else if (c->kind == CT_METHOD_GET_RTC_TOKEN) {
        Chattoken__V1__GetRtcTokenResponse resp = CHATTOKEN__V1__GET_RTC_TOKEN_RESPONSE__INIT;
        resp.token = (char *)reply->token;
        resp.expire_time = &expire;
        set_response(c, &resp.base);
    } else if (c->kind == CT_METHOD_GET_RTM_TOKEN) {
        Chattoken__V1__GetRtmTokenResponse resp = CHATTOKEN__V1__GET_RTM_TOKEN_RESPONSE__INIT;
        resp.token = (char *)reply->token;
        resp.expire_time = &expire;
        set_response(c, &resp.base);
    } else {
        Chattoken__V1__GetUserTokenResponse resp = CHATTOKEN__V1__GET_USER_TOKEN_RESPONSE__INIT;
        resp.token = (char *)reply->token;
        resp.expire_time = &expire;
        resp.user_id = (char *)reply->user_id;
        resp.registered = reply->registered != 0;
        set_response(c, &resp.base);
    }
}

/* GetAppToken, GetRtcToken and GetRtmToken: answered on this thread. */
static void answer_now(call *c, const uint8_t *data, size_t len)
{
    uint8_t arena_buf[STACK_MESSAGE];
    srv_arena arena;
    srv_token_reply reply;
    int rc = SRV_INVALID_ARGUMENT;

    srv_arena_init(&arena, arena_buf, sizeof(arena_buf));
    if (c->kind == CT_METHOD_GET_APP_TOKEN) {
        Chattoken__V1__GetAppTokenRequest *req =
            unpack_request(c, &chattoken__v1__get_app_token_request__descriptor, &arena, data, len);
        if (req != NULL) {
            rc = srv_get_app_token(&c->ctx, &c->caller, req->ttl_seconds, &reply, &c->status);
        }
        free_request(req, &arena);
    } else if (c->kind == CT_METHOD_GET_RTC_TOKEN) {
        Chattoken__V1__GetRtcTokenRequest *req =
            unpack_request(c, &chattoken__v1__get_rtc_token_request__descriptor, &arena, data, len);
        srv_rtc_request r;
        if (req != NULL) {
            srv_rtc_request_from_proto(req, &r);
            rc = srv_get_rtc_token(&c->ctx, &c->caller, &r, &reply, &c->status);
        }
        free_request(req, &arena);
    } else if (c->kind == CT_METHOD_GET_RTM_TOKEN) {
        Chattoken__V1__GetRtmTokenRequest *req =
            unpack_request(c, &chattoken__v1__get_rtm_token_request__descriptor, &arena, data, len);
        if (req != NULL) {
            rc = srv_get_rtm_token(&c->ctx, &c->caller, req->user_id, req->ttl_seconds, &reply,
                                   &c->status);
        }
        free_request(req, &arena);
    }
    if (rc == SRV_OK) {
        set_token_response(c, &reply);
    }
}

/* Runs once, on the worker or on the directory thread (see the top). */
static void user_done(srv_user_request *request)
{
    call *c = request->arg;

    c->status = request->status;
    if (c->status.code == SRV_OK) {
        set_token_response(c, &request->reply);
    }
    finish(c);
}

/* GetUserToken and RenewToken, which may wait for the directory (RenewToken
 * for an end user in uuid mode). Returns 1 when the call was handed on
 * (user_done finishes it). */
static int answer_later(call *c, const uint8_t *data, size_t len)
{
    int renew = c->kind == CT_METHOD_RENEW_TOKEN;
    uint8_t arena_buf[STACK_MESSAGE];
    srv_arena arena;
    ProtobufCMessage *m;

    /* the handlers copy what they keep before they return */
    srv_arena_init(&arena, arena_buf, sizeof(arena_buf));
    m = unpack_request(c,
                       renew ? &chattoken__v1__renew_token_request__descriptor
                             : &chattoken__v1__get_user_token_request__descriptor,
                       &arena, data, len);
    if (m == NULL) {
        return 0;
    }
    if (renew) {
        Chattoken__V1__RenewTokenRequest *req = (Chattoken__V1__RenewTokenRequest *)m;
        srv_renew_token_async(&c->ctx, &c->caller, req->token, strlen(req->token), req->ttl_seconds,
                              deadline_ms(c), &c->user, user_done, c);
    } else {
        Chattoken__V1__GetUserTokenRequest *req = (Chattoken__V1__GetUserTokenRequest *)m;
        srv_get_user_token(&c->ctx, &c->caller, req->username, strlen(req->username),
                           req->ttl_seconds, deadline_ms(c), &c->user, user_done, c);
    }
    free_request(m, &arena);
    return 1;
}

static void dispatch_token_call(call *c)
{
    uint8_t stack[STACK_MESSAGE];
    uint8_t *data = NULL;
    size_t len = 0;
    int handed_on = 0;

    c->method = c->kind;
    c->snapshot = srv_snapshot_enter(c->server->ctx, &c->ctx);
    if (read_payload(c->payload, stack, &data, &len) != 0) {
        srv_fail(&c->status, SRV_RESOURCE_EXHAUSTED, "request is over %d bytes", MESSAGE_MAX);
    } else if (c->payload == NULL) {
        srv_fail(&c->status, SRV_INVALID_ARGUMENT, "no request message");
    } else if (authenticate(c) != SRV_OK) {
        /* the status says why */
    } else if (srv_wire_has_nul_in_strings(data, len)) {
        srv_fail(&c->status, SRV_INVALID_ARGUMENT, "string fields must not contain NUL bytes");
    } else {
        if (c->kind == CT_METHOD_GET_USER_TOKEN || c->kind == CT_METHOD_RENEW_TOKEN) {
            handed_on = answer_later(c, data, len);
        } else {
            answer_now(c, data, len);
        }
    }
    free_payload(stack, data);
    if (!handed_on) {
        finish(c);
    }
}

/* ---- health ---- */

/* The serving status of a service name; 0 (UNKNOWN) for unknown names. */
static int health_of(const srv_grpc *s, const char *service)
{
    if (service[0] != '\0' && strcmp(service, SERVICE_NAME) != 0) {
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    }
    return atomic_load(&s->serving)
               ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static void set_health_response(call *c, int status)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

    resp.status = status;
    set_response(c, &resp.base);
}

/* Decodes a HealthCheckRequest's service name into out; -1 on garbage. */
static int health_request(call *c, char *out, size_t outlen)
{
    uint8_t stack[STACK_MESSAGE];
    uint8_t *data = NULL;
    size_t len = 0;
    Grpc__Health__V1__HealthCheckRequest *req = NULL;

    if (read_payload(c->payload, stack, &data, &len) == 0 && c->payload != NULL) {
        req = grpc__health__v1__health_check_request__unpack(NULL, len, data);
    }
    free_payload(stack, data);
    if (req == NULL) {
        srv_fail(&c->status, SRV_INVALID_ARGUMENT, "HealthCheckRequest does not decode");
        return -1;
    }
    snprintf(out, outlen, "%s", req->service);
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);
    return 0;
}

static void answer_health_check(call *c)
{
    char service[256];
    int status;

    c->method = CT_METHOD_HEALTH_CHECK;
    if (health_request(c, service, sizeof(service)) != 0) {
        return;
    }
    status = health_of(c->server, service);
    if (status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN) {
        srv_fail(&c->status, SRV_NOT_FOUND, "unknown service '%s'", service);
        return;
    }
    set_health_response(c, status);
}

/* Sends the current status on a Watch stream; called with c->lock held. */
static void watch_send_locked(call *c, int status)
{
    grpc_op ops[2];
    size_t n = 0;

    memset(ops, 0, sizeof(ops));
    if (!c->initial_metadata_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        c->initial_metadata_sent = 1;
    }
    set_health_response(c, status);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = c->response;
    n++;
    c->watch_sent_status = status;
    c->step = STEP_WATCH_SENDING;
    start_batch(c, ops, n, c);
}

static void watchers_add(call *c)
{
    srv_grpc *s = c->server;

    pthread_mutex_lock(&s->watchers_lock);
    c->watch_next = s->watchers;
    s->watchers = c;
    pthread_mutex_unlock(&s->watchers_lock);
}

static void watchers_remove(call *c)
{
    srv_grpc *s = c->server;

    pthread_mutex_lock(&s->watchers_lock);
    for (call **p = &s->watchers; *p != NULL; p = &(*p)->watch_next) {
        if (*p == c) {
            *p = c->watch_next;
            break;
        }
    }
    pthread_mutex_unlock(&s->watchers_lock);
}

/* Next step of a Watch stream once nothing is in flight; lock held.
 * Returns 1 when the stream is over and the call was finished. */
static int watch_advance_locked(call *c)
{
    int status;

    if (c->watch_finish || c->watch_closed) {
        srv_ok(&c->status);
        c->step = STEP_FINISHING; /* claimed: nobody else advances it now */
        return 1;
    }
    status = c->watch_known
                 ? health_of(c->server, "")
                 : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    if (status != c->watch_sent_status) {
        watch_send_locked(c, status);
    } else {
        c->step = STEP_WATCH_IDLE;
    }
    return 0;
}

static void start_watch(call *c)
{
    char service[256];
    grpc_op op;
    int over;

    c->method = CT_METHOD_HEALTH_WATCH;
    c->streaming = 1;
    if (health_request(c, service, sizeof(service)) != 0) {
        finish(c);
        return;
    }
    /* an unknown service gets SERVICE_UNKNOWN and the stream stays open,
     * as the health protocol says */
    c->watch_known = service[0] == '\0' || strcmp(service, SERVICE_NAME) == 0;
    c->watch_sent_status = -1;
    /* learn when the client goes away: a recv-close batch of its own */
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    /* in the list before c->lock is taken: watchers_poke takes the list's
     * lock first, then each call's */
    watchers_add(c);
    pthread_mutex_lock(&c->lock);
    c->close_posted = 1;
    c->close_pending = 1;
    start_batch(c, &op, 1, CLOSE_TAG(c));
    over = watch_advance_locked(c); /* the server may be stopping already */
    pthread_mutex_unlock(&c->lock);
    if (over) {
        watchers_remove(c);
        finish(c);
    }
}

/* ---- reflection ---- */

/* Reads the next message of c into c->payload; its event comes at step. */
static void recv_message(call *c, enum call_step step)
{
    grpc_op op;

    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->payload;
    c->step = step;
    start_batch(c, &op, 1, c);
}

static void reflect_answer(call *c)
{
    uint8_t stack[STACK_MESSAGE];
    uint8_t *data = NULL;
    uint8_t *answer = NULL;
    size_t len = 0;
    size_t answer_len = 0;
    char err[256] = "reflection request does not decode";
    grpc_op ops[2];
    size_t n = 0;

    if (c->payload == NULL) { /* the client half-closed: the stream is done */
        finish(c);
        return;
    }
    if (read_payload(c->payload, stack, &data, &len) != 0 ||
        srv_reflection_answer(data, len, &answer, &answer_len, err, sizeof(err)) != 0) {
        free_payload(stack, data);
        srv_fail(&c->status, SRV_INVALID_ARGUMENT, "%s", err);
        finish(c);
        return;
    }
    free_payload(stack, data);
    grpc_byte_buffer_destroy(c->payload);
    c->payload = NULL;
    if (c->response != NULL) {
        grpc_byte_buffer_destroy(c->response);
    }
    c->response = bytes_to_buffer(answer, answer_len);
    free(answer);
    memset(ops, 0, sizeof(ops));
    if (!c->initial_metadata_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->initial_metadata_sent = 1;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = c->response;
    n++;
    c->step = STEP_REFLECT_SEND;
    start_batch(c, ops, n, c);
}

/* ---- generic calls: health, reflection, and everything unknown ---- */

static enum ct_method generic_method(const call *c)
{
    for (size_t i = 0; i < sizeof(generic_paths) / sizeof(generic_paths[0]); i++) {
        if (slice_equals(c->details.method, generic_paths[i].path) &&
            !(generic_paths[i].main_only && c->health_only)) {
            return generic_paths[i].method;
        }
    }
    return CT_METHOD_UNKNOWN;
}

/* reflection: public answers anyone; authenticated, a caller auth
 * identifies (whatever its methods); off, nobody, as an unknown method. */
static int reflection_allowed(call *c)
{
    switch (c->ctx.config->reflection) {
    case CT_REFLECTION_OFF:
        srv_fail(&c->status, SRV_UNIMPLEMENTED, "reflection is off (reflection: off)");
        return 0;
    case CT_REFLECTION_AUTHENTICATED:
        return authenticate(c) == SRV_OK;
    default:
        return 1;
    }
}

static void dispatch_generic(call *c)
{
    grpc_slice m = c->details.method;

    c->method = generic_method(c);
    if (c->method == CT_METHOD_HEALTH_CHECK) {
        recv_message(c, STEP_RECV_UNARY);
    } else if (c->method == CT_METHOD_HEALTH_WATCH) {
        recv_message(c, STEP_WATCH_RECV);
    } else if (c->method == CT_METHOD_REFLECTION) {
        c->snapshot = srv_snapshot_enter(c->server->ctx, &c->ctx);
        if (!reflection_allowed(c)) {
            finish(c);
            return;
        }
        c->streaming = 1;
        recv_message(c, STEP_REFLECT_RECV);
    } else {
        srv_fail(&c->status, SRV_UNIMPLEMENTED, "unknown method %.*s",
                 (int)(GRPC_SLICE_LENGTH(m) > 200 ? 200 : GRPC_SLICE_LENGTH(m)),
                 (const char *)GRPC_SLICE_START_PTR(m));
        finish(c);
    }
}

/* ---- the life of a call ---- */

/* Zeroes *c except the token buffer of its GetUserToken reply (2 KiB of the
 * 3.5 KiB), which srv_get_user_token writes before anything reads it:
 * clearing all of it for every call, health checks included, was the
 * largest cost of setting a call up (glibc clears blocks that large with
 * rep stosb). */
static void call_clear(call *c)
{
    char *start = (char *)c;
    char *token = c->user.reply.token;
    char *after = token + sizeof(c->user.reply.token);

    memset(start, 0, (size_t)(token - start));
    token[0] = '\0';
    memset(after, 0, (size_t)((char *)(c + 1) - after));
}

static call *call_new(struct worker *w, grpc_server *gs, enum ct_method kind)
{
    call *c = malloc(sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    call_clear(c);
    c->server = w->server;
    c->worker = w;
    c->grpc_server = gs;
    c->kind = kind;
    c->step = STEP_REQUESTED;
    c->health_only = gs == w->server->health;
    c->method = kind;
    grpc_metadata_array_init(&c->metadata);
    grpc_call_details_init(&c->details);
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static void call_free(call *c)
{
    grpc_metadata_array_destroy(&c->metadata);
    grpc_call_details_destroy(&c->details);
    if (c->payload != NULL) {
        grpc_byte_buffer_destroy(c->payload);
    }
    if (c->response != NULL) {
        grpc_byte_buffer_destroy(c->response);
    }
    if (c->call != NULL) {
        grpc_call_unref(c->call);
    }
    srv_snapshot_release(c->snapshot);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Sends the status (and the response when OK): the last batch of a call. */
static void finish(call *c)
{
    grpc_op ops[4];
    size_t n = 0;
    grpc_slice details = grpc_slice_from_copied_string(c->status.message);

    memset(ops, 0, sizeof(ops));
    if (!c->initial_metadata_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->initial_metadata_sent = 1;
    }
    if (c->status.code == SRV_OK && c->response != NULL && !c->streaming) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->response;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)c->status.code;
    ops[n].data.send_status_from_server.status_details = &details;
    n++;
    if (!c->close_posted) {
        /* Watch streams posted their recv-close at the start */
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
        n++;
    }
    c->step = STEP_FINISHING;
    start_batch(c, ops, n, c);
    grpc_slice_unref(details);
}

/* The peer string is allocated per call: only asked for when logged. */
static void call_peer(void *arg, char *out, size_t outlen)
{
    char *peer = grpc_call_get_peer(((call *)arg)->call);
    size_t len = peer != NULL ? strnlen(peer, outlen - 1) : 0;

    memcpy(out, peer != NULL ? peer : "", len); /* a copy, not a printf: this is per call */
    out[len] = '\0';
    gpr_free(peer);
}

static void log_call(call *c)
{
    if (c->cancelled && c->status.code == SRV_OK) {
        c->status.code = SRV_CANCELLED;
    }
    srv_rpc_finished(SRV_TRANSPORT_GRPC, c->method, &c->status, elapsed_ms(&c->started) / 1e3,
                     &c->caller, call_peer, c);
}

/* A requested call arrived (ok) or the server is shutting down (!ok). */
static void on_requested(call *c, int ok)
{
    struct worker *w = c->worker;

    if (!ok) {
        call_free(c);
        return;
    }
    if (!atomic_load(&w->server->stopping)) {
        post_request(w, c->grpc_server, c->kind);
    }
    clock_gettime(CLOCK_MONOTONIC, &c->started);
    c->status.code = SRV_OK;
    if (c->kind == CT_METHOD_UNKNOWN) {
        dispatch_generic(c);
    } else {
        dispatch_token_call(c);
    }
}

static void on_watch_event(call *c, int ok, int is_close)
{
    int over;

    pthread_mutex_lock(&c->lock);
    if (c->step == STEP_FINISHING) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    if (is_close) {
        c->watch_closed = 1;
        if (c->step == STEP_WATCH_SENDING) {
            pthread_mutex_unlock(&c->lock); /* a send is in flight: its event ends it */
            return;
        }
    } else if (!ok) {
        c->watch_closed = 1;
    }
    over = watch_advance_locked(c);
    pthread_mutex_unlock(&c->lock);
    if (over) {
        watchers_remove(c);
        finish(c);
    }
}

static void on_event(void *tag, int ok)
{
    int is_close = ((uintptr_t)tag & 1u) != 0;
    call *c = (call *)((uintptr_t)tag & ~(uintptr_t)1u);

    if (is_close) {
        /* only Watch streams post a recv-close of their own; the call is
         * freed once both it and the finishing batch have completed (both
         * arrive on this thread) */
        int free_now;
        pthread_mutex_lock(&c->lock);
        c->close_pending = 0;
        free_now = c->finish_done;
        pthread_mutex_unlock(&c->lock);
        if (free_now) {
            log_call(c);
            call_free(c);
        } else {
            on_watch_event(c, ok, 1);
        }
        return;
    }
    switch (c->step) {
    case STEP_REQUESTED:
        on_requested(c, ok);
        break;
    case STEP_RECV_UNARY:
        if (ok) {
            answer_health_check(c);
        } else {
            srv_fail(&c->status, SRV_CANCELLED, "client went away");
        }
        finish(c);
        break;
    case STEP_WATCH_RECV:
        if (ok) {
            start_watch(c);
        } else {
            finish(c);
        }
        break;
    case STEP_WATCH_SENDING:
    case STEP_WATCH_IDLE:
        on_watch_event(c, ok, 0);
        break;
    case STEP_REFLECT_RECV:
        if (ok) {
            reflect_answer(c);
        } else {
            finish(c);
        }
        break;
    case STEP_REFLECT_SEND:
        if (ok) {
            recv_message(c, STEP_REFLECT_RECV);
        } else {
            finish(c);
        }
        break;
    case STEP_FINISHING: {
        int wait_for_close;
        pthread_mutex_lock(&c->lock);
        c->finish_done = 1;
        wait_for_close = c->close_pending;
        pthread_mutex_unlock(&c->lock);
        if (!wait_for_close) {
            log_call(c);
            call_free(c);
        }
        break;
    }
    }
}

static void post_request(struct worker *w, grpc_server *gs, enum ct_method kind)
{
    call *c = call_new(w, gs, kind);
    grpc_call_error rc;

    if (c == NULL) {
        srv_log_event(CT_LOG_ERROR, "out_of_memory", "cannot post a call request");
        return;
    }
    HANDOFF_RELEASE(c);
    if (kind == CT_METHOD_UNKNOWN) {
        rc = grpc_server_request_call(gs, &c->call, &c->details, &c->metadata, w->cq, w->cq, c);
    } else {
        rc = grpc_server_request_registered_call(gs, w->server->methods[kind], &c->call,
                                                 &c->deadline, &c->metadata, &c->payload, w->cq,
                                                 w->cq, c);
    }
    if (rc != GRPC_CALL_OK) {
        call_free(c);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type == GRPC_OP_COMPLETE) {
            HANDOFF_ACQUIRE((void *)((uintptr_t)ev.tag & ~(uintptr_t)1u));
            on_event(ev.tag, ev.success);
        }
    }
    return NULL;
}

/* ---- start and stop ---- */

/* gRPC core's certificate config fetcher: the current snapshot's TLS
 * files when they differ from those this listener serves (new connections
 * get them; established ones keep theirs), else UNCHANGED. */
static grpc_ssl_certificate_config_reload_status
fetch_certificates(void *arg, grpc_ssl_server_certificate_config **out)
{
    tls_fetcher *f = arg;
    srv_snapshot *snap = srv_snapshots_acquire(f->snapshots);
    grpc_ssl_certificate_config_reload_status status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;

    pthread_mutex_lock(&f->lock);
    if (snap->tls_cert == NULL) {
        status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL; /* cannot happen: tls cannot turn off */
    } else if (!f->served || memcmp(f->served_sha256, snap->tls_sha256, 32) != 0) {
        grpc_ssl_pem_key_cert_pair pair = {snap->tls_key, snap->tls_cert};
        /* copies the PEM strings. gRPC 1.51 asserts root certificates in a
         * fetched config even when client certificates are not requested:
         * without a client CA, the server's own chain stands in, unused. */
        *out = grpc_ssl_server_certificate_config_create(
            snap->tls_client_ca != NULL ? snap->tls_client_ca : snap->tls_cert, &pair, 1);
        if (*out != NULL) {
            memcpy(f->served_sha256, snap->tls_sha256, 32);
            f->served = 1;
            status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
        } else {
            status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
        }
    }
    pthread_mutex_unlock(&f->lock);
    srv_snapshot_release(snap);
    return status;
}

/* The credentials of one main listener: plaintext, or TLS from the
 * snapshots (a fetcher of its own, kept until the server is destroyed). */
static grpc_server_credentials *main_credentials(srv_grpc *s, char *err, size_t errlen)
{
    const ct_config *cfg = s->config;
    grpc_ssl_server_credentials_options *options;
    grpc_server_credentials *creds;
    tls_fetcher *f;

    if (cfg->tls_cert_file[0] == '\0') {
        return grpc_insecure_server_credentials_create();
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL || s->fetcher_count >= CT_CONFIG_MAX_LISTEN) {
        free(f);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->snapshots = s->ctx->snapshots;
    pthread_mutex_init(&f->lock, NULL);
    s->fetchers[s->fetcher_count++] = f;
    options = grpc_ssl_server_credentials_create_options_using_config_fetcher(
        cfg->tls_client_ca_file[0] != '\0'
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        fetch_certificates, f);
    creds = options != NULL ? grpc_ssl_server_credentials_create_with_options(options) : NULL;
    if (creds == NULL) {
        snprintf(err, errlen, "cannot use the TLS certificate or key");
    }
    return creds;
}

static int add_listener(grpc_server *gs, const char *addr, grpc_server_credentials *creds,
                        char *err, size_t errlen)
{
    ct_listen_addr parsed;
    const char *why = NULL;
    char bound[CT_LISTEN_HOST_MAX + 16];
    int port;

    if (ct_listen_parse(addr, &parsed, &why) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, why);
        return -1;
    }
    ct_listen_remove_stale_socket(&parsed);
    port = grpc_server_add_http2_port(gs, addr, creds);
    if (port == 0) {
        snprintf(err, errlen, "cannot listen on %s (in use, or not an address)", addr);
        return -1;
    }
    if (parsed.is_unix) {
        srv_log_lifecycle("listening", "%s", addr);
    } else {
        /* port 0 picks a free port: log the one we got (tests read it) */
        ct_listen_format(&parsed, (unsigned)port, bound, sizeof(bound));
        srv_log_lifecycle("listening", "%s", bound);
    }
    return 0;
}

static grpc_server *create_server(unsigned workers)
{
    grpc_arg args[9];
    grpc_channel_args channel_args = {0, args};
    static char keys[9][64];
    const struct {
        const char *key;
        int value;
    } values[] = {
        {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, MESSAGE_MAX},
        {GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, MESSAGE_MAX},
        {GRPC_ARG_MAX_METADATA_SIZE, 16 * 1024},
        {GRPC_ARG_MAX_CONCURRENT_STREAMS, 1024},
        {GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000},
        {GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000},
        /* rotate connections so that load spreads over new replicas */
        {GRPC_ARG_MAX_CONNECTION_AGE_MS, 30 * 60 * 1000},
        {GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 30 * 1000},
        {GRPC_ARG_ALLOW_REUSEPORT, 0},
    };
    (void)workers;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(keys[i], sizeof(keys[i]), "%s", values[i].key);
        args[i].type = GRPC_ARG_INTEGER;
        args[i].key = keys[i];
        args[i].value.integer = values[i].value;
        channel_args.num_args++;
    }
    return grpc_server_create(&channel_args, NULL);
}

static void post_all(srv_grpc *s)
{
    for (size_t i = 0; i < s->worker_count; i++) {
        struct worker *w = &s->workers[i];
        for (int k = 0; k < POSTED_PER_METHOD; k++) {
            for (unsigned m = 0; m < CT_METHOD_TOKEN_COUNT; m++) {
                post_request(w, s->main, (enum ct_method)m);
            }
        }
        for (int k = 0; k < 4; k++) {
            post_request(w, s->main, CT_METHOD_UNKNOWN);
            if (s->health != NULL) {
                post_request(w, s->health, CT_METHOD_UNKNOWN);
            }
        }
    }
}

static int add_listeners(srv_grpc *s, char *err, size_t errlen)
{
    const ct_config *cfg = s->config;
    grpc_server_credentials *creds;
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < cfg->listen_count; i++) {
        creds = main_credentials(s, err, errlen);
        if (creds == NULL) {
            return -1;
        }
        rc = add_listener(s->main, cfg->listen[i], creds, err, errlen);
        grpc_server_credentials_release(creds);
    }
    if (rc == 0 && s->health != NULL) {
        creds = grpc_insecure_server_credentials_create();
        rc = add_listener(s->health, cfg->health_listen, creds, err, errlen);
        grpc_server_credentials_release(creds);
    }
    return rc;
}

srv_grpc *srv_grpc_start(const ct_config *cfg, const srv_context *ctx, char *err, size_t errlen)
{
    srv_grpc *s = calloc(1, sizeof(*s));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    char reflection_err[256];

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (srv_reflection_init(reflection_err, sizeof(reflection_err)) != 0) {
        snprintf(err, errlen, "reflection: %s", reflection_err);
        free(s);
        return NULL;
    }
    s->config = cfg;
    s->ctx = ctx;
    atomic_init(&s->serving, 1);
    atomic_init(&s->stopping, 0);
    pthread_mutex_init(&s->watchers_lock, NULL);
    s->worker_count = cfg->workers != 0 ? cfg->workers : (cores > 0 ? (size_t)cores : 1);
    if (s->worker_count > MAX_WORKERS) {
        s->worker_count = MAX_WORKERS;
    }
    s->main = create_server((unsigned)s->worker_count);
    if (cfg->health_listen[0] != '\0') {
        s->health = create_server(1);
    }
    for (unsigned k = 0; k < CT_METHOD_TOKEN_COUNT; k++) {
        char path[128];
        snprintf(path, sizeof(path), METHOD_PREFIX "%s", ct_method_name((enum ct_method)k));
        s->methods[k] = grpc_server_register_method(s->main, path, NULL,
                                                    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    }
    for (size_t i = 0; i < s->worker_count; i++) {
        s->workers[i].server = s;
        s->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->main, s->workers[i].cq, NULL);
        if (s->health != NULL) {
            grpc_server_register_completion_queue(s->health, s->workers[i].cq, NULL);
        }
    }
    if (add_listeners(s, err, errlen) != 0) {
        srv_grpc_destroy(s);
        return NULL;
    }
    grpc_server_start(s->main);
    if (s->health != NULL) {
        grpc_server_start(s->health);
    }
    post_all(s);
    for (size_t i = 0; i < s->worker_count; i++) {
        pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
    }
    srv_grpc_count_connections_in_metrics();
    srv_log_lifecycle("started", "%zu workers", s->worker_count);
    return s;
}

int srv_grpc_serving(const srv_grpc *s)
{
    return atomic_load(&s->serving);
}

/* Wakes every Watch stream so that it sends the new status or ends. */
static void watchers_poke(srv_grpc *s, int end)
{
    call *ready[256];
    size_t count;

    do {
        count = 0;
        pthread_mutex_lock(&s->watchers_lock);
        for (call *c = s->watchers; c != NULL; c = c->watch_next) {
            pthread_mutex_lock(&c->lock);
            c->watch_finish |= end;
            if (c->step == STEP_WATCH_IDLE && count < sizeof(ready) / sizeof(ready[0])) {
                if (watch_advance_locked(c)) {
                    ready[count++] = c;
                }
            }
            pthread_mutex_unlock(&c->lock);
        }
        pthread_mutex_unlock(&s->watchers_lock);
        for (size_t i = 0; i < count; i++) {
            watchers_remove(ready[i]);
            finish(ready[i]);
        }
    } while (count == sizeof(ready) / sizeof(ready[0]));
}

void srv_grpc_drain(srv_grpc *s)
{
    atomic_store(&s->serving, 0);
    watchers_poke(s, 0);
}

static void await_shutdown(grpc_completion_queue *cq, int servers, gpr_timespec deadline)
{
    while (servers > 0) {
        grpc_event ev = grpc_completion_queue_pluck(cq, (void *)cq, deadline, NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
            return;
        }
        servers--;
    }
}

void srv_grpc_shutdown(srv_grpc *s, unsigned grace_seconds)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    int servers = s->health != NULL ? 2 : 1;
    int done_count = 0;
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                         gpr_time_from_seconds(grace_seconds, GPR_TIMESPAN));

    atomic_store(&s->stopping, 1);
    watchers_poke(s, 1);
    grpc_server_shutdown_and_notify(s->main, cq, (void *)cq);
    if (s->health != NULL) {
        grpc_server_shutdown_and_notify(s->health, cq, (void *)cq);
    }
    while (done_count < servers) {
        grpc_event ev = grpc_completion_queue_pluck(cq, (void *)cq, deadline, NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
            break;
        }
        done_count++;
    }
    if (done_count < servers) {
        srv_log_event(CT_LOG_WARN, "shutdown_grace_over",
                      "calls still running after %u s: cancelling them", grace_seconds);
        grpc_server_cancel_all_calls(s->main);
        if (s->health != NULL) {
            grpc_server_cancel_all_calls(s->health);
        }
        await_shutdown(cq, servers - done_count, gpr_inf_future(GPR_CLOCK_MONOTONIC));
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

void srv_grpc_destroy(srv_grpc *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->worker_count; i++) {
        if (s->workers[i].cq != NULL) {
            grpc_completion_queue_shutdown(s->workers[i].cq);
        }
    }
    for (size_t i = 0; i < s->worker_count; i++) {
        if (s->workers[i].thread != 0) {
            pthread_join(s->workers[i].thread, NULL);
        }
    }
    if (s->main != NULL) {
        grpc_server_destroy(s->main);
    }
    if (s->health != NULL) {
        grpc_server_destroy(s->health);
    }
    for (size_t i = 0; i < s->worker_count; i++) {
        if (s->workers[i].cq != NULL) {
            grpc_completion_queue_destroy(s->workers[i].cq);
        }
    }
    for (size_t i = 0; i < s->fetcher_count; i++) {
        pthread_mutex_destroy(&s->fetchers[i]->lock);
        free(s->fetchers[i]);
    }
    pthread_mutex_destroy(&s->watchers_lock);
    free(s);
}
