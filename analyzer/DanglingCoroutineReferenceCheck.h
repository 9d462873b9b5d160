#pragma once

#include "utils/AsyncStateCheck.h"

namespace clang::tidy::asyncstate {

// Flags coroutines that keep reading what their caller already destroyed: a
// temporary (or a local of a function that returns right away) bound to a
// reference or view parameter the coroutine reads after a suspension, and
// coroutine lambdas whose captures die with the closure at the end of the
// statement that started them.
// Docs: docs/checks/dangling-coroutine-reference.md
class DanglingCoroutineReferenceCheck : public AsyncStateCheck {
 public:
  DanglingCoroutineReferenceCheck(StringRef Name, ClangTidyContext* Context);
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override;
  void registerMatchers(ast_matchers::MatchFinder* Finder) override;
  void check(const ast_matchers::MatchFinder::MatchResult& Result) override;

 private:
  void checkCall(const CallExpr* Call, ASTContext& Ctx);
  void checkLambda(const LambdaExpr* Lambda, ASTContext& Ctx);
  bool isBorrowing(QualType ParameterType) const;

  const std::vector<std::string> ViewTypes;
};

}  // namespace clang::tidy::asyncstate
