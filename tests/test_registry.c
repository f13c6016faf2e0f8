/* Loader tests: discovery, every loader error, static entries, and an out-of-tree
 * plugin built against the installed headers with pkg-config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "host.h"
#include "registry.h"
#include "tags.h"
#include "testutil.h"

const tema_plugin *tema_plugin_entry_backend_cpu(const tema_host *host);

static void sh(const char *fmt, const char *a, const char *b, const char *c)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a, b, c);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

/* Compile one plugin source (text) into dir/name.so against the source-tree headers. */
static void build_plugin(const char *dir, const char *name, const char *src)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.c", dir, name);
    tu_write(path, src);
    char inc[1024], so[1024];
    snprintf(inc, sizeof inc, "%s/include", tu_source_root());
    snprintf(so, sizeof so, "%s/%s.so", dir, name);
    sh("cc -shared -fPIC -I'%s' -o '%s' '%s' 2>&1", inc, so, path);
}

#define PLUGIN_SRC(abi_major, abi_minor, kind, name)                                                      \
    "#include <tema/plugin.h>\n"                                                                          \
    "static const tema_option opts[] = {{\"width\", TEMA_OPT_INT, \"4\", 1, 64, 0, \"a width\"}};\n"      \
    "static tema_status c(const tema_model_info *i, const tema_cfg *o, void **s, tema_err *e)"            \
    " { (void)i; (void)o; (void)s; return tema_fail(e, TEMA_EUNSUPPORTED, \"stub\"); }\n"                   \
    "static tema_status f(void *s, tema_graph *g, tema_tensor **t, tema_err *e)"                          \
    " { (void)s; (void)g; (void)t; return tema_fail(e, TEMA_EUNSUPPORTED, \"stub\"); }\n"                  \
    "static int64_t w(const void *s) { (void)s; return 4; }\n"                                              \
    "static const char *m(const void *s) { (void)s; return \"id\"; }\n"                                    \
    "static void x(void *s) { (void)s; }\n"                                                                 \
    "static const tema_encoder_ops ops = {.create = c, .forward = f, .dim = w, .modality = m, .destroy = x};\n" \
    "static const tema_plugin d = {.abi_major = " #abi_major ", .abi_minor = " #abi_minor                 \
    ", .struct_size = sizeof(tema_plugin), .kind = " #kind ", .name = \"" name "\", .version = \"1.0\","  \
    " .description = \"test plugin\", .options = opts, .n_options = 1, .ops_size = sizeof ops, .ops = &ops};\n" \
    "__attribute__((visibility(\"default\"))) const tema_plugin *tema_plugin_entry(const tema_host *h)" \
    " { (void)h; return &d; }\n"

START_TEST(t_scan_finds_builtin)
{
    tema_registry *r = tema_registry_new(tema_host_get());
    tema_registry_scan(r);
    const tema_plugin *cpu = tema_registry_find(r, TEMA_KIND_BACKEND, "cpu");
    ck_assert_ptr_nonnull(cpu);
    ck_assert_uint_eq(cpu->abi_major, TEMA_ABI_MAJOR);
    ck_assert_uint_eq(tema_registry_error_count(r), 0);
    ck_assert_ptr_null(tema_registry_find(r, TEMA_KIND_ENCODER, "cpu"));
    tema_registry_free(r);

    char *out, *err;
    ck_assert_int_eq(tu_tema("plugins", &out, &err), 0);
    ck_assert_msg(strstr(out, "backend") && strstr(out, "cpu") && strstr(out, "tema-backend-cpu.so"), "%s", out);
    free(out);
    free(err);
}
END_TEST

START_TEST(t_every_loader_error)
{
    const char *dir = tu_tmpdir();
    char d[512];
    snprintf(d, sizeof d, "%s", dir);
    build_plugin(d, "a_good", PLUGIN_SRC(TEMA_ABI_MAJOR, 0, TEMA_KIND_ENCODER, "good_enc"));
    build_plugin(d, "b_old_abi", PLUGIN_SRC(99, 0, TEMA_KIND_ENCODER, "old_abi"));
    build_plugin(d, "c_new_minor", PLUGIN_SRC(TEMA_ABI_MAJOR, 999, TEMA_KIND_ENCODER, "new_minor"));
    build_plugin(d, "d_dup", PLUGIN_SRC(TEMA_ABI_MAJOR, 0, TEMA_KIND_ENCODER, "good_enc"));
    build_plugin(d, "e_nosym", "int not_an_entry(void);\nint not_an_entry(void) { return 1; }\n");
    build_plugin(d, "f_badkind", PLUGIN_SRC(TEMA_ABI_MAJOR, 0, 42, "bad_kind"));
    char junk[600];
    snprintf(junk, sizeof junk, "%s/g_junk.so", d);
    tu_write(junk, "this is not an ELF file\n");
    /* a plugin cut short (an interrupted copy): the loader would map past its end (SIGBUS) */
    sh("head -c 40000 '%s/plugins/tema-backend-cpu.so' > '%s/h_truncated.so'%s", tu_build_root(), d, "");

    char args[1024];
    snprintf(args, sizeof args, "plugins");
    setenv("TEMA_PLUGIN_PATH", d, 1);
    char *out, *err;
    ck_assert_int_eq(tu_tema(args, &out, &err), 0);
    /* the good one still loads */
    ck_assert_msg(strstr(out, "good_enc") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "old_abi") == NULL && strstr(out, "new_minor") == NULL, "%s", out);
    /* one line per broken file, naming the file and the reason */
    const char *want[][2] = {{"b_old_abi.so", "ABI mismatch"},
                             {"c_new_minor.so", "needs ABI"},
                             {"d_dup.so", "duplicate encoder plugin 'good_enc'"},
                             {"e_nosym.so", "missing entry symbol"},
                             {"f_badkind.so", "unknown plugin kind"},
                             {"g_junk.so", "cannot load"},
                             {"h_truncated.so", "truncated: 40000 bytes"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *line = strstr(err, want[i][0]);
        ck_assert_msg(line != NULL, "no error for %s in:\n%s", want[i][0], err);
        const char *eol = strchr(line, '\n');
        const char *reason = strstr(line, want[i][1]);
        ck_assert_msg(reason && (!eol || reason < eol), "error for %s lacks '%s':\n%s", want[i][0], want[i][1], err);
    }
    free(out);
    free(err);

    /* the same through the API */
    tema_registry *r = tema_registry_new(tema_host_get());
    tema_registry_scan(r);
    ck_assert_uint_eq(tema_registry_error_count(r), 7);
    ck_assert_ptr_nonnull(tema_registry_find(r, TEMA_KIND_ENCODER, "good_enc"));
    tema_registry_free(r);
    unsetenv("TEMA_PLUGIN_PATH");
}
END_TEST

START_TEST(t_static_entry_and_duplicate)
{
    tema_registry *r = tema_registry_new(tema_host_get());
    tema_err err = {0};
    ck_assert_int_eq(tema_registry_add_entry(r, tema_plugin_entry_backend_cpu, "builtin:cpu", &err), TEMA_OK);
    ck_assert_int_eq(tema_registry_add_entry(r, tema_plugin_entry_backend_cpu, "builtin:cpu2", &err), TEMA_EABI);
    ck_assert_msg(strstr(err.msg, "duplicate backend plugin 'cpu'") && strstr(err.msg, "builtin:cpu2"), "%s", err.msg);
    ck_assert_uint_eq(tema_registry_count(r), 1);
    tema_registry_free(r);
}
END_TEST

START_TEST(t_describe)
{
    char *out, *err;
    ck_assert_int_eq(tu_tema("plugins --describe cpu", &out, &err), 0);
    ck_assert_msg(strstr(out, "backend/cpu") && strstr(out, "threads") && strstr(out, "default"), "%s", out);
    free(out);
    free(err);
    ck_assert_int_eq(tu_tema("plugins --describe no_such_plugin", &out, &err), 1);
    ck_assert_msg(strstr(err, "no plugin named 'no_such_plugin'") && strstr(err, "backend/cpu"), "%s", err);
    free(out);
    free(err);
}
END_TEST

/* The plugin guide, as a newcomer would follow it: install, pkg-config, one .c file. */
/* Help for one command, however it is asked for; unknown commands still fail. */
START_TEST(t_command_help)
{
    const char *asks[] = {"run --help", "help run", "run -h", "plugins --help", "tags --help", "data --help",
                          "report --help", "help report"};
    const char *wants[] = {"run EXP.yaml", "run EXP.yaml", "run EXP.yaml", "plugins [--describe NAME]", "tags EXP.yaml",
                           "data synth --out DIR", "--all-runs", "--no-plots"};
    for (size_t i = 0; i < sizeof asks / sizeof asks[0]; i++) {
        char *out = NULL, *err = NULL;
        ck_assert_msg(tu_tema(asks[i], &out, &err) == 0, "tema %s: %s", asks[i], err);
        ck_assert_msg(strstr(out, wants[i]), "tema %s printed: %s", asks[i], out);
        if (strcmp(asks[i], "help report") && strcmp(asks[i], "report --help"))
            ck_assert_msg(!strstr(out, "manifest EXP.yaml"), "tema %s printed every command: %s", asks[i], out);
        free(out);
        free(err);
    }
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(tu_tema("help no_such_command", &out, &err), 2);
    ck_assert_msg(strstr(err, "unknown command 'no_such_command'"), "%s", err);
    free(out);
    free(err);
}
END_TEST

/* A problem in an experiment file is printed once, located. */
START_TEST(t_check_prints_a_problem_once)
{
    char path[1100], args[1200];
    snprintf(path, sizeof path, "%s/bad.yaml", tu_tmpdir());
    tu_write(path, "name: x\ndataset: {path: synthetic}\nmodel:\n  encoders: [{plugin: idd, dim: 64}]\n");
    snprintf(args, sizeof args, "check '%s'", path);
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(tu_tema(args, &out, &err), 1);
    const char *msg = "unknown encoder plugin 'idd'";
    const char *first = strstr(err, msg);
    ck_assert_msg(first && strstr(first, "bad.yaml:4:") == NULL, "%s", err);
    ck_assert_msg(strstr(err, "bad.yaml:4:23:") && !strstr(first + 1, msg), "printed more than once: %s", err);
    free(out);
    free(err);
}
END_TEST

START_TEST(t_out_of_tree_plugin)
{
    char dest[256], plugdir[300], pcdir[512] = "";
    snprintf(dest, sizeof dest, "%s", tu_tmpdir());
    sh("meson install -C '%s' --destdir '%s' --no-rebuild --quiet >/dev/null%s", tu_build_root(), dest, "");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "find '%s' -name tema.pc -printf '%%h'", dest);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(pcdir, sizeof pcdir, p));
    pclose(p);
    /* relocatable: the installed binary, moved under dest, finds its own plugins there */
    char line[4096] = "";
    snprintf(cmd, sizeof cmd, "env -u TEMA_PLUGIN_PATH \"$(find '%s' -path '*/bin/tema' -type f)\" plugins 2>&1 | "
             "grep -w cpu", dest);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(fgets(line, sizeof line, p) != NULL, "the installed tema lists no cpu backend");
    pclose(p);
    ck_assert_msg(strstr(line, dest) && strstr(line, "/tema/plugins/"), "cpu found outside the install: %s", line);
    snprintf(plugdir, sizeof plugdir, "%s/myplugins", dest);
    sh("mkdir -p '%s'%s%s", plugdir, "", "");
    snprintf(cmd, sizeof cmd,
             "PKG_CONFIG_PATH='%s' PKG_CONFIG_SYSROOT_DIR='%s' "
             "cc -shared -fPIC -Wall -Wextra -Werror $(PKG_CONFIG_PATH='%s' PKG_CONFIG_SYSROOT_DIR='%s' pkg-config --cflags tema) "
             "-o '%s/tema-tag_repr-softmax.so' '%s/tests/plugin_example/tag_repr_softmax.c' -lm",
             pcdir, dest, pcdir, dest, plugdir, tu_source_root());
    ck_assert_int_eq(system(cmd), 0);
    /* the installed headers, not the source tree's, were used */
    snprintf(cmd, sizeof cmd, "PKG_CONFIG_PATH='%s' PKG_CONFIG_SYSROOT_DIR='%s' pkg-config --cflags tema | grep -q '%s'",
             pcdir, dest, dest);
    ck_assert_int_eq(system(cmd), 0);

    setenv("TEMA_PLUGIN_PATH", plugdir, 1);
    char *out, *err;
    ck_assert_int_eq(tu_tema("plugins", &out, &err), 0);
    ck_assert_msg(strstr(out, "tag_repr") && strstr(out, "softmax") && strstr(out, "myplugins"), "%s", out);
    free(out);
    free(err);
    ck_assert_int_eq(tu_tema("plugins --describe tag_repr/softmax", &out, &err), 0);
    ck_assert_msg(strstr(out, "temperature"), "%s", out);
    free(out);
    free(err);

    /* and run it */
    tema_registry *r = tema_registry_new(tema_host_get());
    tema_registry_scan(r);
    const tema_plugin *pl = tema_registry_find(r, TEMA_KIND_TAG_REPR, "softmax");
    ck_assert_ptr_nonnull(pl);
    tema_cfg *cfg = NULL;
    tema_err e = {0};
    ck_assert_int_eq(tema_cfg_parse_string("temperature: 10\n", "test", &cfg, &e), TEMA_OK);
    int64_t off[] = {0, 2, 2, 3};
    int32_t tag[] = {0, 1, 4};
    float score[] = {30, 20, 55};
    tema_tag_selection sel = {.n_items = 3, .off = off, .tag = tag, .score = score};
    ck_assert_msg(tema_tag_repr_call(pl, cfg, &sel, &e) == TEMA_OK, "%s", e.msg);
    /* softmax([3, 2]) and a single tag -> 1 */
    ck_assert_float_eq_tol(score[0], 0.7310586f, 1e-6f);
    ck_assert_float_eq_tol(score[1], 0.2689414f, 1e-6f);
    ck_assert_float_eq_tol(score[2], 1.0f, 1e-6f);
    tema_cfg_free(cfg);
    tema_registry_free(r);
    unsetenv("TEMA_PLUGIN_PATH");
}
END_TEST

/* A tag_repr plugin as ABI 1.3 headers built it (an ops table of one entry, no host in the
 * call) still loads and runs; a plugin that leaves a required op NULL is refused, by name. */
START_TEST(t_older_minor_abi_and_null_ops)
{
    char d[512];
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    build_plugin(d, "old_repr",
                 "#include <tema/plugin.h>\n"
                 "static tema_status halves(const tema_cfg *o, tema_tag_selection *sel, tema_err *e)\n"
                 "{ (void)o; (void)e; for (int64_t k = 0; k < sel->off[sel->n_items]; k++) sel->score[k] = 0.5f;"
                 " return TEMA_OK; }\n"
                 "static const tema_tag_repr_ops ops = {.weights = halves};\n"
                 "static const tema_plugin d = {.abi_major = 1, .abi_minor = 3, .struct_size = sizeof(tema_plugin),"
                 " .kind = TEMA_KIND_TAG_REPR, .name = \"halves\", .version = \"1.0\", .description = \"old\","
                 " .ops_size = sizeof(void *), .ops = &ops};\n"
                 "TEMA_PLUGIN_DEFINE(d)\n");
    build_plugin(d, "null_op",
                 "#include <tema/plugin.h>\n"
                 "static tema_status c(const tema_model_info *i, const tema_cfg *o, void **s, tema_err *e)"
                 " { (void)i; (void)o; (void)s; (void)e; return TEMA_OK; }\n"
                 "static void x(void *s) { (void)s; }\n"
                 "static const tema_loss_ops ops = {.create = c, .destroy = x};\n"
                 "static const tema_plugin d = {.abi_major = 1, .abi_minor = 0, .struct_size = sizeof(tema_plugin),"
                 " .kind = TEMA_KIND_LOSS, .name = \"no_forward\", .version = \"1.0\", .description = \"broken\","
                 " .ops_size = sizeof ops, .ops = &ops};\n"
                 "TEMA_PLUGIN_DEFINE(d)\n");
    setenv("TEMA_PLUGIN_PATH", d, 1);
    char *out, *err;
    ck_assert_int_eq(tu_tema("plugins", &out, &err), 0);
    ck_assert_msg(strstr(out, "halves") && !strstr(out, "no_forward"), "%s", out);
    const char *line = strstr(err, "null_op.so");
    ck_assert_msg(line && strstr(line, "loss plugin 'no_forward' leaves its required op 'forward' NULL"), "%s", err);
    free(out);
    free(err);

    tema_registry *r = tema_registry_new(tema_host_get());
    tema_registry_scan(r);
    const tema_plugin *p = tema_registry_find(r, TEMA_KIND_TAG_REPR, "halves");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(tema_registry_find(r, TEMA_KIND_LOSS, "no_forward"));
    int64_t off[] = {0, 2, 3};
    int32_t tag[] = {0, 1, 1};
    float score[] = {30, 20, 55};
    tema_tag_selection sel = {.n_items = 2, .off = off, .tag = tag, .score = score};
    tema_err e = {0};
    ck_assert_msg(tema_tag_repr_call(p, NULL, &sel, &e) == TEMA_OK, "%s", e.msg);
    for (int k = 0; k < 3; k++) ck_assert_float_eq(score[k], 0.5f);
    tema_registry_free(r);
    unsetenv("TEMA_PLUGIN_PATH");
}
END_TEST

/* A plugin whose entry starts a thread running the plugin's own code (as OpenMP and
 * OpenBLAS pools do from libraries only a plugin links): freeing the registry must not unmap
 * that code under the thread, or the host crashes when the thread next wakes. */
START_TEST(t_free_keeps_a_running_plugin_mapped)
{
    const char *dir = tu_tmpdir();
    build_plugin(dir, "tema-encoder-ticker",
                 "#include <pthread.h>\n#include <unistd.h>\n#include <tema/plugin.h>\n"
                 "static volatile long ticks;\n"
                 "static void *tick(void *a) { (void)a; for (;;) { usleep(1000); ticks++; } return 0; }\n"
                 "static tema_status c(const tema_model_info *i, const tema_cfg *o, void **s, tema_err *e)"
                 " { (void)i; (void)o; (void)s; return tema_fail(e, TEMA_EUNSUPPORTED, \"stub\"); }\n"
                 "static tema_status f(void *s, tema_graph *g, tema_tensor **t, tema_err *e)"
                 " { (void)s; (void)g; (void)t; return tema_fail(e, TEMA_EUNSUPPORTED, \"stub\"); }\n"
                 "static int64_t w(const void *s) { (void)s; return 4; }\n"
                 "static const char *m(const void *s) { (void)s; return \"id\"; }\n"
                 "static void x(void *s) { (void)s; }\n"
                 "static const tema_encoder_ops ops = {.create = c, .forward = f, .dim = w, .modality = m, .destroy = x};\n"
                 "static const tema_plugin d = {.abi_major = TEMA_ABI_MAJOR, .abi_minor = TEMA_ABI_MINOR,"
                 " .struct_size = sizeof(tema_plugin), .kind = TEMA_KIND_ENCODER, .name = \"ticker\", .version = \"1.0\","
                 " .description = \"starts a thread\", .ops_size = sizeof ops, .ops = &ops};\n"
                 "__attribute__((visibility(\"default\"))) const tema_plugin *tema_plugin_entry(const tema_host *h)"
                 " { (void)h; pthread_t t; pthread_create(&t, 0, tick, 0); pthread_detach(t); return &d; }\n");
    char path[1024];
    snprintf(path, sizeof path, "%s/tema-encoder-ticker.so", dir);
    tema_registry *r = tema_registry_new(tema_host_get());
    tema_err e = {0};
    ck_assert_msg(tema_registry_load_file(r, path, &e) == TEMA_OK, "%s", e.msg);
    tema_registry_free(r);
    usleep(50000); /* the thread wakes about 50 times in the plugin's code */
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("loader");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_scan_finds_builtin);
    tcase_add_test(tc, t_every_loader_error);
    tcase_add_test(tc, t_static_entry_and_duplicate);
    tcase_add_test(tc, t_describe);
    tcase_add_test(tc, t_command_help);
    tcase_add_test(tc, t_check_prints_a_problem_once);
    tcase_add_test(tc, t_out_of_tree_plugin);
    tcase_add_test(tc, t_older_minor_abi_and_null_ops);
    tcase_add_test(tc, t_free_keeps_a_running_plugin_mapped);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(make_suite()); }
