#!/usr/bin/env python3
"""Where the CPU time of `lumos bench` goes: a per-op profile of each workload, from perf samples.

    python3 tools/bench/profile_ops.py [--lumos [LABEL=]BIN ...] [--only prior encoder vae default]

runs `BIN bench --only WORKLOAD` under `perf record --call-graph dwarf` for each workload and each
binary, and prints Markdown tables: the CPU milliseconds per run of each op, side by side for the
binaries given (e.g. `--lumos before=old/lumos --lumos after=target/release/lumos`).

Why perf rather than timers inside the engine: sampling needs no code in the hot path, so it
profiles any build unchanged, an old commit's included (the before of a before/after); and a
sample's call stack names both the op (the candle call, or the engine's own kernel) and the
engine layer that called it. It needs `perf` (Debian: linux-perf) and the scheduler's
tracepoints (root, or `/proc/sys/kernel/perf_event_paranoid` at -1); a release build (`cargo
build --release -p lumos-engine --bin lumos`) is what `lumos bench` figures are quoted for.

How samples are attributed ("main thread": the thread that runs the bench, a pool thread since the
CLI runs its commands on one, see `parse_perf_script`):
- Phase: a main-thread sample is setup when its stack is in model loading or random weights, timed
  when it is in the engine otherwise (not only under `lumos_engine::bench`: a deep stack is cut
  at `--stack-bytes` before it reaches the bench). Worker threads' stacks end in the thread pool,
  so a worker sample takes the phase and op of the main thread's latest event: perf records the
  main thread's stack each time it stops running (`sched:sched_switch`), and while the pools
  work the main thread sleeps inside the op that handed them the work (a GEMM) or spins at its
  barrier. Only timed samples are reported; they cover the warm-up and the timed runs, so CPU
  time per run is their total over `runs + 1` — the runs the bench made, read from its output
  (`--runs` is a minimum: a short workload runs until its runs span 2 s).
- Op: the innermost engine frame's callee when that is candle (`Tensor::matmul`,
  `ops::softmax_last_dim`, ...), else that engine frame itself (the engine's own kernels:
  `DenseLinear::forward`, the Winograd transforms). Main-thread time spent waiting for the
  pools (spinning at candle's barrier, asleep in rayon) is the op's "[waiting for the pool]"
  row: on a machine whose CPUs are stolen by other guests it grows, since a descheduled worker
  holds everyone at the barrier. A worker parked in its pool, not running a job, counts as
  "worker threads idle".

CPU time, not wall time: on 2 cores an op running on both threads for 1 ms costs 2 ms here.
Percentages survive a busy or stolen CPU far better than `lumos bench`'s seconds do, but a quiet
machine is still the one to quote.
"""

from __future__ import annotations

import argparse
import bisect
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field

WORKLOADS = ["prior", "encoder", "vae", "default"]

SETUP_FRAME = re.compile(
    r"lumos_engine::.*::load\b|RandomWeights|random_vb|candle_nn::init::|candle_nn::var_map|"
    r"rand_normal|rand_uniform|clap_builder|decode_image|default_spec"
)
# The bench itself: its thread is the one whose events the others are attributed to.
BENCH_FRAME = re.compile(r"^<?lumos_engine::bench::")
# The engine's own functions (not generic library code instantiated with an engine type).
ENGINE_FRAME = re.compile(r"^<?lumos_engine::")
# A candle call made by the engine, the op of the sample; candle's custom-op wrapper is not one
# (the engine's own kernel inside it is).
CANDLE_OP_FRAME = re.compile(r"^<?candle_(core|nn)::(?!custom_op::)")
# Frames of a pool thread running work: rayon's jobs, candle's barrier-pool trampoline, gemm.
WORKING_FRAME = re.compile(r"Job.*execute|call_trampoline|gemm")
# Where a thread waits for others: candle's barrier pool spinning, rayon's sleep and latches,
# and the system calls that park a thread.
WAIT_FRAME = re.compile(r"BarrierGuard|wait_until|Sleep::|Latch|sched_yield|futex|^syscall$")
WAITING = " [waiting for the pool]"
IDLE_WORKER = "(worker threads idle)"


@dataclass
class Sample:
    time: float
    period_ns: int  # CPU time the sample stands for; 0 for a switch-out
    frames: list[str]  # leaf first


@dataclass
class Profile:
    """Timed CPU nanoseconds per (op, engine caller), and how many runs they cover."""

    runs: int
    by_op_and_caller: Counter = field(default_factory=Counter)
    setup_ns: int = 0
    other_ns: int = 0
    bench_lines: list[str] = field(default_factory=list)

    @property
    def by_op(self) -> Counter:
        """Timed CPU nanoseconds per op, over all its callers."""
        totals: Counter = Counter()
        for (op, _), ns in self.by_op_and_caller.items():
            totals[op] += ns
        return totals

    def timed_ns(self) -> int:
        return sum(self.by_op_and_caller.values())


def clean(symbol: str) -> str:
    """`<candle_core::tensor::Tensor as core::ops::arith::Add<B>>::add` → `Tensor::add`."""
    trait_impl = re.match(r"^<(.+?) as .+>::(\w+)$", symbol)
    if trait_impl:
        symbol = f"{trait_impl.group(1)}::{trait_impl.group(2)}"
    while True:  # generic arguments, innermost first
        stripped = re.sub(r"<[^<>]*>", "", symbol)
        if stripped == symbol:
            break
        symbol = stripped
    symbol = symbol.replace("{{closure}}", "closure")
    parts = [p for p in symbol.split("::") if p]
    for prefix in ("lumos_engine", "candle_core", "candle_nn", "models"):
        if parts and parts[0] == prefix:
            parts = parts[1:]
    if len(parts) > 1 and parts[0] in ("tensor", "cpu_backend", "tensor_cat"):
        parts = parts[1:]
    return "::".join(parts[-3:]) or symbol


def parse_perf_script(text: str) -> tuple[int, list[Sample], list[Sample]]:
    """Events of `perf script -F pid,tid,time,period,event,ip,sym`: (pid, main thread, workers).

    `cpu-clock` samples carry CPU time; `sched:sched_switch` events (a thread going to sleep or
    being preempted) carry none but say what the main thread was doing when it stopped running.
    The "main thread" is the one that runs the bench: the thread with the most events inside
    `lumos_engine::bench` (since 2026-12-02 the CLI runs its command on a pool thread,
    `device::on_compute_threads`, while the process's first thread sleeps), else the first
    thread.
    """
    events: list[tuple[int, Sample]] = []
    pid = None
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        header = re.match(r"^\s*(\d+)/(\d+)\s+([\d.]+):\s+(\d+)\s+(\S+):", lines[0])
        if not header:
            continue
        sample_pid, tid = int(header.group(1)), int(header.group(2))
        pid = pid or sample_pid
        frames = []
        for line in lines[1:]:
            parts = line.strip().split(None, 1)
            frames.append(parts[1] if len(parts) > 1 else "[unknown]")
        on_cpu = header.group(5).startswith("cpu-clock")
        sample = Sample(float(header.group(3)), int(header.group(4)) if on_cpu else 0, frames)
        events.append((tid, sample))
    in_bench = Counter(
        tid for tid, sample in events if any(BENCH_FRAME.match(f) for f in sample.frames)
    )
    driver = in_bench.most_common(1)[0][0] if in_bench else pid
    main = [sample for tid, sample in events if tid == driver]
    workers = [sample for tid, sample in events if tid != driver]
    return pid or 0, main, workers


def main_thread_phase_and_op(frames: list[str]) -> tuple[str, str, str]:
    """("setup" | "timed" | "other", op, innermost engine frame) of a main-thread stack."""
    if any(SETUP_FRAME.search(f) for f in frames):
        return "setup", "", ""
    engine = next((i for i, f in enumerate(frames) if ENGINE_FRAME.match(f)), None)
    if engine is None:
        return "other", "", ""
    caller = clean(frames[engine])
    op = caller
    if engine > 0 and CANDLE_OP_FRAME.match(frames[engine - 1]):
        op = clean(frames[engine - 1])
    return "timed", op, caller


def is_waiting(frames: list[str]) -> bool:
    """Whether a main-thread stack waits for the pools rather than computing: spinning at candle's
    barrier, or asleep until rayon's workers finish."""
    for frame in frames:
        if WAIT_FRAME.search(frame):
            return True
        if "::" in frame:  # the innermost Rust frame, below any kernel or libc frames
            return False
    return False


def worker_is_idle(frames: list[str]) -> bool:
    """A pool thread parked or spinning, not inside a job."""
    return not any(WORKING_FRAME.search(f) for f in frames)


def attribute(main: list[Sample], workers: list[Sample], runs: int) -> Profile:
    profile = Profile(runs=runs)
    main.sort(key=lambda s: s.time)
    main_times = [s.time for s in main]
    main_labels = [main_thread_phase_and_op(s.frames) for s in main]

    def add(label: tuple[str, str, str], period_ns: int, op_override: str | None = None):
        phase, op, caller = label
        if phase == "setup":
            profile.setup_ns += period_ns
        elif phase == "other":
            profile.other_ns += period_ns
        else:
            op = op_override or op
            profile.by_op_and_caller[(op, "" if op == IDLE_WORKER else caller)] += period_ns

    for sample, label in zip(main, main_labels):
        if sample.period_ns:
            waiting = label[0] == "timed" and is_waiting(sample.frames)
            add(label, sample.period_ns, label[1] + WAITING if waiting else None)
    for sample in workers:
        if sample.period_ns == 0:
            continue
        # The main thread's latest event: its op while it runs, or the op it sleeps in while the
        # pools work for it.
        latest = bisect.bisect_right(main_times, sample.time) - 1
        if latest < 0:
            profile.other_ns += sample.period_ns
            continue
        idle = IDLE_WORKER if worker_is_idle(sample.frames) else None
        add(main_labels[latest], sample.period_ns, idle)
    return profile


def record(binary: str, workload: str, runs: int, freq: int, stack_bytes: int) -> Profile:
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        command = [
            # Every switch (`-c 1`: a tracepoint sampled by frequency drops most of them, and
            # then workers' samples land on a stale main-thread op); CPU time at `freq`.
            "perf", "record", "-q", "-c", "1", "-e", f"cpu-clock/freq={freq}/",
            "-e", "sched:sched_switch", "--call-graph", f"dwarf,{stack_bytes}",
            "-o", data, "--", binary, "bench", "--only", workload, "--runs", str(runs),
        ]  # fmt: skip
        bench = subprocess.run(command, capture_output=True, text=True)
        if bench.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{bench.stdout}{bench.stderr}")
        script = subprocess.run(
            ["perf", "script", "-i", data, "-F", "pid,tid,time,period,event,ip,sym", "--no-inline"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    _, main, workers = parse_perf_script(script)
    bench_lines = [line for line in bench.stdout.splitlines() if "median" in line]
    profile = attribute(main, workers, timed_runs(bench_lines, runs))
    profile.bench_lines = bench_lines
    return profile


def timed_runs(bench_lines: list[str], asked: int) -> int:
    """The timed runs a bench made (its `runs [..]` lists; `--runs` is a minimum)."""
    counts = [
        len(m.group(1).split(","))
        for line in bench_lines
        if (m := re.search(r"runs \[([^\]]*)\]", line))
    ]
    return max(counts, default=asked)


def ms_per_run(profile: Profile, ns: int) -> float:
    return ns / 1e6 / (profile.runs + 1)


def table(workload: str, profiles: dict[str, Profile], top: int) -> str:
    labels = list(profiles)
    out = [f"### {workload}", ""]
    for label, p in profiles.items():
        for line in p.bench_lines:
            out.append(f"- {label}: `{' '.join(line.split())}`")
        out.append(
            f"- {label}: timed CPU {ms_per_run(p, p.timed_ns()):.0f} ms per run "
            f"(setup {p.setup_ns / 1e9:.1f} s and other {p.other_ns / 1e9:.1f} s not counted)"
        )
    out.append("")
    for title, key in (("op", "by_op"), ("op ← engine caller", "by_op_and_caller")):
        tables = {label: getattr(p, key) for label, p in profiles.items()}
        totals: Counter = Counter()
        for label, p in profiles.items():
            for k, ns in tables[label].items():
                totals[k] = max(totals[k], ms_per_run(p, ns))
        rows = [k for k, _ in totals.most_common(top)]
        header = " | ".join(f"{label} ms/run (%)" for label in labels)
        out += [f"| {title} | {header} |", "|---" * (len(labels) + 1) + "|"]
        for k in rows:
            if isinstance(k, str) or k[1] in ("", k[0]):
                name = k if isinstance(k, str) else k[0]
            else:
                name = f"{k[0]} ← {k[1]}"
            cells = []
            for label, p in profiles.items():
                ns = tables[label].get(k, 0)
                share = 100.0 * ns / max(p.timed_ns(), 1)
                cells.append(f"{ms_per_run(p, ns):.0f} ({share:.1f} %)" if ns else "—")
            out.append(f"| `{name}` | " + " | ".join(cells) + " |")
        rest = []
        for label, p in profiles.items():
            counted = sum(tables[label].get(k, 0) for k in rows)
            rest.append(f"{ms_per_run(p, p.timed_ns() - counted):.0f}")
        out += ["| the rest | " + " | ".join(rest) + " |", ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lumos",
        action="append",
        help="[LABEL=]path of a lumos binary; repeat to compare (default target/release/lumos)",
    )
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=WORKLOADS)
    parser.add_argument("--runs", type=int, default=3, help="timed runs (after one warm-up)")
    parser.add_argument("--freq", type=int, default=99, help="samples per second per thread")
    parser.add_argument("--stack-bytes", type=int, default=8192, help="stack copied per sample")
    parser.add_argument("--top", type=int, default=15, help="rows per table")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        sys.exit("perf is not installed (Debian: apt-get install linux-perf)")
    binaries = {}
    for spec in args.lumos or ["target/release/lumos"]:
        label, _, path = spec.rpartition("=")
        binaries[label or os.path.basename(path)] = path
    for path in binaries.values():
        if not os.access(path, os.X_OK):
            sys.exit(f"{path}: no such executable (cargo build --release -p lumos-engine)")
    for workload in args.only:
        profiles = {
            label: record(path, workload, args.runs, args.freq, args.stack_bytes)
            for label, path in binaries.items()
        }
        print(table(workload, profiles, args.top), flush=True)


if __name__ == "__main__":
    main()
