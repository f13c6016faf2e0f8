/* plugins/text_features/bert/safetensors.c - read-only safetensors reader (see safetensors.h).
 *
 * The whole header is validated at st_open (dtype known, shape sane, byte range inside the
 * data block and equal to product(shape) * dtype size), so st_get_f32 never re-checks bounds.
 *
 * Ownership: st_file owns f->path, f->tensors[] and each tensors[i].name (malloc) and the
 * mapping (munmap in st_close). The json-c header object lives only inside st_open.
 * st_get_f32's copies are malloc'ed and handed to the caller through *owned.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader maps it without byte swapping"
#endif

static const struct {
    const char *name;
    size_t size;
} dtype_info[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1},    [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},   [ST_F8_E5M2] = {"F8_E5M2", 1},
    [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_I16] = {"I16", 2}, [ST_U16] = {"U16", 2}, [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2},    [ST_I32] = {"I32", 4},   [ST_U32] = {"U32", 4}, [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8},      [ST_I64] = {"I64", 8},   [ST_U64] = {"U64", 8},
};

const char *st_dtype_name(st_dtype dtype)
{
    return (unsigned)dtype < ST_DTYPE_COUNT ? dtype_info[dtype].name : "?";
}

size_t st_dtype_size(st_dtype dtype) { return (unsigned)dtype < ST_DTYPE_COUNT ? dtype_info[dtype].size : 0; }

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0x1f) { /* inf and NaN keep their payload */
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) { /* rebias 15 -> 127 */
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else { /* half subnormals are float normals: shift the leading 1 into the implicit bit */
        uint32_t shift = 0;
        while (!(mantissa & 0x400u)) {
            mantissa <<= 1;
            shift++;
        }
        bits = sign | ((113u - shift) << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

float st_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

/* "[2, 3]" into buf. */
static const char *format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

static void known_dtypes(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ST_DTYPE_COUNT && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", dtype_info[i].name);
}

#define SHOWN_MAX 96

/* A name or string from the file as it may appear in a one-line message: control bytes
 * escaped, long ones cut. */
static const char *shown(const char *text, char buf[SHOWN_MAX])
{
    size_t used = 0;
    buf[0] = '\0';
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (used + 8 >= SHOWN_MAX) {
            strcpy(buf + used, "...");
            break;
        }
        used += (size_t)snprintf(buf + used, SHOWN_MAX - used, *c < 0x20 || *c == 0x7f ? "\\x%02x" : "%c", *c);
    }
    return buf;
}

static tema_status parse_dtype(const char *path, const char *name, json_object *value, st_tensor *t,
                               tema_err *err)
{
    if (!json_object_is_type(value, json_type_string))
        return tema_fail(err, TEMA_EFORMAT, "%s: tensor '%s': \"dtype\" is not a string; hint: the header is malformed",
                         path, name);
    const char *s = json_object_get_string(value);
    for (int i = 0; i < ST_DTYPE_COUNT; i++) {
        if (strcmp(s, dtype_info[i].name) == 0) {
            t->dtype = (st_dtype)i;
            return TEMA_OK;
        }
    }
    char known[256], dtype[SHOWN_MAX];
    known_dtypes(known, sizeof known);
    return tema_fail(err, TEMA_EFORMAT, "%s: tensor '%s': unknown dtype '%s' (known: %s)", path, name,
                     shown(s, dtype), known);
}

/* A JSON integer >= 0, or -1. */
static int64_t nonnegative_int(json_object *value)
{
    if (!json_object_is_type(value, json_type_int)) return -1;
    int64_t v = json_object_get_int64(value);
    return v < 0 ? -1 : v;
}

static tema_status parse_shape(const char *path, const char *name, json_object *value, size_t *numel, st_tensor *t,
                               tema_err *err)
{
    if (!json_object_is_type(value, json_type_array))
        return tema_fail(err, TEMA_EFORMAT, "%s: tensor '%s': \"shape\" is not an array; hint: the header is malformed",
                         path, name);
    size_t n = json_object_array_length(value);
    if (n > ST_MAX_DIMS)
        return tema_fail(err, TEMA_EFORMAT, "%s: tensor '%s': shape has %zu dimensions, at most %d are supported",
                         path, name, n, ST_MAX_DIMS);
    t->ndim = (int)n;
    *numel = 1;
    for (size_t i = 0; i < n; i++) {
        int64_t d = nonnegative_int(json_object_array_get_idx(value, i));
        if (d < 0)
            return tema_fail(err, TEMA_EFORMAT,
                             "%s: tensor '%s': shape entry %zu is not a non-negative integer; hint: the header is malformed",
                             path, name, i);
        t->shape[i] = d;
        if (d != 0 && *numel > SIZE_MAX / (size_t)d)
            return tema_fail(err, TEMA_EFORMAT, "%s: tensor '%s': shape product overflows", path, name);
        *numel *= (size_t)d;
    }
    return TEMA_OK;
}

static tema_status parse_offsets(const char *path, const char *name, json_object *value, size_t data_size,
                                 st_tensor *t, tema_err *err)
{
    if (!json_object_is_type(value, json_type_array) || json_object_array_length(value) != 2)
        return tema_fail(err, TEMA_EFORMAT,
                         "%s: tensor '%s': \"data_offsets\" is not a [begin, end] array; hint: the header is malformed",
                         path, name);
    int64_t begin = nonnegative_int(json_object_array_get_idx(value, 0));
    int64_t end = nonnegative_int(json_object_array_get_idx(value, 1));
    if (begin < 0 || end < 0)
        return tema_fail(err, TEMA_EFORMAT,
                         "%s: tensor '%s': \"data_offsets\" are not non-negative integers; hint: the header is malformed",
                         path, name);
    if (begin > end)
        return tema_fail(err, TEMA_EFORMAT, "%s: tensor '%s': data_offsets begin %lld > end %lld", path, name,
                         (long long)begin, (long long)end);
    if ((uint64_t)end > data_size)
        return tema_fail(err, TEMA_EFORMAT,
                         "%s: tensor '%s': data_offsets [%lld, %lld] lie outside the data block of %zu bytes; "
                         "hint: the file is truncated (incomplete download?)",
                         path, name, (long long)begin, (long long)end, data_size);
    t->begin = (size_t)begin;
    t->end = (size_t)end;
    return TEMA_OK;
}

static tema_status parse_entry(const char *path, const char *name, json_object *entry, size_t data_size,
                               st_tensor *t, tema_err *err)
{
    if (!json_object_is_type(entry, json_type_object))
        return tema_fail(err, TEMA_EFORMAT, "%s: tensor '%s': entry is not a JSON object; hint: the header is malformed",
                         path, name);
    static const char *const keys[] = {"dtype", "shape", "data_offsets"};
    json_object *field[3];
    for (int i = 0; i < 3; i++)
        if (!json_object_object_get_ex(entry, keys[i], &field[i]))
            return tema_fail(err, TEMA_EFORMAT, "%s: tensor '%s': missing \"%s\"; hint: the header is malformed", path,
                             name, keys[i]);
    size_t numel = 0;
    tema_status st;
    if ((st = parse_dtype(path, name, field[0], t, err)) || (st = parse_shape(path, name, field[1], &numel, t, err)) ||
        (st = parse_offsets(path, name, field[2], data_size, t, err)))
        return st;
    size_t elem = dtype_info[t->dtype].size;
    if (numel > SIZE_MAX / elem || t->end - t->begin != numel * elem) {
        char shape[160];
        return tema_fail(err, TEMA_EFORMAT,
                         "%s: tensor '%s': byte size %zu does not match shape %s x %zu bytes (%s); "
                         "hint: the header is inconsistent",
                         path, name, t->end - t->begin, format_shape(shape, sizeof shape, t->ndim, t->shape), elem,
                         dtype_info[t->dtype].name);
    }
    return TEMA_OK;
}

/* Parse exactly `len` bytes as one JSON object; trailing spaces are padding the format allows. */
static tema_status parse_header_json(const char *path, const char *text, size_t len, json_object **out, tema_err *err)
{
    *out = NULL;
    if (len > INT32_MAX)
        return tema_fail(err, TEMA_EFORMAT, "%s: header of %zu bytes is too large to be a safetensors header", path, len);
    json_tokener *tok = json_tokener_new();
    if (!tok) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory parsing the header", path);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root || jerr != json_tokener_success) {
        json_object_put(root);
        return tema_fail(err, TEMA_EFORMAT, "%s: header is not valid JSON (%s near byte %zu of %zu); hint: not a "
                         "safetensors file, or it is corrupt",
                         path, jerr == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(jerr),
                         end, len);
    }
    while (end < len && (text[end] == ' ' || text[end] == '\n' || text[end] == '\t' || text[end] == '\r')) end++;
    if (end < len || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return tema_fail(err, TEMA_EFORMAT, "%s: header is not a JSON object%s; hint: not a safetensors file", path,
                         end < len ? " (trailing bytes after it)" : "");
    }
    *out = root;
    return TEMA_OK;
}

static tema_status map_file(const char *path, st_file *f, tema_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tema_fail(err, errno == ENOENT ? TEMA_ENOTFOUND : TEMA_EIO, "%s: cannot open: %s", path,
                         strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return tema_fail(err, TEMA_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (sb.st_size < 8) {
        close(fd);
        return tema_fail(err, TEMA_EFORMAT,
                         "%s: file is %lld bytes, shorter than the 8-byte header length; hint: the file is empty or "
                         "truncated",
                         path, (long long)sb.st_size);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return tema_fail(err, TEMA_EIO, "%s: cannot mmap: %s", path, strerror(e));
    f->map = map;
    f->size = (size_t)sb.st_size;
    return TEMA_OK;
}

static tema_status read_tensors(st_file *f, json_object *root, tema_err *err)
{
    size_t n = (size_t)json_object_object_length(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory for %zu tensor entries", f->path, n);
    json_object_object_foreach(root, key, value)
    {
        if (strcmp(key, "__metadata__") == 0) continue;
        st_tensor *t = &f->tensors[f->n_tensors];
        char name[SHOWN_MAX];
        tema_status st = parse_entry(f->path, shown(key, name), value, f->data_size, t, err);
        if (st) return st;
        if (!(t->name = strdup(key))) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", f->path);
        f->n_tensors++;
    }
    return TEMA_OK;
}

tema_status st_open(const char *path, st_file *f, tema_err *err)
{
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path))) return tema_fail(err, TEMA_ENOMEM, "%s: out of memory", path);
    tema_status st = map_file(path, f, err);
    if (st) {
        st_close(f);
        return st;
    }
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | f->map[i];
    if (header_len > f->size - 8) {
        st = tema_fail(err, TEMA_EFORMAT,
                       "%s: header length %llu is larger than the file (%zu bytes); hint: not a safetensors file, "
                       "or it is truncated",
                       path, (unsigned long long)header_len, f->size);
        st_close(f);
        return st;
    }
    f->data = f->map + 8 + header_len;
    f->data_size = f->size - 8 - (size_t)header_len;
    json_object *root = NULL;
    st = parse_header_json(path, (const char *)f->map + 8, (size_t)header_len, &root, err);
    if (!st) st = read_tensors(f, root, err);
    json_object_put(root);
    if (st) st_close(f);
    return st;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

static tema_status not_found(const st_file *f, const char *name, tema_err *err)
{
    char examples[3 * SHOWN_MAX + 16] = "", name_shown[SHOWN_MAX];
    size_t used = 0;
    for (int i = 0; i < f->n_tensors && i < 3 && used < sizeof examples; i++)
        used += (size_t)snprintf(examples + used, sizeof examples - used, "%s'%s'", i ? ", " : "",
                                 shown(f->tensors[i].name, name_shown));
    return tema_fail(err, TEMA_ENOTFOUND,
                     "%s: tensor '%s' not found (the file has %d tensors%s%s); hint: the model folder may hold "
                     "another architecture than the one expected",
                     f->path, name, f->n_tensors, f->n_tensors ? ", e.g. " : "", examples);
}

static tema_status check_shape(const st_file *f, const st_tensor *t, int ndim, const int64_t *shape, tema_err *err)
{
    if (ndim < 0) return TEMA_OK;
    bool same = ndim == t->ndim;
    for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
    if (same) return TEMA_OK;
    char want[160], found[160], name[SHOWN_MAX];
    return tema_fail(err, TEMA_EFORMAT,
                     "%s: tensor '%s': expected shape %s, found %s; hint: the model folder may hold another "
                     "architecture or size",
                     f->path, shown(t->name, name),
                     format_shape(want, sizeof want, ndim > ST_MAX_DIMS ? ST_MAX_DIMS : ndim, shape),
                     format_shape(found, sizeof found, t->ndim, t->shape));
}

tema_status st_get_f32(const st_file *f, const char *name, int ndim, const int64_t *shape, const float **out,
                       float **owned, tema_err *err)
{
    *out = NULL;
    *owned = NULL;
    const st_tensor *t = st_find(f, name);
    if (!t) return not_found(f, name, err);
    tema_status st = check_shape(f, t, ndim, shape, err);
    if (st) return st;
    const unsigned char *src = f->data + t->begin;
    size_t count = (t->end - t->begin) / dtype_info[t->dtype].size;
    if (t->dtype == ST_F32 && (uintptr_t)src % _Alignof(float) == 0) {
        *out = (const float *)(const void *)src;
        return TEMA_OK;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
        return tema_fail(err, TEMA_EFORMAT,
                         "%s: tensor '%s': dtype %s cannot be read as float32 (F32, F16, BF16 or F64 expected)",
                         f->path, name, dtype_info[t->dtype].name);
    float *copy = malloc(count ? count * sizeof *copy : 1);
    if (!copy) return tema_fail(err, TEMA_ENOMEM, "%s: tensor '%s': out of memory for %zu floats", f->path, name, count);
    for (size_t i = 0; i < count; i++) {
        if (t->dtype == ST_F32) {
            memcpy(&copy[i], src + 4 * i, 4);
        } else if (t->dtype == ST_F64) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            copy[i] = (float)d;
        } else {
            uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
            copy[i] = t->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        }
    }
    *out = copy;
    *owned = copy;
    return TEMA_OK;
}

void st_close(st_file *f)
{
    if (!f) return;
    if (f->map) munmap((void *)f->map, f->size);
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    memset(f, 0, sizeof *f);
}
