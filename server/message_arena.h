/* A protobuf-c allocator over a caller's buffer (usually on the stack), so
 * that decoding a request allocates nothing per call; a message larger than
 * the buffer spills to the heap, and its free gives that back. */
#ifndef SRV_MESSAGE_ARENA_H
#define SRV_MESSAGE_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

typedef struct srv_arena {
    ProtobufCAllocator allocator; /* pass &arena.allocator to __unpack */
    uint8_t *buf;
    size_t cap;
    size_t used;
    unsigned spilled; /* allocations that went to the heap */
} srv_arena;

void srv_arena_init(srv_arena *arena, void *buf, size_t cap);

#endif
