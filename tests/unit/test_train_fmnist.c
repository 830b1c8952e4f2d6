/* End-to-end check of the training engine: the cnn ("cnn:10", LEAF's FEMNIST CNN with 10 classes)
 * trained for one epoch on the 60,000 Fashion-MNIST training images (plain SGD, batch 10,
 * lr 0.05, one OpenBLAS thread) must reach at least 85% accuracy on the 10,000 test images.
 * Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, or FEDROP_DATA_DIR),
 * a declared dependency (scripts/install-deps): missing data fails the test.
 * A separate executable because it is the slow one (about 1.5-2 CPU minutes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "fl_rng.h"
#include "flm_arch.h"
#include "flm_blas.h"
#include "flm_data.h"
#include "flm_model.h"
#include "flm_optim.h"

static void test_cnn_fashion_mnist_one_epoch(void **state)
{
    (void)state;
    char err[256] = "";
    flm_dataset *train = NULL, *test = NULL;
    if (flm_dataset_load_named(&train, "fashion-mnist", "train", NULL, err, sizeof err) != FL_OK)
        fail_msg("Fashion-MNIST train split: %s", err);
    if (flm_dataset_load_named(&test, "fashion-mnist", "test", NULL, err, sizeof err) != FL_OK)
        fail_msg("Fashion-MNIST test split: %s", err);
    assert_int_equal(train->N, 60000);
    assert_int_equal(test->N, 10000);
    flm_arch a;
    assert_int_equal(flm_arch_parse("cnn:10", &a, err, sizeof err), FL_OK);
    assert_int_equal(a.in_C * a.in_H * a.in_W, (int)train->sample_len);
    flm_model *m = NULL, *eval = NULL;
    assert_int_equal(flm_model_new(&a, 10, &m), FL_OK);
    assert_int_equal(flm_model_new(&a, 250, &eval), FL_OK); /* bigger batches evaluate faster */
    float *w = malloc(a.n_params * sizeof *w);
    assert_non_null(w);
    fl_rng init = fl_rng_stream(2024, 0, 0, FL_RNG_INIT);
    flm_model_init_params(&a, w, &init);
    flm_samples tr = {train->x, NULL, train->y, NULL, train->N};
    flm_samples te = {test->x, NULL, test->y, NULL, test->N};
    const flm_sgd o = {0.05f, 0.0f, 0.0f, 0.0f};
    fl_rng order = fl_rng_stream(2024, 0, 0, FL_RNG_BATCH);
    double train_loss = 0, test_loss = 0, acc = 0;
    assert_int_equal(flm_train_local(m, w, NULL, &tr, 1, &o, &order, &train_loss), FL_OK);
    assert_int_equal(flm_model_evaluate(eval, w, &te, &test_loss, &acc), FL_OK);
    print_message("cnn:10 on Fashion-MNIST, 1 epoch: train loss %.4f, test loss %.4f, test "
                  "accuracy %.4f (kernel %s)\n", train_loss, test_loss, acc, flm_blas_corename());
    assert_true(acc >= 0.85);
    flm_model_free(m);
    flm_model_free(eval);
    free(w);
    flm_dataset_free(train);
    flm_dataset_free(test);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cnn_fashion_mnist_one_epoch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
