/* tests/gradcheck.h - the finite-difference harness of the autograd tests: the CPU backend
 * as the active one (a Check fixture) and gradcheck(), which compares every input element's
 * analytic gradient with a central difference. */
#ifndef TEMA_TESTS_GRADCHECK_H
#define TEMA_TESTS_GRADCHECK_H

#include "engine.h"

extern const tema_nn_api *nn;   /* tema_nn(), set by gradcheck_setup */
extern void *cpu_self;          /* the CPU backend instance of the fixture */

void gradcheck_setup(void);     /* CPU backend (1 thread) made the active one */
void gradcheck_teardown(void);

#define MAX_IN 4
typedef struct spec {
    int ndim;
    int64_t shape[4];
} spec;
typedef tema_tensor *(*build_fn)(tema_graph *g, tema_tensor **in, void *ctx);

/* loss = sum(f(in) * R) for a fixed random R over n_in parameter inputs of the given shapes
 * (N(0,1), values closer to 0 than lo_abs pushed out to it); fails the test when an element's
 * relative error exceeds tol. */
void gradcheck(const char *what, int n_in, const spec *specs, build_fn f, void *ctx, float lo_abs, double eps,
               double tol);

#define S1(a) {1, {a}}
#define S2(a, b) {2, {a, b}}
#define S3(a, b, c) {3, {a, b, c}}
#define S4(a, b, c, d) {4, {a, b, c, d}}
#define TOL 2e-2
#define EPS 1e-2

#endif
