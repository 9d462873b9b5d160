#!/usr/bin/env python3
"""Prints a large C++ translation unit for the analyzer's robustness and cost tests.

  generate_large.py [LINES]        about LINES lines shaped like a large UDF source
                                   file: mostly ordinary code, a continuation chain
                                   every few hundred lines, and one UDF with a sync
                                   access at the very end (which must still be found)
  generate_large.py --lambdas N    one UDF member with N lambdas stored in locals and
                                   attached as continuations (the shape whose cost
                                   once grew quadratically), then the same sync access
"""
import sys

TAIL = [
    "class Large : public KeyedProcessFunction<int, int, int> {",
    " public:",
    "  void processElement(const int& v, Context&, Collector<int>& out) override {",
    "    out.collect(state_->value().value_or(v));",
    "  }",
    " private:",
    "  ValueState<int>* state_ = nullptr;",
    "};",
]


def lines_file(lines):
    out = ["#include <asyncstate/asyncstate.hpp>", "using namespace asyncstate;"]
    i = 0
    while len(out) < lines - 12:
        out += [
            f"inline int helper{i}(int x) {{",
            "  int total = 0;",
            "  for (int k = 0; k < x; ++k) {",
            "    total += (k % 3 == 0) ? k : -k;",
            "  }",
            f"  return total + {i};",
            "}",
        ]
        if i % 40 == 0:
            out += [
                f"inline void chain{i}(ValueState<int>& s) {{",
                f"  (void)s.asyncValue().thenAccept([](std::optional<int> v) {{ (void)helper{i}(v.value_or(0)); }});",
                "}",
            ]
        i += 1
    return out + TAIL


def lambdas_file(count):
    out = ["#include <asyncstate/asyncstate.hpp>", "using namespace asyncstate;",
           "inline void many(ValueState<int>& s, int base) {"]
    for i in range(count):
        out.append(f"  auto onValue{i} = [base](std::optional<int> v) {{ (void)(v.value_or({i}) + base); }};")
    for i in range(count):
        out.append(f"  (void)s.asyncValue().thenAccept(onValue{i});")
    out.append("}")
    return out + TAIL


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--lambdas":
        print("\n".join(lambdas_file(int(sys.argv[2]))))
    else:
        print("\n".join(lines_file(int(sys.argv[1]) if len(sys.argv) > 1 else 50000)))


if __name__ == "__main__":
    main()
