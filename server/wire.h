/* The protobuf wire format, walked field by field: the one walker behind
 * reflection (slicing the descriptor set, checking request strings) and the
 * NUL check on TokenService requests. */
#ifndef SRV_WIRE_H
#define SRV_WIRE_H

#include <stddef.h>
#include <stdint.h>

typedef struct srv_wire_field {
    uint32_t number;
    int type;            /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    const uint8_t *data; /* length-delimited fields only */
    size_t len;
} srv_wire_field;

/* Reads the field at *p and moves *p past it: 1 with *f filled, 0 at the
 * end, -1 when malformed. Groups (wire types 3 and 4) count as malformed:
 * none of our messages has any. */
int srv_wire_next(const uint8_t **p, const uint8_t *end, srv_wire_field *f);

/* 1 when a length-delimited field of the message holds a NUL byte.
 * protobuf-c hands strings over NUL-terminated, so "alice\0admin" would
 * silently become "alice": such requests are refused instead. Our request
 * messages are flat, so every length-delimited field is a string. 0 for
 * bytes that do not parse as the wire format: unpack refuses those. */
int srv_wire_has_nul_in_strings(const uint8_t *data, size_t len);

#endif
