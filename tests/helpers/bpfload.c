/* bpfload xdp|socket|cgroup|map: loads a two-instruction eBPF program
 * (`r0 = 1; exit`: a return value every one of these types accepts; the
 * program is loaded, never attached) of the type named, with the
 * raw bpf(2) system call: no libbpf, no bpftool (a static program any name
 * could have). Prints "TYPE: loaded" or "TYPE: <strerror>".
 * `cgroup` loads a BPF_PROG_TYPE_CGROUP_SKB program, which cannot capture;
 * `map` creates an array map instead (BPF_MAP_CREATE, another command).
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "xdp";
    if (strcmp(name, "map") == 0) {
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.map_type = BPF_MAP_TYPE_ARRAY;
        attr.key_size = 4;
        attr.value_size = 4;
        attr.max_entries = 1;
        long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
        printf("map: %s\n", fd < 0 ? strerror(errno) : "created");
        return fd < 0;
    }
    uint32_t type = BPF_PROG_TYPE_XDP;
    if (strcmp(name, "socket") == 0)
        type = BPF_PROG_TYPE_SOCKET_FILTER;
    else if (strcmp(name, "cgroup") == 0)
        type = BPF_PROG_TYPE_CGROUP_SKB;
    struct bpf_insn program[2] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = type;
    attr.insn_cnt = 2;
    attr.insns = (uint64_t)(uintptr_t)program;
    attr.license = (uint64_t)(uintptr_t)"GPL";
    long fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
    printf("%s: %s\n", name, fd < 0 ? strerror(errno) : "loaded");
    return fd < 0;
}
