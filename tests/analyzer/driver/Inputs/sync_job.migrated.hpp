#pragma once
// The "before" code: the e-commerce analytics function written against the blocking
// sync state methods. Every state access waits for the backend.

#include "events.hpp"

#include <asyncstate/asyncstate.hpp>

namespace ecommerce {

class SyncActivityFunction final : public asyncstate::KeyedProcessFunction<std::string, Event, WindowCount> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    activity_ = &ctx.getMapState(asyncstate::MapStateDescriptor<std::int64_t, Activity>("activity"));
    profile_ = &ctx.getMapState(asyncstate::MapStateDescriptor<std::string, std::string>("profile"));
  }

  void processElement(const Event& event, Context& ctx, asyncstate::Collector<WindowCount>&) override {
    if (event.type == EventType::ProfileUpdate) {
      co_await profile_->asyncPut(event.attribute, event.value);
      co_return;
    }
    const std::int64_t window = windowOf(event.timestamp);
    Activity activity = (co_await activity_->asyncGet(window)).value_or(Activity{});
    ++activity.events;
    if (event.type == EventType::Purchase) ++activity.purchases;
    co_await activity_->asyncPut(window, activity);
    ctx.registerEventTimeTimer(window + kWindowMillis - 1);
  }

  void onTimer(std::int64_t timestamp, Context& ctx, asyncstate::Collector<WindowCount>& out) override {
    const std::int64_t window = timestamp + 1 - kWindowMillis;
    const std::optional<Activity> activity = co_await activity_->asyncGet(window);
    if (!activity) co_return;
    co_await activity_->asyncRemove(window);
    const std::optional<std::string> segment = co_await profile_->asyncGet("segment");
    const std::optional<std::string> country = co_await profile_->asyncGet("country");
    out.collect(WindowCount{ctx.currentKey(), window, activity->events, activity->purchases,
                            segment.value_or("unknown"), country.value_or("unknown")});
  }

 private:
  asyncstate::MapState<std::int64_t, Activity>* activity_ = nullptr;
  asyncstate::MapState<std::string, std::string>* profile_ = nullptr;
};

}  // namespace ecommerce
