/* chat-token-client: the smallest useful client of chat-tokend on the gRPC C
 * core. One unary GetUserToken call: protobuf-c encodes the request, the
 * API key travels as `authorization: Bearer KEY` metadata (read from the
 * environment, never from argv, where `ps` would show it), and the token and
 * its expiry are printed. On a non-OK status it prints the status and exits
 * with the status code. */
#include <getopt.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/string_util.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chattoken/v1/token_service.pb-c.h"

#define METHOD "/chattoken.v1.TokenService/GetUserToken"
#define KEY_ENV "CHAT_TOKEND_API_KEY"
#define DEFAULT_TARGET "127.0.0.1:50051"
#define DEFAULT_TIMEOUT_SECONDS 10
#define MAX_KEY_LENGTH 512
#define MAX_RESPONSE_BYTES (64 * 1024)

/* Exit codes: 0 OK, 1..16 the gRPC status code of a failed call, and these
 * two for failures before or after the call. */
#define EXIT_USAGE 64
#define EXIT_LOCAL 70

struct options {
    const char *target;
    const char *username;
    unsigned long ttl_seconds;
    unsigned long timeout_seconds;
};

/* The outcome of one call: a status, its message, and the response bytes. */
struct call_result {
    grpc_status_code status;
    char *details;
    uint8_t *response;
    size_t response_len;
};

static const char *status_name(grpc_status_code code)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if (code < 0 || (size_t)code >= sizeof(names) / sizeof(names[0])) {
        return "UNKNOWN_STATUS";
    }
    return names[code];
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: chat-token-client [--target ADDR] [--ttl SECONDS] [--timeout SECONDS] "
            "USERNAME\n"
            "  --target ADDR      gRPC target: host:port or unix:/path (default " DEFAULT_TARGET
            ")\n"
            "  --ttl SECONDS      token lifetime; 0 = the server's default (default 0)\n"
            "  --timeout SECONDS  call deadline (default 10)\n"
            "environment:\n"
            "  " KEY_ENV "  the API key, sent as 'authorization: Bearer KEY'\n"
            "                       (unset: no credentials, for unauthenticated sockets)\n");
}

static int parse_seconds(const char *text, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    if (text[0] < '0' || text[0] > '9') {
        return -1;
    }
    unsigned long value = strtoul(text, &end, 10);
    if (*end != '\0' || value > max) {
        return -1;
    }
    *out = value;
    return 0;
}

static int parse_options(int argc, char **argv, struct options *opts)
{
    static const struct option longopts[] = {
        {"target", required_argument, NULL, 't'},
        {"ttl", required_argument, NULL, 'l'},
        {"timeout", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opts->target = DEFAULT_TARGET;
    opts->username = NULL;
    opts->ttl_seconds = 0;
    opts->timeout_seconds = DEFAULT_TIMEOUT_SECONDS;
    int c;
    while ((c = getopt_long(argc, argv, "t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            opts->target = optarg;
            break;
        case 'l':
            if (parse_seconds(optarg, 86400, &opts->ttl_seconds) != 0) {
                fprintf(stderr, "chat-token-client: --ttl: expected 0..86400 seconds\n");
                return -1;
            }
            break;
        case 'w':
            if (parse_seconds(optarg, 3600, &opts->timeout_seconds) != 0 ||
                opts->timeout_seconds == 0) {
                fprintf(stderr, "chat-token-client: --timeout: expected 1..3600 seconds\n");
                return -1;
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return -1;
    }
    opts->username = argv[optind];
    return 0;
}

/* The authorization header value, or NULL (with *err set) when the key in
 * the environment could not be sent as gRPC metadata. NULL without an error
 * when the variable is unset. */
static char *authorization_value(const char **err)
{
    const char *key = getenv(KEY_ENV);
    *err = NULL;
    if (key == NULL || key[0] == '\0') {
        return NULL;
    }
    size_t len = strlen(key);
    if (len > MAX_KEY_LENGTH) {
        *err = KEY_ENV " is too long";
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        /* metadata values are printable ASCII; anything else is a paste
         * accident (a trailing newline, say) that the server would reject */
        if (key[i] < 0x20 || key[i] > 0x7e) {
            *err = KEY_ENV " holds a character that is not printable ASCII";
            return NULL;
        }
    }
    static const char prefix[] = "Bearer ";
    char *value = malloc(sizeof(prefix) + len);
    if (value == NULL) {
        *err = "out of memory";
        return NULL;
    }
    memcpy(value, prefix, sizeof(prefix) - 1);
    memcpy(value + sizeof(prefix) - 1, key, len + 1);
    return value;
}

/* Copies a received message out of its byte buffer (it may be split in
 * several slices, and compressed: the reader undoes both). */
static int copy_response(grpc_byte_buffer *buffer, struct call_result *result)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, buffer)) {
        return -1;
    }
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    size_t len = GRPC_SLICE_LENGTH(all);
    int rc = -1;
    if (len <= MAX_RESPONSE_BYTES) {
        result->response = malloc(len > 0 ? len : 1);
        if (result->response != NULL) {
            memcpy(result->response, GRPC_SLICE_START_PTR(all), len);
            result->response_len = len;
            rc = 0;
        }
    }
    grpc_slice_unref(all);
    return rc;
}

/* One unary call on the channel: sends request, waits for the status. The
 * six ops go in one batch, completed on a pluck queue: the blocking pattern
 * of the C++ sync client, without the C++. */
static int unary_call(grpc_channel *channel, const char *method, const char *authorization,
                      const uint8_t *request, size_t request_len, unsigned long timeout_seconds,
                      struct call_result *result)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_seconds((int64_t)timeout_seconds, GPR_TIMESPAN));
    grpc_slice method_slice = grpc_slice_from_static_string(method);
    grpc_call *call = grpc_channel_create_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               method_slice, NULL, deadline, NULL);

    grpc_metadata metadata[1];
    size_t metadata_count = 0;
    memset(metadata, 0, sizeof(metadata));
    if (authorization != NULL) {
        metadata[0].key = grpc_slice_from_static_string("authorization");
        metadata[0].value = grpc_slice_from_static_string(authorization);
        metadata_count = 1;
    }
    grpc_slice request_slice = grpc_slice_from_copied_buffer((const char *)request, request_len);
    grpc_byte_buffer *send_buffer = grpc_raw_byte_buffer_create(&request_slice, 1);
    grpc_slice_unref(request_slice);

    grpc_metadata_array initial_metadata;
    grpc_metadata_array trailing_metadata;
    grpc_metadata_array_init(&initial_metadata);
    grpc_metadata_array_init(&trailing_metadata);
    grpc_byte_buffer *recv_buffer = NULL;
    grpc_slice details = grpc_empty_slice();

    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = metadata_count;
    ops[0].data.send_initial_metadata.metadata = metadata;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send_buffer;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_metadata;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv_buffer;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_metadata;
    ops[5].data.recv_status_on_client.status = &result->status;
    ops[5].data.recv_status_on_client.status_details = &details;

    int rc = -1;
    void *tag = &ops;
    grpc_call_error started = grpc_call_start_batch(call, ops, 6, tag, NULL);
    if (started == GRPC_CALL_OK) {
        grpc_event ev =
            grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        /* a failed batch still reports its status; only a missing event is
         * a local failure */
        if (ev.type == GRPC_OP_COMPLETE) {
            rc = 0;
        }
    }
    if (rc == 0) {
        result->details = grpc_slice_to_c_string(details);
        if (result->status == GRPC_STATUS_OK) {
            if (recv_buffer == NULL || copy_response(recv_buffer, result) != 0) {
                result->status = GRPC_STATUS_INTERNAL;
                gpr_free(result->details);
                result->details = gpr_strdup("no response message, or one too large to read");
            }
        }
    }

    if (recv_buffer != NULL) {
        grpc_byte_buffer_destroy(recv_buffer);
    }
    grpc_byte_buffer_destroy(send_buffer);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_metadata);
    grpc_metadata_array_destroy(&trailing_metadata);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
    return rc;
}

static void print_response(const Chattoken__V1__GetUserTokenResponse *response)
{
    char when[32] = "unknown";
    long long seconds = 0;
    if (response->expire_time != NULL) {
        seconds = (long long)response->expire_time->seconds;
        time_t t = (time_t)seconds;
        struct tm tm;
        if (gmtime_r(&t, &tm) != NULL) {
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
    }
    /* the token is printed on purpose: getting it is what this program is for */
    printf("token: %s\n", response->token);
    printf("expire_time: %s (%lld)\n", when, seconds);
    printf("user_id: %s\n", response->user_id);
}

static int get_user_token(grpc_channel *channel, const struct options *opts,
                          const char *authorization)
{
    Chattoken__V1__GetUserTokenRequest request = CHATTOKEN__V1__GET_USER_TOKEN_REQUEST__INIT;
    request.username = (char *)opts->username;
    request.ttl_seconds = (uint32_t)opts->ttl_seconds;
    size_t request_len = chattoken__v1__get_user_token_request__get_packed_size(&request);
    uint8_t *request_bytes = malloc(request_len > 0 ? request_len : 1);
    if (request_bytes == NULL) {
        fprintf(stderr, "chat-token-client: out of memory\n");
        return EXIT_LOCAL;
    }
    chattoken__v1__get_user_token_request__pack(&request, request_bytes);

    struct call_result result = {GRPC_STATUS_UNKNOWN, NULL, NULL, 0};
    int rc = unary_call(channel, METHOD, authorization, request_bytes, request_len,
                        opts->timeout_seconds, &result);
    free(request_bytes);
    if (rc != 0) {
        fprintf(stderr, "chat-token-client: GetUserToken: the call could not be started\n");
        return EXIT_LOCAL;
    }

    int exit_code = 0;
    if (result.status != GRPC_STATUS_OK) {
        fprintf(stderr, "chat-token-client: GetUserToken failed: %s (%d): %s\n",
                status_name(result.status), (int)result.status, result.details);
        exit_code = (int)result.status;
    } else {
        Chattoken__V1__GetUserTokenResponse *response =
            chattoken__v1__get_user_token_response__unpack(NULL, result.response_len,
                                                           result.response);
        if (response == NULL) {
            fprintf(stderr, "chat-token-client: GetUserToken: the response does not decode\n");
            exit_code = EXIT_LOCAL;
        } else {
            print_response(response);
            chattoken__v1__get_user_token_response__free_unpacked(response, NULL);
        }
    }
    gpr_free(result.details);
    free(result.response);
    return exit_code;
}

int main(int argc, char **argv)
{
    struct options opts;
    if (parse_options(argc, argv, &opts) != 0) {
        return EXIT_USAGE;
    }
    const char *err = NULL;
    char *authorization = authorization_value(&err);
    if (err != NULL) {
        fprintf(stderr, "chat-token-client: %s\n", err);
        return EXIT_USAGE;
    }

    grpc_init();
    grpc_channel_credentials *credentials = grpc_insecure_credentials_create();
    grpc_channel *channel = grpc_channel_create(opts.target, credentials, NULL);
    grpc_channel_credentials_release(credentials);

    int exit_code = get_user_token(channel, &opts, authorization);

    grpc_channel_destroy(channel);
    grpc_shutdown();
    if (authorization != NULL) {
        explicit_bzero(authorization, strlen(authorization));
        free(authorization);
    }
    return exit_code;
}
