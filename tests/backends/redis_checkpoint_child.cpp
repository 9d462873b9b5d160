// Child process of RedisCheckpoint.*KilledAtRandomPoints* (redis_checkpoint_test.cpp): a
// job with value, map and list state on Redis with lightweight checkpoints. It recovers
// from the job's last checkpoint, or from the one `back` checkpoints before it when that
// one is retained (restoring its savepoint through the runner, as an operator going back
// would), prints "recovered <outputs>" (the outputs that checkpoint had emitted),
// "back <n>" (how many checkpoints before the last it went to) and "pre-images <n>" (how
// many it wrote back), then every output as "out <key>=<count>" before the next
// checkpoint commits, and "done" at the end of its input, until it is killed. argv:
// seeds (comma-separated), job name, records, keys, records per checkpoint, back.

#include "../support/killed_job.hpp"

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/redis.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

using asyncstate::test::PrintingSink;
using asyncstate::test::say;

int main(int argc, char** argv) {
  if (argc != 7) return 2;
  try {
    asyncstate::RedisOptions options;
    options.seeds.clear();
    for (std::string seeds = argv[1]; !seeds.empty();) {
      const auto comma = seeds.find(',');
      options.seeds.push_back(seeds.substr(0, comma));
      seeds = comma == std::string::npos ? std::string() : seeds.substr(comma + 1);
    }
    options.job = argv[2];
    options.lightweightCheckpoints = true;
    asyncstate::RedisBackend backend(options);
    asyncstate::test::KilledJobRun job(backend, std::stoi(argv[3]), std::stoi(argv[4]), std::stoul(argv[5]));
    const std::vector<asyncstate::LightweightCheckpoint> retained = backend.retainedCheckpoints();
    const std::size_t back = std::stoul(argv[6]);
    if (back > 0 && back < retained.size()) {
      const asyncstate::LightweightCheckpoint& target = retained[retained.size() - 1 - back];
      asyncstate::Savepoint checkpoint;
      checkpoint.metadata() = target.metadata;
      checkpoint.metadata()[asyncstate::kLightweightCheckpointField] = asyncstate::encode(target.id);
      say("recovered " + std::to_string(job.runner.restore(checkpoint, job.source)));
      say("back " + std::to_string(back));
    } else {
      say("recovered " + std::to_string(job.runner.recover(job.source)));
    }
    say("pre-images " + std::to_string(backend.checkpointStats().lastRollBackPreImages));
    PrintingSink sink;
    job.runner.run(job.source, sink);
    say("done");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
