/* Request strings as protobuf-c hands them over: NUL-terminated, so a
 * string field holding a NUL byte would be silently cut short. */
#ifndef SRV_PROTO_STRINGS_H
#define SRV_PROTO_STRINGS_H

#include <stddef.h>
#include <stdint.h>

/* 1 when a length-delimited field of the message holds a NUL byte.
 * protobuf-c hands strings over NUL-terminated, so "alice\0admin" would
 * silently become "alice": such requests are refused instead. Our request
 * messages are flat, so every length-delimited field is a string. 0 for
 * bytes that do not parse as the wire format: unpack refuses those. */
int srv_proto_has_nul_in_strings(const uint8_t *data, size_t len);

#endif
