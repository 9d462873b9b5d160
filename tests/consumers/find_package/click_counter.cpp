// Counts clicks per user with a coroutine UDF and checks the result.
#include <asyncstate/asyncstate.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

struct Click {
  std::string user;
  std::int64_t time = 0;
};

class CountClicks final : public asyncstate::KeyedProcessFunction<std::string, Click, std::string> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    count_ = &ctx.getState(asyncstate::ValueStateDescriptor<long>("count"));
  }

  void processElement(const Click&, Context& ctx, asyncstate::Collector<std::string>& out) override {
    (void)count(ctx, out);
  }

 private:
  asyncstate::Task<> count(Context& ctx, asyncstate::Collector<std::string>& out) {
    const long n = (co_await count_->asyncValue()).value_or(0) + 1;
    co_await count_->asyncUpdate(n);
    out.collect(ctx.currentKey() + "=" + std::to_string(n));
  }

  asyncstate::ValueState<long>* count_ = nullptr;
};

int main() {
  if (std::strcmp(ASYNCSTATE_VERSION_STRING, PACKAGE_VERSION) != 0) {
    std::fprintf(stderr, "headers say %s, the CMake package says %s\n", ASYNCSTATE_VERSION_STRING, PACKAGE_VERSION);
    return 1;
  }
  asyncstate::MemoryBackend backend;
  CountClicks function;
  asyncstate::EmbeddedRunner<std::string, Click, std::string> runner(
      backend, function, [](const Click& c) { return c.user; }, [](const Click& c) { return c.time; });
  asyncstate::VectorSource<Click> source({{"ann", 1}, {"bob", 2}, {"ann", 3}});
  asyncstate::VectorCollector<std::string> sink;
  runner.run(source, sink);
  // Per-key order is guaranteed; the order across keys is not.
  std::vector<std::string> lines = sink.values;
  std::sort(lines.begin(), lines.end());
  for (const std::string& line : lines) std::printf("%s\n", line.c_str());
  return lines == std::vector<std::string>{"ann=1", "ann=2", "bob=1"} ? 0 : 1;
}
