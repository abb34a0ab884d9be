"""Attribution rules of profile_ops.py on a hand-written `perf script` excerpt.

    python3 tools/bench/test_profile_ops.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import profile_ops as P  # noqa: E402

# Main thread 10, pool worker 11; times in seconds, CPU periods in ns.
PERF_SCRIPT = """10/10 1.000: 1000 cpu-clock:
\t1 gemm_f32::kernel
\t2 candle_core::tensor::Tensor::matmul
\t3 <lumos_engine::models::dino::Attn as candle_core::Module>::forward
\t4 lumos_engine::bench::run

10/10 1.010: 1 sched:sched_switch:
\t1 __schedule
\t2 syscall
\t3 rayon_core::latch::LockLatch::wait
\t4 gemm::gemm::gemm
\t5 lumos_engine::models::fast_ops::DenseLinear::forward
\t6 lumos_engine::bench::run

10/11 1.020: 2000 cpu-clock:
\t1 gemm_f32::microkernel
\t2 gemm_common::gemm::gemm_basic_generic::{{closure}}
\t3 rayon_core::job::StackJob::execute

10/11 1.030: 3000 cpu-clock:
\t1 syscall
\t2 rayon_core::registry::WorkerThread::wait_until_cold

10/10 1.040: 4000 cpu-clock:
\t1 candle_core::utils::BarrierGuard::drop
\t2 candle_core::tensor::Tensor::add
\t3 lumos_engine::models::dino::Block::forward

10/10 1.050: 5000 cpu-clock:
\t1 rand_chacha::refill
\t2 candle_nn::init::Init::var
\t3 lumos_engine::models::dino::Block::load

10/10 1.060: 6000 cpu-clock:
\t1 clap_builder::parser::Parser::parse
\t2 lumos::main
"""


class AttributionTest(unittest.TestCase):
    def test_each_rule(self):
        pid, main, workers = P.parse_perf_script(PERF_SCRIPT)
        self.assertEqual((pid, len(main), len(workers)), (10, 5, 2))
        profile = P.attribute(main, workers, runs=0)
        self.assertEqual(
            dict(profile.by_op),
            {
                # The candle op the engine called.
                "Tensor::matmul": 1000,
                # A worker's GEMM belongs to the op the main thread went to sleep in.
                "fast_ops::DenseLinear::forward": 2000,
                # A worker parked in its pool.
                P.IDLE_WORKER: 3000,
                # The main thread spinning at candle's barrier.
                "Tensor::add" + P.WAITING: 4000,
            },
        )
        spin = ("Tensor::add" + P.WAITING, "dino::Block::forward")
        self.assertEqual(profile.by_op_and_caller[spin], 4000)
        self.assertEqual(profile.setup_ns, 11000)  # random weights and argument parsing
        self.assertEqual(profile.other_ns, 0)

    def test_the_thread_running_the_bench_is_the_main_one(self):
        # The CLI's command on pool thread 12 while the process's first thread (10) sleeps.
        script = PERF_SCRIPT.replace("10/10 ", "10/12 ").replace("10/11 ", "10/13 ")
        script = "10/10 0.500: 700 cpu-clock:\n\t1 clap_builder::parser::Parser::parse\n\n" + script
        pid, main, workers = P.parse_perf_script(script)
        self.assertEqual((pid, len(main), len(workers)), (10, 5, 3))
        profile = P.attribute(main, workers, runs=0)
        self.assertEqual(profile.by_op["fast_ops::DenseLinear::forward"], 2000)
        # Before the bench's first event: neither setup nor timed.
        self.assertEqual(profile.other_ns, 700)

    def test_clean_names(self):
        add = "<candle_core::tensor::Tensor as core::ops::arith::Add<B>>::add"
        self.assertEqual(P.clean(add), "Tensor::add")
        conv = "lumos_engine::models::winograd::WinogradConv3x3::forward"
        self.assertEqual(P.clean(conv), "winograd::WinogradConv3x3::forward")


class TimedRuns(unittest.TestCase):
    def test_the_runs_the_bench_made_not_the_runs_asked(self):
        lines = [
            "DINO ViT-B/16, 224 px  median 0.194 s  181.4 GFLOP/s  cpu 0.37 s  (35.1 GFLOP; runs [0.194, 0.276, 0.19])",
        ]
        self.assertEqual(P.timed_runs(lines, 1), 3)
        self.assertEqual(P.timed_runs([], 5), 5)


if __name__ == "__main__":
    unittest.main()
