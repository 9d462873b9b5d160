// A sync UDF of its own, plus the shared header's.
#include "counter.hpp"

class SeenUsers final : public asyncstate::KeyedProcessFunction<std::string, std::string, bool> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    seen_ = &ctx.getState(asyncstate::ValueStateDescriptor<bool>("seen"));
  }
  void processElement(const std::string&, Context&, asyncstate::Collector<bool>& out) override {
    if (seen_->value()) return;
    seen_->update(true);
    out.collect(true);
  }

 private:
  asyncstate::ValueState<bool>* seen_ = nullptr;
};
