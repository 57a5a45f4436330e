/* apiclient SOCKET LINE: one request to a Unix stream socket, as a process in a
 * container that can reach the supervisor's runtime directory would send it.
 *
 * Connects to SOCKET, writes LINE and a newline, reads the first line of the
 * answer (5 s at most) and prints "answer: LINE" ("answer: " when the peer closed
 * without one). Prints "apiclient: STEP failed: ERRNO-TEXT" and exits 2 when it
 * cannot connect or write (a peer that closed the connection at once).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(const char *step) {
    printf("apiclient: %s failed: %s\n", step, strerror(errno));
    return 2;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: apiclient SOCKET LINE\n");
        return 64;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    /* A peer that closes at once (a refusal) makes the write fail, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return fail("socket");
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        return fail("connect");
    size_t len = strlen(argv[2]);
    if (write(fd, argv[2], len) != (ssize_t)len || write(fd, "\n", 1) != 1)
        return fail("write");
    char answer[4096];
    size_t used = 0;
    struct pollfd pfd = {fd, POLLIN, 0};
    while (used < sizeof answer - 1 && poll(&pfd, 1, 5000) > 0) {
        ssize_t n = read(fd, answer + used, sizeof answer - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        if (memchr(answer, '\n', used))
            break;
    }
    answer[used] = 0;
    char *newline = strchr(answer, '\n');
    if (newline)
        *newline = 0;
    printf("answer: %s\n", answer);
    return 0;
}
