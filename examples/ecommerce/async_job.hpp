#pragma once
// The "after" code: the same function on the async state API. Each access returns a
// StateFuture; the controller batches requests and keeps many records in flight, and
// continuations run on the task thread under their own record's key.
// Two forms: continuation chains, and processElement/onTimer written as coroutines that
// read as straight-line code. Either way the record finishes when all it started has.

#include "events.hpp"

#include <asyncstate/asyncstate.hpp>

namespace ecommerce {

class AsyncActivityFunction final : public asyncstate::KeyedProcessFunction<std::string, Event, WindowCount> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    activity_ = &ctx.getMapState(asyncstate::MapStateDescriptor<std::int64_t, Activity>("activity"));
    profile_ = &ctx.getMapState(asyncstate::MapStateDescriptor<std::string, std::string>("profile"));
  }

  void processElement(const Event& event, Context& ctx, asyncstate::Collector<WindowCount>&) override {
    if (event.type == EventType::ProfileUpdate) {
      profile_->asyncPut(event.attribute, event.value);
      return;
    }
    const std::int64_t window = windowOf(event.timestamp);
    const bool purchase = event.type == EventType::Purchase;
    activity_->asyncGet(window).thenCompose([this, window, purchase](std::optional<Activity> current) {
      Activity activity = current.value_or(Activity{});
      ++activity.events;
      if (purchase) ++activity.purchases;
      return activity_->asyncPut(window, activity);
    });
    ctx.registerEventTimeTimer(window + kWindowMillis - 1);
  }

  void onTimer(std::int64_t timestamp, Context& ctx, asyncstate::Collector<WindowCount>& out) override {
    const std::int64_t window = timestamp + 1 - kWindowMillis;
    activity_->asyncGet(window).thenCompose([this, window, &ctx, &out](std::optional<Activity> activity) {
      if (!activity) return asyncstate::completedVoidFuture();
      activity_->asyncRemove(window);
      return profile_->asyncGet("segment").thenCombine(
          profile_->asyncGet("country"), [&ctx, &out, window, activity](const std::optional<std::string>& segment,
                                                                        const std::optional<std::string>& country) {
            out.collect(WindowCount{ctx.currentKey(), window, activity->events, activity->purchases,
                                    segment.value_or("unknown"), country.value_or("unknown")});
          });
    });
  }

 private:
  asyncstate::MapState<std::int64_t, Activity>* activity_ = nullptr;
  asyncstate::MapState<std::string, std::string>* profile_ = nullptr;
};

// The same logic as coroutines: each co_await suspends the record, not the thread.
class CoroutineActivityFunction final : public asyncstate::KeyedProcessFunction<std::string, Event, WindowCount> {
 public:
  void open(asyncstate::RuntimeContext& ctx) override {
    activity_ = &ctx.getMapState(asyncstate::MapStateDescriptor<std::int64_t, Activity>("activity"));
    profile_ = &ctx.getMapState(asyncstate::MapStateDescriptor<std::string, std::string>("profile"));
  }

  void processElement(const Event& event, Context& ctx, asyncstate::Collector<WindowCount>&) override {
    if (event.type == EventType::ProfileUpdate) {
      profile_->asyncPut(event.attribute, event.value);
      co_return;
    }
    const std::int64_t window = windowOf(event.timestamp);
    ctx.registerEventTimeTimer(window + kWindowMillis - 1);
    Activity activity = (co_await activity_->asyncGet(window)).value_or(Activity{});
    ++activity.events;
    if (event.type == EventType::Purchase) ++activity.purchases;
    co_await activity_->asyncPut(window, activity);
  }

  void onTimer(std::int64_t timestamp, Context& ctx, asyncstate::Collector<WindowCount>& out) override {
    const std::int64_t window = timestamp + 1 - kWindowMillis;
    const std::optional<Activity> activity = co_await activity_->asyncGet(window);
    if (!activity) co_return;
    activity_->asyncRemove(window);
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
