# Unit tests for the pure parts of server/http.c (routing, parsing, status
# mapping, CORS); http.c is compiled in, as it is part of the executable.
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
ct_unit_test(test_http test_http.c srv_core PkgConfig::MHD)
target_sources(test_http PRIVATE ${PROJECT_SOURCE_DIR}/server/http.c)

