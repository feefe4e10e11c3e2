/* A bump allocator for protobuf-c unpacking: see message_arena.h. */
#include "message_arena.h"

#include <stdlib.h>

#define ARENA_ALIGN 16

static void *arena_alloc(void *data, size_t size)
{
    srv_arena *a = data;
    size_t start = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

    if (start <= a->cap && size <= a->cap - start) {
        a->used = start + size;
        return a->buf + start;
    }
    a->spilled++;
    return malloc(size);
}

/* Arena memory goes away with the buffer; only spilled blocks are freed. */
static void arena_free(void *data, void *p)
{
    srv_arena *a = data;
    uintptr_t u = (uintptr_t)p;

    if (u < (uintptr_t)a->buf || u >= (uintptr_t)(a->buf + a->cap)) {
        free(p);
    }
}

void srv_arena_init(srv_arena *arena, void *buf, size_t cap)
{
    arena->allocator.alloc = arena_alloc;
    arena->allocator.free = arena_free;
    arena->allocator.allocator_data = arena;
    arena->buf = buf;
    arena->cap = cap;
    arena->used = 0;
    arena->spilled = 0;
}
