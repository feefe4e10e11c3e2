/* `chat-tokend probe`: a built-in grpc.health.v1 client for exec probes
 * (Kubernetes startup/readiness/liveness, container HEALTHCHECKs), so the
 * image needs no grpc_health_probe and no shell. One Health/Check call on
 * the gRPC C core; exit 0 SERVING, 1 NOT_SERVING or UNKNOWN, 2 when the
 * check could not be made (connection, timeout, TLS, usage, another status),
 * with exactly one line on stderr. */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "probe.h"

#define PROBE_SERVING 0
#define PROBE_NOT_SERVING 1
#define PROBE_ERROR 2

#define HEALTH_CHECK "/grpc.health.v1.Health/Check"
#define DEFAULT_ADDR "unix:/run/chat-tokend/grpc.sock"
#define DEFAULT_TIMEOUT_MS 1000
#define MAX_TIMEOUT_MS 60000
#define MAX_SERVICE_LENGTH 256
#define MAX_PEM_BYTES (256 * 1024)
#define MAX_RESPONSE_BYTES 1024

typedef struct probe_options {
    const char *addr;
    const char *service;
    long timeout_ms;
    int tls;
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    const char *server_name;
} probe_options;

static const char probe_usage[] =
    "usage: chat-tokend probe [--addr ADDR] [--service NAME] [--timeout-ms N]\n"
    "                         [--tls [--ca-file F] [--cert-file F --key-file F]\n"
    "                          [--server-name NAME]]\n"
    "\n"
    "One grpc.health.v1.Health/Check call; for exec probes.\n"
    "  --addr ADDR        unix:/absolute/path or host:port (default " DEFAULT_ADDR ")\n"
    "  --service NAME     the service to check (default \"\": the whole server)\n"
    "  --timeout-ms N     deadline of the check, 1..60000 (default 1000)\n"
    "  --tls              connect with TLS (roots: --ca-file, else the system's)\n"
    "  --cert-file, --key-file   a client certificate for mTLS\n"
    "  --server-name NAME the name to verify in the server certificate\n"
    "Exit 0 SERVING, 1 NOT_SERVING or UNKNOWN, 2 the check failed (one line on stderr).\n";

/* The probe speaks through its exit code and one stderr line; the C core's
 * own log lines (connect failures, ...) would only add noise to a kubelet
 * event. */
static void silent_log(gpr_log_func_args *args)
{
    (void)args;
}

static int fail(const char *fmt, const char *what)
{
    fputs("chat-tokend probe: ", stderr);
    fprintf(stderr, fmt, what);
    fputc('\n', stderr);
    return PROBE_ERROR;
}

static int parse_timeout(const char *text, long *out)
{
    char *end = NULL;
    long value;

    if (text[0] < '0' || text[0] > '9') {
        return -1;
    }
    value = strtol(text, &end, 10);
    if (*end != '\0' || value < 1 || value > MAX_TIMEOUT_MS) {
        return -1;
    }
    *out = value;
    return 0;
}

/* -1 with the message printed on a usage error; 1 after --help. */
static int parse_probe_args(int argc, char **argv, probe_options *opt)
{
    /* the options that take a string */
    const struct {
        const char *name;
        const char **target;
    } strings[] = {
        {"--addr", &opt->addr},         {"--service", &opt->service},
        {"--ca-file", &opt->ca_file},   {"--cert-file", &opt->cert_file},
        {"--key-file", &opt->key_file}, {"--server-name", &opt->server_name},
    };

    memset(opt, 0, sizeof(*opt));
    opt->addr = DEFAULT_ADDR;
    opt->service = "";
    opt->timeout_ms = DEFAULT_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        const char **target = NULL;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(probe_usage, stdout);
            return 1;
        }
        if (strcmp(arg, "--tls") == 0) {
            opt->tls = 1;
            continue;
        }
        if (strcmp(arg, "--timeout-ms") == 0) {
            if (value == NULL || parse_timeout(value, &opt->timeout_ms) != 0) {
                fail("%s expects 1..60000 milliseconds", arg);
                return -1;
            }
            i++;
            continue;
        }
        for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++) {
            if (strcmp(arg, strings[k].name) == 0) {
                target = strings[k].target;
            }
        }
        if (target == NULL) {
            fail("unknown argument '%s' (see chat-tokend probe --help)", arg);
            return -1;
        }
        /* "" is a valid service name: the whole server; "--x" is the next
         * option, not a value */
        if (value == NULL || strncmp(value, "--", 2) == 0 ||
            (value[0] == '\0' && target != &opt->service)) {
            fail("%s expects a value", arg);
            return -1;
        }
        *target = value;
        i++;
    }
    if (strlen(opt->service) > MAX_SERVICE_LENGTH) {
        fail("%s is too long", "--service");
        return -1;
    }
    if ((opt->cert_file == NULL) != (opt->key_file == NULL)) {
        fail("%s", "--cert-file and --key-file go together");
        return -1;
    }
    if (!opt->tls && (opt->ca_file || opt->cert_file || opt->server_name)) {
        fail("%s", "--ca-file, --cert-file, --key-file and --server-name need --tls");
        return -1;
    }
    return 0;
}

/* A whole PEM file, NUL-terminated (caller frees); NULL with a message
 * printed when it cannot be read or is larger than any sane PEM. */
static char *read_pem(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t len;

    if (f == NULL) {
        fail("cannot open %s", path);
        return NULL;
    }
    buf = malloc(MAX_PEM_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        fail("%s", "out of memory");
        return NULL;
    }
    len = fread(buf, 1, MAX_PEM_BYTES + 1, f);
    if (ferror(f) || len > MAX_PEM_BYTES) {
        fclose(f);
        free(buf);
        fail("cannot read %s (or it is over 256 KiB)", path);
        return NULL;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static void free_pem(char *pem)
{
    if (pem != NULL) {
        explicit_bzero(pem, strlen(pem));
        free(pem);
    }
}

/* Insecure or TLS channel credentials; NULL with a message printed. */
static grpc_channel_credentials *make_credentials(const probe_options *opt)
{
    grpc_channel_credentials *creds;
    grpc_ssl_pem_key_cert_pair pair = {NULL, NULL};
    char *roots = NULL;
    char *cert = NULL;
    char *key = NULL;

    if (!opt->tls) {
        return grpc_insecure_credentials_create();
    }
    if (opt->ca_file != NULL && (roots = read_pem(opt->ca_file)) == NULL) {
        return NULL;
    }
    if (opt->cert_file != NULL) {
        cert = read_pem(opt->cert_file);
        key = cert != NULL ? read_pem(opt->key_file) : NULL;
        if (key == NULL) {
            free_pem(cert);
            free_pem(roots);
            return NULL;
        }
        pair.cert_chain = cert;
        pair.private_key = key;
    }
    creds = grpc_ssl_credentials_create(roots, cert != NULL ? &pair : NULL, NULL, NULL);
    free_pem(roots);
    free_pem(cert);
    free_pem(key);
    if (creds == NULL) {
        fail("%s", "TLS credentials could not be created from the given files");
    }
    return creds;
}

/* The serving status in a HealthCheckResponse, or -1 when it does not
 * decode. */
static int response_status(grpc_byte_buffer *buffer)
{
    grpc_byte_buffer_reader reader;
    grpc_slice all;
    Grpc__Health__V1__HealthCheckResponse *resp = NULL;
    int status = -1;

    if (buffer == NULL || !grpc_byte_buffer_reader_init(&reader, buffer)) {
        return -1;
    }
    all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    if (GRPC_SLICE_LENGTH(all) <= MAX_RESPONSE_BYTES) {
        resp = grpc__health__v1__health_check_response__unpack(NULL, GRPC_SLICE_LENGTH(all),
                                                               GRPC_SLICE_START_PTR(all));
    }
    grpc_slice_unref(all);
    if (resp != NULL) {
        status = (int)resp->status;
        grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    }
    return status;
}

/* The probe's verdict on a finished call. */
static int verdict(const probe_options *opt, grpc_status_code code, grpc_slice details,
                   grpc_byte_buffer *response)
{
    char *text;
    int status;

    if (code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED) {
        text = grpc_slice_to_c_string(details);
        fprintf(stderr, "chat-tokend probe: %s: %s: %s\n", opt->addr,
                code == GRPC_STATUS_UNAVAILABLE ? "cannot connect" : "timed out", text);
        gpr_free(text);
        return PROBE_ERROR;
    }
    if (code != GRPC_STATUS_OK) {
        text = grpc_slice_to_c_string(details);
        fprintf(stderr, "chat-tokend probe: %s: health check failed with status %d: %s\n",
                opt->addr, (int)code, text);
        gpr_free(text);
        return PROBE_ERROR;
    }
    status = response_status(response);
    switch (status) {
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING:
        fprintf(stderr, "chat-tokend probe: %s: SERVING\n", opt->addr);
        return PROBE_SERVING;
    case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING:
        fprintf(stderr, "chat-tokend probe: %s: NOT_SERVING\n", opt->addr);
        return PROBE_NOT_SERVING;
    case -1:
        fprintf(stderr, "chat-tokend probe: %s: the health response does not decode\n", opt->addr);
        return PROBE_ERROR;
    default:
        fprintf(stderr, "chat-tokend probe: %s: UNKNOWN (serving status %d)\n", opt->addr, status);
        return PROBE_NOT_SERVING;
    }
}

/* One Health/Check call; returns the exit code. */
static int check(const probe_options *opt, grpc_channel *channel)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    uint8_t packed[MAX_SERVICE_LENGTH + 8];
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                         gpr_time_from_millis(opt->timeout_ms, GPR_TIMESPAN));
    grpc_call *call;
    grpc_slice request_slice;
    grpc_byte_buffer *request;
    grpc_byte_buffer *response = NULL;
    grpc_metadata_array initial;
    grpc_metadata_array trailing;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    grpc_event ev;
    int rc = PROBE_ERROR;

    req.service = (char *)opt->service;
    request_slice = grpc_slice_from_copied_buffer(
        (const char *)packed, grpc__health__v1__health_check_request__pack(&req, packed));
    request = grpc_raw_byte_buffer_create(&request_slice, 1);
    grpc_slice_unref(request_slice);
    call =
        grpc_channel_create_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                 grpc_slice_from_static_string(HEALTH_CHECK), NULL, deadline, NULL);
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &response;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    if (grpc_call_start_batch(call, ops, 6, ops, NULL) != GRPC_CALL_OK) {
        fail("%s", "the health check call could not be started");
    } else {
        ev = grpc_completion_queue_pluck(cq, ops, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            rc = verdict(opt, code, details, response);
        } else {
            fail("%s", "the health check call did not complete");
        }
    }
    if (response != NULL) {
        grpc_byte_buffer_destroy(response);
    }
    grpc_byte_buffer_destroy(request);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
    return rc;
}

int srv_probe_main(int argc, char **argv)
{
    probe_options opt;
    grpc_channel_credentials *creds;
    grpc_channel *channel;
    grpc_arg arg;
    grpc_channel_args args = {0, &arg};
    int parsed = parse_probe_args(argc, argv, &opt);
    int rc;

    if (parsed != 0) {
        return parsed > 0 ? 0 : PROBE_ERROR;
    }
    gpr_set_log_function(silent_log);
    grpc_init();
    creds = make_credentials(&opt);
    if (creds == NULL) {
        grpc_shutdown();
        return PROBE_ERROR;
    }
    if (opt.server_name != NULL) {
        arg.type = GRPC_ARG_STRING;
        arg.key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
        arg.value.string = (char *)opt.server_name;
        args.num_args = 1;
    }
    channel = grpc_channel_create(opt.addr, creds, &args);
    grpc_channel_credentials_release(creds);
    rc = check(&opt, channel);
    grpc_channel_destroy(channel);
    grpc_shutdown();
    return rc;
}
