/* mirror dup|tee|manage|count: sets up traffic mirroring through nf_tables
 * the way `nft` (a `dup` expression) and iptables-nft (an x_tables `TEE`
 * target in a compat `target` expression) do, with a hand-built nfnetlink
 * batch on a NETLINK_NETFILTER socket: no libmnl, no libnftnl (a static
 * program any name could have).
 *
 * dup:    table ip sg, chain out (filter hook output), rule
 *         `dup to 127.0.0.2 device lo`
 * tee:    table ip mangle, chain out (filter hook output), rule
 *         `-j TEE --gateway 127.0.0.2 --oif lo` (compat target, revision 1)
 * manage: table ip sg, chain out, rule `counter` (plain rule management)
 * dup-odd, tee-odd: the same rules with their name attributes written the
 *         other ways the kernel accepts: "dup" without its NUL (nla_len 7)
 *         and a flag bit in the attribute's type; "TEE\0" followed by more
 *         bytes
 * count:  no batch
 * A second argument `connected` sends the batch with send(2) on a socket
 * connected to the kernel, without a destination address.
 *
 * Prints "batch: ok" when the kernel acknowledged every message (or what
 * failed: "socket: …", "batch: …"), then, in every mode, sends one UDP
 * datagram to 127.0.0.1:9999 on lo and prints "copies N": how many copies of
 * it arrived (2 when the mirroring rule is in place, 1 without).
 * Needs `ip link set lo up` and CAP_NET_ADMIN.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_tables_compat.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static char batch[8192];
static size_t used;
static uint32_t seq = 1;
static int messages;

/* Nested attributes open at once, innermost last. */
static struct nlattr *nests[8];
static int depth;
static struct nlmsghdr *current;

static void *put(const void *data, size_t len) {
    void *at = batch + used;
    memcpy(at, data, len);
    used += NLA_ALIGN(len);
    current->nlmsg_len = (uint32_t)(batch + used - (char *)current);
    for (int i = 0; i < depth; i++)
        nests[i]->nla_len = (uint16_t)(batch + used - (char *)nests[i]);
    return at;
}

static void begin(uint16_t type, uint16_t flags, uint8_t family, uint16_t res_id) {
    current = (struct nlmsghdr *)(batch + used);
    struct nlmsghdr header = {
        .nlmsg_len = NLMSG_HDRLEN,
        .nlmsg_type = type,
        .nlmsg_flags = NLM_F_REQUEST | flags,
        .nlmsg_seq = seq++,
    };
    memcpy(current, &header, sizeof header);
    used += NLMSG_HDRLEN;
    struct nfgenmsg gen = {.nfgen_family = family, .version = NFNETLINK_V0,
                           .res_id = htons(res_id)};
    put(&gen, sizeof gen);
    messages++;
}

static void attr(uint16_t type, const void *data, uint16_t len) {
    struct nlattr a = {.nla_len = NLA_HDRLEN + len, .nla_type = type};
    char *at = batch + used;
    memcpy(at, &a, NLA_HDRLEN);
    memcpy(at + NLA_HDRLEN, data, len);
    used += NLA_ALIGN(NLA_HDRLEN + len);
    current->nlmsg_len = (uint32_t)(batch + used - (char *)current);
    for (int i = 0; i < depth; i++)
        nests[i]->nla_len = (uint16_t)(batch + used - (char *)nests[i]);
}

static void str(uint16_t type, const char *s) { attr(type, s, (uint16_t)strlen(s) + 1); }

static void be32(uint16_t type, uint32_t v) {
    v = htonl(v);
    attr(type, &v, sizeof v);
}

static void nest(uint16_t type) {
    struct nlattr a = {.nla_len = NLA_HDRLEN, .nla_type = type | NLA_F_NESTED};
    struct nlattr *at = put(&a, NLA_HDRLEN);
    nests[depth++] = at;
}

static void end_nest(void) { depth--; }

static void table_and_chain(const char *table) {
    begin(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK,
          NFPROTO_IPV4, 0);
    str(NFTA_TABLE_NAME, table);
    begin(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_ACK,
          NFPROTO_IPV4, 0);
    str(NFTA_CHAIN_TABLE, table);
    str(NFTA_CHAIN_NAME, "out");
    nest(NFTA_CHAIN_HOOK);
    be32(NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT);
    be32(NFTA_HOOK_PRIORITY, 0);
    end_nest();
    str(NFTA_CHAIN_TYPE, "filter");
}

static void rule_start(const char *table) {
    begin(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE,
          NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, NFPROTO_IPV4, 0);
    str(NFTA_RULE_TABLE, table);
    str(NFTA_RULE_CHAIN, "out");
    nest(NFTA_RULE_EXPRESSIONS);
}

static void expr_start(const char *name) {
    nest(NFTA_LIST_ELEM);
    str(NFTA_EXPR_NAME, name);
    nest(NFTA_EXPR_DATA);
}

static void expr_end(void) {
    end_nest();
    end_nest();
}

static void immediate(uint32_t reg, const void *value, uint16_t len) {
    expr_start("immediate");
    be32(NFTA_IMMEDIATE_DREG, reg);
    nest(NFTA_IMMEDIATE_DATA);
    attr(NFTA_DATA_VALUE, value, len);
    end_nest();
    expr_end();
}

/* Sends the batch and reads one acknowledgement per message that asked. */
static int send_batch(int fd, int connected) {
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t sent;
    if (connected)
        sent = connect(fd, (struct sockaddr *)&kernel, sizeof kernel) < 0
                   ? -1
                   : send(fd, batch, used, 0);
    else
        sent = sendto(fd, batch, used, 0, (struct sockaddr *)&kernel, sizeof kernel);
    if (sent < 0) {
        printf("batch: send: %s\n", strerror(errno));
        return -1;
    }
    int acks = messages - 2; /* the batch begin and end ask for none */
    static char reply[65536];
    while (acks > 0) {
        ssize_t n = recv(fd, reply, sizeof reply, 0);
        if (n < 0) {
            printf("batch: no answer: %s\n", strerror(errno));
            return -1;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)reply; NLMSG_OK(h, (size_t)n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type != NLMSG_ERROR)
                continue;
            int error = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
            if (error != 0) {
                printf("batch: message %u refused: %s\n", h->nlmsg_seq, strerror(-error));
                return -1;
            }
            acks--;
        }
    }
    printf("batch: ok\n");
    return 0;
}

/* Sends one datagram to 127.0.0.1:9999 and counts the copies that arrive. */
static int copies(void) {
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons(9999)};
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (rx < 0 || tx < 0 || bind(rx, (struct sockaddr *)&at, sizeof at) < 0) {
        printf("udp: %s\n", strerror(errno));
        return -1;
    }
    struct timeval wait = {.tv_sec = 0, .tv_usec = 500000};
    setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    sendto(tx, "mirror", 6, 0, (struct sockaddr *)&at, sizeof at);
    int n = 0;
    char buf[64];
    while (recv(rx, buf, sizeof buf, 0) > 0)
        n++;
    return n;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "count") != 0) {
        int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
        if (fd < 0) {
            printf("socket: %s\n", strerror(errno));
            return 1;
        }
        struct timeval wait = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
        begin(NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
        int tee = strcmp(mode, "tee") == 0 || strcmp(mode, "tee-odd") == 0;
        int odd = strcmp(mode, "dup-odd") == 0 || strcmp(mode, "tee-odd") == 0;
        /* x_tables' TEE may only be used in a table named mangle. */
        int manage = strcmp(mode, "manage") == 0;
        const char *table = tee ? "mangle" : manage && argc > 2 ? argv[2] : "sg";
        table_and_chain(table);
        rule_start(table);
        if (strcmp(mode, "dup") == 0 || strcmp(mode, "dup-odd") == 0) {
            struct in_addr gw = {htonl(0x7f000002)};
            uint32_t lo = if_nametoindex("lo");
            immediate(NFT_REG_1, &gw, sizeof gw);
            immediate(NFT_REG_2, &lo, sizeof lo);
            if (odd) {
                /* expr_start by hand: the name without its NUL, type 1 with
                 * NLA_F_NET_BYTEORDER. */
                nest(NFTA_LIST_ELEM);
                attr(NFTA_EXPR_NAME | NLA_F_NET_BYTEORDER, "dup", 3);
                nest(NFTA_EXPR_DATA);
            } else {
                expr_start("dup");
            }
            be32(NFTA_DUP_SREG_ADDR, NFT_REG_1);
            be32(NFTA_DUP_SREG_DEV, NFT_REG_2);
            expr_end();
        } else if (tee) {
            /* struct xt_tee_tginfo: gw (16), oif[16], priv pointer (8). */
            unsigned char info[40] = {0};
            struct in_addr gw = {htonl(0x7f000002)};
            memcpy(info, &gw, sizeof gw);
            memcpy(info + 16, "lo", 2);
            expr_start("target");
            if (odd)
                attr(NFTA_TARGET_NAME, "TEE\0odd", 8);
            else
                str(NFTA_TARGET_NAME, "TEE");
            be32(NFTA_TARGET_REV, 1);
            attr(NFTA_TARGET_INFO, info, sizeof info);
            expr_end();
        } else if (manage) {
            expr_start("counter");
            expr_end();
        } else {
            printf("usage: mirror dup|tee|manage|count\n");
            return 2;
        }
        end_nest();
        begin(NFNL_MSG_BATCH_END, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
        if (send_batch(fd, !manage && argc > 2 && strcmp(argv[2], "connected") == 0) < 0)
            return 1;
    }
    printf("copies %d\n", copies());
    return 0;
}
