/* compat socket|socketcall: a 64-bit static program that opens its capture
 * socket through the i386 system-call ABI (`int $0x80`), which the
 * `syscalls/sys_enter_*` tracepoints do not report, then reads one frame on lo.
 *
 *   socket      i386 socket(2) (359): AF_PACKET, SOCK_RAW, ETH_P_ALL
 *   socketcall  i386 socketcall(2) (102) with SYS_SOCKET and the same three
 *
 * Prints "captured N bytes" and exits 0, or says what failed ("socket: …",
 * "nothing captured") and exits non-zero. The traffic is the caller's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* In the static binary's data, below 4 GiB: the i386 ABI passes 32-bit
 * pointers. */
static unsigned int socket_args[3];

int main(int argc, char **argv) {
    int via_socketcall = argc > 1 && strcmp(argv[1], "socketcall") == 0;
    long fd;
    if (via_socketcall) {
        socket_args[0] = AF_PACKET;
        socket_args[1] = SOCK_RAW;
        socket_args[2] = htons(ETH_P_ALL);
        __asm__ volatile("int $0x80" : "=a"(fd) : "a"(102L), "b"(1L), "c"(socket_args) : "memory");
    } else {
        __asm__ volatile("int $0x80"
                         : "=a"(fd)
                         : "a"(359L), "b"((long)AF_PACKET), "c"((long)SOCK_RAW),
                           "d"((long)htons(ETH_P_ALL))
                         : "memory");
    }
    if (fd < 0) {
        printf("socket: %s\n", strerror((int)-fd));
        return 2;
    }
    struct sockaddr_ll lo = {.sll_family = AF_PACKET,
                             .sll_protocol = htons(ETH_P_ALL),
                             .sll_ifindex = (int)if_nametoindex("lo")};
    if (bind((int)fd, (struct sockaddr *)&lo, sizeof lo) < 0) {
        printf("bind: %s\n", strerror(errno));
        return 3;
    }
    struct timeval timeout = {.tv_sec = 5};
    setsockopt((int)fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char frame[2048];
    ssize_t n = recv((int)fd, frame, sizeof frame, 0);
    if (n <= 0) {
        printf("nothing captured\n");
        return 1;
    }
    printf("captured %zd bytes\n", n);
    return 0;
}
