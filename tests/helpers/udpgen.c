/* udpgen PID [MAX_MS]: traffic on lo for a sniffer to see (or not).
 *
 * Sends one UDP datagram to 127.0.0.1:9 every 20 ms: at least 10 of them, then
 * for as long as process PID lives (not a zombie), for at most MAX_MS (default
 * 3000) in all. Prints "udpgen sent N" at the end. Uses an ordinary UDP socket,
 * which no sniffguard rule watches, so the traffic is there in enforce
 * containers too (busybox ping needs a raw socket, which enforce refuses).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int alive(const char *pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *paren = strrchr(buf, ')');
    if (!paren || paren[1] != ' ') return 0;
    return paren[2] != 'Z' && paren[2] != 'X';
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: udpgen PID [MAX_MS]\n"); return 2; }
    long max_ms = argc > 2 ? atol(argv[2]) : 3000;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) { perror("udpgen socket"); return 2; }
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long sent = 0;
    struct timespec gap = {0, 20 * 1000 * 1000};
    for (long elapsed = 0; elapsed < max_ms; elapsed += 20) {
        if (sent >= 10 && !alive(argv[1])) break;
        if (sendto(fd, "sniffguard-bypass-probe", 23, 0, (struct sockaddr *)&to, sizeof to) == 23)
            sent++;
        nanosleep(&gap, NULL);
    }
    printf("udpgen sent %ld\n", sent);
    return 0;
}
