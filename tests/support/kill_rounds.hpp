#pragma once
// The kill tests' rounds: a child per round, killed at a random point, its lines applied
// to the exactly-once sink, until one child reaches the end of its input.

#include "killed_job.hpp"
#include "piped_child.hpp"

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace asyncstate::test {

struct KillRounds {
  bool done = false;     // the last child printed "done"
  int killedMidRun = 0;  // kills before the end of input
};

// Up to `rounds` children started with `argsFor(random)`. A quarter of the kills land at
// a random time within `startUpMicros` of the start (start-up, recovery), the rest after
// a random number of outputs within those left of `records`, plus up to a millisecond
// (batches, checkpoint commits), whatever the machine's speed. `see` gets each child's
// lines before they are applied to `outputs`.
template <class ArgsFor, class See>
KillRounds killAtRandomPoints(int rounds, int records, long startUpMicros, std::vector<std::string>& outputs,
                              ArgsFor argsFor, See see) {
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> killDuringStartUp(0, 3);
  std::uniform_int_distribution<long> startUp(0, startUpMicros);
  std::uniform_int_distribution<long> killAfterMicros(0, 1000);
  KillRounds result;
  for (int round = 0; round < rounds && !result.done; ++round) {
    PipedChild child(argsFor(random));
    std::vector<std::string> lines;
    if (killDuringStartUp(random) == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(startUp(random)));
    } else {
      const int left = records - static_cast<int>(outputs.size());
      for (int seen = 0, target = std::uniform_int_distribution<int>(0, left * 3 / 4)(random); seen < target;) {
        lines.push_back(child.readLine());
        if (lines.back().empty() || lines.back() == "done") break;
        if (lines.back().rfind("out ", 0) == 0) ++seen;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(killAfterMicros(random)));
    }
    for (std::string& line : child.kill()) lines.push_back(std::move(line));
    see(lines);
    result.done = collectChildLines(lines, outputs);
    result.killedMidRun += result.done ? 0 : 1;
  }
  return result;
}

}  // namespace asyncstate::test
