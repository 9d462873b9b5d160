#pragma once

#include "utils/AsyncStateCheck.h"

namespace clang::tidy::asyncstate {

// Flags blocking calls (sleeps, lock and condition-variable waits, future waits,
// blocking I/O) inside continuations, library-task coroutines, and the
// per-record members (processElement, onTimer) of UDFs that use async state.
// Docs: docs/checks/blocking-callback.md
class BlockingCallbackCheck : public AsyncStateCheck {
 public:
  BlockingCallbackCheck(StringRef Name, ClangTidyContext* Context);
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override;
  void registerMatchers(ast_matchers::MatchFinder* Finder) override;
  void check(const ast_matchers::MatchFinder::MatchResult& Result) override;

 private:
  const char* describe(const CallExpr* Call, const FunctionDecl* Callee) const;
  bool readsMemory(const Expr* Stream) const;
  const CXXMethodDecl* perRecordMethodOfAsyncUdf(const Scope& Where);

  const std::vector<std::string> BlockingFunctions;
  const std::vector<std::string> BlockingMethods;
  const std::vector<std::string> LockTypes;
  const std::vector<std::string> FutureWaitMethods;
  const std::vector<std::string> StdFutureTypes;
  const std::vector<std::string> InMemoryStreams;
  const std::vector<std::string> PerRecordMethods;
};

}  // namespace clang::tidy::asyncstate
