/* core/cli.h - the tema command line (core-internal). */
#ifndef TEMA_CORE_CLI_H
#define TEMA_CORE_CLI_H

/* Returns the process exit status: 0 ok, 1 the work failed, 2 usage error. */
int tema_cli_main(int argc, char **argv);

#endif
