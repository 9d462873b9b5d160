#pragma once

#include "utils/AsyncStateCheck.h"

#include "llvm/ADT/DenseMap.h"

#include <string>
#include <vector>

namespace clang::tidy::asyncstate {

// Flags a UDF data member used as per-record scratch across an async boundary:
// assigned in a member function before a co_await (or before a continuation that
// captures `this` is attached) and read after it (after the co_await, or inside
// that continuation). Records of other keys run while the record is suspended and
// overwrite the member, so the read sees another record's value.
// Docs: docs/checks/member-scratch-across-suspension.md
class MemberScratchAcrossSuspensionCheck : public AsyncStateCheck {
 public:
  MemberScratchAcrossSuspensionCheck(StringRef Name, ClangTidyContext* Context);
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override;
  void registerMatchers(ast_matchers::MatchFinder* Finder) override;
  void check(const ast_matchers::MatchFinder::MatchResult& Result) override;
  void onStartOfTranslationUnit() override {
    AsyncStateCheck::onStartOfTranslationUnit();
    Tracked.clear();
  }

  // A write of a tracked member that the record may not see back: where it was
  // written, and the boundary it was carried across (if any yet).
  struct PendingWrite {
    SourceLocation Write;
    SourceLocation Boundary;
    bool AcrossContinuation = false;
  };
  using PendingWrites = llvm::DenseMap<const FieldDecl*, PendingWrite>;

  // Whether reads and writes of this member are checked: a non-const data member
  // that is not a state handle and not of an IgnoredMemberTypes type.
  bool isTracked(const FieldDecl* Field);

 private:
  void analyzeBody(const Stmt* Body, SourceRange Range, PendingWrites Inherited, ASTContext& Ctx, unsigned Depth);

  const std::vector<std::string> StateTypes;
  const std::vector<std::string> IgnoredMemberTypes;
  const std::vector<std::string> ScratchResetMethods;
  llvm::DenseMap<const FieldDecl*, bool> Tracked;
};

}  // namespace clang::tidy::asyncstate
