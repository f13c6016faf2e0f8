/* tema - cross-domain sequential recommendation experiments. */
#include "cli.h"

int main(int argc, char **argv) { return tema_cli_main(argc, argv); }
