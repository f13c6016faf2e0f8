/* core/runs_table.c - `tema results EXP.yaml`: one row per run of an experiment, for pandas.
 *
 * Writes RESULTS/<name>/runs.csv and runs.jsonl (atomically) from the manifest and each run
 * folder's final.json. The CSV is wide: index, run_id, state, cell, one column per grid key
 * (the value as flow YAML), then the final record's numbers and every metric as
 * `split.domain.rule.metric` (`test.X.optimistic.mrr`) plus `split.domain.cases`; a run
 * without final.json has those cells empty. The JSON lines keep the same per run, with the
 * grid values as an object and final.json as it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "grid.h"
#include "util.h"

#define MAX_COLUMNS 512

typedef struct columns {
    char *name[MAX_COLUMNS];
    int n;
} columns;

static void column_add(columns *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->name[i], name)) return;
    if (c->n < MAX_COLUMNS) c->name[c->n++] = strdup(name);
}

static const char *const k_splits[] = {"test", "valid"}, *const k_domains[] = {"X", "Y"};
static const char *const k_rules[] = {"optimistic", "pessimistic", "mid"};
static const char *const k_numbers[] = {"best_epoch", "epochs_run", "stopped_early", "total_seconds",
                                        "seconds_per_epoch", "peak_memory_bytes"};

/* final.json's value at `split.domain.rule.metric` (or `split.domain.cases`), or NULL. */
static json_object *metric_at(json_object *fin, const char *column)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", column);
    json_object *o = fin;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); o && k; k = strtok_r(NULL, ".", &save)) {
        if (!json_object_object_get_ex(o, k, &o)) o = NULL;
    }
    return o;
}

/* The metric columns every final.json names, in a fixed order of splits, domains and rules
 * and the metrics in file order. */
static void metric_columns(json_object *const *fin, size_t n, columns *c)
{
    for (int s = 0; s < 2; s++)
        for (int d = 0; d < 2; d++) {
            char name[256];
            snprintf(name, sizeof name, "%s.%s.cases", k_splits[s], k_domains[d]);
            bool any = false;
            for (size_t i = 0; i < n && !any; i++) any = fin[i] && metric_at(fin[i], name);
            if (any) column_add(c, name);
            for (int r = 0; r < 3; r++)
                for (size_t i = 0; i < n; i++) {
                    snprintf(name, sizeof name, "%s.%s.%s", k_splits[s], k_domains[d], k_rules[r]);
                    json_object *rule = fin[i] ? metric_at(fin[i], name) : NULL;
                    if (!rule || !json_object_is_type(rule, json_type_object)) continue;
                    json_object_object_foreach(rule, metric, val)
                    {
                        (void)val;
                        char full[320];
                        snprintf(full, sizeof full, "%s.%s", name, metric);
                        column_add(c, full);
                    }
                }
        }
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(tema_sb *b, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        tema_sb_add(b, s);
        return;
    }
    tema_sb_add(b, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"') tema_sb_add(b, "\"\"");
        else tema_sb_addn(b, p, 1);
    }
    tema_sb_add(b, "\"");
}

static void csv_number(tema_sb *b, json_object *v)
{
    if (!v || json_object_is_type(v, json_type_null)) return;
    if (json_object_is_type(v, json_type_boolean)) tema_sb_add(b, json_object_get_boolean(v) ? "true" : "false");
    else if (json_object_is_type(v, json_type_int)) tema_sb_printf(b, "%lld", (long long)json_object_get_int64(v));
    else tema_sb_printf(b, "%.17g", json_object_get_double(v));
}

static tema_status write_both(const tema_grid *g, json_object *const *fin, const tema_grid_state *state,
                              const columns *mc, char *csv_path, size_t cap, tema_err *err)
{
    tema_sb csv = {0}, jl = {0};
    tema_sb_add(&csv, "index,run_id,state,cell");
    for (size_t k = 0; k < g->n_keys; k++) tema_sb_add(&csv, ","), csv_field(&csv, g->keys[k]);
    for (size_t k = 0; k < sizeof k_numbers / sizeof *k_numbers; k++) tema_sb_printf(&csv, ",%s", k_numbers[k]);
    for (int k = 0; k < mc->n; k++) tema_sb_add(&csv, ","), csv_field(&csv, mc->name[k]);
    tema_sb_add(&csv, "\n");
    for (size_t i = 0; i < g->n_runs; i++) {
        const tema_grid_run *r = &g->runs[i];
        tema_sb_printf(&csv, "%zu,%s,%s,%zu", r->index, r->id, tema_grid_state_name(state[i]), r->cell);
        json_object *o = json_object_new_object(), *vals = json_object_new_object();
        json_object_object_add(o, "index", json_object_new_int64((int64_t)r->index));
        json_object_object_add(o, "run_id", json_object_new_string(r->id));
        json_object_object_add(o, "state", json_object_new_string(tema_grid_state_name(state[i])));
        json_object_object_add(o, "cell", json_object_new_int64((int64_t)r->cell));
        for (size_t k = 0; k < g->n_keys; k++) {
            tema_sb_add(&csv, ",");
            csv_field(&csv, r->values[k].text);
            json_object_object_add(vals, g->keys[k], json_object_new_string(r->values[k].text));
        }
        json_object_object_add(o, "values", vals);
        for (size_t k = 0; k < sizeof k_numbers / sizeof *k_numbers; k++) {
            json_object *v = NULL;
            tema_sb_add(&csv, ",");
            if (fin[i] && json_object_object_get_ex(fin[i], k_numbers[k], &v)) csv_number(&csv, v);
        }
        for (int k = 0; k < mc->n; k++) {
            tema_sb_add(&csv, ",");
            if (fin[i]) csv_number(&csv, metric_at(fin[i], mc->name[k]));
        }
        tema_sb_add(&csv, "\n");
        json_object_object_add(o, "final", fin[i] ? json_object_get(fin[i]) : NULL);
        tema_sb_add(&jl, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        tema_sb_add(&jl, "\n");
        json_object_put(o);
    }
    tema_status st = TEMA_OK;
    char jl_path[4200];
    snprintf(csv_path, cap, "%s/%s/runs.csv", g->results_dir, g->name);
    snprintf(jl_path, sizeof jl_path, "%s/%s/runs.jsonl", g->results_dir, g->name);
    if (csv.oom || jl.oom) st = tema_fail(err, TEMA_ENOMEM, "out of memory writing the runs table");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", g->results_dir, g->name);
    if (st == TEMA_OK) st = tema_mkdirs(dir, err);
    if (st == TEMA_OK) st = tema_write_file_atomic(csv_path, tema_sb_str(&csv), csv.n, err);
    if (st == TEMA_OK) st = tema_write_file_atomic(jl_path, tema_sb_str(&jl), jl.n, err);
    tema_sb_free(&csv);
    tema_sb_free(&jl);
    return st;
}

tema_status tema_grid_write_runs_table(const tema_grid *g, char *csv_path, size_t cap, size_t *n_final, tema_err *err)
{
    json_object **fin = calloc(g->n_runs + 1, sizeof *fin);
    tema_grid_state *state = calloc(g->n_runs + 1, sizeof *state);
    columns mc = {0};
    *n_final = 0;
    if (!fin || !state) {
        free(fin);
        free(state);
        return tema_fail(err, TEMA_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < g->n_runs; i++) {
        state[i] = tema_grid_run_state(&g->runs[i], NULL, 0);
        char path[4200];
        snprintf(path, sizeof path, "%s/final.json", g->runs[i].dir);
        if (state[i] == TEMA_GRID_DONE && (fin[i] = json_object_from_file(path))) (*n_final)++;
    }
    metric_columns(fin, g->n_runs, &mc);
    tema_status st = write_both(g, fin, state, &mc, csv_path, cap, err);
    for (size_t i = 0; i < g->n_runs; i++) json_object_put(fin[i]);
    for (int k = 0; k < mc.n; k++) free(mc.name[k]);
    free(fin);
    free(state);
    return st;
}
