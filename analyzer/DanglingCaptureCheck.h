#pragma once

#include "utils/AsyncStateCheck.h"

namespace clang::tidy::asyncstate {

// Flags continuation lambdas that capture locals or parameters by reference:
// the continuation runs after the enclosing function returned.
// Docs: docs/checks/dangling-capture.md
class DanglingCaptureCheck : public AsyncStateCheck {
 public:
  DanglingCaptureCheck(StringRef Name, ClangTidyContext* Context);
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override;
  void registerMatchers(ast_matchers::MatchFinder* Finder) override;
  void check(const ast_matchers::MatchFinder::MatchResult& Result) override;

 private:
  const std::vector<std::string> SafeReferenceTypes;
};

}  // namespace clang::tidy::asyncstate
