/* The writer of W3: writes BYTES zero bytes to stdout in 64 KiB writes, then exits.
 * Takes its size as its last argument, so that every tool can append it. */
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    static char buf[65536];
    long long left = argc > 1 ? atoll(argv[argc - 1]) : 0;
    while (left > 0) {
        ssize_t n = write(1, buf, left < (long long)sizeof buf ? (size_t)left : sizeof buf);
        if (n <= 0) return 1;
        left -= n;
    }
    return 0;
}
