#!/usr/bin/env python3
"""Prints a C++ translation unit of about N lines, shaped like a large UDF source
file: mostly ordinary code, a continuation chain every few hundred lines, and one
UDF with a sync access at the very end (which must still be found)."""
import sys

lines = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
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
out += [
    "class Large : public KeyedProcessFunction<int, int, int> {",
    " public:",
    "  void processElement(const int& v, Context&, Collector<int>& out) override {",
    "    out.collect(state_->value().value_or(v));",
    "  }",
    " private:",
    "  ValueState<int>* state_ = nullptr;",
    "};",
]
print("\n".join(out))
