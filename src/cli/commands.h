/* cli/commands.h - the `pagoda` subcommands. Each takes the arguments after its own name
 * (argv[0] is the subcommand name), prints its own --help, and returns the process exit code:
 * 0 success, 1 runtime error (one line on stderr), 2 usage error. */
#ifndef PAGODA_CLI_COMMANDS_H
#define PAGODA_CLI_COMMANDS_H

int cmd_run(int argc, char **argv);       /* cli/cmd_run.c */
int cmd_chat(int argc, char **argv);      /* cli/cmd_chat.c */
int cmd_info(int argc, char **argv);      /* cli/cmd_info.c */
int cmd_tokenize(int argc, char **argv);  /* cli/cmd_tokenize.c */
int cmd_gen_model(int argc, char **argv); /* cli/cmd_gen_model.c */
int cmd_batch(int argc, char **argv);     /* cli/cmd_batch.c */
int cmd_serve(int argc, char **argv);     /* cli/cmd_serve.c */
int cmd_bench(int argc, char **argv);     /* cli/cmd_bench.c: `bench` (model speed) and `bench serve` */
int cmd_bench_serve(int argc, char **argv); /* cli/cmd_bench_serve.c: `bench serve`, argv[0] == "serve" */

#endif
