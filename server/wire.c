/* The protobuf wire walker (see wire.h). */
#include "wire.h"

#include <string.h>

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    uint64_t v = 0;

    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b;

        if (*p >= end) {
            return -1;
        }
        b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *value = v;
            return 0;
        }
    }
    return -1;
}

int srv_wire_next(const uint8_t **p, const uint8_t *end, srv_wire_field *f)
{
    uint64_t key;
    uint64_t value;

    if (*p == end) {
        return 0;
    }
    if (read_varint(p, end, &key) != 0 || key >> 3 == 0 || key >> 3 > 0x1fffffff) {
        return -1;
    }
    f->number = (uint32_t)(key >> 3);
    f->type = (int)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->type) {
    case 0:
        return read_varint(p, end, &value) == 0 ? 1 : -1;
    case 1:
        if (end - *p < 8) {
            return -1;
        }
        *p += 8;
        return 1;
    case 2:
        if (read_varint(p, end, &value) != 0 || value > (uint64_t)(end - *p)) {
            return -1;
        }
        f->data = *p;
        f->len = (size_t)value;
        *p += value;
        return 1;
    case 5:
        if (end - *p < 4) {
            return -1;
        }
        *p += 4;
        return 1;
    default:
        return -1;
    }
}

int srv_wire_has_nul_in_strings(const uint8_t *data, size_t len)
{
    const uint8_t *p = data;
    const uint8_t *end = data + len;
    srv_wire_field f;

    while (srv_wire_next(&p, end, &f) == 1) {
        if (f.type == 2 && memchr(f.data, '\0', f.len) != NULL) {
            return 1;
        }
    }
    return 0; /* the end, or malformed: unpack refuses those */
}
