/* it_failing_client: a device whose plug-in trainer always fails, for fl_it.py train_failure.
 *
 *   it_failing_client ENDPOINT ID
 *
 * Runs libflclient as a device maker embeds it (include/flc.h; plain text, the server runs
 * --insecure) with a plug-in trainer that returns FLC_ERR_INTERNAL for every task, until the
 * server says the run is done. The library logs to stderr; each failed training prints
 * "it_failing_client: round R: training fails". Exit 0 when flc_client_run returns FLC_OK, 1
 * otherwise, 2 on bad usage.
 *
 * Test code: prints to stderr freely.
 */
#include <stdio.h>

#include "flc.h"

static flc_status failing_train(const flc_task *task, flc_update *out, void *user)
{
    (void)out;
    int *n = user;
    (*n)++;
    fprintf(stderr, "it_failing_client: round %llu: training fails\n",
            (unsigned long long)task->round);
    return FLC_ERR_INTERNAL;
}

static void log_stderr(void *user, flc_log_level level, const char *msg)
{
    (void)user;
    static const char *names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "[lib %s] %s\n", names[level <= FLC_LOG_ERROR ? level : FLC_LOG_ERROR], msg);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: it_failing_client ENDPOINT ID\n");
        return 2;
    }
    int failures = 0;
    flc_config cfg = {0};
    cfg.server_endpoint = argv[1];
    cfg.client_id = argv[2];
    cfg.train = failing_train;
    cfg.train_user = &failures;
    cfg.log = log_stderr;
    cfg.log_level = FLC_LOG_INFO;
    flc_client *c = NULL;
    flc_status st = flc_client_new(&cfg, &c);
    if (st == FLC_OK)
        st = flc_client_run(c);
    flc_client_free(c);
    fprintf(stderr, "it_failing_client: %d trainings failed; run: %s\n", failures, flc_strerror(st));
    return st == FLC_OK ? 0 : 1;
}
