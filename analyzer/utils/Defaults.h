// The default value of every asyncstate-* option, in one place: the checks read
// them, the docs list them (docs/checks/*.md), and a project's .clang-tidy
// overrides them. Lists are ';'-separated, as clang-tidy's own list options.
#pragma once

namespace clang::tidy::asyncstate::defaults {

// Shared by all checks (global or per-check options).
inline constexpr const char UdfBaseClasses[] = "::asyncstate::KeyedProcessFunction";
// Task is an alias of StateFuture: any coroutine returning either is library-task code.
inline constexpr const char TaskTypes[] = "::asyncstate::Task;::asyncstate::StateFuture";
inline constexpr const char FutureTypes[] = "::asyncstate::StateFuture";
inline constexpr const char IteratorTypes[] = "::asyncstate::StateIterator";
inline constexpr const char ContinuationMethods[] =
    "thenAccept;thenApply;thenCompose;thenCombine;thenConditionallyAccept;exceptionally;handle;onNext";
// Free functions (or members, by qualified name) that attach their callable
// arguments as continuations; helpers defined in the translation unit are
// recognised from their bodies without being listed.
inline constexpr const char ContinuationFunctions[] = "";
// Calls that run a callable on another thread: code in it is not on the task thread.
inline constexpr const char OffThreadCallees[] = "::std::thread;::std::jthread;::std::async";
inline constexpr const char IgnoredNamespaces[] = "::asyncstate";
// Narrow the matchers' shared traversal to declarations outside system headers and
// outside IgnoredNamespaces (utils/AsyncStateCheck.h).
inline constexpr const char TraverseUserCodeOnly[] = "true";
// Runtime-owned objects that stay valid while the record's continuations run.
inline constexpr const char SafeReferenceTypes[] =
    "::asyncstate::Collector;::asyncstate::RuntimeContext;::asyncstate::KeyedProcessFunction::Context";
inline constexpr const char FutureWaitMethods[] = "get;wait;wait_for;wait_until";
inline constexpr const char StdFutureTypes[] = "::std::future;::std::shared_future";

// asyncstate-sync-state-access
inline constexpr const char StateTypes[] =
    "::asyncstate::ValueState;::asyncstate::ListState;::asyncstate::MapState;"
    "::asyncstate::ReducingState;::asyncstate::AggregatingState";
inline constexpr const char SyncMethods[] =
    "value;update;get;put;putAll;remove;contains;entries;keys;values;isEmpty;clear;add;addAll";
inline constexpr const char SyncBlockingFunctions[] = "::asyncstate::BasicAsyncExecutionController::await";
inline constexpr const char BlockingAnnotation[] = "asyncstate::blocking";
// UDF members the migration may turn into coroutines (the library's coroutine_traits
// accept a void member with a Collector& parameter).
inline constexpr const char RecordCoroutineMethods[] = "processElement;onTimer";
inline constexpr const char CollectorTypes[] = "::asyncstate::Collector";

// asyncstate-raw-future
inline constexpr const char RawFutureTypes[] = "::std::future;::std::shared_future;::std::promise;::std::packaged_task";
inline constexpr const char RawFutureFactories[] = "::std::async";

// asyncstate-swallowed-exception
inline constexpr const char ErrorCallbackMethods[] = "exceptionally;handle";
inline constexpr const char ErrorActionTypes[] = "::asyncstate::ErrorAction";
inline constexpr const char ContinueActions[] = "Continue";
// What handle(f) passes f in its one-argument form, and its members that test for a
// failure (`ok` for Outcome-like types that spell it so) or read the value.
inline constexpr const char OutcomeTypes[] = "::asyncstate::Outcome";
inline constexpr const char OutcomeTestMethods[] = "failed;ok";
inline constexpr const char OutcomeValueMethods[] = "value";
// Words of a function name (camelCase, snake_case) that make a call reporting.
inline constexpr const char ReportingWords[] =
    "log;report;warn;warning;error;fail;failure;print;printf;fprintf;puts;perror;syslog;trace;record;notify;"
    "set_exception;setException;rethrow;terminate;abort;exit;count;increment;fetch_add;metric;metrics;alert;emit";

// asyncstate-blocking-callback
inline constexpr const char BlockingFunctions[] =
    "::std::this_thread::sleep_for;::std::this_thread::sleep_until;::sleep;::usleep;::nanosleep;"
    "::read;::recv;::recvfrom;::recvmsg;::accept;::connect;::poll;::select;::epoll_wait;::fsync;"
    "::fread;::fgets;::getchar;::scanf;::system;::popen;::pclose;::waitpid;::std::getline;::std::lock";
// Members are matched on the object's class (or a class derived from it).
inline constexpr const char BlockingMethods[] =
    "::std::mutex::lock;::std::timed_mutex::lock;::std::recursive_mutex::lock;::std::recursive_timed_mutex::lock;"
    "::std::shared_mutex::lock;::std::shared_mutex::lock_shared;::std::shared_timed_mutex::lock;"
    "::std::shared_timed_mutex::lock_shared;::std::unique_lock::lock;::std::shared_lock::lock;"
    "::std::condition_variable::wait;::std::condition_variable::wait_for;::std::condition_variable::wait_until;"
    "::std::condition_variable_any::wait;::std::condition_variable_any::wait_for;"
    "::std::condition_variable_any::wait_until;::std::thread::join;::std::jthread::join;::std::latch::wait;"
    "::std::latch::arrive_and_wait;::std::barrier::arrive_and_wait;::std::counting_semaphore::acquire;"
    "::std::basic_istream::read;::std::basic_istream::getline;::std::basic_istream::ignore";
inline constexpr const char LockTypes[] = "::std::lock_guard;::std::unique_lock;::std::scoped_lock;::std::shared_lock";
// Streams over memory: reading them never waits.
inline constexpr const char InMemoryStreams[] =
    "::std::basic_istringstream;::std::basic_stringstream;::std::basic_ispanstream;::std::basic_spanstream;"
    "::std::basic_stringbuf";
// UDF members that run per record or per timer on the task thread.
inline constexpr const char PerRecordMethods[] = "processElement;onTimer";

// asyncstate-dangling-coroutine-reference
// Parameter types that only view memory owned elsewhere, like references do.
inline constexpr const char ViewTypes[] = "::std::basic_string_view;::std::span";

// asyncstate-member-scratch-across-suspension
// Member types that hold values shared beyond one record by design (published to
// other threads, or runtime-owned objects that are the same for every record).
inline constexpr const char IgnoredMemberTypes[] =
    "::std::atomic;::std::atomic_ref;::asyncstate::Collector;::asyncstate::RuntimeContext";
// Member functions that give a member a fresh per-record value, like an assignment.
inline constexpr const char ScratchResetMethods[] = "assign;clear;reset";

}  // namespace clang::tidy::asyncstate::defaults
