// The "before" shape of click_counter.cpp: each sync call blocks the task thread until
// the backend answers. asyncstate-sync-state-access reports both calls.
#include <asyncstate/asyncstate.hpp>

#include <string>

class BlockingCount final : public asyncstate::KeyedProcessFunction<std::string, std::string, long> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    count_ = &ctx.getState(asyncstate::ValueStateDescriptor<long>("count"));
  }

  void processElement(const std::string&, Context&, asyncstate::Collector<long>& out) override {
    const long n = count_->value().value_or(0) + 1;
    count_->update(n);
    out.collect(n);
  }

 private:
  asyncstate::ValueState<long>* count_ = nullptr;
};

int main() {
  asyncstate::MemoryBackend backend;
  BlockingCount function;
  asyncstate::EmbeddedRunner<std::string, std::string, long> runner(
      backend, function, [](const std::string& user) { return user; }, [](const std::string&) { return 0; });
  asyncstate::VectorSource<std::string> source({"ann", "ann"});
  asyncstate::VectorCollector<long> sink;
  runner.run(source, sink);
  return sink.values.size() == 2 ? 0 : 1;
}
