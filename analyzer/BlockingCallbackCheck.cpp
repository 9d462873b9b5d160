#include "BlockingCallbackCheck.h"

#include "utils/Matching.h"

#include "clang/AST/ASTContext.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

constexpr const char* DefaultBlockingFunctions =
    "::std::this_thread::sleep_for;::std::this_thread::sleep_until;::sleep;::usleep;::nanosleep;"
    "::read;::recv;::recvfrom;::recvmsg;::accept;::connect;::poll;::select;::epoll_wait;::fsync;"
    "::fread;::fgets;::getchar;::scanf;::system;::popen;::pclose;::waitpid;::std::getline;::std::lock";
// Members are matched on the object's class (or a class derived from it).
constexpr const char* DefaultBlockingMethods =
    "::std::mutex::lock;::std::timed_mutex::lock;::std::recursive_mutex::lock;::std::recursive_timed_mutex::lock;"
    "::std::shared_mutex::lock;::std::shared_mutex::lock_shared;::std::shared_timed_mutex::lock;"
    "::std::shared_timed_mutex::lock_shared;::std::unique_lock::lock;::std::shared_lock::lock;"
    "::std::condition_variable::wait;::std::condition_variable::wait_for;::std::condition_variable::wait_until;"
    "::std::condition_variable_any::wait;::std::condition_variable_any::wait_for;"
    "::std::condition_variable_any::wait_until;::std::thread::join;::std::jthread::join;::std::latch::wait;"
    "::std::latch::arrive_and_wait;::std::barrier::arrive_and_wait;::std::counting_semaphore::acquire;"
    "::std::basic_istream::read;::std::basic_istream::getline;::std::basic_istream::ignore";
constexpr const char* DefaultLockTypes = "::std::lock_guard;::std::unique_lock;::std::scoped_lock;::std::shared_lock";

const std::vector<std::string> StdFutures = {"std::future", "std::shared_future"};

// Splits "::ns::Class::method" into the class and the method name.
std::pair<std::string, StringRef> splitMember(StringRef QualifiedMember) {
  const size_t Colons = QualifiedMember.rfind("::");
  return {QualifiedMember.substr(0, Colons).str(), QualifiedMember.substr(Colons + 2)};
}

// std::unique_lock(m, std::defer_lock) and friends do not wait.
bool acquiresLock(const CXXConstructExpr* Construct) {
  for (const Expr* Arg : Construct->arguments())
    if (const CXXRecordDecl* Tag = Arg->getType()->getAsCXXRecordDecl();
        Tag && Tag->isInStdNamespace() && Tag->getDeclName().isIdentifier() &&
        (Tag->getName() == "defer_lock_t" || Tag->getName() == "try_to_lock_t" || Tag->getName() == "adopt_lock_t"))
      return false;
  return Construct->getNumArgs() > 0 && !Construct->getConstructor()->isCopyOrMoveConstructor();
}

}  // namespace

BlockingCallbackCheck::BlockingCallbackCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context),
      BlockingFunctions(readQualifiedNames(Options, "BlockingFunctions", DefaultBlockingFunctions)),
      BlockingMethods(readQualifiedNames(Options, "BlockingMethods", DefaultBlockingMethods)),
      LockTypes(readQualifiedNames(Options, "LockTypes", DefaultLockTypes)),
      FutureWaitMethods(splitList(Options.get("FutureWaitMethods", "get;wait;wait_for;wait_until"))) {}

void BlockingCallbackCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "BlockingFunctions", joinQualifiedNames(BlockingFunctions));
  Options.store(Opts, "BlockingMethods", joinQualifiedNames(BlockingMethods));
  Options.store(Opts, "LockTypes", joinQualifiedNames(LockTypes));
  Options.store(Opts, "FutureWaitMethods", joinList(FutureWaitMethods));
}

void BlockingCallbackCheck::registerMatchers(MatchFinder* Finder) {
  std::vector<std::string> Candidates = FutureWaitMethods;
  for (const std::string& Name : BlockingFunctions) Candidates.push_back(lastComponent(Name).str());
  for (const std::string& Name : BlockingMethods) Candidates.push_back(lastComponent(Name).str());
  const auto UserCode = unless(isExpansionInSystemHeader());
  Finder->addMatcher(callExpr(UserCode, callee(functionDecl(hasAnyName(refs(Candidates))).bind("callee"))).bind("call"),
                     this);
  std::vector<std::string> Locks;
  for (const std::string& Name : LockTypes) Locks.push_back("::" + Name);
  Finder->addMatcher(cxxConstructExpr(UserCode, hasType(cxxRecordDecl(hasAnyName(refs(Locks))))).bind("lock"), this);
}

const char* BlockingCallbackCheck::describe(const CallExpr* Call, const FunctionDecl* Callee) const {
  if (matchesQualifiedName(Callee, BlockingFunctions)) return "blocking call";
  const auto* Member = dyn_cast<CXXMemberCallExpr>(Call);
  if (!Member) return nullptr;
  const CXXRecordDecl* Object = pointeeRecord(Member->getImplicitObjectArgument()->getType());
  const StringRef Name = Callee->getName();
  if (contains(FutureWaitMethods, Name) && (isSameOrDerivedFrom(Object, StdFutures) || Resolver.isFutureClass(Object)))
    return "waiting on a future";
  for (const std::string& Entry : BlockingMethods) {
    auto [Class, Method] = splitMember(Entry);
    if (Method == Name &&
        (isSameOrDerivedFrom(Object, {Class}) || isSameOrDerivedFrom(Member->getMethodDecl()->getParent(), {Class})))
      return "blocking call";
  }
  return nullptr;
}

void BlockingCallbackCheck::check(const MatchFinder::MatchResult& Result) {
  ASTContext& Ctx = *Result.Context;
  const Expr* Site = nullptr;
  std::string What;
  const char* Kind = nullptr;
  if (const auto* Call = Result.Nodes.getNodeAs<CallExpr>("call")) {
    const auto* Callee = Result.Nodes.getNodeAs<FunctionDecl>("callee");
    if (!Callee->getDeclName().isIdentifier() || !(Kind = describe(Call, Callee))) return;
    Site = Call;
    What = Callee->getQualifiedNameAsString();
    // libstdc++ declares future::wait in a private base; name what the user wrote.
    if (const auto* Member = dyn_cast<CXXMemberCallExpr>(Call))
      if (const CXXRecordDecl* Object = pointeeRecord(Member->getImplicitObjectArgument()->getType()))
        What = Object->getQualifiedNameAsString() + "::" + Callee->getName().str();
  } else if (const auto* Lock = Result.Nodes.getNodeAs<CXXConstructExpr>("lock")) {
    if (!acquiresLock(Lock)) return;
    Site = Lock;
    Kind = "lock acquisition";
    What = Lock->getType().getUnqualifiedType().getAsString(Ctx.getPrintingPolicy());
  }
  if (!Site || !Resolver.classify(*Site, Ctx).runsAsContinuation()) return;
  const SourceLocation Loc = Site->getExprLoc();
  if (!Reported.firstTime(Loc, 0)) return;
  diag(Loc,
       "%0 '%1' inside a continuation stalls the task thread and every record behind it; move the "
       "work to an async state request or off the task thread")
      << Kind << What;
}

}  // namespace clang::tidy::asyncstate
