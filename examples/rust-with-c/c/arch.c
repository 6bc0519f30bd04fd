#include <stdint.h>

/* The CPU this C was compiled for, from the compiler's own macros. */
const char *c_arch(void) {
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#elif defined(__arm__)
    return "arm";
#elif defined(__i386__)
    return "x86";
#elif defined(__powerpc64__)
    return "powerpc64";
#elif defined(__s390x__)
    return "s390x";
#elif defined(__riscv)
    return "riscv64";
#else
    return "unknown";
#endif
}

uint32_t c_checksum(const uint8_t *p, uint32_t n) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}
