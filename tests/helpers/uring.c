/* uring: opens its capture socket through io_uring (IORING_OP_SOCKET), which
 * no socket(2) call shows, then reads one frame on lo with recv(2).
 *
 * The ring is set up with the raw system calls (no liburing): one SQE, one
 * CQE. Prints "captured N bytes" and exits 0, or says what failed
 * ("io_uring_setup: …", "socket: …", "nothing captured") and exits non-zero.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/io_uring.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

int main(void) {
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    int ring = (int)syscall(SYS_io_uring_setup, 1, &params);
    if (ring < 0) {
        printf("io_uring_setup: %s\n", strerror(errno));
        return 2;
    }
    size_t sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    size_t cq_size = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                    IORING_OFF_SQ_RING);
    char *cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                    IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes =
        mmap(NULL, params.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
        printf("mmap: %s\n", strerror(errno));
        return 2;
    }
    memset(&sqes[0], 0, sizeof sqes[0]);
    sqes[0].opcode = IORING_OP_SOCKET;
    sqes[0].fd = AF_PACKET;         /* domain */
    sqes[0].off = SOCK_RAW;         /* type */
    sqes[0].len = htons(ETH_P_ALL); /* protocol */
    unsigned *tail = (unsigned *)(sq + params.sq_off.tail);
    unsigned *array = (unsigned *)(sq + params.sq_off.array);
    array[*tail & *(unsigned *)(sq + params.sq_off.ring_mask)] = 0;
    __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
    if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        printf("io_uring_enter: %s\n", strerror(errno));
        return 2;
    }
    unsigned head = __atomic_load_n((unsigned *)(cq + params.cq_off.head), __ATOMIC_ACQUIRE);
    struct io_uring_cqe *cqe = (struct io_uring_cqe *)(cq + params.cq_off.cqes) +
                               (head & *(unsigned *)(cq + params.cq_off.ring_mask));
    int fd = cqe->res;
    if (fd < 0) {
        printf("socket: %s\n", strerror(-fd));
        return 2;
    }
    struct sockaddr_ll lo = {.sll_family = AF_PACKET,
                             .sll_protocol = htons(ETH_P_ALL),
                             .sll_ifindex = (int)if_nametoindex("lo")};
    if (bind(fd, (struct sockaddr *)&lo, sizeof lo) < 0) {
        printf("bind: %s\n", strerror(errno));
        return 3;
    }
    struct timeval timeout = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char frame[2048];
    ssize_t n = recv(fd, frame, sizeof frame, 0);
    if (n <= 0) {
        printf("nothing captured\n");
        return 1;
    }
    printf("captured %zd bytes\n", n);
    return 0;
}
