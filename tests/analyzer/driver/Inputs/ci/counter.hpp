// A sync UDF in a header that two translation units include: both workers of a
// -j run export its fixes, and applying them must still rewrite it once.
#pragma once
#include <asyncstate/function.hpp>
#include <asyncstate/state.hpp>

#include <cstdint>
#include <string>

class ClickCounter final : public asyncstate::KeyedProcessFunction<std::string, std::string, std::int64_t> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    count_ = &ctx.getState(asyncstate::ValueStateDescriptor<std::int64_t>("count"));
  }
  void processElement(const std::string&, Context&, asyncstate::Collector<std::int64_t>& out) override {
    const std::int64_t count = count_->value().value_or(0) + 1;
    count_->update(count);
    out.collect(count);
  }

 private:
  asyncstate::ValueState<std::int64_t>* count_ = nullptr;
};
