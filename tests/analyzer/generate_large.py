#!/usr/bin/env python3
"""Prints a C++ translation unit of about N lines: many small functions and
continuation chains (work for every matcher), then one UDF with a sync access."""
import sys

lines = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
out = ["#include <asyncstate/asyncstate.hpp>", "using namespace asyncstate;"]
i = 0
while len(out) < lines - 12:
    out += [
        f"inline int helper{i}(ValueState<int>& s, int x) {{",
        f"  (void)s.asyncValue().thenAccept([x](std::optional<int> v) {{ (void)(v.value_or(0) + x); }});",
        f"  return x + {i};",
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
