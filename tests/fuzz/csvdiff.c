/*
 * csvdiff.c - libFuzzer target: the CSV reader (csvread.h) against
 * libcsv on any bytes (tests/csvdiff.h has the shared dialect and the
 * comparison).  Both must read the same records, field for field and
 * NULL for NULL, or both refuse the input; the records before a refusal
 * must agree too.
 *
 * The input: byte 0 picks the delimiter (',' ';' TAB '|'), byte 1 the
 * reader's block size (its own, or 4 to 35 bytes: a block end every few
 * bytes), the rest is the file.  The file goes to a memfd that the
 * reader opens again as /proc/self/fd/N.
 */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"

#include "../csvdiff.h"

#include <sys/mman.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-csvdiff", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    fuzz_in in = { data, size };
    static const unsigned char delims[] = { ',', ';', '\t', '|' };
    unsigned char delim = delims[fuzz_byte(&in) & 3];
    unsigned b = fuzz_byte(&in);
    size_t block = b & 128 ? 4 + (b & 31) : 0;
    const char *why = csvdiff_compare(in.p, in.n, delim, '"', block, fd, path);
    FUZZ_CHECK(why == NULL, "%s (delimiter 0x%02x, block %zu)", why, delim, block);
    return 0;
}
