/* gRPC server reflection over the embedded descriptor set (gen/descriptor_set.c,
 * protoc --include_imports --include_source_info of the service protos).
 *
 * v1 and v1alpha share one implementation: diffing the two reflection.proto
 * files of Debian's grpc-proto shows only comments, package and options
 * differ; every message, field name, number and type is the same, so the v1
 * types decode and encode both.
 *
 * Behaviour follows grpc's C++ ProtoServerReflection
 * (src/cpp/ext/proto_server_reflection.cc):
 * - every response echoes the request's host as valid_host and the request
 *   itself as original_request;
 * - file_by_filename and file_containing_symbol answer the file, then its
 *   dependencies recursively, depth first in import order, each file once per
 *   response (C++ keeps its seen-set per request, not per stream, too);
 * - file_containing_extension looks the containing type up as a message type
 *   ("Type not found.") and then the extension by number ("Extension not
 *   found."); all_extension_numbers_of_type answers base_type_name and the
 *   numbers, an empty list when a known message has no extensions;
 * - failed lookups are error_response NOT_FOUND with C++'s messages ("File
 *   not found.", "Symbol not found.", ...); a request with no message_request
 *   set is error_response UNIMPLEMENTED;
 * - symbols are what a C++ DescriptorPool resolves: messages, fields, oneofs,
 *   enums, enum values (scoped beside their enum), services, methods and
 *   extensions, nested at any depth.
 * Where we differ, on purpose:
 * - files are sent as protoc wrote them, source info included, so clients
 *   (grpcurl describe, buf curl) can show the comments; C++ re-serializes
 *   with FileDescriptor::CopyTo, which drops them. The bytes are slices of
 *   the embedded set, never re-packed, so nothing is lost or reordered;
 * - one leading '.' on a symbol or type name is accepted (".pkg.Msg" is how
 *   descriptors spell references, and some clients pass them on);
 * - package names are not symbols here (C++ resolves "grpc.health.v1" to a
 *   file; no client we know asks);
 * - list_services names the services of the embedded set, which is built from
 *   exactly the protos the server serves; C++ lists the registered services;
 * - a request over SRV_REFLECTION_MAX_REQUEST bytes, one that does not
 *   decode, or whose strings are not valid UTF-8 or hold a NUL is refused
 *   (-1) rather than answered, so the server can fail the call with
 *   INVALID_ARGUMENT as C++ does for a message that does not parse. */
#include "reflection.h"
#include "text.h"
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

extern const unsigned char srv_descriptor_set[];
extern const size_t srv_descriptor_set_len;

enum symbol_kind {
    SYMBOL_MESSAGE, /* the only kind extension lookups accept */
    SYMBOL_OTHER,
};

struct symbol {
    char *name; /* fully qualified, no leading dot */
    size_t file;
    enum symbol_kind kind;
};

struct extension {
    char *extendee; /* fully qualified, no leading dot */
    int32_t number;
    size_t file;
};

struct file_entry {
    const char *name;     /* owned by the unpacked set */
    const uint8_t *bytes; /* slice of srv_descriptor_set */
    size_t len;
    size_t *deps; /* indexes into files, in import order */
    size_t n_deps;
};

/* Built by srv_reflection_init, read-only afterwards: that is what makes
 * concurrent srv_reflection_answer calls safe without a lock. */
static struct {
    int ready;
    Google__Protobuf__FileDescriptorSet *set;
    struct file_entry *files;
    size_t n_files;
    struct symbol *symbols; /* sorted by name once complete */
    size_t n_symbols;
    size_t cap_symbols;
    struct extension *extensions;
    size_t n_extensions;
    size_t cap_extensions;
    const char **services; /* point at symbol names */
    size_t n_services;
    size_t cap_services;
} idx;

/* ---- slicing the set and checking request strings (wire.h walks the bytes) ---- */

/* proto3 strings must be UTF-8; a NUL would also be cut off by protobuf-c's
 * char * and make us look up a different name than the client sent. */
static int is_clean_text(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        uint32_t min;

        if (c == 0) {
            return 0;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (len - i - 1 < n) {
            return 0;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
        i += n + 1;
    }
    return 1;
}

/* The string fields of ServerReflectionRequest: host (1), file_by_filename
 * (3), file_containing_symbol (4), all_extension_numbers_of_type (6),
 * list_services (7); and containing_type (1) inside the ExtensionRequest (5). */
static int request_strings_clean(const uint8_t *p, const uint8_t *end, int in_extension_request)
{
    srv_wire_field f;
    int rc;

    for (;;) {
        rc = srv_wire_next(&p, end, &f);
        if (rc <= 0) {
            return rc == 0;
        }
        if (f.type != 2) {
            continue;
        }
        if (in_extension_request) {
            if (f.number == 1 && !is_clean_text(f.data, f.len)) {
                return 0;
            }
            continue;
        }
        if (f.number == 5) {
            if (!request_strings_clean(f.data, f.data + f.len, 1)) {
                return 0;
            }
        } else if (f.number == 1 || f.number == 3 || f.number == 4 || f.number == 6 ||
                   f.number == 7) {
            if (!is_clean_text(f.data, f.len)) {
                return 0;
            }
        }
    }
}

/* ---- the index ---- */

static const char *strip_dot(const char *name)
{
    return name[0] == '.' ? name + 1 : name;
}

static char *join_name(const char *scope, const char *name)
{
    size_t scope_len = strlen(scope);
    size_t name_len = strlen(name);
    char *full = malloc(scope_len + 1 + name_len + 1);

    if (full == NULL) {
        return NULL;
    }
    if (scope_len == 0) {
        memcpy(full, name, name_len + 1);
        return full;
    }
    memcpy(full, scope, scope_len);
    full[scope_len] = '.';
    memcpy(full + scope_len + 1, name, name_len + 1);
    return full;
}

static int grow(void **array, size_t *cap, size_t need, size_t item)
{
    size_t next;
    void *moved;

    if (need <= *cap) {
        return 0;
    }
    next = *cap ? *cap * 2 : 64;
    while (next < need) {
        next *= 2;
    }
    moved = realloc(*array, next * item);
    if (moved == NULL) {
        return -1;
    }
    *array = moved;
    *cap = next;
    return 0;
}

/* Adds scope.name; *full (optional) receives the stored name. */
static int add_symbol(const char *scope, const char *name, size_t file, enum symbol_kind kind,
                      const char **full, char *err, size_t errlen)
{
    char *joined;
    void *array = idx.symbols;

    if (name == NULL || name[0] == '\0') {
        ct_set_error(err, errlen, "%s: a definition in scope '%s' has no name",
                     idx.files[file].name, scope);
        return -1;
    }
    if (grow(&array, &idx.cap_symbols, idx.n_symbols + 1, sizeof(*idx.symbols)) != 0) {
        ct_set_error(err, errlen, "out of memory");
        return -1;
    }
    idx.symbols = array;
    joined = join_name(scope, name);
    if (joined == NULL) {
        ct_set_error(err, errlen, "out of memory");
        return -1;
    }
    idx.symbols[idx.n_symbols].name = joined;
    idx.symbols[idx.n_symbols].file = file;
    idx.symbols[idx.n_symbols].kind = kind;
    idx.n_symbols++;
    if (full != NULL) {
        *full = joined;
    }
    return 0;
}

/* An extension is a symbol (scope.name) and also an entry by extendee and
 * number for the two extension requests. */
static int add_extension(const char *scope, const Google__Protobuf__FieldDescriptorProto *field,
                         size_t file, char *err, size_t errlen)
{
    void *array = idx.extensions;
    char *extendee;

    if (add_symbol(scope, field->name, file, SYMBOL_OTHER, NULL, err, errlen) != 0) {
        return -1;
    }
    if (field->extendee == NULL || !field->has_number) {
        ct_set_error(err, errlen, "%s: extension %s.%s has no extendee or number",
                     idx.files[file].name, scope, field->name);
        return -1;
    }
    if (grow(&array, &idx.cap_extensions, idx.n_extensions + 1, sizeof(*idx.extensions)) != 0) {
        ct_set_error(err, errlen, "out of memory");
        return -1;
    }
    idx.extensions = array;
    extendee = strdup(strip_dot(field->extendee));
    if (extendee == NULL) {
        ct_set_error(err, errlen, "out of memory");
        return -1;
    }
    idx.extensions[idx.n_extensions].extendee = extendee;
    idx.extensions[idx.n_extensions].number = field->number;
    idx.extensions[idx.n_extensions].file = file;
    idx.n_extensions++;
    return 0;
}

/* Enum values are scoped beside their enum, not inside it (C++ rules). */
static int index_enum(const char *scope, const Google__Protobuf__EnumDescriptorProto *e,
                      size_t file, char *err, size_t errlen)
{
    if (add_symbol(scope, e->name, file, SYMBOL_OTHER, NULL, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < e->n_value; i++) {
        if (add_symbol(scope, e->value[i]->name, file, SYMBOL_OTHER, NULL, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

static int index_message(const char *scope, const Google__Protobuf__DescriptorProto *m, size_t file,
                         char *err, size_t errlen)
{
    const char *full;

    if (add_symbol(scope, m->name, file, SYMBOL_MESSAGE, &full, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < m->n_field; i++) {
        if (add_symbol(full, m->field[i]->name, file, SYMBOL_OTHER, NULL, err, errlen) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < m->n_oneof_decl; i++) {
        if (add_symbol(full, m->oneof_decl[i]->name, file, SYMBOL_OTHER, NULL, err, errlen) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < m->n_extension; i++) {
        if (add_extension(full, m->extension[i], file, err, errlen) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < m->n_enum_type; i++) {
        if (index_enum(full, m->enum_type[i], file, err, errlen) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < m->n_nested_type; i++) {
        if (index_message(full, m->nested_type[i], file, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

static int index_service(const char *scope, const Google__Protobuf__ServiceDescriptorProto *s,
                         size_t file, char *err, size_t errlen)
{
    const char *full;
    void *array = idx.services;

    if (add_symbol(scope, s->name, file, SYMBOL_OTHER, &full, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < s->n_method; i++) {
        if (add_symbol(full, s->method[i]->name, file, SYMBOL_OTHER, NULL, err, errlen) != 0) {
            return -1;
        }
    }
    if (grow(&array, &idx.cap_services, idx.n_services + 1, sizeof(*idx.services)) != 0) {
        ct_set_error(err, errlen, "out of memory");
        return -1;
    }
    idx.services = array;
    idx.services[idx.n_services++] = full;
    return 0;
}

static int index_file(size_t file, char *err, size_t errlen)
{
    const Google__Protobuf__FileDescriptorProto *fd = idx.set->file[file];
    const char *package = fd->package != NULL ? fd->package : "";

    for (size_t i = 0; i < fd->n_message_type; i++) {
        if (index_message(package, fd->message_type[i], file, err, errlen) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < fd->n_enum_type; i++) {
        if (index_enum(package, fd->enum_type[i], file, err, errlen) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < fd->n_service; i++) {
        if (index_service(package, fd->service[i], file, err, errlen) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < fd->n_extension; i++) {
        if (add_extension(package, fd->extension[i], file, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

static long find_file(const char *name)
{
    for (size_t i = 0; i < idx.n_files; i++) {
        if (strcmp(idx.files[i].name, name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static int resolve_dependencies(size_t file, char *err, size_t errlen)
{
    const Google__Protobuf__FileDescriptorProto *fd = idx.set->file[file];

    if (fd->n_dependency == 0) {
        return 0;
    }
    idx.files[file].deps = calloc(fd->n_dependency, sizeof(size_t));
    if (idx.files[file].deps == NULL) {
        ct_set_error(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < fd->n_dependency; i++) {
        long dep = find_file(fd->dependency[i]);

        if (dep < 0) {
            ct_set_error(err, errlen, "%s imports %s, which the descriptor set lacks",
                         idx.files[file].name, fd->dependency[i]);
            return -1;
        }
        idx.files[file].deps[i] = (size_t)dep;
    }
    idx.files[file].n_deps = fd->n_dependency;
    return 0;
}

/* Points each file at its own bytes in the set: FileDescriptorSet is field 1
 * repeated, so the k-th field-1 record is the k-th file protobuf-c unpacked. */
static int slice_files(char *err, size_t errlen)
{
    const uint8_t *p = srv_descriptor_set;
    const uint8_t *end = srv_descriptor_set + srv_descriptor_set_len;
    srv_wire_field f;
    size_t k = 0;
    int rc;

    for (;;) {
        rc = srv_wire_next(&p, end, &f);
        if (rc < 0) {
            ct_set_error(err, errlen, "descriptor set: malformed at byte %zu",
                         (size_t)(p - srv_descriptor_set));
            return -1;
        }
        if (rc == 0) {
            break;
        }
        if (f.number != 1 || f.type != 2) {
            continue;
        }
        if (k == idx.n_files) {
            break;
        }
        idx.files[k].bytes = f.data;
        idx.files[k].len = f.len;
        k++;
    }
    if (k != idx.n_files || rc != 0) {
        ct_set_error(err, errlen,
                     "descriptor set: %zu files decoded, a different number on the wire",
                     idx.n_files);
        return -1;
    }
    return 0;
}

static int compare_symbols(const void *a, const void *b)
{
    return strcmp(((const struct symbol *)a)->name, ((const struct symbol *)b)->name);
}

static int build_index(char *err, size_t errlen)
{
    idx.set = google__protobuf__file_descriptor_set__unpack(NULL, srv_descriptor_set_len,
                                                            srv_descriptor_set);
    if (idx.set == NULL) {
        ct_set_error(err, errlen, "descriptor set: does not decode");
        return -1;
    }
    if (idx.set->n_file == 0) {
        ct_set_error(err, errlen, "descriptor set: no files");
        return -1;
    }
    idx.n_files = idx.set->n_file;
    idx.files = calloc(idx.n_files, sizeof(*idx.files));
    if (idx.files == NULL) {
        ct_set_error(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < idx.n_files; i++) {
        const char *name = idx.set->file[i]->name;

        if (name == NULL || name[0] == '\0') {
            ct_set_error(err, errlen, "descriptor set: file %zu has no name", i);
            return -1;
        }
        idx.files[i].name = name;
    }
    for (size_t i = 1; i < idx.n_files; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(idx.files[i].name, idx.files[j].name) == 0) {
                ct_set_error(err, errlen, "descriptor set: %s appears twice", idx.files[i].name);
                return -1;
            }
        }
    }
    if (slice_files(err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < idx.n_files; i++) {
        if (resolve_dependencies(i, err, errlen) != 0 || index_file(i, err, errlen) != 0) {
            return -1;
        }
    }
    qsort(idx.symbols, idx.n_symbols, sizeof(*idx.symbols), compare_symbols);
    for (size_t i = 1; i < idx.n_symbols; i++) {
        if (strcmp(idx.symbols[i - 1].name, idx.symbols[i].name) == 0) {
            ct_set_error(err, errlen, "descriptor set: symbol %s defined twice",
                         idx.symbols[i].name);
            return -1;
        }
    }
    return 0;
}

int srv_reflection_init(char *err, size_t errlen)
{
    if (idx.ready) {
        return 0;
    }
    if (build_index(err, errlen) != 0) {
        srv_reflection_free();
        return -1;
    }
    idx.ready = 1;
    return 0;
}

void srv_reflection_free(void)
{
    for (size_t i = 0; i < idx.n_symbols; i++) {
        free(idx.symbols[i].name);
    }
    for (size_t i = 0; i < idx.n_extensions; i++) {
        free(idx.extensions[i].extendee);
    }
    if (idx.files != NULL) {
        for (size_t i = 0; i < idx.n_files; i++) {
            free(idx.files[i].deps);
        }
    }
    free(idx.symbols);
    free(idx.extensions);
    free(idx.services);
    free(idx.files);
    if (idx.set != NULL) {
        google__protobuf__file_descriptor_set__free_unpacked(idx.set, NULL);
    }
    memset(&idx, 0, sizeof(idx));
}

static const struct symbol *find_symbol(const char *name)
{
    struct symbol key;

    key.name = (char *)name;
    return bsearch(&key, idx.symbols, idx.n_symbols, sizeof(*idx.symbols), compare_symbols);
}

static const struct symbol *find_message(const char *name)
{
    const struct symbol *s = find_symbol(strip_dot(name));

    return s != NULL && s->kind == SYMBOL_MESSAGE ? s : NULL;
}

/* ---- answering ---- */

/* One response under construction: the sub-messages live here and point into
 * the index or the request, so only the arrays below are allocated. */
struct answer {
    Grpc__Reflection__V1__ServerReflectionResponse response;
    Grpc__Reflection__V1__FileDescriptorResponse files;
    Grpc__Reflection__V1__ListServiceResponse list;
    Grpc__Reflection__V1__ExtensionNumberResponse numbers;
    Grpc__Reflection__V1__ErrorResponse error;
    ProtobufCBinaryData *blobs;
    Grpc__Reflection__V1__ServiceResponse *service_items;
    Grpc__Reflection__V1__ServiceResponse **service_pointers;
    int32_t *number_items;
    unsigned char *seen;
};

static void answer_error(struct answer *a, int32_t code, const char *message)
{
    a->error.error_code = code;
    a->error.error_message = (char *)message;
    a->response.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    a->response.error_response = &a->error;
}

/* Pre-order, imports in declaration order, each file once: C++'s
 * FillFileDescriptorResponse. Depth is bounded by the file count. */
static void add_file_tree(struct answer *a, size_t file)
{
    if (a->seen[file]) {
        return;
    }
    a->seen[file] = 1;
    a->blobs[a->files.n_file_descriptor_proto].data = (uint8_t *)idx.files[file].bytes;
    a->blobs[a->files.n_file_descriptor_proto].len = idx.files[file].len;
    a->files.n_file_descriptor_proto++;
    for (size_t i = 0; i < idx.files[file].n_deps; i++) {
        add_file_tree(a, idx.files[file].deps[i]);
    }
}

static int answer_files(struct answer *a, size_t file)
{
    a->blobs = calloc(idx.n_files, sizeof(*a->blobs));
    a->seen = calloc(idx.n_files, 1);
    if (a->blobs == NULL || a->seen == NULL) {
        return -1;
    }
    add_file_tree(a, file);
    a->files.file_descriptor_proto = a->blobs;
    a->response.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    a->response.file_descriptor_response = &a->files;
    return 0;
}

static int answer_list_services(struct answer *a)
{
    static const Grpc__Reflection__V1__ServiceResponse init =
        GRPC__REFLECTION__V1__SERVICE_RESPONSE__INIT;

    a->service_items = calloc(idx.n_services, sizeof(*a->service_items));
    a->service_pointers = calloc(idx.n_services, sizeof(*a->service_pointers));
    if (a->service_items == NULL || a->service_pointers == NULL) {
        return -1;
    }
    for (size_t i = 0; i < idx.n_services; i++) {
        a->service_items[i] = init;
        a->service_items[i].name = (char *)idx.services[i];
        a->service_pointers[i] = &a->service_items[i];
    }
    a->list.n_service = idx.n_services;
    a->list.service = a->service_pointers;
    a->response.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    a->response.list_services_response = &a->list;
    return 0;
}

static int answer_file_by_name(struct answer *a, const char *name)
{
    long file = find_file(name);

    if (file < 0) {
        answer_error(a, SRV_REFLECTION_NOT_FOUND, "File not found.");
        return 0;
    }
    return answer_files(a, (size_t)file);
}

static int answer_symbol(struct answer *a, const char *name)
{
    const struct symbol *s = find_symbol(strip_dot(name));

    if (s == NULL) {
        answer_error(a, SRV_REFLECTION_NOT_FOUND, "Symbol not found.");
        return 0;
    }
    return answer_files(a, s->file);
}

static int answer_extension(struct answer *a, const Grpc__Reflection__V1__ExtensionRequest *req)
{
    const struct symbol *type;

    if (req == NULL) {
        answer_error(a, SRV_REFLECTION_NOT_FOUND, "Type not found.");
        return 0;
    }
    type = find_message(req->containing_type);
    if (type == NULL) {
        answer_error(a, SRV_REFLECTION_NOT_FOUND, "Type not found.");
        return 0;
    }
    for (size_t i = 0; i < idx.n_extensions; i++) {
        if (idx.extensions[i].number == req->extension_number &&
            strcmp(idx.extensions[i].extendee, type->name) == 0) {
            return answer_files(a, idx.extensions[i].file);
        }
    }
    answer_error(a, SRV_REFLECTION_NOT_FOUND, "Extension not found.");
    return 0;
}

static int answer_extension_numbers(struct answer *a, const char *name)
{
    const struct symbol *type = find_message(name);
    size_t n = 0;

    if (type == NULL) {
        answer_error(a, SRV_REFLECTION_NOT_FOUND, "Type not found.");
        return 0;
    }
    if (idx.n_extensions > 0) {
        a->number_items = calloc(idx.n_extensions, sizeof(*a->number_items));
        if (a->number_items == NULL) {
            return -1;
        }
    }
    for (size_t i = 0; i < idx.n_extensions; i++) {
        if (strcmp(idx.extensions[i].extendee, type->name) == 0) {
            a->number_items[n++] = idx.extensions[i].number;
        }
    }
    a->numbers.base_type_name = type->name;
    a->numbers.n_extension_number = n;
    a->numbers.extension_number = a->number_items;
    a->response.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    a->response.all_extension_numbers_response = &a->numbers;
    return 0;
}

static int answer_request(struct answer *a,
                          const Grpc__Reflection__V1__ServerReflectionRequest *req)
{
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        return answer_list_services(a);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        return answer_file_by_name(a, req->file_by_filename);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        return answer_symbol(a, req->file_containing_symbol);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        return answer_extension(a, req->file_containing_extension);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        return answer_extension_numbers(a, req->all_extension_numbers_of_type);
    default:
        /* C++ answers an unset (or newer, unknown) request kind this way. */
        answer_error(a, SRV_REFLECTION_UNIMPLEMENTED, "No supported message_request is set.");
        return 0;
    }
}

/* The longest of the names the response would echo back. */
static size_t longest_name(const Grpc__Reflection__V1__ServerReflectionRequest *req)
{
    const char *names[] = {req->host, NULL, NULL};
    size_t longest = 0;

    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        names[1] = req->file_by_filename;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        names[1] = req->file_containing_symbol;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        names[1] = req->all_extension_numbers_of_type;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        names[1] = req->list_services;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        names[1] = req->file_containing_extension != NULL
                       ? req->file_containing_extension->containing_type
                       : NULL;
        break;
    default:
        break;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t len = names[i] != NULL ? strlen(names[i]) : 0;
        longest = len > longest ? len : longest;
    }
    return longest;
}

static void answer_release(struct answer *a)
{
    free(a->blobs);
    free(a->service_items);
    free(a->service_pointers);
    free(a->number_items);
    free(a->seen);
}

int srv_reflection_answer(const uint8_t *request, size_t len, uint8_t **response,
                          size_t *response_len, char *err, size_t errlen)
{
    static const uint8_t no_bytes[1];
    static const struct answer init = {
        .response = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT,
        .files = GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT,
        .list = GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT,
        .numbers = GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT,
        .error = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT,
    };
    Grpc__Reflection__V1__ServerReflectionRequest *req;
    struct answer a = init;
    uint8_t *out;
    size_t size;
    int rc = -1;

    if (response == NULL || response_len == NULL || (request == NULL && len > 0)) {
        ct_set_error(err, errlen, "no request or response pointer");
        return -1;
    }
    *response = NULL;
    *response_len = 0;
    if (!idx.ready) {
        ct_set_error(err, errlen, "reflection is not initialised");
        return -1;
    }
    if (len > SRV_REFLECTION_MAX_REQUEST) {
        ct_set_error(err, errlen, "reflection request of %zu bytes, over the %d byte limit", len,
                     SRV_REFLECTION_MAX_REQUEST);
        return -1;
    }
    if (request == NULL) {
        request = no_bytes; /* an empty message is a valid request */
    }
    req = grpc__reflection__v1__server_reflection_request__unpack(NULL, len, request);
    if (req == NULL) {
        ct_set_error(err, errlen, "reflection request does not decode");
        return -1;
    }
    if (!request_strings_clean(request, request + len, 0)) {
        ct_set_error(err, errlen,
                     "reflection request holds a string that is not UTF-8 or has a NUL");
        goto done;
    }
    if (longest_name(req) > SRV_REFLECTION_MAX_NAME) {
        ct_set_error(err, errlen, "reflection request holds a name of %zu bytes, over the %d limit",
                     longest_name(req), SRV_REFLECTION_MAX_NAME);
        goto done;
    }
    if (answer_request(&a, req) != 0) {
        ct_set_error(err, errlen, "out of memory");
        goto done;
    }
    a.response.valid_host = req->host;
    a.response.original_request = req;
    size = grpc__reflection__v1__server_reflection_response__get_packed_size(&a.response);
    out = malloc(size > 0 ? size : 1);
    if (out == NULL) {
        ct_set_error(err, errlen, "out of memory");
        goto done;
    }
    *response_len = grpc__reflection__v1__server_reflection_response__pack(&a.response, out);
    *response = out;
    rc = 0;
done:
    answer_release(&a);
    grpc__reflection__v1__server_reflection_request__free_unpacked(req, NULL);
    return rc;
}
