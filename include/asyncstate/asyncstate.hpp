#pragma once
// Everything a UDF author needs, from one include, with the backends and wrappers that
// need no extra library. RocksDB and Redis have their own headers because they need
// their client libraries; so does the latency and fault injector
// (<asyncstate/backend/latency.hpp>), a test and benchmark tool whose random
// distributions would otherwise make every UDF translation unit parse <random>.

#include <asyncstate/backend/cache.hpp>
#include <asyncstate/backend/errors.hpp>
#include <asyncstate/backend/memory.hpp>
#include <asyncstate/backend/retry.hpp>
#include <asyncstate/completion_mailbox.hpp>
#include <asyncstate/controller.hpp>
#include <asyncstate/error.hpp>
#include <asyncstate/function.hpp>
#include <asyncstate/future.hpp>
#include <asyncstate/iterator.hpp>
#include <asyncstate/key_accounting.hpp>
#include <asyncstate/metrics.hpp>
#include <asyncstate/pool.hpp>
#include <asyncstate/promise.hpp>
#include <asyncstate/request_buffer.hpp>
#include <asyncstate/runner.hpp>
#include <asyncstate/savepoint.hpp>
#include <asyncstate/serializer.hpp>
#include <asyncstate/state.hpp>
#include <asyncstate/state_backend.hpp>
#include <asyncstate/task.hpp>
#include <asyncstate/ticket_table.hpp>
#include <asyncstate/version.hpp>
