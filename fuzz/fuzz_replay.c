/*
 * A plain main() for the fuzz targets: runs LLVMFuzzerTestOneInput once on
 * each file named on the command line, as libFuzzer does when given files.
 * Built with $(CC) -fsanitize=address,undefined (no libFuzzer, so clang's
 * fuzzer runtime is not needed) to replay the committed seeds and
 * regressions in make test. Exit 0 when every input ran; a sanitizer report
 * aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

int
main(int argc, char **argv)
{
    int i;

    if (LLVMFuzzerInitialize) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    for (i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        uint8_t *buf;
        long len;

        if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0
            || fseek(f, 0, SEEK_SET) != 0) {
            perror(argv[i]);
            return 2;
        }
        buf = malloc((size_t) len + 1);
        if (buf == NULL || fread(buf, 1, (size_t) len, f) != (size_t) len) {
            perror(argv[i]);
            return 2;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t) len);
        free(buf);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
