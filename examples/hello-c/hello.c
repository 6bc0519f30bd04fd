/* hello-c: prints the CPU it was compiled for (from the compiler's macros) and the
 * byte order it sees at run time. */
#include <stdio.h>
#include <stdint.h>

static const char *arch(void) {
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7
    return "armv7";
#elif defined(__arm__)
    return "armv6";
#elif defined(__i386__)
    return "i386";
#elif defined(__powerpc64__)
    return "ppc64le";
#elif defined(__s390x__)
    return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
    return "riscv64";
#else
    return "unknown";
#endif
}

int main(void) {
    uint16_t one = 1;
    const char *endian = *(uint8_t *)&one ? "little" : "big";
    printf("hello-c: arch=%s endian=%s bits=%d\n", arch(), endian, (int)(8 * sizeof(void *)));
    return 0;
}
