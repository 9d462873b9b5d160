#pragma once

#include "utils/AsyncStateCheck.h"

#include <string>
#include <vector>

namespace clang::tidy::asyncstate {

// Flags a UDF class that accesses one state member both synchronously (value(),
// update(), get(), ...) and asynchronously (asyncValue(), asyncGet(), ...), which
// Flink's State V2 documentation forbids within one operator. Reported once per
// state member, at its first synchronous use, with a note at an asynchronous one.
// Docs: docs/checks/mixed-state-access.md
class MixedStateAccessCheck : public AsyncStateCheck {
 public:
  MixedStateAccessCheck(StringRef Name, ClangTidyContext* Context);
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override;
  void registerMatchers(ast_matchers::MatchFinder* Finder) override;
  void check(const ast_matchers::MatchFinder::MatchResult& Result) override;

 private:
  void checkClass(const CXXRecordDecl* Record, const SourceManager& SM);

  const std::vector<std::string> StateTypes;
  const std::vector<std::string> SyncMethods;
};

}  // namespace clang::tidy::asyncstate
