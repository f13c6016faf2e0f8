/* plugins/text_features/bert/safetensors.h - read-only reader for the safetensors format.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON header
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {...}}
 * then the data block; offsets are relative to its start (byte 8 + N).
 *
 * The file is mapped read-only (MAP_PRIVATE) and every tensor entry is validated at
 * st_open, so later calls cannot read outside the map. Malformed files give TEMA_EFORMAT
 * and a one-line message naming the file and the problem.
 *
 * Ownership: st_file owns its path copy, the tensor table (names included) and the
 * mapping; all are released by st_close. Pointers from st_find and the non-owned views
 * from st_get_f32 point into the st_file and die with st_close. Buffers returned through
 * st_get_f32's *owned belong to the caller (free()).
 */
#ifndef TEMA_PLUGINS_BERT_SAFETENSORS_H
#define TEMA_PLUGINS_BERT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "tema/status.h"

#define ST_MAX_DIMS 8

typedef enum st_dtype {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E5M2,
    ST_F8_E4M3,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_U64,
    ST_DTYPE_COUNT
} st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;                    /* 0 for a scalar */
    int64_t shape[ST_MAX_DIMS];
    size_t begin, end;           /* byte range within the data block, validated */
} st_tensor;

typedef struct st_file {
    char *path;
    const unsigned char *map;    /* whole file; the descriptor is closed after mapping */
    size_t size;                 /* file size in bytes */
    const unsigned char *data;   /* start of the data block, map + 8 + header length */
    size_t data_size;
    st_tensor *tensors;          /* in header order, "__metadata__" excluded */
    int n_tensors;
} st_file;

/* The format's spelling ("F32") and element size in bytes of a dtype. */
const char *st_dtype_name(st_dtype dtype);
size_t st_dtype_size(st_dtype dtype);

/* Map and validate `path`. On failure *f is left zeroed (st_close on it is harmless). */
tema_status st_open(const char *path, st_file *f, tema_err *err);

/* The tensor called `name`, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);

/* Float32 view of tensor `name`, checked against the expected shape (ndim, shape); ndim < 0
 * skips the shape check. F32 data aligned to 4 bytes is returned as a pointer into the map
 * (*owned = NULL); unaligned F32 and F16, BF16 (converted exactly) and F64 (rounded) are
 * returned as a malloc'ed copy that is also stored in *owned for the caller to free().
 * Errors: TEMA_ENOTFOUND (no such tensor), TEMA_EFORMAT (shape or dtype mismatch),
 * TEMA_ENOMEM. */
tema_status st_get_f32(const st_file *f, const char *name, int ndim, const int64_t *shape, const float **out,
                       float **owned, tema_err *err);

/* Exact conversions of one IEEE half / bfloat16 value (bits) to float. */
float st_f16_to_f32(uint16_t bits);
float st_bf16_to_f32(uint16_t bits);

/* Unmap and free; leaves *f zeroed. Safe on a zeroed or already closed st_file. */
void st_close(st_file *f);

#endif
