// Keeps each user's cart in a MapState (item -> quantity) and emits the cart size after
// every change, written as a continuation chain.
#include <asyncstate/asyncstate.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

struct CartEvent {
  std::string user;
  std::string item;
  int quantity = 0;  // 0 removes the item
  std::int64_t time = 0;
};

class CartTotals final : public asyncstate::KeyedProcessFunction<std::string, CartEvent, std::pair<std::string, int>> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    cart_ = &ctx.getMapState(asyncstate::MapStateDescriptor<std::string, int>("cart"));
  }

  void processElement(const CartEvent& event, Context& ctx,
                      asyncstate::Collector<std::pair<std::string, int>>& out) override {
    auto change = event.quantity == 0 ? cart_->asyncRemove(event.item) : cart_->asyncPut(event.item, event.quantity);
    (void)std::move(change)
        .thenCompose([this] { return cart_->asyncValues(); })
        .thenCompose([](asyncstate::StateIterator<int> quantities) { return std::move(quantities).collect(); })
        .thenAccept([&ctx, &out](std::vector<int> quantities) {
          int total = 0;
          for (int q : quantities) total += q;
          out.collect({ctx.currentKey(), total});
        });
  }

 private:
  asyncstate::MapState<std::string, int>* cart_ = nullptr;
};

int main() {
  asyncstate::MemoryBackend backend;
  CartTotals function;
  asyncstate::EmbeddedRunner<std::string, CartEvent, std::pair<std::string, int>> runner(
      backend, function, [](const CartEvent& e) { return e.user; }, [](const CartEvent& e) { return e.time; });
  asyncstate::VectorSource<CartEvent> source(
      {{"ann", "book", 1, 1}, {"bob", "pen", 3, 2}, {"ann", "lamp", 2, 3}, {"ann", "book", 0, 4}});
  asyncstate::VectorCollector<std::pair<std::string, int>> sink;
  runner.run(source, sink);
  // Per-key order is guaranteed, so ann's totals arrive as 1, 3, 2.
  std::vector<int> ann;
  for (const auto& [user, total] : sink.values) {
    std::printf("%s %d\n", user.c_str(), total);
    if (user == "ann") ann.push_back(total);
  }
  return ann == std::vector<int>{1, 3, 2} && sink.values.size() == 4 ? 0 : 1;
}
