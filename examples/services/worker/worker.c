#include <stdio.h>

int main(void) {
    printf("worker: %d-bit\n", (int)(8 * sizeof(void *)));
    return 0;
}
