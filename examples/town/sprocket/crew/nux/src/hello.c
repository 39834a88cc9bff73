/* sprocket, nux's crew clone: experimenting with a --shout flag. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    int shout = argc > 1 && strcmp(argv[1], "--shout") == 0;
    const char *who = argc > 1 + shout ? argv[1 + shout] : "town";
    char line[256];
    snprintf(line, sizeof line, "Hello, %s! (sprocket v2-nux)", who);
    for (char *c = line; shout && *c; c++) *c = (char)toupper((unsigned char)*c);
    puts(line);
    return 0;
}
