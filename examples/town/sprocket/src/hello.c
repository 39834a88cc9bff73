/* sprocket: the demo rig's tiny program, built by the build-hello plugin. */
#include <stdio.h>

int main(int argc, char **argv) {
    const char *who = argc > 1 ? argv[1] : "town";
    printf("Hello, %s! (sprocket v1)\n", who);
    return 0;
}
