#include "BlockingCallbackCheck.h"

#include "utils/Defaults.h"
#include "utils/Matching.h"

#include "clang/AST/ASTContext.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

// Outside continuations, future waits are asyncstate-sync-state-access's findings.
constexpr const char FutureWait[] = "waiting on a future";

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
      BlockingFunctions(parseQualifiedNames(Options.get("BlockingFunctions", defaults::BlockingFunctions))),
      BlockingMethods(parseQualifiedNames(Options.get("BlockingMethods", defaults::BlockingMethods))),
      LockTypes(parseQualifiedNames(Options.get("LockTypes", defaults::LockTypes))),
      FutureWaitMethods(parseList(Options.getLocalOrGlobal("FutureWaitMethods", defaults::FutureWaitMethods))),
      StdFutureTypes(parseQualifiedNames(Options.getLocalOrGlobal("StdFutureTypes", defaults::StdFutureTypes))),
      InMemoryStreams(parseQualifiedNames(Options.get("InMemoryStreams", defaults::InMemoryStreams))),
      PerRecordMethods(parseList(Options.get("PerRecordMethods", defaults::PerRecordMethods))) {}

void BlockingCallbackCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "BlockingFunctions", serializeQualifiedNames(BlockingFunctions));
  Options.store(Opts, "BlockingMethods", serializeQualifiedNames(BlockingMethods));
  Options.store(Opts, "LockTypes", serializeQualifiedNames(LockTypes));
  Options.store(Opts, "FutureWaitMethods", serializeList(FutureWaitMethods));
  Options.store(Opts, "StdFutureTypes", serializeQualifiedNames(StdFutureTypes));
  Options.store(Opts, "InMemoryStreams", serializeQualifiedNames(InMemoryStreams));
  Options.store(Opts, "PerRecordMethods", serializeList(PerRecordMethods));
}

void BlockingCallbackCheck::registerMatchers(MatchFinder* Finder) {
  traverseUserCodeOnly(Finder);
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

bool BlockingCallbackCheck::readsMemory(const Expr* Stream) const {
  return Stream && isSameOrDerivedFrom(pointeeRecord(Stream->IgnoreParenImpCasts()->getType()), InMemoryStreams);
}

const char* BlockingCallbackCheck::describe(const CallExpr* Call, const FunctionDecl* Callee) const {
  const auto* Member = dyn_cast<CXXMemberCallExpr>(Call);
  if (!Member && matchesQualifiedName(Callee, BlockingFunctions)) {
    // std::getline(stream, ...) and friends wait only when the stream does.
    if (Callee->isInStdNamespace() && Call->getNumArgs() > 0 && readsMemory(Call->getArg(0))) return nullptr;
    return "blocking call";
  }
  if (!Member) return nullptr;
  const CXXRecordDecl* Object = objectRecord(Member);
  const StringRef Name = Callee->getName();
  if (contains(FutureWaitMethods, Name) &&
      (isSameOrDerivedFrom(Object, StdFutureTypes) || Resolver.isFutureClass(Object)))
    return FutureWait;
  if (readsMemory(Member->getImplicitObjectArgument())) return nullptr;
  for (const std::string& Entry : BlockingMethods) {
    auto [Class, Method] = splitMember(Entry);
    if (Method == Name &&
        (isSameOrDerivedFrom(Object, {Class}) || isSameOrDerivedFrom(Member->getMethodDecl()->getParent(), {Class})))
      return "blocking call";
  }
  return nullptr;
}

// processElement/onTimer of a UDF that uses async state: whatever blocks there
// holds up the continuations of every record in flight.
const CXXMethodDecl* BlockingCallbackCheck::perRecordMethodOfAsyncUdf(const Scope& Where) {
  const CXXMethodDecl* Method = Where.Member;
  if (Where.Kind != ScopeKind::UdfMember || !Method || !Method->getDeclName().isIdentifier() ||
      !contains(PerRecordMethods, Method->getName()) || !Resolver.usesAsyncState(Method->getParent()))
    return nullptr;
  return Method;
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
      if (const CXXRecordDecl* Object = objectRecord(Member))
        What = Object->getQualifiedNameAsString() + "::" + Callee->getName().str();
  } else if (const auto* Lock = Result.Nodes.getNodeAs<CXXConstructExpr>("lock")) {
    if (!acquiresLock(Lock)) return;
    Site = Lock;
    Kind = "lock acquisition";
    What = Lock->getType().getUnqualifiedType().getAsString(Ctx.getPrintingPolicy());
  }
  if (!Site || Resolver.isUnevaluated(*Site, Ctx)) return;
  const Scope Where = Resolver.classify(*Site, Ctx);
  const CXXMethodDecl* PerRecord =
      Where.runsAsContinuation() || Kind == FutureWait ? nullptr : perRecordMethodOfAsyncUdf(Where);
  if (!Where.runsAsContinuation() && !PerRecord) return;
  const SourceLocation Loc = Site->getExprLoc();
  if (!Reported.firstTime(Loc, 0)) return;
  if (PerRecord) {
    diag(Loc,
         "%0 '%1' in '%2' of an async UDF stalls the task thread, and with it the continuations of every "
         "record in flight; move the work to an async state request or off the task thread")
        << Kind << What << PerRecord->getName();
    return;
  }
  diag(Loc,
       "%0 '%1' inside a continuation stalls the task thread and every record behind it; move the "
       "work to an async state request or off the task thread")
      << Kind << What;
}

}  // namespace clang::tidy::asyncstate
