/* cli/cmd_gen_model.c - placeholder until this subcommand lands. TODO(issue 2): implement. */
#include <stdio.h>

#include "cli/commands.h"

int cmd_gen_model(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "pagoda %s: not implemented yet\n", argv[0]);
    return 1;
}
