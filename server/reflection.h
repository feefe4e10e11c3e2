/* gRPC server reflection (grpc.reflection.v1 and v1alpha) over the descriptor
 * set embedded at build time: a pure function from one ServerReflectionRequest
 * to one ServerReflectionResponse, so the call plumbing stays out of it and
 * unit tests need no network. */
#ifndef SRV_REFLECTION_H
#define SRV_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

/* Requests are a host name and one symbol or file name; anything bigger is
 * refused before decoding. Each name (host, file, symbol, type) is echoed
 * back in original_request, to callers that may be unauthenticated, so a
 * name over SRV_REFLECTION_MAX_NAME bytes is refused too: no real name
 * comes near it. */
#define SRV_REFLECTION_MAX_REQUEST 65536
#define SRV_REFLECTION_MAX_NAME 1024

/* gRPC status codes carried in error_response.error_code. */
#define SRV_REFLECTION_NOT_FOUND 5
#define SRV_REFLECTION_UNIMPLEMENTED 12

/* Parses the embedded descriptor set and builds the file and symbol index.
 * Call once, before any thread calls srv_reflection_answer; a second call is a
 * no-op. Returns 0, or -1 with a message in err. */
int srv_reflection_init(char *err, size_t errlen);

/* Releases the index; srv_reflection_init may be called again afterwards. */
void srv_reflection_free(void);

/* Answers one serialized ServerReflectionRequest (v1 and v1alpha are the same
 * on the wire) with a serialized ServerReflectionResponse in *response, which
 * the caller frees with free(). Lookups that fail (unknown file, symbol or
 * type) are answers too: an error_response inside a successful return.
 * Returns -1 with a message in err only when the request is over
 * SRV_REFLECTION_MAX_REQUEST bytes, holds a name over SRV_REFLECTION_MAX_NAME
 * bytes, or is not a valid request (answer the call
 * INVALID_ARGUMENT), when init has not run, or on out of memory.
 * Safe to call from many threads at once after srv_reflection_init. */
int srv_reflection_answer(const uint8_t *request, size_t len, uint8_t **response,
                          size_t *response_len, char *err, size_t errlen);

#endif
