/* test_static_link: a program linked against the static libflclient.a and libflserver.a (never the
 * shared ones) that defines functions of its own under fedrop's internal names. A static archive
 * of fedrop's objects as they are would not link with it (multiple definitions); the archives
 * scripts/static-archive makes keep those names local, so it links, and each side calls its own:
 * the program's functions give the program's answers, and the libraries, whose errors go through
 * their own fl_log and fl_errf, still name the field that is wrong.
 *
 *   test_static_link        (fls_keygen writes into a directory of its own under $TMPDIR)
 *
 * Exit 0 when all holds, 1 (with what failed on stderr) otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flc.h"
#include "fls.h"

/* The program's own functions, named as fedrop's internal ones are (common, compress, models,
 * proto, the server core), with other signatures. */
int fl_log(int x) { return x + 1; }
int fl_errf(int x) { return x + 2; }
int flz_ctx_new(int x) { return 2 * x; }
int flm_model_new(int x) { return 3 * x; }
int flp_decode(int x) { return 4 * x; }
int fls_core_new(int x) { return 5 * x; }

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "test_static_link: FAILED: %s\n", what);
        failures++;
    }
}

static char logged[1024];

static void on_log(void *user, flc_log_level level, const char *msg)
{
    (void)user;
    if (level == FLC_LOG_ERROR && !logged[0])
        snprintf(logged, sizeof logged, "%s", msg);
}

int main(void)
{
    check(fl_log(1) == 2 && fl_errf(1) == 3 && flz_ctx_new(3) == 6 && flm_model_new(3) == 9 &&
              flp_decode(3) == 12 && fls_core_new(3) == 15,
          "the program's own functions answer");

    /* libflclient: a config without client_id is refused, and its log names the field. */
    check(strcmp(flc_strerror(FLC_OK), "success") == 0, "flc_strerror(FLC_OK)");
    flc_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.server_endpoint = "tcp://127.0.0.1:1";
    cfg.log = on_log;
    flc_client *c = NULL;
    check(flc_client_new(&cfg, &c) == FLC_ERR_INVALID_ARG && c == NULL,
          "flc_client_new refuses a config without client_id");
    check(strstr(logged, "client_id") != NULL, "its error log names client_id");
    if (!strstr(logged, "client_id"))
        fprintf(stderr, "  logged: '%s'\n", logged);

    /* libflserver: a bad option value is refused with the key named; a good one is kept. */
    fls_options *o = NULL;
    char err[512] = "";
    check(fls_options_new(&o) == FLS_OK, "fls_options_new");
    if (o) {
        check(fls_options_set(o, "round.clients", "many", err, sizeof err) != FLS_OK &&
                  strstr(err, "round.clients") != NULL,
              "fls_options_set refuses round.clients=many, naming the key");
        check(fls_options_set(o, "round.clients", "7", err, sizeof err) == FLS_OK,
              "fls_options_set takes round.clients=7");
        char v[64] = "";
        check(fls_options_get(o, "round.clients", v, sizeof v) == FLS_OK && strcmp(v, "7") == 0,
              "fls_options_get gives round.clients back");
        fls_options_free(o);
    }
    /* ... and makes a CURVE key pair (libzmq, OpenSSL's file handling in fedrop's common). */
    const char *tmp = getenv("TMPDIR");
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/fedrop-static-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("test_static_link: mkdtemp");
        return 1;
    }
    err[0] = '\0';
    check(fls_keygen(dir, "static", err, sizeof err) == FLS_OK, "fls_keygen");
    if (err[0])
        fprintf(stderr, "  fls_keygen: %s\n", err);
    snprintf(path, sizeof path, "%s/static.pub", dir);
    check(access(path, R_OK) == 0, "fls_keygen wrote static.pub");
    unlink(path);
    snprintf(path, sizeof path, "%s/static.secret", dir);
    unlink(path);
    rmdir(dir);
    if (failures == 0)
        printf("test_static_link: ok\n");
    return failures ? 1 : 0;
}
