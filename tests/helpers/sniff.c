/* sniff MODE: a capture tool without a sniffer's name and without libpcap.
 *
 * Opens a capture socket the way MODE says, reads at most one packet (3 s
 * timeout) and prints "captured N bytes" (N = 0 on timeout). Every failure
 * prints "sniff: STEP failed: ERRNO-TEXT" and exits 2.
 *
 *   packet           socket(AF_PACKET, SOCK_RAW, ETH_P_ALL) bound to lo
 *   sockpacket       socket(AF_INET, SOCK_PACKET, ETH_P_ALL) (obsolete API)
 *   raw              socket(AF_INET, SOCK_RAW, IPPROTO_UDP): copies of UDP packets
 *   promisc-sockopt  packet socket + PACKET_ADD_MEMBERSHIP / PACKET_MR_PROMISC on lo
 *   promisc-ioctl    SIOCSIFFLAGS |= IFF_PROMISC on lo through a UDP socket, then a
 *                    packet socket
 *   uring            the packet socket created by io_uring (IORING_OP_SOCKET), no
 *                    socket(2) call at all
 *   socketcall32     the packet socket created through the i386 ABI (int $0x80) with
 *                    the multiplexed socketcall(SYS_SOCKET, args) of 32-bit x86
 *   socket32         the same through i386's direct socket syscall (359)
 * Both i386 modes need IA32 emulation (x86-64 only); the socket is then bound and
 * read with ordinary 64-bit calls.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/io_uring.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static void fail(const char *step) {
    printf("sniff: %s failed: %s\n", step, strerror(errno));
    fflush(stdout);
    exit(2);
}

static void bind_lo(int fd) {
    struct sockaddr_ll ll;
    memset(&ll, 0, sizeof ll);
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_ALL);
    ll.sll_ifindex = (int)if_nametoindex("lo");
    if (bind(fd, (struct sockaddr *)&ll, sizeof ll) < 0) fail("bind(lo)");
}

static int packet_socket_on_lo(void) {
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0) fail("socket(AF_PACKET)");
    bind_lo(fd);
    return fd;
}

#if defined(__x86_64__)
/* A system call through the i386 entry point; its result as the kernel returns it. */
static long int80(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}

static int i386_packet_socket(int multiplexed) {
    long r;
    if (multiplexed) {
        /* socketcall's argument block must be addressable with 32 bits. */
        unsigned *args = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        if (args == MAP_FAILED) fail("mmap(MAP_32BIT)");
        args[0] = AF_PACKET;
        args[1] = SOCK_RAW;
        args[2] = htons(ETH_P_ALL);
        r = int80(102 /* socketcall */, 1 /* SYS_SOCKET */, (long)(unsigned long)args, 0);
    } else {
        r = int80(359 /* socket */, AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    }
    if (r < 0) {
        errno = (int)-r;
        fail(multiplexed ? "i386 socketcall(SYS_SOCKET, AF_PACKET)" : "i386 socket(AF_PACKET)");
    }
    printf("sniff: i386 %s made packet socket fd %ld\n", multiplexed ? "socketcall" : "socket", r);
    bind_lo((int)r);
    return (int)r;
}
#endif

/* io_uring without liburing: one SQE, one CQE. */
static int uring_packet_socket(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int ring = (int)syscall(__NR_io_uring_setup, 4, &p);
    if (ring < 0) fail("io_uring_setup");
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                    IORING_OFF_SQ_RING);
    char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                    IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes =
        mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) fail("mmap(io_uring)");
    unsigned *sq_tail = (unsigned *)(sq + p.sq_off.tail);
    unsigned *sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    unsigned *sq_array = (unsigned *)(sq + p.sq_off.array);
    unsigned *cq_head = (unsigned *)(cq + p.cq_off.head);
    unsigned *cq_tail = (unsigned *)(cq + p.cq_off.tail);
    unsigned *cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);

    unsigned tail = *sq_tail;
    unsigned index = tail & *sq_mask;
    struct io_uring_sqe *sqe = &sqes[index];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_SOCKET;
    sqe->fd = AF_PACKET;               /* domain */
    sqe->off = SOCK_RAW;               /* type */
    sqe->len = htons(ETH_P_ALL);       /* protocol */
    sq_array[index] = index;
    __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
        fail("io_uring_enter");
    unsigned head = __atomic_load_n(cq_head, __ATOMIC_ACQUIRE);
    if (head == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) {
        errno = EAGAIN;
        fail("io_uring completion");
    }
    int res = cqes[head & *cq_mask].res;
    __atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
    if (res < 0) {
        errno = -res;
        fail("IORING_OP_SOCKET(AF_PACKET)");
    }
    printf("sniff: io_uring made packet socket fd %d\n", res);
    bind_lo(res);
    return res;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: sniff MODE\n"); return 2; }
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argv[1];
    int fd;
    if (!strcmp(mode, "packet")) {
        fd = packet_socket_on_lo();
    } else if (!strcmp(mode, "sockpacket")) {
        fd = socket(AF_INET, SOCK_PACKET, htons(ETH_P_ALL));
        if (fd < 0) fail("socket(AF_INET, SOCK_PACKET)");
    } else if (!strcmp(mode, "raw")) {
        fd = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
        if (fd < 0) fail("socket(AF_INET, SOCK_RAW)");
    } else if (!strcmp(mode, "promisc-sockopt")) {
        fd = packet_socket_on_lo();
        struct packet_mreq mr;
        memset(&mr, 0, sizeof mr);
        mr.mr_ifindex = (int)if_nametoindex("lo");
        mr.mr_type = PACKET_MR_PROMISC;
        if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
            fail("setsockopt(PACKET_ADD_MEMBERSHIP)");
        printf("sniff: lo promiscuous via setsockopt\n");
    } else if (!strcmp(mode, "promisc-ioctl")) {
        int ctl = socket(AF_INET, SOCK_DGRAM, 0);
        if (ctl < 0) fail("socket(AF_INET, SOCK_DGRAM)");
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
        if (ioctl(ctl, SIOCGIFFLAGS, &ifr) < 0) fail("ioctl(SIOCGIFFLAGS)");
        ifr.ifr_flags |= IFF_PROMISC;
        if (ioctl(ctl, SIOCSIFFLAGS, &ifr) < 0) fail("ioctl(SIOCSIFFLAGS)");
        printf("sniff: lo promiscuous via ioctl\n");
        fd = packet_socket_on_lo();
    } else if (!strcmp(mode, "uring")) {
        fd = uring_packet_socket();
#if defined(__x86_64__)
    } else if (!strcmp(mode, "socketcall32")) {
        fd = i386_packet_socket(1);
    } else if (!strcmp(mode, "socket32")) {
        fd = i386_packet_socket(0);
#endif
    } else {
        fprintf(stderr, "sniff: unknown mode %s\n", mode);
        return 2;
    }
    printf("sniff: capture socket open (%s)\n", mode);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) fail("recv");
    printf("captured %ld bytes\n", n < 0 ? 0L : (long)n);
    return n > 0 ? 0 : 3;
}
