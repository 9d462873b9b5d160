#pragma once

#include "utils/AsyncStateCheck.h"

#include "utils/Matching.h"

namespace clang::tidy::asyncstate {

// Flags error paths that drop the error: catch blocks in continuations that
// neither rethrow nor report, exceptionally()/handle() callbacks that ignore the
// error they get, and error handlers that ignore the error and continue.
// Docs: docs/checks/swallowed-exception.md
class SwallowedExceptionCheck : public AsyncStateCheck {
 public:
  // handle()'s one-argument form receives an Outcome: the value or the error in one object.
  struct OutcomeVocabulary {
    std::vector<std::string> Types;
    std::vector<std::string> TestMethods;   // ask whether it failed, without reading the error
    std::vector<std::string> ValueMethods;  // read the value; rethrow the error if it failed
  };

  SwallowedExceptionCheck(StringRef Name, ClangTidyContext* Context);
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override;
  void registerMatchers(ast_matchers::MatchFinder* Finder) override;
  void check(const ast_matchers::MatchFinder::MatchResult& Result) override;

 private:
  void checkCatch(const CXXCatchStmt* Catch, ASTContext& Ctx);
  void checkErrorCallback(const CXXMemberCallExpr* Call, ASTContext& Ctx);
  void checkErrorHandler(const FunctionDecl* Handler, SourceLocation Loc);
  bool reports(const Stmt* Body, const VarDecl* Error) const;

  const std::vector<std::string> ErrorCallbackMethods;
  const std::vector<std::string> ErrorActionTypes;
  const std::vector<std::string> ContinueActions;
  const ReportingNames Reporting;
  const OutcomeVocabulary Outcome;
};

}  // namespace clang::tidy::asyncstate
