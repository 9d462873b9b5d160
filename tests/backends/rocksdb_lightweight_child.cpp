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

using asyncstate::test::PrintingSink;
using asyncstate::test::say;

int main(int argc, char** argv) {
  if (argc != 6) return 2;
  try {
    asyncstate::RocksDbOptions options;
    options.path = argv[1];
    options.checkpointRoot = argv[2];
    asyncstate::RocksDbBackend backend(options);
    asyncstate::test::KilledJobRun job(backend, std::stoi(argv[3]), std::stoi(argv[4]), std::stoul(argv[5]));
    say("recovered " + std::to_string(job.runner.recover(job.source)));
    PrintingSink sink;
    job.runner.run(job.source, sink);
    say("done");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
