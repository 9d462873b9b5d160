#!/usr/bin/env python3
"""Tests of bench/isolate.py: its aggregates, its handling of a failing case, and a run over
the futures benchmark binary given as the first argument (with --smoke)."""

import json
import os
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import isolate  # noqa: E402

BINARY = None


def run(fields):
    base = {"name": "x/pooled", "run_name": "x/pooled", "run_type": "iteration", "repetitions": 3,
            "repetition_index": 0, "threads": 1, "iterations": 100, "time_unit": "ns"}
    return {**base, **fields}


class AggregateTest(unittest.TestCase):
    def test_each_time_and_counter_is_folded_on_its_own(self):
        runs = [run({"real_time": 9.0, "cpu_time": 5.0, "items": 64.0}),
                run({"real_time": 7.0, "cpu_time": 6.0, "items": 64.0}),
                run({"real_time": 8.0, "cpu_time": 4.0, "items": 64.0})]
        fastest = isolate.aggregate(runs, "min")
        self.assertEqual((fastest["real_time"], fastest["cpu_time"], fastest["items"]), (7.0, 4.0, 64.0))
        self.assertEqual(fastest["name"], "x/pooled_min")
        self.assertEqual((fastest["run_type"], fastest["aggregate_name"]), ("aggregate", "min"))
        self.assertNotIn("repetition_index", fastest)
        middle = isolate.aggregate(runs, "median")
        self.assertEqual((middle["real_time"], middle["cpu_time"]), (8.0, 5.0))
        self.assertEqual(isolate.aggregate(runs, "stddev")["items"], 0.0)


FAKE_BINARY = """#!/usr/bin/env python3
import json, sys
cases = ["good/pooled", "bad/pooled"]
if "--benchmark_list_tests=true" in sys.argv:
    print("\\n".join(cases))
    sys.exit(0)
name = next(a for a in sys.argv if a.startswith("--benchmark_filter=")).split("=", 1)[1].strip("^$")
if name.startswith("bad"):
    print("the case broke", file=sys.stderr)
    sys.exit(3)
print(json.dumps({"context": {}, "benchmarks": [{"name": name, "run_name": name, "run_type": "iteration",
      "iterations": 1, "real_time": 1.0, "cpu_time": 1.0, "time_unit": "ns"}]}))
"""


class FailureTest(unittest.TestCase):
    def test_a_failing_case_fails_the_run_and_names_the_case(self):
        with tempfile.TemporaryDirectory() as tmp:
            fake = os.path.join(tmp, "fake_bench")
            with open(fake, "w") as f:
                f.write(FAKE_BINARY)
            os.chmod(fake, os.stat(fake).st_mode | stat.S_IXUSR)
            out = os.path.join(tmp, "out.json")
            result = subprocess.run([sys.executable, os.path.join(HERE, "isolate.py"), "--repetitions", "2",
                                     "--out", out, "--", fake], capture_output=True, text=True)
            self.assertNotEqual(result.returncode, 0)
            self.assertIn("bad/pooled failed (exit 3)", result.stderr)
            self.assertIn("the case broke", result.stderr)
            self.assertFalse(os.path.exists(out))


class BinaryTest(unittest.TestCase):
    def test_every_case_of_the_binary_is_aggregated_over_its_repetitions(self):
        if BINARY is None:
            self.skipTest("no benchmark binary given")
        cases = subprocess.run([BINARY, "--benchmark_list_tests=true"], capture_output=True, text=True,
                               check=True).stdout.split()
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.json")
            subprocess.run([sys.executable, os.path.join(HERE, "isolate.py"), "--repetitions", "2", "--out", out,
                            "--", BINARY, "--smoke"], check=True, capture_output=True)
            with open(out) as f:
                data = json.load(f)
        self.assertIn("isolation", data["context"])
        for case in cases:
            aggregates = {b["aggregate_name"]: b for b in data["benchmarks"] if b["run_name"] == case}
            self.assertEqual(set(aggregates), {"mean", "median", "stddev", "min"}, case)
            self.assertTrue(all(b["run_type"] == "aggregate" and b["repetitions"] == 2 for b in aggregates.values()))
            self.assertLessEqual(aggregates["min"]["cpu_time"], aggregates["median"]["cpu_time"], case)
            self.assertGreater(aggregates["min"]["cpu_time"], 0, case)


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        BINARY = sys.argv.pop(1)
    unittest.main()
