/* tests/fuzz/fuzz_dataset.c - the C2DSR dataset reader (core/dataset.c: tema_dataset_load,
 * tema_dataset_print_stats) on a folder and on archives.
 *
 * Input: one mode byte, then the bundle's files separated by the line "----\n" in the order
 * of FILES below (a part left out is a missing file; an empty part an empty file). Mode % 3:
 *   0  the files in a folder;
 *   1  the files in a .tar.gz made here (members under bundle/), read by the archive path;
 *   2  the bytes after the mode byte are the .tar.gz itself (the archive's own structure). */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "fuzz_util.h"

static const char *const FILES[] = {"Alist.txt",         "Blist.txt",         "userlist.txt",     "traindata_new.txt",
                                    "validdata_new.txt", "testdata_new.txt", "items.tsv"};
#define N_FILES (sizeof FILES / sizeof *FILES)

static void write_folder(const uint8_t **part, const size_t *len, size_t n)
{
    char name[64];
    for (size_t i = 0; i < N_FILES; i++) {
        snprintf(name, sizeof name, "bundle/%s", FILES[i]);
        if (i < n) fz_write(name, part[i], len[i]);
        else remove(fz_path(name));
    }
}

static void write_tar_gz(const char *path, const uint8_t **part, const size_t *len, size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK) abort();
    for (size_t i = 0; i < n && i < N_FILES; i++) {
        char name[64];
        snprintf(name, sizeof name, "bundle/%s", FILES[i]);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        archive_entry_set_size(e, (la_int64_t)len[i]);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        if (archive_write_header(a, e) != ARCHIVE_OK ||
            (len[i] && archive_write_data(a, part[i], len[i]) != (la_ssize_t)len[i]))
            abort();
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK) abort();
    archive_write_free(a);
}

static void load(const char *path)
{
    static FILE *devnull;
    if (!devnull && !(devnull = fopen("/dev/null", "w"))) abort();
    tema_dataset *d = NULL;
    tema_err err = {0};
    if (tema_dataset_load(path, NULL, &d, &err) == TEMA_OK) {
        /* what the trainer relies on: ids in range, targets of evaluation lines present */
        const tema_split *sp[3] = {&d->train, &d->valid, &d->test};
        for (int s = 0; s < 3; s++)
            for (int64_t i = 0; i < sp[s]->off[sp[s]->n_lines]; i++)
                if (sp[s]->items[i] < 0 || sp[s]->items[i] >= d->n_x + d->n_y) abort();
        tema_dataset_free(d);
        tema_dataset_print_stats(path, devnull, &err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const int mode = data[0] % 3;
    data++, size--;
    mkdir(fz_path("bundle"), 0755);
    if (mode == 2) {
        load(fz_write("raw.tar.gz", data, size));
        return 0;
    }
    const uint8_t *part[N_FILES];
    size_t len[N_FILES];
    size_t n = fz_split(data, size, "----\n", part, len, N_FILES);
    if (mode == 0) {
        write_folder(part, len, n);
        load(fz_path("bundle"));
    } else {
        char path[512];
        snprintf(path, sizeof path, "%s", fz_path("bundle.tar.gz"));
        write_tar_gz(path, part, len, n);
        load(path);
    }
    return 0;
}
