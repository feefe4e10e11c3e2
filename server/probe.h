/* `chat-tokend probe`: the built-in gRPC health client for exec probes. */
#ifndef SRV_PROBE_H
#define SRV_PROBE_H

/* Runs the probe subcommand; argv[0] is "probe". Returns the exit code:
 * 0 SERVING, 1 NOT_SERVING or UNKNOWN, 2 the check could not be made. */
int srv_probe_main(int argc, char **argv);

#endif
