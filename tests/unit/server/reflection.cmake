# Unit tests for server/reflection.c.
ct_unit_test(test_reflection test_reflection.c srv_reflection)
