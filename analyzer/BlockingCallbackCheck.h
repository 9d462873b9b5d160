#pragma once

#include "utils/AsyncStateCheck.h"

namespace clang::tidy::asyncstate {

// Flags blocking calls (sleeps, lock and condition-variable waits, future waits,
// blocking I/O) inside continuations and library-task coroutines.
// Docs: docs/checks/blocking-callback.md
class BlockingCallbackCheck : public AsyncStateCheck {
 public:
  BlockingCallbackCheck(StringRef Name, ClangTidyContext* Context);
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override;
  void registerMatchers(ast_matchers::MatchFinder* Finder) override;
  void check(const ast_matchers::MatchFinder::MatchResult& Result) override;

 private:
  const char* describe(const CallExpr* Call, const FunctionDecl* Callee) const;

  const std::vector<std::string> BlockingFunctions;
  const std::vector<std::string> BlockingMethods;
  const std::vector<std::string> LockTypes;
  const std::vector<std::string> FutureWaitMethods;
};

}  // namespace clang::tidy::asyncstate
