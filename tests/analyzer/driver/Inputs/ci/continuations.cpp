// Two continuations that block the task thread.
#include <asyncstate/future.hpp>

#include <chrono>
#include <thread>

void enrich(asyncstate::StateFuture<int> profile) {
  (void)std::move(profile).thenAccept([](int) { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
}

void score(asyncstate::StateFuture<int> risk) {
  (void)std::move(risk).thenAccept([](int) { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
}
