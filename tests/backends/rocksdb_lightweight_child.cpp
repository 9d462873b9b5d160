// Child process of RocksDbLightweight.AJobKilledAtRandomPoints* (rocksdb_lightweight_test.cpp):
// a job with value, map and list state on RocksDB with lightweight checkpoints. It
// recovers from the last checkpoint, prints "recovered <outputs>" (the outputs that
// checkpoint had emitted), then every output as "out <key>=<count>", and "done" at the
// end of its input, until it is killed. argv: database directory, checkpoint root,
// records, keys, records per checkpoint.

#include "../support/killed_job.hpp"

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/rocksdb.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

using asyncstate::test::Hit;
using asyncstate::test::MixedJob;
using asyncstate::test::PrintingSink;
using asyncstate::test::say;

int main(int argc, char** argv) {
  if (argc != 6) return 2;
  try {
    asyncstate::RocksDbOptions options;
    options.path = argv[1];
    options.checkpointRoot = argv[2];
    const int records = std::stoi(argv[3]);
    const int keys = std::stoi(argv[4]);
    std::vector<Hit> hits;
    for (int i = 0; i < records; ++i) hits.push_back(Hit{"k" + std::to_string(i * 7 % keys), i});

    asyncstate::RocksDbBackend backend(options);
    MixedJob function;
    asyncstate::RunnerOptions runnerOptions;
    runnerOptions.controller.batchSize = 16;
    runnerOptions.checkpointEvery = std::stoul(argv[5]);
    runnerOptions.lightweightCheckpoints = true;
    asyncstate::EmbeddedRunner<std::string, Hit, std::string> runner(
        backend, function, [](const Hit& h) { return h.key; }, [](const Hit& h) { return h.timestamp; }, runnerOptions);
    asyncstate::VectorSource<Hit> source(hits);
    say("recovered " + std::to_string(runner.recover(source)));
    PrintingSink sink;
    runner.run(source, sink);
    say("done");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
