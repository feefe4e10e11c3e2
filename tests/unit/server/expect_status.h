/* expect_status: the one check the server unit tests make of an outcome:
 * the code returned, and a part of the message the caller would read.
 * Header-only: each test is its own executable. */
#ifndef TEST_EXPECT_STATUS_H
#define TEST_EXPECT_STATUS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "status.h"

/* rc is code, and status->message holds says (when says is not NULL). */
static inline void expect_status(int rc, const srv_status *status, enum srv_code code,
                                 const char *says)
{
    assert_int_equal(rc, code);
    if (says != NULL && strstr(status->message, says) == NULL) {
        fail_msg("message \"%s\" does not say \"%s\"", status->message, says);
    }
}

#endif
