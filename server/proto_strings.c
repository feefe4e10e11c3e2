/* The NUL check on request bytes before protobuf-c decodes them: a walk
 * over the wire format of a flat message that looks inside every
 * length-delimited field. Shared by the gRPC side and the request fuzzer
 * (tests/fuzz/fuzz_requests.c). */
#include "proto_strings.h"

#include <string.h>

/* Reads a protobuf varint; 0 when it runs past the end or is too long. */
static size_t read_varint(const uint8_t *p, const uint8_t *end, uint64_t *value)
{
    uint64_t v = 0;

    for (size_t i = 0; i < 10 && p + i < end; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if ((p[i] & 0x80) == 0) {
            *value = v;
            return i + 1;
        }
    }
    return 0;
}

int srv_proto_has_nul_in_strings(const uint8_t *data, size_t len)
{
    const uint8_t *p = data;
    const uint8_t *end = data + len;

    while (p < end) {
        uint64_t key;
        uint64_t value;
        size_t n = read_varint(p, end, &key);
        if (n == 0) {
            return 0; /* malformed: unpack refuses it */
        }
        p += n;
        switch (key & 7) {
        case 0:
            n = read_varint(p, end, &value);
            break;
        case 1:
            n = 8;
            break;
        case 2:
            n = read_varint(p, end, &value);
            if (n != 0 && value <= (uint64_t)(end - p - n)) {
                if (memchr(p + n, '\0', (size_t)value) != NULL) {
                    return 1;
                }
                n += (size_t)value;
            } else {
                n = 0;
            }
            break;
        case 5:
            n = 4;
            break;
        default:
            n = 0;
            break;
        }
        if (n == 0 || n > (size_t)(end - p)) {
            return 0;
        }
        p += n;
    }
    return 0;
}
