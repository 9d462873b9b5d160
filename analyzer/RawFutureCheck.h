#pragma once

#include "utils/AsyncStateCheck.h"

#include "clang/AST/TemplateBase.h"
#include "llvm/ADT/DenseMap.h"

namespace clang::tidy::asyncstate {

// Flags std::future/shared_future/promise/packaged_task/async and heap-allocated
// state futures in async UDF code. Docs: docs/checks/raw-future.md
class RawFutureCheck : public AsyncStateCheck {
 public:
  RawFutureCheck(StringRef Name, ClangTidyContext* Context);
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override;
  void registerMatchers(ast_matchers::MatchFinder* Finder) override;
  void check(const ast_matchers::MatchFinder::MatchResult& Result) override;
  void onStartOfTranslationUnit() override;

 private:
  // The raw future class a type holds, looking through pointers, references,
  // arrays, smart pointers, containers, optionals, variants and tuples.
  const CXXRecordDecl* rawFutureIn(QualType Type, unsigned Depth = 0);
  // The same for a specialization's template arguments, argument packs included.
  const CXXRecordDecl* rawFutureIn(ArrayRef<TemplateArgument> Args, unsigned Depth);
  bool initializesFlaggedDecl(const Expr* E, ASTContext& Ctx);
  void checkDecl(const DeclaratorDecl* D, ASTContext& Ctx);
  void checkAllocation(const Expr* E, QualType Allocated, ASTContext& Ctx);

  const std::vector<std::string> RawFutureTypes;
  const std::vector<std::string> RawFutureFactories;
  llvm::DenseMap<const Type*, const CXXRecordDecl*> RawFutureCache;
};

}  // namespace clang::tidy::asyncstate
