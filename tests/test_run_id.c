/* Run ids (core/run_id.h): the same data through a symlink or a copy, any thread count and a
 * plugin that gained an option with a default keep a run's id; a run folder of the old id
 * scheme is moved to its new id and found done; a resume after a plugin file changed is
 * refused, naming the plugin and the file. Each case also checks that the old scheme (the
 * hash of the config JSON, still computed as v1) gave different ids: the assertion on the
 * new id is the one the old code fails. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "grid.h"
#include "host.h"
#include "registry.h"
#include "run_id.h"
#include "testutil.h"

static void sh(const char *cmd)
{
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

static void make_data(const char *dir)
{
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "data synth --out '%s' --users 60 --items-x 60 --items-y 70 --seed 11", dir);
    int rc = tu_tema(args, &out, &err);
    ck_assert_msg(rc == 0, "data synth failed: %s", err);
    free(out);
    free(err);
}

/* An experiment on `data` with a tiny model; `encoders` and `extra` lines as given. */
static void write_exp(const char *path, const char *name, const char *data, const char *encoders, const char *extra)
{
    char text[8192];
    snprintf(text, sizeof text,
             "name: %s\n"
             "dataset: {path: '%s', max_len: 8}\n"
             "backend: {plugin: cpu, threads: 2}\n"
             "model:\n"
             "  encoders: %s\n"
             "  attention: {plugin: single, blocks: 1, heads: 1}\n"
             "train: {epochs: 3, batch_size: 32, eval_every: 1, patience: 0, seed: 5}\n"
             "eval: {negatives: 20}\n"
             "%s",
             name, data, encoders ? encoders : "[{plugin: id, dim: 8}]", extra ? extra : "");
    tu_write(path, text);
}

/* A fresh folder with synthetic data and an experiment `name` on it; returns the folder. */
static const char *data_and_exp(const char *name, char data[512], char exp[600])
{
    const char *tmp = tu_tmpdir();
    snprintf(data, 512, "%s/data", tmp);
    snprintf(exp, 600, "%s/exp.yaml", tmp);
    make_data(data);
    write_exp(exp, name, data, NULL, NULL);
    return tmp;
}

static tema_registry *registry(void)
{
    tema_registry *r = tema_registry_new(tema_host_get());
    ck_assert_ptr_nonnull(r);
    tema_registry_scan(r);
    return r;
}

/* The scheme-2 id and the scheme-1 id of an experiment file resolved with `overrides`. */
static void ids_of(const char *path, const char *const *ov, int n_ov, tema_registry *r, char id[17], char v1[17])
{
    tema_cfg *cfg = NULL;
    tema_err err = {0};
    ck_assert_msg(tema_cfg_resolve(path, ov, n_ov, r, stderr, &cfg, &err) == TEMA_OK, "%s: %s", path, err.msg);
    ck_assert_msg(tema_run_ids(cfg, r, id, v1, &err) == TEMA_OK, "%s", err.msg);
    tema_cfg_free(cfg);
}

START_TEST(t_same_data_through_a_symlink_and_a_copy_is_one_run)
{
    const char *tmp = tu_tmpdir();
    char data[512], link[512], copy[512], cmd[2048], ea[600], eb[600], ec[600], ed[600];
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(link, sizeof link, "%s/link", tmp);
    snprintf(copy, sizeof copy, "%s/elsewhere/copy", tmp);
    make_data(data);
    ck_assert_int_eq(symlink(data, link), 0);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/elsewhere' && cp -r '%s' '%s'", tmp, data, copy);
    sh(cmd);
    snprintf(ea, sizeof ea, "%s/a.yaml", tmp);
    snprintf(eb, sizeof eb, "%s/b.yaml", tmp);
    snprintf(ec, sizeof ec, "%s/c.yaml", tmp);
    snprintf(ed, sizeof ed, "%s/d.yaml", tmp);
    write_exp(ea, "same", data, NULL, NULL);
    write_exp(eb, "same", link, NULL, NULL);
    write_exp(ec, "same", copy, NULL, NULL);
    tema_registry *r = registry();
    char ida[17], idb[17], idc[17], v1a[17], v1b[17], v1c[17];
    ids_of(ea, NULL, 0, r, ida, v1a);
    ids_of(eb, NULL, 0, r, idb, v1b);
    ids_of(ec, NULL, 0, r, idc, v1c);
    ck_assert_str_ne(v1a, v1c); /* the old scheme hashed the absolute path */
    ck_assert_str_eq(ida, idb); /* old code: the symlink's path differs from the real one */
    ck_assert_str_eq(ida, idc); /* old code: the copy's path differs */

    /* other data is another run: one line of the copy's training file changed */
    snprintf(cmd, sizeof cmd, "sed -i '1s/$/ /' '%s/traindata_new.txt'", copy);
    sh(cmd);
    char idd[17];
    ids_of(ec, NULL, 0, r, idd, v1c);
    ck_assert_str_ne(ida, idd);

    /* a plugin's path option counts by content too: the same features file in two places */
    char f1[600], f2[600];
    snprintf(f1, sizeof f1, "%s/f1.npy", tmp);
    snprintf(f2, sizeof f2, "%s/elsewhere/f2.npy", tmp);
    tu_write(f1, "not really a .npy, but the same bytes\n");
    tu_write(f2, "not really a .npy, but the same bytes\n");
    char enc1[800], enc2[800], id1[17], id2[17];
    snprintf(enc1, sizeof enc1, "[{plugin: id, dim: 8}, {plugin: text, dim: 8, features: '%s'}]", f1);
    snprintf(enc2, sizeof enc2, "[{plugin: id, dim: 8}, {plugin: text, dim: 8, features: '%s'}]", f2);
    write_exp(ea, "same", data, enc1, NULL);
    write_exp(eb, "same", data, enc2, NULL);
    ids_of(ea, NULL, 0, r, id1, v1a);
    ids_of(eb, NULL, 0, r, id2, v1b);
    ck_assert_str_ne(v1a, v1b);
    ck_assert_str_eq(id1, id2);
    tema_registry_free(r);
}
END_TEST

START_TEST(t_thread_count_is_not_part_of_the_id)
{
    char data[512], exp[600];
    const char *tmp = data_and_exp("threads", data, exp);
    tema_registry *r = registry();
    const char *one[] = {"backend.threads=1"}, *two[] = {"backend.threads=2"};
    char id1[17], id2[17], v1a[17], v1b[17];
    ids_of(exp, one, 1, r, id1, v1a);
    ids_of(exp, two, 1, r, id2, v1b);
    ck_assert_str_ne(v1a, v1b);
    ck_assert_str_eq(id1, id2); /* old code: backend.threads was hashed */

    /* the grid finds the same folder with and without --set backend.threads=1 */
    tema_grid *g1 = NULL, *g2 = NULL;
    tema_err err = {0};
    ck_assert_int_eq(tema_grid_expand(exp, one, 1, r, tmp, NULL, &g1, &err), TEMA_OK);
    ck_assert_int_eq(tema_grid_expand(exp, NULL, 0, r, tmp, NULL, &g2, &err), TEMA_OK);
    ck_assert_str_eq(g1->runs[0].dir, g2->runs[0].dir);
    tema_grid_free(g1);
    tema_grid_free(g2);

    /* a setting that changes results still changes the id */
    const char *lr[] = {"train.lr=2e-3"};
    ids_of(exp, lr, 1, r, id2, v1b);
    ck_assert_str_ne(id1, id2);
    tema_registry_free(r);
}
END_TEST

/* train.optimizer came after run-id scheme 2: at its default it is not in the identity (every run
 * stored before it keeps its id), set to anything else it is. */
START_TEST(t_a_core_key_added_later_counts_only_when_set)
{
    char data[512], exp[600];
    data_and_exp("later", data, exp);
    tema_registry *r = registry();
    const char *adam[] = {"train.optimizer=adam"}, *lazy[] = {"train.optimizer=lazy_adam"};
    char id0[17], id1[17], id2[17], v1[17];
    ids_of(exp, NULL, 0, r, id0, v1);
    ids_of(exp, adam, 1, r, id1, v1);
    ids_of(exp, lazy, 1, r, id2, v1);
    ck_assert_str_eq(id0, id1);
    ck_assert_str_ne(id0, id2);
    for (int k = 0; k < 2; k++) {
        tema_cfg *cfg = NULL;
        tema_err err = {0};
        char *json = NULL;
        ck_assert_int_eq(tema_cfg_resolve(exp, k ? lazy : adam, 1, r, stderr, &cfg, &err), TEMA_OK);
        ck_assert_int_eq(tema_run_identity(cfg, r, &json, &err), TEMA_OK);
        ck_assert_msg((strstr(json, "optimizer") != NULL) == (k == 1), "identity: %s", json);
        free(json);
        tema_cfg_free(cfg);
    }
    tema_registry_free(r);
}
END_TEST

/* results_dir: in the file, the runs' folder when no --results is given; never in the id. */
START_TEST(t_results_dir_is_where_runs_live_and_not_part_of_the_id)
{
    const char *tmp = tu_tmpdir();
    char data[512], plain[600], kept[600], extra[700], path[1200], args[2400], *out, *err;
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(plain, sizeof plain, "%s/plain.yaml", tmp);
    snprintf(kept, sizeof kept, "%s/kept.yaml", tmp);
    snprintf(extra, sizeof extra, "results_dir: '%s/stored'\n", tmp);
    make_data(data);
    write_exp(plain, "kept", data, NULL, NULL);
    write_exp(kept, "kept", data, NULL, extra);
    tema_registry *r = registry();
    char id1[17], id2[17], v1a[17], v1b[17];
    ids_of(plain, NULL, 0, r, id1, v1a);
    ids_of(kept, NULL, 0, r, id2, v1b);
    ck_assert_str_eq(id1, id2);

    tema_grid *g = NULL;
    tema_err e = {0};
    ck_assert_int_eq(tema_grid_expand(kept, NULL, 0, r, NULL, NULL, &g, &e), TEMA_OK);
    snprintf(path, sizeof path, "%s/stored/kept/%s", tmp, id1);
    ck_assert_str_eq(g->runs[0].dir, path);
    tema_grid_free(g);
    ck_assert_int_eq(tema_grid_expand(kept, NULL, 0, r, "elsewhere", NULL, &g, &e), TEMA_OK);
    snprintf(path, sizeof path, "elsewhere/kept/%s", id1);
    ck_assert_str_eq(g->runs[0].dir, path); /* --results wins */
    tema_grid_free(g);
    tema_registry_free(r);

    /* run, status and report of the file all find the folder without --results */
    static const char *const commands[] = {"run '%s'", "status '%s'", "report '%s' --format md --no-plots"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        snprintf(args, sizeof args, commands[i], kept);
        const int rc = tu_tema(args, &out, &err);
        ck_assert_msg(rc == 0, "tema %s: %s", args, err);
        if (i == 1) ck_assert_msg(strstr(out, "1 done"), "status: %s", out);
        free(out);
        free(err);
    }
    snprintf(path, sizeof path, "%s/stored/kept/%s/DONE", tmp, id1);
    ck_assert_msg(access(path, F_OK) == 0, "no %s", path);
    snprintf(path, sizeof path, "%s/stored/kept/report", tmp);
    ck_assert_msg(access(path, F_OK) == 0, "no %s", path);
}
END_TEST

/* An encoder plugin "probe" (version `version`) with option width (default 4) and, when
 * `extra` is not empty, that option declaration too; built into dir/probe.so. */
static void build_probe(const char *dir, const char *version, const char *extra)
{
    char src[4096], path[600], cmd[2400];
    snprintf(src, sizeof src,
             "#include <tema/plugin.h>\n"
             "static const tema_option opts[] = {{\"width\", TEMA_OPT_INT, \"4\", 1, 64, 0, \"a width\"}%s};\n"
             "static tema_status c(const tema_model_info *i, const tema_cfg *o, void **s, tema_err *e)"
             " { (void)i; (void)o; (void)s; return tema_fail(e, TEMA_EUNSUPPORTED, \"stub\"); }\n"
             "static tema_status f(void *s, tema_graph *g, tema_tensor **t, tema_err *e)"
             " { (void)s; (void)g; (void)t; return tema_fail(e, TEMA_EUNSUPPORTED, \"stub\"); }\n"
             "static int64_t w(const void *s) { (void)s; return 4; }\n"
             "static const char *m(const void *s) { (void)s; return \"id\"; }\n"
             "static void x(void *s) { (void)s; }\n"
             "static const tema_encoder_ops ops = {.create = c, .forward = f, .dim = w, .modality = m, .destroy = x};\n"
             "static const tema_plugin d = {.abi_major = TEMA_ABI_MAJOR, .abi_minor = 0, .struct_size = "
             "sizeof(tema_plugin), .kind = TEMA_KIND_ENCODER, .name = \"probe\", .version = \"%s\", .description = "
             "\"test plugin\", .options = opts, .n_options = sizeof opts / sizeof opts[0], .ops_size = sizeof ops, "
             ".ops = &ops};\n"
             "__attribute__((visibility(\"default\"))) const tema_plugin *tema_plugin_entry(const tema_host *h)"
             " { (void)h; return &d; }\n",
             extra, version);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    sh(cmd);
    snprintf(path, sizeof path, "%s/probe.c", dir);
    tu_write(path, src);
    snprintf(cmd, sizeof cmd, "cc -shared -fPIC -I'%s/include' -o '%s/probe.so' '%s'", tu_source_root(), dir, path);
    sh(cmd);
}

/* ids of exp with the probe plugin of folder `dir` (and the build's plugins) */
static void probe_ids(const char *exp, const char *dir, const char *const *ov, int n_ov, char id[17], char v1[17])
{
    char path[1200];
    snprintf(path, sizeof path, "%s:%s/plugins", dir, tu_build_root());
    setenv("TEMA_PLUGIN_PATH", path, 1);
    tema_registry *r = registry();
    ids_of(exp, ov, n_ov, r, id, v1);
    tema_registry_free(r);
}

START_TEST(t_an_option_added_with_its_default_keeps_the_id)
{
    const char *tmp = tu_tmpdir();
    char data[512], exp[600], a[600], b[600], c[600];
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(exp, sizeof exp, "%s/exp.yaml", tmp);
    snprintf(a, sizeof a, "%s/old", tmp);
    snprintf(b, sizeof b, "%s/new", tmp);
    snprintf(c, sizeof c, "%s/bumped", tmp);
    make_data(data);
    write_exp(exp, "probe", data, "[{plugin: probe, width: 8}]", NULL);
    build_probe(a, "1.0", "");
    build_probe(b, "1.0", ", {\"smooth\", TEMA_OPT_FLOAT, \"0.5\", 0, 1, 0, \"new in 1.0\"}");
    build_probe(c, "1.1", ", {\"smooth\", TEMA_OPT_FLOAT, \"0.5\", 0, 1, 0, \"new in 1.0\"}");
    char ida[17], idb[17], idc[17], v1a[17], v1b[17], v1c[17];
    probe_ids(exp, a, NULL, 0, ida, v1a);
    probe_ids(exp, b, NULL, 0, idb, v1b);
    ck_assert_str_ne(v1a, v1b); /* the resolved config gained smooth: 0.5 */
    ck_assert_str_eq(ida, idb); /* old code: every run of the plugin got a new id */
    /* the option set away from its default, and another version, are other runs */
    const char *smooth[] = {"model.encoders.0.smooth=0.25"};
    probe_ids(exp, b, smooth, 1, idb, v1b);
    ck_assert_str_ne(ida, idb);
    probe_ids(exp, c, NULL, 0, idc, v1c);
    ck_assert_str_ne(ida, idc);
    unsetenv("TEMA_PLUGIN_PATH");
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 16);
    size_t n = fread(b, 1, (1 << 16) - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

START_TEST(t_a_run_of_the_old_scheme_is_moved_and_found_done)
{
    char data[512], exp[600], res[600], args[2048];
    const char *tmp = data_and_exp("old", data, exp);
    snprintf(res, sizeof res, "%s/results", tmp);
    char *out, *err;
    snprintf(args, sizeof args, "run '%s' --results '%s'", exp, res);
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    free(out);
    free(err);

    /* the finished run as the old scheme named it, had it been made with --set
     * backend.threads=1 (which the old id hashed) */
    tema_registry *r = registry();
    char id[17], v1[17], from[1200], to[1200];
    const char *one[] = {"backend.threads=1"};
    ids_of(exp, one, 1, r, id, v1);
    tema_registry_free(r);
    snprintf(from, sizeof from, "%s/old/%s", res, id);
    snprintf(to, sizeof to, "%s/old/%s", res, v1);
    ck_assert_int_eq(rename(from, to), 0);

    snprintf(args, sizeof args, "status '%s' --results '%s'", exp, res);
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    char moved[200];
    snprintf(moved, sizeof moved, "to %s (run ids now hash the data by content)", id);
    ck_assert_msg(strstr(err, moved) && strstr(err, v1), "stderr: %s", err);
    ck_assert_msg(strstr(out, id) && strstr(out, "done"), "status: %s", out); /* old code: pending */
    free(out);
    free(err);
    struct stat st;
    ck_assert_int_ne(stat(to, &st), 0);
    ck_assert_int_eq(stat(from, &st), 0);

    /* said once; `tema run` finds it finished */
    snprintf(args, sizeof args, "run '%s' --results '%s'", exp, res);
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    ck_assert_msg(!strstr(err, "moved"), "stderr: %s", err);
    ck_assert_msg(strstr(err, "already finished"), "stderr: %s", err);
    free(out);
    free(err);
}
END_TEST

START_TEST(t_a_resume_after_a_plugin_file_changed_is_refused)
{
    const char *tmp = tu_tmpdir();
    char data[512], exp[600], res[600], plug[600], so[800], path[1400], args[2048], cmd[2048];
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(exp, sizeof exp, "%s/exp.yaml", tmp);
    snprintf(res, sizeof res, "%s/results", tmp);
    snprintf(plug, sizeof plug, "%s/plugins", tmp);
    snprintf(so, sizeof so, "%s/tema-loss-full_softmax.so", plug);
    make_data(data);
    write_exp(exp, "changed", data, NULL, NULL);
    /* the loss plugin from a folder of its own, searched first */
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/plugins/tema-loss-full_softmax.so' '%s'", plug, tu_build_root(),
             so);
    sh(cmd);
    snprintf(path, sizeof path, "%s:%s/plugins", plug, tu_build_root());
    setenv("TEMA_PLUGIN_PATH", path, 1);

    char *out, *err;
    snprintf(args, sizeof args, "run '%s' --results '%s'", exp, res);
    setenv("TEMA_TEST_STOP_AFTER_EPOCH", "1", 1);
    ck_assert_int_ne(tu_tema(args, &out, &err), 0);
    unsetenv("TEMA_TEST_STOP_AFTER_EPOCH");
    free(out);
    free(err);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", tu_run_dir(res, "changed"));
    char mp[4300];
    snprintf(mp, sizeof mp, "%s/meta.json", dir);
    char *meta = slurp(mp);
    ck_assert_msg(meta && strstr(meta, "\"file_hash\"") && strstr(meta, so), "meta.json: %s", meta ? meta : "");
    free(meta);

    /* rebuilt meanwhile: the same plugin, other bytes */
    snprintf(cmd, sizeof cmd, "printf 'rebuilt' >> '%s'", so);
    sh(cmd);
    ck_assert_int_ne(tu_tema(args, &out, &err), 0); /* old code: resumed with the new code */
    ck_assert_msg(strstr(err, "loss plugin 'full_softmax' changed since this run started") && strstr(err, so) &&
                      strstr(err, "--force"),
                  "stderr: %s", err);
    free(out);
    free(err);
    ck_assert(!tu_exists(dir, "DONE"));

    /* --force starts it over with the new plugin */
    snprintf(args, sizeof args, "run '%s' --results '%s' --force", exp, res);
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    ck_assert_msg(!strstr(err, "resuming"), "stderr: %s", err);
    free(out);
    free(err);
    ck_assert(tu_exists(dir, "DONE"));
    unsetenv("TEMA_PLUGIN_PATH");
}
END_TEST

START_TEST(t_file_fingerprint_is_xxh64)
{
    /* published XXH64 values (seed 0), and a file over the 1 MiB read chunk */
    const char *tmp = tu_tmpdir();
    static const struct {
        const char *text, *hex;
    } known[] = {{"", "ef46db3751d8e999"},
                 {"a", "d24ec4f1a98c6e5b"},
                 {"abc", "44bc2cf5ad770999"},
                 {"Nobody inspects the spammish repetition", "fbcea83c8a378bf1"}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char p[600], hex[17];
        snprintf(p, sizeof p, "%s/k%zu", tmp, i);
        tu_write(p, known[i].text);
        ck_assert(tema_file_fingerprint(p, hex));
        ck_assert_str_eq(hex, known[i].hex);
    }
    char big[600], cmd[1400], h1[17], h2[17];
    snprintf(big, sizeof big, "%s/big", tmp);
    snprintf(cmd, sizeof cmd, "head -c 3000007 /dev/zero | tr '\\0' 'x' > '%s'", big);
    sh(cmd);
    ck_assert(tema_file_fingerprint(big, h1));
    snprintf(cmd, sizeof cmd, "printf y | dd of='%s' bs=1 seek=2500000 conv=notrunc status=none", big);
    sh(cmd);
    ck_assert(tema_file_fingerprint(big, h2));
    ck_assert_str_ne(h1, h2);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("run_id");
    TCase *tc = tcase_create("ids");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_file_fingerprint_is_xxh64);
    tcase_add_test(tc, t_same_data_through_a_symlink_and_a_copy_is_one_run);
    tcase_add_test(tc, t_thread_count_is_not_part_of_the_id);
    tcase_add_test(tc, t_results_dir_is_where_runs_live_and_not_part_of_the_id);
    tcase_add_test(tc, t_a_core_key_added_later_counts_only_when_set);
    tcase_add_test(tc, t_an_option_added_with_its_default_keeps_the_id);
    tcase_add_test(tc, t_a_run_of_the_old_scheme_is_moved_and_found_done);
    tcase_add_test(tc, t_a_resume_after_a_plugin_file_changed_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
