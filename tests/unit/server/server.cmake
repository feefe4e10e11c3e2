ct_unit_test(test_handlers test_handlers.c srv_core)
ct_unit_test(test_auth test_auth.c srv_core)
