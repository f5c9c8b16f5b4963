#!/usr/bin/env python3
"""Splits the CPU samples of one `scale-phases.py --perf` phase into disjoint buckets.

    scripts/perf-buckets.py PHASE.data            (reads PHASE.data.pids beside it)

Each sample of the run's processes (the master: the first pid; the children: the rest,
which include a child between its fork and its exec) goes to the first bucket its call
chain matches, read from the outermost frame in: a system call by its kernel entry
point, a page fault, a process exit (a SIGKILLed node closing its sockets), the dynamic
loader; else to "user code" (the samples' own frames: the kernel's frame pointers are
reliable, the release build's user stacks are not). Prints milliseconds (samples at
999 Hz: one sample is about 1 ms of one CPU) and shares, master and children apart.
"""

import collections
import subprocess
import sys

# (bucket, any of these symbols in the chain); the first match wins, chains are read
# from the outermost frame.
RULES = [
    ("process exit (close every socket)", ["do_exit", "do_group_exit"]),
    ("fork (clone)", ["__do_sys_clone", "__do_sys_clone3", "ret_from_fork"]),
    ("exec + dynamic loader", ["__x64_sys_execve", "_dl_start", "_dl_start_user", "_dl_sysdep_start",
                               "_dl_relocate_object", "_dl_map_object", "dl_main"]),
    ("socket + connect", ["__x64_sys_socket", "__x64_sys_connect", "__x64_sys_socketpair"]),
    ("accept", ["__x64_sys_accept4", "__x64_sys_accept"]),
    ("epoll_ctl (register a link)", ["__x64_sys_epoll_ctl"]),
    ("fcntl (non-blocking)", ["__x64_sys_fcntl"]),
    ("send (write a frame)", ["__x64_sys_sendto", "__x64_sys_write", "__x64_sys_writev", "__x64_sys_sendmsg"]),
    ("recv (read frames)", ["__x64_sys_recvfrom", "__x64_sys_recvmsg"]),
    ("epoll_wait / poll (sleep, wake)", ["__x64_sys_epoll_wait", "__x64_sys_epoll_pwait", "__x64_sys_poll",
                                          "__x64_sys_ppoll"]),
    ("close (a link)", ["__x64_sys_close"]),
    ("wait4 (reap a child)", ["__do_sys_wait4", "__x64_sys_wait4"]),
    ("kill", ["__x64_sys_kill"]),
    ("open/write the logs", ["__x64_sys_openat", "__x64_sys_pwrite64", "__x64_sys_fdatasync", "__x64_sys_fsync"]),
    ("mmap/munmap/brk/mprotect", ["__x64_sys_mmap", "ksys_mmap_pgoff", "vm_mmap_pgoff", "__x64_sys_munmap",
                                  "__do_sys_brk", "__x64_sys_brk", "__x64_sys_mprotect", "__x64_sys_mremap"]),
    ("read (files: the loader; stdin)", ["__x64_sys_read", "ksys_read"]),
    ("page fault", ["asm_exc_page_fault", "exc_page_fault"]),
    ("interrupts, scheduler", ["exit_to_user_mode_loop", "asm_sysvec_apic_timer_interrupt", "asm_common_interrupt", "schedule",
                               "__schedule"]),
    ("other system call", ["do_syscall_64"]),
]


def main():
    data = sys.argv[1]
    pids = [int(p) for p in open(data + ".pids").read().split(",")]
    master, mine = pids[0], set(pids)
    out = subprocess.run(
        ["perf", "script", "-i", data, "-F", "pid,ip,sym"],
        capture_output=True, text=True, check=True,
    ).stdout
    counts = {"master": collections.Counter(), "children": collections.Counter()}
    user = {"master": collections.Counter(), "children": collections.Counter()}
    pid, chain = None, []

    def flush():
        if pid is None or pid not in mine:
            return
        who = "master" if pid == master else "children"
        outer_first = list(reversed(chain))
        for name, syms in RULES:
            if any(s in syms for s in outer_first):
                counts[who][name] += 1
                return
        counts[who]["user code"] += 1
        if chain:
            user[who][chain[0]] += 1

    for line in out.splitlines():
        if not line.strip():
            flush()
            pid, chain = None, []
            continue
        if not line.startswith((" ", "\t")):
            flush()
            pid, chain = int(line.split()[0]), []
        else:
            parts = line.split(None, 1)
            if len(parts) == 2:
                chain.append(parts[1].split("+")[0].strip())
    flush()
    for who in ("master", "children"):
        total = sum(counts[who].values())
        if not total:
            continue
        print(f"{who}: {total} samples (~{total} ms of CPU at 999 Hz)")
        for name, n in counts[who].most_common():
            print(f"  {name:40} {n:7} {100 * n / total:5.1f}%")
        print("  user code, by function:")
        for sym, n in user[who].most_common(8):
            print(f"    {sym[:90]:90} {n:6}")


if __name__ == "__main__":
    main()
