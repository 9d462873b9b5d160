#pragma once

#include "utils/AsyncStateCheck.h"

namespace clang::tidy::asyncstate {

// Flags blocking state access in async UDF code: synchronous state methods,
// functions annotated as blocking, and waiting on a future outside continuations.
// Docs: docs/checks/sync-state-access.md
class SyncStateAccessCheck : public AsyncStateCheck {
 public:
  SyncStateAccessCheck(StringRef Name, ClangTidyContext* Context);
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override;
  void registerMatchers(ast_matchers::MatchFinder* Finder) override;
  void check(const ast_matchers::MatchFinder::MatchResult& Result) override;

 private:
  void recordUdfClass(const CXXRecordDecl* Record, const SourceManager& SM);
  bool processesRecords(const CXXRecordDecl* Record) const;
  void checkCall(const CallExpr* Call, ASTContext& Ctx);

  const std::vector<std::string> StateTypes;
  const std::vector<std::string> SyncMethods;
  const std::vector<std::string> BlockingFunctions;
  const std::vector<std::string> FutureWaitMethods;
  const std::vector<std::string> StdFutureTypes;
  const std::string BlockingAnnotation;
};

}  // namespace clang::tidy::asyncstate
