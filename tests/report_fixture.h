/* tests/report_fixture.h - the results folders the report suite reports on, and helpers to
 * read what `tema report` wrote (report_fixture.c).
 */
#ifndef TEMA_TESTS_REPORT_FIXTURE_H
#define TEMA_TESTS_REPORT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "tema/status.h"

/* The experiment file of the fixture: tables main (rows SASRec = single, the baseline, TEMA
 * = multi, GRU4Rec = gru) and ablation (explicit rows, domain X, mid ranks, percent). */
extern const char rep_yaml[];

/* The whole file (fails the test when unreadable); caller frees. */
char *slurp(const char *path);
void write_file(const char *dir, const char *name, const char *text);
/* One run folder of the "rep" experiment: plugin k (0 single, 1 multi, 2 gru), seed s, done
 * or still running; its folder into dir. */
/* model.encoders of the runs of attention k (JSON list), NULL for none; set before make_fixture */
extern const char *fixture_encoders[3];
extern const char *fixture_backend[5]; /* by seed (1..4): the config's backend section, or NULL */
void make_run(const char *exp_dir, int k, int s, bool done, char *dir, size_t cap);
/* A fresh fixture: tmp/rep.yaml (the text `yaml`) and tmp/results/rep/<9 finished runs + 1
 * unfinished>; returns tmp. */
const char *make_fixture(const char *yaml);
/* tema_report of root/yaml_name over root/results, every finished run, notes on stderr. */
tema_status report_in(const char *root, const char *yaml_name, bool html, tema_err *err);
/* A file of the report folder root/results/exp/report; caller frees. */
char *report_file(const char *root, const char *exp, const char *name);
/* The line of the Markdown table whose first cell is `label`; caller frees. */
char *md_row(const char *md, const char *label);
/* plots/<stem>.svg, .png and .pdf exist, each more than 1 kB and of its kind. */
void check_plot(const char *root, const char *exp, const char *stem);
/* DIR/STEM.svg, .png and .pdf exist and are what their names say. */
void check_plot_files(const char *dir, const char *stem);
int count(const char *hay, const char *needle);
/* The text of a PLplot SVG, each <text> element a line; caller frees. */
char *svg_text(const char *path);

#endif
