// compiles
// processElement written as a coroutine, dropped write futures, no (void) anywhere.
#include <asyncstate/function.hpp>

#include <optional>
#include <string>

class Count : public asyncstate::KeyedProcessFunction<std::string, std::string, long> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    count_ = &ctx.getState(asyncstate::ValueStateDescriptor<long>("count"));
  }
  void processElement(const std::string&, Context&, asyncstate::Collector<long>& out) override {
    const long n = (co_await count_->asyncValue()).value_or(0) + 1;
    count_->asyncUpdate(n);
    out.collect(n);
  }
  void onTimer(std::int64_t, Context&, asyncstate::Collector<long>&) override {
    count_->asyncValue().thenAccept([this](std::optional<long> n) { count_->asyncUpdate(n.value_or(0)); });
  }

 private:
  asyncstate::ValueState<long>* count_ = nullptr;
};
