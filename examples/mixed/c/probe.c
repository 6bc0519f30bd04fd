#include <stdio.h>

int main(void) {
    printf("mixed-c: pointer bits=%d\n", (int)(8 * sizeof(void *)));
    return 0;
}
