#pragma once

#include "utils/AsyncStateCheck.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

#include <string>
#include <vector>

namespace clang::tidy::asyncstate {

// Flags blocking state access in async UDF code: synchronous state methods,
// functions annotated as blocking, and waiting on a future outside continuations.
// Its fix-its migrate a sync UDF: in processElement/onTimer (and coroutines) each
// blocking state call becomes `co_await` of its async twin, and `return;` becomes
// `co_return;`; what cannot be rewritten in place gets a note saying why.
// Docs: docs/checks/sync-state-access.md
class SyncStateAccessCheck : public AsyncStateCheck {
 public:
  SyncStateAccessCheck(StringRef Name, ClangTidyContext* Context);
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override;
  void registerMatchers(ast_matchers::MatchFinder* Finder) override;
  void check(const ast_matchers::MatchFinder::MatchResult& Result) override;
  void onStartOfTranslationUnit() override {
    AsyncStateCheck::onStartOfTranslationUnit();
    Migrated.clear();
    ReturnsConvertible.clear();
  }

 private:
  void recordUdfClass(const CXXRecordDecl* Record, const SourceManager& SM);
  bool processesRecords(const CXXRecordDecl* Record) const;
  void checkCall(const CallExpr* Call, ASTContext& Ctx);
  std::string migrate(DiagnosticBuilder& Diag, const CallExpr* Call, const FunctionDecl* Callee,
                      const CXXMethodDecl* Counterpart, ASTContext& Ctx);
  // Where `co_await` of the async twin can replace Call in place: the function
  // that becomes (or already is) the coroutine; otherwise why not.
  struct AwaitSite {
    const FunctionDecl* Coroutine = nullptr;
    std::string Obstacle;
  };
  AwaitSite awaitSite(const CallExpr* Call, ASTContext& Ctx);
  bool becomesRecordCoroutine(const FunctionDecl* Function) const;
  // Whether every `return` of Function can become `co_return` (none returns a value or
  // comes from a macro).
  bool returnsCanBecomeCoReturn(const FunctionDecl* Function);
  bool needsParentheses(const CallExpr* Call, ASTContext& Ctx) const;

  const std::vector<std::string> StateTypes;
  const std::vector<std::string> SyncMethods;
  const std::vector<std::string> BlockingFunctions;
  const std::vector<std::string> FutureWaitMethods;
  const std::vector<std::string> StdFutureTypes;
  const std::string BlockingAnnotation;
  // UDF members that may be coroutines (`void`, with a Collector& parameter), so the
  // migration can turn their blocking calls into co_await.
  const std::vector<std::string> RecordCoroutineMethods;
  const std::vector<std::string> CollectorTypes;
  // Functions whose `return;` statements were already rewritten to `co_return;`.
  llvm::DenseSet<const FunctionDecl*> Migrated;
  llvm::DenseMap<const FunctionDecl*, bool> ReturnsConvertible;
};

}  // namespace clang::tidy::asyncstate
