/* Unit tests for core/secret.c: which secret files are exposed beyond the
 * server, and scrubbing a secret from the environment in place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "secret.h"

static char path[64];

static int make_file(void **state)
{
    int fd;

    (void)state;
    snprintf(path, sizeof(path), "/tmp/ct-test-secret-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0) {
        return -1;
    }
    close(fd);
    return 0;
}

static int remove_file(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

static void files_for_the_server_alone_are_not_exposed(void **state)
{
    int others = -1;
    unsigned mode = 0;
    (void)state;
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(ct_secret_file_exposed(path, &others, &mode), 0);
    assert_int_equal(mode, 0400);
    /* 0440 with a group of the process: Kubernetes' defaultMode 0440 + fsGroup */
    assert_int_equal(chown(path, (uid_t)-1, getegid()), 0);
    assert_int_equal(chmod(path, 0440), 0);
    assert_int_equal(ct_secret_file_exposed(path, &others, &mode), 0);
    /* missing: not judged here (reading it reports that) */
    assert_int_equal(ct_secret_file_exposed("/nonexistent/secret", &others, &mode), 0);
}

static void readable_by_others_is_exposed(void **state)
{
    int others = 0;
    unsigned mode = 0;
    (void)state;
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(ct_secret_file_exposed(path, &others, &mode), 1);
    assert_int_equal(others, 1);
    assert_int_equal(mode, 0644);
}

static void readable_by_a_foreign_group_is_exposed(void **state)
{
    gid_t foreign = 54321;
    int others = 1;
    unsigned mode = 0;
    (void)state;
    if (getegid() == foreign || chown(path, (uid_t)-1, foreign) != 0) {
        skip(); /* changing a file's group to one we are not in needs root */
    }
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(ct_secret_file_exposed(path, &others, &mode), 1);
    assert_int_equal(others, 0);
}

static void scrubbing_overwrites_the_value_in_place(void **state)
{
    /* putenv keeps this very buffer, as the initial environment block is
     * kept: the bytes /proc/PID/environ would show */
    static char entry[] = "CT_TEST_SECRET=5CFd2fd1755d40ecb72977518be15d3b";
    const char *value = entry + strlen("CT_TEST_SECRET=");
    (void)state;
    assert_int_equal(putenv(entry), 0);
    ct_secret_scrub_env("CT_TEST_SECRET");
    assert_null(getenv("CT_TEST_SECRET"));
    for (size_t i = 0; i < 32; i++) {
        assert_int_equal(value[i], 0);
    }
    ct_secret_scrub_env("CT_TEST_NOT_SET"); /* absent: nothing to do */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(files_for_the_server_alone_are_not_exposed, make_file,
                                        remove_file),
        cmocka_unit_test_setup_teardown(readable_by_others_is_exposed, make_file, remove_file),
        cmocka_unit_test_setup_teardown(readable_by_a_foreign_group_is_exposed, make_file,
                                        remove_file),
        cmocka_unit_test(scrubbing_overwrites_the_value_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
