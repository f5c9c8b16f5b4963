#!/usr/bin/env python3
"""Where the time of the bench's big-mesh run goes, phase by phase.

Drives one `bank-master` through a pipe with the command file of `cargo bench --bench
e2e`'s "N nodes: create, snapshot, ReceiveAll" figure, with a barrier after each phase
(`Check` answers only once every node has run every command given before it), and prints
for each phase its wall time and the CPU time of the master and of the children (every
thread's `schedstat`, in ns), and their context switches (voluntary: a process that
waited and was woken). The last phase (KillAll) is read from `wait4`'s rusage, which
counts the reaped children.

    scripts/scale-phases.py 256 [--bin target/release/bank-master] [--runs 3]
    scripts/scale-phases.py 256 --perf create,ReceiveAll --perf-out n256

`--perf PHASE[,PHASE…]` samples the whole machine (`perf record -a -g -e cpu-clock`)
during each phase whose name starts with PHASE, into OUT-PHASE.data, each recorder
enabled and disabled through perf's control fifo (so the sampling window is the phase,
with no guessing); `scripts/perf-buckets.py OUT-PHASE.data` splits it; or read it with
`perf report -i FILE --comm exe` (the nodes: they run /proc/self/exe) or
`--comm bank-master` (the master), with `--pid $(cat FILE.pids)`: the pids of this run
(other people's runs of the same binary on the machine are in the samples too).

The barriers keep phases from overlapping, so the total is a little above the bench's
single figure. The script also checks that the stdout lines the run prints (the
snapshot block) are those of the plain command file, and prints their md5.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import time


def tasks_of(pids):
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                yield pid, tid
        except FileNotFoundError:
            pass


def children_of(master):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == master:
            kids.append(int(d))
    return kids


def sample(master, kids):
    """(master cpu ns, children cpu ns, master switches, children switches)."""
    out = [0, 0, 0, 0]
    for group, pids in ((0, [master]), (1, kids)):
        for pid, tid in tasks_of(pids):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    out[group] += int(f.read().split()[0])
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            out[2 + group] += int(line.split()[1])
            except (FileNotFoundError, ProcessLookupError):
                pass
    return out


def read_lines(out, n):
    lines = []
    for _ in range(n):
        line = out.readline()
        if not line:
            raise SystemExit(f"bank-master ended early after {len(lines)} lines")
        lines.append(line)
    return lines


class Perf:
    """`perf record -a` started disabled, switched on and off around one phase."""

    def __init__(self, out):
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="scale-phases-")
        self.ctl, self.ack = f"{self.dir}/ctl", f"{self.dir}/ack"
        os.mkfifo(self.ctl)
        os.mkfifo(self.ack)
        self.proc = subprocess.Popen(
            ["perf", "record", "-a", "--call-graph", os.environ.get("PERF_CALLGRAPH", "fp"),
             "-e", "cpu-clock", "-F", "999", "-D", "-1",
             "--control", f"fifo:{self.ctl},{self.ack}", "-o", out],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.w = open(self.ctl, "w")
        self.r = open(self.ack)

    def command(self, what):
        self.w.write(what + "\n")
        self.w.flush()
        self.r.readline()  # perf acks each command

    def stop(self):
        import shutil
        import signal

        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()
        self.w.close()
        self.r.close()
        shutil.rmtree(self.dir)


def run(binary, n, perf_phases=(), perf_out="phase"):
    p = subprocess.Popen(
        [binary, "--seed", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    printed = []
    phases = []
    t0 = time.monotonic()
    last = (t0, [0, 0, 0, 0])

    perfs = {ph: Perf(f"{perf_out}-{ph}.data") for ph in perf_phases}
    armed = [None]

    def arm(next_name):
        for ph, perf in perfs.items():
            if next_name.startswith(ph):
                perf.command("enable")
                armed[0] = perf

    def mark(name, kids):
        nonlocal last
        now = time.monotonic()
        if armed[0]:
            armed[0].command("disable")
            armed[0] = None
        s = sample(p.pid, kids)
        phases.append((name, now - last[0], [a - b for a, b in zip(s, last[1])]))
        last = (now, s)

    def send(text):
        p.stdin.write(text)
        p.stdin.flush()

    arm("start")
    send("StartMaster\nCheck\n")
    read_lines(p.stdout, 1)
    kids = children_of(p.pid)
    mark("start: process, StartMaster", kids)
    arm("create")
    send("".join(f"CreateNode {i} 1000\n" for i in range(1, n + 1)) + "Check\n")
    read_lines(p.stdout, 1)
    kids = children_of(p.pid)
    seen = kids[:]
    mark(f"create {n} nodes (mesh up)", kids)
    arm("Send")
    send(f"Send 1 {n} 10\nBeginSnapshot 7\n")
    printed += read_lines(p.stdout, 1)
    mark("Send, BeginSnapshot", kids)
    arm("ReceiveAll")
    send("ReceiveAll\nCheck\n")
    read_lines(p.stdout, 1)
    mark(f"ReceiveAll ({n * (n - 1)} markers)", kids)
    arm("CollectState")
    send("CollectState\nPrintSnapshot\n")
    printed += read_lines(p.stdout, 2 + n + n * (n - 1))
    mark("CollectState, PrintSnapshot", kids)
    before = last[1]
    t_kill = time.monotonic()
    arm("KillAll")
    send("KillAll\n")
    p.stdin.close()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    total_cpu = int((ru.ru_utime + ru.ru_stime) * 1e9)
    # wait4 counts the master and every child it reaped; what the phases saw before is
    # subtracted (switches: rusage counts voluntary ones as ru_nvcsw).
    if armed[0]:
        armed[0].command("disable")
    for ph, perf in perfs.items():
        perf.stop()
        with open(f"{perf_out}-{ph}.data.pids", "w") as f:
            f.write(",".join(str(x) for x in [p.pid] + seen))
    kill_cpu = total_cpu - before[0] - before[1]
    phases.append(("KillAll, exit", time.monotonic() - t_kill, [kill_cpu, 0, ru.ru_nvcsw - before[2] - before[3], 0]))
    digest = hashlib.md5("".join(printed).encode()).hexdigest()
    return phases, time.monotonic() - t0, digest, p.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("--bin", default="target/release/bank-master")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--perf", metavar="PHASE,...", default="",
                    help="sample these phases with perf record -a")
    ap.add_argument("--perf-out", default="phase", help="the files' prefix: OUT-PHASE.data")
    args = ap.parse_args()
    phases_to_sample = [p for p in args.perf.split(",") if p]
    for r in range(args.runs):
        phases, wall, digest, code = run(args.bin, args.n, phases_to_sample, args.perf_out)
        print(f"run {r + 1}: {args.n} nodes, {wall * 1000:.0f} ms wall, exit {code}, stdout md5 {digest}")
        print(f"  {'phase':34} {'wall ms':>8} {'master cpu':>10} {'nodes cpu':>10} {'master sw':>9} {'nodes sw':>9}")
        for name, w, (mc, kc, ms, ks) in phases:
            if name.startswith("KillAll"):
                print(f"  {name:34} {w * 1000:8.0f} {'(all) ' + format(mc / 1e6, '.0f'):>21} {'(all) ' + str(ms):>19}")
            else:
                print(f"  {name:34} {w * 1000:8.0f} {mc / 1e6:10.0f} {kc / 1e6:10.0f} {ms:9} {ks:9}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
