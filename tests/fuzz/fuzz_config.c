/* libFuzzer target for the config loader: ct_config_load of arbitrary bytes
 * as the YAML text of a config file, then, on success, what main does with a
 * loaded config (print it masked, wipe it). The input is bounded (run-fuzzer
 * passes -max_len) and made NUL-terminated, as ct_config_load reads text up
 * to a NUL. The loader may open files the YAML names (key_file,
 * certificate_file): run-fuzzer runs this target with stdin from /dev/null
 * and without the CHAT_TOKEN_* variables, so such a read never blocks. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    unsetenv("CHAT_TOKEN_APP_ID");
    unsetenv("CHAT_TOKEN_APP_CERTIFICATE");
    unsetenv("CHAT_TOKEN_APP_CERTIFICATE_FILE");
    devnull = fopen("/dev/null", "w");
    return devnull == NULL ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* about 100 KiB (api keys, mTLS clients): one per process */
    static ct_config cfg;
    char err[512];
    char *text = malloc(size + 1);

    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    err[0] = '\0';
    if (ct_config_load(&cfg, "fuzz.yaml", text, err, sizeof(err)) == 0) {
        if (ct_config_validate(&cfg, err, sizeof(err)) != 0) {
            abort(); /* load validates: a loaded config is valid */
        }
        ct_config_print(&cfg, devnull);
        ct_config_wipe(&cfg);
    } else if (err[0] == '\0') {
        abort(); /* every failure says what is wrong */
    }
    free(text);
    return 0;
}
