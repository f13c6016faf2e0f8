/* core/report/groups.c - runs grouped into cells (configs equal up to train.seed), the keys in
 * which the cells differ, and the labels made of those keys.
 */
#include <stdlib.h>
#include <string.h>

#include "report_internal.h"

static int cmp_run_order(const void *pa, const void *pb)
{
    const run *a = pa, *b = pb;
    if (a->order != b->order)
        return a->order < b->order ? -1 : 1;
    if (a->group != b->group)
        return a->group < b->group ? -1 : 1;
    return (a->seed > b->seed) - (a->seed < b->seed);
}

/* The name a key goes by in labels: its last part; for a plugin choice the part before
 * (model.tag_repr.plugin is "tag_repr": "plugin=weighted" would not say which plugin); a list
 * index keeps its list's name (model.encoders.1.plugin is "encoders.1"). */
static size_t key_name(const char *key, const char **name)
{
    size_t end = strlen(key), start;
    const char *dot = strrchr(key, '.');
    if (dot && !strcmp(dot + 1, "plugin"))
        end = (size_t)(dot - key);
    for (start = end; start > 0 && key[start - 1] != '.'; start--) {}
    if (start > 1 && strspn(key + start, "0123456789") == end - start)
        for (start--; start > 0 && key[start - 1] != '.'; start--) {}
    if (start == end) /* an empty part: the whole key */
        start = 0, end = strlen(key);
    *name = key + start;
    return end - start;
}

/* Short name of a key for labels: its name, or the whole path when two varying keys go by
 * the same name (model.attention.dropout vs model.encoders.0.dropout; a sub-config and its
 * own .plugin are one thing). */
const char *rep_short_key(report_ctx *R, const char *key)
{
    const char *name, *other;
    size_t n = key_name(key, &name);
    for (int i = 0; i < R->n_varying; i++) {
        const char *o = R->varying[i];
        size_t lo = strlen(o), lk = strlen(key);
        bool same = !strcmp(o, key) || (lo == lk + 7 && !strncmp(o, key, lk) && !strcmp(o + lk, ".plugin")) ||
                    (lk == lo + 7 && !strncmp(key, o, lo) && !strcmp(key + lo, ".plugin"));
        if (!same && key_name(o, &other) == n && !strncmp(other, name, n))
            return key;
    }
    if (!name[n])
        return name;
    char *out = rep_alloc(&R->ar, n + 1);
    if (!out)
        return key;
    memcpy(out, name, n);
    out[n] = '\0';
    return out;
}

/* Leaf paths of a config in document order, each as "\nPATH\n" searchable. */
static void leaf_paths(json_object *o, const char *prefix, tema_sb *out)
{
    char path[512];
    if (o && json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, k, v) {
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k);
            leaf_paths(v, path, out);
        }
    } else if (o && json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            snprintf(path, sizeof path, "%s%s%zu", prefix, *prefix ? "." : "", i);
            leaf_paths(json_object_array_get_idx(o, i), path, out);
        }
    } else {
        tema_sb_printf(out, "%s\n", prefix);
    }
}

/* Rank of a varying key for labels: grid order first (a key under a grid key sorts with it),
 * then the order of the config itself. */
static long varying_rank(const report_ctx *R, const char *key, const char *doc)
{
    long grid = R->n_grid_keys;
    for (int k = 0; k < R->n_grid_keys; k++) {
        size_t n = strlen(R->grid_keys[k]);
        if (!strncmp(key, R->grid_keys[k], n) && (key[n] == '\0' || key[n] == '.')) {
            grid = k;
            break;
        }
    }
    char needle[520];
    const char *dot = strrchr(key, '.');
    bool plugin = !strcmp(dot ? dot + 1 : key, "plugin");
    if (plugin && dot) /* "model.attention.plugin" sorts before "model.attention.blocks" */
        snprintf(needle, sizeof needle, "\n%.*s.", (int)(dot - key), key);
    else
        snprintf(needle, sizeof needle, "\n%s\n", key);
    const char *at = doc ? strstr(doc, needle) : NULL;
    long pos = at ? (long)(at - doc) * 2 - plugin : 1L << 30;
    return grid * (1L << 31) + pos;
}

static void sort_varying(report_ctx *R)
{
    if (R->n_varying < 2 || R->n_runs == 0)
        return;
    tema_sb doc = {0};
    tema_sb_add(&doc, "\n");
    leaf_paths(R->runs[0].config, "", &doc);
    for (int i = 1; i < R->n_varying; i++)
        for (int j = i; j > 0 && varying_rank(R, R->varying[j - 1], doc.p) > varying_rank(R, R->varying[j], doc.p);
             j--) {
            char *t = R->varying[j];
            R->varying[j] = R->varying[j - 1];
            R->varying[j - 1] = t;
        }
    tema_sb_free(&doc);
}

/* The first run of group g; every group has one. */
static int first_run(const report_ctx *R, int g)
{
    for (int i = 0; i < R->n_runs; i++)
        if (R->runs[i].group == g)
            return i;
    return -1;
}

/* Each run's group: the runs whose configs are equal without train.seed. */
static tema_status assign_groups(report_ctx *R, tema_err *err)
{
    R->groups = rep_alloc(&R->ar, (size_t)(R->n_runs ? R->n_runs : 1) * sizeof *R->groups);
    if (!R->groups)
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    for (int i = 0; i < R->n_runs; i++) {
        run *r = &R->runs[i];
        json_object *copy = NULL;
        if (json_object_deep_copy(r->config, &copy, NULL) != 0)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        json_object *train = rep_jget(copy, "train");
        if (train && json_object_is_type(train, json_type_object))
            json_object_object_del(train, "seed");
        char *key = rep_strdup(&R->ar, json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN));
        json_object_put(copy);
        if (!key)
            return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
        int g = 0;
        while (g < R->n_groups && strcmp(R->groups[g].key, key))
            g++;
        if (g == R->n_groups) {
            memset(&R->groups[g], 0, sizeof R->groups[g]);
            R->groups[g].key = key;
            R->groups[g].runs = rep_alloc(&R->ar, (size_t)R->n_runs * sizeof(int));
            if (!R->groups[g].runs)
                return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
            R->n_groups++;
        }
        r->group = g;
    }
    return TEMA_OK;
}

/* "model.encoders.2": an element of a list, which some groups have and others lack (one more
 * encoder), unlike an option that only one plugin has. */
static bool is_list_element(const char *key)
{
    const char *dot = strrchr(key, '.'), *s = dot ? dot + 1 : key;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* R->varying: the config keys in which the groups differ, in label order. */
static void find_varying(report_ctx *R)
{
    key_list diffs = {0};
    for (int g = 1; g < R->n_groups; g++)
        rep_all_diffs(&R->ar, &diffs, R->runs[first_run(R, 0)].config, R->runs[first_run(R, g)].config, "");
    /* keep the keys that tell groups apart: a plugin's own option (attention.heads when one
     * group runs pop) is no label unless it differs between the groups that have it */
    R->varying = diffs.keys;
    R->n_varying = 0;
    for (int k = 0; k < diffs.n; k++) {
        char *key = diffs.keys[k];
        const char *dot = strrchr(key, '.');
        bool keep = !strcmp(dot ? dot + 1 : key, "plugin");
        const char *seen = NULL;
        int lacking = 0;
        for (int g = 0; !keep && g < R->n_groups; g++) {
            json_object *v = rep_jget(R->runs[first_run(R, g)].config, key);
            if (!v) {
                lacking++;
                continue;
            }
            char *t = rep_jtext(&R->ar, v);
            if (seen && t && strcmp(seen, t))
                keep = true;
            if (!seen)
                seen = t;
        }
        if (!keep && lacking > 0 && lacking < R->n_groups && is_list_element(key))
            keep = true;
        if (keep)
            R->varying[R->n_varying++] = key;
    }
    sort_varying(R);
}

/* A group's label: its values of the varying keys ("lr=0.001, blocks=2"), else the name. */
static void label_groups(report_ctx *R)
{
    for (int g = 0; g < R->n_groups; g++) {
        int first = first_run(R, g);
        tema_sb lab = {0};
        for (int k = 0; k < R->n_varying; k++) {
            json_object *v = rep_jget(R->runs[first].config, R->varying[k]);
            json_object *plugin = NULL;
            if (!v && !is_list_element(R->varying[k]))
                continue;
            /* a list element that is a plugin goes by its name ("encoders.2=tag"), a lacking one is "none" */
            if (v && json_object_is_type(v, json_type_object) && json_object_object_get_ex(v, "plugin", &plugin))
                v = plugin;
            char *t = v ? rep_jtext(&R->ar, v) : rep_strdup(&R->ar, "none");
            tema_sb_printf(&lab, "%s%s=%s", lab.n ? ", " : "", rep_short_key(R, R->varying[k]), t ? t : "");
        }
        R->groups[g].label = rep_strdup(&R->ar, lab.n ? tema_sb_str(&lab) : R->name);
        tema_sb_free(&lab);
    }
}

/* Each group's slug, unique: a second "lr-0-1" (from "lr=0.1" and "lr=0-1") becomes "lr-0-1-2". */
static void slug_groups(report_ctx *R)
{
    for (int g = 0; g < R->n_groups; g++) {
        char base[REP_SLUG_MAX], slug[REP_SLUG_MAX + 16];
        rep_slug(R->groups[g].label, base, sizeof base);
        snprintf(slug, sizeof slug, "%s", base);
        for (int k = 2, clash = 1; clash; k++) {
            clash = 0;
            for (int h = 0; h < g && !clash; h++)
                clash = !strcmp(R->groups[h].slug, slug);
            if (clash)
                snprintf(slug, sizeof slug, "%s-%d", base, k);
        }
        R->groups[g].slug = rep_strdup(&R->ar, slug);
        if (!R->groups[g].slug)
            return;
    }
}

/* Group order by label (without a manifest), so the report does not depend on run-id hashes. */
static tema_status sort_groups_by_label(report_ctx *R, tema_err *err)
{
    int *perm = malloc((size_t)R->n_groups * sizeof *perm), *inv = malloc((size_t)R->n_groups * sizeof *inv);
    if (!perm || !inv) {
        free(perm);
        free(inv);
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    }
    for (int g = 0; g < R->n_groups; g++)
        perm[g] = g;
    for (int i = 1; i < R->n_groups; i++)
        for (int j = i; j > 0 && rep_natural_cmp(R->groups[perm[j - 1]].label, R->groups[perm[j]].label) > 0; j--) {
            int t = perm[j];
            perm[j] = perm[j - 1];
            perm[j - 1] = t;
        }
    group *sorted = rep_alloc(&R->ar, (size_t)(R->n_groups ? R->n_groups : 1) * sizeof *sorted);
    if (!sorted) {
        free(perm);
        free(inv);
        return tema_fail(err, TEMA_ENOMEM, "report: out of memory");
    }
    for (int g = 0; g < R->n_groups; g++) {
        sorted[g] = R->groups[perm[g]];
        inv[perm[g]] = g;
    }
    for (int i = 0; i < R->n_runs; i++)
        R->runs[i].group = inv[R->runs[i].group];
    R->groups = sorted;
    free(perm);
    free(inv);
    return TEMA_OK;
}

/* Groups = runs whose configs are equal up to train.seed (the cells of a grid). */
tema_status rep_make_groups(report_ctx *R, tema_err *err)
{
    qsort(R->runs, (size_t)R->n_runs, sizeof *R->runs, cmp_run_order); /* manifest order first */
    tema_status st = assign_groups(R, err);
    if (st != TEMA_OK)
        return st;
    find_varying(R);
    /* Labels from the varying keys; then order the groups: manifest order, else labels. */
    label_groups(R);
    if (!R->have_manifest && (st = sort_groups_by_label(R, err)) != TEMA_OK)
        return st;
    qsort(R->runs, (size_t)R->n_runs, sizeof *R->runs, cmp_run_order);
    for (int i = 0; i < R->n_runs; i++) {
        group *g = &R->groups[R->runs[i].group];
        g->runs[g->n_runs++] = i;
    }
    for (int g = 0; g < R->n_groups; g++) {
        char a[32];
        snprintf(a, sizeof a, "cfg-%d", g + 1);
        R->groups[g].anchor = rep_strdup(&R->ar, a);
    }
    slug_groups(R);
    return R->ar.oom ? tema_fail(err, TEMA_ENOMEM, "report: out of memory") : TEMA_OK;
}
